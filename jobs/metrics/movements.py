"""Customer movements ("growth accounting"): new, retained, reactivated and lapsed per month."""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.metrics.cohorts import ALL_CHANNELS
from jobs.metrics.orders import MONEY, to_money

FLOWS = ("new", "retained", "reactivated", "lapsed")


def customer_movements(months: DataFrame, cohorts: DataFrame, snapshot: date) -> DataFrame:
    """One row per month x acquisition channel (and 'all'), per snapshot date.

    A customer is active in a month with a purchase occasion in it. In month m an active customer
    is `new` (first purchase in m), `retained` (also active in m-1) or `reactivated` (active before,
    not in m-1: won back). A customer active in m-1 but not in m has `lapsed` in m; their
    `lapsed_revenue` is what they spent in m-1 (revenue the month lost). Months up to the
    snapshot's month.
    """
    snap_month = F.trunc(F.lit(snapshot.isoformat()).cast("date"), "month")
    active = months.where("active").join(cohorts, "customer_id")
    by_customer = Window.partitionBy("customer_id").orderBy("month")
    prev_month = F.lag("month").over(by_customer)
    next_month = F.lead("month").over(by_customer)
    marked = active.select(
        "customer_id",
        "acquisition_channel",
        "month",
        "revenue_cents",
        F.when(F.col("month") == F.col("cohort_month"), F.lit("new"))
        .when(prev_month == F.add_months(F.col("month"), -1), F.lit("retained"))
        .otherwise(F.lit("reactivated"))
        .alias("flow"),
        next_month.alias("next_month"),
    )
    lapse_month = F.add_months(F.col("month"), 1)
    lapses = marked.where(
        (F.col("next_month").isNull() | (F.col("next_month") != lapse_month)) & (lapse_month <= snap_month)
    ).select("customer_id", "acquisition_channel", lapse_month.alias("month"), "revenue_cents", F.lit("lapsed").alias("flow"))
    flows = marked.drop("next_month").unionByName(lapses)
    per_channel = flows.groupBy("month", "acquisition_channel").agg(
        *[F.sum((F.col("flow") == f).cast("int")).cast("bigint").alias(f"{f}_customers") for f in FLOWS],
        *[to_money(F.sum(F.when(F.col("flow") == f, F.col("revenue_cents")))).alias(f"{f}_revenue") for f in FLOWS],
    )
    sums = [c for c in per_channel.columns if c not in ("month", "acquisition_channel")]
    all_channels = per_channel.groupBy("month").agg(
        F.lit(ALL_CHANNELS).alias("acquisition_channel"),
        *[F.sum(c).cast(per_channel.schema[c].dataType).alias(c) for c in sums],
    )
    rows = per_channel.unionByName(all_channels)
    zero = F.lit(0).cast(MONEY)
    return rows.select(
        F.lit(snapshot.isoformat()).cast("date").alias("snapshot_date"),
        "month",
        "acquisition_channel",
        *[F.coalesce(F.col(f"{f}_customers"), F.lit(0)).cast("bigint").alias(f"{f}_customers") for f in FLOWS],
        *[F.coalesce(F.col(f"{f}_revenue"), zero).alias(f"{f}_revenue") for f in FLOWS],
        (F.col("new_customers") + F.col("retained_customers") + F.col("reactivated_customers"))
        .cast("bigint")
        .alias("active_customers"),
    )
