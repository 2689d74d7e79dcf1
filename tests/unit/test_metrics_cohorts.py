"""Cohort retention, channel economics and customer movements, by hand on the shared scenario.

Monthly facts (from tests/unit/conftest.py): c1 (direct_mail, cohort 2024-01) is active in January
(revenue 140, margin 140 - 70 - 10 = 60), not in February (a 3.00 ticket: margin -3) and active in
March (60, margin 60 - 40 - 5 = 15). c2 (affiliate, cohort 2024-02) is active in February
(revenue 0 + 40, margin 40 - 15 - 4 = 21).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from jobs.metrics import channels, cohorts, movements
from jobs.metrics import customers as C
from jobs.metrics.customer_day import customer_day
from jobs.metrics.orders import order_facts

D = Decimal


def _months_and_cohorts(scenario: dict[str, Any], snap: date) -> tuple[Any, Any]:
    days = customer_day(order_facts(scenario["orders"], scenario["items"]), scenario["interactions"])
    base = C.customer_base(scenario["customers"], C.customer_summary(days, snap), snap)
    return cohorts.customer_month(days), cohorts.customer_cohort(base)


def _retention(scenario: dict[str, Any], snap: date) -> Any:
    months, cohort = _months_and_cohorts(scenario, snap)
    return cohorts.cohort_retention(months, cohort, snap)


def test_cohort_retention(scenario: dict[str, Any]) -> None:
    rows = {(r.cohort_month.isoformat(), r.acquisition_channel, r.period): r for r in _retention(scenario, date(2024, 3, 31)).collect()}
    assert set(rows) == {
        ("2024-01-01", "direct_mail", 0), ("2024-01-01", "direct_mail", 1), ("2024-01-01", "direct_mail", 2),
        ("2024-02-01", "affiliate", 0), ("2024-02-01", "affiliate", 1),
        ("2024-01-01", "all", 0), ("2024-01-01", "all", 1), ("2024-01-01", "all", 2),
        ("2024-02-01", "all", 0), ("2024-02-01", "all", 1),
    }
    jan = [rows[("2024-01-01", "direct_mail", k)] for k in range(3)]
    assert [r.cohort_size for r in jan] == [1, 1, 1]
    assert [r.active_customers for r in jan] == [1, 0, 1]
    assert [r.retention_rate for r in jan] == [1.0, 0.0, 1.0]
    assert [r.unbounded_retention_rate for r in jan] == [1.0, 1.0, 1.0]  # still buys in period 2
    assert [r.revenue for r in jan] == [D("140.00"), D("0.00"), D("60.00")]
    assert [r.revenue_vs_period_0 for r in jan] == pytest.approx([1.0, 0.0, 60 / 140])
    assert [r.margin for r in jan] == [D("60.00"), D("-3.00"), D("15.00")]
    assert [r.cumulative_revenue_per_customer for r in jan] == pytest.approx([140.0, 140.0, 200.0])
    assert [r.cumulative_margin_per_customer for r in jan] == pytest.approx([60.0, 57.0, 72.0])
    assert all(r.is_complete_period for r in jan)  # 2024-03-31 ends March
    feb = [rows[("2024-02-01", "affiliate", k)] for k in range(2)]
    assert [r.unbounded_retention_rate for r in feb] == [1.0, 0.0]
    assert [r.cumulative_margin_per_customer for r in feb] == pytest.approx([21.0, 21.0])
    # 'all' is the sum over channels (one channel per cohort here)
    for key, row in rows.items():
        if key[1] == "all":
            channel = "direct_mail" if key[0] == "2024-01-01" else "affiliate"
            same = rows[(key[0], channel, key[2])]
            assert (row.cohort_size, row.active_customers, row.revenue, row.margin) == (same.cohort_size, same.active_customers, same.revenue, same.margin)


def test_right_censoring(scenario: dict[str, Any]) -> None:
    rows = _retention(scenario, date(2024, 3, 15)).where("acquisition_channel = 'direct_mail'").orderBy("period").collect()
    assert [r.period for r in rows] == [0, 1, 2]  # no row for April or later
    assert [r.is_complete_period for r in rows] == [True, True, False]  # March is not over on the 15th
    assert [r.active_customers for r in rows] == [1, 0, 1]  # the 2024-03-01 order is before the 15th


def test_channel_economics(scenario: dict[str, Any]) -> None:
    snap = date(2024, 4, 30)  # period 3 of the January cohort (April) is complete
    econ = channels.channel_economics(_retention(scenario, snap), scenario["spend"], snap)
    rows = {(r.acquisition_channel, r.acquisition_month.isoformat()): r for r in econ.collect()}
    dm = rows[("direct_mail", "2024-01-01")]
    assert (dm.customers_acquired, dm.spend, dm.cac) == (1, D("100.00"), 100.0)
    assert dm.retention_3m == 0.0  # no purchase in April
    assert dm.margin_per_customer_3m == pytest.approx(72.0)  # Jan 60, Feb -3, Mar 15 (April's 0 is month 4)
    assert dm.retention_6m is None and dm.margin_per_customer_12m is None  # not observed yet
    assert dm.payback_months is None  # 72 never reaches 100
    aff = rows[("affiliate", "2024-02-01")]
    assert (aff.cac, aff.payback_months) == (20.0, 1)  # 21 >= 20 within the first month, the acquisition month
    social = rows[("social", "2024-03-01")]  # spend without customers: no CAC
    assert (social.customers_acquired, social.spend, social.cac, social.payback_months) == (0, D("50.00"), None, None)
    assert rows[("all", "2024-03-01")].spend == D("50.00")
    assert rows[("all", "2024-01-01")].cac == 100.0


def test_a_k_month_ltv_covers_k_months(scenario: dict[str, Any]) -> None:
    """Snapshot 2024-03-31: the January cohort (c1, direct_mail) has complete periods 0-2 (Jan-Mar),
    not period 3 (April). Its margin per customer: Jan 60 (orders o1, o2), Feb -3 (a support ticket),
    Mar 15 (o3). The 3-month LTV covers Jan-Mar: 60 - 3 + 15 = 72, known now; month-3 retention is
    April's, not known yet. The February affiliate cohort (c2): Feb 21, Mar 0: its 1st month pays
    back the CAC of 20 (payback 1); its 3-month LTV needs April."""
    snap = date(2024, 3, 31)
    econ = channels.channel_economics(_retention(scenario, snap), scenario["spend"], snap)
    rows = {(r.acquisition_channel, r.acquisition_month.isoformat()): r for r in econ.collect()}
    dm, aff = rows[("direct_mail", "2024-01-01")], rows[("affiliate", "2024-02-01")]
    assert dm.margin_per_customer_3m == pytest.approx(72.0)
    assert dm.retention_3m is None and dm.margin_per_customer_6m is None
    assert (aff.margin_per_customer_3m, aff.payback_months) == (None, 1)


def test_movements(scenario: dict[str, Any]) -> None:
    snap = date(2024, 3, 31)
    months, cohort = _months_and_cohorts(scenario, snap)
    rows = {(r.month.isoformat(), r.acquisition_channel): r for r in movements.customer_movements(months, cohort, snap).collect()}
    jan, feb, mar = rows[("2024-01-01", "all")], rows[("2024-02-01", "all")], rows[("2024-03-01", "all")]
    assert (jan.new_customers, jan.new_revenue, jan.active_customers) == (1, D("140.00"), 1)
    assert (feb.new_customers, feb.new_revenue, feb.lapsed_customers, feb.lapsed_revenue) == (1, D("40.00"), 1, D("140.00"))
    assert (mar.reactivated_customers, mar.reactivated_revenue, mar.lapsed_customers, mar.lapsed_revenue) == (1, D("60.00"), 1, D("40.00"))
    assert (mar.new_customers, mar.retained_customers, mar.active_customers) == (0, 0, 1)
    assert rows[("2024-03-01", "direct_mail")].reactivated_customers == 1
    assert rows[("2024-03-01", "affiliate")].lapsed_customers == 1
    assert ("2024-04-01", "all") not in rows  # nothing after the snapshot's month
    assert {r.is_complete_month for r in rows.values()} == {True}  # 2024-03-31 ends March


def test_no_one_lapses_in_an_unfinished_month(scenario: dict[str, Any]) -> None:
    """Snapshot 2024-03-15: c2 (active in February) has not bought in March yet, but March is not
    over, so March has no lapse; c1's reactivation on March 1 counts (60.00). January and
    February are complete months, March is not."""
    snap = date(2024, 3, 15)
    months, cohort = _months_and_cohorts(scenario, snap)
    rows = {(r.month.isoformat(), r.acquisition_channel): r for r in movements.customer_movements(months, cohort, snap).collect()}
    mar = rows[("2024-03-01", "all")]
    assert (mar.reactivated_customers, mar.reactivated_revenue, mar.lapsed_customers, mar.lapsed_revenue) == (1, D("60.00"), 0, D("0.00"))
    assert rows[("2024-02-01", "all")].lapsed_customers == 1  # c1 lapsed in February (active in January)
    assert {m: r.is_complete_month for (m, ch), r in rows.items() if ch == "all"} == {
        "2024-01-01": True, "2024-02-01": True, "2024-03-01": False}


def test_retained(spark: Any) -> None:
    from tests.unit import builders as b

    o = spark.createDataFrame([b.order("r1", "r", "2024-01-10 10:00:00", "10.00"), b.order("r2", "r", "2024-02-10 10:00:00", "15.00")], b.ORDERS)
    i = spark.createDataFrame([b.line("r1", 1, "p", 1, "10.00", "1.00"), b.line("r2", 1, "p", 1, "15.00", "1.00")], b.ITEMS)
    c = spark.createDataFrame([b.customer("r", "2024-01-01 00:00:00", "organic")], b.CUSTOMERS)
    snap = date(2024, 2, 29)
    days = customer_day(order_facts(o, i), spark.createDataFrame([], b.INTERACTIONS))
    base = C.customer_base(c, C.customer_summary(days, snap), snap)
    rows = {r.month.isoformat(): r for r in movements.customer_movements(cohorts.customer_month(days), cohorts.customer_cohort(base), snap).where("acquisition_channel = 'all'").collect()}
    assert (rows["2024-02-01"].retained_customers, rows["2024-02-01"].retained_revenue) == (1, D("15.00"))
