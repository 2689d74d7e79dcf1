"""The DAG under a real Airflow deployment, as a data engineer runs it: PostgreSQL as the metadata
DB and the warehouse, LocalExecutor (every task its own process), `airflow api-server`, `airflow
scheduler` and `airflow dag-processor` on loopback, the tasks' Spark on a long-lived Spark Connect
server (as `crm-metrics spark-server` runs one), the lake on an HTTP S3 endpoint (`moto_server`,
s3a://), the warehouse and Spark connections and the pool added with the `airflow` CLI, runs
triggered and cleared through the REST API.

One test, three runs: D; D+1 after the source changed an order and a customer; then D again (its
whole run cleared, as an analyst's rerun, re-extracting from the changed source): D's marts must
be exactly its first publication."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

import localstack
from jobs.platform.warehouse import open_warehouse
from tests.integration.conftest import S3_KEY, S3_SECRET, lake_conn_uri, load_cdnow_sample, mart_rows

# in `make test`: about 4-5 minutes on 2 cores now that the tasks share a Spark Connect server
# (15 minutes when each task started its own JVM)
pytestmark = [pytest.mark.postgres]

DAG = "customer_metrics"
D1, D2 = date(1997, 3, 30), date(1997, 3, 31)


@pytest.fixture
def s3_lake(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, Any]:
    """A fresh bucket; the lake's connection in this process's environment (the Spark Connect
    server reads it when it starts, the deployment's tasks inherit it). Returns the lake root,
    the connection URI and a boto3 client."""
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET,
                      region_name="us-east-1")
    bucket = f"crm-scheduled-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    uri = lake_conn_uri(s3_endpoint)
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_CRM_LAKE", uri)
    return f"s3a://{bucket}/lake", uri, s3


@pytest.fixture
def spark_server(s3_lake: tuple[str, str, Any], tmp_path: Path) -> Iterator[localstack.Service]:
    svc = localstack.start_spark_connect(tmp_path / "spark-connect")
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture
def deployment(postgres_server: localstack.Service, spark_server: localstack.Service, s3_lake: tuple[str, str, Any],
               tmp_path: Path) -> Iterator[tuple[localstack.Service, localstack.AirflowApi, str]]:
    """A migrated deployment with the warehouse and Spark connections (metadata DB only) and the
    pool; yields the service, its API and the warehouse URL. Every process it starts is stopped."""
    warehouse = localstack.fresh_database(postgres_server.url, "scheduled_warehouse")
    load_cdnow_sample(warehouse)
    metadata = localstack.fresh_database(postgres_server.url, "airflow_metadata")
    svc = localstack.start_airflow(tmp_path / "airflow", metadata, {
        "CRM_METRICS_LAKE": s3_lake[0],
        "AIRFLOW_CONN_CRM_LAKE": s3_lake[1],
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


def _run(api: localstack.AirflowApi, svc: localstack.Service, day: date) -> str:
    run_id = f"rest__{day.isoformat()}"
    api.trigger(run_id, day.isoformat())
    assert api.wait_for_run(run_id, svc) == "success", api.task_states(run_id)
    states = api.task_states(run_id)
    assert set(states) == {"extract", "validate_raw", "build_marts", "validate_marts", "publish", "export", "record",
                           "report"}
    assert {state for state, _ in states.values()} == {"success"}, states
    return run_id


@pytest.mark.timeout(3600)
def test_scheduled_runs_on_an_s3_lake_and_a_cleared_rerun_gives_back_the_first_publication(
    deployment: tuple[localstack.Service, localstack.AirflowApi, str], s3_lake: tuple[str, str, Any],
) -> None:
    svc, api, warehouse = deployment
    api.call("PATCH", f"/dags/{DAG}", {"is_paused": False})
    wh = open_warehouse(warehouse)
    d1_run = _run(api, svc, D1)
    first = mart_rows(warehouse, D1)
    assert first["customer_rfm"] and len(first["portfolio_summary"]) == 1

    # the source changes after D+1: an order placed long before D refunded in full, a customer's
    # channel corrected (CDNOW's source holds the whole history, so "later" is after its last row).
    # D+1's extraction captures both as new versions; neither D nor D+1 may show them.
    revenue_d2 = wh.scalar("SELECT sum(gross_amount - discount_amount - refund_amount) FROM crm.orders "
                           "WHERE status <> 'cancelled' AND ordered_at < %s", [date(1997, 4, 1)])
    oid = wh.scalar("SELECT min(order_id) FROM crm.orders WHERE status = 'completed' AND ordered_at < "
                    "TIMESTAMP '1997-02-01' AND gross_amount - discount_amount > 0")
    moved = wh.scalar("SELECT min(customer_id) FROM crm.customers")
    later = wh.scalar("SELECT max(updated_at) FROM crm.orders") + timedelta(days=1)
    wh.execute("UPDATE crm.orders SET status = 'refunded', refund_amount = gross_amount - discount_amount, "
               "updated_at = %s WHERE order_id = %s", [later, oid])
    wh.execute("UPDATE crm.customers SET acquisition_channel = CASE WHEN acquisition_channel = 'referral' "
               "THEN 'organic' ELSE 'referral' END, updated_at = %s WHERE customer_id = %s", [later, moved])
    d2_run = _run(api, svc, D2)
    recorded = wh.query("SELECT run_id, snapshot_date, outcome, rows_extracted FROM marts.pipeline_runs "
                        "ORDER BY snapshot_date")
    assert [r[:3] for r in recorded] == [(d1_run, D1, "success"), (d2_run, D2, "success")]
    assert recorded[1][3] == 2  # the two new versions, nothing else
    # D+1's revenue is the source's as of D+1, to the cent, without the later refund
    assert wh.scalar("SELECT revenue FROM marts.portfolio_summary WHERE snapshot_date = %s", [D2]) == revenue_d2
    assert api.call("GET", "/pools/crm_metrics")["slots"] == 1

    # an analyst reruns D: its whole run cleared (extract and everything after it) goes again
    api.call("POST", f"/dags/{DAG}/clearTaskInstances", {
        "dry_run": False, "dag_run_id": d1_run, "task_ids": ["extract"], "include_downstream": True,
        "only_failed": False, "reset_dag_runs": True,
    })
    assert api.wait_for_run(d1_run, svc) == "success", api.task_states(d1_run)
    states = api.task_states(d1_run)
    assert states["extract"] == ("success", 2) and states["publish"][1] == 2, states
    assert mart_rows(warehouse, D1) == first
    assert wh.scalar("SELECT outcome FROM marts.pipeline_runs WHERE run_id = %s ORDER BY recorded_at DESC LIMIT 1",
                     [d1_run]) == "success"

    # the lake lives in the bucket: Delta logs and data files of the raw and mart tables
    lake_root, _uri, s3 = s3_lake
    bucket = lake_root.removeprefix("s3a://").split("/", 1)[0]

    def keys(prefix: str) -> list[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    for table in ("raw/orders", "clean/orders", "marts/customer_rfm"):
        assert any(k.endswith(".json") for k in keys(f"lake/{table}/_delta_log/")), table
        assert any(k.endswith(".parquet") for k in keys(f"lake/{table}/")), table
