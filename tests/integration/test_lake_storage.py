"""The Delta Lake lake on its two kinds of storage: S3 (`s3a://`, moto_server over HTTP) and a local
folder, through the real DAG, two runs at once on one lake, and `crm-metrics maintain`.

No mocks: objects are listed with boto3, Delta tables are read back with Spark, marts are checked
against the CDNOW file's own sums or compared row for row with runs one after another."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import pytest

import localstack
from jobs.pipeline.steps import RunContext, run_all
from jobs.platform.state_tables import recorded_snapshots
from schemas.marts import METRIC_MARTS
from schemas.source import SOURCE_TABLES
from tests.integration.conftest import (
    CDNOW,
    ROOT,
    S3_KEY,
    S3_SECRET,
    lake_conn_uri,
    load_cdnow_sample,
    mart_rows,
)

# inside the CDNOW sample's range (1997-01 .. 1998-06), the days test_dag.py runs
D1, D2 = date(1997, 3, 30), date(1997, 3, 31)
def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


@pytest.fixture
def s3_lake_spark(spark: Any, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The session's Spark pointed at moto for `s3a://` paths, the lake connection in the environment.

    The session was built before this test set AIRFLOW_CONN_CRM_LAKE, so get_spark() (which only
    reads the connection when a session is built) returns it without S3A settings, and
    `spark.conf.set("spark.hadoop.fs.s3a...")` on a running session never reaches the S3A file
    system (it then falls back to the default AWS chain and finds no credentials). The settings
    go into the SparkContext's Hadoop configuration instead, and are restored afterwards."""
    from jobs.platform.lake import lake_connection, s3a_settings

    for name in ("AIRFLOW_CONN_CRM_EXPORT", "CRM_METRICS_EXPORT_URL", "CRM_METRICS_FAIL_AT", "AWS_PROFILE",
                 "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AIRFLOW_CONN_CRM_LAKE", lake_conn_uri(s3_endpoint))
    conn = lake_connection()
    assert (conn.endpoint_url, conn.access_key_id, conn.secret_access_key) == (s3_endpoint, S3_KEY, S3_SECRET)
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    previous: dict[str, str | None] = {}
    for key, value in s3a_settings(conn).items():
        name = key[len("spark.hadoop."):]
        previous[name] = hadoop.get(name)
        hadoop.set(name, value)
    try:
        yield spark
    finally:
        for name, value in previous.items():
            if value is None:
                hadoop.unset(name)
            else:
                hadoop.set(name, value)


