"""`crm-metrics report`: the HTML page built from a real published DuckDB warehouse, opened in a
real headless Chromium. Every chart must render with real trace elements, and the header numbers
must equal portfolio_summary queried here independently."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import duckdb
import pytest

from jobs.report import ReportError, configure, run, write_report
from jobs.report.page import HEADLINES

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
BAR_CHARTS = ("revenue-retention", "segments", "clv", "channel-economics", "dq-checks", "step-seconds", "quarantine")
SCATTER_CHARTS = ("channel-retention", "whale-curve", "kotler-map")


def chromium() -> str:
    """The chromium binary; skip without it only outside CI (`make test` installs it)."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed (make system-deps installs it)")
    pytest.skip("chromium is not installed: run `make system-deps` (apt-get install chromium)")


def rendered_dom(page: Path) -> str:
    """The DOM after the page's scripts ran in headless Chromium."""
    out = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,3000",
         "--virtual-time-budget=15000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=180, check=True,
    )
    return out.stdout


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class ChartDom(HTMLParser):
    """Collects every element inside each `<div id="chart-...">` (plotly's graph divs) and the
    text of the notes (`<div id="note-...">`) that stand in for charts."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, list[Element]] = {}
        self.notes: dict[str, str] = {}
        self._current: str | None = None
        self._depth = 0
        self._note: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if self._current is None and tag == "div" and a.get("id", "").startswith("chart-"):
            self._current, self._depth = a["id"][len("chart-"):], 0
            self.charts[self._current] = []
        if tag == "div" and a.get("id", "").startswith("note-"):
            self._note = a["id"][len("note-"):]
            self.notes[self._note] = ""
        if self._current is not None:
            self.charts[self._current].append(Element(tag, a))
            if tag not in VOID:
                self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            self._note = None
        if self._current is not None and tag not in VOID:
            self._depth -= 1
            if self._depth == 0:
                self._current = None

    def handle_data(self, data: str) -> None:
        if self._note is not None:
            self.notes[self._note] += data


def external_resources(page: str) -> list[str]:
    """URLs the page would load: script src, link href, img src, iframe src."""

    class Finder(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            url = a.get("src") if tag in ("script", "img", "iframe") else a.get("href") if tag == "link" else None
            if url:
                self.found.append(url)

    finder = Finder()
    finder.feed(page)
    return finder.found


def parse_charts(dom: str) -> ChartDom:
    parser = ChartDom()
    parser.feed(dom)
    return parser


def duckdb_path(url: str) -> str:
    return url.split("duckdb:///", 1)[1]


def query(url: str, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Read the warehouse directly (read-only), independently of the code under test."""
    conn = duckdb.connect(duckdb_path(url), read_only=True)
    try:
        return conn.execute(sql, params or []).fetchall()
    finally:
        conn.close()


def assert_rendered(key: str, elements: list[Element]) -> None:
    """A plotly div that drew its axes and at least one non-empty trace of the expected kind."""
    classes = [e.classes for e in elements]
    assert any("main-svg" in c for c in classes), f"chart {key}: no plotly svg"
    paths = [e for e in elements if e.tag == "path" and e.attrs.get("d", "") not in ("", "M0,0Z")]
    if key == "cohort-heatmap":
        images = [e for e in elements if e.tag == "image" and e.attrs.get("href", e.attrs.get("xlink:href", ""))
                  .startswith("data:image/png")]
        assert any("hm" in c for c in classes) and images, "heatmap drew no cells"
    elif key in BAR_CHARTS:
        assert sum("bars" in c and "trace" in c for c in classes) >= 1, f"chart {key}: no bar trace"
        assert sum("point" in c for c in classes) >= 1 and paths, f"chart {key}: no bars drawn"
    elif key in SCATTER_CHARTS:
        assert sum("scatter" in c and "trace" in c for c in classes) >= 1, f"chart {key}: no scatter trace"
        drawn = [e for e in paths if {"js-line", "point"} & e.classes]
        assert drawn, f"chart {key}: no lines or markers drawn"
    else:
        pytest.fail(f"unexpected chart {key}")


