"""The Spark work the benchmark times, in two stages on the project's own code path, plus a
lifetimes-style summary written as a Spark user would write it.

1. inputs stage (what the pipeline's validate_raw gate writes): the raw Delta tables (every
   captured version) -> jobs.clean.snapshot_inputs.load_inputs (the versions visible at the snapshot,
   latest version of every row, validity rules) -> clean_inputs -> write_clean (the clean
   layer: one Delta commit per table lake/clean/<table>, partition snapshot_date = D).
2. metric stage (what build_marts does for these three marts): read_clean -> jobs.metrics
   (order_facts, customer_day, customer_summary, customer_base, customer_profitability,
   customer_rfm, customer_month, customer_cohort, cohort_retention) -> jobs.metrics.build.conform ->
   jobs.metrics.build.write_marts (the Delta tables lake/marts/<mart>, as the pipeline writes them).

The metric stage composes the metric functions the way jobs.metrics.build.build_marts does
(customer_day and the customer base cached: every mart reads them), without the marts the
reference does not compute (segments, CLV fit and scoring, channels, movements, portfolio). The
whole build_marts is timed by the pipeline's build_marts step.

3. lifetimes summary: frequency, recency, T and monetary_value from the raw lake's orders as of
   the snapshot (jobs.clean.snapshot_inputs.read_raw), with
   the conventions of devtools/bench/pandas_summary.py (same input, same rules, same output columns),
   so the pandas child and Spark do the same work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.clean.snapshot_inputs import (
    clean_inputs,
    company_start_default,
    current_tables,
    load_inputs,
    read_clean,
    read_raw,
    write_clean,
)
from jobs.ingest.extract import DELETED
from jobs.metrics import cohorts, customers
from jobs.metrics.build import BuiltMarts, conform, write_marts
from jobs.metrics.customer_day import customer_day
from jobs.metrics.orders import order_facts
from jobs.platform.lake import Lake
from jobs.quality.rules import RuleParams
from schemas.marts import METRIC_MARTS

BENCH_MARTS = ("customer_profitability", "customer_rfm", "cohort_retention")
DAYS_PER_WEEK = 7.0
NOT_PURCHASES = ("cancelled", "refunded")


@dataclass
class SparkRun:
    seconds: float = 0.0
    mart_seconds: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "mart_seconds": self.mart_seconds, "rows": self.rows}


# -- 1. inputs stage ------------------------------------------------------------------------------
def run_inputs_stage(spark: SparkSession, lake: Lake, snapshot: date, max_order_amount: float = 100_000.0) -> SparkRun:
    """Raw lake -> latest versions + rules -> the clean layer, as the validate_raw gate writes it
    (without the gate's expectations and quarantine). `rows`: rows written per clean table."""
    run = SparkRun()
    started = time.perf_counter()
    # the pipeline's default company start: the first signup among the customers as of the snapshot
    start = company_start_default(current_tables(spark, lake, snapshot)["customers"]) or date(1900, 1, 1)
    inputs = load_inputs(spark, lake, snapshot, RuleParams(snapshot, start, max_order_amount))
    try:
        run.rows = write_clean(lake, snapshot, clean_inputs(inputs))
    finally:
        inputs.release()  # load_inputs caches the checked orders
    run.seconds = time.perf_counter() - started
    return run


# -- 2. metric stage ------------------------------------------------------------------------------
def build_three(spark: SparkSession, lake: Lake, snapshot: date) -> tuple[dict[str, DataFrame], list[DataFrame]]:
    """The three marts from the clean layer as lazy DataFrames, and the frames cached on the way."""
    inputs = read_clean(spark, lake, snapshot)
    facts = order_facts(inputs.orders, inputs.order_items)
    days = customer_day(facts, inputs.interactions).persist(StorageLevel.MEMORY_AND_DISK)
    summary = customers.customer_summary(days, snapshot)
    base = customers.customer_base(inputs.customers, summary, snapshot).persist(StorageLevel.MEMORY_AND_DISK)
    marts = {
        "customer_profitability": customers.customer_profitability(base, snapshot),
        "customer_rfm": customers.customer_rfm(base, snapshot),
        "cohort_retention": cohorts.cohort_retention(cohorts.customer_month(days), cohorts.customer_cohort(base), snapshot),
    }
    by_name = {t.name: t for t in METRIC_MARTS}
    return {name: conform(df, by_name[name]) for name, df in marts.items()}, [days, base]


def run_metric_stage(spark: SparkSession, lake: Lake, snapshot: date) -> SparkRun:
    """Read the clean layer, build and write the three marts; seconds from the first read to the
    last Delta commit.

    Marts are written one after another (as write_marts does), so `mart_seconds` of the first
    one includes the shared work (customer_day, the customer base)."""
    run = SparkRun()
    started = time.perf_counter()
    marts, cached = build_three(spark, lake, snapshot)
    try:
        for name in BENCH_MARTS:
            t = time.perf_counter()
            run.rows.update(write_marts(lake, snapshot, BuiltMarts(marts={name: marts[name]}, cached=[])))
            run.mart_seconds[name] = time.perf_counter() - t
    finally:
        for df in cached:
            df.unpersist()
    run.seconds = time.perf_counter() - started
    return run


# -- 3. lifetimes summary -------------------------------------------------------------------------
def lifetimes_summary(orders: DataFrame, snapshot: date) -> DataFrame:
    """One row per customer with a purchase: frequency, recency, T, monetary_value, from the
    versions of the orders visible at the snapshot (read_raw; the conventions of
    devtools/bench/pandas_summary.py: latest version by updated_at, an order whose latest version is
    a tombstone left out, no validity rules, a purchase occasion = a customer-day with an order neither
    cancelled nor refunded, money in integer cents, the first occasion left out of the monetary
    value, weeks = days / 7)."""
    latest = (
        orders.groupBy("order_id")
        .agg(F.max_by(F.struct("customer_id", "ordered_at", "status", "gross_amount", "discount_amount", "refund_amount",
                               DELETED), "updated_at").alias("o"))
        .select("o.*")
        .where(~F.col(DELETED))
    )
    # pandas keeps a null status (`~isin`): so does this
    purchases = latest.where(F.col("status").isNull() | ~F.col("status").isin(*NOT_PURCHASES))
    cents = (F.col("gross_amount") - F.col("discount_amount") - F.col("refund_amount")) * 100
    occasions = (
        purchases.where(F.col("customer_id").isNotNull() & F.col("ordered_at").isNotNull())
        .groupBy("customer_id", F.to_date("ordered_at").alias("day"))
        .agg(F.sum(cents.cast("bigint")).alias("spend"))
    )
    per = occasions.groupBy("customer_id").agg(
        F.min("day").alias("first"), F.max("day").alias("last"), F.count("*").alias("occasions"),
        F.sum("spend").alias("total"), F.min_by("spend", "day").alias("first_spend"),
    )
    frequency = F.col("occasions") - 1
    return per.select(
        "customer_id",
        frequency.cast("int").alias("frequency"),
        (F.datediff("last", "first") / DAYS_PER_WEEK).alias("recency"),
        (F.datediff(F.lit(snapshot), "first") / DAYS_PER_WEEK).alias("T"),
        F.when(frequency > 0, ((F.col("total") - F.col("first_spend")) / 100.0) / frequency).otherwise(0.0).alias("monetary_value"),
    )


def run_lifetimes_summary(spark: SparkSession, lake: Lake, snapshot: date, out: Path) -> SparkRun:
    """Read the raw orders as of the snapshot, compute the summary, write it as Parquet to `out`
    (a folder outside the lake: a plain Parquet output, not a Delta table)."""
    run = SparkRun()
    started = time.perf_counter()
    lifetimes_summary(read_raw(spark, lake, "orders", snapshot), snapshot).write.mode("overwrite").parquet(str(out))
    run.seconds = time.perf_counter() - started
    return run
