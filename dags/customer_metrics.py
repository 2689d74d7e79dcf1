"""customer_metrics: transactions -> customer relationship marts, one snapshot per day.

Wiring only: each task calls one step of jobs.pipeline.steps. The run's logical date is the snapshot
date; the daily data interval [D, D+1) is the extraction window, and the run starts after it ends.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task

from jobs.platform.config import RunParams, airflow_pool
from schemas.marts import METRIC_MARTS

MART_NAMES = tuple(t.name for t in METRIC_MARTS)
MART_ASSETS = [Asset(name=f"crm_marts.{m}", uri=f"crm-metrics://marts/{m}") for m in MART_NAMES]

# one Param per run parameter, with RunParams' default, description, type and bounds
PARAMS = {name: Param(**spec) for name, spec in RunParams.param_schemas().items()}


# Local runs (crm-metrics run) shorten the delay; production keeps minutes.
RETRY_DELAY = timedelta(seconds=int(os.environ.get("CRM_METRICS_RETRY_DELAY_SECONDS", "300")))
# Every task takes this pool's one slot: runs that share a lake or a DuckDB file (a backfill with
# --max-active-runs 2, a manual run beside the scheduled one) take turns instead of colliding.
# Create it once per deployment: `airflow pools set crm_metrics 1 "customer_metrics: one task at a time"`.
POOL = airflow_pool()
# Daily at midnight UTC by default; "none" for runs triggered only from outside (the REST API,
# another DAG, `crm-metrics run`).
SCHEDULE = os.environ.get("CRM_METRICS_SCHEDULE", "0 0 * * *").strip()

log = logging.getLogger(__name__)


def failure_message(context: dict[str, Any]) -> str:
    """What failed, for which snapshot, and how to go on: the task's failure callback logs it."""
    ti, logical = context.get("ti"), context.get("logical_date")
    step = getattr(ti, "task_id", None) or context.get("task_id", "?")
    snapshot = logical.date().isoformat() if logical is not None else "?"
    return (
        f"customer_metrics: step {step} failed for snapshot {snapshot} (run {context.get('run_id')}, try "
        f"{getattr(ti, 'try_number', '?')}): {context.get('exception')}. Fix the cause, then clear {step} "
        f"in Airflow or rerun the date: crm-metrics run --date {snapshot}"
    )


def on_failure(context: dict[str, Any]) -> None:
    log.error(failure_message(context))


def _step(step: str, context: dict[str, Any]) -> dict[str, Any]:
    """Run a pipeline step; failures that a retry cannot fix (bad data, missing input) fail at once."""
    from airflow.sdk.exceptions import AirflowFailException

    from jobs.pipeline.steps import PERMANENT_ERRORS, run_step

    ctx = _ctx(context)
    _declare_lineage(context, step, ctx)
    try:
        return run_step(step, ctx)
    except PERMANENT_ERRORS as exc:
        raise AirflowFailException(str(exc)) from exc


def _declare_lineage(context: dict[str, Any], step: str, ctx: Any) -> None:
    """The step's datasets as the task's inlets and outlets, resolved from this run's connections:
    Airflow's OpenLineage provider emits them with the task's events (when a transport is set)."""
    from openlineage.client.event_v2 import Dataset

    from jobs.pipeline.lineage import step_lineage

    task = context["ti"].task
    try:
        lineage = step_lineage(step, ctx)
    except Exception:  # lineage is metadata: it never fails a run (a bad export URL fails in export)
        log.warning("customer_metrics: no lineage for %s", step, exc_info=True)
        return
    task.inlets = list(lineage.inputs)
    # the DAG's own Assets stay (they drive asset events); a retry in one process replaces, not adds
    task.outlets = [o for o in task.outlets if not isinstance(o, Dataset)] + lineage.outputs


def _ctx(context: dict[str, Any]) -> Any:
    from airflow.sdk.exceptions import AirflowFailException

    from jobs.pipeline.steps import RunContext
    from jobs.platform.airflow_connections import MissingConnection, resolve_connections

    logical = context.get("logical_date")
    if logical is None:
        # Airflow 3 allows a manual run without one; the snapshot date is the logical date
        raise AirflowFailException(
            f"run {context.get('run_id')}: customer_metrics needs a logical date, the snapshot to build. "
            "Trigger it with one (the UI's Logical date field, `airflow dags trigger customer_metrics "
            "--logical-date 2024-12-31`, or `crm-metrics run --date 2024-12-31`)."
        )
    try:
        resolve_connections()  # metadata DB, secrets backends, environment
    except MissingConnection as exc:
        raise AirflowFailException(str(exc)) from exc
    return RunContext.create(
        snapshot=logical.date(),
        run_id=context["run_id"],
        params={k: v for k, v in context["params"].items() if k in RunParams.__dataclass_fields__},
    )


@dag(
    dag_id="customer_metrics",
    description="Customer profitability, RFM, segments, cohorts and channel economics per daily snapshot.",
    schedule=None if SCHEDULE.lower() in ("", "none") else CronDataIntervalTimetable(SCHEDULE, timezone="UTC"),
    start_date=datetime(1970, 1, 1),  # early enough to backfill any history; catchup stays off
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "crm-data", "retries": 2, "retry_delay": RETRY_DELAY, "pool": POOL, "on_failure_callback": on_failure,
    },
    params=PARAMS,
    tags=["crm", "metrics", "spark"],
    doc_md=__doc__,
)
def customer_metrics() -> None:
    @task
    def extract(**context: Any) -> dict[str, Any]:
        return _step("extract", context)

    @task
    def validate_raw(**context: Any) -> dict[str, Any]:
        return _step("validate_raw", context)

    @task
    def build_marts(**context: Any) -> dict[str, Any]:
        return _step("build_marts", context)

    @task
    def validate_marts(**context: Any) -> dict[str, Any]:
        return _step("validate_marts", context)

    @task(outlets=MART_ASSETS)
    def publish(**context: Any) -> dict[str, Any]:
        return _step("publish", context)

    @task
    def report(**context: Any) -> dict[str, Any]:
        """After the record, so the report shows this run's row of marts.pipeline_runs."""
        from jobs.pipeline.steps import report_step

        return report_step(_ctx(context))

    @task
    def export(**context: Any) -> dict[str, Any]:
        return _step("export", context)

    @task(trigger_rule="all_done")
    def record(**context: Any) -> dict[str, Any]:
        """Retried like the other tasks (a transient warehouse error; its row is an upsert); a
        failed run, once recorded, fails the task without a retry."""
        from airflow.sdk.exceptions import AirflowFailException

        from jobs.pipeline.steps import record_step
        from schemas.steps import STEPS

        ti, run_id = context["ti"], context["run_id"]
        # the steps' states as Airflow knows them: a task killed before writing its status file
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=list(STEPS), run_ids=[run_id]).get(run_id, {})
        summary = record_step(_ctx(context), task_states=states)
        if summary["outcome"] != "success":
            raise AirflowFailException(f"run failed at {summary['failed_step']}: {summary['message']}")
        return summary

    published = extract() >> validate_raw() >> build_marts() >> validate_marts() >> publish()
    published >> export() >> record() >> report()


customer_metrics()
