"""Extract: every version of every source row the lake has not seen yet, into the raw Delta tables.

Grain of a raw table: one row per captured version (the source's key + `updated_at`), plus when
and by which run it was captured. Every source table is versioned this way, customers, products
and marketing spend included, so snapshot D reads every table as of D (jobs.clean.snapshot_inputs).

An extraction reads the rows updated since the table's watermark (its newest captured
`updated_at`) minus a lookback, which catches rows committed late with an older `updated_at`;
the first run of a table, or a full refresh, reads everything. The versions are MERGEd in on
every column (insert only), so rerunning any date's extraction adds nothing twice and removes
nothing: a raw table is append-only (`delta.appendOnly`). A full refresh also records keys that
vanished from the source as tombstone versions (`_deleted`, timed by deletion_time), so later
snapshots drop them and every snapshot built before keeps them; a key restored afterwards gets a
version just after its tombstone. PII columns never leave the warehouse.

A lake belongs to one source: the raw tables carry the source's identity as a table property,
and an extraction from another warehouse is refused.
"""

from __future__ import annotations

import logging
import tempfile
import time as clock
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import reduce
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.parquet as pq
from deltalake import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.utils import is_remote

from jobs.platform.config import mask_url
from jobs.platform.delta import newest_value, retry_conflicts, time_ordered
from jobs.platform.lake import Lake
from jobs.platform.state_tables import recorded_snapshots
from jobs.platform.warehouse import Warehouse, quote_ident
from schemas.source import SOURCE_SCHEMA, SOURCE_TABLES
from schemas.types import Table, decimal_parts, spark_type_ddl, sql_type

log = logging.getLogger(__name__)

# information_schema type names accepted for each logical type (both engines)
_TYPE_FAMILIES: dict[str, tuple[str, ...]] = {
    "string": ("varchar", "text", "character varying", "character", "char"),
    "int": ("integer", "int", "int4", "smallint", "int2", "tinyint"),
    "bigint": ("bigint", "int8", "integer", "int"),
    "double": ("double", "double precision", "real", "float", "float8"),
    "boolean": ("boolean", "bool"),
    "date": ("date",),
    "timestamp": ("timestamp", "timestamp without time zone", "timestamp with time zone", "timestamptz", "timestamp_ns", "timestamp_ms", "timestamp_s"),
    "decimal": ("decimal", "numeric"),
}


# the lake's own columns on every raw version
DELETED = "_deleted"
CAPTURED_FOR = "_captured_for"
CAPTURED_RUN = "_captured_run"
BOOKKEEPING_DDL = f"`{DELETED}` BOOLEAN, `{CAPTURED_FOR}` DATE, `{CAPTURED_RUN}` STRING"
SOURCE_PROPERTY = "crm_metrics.source"
# the clean layer reads which versions a run added since its base from the raw tables' change feed
CHANGE_FEED = "delta.enableChangeDataFeed"
DEFAULT_LOOKBACK = timedelta(hours=1)


class SchemaDriftError(RuntimeError):
    """A source table lacks a required column or a column changed type."""


class ForeignSourceError(RuntimeError):
    """The lake holds another source's history."""


@dataclass
class ExtractResult:
    """Versions added per table (`rows`), rows read from the source, tombstones recorded."""

    snapshot_date: date
    full_refresh: bool
    rows: dict[str, int] = field(default_factory=dict)
    rows_read: dict[str, int] = field(default_factory=dict)
    tombstones: dict[str, int] = field(default_factory=dict)
    watermarks: dict[str, str | None] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def exported_table(table: Table) -> Table:
    """The table as it lands in the lake: PII columns dropped."""
    return Table(
        name=table.name, comment=table.comment, grain=table.grain, key=table.key,
        columns=tuple(c for c in table.columns if not c.pii),
    )


