"""`derived/customer_day`: the customer-day facts of the clean state, moved day by day.

Grain: one row per customer per day with any valid order or interaction as of the snapshot the
clean layer holds (jobs.metrics.customer_day). Inputs: the clean orders, order lines and
interactions at the versions a run has just moved them to.

A row (customer c, day d) depends only on c's clean orders placed on d (with their lines) and
c's interactions on d. When the clean layer moves from a base snapshot, only the (customer, day)
pairs of the orders and interactions it moved, before and after the move, can change: those rows
are recomputed and MERGEd (one commit), the others kept. Without a base every row is rebuilt.
The table's version is recorded with the clean layer's (jobs.platform.state_tables), so build_marts reads
the customer_day of exactly its snapshot.

The table keeps deletion vectors: a day's MERGE marks the replaced rows deleted instead of
rewriting every file of millions of rows (only Spark reads this table; delta-rs cannot yet).
"""

from __future__ import annotations

from datetime import date
from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.clean.snapshot_inputs import KeyScope
from jobs.metrics.customer_day import customer_day
from jobs.metrics.orders import order_facts
from jobs.platform.lake import Lake
from jobs.platform.state_tables import (
    CUSTOMER_DAY,
    MISSING,
    TIME_ORDER,
    Record,
    read_state,
    rebuild,
    replace_keys,
    snapshot_record,
)

KEY = ["customer_id", "activity_date"]
TABLE_PROPERTIES = {"delta.enableDeletionVectors": "true"}


# the day of an order and of an interaction, as customer_day (through order_facts) takes it
def _order_day() -> Column:
    return F.to_date("ordered_at")


def _interaction_day() -> Column:
    return F.to_date("occurred_at")


def _clean(spark: SparkSession, lake: Lake, versions: dict[str, int], table: str) -> DataFrame:
    return read_state(spark, lake, f"clean/{table}", versions[f"clean/{table}"])


def _on_days(df: DataFrame, day: Column, keys: DataFrame) -> DataFrame:
    """The rows whose (customer_id, day) is among `keys`."""
    return df.withColumn("activity_date", day).join(keys, KEY, "left_semi").drop("activity_date")


def customer_day_rows(spark: SparkSession, lake: Lake, versions: dict[str, int],
                      keys: DataFrame | None = None) -> DataFrame:
    """customer_day of the clean tables at `versions`: every row, or the rows of `keys`
    (customer_id, activity_date) only."""
    orders, items, interactions = (_clean(spark, lake, versions, t) for t in ("orders", "order_items", "interactions"))
    if keys is not None:
        orders = _on_days(orders, _order_day(), keys)
        items = items.join(orders.select("order_id"), "order_id", "left_semi")
        interactions = _on_days(interactions, _interaction_day(), keys)
    return customer_day(order_facts(orders, items), interactions)


def moved_days(spark: SparkSession, lake: Lake, base: Record, versions: dict[str, int], scope: KeyScope) -> DataFrame:
    """The (customer_id, activity_date) of every order and interaction the move recomputed, in
    the base and in the new clean state (an order's customer or day can change, and a row can
    leave or enter the clean layer)."""
    order_ids = scope.order_ids.withColumnRenamed("_scope_id", "order_id")
    interaction_ids = scope.interaction_ids.withColumnRenamed("_scope_id", "interaction_id")
    parts = []
    for state in (base.versions, versions):
        orders = _clean(spark, lake, state, "orders").join(order_ids, "order_id", "left_semi")
        interactions = _clean(spark, lake, state, "interactions").join(interaction_ids, "interaction_id", "left_semi")
        parts.append(orders.select("customer_id", _order_day().alias("activity_date")))
        parts.append(interactions.select("customer_id", _interaction_day().alias("activity_date")))
    return reduce(DataFrame.unionByName, parts).where(F.col("customer_id").isNotNull()).distinct()


def move_customer_day(spark: SparkSession, lake: Lake, base: Record | None, versions: dict[str, int],
                      scope: KeyScope | None) -> int:
    """Move `derived/customer_day` to the clean state at `versions` (one commit, none when no
    customer-day changed), or rebuild it whole without a usable base. Returns its new version."""
    path = lake.customer_day_table()
    base_version = base.versions.get(CUSTOMER_DAY, MISSING) if base is not None else MISSING
    if base is None or scope is None or base_version == MISSING:
        rows = customer_day_rows(spark, lake, versions)
        return rebuild(spark, lake, path, rows, CUSTOMER_DAY, TABLE_PROPERTIES, order_by=TIME_ORDER[CUSTOMER_DAY])
    keys = moved_days(spark, lake, base, versions, scope).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        rows = customer_day_rows(spark, lake, versions, F.broadcast(keys))
        return replace_keys(spark, lake, path, rows, keys, KEY, base_version, CUSTOMER_DAY)
    finally:
        keys.unpersist()


def read_customer_day(spark: SparkSession, lake: Lake, snapshot: date) -> DataFrame | None:
    """The customer_day recorded with the snapshot's clean layer (None: recorded without one, as
    the bench's clean layer is; compute it from the clean tables then)."""
    record = snapshot_record(lake, snapshot)
    version = record.versions.get(CUSTOMER_DAY, MISSING) if record is not None else MISSING
    return None if version == MISSING else read_state(spark, lake, CUSTOMER_DAY, version)
