"""Customer segments: Kotler quadrant, value tier, lifecycle stage, loyalty ladder, preferences."""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.metrics.customers import SegmentRules, snapshot_end

MEDIAN_ACCURACY = 10_000  # percentile_approx accuracy: relative rank error about 1/10,000


def preferences(order_facts: DataFrame, items: DataFrame, products: DataFrame) -> DataFrame:
    """One row per buying customer: preferred sales channel, preferred category, category breadth.

    Preferred channel: most purchase orders (ties: alphabetical). Preferred category: most net
    line revenue (ties: alphabetical). Breadth: categories bought, counted in two levels
    (customer x category, then customer) instead of countDistinct.
    """
    purchases = order_facts.where("is_purchase")
    by_channel = purchases.groupBy("customer_id", "channel").agg(F.count(F.lit(1)).alias("n"))
    channel_rank = Window.partitionBy("customer_id").orderBy(F.col("n").desc(), F.col("channel"))
    channel = (
        by_channel.select("customer_id", "channel", F.row_number().over(channel_rank).alias("rn"))
        .where("rn = 1")
        .select("customer_id", F.col("channel").alias("preferred_channel"))
    )
    lines = (
        items.join(purchases.select("order_id", "customer_id"), "order_id")
        .join(products.select("product_id", "category"), "product_id", "left")
        .withColumn("category", F.coalesce("category", F.lit("unknown")))
    )
    by_category = lines.groupBy("customer_id", "category").agg(
        F.sum(F.col("quantity") * F.col("unit_price")).alias("line_revenue")
    )
    cat_rank = Window.partitionBy("customer_id").orderBy(F.col("line_revenue").desc(), F.col("category"))
    category = by_category.select(
        "customer_id",
        "category",
        F.row_number().over(cat_rank).alias("rn"),
        F.count(F.lit(1)).over(Window.partitionBy("customer_id")).alias("category_breadth"),
    ).where("rn = 1")
    return channel.join(
        category.select("customer_id", F.col("category").alias("preferred_category"), "category_breadth"),
        "customer_id",
        "full_outer",
    )


def referrals_made(customers: DataFrame, snapshot: date) -> DataFrame:
    """One row per referring customer per snapshot: how many customers who signed up by the end
    of the snapshot date name them in `referred_by` (a referral made later is not counted)."""
    signed_up = F.col("signup_at") < snapshot_end(snapshot)
    return (
        customers.where(F.col("referred_by").isNotNull() & signed_up)
        .groupBy(F.col("referred_by").alias("customer_id"))
        .agg(F.count(F.lit(1)).cast("int").alias("referrals_made"))
    )


def active_month_share(base: DataFrame) -> Column:
    """Share of calendar months from the first purchase to the snapshot with a purchase (0..1)."""
    months_observed = F.months_between(
        F.trunc(F.date_add("first_purchase_date", F.col("tenure_days")), "month"),
        F.trunc("first_purchase_date", "month"),
    ) + F.lit(1)
    return F.when(F.col("purchase_days") > 0, F.col("active_months") / months_observed)


def loyalty_score(base: DataFrame) -> Column:
    """Active-month share damped for short tenure: share x min(1, tenure / 365 days).
    0..1; null for prospects. A regular buyer of a year or more scores near 1."""
    return active_month_share(base) * F.least(F.lit(1.0), F.col("tenure_days") / F.lit(365.0))


