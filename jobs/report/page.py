"""Assemble the report page: header numbers, charts and quality tables, through a Jinja2 template.

plotly.js is embedded once, inline, in the page's head, so the file works offline; each figure
is a div with a fixed id (`chart-<key>`) and no wall-clock time appears anywhere, so the same
marts always give the same bytes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import plotly.io as pio
from jinja2 import Environment, PackageLoader, select_autoescape
from plotly.offline import get_plotlyjs

from jobs.report.charts import Chart
from jobs.report.data import ReportData, as_decimal_text

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
# autoescaped: every value from the marts is text; only our own markup (captions, notes, the
# section notes, plotly's figures) is passed as safe
TEMPLATES = Environment(loader=PackageLoader("jobs.report", "templates"), autoescape=select_autoescape(["html", "j2"]),
                        keep_trailing_newline=False)

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
        "that reached them, weighted by cohort size. Revenue retention follows the customers who bought in the "
        "prior window (3 or 12 months before the current one, ending on the snapshot): NRR = their revenue now / "
        "then, expansion included; GRR caps each customer at what they spent then, so it never exceeds 100%.",
        "marts.cohort_retention, marts.revenue_retention",
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


def _chart_body(chart: Chart) -> str | None:
    """The figure's div and script (plotly's own HTML), or None for a chart shown as a note."""
    if chart.figure is None:
        return None
    return str(pio.to_html(
        chart.figure,
        config=PLOTLY_CONFIG,
        include_plotlyjs=False,
        full_html=False,
        div_id=f"chart-{chart.key}",
        default_height=f"{chart.height}px",
        default_width="100%",
    ))


def _run_rows(data: ReportData) -> list[tuple[str, str]]:
    run = data.run
    checks = f"{sum(s[2] for s in run.dq_by_suite):,} passed of {sum(s[1] for s in run.dq_by_suite):,}"
    return [
        ("rows extracted", fmt(run.rows_extracted, "int")),
        ("rows quarantined", fmt(run.rows_quarantined, "int")),
        ("rows published", fmt(run.rows_published, "int")),
        ("quality checks", checks),
        ("total seconds", f"{sum(run.step_seconds.values()):.1f}"),
    ]


def render_page(data: ReportData, sections: dict[str, list[Chart]]) -> str:
    """The whole self-contained page (templates/portfolio.html.j2)."""
    headlines = [{"field": col, "label": label, "raw": as_decimal_text(data.summary[col]), "value": fmt(data.summary[col], kind)}
                 for col, label, kind in HEADLINES]
    blocks = [
        {"key": key, "title": SECTIONS[key][0], "how": SECTIONS[key][1], "source": SECTIONS[key][2],
         "charts": [{"key": c.key, "title": c.title, "wide": c.wide, "caption": c.caption, "note": c.note or "",
                     "body": _chart_body(c), "table": c.table} for c in charts]}
        for key, charts in sections.items()
    ]
    page = TEMPLATES.get_template("portfolio.html.j2").render(
        snapshot=data.snapshot.isoformat(), run=data.run, run_rows=_run_rows(data), headlines=headlines,
        sections=blocks, css=CSS, plotly_js=get_plotlyjs(),
    )
    return page + "\n"
