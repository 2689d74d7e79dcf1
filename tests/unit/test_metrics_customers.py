"""customer_day, the customer summary, profitability and RFM on hand-computed data."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import functions as F

from jobs.metrics import customers as C
from jobs.metrics.customer_day import customer_day
from jobs.metrics.orders import order_facts
from tests.unit import builders as b

SNAP = date(2024, 3, 31)
D = Decimal


@pytest.fixture(scope="module")
def base(scenario: dict[str, Any]) -> Any:
    days = customer_day(order_facts(scenario["orders"], scenario["items"]), scenario["interactions"])
    return C.customer_base(scenario["customers"], C.customer_summary(days, SNAP), SNAP)


def test_customer_day_one_row_per_customer_and_day(scenario: dict[str, Any]) -> None:
    days = customer_day(order_facts(scenario["orders"], scenario["items"]), scenario["interactions"])
    got = {(r.customer_id, r.activity_date.isoformat()): r for r in days.collect()}
    assert set(got) == {
        ("c1", "2024-01-05"), ("c1", "2024-02-01"), ("c1", "2024-03-01"),
        ("c2", "2024-02-10"), ("c2", "2024-02-11"), ("c3", "2024-01-20"), ("c3", "2024-02-02"),
    }
    jan5 = got[("c1", "2024-01-05")]  # two orders, one occasion: 100 + 50 gross, 10 discount (money in cents)
    assert (jan5.orders, jan5.purchase_orders, jan5.is_purchase_day) == (2, 2, True)
    assert (jan5.gross_revenue_cents, jan5.discount_cents, jan5.net_revenue_cents) == (15000, 1000, 14000)
    assert (jan5.cogs_cents, jan5.shipping_cost_cents, jan5.discounted_gross_cents) == (7000, 1000, 10000)  # 2x20 + 30
    refunded = got[("c2", "2024-02-10")]  # fully refunded: no purchase, no COGS, shipping counts
    assert (refunded.is_purchase_day, refunded.net_revenue_cents, refunded.cogs_cents, refunded.shipping_cost_cents) == (False, 0, 0, 400)
    cancelled = got[("c3", "2024-01-20")]  # cancelled: an order, but no money at all
    assert (cancelled.orders, cancelled.is_purchase_day, cancelled.gross_revenue_cents, cancelled.shipping_cost_cents) == (1, False, 0, 0)
    partial = got[("c1", "2024-03-01")]  # 80 - 20 refunded, COGS stays
    assert (partial.is_purchase_day, partial.net_revenue_cents, partial.refund_cents, partial.cogs_cents) == (True, 6000, 2000, 4000)
    survey = got[("c3", "2024-02-02")]
    assert (survey.interactions, survey.interaction_cost_cents, survey.satisfaction_sum, survey.satisfaction_count) == (1, 100, 4, 1)


def test_money_in_cents_round_trips_exactly(spark: Any) -> None:
    """cents() and to_money() are exact on the source decimals and on doubles that are not
    exactly representable (0.29 * 100 = 28.999..., 0.57 * 100 = 56.999...)."""
    from jobs.metrics.orders import cents, to_money

    df = spark.createDataFrame(
        [(D("0.29"), 0.29, D("-1234567890.05")), (D("0.00"), 0.57, D("99999999999.99"))],
        "d decimal(14,2), x double, big decimal(14,2)",
    )
    got = df.select(cents(F.col("d")).alias("d"), cents(F.col("x")).alias("x"), cents(F.col("big")).alias("big"),
                    to_money(cents(F.col("big"))).alias("back")).collect()
    assert [(r.d, r.x, r.big) for r in got] == [(29, 29, -123456789005), (0, 57, 9999999999999)]
    assert [r.back for r in got] == [D("-1234567890.05"), D("99999999999.99")]


def test_lifetimes_fields(base: Any) -> None:
    got = {r.customer_id: r for r in base.collect()}
    c1 = got["c1"]  # occasions 2024-01-05 and 2024-03-01
    assert c1.frequency == 1
    assert c1.recency == pytest.approx(56 / 7)  # 56 days
    assert c1.T == pytest.approx(86 / 7)  # 2024-01-05 -> 2024-03-31
    assert c1.monetary_value == pytest.approx(60.0)  # repeat days only: the 60.00 of 2024-03-01
    c2 = got["c2"]  # one-time buyer (the refunded order is no occasion)
    assert (c2.frequency, c2.recency, c2.monetary_value) == (0, 0.0, 0.0)
    assert c2.T == pytest.approx(7.0)  # 2024-02-11 -> 2024-03-31 = 49 days
    assert got["c3"].frequency is None and got["c4"].purchase_days == 0


def test_zero_value_purchase_is_an_occasion(spark: Any) -> None:
    orders = spark.createDataFrame(
        [b.order("z1", "z", "2024-01-01 10:00:00", "10.00"), b.order("z2", "z", "2024-01-08 10:00:00", "0.00")], b.ORDERS
    )
    items = spark.createDataFrame([b.line("z1", 1, "p", 1, "10.00", "1.00"), b.line("z2", 1, "p", 1, "0.00", "0.00")], b.ITEMS)
    empty = spark.createDataFrame([], b.INTERACTIONS)
    s = C.customer_summary(customer_day(order_facts(orders, items), empty), date(2024, 1, 15)).collect()[0]
    assert (s.frequency, s.recency, s.monetary_value) == (1, 1.0, 0.0)


def test_profitability(base: Any) -> None:
    rows = {r.customer_id: r for r in C.customer_profitability(base, SNAP).collect()}
    c1 = rows["c1"]
    assert (c1.gross_revenue, c1.discounts, c1.refunds, c1.revenue) == (D("230.00"), D("10.00"), D("20.00"), D("200.00"))
    assert (c1.cogs, c1.gross_margin) == (D("110.00"), D("90.00"))
    assert (c1.shipping_cost, c1.interaction_cost, c1.cost_to_serve) == (D("15.00"), D("3.00"), D("18.00"))
    assert (c1.net_profit, c1.net_profit_after_acquisition) == (D("72.00"), D("62.00"))
    c2 = rows["c2"]  # 40 - 15 COGS - 4 shipping of the refunded order
    assert (c2.revenue, c2.net_profit, c2.net_profit_after_acquisition) == (D("40.00"), D("21.00"), D("19.00"))
    assert rows["c3"].net_profit == D("-1.00") and rows["c4"].net_profit == D("0.00")
    # c3 (only a cancelled order) and c4 (nothing) never bought: unranked, whatever their profit;
    # the two buyers rank 1-2 (two rows: deciles 1-2)
    assert [rows[c].profit_rank for c in ("c1", "c2", "c3", "c4")] == [1, 2, None, None]
    assert [rows[c].profit_decile for c in ("c1", "c2", "c3", "c4")] == [1, 2, None, None]
    assert rows["c1"].snapshot_date == SNAP and rows["c1"].first_purchase_date == date(2024, 1, 5)


def test_deciles_rank_buyers_only(spark: Any) -> None:
    """Ten buyers b01-b10 with net profit 100, 90, ..., 10 (one order, no costs) and ten prospects.
    Among the ten buyers each decile holds one: b01 -> 1, b02 -> 2, ..., b10 -> 10; prospects get
    none. (Ranked with the prospects, 20 rows, b01 and b02 would share decile 1.)"""
    orders = [b.order(f"o{k}", f"b{k:02d}", "2024-02-01 12:00:00", f"{110 - 10 * k}.00") for k in range(1, 11)]
    items = [b.line(f"o{k}", 1, "p", 1, f"{110 - 10 * k}.00", "0.00") for k in range(1, 11)]
    ids = [f"b{k:02d}" for k in range(1, 11)] + [f"p{k:02d}" for k in range(1, 11)]
    customers = spark.createDataFrame([b.customer(c, "2024-01-01 00:00:00", "organic") for c in ids], b.CUSTOMERS)
    days = customer_day(order_facts(spark.createDataFrame(orders, b.ORDERS), spark.createDataFrame(items, b.ITEMS)),
                        spark.createDataFrame([], b.INTERACTIONS))
    base = C.customer_base(customers, C.customer_summary(days, SNAP), SNAP)
    rows = {r.customer_id: r for r in C.customer_profitability(base, SNAP).collect()}
    assert [rows[f"b{k:02d}"].net_profit for k in (1, 10)] == [D("100.00"), D("10.00")]
    assert [(rows[f"b{k:02d}"].profit_rank, rows[f"b{k:02d}"].profit_decile) for k in range(1, 11)] == [(k, k) for k in range(1, 11)]
    assert {(rows[f"p{k:02d}"].profit_rank, rows[f"p{k:02d}"].profit_decile) for k in range(1, 11)} == {(None, None)}


def test_rfm_quintiles_and_segments(spark: Any) -> None:
    """Customer k (1..10) buys on k consecutive days from 2024-01-01, 10k each time: R, F and M all
    rise with k, so every score is ceil(k / 2)."""
    orders, items = [], []
    for k in range(1, 11):
        for j in range(k):
            oid = f"k{k}-{j}"
            orders.append(b.order(oid, f"k{k:02d}", f"2024-01-{j + 1:02d} 12:00:00", f"{10 * k}.00"))
            items.append(b.line(oid, 1, "p", 1, f"{10 * k}.00", "1.00"))
    o = spark.createDataFrame(orders, b.ORDERS)
    i = spark.createDataFrame(items, b.ITEMS)
    customers = spark.createDataFrame([b.customer(f"k{k:02d}", "2024-01-01 00:00:00", "organic") for k in range(1, 11)], b.CUSTOMERS)
    days = customer_day(order_facts(o, i), spark.createDataFrame([], b.INTERACTIONS))
    base = C.customer_base(customers, C.customer_summary(days, SNAP), SNAP)
    rows = {r.customer_id: r for r in C.customer_rfm(base, SNAP).collect()}
    segment = {1: "Hibernating", 2: "Hibernating", 3: "Need attention", 4: "Loyal", 5: "Champions"}
    for k in range(1, 11):
        r = rows[f"k{k:02d}"]
        score = (k + 1) // 2
        assert (r.r_score, r.f_score, r.m_score) == (score, score, score), k
        assert r.rfm_cell == f"{score}{score}{score}"
        assert r.rfm_segment == segment[score]
        assert r.days_since_last_purchase == 91 - k  # last purchase on day k; 2024-03-31 is day 91
        assert r.avg_occasion_spend == pytest.approx(10.0 * k)
        assert r.spend_cv == pytest.approx(0.0)
        if k > 1:
            assert (r.gap_mean_days, r.gap_cv) == (pytest.approx(1.0), pytest.approx(0.0))
        else:
            assert r.gap_mean_days is None


def test_tied_buyers_share_their_rfm_scores(spark: Any) -> None:
    """Six identical one-time buyers (a1-a6: one order of 20.00 on 2024-01-10) and four repeat
    buyers b2-b5 (bk: 20.00 on each of Feb 1..Feb k). Ten buyers; score = 1 + floor(5 (rank - 1) / 10)
    with ascending rank, ties sharing the first rank.
    F (frequency = repeat days): a* 0 (rank 1 -> 1); b2 1 (rank 7 -> 1 + floor(30/10) = 4);
      b3 2 (rank 8 -> 1 + floor(35/10) = 4); b4 3 (rank 9 -> 5); b5 4 (rank 10 -> 1 + floor(45/10) = 5).
    R (ranked from the most days since the last purchase, to 2024-03-31): a* 81 days (rank 1 -> 1);
      bk 60 - k days: b2 58 (rank 7 -> 4), b3 57 (4), b4 56 (5), b5 55 (5).
    M: every occasion is 20.00, all ten tie at rank 1 -> 1.
    ntile by customer id gave a1-a6 F and M scores 1, 1, 2, 2, 3, 3."""
    orders, items = [], []
    for n in range(1, 7):
        orders.append(b.order(f"a{n}", f"a{n}", "2024-01-10 12:00:00", "20.00"))
        items.append(b.line(f"a{n}", 1, "p", 1, "20.00", "1.00"))
    for k in range(2, 6):
        for j in range(1, k + 1):
            oid = f"b{k}-{j}"
            orders.append(b.order(oid, f"b{k}", f"2024-02-{j:02d} 12:00:00", "20.00"))
            items.append(b.line(oid, 1, "p", 1, "20.00", "1.00"))
    ids = [f"a{n}" for n in range(1, 7)] + [f"b{k}" for k in range(2, 6)]
    customers = spark.createDataFrame([b.customer(c, "2024-01-01 00:00:00", "organic") for c in ids], b.CUSTOMERS)
    days = customer_day(order_facts(spark.createDataFrame(orders, b.ORDERS), spark.createDataFrame(items, b.ITEMS)),
                        spark.createDataFrame([], b.INTERACTIONS))
    base = C.customer_base(customers, C.customer_summary(days, SNAP), SNAP)
    got = {r.customer_id: (r.r_score, r.f_score, r.m_score, r.rfm_segment) for r in C.customer_rfm(base, SNAP).collect()}
    expected = {**{f"a{n}": (1, 1, 1, "Hibernating") for n in range(1, 7)},
                "b2": (4, 4, 1, "Loyal"), "b3": (4, 4, 1, "Loyal"), "b4": (5, 5, 1, "Champions"), "b5": (5, 5, 1, "Champions")}
    assert got == expected


def test_rfm_segment_map() -> None:
    table = {(r, f): name for name, rs, fs in C.RFM_SEGMENTS for r in map(int, rs) for f in map(int, fs)}
    assert table[(5, 5)] == "Champions" and table[(5, 1)] == "New" and table[(4, 1)] == "Promising"
    assert table[(3, 3)] == "Need attention" and table[(3, 1)] == "About to sleep" and table[(1, 5)] == "Can't lose"
    assert table[(2, 3)] == "At risk" and table[(1, 1)] == "Hibernating" and table[(4, 3)] == "Potential loyalists"
    assert len(table) == 25  # every R x F cell has exactly one name


def test_spend_and_gap_regularity(spark: Any) -> None:
    """Spends 10, 20, 30 on days 0, 2, 8: spend mean 20, population std sqrt(200/3); gaps 2 and 6."""
    o = spark.createDataFrame(
        [b.order("a", "g", "2024-01-01 10:00:00", "10.00"), b.order("b", "g", "2024-01-03 10:00:00", "20.00"), b.order("c", "g", "2024-01-09 10:00:00", "30.00")],
        b.ORDERS,
    )
    i = spark.createDataFrame([b.line(x, 1, "p", 1, p, "1.00") for x, p in (("a", "10.00"), ("b", "20.00"), ("c", "30.00"))], b.ITEMS)
    days = customer_day(order_facts(o, i), spark.createDataFrame([], b.INTERACTIONS))
    base = C.customer_base(spark.createDataFrame([b.customer("g", "2024-01-01 00:00:00", "organic")], b.CUSTOMERS), C.customer_summary(days, SNAP), SNAP)
    r = C.customer_rfm(base, SNAP).collect()[0]
    assert r.spend_cv == pytest.approx((200 / 3) ** 0.5 / 20)
    assert r.gap_mean_days == pytest.approx(4.0)
    assert r.gap_cv == pytest.approx(2.0 / 4.0)  # gaps 2 and 6: std 2
    assert r.monetary_value == pytest.approx(25.0)  # (20 + 30) / 2
