"""Concentration, Gini, the whale curve and segment breakdowns on values whose answers are known."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from jobs.metrics import portfolio

SNAP = date(2024, 3, 31)
PROFIT = (
    "customer_id string, revenue decimal(18,2), net_profit decimal(18,2), gross_margin decimal(18,2), "
    "net_profit_after_acquisition decimal(18,2), purchase_days int, last_purchase_date date"
)
SEGMENTS = "customer_id string, kotler_quadrant string, lifecycle_stage string, loyalty_rung string, value_tier string"


def _profitability(spark: Any, revenues: list[int], profits: list[int]) -> Any:
    rows = [
        (f"x{i}", Decimal(r), Decimal(p), Decimal(p), Decimal(p), 1, date(2024, 3, 1) if i % 2 else date(2023, 1, 1))
        for i, (r, p) in enumerate(zip(revenues, profits, strict=True))
    ]
    rows.append(("prospect", Decimal(0), Decimal(0), Decimal(0), Decimal(0), 0, None))  # no purchase: left out
    return spark.createDataFrame(rows, PROFIT)


def _segments(spark: Any, quadrants: list[str]) -> Any:
    return spark.createDataFrame(
        [(f"x{i}", q, "retention", "client", "iron") for i, q in enumerate(quadrants)] + [("prospect", "prospect", "prospect", "prospect", "prospect")],
        SEGMENTS,
    )


def test_summary_concentration_and_gini(spark: Any) -> None:
    # revenue 1, 2, 3, 4, 10 (sum 20): top 20% = ceil(1.0) = 1 customer = 10/20; top 25% = ceil(1.25) = 2 = 14/20
    # Gini: sorted 1, 2, 3, 4, 10; sum(i x) = 1 + 4 + 9 + 16 + 50 = 80; 2*80/(5*20) - 6/5 = 0.4
    # profit 1, 2, 3, 4 and 0 (sum 10): nobody loses money, so no loss share, and the whale curve
    # peaks at 10 / 10 = 1
    prof = _profitability(spark, [1, 2, 3, 4, 10], [1, 2, 3, 4, 0])
    segs = _segments(spark, ["true_friend", "butterfly", "barnacle", "stranger", "stranger"])
    r = portfolio.portfolio_summary(prof, segs, SNAP, active_days=90).collect()[0]
    assert (r.customers, r.buying_customers) == (6, 5)
    assert r.active_customers == 2  # x1 and x3 bought on 2024-03-01; x0, x2, x4 last in 2023
    assert r.revenue == Decimal("20.00") and r.net_profit == Decimal("10.00")
    assert r.top20_revenue_share == pytest.approx(0.5)
    assert r.top25_revenue_share == pytest.approx(0.7)
    assert r.gini_revenue == pytest.approx(0.4)
    assert r.top20_profit_share == pytest.approx(0.4)  # 4 / 10
    assert r.top25_profit_share == pytest.approx(0.7)  # (4 + 3) / 10
    assert (r.loss_making_customer_share, r.profit_lost_share, r.whale_peak_profit_share) == (0.0, 0.0, 1.0)
    assert (r.true_friend_customers, r.butterfly_customers, r.barnacle_customers, r.stranger_customers) == (1, 1, 1, 2)


def test_gini_of_one_to_four_is_a_quarter(spark: Any) -> None:
    prof = _profitability(spark, [1, 2, 3, 4], [4, 3, 2, 1])
    r = portfolio.portfolio_summary(prof, _segments(spark, ["stranger"] * 4), SNAP, 90).collect()[0]
    assert r.gini_revenue == pytest.approx(0.25)


def test_losses_are_shares_and_a_whale_peak_not_a_gini(spark: Any) -> None:
    # profits 10, 4, 0, -2, -2 (total 10): 2 of 5 buyers lose money = 0.4; they lose 4 of the 14
    # the profitable ones make = 2/7; the whale curve peaks after the two profitable buyers at
    # 14 / 10 = 1.4. (The sorted-rank "Gini" of these profits: ascending -2, -2, 0, 4, 10,
    # 2 (-2 - 4 + 0 + 16 + 50) / (5 x 10) - 6/5 = 1.2, outside [0, 1].)
    prof = _profitability(spark, [1, 1, 1, 1, 1], [10, 4, 0, -2, -2])
    r = portfolio.portfolio_summary(prof, _segments(spark, ["stranger"] * 5), SNAP, 90).collect()[0]
    assert r.loss_making_customer_share == pytest.approx(0.4)
    assert r.profit_lost_share == pytest.approx(2 / 7)
    assert r.whale_peak_profit_share == pytest.approx(1.4)
    assert not hasattr(r, "gini_profit")
    # no profit at all: the peak is undefined
    flat = portfolio.portfolio_summary(_profitability(spark, [1, 1], [3, -3]), _segments(spark, ["stranger"] * 2), SNAP, 90).collect()[0]
    assert flat.whale_peak_profit_share is None and flat.profit_lost_share == pytest.approx(1.0)


def test_whale_curve(spark: Any) -> None:
    # profits 10, 4, 3, 2, 1 (sum 20): each customer is 20 percentiles
    prof = _profitability(spark, [1, 1, 1, 1, 1], [10, 4, 3, 2, 1])
    rows = portfolio.whale_curve(prof, SNAP).orderBy("percentile").collect()
    assert [r.percentile for r in rows] == [20, 40, 60, 80, 100]
    assert [r.cumulative_customer_share for r in rows] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert [r.cumulative_profit_share for r in rows] == pytest.approx([0.5, 0.7, 0.85, 0.95, 1.0])
    assert [r.cumulative_revenue_share for r in rows] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


def test_whale_curve_rises_above_one_when_the_tail_loses_money(spark: Any) -> None:
    prof = _profitability(spark, [1, 1], [15, -5])  # total 10: the top customer alone makes 150%
    rows = portfolio.whale_curve(prof, SNAP).orderBy("percentile").collect()
    assert [r.cumulative_profit_share for r in rows] == pytest.approx([1.5, 1.0])


def test_breakdown_shares(spark: Any) -> None:
    prof = _profitability(spark, [1, 2, 3, 4], [1, 2, 3, 4])
    rows = portfolio.portfolio_breakdown(prof, _segments(spark, ["true_friend", "true_friend", "stranger", "barnacle"]), SNAP).collect()
    kotler = {r.segment: r for r in rows if r.dimension == "kotler_quadrant"}
    assert set(kotler) == {"true_friend", "stranger", "barnacle", "prospect"}
    assert (kotler["true_friend"].customers, kotler["true_friend"].revenue) == (2, Decimal("3.00"))
    assert kotler["true_friend"].customer_share == pytest.approx(2 / 5)
    assert kotler["true_friend"].revenue_share == pytest.approx(3 / 10)
    for dim in portfolio.BREAKDOWN_DIMENSIONS:
        assert sum(r.customer_share for r in rows if r.dimension == dim) == pytest.approx(1.0)
