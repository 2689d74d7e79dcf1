"""Net and gross revenue retention (NRR, GRR): the same customers over two equal trailing windows."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.metrics.cohorts import ALL_CHANNELS
from jobs.metrics.orders import to_money

WINDOW_MONTHS = (3, 12)


def months_before(day: date, months: int) -> date:
    """The same day `months` calendar months earlier; a month's last day maps to the target
    month's last day (2024-06-30 -> 2024-03-31 for three months), and a day the target month
    lacks to its last day (2024-03-30 -> 2024-02-29 for one month)."""
    year, month0 = divmod(day.year * 12 + day.month - 1 - months, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    month_end = day.day == calendar.monthrange(day.year, day.month)[1]
    return date(year, month0 + 1, last if month_end else min(day.day, last))


@dataclass(frozen=True)
class Windows:
    """Two back-to-back windows of `months` months ending at the snapshot: the prior window
    (prior_start..prior_end) and the current one (start..snapshot), both ends inclusive."""

    months: int
    prior_start: date
    prior_end: date
    start: date
    end: date

    @classmethod
    def ending(cls, snapshot: date, months: int) -> Windows:
        prior_end = months_before(snapshot, months)
        return cls(months, months_before(snapshot, 2 * months) + timedelta(days=1), prior_end, prior_end + timedelta(days=1), snapshot)


def revenue_retention(days: DataFrame, base: DataFrame, snapshot: date, window_months: tuple[int, ...] = WINDOW_MONTHS) -> DataFrame:
    """One row per acquisition channel (plus 'all') x window length, per snapshot date.

    Inputs: customer_day as of the snapshot and the customer base (for the acquisition channel).
    The starting customers are those with net revenue above zero in the prior window; their
    revenue in the current window, floored at zero per customer (refunds cannot take back more
    than a customer brought), is split into what they kept, expanded, contracted and churned:
    NRR = current / prior revenue of those customers; GRR caps each at their prior revenue.
    Customers new in the current window are not in either ratio.
    """
    spans = [Windows.ending(snapshot, m) for m in window_months]
    first = min(w.prior_start for w in spans)

    def between(lo: date, hi: date) -> F.Column:
        inside = F.col("activity_date").between(F.lit(lo), F.lit(hi))
        return F.sum(F.when(inside, F.col("net_revenue_cents")).otherwise(0))

    per_customer = days.where(F.col("activity_date").between(F.lit(first), F.lit(snapshot))).groupBy("customer_id").agg(
        *[between(w.prior_start, w.prior_end).alias(f"prior_{w.months}") for w in spans],
        *[between(w.start, w.end).alias(f"current_{w.months}") for w in spans],
    )
    window_rows = F.explode(
        F.array(*[
            F.struct(
                F.lit(w.months).alias("window_months"),
                F.coalesce(F.col(f"prior_{w.months}"), F.lit(0)).alias("prior"),
                F.greatest(F.coalesce(F.col(f"current_{w.months}"), F.lit(0)), F.lit(0)).alias("current"),
            )
            for w in spans
        ])
    )
    channel = F.coalesce(F.col("acquisition_channel"), F.lit("unknown"))
    # every customer of the base, so that every channel has a row even with no starting customers
    rows = (
        base.select("customer_id", channel.alias("channel"))
        .join(per_customer, "customer_id", "left")
        .select(F.explode(F.array("channel", F.lit(ALL_CHANNELS))).alias("acquisition_channel"), window_rows.alias("w"))
        .select("acquisition_channel", "w.*")
    )
    starting = F.col("prior") > 0
    prior = F.when(starting, F.col("prior"))
    current = F.when(starting, F.col("current"))
    agg = rows.groupBy("acquisition_channel", "window_months").agg(
        F.count(prior).alias("starting_customers"),
        F.count(F.when(starting & (F.col("current") > 0), True)).alias("retained_customers"),
        F.sum(prior).alias("prior"),
        F.sum(current).alias("current"),
        F.sum(F.least(current, prior)).alias("kept"),
        F.sum(F.when(starting & (F.col("current") > F.col("prior")), F.col("current") - F.col("prior"))).alias("expansion"),
        F.sum(F.when(starting & (F.col("current") > 0) & (F.col("current") < F.col("prior")), F.col("prior") - F.col("current"))).alias("contraction"),
        F.sum(F.when(starting & (F.col("current") == 0), F.col("prior"))).alias("churned"),
    )
    history_start = days.agg(F.min("activity_date").alias("history_start"))
    bounds = F.array(*[
        F.struct(F.lit(w.months).alias("window_months"), F.lit(w.prior_start).alias("prior_window_start"),
                 F.lit(w.prior_end).alias("prior_window_end"), F.lit(w.start).alias("window_start"))
        for w in spans
    ])
    spark = days.sparkSession
    windows = spark.range(1).select(F.explode(bounds).alias("b")).select("b.*").crossJoin(history_start)

    def money(col: str) -> F.Column:
        return to_money(F.coalesce(F.col(col), F.lit(0)))

    ratio = F.col("prior").cast("double")
    return agg.join(F.broadcast(windows), "window_months").select(
        F.lit(snapshot).alias("snapshot_date"),
        "acquisition_channel",
        F.col("window_months").cast("int").alias("window_months"),
        "prior_window_start",
        "prior_window_end",
        "window_start",
        F.lit(snapshot).alias("window_end"),
        F.coalesce(F.col("history_start") <= F.col("prior_window_start"), F.lit(False)).alias("is_full_prior_window"),
        F.col("starting_customers").cast("bigint").alias("starting_customers"),
        F.col("retained_customers").cast("bigint").alias("retained_customers"),
        (F.col("retained_customers") / F.when(F.col("starting_customers") > 0, F.col("starting_customers"))).alias("customer_retention_rate"),
        money("prior").alias("prior_revenue"),
        money("current").alias("current_revenue"),
        money("expansion").alias("expansion_revenue"),
        money("contraction").alias("contraction_revenue"),
        money("churned").alias("churned_revenue"),
        (F.col("current") / ratio).alias("net_revenue_retention"),
        (F.col("kept") / ratio).alias("gross_revenue_retention"),
    )
