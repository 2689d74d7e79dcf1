"""The clean and rejected layers of a snapshot, as Delta tables.

Grain: `clean/<table>` holds one row per valid latest source row per snapshot date (orders,
order lines, interactions, customers, products, marketing spend); `rejected/<table>` one row per
latest row that breaks a rule, with its `reasons`, per snapshot date (no table until a snapshot
has such a row). Input: the raw history as of the snapshot (jobs.snapshot_inputs.load_inputs).
Each table's snapshot is one Delta commit (`replaceWhere snapshot_date = D`), so a killed run
leaves the previous state of the snapshot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.delta import snapshot_rows, write_snapshot
from jobs.lake import Lake
from jobs.parallel import in_parallel
from jobs.quality import rules
from jobs.snapshot_inputs import CURRENT, SnapshotInputs, clean_rows, load_inputs

log = logging.getLogger(__name__)


@dataclass
class CleanPlan:
    """What validate_raw checks and then writes: the checked rows of the snapshot (with
    extract_date and reasons) and the current-state tables."""

    lake: Lake
    snapshot: date
    params: rules.RuleParams
    inputs: SnapshotInputs
    newest_order_update: Any = None

    def write(self) -> dict[str, Any]:
        """Write the clean and rejected layers of the snapshot: one commit per table."""
        lake, d = self.lake, self.snapshot

        def write_table(table: str, checked: DataFrame) -> None:
            df = checked.drop("extract_date").persist(StorageLevel.MEMORY_AND_DISK)
            try:
                write_snapshot(rules.valid(df), lake.clean_table(table), d, f"clean {table}")
                rejected, bad = lake.rejected_table(table), rules.invalid(df)
                # a Delta commit costs about a second: none when there is nothing to add or replace
                if snapshot_rows(lake, rejected, d) or not bad.isEmpty():
                    write_snapshot(bad, rejected, d, f"rejected {table}")
            finally:
                df.unpersist()

        in_parallel(
            [partial(write_table, table, df) for table, df in self.inputs.checked().items()]
            + [partial(write_snapshot, getattr(self.inputs, t), lake.clean_table(t), d, f"clean {t}") for t in CURRENT]
        )
        rows = clean_rows(lake, d)
        log.info("clean layer %s: %s", d, rows)
        return {"rows": rows}

    def release(self) -> None:
        self.inputs.release()


def prepare(spark: SparkSession, lake: Lake, snapshot: date, params: rules.RuleParams) -> CleanPlan:
    """The checked rows of the snapshot, from the raw history as of the snapshot."""
    inputs = load_inputs(spark, lake, snapshot, params)
    newest = inputs.orders.agg(F.max("updated_at")).first()
    return CleanPlan(lake, snapshot, params, inputs, newest_order_update=newest[0] if newest else None)
