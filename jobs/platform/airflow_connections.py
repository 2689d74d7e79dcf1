"""The pipeline's connections through Airflow's own lookup, for a task running under Airflow.

Outside Airflow (`crm-metrics`, the tests' direct runs) the pipeline reads `AIRFLOW_CONN_<ID>`
variables, with the embedded DuckDB file as the warehouse default. Under Airflow a connection may
live in the metadata DB or a secrets backend instead: `Connection.get` looks in all of them (the
environment too). Each one found is handed to this task's process as the variable the pipeline
reads; a variable already set wins, so `crm-metrics run` and the environment keep their meaning.
A missing warehouse connection is an error, never a silent fallback to a local file.
"""

from __future__ import annotations

import os

from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowNotFoundException

from jobs.platform.config import SOURCE_CONN_ID, WAREHOUSE_CONN_ID, warehouse_url_of
from jobs.platform.s3 import EXPORT_CONN_ID, LAKE_CONN_ID

SPARK_CONN_ID = "crm_spark"
# the source defaults to the warehouse when it is not defined
OPTIONAL = (SOURCE_CONN_ID, SPARK_CONN_ID, EXPORT_CONN_ID, LAKE_CONN_ID)


class MissingConnection(LookupError):
    """The warehouse connection is defined nowhere Airflow looks."""


def env_var(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def spark_master_of(conn: Connection) -> str:
    """A Spark connection's master URL: `spark://host:7077`, `sc://host:15002` (Spark Connect), or
    a host that is a master itself (`local[4]`, `yarn`)."""
    host = conn.host or ""
    if "://" in host:
        return f"{host}:{conn.port}" if conn.port else host
    if not conn.port:
        return host
    scheme = "sc" if conn.conn_type in ("sc", "spark_connect") else "spark"
    return f"{scheme}://{host}:{conn.port}"


def env_value(conn_id: str, conn: Connection) -> str:
    """The connection in the form the pipeline parses from its `AIRFLOW_CONN_<ID>` variable."""
    if conn_id in (WAREHOUSE_CONN_ID, SOURCE_CONN_ID):
        return warehouse_url_of(conn.conn_type, host=conn.host, schema=conn.schema, login=conn.login,
                                password=conn.password, port=conn.port, extra=conn.extra_dejson, conn_id=conn_id)
    if conn_id == SPARK_CONN_ID:
        return spark_master_of(conn)
    return conn.as_json()  # S3 connections: login, password and extra (endpoint_url, region_name)


def resolve_connections() -> None:
    """Look up every connection the pipeline reads that the environment does not set: the
    warehouse (required), the source, Spark, the S3 export and the S3 lake (optional)."""
    for conn_id in (WAREHOUSE_CONN_ID, *OPTIONAL):
        var = env_var(conn_id)
        if os.environ.get(var, "").strip():
            continue
        try:
            conn = Connection.get(conn_id)
        except AirflowNotFoundException:
            if conn_id == WAREHOUSE_CONN_ID:
                raise MissingConnection(
                    f"Airflow connection {conn_id} is not defined (looked in the metadata DB, the secrets backends "
                    f"and ${var}): add it, e.g. `airflow connections add {conn_id} --conn-uri "
                    "postgresql://user:password@host:5432/analytics`, or a duckdb one with the file in host. "
                    "Under Airflow the run does not fall back to a local DuckDB file."
                ) from None
            continue
        os.environ[var] = env_value(conn_id, conn)
