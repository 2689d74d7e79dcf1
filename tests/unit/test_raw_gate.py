"""Gate 1's Great Expectations suites are a second check, independent of the row rules: a row the
rules let through (an empty `reasons`) that breaks the contract fails the gate, naming the
expectation and the bad value. The control case passes every suite."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.clean.snapshot_inputs import SnapshotInputs
from jobs.quality.raw_gate import validate_raw
from tests.unit import builders as b

SNAP = date(2024, 1, 31)


def _checked(spark: Any, rows: list[tuple[Any, ...]], schema: str) -> DataFrame:
    """Rows as the rules would leave them had every rule passed them."""
    return spark.createDataFrame(rows, schema).select(
        "*", F.array().cast("array<string>").alias("reasons"), F.to_date("updated_at").alias("extract_date")
    )


def _gate(spark: Any, *, orders: list[tuple[Any, ...]] | None = None, lines: list[tuple[Any, ...]] | None = None) -> dict[str, list[str]]:
    """Failed expectations per suite for one month's rows: two orders, two lines, one interaction."""
    good_orders = [b.order("o1", "c1", "2024-01-05 10:00:00", "100.00"), b.order("o2", "c1", "2024-01-06 10:00:00", "50.00")]
    good_lines = [b.line("o1", 1, "p1", 2, "50.00", "20.00"), b.line("o2", 1, "p1", 1, "50.00", "20.00")]
    inputs = SnapshotInputs(
        orders=_checked(spark, orders or good_orders, b.ORDERS),
        order_items=_checked(spark, lines or good_lines, b.ITEMS),
        interactions=_checked(spark, [b.interaction("i1", "c1", "2024-01-07 10:00:00", "survey", "1.00", 5)], b.INTERACTIONS),
        customers=spark.createDataFrame([b.customer("c1", "2024-01-01 00:00:00", "organic")], b.CUSTOMERS),
        products=spark.createDataFrame([("p1", "music", b.d("50.00"), b.d("20.00"), b.ts("2024-01-01"))], b.PRODUCTS),
        marketing_spend=spark.createDataFrame([b.spend("2024-01-01", "organic", "10.00")], b.SPEND),
    )
    result, _ = validate_raw(
        inputs, {}, SNAP, "run-1", full=True, quarantine_max_rate=0.01,
        row_count_min_ratio=0.5, row_count_max_ratio=2.0, freshness_days=60,
    )
    failed: dict[str, list[str]] = {}
    for r in result.failures:
        failed.setdefault(r.suite, []).append(f"{r.expectation} | {r.details}")
    return failed


def test_rows_the_contract_allows_pass_every_suite(spark: Any) -> None:
    assert _gate(spark) == {}


@pytest.mark.parametrize(
    ("orders", "lines", "suite", "expectation", "bad_value"),
    [
        ([b.order("o1", "c1", "2024-01-05 10:00:00", "100.00", status="lost")], None, "raw_orders", "status", "lost"),
        ([b.order("o1", "c1", "2024-01-05 10:00:00", "100.00", channel="fax")], None, "raw_orders", "channel", "fax"),
        ([b.order("o1", "c1", "2024-01-05 10:00:00", "100.00", shipping="-4.00")], None, "raw_orders", "shipping_cost", "-4.0"),
        (None, [b.line("o1", 1, "p1", 0, "50.00", "20.00")], "raw_order_items", "quantity", "0"),
        (None, [b.line("o1", 1, "p1", 1, "50.00", "-1.00")], "raw_order_items", "unit_cost", "-1.0"),
    ],
)
def test_a_row_the_rules_missed_fails_its_suite(
    spark: Any, orders: list[tuple[Any, ...]] | None, lines: list[tuple[Any, ...]] | None,
    suite: str, expectation: str, bad_value: str,
) -> None:
    failed = _gate(spark, orders=orders, lines=lines)
    assert list(failed) == [suite], failed
    [message] = failed[suite]
    assert expectation in message.split("|")[0], message
    assert bad_value in message.split("|")[1], message
