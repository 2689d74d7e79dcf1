"""A publish killed inside its swap transaction: readers see the old snapshot or the new one,
never a mix, and the rerun publishes exactly what the lake holds.

PostgreSQL: a login in `crm_bi_reader` polls the marts from another connection while the
publishing backend is paused before COMMIT and then terminated with `pg_terminate_backend`.
DuckDB: a file has one writer process, so readers cannot poll during the swap; the publishing
process is SIGKILLed before COMMIT and the file, reopened, must hold the old snapshot only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from devtools.generate import generate
from jobs.pipeline.steps import RunContext, run_all, run_step
from jobs.platform.lake import Lake
from jobs.platform.warehouse import open_warehouse
from tests.integration.conftest import start_paused

ROOT = Path(__file__).resolve().parents[2]
D1 = date(2024, 2, 29)

# What a dashboard would notice: per mart row counts and the headline totals, read in one snapshot.
Fingerprint = tuple[Any, ...]


def fingerprint_sql(placeholder: str) -> str:
    return (
        f"SELECT (SELECT count(*) FROM marts.customer_profitability WHERE snapshot_date = {placeholder}),"
        f" (SELECT sum(revenue) FROM marts.customer_profitability WHERE snapshot_date = {placeholder}),"
        f" (SELECT count(*) FROM marts.customer_rfm WHERE snapshot_date = {placeholder}),"
        f" (SELECT revenue FROM marts.portfolio_summary WHERE snapshot_date = {placeholder}),"
        f" (SELECT count(*) FROM marts.cohort_retention WHERE snapshot_date = {placeholder})"
    )


def lake_fingerprint(lake: Lake) -> Fingerprint:
    """The same figures read straight from the lake's Delta tables (delta-rs, not Spark and not
    the publish code): what a clean publish must show."""

    def table(name: str) -> Any:
        return lake.read_arrow(lake.mart_table(name), D1)

    profitability = table("customer_profitability")
    revenue = sum((v for v in profitability.column("revenue").to_pylist() if v is not None), Decimal(0))
    return (
        profitability.num_rows,
        revenue,
        table("customer_rfm").num_rows,
        table("portfolio_summary").column("revenue").to_pylist()[0],
        table("cohort_retention").num_rows,
    )


def refund_one_order_on_d1(url: str) -> None:
    """A late change on D1 (a refund of an old order, updated after every row the first run
    captured but still on D1), so rebuilding D1 gives different marts."""
    wh = open_warehouse(url)
    p = wh.placeholder
    oid = wh.query(
        "SELECT order_id FROM crm.orders WHERE status = 'completed' AND ordered_at < TIMESTAMP '2024-02-01' "
        "ORDER BY gross_amount DESC, order_id LIMIT 1"
    )[0][0]
    newest = wh.query("SELECT max(updated_at) FROM crm.orders")[0][0]
    updated_at = newest + timedelta(seconds=1)
    assert updated_at.date() == D1, updated_at
    wh.execute(
        "UPDATE crm.orders SET status = 'refunded', refund_amount = gross_amount - discount_amount, "
        f"updated_at = {p} WHERE order_id = {p}",
        [updated_at, oid],
    )


def start_paused_publish(url: str, lake: Path, marker: Path) -> subprocess.Popen[bytes]:
    code = (
        "from datetime import date; from jobs.pipeline.steps import RunContext, run_step; "
        f"run_step('publish', RunContext.create(date({D1.year}, {D1.month}, {D1.day}), warehouse={url!r}, lake={str(lake)!r}))"
    )
    return start_paused(code, "publish_before_commit", marker, timeout=300)


def prepare(url: str, tmp_path: Path) -> tuple[Path, Fingerprint, Fingerprint]:
    """Publish D1 (old), then change the source and rebuild D1 in the lake without publishing (new)."""
    lake = tmp_path / "lake"
    generate(open_warehouse(url), 300, date(2023, 9, 1), D1, seed=17)
    assert run_all(RunContext.create(D1, warehouse=url, lake=str(lake)))["outcome"] == "success"
    old = lake_fingerprint(Lake.at(lake))
    refund_one_order_on_d1(url)
    ctx = RunContext.create(D1, warehouse=url, lake=str(lake), run_id="rebuild")
    for step in ("extract", "validate_raw", "build_marts", "validate_marts"):
        run_step(step, ctx)
    new = lake_fingerprint(Lake.at(lake))
    assert new != old and new[1] < old[1]  # the refund lowered revenue
    return lake, old, new


class Poller(threading.Thread):
    """Reads the fingerprint in a loop from its own connection until stopped."""

    def __init__(self, read: Callable[[], Fingerprint]) -> None:
        super().__init__(daemon=True)
        self.read = read
        self.seen: list[Fingerprint] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.seen.append(self.read())
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(exc)
                return
            time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_publish_terminated_mid_swap(postgres_warehouse_url: str, tmp_path: Path, spark: object) -> None:
    import psycopg

    url = postgres_warehouse_url
    lake, old, new = prepare(url, tmp_path)
    admin = open_warehouse(url)
    admin.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'swap_watcher') THEN "
        "CREATE ROLE swap_watcher LOGIN PASSWORD 'watch-pw' IN ROLE crm_bi_reader; END IF; END $$"
    )
    reader = psycopg.connect("postgresql://swap_watcher:watch-pw@" + url.split("@", 1)[1], autocommit=True)
    sql = fingerprint_sql("%s")

    def read() -> Fingerprint:
        with reader.transaction():
            reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            row = reader.execute(sql, [D1] * 5).fetchone()
        assert row is not None
        return tuple(row)

    assert read() == old
    poller = Poller(read)
    poller.start()
    proc = start_paused_publish(url, lake, tmp_path / "paused")
    try:
        time.sleep(1.0)  # the reader keeps polling while the swap is uncommitted
        killed = admin.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND state = 'idle in transaction' AND pid <> pg_backend_pid()"
        )
        assert killed and all(r[0] for r in killed)
        time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    during_kill = len(poller.seen)
    # the rerun, watched by the same reader
    run_step("publish", RunContext.create(D1, warehouse=url, lake=str(lake), run_id="rerun"))
    time.sleep(0.3)
    poller.stop.set()
    poller.join(timeout=30)
    reader.close()
    assert not poller.errors, poller.errors
    assert during_kill > 5 and set(poller.seen[:during_kill]) == {old}
    assert set(poller.seen) <= {old, new} and poller.seen[-1] == new
    assert tuple(admin.query(sql, [D1] * 5)[0]) == new  # equals the lake a clean publish reads


@pytest.mark.slow
def test_duckdb_publish_killed_mid_swap(tmp_path: Path, spark: object) -> None:
    url = f"duckdb:///{tmp_path}/w.duckdb"
    lake, old, new = prepare(url, tmp_path)
    sql = fingerprint_sql("?")
    proc = start_paused_publish(url, lake, tmp_path / "paused")
    os.killpg(proc.pid, signal.SIGKILL)  # inside the swap transaction, no goodbye
    proc.wait()
    wh = open_warehouse(url)
    assert tuple(wh.query(sql, [D1] * 5)[0]) == old
    run_step("publish", RunContext.create(D1, warehouse=url, lake=str(lake), run_id="rerun"))
    assert tuple(wh.query(sql, [D1] * 5)[0]) == new
    assert wh.query("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'marts_staging'")[0][0] == 0
