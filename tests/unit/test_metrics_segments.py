"""Kotler quadrants, value tiers, lifecycle stages, the loyalty ladder and preferences, by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from pyspark.sql import functions as F

from jobs.metrics import customers as C
from jobs.metrics import segments as S
from jobs.metrics.customer_day import customer_day
from jobs.metrics.orders import order_facts
from tests.unit import builders as b

SNAP = date(2024, 3, 31)
# c1: profit 72, loyalty 2 active months / 3 observed x 86/365 = 0.1571; c2: profit 21,
# loyalty 1/2 x 49/365 = 0.0671. Explicit thresholds 50 and 0.1 split them.
RULES = C.SegmentRules(kotler_profit_threshold=50.0, kotler_loyalty_threshold=0.1)


def _segments(scenario: dict[str, Any], rules: C.SegmentRules, customers: Any = None) -> dict[str, Any]:
    customers = customers if customers is not None else scenario["customers"]
    facts = order_facts(scenario["orders"], scenario["items"])
    days = customer_day(facts, scenario["interactions"])
    base = C.customer_base(customers, C.customer_summary(days, SNAP), SNAP)
    profit = C.customer_profitability(base, SNAP)
    prefs = S.preferences(facts, scenario["items"], scenario["products"])
    segs = S.customer_segments(base, profit, prefs, S.referrals_made(customers, SNAP), SNAP, rules)
    return {r.customer_id: r for r in segs.collect()}


def test_labels_with_explicit_thresholds(scenario: dict[str, Any]) -> None:
    got = _segments(scenario, RULES)
    c1, c2, c3, c4 = (got[c] for c in ("c1", "c2", "c3", "c4"))
    assert c1.loyalty_score == pytest.approx(2 / 3 * 86 / 365)
    assert c2.loyalty_score == pytest.approx(1 / 2 * 49 / 365)
    assert (c1.kotler_quadrant, c2.kotler_quadrant, c3.kotler_quadrant, c4.kotler_quadrant) == ("true_friend", "stranger", "prospect", "prospect")
    assert (c1.value_tier, c1.value_decile, c2.value_tier, c3.value_tier) == ("platinum", 1, "gold", "prospect")
    # c1: 30 days since the last purchase, own gap 56 days, tenure 86 days -> development
    assert (c1.lifecycle_stage, c2.lifecycle_stage, c4.lifecycle_stage) == ("development", "acquisition", "prospect")
    # c1 referred c2 but has no year of tenure yet -> advocate, not partner
    assert (c1.referrals_made, c1.loyalty_rung, c2.loyalty_rung, c4.loyalty_rung) == (1, "advocate", "customer", "prospect")
    # purchase orders: c1 web twice, app once; lines: music 100 + 80, books 50
    assert (c1.preferred_channel, c1.preferred_category, c1.category_breadth) == ("web", "music", 2)
    assert (c2.preferred_channel, c2.preferred_category, c2.category_breadth) == ("store", "books", 1)
    assert c1.discount_sensitivity == pytest.approx(100 / 230)  # o1 was discounted
    assert c2.discount_sensitivity == pytest.approx(0.0)
    assert (c3.satisfaction_score, c3.satisfaction_band, c1.satisfaction_band) == (4.0, "high", "unknown")


def test_median_thresholds_by_default(scenario: dict[str, Any]) -> None:
    # buyers c1 (72, 0.157) and c2 (21, 0.067): the approximate median is the lower value, so
    # c1 is above both and c2 above neither
    got = _segments(scenario, C.SegmentRules())
    assert (got["c1"].kotler_quadrant, got["c2"].kotler_quadrant) == ("true_friend", "stranger")


def test_butterfly_and_barnacle(scenario: dict[str, Any]) -> None:
    butterfly = _segments(scenario, replace(RULES, kotler_loyalty_threshold=0.5))  # nobody loyal
    assert butterfly["c1"].kotler_quadrant == "butterfly"
    barnacle = _segments(scenario, replace(RULES, kotler_profit_threshold=100.0))  # nobody profitable
    assert barnacle["c1"].kotler_quadrant == "barnacle"


@pytest.mark.parametrize(
    ("rules", "stage"),
    [
        (replace(RULES, lapse_days=20), "lapsed"),  # 30 days since the last purchase > 20
        (replace(RULES, decline_gap_factor=0.5), "decline"),  # 30 > 0.5 x 56
        (replace(RULES, development_days=30), "retention"),  # tenure 86 >= 30, not overdue
    ],
)
def test_every_lifecycle_stage_is_reachable(scenario: dict[str, Any], rules: C.SegmentRules, stage: str) -> None:
    assert _segments(scenario, rules)["c1"].lifecycle_stage == stage


def test_partner_supporter_and_client(scenario: dict[str, Any], spark: Any) -> None:
    assert _segments(scenario, replace(RULES, partner_min_tenure_days=30))["c1"].loyalty_rung == "partner"
    plain = scenario["customers"].withColumn("referred_by", F.lit(None).cast("string"))
    # one repeat occasion, active in 2 of 3 months
    supporter = replace(RULES, supporter_min_repeat=1, supporter_min_month_share=0.5)
    assert _segments(scenario, supporter, plain)["c1"].loyalty_rung == "supporter"
    assert _segments(scenario, RULES, plain)["c1"].loyalty_rung == "client"  # default needs 3 repeats


def test_referrals_count_only_signups_by_the_snapshot(spark: Any) -> None:
    """r referred x (signed up 2024-03-10), z (2024-03-31 23:59:59, the snapshot's last second) and
    y (2024-04-01 00:00, the day after the snapshot); q referred nobody. As of 2024-03-31, r made
    2 referrals (x, z) and y's referral does not exist yet."""
    customers = spark.createDataFrame([
        b.customer("r", "2024-01-01 00:00:00", "organic"),
        b.customer("q", "2024-01-01 00:00:00", "organic"),
        b.customer("x", "2024-03-10 09:00:00", "referral", referred_by="r"),
        b.customer("z", "2024-03-31 23:59:59", "referral", referred_by="r"),
        b.customer("y", "2024-04-01 00:00:00", "referral", referred_by="r"),
    ], b.CUSTOMERS)
    assert {r.customer_id: r.referrals_made for r in S.referrals_made(customers, SNAP).collect()} == {"r": 2}
    assert {r.customer_id: r.referrals_made for r in S.referrals_made(customers, date(2024, 4, 1)).collect()} == {"r": 3}
