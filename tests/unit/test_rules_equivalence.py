"""latest_versions and the duplicate rule computed in one pass give what the rank window,
dropDuplicates and the collect_set window gave: ties, exact duplicates, null keys, null updated_at."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs.clean.snapshot_inputs import latest_versions, latest_versions_flagged
from jobs.quality import rules
from tests.unit import builders as b

ITEMS = b.ITEMS + ", extract_date date"
ORDERS = b.ORDERS + ", extract_date date"
PARAMS = rules.RuleParams(date(2024, 3, 31), date(2024, 1, 1))


def reference_latest(versions: DataFrame, key: list[str]) -> DataFrame:
    """The previous implementation: rank over the key by updated_at desc, then dropDuplicates."""
    newest = Window.partitionBy(*key).orderBy(F.col("updated_at").desc())
    return versions.withColumn("_rank", F.rank().over(newest)).where("_rank = 1").drop("_rank").dropDuplicates()


def reference_duplicate(df: DataFrame, key: list[str]) -> DataFrame:
    h = F.xxhash64(*[F.col(c) for c in df.columns if c != "extract_date"])
    return df.withColumn("dup", F.size(F.collect_set(h).over(Window.partitionBy(*key, "updated_at"))) > 1)


def same(actual: DataFrame, *expected: DataFrame) -> None:
    """Equal as multisets of rows, values exact; the order of reason codes does not matter."""
    def norm(df: DataFrame) -> DataFrame:
        return df.select(*[F.array_sort(c).alias(c) if c == "reasons" else F.col(c) for c in df.columns])

    for other in expected:
        assertDataFrameEqual(norm(actual), norm(other), rtol=0, atol=0)


def line(oid: str | None, n: int | None, product: str, qty: int, updated: str | None, extracted: str) -> tuple[Any, ...]:
    return (oid, n, product, qty, b.d("10.00"), b.d("4.00"), b.ts(updated) if updated else None, date.fromisoformat(extracted))


@pytest.fixture(scope="module")
def items(spark: Any) -> DataFrame:
    data = [
        # a: updated once; only the newest version stays
        line("a", 1, "p1", 1, "2024-01-01", "2024-01-01"),
        line("a", 1, "p1", 2, "2024-02-01", "2024-02-01"),
        # b: two different rows at the newest updated_at: both stay, both flagged
        line("b", 1, "p1", 1, "2024-01-01", "2024-01-01"),
        line("b", 1, "p1", 2, "2024-03-01", "2024-03-01"),
        line("b", 1, "p2", 2, "2024-03-01", "2024-03-01"),
        # c: an exact duplicate row collapses to one, not flagged
        line("c", 1, "p1", 1, "2024-03-01", "2024-03-01"),
        line("c", 1, "p1", 1, "2024-03-01", "2024-03-01"),
        # d: the same row extracted twice (extract_date differs): both stay, same hash, not flagged
        line("d", 1, "p1", 1, "2024-03-01", "2024-03-01"),
        line("d", 1, "p1", 1, "2024-03-01", "2024-03-02"),
        # e: a tie at an older updated_at is gone with its version
        line("e", 1, "p1", 1, "2024-01-01", "2024-01-01"),
        line("e", 1, "p2", 1, "2024-01-01", "2024-01-01"),
        line("e", 1, "p1", 3, "2024-02-01", "2024-02-01"),
        # f: a null updated_at loses to any timestamp
        line("f", 1, "p1", 1, None, "2024-01-01"),
        line("f", 1, "p1", 2, "2024-01-01", "2024-01-01"),
        # g: every version without updated_at: all stay (two different rows: flagged)
        line("g", 1, "p1", 1, None, "2024-01-01"),
        line("g", 1, "p2", 1, None, "2024-01-02"),
        line("g", 1, "p2", 1, None, "2024-01-02"),
        # null keys: each null-key group is one group
        line(None, 1, "p1", 1, "2024-01-01", "2024-01-01"),
        line(None, 1, "p1", 5, "2024-02-01", "2024-02-01"),
        line(None, 1, "p2", 5, "2024-02-01", "2024-02-01"),
        line("h", None, "p1", 1, "2024-02-01", "2024-02-01"),
        line("h", None, "p1", 1, "2024-03-01", "2024-03-01"),
        line(None, None, "p1", 1, None, "2024-03-01"),
        line(None, None, "p1", 2, None, "2024-03-01"),
        # a different line of the same order is a different key
        line("b", 2, "p1", 7, "2024-01-01", "2024-01-01"),
    ]
    return spark.createDataFrame(data, ITEMS)


KEY = ["order_id", "line_number"]


def test_latest_versions_equals_rank_and_drop_duplicates(items: DataFrame) -> None:
    got = latest_versions(items, KEY)
    assert got.columns == items.columns
    same(got, reference_latest(items, KEY))
    by_key: dict[tuple[Any, ...], int] = {}
    for r in got.collect():
        by_key[(r.order_id, r.line_number)] = by_key.get((r.order_id, r.line_number), 0) + 1
    assert by_key[("b", 1)] == 2 and by_key[("c", 1)] == 1 and by_key[("d", 1)] == 2
    assert by_key[("e", 1)] == 1 and by_key[("f", 1)] == 1 and by_key[("g", 1)] == 2
    assert by_key[(None, 1)] == 2 and by_key[("h", None)] == 1 and by_key[(None, None)] == 2


def test_flag_equals_the_collect_set_window(items: DataFrame) -> None:
    flagged = latest_versions_flagged(items, KEY)
    assert flagged.columns == [*items.columns, rules.DUPLICATE_FLAG]
    expected = reference_duplicate(reference_latest(items, KEY), KEY)
    same(flagged, expected.withColumnRenamed("dup", rules.DUPLICATE_FLAG))
    dup = {(r.order_id, r.line_number) for r in flagged.where(rules.DUPLICATE_FLAG).collect()}
    assert dup == {("b", 1), ("g", 1), (None, 1), (None, None)}


def test_checks_read_the_flag_and_never_output_it(spark: Any, items: DataFrame) -> None:
    products = spark.createDataFrame([("p1", "x", b.d("1"), b.d("1"), b.ts("2024-01-01"))], b.PRODUCTS)
    orders = spark.createDataFrame(
        [
            (*b.order("a", "c1", "2024-01-05 10:00:00", "10.00"), date(2024, 1, 5)),
            # two different versions at the same updated_at: duplicate, its lines quarantined
            (*b.order("b", "c1", "2024-01-05 10:00:00", "10.00"), date(2024, 1, 5)),
            (*b.order("b", "c1", "2024-01-05 10:00:00", "20.00"), date(2024, 1, 6)),
            # the same version extracted twice: no duplicate
            (*b.order("c", "c1", "2024-01-05 10:00:00", "10.00"), date(2024, 1, 5)),
            (*b.order("c", "c1", "2024-01-05 10:00:00", "10.00"), date(2024, 1, 6)),
            (*b.order(None, "c1", "2024-01-05 10:00:00", "10.00"), date(2024, 1, 5)),  # type: ignore[arg-type]
            (*b.order("g", "nobody", "2024-01-05 10:00:00", "10.00"), date(2024, 1, 5)),
        ],
        ORDERS,
    )
    customers = spark.createDataFrame([b.customer("c1", "2023-12-01 00:00:00", "organic")], b.CUSTOMERS)

    old_orders = rules.check_orders(reference_latest(orders, ["order_id"]), customers, PARAMS)
    new_orders = rules.check_orders(latest_versions_flagged(orders, ["order_id"]), customers, PARAMS)
    plain_orders = rules.check_orders(latest_versions(orders, ["order_id"]), customers, PARAMS)
    assert new_orders.columns == plain_orders.columns == [*orders.columns, "reasons"]
    same(new_orders, old_orders, plain_orders)
    dup = {r.order_id for r in new_orders.where(F.array_contains("reasons", "duplicate_order_id")).collect()}
    assert dup == {"b"}

    old_items = rules.check_order_items(reference_latest(items, KEY), old_orders, products)
    new_items = rules.check_order_items(latest_versions_flagged(items, KEY), new_orders, products)
    assert new_items.columns == [*items.columns, "reasons"]
    same(new_items, old_items)
    quarantined = {r.order_id for r in new_items.where(F.array_contains("reasons", "order_quarantined")).collect()}
    assert quarantined == {"b", "g"}  # g: its order has an unknown customer

    interactions = spark.createDataFrame(
        [
            ("i1", "c1", b.ts("2024-02-01"), "survey", b.d("1.00"), 3, b.ts("2024-02-01"), date(2024, 2, 1)),
            ("i1", "c1", b.ts("2024-02-01"), "survey", b.d("1.00"), 4, b.ts("2024-02-01"), date(2024, 2, 1)),
            ("i2", "c1", b.ts("2024-02-01"), "survey", b.d("1.00"), None, None, date(2024, 2, 1)),
        ],
        b.INTERACTIONS + ", extract_date date",
    )
    old_i = rules.check_interactions(reference_latest(interactions, ["interaction_id"]), customers, PARAMS)
    new_i = rules.check_interactions(latest_versions_flagged(interactions, ["interaction_id"]), customers, PARAMS)
    assert new_i.columns == [*interactions.columns, "reasons"]
    same(new_i, old_i)
    assert {r.interaction_id for r in new_i.where(F.array_contains("reasons", "duplicate_interaction_id")).collect()} == {"i1"}


def test_the_flag_is_ignored_in_the_row_hash(items: DataFrame) -> None:
    """A frame that carries the flag hashes its rows as the same frame without it."""
    flagged = latest_versions_flagged(items, KEY)
    a = flagged.select(rules.row_hash(flagged).alias("h")).collect()
    plain = flagged.drop(rules.DUPLICATE_FLAG)
    assert a == plain.select(rules.row_hash(plain).alias("h")).collect()


def test_load_inputs_matches_the_previous_pipeline_and_releases_its_cache(spark: Any, tmp_path: Any) -> None:
    from pathlib import Path

    from pyspark import StorageLevel

    from jobs.clean.snapshot_inputs import current_tables, load_inputs, read_raw
    from jobs.platform.lake import Lake

    lake = Lake.at(Path(tmp_path))
    snap = date(2024, 3, 31)
    orders = [
        (*b.order("a", "c1", "2024-01-05 10:00:00", "10.00"), date(2024, 1, 5)),
        (*b.order("b", "c1", "2024-01-05 10:00:00", "10.00"), date(2024, 1, 5)),
        (*b.order("b", "c1", "2024-01-05 10:00:00", "20.00"), date(2024, 1, 6)),
        (*b.order("c", "c1", "2024-01-05 10:00:00", "10.00"), date(2024, 1, 5)),
        (*b.order("c", "c1", "2024-01-05 10:00:00", "10.00"), date(2024, 1, 6)),
    ]
    items = [line(o, 1, "p1", 1, "2024-01-05", "2024-01-05") for o in ("a", "b", "c", "z")]
    tables = {
        "orders": spark.createDataFrame(orders, ORDERS),
        "order_items": spark.createDataFrame(items, ITEMS),
        "interactions": spark.createDataFrame(
            [("i1", "c1", b.ts("2024-02-01"), "survey", b.d("1.00"), 3, b.ts("2024-02-01"), date(2024, 2, 1))],
            b.INTERACTIONS + ", extract_date date",
        ),
        "customers": spark.createDataFrame([b.customer("c1", "2023-12-01 00:00:00", "organic")], b.CUSTOMERS).withColumn(
            "extract_date", F.lit(snap)
        ),
        "products": spark.createDataFrame([("p1", "x", b.d("1"), b.d("1"), b.ts("2024-01-01"))], b.PRODUCTS).withColumn(
            "extract_date", F.lit(snap)
        ),
        "marketing_spend": spark.createDataFrame([b.spend("2024-01-01", "organic", "1.00")], b.SPEND).withColumn(
            "extract_date", F.lit(snap)
        ),
    }
    for name, df in tables.items():
        # raw history as the extract writes it: the capture date in the bookkeeping columns
        (df.withColumn("_deleted", F.lit(False)).withColumnRenamed("extract_date", "_captured_for")
         .withColumn("_captured_run", F.lit("test")).write.format("delta").save(lake.raw_table(name)))

    inputs = load_inputs(spark, lake, snap, PARAMS)
    current = current_tables(spark, lake, snap)
    customers, products = current["customers"], current["products"]
    old_orders = rules.check_orders(reference_latest(read_raw(spark, lake, "orders", snap).drop("_deleted"), ["order_id"]), customers, PARAMS)
    expected = {
        "orders": old_orders,
        "order_items": rules.check_order_items(reference_latest(read_raw(spark, lake, "order_items", snap).drop("_deleted"), KEY), old_orders, products),
        "interactions": rules.check_interactions(
            reference_latest(read_raw(spark, lake, "interactions", snap).drop("_deleted"), ["interaction_id"]), customers, PARAMS
        ),
    }
    for name, df in inputs.checked().items():
        assert df.columns == expected[name].columns
        same(df, expected[name])
    inputs.persist()  # already-persisted orders are left as they are
    assert all(df.storageLevel == StorageLevel.MEMORY_AND_DISK for df in inputs.checked().values())
    inputs.release()
    frames = [*inputs.checked().values(), inputs.customers, inputs.products, inputs.marketing_spend]
    assert all(df.storageLevel == StorageLevel.NONE for df in frames)
