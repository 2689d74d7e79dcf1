"""Tiny input tables with the lake's columns, for hand-computed metric tests."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

ORDERS = (
    "order_id string, customer_id string, ordered_at timestamp, channel string, status string, currency string, "
    "gross_amount decimal(14,2), discount_amount decimal(14,2), refund_amount decimal(14,2), "
    "shipping_cost decimal(12,2), updated_at timestamp"
)
ITEMS = (
    "order_id string, line_number int, product_id string, quantity int, unit_price decimal(12,2), "
    "unit_cost decimal(12,2), updated_at timestamp"
)
INTERACTIONS = (
    "interaction_id string, customer_id string, occurred_at timestamp, interaction_type string, "
    "cost decimal(10,2), satisfaction int, updated_at timestamp"
)
CUSTOMERS = (
    "customer_id string, signup_at timestamp, acquisition_channel string, acquisition_cost decimal(12,2), "
    "region string, referred_by string, updated_at timestamp"
)
PRODUCTS = "product_id string, category string, list_price decimal(12,2), unit_cost decimal(12,2), updated_at timestamp"
SPEND = "month date, channel string, spend decimal(14,2), updated_at timestamp"


def d(x: str) -> Decimal:
    return Decimal(x)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def order(oid: str, cust: str, at: str, gross: str, *, status: str = "completed", channel: str = "web",
          discount: str = "0", refund: str = "0", shipping: str = "0") -> tuple[Any, ...]:
    return (oid, cust, ts(at), channel, status, "USD", d(gross), d(discount), d(refund), d(shipping), ts(at))


def line(oid: str, n: int, product: str, qty: int, price: str, cost: str) -> tuple[Any, ...]:
    return (oid, n, product, qty, d(price), d(cost), ts("2024-01-01"))


def interaction(iid: str, cust: str, at: str, kind: str, cost: str, satisfaction: int | None = None) -> tuple[Any, ...]:
    return (iid, cust, ts(at), kind, d(cost), satisfaction, ts(at))


def customer(cid: str, signup: str, channel: str, acq: str = "0", referred_by: str | None = None, region: str = "north") -> tuple[Any, ...]:
    return (cid, ts(signup), channel, d(acq), region, referred_by, ts(signup))


def spend(month: str, channel: str, amount: str) -> tuple[Any, ...]:
    return (date.fromisoformat(month), channel, d(amount), ts(month))
