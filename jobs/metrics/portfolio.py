"""Portfolio view: concentration (top shares, revenue Gini, losses), the whale curve and segment breakdowns."""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.metrics.orders import MONEY

BREAKDOWN_DIMENSIONS = ("kotler_quadrant", "lifecycle_stage", "loyalty_rung", "value_tier")


def _ranked_buyers(profitability: DataFrame) -> DataFrame:
    buyers = profitability.where(F.col("purchase_days") > 0).select(
        "customer_id", F.col("revenue").cast("double").alias("rev"), F.col("net_profit").cast("double").alias("prof")
    )
    return buyers.select(
        "*",
        F.row_number().over(Window.orderBy(F.col("rev").desc(), "customer_id")).alias("rev_rank"),
        F.row_number().over(Window.orderBy(F.col("prof").desc(), "customer_id")).alias("prof_rank"),
    )


def portfolio_summary(
    profitability: DataFrame, segments: DataFrame, snapshot: date, active_days: int
) -> DataFrame:
    """One row per snapshot date: size, money, and concentration over customers with a purchase.

    Top-x% shares take the first ceil(x * n) customers by revenue (or profit). Revenue Gini uses
    the sorted-rank formula G = 2 sum(i x_i) / (n sum x) - (n + 1) / n over ascending values. Profit
    gets no Gini (with loss-making customers it leaves [0, 1]); instead the share of buyers who lose
    money, the profit they give back as a share of what the profitable ones make, and the whale
    curve's peak (profit of the profitable buyers / total profit, above 1 when losses exist).
    """
    r = _ranked_buyers(profitability)
    n = F.count(F.lit(1))
    counted = r.crossJoin(r.agg(n.alias("n")))
    agg = counted.agg(
        F.first("n").alias("n"),
        F.sum("rev").alias("rev_total"),
        F.sum("prof").alias("prof_total"),
        F.sum(F.col("rev") * (F.col("n") + 1 - F.col("rev_rank"))).alias("rev_weighted"),
        F.sum((F.col("prof") < 0).cast("int")).alias("loss_makers"),
        F.sum(F.when(F.col("prof") > 0, F.col("prof")).otherwise(0.0)).alias("prof_gains"),
        F.sum(F.when(F.col("prof") < 0, -F.col("prof")).otherwise(0.0)).alias("prof_losses"),
        *[
            F.sum(F.when(F.col(f"{k}_rank") <= F.ceil(F.lit(share) * F.col("n")), F.col(k)).otherwise(0.0)).alias(
                f"{k}_top{round(share * 100)}"
            )
            for k in ("rev", "prof")
            for share in (0.2, 0.25)
        ],
    )

    def gini(weighted: str, total: str) -> F.Column:
        return F.when(
            F.col(total) != 0,
            2 * F.col(weighted) / (F.col("n") * F.col(total)) - (F.col("n") + 1) / F.col("n"),
        )

    def share(part: str, total: str) -> F.Column:
        return F.when(F.col(total) != 0, F.col(part) / F.col(total))

    totals = profitability.agg(
        F.count(F.lit(1)).alias("customers"),
        F.sum((F.col("purchase_days") > 0).cast("int")).alias("buying_customers"),
        F.sum(
            (F.datediff(F.lit(snapshot.isoformat()).cast("date"), F.col("last_purchase_date")) <= active_days).cast("int")
        ).alias("active_customers"),
        F.sum("revenue").cast(MONEY).alias("revenue"),
        F.sum("gross_margin").cast(MONEY).alias("gross_margin"),
        F.sum("net_profit").cast(MONEY).alias("net_profit"),
        F.sum("net_profit_after_acquisition").cast(MONEY).alias("net_profit_after_acquisition"),
    )
    seg = segments.agg(
        *[F.sum((F.col("kotler_quadrant") == q).cast("int")).alias(f"{q}_customers") for q in ("true_friend", "butterfly", "barnacle", "stranger")]
    )
    return totals.crossJoin(agg).crossJoin(seg).select(
        F.lit(snapshot.isoformat()).cast("date").alias("snapshot_date"),
        F.col("customers").cast("bigint"),
        F.coalesce("buying_customers", F.lit(0)).cast("bigint").alias("buying_customers"),
        F.coalesce("active_customers", F.lit(0)).cast("bigint").alias("active_customers"),
        F.coalesce("revenue", F.lit(0).cast(MONEY)).alias("revenue"),
        F.coalesce("gross_margin", F.lit(0).cast(MONEY)).alias("gross_margin"),
        F.coalesce("net_profit", F.lit(0).cast(MONEY)).alias("net_profit"),
        F.coalesce("net_profit_after_acquisition", F.lit(0).cast(MONEY)).alias("net_profit_after_acquisition"),
        share("rev_top20", "rev_total").alias("top20_revenue_share"),
        share("rev_top25", "rev_total").alias("top25_revenue_share"),
        share("prof_top20", "prof_total").alias("top20_profit_share"),
        share("prof_top25", "prof_total").alias("top25_profit_share"),
        gini("rev_weighted", "rev_total").alias("gini_revenue"),
        (F.col("loss_makers") / F.col("n")).alias("loss_making_customer_share"),
        share("prof_losses", "prof_gains").alias("profit_lost_share"),
        F.when(F.col("prof_total") > 0, F.col("prof_gains") / F.col("prof_total")).alias("whale_peak_profit_share"),
        *[F.coalesce(F.col(f"{q}_customers"), F.lit(0)).cast("bigint").alias(f"{q}_customers") for q in ("true_friend", "butterfly", "barnacle", "stranger")],
    )


