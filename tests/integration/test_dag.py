"""The customer_metrics DAG through real Airflow (`dag.test()`), Spark, Great Expectations and DuckDB."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import mart_rows
from tests.support.faults import inject

D3 = date(1997, 3, 31)


def test_dag_integrity(airflow_home: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import CronDataIntervalTimetable

    from jobs.cli.airflow_local import DAGS_FOLDER
    from jobs.platform.config import RunParams
    from schemas.marts import METRIC_MARTS

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    dag = bag.dags["customer_metrics"]
    assert [t.task_id for t in dag.topological_sort()] == [
        "extract", "validate_raw", "build_marts", "validate_marts", "publish", "export", "record", "report",
    ]
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert set(dag.tags) >= {"crm", "metrics"}
    assert dag.max_active_runs == 1
    for t in dag.tasks:
        assert t.owner == "crm-data"
        assert t.retries == 2  # record too: its row is an upsert, and a failed run fails it without a retry
        assert t.pool == "crm_metrics"  # runs sharing a lake or a DuckDB file take turns
        assert t.on_failure_callback  # names the failed step and the snapshot
    assert dag.get_task("record").trigger_rule == "all_done"
    assert set(dag.params.keys()) == set(RunParams.__dataclass_fields__)  # generated: every parameter, no other
    # one asset per published mart, every one of them (the contract's list, not the DAG's own)
    assert {o.name for o in dag.get_task("publish").outlets} == {f"crm_marts.{t.name}" for t in METRIC_MARTS}


@pytest.mark.slow
def test_retried_failures_and_reruns_give_identical_marts(
    airflow_home: Path, pipeline_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every task fails once (retries = 2 absorb it); then the date runs again without faults:
    both give the same marts, row for row."""
    from jobs.cli.airflow_local import run_dag
    from schemas.steps import STEPS

    inject(monkeypatch, ",".join(f"step_{s}" for s in STEPS), once_dir=tmp_path / "faults")
    assert run_dag(D3) == "success"
    assert sorted(p.name for p in (tmp_path / "faults").iterdir()) == sorted(f"step_{s}.failed" for s in STEPS)
    first = mart_rows(pipeline_env["warehouse"])
    assert first["customer_rfm"] and first["cohort_retention"] and len(first["portfolio_summary"]) == 1
    monkeypatch.delenv("CRM_METRICS_FAIL_AT")
    assert run_dag(D3) == "success"
    assert mart_rows(pipeline_env["warehouse"]) == first


@contextmanager
def _metadata_connection(conn_id: str, uri: str) -> Iterator[None]:
    """A connection stored in Airflow's metadata DB (not in the environment) while the block runs."""
    from airflow.models.connection import Connection  # the metadata DB's table (the SDK's is read-only)
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()
        session.add(Connection(conn_id=conn_id, uri=uri))
    try:
        yield
    finally:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == conn_id).delete()


