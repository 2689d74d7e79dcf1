"""CDNOW through the whole pipeline (no Airflow): the lifetimes reference summary and the file's
own revenue totals are the independent references."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from jobs.importer import ImportOptions, import_transactions
from jobs.pipeline import RunContext, run_all
from jobs.warehouse import open_warehouse

CDNOW = Path(__file__).resolve().parents[1] / "data" / "cdnow"


def _run(base: Path, file: str, columns: str, snapshot: date) -> str:
    url = f"duckdb:///{base}/warehouse.duckdb"
    options = ImportOptions(delimiter="whitespace", columns=tuple(columns.split(",")), date_format="%Y%m%d")
    import_transactions(open_warehouse(url), CDNOW / file, options)
    summary = run_all(RunContext.create(snapshot, warehouse=url, lake=str(base / "lake")))
    assert summary["outcome"] == "success", summary
    return url


@pytest.fixture(scope="module")
def sample_warehouse(tmp_path_factory: pytest.TempPathFactory, spark: object) -> str:
    return _run(tmp_path_factory.mktemp("cdnow_sample"), "CDNOW_sample.txt", "master_id,customer_id,date,quantity,amount", date(1997, 9, 30))


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
