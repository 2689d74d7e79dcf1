"""The report's charts: one function per section, from `ReportData` to plotly figures.

A section returns `Chart`s; a chart has either a figure or, when there is nothing to draw
(CLV model not fitted, no quarantined rows), a note that says why, never an empty plot.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from jobs.report.data import ChannelEconomics, ClvData, KotlerMap, ReportData, RevenueRetention, RunInfo

TEMPLATE = "plotly_white"
FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13}

QUADRANTS = {  # label, colour, position of the count label (x, y in paper coordinates)
    "true_friend": ("True friends", "#2ca02c", (0.98, 0.98)),
    "butterfly": ("Butterflies", "#1f77b4", (0.02, 0.98)),
    "barnacle": ("Barnacles", "#ff7f0e", (0.98, 0.02)),
    "stranger": ("Strangers", "#7f7f7f", (0.02, 0.02)),
}
LIFECYCLE_ORDER = ("prospect", "acquisition", "development", "retention", "decline", "lapsed")
LOYALTY_ORDER = ("prospect", "customer", "client", "supporter", "advocate", "partner")
CHANNEL_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class Cell:
    """A table cell: the text shown and the exact database value (the cell's data-value)."""

    shown: str
    raw: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


@dataclass(frozen=True)
class Chart:
    """One chart slot on the page: a figure, or a note explaining why there is none."""

    key: str  # stable id: the plotly div is "chart-<key>"
    title: str
    figure: go.Figure | None = None
    note: str | None = None  # HTML, already escaped
    caption: str | None = None  # HTML, already escaped: a line of numbers under the title
    height: int = 440
    wide: bool = False  # spans both columns of the section's grid
    table: Table | None = None  # the chart's numbers, exact, under the figure


def _layout(fig: go.Figure, height: int, **kwargs: object) -> go.Figure:
    settings: dict[str, object] = {
        "template": TEMPLATE,
        "font": FONT,
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    }
    fig.update_layout(**{**settings, **kwargs})
    return fig


def _month(d: date) -> str:
    return d.strftime("%Y-%m")


def _ordered(segments: list[str], order: tuple[str, ...]) -> list[str]:
    return [s for s in order if s in segments] + sorted(s for s in segments if s not in order)


def cohort_heatmap(data: ReportData) -> Chart:
    """Bounded retention by cohort month (rows) and period (columns), all channels together."""
    rows = data.cohort_heatmap
    if not rows:
        return Chart("cohort-heatmap", "Cohort retention", note="No cohorts: no customer has purchased yet.")
    cohorts = sorted({r[0] for r in rows})
    periods = list(range(max(r[1] for r in rows) + 1))
    cell = {(r[0], r[1]): r for r in rows}
    z: list[list[float | None]] = []
    custom: list[list[list[object]]] = []
    for c in cohorts:
        z.append([cell[(c, p)][4] if (c, p) in cell else None for p in periods])
        custom.append(
            [
                [cell[(c, p)][3], cell[(c, p)][2], "" if cell[(c, p)][5] else " (month not over)"]
                if (c, p) in cell
                else [0, 0, ""]
                for p in periods
            ]
        )
    later = [r[4] for r in rows if r[1] > 0]
    fig = go.Figure(
        go.Heatmap(
            x=periods,
            y=[_month(c) for c in cohorts],
            z=z,
            customdata=custom,
            colorscale="Blues",
            zmin=0,
            zmax=max(later) if later and max(later) > 0 else 1,
            colorbar={"title": {"text": "retention"}, "tickformat": ".0%"},
            texttemplate="%{z:.0%}" if len(cohorts) * len(periods) <= 600 else None,
            textfont={"size": 10},
            hovertemplate="cohort %{y}, period %{x}%{customdata[2]}<br>retention %{z:.1%}"
            "<br>active %{customdata[0]:,} of %{customdata[1]:,}<extra></extra>",
            hoverongaps=False,
        )
    )
    _layout(fig, max(360, 24 * len(cohorts) + 120))
    fig.update_xaxes(title_text="months since first purchase (period)", dtick=1)
    fig.update_yaxes(title_text="cohort (month of first purchase)", autorange="reversed", type="category")
    return Chart("cohort-heatmap", "Cohort retention", fig, height=max(360, 24 * len(cohorts) + 120), wide=True)


def channel_retention(data: ReportData) -> Chart:
    """Retention curve per acquisition channel: active / cohort size over the cohorts that reached
    each period (complete periods only), with all channels as a dashed reference."""
    by_channel: dict[str, list[tuple[int, int, int, int]]] = {}
    for channel, period, active, size, n in data.channel_retention:
        by_channel.setdefault(channel, []).append((period, active, size, n))
    if not by_channel:
        return Chart("channel-retention", "Retention by acquisition channel", note="No complete period yet.")
    fig = go.Figure()
    channels = sorted(c for c in by_channel if c != "all") + (["all"] if "all" in by_channel else [])
    for i, channel in enumerate(channels):
        pts = [p for p in by_channel[channel] if p[2] > 0]
        is_all = channel == "all"
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in pts],
                y=[p[1] / p[2] for p in pts],
                customdata=[[p[3], p[2]] for p in pts],
                mode="lines+markers",
                name="all channels" if is_all else channel,
                line={"color": "#222" if is_all else CHANNEL_COLOURS[i % len(CHANNEL_COLOURS)],
                      "dash": "dash" if is_all else "solid", "width": 3 if is_all else 2},
                marker={"size": 5},
                hovertemplate=f"{html.escape(channel)}, period %{{x}}: %{{y:.1%}}"
                "<br>%{customdata[0]} cohorts, %{customdata[1]:,} customers<extra></extra>",
            )
        )
    _layout(fig, 440)
    last = max(p[1] for p in data.channel_retention)
    fig.update_xaxes(title_text="months since first purchase (period)", dtick=1, range=[-0.3, last + 0.3])
    fig.update_yaxes(title_text="active in the period / cohort size", tickformat=".0%", rangemode="tozero")
    return Chart("channel-retention", "Retention by acquisition channel", fig, wide=True)


