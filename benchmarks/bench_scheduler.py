"""Task start-up under a real scheduler: the DAG for one date under LocalExecutor (every task its
own process), once with Spark inside each task (`local[*]`: a JVM and a session per task) and once
with the tasks on a long-lived Spark Connect server (`crm-metrics spark-server`, the `crm_spark`
connection), side by side with `crm-metrics run` (one process, `dag.test`) on the same data.

    python benchmarks/bench_scheduler.py --customers 2000

Starts PostgreSQL (the metadata DB), Airflow (api-server, scheduler, dag-processor) and the Spark
Connect server on loopback (infra/localstack.py), and stops them all. Each variant gets its own
copy of one generated DuckDB warehouse and its own lake. Prints a JSON line with every task's
duration (the REST API's `duration`) and each run's wall time, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "infra")]

import localstack  # noqa: E402
from devtools.generate import generate  # noqa: E402
from jobs.platform.warehouse import open_warehouse  # noqa: E402
from schemas.steps import STEPS  # noqa: E402

DAG = "customer_metrics"
TASKS = (*STEPS, "record", "report")


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def scheduled(work: Path, postgres: localstack.Service, warehouse: Path, days: list[date],
              spark_url: str | None) -> dict[str, Any]:
    """Runs of `days`, one after another, under a fresh deployment; per run, each task's seconds
    and the run's wall time."""
    metadata = localstack.fresh_database(postgres.url, f"airflow_{work.name}")
    svc = localstack.start_airflow(work / "airflow", metadata, {
        "CRM_METRICS_LAKE": str(work / "lake"),
        "CRM_METRICS_SCHEDULE": "none",
        "AIRFLOW_CONN_CRM_WAREHOUSE": f"duckdb:///{warehouse}",
    })
    try:
        localstack.airflow_cli(svc, "pools", "set", "crm_metrics", "1", "customer_metrics: one task at a time")
        if spark_url:
            host, port = spark_url.removeprefix("sc://").rsplit(":", 1)
            localstack.airflow_cli(svc, "connections", "add", "crm_spark", "--conn-type", "spark_connect",
                                   "--conn-host", host, "--conn-port", port)
        api = localstack.AirflowApi(svc.url, DAG)
        api.wait_for_dag()
        api.call("PATCH", f"/dags/{DAG}", {"is_paused": False})
        out = {}
        for day in days:
            run_id = f"bench__{day.isoformat()}"
            api.trigger(run_id, day.isoformat())
            outcome = api.wait_for_run(run_id, svc, timeout=3600)
            run = api.call("GET", f"/dags/{DAG}/dagRuns/{run_id}")
            tasks = {t["task_id"]: round(float(t["duration"] or 0), 1) for t in api.task_instances(run_id)}
            out[day.isoformat()] = {"outcome": outcome, "run_seconds": _seconds(run.get("start_date"), run.get("end_date")),
                                    "tasks": tasks}
            print(json.dumps({"variant": work.name, day.isoformat(): out[day.isoformat()]}), flush=True)
        return out
    finally:
        svc.stop()


def in_one_process(work: Path, warehouse: Path, days: list[date]) -> dict[str, Any]:
    """`crm-metrics run --date D` per day, each a new process (dag.test: every task in it, one
    Spark session): the whole command's wall time and the steps' seconds it recorded."""
    env = {**os.environ, "CRM_METRICS_LAKE": str(work / "lake"), "CRM_METRICS_DATA": str(work / "data")}
    env.pop("CRM_METRICS_SPARK_MASTER", None)
    out = {}
    for day in days:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "jobs.cli", "run", "--date", day.isoformat(), "--warehouse",
                               f"duckdb:///{warehouse}"], env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        steps = open_warehouse(f"duckdb:///{warehouse}").query(
            "SELECT step_seconds FROM marts.pipeline_runs WHERE snapshot_date = ? ORDER BY recorded_at DESC LIMIT 1", [day])
        out[day.isoformat()] = {
            "outcome": "success" if done.returncode == 0 else f"failed: {done.stderr[-500:]}",
            "run_seconds": round(seconds, 1),
            "tasks": {k: round(v, 1) for k, v in json.loads(steps[0][0]).items()} if steps and steps[0][0] else {}}
        print(json.dumps({"variant": work.name, day.isoformat(): out[day.isoformat()]}), flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1))
    parser.add_argument("--date", type=date.fromisoformat, default=date(2024, 6, 30),
                        help="the second of the two days run (the first is the day before)")
    parser.add_argument("--work", type=Path, help="folder for the warehouses, lakes and logs (default: a temp dir)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="crm-bench-scheduler-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / "source.duckdb"
    generate(open_warehouse(f"duckdb:///{source}"), args.customers, args.start, args.date, seed=7)
    copies = {}
    for name in ("per_task_jvm", "spark_connect", "crm_metrics_run"):
        (work / name).mkdir(exist_ok=True)
        copies[name] = work / name / "warehouse.duckdb"
        shutil.copy(source, copies[name])
    days = [args.date - timedelta(days=1), args.date]
    results: dict[str, Any] = {"customers": args.customers, "days": [d.isoformat() for d in days]}
    results["crm_metrics_run"] = in_one_process(work / "crm_metrics_run", copies["crm_metrics_run"], days)
    postgres = localstack.start_postgres(work / "postgres")
    try:
        results["per_task_jvm"] = scheduled(work / "per_task_jvm", postgres, copies["per_task_jvm"], days, None)
        connect = localstack.start_spark_connect(work / "spark-connect")
        try:
            results["spark_connect"] = scheduled(work / "spark_connect", postgres, copies["spark_connect"], days,
                                                 connect.url)
        finally:
            connect.stop()
    finally:
        postgres.stop()
    print(json.dumps(results))
    names = ("per_task_jvm", "spark_connect", "crm_metrics_run")
    print(f"{'task':<24}" + "".join(f"{n:>18}" for n in names))
    for day in results["days"]:
        for task in (*TASKS, "whole run"):
            cells = []
            for n in names:
                value = results[n][day]["run_seconds"] if task == "whole run" else results[n][day]["tasks"].get(task)
                cells.append(f"{value:>18.1f}" if isinstance(value, (int, float)) else f"{'-':>18}")
            print(f"{day} {task:<13}" + "".join(cells))
    return 0 if all(results[n][d]["outcome"] == "success" for n in names for d in results["days"]) else 1


if __name__ == "__main__":
    sys.exit(main())
