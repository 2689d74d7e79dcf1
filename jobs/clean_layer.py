"""The clean layer: the latest version of every row as of a snapshot, checked by the rules, kept
up to date day by day instead of re-derived from the whole history.

Layout under the lake root (D = snapshot date, M = event month YYYY-MM):
  clean/<table>/snapshot_date=D/event_month=M/     valid latest rows of orders, order_items, interactions
  clean/<table>/snapshot_date=D/                   customers, products, marketing_spend (the day's copy)
  rejected/<table>/snapshot_date=D/event_month=M/  latest rows that break a rule, with `reasons`
  clean/_state/D.json                              written last: how D was built (its absence = incomplete)

The event month of an order is the month of `ordered_at`, of an interaction the month of
`occurred_at`, and of an order line the month of its order (the earliest, if two rows of the
order disagree); a null or unknown one is the `__HIVE_DEFAULT_PARTITION__` folder. Every metric
row of a customer-day comes from one event month, so a month is the unit that is rebuilt.

A daily run (`prepare`) starts from the previous day's layer when it can: the months that the
day's changed rows touch (their old and new months), the snapshot's own month (rows dated in the
future become valid as the window moves), the unknown-month folder, and the months of rejected
rows whose customer or product now exists are rebuilt from the previous layer's rows plus the
day's versions; every other month is hard-linked from the previous layer. The result equals a
full rebuild: `tests/integration/test_clean_layer.py` checks it day by day against one. It falls
back to a full rebuild whenever that could differ: no usable previous layer, a rewritten raw
partition (a backfill or a full refresh), changed rule parameters, or a customer or product that
disappeared.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial, reduce
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.extract import exported_table
from jobs.lake import Lake
from jobs.parallel import in_parallel
from jobs.quality import rules
from jobs.snapshot_inputs import CLEAN_TABLES, SnapshotInputs, latest_versions, read_raw
from schemas.source import SOURCE_BY_NAME
from schemas.types import spark_schema_ddl

log = logging.getLogger(__name__)

EVENT_MONTH = "event_month"
NULL_MONTH = "__HIVE_DEFAULT_PARTITION__"  # Spark's folder name for a null partition value
VERSIONED = ("orders", "order_items", "interactions")
CURRENT = ("customers", "products", "marketing_spend")
EVENT_TIME = {"orders": "ordered_at", "interactions": "occurred_at"}
# reasons that a newly arrived customer or product can clear
CONTEXT_REASONS = {"orphan_customer_id": "customer_id", "unknown_product": "product_id"}
# the most rows of one table's day of changes whose keys are broadcast in the incremental plan
BROADCAST_MAX_ROWS = 1_000_000


# -- paths ---------------------------------------------------------------------------------------
def clean_partition(lake: Lake, table: str, snapshot: date) -> Path:
    return lake.root / "clean" / table / f"snapshot_date={snapshot.isoformat()}"


def rejected_partition(lake: Lake, table: str, snapshot: date) -> Path:
    return lake.root / "rejected" / table / f"snapshot_date={snapshot.isoformat()}"


def state_path(lake: Lake, snapshot: date) -> Path:
    return lake.root / "clean" / "_state" / f"{snapshot.isoformat()}.json"


def read_state(lake: Lake, snapshot: date) -> dict[str, Any] | None:
    path = state_path(lake, snapshot)
    return json.loads(path.read_text()) if path.exists() else None


def month_dir(month: str | None) -> str:
    return f"{EVENT_MONTH}={month if month is not None else NULL_MONTH}"


def source_schema(table: str) -> str:
    """The Spark DDL of a source table as exported (without the lake's extract_date)."""
    return spark_schema_ddl(exported_table(SOURCE_BY_NAME[table]))


# -- reading -------------------------------------------------------------------------------------
def read_layer(spark: SparkSession, folder: Path, table: str, extra: str = "") -> DataFrame:
    """A month-partitioned folder with its `event_month` column (an absent folder reads as empty)."""
    schema = source_schema(table) + extra + f", `{EVENT_MONTH}` STRING"
    if not folder.exists():
        return spark.createDataFrame([], schema)
    return spark.read.schema(schema).option("basePath", str(folder)).parquet(str(folder))


def read_clean_table(spark: SparkSession, lake: Lake, table: str, snapshot: date) -> DataFrame:
    """One table of the clean layer, as the metrics read it (no bookkeeping columns)."""
    path = clean_partition(lake, table, snapshot)
    if not path.exists():
        raise FileNotFoundError(
            f"clean layer for {table} at {snapshot} is missing ({path}): run the validate_raw step first"
        )
    if table in VERSIONED:
        return read_layer(spark, path, table).drop(EVENT_MONTH)
    return spark.read.schema(source_schema(table)).parquet(str(path))


def _state_frame(spark: SparkSession, lake: Lake, table: str, snapshot: date) -> DataFrame:
    """Every latest row of the layer at `snapshot`, valid ones with empty reasons."""
    valid = read_layer(spark, clean_partition(lake, table, snapshot), table).withColumn(
        "reasons", F.array().cast("array<string>")
    )
    bad = read_layer(spark, rejected_partition(lake, table, snapshot), table, ", `reasons` ARRAY<STRING>")
    return valid.unionByName(bad)


# -- event months --------------------------------------------------------------------------------
def with_event_month(checked: dict[str, DataFrame]) -> dict[str, DataFrame]:
    """Add `event_month` to checked orders, order_items and interactions."""
    orders = checked["orders"].withColumn(EVENT_MONTH, F.date_format("ordered_at", "yyyy-MM"))
    interactions = checked["interactions"].withColumn(EVENT_MONTH, F.date_format("occurred_at", "yyyy-MM"))
    order_month = orders.groupBy(F.col("order_id").alias("_month_oid")).agg(F.min(EVENT_MONTH).alias(EVENT_MONTH))
    items = checked["order_items"]
    items = items.join(order_month, items.order_id == order_month._month_oid, "left").drop("_month_oid")
    return {"orders": orders, "order_items": items, "interactions": interactions}


# -- writing -------------------------------------------------------------------------------------
def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "_")))


