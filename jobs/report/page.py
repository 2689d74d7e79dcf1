"""Assemble the report page: header numbers, charts and quality tables in one HTML string.

plotly.js is embedded once, inline, in the page's head, so the file works offline; each figure
is a div with a fixed id (`chart-<key>`) and no wall-clock time appears anywhere, so the same
marts always give the same bytes.
"""

from __future__ import annotations

import html
from decimal import Decimal
from typing import Any

import plotly.io as pio
from plotly.offline import get_plotlyjs

from jobs.report.charts import Chart
from jobs.report.data import ReportData, as_decimal_text

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}

# header cards: portfolio_summary column, label, format
HEADLINES = (
    ("customers", "Customers", "int"),
    ("active_customers", "Active customers", "int"),
    ("buying_customers", "Buying customers", "int"),
    ("revenue", "Net revenue", "money"),
    ("net_profit", "Net profit", "money"),
    ("net_profit_after_acquisition", "Profit after acquisition", "money"),
    ("top20_revenue_share", "Top-20% revenue share", "pct"),
    ("top20_profit_share", "Top-20% profit share", "pct"),
    ("gini_revenue", "Gini (revenue)", "ratio"),
    ("loss_making_customer_share", "Loss-making buyers", "pct"),
    ("whale_peak_profit_share", "Whale-curve peak", "pct"),
)

SECTIONS = {  # key -> title, how to read it (HTML), source marts
    "retention": (
        "Retention",
        "Share of each cohort (customers by month of first purchase) that bought again in each later month. "
        "Blank cells are months that have not happened yet; the colour scale tops out at the best period after "
        "the first, so period 0 (always 100%) is saturated. The curves average complete periods over the cohorts "
        "that reached them, weighted by cohort size.",
        "marts.cohort_retention",
    ),
    "profitability": (
        "Profitability and loyalty",
        "Whale curve: buyers ranked by net profit; a peak above 100% means the tail of the portfolio loses money. "
        "Kotler map: buyers binned by loyalty score and net profit (marker area = customers in the bin), split "
        "into true friends, butterflies, barnacles and strangers; dotted lines mark the quadrant thresholds.",
        "marts.whale_curve, marts.customer_segments, marts.customer_profitability, marts.portfolio_breakdown",
    ),
    "segments": (
        "Segments and lifetime value",
        "Where customers stand in the relationship lifecycle and on the loyalty ladder; predicted CLV "
        "(BG/NBD purchases x Gamma-Gamma spend, discounted) per buying customer.",
        "marts.portfolio_breakdown, marts.customer_clv, marts.clv_model_fit",
    ),
    "channels": (
        "Acquisition channels",
        "Acquisition cost per customer (CAC, over all acquisition months) against cumulative margin per "
        "customer after 3, 6 and 12 months (over the acquisition months that have reached them). "
        "LTV/CAC 12m = 12-month margin / spend of the months that have reached 12 months.",
        "marts.channel_economics",
    ),
    "quality": (
        "Data quality of the run",
        "Great Expectations results of the run that published this snapshot, the time each step took, and the "
        "source rows the raw gate set aside.",
        "marts.pipeline_runs, marts.dq_results, marts.quarantine",
    ),
}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222;
       background: #f5f6f8; }
