"""Customer-day facts: the one table every snapshot metric is computed from."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.metrics.orders import MONEY

_MONEY_COLS = ("gross_revenue", "discount", "refund", "net_revenue", "cogs", "shipping_cost", "discounted_gross")


def customer_day(order_facts: DataFrame, interactions: DataFrame) -> DataFrame:
    """One row per customer per day with any order or interaction.

    Inputs: `order_facts` (jobs.metrics.orders.order_facts) and the interactions as of the snapshot.
    A day with at least one purchase is a purchase occasion (`is_purchase_day`); several orders on
    one day are one occasion and their money is summed.
    """
    orders_by_day = order_facts.groupBy("customer_id", "activity_date").agg(
        F.count(F.lit(1)).alias("orders"),
        F.sum(F.col("is_purchase").cast("int")).alias("purchase_orders"),
        *[F.sum(c).cast(MONEY).alias(c) for c in _MONEY_COLS],
    )
    interactions_by_day = interactions.groupBy(
        "customer_id", F.to_date("occurred_at").alias("activity_date")
    ).agg(
        F.count(F.lit(1)).alias("interactions"),
        F.sum(F.col("cost")).cast(MONEY).alias("interaction_cost"),
        F.sum((F.col("interaction_type") == "complaint").cast("int")).alias("complaints"),
        F.sum(F.col("satisfaction")).alias("satisfaction_sum"),
        F.count(F.col("satisfaction")).alias("satisfaction_count"),
    )
    zero = F.lit(0).cast(MONEY)
    joined = orders_by_day.join(interactions_by_day, ["customer_id", "activity_date"], "full_outer")
    return joined.select(
        "customer_id",
        "activity_date",
        F.coalesce("orders", F.lit(0)).cast("int").alias("orders"),
        F.coalesce("purchase_orders", F.lit(0)).cast("int").alias("purchase_orders"),
        (F.coalesce("purchase_orders", F.lit(0)) > 0).alias("is_purchase_day"),
        *[F.coalesce(c, zero).alias(c) for c in _MONEY_COLS],
        F.coalesce("interactions", F.lit(0)).cast("int").alias("interactions"),
        F.coalesce("interaction_cost", zero).alias("interaction_cost"),
        F.coalesce("complaints", F.lit(0)).cast("int").alias("complaints"),
        F.coalesce("satisfaction_sum", F.lit(0)).cast("bigint").alias("satisfaction_sum"),
        F.coalesce("satisfaction_count", F.lit(0)).cast("bigint").alias("satisfaction_count"),
    )
