"""OpenLineage datasets of each pipeline step: what it reads and what it writes.

Grain: one OpenLineage dataset per table a step reads or writes (source tables, lake Delta
tables, warehouse tables), with the table's columns, types and comments from `schemas/` as the
schema facet and its comment as the documentation facet. Inputs: the run's resolved source and
warehouse URLs, lake root and export URL (jobs.pipeline.steps.RunContext).

The DAG hands them to Airflow's OpenLineage provider as the task's inlets and outlets (the
provider's documented fallback for Python tasks), so a lineage catalog (Marquez, DataHub, ...)
shows every mart from the source tables through the lake to the warehouse. Names follow the
OpenLineage naming spec: PostgreSQL `postgres://host:port` + `database.schema.table`, files
`file` + the absolute path, S3 `s3://bucket` + the key prefix; a DuckDB file (no spec entry) is
`duckdb://<file path>` + `schema.table`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from openlineage.client.event_v2 import Dataset
from openlineage.client.facet_v2 import DatasetFacet, documentation_dataset, schema_dataset

from jobs.pipeline.steps import RunContext
from jobs.platform.lake import Lake
from jobs.platform.state_tables import CLEAN_TABLES, REJECTED_TABLES
from jobs.platform.warehouse.duckdb_wh import DuckDBWarehouse
from jobs.publish.to_s3 import EXPORT_URL_ENV, parse_export_url
from schemas.marts import DQ_RESULTS, MARTS_SCHEMA, METRIC_MARTS, QUARANTINE
from schemas.source import SOURCE_SCHEMA, SOURCE_TABLES
from schemas.types import Table


@dataclass(frozen=True)
class StepLineage:
    inputs: list[Dataset] = field(default_factory=list)
    outputs: list[Dataset] = field(default_factory=list)


def _facets(table: Table | None) -> dict[str, DatasetFacet]:
    if table is None:
        return {}
    fields = [schema_dataset.SchemaDatasetFacetFields(name=c.name, type=c.type, description=c.comment) for c in table.columns]
    return {"schema": schema_dataset.SchemaDatasetFacet(fields=fields),
            "documentation": documentation_dataset.DocumentationDatasetFacet(description=table.comment)}


def database_dataset(url: str, schema: str, table: Table) -> Dataset:
    """A table of the source or the warehouse (credentials never leave the URL)."""
    parts = urlsplit(url)
    if parts.scheme == "duckdb":
        path = DuckDBWarehouse(url).path.absolute()
        return Dataset(namespace=f"duckdb://{path}", name=f"{schema}.{table.name}", facets=_facets(table))
    host = parts.hostname or "localhost"
    namespace = f"postgres://{host}:{parts.port or 5432}"
    return Dataset(namespace=namespace, name=f"{parts.path.strip('/')}.{schema}.{table.name}", facets=_facets(table))


def lake_dataset(lake: Lake, path: str, table: Table | None = None) -> Dataset:
    """A Delta table of the lake, on a local folder or on S3."""
    if lake.is_s3:
        parts = urlsplit(path)
        return Dataset(namespace=f"s3://{parts.netloc}", name=parts.path.strip("/"), facets=_facets(table))
    return Dataset(namespace="file", name=path, facets=_facets(table))


def step_lineage(step: str, ctx: RunContext) -> StepLineage:
    """The datasets a step reads and writes (record and report: none; export: none without an
    export URL)."""
    lake = ctx.lake
    sources = [database_dataset(ctx.source_url, SOURCE_SCHEMA, t) for t in SOURCE_TABLES]
    raw = [lake_dataset(lake, lake.raw_table(t.name), t) for t in SOURCE_TABLES]
    clean = [lake_dataset(lake, lake.clean_table(t)) for t in CLEAN_TABLES]
    state = [*clean, *(lake_dataset(lake, lake.rejected_table(t)) for t in REJECTED_TABLES),
             lake_dataset(lake, lake.customer_day_table()), lake_dataset(lake, lake.snapshots_table())]
    lake_marts = [lake_dataset(lake, lake.mart_table(t.name), t) for t in METRIC_MARTS]
    warehouse_marts = [database_dataset(ctx.warehouse_url, MARTS_SCHEMA, t) for t in METRIC_MARTS]
    dq = database_dataset(ctx.warehouse_url, MARTS_SCHEMA, DQ_RESULTS)
    if step == "extract":
        return StepLineage(sources, raw)
    if step == "validate_raw":
        quarantine = [lake_dataset(lake, lake.quarantine_table(), QUARANTINE), database_dataset(ctx.warehouse_url, MARTS_SCHEMA, QUARANTINE)]
        return StepLineage(raw, [*state, *quarantine, dq])
    if step == "build_marts":
        return StepLineage([*clean, lake_dataset(lake, lake.customer_day_table())], lake_marts)
    if step == "validate_marts":
        return StepLineage([*lake_marts, clean[0]], [dq])
    if step == "publish":
        return StepLineage(lake_marts, warehouse_marts)
    if step == "export":
        url = ctx.params.export_url or os.environ.get(EXPORT_URL_ENV)
        if not url:
            return StepLineage()
        bucket, prefix = parse_export_url(url)
        files = [Dataset(namespace=f"s3://{bucket}", name="/".join(p for p in (prefix, t.name) if p), facets=_facets(t))
                 for t in METRIC_MARTS]
        return StepLineage(warehouse_marts, files)
    return StepLineage()