def write_months(
    lake: Lake,
    df: DataFrame,
    final: Path,
    previous: Path | None,
    rebuilt: set[str | None] | None,
) -> None:
    """Write `df` (the rows of the rebuilt months, or of all months when `rebuilt` is None) as
    `final`, month folders of `previous` outside `rebuilt` hard-linked in. Staged, then renamed."""
    staging = lake.staging(final.parent)
    try:
        written = staging / "written"
        df.write.mode("overwrite").partitionBy(EVENT_MONTH).parquet(str(written))
        assembled = staging / "data"
        assembled.mkdir()
        for part in written.iterdir():
            if part.is_dir() and part.name.startswith(f"{EVENT_MONTH}="):
                os.rename(part, assembled / part.name)
        if rebuilt is not None and previous is not None and previous.exists():
            keep_dirs = {month_dir(m) for m in rebuilt}
            for part in previous.iterdir():
                if part.is_dir() and part.name.startswith(f"{EVENT_MONTH}=") and part.name not in keep_dirs:
                    target = assembled / part.name
                    target.mkdir()
                    for f in _files(part):
                        os.link(f, target / f.name)
        lake.replace(assembled, final)
    finally:
        lake.clean_staging(final.parent)


def write_plain(lake: Lake, df: DataFrame, final: Path) -> None:
    staging = lake.staging(final.parent)
    try:
        df.coalesce(1).write.mode("overwrite").parquet(str(staging / "data"))
        lake.replace(staging / "data", final)
    finally:
        lake.clean_staging(final.parent)


# -- the raw lake's fingerprint --------------------------------------------------------------------
def raw_fingerprint(lake: Lake, upto: date) -> dict[str, list[list[Any]]]:
    """The files of every raw partition of the versioned tables up to `upto`: a rewritten
    partition (backfill, full refresh) changes it, so the layer built on it is not reused."""
    out: dict[str, list[list[Any]]] = {}
    for table in VERSIONED:
        rows: list[list[Any]] = []
        for day in lake.partition_dates(table):
            if day <= upto:
                part = lake.raw_partition(table, day)
                for f in _files(part):
                    st = f.stat()
                    rows.append([day.isoformat(), f.name, st.st_size, st.st_mtime_ns])
        out[table] = rows
    return out


