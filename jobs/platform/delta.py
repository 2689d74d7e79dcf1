"""Delta Lake reads and writes through Spark: one commit per table per snapshot, retried on a
concurrent commit, plus the table maintenance (OPTIMIZE, VACUUM) of `crm-metrics maintain`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import pyarrow as pa
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.platform.lake import SNAPSHOT_COLUMN, Lake

log = logging.getLogger(__name__)

T = TypeVar("T")

# Delta's optimistic concurrency: another writer committed first. Retrying re-reads the table.
# DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION: another run is creating the same table and has
# written files but not yet its first commit; once it has, CREATE TABLE IF NOT EXISTS finds it
# (seen with two runs of a new lake started at once).
CONFLICT_MARKERS = ("ConcurrentAppend", "ConcurrentDelete", "ConcurrentTransaction", "ConcurrentWrite",
                    "ProtocolChanged", "MetadataChanged", "DELTA_CONCURRENT", "DELTA_METADATA_CHANGED",
                    "DELTA_PROTOCOL_CHANGED", "DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION", "already exists")
CONFLICT_ATTEMPTS = 5


class LakeConflict(RuntimeError):
    """Another run kept committing to the same Delta table; retry the task."""


def is_conflict(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    return any(m in text for m in CONFLICT_MARKERS)


def retry_conflicts(what: str, fn: Callable[[], T], attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Run `fn` (an idempotent Delta commit) again when a concurrent commit beat it."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if not is_conflict(exc):
                raise
            if attempt == attempts:
                raise LakeConflict(
                    f"{what}: another run committed to the same Delta table {attempts} times in a row; "
                    f"retry the task (last conflict: {str(exc).splitlines()[0][:300]})"
                ) from exc
            log.warning("%s: concurrent commit, retrying (%s of %s)", what, attempt, attempts)
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def snapshot_filter(snapshot: date) -> str:
    return f"{SNAPSHOT_COLUMN} = DATE'{snapshot.isoformat()}'"


def write_snapshot(df: DataFrame, path: str, snapshot: date, what: str) -> None:
    """Replace the snapshot's partition of the Delta table at `path` with `df`: one commit (the
    table is created by the first write). An empty `df` leaves the snapshot empty. A column the
    contract added is added to the table (older snapshots read it as null); a column it dropped
    stays in the table, null from then on."""
    out = df.withColumn(SNAPSHOT_COLUMN, F.lit(snapshot).cast("date"))

    def commit() -> None:
        (out.write.format("delta").mode("overwrite").partitionBy(SNAPSHOT_COLUMN)
         .option("replaceWhere", snapshot_filter(snapshot)).option("mergeSchema", "true").save(path))

    retry_conflicts(what, commit)


def read_snapshot(
    spark: SparkSession, lake: Lake, path: str, snapshot: date, what: str, keep_snapshot_column: bool = False
) -> DataFrame:
    """One snapshot of a Delta table written by write_snapshot (without its snapshot_date unless
    asked: the marts keep it, in contract order)."""
    if not lake.has_table(path):
        raise FileNotFoundError(f"{what}: no Delta table at {path} for {snapshot}")
    df = spark.read.format("delta").load(path).where(snapshot_filter(snapshot))
    return df if keep_snapshot_column else df.drop(SNAPSHOT_COLUMN)


def _add_actions(lake: Lake, path: str) -> pa.Table:
    """The live files of a Delta table with their partition values and row counts (the log only)."""
    return pa.table(DeltaTable(lake.delta_uri(path), storage_options=lake.storage_options()).get_add_actions(flatten=True))


def time_ordered(rows: DataFrame, column: str) -> DataFrame:
    """`rows` in ranges of `column`, one file per range (the shuffle partitions' number), sorted
    within: a read filtered by time then skips, by Delta's file statistics, the files outside it."""
    files = int(rows.sparkSession.conf.get("spark.sql.shuffle.partitions") or "16")
    return rows.repartitionByRange(files, column).sortWithinPartitions(column)


# Delta stores timestamp statistics in milliseconds: a file's true max is within this of its stat
STATS_PRECISION = timedelta(milliseconds=1)


def _newest_floor(lake: Lake, path: str, column: str, before: datetime | None) -> datetime | None:
    """A lower bound of max(`column`) over the rows below `before`, from the Delta log: the largest
    file maximum among files wholly below `before`. None when the statistics cannot tell, or when
    the table may have deletion vectors (a file's maximum may then be a deleted row's, and the log
    as delta-rs reads it does not say which files have one)."""
    table = DeltaTable(lake.delta_uri(path), storage_options=lake.storage_options())
    if "deletionVectors" in (table.protocol().reader_features or []):
        return None
    actions = pa.table(table.get_add_actions(flatten=True))
    if f"max.{column}" not in actions.column_names:
        return None
    # naive times are the Python process's local time, as PySpark converts them
    limit = None if before is None else before.astimezone(UTC)
    usable = [m for m in actions.column(f"max.{column}").to_pylist()
              if m is not None and (limit is None or m + STATS_PRECISION <= limit)]
    if not usable:
        return None
    return (max(usable) - STATS_PRECISION).astimezone().replace(tzinfo=None)


def newest_value(spark: SparkSession, lake: Lake, path: str, column: str, before: datetime | None = None) -> Any:
    """max(`column`) of a Delta table's rows (those below `before`, a UTC time): the same answer as a
    full scan, but Spark reads only the files whose statistics reach the log's lower bound (on a
    table in time order, the newest file or two instead of the whole history)."""
    rows = spark.read.format("delta").load(path)
    if before is not None:
        rows = rows.where(F.col(column) < F.lit(before))
    floor = _newest_floor(lake, path, column, before)
    if floor is not None:
        rows = rows.where(F.col(column) >= F.lit(floor))
    row = rows.agg(F.max(column)).first()
    return row[0] if row else None


def snapshot_rows(lake: Lake, path: str, snapshot: date) -> int:
    """Rows of one snapshot from the Delta log's file statistics (no Spark job)."""
    if not lake.has_table(path):
        return 0
    actions = _add_actions(lake, path)
    parts = actions.column(f"partition.{SNAPSHOT_COLUMN}").to_pylist()
    rows = actions.column("num_records").to_pylist()
    return sum(int(n or 0) for part, n in zip(parts, rows, strict=True) if part is not None and str(part) == snapshot.isoformat())


def optimize(spark: SparkSession, path: str, zorder_by: str | None = None) -> None:
    """Compact small files (OPTIMIZE); Z-ordered by `zorder_by` to keep a time-ordered layout."""
    spark.sql(f"OPTIMIZE delta.`{path}`" + (f" ZORDER BY (`{zorder_by}`)" if zorder_by else ""))


def vacuum(spark: SparkSession, path: str, retain_hours: float) -> None:
    """Delete files no version inside the retention window needs (Delta's VACUUM)."""
    spark.sql(f"VACUUM delta.`{path}` RETAIN {retain_hours} HOURS")