def whale_curve(data: ReportData) -> Chart:
    """Cumulative share of profit (and revenue) against the share of buyers ranked by profit."""
    rows = data.whale_curve
    if not rows:
        return Chart("whale-curve", "Whale curve", note="No buying customers yet.")
    x = [0.0] + [r[2] for r in rows]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=x, y=[0.0] + [r[3] for r in rows], name="cumulative profit share", mode="lines",
                   line={"color": "#d62728", "width": 3},
                   hovertemplate="top %{x:.0%} of buyers: %{y:.1%} of profit<extra></extra>")
    )
    fig.add_trace(
        go.Scatter(x=x, y=[0.0] + [r[4] for r in rows], name="cumulative revenue share", mode="lines",
                   line={"color": "#1f77b4", "width": 2, "dash": "dot"},
                   hovertemplate="top %{x:.0%} of buyers: %{y:.1%} of revenue<extra></extra>")
    )
    fig.add_hline(y=1.0, line={"color": "#888", "dash": "dash", "width": 1})
    top20 = min(rows, key=lambda r: (abs(r[2] - 0.2), r[0]))  # percentile 20 when there are 100
    if top20[2] < 0.9:
        fig.add_annotation(x=top20[2], y=top20[3], text=f"top {top20[2]:.0%} of buyers:<br>{top20[3]:.0%} of profit",
                           showarrow=True, arrowhead=2, ax=60, ay=50, align="left")
    peak = max(rows, key=lambda r: (r[3], -r[0]))
    if peak[3] > 1.005 and peak[0] < rows[-1][0]:  # the tail loses money: show how much
        fig.add_annotation(x=peak[2], y=peak[3], text=f"peak {peak[3]:.0%} of profit at the top {peak[2]:.0%};"
                           "<br>the rest lose money", showarrow=True, arrowhead=2, ax=-70, ay=45, align="right")
    _layout(fig, 440)
    fig.update_xaxes(title_text="buyers ranked by net profit (cumulative share)", tickformat=".0%", range=[0, 1])
    fig.update_yaxes(title_text="cumulative share of total", tickformat=".0%")
    return Chart("whale-curve", "Whale curve", fig)


