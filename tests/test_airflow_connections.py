"""Connections found through Airflow: converted to the values the pipeline reads, and a missing
warehouse connection refused (the scheduled run with a metadata-DB connection is in test_dag)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from airflow.sdk import Connection

from jobs.pipeline.steps import RunContext
from jobs.platform.airflow_connections import MissingConnection, env_value, resolve_connections
from jobs.platform.config import source_url, warehouse_url, warehouse_url_of
from jobs.platform.s3 import S3Connection


@pytest.mark.parametrize(
    "uri",
    [
        "duckdb:////srv/analytics/warehouse.duckdb",
        "postgresql://crm:p%40ss%3Aword@10.1.2.3:5433/analytics?sslmode=require",
    ],
)
def test_a_warehouse_connection_gives_back_its_url(uri: str) -> None:
    assert env_value("crm_warehouse", Connection.from_uri(uri, conn_id="crm_warehouse")) == uri


def test_json_form_and_bad_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CRM_WAREHOUSE", '{"conn_type": "duckdb", "host": "/srv/w.duckdb"}')
    assert warehouse_url() == "duckdb:////srv/w.duckdb"
    assert warehouse_url_of("postgres", host="db", login="crm", port=5432, schema="analytics") == "postgresql://crm@db:5432/analytics"
    with pytest.raises(ValueError, match="conn_type 'mysql' is not a warehouse"):
        warehouse_url_of("mysql", host="db")


@pytest.mark.parametrize(
    ("uri", "master"),
    [("spark://10.0.0.1:7077", "spark://10.0.0.1:7077"), ("sc://connect-host:15002", "sc://connect-host:15002")],
)
def test_a_spark_connection_gives_its_master(uri: str, master: str) -> None:
    assert env_value("crm_spark", Connection.from_uri(uri, conn_id="crm_spark")) == master
    assert env_value("crm_spark", Connection(conn_id="crm_spark", conn_type="spark", host="local[2]")) == "local[2]"


def test_an_s3_connection_keeps_its_keys_and_endpoint() -> None:
    conn = Connection(conn_id="crm_export", conn_type="aws", login="AKIA1", password="s3cr3t",
                      extra='{"endpoint_url": "http://127.0.0.1:5000", "region_name": "eu-west-1"}')
    parsed = S3Connection.from_airflow_value(env_value("crm_export", conn))
    assert (parsed.access_key_id, parsed.secret_access_key, parsed.endpoint_url, parsed.region_name) == (
        "AKIA1", "s3cr3t", "http://127.0.0.1:5000", "eu-west-1")


def test_a_missing_warehouse_connection_is_an_error_not_a_local_file(airflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AIRFLOW_CONN_CRM_WAREHOUSE", "AIRFLOW_CONN_CRM_SOURCE", "AIRFLOW_CONN_CRM_SPARK", "AIRFLOW_CONN_CRM_EXPORT",
                "AIRFLOW_CONN_CRM_LAKE"):
        monkeypatch.setenv(var, "")  # empty counts as unset; restored by monkeypatch
    with pytest.raises(MissingConnection, match="connection crm_warehouse is not defined.*airflow connections add crm_warehouse"):
        resolve_connections()


def test_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CRM_WAREHOUSE", "duckdb:////tmp/given.duckdb")
    for var in ("AIRFLOW_CONN_CRM_SOURCE", "AIRFLOW_CONN_CRM_SPARK", "AIRFLOW_CONN_CRM_EXPORT", "AIRFLOW_CONN_CRM_LAKE"):
        monkeypatch.setenv(var, "set")
    resolve_connections()
    assert warehouse_url() == "duckdb:////tmp/given.duckdb"


def test_the_source_is_the_warehouse_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CRM_WAREHOUSE", "postgresql://crm@analytics:5432/marts")
    monkeypatch.delenv("AIRFLOW_CONN_CRM_SOURCE", raising=False)
    assert source_url() == "postgresql://crm@analytics:5432/marts"
    assert source_url(warehouse="duckdb:////srv/w.duckdb") == "duckdb:////srv/w.duckdb"
    ctx = RunContext.create(date(2024, 6, 30), lake="/tmp/lake")
    assert (ctx.source_url, ctx.warehouse_url) == ("postgresql://crm@analytics:5432/marts",) * 2
    # a replica to read from, apart from the warehouse published into
    monkeypatch.setenv("AIRFLOW_CONN_CRM_SOURCE", "postgres://reader@replica:5433/shop")
    ctx = RunContext.create(date(2024, 6, 30), lake="/tmp/lake")
    assert (ctx.source_url, ctx.warehouse_url) == ("postgresql://reader@replica:5433/shop", "postgresql://crm@analytics:5432/marts")
    assert RunContext.create(date(2024, 6, 30), lake="/tmp/lake", source="duckdb:////srv/s.duckdb").source_url == "duckdb:////srv/s.duckdb"
    monkeypatch.setenv("AIRFLOW_CONN_CRM_SOURCE", '{"conn_type": "mysql", "host": "replica"}')
    with pytest.raises(ValueError, match="connection crm_source: conn_type 'mysql' is not a warehouse"):
        source_url()
    assert env_value("crm_source", Connection.from_uri("postgresql://reader@replica:5433/shop", conn_id="crm_source")) == (
        "postgresql://reader@replica:5433/shop")
