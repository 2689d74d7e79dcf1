"""Shared fixtures: one Spark session, and the real services started from infra/localstack.py
(PostgreSQL from Debian's package, moto_server for S3, a Spark standalone cluster)."""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "infra"))

import localstack  # noqa: E402

# Nothing a test runs may write into the repository's ./data, and Airflow must find its home
# before it is first imported.
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="crm-tests-"))
os.environ["CRM_METRICS_DATA"] = str(_SESSION_TMP / "data")
# Always this process's own home: pytest-xdist workers inherit the controller's environment, and
# two workers sharing one SQLite metadata DB lose each other's serialized DAGs.
os.environ["AIRFLOW_HOME"] = str(_SESSION_TMP / "airflow")
# Set before any test imports Airflow (a connection parser, the export): Airflow reads its
# configuration once, at import, and a DAG bundle pointing at $AIRFLOW_HOME/dags serializes nothing.
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# connection passwords in the metadata DB encrypted, as a deployment keeps them (the PostgreSQL
# DAG test scans the Airflow home for its warehouse password)
os.environ["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()
os.environ["CRM_METRICS_RETRY_DELAY_SECONDS"] = "1"
# every get_spark() of the pipeline re-applies its settings to the shared session: small data
# here, so keep the fixture's two shuffle partitions there too
os.environ.setdefault("CRM_METRICS_SHUFFLE_PARTITIONS", "2")
# one worker's session lives for the whole suite (dozens of lakes and runs); with the default 2 GB
# its heap still filled after about an hour (full GCs back to back) even with Delta's cache
# cleared after each run: something else is retained, not found yet
os.environ.setdefault("CRM_METRICS_DRIVER_MEMORY", "4g")
# Interpreted row projections instead of generated code: on the tests' small data a pipeline run
# is 19-20% faster (73.7 -> 59.7 s, next day 56.5 -> 45.3 s, 500 customers; the same marts row
# for row). Code generation pays off on large data, so only the tests set it (docs/benchmarks.md).
os.environ.setdefault("CRM_METRICS_SPARK_CONF", "spark.sql.codegen.factoryMode=NO_CODEGEN")
# every DAG run's OpenLineage events, one JSON line each, as a deployment's transport gets them (the
# PostgreSQL DAG test reads them); emitted from a thread, not a fork: the process holds a JVM gateway
OPENLINEAGE_EVENTS = _SESSION_TMP / "airflow" / "openlineage.jsonl"
os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps({"type": "file", "log_file_path": str(OPENLINEAGE_EVENTS), "append": True})
os.environ["AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD"] = "True"
os.environ.pop("AIRFLOW_CONN_CRM_WAREHOUSE", None)
os.environ.pop("CRM_METRICS_LAKE", None)
logging.getLogger("py4j").setLevel(logging.WARNING)
logging.getLogger("great_expectations").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The one Spark session of the test run (local, one core, two shuffle partitions)."""
    from jobs.platform.spark import get_spark

    session = get_spark(master="local[2]", extra={"spark.sql.shuffle.partitions": "2"})
    yield session
    session.stop()


# The files with the most full pipeline runs start first (pytest-xdist hands out whole files in
# collection order when given --no-loadscope-reorder; by default it starts the files with the
# most tests), so the two workers end together instead of one running a long file alone at the end.
HEAVY_FIRST = (
    "test_scheduler.py", "test_clean_moves.py", "test_lake_history.py", "test_cdnow_pipeline.py", "test_bench.py",
    "test_lake_storage.py", "test_export_s3.py", "test_dag.py", "test_quality.py", "test_scale_out.py",
    "test_publish_kill.py", "test_reliability.py", "test_bad_input.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file keeps its order


@pytest.fixture(scope="module", autouse=True)
def _release_spark_memory() -> Iterator[None]:
    """After each test file, drop what the shared session still caches: DataFrames a failed step
    left persisted, and Delta's table logs and snapshot states of lakes no later test reads (one
    worker runs dozens of lakes; kept, they filled the 2 GB driver heap)."""
    yield
    from pyspark.sql import SparkSession

    from jobs.platform.spark import release_table_caches

    session = SparkSession.getActiveSession()
    if session is not None and session.sparkContext._jsc is not None:
        release_table_caches()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localstack.Service]:
    """A real PostgreSQL server on loopback for the whole session."""
    try:
        localstack.pg_bin("initdb")
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    svc = localstack.start_postgres(tmp_path_factory.mktemp("postgres"))
    yield svc
    svc.stop()


_db_numbers = itertools.count(1)


@pytest.fixture
def postgres_warehouse_url(postgres_server: localstack.Service) -> str:
    """A fresh, empty database on the session's server."""
    return localstack.fresh_database(postgres_server.url, f"test_{next(_db_numbers)}")


@pytest.fixture
def duckdb_warehouse_url(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path}/warehouse.duckdb"


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request: pytest.FixtureRequest) -> str:
    """Both warehouse implementations, for contract tests."""
    return str(request.getfixturevalue(f"{request.param}_warehouse_url"))


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    svc = localstack.start_s3(tmp_path_factory.mktemp("s3"))
    yield svc.url
    svc.stop()


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[localstack.Service]:
    """A standalone master and worker on loopback; `.url` is the master, `.extra['webui']` its UI."""
    svc = localstack.start_spark(tmp_path_factory.mktemp("spark"))
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """Airflow metadata (SQLite) migrated once for the session."""
    from jobs.cli.airflow_local import prepare

    return prepare()