def kotler_map(kotler: KotlerMap, quadrants: list[tuple[str, int, float, float, float, float, float]]) -> Chart:
    """Profit against loyalty, buyers binned, coloured by Kotler quadrant, with the count of each."""
    if not kotler.points:
        return Chart("kotler-map", "Kotler quadrants: profit x loyalty", note="No buying customers yet.")
    counts = {q[0]: q for q in quadrants}
    fig = go.Figure()
    biggest = max(p[3] for p in kotler.points)
    for quadrant in [q for q in QUADRANTS if any(p[0] == q for p in kotler.points)] + sorted(
        {p[0] for p in kotler.points} - set(QUADRANTS)
    ):
        label, colour, _ = QUADRANTS.get(quadrant, (quadrant, "#9467bd", (0.5, 0.5)))
        pts = [p for p in kotler.points if p[0] == quadrant]
        row = counts.get(quadrant)
        name = f"{label}: {row[1]:,} ({row[4]:.0%}), {row[6]:.0%} of profit" if row else label
        fig.add_trace(
            go.Scatter(
                x=[p[1] for p in pts],
                y=[p[2] for p in pts],
                mode="markers",
                name=name,
                customdata=[[p[3], p[4], p[5]] for p in pts],
                marker={"color": colour, "opacity": 0.75, "sizemode": "area",
                        "size": [p[3] for p in pts], "sizeref": biggest / 30**2, "sizemin": 3,
                        "line": {"width": 0}},
                hovertemplate=f"{label}: %{{customdata[0]:,}} customers<br>mean loyalty %{{customdata[1]:.2f}}"
                "<br>mean net profit %{customdata[2]:,.2f}<extra></extra>",
            )
        )
    if kotler.profit_threshold is not None:
        fig.add_hline(y=kotler.profit_threshold, line={"color": "#444", "dash": "dot", "width": 1})
    if kotler.loyalty_threshold is not None:
        fig.add_vline(x=kotler.loyalty_threshold, line={"color": "#444", "dash": "dot", "width": 1})
    for quadrant, (label, colour, (px, py)) in QUADRANTS.items():
        if quadrant in counts:
            fig.add_annotation(
                xref="paper", yref="paper", x=px, y=py, xanchor="right" if px > 0.5 else "left",
                yanchor="top" if py > 0.5 else "bottom", showarrow=False, text=f"<b>{label}</b>",
                font={"color": colour, "size": 12}, opacity=0.8,
            )
    lo, hi = kotler.profit_range
    pad = (hi - lo) * 0.05 or 1.0
    prospects = counts.get("prospect")
    _layout(fig, 560, legend={"orientation": "v", "yanchor": "bottom", "y": 1.0, "x": 0, "itemsizing": "constant"})
    fig.update_layout(margin={"t": 100})
    fig.update_xaxes(title_text="loyalty score (active-month share x tenure)", range=[-0.02, 1.02])
    fig.update_yaxes(title_text="net profit per customer", range=[lo - pad, hi + pad], tickformat=",.0f")
    caption = (
        "Buyers only" + (f" ({prospects[1]:,} prospects without a purchase are left out)" if prospects else "")
        + f"; net profit axis clipped to the 1st-99th percentile ({lo:,.0f} to {hi:,.0f}), "
        "customers beyond it sit in the edge bins."
    )
    return Chart("kotler-map", "Kotler quadrants: profit x loyalty", fig, height=560, caption=caption)


