"""crm-metrics: transactions in, customer relationship metrics out.

The rooms, top to bottom; imports point down only (tests/unit/test_layers.py checks it):

- `cli/`: the entry points (the `crm-metrics` command, running the DAG locally);
- `pipeline/`: the steps in order, as the DAG's tasks call them, their lineage, lake maintenance;
- the stages, in the order of the flow: `ingest/` (source -> raw history), `clean/` (raw ->
  checked clean layer and customer days), `quality/` (rules and gates), `metrics/` (the marts),
  `publish/` (lake marts -> warehouse, S3, the run record), `report/` (the HTML page);
- `platform/`: what the stages run on: settings, Spark, the warehouse, the lake and its Delta
  tables, S3, Airflow connections, keyed hashes.

Below them all, `schemas/` is the contract. Developer tools (generator, bench, docs generator)
live in the separate `devtools` package, and the fault injection in the tests' support code.
"""

import logging

# Great Expectations logs hundreds of INFO lines on import once structlog is configured.
logging.getLogger("great_expectations").setLevel(logging.WARNING)
