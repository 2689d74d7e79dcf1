"""Net and gross revenue retention, worked out by hand.

Snapshot 2024-06-30 (a month end). 3-month windows: prior 2024-01-01..2024-03-31, current
2024-04-01..2024-06-30. 12-month windows: prior 2022-07-01..2023-06-30, current 2023-07-01..2024-06-30.

email:  a1 Feb 100.00, May 150.00                      -> expands by 50
        a2 Jan 220.00 - 20.00 discount = 200, Apr 80.00  -> contracts by 120
        a3 Mar 50.00, a cancelled order in May, 999.00 on 2024-07-01 (after the snapshot) -> churns 50
        a7 2023-05-10 30.00, 2024-01-15 20.00             -> 3m: churns 20; 12m: 30 -> 20
social: a4 Feb 60.00, Jun 60.00 fully refunded (net 0)     -> churns 60
        a5 2024-03-31 23:30 40.00, 2024-04-01 00:10 40.00  -> kept (one order each side of the boundary)
        a6 May 500.00 only                                -> new: in neither ratio
organic: p1, signed up, never bought                      -> a row with no starting customers

3 months, email:  prior 100 + 200 + 50 + 20 = 370, current 150 + 80 + 0 + 0 = 230,
                  expansion 50, contraction 120, churned 50 + 20 = 70 (370 + 50 - 120 - 70 = 230),
                  NRR 230/370, GRR (370 - 120 - 70)/370 = 180/370, retained 2 of 4.
3 months, social: prior 60 + 40 = 100, current 0 + 40 = 40, churned 60: NRR = GRR = 0.4, 1 of 2.
3 months, all:    prior 470, current 270, expansion 50, contraction 120, churned 130,
                  NRR 270/470, GRR 220/470, retained 3 of 6.
12 months: only a7 has prior revenue (30, in May 2023) and spends 20 in the current window:
           contraction 10, NRR = GRR = 20/30; the lake starts 2023-05-10, after 2022-07-01, so the
           prior window is not full (the 3-month one is).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from jobs.metrics import customers as C
from jobs.metrics.customer_day import customer_day
from jobs.metrics.orders import order_facts
from jobs.metrics.revenue_retention import Windows, months_before, revenue_retention
from tests.unit import builders as b

D = Decimal
SNAP = date(2024, 6, 30)


@pytest.fixture(scope="module")
def retention(spark: Any) -> dict[tuple[str, int], Any]:
    o = b.order
    orders = [
        o("e1", "a1", "2024-02-10 10:00:00", "100.00"), o("e2", "a1", "2024-05-10 10:00:00", "150.00"),
        o("e3", "a2", "2024-01-10 10:00:00", "220.00", discount="20.00"), o("e4", "a2", "2024-04-10 10:00:00", "80.00"),
        o("e5", "a3", "2024-03-10 10:00:00", "50.00"), o("e6", "a3", "2024-05-10 10:00:00", "70.00", status="cancelled"),
        o("e7", "a3", "2024-07-01 10:00:00", "999.00"),
        o("e8", "a7", "2023-05-10 10:00:00", "30.00"), o("e9", "a7", "2024-01-15 10:00:00", "20.00"),
        o("s1", "a4", "2024-02-10 10:00:00", "60.00"), o("s2", "a4", "2024-06-10 10:00:00", "60.00", status="refunded", refund="60.00"),
        o("s3", "a5", "2024-03-31 23:30:00", "40.00"), o("s4", "a5", "2024-04-01 00:10:00", "40.00"),
        o("s5", "a6", "2024-05-10 10:00:00", "500.00"),
    ]
    items = [b.line(row[0], 1, "p1", 1, str(row[6]), "1.00") for row in orders]
    channel = {"a1": "email", "a2": "email", "a3": "email", "a7": "email", "a4": "social", "a5": "social", "a6": "social", "p1": "organic"}
    people = [b.customer(cid, "2023-01-01 00:00:00", ch) for cid, ch in channel.items()]
    days = customer_day(
        order_facts(spark.createDataFrame(orders, b.ORDERS), spark.createDataFrame(items, b.ITEMS)),
        spark.createDataFrame([], b.INTERACTIONS),
    )
    base = C.customer_base(spark.createDataFrame(people, b.CUSTOMERS), C.customer_summary(days, SNAP), SNAP)
    return {(r.acquisition_channel, r.window_months): r for r in revenue_retention(days, base, SNAP).collect()}


def test_windows_are_equal_calendar_months() -> None:
    assert months_before(date(2024, 6, 30), 3) == date(2024, 3, 31)  # a month end stays a month end
    assert months_before(date(2024, 3, 30), 1) == date(2024, 2, 29)  # February has no 30th
    assert months_before(date(2024, 2, 29), 12) == date(2023, 2, 28)
    assert months_before(date(2024, 5, 15), 12) == date(2023, 5, 15)
    assert Windows.ending(SNAP, 3) == Windows(3, date(2024, 1, 1), date(2024, 3, 31), date(2024, 4, 1), SNAP)
    assert Windows.ending(date(2024, 5, 15), 3) == Windows(3, date(2023, 11, 16), date(2024, 2, 15), date(2024, 2, 16), date(2024, 5, 15))


def test_rows_per_channel_and_window(retention: dict[tuple[str, int], Any]) -> None:
    assert set(retention) == {(ch, w) for ch in ("email", "social", "organic", "all") for w in (3, 12)}
    row = retention[("all", 12)]
    assert (row.prior_window_start, row.prior_window_end, row.window_start, row.window_end) == (
        date(2022, 7, 1), date(2023, 6, 30), date(2023, 7, 1), SNAP)
    assert [retention[("all", w)].is_full_prior_window for w in (3, 12)] == [True, False]


def test_three_month_nrr_and_grr(retention: dict[tuple[str, int], Any]) -> None:
    email, social, every = retention[("email", 3)], retention[("social", 3)], retention[("all", 3)]
    assert (email.starting_customers, email.retained_customers, email.customer_retention_rate) == (4, 2, 0.5)
    assert (email.prior_revenue, email.current_revenue) == (D("370.00"), D("230.00"))
    assert (email.expansion_revenue, email.contraction_revenue, email.churned_revenue) == (D("50.00"), D("120.00"), D("70.00"))
    assert email.net_revenue_retention == pytest.approx(230 / 370)
    assert email.gross_revenue_retention == pytest.approx(180 / 370)
    assert (social.starting_customers, social.retained_customers, social.prior_revenue, social.current_revenue) == (2, 1, D("100.00"), D("40.00"))
    assert (social.churned_revenue, social.net_revenue_retention, social.gross_revenue_retention) == (D("60.00"), pytest.approx(0.4), pytest.approx(0.4))
    assert (every.starting_customers, every.retained_customers, every.prior_revenue, every.current_revenue) == (6, 3, D("470.00"), D("270.00"))
    assert (every.expansion_revenue, every.contraction_revenue, every.churned_revenue) == (D("50.00"), D("120.00"), D("130.00"))
    assert (every.net_revenue_retention, every.gross_revenue_retention) == (pytest.approx(270 / 470), pytest.approx(220 / 470))


def test_twelve_months_and_a_channel_without_starting_customers(retention: dict[tuple[str, int], Any]) -> None:
    email = retention[("email", 12)]
    assert (email.starting_customers, email.prior_revenue, email.current_revenue, email.contraction_revenue) == (1, D("30.00"), D("20.00"), D("10.00"))
    assert (email.net_revenue_retention, email.gross_revenue_retention) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    organic = retention[("organic", 3)]
    assert (organic.starting_customers, organic.prior_revenue, organic.net_revenue_retention, organic.customer_retention_rate) == (0, D("0.00"), None, None)