# -- the plan of one snapshot ----------------------------------------------------------------------
@dataclass
class CleanPlan:
    """What validate_raw checks and then writes. `inputs` holds the checked rows (with
    extract_date and reasons) of the rebuilt months: all of them for a full rebuild."""

    lake: Lake
    snapshot: date
    params: rules.RuleParams
    mode: str  # "full" or "incremental"
    inputs: SnapshotInputs
    months: set[str | None] | None  # rebuilt months; None = all
    base_build: str | None = None
    why_full: str | None = None
    newest_order_update: Any = None
    cached: list[DataFrame] = field(default_factory=list)

    def write(self) -> dict[str, Any]:
        """Write the clean and rejected layers of the snapshot, then the state file (last)."""
        lake, d = self.lake, self.snapshot
        state_path(lake, d).unlink(missing_ok=True)  # until rewritten, the layer counts as incomplete
        prev_day = d - timedelta(days=1)

        def write_table(table: str, checked: DataFrame) -> None:
            df = checked.drop("extract_date").persist(StorageLevel.MEMORY_AND_DISK)
            try:
                write_months(
                    lake, rules.valid(df), clean_partition(lake, table, d),
                    clean_partition(lake, table, prev_day) if self.months is not None else None, self.months,
                )
                write_months(
                    lake, rules.invalid(df), rejected_partition(lake, table, d),
                    rejected_partition(lake, table, prev_day) if self.months is not None else None, self.months,
                )
            finally:
                df.unpersist()

        months = with_event_month(self.inputs.checked())
        in_parallel(
            [partial(write_table, table, df) for table, df in months.items()]
            + [partial(write_plain, lake, getattr(self.inputs, table), clean_partition(lake, table, d)) for table in CURRENT]
        )
        rows = clean_rows(lake, d)
        build_id = uuid.uuid4().hex
        state = {
            "snapshot": d.isoformat(),
            "build_id": build_id,
            "mode": self.mode,
            "why_full": self.why_full,
            "base_build": self.base_build,
            "rebuilt_months": None if self.months is None else sorted(self.months, key=lambda m: m or ""),
            "params": _params_dict(self.params),
            "newest_order_update": str(self.newest_order_update) if self.newest_order_update is not None else None,
            "raw_fingerprint": raw_fingerprint(lake, d),
            "rows": rows,
        }
        tmp = state_path(lake, d).with_suffix(".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        tmp.replace(state_path(lake, d))
        log.info("clean layer %s: %s build, rebuilt months %s", d, self.mode, state["rebuilt_months"] or "all")
        return {"mode": self.mode, "why_full": self.why_full, "rebuilt_months": state["rebuilt_months"], "rows": rows}

    def release(self) -> None:
        self.inputs.release()
        for df in self.cached:
            df.unpersist()


def clean_rows(lake: Lake, snapshot: date) -> dict[str, int]:
    """Rows per table of the snapshot's clean layer, from the Parquet footers (no Spark job)."""
    from jobs.transform import parquet_rows

    return {t: sum(parquet_rows(p) for p in month_folders(clean_partition(lake, t, snapshot))) for t in CLEAN_TABLES}


def month_folders(folder: Path) -> Iterable[Path]:
    if not folder.exists():
        return []
    subs = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(f"{EVENT_MONTH}=")]
    return subs or [folder]


def _params_dict(p: rules.RuleParams) -> dict[str, Any]:
    return {
        "company_start": p.company_start.isoformat(),
        "max_order_amount": p.max_order_amount,
        "currencies": list(p.currencies),
    }