def customer_segments(
    base: DataFrame,
    profitability: DataFrame,
    prefs: DataFrame,
    referrals: DataFrame,
    snapshot: date,
    rules: SegmentRules,
) -> DataFrame:
    """One row per customer per snapshot date: the segment labels used for targeting.

    Inputs: the customer base (jobs.metrics.customers.customer_base), customer_profitability for
    net profit and decile, preferences and referrals.
    """
    s = (
        base.select(
            "customer_id", "acquisition_channel", "region", "purchase_days", "active_months", "tenure_days",
            "days_since_last_purchase", "gap_mean_days", "revenue", "gross_revenue", "discounted_gross",
            "satisfaction_sum", "satisfaction_count", "complaints",
            loyalty_score(base).alias("loyalty_score"),
            active_month_share(base).alias("active_month_share"),
        )
        .join(profitability.select("customer_id", "net_profit", "profit_decile"), "customer_id")
        .join(prefs, "customer_id", "left")
        .join(referrals, "customer_id", "left")
        .withColumn("referrals_made", F.coalesce("referrals_made", F.lit(0)))
    )
    buyers = F.col("purchase_days") > 0
    if rules.kotler_profit_threshold is None or rules.kotler_loyalty_threshold is None:
        medians = s.where(buyers).agg(
            F.percentile_approx(F.col("net_profit").cast("double"), 0.5, MEDIAN_ACCURACY).alias("p"),
            F.percentile_approx("loyalty_score", 0.5, MEDIAN_ACCURACY).alias("l"),
        )
        s = s.crossJoin(F.broadcast(medians))
    else:
        s = s.withColumn("p", F.lit(0.0)).withColumn("l", F.lit(0.0))
    profit_cut = F.lit(rules.kotler_profit_threshold) if rules.kotler_profit_threshold is not None else F.col("p")
    loyalty_cut = F.lit(rules.kotler_loyalty_threshold) if rules.kotler_loyalty_threshold is not None else F.col("l")
    profitable = F.col("net_profit").cast("double") > profit_cut
    loyal = F.col("loyalty_score") > loyalty_cut
    kotler = (
        F.when(~buyers, F.lit("prospect"))
        .when(profitable & loyal, F.lit("true_friend"))
        .when(profitable, F.lit("butterfly"))
        .when(loyal, F.lit("barnacle"))
        .otherwise(F.lit("stranger"))
    )
    value_tier = (
        F.when(~buyers, F.lit("prospect"))
        .when(F.col("net_profit") < 0, F.lit("lead"))
        .when(F.col("profit_decile") == 1, F.lit("platinum"))
        .when(F.col("profit_decile") <= 3, F.lit("gold"))
        .otherwise(F.lit("iron"))
    )
    lifecycle = (
        F.when(~buyers, F.lit("prospect"))
        .when(F.col("days_since_last_purchase") > rules.lapse_days, F.lit("lapsed"))
        .when(F.col("purchase_days") == 1, F.lit("acquisition"))
        .when(
            F.col("days_since_last_purchase") > F.col("gap_mean_days") * rules.decline_gap_factor,
            F.lit("decline"),
        )
        .when(F.col("tenure_days") < rules.development_days, F.lit("development"))
        .otherwise(F.lit("retention"))
    )
    frequency = F.col("purchase_days") - 1
    regular = (frequency >= rules.supporter_min_repeat) & (
        F.col("active_month_share") >= rules.supporter_min_month_share
    )
    rung = (
        F.when(~buyers, F.lit("prospect"))
        .when(F.col("purchase_days") == 1, F.lit("customer"))
        .when(
            (F.col("referrals_made") > 0)
            & (F.col("profit_decile") <= rules.partner_max_decile)
            & (F.col("tenure_days") >= rules.partner_min_tenure_days),
            F.lit("partner"),
        )
        .when(F.col("referrals_made") > 0, F.lit("advocate"))
        .when(regular, F.lit("supporter"))
        .otherwise(F.lit("client"))
    )
    satisfaction = F.col("satisfaction_sum") / F.col("satisfaction_count")
    band = (
        F.when(F.coalesce(F.col("satisfaction_count"), F.lit(0)) == 0, F.lit("unknown"))
        .when(satisfaction < 3, F.lit("low"))
        .when(satisfaction < 4, F.lit("medium"))
        .otherwise(F.lit("high"))
    )
    return s.select(
        F.lit(snapshot.isoformat()).cast("date").alias("snapshot_date"),
        "customer_id",
        "acquisition_channel",
        "region",
        kotler.alias("kotler_quadrant"),
        value_tier.alias("value_tier"),
        F.col("profit_decile").alias("value_decile"),
        lifecycle.alias("lifecycle_stage"),
        rung.alias("loyalty_rung"),
        F.col("loyalty_score"),
        "referrals_made",
        "preferred_channel",
        "preferred_category",
        F.coalesce("category_breadth", F.lit(0)).cast("int").alias("category_breadth"),
        F.when(F.col("gross_revenue") > 0, F.col("discounted_gross").cast("double") / F.col("gross_revenue").cast("double")).alias(
            "discount_sensitivity"
        ),
        F.when(F.col("satisfaction_count") > 0, satisfaction.cast("double")).alias("satisfaction_score"),
        band.alias("satisfaction_band"),
        F.coalesce("complaints", F.lit(0)).cast("int").alias("complaints"),
    )
