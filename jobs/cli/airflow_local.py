"""Run the customer_metrics DAG in this process through Airflow (`dag.test()`), for the CLI.

Airflow keeps its metadata in SQLite under the data folder (migrated on first use); the DAG file
is this project's `dags/customer_metrics.py`. Environment must be set before Airflow is imported.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from jobs.platform.config import airflow_pool, data_dir

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
DAG_ID = "customer_metrics"


def prepare(home: Path | None = None) -> Path:
    """Point Airflow at a local home and this project's DAGs; migrate the metadata DB once."""
    home = Path(os.environ.get("AIRFLOW_HOME") or home or (data_dir() / "airflow")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("CRM_METRICS_RETRY_DELAY_SECONDS", "5")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    if not os.environ.get("AIRFLOW__CORE__FERNET_KEY"):
        os.environ["AIRFLOW__CORE__FERNET_KEY"] = _fernet_key(home)
    if "airflow.configuration" in sys.modules:
        # Airflow read its configuration when it was first imported, before these settings
        from airflow.configuration import conf

        conf.set("core", "dags_folder", os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
        conf.set("core", "fernet_key", os.environ["AIRFLOW__CORE__FERNET_KEY"])
    marker = home / ".crm-metrics-migrated"
    if not marker.exists():
        env = dict(os.environ)
        proc = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed in {home}:\n{proc.stderr[-2000:]}")
        marker.write_text("ok\n")
    return home


def _fernet_key(home: Path) -> str:
    """The local home's key for connection passwords in the metadata DB (`airflow connections
    add` with this home): without one Airflow stores them in clear. Made once, readable by the
    owner only."""
    path = home / "fernet.key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(Fernet.generate_key().decode())
    return path.read_text().strip()


def _ensure_pool() -> None:
    """The DAG's pool in the local metadata DB (a deployment creates it with `airflow pools set`)."""
    from airflow.models.pool import Pool

    name = airflow_pool()
    if Pool.get_pool(name) is None:
        Pool.create_or_update_pool(name, slots=1, description="customer_metrics: one task at a time", include_deferred=False)


def run_dag(snapshot: date, conf: dict[str, Any] | None = None) -> str:
    """Run the DAG once for `snapshot`; returns the run's final state ('success' or 'failed')."""
    prepare()
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from airflow.dag_processing.dagbag import DagBag

    _ensure_pool()
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if DAG_ID not in bag.dags:
        raise RuntimeError(f"DAG {DAG_ID} did not load from {DAGS_FOLDER}: {bag.import_errors}")
    dag = bag.dags[DAG_ID]
    logical = datetime(snapshot.year, snapshot.month, snapshot.day, tzinfo=UTC)
    dr = dag.test(logical_date=logical, run_conf=conf or {})
    return str(getattr(dr.state, "value", dr.state))
