"""`derived/customer_day`: the customer-day facts of the clean state, moved customer by customer.

Grain: one row per customer per day with any valid order or interaction as of the snapshot the
clean layer holds (jobs.metrics.customer_day). Inputs: the clean orders, order lines and
interactions at the versions a run has just moved them to.

A customer's rows depend only on that customer's clean orders (with their lines) and
interactions, so when the clean layer moves from a base snapshot, only the customers of the
orders and interactions it moved can change: their rows are recomputed and MERGEd (one commit),
the others are kept. Without a base every row is rebuilt. The table's version is recorded with the
clean layer's (jobs.clean_state), so build_marts reads the customer_day of exactly its snapshot.
"""

from __future__ import annotations

from datetime import date
from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.clean_state import CUSTOMER_DAY, MISSING, Record, read_state, rebuild, replace_keys, snapshot_record
from jobs.lake import Lake
from jobs.metrics.customer_day import customer_day
from jobs.metrics.orders import order_facts
from jobs.snapshot_inputs import KeyScope

ORDER_TABLES = ("orders", "order_items", "interactions")


def _clean(spark: SparkSession, lake: Lake, versions: dict[str, int], table: str) -> DataFrame:
    return read_state(spark, lake, f"clean/{table}", versions[f"clean/{table}"])


def customer_day_rows(spark: SparkSession, lake: Lake, versions: dict[str, int],
                      customers: DataFrame | None = None) -> DataFrame:
    """customer_day of the clean tables at `versions`: of every customer, or of `customers` only
    (one column `customer_id`)."""
    orders, items, interactions = (_clean(spark, lake, versions, t) for t in ORDER_TABLES)
    if customers is not None:
        orders = orders.join(customers, "customer_id", "left_semi")
        items = items.join(orders.select("order_id"), "order_id", "left_semi")
        interactions = interactions.join(customers, "customer_id", "left_semi")
    return customer_day(order_facts(orders, items), interactions)


def moved_customers(spark: SparkSession, lake: Lake, base: Record, versions: dict[str, int], scope: KeyScope) -> DataFrame:
    """The customers of every order and interaction the move recomputed, before and after it (an
    order's customer can change, and a row can leave or enter the clean layer)."""
    parts = []
    for state in (base.versions, versions):
        orders = _clean(spark, lake, state, "orders")
        interactions = _clean(spark, lake, state, "interactions")
        order_ids = scope.order_ids.withColumnRenamed("_scope_id", "order_id")
        interaction_ids = scope.interaction_ids.withColumnRenamed("_scope_id", "interaction_id")
        parts.append(orders.join(order_ids, "order_id", "left_semi").select("customer_id"))
        parts.append(interactions.join(interaction_ids, "interaction_id", "left_semi").select("customer_id"))
    return reduce(DataFrame.unionByName, parts).where(F.col("customer_id").isNotNull()).distinct()


def move_customer_day(spark: SparkSession, lake: Lake, base: Record | None, versions: dict[str, int],
                      scope: KeyScope | None) -> int:
    """Move `derived/customer_day` to the clean state at `versions` (one commit, none when no
    customer changed), or rebuild it whole without a usable base. Returns its new version."""
    path = lake.customer_day_table()
    base_version = base.versions.get(CUSTOMER_DAY, MISSING) if base is not None else MISSING
    if base is None or scope is None or base_version == MISSING:
        return rebuild(spark, lake, path, customer_day_rows(spark, lake, versions), CUSTOMER_DAY)
    customers = moved_customers(spark, lake, base, versions, scope).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        rows = customer_day_rows(spark, lake, versions, F.broadcast(customers))
        return replace_keys(spark, lake, path, rows, customers, ["customer_id"], base_version, CUSTOMER_DAY)
    finally:
        customers.unpersist()


def read_customer_day(spark: SparkSession, lake: Lake, snapshot: date) -> DataFrame | None:
    """The customer_day recorded with the snapshot's clean layer (None: recorded without one, as
    the bench's clean layer is; compute it from the clean tables then)."""
    record = snapshot_record(lake, snapshot)
    version = record.versions.get(CUSTOMER_DAY, MISSING) if record is not None else MISSING
    return None if version == MISSING else read_state(spark, lake, CUSTOMER_DAY, version)