header { background: #1f3b57; color: #fff; padding: 20px 32px 24px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header .meta { opacity: 0.85; font-size: 14px; }
.kpis { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 12px; margin-top: 18px; }
.kpi { background: rgba(255,255,255,0.1); border-radius: 6px; padding: 10px 14px; }
.kpi .label { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; opacity: .85; }
.kpi .value { font-size: 22px; font-weight: 600; margin-top: 2px; font-variant-numeric: tabular-nums; }
main { padding: 8px 32px 32px; max-width: 1500px; }
section { margin-top: 24px; }
section h2 { margin: 0 0 4px; font-size: 19px; }
section p.read { margin: 0 0 4px; font-size: 14px; color: #444; max-width: 1100px; }
section p.source { margin: 0 0 10px; font-size: 12px; color: #777; }
/* fixed tracks: each figure is sized when its script runs, before later cards exist */
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; }
@media (max-width: 1100px) { .grid { grid-template-columns: minmax(0, 1fr); }
                             .kpis { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
.wide { grid-column: 1 / -1; }
.card { min-width: 0; background: #fff; border-radius: 6px; box-shadow: 0 1px 3px rgba(0,0,0,.08); padding: 12px 14px; }
.card h3 { margin: 0 0 6px; font-size: 15px; }
.card p.caption { margin: -2px 0 6px; font-size: 13px; color: #555; }
.note { padding: 16px; background: #fff8e1; border-left: 4px solid #f0b400; font-size: 14px; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 12px 4px 0; border-bottom: 1px solid #eee; vertical-align: top; }
td.num { text-align: right; }
.ok { color: #2ca02c; font-weight: 600; } .bad { color: #d62728; font-weight: 600; }
footer { padding: 0 32px 24px; font-size: 12px; color: #777; }
"""


def fmt(value: Any, kind: str) -> str:
    """A header number as shown: thousands separators; money with cents; shares in % (1 decimal)."""
    if value is None:
        return "n/a"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "money":
        return f"{Decimal(value):,.2f}"
    if kind == "pct":
        return f"{float(value) * 100:.1f}%"
    return f"{float(value):.3f}"


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _chart_html(chart: Chart) -> str:
    cls = "card wide" if chart.wide else "card"
    head = f'<div class="{cls}" data-chart="{chart.key}"><h3>{_esc(chart.title)}</h3>'
    if chart.caption:
        head += f'<p class="caption">{chart.caption}</p>'
    if chart.figure is None:
        return f'{head}<div class="note" id="note-{chart.key}">{chart.note or ""}</div></div>'
    body = pio.to_html(
        chart.figure,
        config=PLOTLY_CONFIG,
        include_plotlyjs=False,
        full_html=False,
        div_id=f"chart-{chart.key}",
        default_height=f"{chart.height}px",
        default_width="100%",
    )
    return f"{head}{body}</div>"


def _header(data: ReportData) -> str:
    run = data.run
    run_text = (
        f"run <code>{_esc(run.run_id)}</code> ({_esc(run.outcome)})" if run.run_id else "no pipeline run recorded"
    )
    cards = "".join(
        f'<div class="kpi" data-field="{col}" data-value="{_esc(as_decimal_text(data.summary[col]))}">'
        f'<div class="label">{label}</div><div class="value">{fmt(data.summary[col], kind)}</div></div>'
        for col, label, kind in HEADLINES
    )
    return (
        f'<header><h1>Customer portfolio report</h1><div class="meta">snapshot '
        f'<b id="snapshot-date">{data.snapshot.isoformat()}</b> &middot; {run_text} &middot; '
        f"metrics as of the end of the day (UTC)</div>"
        f'<div class="kpis" id="headline">{cards}</div></header>'
    )


def _quality_tables(data: ReportData) -> str:
    run = data.run
    if not run.run_id:
        return '<div class="card"><div class="note">No marts.pipeline_runs row for this snapshot.</div></div>'
    outcome_cls = "ok" if run.outcome == "success" else "bad"
    rows = [
        ("run id", f"<code>{_esc(run.run_id)}</code>"),
        ("outcome", f'<span class="{outcome_cls}">{_esc(run.outcome)}</span>'
         + (f" at {_esc(run.failed_step)}: {_esc(run.message)}" if run.failed_step else "")),
        ("rows extracted", fmt(run.rows_extracted, "int")),
        ("rows quarantined", fmt(run.rows_quarantined, "int")),
        ("rows published", fmt(run.rows_published, "int")),
        ("quality checks", f"{sum(s[2] for s in run.dq_by_suite):,} passed of {sum(s[1] for s in run.dq_by_suite):,}"),
        ("total seconds", f"{sum(run.step_seconds.values()):.1f}"),
    ]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    parts = [f'<div class="card"><h3>Pipeline run</h3><table id="run-table">{table}</table>']
    if len(run.attempts) > 1:
        att = "".join(
            f"<tr><td><code>{_esc(r)}</code></td><td>{_esc(o)}</td><td>{_esc(s)}</td></tr>" for r, o, s in run.attempts
        )
        parts.append(f"<h3>All recorded attempts</h3><table><tr><th>run id</th><th>outcome</th>"
                     f"<th>failed step</th></tr>{att}</table>")
    if run.dq_failures:
        fails = "".join(
            f"<tr><td>{_esc(s)}</td><td>{_esc(e)}</td><td>{_esc(o)}</td></tr>" for s, e, o in run.dq_failures
        )
        parts.append(f'<h3>Failed expectations</h3><table id="dq-failures"><tr><th>suite</th><th>expectation</th>'
                     f"<th>observed</th></tr>{fails}</table>")
    parts.append("</div>")
    return "".join(parts)


def render_page(data: ReportData, sections: dict[str, list[Chart]]) -> str:
    """The whole self-contained page."""
    body = []
    for key, charts in sections.items():
        title, how, source = SECTIONS[key]
        cards = "".join(_chart_html(c) for c in charts)
        if key == "quality":
            cards = _quality_tables(data) + cards
        body.append(
            f'<section id="section-{key}"><h2>{title}</h2><p class="read">{how}</p>'
            f'<p class="source">source: {source}</p><div class="grid">{cards}</div></section>'
        )
    title = f"Customer portfolio report, snapshot {data.snapshot.isoformat()}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style>"
        "<script type=\"text/javascript\">window.PlotlyConfig = {MathJaxConfig: 'local'};</script>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
        f"<body>{_header(data)}<main>{''.join(body)}</main>"
        "<footer>Generated by <code>crm-metrics report</code> from the published marts of the warehouse. "
        "Column definitions: docs/marts.md.</footer></body></html>\n"
    )
