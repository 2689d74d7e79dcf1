"""The DAG under a real Airflow deployment, as a data engineer runs it: PostgreSQL as the metadata
DB, LocalExecutor (every task its own process), `airflow api-server`, `airflow scheduler` and
`airflow dag-processor` on loopback, the tasks' Spark on a long-lived Spark Connect server (as
`crm-metrics spark-server` runs one), the warehouse and Spark connections and the pool added with
the `airflow` CLI, runs triggered and a task cleared through the REST API.

One test: it starts a whole deployment and runs the pipeline three times (two dates, then one
date's build_marts and everything after it again)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

import localstack
from jobs.platform.warehouse import open_warehouse
from tests.integration.conftest import load_cdnow_sample, mart_rows

# in `make test`: about 4 minutes on 2 cores now that the tasks share a Spark Connect server
# (15 minutes when each task started its own JVM)
pytestmark = [pytest.mark.postgres]

DAG = "customer_metrics"
D1, D2 = date(1997, 3, 30), date(1997, 3, 31)


@pytest.fixture
def spark_server(tmp_path: Path) -> Iterator[localstack.Service]:
    svc = localstack.start_spark_connect(tmp_path / "spark-connect")
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture
def deployment(postgres_server: localstack.Service, spark_server: localstack.Service, tmp_path: Path) -> Iterator[tuple[localstack.Service, localstack.AirflowApi, str]]:
    """A migrated deployment with the warehouse and Spark connections (metadata DB only) and the
    pool; yields the service, its API and the warehouse URL. Every process it starts is stopped."""
    warehouse = localstack.fresh_database(postgres_server.url, "scheduled_warehouse")
    load_cdnow_sample(warehouse)
    metadata = localstack.fresh_database(postgres_server.url, "airflow_metadata")
    svc = localstack.start_airflow(tmp_path / "airflow", metadata, {
        "CRM_METRICS_LAKE": str(tmp_path / "lake"),
        "CRM_METRICS_SCHEDULE": "none",  # only the runs the test triggers
    })
    try:
        localstack.airflow_cli(svc, "connections", "add", "crm_warehouse", "--conn-uri", warehouse)
        host, port = spark_server.url.removeprefix("sc://").rsplit(":", 1)
        localstack.airflow_cli(svc, "connections", "add", "crm_spark", "--conn-type", "spark_connect",
                               "--conn-host", host, "--conn-port", port)
        localstack.airflow_cli(svc, "pools", "set", "crm_metrics", "1", "customer_metrics: one task at a time")
        api = localstack.AirflowApi(svc.url, DAG)
        api.wait_for_dag()
        yield svc, api, warehouse
    finally:
        svc.stop()
        for pid in svc.pids:
            assert not localstack.group_alive(pid), f"an Airflow process of group {pid} outlived the test"


@pytest.mark.timeout(3600)
def test_two_dates_scheduled_through_the_rest_api_and_a_cleared_task_rerun(
    deployment: tuple[localstack.Service, localstack.AirflowApi, str],
) -> None:
    svc, api, warehouse = deployment
    api.call("PATCH", f"/dags/{DAG}", {"is_paused": False})
    runs = {}
    for day in (D1, D2):
        run_id = f"rest__{day.isoformat()}"
        api.trigger(run_id, day.isoformat())
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