def segment_distributions(breakdown: dict[str, list[tuple[str, int, float, float, float, float, float]]]) -> Chart:
    """Customers per lifecycle stage and per loyalty-ladder rung (portfolio_breakdown)."""
    dims = (("lifecycle_stage", "Lifecycle stage", LIFECYCLE_ORDER), ("loyalty_rung", "Loyalty ladder", LOYALTY_ORDER))
    if not any(breakdown.get(d) for d, _, _ in dims):
        return Chart("segments", "Lifecycle stages and loyalty ladder", note="No segments published.")
    fig = make_subplots(rows=1, cols=2, subplot_titles=[t for _, t, _ in dims], horizontal_spacing=0.08)
    for col, (dim, title, order) in enumerate(dims, start=1):
        rows = {r[0]: r for r in breakdown.get(dim, [])}
        names = _ordered(list(rows), order)
        fig.add_trace(
            go.Bar(
                x=names,
                y=[rows[n][1] for n in names],
                name=title,
                marker={"color": "#1f77b4" if col == 1 else "#9467bd"},
                customdata=[[rows[n][4], rows[n][5], rows[n][6]] for n in names],
                text=[f"{rows[n][4]:.0%}" for n in names],
                textposition="outside",
                hovertemplate="%{x}: %{y:,} customers (%{customdata[0]:.1%})<br>revenue share %{customdata[1]:.1%}"
                "<br>profit share %{customdata[2]:.1%}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
    _layout(fig, 440)
    fig.update_layout(margin={"t": 70})
    fig.update_yaxes(title_text="customers", tickformat=",", row=1, col=1)
    fig.update_yaxes(tickformat=",", row=1, col=2)
    return Chart("segments", "Lifecycle stages and loyalty ladder", fig, height=440)


def clv_distribution(clv: ClvData) -> Chart:
    """Histogram of predicted CLV (binned in SQL), or a note when the models were not fitted."""
    title = "Predicted customer lifetime value"
    if not clv.fitted:
        lines = "".join(
            f"<li><code>{html.escape(m)}</code>: {html.escape(s)}{': ' + html.escape(msg) if msg else ''}</li>"
            for m, s, msg in sorted({(f[0], f[3], f[4] or "") for f in clv.fits})
        ) or "<li>no clv_model_fit rows for this snapshot</li>"
        return Chart(
            "clv", title,
            note="<p><b>The CLV models were not fitted for this snapshot</b>, so there is no CLV to show "
            f"(marts.clv_model_fit):</p><ul>{lines}</ul>",
        )
    edges, counts = clv.bin_edges, clv.bin_counts
    width = edges[1] - edges[0]
    n = len(counts) - 1
    x = [edges[i] + width / 2 for i in range(n)] + [edges[-1] + width / 2]
    ranges = [f"{edges[i]:,.0f} to {edges[i + 1]:,.0f}" for i in range(n)] + [f"{edges[-1]:,.0f} or more (top 1%)"]
    fig = go.Figure(
        go.Bar(
            x=x, y=counts, width=[width * 0.95] * (n + 1), customdata=ranges,
            marker={"color": ["#2ca02c"] * n + ["#98df8a"]},
            hovertemplate="CLV %{customdata}: %{y:,} customers<extra></extra>", name="customers",
        )
    )
    for value, label, dash, pos in ((clv.median, "median", "dot", "top left"), (clv.mean, "mean", "dash", "top right")):
        if value is not None:
            fig.add_vline(x=value, line={"color": "#333", "dash": dash, "width": 1},
                          annotation_text=f"{label} {value:,.2f}", annotation_position=pos)
    _layout(fig, 440, showlegend=False, bargap=0)
    fig.update_layout(margin={"t": 60})
    fig.update_xaxes(title_text=f"CLV over the next {clv.horizon_months} months (last bar: top 1%)", tickformat=",.0f")
    fig.update_yaxes(title_text="customers", tickformat=",")
    caption = (
        f"{clv.customers_with_clv:,} buyers; total predicted CLV {clv.total or 0:,.2f}; "
        f"mean P(alive) {clv.mean_p_alive or 0:.2f}"
    )
    return Chart("clv", title, fig, height=440, caption=caption)


def _ratio_cell(value: float | None) -> Cell:
    return Cell("n/a" if value is None else f"{value:.1%}", "" if value is None else repr(value))


def revenue_retention(rows: list[RevenueRetention]) -> Chart:
    """NRR and GRR per acquisition channel over the 3- and 12-month windows, with their table."""
    title = "Net and gross revenue retention"
    if not any(r.starting_customers for r in rows):
        return Chart("revenue-retention", title,
                     note="No starting customers: nobody bought in a prior window yet.")
    ordered = sorted(rows, key=lambda r: (r.window_months, r.channel == "all", r.channel))
    names = sorted({r.channel for r in rows if r.channel != "all"}) + ["all"]
    fig = go.Figure()
    shades = {("net", 3): "#9ecae1", ("gross", 3): "#fdae6b", ("net", 12): "#2171b5", ("gross", 12): "#d94801"}
    for window in sorted({r.window_months for r in rows}):
        by_channel = {r.channel: r for r in rows if r.window_months == window}
        for kind, attr in (("net", "net_revenue_retention"), ("gross", "gross_revenue_retention")):
            label = f"{'NRR' if kind == 'net' else 'GRR'} {window} months"
            fig.add_trace(go.Bar(
                x=["all channels" if n == "all" else n for n in names],
                y=[getattr(by_channel[n], attr) if n in by_channel else None for n in names],
                name=label, marker={"color": shades.get((kind, window), "#777")},
                customdata=[[by_channel[n].starting_customers if n in by_channel else 0] for n in names],
                hovertemplate=f"%{{x}}: {label} %{{y:.1%}}<br>%{{customdata[0]:,}} starting customers<extra></extra>",
            ))
    _layout(fig, 420, barmode="group")
    fig.add_hline(y=1.0, line={"dash": "dot", "color": "#555", "width": 1})
    fig.update_yaxes(title_text="current / prior window revenue", tickformat=".0%", rangemode="tozero")
    table = Table(
        ("channel", "window", "starting customers", "prior revenue", "current revenue", "NRR", "GRR", "full prior window"),
        [(Cell(r.channel, r.channel), Cell(f"{r.window_months} months", str(r.window_months)),
          Cell(f"{r.starting_customers:,}", str(r.starting_customers)),
          Cell(f"{r.prior_revenue:,.2f}", format(r.prior_revenue, "f")),
          Cell(f"{r.current_revenue:,.2f}", format(r.current_revenue, "f")),
          _ratio_cell(r.net_revenue_retention), _ratio_cell(r.gross_revenue_retention),
          Cell("yes" if r.is_full_prior_window else "no (history starts later)", str(r.is_full_prior_window).lower()))
         for r in ordered],
    )
    return Chart("revenue-retention", title, fig, height=420, wide=True, table=table)


def channel_ltv_cac(channels: list[ChannelEconomics]) -> Chart:
    """CAC against cumulative margin per customer (LTV) at 3, 6 and 12 months, per channel."""
    if not channels:
        return Chart("channel-economics", "Channel LTV / CAC", note="No channel economics published.")
    ordered = sorted((c for c in channels if c.channel != "all"), key=lambda c: c.channel) + [
        c for c in channels if c.channel == "all"
    ]
    names = ["all channels" if c.channel == "all" else c.channel for c in ordered]
    custom = [
        [c.customers, c.spend, c.cohorts_12m, "n/a" if c.mean_payback_months is None else f"{c.mean_payback_months:.1f}"]
        for c in ordered
    ]
    hover = ("<br>%{customdata[0]:,} customers acquired, spend %{customdata[1]:,.2f}"
             "<br>%{customdata[2]} acquisition months with 12 complete months"
             "<br>mean payback %{customdata[3]} months<extra></extra>")
    fig = go.Figure()
    bars = (("CAC", "cac", "#d62728"), ("LTV 3 months", "ltv_3m", "#c7e9c0"),
            ("LTV 6 months", "ltv_6m", "#74c476"), ("LTV 12 months", "ltv_12m", "#238b45"))
    for label, attr, colour in bars:
        fig.add_trace(
            go.Bar(x=names, y=[getattr(c, attr) for c in ordered], name=label, marker={"color": colour},
                   customdata=custom, hovertemplate=f"%{{x}}: {label} %{{y:,.2f}}" + hover)
        )
    tops = [max([v for v in (c.cac, c.ltv_3m, c.ltv_6m, c.ltv_12m) if v is not None] or [0.0]) for c in ordered]
    for name, c, top in zip(names, ordered, tops, strict=True):
        ratio = "no spend" if c.ltv_to_cac_12m is None else f"{c.ltv_to_cac_12m:.1f}x"
        fig.add_annotation(x=name, y=top, yshift=12, showarrow=False, text=f"LTV/CAC 12m: <b>{ratio}</b>",
                           font={"size": 11})
    _layout(fig, 460, barmode="group")
    fig.update_yaxes(title_text="per customer acquired", tickformat=",.0f")
    return Chart("channel-economics", "Channel LTV / CAC", fig, height=460, wide=True)


def quality_charts(run: RunInfo, steps_order: tuple[str, ...]) -> list[Chart]:
    """Quality checks per suite, seconds per step, and quarantined rows by reason."""
    out = []
    if run.dq_by_suite:
        suites = [s[0] for s in run.dq_by_suite]
        fig = go.Figure()
        fig.add_trace(go.Bar(y=suites, x=[s[2] for s in run.dq_by_suite], orientation="h", name="passed",
                             marker={"color": "#2ca02c"}, hovertemplate="%{y}: %{x} passed<extra></extra>"))
        fig.add_trace(go.Bar(y=suites, x=[s[1] - s[2] for s in run.dq_by_suite], orientation="h", name="failed",
                             marker={"color": "#d62728"}, hovertemplate="%{y}: %{x} failed<extra></extra>"))
        h = max(300, 22 * len(suites) + 110)
        _layout(fig, h, barmode="stack", legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0,
                                                  "traceorder": "normal"})
        fig.update_layout(margin={"l": 190})
        fig.update_xaxes(title_text="expectations")
        fig.update_yaxes(autorange="reversed")
        out.append(Chart("dq-checks", "Quality checks per suite", fig, height=h))
    else:
        out.append(Chart("dq-checks", "Quality checks per suite", note="No quality results recorded for this run."))
    if run.step_seconds:
        steps = [s for s in steps_order if s in run.step_seconds] + sorted(set(run.step_seconds) - set(steps_order))
        fig = go.Figure(go.Bar(y=steps, x=[run.step_seconds[s] for s in steps], orientation="h",
                               marker={"color": "#1f77b4"}, text=[f"{run.step_seconds[s]:.1f} s" for s in steps],
                               textposition="auto", hovertemplate="%{y}: %{x:.1f} s<extra></extra>"))
        _layout(fig, 300, showlegend=False)
        fig.update_layout(margin={"l": 120})
        fig.update_xaxes(title_text="seconds")
        fig.update_yaxes(autorange="reversed")
        out.append(Chart("step-seconds", "Seconds per step", fig, height=300))
    else:
        out.append(Chart("step-seconds", "Seconds per step", note="No step timings recorded for this snapshot."))
    if run.quarantine:
        reasons = sorted({q[1] for q in run.quarantine})
        fig = go.Figure()
        for i, table in enumerate(sorted({q[0] for q in run.quarantine})):
            rows = {q[1]: q[2] for q in run.quarantine if q[0] == table}
            fig.add_trace(go.Bar(y=reasons, x=[rows.get(r, 0) for r in reasons], orientation="h", name=table,
                                 marker={"color": CHANNEL_COLOURS[i % len(CHANNEL_COLOURS)]},
                                 hovertemplate=f"{html.escape(table)}, %{{y}}: %{{x:,}} rows<extra></extra>"))
        h = max(300, 24 * len(reasons) + 110)
        _layout(fig, h, barmode="stack")
        fig.update_layout(margin={"l": 190})
        fig.update_xaxes(title_text="rows quarantined", tickformat=",")
        fig.update_yaxes(autorange="reversed")
        out.append(Chart("quarantine", "Quarantined rows by reason", fig, height=h))
    else:
        out.append(Chart("quarantine", "Quarantined rows by reason",
                         note="No rows were quarantined for this snapshot: every source row passed the raw gate."))
    return out


def all_charts(data: ReportData, steps_order: tuple[str, ...]) -> dict[str, list[Chart]]:
    """Charts per page section, in page order."""
    return {
        "retention": [cohort_heatmap(data), channel_retention(data), revenue_retention(data.revenue_retention)],
        "profitability": [whale_curve(data), kotler_map(data.kotler, data.breakdown.get("kotler_quadrant", []))],
        "segments": [segment_distributions(data.breakdown), clv_distribution(data.clv)],
        "channels": [channel_ltv_cac(data.channels)],
        "quality": quality_charts(data.run, steps_order),
    }

