"""Read the lake as of a snapshot date: the latest version of every row, checked by the rules.

Grain of every frame here: one row per source key as of the snapshot (the versioned tables may
keep two rows of one key when they tie on `updated_at`: the duplicate rule flags them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import reduce

from deltalake import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.ingest.extract import DELETED, exported_table
from jobs.platform.lake import Lake
from jobs.platform.state_tables import (
    CLEAN_TABLES,
    MISSING,
    raw_versions,
    read_state,
    rebuild,
    snapshot_record,
    state_tables,
    write_record,
)
from jobs.quality import rules
from schemas.source import SOURCE_BY_NAME


@dataclass
class LakeTables:
    """One DataFrame per table of the clean layer (CLEAN_TABLES)."""

    orders: DataFrame
    order_items: DataFrame
    interactions: DataFrame
    customers: DataFrame
    products: DataFrame
    marketing_spend: DataFrame

    def tables(self) -> dict[str, DataFrame]:
        return {name: getattr(self, name) for name in CLEAN_TABLES}


@dataclass
class SnapshotInputs(LakeTables):
    """Checked latest versions (a `reasons` column; empty = valid) and current-state tables."""

    def checked(self) -> dict[str, DataFrame]:
        return {"orders": self.orders, "order_items": self.order_items, "interactions": self.interactions}

    def persist(self) -> SnapshotInputs:
        """Cache the checked tables: a gate runs many small jobs over them. (load_inputs already
        persists `orders`: the order lines' check reads it.)"""
        for df in self.tables().values():
            if not df.storageLevel.useMemory and not df.storageLevel.useDisk:
                df.persist(StorageLevel.MEMORY_AND_DISK)
        return self

    def release(self) -> None:
        for df in self.tables().values():
            df.unpersist()


@dataclass
class CleanInputs(LakeTables):
    """The valid latest version of every row as of the snapshot: what the metrics read."""


@dataclass
class KeyScope:
    """The keys a run recomputes (one column `_scope_id` each): orders and their lines by
    order_id, interactions by interaction_id. None everywhere else means every key."""

    order_ids: DataFrame
    interaction_ids: DataFrame


def clean_inputs(inputs: SnapshotInputs) -> CleanInputs:
    """Valid rows only, without the lake's bookkeeping columns."""
    return CleanInputs(
        orders=rules.valid(inputs.orders).drop("extract_date"),
        order_items=rules.valid(inputs.order_items).drop("extract_date"),
        interactions=rules.valid(inputs.interactions).drop("extract_date"),
        customers=inputs.customers,
        products=inputs.products,
        marketing_spend=inputs.marketing_spend,
    )


VERSIONED = ("orders", "order_items", "interactions")
CURRENT = ("customers", "products", "marketing_spend")
# the event that makes an entity exist at D although its first captured version is newer
EVENT_TIME = {"orders": "ordered_at", "interactions": "occurred_at", "customers": "signup_at", "marketing_spend": "month"}


def write_clean(lake: Lake, snapshot: date, clean: CleanInputs) -> dict[str, int]:
    """Store valid rows as the whole clean layer of the snapshot (one Delta commit per table, then
    its record; no rejected layer). Returns rows per table."""
    spark = clean.orders.sparkSession
    raw = raw_versions(lake, CLEAN_TABLES)
    versions = {name: MISSING for name in state_tables(lake)}
    for name in CLEAN_TABLES:
        versions[f"clean/{name}"] = rebuild(spark, lake, lake.clean_table(name), getattr(clean, name), f"clean {name}")
    write_record(spark, lake, snapshot, versions, "bench", raw)
    return clean_rows(lake, snapshot)


def _recorded(lake: Lake, snapshot: date, what: str) -> dict[str, int]:
    record = snapshot_record(lake, snapshot)
    if record is None:
        raise FileNotFoundError(f"{what}: no clean layer is recorded for {snapshot} in {lake.root}; "
                                f"run validate_raw for it first (crm-metrics run --date {snapshot})")
    return record.versions


def clean_rows(lake: Lake, snapshot: date) -> dict[str, int]:
    """Rows per table of the snapshot's clean layer, from the Delta log (no Spark job)."""
    versions = _recorded(lake, snapshot, "clean layer")
    out = {}
    for t in CLEAN_TABLES:
        table = DeltaTable(lake.delta_uri(lake.clean_table(t)), version=versions[f"clean/{t}"], storage_options=lake.storage_options())
        out[t] = sum(int(n or 0) for n in table.get_add_actions(flatten=True).column("num_records").to_pylist())
    return out


def read_clean(spark: SparkSession, lake: Lake, snapshot: date) -> CleanInputs:
    """The clean layer recorded for this snapshot (Delta time travel to its recorded versions)."""
    versions = _recorded(lake, snapshot, "clean layer")
    return CleanInputs(**{name: read_state(spark, lake, f"clean/{name}", versions[f"clean/{name}"]) for name in CLEAN_TABLES})


def _within(df: DataFrame, column: str, only: DataFrame | None) -> DataFrame:
    """The rows whose `column` is among `only`'s `_scope_id` (null-safe), or all rows."""
    if only is None:
        return df
    return df.join(F.broadcast(only), df[column].eqNullSafe(only["_scope_id"]), "left_semi")


SCOPE_COLUMN = {"orders": "order_id", "order_items": "order_id", "interactions": "interaction_id"}


def read_raw(spark: SparkSession, lake: Lake, table: str, snapshot: date, only: DataFrame | None = None) -> DataFrame:
    """The versions of a source table visible at snapshot D (one row per captured version), with
    `extract_date` (the day of `updated_at`) and the tombstone flag `_deleted`.

    Visible: updated by the end of D; and, for an entity whose first captured version is newer
    than D but which existed by D (its order placed, customer signed up, interaction occurred,
    spend month begun by D; any product), that earliest version, so a snapshot before the lake's
    first capture still counts every order placed by then (a restated snapshot)."""
    contract = exported_table(SOURCE_BY_NAME[table])
    path = lake.raw_table(table)
    if not lake.has_table(path):
        raise FileNotFoundError(f"no raw table {path}: run the extract step first (crm-metrics run --date {snapshot})")
    raw = spark.read.format("delta").load(path)
    if only is not None:
        raw = _within(raw, SCOPE_COLUMN[table], only)
    key = list(contract.key)
    end = F.lit(datetime.combine(snapshot + timedelta(days=1), time()))
    out: list[Column | str] = [*contract.column_names, F.to_date("updated_at").alias("extract_date"), DELETED]
    if raw.where(F.col("updated_at") >= end).isEmpty():
        # nothing updated after D (a run for the lake's newest day): the visible versions are those
        # updated by then, and no window over every version is needed to find a first one
        return raw.where(F.col("updated_at") < end).select(*out)
    if table == "order_items":
        placed = (_within(spark.read.format("delta").load(lake.raw_table("orders")), "order_id", only)
                  .groupBy(F.col("order_id").alias("_order")).agg(F.min("ordered_at").alias("_event")))
        raw = raw.join(placed, raw.order_id.eqNullSafe(placed._order), "left").drop("_order")
        existed = F.col("_event") < end
    elif table in EVENT_TIME:
        existed = F.col(EVENT_TIME[table]).cast("timestamp") < end
    else:
        existed = F.lit(True)
    first = F.min("updated_at").over(Window.partitionBy(*key))
    visible = (F.col("updated_at") < end) | (
        (F.col("updated_at") == F.col("_first")) & (F.col("_first") >= end) & F.coalesce(existed, F.lit(False))
    )
    return raw.withColumn("_first", first).where(visible).select(*out)


def _as_of(spark: SparkSession, lake: Lake, table: str, snapshot: date) -> DataFrame:
    """A current-state table (customers, products, marketing spend) as of D: one row per key, its
    newest visible version (the latest capture wins a tie); deleted keys left out."""
    key = list(SOURCE_BY_NAME[table].key)
    versions = read_raw(spark, lake, table, snapshot)
    newest = Window.partitionBy(*key).orderBy(F.col("updated_at").desc(), F.col("extract_date").desc())
    return (versions.withColumn("_n", F.row_number().over(newest)).where((F.col("_n") == 1) & ~F.col(DELETED))
            .drop("_n", DELETED, "extract_date"))


def _latest_live(versions: DataFrame, key: list[str]) -> DataFrame:
    """latest_versions_flagged without the keys whose newest version is a tombstone."""
    return latest_versions_flagged(versions, key).where(~F.col(DELETED)).drop(DELETED)


def latest_versions(versions: DataFrame, key: list[str]) -> DataFrame:
    """The newest version of each key (by updated_at). Two different rows with the same key and
    updated_at both stay, so the duplicate rule can flag them; exact duplicate rows collapse to
    one. A key whose versions all have a null updated_at keeps them all; a null key is one group."""
    return latest_versions_flagged(versions, key).drop(rules.DUPLICATE_FLAG)


def latest_versions_flagged(versions: DataFrame, key: list[str]) -> DataFrame:
    """`latest_versions` plus the duplicate rule's flag (column rules.DUPLICATE_FLAG, read and
    dropped by the rules' checks): true when two different rows (extract_date aside, by the hash
    the rule uses) share the key and the newest updated_at.

    One aggregation per key, no window: the newest row (`max_by` over (updated_at, row hash)),
    and the largest and smallest hashes at the newest updated_at (`max` over (updated_at, hash)
    and over (updated_at, NOT hash): a null updated_at sorts first in a struct, so it is the newest
    only when every version has it). A key with exactly one distinct row at its newest
    updated_at (nearly every key) is that row; the keys with several (ties, the same version
    extracted twice) get theirs from a join back, exact duplicate rows collapsed."""
    cols = versions.columns
    t = F.col("updated_at")
    row_hash, whole = rules.row_hash(versions), F.xxhash64(*[F.col(c) for c in cols])

    # each struct's value field has its own name: Sail names an aggregate by its expression text
    def newest(column: str) -> Column:  # (newest updated_at, largest value of `column` at it)
        return F.max(F.struct(t.alias("t"), F.col(column).alias(f"hi{column}")))

    def newest_smallest(column: str) -> Column:  # (newest updated_at, NOT smallest value at it)
        return F.max(F.struct(t.alias("t"), F.bitwise_not(F.col(column)).alias(f"lo{column}")))

    per_key = versions.withColumn("_h", row_hash).withColumn("_w", whole).groupBy(*key).agg(
        F.max_by(F.struct(*[F.col(c) for c in cols]), F.struct(t, F.col("_w"))).alias("_row"),
        newest("_w").alias("_w_hi"), newest_smallest("_w").alias("_w_lo"),
        newest("_h").alias("_h_hi"), newest_smallest("_h").alias("_h_lo"),
    ).select(
        *[F.col(k).alias(f"_k_{i}") for i, k in enumerate(key)], "_row", F.col("_w_hi.t").alias("_t"),
        (F.col("_w_hi.hi_w") == F.bitwise_not(F.col("_w_lo.lo_w"))).alias("_single"),
        (F.col("_h_hi.hi_h") != F.bitwise_not(F.col("_h_lo.lo_h"))).alias(rules.DUPLICATE_FLAG),
    )
    single = per_key.where(F.col("_single")).select("_row.*", rules.DUPLICATE_FLAG)
    several = per_key.where(~F.col("_single"))
    match = reduce(lambda a, b: a & b, [versions[k].eqNullSafe(several[f"_k_{i}"]) for i, k in enumerate(key)])  # renamed keys
    tied = (versions.join(F.broadcast(several), match & versions["updated_at"].eqNullSafe(several["_t"]), "inner")
            .select(*[versions[c] for c in cols], several[rules.DUPLICATE_FLAG]).dropDuplicates())
    return single.unionByName(tied)


def company_start_default(customers: DataFrame) -> date | None:
    """Earliest customer signup: nothing can be bought before the first customer existed."""
    row = customers.agg(F.min(F.to_date("signup_at"))).first()
    return row[0] if row else None


def current_tables(spark: SparkSession, lake: Lake, snapshot: date) -> dict[str, DataFrame]:
    """Customers, products and marketing spend as of the snapshot."""
    return {t: _as_of(spark, lake, t, snapshot) for t in CURRENT}


def load_inputs(spark: SparkSession, lake: Lake, snapshot: date, params: rules.RuleParams,
                scope: KeyScope | None = None, current: dict[str, DataFrame] | None = None) -> SnapshotInputs:
    """The as-of-snapshot view of the lake, rules applied: every key, or the keys of `scope`
    (orders, lines and interactions; the current-state tables are always whole). `orders` comes
    persisted: call `release()` when done."""
    current = current or current_tables(spark, lake, snapshot)
    customers, products, spend = current["customers"], current["products"], current["marketing_spend"]
    order_ids = scope.order_ids if scope else None
    orders = _latest_live(read_raw(spark, lake, "orders", snapshot, order_ids), ["order_id"])
    items = _latest_live(read_raw(spark, lake, "order_items", snapshot, order_ids), ["order_id", "line_number"])
    interactions = _latest_live(read_raw(spark, lake, "interactions", snapshot, scope.interaction_ids if scope else None),
                                ["interaction_id"])
    # persisted (SnapshotInputs.release frees it): check_order_items reads the orders' state, which
    # would otherwise run the orders' scan, latest version and rules a second time
    orders_checked = rules.check_orders(orders, customers, params).persist(StorageLevel.MEMORY_AND_DISK)
    return SnapshotInputs(
        orders=orders_checked,
        order_items=rules.check_order_items(items, orders_checked, products),
        interactions=rules.check_interactions(interactions, customers, params),
        customers=customers,
        products=products,
        marketing_spend=spend,
    )


def daily_version_counts(spark: SparkSession, lake: Lake, snapshot: date, days: int) -> dict[date, int]:
    """Versions of orders, order lines and interactions updated on each of the `days` days before
    the snapshot (the raw gate's row-count band)."""
    start = datetime.combine(snapshot - timedelta(days=days), time())
    end = datetime.combine(snapshot, time())
    frames = [
        spark.read.format("delta").load(lake.raw_table(t))
        .where(~F.col(DELETED) & (F.col("updated_at") >= F.lit(start)) & (F.col("updated_at") < F.lit(end)))
        .select(F.to_date("updated_at").alias("day"))
        for t in VERSIONED
    ]
    union = frames[0].unionByName(frames[1]).unionByName(frames[2])
    return {r["day"]: int(r["count"]) for r in union.groupBy("day").count().collect()}