@pytest.mark.slow
def test_failure_between_staging_and_swap_leaves_previous_snapshot(
    airflow_home: Path, pipeline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs.cli.airflow_local import run_dag
    from jobs.platform.warehouse import open_warehouse

    assert run_dag(D3) == "success"
    before = mart_rows(pipeline_env["warehouse"])
    wh = open_warehouse(pipeline_env["warehouse"])
    # change the source so that a successful publish would change the marts: orders placed by D3
    # refunded in full, with an updated_at inside D3 (a late correction the full refresh captures)
    wh.execute(
        "UPDATE crm.orders SET status = 'refunded', refund_amount = gross_amount - discount_amount, "
        "updated_at = TIMESTAMP '1997-03-31 12:00:00' WHERE customer_id < '0100' AND ordered_at < TIMESTAMP '1997-03-31'"
    )
    inject(monkeypatch, "publish_before_swap")
    assert run_dag(D3, {"full_refresh": True}) == "failed"
    assert mart_rows(pipeline_env["warehouse"]) == before
    outcome, step, message = wh.query(
        "SELECT outcome, failed_step, message FROM marts.pipeline_runs ORDER BY recorded_at DESC LIMIT 1"
    )[0]
    assert (outcome, step) == ("failed", "publish") and "publish_before_swap" in message
    assert wh.query("SELECT count(*) FROM marts.customer_rfm_latest")[0][0] == len(before["customer_rfm"])


@pytest.mark.postgres
def test_end_to_end_on_postgres(
    airflow_home: Path,
    postgres_warehouse_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from jobs.cli.airflow_local import run_dag
    from jobs.platform.warehouse import open_warehouse
    from tests.integration.conftest import load_cdnow_sample

    load_cdnow_sample(postgres_warehouse_url)
    # the warehouse connection lives in Airflow's metadata DB only, as a deployment keeps it; set
    # then removed, so the variable the task exports for its own process is unset again afterwards
    monkeypatch.setenv("AIRFLOW_CONN_CRM_WAREHOUSE", "unset-after-the-test")
    monkeypatch.delenv("AIRFLOW_CONN_CRM_WAREHOUSE")
    monkeypatch.setenv("CRM_METRICS_LAKE", str(tmp_path / "lake"))
    with _metadata_connection("crm_warehouse", postgres_warehouse_url):
        assert run_dag(D3) == "success"
    rows = mart_rows(postgres_warehouse_url)
    assert len(rows["portfolio_summary"]) == 1 and rows["customer_rfm"]
    wh = open_warehouse(postgres_warehouse_url)
    # revenue reconciles with the source to the cent
    expected = wh.scalar(
        "SELECT sum(gross_amount - discount_amount - refund_amount) FROM crm.orders "
        "WHERE status <> 'cancelled' AND ordered_at < %s",
        [date(1997, 4, 1)],
    )
    assert wh.scalar("SELECT revenue FROM marts.portfolio_summary WHERE snapshot_date = %s", [D3]) == expected
    # the BI role can read every mart and its latest view
    grants = wh.query(
        "SELECT count(*) FROM information_schema.role_table_grants "
        "WHERE grantee = 'crm_bi_reader' AND table_schema = 'marts' AND privilege_type = 'SELECT'"
    )[0][0]
    assert grants >= 9
    assert wh.scalar("SELECT outcome FROM marts.pipeline_runs WHERE snapshot_date = %s", [D3]) == "success"
    _bi_reader_can_read_marts_only(postgres_warehouse_url)
    _lineage_from_source_to_marts(postgres_warehouse_url, tmp_path / "lake")
    _password_never_logged(postgres_warehouse_url, capfd, caplog, [airflow_home, tmp_path / "lake"])


def _lineage_from_source_to_marts(url: str, lake: Path) -> None:
    """The OpenLineage events of the run (the provider's listener, the file transport set in
    tests/conftest.py) chain the source tables through the lake to the warehouse marts."""
    from urllib.parse import urlsplit

    from schemas.marts import METRIC_MARTS
    from tests.conftest import OPENLINEAGE_EVENTS

    parts = urlsplit(url)
    namespace, db = f"postgres://{parts.hostname}:{parts.port}", parts.path.strip("/")
    root = str(lake.absolute())
    events = [json.loads(line) for line in OPENLINEAGE_EVENTS.read_text().splitlines()]

    def datasets(task: str, side: str) -> set[tuple[str, str]]:
        """The task's datasets in its last COMPLETE event of this run (its lake is this test's)."""
        done = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"customer_metrics.{task}"
                and any(d["name"].startswith(root) for d in e["inputs"] + e["outputs"])]
        assert done, f"no COMPLETE OpenLineage event of {task} for the lake {root} in {OPENLINEAGE_EVENTS}"
        return {(d["namespace"], d["name"]) for d in done[-1][side]}

    sources = {"customers", "products", "orders", "order_items", "interactions", "marketing_spend"}
    assert datasets("extract", "inputs") == {(namespace, f"{db}.crm.{t}") for t in sources}
    assert datasets("extract", "outputs") == {("file", f"{root}/raw/{t}") for t in sources}
    assert datasets("validate_raw", "inputs") == {("file", f"{root}/raw/{t}") for t in sources}
    clean = {("file", f"{root}/clean/{t}") for t in sources}
    assert clean <= datasets("validate_raw", "outputs")
    assert datasets("build_marts", "inputs") == clean | {("file", f"{root}/derived/customer_day")}
    lake_marts = {("file", f"{root}/marts/{t.name}") for t in METRIC_MARTS}
    assert datasets("build_marts", "outputs") == datasets("publish", "inputs") == lake_marts
    assert datasets("publish", "outputs") == {(namespace, f"{db}.marts.{t.name}") for t in METRIC_MARTS}
    # the dataset carries the contract's columns and comments (a catalog's schema view)
    orders = next(d for e in events if e["job"]["name"] == "customer_metrics.extract" for d in e["inputs"]
                  if d["name"] == f"{db}.crm.orders")
    fields = {f["name"]: f for f in orders["facets"]["schema"]["fields"]}
    assert {"order_id", "customer_id", "ordered_at", "updated_at"} <= set(fields)
    assert "incremental" in fields["updated_at"]["description"]


def _password_never_logged(
    url: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, folders: list[Path]
) -> None:
    """The warehouse password appears in no log line, no output, no task log and no lake file."""
    from urllib.parse import urlsplit

    password = urlsplit(url).password
    assert password and len(password) >= 8
    out, err = capfd.readouterr()
    scanned = [(out + err + caplog.text).encode()]
    for folder in folders:
        scanned += [p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000]
    # the scan covers the run's own records (status files, task logs), so it can find a leak
    assert any(b'"rows_published"' in blob for blob in scanned)
    assert not [blob[:200] for blob in scanned if password.encode() in blob]


def _bi_reader_can_read_marts_only(url: str) -> None:
    """A login in crm_bi_reader reads marts and latest views; cannot write, cannot see sources."""
    import psycopg

    from jobs.platform.warehouse import open_warehouse

    open_warehouse(url).execute("CREATE ROLE dashboard LOGIN PASSWORD 'dash-pw' IN ROLE crm_bi_reader")
    reader_url = "postgresql://dashboard:dash-pw@" + url.split("@", 1)[1]
    with psycopg.connect(reader_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM marts.customer_rfm").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM marts.cohort_retention_latest").fetchone()[0] > 0
        for sql in (
            "DELETE FROM marts.customer_rfm",
            "SELECT count(*) FROM crm.orders",
            "CREATE TABLE marts.x (i int)",
            "SELECT * FROM marts_staging.customer_rfm_19970331",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)


@pytest.mark.slow
def test_end_to_end_on_the_standalone_cluster(
    spark_cluster: Any, pipeline_env: dict[str, str], tmp_path: Path
) -> None:
    """The production commands: `airflow db migrate`, then `airflow dags test customer_metrics D`
    with this project's dags folder and the Spark connection pointed at the local standalone
    cluster. A child process: this one already holds a local SparkSession."""
    import os
    import subprocess
    import sys

    from jobs.cli.airflow_local import DAGS_FOLDER
    from jobs.platform.warehouse import open_warehouse

    env = {
        **os.environ,
        "CRM_METRICS_SPARK_MASTER": spark_cluster.url,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",  # the final DagRun line is an INFO record
        "CRM_METRICS_DATA": str(tmp_path / "data"),
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    for args in (["db", "migrate"], ["dags", "test", "customer_metrics", D3.isoformat()]):
        proc = subprocess.run([airflow, *args], env=env, capture_output=True, text=True, timeout=900, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = [line for line in (proc.stdout + proc.stderr).splitlines() if "DagRun Finished" in line][-1]
    assert "state=success" in summary
    outcome = open_warehouse(pipeline_env["warehouse"]).scalar("SELECT outcome FROM marts.pipeline_runs")
    assert outcome == "success"
    rows = mart_rows(pipeline_env["warehouse"])
    assert rows["customer_rfm"] and len(rows["portfolio_summary"]) == 1
    with urllib.request.urlopen(spark_cluster.extra["webui"] + "/json/", timeout=5) as r:  # noqa: S310
        master = json.load(r)
    assert [app["name"] for app in master["completedapps"]] == ["crm-metrics"]
