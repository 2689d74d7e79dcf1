"""Fixtures for runs of the real pipeline: Airflow metadata in a temporary home, source
warehouses loaded from the CDNOW sample."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

CDNOW = Path(__file__).resolve().parents[1] / "data" / "cdnow"
SAMPLE_COLUMNS = ("master_id", "customer_id", "date", "quantity", "amount")


def load_cdnow_sample(url: str) -> None:
    from jobs.importer import ImportOptions, import_transactions
    from jobs.warehouse import open_warehouse

    options = ImportOptions(delimiter="whitespace", columns=SAMPLE_COLUMNS, date_format="%Y%m%d")
    import_transactions(open_warehouse(url), CDNOW / "CDNOW_sample.txt", options)


@pytest.fixture
def pipeline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A DuckDB source warehouse with the CDNOW sample and an empty lake, wired through the same
    environment variables the DAG's tasks read."""
    url = f"duckdb:///{tmp_path}/warehouse.duckdb"
    lake = str(tmp_path / "lake")
    load_cdnow_sample(url)
    monkeypatch.setenv("AIRFLOW_CONN_CRM_WAREHOUSE", url)
    monkeypatch.setenv("CRM_METRICS_LAKE", lake)
    yield {"warehouse": url, "lake": lake}


def mart_rows(url: str, snapshot: object | None = None) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every mart (optionally one snapshot), sorted: a checksum you can read."""
    from jobs.warehouse import open_warehouse
    from schemas.marts import METRIC_MARTS

    wh = open_warehouse(url)
    out = {}
    for table in METRIC_MARTS:
        where = f" WHERE snapshot_date = {wh.placeholder}" if snapshot else ""
        rows = wh.query(f"SELECT * FROM marts.{table.name}{where}", [snapshot] if snapshot else [])
        out[table.name] = sorted(rows, key=repr)
    return out


PUBLISHED_SNAPSHOT = date(2024, 6, 30)


@pytest.fixture(scope="session")
def published_warehouse(tmp_path_factory: pytest.TempPathFactory, spark: object) -> dict[str, object]:
    """A generated DuckDB warehouse (1,500 customers, 18 months) with every mart published for
    PUBLISHED_SNAPSHOT, built once per session for the tests that only read marts (BI clients,
    S3 export, the report). Treat it as read-only."""
    from jobs.generate import generate
    from jobs.pipeline import RunContext, run_all
    from jobs.warehouse import open_warehouse

    base = tmp_path_factory.mktemp("published")
    url = f"duckdb:///{base}/warehouse.duckdb"
    generate(open_warehouse(url), 1500, date(2023, 1, 1), PUBLISHED_SNAPSHOT, seed=11)
    summary = run_all(RunContext.create(PUBLISHED_SNAPSHOT, warehouse=url, lake=str(base / "lake")))
    assert summary["outcome"] == "success", summary
    return {"warehouse": url, "lake": str(base / "lake"), "snapshot": PUBLISHED_SNAPSHOT, "run_id": f"manual__{PUBLISHED_SNAPSHOT}"}