def prepare(spark: SparkSession, lake: Lake, snapshot: date, params: rules.RuleParams, *, full: bool) -> CleanPlan:
    """The checked rows of the snapshot: incrementally from the previous day's layer when that
    gives the same result as a full rebuild, else from the whole raw history."""
    why = "full refresh" if full else _why_not_incremental(spark, lake, snapshot, params)
    if why is None:
        return _incremental(spark, lake, snapshot, params)
    from jobs.snapshot_inputs import load_inputs

    log.info("clean layer %s: full rebuild (%s)", snapshot, why)
    inputs = load_inputs(spark, lake, snapshot, params)
    newest = inputs.orders.agg(F.max("updated_at")).first()
    return CleanPlan(lake, snapshot, params, "full", inputs, None, why_full=why, newest_order_update=newest[0] if newest else None)


def _why_not_incremental(spark: SparkSession, lake: Lake, snapshot: date, params: rules.RuleParams) -> str | None:
    prev_day = snapshot - timedelta(days=1)
    prev = read_state(lake, prev_day)
    if prev is None:
        return f"no complete clean layer for {prev_day}"
    if prev["params"] != _params_dict(params):
        return f"rule parameters changed since {prev_day}: {prev['params']} -> {_params_dict(params)}"
    if prev["raw_fingerprint"] != raw_fingerprint(lake, prev_day):
        return f"raw partitions up to {prev_day} were rewritten since its clean layer was built"
    for table, key in (("customers", "customer_id"), ("products", "product_id")):
        before = clean_partition(lake, table, prev_day)
        if not before.exists():
            return f"no clean {table} for {prev_day}"
        old = spark.read.schema(source_schema(table)).parquet(str(before)).select(key)
        new = read_raw(spark, lake, table, snapshot, exact=True).select(key)
        if not old.join(new, key, "left_anti").isEmpty():
            return f"some {table} of {prev_day} are gone from {snapshot}"
    return None


def _broadcast_if(df: DataFrame, small: bool) -> DataFrame:
    """`df` marked for a broadcast join when it is small (a day's changed keys, see BROADCAST_MAX_ROWS)."""
    return F.broadcast(df) if small else df


def _null_safe_match(left: DataFrame, right: DataFrame, key: list[str], how: str, broadcast: bool = False) -> DataFrame:
    """A semi or anti join on `key` where a null key matches a null key (as the rules group them).
    `broadcast`: `right` is small (a day's changed keys), so the left side, a whole layer, is
    probed in place instead of shuffled and sorted."""
    right = _broadcast_if(right.select(*[F.col(k).alias(f"_match_{k}") for k in key]), broadcast)
    cond = reduce(lambda a, b: a & b, [left[k].eqNullSafe(right[f"_match_{k}"]) for k in key])
    return left.join(right, cond, how)


def in_months(months: set[str | None]) -> Column:
    """`event_month` is one of `months` (None = the unknown-month folder)."""
    named = sorted(m for m in months if m is not None)
    cond = F.col(EVENT_MONTH).isin(named) if named else F.lit(False)
    return cond | F.col(EVENT_MONTH).isNull() if None in months else cond


def _months_of(df: DataFrame) -> set[str | None]:
    return {r[0] for r in df.select(EVENT_MONTH).distinct().collect()}


