"""Build every metric mart for one snapshot from the lake, and write them back to the lake."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from functools import partial

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.clean.snapshot_inputs import CleanInputs
from jobs.metrics import channels, clv, cohorts, customers, movements, portfolio, revenue_retention, segments
from jobs.metrics.customer_day import customer_day
from jobs.metrics.orders import order_facts
from jobs.platform.delta import read_snapshot, snapshot_rows, write_snapshot
from jobs.platform.hooks import checkpoint
from jobs.platform.lake import Lake
from jobs.platform.parallel import in_parallel
from schemas.marts import METRIC_MARTS
from schemas.types import Table, spark_type_ddl

log = logging.getLogger(__name__)


@dataclass
class BuiltMarts:
    marts: dict[str, DataFrame]
    cached: list[DataFrame]
    fits: tuple[clv.FitResult, ...] = ()

    def release(self) -> None:
        for df in self.cached:
            df.unpersist()


def conform(df: DataFrame, table: Table) -> DataFrame:
    """Columns in contract order and type; a missing or extra column is a bug, so it fails here."""
    missing = [c for c in table.column_names if c not in df.columns]
    extra = [c for c in df.columns if c not in table.column_names]
    if missing or extra:
        raise RuntimeError(f"mart {table.name}: columns missing {missing}, unexpected {extra}")
    return df.select(*[F.col(c.name).cast(spark_type_ddl(c.type)).alias(c.name) for c in table.columns])


def build_marts(
    inputs: CleanInputs,
    snapshot: date,
    seg_rules: customers.SegmentRules,
    clv_settings: clv.ClvSettings | None = None,
    days: DataFrame | None = None,
) -> BuiltMarts:
    """All metric marts as DataFrames (lazy), from the clean layer and its customer_day (`days`:
    the one recorded with the clean layer, jobs.clean.customer_day_state; computed from the clean
    orders, lines and interactions when not given). customer_day (partitioned by customer, so
    the summary and the customer x month aggregation read it without a shuffle) and the customer
    base are cached: every mart reads them.

    The order lines and order facts are not cached: besides customer_day only the preferences
    read them, and re-reading the clean layer for that costs less than holding 10M lines in
    memory (their cost-of-goods aggregation drops out of the preferences' plan: only order
    columns are used there).
    """
    facts = order_facts(inputs.orders, inputs.order_items)
    if days is None:
        days = customer_day(facts, inputs.interactions)
    else:  # the stored rows, clustered by customer as customer_day's own output is
        days = days.repartition("customer_id")
    days = days.persist(StorageLevel.MEMORY_AND_DISK)
    summary = customers.customer_summary(days, snapshot)
    base = customers.customer_base(inputs.customers, summary, snapshot).persist(StorageLevel.MEMORY_AND_DISK)
    profitability = customers.customer_profitability(base, snapshot).persist(StorageLevel.MEMORY_AND_DISK)
    rfm = customers.customer_rfm(base, snapshot).persist(StorageLevel.MEMORY_AND_DISK)
    settings = clv_settings or clv.ClvSettings()
    bg, gg = clv.fit_models(rfm, settings)
    fit_rows = clv.model_fit_rows(bg, gg, snapshot)
    spark = rfm.sparkSession
    prefs = segments.preferences(facts, inputs.order_items, inputs.products)
    segs = segments.customer_segments(
        base, profitability, prefs, segments.referrals_made(inputs.customers, snapshot), snapshot, seg_rules
    ).persist(StorageLevel.MEMORY_AND_DISK)
    months = cohorts.customer_month(days)
    cohort_of = cohorts.customer_cohort(base)
    retention = cohorts.cohort_retention(months, cohort_of, snapshot).persist(StorageLevel.MEMORY_AND_DISK)
    marts = {
        "customer_profitability": profitability,
        "customer_rfm": rfm,
        "customer_segments": segs,
        "cohort_retention": retention,
        "channel_economics": channels.channel_economics(retention, inputs.marketing_spend, snapshot),
        "revenue_retention": revenue_retention.revenue_retention(days, base, snapshot),
        "customer_movements": movements.customer_movements(months, cohort_of, snapshot),
        "portfolio_summary": portfolio.portfolio_summary(profitability, segs, snapshot, seg_rules.active_days),
        "portfolio_breakdown": portfolio.portfolio_breakdown(profitability, segs, snapshot),
        "whale_curve": portfolio.whale_curve(profitability, snapshot),
        "customer_clv": clv.customer_clv(rfm, clv.margin_rates(profitability), bg, gg, snapshot, settings),
        "clv_model_fit": spark.createDataFrame(fit_rows, clv.MODEL_FIT_SCHEMA),
    }
    by_name = {t.name: t for t in METRIC_MARTS}
    return BuiltMarts(
        marts={name: conform(df, by_name[name]) for name, df in marts.items()},
        cached=[days, base, profitability, rfm, segs, retention],
        fits=(bg, gg),
    )


def write_marts(lake: Lake, snapshot: date, built: BuiltMarts) -> dict[str, int]:
    """Write each mart's snapshot into its Delta table (`marts/<mart>`, one commit per mart), a
    few marts at a time (jobs.platform.parallel). Returns row counts."""

    def write_one(name: str, df: DataFrame) -> int:
        checkpoint("mart_before_commit")
        write_snapshot(df.coalesce(1), lake.mart_table(name), snapshot, f"mart {name}")
        rows = snapshot_rows(lake, lake.mart_table(name), snapshot)
        log.info("mart %s: %s rows for %s", name, rows, snapshot)
        return rows

    names = list(built.marts)
    counts = in_parallel([partial(write_one, name, built.marts[name]) for name in names])
    return dict(zip(names, counts, strict=True))


def read_mart(spark: SparkSession, lake: Lake, name: str, snapshot: date) -> DataFrame:
    """A mart's snapshot as written by write_marts (every contract column, snapshot_date included)."""
    return read_snapshot(spark, lake, lake.mart_table(name), snapshot, f"mart {name} (run build_marts first)", True)
