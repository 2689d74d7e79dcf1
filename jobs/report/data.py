"""Read what the report shows from the published marts: small, aggregated results only.

Every query is bound to one snapshot date through the warehouse's placeholder (never formatted
into the SQL) and aggregates in the database, so the report stays small at any portfolio size:
the only customer-level marts (customer_segments, customer_profitability, customer_clv) are read
as binned counts. The SQL is portable between DuckDB and PostgreSQL (ordered-set aggregates,
FILTER clauses, explicit casts before any division).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from jobs.platform.warehouse import Warehouse

# portfolio_summary columns shown in the header, in display order
SUMMARY_COLUMNS = (
    "customers",
    "buying_customers",
    "active_customers",
    "revenue",
    "gross_margin",
    "net_profit",
    "net_profit_after_acquisition",
    "top20_revenue_share",
    "top20_profit_share",
    "gini_revenue",
    "loss_making_customer_share",
    "whale_peak_profit_share",
)

KOTLER_LOYALTY_BINS = 25
KOTLER_PROFIT_BINS = 30
CLV_BINS = 40


class ReportError(RuntimeError):
    """The report cannot be built; the message says what to do."""


def no_marts_message(snapshot: date) -> str:
    """The error for a date without published marts: names the date and the command to run."""
    d = snapshot.isoformat()
    return (
        f"no published marts for snapshot {d}: run `crm-metrics run --date {d}` first "
        "(or pass --warehouse with the warehouse that holds them)"
    )


@dataclass(frozen=True)
class KotlerMap:
    """Buying customers binned by loyalty score x net profit, per quadrant (for the scatter)."""

    # one entry per (quadrant, loyalty bin, profit bin): bin centres, count, means
    points: list[tuple[str, float, float, int, float, float]]
    profit_range: tuple[float, float]  # 1st..99th percentile of net profit (bins clip to it)
    profit_threshold: float | None  # midway between the groups the quadrant split separates
    loyalty_threshold: float | None


@dataclass(frozen=True)
class ClvData:
    """CLV model status and, when fitted, the binned CLV distribution."""

    fitted: bool
    fits: list[tuple[str, str, float | None, str, str | None, int | None]]  # model, parameter, value, status, message, customers
    customers: int = 0
    customers_with_clv: int = 0
    mean: float | None = None
    median: float | None = None
    total: float | None = None
    mean_p_alive: float | None = None
    horizon_months: int | None = None
    bin_edges: list[float] = field(default_factory=list)  # CLV_BINS + 1 edges; the last bin is open
    bin_counts: list[int] = field(default_factory=list)  # CLV_BINS + 1 counts (last = at or above p99)


@dataclass(frozen=True)
class ChannelEconomics:
    """One acquisition channel over all its acquisition months."""

    channel: str
    customers: int
    spend: float
    cac: float | None
    ltv_3m: float | None
    ltv_6m: float | None
    ltv_12m: float | None
    ltv_to_cac_12m: float | None
    cohorts_12m: int  # acquisition months that have reached 12 complete months
    mean_payback_months: float | None


@dataclass(frozen=True)
class RevenueRetention:
    """NRR and GRR of one acquisition channel (or 'all') over one window length."""

    channel: str
    window_months: int
    starting_customers: int
    prior_revenue: Decimal
    current_revenue: Decimal
    net_revenue_retention: float | None
    gross_revenue_retention: float | None
    is_full_prior_window: bool


@dataclass(frozen=True)
class RunInfo:
    """The pipeline run that published the snapshot, with its quality results."""

    run_id: str | None
    outcome: str | None
    failed_step: str | None
    message: str | None
    rows_extracted: int | None
    rows_quarantined: int | None
    rows_published: int | None
    step_seconds: dict[str, float]
    attempts: list[tuple[str, str, str | None]]  # run_id, outcome, failed_step of every recorded attempt
    dq_by_suite: list[tuple[str, int, int]]  # suite, checks, passed
    dq_failures: list[tuple[str, str, str | None]]  # suite, expectation, observed value
    quarantine: list[tuple[str, str, int]]  # source table, reason code, rows


@dataclass(frozen=True)
class ReportData:
    """Everything one report page shows, for one snapshot."""

    snapshot: date
    summary: dict[str, Any]
    cohort_heatmap: list[tuple[date, int, int, int, float, bool]]  # cohort, period, size, active, rate, complete
    channel_retention: list[tuple[str, int, int, int, int]]  # channel, period, active, cohort size, cohorts
    whale_curve: list[tuple[int, int, float, float, float]]  # percentile, customers, cum customer/profit/revenue share
    breakdown: dict[str, list[tuple[str, int, float, float, float, float, float]]]  # dimension -> segments
    kotler: KotlerMap
    clv: ClvData
    channels: list[ChannelEconomics]
    revenue_retention: list[RevenueRetention]
    run: RunInfo


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


def _i(value: Any) -> int | None:
    return None if value is None else int(value)


def load_report_data(wh: Warehouse, snapshot: date) -> ReportData:
    """Read every section of the report for `snapshot`; ReportError if nothing was published."""
    if not wh.table_exists("marts", "portfolio_summary"):
        raise ReportError(no_marts_message(snapshot))
    ph = wh.placeholder
    rows = wh.query(
        f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM marts.portfolio_summary WHERE snapshot_date = {ph}", [snapshot]
    )
    if not rows:
        raise ReportError(no_marts_message(snapshot))
    summary = dict(zip(SUMMARY_COLUMNS, rows[0], strict=True))
    return ReportData(
        snapshot=snapshot,
        summary=summary,
        cohort_heatmap=_cohort_heatmap(wh, snapshot),
        channel_retention=_channel_retention(wh, snapshot),
        whale_curve=_whale_curve(wh, snapshot),
        breakdown=_breakdown(wh, snapshot),
        kotler=_kotler(wh, snapshot),
        clv=_clv(wh, snapshot),
        channels=_channels(wh, snapshot),
        revenue_retention=_revenue_retention(wh, snapshot),
        run=_run(wh, snapshot),
    )


def _cohort_heatmap(wh: Warehouse, snapshot: date) -> list[tuple[date, int, int, int, float, bool]]:
    ph = wh.placeholder
    rows = wh.query(
        "SELECT cohort_month, period, cohort_size, active_customers, retention_rate, is_complete_period "
        f"FROM marts.cohort_retention WHERE snapshot_date = {ph} AND acquisition_channel = {ph} "
        "ORDER BY cohort_month, period",
        [snapshot, "all"],
    )
    return [(r[0], int(r[1]), int(r[2]), int(r[3]), float(r[4] or 0.0), bool(r[5])) for r in rows]


def _channel_retention(wh: Warehouse, snapshot: date) -> list[tuple[str, int, int, int, int]]:
    """Cohort-size-weighted bounded retention per channel and period, complete periods only."""
    ph = wh.placeholder
    rows = wh.query(
        "SELECT acquisition_channel, period, sum(active_customers), sum(cohort_size), count(*) "
        f"FROM marts.cohort_retention WHERE snapshot_date = {ph} AND is_complete_period "
        "GROUP BY acquisition_channel, period ORDER BY acquisition_channel, period",
        [snapshot],
    )
    return [(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]


def _whale_curve(wh: Warehouse, snapshot: date) -> list[tuple[int, int, float, float, float]]:
    ph = wh.placeholder
    rows = wh.query(
        "SELECT percentile, customers, cumulative_customer_share, cumulative_profit_share, cumulative_revenue_share "
        f"FROM marts.whale_curve WHERE snapshot_date = {ph} ORDER BY percentile",
        [snapshot],
    )
    return [(int(r[0]), int(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in rows]


def _breakdown(wh: Warehouse, snapshot: date) -> dict[str, list[tuple[str, int, float, float, float, float, float]]]:
    ph = wh.placeholder
    rows = wh.query(
        "SELECT dimension, segment, customers, revenue, net_profit, customer_share, revenue_share, profit_share "
        f"FROM marts.portfolio_breakdown WHERE snapshot_date = {ph} ORDER BY dimension, segment",
        [snapshot],
    )
    out: dict[str, list[tuple[str, int, float, float, float, float, float]]] = {}
    for r in rows:
        out.setdefault(str(r[0]), []).append(
            (str(r[1]), int(r[2]), float(r[3] or 0), float(r[4] or 0), float(r[5] or 0), float(r[6] or 0), float(r[7] or 0))
        )
    return out


_BUYERS = (
    "FROM marts.customer_segments s JOIN marts.customer_profitability p "
    "ON p.snapshot_date = s.snapshot_date AND p.customer_id = s.customer_id "
    "WHERE s.snapshot_date = {ph} AND s.kotler_quadrant <> 'prospect'"
)


def _kotler(wh: Warehouse, snapshot: date) -> KotlerMap:
    """Bins of loyalty score (0..1) x net profit (clipped to its 1st..99th percentile)."""
    ph = wh.placeholder
    profit = "CAST(p.net_profit AS double precision)"
    stats = wh.query(
        f"SELECT percentile_cont(0.01) WITHIN GROUP (ORDER BY {profit}), "
        f"percentile_cont(0.99) WITHIN GROUP (ORDER BY {profit}), "
        f"max({profit}) FILTER (WHERE s.kotler_quadrant IN ('stranger', 'barnacle')), "
        f"min({profit}) FILTER (WHERE s.kotler_quadrant IN ('true_friend', 'butterfly')), "
        "max(s.loyalty_score) FILTER (WHERE s.kotler_quadrant IN ('stranger', 'butterfly')), "
        "min(s.loyalty_score) FILTER (WHERE s.kotler_quadrant IN ('true_friend', 'barnacle')) "
        + _BUYERS.format(ph=ph),
        [snapshot],
    )[0]
    if stats[0] is None:
        return KotlerMap([], (0.0, 0.0), None, None)
    lo, hi = float(stats[0]), float(stats[1])
    width = (hi - lo) / KOTLER_PROFIT_BINS if hi > lo else 1.0
    lw = 1.0 / KOTLER_LOYALTY_BINS
    nb_l, nb_p = KOTLER_LOYALTY_BINS - 1, KOTLER_PROFIT_BINS - 1
    rows = wh.query(
        "SELECT quadrant, lb, pb, count(*), avg(loyalty), avg(profit) FROM ("
        "SELECT s.kotler_quadrant AS quadrant, s.loyalty_score AS loyalty, "
        f"{profit} AS profit, "
        f"LEAST(GREATEST(CAST(FLOOR(s.loyalty_score / {ph}) AS integer), 0), {nb_l}) AS lb, "
        f"LEAST(GREATEST(CAST(FLOOR(({profit} - {ph}) / {ph}) AS integer), 0), {nb_p}) AS pb "
        + _BUYERS.format(ph=ph)
        + ") binned GROUP BY quadrant, lb, pb ORDER BY quadrant, lb, pb",
        [lw, lo, width, snapshot],
    )
    points = [
        (str(r[0]), (int(r[1]) + 0.5) * lw, lo + (int(r[2]) + 0.5) * width, int(r[3]), float(r[4]), float(r[5]))
        for r in rows
    ]

    def midway(below: Any, above: Any) -> float | None:
        if below is None or above is None:
            return None
        return (float(below) + float(above)) / 2

    return KotlerMap(points, (lo, hi), midway(stats[2], stats[3]), midway(stats[4], stats[5]))


def _clv(wh: Warehouse, snapshot: date) -> ClvData:
    ph = wh.placeholder
    fits = [
        (str(r[0]), str(r[1]), _f(r[2]), str(r[3]), r[4], _i(r[5]))
        for r in wh.query(
            "SELECT model, parameter, value, status, message, customers "
            f"FROM marts.clv_model_fit WHERE snapshot_date = {ph} ORDER BY model, parameter",
            [snapshot],
        )
    ]
    # fitted = both models have rows and every row says ok (skipped/failed mean no CLV)
    fitted = all(f[3] == "ok" for f in fits) and {"bgnbd", "gamma_gamma"} <= {f[0] for f in fits}
    st = wh.query(
        "SELECT count(*), count(clv), avg(clv), percentile_cont(0.5) WITHIN GROUP (ORDER BY clv), "
        "percentile_cont(0.99) WITHIN GROUP (ORDER BY clv), min(clv), sum(clv), avg(p_alive), max(clv_horizon_months) "
        f"FROM marts.customer_clv WHERE snapshot_date = {ph}",
        [snapshot],
    )[0]
    base: dict[str, Any] = {
        "customers": int(st[0]),
        "customers_with_clv": int(st[1]),
        "mean_p_alive": _f(st[7]),
        "horizon_months": _i(st[8]),
    }
    if not fitted or not st[1]:
        return ClvData(fitted=False, fits=fits, **base)
    lo = min(0.0, float(st[5]))
    hi = float(st[4])
    width = (hi - lo) / CLV_BINS if hi > lo else 1.0
    counts = dict(
        (int(r[0]), int(r[1]))
        for r in wh.query(
            f"SELECT LEAST(GREATEST(CAST(FLOOR((clv - {ph}) / {ph}) AS integer), 0), {CLV_BINS}) AS b, count(*) "
            f"FROM marts.customer_clv WHERE snapshot_date = {ph} AND clv IS NOT NULL GROUP BY b ORDER BY b",
            [lo, width, snapshot],
        )
    )
    return ClvData(
        fitted=True,
        fits=fits,
        mean=_f(st[2]),
        median=_f(st[3]),
        total=_f(st[6]),
        bin_edges=[lo + i * width for i in range(CLV_BINS + 1)],
        bin_counts=[counts.get(i, 0) for i in range(CLV_BINS + 1)],
        **base,
    )


def _channels(wh: Warehouse, snapshot: date) -> list[ChannelEconomics]:
    """Per channel: CAC over all acquisition months; LTV at X months over the months that reached X
    (weighted by customers acquired); LTV/CAC over the months that reached 12."""
    ph = wh.placeholder
    sums = []
    for m in ("3m", "6m", "12m"):
        col = f"margin_per_customer_{m}"
        sums.append(f"sum({col} * customers_acquired) FILTER (WHERE {col} IS NOT NULL)")
        sums.append(f"sum(customers_acquired) FILTER (WHERE {col} IS NOT NULL)")
    rows = wh.query(
        "SELECT acquisition_channel, sum(customers_acquired), sum(spend), "
        + ", ".join(sums)
        + ", sum(spend) FILTER (WHERE margin_per_customer_12m IS NOT NULL), "
        "count(*) FILTER (WHERE margin_per_customer_12m IS NOT NULL), "
        "avg(CAST(payback_months AS double precision)) "
        f"FROM marts.channel_economics WHERE snapshot_date = {ph} "
        "GROUP BY acquisition_channel ORDER BY acquisition_channel",
        [snapshot],
    )
    out = []
    for r in rows:
        customers, spend = int(r[1] or 0), float(r[2] or 0)

        def ltv(total: Any, n: Any) -> float | None:
            return float(total) / int(n) if total is not None and n else None

        margin_12m, spend_12m = r[7], float(r[9] or 0)
        out.append(
            ChannelEconomics(
                channel=str(r[0]),
                customers=customers,
                spend=spend,
                cac=spend / customers if customers else None,
                ltv_3m=ltv(r[3], r[4]),
                ltv_6m=ltv(r[5], r[6]),
                ltv_12m=ltv(r[7], r[8]),
                ltv_to_cac_12m=float(margin_12m) / spend_12m if margin_12m is not None and spend_12m > 0 else None,
                cohorts_12m=int(r[10] or 0),
                mean_payback_months=_f(r[11]),
            )
        )
    return out


def _revenue_retention(wh: Warehouse, snapshot: date) -> list[RevenueRetention]:
    """The snapshot's NRR and GRR rows; none for a warehouse published before the mart existed."""
    if not wh.table_exists("marts", "revenue_retention"):
        return []
    ph = wh.placeholder
    rows = wh.query(
        "SELECT acquisition_channel, window_months, starting_customers, prior_revenue, current_revenue, "
        "net_revenue_retention, gross_revenue_retention, is_full_prior_window "
        f"FROM marts.revenue_retention WHERE snapshot_date = {ph} ORDER BY window_months, acquisition_channel",
        [snapshot],
    )
    return [RevenueRetention(str(r[0]), int(r[1]), int(r[2] or 0), Decimal(r[3] or 0), Decimal(r[4] or 0),
                             _f(r[5]), _f(r[6]), bool(r[7])) for r in rows]


