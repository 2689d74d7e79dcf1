"""The keys whose clean rows can differ between a recorded snapshot S and the snapshot D a run builds.

Grain: one row per key (`_scope_id`): the order ids (an order with all its lines) and the
interaction ids a run recomputes, and per current-state table (customers, products, marketing
spend) the keys it replaces. Inputs: the raw history, the base record (S and the raw tables'
versions its build had read) and the current-state tables as of D.

A key's visible versions (jobs.clean.snapshot_inputs.read_raw) can differ between S and D only through
a version updated between the two days, a version of an entity that came to exist in between, or
a version captured after the base's build (read from the raw tables' change feed); every other
key keeps its base rows (`changed_versions` says exactly which). A row's
checks also read other tables, so the scope adds the orders and interactions of customers who
appeared or vanished between S and D, and the orders whose lines name a product that did.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import reduce

from deltalake import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.clean.snapshot_inputs import CURRENT, EVENT_TIME, KeyScope
from jobs.ingest.extract import CHANGE_FEED
from jobs.platform.lake import Lake
from jobs.platform.state_tables import MISSING, Record, read_state
from schemas.source import SOURCE_BY_NAME, SOURCE_TABLES

SOURCES = tuple(t.name for t in SOURCE_TABLES)


def null_safe_match(left: DataFrame, right: DataFrame, key: list[str]) -> Column:
    return reduce(lambda a, b: a & b, [left[k].eqNullSafe(right[k]) for k in key])


def feeds_changes(lake: Lake, base: Record) -> bool:
    """Every raw table keeps its change feed from the base's build on (a lake made before the
    feed was switched on is rebuilt whole once)."""
    for table in SOURCES:
        version = base.raw_versions.get(table, MISSING)
        path = lake.raw_table(table)
        if not lake.has_table(path):
            return False
        at = DeltaTable(lake.delta_uri(path), version=max(version, 0), storage_options=lake.storage_options())
        now = DeltaTable(lake.delta_uri(path), storage_options=lake.storage_options())
        if any(t.metadata().configuration.get(CHANGE_FEED) != "true" for t in (at, now)):
            return False
    return True


def changed_versions(spark: SparkSession, lake: Lake, table: str, base: Record, snapshot: date, raw_version: int) -> DataFrame:
    """The raw versions whose key may be seen differently at the base's snapshot S and at D.

    With X the earlier and Y the later of the two days, a key's visible versions can differ only
    through (a) a version updated from the start of X to the end of Y, (b) a later version of an
    entity that came to exist (its event time) in those days, or (c) a version captured after
    the base's build (the change feed): updated by the end of Y, or a first version of an entity
    that existed by Y and was not already seen by then in the base."""
    x, y = min(base.snapshot, snapshot), max(base.snapshot, snapshot)
    start, end, x_end = (F.lit(datetime.combine(d, time())) for d in (x, y + timedelta(days=1), x + timedelta(days=1)))
    path = lake.raw_table(table)
    raw = spark.read.format("delta").option("versionAsOf", raw_version).load(path)
    updated = F.col("updated_at")
    event = F.col(EVENT_TIME[table]).cast("timestamp") if table in EVENT_TIME else None
    parts = [raw.where((updated >= start) & (updated < end))]
    if event is not None:
        parts.append(raw.where((updated >= end) & (event >= start) & (event < end)))
    base_version = base.raw_versions.get(table, MISSING)
    if raw_version > base_version:
        feed = (spark.read.format("delta").option("readChangeFeed", "true")
                .option("startingVersion", base_version + 1).option("endingVersion", raw_version).load(path)
                .where(F.col("_change_type") == "insert").select(*raw.columns))
        parts.append(feed.where(updated < end))
        later = feed.where((updated >= end) & (event < end if event is not None else F.lit(True)))
        key = list(SOURCE_BY_NAME[table].key)
        seen = _base_rows(spark, lake, table, base).where(updated < x_end).select(*key)
        parts.append(later.join(seen, null_safe_match(later, seen, key), "left_anti"))
    return reduce(DataFrame.unionByName, parts)


def _base_rows(spark: SparkSession, lake: Lake, table: str, base: Record) -> DataFrame:
    """The base's clean and rejected rows of a table (its latest visible versions at S)."""
    frames = [read_state(spark, lake, f"clean/{table}", base.versions[f"clean/{table}"])]
    rejected = base.versions.get(f"rejected/{table}", MISSING)
    if rejected != MISSING:
        frames.append(read_state(spark, lake, f"rejected/{table}", rejected).drop("reasons"))
    key = list(SOURCE_BY_NAME[table].key)
    return reduce(DataFrame.unionByName, [f.select(*key, "updated_at") for f in frames])


def _moved(keys: DataFrame, now: DataFrame, before: DataFrame, key: list[str]) -> DataFrame:
    """The keys among `keys` present in exactly one of `now` and `before`."""
    in_now = keys.join(now.select(*key).distinct(), key, "left_semi")
    in_before = keys.join(before.select(*key).distinct(), key, "left_semi")
    return in_now.subtract(in_before).unionByName(in_before.subtract(in_now))


def _ids(df: DataFrame, column: str) -> DataFrame:
    return df.select(F.col(column).alias("_scope_id"))


def changed_scope(
    spark: SparkSession, lake: Lake, base: Record, snapshot: date, current: dict[str, DataFrame], raw: dict[str, int]
) -> tuple[KeyScope, dict[str, DataFrame]]:
    """The KeyScope to recompute for D from the base, and the changed keys of each current-state
    table (persisted: release with `release_scope`). `raw`: the raw tables' versions this run reads."""
    latest = {t: lake.raw_table(t) for t in SOURCES}
    versions = {t: changed_versions(spark, lake, t, base, snapshot, raw[t]) for t in latest}
    current_keys = {
        t: versions[t].select(*SOURCE_BY_NAME[t].key).distinct().persist(StorageLevel.MEMORY_AND_DISK) for t in CURRENT
    }

    def moved(table: str) -> DataFrame:
        key = list(SOURCE_BY_NAME[table].key)
        before = read_state(spark, lake, f"clean/{table}", base.versions[f"clean/{table}"])
        return _moved(current_keys[table], current[table], before, key)

    customers, products = F.broadcast(moved("customers")), F.broadcast(moved("products"))
    raw_orders = spark.read.format("delta").load(latest["orders"])
    raw_items = spark.read.format("delta").load(latest["order_items"])
    raw_interactions = spark.read.format("delta").load(latest["interactions"])
    order_ids = reduce(DataFrame.unionByName, [
        _ids(versions["orders"], "order_id"),
        _ids(versions["order_items"], "order_id"),
        _ids(raw_orders.join(customers, "customer_id", "left_semi"), "order_id"),
        _ids(raw_items.join(products, "product_id", "left_semi"), "order_id"),
    ]).distinct().persist(StorageLevel.MEMORY_AND_DISK)
    interaction_ids = (_ids(versions["interactions"], "interaction_id")
                       .unionByName(_ids(raw_interactions.join(customers, "customer_id", "left_semi"), "interaction_id"))
                       .distinct().persist(StorageLevel.MEMORY_AND_DISK))
    return KeyScope(order_ids, interaction_ids), current_keys


def release_scope(scope: KeyScope | None, current_keys: dict[str, DataFrame]) -> None:
    for df in ([scope.order_ids, scope.interaction_ids] if scope else []) + list(current_keys.values()):
        df.unpersist()
