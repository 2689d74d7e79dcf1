"""The benchmark's Spark metric job away from the in-process session: on the local standalone
cluster and through Spark Connect. Each run checks its numbers against the DuckDB reference and
the pandas summary itself; here it must finish with every check passed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture  # one test uses it: stopped before the cluster test, which it otherwise slowed (an idle server kept half a core busy)
def spark_connect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    sys.path.insert(0, str(ROOT / "infra"))
    import localstack

    svc = localstack.start_spark_connect(tmp_path_factory.mktemp("spark-connect"))
    yield svc
    svc.stop()


def _bench(master: str, workdir: Path) -> dict[str, Any]:
    env = {**os.environ, "CRM_METRICS_SHUFFLE_PARTITIONS": "2"}
    proc = subprocess.run(
        # 60 days, not two years: fewer daily lake partitions to list and scan on a tiny history
        [sys.executable, "-m", "jobs.cli", "bench", "--lines", "4000", "--days", "60", "--skip-pipeline",
         "--master", master, "--workdir", str(workdir)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_bench_through_spark_connect(spark_connect: Any, tmp_path: Path) -> None:
    result = _bench(spark_connect.url, tmp_path)
    assert result["checks_passed"] is True and result["mismatches"] == 0
    assert result["check"]["customers"]["rows_compared"] > 0 and result["pandas_check"]["rows_compared"] > 0
    assert result["shuffle_partitions"] == "2"  # the session's runtime settings reached the server


@pytest.mark.tooling  # the whole DAG on the same cluster is test_dag's; this checks the bench tool there
def test_bench_on_the_standalone_cluster(spark_cluster: Any, tmp_path: Path) -> None:
    result = _bench(spark_cluster.url, tmp_path)
    assert result["checks_passed"] is True and result["mismatches"] == 0
    assert result["spark_master"] == spark_cluster.url
