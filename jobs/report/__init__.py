"""`crm-metrics report`: one self-contained HTML page about the customer portfolio of a snapshot.

Input: the published marts of one snapshot date in the warehouse (DuckDB or PostgreSQL), read
with aggregating SQL (see jobs/report/data.py): portfolio_summary (header numbers),
cohort_retention (cohort heatmap, retention curves per channel), revenue_retention (NRR and GRR
per channel, chart and table), whale_curve, customer_segments +
customer_profitability + portfolio_breakdown (Kotler map, lifecycle and loyalty-ladder
distributions), customer_clv + clv_model_fit (CLV histogram, or a note when not fitted),
channel_economics (LTV/CAC) and pipeline_runs + dq_results + quarantine (data quality of the run).

Output: one HTML file (default `data/reports/portfolio_<date>.html`), written atomically (a
temporary file in the same folder, then os.replace). It is deterministic: the same marts give the
same bytes (no clock, fixed chart ids).

Charts are drawn with plotly because it gives analysts interactive hover and zoom in a single
offline HTML file (plotly.js is embedded once, inline) with no server to run.
"""

from __future__ import annotations

import argparse
import os
from datetime import date
from pathlib import Path

from jobs.platform.config import iso_date
from jobs.report.data import ReportError, no_marts_message
from schemas.steps import STEPS

__all__ = ["ReportError", "build_html", "configure", "default_output", "no_marts_message", "run", "write_report"]


def default_output(snapshot: date) -> Path:
    """Where the report goes when no --output is given: <data dir>/reports/portfolio_<date>.html."""
    from jobs.platform.config import data_dir

    return data_dir() / "reports" / f"portfolio_{snapshot.isoformat()}.html"


def build_html(warehouse_url: str, snapshot: date) -> str:
    """The report page for `snapshot` as a string; ReportError if the snapshot has no marts."""
    from jobs.platform.warehouse import open_warehouse
    from jobs.report.charts import all_charts
    from jobs.report.data import load_report_data
    from jobs.report.page import render_page

    wh = open_warehouse(warehouse_url)
    path = getattr(wh, "path", None)  # DuckDB: don't create an empty database by reading a wrong path
    if isinstance(path, Path) and not path.exists():
        raise ReportError(f"no DuckDB warehouse at {path}: {no_marts_message(snapshot)}")
    data = load_report_data(wh, snapshot)
    return render_page(data, all_charts(data, STEPS))


def write_report(warehouse_url: str, snapshot: date, output: Path) -> Path:
    """Write the report of `snapshot` to `output` atomically and return the path.

    The DAG's report task calls this. Raises ReportError (naming the date and the command to
    run) when the warehouse has no published marts for the snapshot; nothing is written then.
    """
    page = build_html(warehouse_url, snapshot)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        # os.open with 0o666 lets the umask decide the permissions, as for any new file
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(page)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return output


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the report options (`--warehouse` is added by jobs.cli)."""
    del name
    parser.add_argument(
        "--date", type=iso_date, required=True, metavar="YYYY-MM-DD",
        help="snapshot date whose published marts the report shows",
    )
    parser.add_argument(
        "--output", type=Path, metavar="FILE", default=None,
        help="HTML file to write (default: data/reports/portfolio_<date>.html)",
    )


def run(args: argparse.Namespace) -> int:
    """`crm-metrics report`: write the report and print where it is."""
    from jobs.platform.config import warehouse_url

    output = args.output or default_output(args.date)
    path = write_report(warehouse_url(args.warehouse), args.date, output)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): open it in a browser, it works offline")
    return 0
