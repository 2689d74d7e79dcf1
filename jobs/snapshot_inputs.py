"""Read the lake as of a snapshot date: the latest version of every row, checked by the rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.extract import exported_table
from jobs.lake import Lake
from jobs.quality import rules
from schemas.source import SOURCE_BY_NAME
from schemas.types import spark_schema_ddl


@dataclass
class SnapshotInputs:
    """Checked latest versions (a `reasons` column; empty = valid) and current-state tables."""

    orders: DataFrame
    order_items: DataFrame
    interactions: DataFrame
    customers: DataFrame
    products: DataFrame
    marketing_spend: DataFrame

    def checked(self) -> dict[str, DataFrame]:
        return {"orders": self.orders, "order_items": self.order_items, "interactions": self.interactions}

    def persist(self) -> SnapshotInputs:
        """Cache the checked tables: a gate runs many small jobs over them. (load_inputs already
        persists `orders`: the order lines' check reads it.)"""
        for df in (*self.checked().values(), self.customers, self.products, self.marketing_spend):
            if not df.storageLevel.useMemory and not df.storageLevel.useDisk:
                df.persist(StorageLevel.MEMORY_AND_DISK)
        return self

    def release(self) -> None:
        for df in (*self.checked().values(), self.customers, self.products, self.marketing_spend):
            df.unpersist()


@dataclass
class CleanInputs:
    """The valid latest version of every row as of the snapshot: what the metrics read."""

    orders: DataFrame
    order_items: DataFrame
    interactions: DataFrame
    customers: DataFrame
    products: DataFrame
    marketing_spend: DataFrame

    def tables(self) -> dict[str, DataFrame]:
        return {name: getattr(self, name) for name in CLEAN_TABLES}


CLEAN_TABLES = ("orders", "order_items", "interactions", "customers", "products", "marketing_spend")


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


def write_clean(lake: Lake, snapshot: date, clean: CleanInputs) -> dict[str, int]:
    """Store valid rows as the clean layer of the snapshot (layout in jobs.clean_layer), staged
    and renamed into place. Without the rejected rows and the state file, so a later day rebuilds
    in full from it; the pipeline writes the layer with jobs.clean_layer.CleanPlan.write."""
    from jobs.clean_layer import (
        CURRENT,
        clean_partition,
        clean_rows,
        with_event_month,
        write_months,
        write_plain,
    )

    versioned = with_event_month({"orders": clean.orders, "order_items": clean.order_items, "interactions": clean.interactions})
    for name, df in versioned.items():
        write_months(lake, df, clean_partition(lake, name, snapshot), None, None)
    for name in CURRENT:
        write_plain(lake, getattr(clean, name), clean_partition(lake, name, snapshot))
    return clean_rows(lake, snapshot)


def read_clean(spark: SparkSession, lake: Lake, snapshot: date) -> CleanInputs:
    """The clean layer written by the raw gate for this snapshot."""
    from jobs.clean_layer import read_clean_table

    return CleanInputs(**{name: read_clean_table(spark, lake, name, snapshot) for name in CLEAN_TABLES})


def read_raw(spark: SparkSession, lake: Lake, table: str, upto: date, exact: bool = False) -> DataFrame:
    """Every version of a table in partitions up to `upto` (or exactly `upto`), with extract_date."""
    contract = exported_table(SOURCE_BY_NAME[table])
    schema = spark_schema_ddl(contract) + ", `extract_date` DATE"
    path = lake.raw_table(table)
    if not path.exists() or not any(p.name.startswith("extract_date=") for p in path.iterdir()):
        return spark.createDataFrame([], schema)
    df = spark.read.schema(schema).option("basePath", str(path)).parquet(str(path))
    cond = F.col("extract_date") == F.lit(upto) if exact else F.col("extract_date") <= F.lit(upto)
    return df.where(cond)


def latest_versions(versions: DataFrame, key: list[str]) -> DataFrame:
    """The newest version of each key (by updated_at). Two different rows with the same key and
    updated_at both stay, so the duplicate rule can flag them; exact duplicate rows collapse to
    one. A key whose versions all have a null updated_at keeps them all; a null key is one group."""
    return latest_versions_flagged(versions, key).drop(rules.DUPLICATE_FLAG)


def latest_versions_flagged(versions: DataFrame, key: list[str]) -> DataFrame:
    """`latest_versions` plus the duplicate rule's flag (column rules.DUPLICATE_FLAG, read and
    dropped by the rules' checks): true when two different rows (extract_date aside, by the hash
    the rule uses) share the key and the newest updated_at.

    One window over the key (one shuffle, one sort), rows ordered by updated_at (newest first),
    row hash, then every column: the newest updated_at and the largest hash at it are
    `max(struct(updated_at, hash))` over the key (a null updated_at sorts first in a struct, so it
    is the newest only when every version has it, as with rank() over a descending order), the
    smallest hash at it is the first row's, and an exact duplicate row is the row just before it."""
    row_hash = rules.row_hash(versions)
    rest = [c for c in versions.columns if c not in key and c != "updated_at"]
    by_key = Window.partitionBy(*key).orderBy(F.col("updated_at").desc_nulls_last(), F.col("_row_hash"), *rest)
    whole = by_key.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    row = F.struct(*[F.col(c) for c in versions.columns])
    ranked = versions.withColumn("_row_hash", row_hash).select(
        *versions.columns,
        F.max(F.struct(F.col("updated_at").alias("t"), F.col("_row_hash").alias("h"))).over(whole).alias("_newest"),
        F.first("_row_hash").over(whole).alias("_newest_min_hash"),
        F.lag(row).over(by_key).alias("_previous"),
    )
    newest = F.col("updated_at").eqNullSafe(F.col("_newest.t"))
    repeated = row.eqNullSafe(F.col("_previous"))
    return ranked.where(newest & ~repeated).select(
        *versions.columns, (F.col("_newest.h") != F.col("_newest_min_hash")).alias(rules.DUPLICATE_FLAG)
    )


def company_start_default(customers: DataFrame) -> date | None:
    """Earliest customer signup: nothing can be bought before the first customer existed."""
    row = customers.agg(F.min(F.to_date("signup_at"))).first()
    return row[0] if row else None


def load_inputs(spark: SparkSession, lake: Lake, snapshot: date, params: rules.RuleParams) -> SnapshotInputs:
    """The as-of-snapshot view of the lake, rules applied. `orders` comes persisted: call
    `release()` when done."""
    customers = read_raw(spark, lake, "customers", snapshot, exact=True).drop("extract_date")
    products = read_raw(spark, lake, "products", snapshot, exact=True).drop("extract_date")
    spend = read_raw(spark, lake, "marketing_spend", snapshot, exact=True).drop("extract_date")
    orders = latest_versions_flagged(read_raw(spark, lake, "orders", snapshot), ["order_id"])
    items = latest_versions_flagged(read_raw(spark, lake, "order_items", snapshot), ["order_id", "line_number"])
    interactions = latest_versions_flagged(read_raw(spark, lake, "interactions", snapshot), ["interaction_id"])
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
