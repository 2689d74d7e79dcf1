"""Per-customer metrics as of a snapshot date: summary, profitability, RFM, segments.

Ranks, deciles and scores use exact window ranks (`row_number` / `ntile` / `rank`) over the buyers.
That is one sort of the customer table in a single partition: exact, and cheap next to the
customer-day aggregation (1M customers sort in seconds). Ties are broken by customer_id so that
reruns give identical tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.metrics.orders import MONEY, to_money

DAYS_PER_WEEK = 7.0
# summary money column <- customer_day column (both in cents while summed)
_SUMMARY_MONEY = (
    ("gross_revenue", "gross_revenue"), ("discounts", "discount"), ("refunds", "refund"), ("revenue", "net_revenue"),
    ("cogs", "cogs"), ("shipping_cost", "shipping_cost"), ("interaction_cost", "interaction_cost"),
    ("discounted_gross", "discounted_gross"),
)


@dataclass(frozen=True)
class SegmentRules:
    """Thresholds for lifecycle stages, the loyalty ladder and the Kotler quadrants.

    Every field is a run parameter (see jobs.platform.config / the DAG params) and documented in
    schemas/marts.py.
    """

    lapse_days: int = 365
    active_days: int = 90
    development_days: int = 365
    decline_gap_factor: float = 2.0
    supporter_min_repeat: int = 3
    supporter_min_month_share: float = 0.25
    partner_max_decile: int = 2
    partner_min_tenure_days: int = 365
    kotler_profit_threshold: float | None = None  # None: median of net profit over buyers
    kotler_loyalty_threshold: float | None = None  # None: median of loyalty_score over buyers


def snapshot_end(snapshot: date) -> Column:
    """Exclusive end of the snapshot day as a timestamp literal (UTC)."""
    return F.lit((snapshot + timedelta(days=1)).isoformat()).cast("timestamp")


def customer_summary(customer_day: DataFrame, snapshot: date) -> DataFrame:
    """One row per customer with any activity up to the snapshot: money totals, purchase days,
    first/last purchase, spend and gap statistics, and the lifetimes-style fields.

    Two branches over the customer-days, joined by customer: the sums over every day (a hash
    aggregation, no sort), and the purchase-day statistics from the purchase days alone, narrowed
    to (customer, day, spend) and sorted by day within the customer so that `lag` finds the
    previous purchase day. The order-sensitive double aggregates (spend and gap mean and standard
    deviation) see their values in date order, as a single sorted pass would.
    """
    purchase_days = customer_day.where(F.col("is_purchase_day")).select(
        "customer_id", F.col("activity_date").alias("purchase_date"), F.col("net_revenue_cents").alias("spend")
    )
    previous = F.lag("purchase_date").over(Window.partitionBy("customer_id").orderBy("purchase_date"))
    gaps = purchase_days.select(
        "customer_id",
        "purchase_date",
        "spend",
        F.datediff("purchase_date", previous).alias("gap_days"),
        (previous.isNull() | (F.trunc(previous, "month") != F.trunc("purchase_date", "month"))).alias("new_month"),
    )
    # spend in currency units as a double: cents / 100 is what casting the decimal gave
    spend_units = F.col("spend").cast("double") / 100
    occasions = gaps.groupBy("customer_id").agg(
        F.sum(F.col("new_month").cast("int")).alias("active_months"),
        F.min("purchase_date").alias("first_purchase_date"),
        F.max("purchase_date").alias("last_purchase_date"),
        F.sum("spend").alias("purchase_spend_cents"),
        F.min_by("spend", "purchase_date").alias("first_day_spend_cents"),
        F.avg(spend_units).alias("spend_mean"),
        F.stddev_pop(spend_units).alias("spend_std"),
        F.avg(F.col("gap_days").cast("double")).alias("gap_mean_days"),
        F.stddev_pop(F.col("gap_days").cast("double")).alias("gap_std_days"),
    )
    totals = customer_day.groupBy("customer_id").agg(
        F.sum("orders").alias("orders"),
        F.sum("purchase_orders").alias("purchase_orders"),
        F.sum(F.col("is_purchase_day").cast("int")).alias("purchase_days"),
        *[F.sum(f"{day_col}_cents").alias(f"{col}_cents") for col, day_col in _SUMMARY_MONEY],
        F.sum("interactions").alias("interactions"),
        F.sum("complaints").alias("complaints"),
        F.sum("satisfaction_sum").alias("satisfaction_sum"),
        F.sum("satisfaction_count").alias("satisfaction_count"),
    )
    s = totals.join(occasions, "customer_id", "left").select(
        "customer_id", "orders", "purchase_orders", "purchase_days", "active_months",
        *[to_money(F.col(f"{col}_cents")).alias(col) for col, _ in _SUMMARY_MONEY],
        "interactions", "complaints", "satisfaction_sum", "satisfaction_count", "first_purchase_date",
        "last_purchase_date", to_money(F.col("purchase_spend_cents")).alias("purchase_spend"),
        "purchase_spend_cents", "first_day_spend_cents", "spend_mean", "spend_std",
        "gap_mean_days", "gap_std_days",
    )
    snap = F.lit(snapshot.isoformat()).cast("date")
    frequency = (F.col("purchase_days") - 1).cast("int")
    bought = F.col("purchase_days") > 0
    return s.select(
        "*",
        F.when(bought, frequency).alias("frequency"),
        F.when(bought, F.datediff("last_purchase_date", "first_purchase_date") / DAYS_PER_WEEK).alias("recency"),
        F.when(bought, F.datediff(snap, "first_purchase_date") / DAYS_PER_WEEK).alias("T"),
        F.when(
            bought,
            F.when(
                frequency > 0,
                ((F.col("purchase_spend_cents") - F.col("first_day_spend_cents")).cast("double") / 100) / frequency,
            ).otherwise(F.lit(0.0)),
        ).alias("monetary_value"),
        F.when(bought, F.datediff(snap, "last_purchase_date")).alias("days_since_last_purchase"),
        F.when(bought, F.datediff(snap, "first_purchase_date")).alias("tenure_days"),
    ).drop("purchase_spend_cents", "first_day_spend_cents")


def customer_base(customers: DataFrame, summary: DataFrame, snapshot: date) -> DataFrame:
    """One row per customer known at the snapshot (signed up by then, or with activity by then),
    with their acquisition attributes and activity summary (nulls -> zero for money).

    One full outer join of the customers with the summary, keeping the customers signed up by
    the snapshot and every customer with activity (known or not to the customers table)."""
    known = F.coalesce(F.col("signup_at") < snapshot_end(snapshot), F.lit(False))
    people = customers.select("*", known.alias("_known"))
    active = summary.select("*", F.lit(True).alias("_active"))
    base = (
        people.join(active, "customer_id", "full_outer")
        .where(F.col("_known") | F.col("_active").isNotNull())
        .drop("_known", "_active")
    )
    zero = F.lit(0).cast(MONEY)
    money_cols = [
        "gross_revenue", "discounts", "refunds", "revenue", "cogs", "shipping_cost",
        "interaction_cost", "discounted_gross", "purchase_spend",
    ]
    count_cols = ["orders", "purchase_orders", "purchase_days", "active_months", "interactions", "complaints"]
    return base.select(
        *[c for c in base.columns if c not in money_cols + count_cols + ["acquisition_cost"]],
        F.coalesce(F.col("acquisition_cost").cast(MONEY), zero).alias("acquisition_cost"),
        *[F.coalesce(F.col(c), zero).alias(c) for c in money_cols],
        *[F.coalesce(F.col(c), F.lit(0)).cast("int").alias(c) for c in count_cols],
    )


def customer_profitability(base: DataFrame, snapshot: date) -> DataFrame:
    """One row per customer per snapshot date: revenue, costs, margins, profit rank and decile.

    Cost to serve = shipping + interaction costs. Net profit = gross margin - cost to serve;
    `net_profit_after_acquisition` also subtracts the customer's acquisition cost.
    """
    gross_margin = (F.col("revenue") - F.col("cogs")).cast(MONEY)
    cost_to_serve = (F.col("shipping_cost") + F.col("interaction_cost")).cast(MONEY)
    p = base.select(
        "customer_id",
        "acquisition_channel",
        "orders",
        "purchase_orders",
        "purchase_days",
        "first_purchase_date",
        "last_purchase_date",
        "gross_revenue",
        "discounts",
        "refunds",
        "revenue",
        "cogs",
        gross_margin.alias("gross_margin"),
        "shipping_cost",
        "interaction_cost",
        cost_to_serve.alias("cost_to_serve"),
        "acquisition_cost",
        (gross_margin - cost_to_serve).cast(MONEY).alias("net_profit"),
        (gross_margin - cost_to_serve - F.col("acquisition_cost")).cast(MONEY).alias("net_profit_after_acquisition"),
    )
    # buyers are ranked among buyers only: a prospect has no profit to rank, and counting them
    # would make the top decile the top 10% of the whole base
    buyer = F.col("purchase_days") > 0
    by_profit = Window.partitionBy(buyer).orderBy(F.col("net_profit").desc(), F.col("customer_id"))
    return p.select(
        F.lit(snapshot.isoformat()).cast("date").alias("snapshot_date"),
        "*",
        F.when(buyer, F.row_number().over(by_profit)).alias("profit_rank"),
        F.when(buyer, F.ntile(10).over(by_profit)).alias("profit_decile"),
    )


RFM_SEGMENTS: tuple[tuple[str, str, str], ...] = (
    # (segment, R scores, F scores) -- the widely used R/F segment map
    ("Champions", "5", "45"),
    ("Loyal", "34", "45"),
    ("Potential loyalists", "45", "23"),
    ("New", "5", "1"),
    ("Promising", "4", "1"),
    ("Need attention", "3", "3"),
    ("About to sleep", "3", "12"),
    ("At risk", "12", "34"),
    ("Can't lose", "12", "5"),
    ("Hibernating", "12", "12"),
)


def rfm_segment(r: Column, f: Column) -> Column:
    expr = None
    for name, rs, fs in RFM_SEGMENTS:
        cond = r.isin([int(x) for x in rs]) & f.isin([int(x) for x in fs])
        expr = F.when(cond, F.lit(name)) if expr is None else expr.when(cond, F.lit(name))
    assert expr is not None
    return expr


def quintile(order: Column) -> Column:
    """Score 1-5 by rank among the rows: 1 + floor(5 x (rank - 1) / rows), ranked along `order`
    (lowest first). Tied rows share the rank of the first of them, so equal values always get the
    same, lower score (ntile would spread them over scores by customer id); a score can then hold
    more or fewer than a fifth of the rows."""
    rank = F.rank().over(Window.orderBy(order))
    rows = F.count(F.lit(1)).over(Window.partitionBy(F.lit(1)))
    return (F.lit(1) + F.floor((rank - 1) * 5 / rows)).cast("int")


def customer_rfm(base: DataFrame, snapshot: date) -> DataFrame:
    """One row per customer with at least one purchase, per snapshot date.

    frequency / recency / T / monetary_value follow the lifetimes conventions (weeks = days / 7).
    RFM quintiles (see `quintile`): R on days since the last purchase (fewer days score higher),
    F on frequency, M on mean spend per purchase occasion; tied customers share a score.
    """
    buyers = base.where(F.col("purchase_days") > 0)
    spend_cv = F.when(F.col("spend_mean") > 0, F.col("spend_std") / F.col("spend_mean"))
    gap_cv = F.when(F.col("gap_mean_days") > 0, F.col("gap_std_days") / F.col("gap_mean_days"))
    avg_spend = (F.col("purchase_spend").cast("double") / F.col("purchase_days")).alias("avg_occasion_spend")
    r = buyers.select(
        "customer_id",
        "frequency",
        "recency",
        "T",
        "monetary_value",
        "days_since_last_purchase",
        "purchase_days",
        avg_spend,
        spend_cv.alias("spend_cv"),
        F.col("gap_mean_days"),
        gap_cv.alias("gap_cv"),
    )
    r_score = quintile(F.col("days_since_last_purchase").desc())
    f_score = quintile(F.col("frequency").asc())
    m_score = quintile(F.col("avg_occasion_spend").asc())
    scored = r.select("*", r_score.alias("r_score"), f_score.alias("f_score"), m_score.alias("m_score"))
    return scored.select(
        F.lit(snapshot.isoformat()).cast("date").alias("snapshot_date"),
        "*",
        F.concat(F.col("r_score").cast("string"), F.col("f_score").cast("string"), F.col("m_score").cast("string")).alias("rfm_cell"),
        rfm_segment(F.col("r_score"), F.col("f_score")).alias("rfm_segment"),
    )
