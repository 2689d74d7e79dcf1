"""Customer movements ("growth accounting"): new, retained, reactivated and lapsed per month."""

from __future__ import annotations

from datetime import date, timedelta

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
    snapshot's month. The snapshot's own month is complete only when the snapshot is its last
    day (`is_complete_month`): before that, nobody has lapsed in it yet (they may still buy).
    """
    snap_month = F.trunc(F.lit(snapshot.isoformat()).cast("date"), "month")
    month_is_over = (snapshot + timedelta(days=1)).day == 1
    last_complete = snap_month if month_is_over else F.add_months(snap_month, -1)
    active = months.where("active").join(cohorts, "customer_id")
    by_customer = Window.partitionBy("customer_id").orderBy("month")
    prev_month = F.lag("month").over(by_customer)
    next_month = F.lead("month").over(by_customer)
    flow = (
        F.when(F.col("month") == F.col("cohort_month"), F.lit("new"))
        .when(prev_month == F.add_months(F.col("month"), -1), F.lit("retained"))
        .otherwise(F.lit("reactivated"))
    )
    marked = active.select("acquisition_channel", "month", "revenue_cents", flow.alias("flow"), next_month.alias("next_month"))
    # one pass over the window: each active month is one event, plus a `lapsed` event in the next
    # month when the customer is not active then; each event counts under its channel and 'all'
    lapse_month = F.add_months(F.col("month"), 1)
    lapsing = (F.col("next_month").isNull() | (F.col("next_month") != lapse_month)) & (lapse_month <= last_complete)
    event = F.explode(
        F.array(
            F.struct(F.col("month").alias("month"), F.col("flow").alias("flow")),
            F.when(lapsing, F.struct(lapse_month.alias("month"), F.lit("lapsed").alias("flow"))),
        )
    )
    events = (
        marked.select(event.alias("e"), "acquisition_channel", "revenue_cents")
        .where(F.col("e").isNotNull())
        .select(
            "e.month",
            "e.flow",
            "revenue_cents",
            F.explode(F.array("acquisition_channel", F.lit(ALL_CHANNELS))).alias("acquisition_channel"),
        )
    )
    rows = events.groupBy("month", "acquisition_channel").agg(
        *[F.sum((F.col("flow") == f).cast("int")).cast("bigint").alias(f"{f}_customers") for f in FLOWS],
        *[to_money(F.sum(F.when(F.col("flow") == f, F.col("revenue_cents")))).alias(f"{f}_revenue") for f in FLOWS],
    )
    zero = F.lit(0).cast(MONEY)
    return rows.select(
        F.lit(snapshot.isoformat()).cast("date").alias("snapshot_date"),
        "month",
        "acquisition_channel",
        (F.col("month") <= last_complete).alias("is_complete_month"),
        *[F.coalesce(F.col(f"{f}_customers"), F.lit(0)).cast("bigint").alias(f"{f}_customers") for f in FLOWS],
        *[F.coalesce(F.col(f"{f}_revenue"), zero).alias(f"{f}_revenue") for f in FLOWS],
        (F.col("new_customers") + F.col("retained_customers") + F.col("reactivated_customers"))
        .cast("bigint")
        .alias("active_customers"),
    )
