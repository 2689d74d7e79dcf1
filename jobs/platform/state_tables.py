"""The clean layer's state and its record: which Delta version of each table holds which snapshot.

Grain: `clean/<table>` and `rejected/<table>` hold one state, the checked latest rows as of the
snapshot a run last moved them to (no snapshot column); `derived/customer_day` the customer-day
facts computed from that clean state (jobs.clean.customer_day_state). A run for D moves every table from a
recorded snapshot S (the base) to D by replacing only the keys whose rows can differ between S
and D (one MERGE commit per table, none when no key changed), or rebuilds the table whole when
there is no usable base. Once every table has moved, one append to `snapshots` records the
version of each table that holds D. Reading snapshot D is Delta time travel to those versions,
so a rerun of D, a run of another date in between, or a killed run (its moves are never
recorded) leave every recorded snapshot as it was written. Old versions go with VACUUM's
retention (`crm-metrics maintain`); a rerun of such a date rebuilds it from the raw history.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.platform.delta import LakeConflict, is_conflict, retry_conflicts, time_ordered
from jobs.platform.lake import SNAPSHOT_COLUMN, Lake

CLEAN_TABLES = ("orders", "order_items", "interactions", "customers", "products", "marketing_spend")
REJECTED_TABLES = ("orders", "order_items", "interactions")
CUSTOMER_DAY = "derived/customer_day"  # computed from the clean layer, moved with it
MISSING = -1  # the version recorded for a table that does not exist (no rejected row yet)
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
# Delta takes a commit's userMetadata from the session's conf: one move at a time per process
_COMMIT_LOCK = threading.Lock()


# The column each table's files are laid out by (range-partitioned on a rebuild, Z-ordered by
# `crm-metrics maintain`): a day's moved keys are mostly recent orders, lines and interactions, and
# a MERGE rewrites only the files holding a replaced key, so time-ordered files keep a day's
# rewrite to the recent few instead of every file.
TIME_ORDER = {
    **{f"{layer}/orders": "ordered_at" for layer in ("clean", "rejected")},
    **{f"{layer}/order_items": "updated_at" for layer in ("clean", "rejected")},
    **{f"{layer}/interactions": "occurred_at" for layer in ("clean", "rejected")},
    CUSTOMER_DAY: "activity_date",
}


def state_tables(lake: Lake) -> dict[str, str]:
    """Every table of the state, by its name in the record (`clean/orders`, `rejected/orders`,
    `derived/customer_day`, ...)."""
    out = {f"clean/{t}": lake.clean_table(t) for t in CLEAN_TABLES}
    out.update({f"rejected/{t}": lake.rejected_table(t) for t in REJECTED_TABLES})
    out[CUSTOMER_DAY] = lake.customer_day_table()
    return out


@dataclass(frozen=True)
class Record:
    """One recorded snapshot: the version of each state table holding it, the rule parameters it
    was checked with, and the raw tables' versions its build had read (later rows are new to it)."""

    snapshot: date
    record_id: str
    versions: dict[str, int]
    params: str
    raw_versions: dict[str, int]


def _version(lake: Lake, path: str) -> int:
    from deltalake import DeltaTable

    if not lake.has_table(path):
        return MISSING
    return int(DeltaTable(lake.delta_uri(path), storage_options=lake.storage_options()).version())


def current_versions(lake: Lake) -> dict[str, int]:
    return {name: _version(lake, path) for name, path in state_tables(lake).items()}


def raw_versions(lake: Lake, tables: tuple[str, ...]) -> dict[str, int]:
    return {t: _version(lake, lake.raw_table(t)) for t in tables}


def records(lake: Lake) -> list[Record]:
    """Every recorded snapshot, oldest first (the log of `snapshots`, read by delta-rs)."""
    path = lake.snapshots_table()
    if not lake.has_table(path):
        return []
    rows: dict[str, dict[str, Any]] = {}
    for r in lake.read_arrow(path).to_pylist():
        rec = rows.setdefault(r["record_id"], {"snapshot": r[SNAPSHOT_COLUMN], "versions": {}, "params": r["params"],
                                               "raw_versions": json.loads(r["raw_versions"])})
        rec["versions"][r["state_table"]] = int(r["version"])
    out = [Record(v["snapshot"], k, v["versions"], v["params"], v["raw_versions"]) for k, v in rows.items()]
    return sorted(out, key=lambda rec: sum(rec.versions.values()))


def recorded_snapshots(lake: Lake) -> set[date]:
    return {r.snapshot for r in records(lake)}


def snapshot_record(lake: Lake, snapshot: date) -> Record | None:
    """The newest record of the snapshot (the versions only grow, so the largest are the newest)."""
    mine = [r for r in records(lake) if r.snapshot == snapshot]
    return mine[-1] if mine else None


def find_base(lake: Lake, params: str | None) -> Record | None:
    """The recorded snapshot the tables hold right now (every table at its recorded version) and
    checked with the same rule parameters (`None`: any), else None (rebuild whole)."""
    now = current_versions(lake)
    for rec in reversed(records(lake)):
        if (params is None or rec.params == params) and all(rec.versions.get(name, MISSING) == v for name, v in now.items()):
            return rec
    return None


