"""Channel economics: acquisition cost against the value each channel's cohorts produce."""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.metrics.cohorts import ALL_CHANNELS
from jobs.metrics.orders import MONEY

RETENTION_PERIODS = (3, 6, 12)
LTV_PERIODS = (3, 6, 12, 24)


def channel_economics(cohort_retention: DataFrame, marketing_spend: DataFrame, snapshot: date) -> DataFrame:
    """One row per acquisition channel (and 'all') x acquisition month, per snapshot date.

    CAC = the channel's marketing spend in the month / customers acquired (first purchase) in it.
    Period 0 is the acquisition month, so a k-month window is periods 0..k-1. Retention at month k
    (`retention_km`) = bounded retention in period k, the k-th month after the acquisition month.
    k-month LTV (`margin_per_customer_km`) = cumulative margin per acquired customer over the first
    k months, periods 0..k-1. Each is null until its last period is complete (censored). Payback =
    the number of months, counting the acquisition month, until the cumulative margin per customer
    reaches CAC (1 = within the acquisition month): payback_months = k exactly when k-month LTV is
    the first to reach CAC.
    """
    complete = F.col("is_complete_period")

    def at(period: int, column: str) -> F.Column:
        return F.max(F.when(complete & (F.col("period") == period), F.col(column)))

    cohort = cohort_retention.groupBy(
        F.col("acquisition_channel"), F.col("cohort_month").alias("acquisition_month")
    ).agg(
        F.max("cohort_size").alias("customers_acquired"),
        *[at(k, "retention_rate").alias(f"retention_{k}m") for k in RETENTION_PERIODS],
        *[at(k - 1, "cumulative_margin_per_customer").alias(f"margin_per_customer_{k}m") for k in LTV_PERIODS],
        F.max(F.when(complete, F.col("period"))).alias("_last_complete"),
        F.collect_list(
            F.when(complete, F.struct("period", "cumulative_margin_per_customer"))
        ).alias("_curve"),
    )
    spend = marketing_spend.where(F.col("month") <= F.lit(snapshot.isoformat()).cast("date")).select(
        F.col("channel").alias("acquisition_channel"),
        F.trunc("month", "month").alias("acquisition_month"),
        F.col("spend").cast(MONEY).alias("spend"),
    )
    spend = spend.groupBy("acquisition_channel", "acquisition_month").agg(F.sum("spend").cast(MONEY).alias("spend"))
    spend_all = spend.groupBy("acquisition_month").agg(
        F.lit(ALL_CHANNELS).alias("acquisition_channel"), F.sum("spend").cast(MONEY).alias("spend")
    )
    spend = spend.unionByName(spend_all)
    joined = cohort.join(spend, ["acquisition_channel", "acquisition_month"], "full_outer")
    acquired = F.coalesce(F.col("customers_acquired"), F.lit(0))
    cac = F.when(acquired > 0, F.coalesce(F.col("spend"), F.lit(0)).cast("double") / acquired)
    payback = F.aggregate(
        F.filter(F.coalesce(F.col("_curve"), F.array()), lambda p: p["cumulative_margin_per_customer"] >= F.col("cac")),
        F.lit(None).cast("int"),
        lambda acc, p: F.when(acc.isNull() | (p["period"] + 1 < acc), p["period"] + 1).otherwise(acc),
    )
    with_cac = joined.withColumn("cac", cac)
    return with_cac.select(
        F.lit(snapshot.isoformat()).cast("date").alias("snapshot_date"),
        "acquisition_channel",
        "acquisition_month",
        acquired.cast("bigint").alias("customers_acquired"),
        F.coalesce(F.col("spend"), F.lit(0).cast(MONEY)).alias("spend"),
        F.col("cac"),
        *[F.col(f"retention_{k}m") for k in RETENTION_PERIODS],
        *[F.col(f"margin_per_customer_{k}m") for k in LTV_PERIODS],
        F.when(F.col("cac") > 0, F.col("margin_per_customer_12m") / F.col("cac")).alias("ltv_to_cac_12m"),
        F.when(F.col("cac").isNotNull(), payback).alias("payback_months"),
    )
