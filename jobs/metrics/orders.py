"""Order-level money rules, shared by every metric.

Rules (also in schemas/marts.py, where the docs come from):
- cancelled orders carry no revenue, cost of goods or shipping;
- net revenue = gross - discount - refund;
- a fully refunded order (status `refunded`) is not a purchase and its goods came back (no cost of
  goods), but its shipping was spent;
- a purchase = an order that is neither cancelled nor fully refunded.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

MONEY = "decimal(18,2)"


def money(col: Column) -> Column:
    return col.cast(MONEY)


def order_facts(orders: DataFrame, items: DataFrame) -> DataFrame:
    """One row per order with its money split into the parts every metric uses.

    Inputs: the as-of-snapshot version of each order and of each order line.
    Output columns: order_id, customer_id, ordered_at, activity_date, channel, is_purchase,
    gross_revenue, discount, refund, net_revenue, cogs, shipping_cost, discounted_gross.
    """
    line_cost = items.groupBy("order_id").agg(
        F.sum(F.col("quantity") * F.col("unit_cost")).alias("line_cogs"),
    )
    cancelled = F.col("status") == F.lit("cancelled")
    full_refund = F.col("status") == F.lit("refunded")
    live = ~cancelled
    zero = F.lit(0).cast(MONEY)
    o = orders.join(line_cost, "order_id", "left")
    return o.select(
        "order_id",
        "customer_id",
        "ordered_at",
        F.to_date("ordered_at").alias("activity_date"),
        "channel",
        (live & ~full_refund).alias("is_purchase"),
        F.when(live, money(F.col("gross_amount"))).otherwise(zero).alias("gross_revenue"),
        F.when(live, money(F.col("discount_amount"))).otherwise(zero).alias("discount"),
        F.when(live, money(F.col("refund_amount"))).otherwise(zero).alias("refund"),
        F.when(live, money(F.col("gross_amount") - F.col("discount_amount") - F.col("refund_amount")))
        .otherwise(zero)
        .alias("net_revenue"),
        F.when(live & ~full_refund, money(F.coalesce(F.col("line_cogs"), zero))).otherwise(zero).alias("cogs"),
        F.when(live, money(F.col("shipping_cost"))).otherwise(zero).alias("shipping_cost"),
        F.when(live & (F.col("discount_amount") > 0), money(F.col("gross_amount")))
        .otherwise(zero)
        .alias("discounted_gross"),
    )
