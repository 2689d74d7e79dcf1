"""Cohort retention: cohort month x acquisition channel (plus 'all') x period."""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.metrics.orders import MONEY, to_money

ALL_CHANNELS = "all"


def customer_month(customer_day: DataFrame) -> DataFrame:
    """One row per customer per calendar month with any activity: active flag (a purchase
    occasion in the month), net revenue and contribution margin
    (revenue - cost of goods - shipping - interaction costs), in whole cents."""
    margin = (
        F.col("net_revenue_cents") - F.col("cogs_cents") - F.col("shipping_cost_cents") - F.col("interaction_cost_cents")
    )
    return customer_day.groupBy("customer_id", F.trunc("activity_date", "month").alias("month")).agg(
        (F.max(F.col("is_purchase_day").cast("int")) == 1).alias("active"),
        F.sum("net_revenue_cents").alias("revenue_cents"),
        F.sum(margin).alias("margin_cents"),
    )


def customer_cohort(base: DataFrame) -> DataFrame:
    """One row per customer with a purchase: cohort month (month of the first purchase),
    acquisition channel, and the month of the last purchase (the customer's last active month)."""
    return base.where(F.col("purchase_days") > 0).select(
        "customer_id",
        F.trunc("first_purchase_date", "month").alias("cohort_month"),
        F.coalesce("acquisition_channel", F.lit("unknown")).alias("acquisition_channel"),
        F.trunc("last_purchase_date", "month").alias("last_active_month"),
    )


def _months_between(later: F.Column, earlier: F.Column) -> F.Column:
    return F.months_between(later, earlier).cast("int")


def cohort_retention(months: DataFrame, cohorts: DataFrame, snapshot: date) -> DataFrame:
    """One row per cohort month x acquisition channel (and 'all') x period, per snapshot date.

    Period k = whole calendar months since the cohort month. Right-censored: periods after the
    snapshot's month do not exist (no rows, never zeros); the snapshot's own month is included
    and flagged `is_complete_period = false` unless the snapshot is its last day.

    Two aggregations touch customer-level data, each once: customer x month (joined once to the
    customer's cohort) by cohort x channel x period, and the cohorts by cohort x channel x last
    active period (which also gives the cohort sizes). Everything after that is a few thousand
    rows; the 'all' channel rows come from the per-channel rows in the same final aggregation.
    """
    snap = F.lit(snapshot.isoformat()).cast("date")
    snap_month = F.trunc(snap, "month")
    keys = ["cohort_month", "acquisition_channel"]
    cm = months.join(cohorts.select("customer_id", *keys), "customer_id").withColumn(
        "period", _months_between(F.col("month"), F.col("cohort_month"))
    )
    by_period = (
        cm.where(F.col("period") >= 0)
        .groupBy(*keys, "period")
        .agg(
            F.sum(F.col("active").cast("int")).alias("active_customers"),
            to_money(F.sum("revenue_cents")).alias("revenue"),
            to_money(F.sum("margin_cents")).alias("margin"),
        )
    )
    # customers by cohort x channel x last active period: summed over periods, the cohort sizes
    by_last = cohorts.groupBy(
        *keys, _months_between(F.col("last_active_month"), F.col("cohort_month")).alias("period")
    ).agg(F.count(F.lit(1)).alias("customers"))
    last_active = by_last.where(F.col("period") >= 0).select(
        *keys, "period", F.col("customers").alias("last_active_here")
    )
    sizes = by_last.groupBy(*keys).agg(F.sum("customers").alias("cohort_size"))
    grid = sizes.select(
        *keys,
        "cohort_size",
        F.explode(F.sequence(F.lit(0), _months_between(snap_month, F.col("cohort_month")))).alias("period"),
    )
    per_channel = (
        grid.join(F.broadcast(by_period), [*keys, "period"], "left")
        .join(F.broadcast(last_active), [*keys, "period"], "left")
        .select(
            "cohort_month",
            F.explode(F.array("acquisition_channel", F.lit(ALL_CHANNELS))).alias("acquisition_channel"),
            "period",
            "cohort_size",
            F.coalesce("active_customers", F.lit(0)).cast("bigint").alias("active_customers"),
            F.coalesce("last_active_here", F.lit(0)).cast("bigint").alias("last_active_here"),
            F.coalesce("revenue", F.lit(0).cast(MONEY)).alias("revenue"),
            F.coalesce("margin", F.lit(0).cast(MONEY)).alias("margin"),
        )
    )
    # each per-channel row once under its own channel and once under 'all'
    rows = per_channel.groupBy(*keys, "period").agg(
        F.sum("cohort_size").alias("cohort_size"),
        F.sum("active_customers").alias("active_customers"),
        F.sum("last_active_here").alias("last_active_here"),
        F.sum("revenue").cast(MONEY).alias("revenue"),
        F.sum("margin").cast(MONEY).alias("margin"),
    )
    cohort = Window.partitionBy(*keys)
    to_date = cohort.orderBy("period").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    from_here = cohort.orderBy("period").rowsBetween(Window.currentRow, Window.unboundedFollowing)
    period_month = F.add_months(F.col("cohort_month"), F.col("period"))
    last_day = F.last_day(period_month)
    revenue_0 = F.first(F.when(F.col("period") == 0, F.col("revenue")), ignorenulls=True).over(cohort)
    unbounded_active = F.sum("last_active_here").over(from_here)
    return rows.select(
        snap.alias("snapshot_date"),
        "cohort_month",
        "acquisition_channel",
        F.col("period").cast("int").alias("period"),
        period_month.alias("period_month"),
        (last_day <= snap).alias("is_complete_period"),
        F.col("cohort_size").cast("bigint").alias("cohort_size"),
        "active_customers",
        (F.col("active_customers") / F.col("cohort_size")).alias("retention_rate"),
        unbounded_active.cast("bigint").alias("unbounded_active_customers"),
        (unbounded_active / F.col("cohort_size")).alias("unbounded_retention_rate"),
        "revenue",
        # ratios as doubles of doubles: a decimal quotient's scale is each engine's own choice
        F.when(revenue_0 != 0, F.col("revenue").cast("double") / revenue_0.cast("double")).alias("revenue_vs_period_0"),
        "margin",
        (F.sum("revenue").over(to_date).cast("double") / F.col("cohort_size")).alias("cumulative_revenue_per_customer"),
        (F.sum("margin").over(to_date).cast("double") / F.col("cohort_size")).alias("cumulative_margin_per_customer"),
    )