def _incremental(spark: SparkSession, lake: Lake, d: date, params: rules.RuleParams) -> CleanPlan:
    prev_day = d - timedelta(days=1)
    prev_state = read_state(lake, prev_day)
    assert prev_state is not None
    customers = read_raw(spark, lake, "customers", d, exact=True).drop("extract_date")
    products = read_raw(spark, lake, "products", d, exact=True).drop("extract_date")
    spend = read_raw(spark, lake, "marketing_spend", d, exact=True).drop("extract_date")
    day = {t: read_raw(spark, lake, t, d, exact=True).persist(StorageLevel.MEMORY_AND_DISK) for t in VERSIONED}
    before = {t: _state_frame(spark, lake, t, prev_day) for t in VERSIONED}
    keys = {t: list(SOURCE_BY_NAME[t].key) for t in VERSIONED}
    changed = {t: day[t].select(*keys[t]).distinct() for t in VERSIONED}
    # a day's changed keys are usually a sliver of the layer: broadcast them (at 10M order lines the
    # months lookup went from 12 to 8 s); a bulk update above the limit is left to Spark's planner
    small = {t: day[t].count() <= BROADCAST_MAX_ROWS for t in VERSIONED}

    sources: list[DataFrame] = []  # event months to rebuild, collected in one job
    for t in ("orders", "interactions"):
        sources.append(day[t].select(F.date_format(EVENT_TIME[t], "yyyy-MM").alias(EVENT_MONTH)))
    for t in VERSIONED:  # where the changed keys were
        sources.append(_null_safe_match(before[t].select(*keys[t], EVENT_MONTH), changed[t], keys[t], "left_semi", small[t]))
    # a changed line rebuilds its order's month, old and new
    line_orders = day["order_items"].select("order_id").distinct()
    sources.append(before["orders"].join(_broadcast_if(line_orders, small["order_items"]), "order_id", "left_semi"))
    sources.append(
        day["orders"].join(line_orders, "order_id", "left_semi").select(F.date_format("ordered_at", "yyyy-MM").alias(EVENT_MONTH))
    )
    # rejected rows whose missing customer or product now exists
    for t in VERSIONED:
        for reason, col in CONTEXT_REASONS.items():
            if col not in before[t].columns:
                continue
            ref = customers if col == "customer_id" else products
            flagged = before[t].where(F.array_contains("reasons", reason))
            sources.append(flagged.join(ref.select(col).distinct(), col, "left_semi"))
    found = reduce(DataFrame.unionByName, [df.select(EVENT_MONTH) for df in sources])
    months = {d.strftime("%Y-%m"), None} | _months_of(found)
    months = _close_over_duplicates(before, keys, months)

    candidates: dict[str, DataFrame] = {}
    for t in VERSIONED:
        prev_rows = before[t].where(in_months(months)).drop(EVENT_MONTH, "reasons").withColumn("extract_date", F.lit(None).cast("date"))
        keep = _null_safe_match(prev_rows, changed[t], keys[t], "left_anti", small[t])
        redo = _null_safe_match(prev_rows, changed[t], keys[t], "left_semi", small[t]).unionByName(day[t])
        candidates[t] = keep.unionByName(latest_versions(redo, keys[t]))
    orders_checked = rules.check_orders(candidates["orders"], customers, params)
    inputs = SnapshotInputs(
        orders=orders_checked,
        order_items=rules.check_order_items(candidates["order_items"], orders_checked, products),
        interactions=rules.check_interactions(candidates["interactions"], customers, params),
        customers=customers,
        products=products,
        marketing_spend=spend,
    )
    newest_day = day["orders"].agg(F.max("updated_at")).first()
    stored = prev_state.get("newest_order_update")
    seen = [datetime.fromisoformat(stored) if stored else None, newest_day[0] if newest_day else None]
    newest = max((v for v in seen if v is not None), default=None)
    log.info("clean layer %s: incremental from %s, rebuilding months %s", d, prev_day, sorted(months, key=lambda m: m or ""))
    return CleanPlan(
        lake, d, params, "incremental", inputs, months, base_build=prev_state["build_id"],
        newest_order_update=newest, cached=list(day.values()),
    )


def _close_over_duplicates(before: dict[str, DataFrame], keys: dict[str, list[str]], months: set[str | None]) -> set[str | None]:
    """Rows of one key flagged as duplicates can sit in different months: the duplicate rule needs
    all of them, so a rebuilt month pulls in the other months of its duplicate keys."""
    dup = {
        t: before[t].where(F.exists("reasons", lambda r: r.startswith("duplicate_"))).select(*keys[t], EVENT_MONTH).persist()
        for t in VERSIONED
    }
    try:
        while True:
            pulled = [
                _null_safe_match(rows, rows.where(in_months(months)).select(*keys[t]), keys[t], "left_semi").select(EVENT_MONTH)
                for t, rows in dup.items()
            ]
            grown = months | _months_of(reduce(DataFrame.unionByName, pulled))
            if grown == months:
                return months
            months = grown
    finally:
        for df in dup.values():
            df.unpersist()
