"""Fixtures for runs of the real pipeline: Airflow metadata in a temporary home, source
warehouses loaded from the CDNOW sample."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.faults import HOOKS

ROOT = Path(__file__).resolve().parents[2]
S3_KEY, S3_SECRET = "testing", "s3cr/et+key=="  # moto accepts any; this one needs escaping in a URI
CDNOW = Path(__file__).resolve().parents[1] / "data" / "cdnow"
SAMPLE_COLUMNS = ("master_id", "customer_id", "date", "quantity", "amount")


def lake_conn_uri(endpoint: str) -> str:
    """The `crm_lake` connection of the tests' S3 endpoint, as an AIRFLOW_CONN_ URI."""
    return (
        f"aws://{quote(S3_KEY, safe='')}:{quote(S3_SECRET, safe='')}@/"
        f"?endpoint_url={quote(endpoint, safe='')}&region_name=us-east-1"
    )


def load_cdnow_sample(url: str) -> None:
    from jobs.ingest.importer import ImportOptions, import_transactions
    from jobs.platform.warehouse import open_warehouse

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
    from jobs.platform.warehouse import open_warehouse
    from schemas.marts import METRIC_MARTS

    wh = open_warehouse(url)
    out = {}
    for table in METRIC_MARTS:
        where = f" WHERE snapshot_date = {wh.placeholder}" if snapshot else ""
        rows = wh.query(f"SELECT * FROM marts.{table.name}{where}", [snapshot] if snapshot else [])
        out[table.name] = sorted(rows, key=repr)
    return out


PUBLISHED_SNAPSHOT = date(2024, 6, 30)


def _publish_generated(base: Path) -> None:
    from devtools.generate import generate
    from jobs.pipeline.steps import RunContext, run_all
    from jobs.platform.warehouse import open_warehouse

    url = f"duckdb:///{base}/warehouse.duckdb"
    generate(open_warehouse(url), 1500, date(2023, 1, 1), PUBLISHED_SNAPSHOT, seed=11)
    summary = run_all(RunContext.create(PUBLISHED_SNAPSHOT, warehouse=url, lake=str(base / "lake")))
    assert summary["outcome"] == "success", summary


@pytest.fixture(scope="session")
def published_warehouse(tmp_path_factory: pytest.TempPathFactory, spark: object) -> dict[str, object]:
    """A generated DuckDB warehouse (1,500 customers, 18 months) with every mart published for
    PUBLISHED_SNAPSHOT, for the tests that only read marts (BI clients, S3 export, the report).
    Treat it as read-only.

    Built once per test run: under pytest-xdist the first worker that needs it builds it in the
    run's shared temporary folder (the others wait on a lock), and each worker reads its own copy,
    so no two processes ever open one DuckDB file."""
    base = tmp_path_factory.mktemp("published")
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        _publish_generated(base)
    else:
        shared = tmp_path_factory.getbasetemp().parent / "published-shared"
        with open(f"{shared}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also on failure
            if not (shared / ".complete").exists():
                shutil.rmtree(shared, ignore_errors=True)  # a build that failed half-way
                shared.mkdir()
                _publish_generated(shared)
                (shared / ".complete").touch()
        shutil.copytree(shared, base, dirs_exist_ok=True)
    url = f"duckdb:///{base}/warehouse.duckdb"
    return {"warehouse": url, "lake": str(base / "lake"), "snapshot": PUBLISHED_SNAPSHOT, "run_id": f"manual__{PUBLISHED_SNAPSHOT}"}


def start_paused(code: str, point: str, marker: Path, timeout: float = 600) -> subprocess.Popen[bytes]:
    """Run `code` in a child Python (its own process group) that pauses at fault point `point`
    (a checkpoint of jobs.platform.hooks, paused by tests.support.faults); returns once it is there,
    so the test can kill it exactly there."""
    env = {**os.environ, **HOOKS, "CRM_METRICS_PAUSE_AT": point, "CRM_METRICS_PAUSE_FILE": str(marker)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            raise AssertionError(f"the child ended before reaching {point}: {err}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"the child never reached {point} within {timeout:.0f} s")
        time.sleep(0.2)
    return proc