@pytest.fixture(scope="module")
def report(published_warehouse: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The report of the published snapshot, written once, and its DOM after Chromium ran it."""
    out = tmp_path_factory.mktemp("report") / "portfolio.html"
    url, snapshot = str(published_warehouse["warehouse"]), published_warehouse["snapshot"]
    path = write_report(url, snapshot, out)
    return {"path": path, "html": path.read_text(encoding="utf-8"), "dom": rendered_dom(path), "url": url,
            "snapshot": snapshot, "run_id": published_warehouse["run_id"]}


def test_every_chart_renders_in_chromium(report: dict[str, Any]) -> None:
    url, snapshot = report["url"], report["snapshot"]
    quarantined = query(url, "SELECT count(*) FROM marts.quarantine WHERE snapshot_date = ?", [snapshot])[0][0]
    statuses = {r[0] for r in query(url, "SELECT status FROM marts.clv_model_fit WHERE snapshot_date = ?", [snapshot])}
    expected = {"cohort-heatmap", "channel-retention", "revenue-retention", "whale-curve", "kotler-map", "segments",
                "channel-economics", "dq-checks", "step-seconds"}
    if statuses == {"ok"}:
        expected.add("clv")
    if quarantined:
        expected.add("quarantine")

    dom = parse_charts(report["dom"])
    assert set(dom.charts) == expected
    for key, elements in dom.charts.items():
        assert_rendered(key, elements)
    # the slots without a chart say why instead of showing an empty plot
    if not quarantined:
        assert "No rows were quarantined" in dom.notes["quarantine"]
    assert set(dom.notes) == {"clv", "quarantine"} - expected


def test_page_is_self_contained_and_holds_no_customer_rows(report: dict[str, Any]) -> None:
    page = report["html"]
    assert page.count("plotly.js v") == 1  # the library's banner: embedded once
    assert not external_resources(page)
    assert page.count('class="plotly-graph-div"') == len(parse_charts(page).charts)
    ids = [r[0] for r in query(report["url"], "SELECT customer_id FROM marts.customer_clv WHERE snapshot_date = ? "
                                              "ORDER BY clv DESC NULLS LAST LIMIT 20", [report["snapshot"]])]
    assert ids and not [i for i in ids if i in page]
    assert f"<b id=\"snapshot-date\">{report['snapshot'].isoformat()}</b>" in page
    assert report["run_id"] in page


PERCENT_HEADLINES = {col for col, _label, kind in HEADLINES if kind == "pct"}


def test_header_numbers_equal_portfolio_summary(report: dict[str, Any]) -> None:
    cols = ["customers", "active_customers", "buying_customers", "revenue", "net_profit",
            "net_profit_after_acquisition", "top20_revenue_share", "top20_profit_share", "gini_revenue", "loss_making_customer_share",
            "whale_peak_profit_share"]
    row = query(report["url"], f"SELECT {', '.join(cols)} FROM marts.portfolio_summary WHERE snapshot_date = ?",
                [report["snapshot"]])
    assert len(row) == 1
    expected = dict(zip(cols, row[0], strict=True))

    class Kpis(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: dict[str, tuple[str, str]] = {}
            self._field: str | None = None
            self._raw = ""
            self._in_value = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if a.get("data-field"):
                self._field, self._raw = a["data-field"], a.get("data-value") or ""
            self._in_value = self._field is not None and a.get("class") == "value"

        def handle_data(self, data: str) -> None:
            if self._in_value and self._field:
                self.found[self._field] = (self._raw, data)
                self._field, self._in_value = None, False

    kpis = Kpis()
    kpis.feed(report["html"].split("<main>")[0])
    assert set(kpis.found) == set(cols)
    for col, value in expected.items():
        raw, shown = kpis.found[col]
        number = shown.replace(",", "")
        if isinstance(value, int):
            assert int(raw) == value and int(number) == value, col
        elif isinstance(value, Decimal):
            assert Decimal(raw) == value and Decimal(number) == value.quantize(Decimal("0.01")), col
        elif col in PERCENT_HEADLINES:
            assert float(raw) == value and number.endswith("%"), col
            assert float(number[:-1]) == pytest.approx(value * 100, abs=0.05 + 1e-9), col
        else:
            assert float(raw) == value and float(number) == pytest.approx(value, abs=0.0005 + 1e-9), col
    # the numbers are real: a portfolio with customers, revenue and concentration
    assert expected["customers"] > 0 and expected["revenue"] > 0 and 0 < expected["top20_revenue_share"] < 1


class TableCells(HTMLParser):
    """The data-value of every cell of one `<table id=...>`, row by row (header row skipped)."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self._inside = table_id, False
        self.rows: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._inside = a.get("id") == self.table_id
        elif self._inside and tag == "tr":
            self.rows.append([])
        elif self._inside and tag == "td":
            self.rows[-1].append(a.get("data-value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._inside = False


def test_revenue_retention_table_equals_the_mart(report: dict[str, Any]) -> None:
    """Every NRR / GRR row of the snapshot is on the page with the mart's exact values."""
    expected = query(
        report["url"],
        "SELECT acquisition_channel, window_months, starting_customers, prior_revenue, current_revenue, "
        "net_revenue_retention, gross_revenue_retention, is_full_prior_window "
        "FROM marts.revenue_retention WHERE snapshot_date = ?",
        [report["snapshot"]],
    )
    cells = TableCells("table-revenue-retention")
    cells.feed(report["html"])
    shown = [row for row in cells.rows if row]
    assert len(shown) == len(expected) >= 2
    by_key = {(row[0], int(row[1])): row for row in shown}
    for channel, window, starting, prior, current, nrr, grr, full in expected:
        row = by_key[(channel, window)]
        assert int(row[2]) == starting and Decimal(row[3]) == prior and Decimal(row[4]) == current
        assert (float(row[5]) if row[5] else None) == nrr and (float(row[6]) if row[6] else None) == grr
        assert row[7] == str(full).lower()
    every_12 = by_key[("all", 12)]
    assert int(every_12[2]) > 0 and 0 < float(every_12[6]) <= min(1.0, float(every_12[5]))


def test_same_marts_give_the_same_bytes(report: dict[str, Any], tmp_path: Path) -> None:
    again = write_report(report["url"], report["snapshot"], tmp_path / "again.html")
    assert again.read_bytes() == report["path"].read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed into place


def test_cli_writes_the_default_path(published_warehouse: dict[str, Any], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CRM_METRICS_DATA", str(tmp_path / "data"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse")
    configure(parser, "report")
    args = parser.parse_args(["--warehouse", str(published_warehouse["warehouse"]), "--date", "2024-06-30"])
    assert run(args) == 0
    out = tmp_path / "data" / "reports" / "portfolio_2024-06-30.html"
    assert out.stat().st_size > 1_000_000 and str(out) in capsys.readouterr().out


def test_no_marts_for_the_date_says_which_command_to_run(published_warehouse: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    with pytest.raises(ReportError) as err:
        write_report(str(published_warehouse["warehouse"]), date(2024, 6, 29), out)
    assert "2024-06-29" in str(err.value) and "crm-metrics run --date 2024-06-29" in str(err.value)
    assert not out.exists() and not list(tmp_path.iterdir())
    # a warehouse where nothing was ever published: same advice
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    with pytest.raises(ReportError, match=r"crm-metrics run --date 2024-06-30"):
        write_report(f"duckdb:///{empty}", date(2024, 6, 30), out)
    # a DuckDB path that does not exist: said so, and no empty database file is left behind
    with pytest.raises(ReportError, match=r"no DuckDB warehouse at .*missing\.duckdb"):
        write_report(f"duckdb:///{tmp_path}/missing.duckdb", date(2024, 6, 30), out)
    assert not (tmp_path / "missing.duckdb").exists() and not out.exists()


def test_unfitted_clv_shows_a_note_and_quarantine_reasons_are_charted(
    published_warehouse: dict[str, Any], tmp_path: Path
) -> None:
    """On a copy of the published warehouse: CLV models skipped, and rows quarantined for two reasons."""
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(duckdb_path(str(published_warehouse["warehouse"])), copy)
    snapshot, run_id = published_warehouse["snapshot"], published_warehouse["run_id"]
    conn = duckdb.connect(str(copy))
    try:
        conn.execute("UPDATE marts.clv_model_fit SET status = 'skipped', message = 'only 12 repeat buyers (< 50)' "
                     "WHERE snapshot_date = ?", [snapshot])
        conn.execute("UPDATE marts.customer_clv SET clv = NULL WHERE snapshot_date = ?", [snapshot])
        conn.execute("INSERT INTO marts.quarantine (snapshot_date, run_id, source_table, row_key, reason_code, row_json) "
                     "SELECT ?, ?, 'orders', 'O' || i, CASE WHEN i % 3 = 0 THEN 'negative_amount' ELSE 'unknown_customer' "
                     "END, '{}' FROM range(9) t(i)", [snapshot, run_id])
    finally:
        conn.close()
    page = write_report(f"duckdb:///{copy}", snapshot, tmp_path / "r.html")
    dom = parse_charts(rendered_dom(page))
    assert "clv" not in dom.charts
    assert "not fitted" in dom.notes["clv"] and "only 12 repeat buyers" in dom.notes["clv"]
    assert "quarantine" in dom.charts and "quarantine" not in dom.notes
    assert_rendered("quarantine", dom.charts["quarantine"])
    bars = [e for e in dom.charts["quarantine"] if "point" in e.classes]
    assert len(bars) == 2  # one bar per reason code


@pytest.mark.postgres
def test_postgresql_warehouse_gives_the_same_report(
    report: dict[str, Any], postgres_warehouse_url: str, tmp_path: Path
) -> None:
    """The same marts copied into a real PostgreSQL: the SQL is portable and the page shows the
    same headline numbers and the same charts."""
    from jobs.platform.warehouse import open_warehouse
    from schemas.marts import MARTS_SCHEMA, METRIC_MARTS, OPERATIONAL_TABLES

    pg = open_warehouse(postgres_warehouse_url)
    tables = METRIC_MARTS + OPERATIONAL_TABLES
    pg.ensure_tables(MARTS_SCHEMA, tables)
    conn = duckdb.connect(duckdb_path(report["url"]), read_only=True)
    try:
        with pg.transaction() as pg_conn:
            for table in tables:
                cols = ", ".join(f'"{c}"' for c in table.column_names)
                data = conn.sql(f"SELECT {cols} FROM marts.{table.name}").to_arrow_table()
                pg.load_arrow(pg_conn, MARTS_SCHEMA, table, data)
    finally:
        conn.close()

    page = write_report(postgres_warehouse_url, report["snapshot"], tmp_path / "pg.html").read_text(encoding="utf-8")
    header = page.split("<main>")[0]
    assert header == report["html"].split("<main>")[0]
    assert set(parse_charts(page).charts) == set(parse_charts(report["html"]).charts)
    with pytest.raises(ReportError, match=r"crm-metrics run --date 2024-06-29"):
        write_report(postgres_warehouse_url, date(2024, 6, 29), tmp_path / "none.html")
