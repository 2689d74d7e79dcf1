"""Gate 1: the raw partition. Quarantine bad rows, then Great Expectations on the rest."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from statistics import mean

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.clean.snapshot_inputs import SnapshotInputs
from jobs.quality.gates import CheckResult, GateFailed, check, run_suite
from jobs.quality.rules import valid
from schemas.expectations import RAW_SUITES
from schemas.source import SOURCE_BY_NAME

log = logging.getLogger(__name__)

GATE = "raw_"
ROW_COUNT_HISTORY = 7
ROW_COUNT_MIN_HISTORY = 3
ROW_COUNT_MIN_ROWS = 50


@dataclass
class RawGateResult:
    results: list[CheckResult]
    rows_checked: int = 0
    rows_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.success]


def quarantine_rows(table: str, checked: DataFrame, run_id: str, snapshot: date) -> DataFrame:
    """One row per (bad row, reason): the row as JSON, its key, the reason code."""
    key = SOURCE_BY_NAME[table].key
    row_cols = [c for c in checked.columns if c not in ("reasons",)]
    return checked.where(F.size("reasons") > 0).select(
        F.lit(snapshot).alias("snapshot_date"),
        F.lit(run_id).alias("run_id"),
        F.lit(table).alias("source_table"),
        F.concat_ws(":", *[F.coalesce(F.col(k).cast("string"), F.lit("<null>")) for k in key]).alias("row_key"),
        F.explode("reasons").alias("reason_code"),
        F.to_json(F.struct(*row_cols)).alias("row_json"),
    )


def run_rows(checked: DataFrame, snapshot: date, full: bool) -> DataFrame:
    """The rows this run extracted: the snapshot's partition, or everything for a full refresh."""
    return checked if full else checked.where(F.col("extract_date") == F.lit(snapshot))


def row_count_check(daily: dict[date, int], snapshot: date, rows_now: int, min_ratio: float, max_ratio: float) -> CheckResult | None:
    """The day's rows against the mean of the previous days' (versions of orders, lines and
    interactions updated on each of the ROW_COUNT_HISTORY days before the snapshot that had any)."""
    history = [n for day, n in sorted(daily.items()) if snapshot - timedelta(days=ROW_COUNT_HISTORY) <= day < snapshot and n]
    if len(history) < ROW_COUNT_MIN_HISTORY or mean(history) < ROW_COUNT_MIN_ROWS:
        return None
    low, high = mean(history) * min_ratio, mean(history) * max_ratio
    return check(
        "raw_extract",
        f"row count within [{min_ratio} x, {max_ratio} x] the mean of the last {len(history)} daily extractions",
        low <= rows_now <= high,
        f"{rows_now} rows (band {low:.0f}..{high:.0f})",
    )


def validate_raw(
    inputs: SnapshotInputs,
    daily_counts: dict[date, int],
    snapshot: date,
    run_id: str,
    *,
    full: bool,
    quarantine_max_rate: float,
    row_count_min_ratio: float,
    row_count_max_ratio: float,
    freshness_days: int,
    newest_order_update: datetime | None = None,
) -> tuple[RawGateResult, DataFrame | None]:
    """Check the run's rows. Returns the results and the quarantine rows (not yet written).

    `newest_order_update` is the newest orders.updated_at of the whole lake when `inputs` hold
    only part of it (an incremental clean layer); by default it is taken from `inputs`."""
    results: list[CheckResult] = []
    quarantined: DataFrame | None = None
    total_rows = 0
    total_bad = 0
    reasons: dict[str, int] = {}
    for table, checked in inputs.checked().items():
        rows = run_rows(checked, snapshot, full)
        counts = rows.agg(F.count(F.lit(1)).alias("n"), F.sum((F.size("reasons") > 0).cast("int")).alias("bad")).first()
        assert counts is not None
        n_rows, n_bad = int(counts["n"]), int(counts["bad"] or 0)
        per_reason: dict[str, int] = {}
        if n_bad:
            per_reason = {
                r["reason"]: int(r["count"])
                for r in rows.select(F.explode("reasons").alias("reason")).groupBy("reason").count().collect()
            }
        total_rows += n_rows
        total_bad += n_bad
        for k, v in per_reason.items():
            reasons[f"{table}.{k}"] = v
        rate = n_bad / n_rows if n_rows else 0.0
        examples = []
        if n_bad:
            examples = [
                f"{r['row_key']}: {r['reason_code']}"
                for r in quarantine_rows(table, rows, run_id, snapshot).orderBy("row_key", "reason_code").limit(5).collect()
            ]
        results.append(
            check(
                f"raw_{table}",
                f"quarantined share <= {quarantine_max_rate:.2%}",
                rate <= quarantine_max_rate,
                f"{n_bad} of {n_rows} rows ({rate:.2%}); reasons {per_reason}" if n_bad else f"0 of {n_rows} rows",
                examples,
            )
        )
        q = quarantine_rows(table, rows, run_id, snapshot)
        quarantined = q if quarantined is None else quarantined.unionByName(q)
        if n_rows:
            results += run_suite(valid(rows).drop("extract_date"), f"raw_{table}", RAW_SUITES[table], rows=n_rows - n_bad)
    for table, df in (("customers", inputs.customers), ("products", inputs.products), ("marketing_spend", inputs.marketing_spend)):
        results += run_suite(df, f"raw_{table}", RAW_SUITES[table])
    if not full:
        band = row_count_check(daily_counts, snapshot, total_rows, row_count_min_ratio, row_count_max_ratio)
        if band:
            results.append(band)
    if newest_order_update is None:
        row = inputs.orders.agg(F.max("updated_at")).first()
        newest_order_update = row[0] if row else None
    newest_day = newest_order_update.date() if newest_order_update else None
    results.append(
        check(
            "raw_orders",
            f"freshness: an order updated within {freshness_days} days before the snapshot",
            newest_day is not None and newest_day >= snapshot - timedelta(days=freshness_days),
            f"newest orders.updated_at {newest_order_update}",
        )
    )
    return RawGateResult(results, total_rows, total_bad, reasons), quarantined


def raise_on_failure(result: RawGateResult) -> None:
    if result.failures:
        counts = {"rows_checked": result.rows_checked, "rows_quarantined": result.rows_quarantined}
        raise GateFailed("validate_raw", result.failures, counts)
