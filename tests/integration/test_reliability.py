"""Faults with real components: a driver killed while the marts are committed. (Late updates and
reruns of old dates: tests/integration/test_lake_history.py.)"""

from __future__ import annotations

import os
import signal
import time
from datetime import date
from pathlib import Path

import pytest

from devtools.generate import generate
from jobs.pipeline.steps import RunContext, run_all
from jobs.platform.lake import Lake
from jobs.platform.warehouse import open_warehouse
from tests.integration.conftest import mart_rows, start_paused

ROOT = Path(__file__).resolve().parents[2]
D1, D2 = date(2024, 2, 28), date(2024, 2, 29)


@pytest.fixture
def source(tmp_path: Path) -> str:
    url = f"duckdb:///{tmp_path}/w.duckdb"
    generate(open_warehouse(url), 400, date(2023, 9, 1), D2, seed=13)
    return url


@pytest.mark.slow
def test_driver_killed_mid_write_leaves_no_partial_partition(source: str, tmp_path: Path, spark: object) -> None:
    lake = tmp_path / "lake"
    marker = tmp_path / "paused"
    code = (
        "from datetime import date; from jobs.pipeline.steps import RunContext, run_all; "
        f"run_all(RunContext.create(date(2024, 2, 28), warehouse={source!r}, lake={str(lake)!r}))"
    )
    proc = start_paused(code, "mart_before_commit", marker)
    # marts are written three at a time: one writer is paused, the others are writing their files
    # or committing; the kill lands in the middle of that
    time.sleep(2)
    os.killpg(proc.pid, signal.SIGKILL)  # the Python driver and its JVM, no goodbye
    proc.wait()
    # nothing was published, and every mart table the run started is a valid Delta table whose
    # snapshot is absent or whole (a Delta commit is all or nothing): never a partial snapshot
    assert not open_warehouse(source).table_exists("marts", "customer_profitability") or not open_warehouse(source).query(
        "SELECT 1 FROM marts.customer_profitability WHERE snapshot_date = ? LIMIT 1", [D1]
    )
    killed_lake = Lake.at(lake)
    partial = {name: killed_lake.read_arrow(killed_lake.mart_table(name), D1).num_rows
               for name in ("customer_profitability", "customer_rfm", "customer_segments", "cohort_retention")
               if killed_lake.has_table(killed_lake.mart_table(name))}
    # the rerun completes and equals a clean run elsewhere
    assert run_all(RunContext.create(D1, warehouse=source, lake=str(lake)))["outcome"] == "success"
    for name, rows in partial.items():
        assert rows in (0, killed_lake.read_arrow(killed_lake.mart_table(name), D1).num_rows), name
    clean_url = f"duckdb:///{tmp_path}/clean.duckdb"
    generate(open_warehouse(clean_url), 400, date(2023, 9, 1), D2, seed=13)
    assert run_all(RunContext.create(D1, warehouse=clean_url, lake=str(tmp_path / "lake2")))["outcome"] == "success"
    assert mart_rows(source) == mart_rows(clean_url)
