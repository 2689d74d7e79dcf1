"""The Spark metric job the benchmark times: the project's own code path for three marts.

raw lake -> jobs.snapshot_inputs.load_inputs (latest versions, validity rules) -> clean_inputs
-> jobs.metrics (order_facts, customer_day, customer_summary, customer_base,
customer_profitability, customer_rfm, customer_month, customer_cohort, cohort_retention)
-> jobs.transform.conform -> jobs.transform.write_marts (Parquet in the lake, as the pipeline).

It composes the metric functions the way jobs.transform.build_marts does (customer_day and the
customer base cached: every mart reads them), without the marts the reference does not compute
(segments, CLV fit and scoring, channels, movements, portfolio). The whole build_marts is timed
by the pipeline's build_marts step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from jobs.lake import Lake
from jobs.metrics import cohorts, customers
from jobs.metrics.customer_day import customer_day
from jobs.metrics.orders import order_facts
from jobs.quality.rules import RuleParams
from jobs.snapshot_inputs import clean_inputs, company_start_default, load_inputs, read_raw
from jobs.transform import BuiltMarts, conform, write_marts
from schemas.marts import METRIC_MARTS

BENCH_MARTS = ("customer_profitability", "customer_rfm", "cohort_retention")


@dataclass
class SparkRun:
    seconds: float = 0.0
    mart_seconds: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "mart_seconds": self.mart_seconds, "rows": self.rows}


def build_three(spark: SparkSession, lake: Lake, snapshot: date, max_order_amount: float) -> tuple[dict[str, DataFrame], list[DataFrame]]:
    """The three marts as lazy DataFrames, and the frames cached on the way."""
    start = company_start_default(read_raw(spark, lake, "customers", snapshot, exact=True)) or date(1900, 1, 1)
    inputs = clean_inputs(load_inputs(spark, lake, snapshot, RuleParams(snapshot, start, max_order_amount)))
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


def run_spark_job(spark: SparkSession, lake: Lake, snapshot: date, max_order_amount: float = 100_000.0) -> SparkRun:
    """Build and write the three marts; seconds from the first read to the last file renamed.

    Marts are written one after another (as write_marts does), so `mart_seconds` of the first
    one includes the shared work (inputs, customer_day, the customer base)."""
    run = SparkRun()
    started = time.perf_counter()
    marts, cached = build_three(spark, lake, snapshot, max_order_amount)
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
