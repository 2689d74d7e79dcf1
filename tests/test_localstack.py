"""The local stack starts, answers and stops cleanly: PostgreSQL, moto_server, Spark standalone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
import psycopg
import pytest

import localstack

ROOT = Path(__file__).resolve().parents[1]


def _gone(svc: localstack.Service, port: int) -> None:
    svc.stop()
    assert not any(localstack.pid_alive(p) for p in svc.pids)
    assert not localstack.port_open(port)


@pytest.mark.postgres
def test_postgres_starts_answers_and_stops(tmp_path: Path) -> None:
    svc = localstack.start_postgres(tmp_path)
    port = int(svc.extra["port"])
    try:
        assert svc.url.startswith("postgresql://crm:") and "@127.0.0.1:" in svc.url
        with psycopg.connect(svc.url) as conn:
            assert conn.execute("SELECT current_user, inet_server_addr()::text").fetchone() == ("crm", "127.0.0.1/32")
        wrong = svc.url.replace(svc.url.split(":")[2].split("@")[0], "wrong-password")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(wrong, connect_timeout=5)
    finally:
        _gone(svc, port)


def test_s3_endpoint_starts_answers_and_stops(tmp_path: Path) -> None:
    svc = localstack.start_s3(tmp_path)
    port = int(svc.url.rsplit(":", 1)[1])
    try:
        s3 = boto3.client("s3", endpoint_url=svc.url, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
        s3.create_bucket(Bucket="crm")
        s3.put_object(Bucket="crm", Key="hello.txt", Body=b"hi")
        assert s3.get_object(Bucket="crm", Key="hello.txt")["Body"].read() == b"hi"
    finally:
        _gone(svc, port)


@pytest.mark.slow
def test_spark_cluster_runs_a_job_and_stops(tmp_path: Path) -> None:
    svc = localstack.start_spark(tmp_path)
    port = int(svc.url.rsplit(":", 1)[1])
    try:
        # a child process: this one may already hold a local SparkSession
        code = (
            f"from jobs.platform.spark import get_spark; s = get_spark(master={svc.url!r}); "
            "print(s.range(1000).selectExpr('sum(id)').first()[0]); s.stop()"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().splitlines()[-1] == "499500"
    finally:
        _gone(svc, port)


def test_cli_start_status_stop(tmp_path: Path) -> None:
    script = str(ROOT / "infra" / "localstack.py")
    state = str(tmp_path)
    started = subprocess.run([sys.executable, script, "start", "s3", "--dir", state], capture_output=True, text=True, check=True)
    assert '"url": "http://127.0.0.1:' in started.stdout
    status = subprocess.run([sys.executable, script, "status", "--dir", state], capture_output=True, text=True, check=True)
    assert '"alive": true' in status.stdout
    subprocess.run([sys.executable, script, "stop", "s3", "--dir", state], capture_output=True, text=True, check=True)
    assert not (tmp_path / "s3.json").exists()
