"""Customer-day facts: the one table every snapshot metric is computed from."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.metrics.orders import CENTS, cents

_CENTS_COLS = (
    "gross_revenue_cents", "discount_cents", "refund_cents", "net_revenue_cents", "cogs_cents",
    "shipping_cost_cents", "discounted_gross_cents",
)


def customer_day(order_facts: DataFrame, interactions: DataFrame) -> DataFrame:
    """One row per customer per day with any order or interaction; money in whole cents
    (`*_cents`, bigint: see jobs.metrics.orders).

    Inputs: `order_facts` (jobs.metrics.orders.order_facts) and the interactions as of the snapshot.
    A day with at least one purchase is a purchase occasion (`is_purchase_day`); several orders on
    one day are one occasion and their money is summed.

    One pass: orders and interactions are stacked into one frame (the other side's columns null)
    and aggregated once by customer and day, instead of two aggregations and a full outer join.
    The rows are partitioned by customer_id only, so that every per-customer computation
    downstream (the summary, customer x month) reads them without another shuffle.
    """
    cents_null = F.lit(None).cast(CENTS)
    int_null = F.lit(None).cast("int")
    order_rows = order_facts.select(
        "customer_id",
        "activity_date",
        F.lit(1).alias("_order"),
        F.col("is_purchase").cast("int").alias("_purchase"),
        *[F.col(c).cast(CENTS).alias(c) for c in _CENTS_COLS],
        int_null.alias("_interaction"),
        cents_null.alias("_interaction_cost"),
        int_null.alias("_complaint"),
        int_null.alias("_satisfaction"),
    )
    interaction_rows = interactions.select(
        "customer_id",
        F.to_date("occurred_at").alias("activity_date"),
        int_null.alias("_order"),
        int_null.alias("_purchase"),
        *[cents_null.alias(c) for c in _CENTS_COLS],
        F.lit(1).alias("_interaction"),
        cents(F.col("cost")).alias("_interaction_cost"),
        (F.col("interaction_type") == "complaint").cast("int").alias("_complaint"),
        F.col("satisfaction").cast("int").alias("_satisfaction"),
    )
    by_day = (
        order_rows.unionByName(interaction_rows)
        .repartition("customer_id")
        .groupBy("customer_id", "activity_date")
        .agg(
            F.sum("_order").alias("orders"),
            F.sum("_purchase").alias("purchase_orders"),
            *[F.sum(c).alias(c) for c in _CENTS_COLS],
            F.sum("_interaction").alias("interactions"),
            F.sum("_interaction_cost").alias("interaction_cost_cents"),
            F.sum("_complaint").alias("complaints"),
            F.sum("_satisfaction").alias("satisfaction_sum"),
            F.count("_satisfaction").alias("satisfaction_count"),
        )
    )
    zero = F.lit(0).cast(CENTS)
    return by_day.select(
        "customer_id",
        "activity_date",
        F.coalesce("orders", F.lit(0)).cast("int").alias("orders"),
        F.coalesce("purchase_orders", F.lit(0)).cast("int").alias("purchase_orders"),
        (F.coalesce("purchase_orders", F.lit(0)) > 0).alias("is_purchase_day"),
        *[F.coalesce(c, zero).alias(c) for c in _CENTS_COLS],
        F.coalesce("interactions", F.lit(0)).cast("int").alias("interactions"),
        F.coalesce("interaction_cost_cents", zero).alias("interaction_cost_cents"),
        F.coalesce("complaints", F.lit(0)).cast("int").alias("complaints"),
        F.coalesce("satisfaction_sum", F.lit(0)).cast("bigint").alias("satisfaction_sum"),
        F.coalesce("satisfaction_count", F.lit(0)).cast("bigint").alias("satisfaction_count"),
    )