def check_source_schema(wh: Warehouse, schema: str, table: Table) -> list[str]:
    """Compare a source table with its contract. Returns warnings for extra columns; raises
    SchemaDriftError naming a missing or retyped required column."""
    actual = wh.columns(schema, table.name)
    if not actual:
        raise SchemaDriftError(
            f"source table {schema}.{table.name} does not exist in the warehouse; "
            "create it (crm-metrics generate / import) or point --warehouse at the right database"
        )
    problems = []
    for col in table.columns:
        if col.name not in actual:
            problems.append(f"required column {schema}.{table.name}.{col.name} is missing")
            continue
        family = "decimal" if decimal_parts(col.type) else col.type
        found = actual[col.name].split("(")[0].strip()
        if found not in _TYPE_FAMILIES[family]:
            problems.append(
                f"column {schema}.{table.name}.{col.name} has type {actual[col.name]!r}, "
                f"expected {sql_type(col.type, wh.dialect).lower()}"
            )
    if problems:
        raise SchemaDriftError("; ".join(problems) + ". Fix the source table or the contract in schemas/source.py.")
    extra = sorted(set(actual) - set(table.column_names))
    return [f"{schema}.{table.name}: ignoring column(s) not in the contract: {', '.join(extra)}"] if extra else []


def source_identity(url: str, schema: str = SOURCE_SCHEMA) -> str:
    """What names a source whatever the spelling of its URL: the database (host, port, name) or
    the DuckDB file's absolute path, and the schema. No user or password."""
    parts = urlsplit(url)
    if parts.scheme.startswith("duckdb"):
        path = url.split(":///", 1)[1] if ":///" in url else parts.path
        return f"duckdb:{Path(path).resolve()}#{schema}"
    host = (parts.hostname or "localhost").replace("127.0.0.1", "localhost")
    return f"postgresql://{host}:{parts.port or 5432}{parts.path}#{schema}"


def raw_ddl(table: Table) -> str:
    """The raw table's columns: the exported contract (all nullable: a tombstone has only its key
    and time) plus the lake's bookkeeping."""
    cols = ", ".join(f"`{c.name}` {spark_type_ddl(c.type)}" for c in table.columns)
    return f"{cols}, {BOOKKEEPING_DDL}"


