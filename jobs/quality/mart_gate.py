"""Gate 2: the marts of the snapshot, read back from the lake, before anything is published."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.quality.gates import CheckResult, check, run_suite
from schemas.expectations import MART_SUITES

GATE = "mart_"


def expected_net_revenue(clean_orders: DataFrame) -> Decimal:
    """Net revenue of the valid, non-cancelled latest order versions, straight from the lake."""
    row = (
        clean_orders
        .where(F.col("status") != "cancelled")
        .agg(F.sum(F.col("gross_amount") - F.col("discount_amount") - F.col("refund_amount")).cast("decimal(38,2)"))
        .first()
    )
    return Decimal(row[0]) if row and row[0] is not None else Decimal("0.00")


def _money(df: DataFrame, column: str, where: str | None = None) -> Decimal:
    if where:
        df = df.where(where)
    row = df.agg(F.sum(column).cast("decimal(38,2)")).first()
    return Decimal(row[0]) if row and row[0] is not None else Decimal("0.00")


def validate_marts(
    marts: dict[str, DataFrame], clean_orders: DataFrame, snapshot: date, rows: dict[str, int] | None = None
) -> list[CheckResult]:
    """Suites per mart plus cross-mart checks: reconciliation to the cent, monotone unbounded
    retention, shares that sum to one. `rows` (per mart, when known) spares a count."""
    results: list[CheckResult] = []
    for name, df in marts.items():
        results += run_suite(df, f"mart_{name}", MART_SUITES[name], rows=(rows or {}).get(name))
    expected = expected_net_revenue(clean_orders)
    for name, column, where in (
        ("customer_profitability", "revenue", None),
        ("portfolio_summary", "revenue", None),
        ("cohort_retention", "revenue", "acquisition_channel = 'all'"),
    ):
        got = _money(marts[name], column, where)
        results.append(
            check(
                "mart_reconciliation",
                f"sum of {name}.{column} equals net revenue of the valid orders in the lake",
                got == expected,
                f"{got} vs {expected} (difference {got - expected})",
            )
        )
    cr = marts["cohort_retention"]
    prev = F.lag("unbounded_retention_rate").over(
        Window.partitionBy("cohort_month", "acquisition_channel").orderBy("period")
    )
    rising = cr.select((F.col("unbounded_retention_rate") > prev + F.lit(1e-12)).alias("up")).where("up").count()
    results.append(
        check("mart_cohort_retention", "unbounded retention never increases with the period", rising == 0, f"{rising} increases")
    )
    failed_fits = marts["clv_model_fit"].where("status = 'failed'").select("model", "message").distinct().collect()
    results.append(
        check(
            "mart_clv_model_fit",
            "CLV models converged with parameters inside sane bounds (or were skipped for too few customers)",
            not failed_fits,
            "; ".join(f"{r['model']}: {r['message']}" for r in failed_fits) or "ok",
        )
    )
    sums = (
        marts["portfolio_breakdown"].groupBy("dimension").agg(F.sum("customer_share").alias("s")).collect()
    )
    off = {r["dimension"]: r["s"] for r in sums if r["s"] is None or abs(r["s"] - 1.0) > 1e-9}
    results.append(check("mart_portfolio_breakdown", "customer shares sum to 1 per dimension", not off, off or "all 1"))
    return results
