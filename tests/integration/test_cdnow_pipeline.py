"""CDNOW through the whole pipeline (no Airflow): the lifetimes reference summary and the file's
own revenue totals are the independent references. The sample's run reads its source from
PostgreSQL and publishes into a DuckDB warehouse, as a deployment reads a replica and publishes
into an analytics warehouse."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import localstack
from jobs.ingest.importer import ImportOptions, import_transactions
from jobs.pipeline.steps import RunContext, run_all
from jobs.platform.warehouse import open_warehouse

CDNOW = Path(__file__).resolve().parents[1] / "data" / "cdnow"


def _run(base: Path, file: str, columns: str, snapshot: date, source: str | None = None) -> str:
    """Import `file` into `source` (default: the warehouse itself), run the pipeline for
    `snapshot`; returns the DuckDB warehouse's URL."""
    url = f"duckdb:///{base}/warehouse.duckdb"
    options = ImportOptions(delimiter="whitespace", columns=tuple(columns.split(",")), date_format="%Y%m%d")
    import_transactions(open_warehouse(source or url), CDNOW / file, options)
    summary = run_all(RunContext.create(snapshot, warehouse=url, lake=str(base / "lake"), source=source))
    assert summary["outcome"] == "success", summary
    return url


@pytest.fixture(scope="module")
def sample_source(postgres_server: Any) -> str:
    """A PostgreSQL database holding the CDNOW sample's source tables (schema crm)."""
    return localstack.fresh_database(postgres_server.url, "cdnow_source")


@pytest.fixture(scope="module")
def sample_warehouse(tmp_path_factory: pytest.TempPathFactory, spark: object, sample_source: str) -> str:
    return _run(tmp_path_factory.mktemp("cdnow_sample"), "CDNOW_sample.txt", "master_id,customer_id,date,quantity,amount",
                date(1997, 9, 30), source=sample_source)


@pytest.mark.postgres
def test_source_and_warehouse_stay_apart(sample_warehouse: str, sample_source: str) -> None:
    """The marts are published into the DuckDB warehouse only; the source tables stay in PostgreSQL."""
    warehouse, source = open_warehouse(sample_warehouse), open_warehouse(sample_source)
    assert warehouse.table_exists("marts", "customer_rfm") and not warehouse.table_exists("crm", "orders")
    assert source.table_exists("crm", "orders") and not source.table_exists("marts", "customer_rfm")
    assert source.scalar("SELECT count(*) FROM crm.orders") == 6919  # the sample file's lines


def test_frequency_recency_t_equal_the_lifetimes_summary(sample_warehouse: str) -> None:
    rows = open_warehouse(sample_warehouse).query(
        "SELECT customer_id, frequency, recency, T FROM marts.customer_rfm WHERE snapshot_date = ?", [date(1997, 9, 30)]
    )
    ours = {int(r[0]): r[1:] for r in rows}
    with (CDNOW / "cdnow_customers_summary.csv").open() as f:
        reference = {int(r["ID"]): r for r in csv.DictReader(f)}
    assert len(ours) == len(reference) == 2357
    for cid, ref in reference.items():
        frequency, recency, t = ours[cid]
        assert frequency == int(float(ref["frequency"])), cid
        assert recency == pytest.approx(float(ref["recency"]), abs=0.01), cid
        assert t == pytest.approx(float(ref["T"]), abs=0.01), cid


def test_reference_customer_one(sample_warehouse: str) -> None:
    """lifetimes' documented example: customer 1 has x = 2, t_x = 30.43, T = 38.86."""
    row = open_warehouse(sample_warehouse).query(
        "SELECT frequency, recency, T FROM marts.customer_rfm WHERE customer_id = '0001'"
    )[0]
    assert row[0] == 2 and round(row[1], 2) == 30.43 and round(row[2], 2) == 38.86


def test_run_is_recorded(sample_warehouse: str) -> None:
    outcome, published = open_warehouse(sample_warehouse).query(
        "SELECT outcome, rows_published FROM marts.pipeline_runs WHERE snapshot_date = ?", [date(1997, 9, 30)]
    )[0]
    assert outcome == "success" and published > 2357


