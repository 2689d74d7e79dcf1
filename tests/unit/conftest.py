"""The scenario most metric tests share, with every number worked out by hand in the tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit import builders as b


@pytest.fixture(scope="module")
def scenario(spark: Any) -> dict[str, Any]:
    """Four customers, snapshot 2024-03-31.

    c1 (direct_mail, acquisition 10.00): two orders on 2024-01-05 (o1 100.00 - 10.00 discount, o2 50.00),
       a support ticket on 2024-02-01 (3.00), a partly refunded order on 2024-03-01 (80.00 - 20.00).
    c2 (affiliate, 2.00, referred by c1): a fully refunded order on 2024-02-10, an order on 2024-02-11 (40.00, store).
    c3 (affiliate, 2.00): a cancelled order on 2024-01-20, a survey on 2024-02-02 (1.00, satisfaction 4).
    c4 (organic): signed up 2024-03-01, nothing else (a prospect).
    """
    orders = spark.createDataFrame(
        [
            b.order("o1", "c1", "2024-01-05 10:00:00", "100.00", discount="10.00", shipping="5.00"),
            b.order("o2", "c1", "2024-01-05 15:00:00", "50.00", channel="app", shipping="5.00"),
            b.order("o3", "c1", "2024-03-01 09:00:00", "80.00", status="partially_refunded", refund="20.00", shipping="5.00"),
            b.order("o4", "c2", "2024-02-10 09:00:00", "30.00", status="refunded", refund="30.00", shipping="4.00"),
            b.order("o5", "c2", "2024-02-11 09:00:00", "40.00", channel="store"),
            b.order("o6", "c3", "2024-01-20 09:00:00", "70.00", status="cancelled", shipping="4.00"),
        ],
        b.ORDERS,
    )
    items = spark.createDataFrame(
        [
            b.line("o1", 1, "p1", 2, "50.00", "20.00"),
            b.line("o2", 1, "p2", 1, "50.00", "30.00"),
            b.line("o3", 1, "p1", 1, "80.00", "40.00"),
            b.line("o4", 1, "p2", 1, "30.00", "10.00"),
            b.line("o5", 1, "p2", 1, "40.00", "15.00"),
            b.line("o6", 1, "p1", 1, "70.00", "30.00"),
        ],
        b.ITEMS,
    )
    interactions = spark.createDataFrame(
        [
            b.interaction("i1", "c1", "2024-02-01 12:00:00", "support_ticket", "3.00"),
            b.interaction("i2", "c3", "2024-02-02 12:00:00", "survey", "1.00", 4),
        ],
        b.INTERACTIONS,
    )
    customers = spark.createDataFrame(
        [
            b.customer("c1", "2024-01-01 00:00:00", "direct_mail", "10.00"),
            b.customer("c2", "2024-02-01 00:00:00", "affiliate", "2.00", referred_by="c1", region="south"),
            b.customer("c3", "2024-01-15 00:00:00", "affiliate", "2.00"),
            b.customer("c4", "2024-03-01 00:00:00", "organic"),
        ],
        b.CUSTOMERS,
    )
    products = spark.createDataFrame(
        [("p1", "music", b.d("50.00"), b.d("20.00"), b.ts("2024-01-01")), ("p2", "books", b.d("50.00"), b.d("30.00"), b.ts("2024-01-01"))],
        b.PRODUCTS,
    )
    spend = spark.createDataFrame(
        [b.spend("2024-01-01", "direct_mail", "100.00"), b.spend("2024-02-01", "affiliate", "20.00"), b.spend("2024-03-01", "social", "50.00")],
        b.SPEND,
    )
    return {"orders": orders, "items": items, "interactions": interactions, "customers": customers, "products": products, "spend": spend}
