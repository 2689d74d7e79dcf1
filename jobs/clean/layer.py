"""The clean and rejected layers of a snapshot, as Delta tables moved from a recorded snapshot.

Grain: `clean/<table>` holds one row per valid latest source row as of a snapshot (orders,
order lines, interactions, customers, products, marketing spend); `rejected/<table>` one row per
latest row that breaks a rule, with its `reasons` (no table until a snapshot has such a row).
Input: the raw history as of the snapshot (jobs.clean.snapshot_inputs.load_inputs).

A run moves each table from the snapshot the tables hold now (jobs.platform.state_tables.find_base,
checked with the same rule parameters) by replacing only the keys that can differ
(jobs.clean.changes): a day's run recomputes that day's orders, lines and interactions, not the
whole history. Without such a base (the lake's first run, a full refresh, other rule
parameters, a killed run's unrecorded moves) every table is rebuilt whole. Either way each table
is one Delta commit and the snapshot is recorded after the last one, so a killed run leaves
every recorded snapshot as it was.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.clean.changes import SOURCES, changed_scope, feeds_changes, null_safe_match, release_scope
from jobs.clean.customer_day_state import move_customer_day
from jobs.clean.snapshot_inputs import (
    CURRENT,
    SCOPE_COLUMN,
    KeyScope,
    SnapshotInputs,
    clean_rows,
    current_tables,
    load_inputs,
)
from jobs.platform.delta import newest_value
from jobs.platform.lake import Lake
from jobs.platform.state_tables import (
    CUSTOMER_DAY,
    MISSING,
    TIME_ORDER,
    Record,
    find_base,
    raw_versions,
    read_state,
    rebuild,
    replace_keys,
    snapshot_record,
    state_tables,
    write_record,
)
from jobs.quality import rules
from schemas.source import SOURCE_BY_NAME

log = logging.getLogger(__name__)


def params_key(params: rules.RuleParams) -> str:
    """The rule parameters a state was checked with (a base must share them)."""
    return json.dumps({"company_start": params.company_start.isoformat(), "max_order_amount": params.max_order_amount,
                       "currencies": list(params.currencies)}, sort_keys=True)


@dataclass
class CleanPlan:
    """What validate_raw checks and then writes: the checked rows of the keys this run moves
    (every key without a base), with extract_date and reasons, and the current-state tables."""

    lake: Lake
    snapshot: date
    params: rules.RuleParams
    inputs: SnapshotInputs
    raw: dict[str, int]
    base: Record | None = None
    scope: KeyScope | None = None
    current_keys: dict[str, DataFrame] = field(default_factory=dict)
    newest_order_update: Any = None

    @property
    def mode(self) -> str:
        return "whole" if self.base is None else f"moved from {self.base.snapshot}"

    def write(self) -> dict[str, Any]:
        """Move (or rebuild) every clean and rejected table and the customer_day computed from them,
        one commit each, then record the snapshot."""
        lake, d = self.lake, self.snapshot
        spark = self.inputs.orders.sparkSession
        versions: dict[str, int] = {}
        for table, checked in self.inputs.checked().items():
            df = checked.drop("extract_date").persist(StorageLevel.MEMORY_AND_DISK)
            try:
                versions[f"clean/{table}"] = self._move(spark, f"clean/{table}", rules.valid(df), table)
                versions[f"rejected/{table}"] = self._move(spark, f"rejected/{table}", rules.invalid(df), table)
            finally:
                df.unpersist()
        for table in CURRENT:
            versions[f"clean/{table}"] = self._move(spark, f"clean/{table}", getattr(self.inputs, table), table)
        versions[CUSTOMER_DAY] = move_customer_day(spark, lake, self.base, versions, self.scope)
        write_record(spark, lake, d, versions, params_key(self.params), self.raw)
        rows = clean_rows(lake, d)
        log.info("clean layer %s (%s): %s", d, self.mode, rows)
        return {"rows": rows, "mode": self.mode}

    def _move(self, spark: SparkSession, name: str, rows: DataFrame, table: str) -> int:
        path = state_tables(self.lake)[name]
        if self.base is None:
            if name.startswith("rejected/") and not self.lake.has_table(path) and rows.isEmpty():
                return MISSING  # a Delta commit costs about a second: none for nothing to reject
            return rebuild(spark, self.lake, path, rows, name, order_by=TIME_ORDER.get(name))
        if table in CURRENT:
            key = list(SOURCE_BY_NAME[table].key)
            keys = self.current_keys[table]
            moved = rows.join(keys, null_safe_match(rows, keys, key), "left_semi")
        else:
            assert self.scope is not None
            key = [SCOPE_COLUMN[table]]
            ids = self.scope.order_ids if table != "interactions" else self.scope.interaction_ids
            keys, moved = ids.withColumnRenamed("_scope_id", key[0]), rows
        return replace_keys(spark, self.lake, path, moved, keys, key, self.base.versions.get(name, MISSING), name,
                            order_by=TIME_ORDER.get(name))

    def release(self) -> None:
        self.inputs.release()
        release_scope(self.scope, self.current_keys)


def prepare(spark: SparkSession, lake: Lake, snapshot: date, params: rules.RuleParams, *, whole: bool = False,
            current: dict[str, DataFrame] | None = None) -> CleanPlan:
    """The checked rows of the snapshot, from the raw history as of the snapshot: of the keys
    that can differ from the recorded base, or of every key (`whole`, or no usable base)."""
    raw = raw_versions(lake, SOURCES)  # read before the rows: a later capture is new to the next run
    base = None if whole else find_base(lake, params_key(params))
    if base is not None and not feeds_changes(lake, base):
        log.info("clean layer %s: the raw tables have no change feed since %s; rebuilding whole", snapshot, base.snapshot)
        base = None
    current = current or current_tables(spark, lake, snapshot)
    scope: KeyScope | None = None
    current_keys: dict[str, DataFrame] = {}
    if base is not None:
        scope, current_keys = changed_scope(spark, lake, base, snapshot, current, raw)
    inputs = load_inputs(spark, lake, snapshot, params, scope, current)
    newest = _newest_order_update(spark, lake, snapshot, inputs)
    return CleanPlan(lake, snapshot, params, inputs, raw, base, scope, current_keys, newest_order_update=newest)


def _newest_order_update(spark: SparkSession, lake: Lake, snapshot: date, inputs: SnapshotInputs) -> datetime | None:
    """The newest orders.updated_at the snapshot can see: a version updated by then, or a later
    first version of an order placed by then (always among the run's own keys)."""
    end = datetime.combine(snapshot + timedelta(days=1), time())
    seen = newest_value(spark, lake, lake.raw_table("orders"), "updated_at", before=end)
    mine = inputs.orders.agg(F.max("updated_at")).first()
    values = [v for v in (seen, mine[0] if mine else None) if v is not None]
    return max(values) if values else None


def restated_rows(spark: SparkSession, lake: Lake, snapshot: date) -> dict[str, int]:
    """Rows of the recorded snapshot known only from a version updated after it (the entity was
    first captured later): the snapshot restates what that day saw from the nearest later
    knowledge. Counted over its clean and rejected rows."""
    record = snapshot_record(lake, snapshot)
    if record is None:
        return {}
    end = F.lit(datetime.combine(snapshot + timedelta(days=1), time()))
    out = {}
    for table in ("orders", "order_items", "interactions"):
        n = 0
        for layer in ("clean", "rejected"):
            version = record.versions.get(f"{layer}/{table}", MISSING)
            if version != MISSING:
                n += read_state(spark, lake, f"{layer}/{table}", version).where(F.col("updated_at") >= end).count()
        out[table] = n
    return out