def _run(wh: Warehouse, snapshot: date) -> RunInfo:
    """The latest successful run of the snapshot (the one whose marts are published), else the latest."""
    ph = wh.placeholder
    runs = wh.query(
        "SELECT run_id, outcome, failed_step, message, rows_extracted, rows_quarantined, rows_published, step_seconds "
        f"FROM marts.pipeline_runs WHERE snapshot_date = {ph} ORDER BY recorded_at, run_id",
        [snapshot],
    )
    attempts = [(str(r[0]), str(r[1]), r[2]) for r in runs]
    chosen = next((r for r in reversed(runs) if r[1] == "success"), runs[-1] if runs else None)
    quarantine = [
        (str(r[0]), str(r[1]), int(r[2]))
        for r in wh.query(
            "SELECT source_table, reason_code, count(*) FROM marts.quarantine "
            f"WHERE snapshot_date = {ph} GROUP BY source_table, reason_code ORDER BY source_table, reason_code",
            [snapshot],
        )
    ]
    if chosen is None:
        return RunInfo(None, None, None, None, None, None, None, {}, attempts, [], [], quarantine)
    run_id = str(chosen[0])
    dq = wh.query(
        "SELECT suite, count(*), count(*) FILTER (WHERE success) FROM marts.dq_results "
        f"WHERE snapshot_date = {ph} AND run_id = {ph} GROUP BY suite ORDER BY suite",
        [snapshot, run_id],
    )
    failures = wh.query(
        "SELECT suite, expectation, observed_value FROM marts.dq_results "
        f"WHERE snapshot_date = {ph} AND run_id = {ph} AND NOT success ORDER BY suite, expectation LIMIT 50",
        [snapshot, run_id],
    )
    seconds = json.loads(chosen[7]) if chosen[7] else {}
    return RunInfo(
        run_id=run_id,
        outcome=str(chosen[1]),
        failed_step=chosen[2],
        message=chosen[3],
        rows_extracted=_i(chosen[4]),
        rows_quarantined=_i(chosen[5]),
        rows_published=_i(chosen[6]),
        step_seconds={str(k): float(v) for k, v in seconds.items()},
        attempts=attempts,
        dq_by_suite=[(str(r[0]), int(r[1]), int(r[2])) for r in dq],
        dq_failures=[(str(r[0]), str(r[1]), r[2]) for r in failures],
        quarantine=quarantine,
    )


def as_decimal_text(value: Any) -> str:
    """The exact text of a database value (for the page's data-value attributes)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    return repr(value) if isinstance(value, float) else str(value)