def whale_curve(profitability: DataFrame, snapshot: date) -> DataFrame:
    """One row per percentile (1..100) of customers with a purchase, ranked by net profit
    (most profitable first): cumulative share of customers, of profit and of revenue."""
    r = _ranked_buyers(profitability)
    n = r.agg(F.count(F.lit(1)).alias("n"))
    pct = r.crossJoin(n).withColumn("percentile", F.ceil(F.col("prof_rank") * 100 / F.col("n")).cast("int"))
    per = pct.groupBy("percentile").agg(
        F.count(F.lit(1)).alias("customers"), F.sum("prof").alias("profit"), F.sum("rev").alias("revenue")
    )
    upto = Window.orderBy("percentile").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    everything = Window.partitionBy(F.lit(1))
    return per.select(
        F.lit(snapshot.isoformat()).cast("date").alias("snapshot_date"),
        "percentile",
        F.col("customers").cast("bigint"),
        (F.sum("customers").over(upto) / F.sum("customers").over(everything)).alias("cumulative_customer_share"),
        (F.sum("profit").over(upto) / F.sum("profit").over(everything)).alias("cumulative_profit_share"),
        (F.sum("revenue").over(upto) / F.sum("revenue").over(everything)).alias("cumulative_revenue_share"),
    )


def portfolio_breakdown(profitability: DataFrame, segments: DataFrame, snapshot: date) -> DataFrame:
    """One row per snapshot x dimension x segment: customers, revenue and profit, with shares."""
    joined = segments.join(profitability.select("customer_id", "revenue", "net_profit"), "customer_id")
    parts = [
        joined.groupBy(F.lit(dim).alias("dimension"), F.col(dim).alias("segment")).agg(
            F.count(F.lit(1)).cast("bigint").alias("customers"),
            F.sum("revenue").cast(MONEY).alias("revenue"),
            F.sum("net_profit").cast(MONEY).alias("net_profit"),
        )
        for dim in BREAKDOWN_DIMENSIONS
    ]
    rows = parts[0]
    for p in parts[1:]:
        rows = rows.unionByName(p)
    dim = Window.partitionBy("dimension")

    def share(c: str) -> F.Column:
        total = F.sum(c).over(dim)
        return F.when(total != 0, F.col(c).cast("double") / total)

    return rows.select(
        F.lit(snapshot.isoformat()).cast("date").alias("snapshot_date"),
        "dimension",
        "segment",
        "customers",
        "revenue",
        "net_profit",
        share("customers").alias("customer_share"),
        share("revenue").alias("revenue_share"),
        share("net_profit").alias("profit_share"),
    )