def test_clv_fits_reproduce_the_published_estimates(sample_warehouse: str) -> None:
    """Fitted inside the pipeline from its own customer_rfm: BG/NBD and Gamma-Gamma (946 repeat buyers)."""
    rows = open_warehouse(sample_warehouse).query(
        "SELECT model, parameter, value, log_likelihood, customers, status FROM marts.clv_model_fit WHERE snapshot_date = ?",
        [date(1997, 9, 30)],
    )
    got = {(r[0], r[1]): r for r in rows}
    published = {("bgnbd", "r"): 0.243, ("bgnbd", "alpha"): 4.414, ("bgnbd", "a"): 0.793, ("bgnbd", "b"): 2.426,
                 ("gamma_gamma", "p"): 6.25, ("gamma_gamma", "q"): 3.74, ("gamma_gamma", "gamma"): 15.44}
    for key, value in published.items():
        assert f"{got[key][2]:.3g}" == f"{value:.3g}", key
        assert got[key][5] == "ok"
    assert got[("bgnbd", "r")][3] == pytest.approx(-9582.4, abs=0.1)
    assert got[("bgnbd", "r")][4] == 2357 and got[("gamma_gamma", "p")][4] == 946


def test_holdout_forecast(sample_warehouse: str) -> None:
    """Calibration to 1997-09-30, holdout 1997-10-01 .. 1998-06-30 (weeks 40-78, 39 weeks)."""
    import numpy as np

    from jobs.metrics.clv import holdout_evaluation

    wh = open_warehouse(sample_warehouse)
    params = dict(wh.query("SELECT parameter, value FROM marts.clv_model_fit WHERE model = 'bgnbd'"))
    rfm = wh.query("SELECT customer_id, frequency, recency, T FROM marts.customer_rfm WHERE snapshot_date = ? ORDER BY customer_id", [date(1997, 9, 30)])
    holdout_days: dict[str, set[str]] = defaultdict(set)
    with (CDNOW / "CDNOW_sample.txt").open() as f:
        for line in f:
            _master, cid, day, _cds, _amount = line.split()
            if "19971001" <= day <= "19980630":
                holdout_days[cid].add(day)
    actual = np.array([len(holdout_days[r[0]]) for r in rfm], dtype=float)
    x, tx, t = (np.array([r[i] for r in rfm], dtype=float) for i in (1, 2, 3))
    report = holdout_evaluation(params, x, tx, t, actual, weeks=39)
    print(report)
    assert report["customers"] == 2357
    assert 0.55 <= report["correlation"] <= 0.75  # the literature reports about 0.63
    assert abs(report["aggregate_error"]) < 0.15


def test_revenue_retention_equals_the_file_s_own_windows(sample_warehouse: str) -> None:
    """NRR and GRR over the quarter to 1997-09-30 against the quarter before, summed from the file:
    customers with spend in April-June 1997 and what each of them spent in July-September."""
    prior: dict[str, Decimal] = defaultdict(Decimal)
    current: dict[str, Decimal] = defaultdict(Decimal)
    with (CDNOW / "CDNOW_sample.txt").open() as f:
        for line in f:
            _master, cid, day, _cds, amount = line.split()
            if "19970401" <= day <= "19970630":
                prior[cid] += Decimal(amount)
            elif "19970701" <= day <= "19970930":
                current[cid] += Decimal(amount)
    starting = [c for c, v in prior.items() if v > 0]
    prior_revenue = sum(prior[c] for c in starting)
    kept = sum(min(prior[c], current[c]) for c in starting)
    current_revenue = sum(current[c] for c in starting)
    row = open_warehouse(sample_warehouse).query(
        "SELECT starting_customers, retained_customers, prior_revenue, current_revenue, net_revenue_retention, "
        "gross_revenue_retention, is_full_prior_window FROM marts.revenue_retention "
        "WHERE snapshot_date = ? AND acquisition_channel = 'all' AND window_months = 3",
        [date(1997, 9, 30)],
    )[0]
    assert row[:4] == (len(starting), sum(1 for c in starting if current[c] > 0), prior_revenue, current_revenue)
    assert row[4] == pytest.approx(float(current_revenue / prior_revenue), rel=1e-12)
    assert row[5] == pytest.approx(float(kept / prior_revenue), rel=1e-12)
    assert row[6] is True  # the file starts in January 1997


@pytest.mark.slow
def test_master_revenue_per_customer_reconciles_to_the_cent(tmp_path: Path, spark: object) -> None:
    url = _run(tmp_path, "CDNOW_master.txt", "customer_id,date,quantity,amount", date(1998, 6, 30))
    expected: dict[str, Decimal] = defaultdict(Decimal)
    with (CDNOW / "CDNOW_master.txt").open() as f:
        for line in f:
            parts = line.split()
            if len(parts) == 4 and parts[0].isdigit():
                expected[parts[0]] += Decimal(parts[3])
    got = dict(
        open_warehouse(url).query(
            "SELECT customer_id, revenue FROM marts.customer_profitability WHERE snapshot_date = ?", [date(1998, 6, 30)]
        )
    )
    assert len(got) == len(expected) == 23570
    assert got == dict(expected)
    total = open_warehouse(url).scalar("SELECT revenue FROM marts.portfolio_summary")
    assert total == sum(expected.values())
