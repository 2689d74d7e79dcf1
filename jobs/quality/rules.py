"""Row-level validity rules: each bad row gets reason codes and is left out of the metrics.

The same rules run in the gate (to quarantine and count the run's new rows) and in the metric
build (to leave every bad version out, whichever run extracted it), so they are one function.
Reason codes are documented in docs/quality.md (generated from REASONS).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from schemas.source import CURRENCIES, INTERACTION_TYPES, ORDER_STATUSES, SALES_CHANNELS

REASONS: dict[str, str] = {
    "null_key": "The row's identifier is null.",
    "null_customer_id": "customer_id is null.",
    "duplicate_order_id": "Two different rows share an order_id and updated_at: which one is true cannot be told.",
    "duplicate_interaction_id": "Two different rows share an interaction_id and updated_at.",
    "duplicate_line": "Two different rows share an order line key and updated_at.",
    "negative_amount": "A money column (gross, discount, refund, shipping, price, cost) is negative.",
    "absurd_amount": "An amount is above the run parameter max_order_amount.",
    "discount_exceeds_gross": "discount_amount is larger than gross_amount.",
    "refund_exceeds_paid": "refund_amount is larger than gross - discount.",
    "unknown_currency": "currency is not one of the accepted currencies (convert upstream).",
    "unknown_status": "status is not a known order status.",
    "unknown_channel": "channel is not a known sales channel.",
    "unknown_interaction_type": "interaction_type is not a known type.",
    "orphan_customer_id": "customer_id does not exist in customers.",
    "orphan_order_id": "The order line's order does not exist.",
    "unknown_product": "The order line's product does not exist in products.",
    "bad_quantity": "quantity is zero or negative.",
    "satisfaction_out_of_range": "satisfaction is outside 1..5.",
    "future_timestamp": "The event time is after the end of the run's window or after updated_at.",
    "before_company_start": "The event time is before the company existed (run parameter company_start).",
    "order_quarantined": "The line belongs to an order that was quarantined.",
}


@dataclass(frozen=True)
class RuleParams:
    snapshot: date
    company_start: date
    max_order_amount: float = 100_000.0
    currencies: tuple[str, ...] = CURRENCIES

    @property
    def window_end(self) -> datetime:
        return datetime.combine(self.snapshot + timedelta(days=1), time())


def _ts(value: datetime | date) -> Column:
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    return F.lit(value.isoformat(sep=" ")).cast("timestamp")


def _reasons(*checks: tuple[str, Column]) -> Column:
    """An array of the reason codes whose condition is true (nulls count as false)."""
    return F.filter(
        F.array(*[F.when(F.coalesce(cond, F.lit(False)), F.lit(code)) for code, cond in checks]),
        lambda x: x.isNotNull(),
    )


# Set by jobs.clean.snapshot_inputs.latest_versions_flagged: the duplicate rule computed in the same
# pass as the latest version. The checks use it when present (and never output it), else the window.
DUPLICATE_FLAG = "_duplicate_version"


def row_hash(df: DataFrame) -> Column:
    """The hash two versions are told apart by: every source column (not the lake's extract_date
    nor its bookkeeping columns, whose names start with `_`)."""
    return F.xxhash64(*[F.col(c) for c in df.columns if c != "extract_date" and not c.startswith("_")])


def _distinct_versions(df: DataFrame, key: list[str]) -> Column:
    if DUPLICATE_FLAG in df.columns:
        return F.col(DUPLICATE_FLAG)
    w = Window.partitionBy(*key, "updated_at")
    return F.size(F.collect_set(row_hash(df)).over(w)) > 1


def _source_columns(df: DataFrame) -> list[Column]:
    return [df[c] for c in df.columns if c != DUPLICATE_FLAG]


def check_orders(orders: DataFrame, customers: DataFrame, p: RuleParams) -> DataFrame:
    """Orders (any versions) with a `reasons` array; empty array = valid."""
    known = customers.select(F.col("customer_id").alias("_known_customer"), F.col("signup_at").alias("_signup_at")).distinct()
    o = orders.join(known, orders.customer_id == known._known_customer, "left")
    money_cols = ["gross_amount", "discount_amount", "refund_amount", "shipping_cost"]
    negative = F.greatest(*[F.col(c) < 0 for c in money_cols])
    checks = [
        ("null_key", F.col("order_id").isNull()),
        ("null_customer_id", F.col("customer_id").isNull()),
        ("duplicate_order_id", _distinct_versions(orders, ["order_id"])),
        ("negative_amount", negative),
        ("absurd_amount", F.col("gross_amount") > p.max_order_amount),
        ("discount_exceeds_gross", F.col("discount_amount") > F.col("gross_amount")),
        ("refund_exceeds_paid", F.col("refund_amount") > F.col("gross_amount") - F.col("discount_amount")),
        ("unknown_currency", ~F.col("currency").isin(list(p.currencies)) | F.col("currency").isNull()),
        ("unknown_status", ~F.col("status").isin(list(ORDER_STATUSES)) | F.col("status").isNull()),
        ("unknown_channel", ~F.col("channel").isin(list(SALES_CHANNELS)) | F.col("channel").isNull()),
        ("orphan_customer_id", F.col("customer_id").isNotNull() & F.col("_known_customer").isNull()),
        ("future_timestamp", (F.col("ordered_at") >= _ts(p.window_end)) | (F.col("ordered_at") > F.col("updated_at"))),
        ("before_company_start", F.col("ordered_at") < _ts(p.company_start)),
    ]
    return o.select(*_source_columns(orders), _reasons(*checks).alias("reasons"))


def check_order_items(items: DataFrame, orders_checked: DataFrame, products: DataFrame) -> DataFrame:
    """Order lines with `reasons`. A line of an order whose every version is bad is quarantined
    with `order_quarantined` (its money would otherwise vanish without a trace)."""
    order_state = orders_checked.groupBy(F.col("order_id").alias("_oid")).agg(
        F.max((F.size("reasons") == 0).cast("int")).alias("_order_ok")
    )
    known_products = products.select(F.col("product_id").alias("_pid")).distinct()
    i = items.join(order_state, items.order_id == order_state._oid, "left").join(
        known_products, items.product_id == known_products._pid, "left"
    )
    checks = [
        ("null_key", F.col("order_id").isNull() | F.col("line_number").isNull()),
        ("duplicate_line", _distinct_versions(items, ["order_id", "line_number"])),
        ("orphan_order_id", F.col("order_id").isNotNull() & F.col("_oid").isNull()),
        ("order_quarantined", F.col("_order_ok") == 0),
        ("unknown_product", F.col("_pid").isNull()),
        ("bad_quantity", F.col("quantity") <= 0),
        ("negative_amount", (F.col("unit_price") < 0) | (F.col("unit_cost") < 0)),
    ]
    return i.select(*_source_columns(items), _reasons(*checks).alias("reasons"))


def check_interactions(interactions: DataFrame, customers: DataFrame, p: RuleParams) -> DataFrame:
    """Interactions with `reasons`."""
    known = customers.select(F.col("customer_id").alias("_known_customer")).distinct()
    i = interactions.join(known, interactions.customer_id == known._known_customer, "left")
    checks = [
        ("null_key", F.col("interaction_id").isNull()),
        ("null_customer_id", F.col("customer_id").isNull()),
        ("duplicate_interaction_id", _distinct_versions(interactions, ["interaction_id"])),
        ("orphan_customer_id", F.col("customer_id").isNotNull() & F.col("_known_customer").isNull()),
        ("unknown_interaction_type", ~F.col("interaction_type").isin(list(INTERACTION_TYPES))),
        ("negative_amount", F.col("cost") < 0),
        ("satisfaction_out_of_range", (F.col("satisfaction") < 1) | (F.col("satisfaction") > 5)),
        ("future_timestamp", (F.col("occurred_at") >= _ts(p.window_end)) | (F.col("occurred_at") > F.col("updated_at"))),
        ("before_company_start", F.col("occurred_at") < _ts(p.company_start)),
    ]
    return i.select(*_source_columns(interactions), _reasons(*checks).alias("reasons"))


def valid(checked: DataFrame) -> DataFrame:
    return checked.where(F.size("reasons") == 0).drop("reasons")


def invalid(checked: DataFrame) -> DataFrame:
    return checked.where(F.size("reasons") > 0)