# -- 1. the whole DAG with the lake on S3 -------------------------------------------------------
# slow: `make test` runs the scheduled DAG on an S3 lake (test_scheduler.py); this one adds that
# nothing but temp files reaches the local disk and the revenue per customer against the file
@pytest.mark.slow
def test_whole_dag_twice_with_the_lake_on_s3(
    airflow_home: Path, s3_lake_spark: Any, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobs.cli.airflow_local import run_dag
    from jobs.pipeline.maintain import delta_tables
    from jobs.platform.config import data_dir
    from jobs.platform.lake import Lake
    from jobs.platform.warehouse import open_warehouse

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET,
                      region_name="us-east-1")
    bucket = f"crm-lake-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3_root = f"s3a://{bucket}/lake"

    on_s3 = tmp_path / "on_s3"
    on_s3.mkdir()
    url = f"duckdb:///{on_s3}/warehouse.duckdb"
    load_cdnow_sample(url)
    local_data = data_dir()
    data_before, tmp_before = _files(local_data), _files(tmp_path)
    monkeypatch.setenv("AIRFLOW_CONN_CRM_WAREHOUSE", url)
    monkeypatch.setenv("CRM_METRICS_LAKE", s3_root)
    assert [run_dag(D1), run_dag(D2)] == ["success", "success"]

    # both snapshots published and recorded
    on_s3_marts = mart_rows(url)
    assert {r[0] for r in on_s3_marts["portfolio_summary"]} == {D1, D2}
    for snapshot in (D1, D2):
        assert mart_rows(url, snapshot)["customer_rfm"], snapshot
    wh = open_warehouse(url)
    assert sorted(wh.query("SELECT snapshot_date, outcome FROM marts.pipeline_runs")) == [(D1, "success"), (D2, "success")]

    # the lake's Delta tables are objects in the bucket
    def keys(prefix: str) -> list[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    log_keys = keys("lake/raw/orders/_delta_log/")
    assert any(k.endswith(".json") for k in log_keys), log_keys
    assert any(k.endswith(".parquet") for k in keys("lake/raw/orders/")), "no data files of raw/orders"
    for snapshot in (D1, D2):
        assert keys(f"lake/marts/customer_rfm/snapshot_date={snapshot.isoformat()}/"), snapshot
        assert keys(f"lake/reports/portfolio_{snapshot.isoformat()}.html"), snapshot
        assert keys(f"lake/runs/{snapshot.isoformat()}/"), snapshot
    s3_lake = Lake.at(s3_root)
    assert any(k.endswith(".parquet") for k in keys("lake/clean/orders/")), "no data files of clean/orders"
    # the second day moved the clean layer from the first: both are recorded versions of it
    assert recorded_snapshots(s3_lake) == {D1, D2}
    s3_tables = delta_tables(s3_lake)
    assert f"{s3_root}/raw/orders" in s3_tables and f"{s3_root}/marts/customer_rfm" in s3_tables
    for path in s3_tables:
        s3_lake_spark.read.format("delta").load(path).count()

    # nothing of the lake on the local disk: no data folder entries, no `lake` or `s3a:` folder
    assert _files(local_data) - data_before == set()
    assert not (local_data / "lake").exists()
    new_local = _files(tmp_path) - tmp_before
    assert not [p for p in new_local if "lake" in Path(p).parts], new_local
    assert {Path(p).parts[0] for p in new_local} <= {"on_s3"}, new_local
    for folder in {ROOT, Path.cwd()}:  # an s3a:// root taken for a relative path would land here
        assert not [n for n in os.listdir(folder) if n.startswith("s3")], folder

    # the later day's numbers are the file's own: revenue per customer summed from the CDNOW
    # sample up to D2, to the cent (the file, not another run of this code, is the reference)
    expected: dict[str, Decimal] = defaultdict(Decimal)
    with (CDNOW / "CDNOW_sample.txt").open() as f:
        for line in f:
            _master, customer, day, _quantity, amount = line.split()
            if day <= D2.strftime("%Y%m%d"):
                expected[customer] += Decimal(amount)
    revenue = dict(wh.query("SELECT customer_id, revenue FROM marts.customer_profitability WHERE snapshot_date = ?", [D2]))
    assert len(expected) > 500 and revenue == dict(expected)
    assert wh.scalar("SELECT revenue FROM marts.portfolio_summary WHERE snapshot_date = ?", [D2]) == sum(expected.values())
    # every table of the contract is a Delta table in the bucket
    contract = {f"{s3_root}/raw/{t.name}" for t in SOURCE_TABLES} | {f"{s3_root}/marts/{t.name}" for t in METRIC_MARTS}
    assert contract <= set(s3_tables), contract - set(s3_tables)


# -- 2. two runs at once on one lake --------------------------------------------------------------
CHILD = """
import sys
from datetime import date
from jobs.pipeline.steps import RunContext, run_all

warehouse, lake, *days = sys.argv[1:]
for day in days:
    summary = run_all(RunContext.create(date.fromisoformat(day), warehouse=warehouse, lake=lake))
    print("OUTCOME", day, summary["outcome"], summary.get("failed_step"), summary.get("message"), flush=True)
    if summary["outcome"] != "success":
        sys.exit(1)
"""


def _start(warehouse: str, lake: Path, days: list[date], log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("AIRFLOW_CONN_CRM_WAREHOUSE", "CRM_METRICS_LAKE",
                                                             "CRM_METRICS_FAIL_AT", "CRM_METRICS_PAUSE_AT")}
    env["CRM_METRICS_SHUFFLE_PARTITIONS"] = "2"
    args = [sys.executable, "-c", CHILD, warehouse, str(lake), *(d.isoformat() for d in days)]
    with log.open("wb") as out:
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_runs_at_once_match_one_after_another(
    spark: Any, postgres_server: Any, postgres_warehouse_url: str, tmp_path: Path
) -> None:
    from jobs.pipeline.maintain import delta_tables
    from jobs.platform.lake import Lake
    from jobs.platform.warehouse import open_warehouse

    at_once_url = postgres_warehouse_url
    in_order_url = localstack.fresh_database(postgres_server.url, f"in_order_{uuid.uuid4().hex[:8]}")
    load_cdnow_sample(at_once_url)
    load_cdnow_sample(in_order_url)
    lake = tmp_path / "lake"

    logs = {d: tmp_path / f"at_once_{d.isoformat()}.log" for d in (D1, D2)}
    procs = {d: _start(at_once_url, lake, [d], logs[d]) for d in (D1, D2)}
    codes = {d: p.wait() for d, p in procs.items()}
    conflicts = []
    for d, code in codes.items():
        text = logs[d].read_text(errors="replace")
        if code == 0:
            assert f"OUTCOME {d.isoformat()} success" in text, text[-3000:]
        else:
            # the only acceptable failure: a clear, retryable Delta conflict
            assert "LakeConflict" in text, f"run of {d} failed without a LakeConflict:\n{text[-5000:]}"
            conflicts.append(d)
    assert len(conflicts) < 2, "both concurrent runs gave up on a conflict"
    for d in conflicts:  # what Airflow's retry does
        retry_log = tmp_path / f"retry_{d.isoformat()}.log"
        assert _start(at_once_url, lake, [d], retry_log).wait() == 0, retry_log.read_text(errors="replace")[-5000:]

    # one after another, in this process's session (no third JVM start)
    for d in (D1, D2):
        summary = run_all(RunContext.create(d, warehouse=in_order_url, lake=str(tmp_path / "lake_in_order")))
        assert summary["outcome"] == "success", summary

    at_once = mart_rows(at_once_url)
    assert {r[0] for r in at_once["portfolio_summary"]} == {D1, D2}
    assert at_once["customer_rfm"]
    assert at_once == mart_rows(in_order_url)
    outcomes = open_warehouse(at_once_url).query(
        "SELECT DISTINCT snapshot_date FROM marts.pipeline_runs WHERE outcome = 'success'"
    )
    assert sorted(r[0] for r in outcomes) == [D1, D2]

    # the lake both wrote at once is whole: every Delta table reads
    tables = delta_tables(Lake.at(lake))
    root = str(lake.absolute())
    assert {f"{root}/raw/orders", f"{root}/clean/orders", f"{root}/marts/customer_rfm", f"{root}/quarantine"} <= set(tables)
    for path in tables:
        spark.read.format("delta").load(path).count()
    assert recorded_snapshots(Lake.at(lake)) == {D1, D2}


# -- 3. maintenance: VACUUM and the working-layer retention ---------------------------------------
DAYS = [date(2024, 1, 1) + timedelta(days=i) for i in range(4)]


def _rows(day: date, version: int = 1) -> list[tuple[int, str]]:
    return [(i, f"{day.isoformat()}#{version}#{i}") for i in range(3)]


def _small_lake(spark: Any, root: Path) -> Any:
    """A clean table and a mart with one snapshot per day of DAYS; the newest snapshot of each is
    written twice, so the first files of that day are no longer in the tables."""
    from jobs.platform.delta import write_snapshot
    from jobs.platform.lake import Lake

    lake = Lake.at(root)
    for path in (lake.clean_table("orders"), lake.mart_table("x")):
        for day in DAYS:
            write_snapshot(spark.createDataFrame(_rows(day), "id INT, v STRING"), path, day, "test")
        write_snapshot(spark.createDataFrame(_rows(DAYS[-1], 2), "id INT, v STRING"), path, DAYS[-1], "test")
    return lake


def _parquet_on_disk(path: str) -> set[str]:
    return {str(p) for p in Path(path).rglob("*.parquet") if "_delta_log" not in p.parts}


def _live_files(spark: Any, path: str) -> set[str]:
    return {unquote(urlsplit(f).path) for f in spark.read.format("delta").load(path).inputFiles()}


def _current(spark: Any, path: str, version: int | None = None) -> set[tuple[Any, ...]]:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return {tuple(r) for r in reader.load(path).select("snapshot_date", "id", "v").collect()}


def _expected(days: list[date]) -> set[tuple[Any, ...]]:
    return {(d, i, v) for d in days for i, v in _rows(d, 2 if d == DAYS[-1] else 1)}


def _version(spark: Any, path: str) -> int:
    return int(spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT 1").first()["version"])


@pytest.mark.slow
def test_maintain_vacuums_old_files_and_keeps_reads_inside_the_window(spark: Any, tmp_path: Path) -> None:
    from jobs.pipeline.maintain import maintain

    # retention 0: every file no current version needs is deleted
    lake = _small_lake(spark, tmp_path / "vacuumed")
    clean, mart = lake.clean_table("orders"), lake.mart_table("x")
    for path in (clean, mart):
        assert len(_parquet_on_disk(path)) > len(_live_files(spark, path))  # the replaced files of DAYS[-1]
        assert _current(spark, path) == _expected(DAYS)
    before = {path: _parquet_on_disk(path) for path in (clean, mart)}

    result = maintain(spark, lake, timedelta(hours=0))

    assert sorted(result.tables) == sorted([clean, mart])
    for path in (clean, mart):
        on_disk, live = _parquet_on_disk(path), _live_files(spark, path)
        assert on_disk == live, f"{path}: files no version needs are still on disk: {sorted(on_disk - live)}"
        assert before[path] - on_disk, f"{path}: nothing was removed from disk"
    for path in (clean, mart):
        assert _current(spark, path) == _expected(DAYS)  # compaction and VACUUM keep every row
    assert lake.read_arrow(clean).num_rows == len(_expected(DAYS))
    assert sorted(lake.read_arrow(mart, DAYS[-1]).column("v").to_pylist()) == [v for _, v in _rows(DAYS[-1], 2)]

    # retention 1 hour: nothing recent is deleted, time travel to the versions before still works
    lake = _small_lake(spark, tmp_path / "windowed")
    clean, mart = lake.clean_table("orders"), lake.mart_table("x")
    before = {path: _parquet_on_disk(path) for path in (clean, mart)}
    versions = {path: _version(spark, path) for path in (clean, mart)}

    maintain(spark, lake, timedelta(hours=1))

    for path in (clean, mart):
        assert before[path] <= _parquet_on_disk(path), f"{path}: recent files were deleted"
        assert _version(spark, path) >= versions[path]
        # the version before maintenance, and the one before the rewrite of DAYS[-1]
        assert _current(spark, path, versions[path]) == _expected(DAYS)
        previous = _current(spark, path, versions[path] - 1)
        assert {r for r in previous if r[0] == DAYS[-1]} == {(DAYS[-1], i, v) for i, v in _rows(DAYS[-1])}
    assert _current(spark, clean) == _current(spark, mart) == _expected(DAYS)
