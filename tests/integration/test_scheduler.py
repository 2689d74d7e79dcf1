"""The DAG under a real Airflow deployment, as a data engineer runs it: PostgreSQL as the metadata
DB, LocalExecutor (every task its own process, with its own Spark session), `airflow api-server`,
`airflow scheduler` and `airflow dag-processor` on loopback, the warehouse connection and the pool
added with the `airflow` CLI, runs triggered and a task cleared through the REST API.

One test: it starts a whole deployment and runs the pipeline three times (two dates, then one
date's build_marts and everything after it again)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import localstack
from jobs.platform.warehouse import open_warehouse
from tests.integration.conftest import load_cdnow_sample, mart_rows

# marker slow: about 15 minutes on 2 cores (each task starts its own JVM), `make test-slow`
pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DAG = "customer_metrics"
D1, D2 = date(1997, 3, 30), date(1997, 3, 31)
TERMINAL = ("success", "failed")


def _database(server: localstack.Service, name: str) -> str:
    import psycopg

    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url.rsplit("/", 1)[0] + f"/{name}"


class Api:
    """The deployment's REST API (`/api/v2`), plain HTTP and JSON."""

    def __init__(self, base: str) -> None:
        self.base = f"{base}/api/v2"

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.base}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def task_states(self, run_id: str) -> dict[str, tuple[str, int]]:
        tis = self.call("GET", f"/dags/{DAG}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {t["task_id"]: (t["state"], t["try_number"]) for t in tis}

    def wait_for_run(self, run_id: str, svc: localstack.Service, timeout: float = 1500) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.call("GET", f"/dags/{DAG}/dagRuns/{run_id}")["state"]
            if state in TERMINAL:
                return str(state)
            time.sleep(3)
        log = Path(svc.state_dir) / "airflow-scheduler.log"
        raise AssertionError(f"{run_id} still not done after {timeout:.0f} s: {self.task_states(run_id)}\n"
                             f"{log.read_text()[-3000:]}")


@pytest.fixture
def deployment(postgres_server: localstack.Service, tmp_path: Path) -> Iterator[tuple[localstack.Service, Api, str]]:
    """A migrated deployment with the warehouse connection (metadata DB only) and the pool;
    yields the service, its API and the warehouse URL. Every process it starts is stopped."""
    warehouse = _database(postgres_server, "scheduled_warehouse")
    load_cdnow_sample(warehouse)
    metadata = _database(postgres_server, "airflow_metadata")
    svc = localstack.start_airflow(tmp_path / "airflow", metadata, {
        "CRM_METRICS_LAKE": str(tmp_path / "lake"),
        "CRM_METRICS_SCHEDULE": "none",  # only the runs the test triggers
        "CRM_METRICS_DRIVER_MEMORY": "1g",  # one task's Spark session at a time (the pool)
    })
    try:
        env = json.loads(Path(svc.extra["env"]).read_text())
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}, **env}
        for cmd in (["connections", "add", "crm_warehouse", "--conn-uri", warehouse],
                    ["pools", "set", "crm_metrics", "1", "customer_metrics: one task at a time"]):
            done = subprocess.run([sys.executable, "-m", "airflow", *cmd], env=env, capture_output=True, text=True,
                                  check=False)
            assert done.returncode == 0, done.stderr[-2000:]
        api = Api(svc.url)
        deadline = time.monotonic() + 240
        while True:  # the dag-processor's first parse
            try:
                api.call("GET", f"/dags/{DAG}")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
        yield svc, api, warehouse
    finally:
        svc.stop()
        for pid in svc.pids:
            assert not localstack.group_alive(pid), f"an Airflow process of group {pid} outlived the test"


@pytest.mark.timeout(3600)
def test_two_dates_scheduled_through_the_rest_api_and_a_cleared_task_rerun(
    deployment: tuple[localstack.Service, Api, str],
) -> None:
    svc, api, warehouse = deployment
    api.call("PATCH", f"/dags/{DAG}", {"is_paused": False})
    runs = {}
    for day in (D1, D2):
        run_id = f"rest__{day.isoformat()}"
        api.call("POST", f"/dags/{DAG}/dagRuns", {"dag_run_id": run_id, "logical_date": f"{day.isoformat()}T00:00:00Z",
                                                   "conf": {}})
        runs[day] = run_id
    for run_id in runs.values():
        assert api.wait_for_run(run_id, svc) == "success", api.task_states(run_id)
        states = api.task_states(run_id)
        assert set(states) == {"extract", "validate_raw", "build_marts", "validate_marts", "publish", "export", "record",
                               "report"}
        assert {state for state, _ in states.values()} == {"success"}, states

    wh = open_warehouse(warehouse)
    recorded = wh.query("SELECT run_id, snapshot_date, outcome FROM marts.pipeline_runs ORDER BY snapshot_date")
    assert recorded == [(runs[D1], D1, "success"), (runs[D2], D2, "success")]
    # revenue of D2 from the source itself, to the cent
    expected = wh.scalar("SELECT sum(gross_amount - discount_amount - refund_amount) FROM crm.orders "
                         "WHERE status <> 'cancelled' AND ordered_at < %s", [date(1997, 4, 1)])
    assert wh.scalar("SELECT revenue FROM marts.portfolio_summary WHERE snapshot_date = %s", [D2]) == expected
    assert api.call("GET", "/pools/crm_metrics")["slots"] == 1
    published = mart_rows(warehouse, D2)
    assert published["customer_rfm"] and len(published["portfolio_summary"]) == 1

    # an operator clears build_marts of D2's run and everything after it: the run goes again
    api.call("POST", f"/dags/{DAG}/clearTaskInstances", {
        "dry_run": False, "dag_run_id": runs[D2], "task_ids": ["build_marts"], "include_downstream": True,
        "only_failed": False, "reset_dag_runs": True,
    })
    assert api.wait_for_run(runs[D2], svc) == "success", api.task_states(runs[D2])
    states = api.task_states(runs[D2])
    assert states["build_marts"] == ("success", 2) and states["publish"][1] == 2 and states["extract"][1] == 1, states
    assert mart_rows(warehouse, D2) == published
    assert wh.scalar("SELECT outcome FROM marts.pipeline_runs WHERE run_id = %s", [runs[D2]]) == "success"