def ensure_raw_table(spark: SparkSession, lake: Lake, table: Table, source: str) -> None:
    """Create the raw table on first use (append-only, tagged with its source), or refuse a lake
    that belongs to another source."""
    path = lake.raw_table(table.name)
    if lake.has_table(path):
        check_source(lake, path, source)
        if not _feeds_changes(lake, path):  # a lake made before the clean layer read the feed
            retry_conflicts(f"change feed on {path}", lambda: spark.sql(
                f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('{CHANGE_FEED}' = 'true')"))
        return
    sql = (
        f"CREATE TABLE IF NOT EXISTS delta.`{path}` ({raw_ddl(table)}) USING DELTA "
        f"TBLPROPERTIES ('delta.appendOnly' = 'true', '{CHANGE_FEED}' = 'true', "
        f"'{SOURCE_PROPERTY}' = '{source.replace(chr(39), '')}')"
    )
    retry_conflicts(f"create {path}", lambda: spark.sql(sql))
    for attempt in range(20):  # another run may be committing the same table's first version
        if lake.has_table(path):
            break
        clock.sleep(0.5 * (attempt + 1))
    check_source(lake, path, source)


def _feeds_changes(lake: Lake, path: str) -> bool:
    table = DeltaTable(lake.delta_uri(path), storage_options=lake.storage_options())
    return table.metadata().configuration.get(CHANGE_FEED) == "true"


def check_source(lake: Lake, path: str, source: str) -> None:
    config = DeltaTable(lake.delta_uri(path), storage_options=lake.storage_options()).metadata().configuration
    owner = config.get(SOURCE_PROPERTY)
    if owner and owner != source:
        raise ForeignSourceError(
            f"the lake at {lake.root} holds the history of source {owner}, not of {source}. "
            "A lake belongs to one source: give this warehouse its own lake (--lake PATH or $CRM_METRICS_LAKE)."
        )


def watermark(spark: SparkSession, lake: Lake, table: str) -> datetime | None:
    """The newest captured `updated_at` of a raw table (None when nothing was captured yet)."""
    value: datetime | None = newest_value(spark, lake, lake.raw_table(table), "updated_at")
    return value


def _select_sql(wh: Warehouse, schema: str, table: Table, since: datetime | None) -> str:
    cols = ", ".join(
        f"CAST({quote_ident(c.name)} AS {sql_type(c.type, wh.dialect)}) AS {quote_ident(c.name)}"
        for c in table.columns
    )
    where = '"updated_at" IS NOT NULL' + ("" if since is None else f' AND "updated_at" >= {wh.placeholder}')
    return f"SELECT {cols} FROM {quote_ident(schema, table.name)} WHERE {where}"


def _frame(spark: SparkSession, folder: Path, table: Table) -> DataFrame:
    """The exported rows as a DataFrame. A local Spark reads the files in place; a cluster or a
    Spark Connect server gets them through the driver (its workers need not share this disk)."""
    schema = ", ".join(f"`{c.name}` {spark_type_ddl(c.type)}" for c in table.columns)
    if not is_remote() and (spark.conf.get("spark.master", "local") or "local").startswith("local"):
        return spark.read.schema(schema).parquet(str(folder))
    return spark.createDataFrame(pq.read_table(folder), schema)


def _null_safe_all(table: Table, left: str, right: str) -> str:
    return " AND ".join(f"{left}.`{c}` <=> {right}.`{c}`" for c in table.column_names)


def _merge(spark: SparkSession, lake: Lake, table: Table, versions: DataFrame, since: datetime | None) -> int:
    """Insert the versions the raw table lacks (equal on every column); returns rows inserted."""
    view = f"_versions_{table.name}_{uuid.uuid4().hex[:12]}"
    versions.createOrReplaceTempView(view)
    prune = "" if since is None else f" AND t.`updated_at` >= TIMESTAMP'{since.isoformat(sep=' ')}'"
    sql = (
        f"MERGE INTO delta.`{lake.raw_table(table.name)}` t USING {view} s "
        f"ON {_null_safe_all(table, 't', 's')} AND NOT t.`{DELETED}`{prune} "
        "WHEN NOT MATCHED THEN INSERT *"
    )
    try:
        out = retry_conflicts(f"extract into {lake.raw_table(table.name)}", lambda: spark.sql(sql).first())
    finally:
        spark.catalog.dropTempView(view)
    return int(out["num_inserted_rows"]) if out is not None else 0


def deletion_time(lake: Lake, snapshot: date) -> datetime:
    """When a deletion found by the run for `snapshot` takes effect: the start of that day, or of
    the day after the newest other snapshot the lake has built, whichever is later. Every snapshot
    built before keeps the row (it was published with it); the run's own snapshot and later ones
    drop it."""
    after = snapshot
    others = [d for d in recorded_snapshots(lake) if d != snapshot]
    if others and max(others) >= snapshot:
        after = max(others) + timedelta(days=1)
    return datetime.combine(after, time())


def _newest_versions(raw: DataFrame, key: list[str]) -> DataFrame:
    """Per key (keys with a null part left out), its newest captured version's time and flag."""
    keyed = raw.where(reduce(lambda a, b: a & b, [F.col(k).isNotNull() for k in key]))
    return keyed.groupBy(*key).agg(F.max(F.struct("updated_at", DELETED)).alias("_last"))


def _bookkeeping(snapshot: date, run_id: str, deleted: bool) -> list[Column]:
    return [F.lit(deleted).alias(DELETED), F.lit(snapshot).cast("date").alias(CAPTURED_FOR), F.lit(run_id).alias(CAPTURED_RUN)]


def _tombstones(lake: Lake, table: Table, newest: DataFrame, current: DataFrame, snapshot: date, run_id: str) -> DataFrame:
    """One tombstone version per key whose newest captured version is live but which the source no
    longer has, timed at deletion_time (and after that version). `newest`: _newest_versions."""
    key = list(table.key)
    gone = newest.where(~F.col("_last").getField(DELETED)).join(current.select(*key).distinct(), key, "left_anti")
    stamp = F.greatest(F.lit(deletion_time(lake, snapshot)), F.col("_last.updated_at") + F.expr("INTERVAL 1 MICROSECOND"))
    rest = [F.lit(None).cast(spark_type_ddl(c.type)).alias(c.name) for c in table.columns if c.name not in (*key, "updated_at")]
    out = gone.select(*[F.col(k) for k in key], stamp.alias("updated_at"), *rest)
    return out.select(*table.column_names, *_bookkeeping(snapshot, run_id, True))


def _revivals(table: Table, newest: DataFrame, current: DataFrame, snapshot: date, run_id: str) -> DataFrame:
    """A key recorded as deleted that is back in the source unchanged (restored from a backup,
    same `updated_at`) gets a version just after its tombstone: later snapshots see it again."""
    key = list(table.key)
    dead = newest.where(F.col("_last").getField(DELETED))
    back = current.join(dead, key, "inner").where(F.col("updated_at") <= F.col("_last.updated_at"))
    revived = back.withColumn("updated_at", F.col("_last.updated_at") + F.expr("INTERVAL 1 MICROSECOND"))
    return revived.select(*table.column_names, *_bookkeeping(snapshot, run_id, False))


def extract(
    spark: SparkSession,
    wh: Warehouse,
    lake: Lake,
    snapshot: date,
    *,
    full_refresh: bool = False,
    run_id: str = "",
    lookback: timedelta = DEFAULT_LOOKBACK,
    source_schema: str = SOURCE_SCHEMA,
) -> ExtractResult:
    """Add to every raw table the versions it has not seen: those updated since its watermark
    minus `lookback`, or all of them on a table's first run or a full refresh (which also records
    tombstones). The snapshot date only labels the capture: what snapshot D sees is decided when
    it is read (latest version updated by the end of D)."""
    result = ExtractResult(snapshot_date=snapshot, full_refresh=full_refresh)
    for t in SOURCE_TABLES:  # every table is checked before anything is written
        result.warnings += check_source_schema(wh, source_schema, t)
    for w in result.warnings:
        log.warning(w)
    source = source_identity(wh.url, source_schema)
    run_id = run_id or f"manual__{snapshot.isoformat()}"
    any_full = False
    for source_table in SOURCE_TABLES:
        table = exported_table(source_table)
        ensure_raw_table(spark, lake, table, source)
        mark = None if full_refresh else watermark(spark, lake, table.name)
        full = mark is None
        any_full = any_full or full
        since: datetime | None = None if mark is None else mark - lookback
        result.watermarks[table.name] = None if mark is None else mark.isoformat()
        with tempfile.TemporaryDirectory(prefix=f"crm-extract-{table.name}-") as tmp:
            folder = Path(tmp)
            result.rows_read[table.name] = wh.export_parquet(
                _select_sql(wh, source_schema, table, since), [] if since is None else [since], table, folder, None
            )
            current = _frame(spark, folder, table)
            versions = current.dropDuplicates().select(*table.column_names, *_bookkeeping(snapshot, run_id, False))
            if full:  # a first capture lands in updated_at ranges: the daily reads by time skip its files
                versions = time_ordered(versions, "updated_at")
            dead: DataFrame | None = None
            if full_refresh:
                newest = _newest_versions(spark.read.format("delta").load(lake.raw_table(table.name)), list(table.key))
                dead = _tombstones(lake, table, newest, current, snapshot, run_id).unionByName(
                    _revivals(table, newest, current, snapshot, run_id)
                ).persist()
                result.tombstones[table.name] = dead.where(F.col(DELETED)).count()
                versions = versions.unionByName(dead)
            try:
                if result.rows_read[table.name] or dead is not None:
                    result.rows[table.name] = _merge(spark, lake, table, versions, since)
                else:
                    result.rows[table.name] = 0  # nothing changed since the watermark
            finally:
                if dead is not None:
                    dead.unpersist()
        log.info("%s.%s: read %s rows (%s), added %s versions", source_schema, table.name,
                 result.rows_read[table.name], "all" if full else f"updated since {since}", result.rows[table.name])
    result.full_refresh = full_refresh or any_full
    log.info("extracted from %s into %s", mask_url(wh.url), lake.root)
    return result