def write_record(spark: SparkSession, lake: Lake, snapshot: date, versions: dict[str, int], params: str,
                 raw: dict[str, int]) -> None:
    """Append the snapshot's record: one commit, after every table has moved."""
    record_id = uuid.uuid4().hex
    rows = [(snapshot, record_id, name, int(v), params, json.dumps(raw, sort_keys=True)) for name, v in sorted(versions.items())]
    df = spark.createDataFrame(
        rows, f"`{SNAPSHOT_COLUMN}` DATE, record_id STRING, state_table STRING, version BIGINT, params STRING, raw_versions STRING"
    )
    retry_conflicts("record of the clean layer", lambda: df.write.format("delta").mode("append").save(lake.snapshots_table()))


def read_state(spark: SparkSession, lake: Lake, name: str, version: int, schema: str | None = None) -> DataFrame:
    """One state table at a recorded version (an empty frame of `schema` for a missing table)."""
    if version == MISSING:
        if schema is None:
            raise FileNotFoundError(f"{name}: no Delta table at {state_tables(lake)[name]}")
        return spark.createDataFrame([], schema)
    return spark.read.format("delta").option("versionAsOf", version).load(state_tables(lake)[name])


def _commit_of(lake: Lake, path: str, tag: str) -> dict[str, Any] | None:
    """The commit a tagged write made (None: it changed nothing, so Delta made no commit)."""
    from deltalake import DeltaTable

    table = DeltaTable(lake.delta_uri(path), storage_options=lake.storage_options())
    for commit in table.history(20):
        if commit.get("userMetadata") == tag:
            return commit
    return None


def _tagged(spark: SparkSession, fn: Any) -> str:
    """Run a Delta write with a unique userMetadata tag; returns the tag."""
    tag = f"crm-metrics {uuid.uuid4().hex}"
    with _COMMIT_LOCK:
        spark.conf.set(USER_METADATA, tag)
        try:
            fn()
        finally:
            spark.conf.unset(USER_METADATA)
    return tag


def rebuild(spark: SparkSession, lake: Lake, path: str, rows: DataFrame, what: str,
            properties: dict[str, str] | None = None, order_by: str | None = None) -> int:
    """Replace the whole table with `rows` (created if missing, with the Delta table `properties`;
    its files in ranges of `order_by`): one commit. Returns its version."""
    if order_by is not None:
        rows = time_ordered(rows, order_by)

    def write() -> None:
        writer = rows.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
        for key, value in (properties or {}).items():
            writer = writer.option(key, value)
        writer.save(path)

    def commit() -> str:
        return _tagged(spark, write)

    before = _version(lake, path)
    tag = retry_conflicts(what, commit)
    made = _commit_of(lake, path, tag)
    if made is None:  # an empty table rewritten empty: Delta makes no commit
        if before != MISSING and _version(lake, path) == before:
            return before
        raise LakeConflict(f"{what}: the rewrite of {path} is not among the table's last 20 commits; retry the task")
    return int(made["version"])


def replace_keys(spark: SparkSession, lake: Lake, path: str, rows: DataFrame, keys: DataFrame, key: list[str],
                 base_version: int, what: str, order_by: str | None = None) -> int:
    """Move the table from `base_version`: delete every row whose key is in `keys` (null-safe) and
    insert `rows` (their state now), in one MERGE commit. Returns the new version.

    The change was computed against `base_version`; if another run committed to the table in
    between, the MERGE conflicts or reads a newer version, and this raises LakeConflict (a retry
    starts again from whatever the tables hold then)."""
    if keys.isEmpty():
        return base_version  # nothing to move: no commit
    if base_version == MISSING:
        return rebuild(spark, lake, path, rows, what, order_by=order_by) if not rows.isEmpty() else MISSING
    src = (keys.select(*key).withColumn("_op", F.lit("d"))
           .unionByName(rows.withColumn("_op", F.lit("i")), allowMissingColumns=True))
    view = f"_move_{uuid.uuid4().hex}"
    cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in key) + " AND s._op = 'd'"
    cols = ", ".join(f"`{c}`" for c in rows.columns)
    sql = (f"MERGE WITH SCHEMA EVOLUTION INTO delta.`{path}` t USING {view} s ON {cond} "
           f"WHEN MATCHED THEN DELETE WHEN NOT MATCHED AND s._op = 'i' THEN INSERT ({cols}) "
           f"VALUES ({', '.join(f's.`{c}`' for c in rows.columns)})")

    def merge() -> None:
        src.createOrReplaceTempView(view)
        try:
            spark.sql(sql)
        finally:
            spark.catalog.dropTempView(view)

    try:
        tag = _tagged(spark, merge)
    except Exception as exc:
        if is_conflict(exc):
            raise LakeConflict(f"{what}: another run changed {path} while this one was moving it; retry the task") from exc
        raise
    commit = _commit_of(lake, path, tag)
    if commit is None:  # the keys had no rows before and have none now: nothing to commit
        if _version(lake, path) != base_version:
            raise LakeConflict(f"{what}: another run moved {path} while this one was checking it; retry the task")
        return base_version
    if int(commit.get("readVersion", -2)) != base_version:
        raise LakeConflict(
            f"{what}: {path} moved from version {base_version} to {commit.get('readVersion')} under this run; "
            "this run's change is not recorded, retry the task"
        )
    return int(commit["version"])
