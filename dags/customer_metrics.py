"""customer_metrics: transactions -> customer relationship marts, one snapshot per day.

Wiring only: each task calls one step of jobs.pipeline. The run's logical date is the snapshot
date; the daily data interval [D, D+1) is the extraction window, and the run starts after it ends.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task

from jobs.config import RunParams
from schemas.marts import METRIC_MARTS

MART_NAMES = tuple(t.name for t in METRIC_MARTS)
MART_ASSETS = [Asset(name=f"crm_marts.{m}", uri=f"crm-metrics://marts/{m}") for m in MART_NAMES]

_DEFAULTS = RunParams()
PARAMS = {
    "full_refresh": Param(_DEFAULTS.full_refresh, type="boolean", description="Read every source row (not only those changed since the lake's watermark) and record vanished keys as deletions; nothing captured before is removed."),
    "extract_lookback_minutes": Param(_DEFAULTS.extract_lookback_minutes, type="integer", minimum=0, description="Re-read source changes from this long before the lake's watermark (rows committed late)."),
    "quarantine_max_rate": Param(_DEFAULTS.quarantine_max_rate, type="number", minimum=0, maximum=1, description="Fail the run when more than this share of the run's rows is quarantined."),
    "row_count_min_ratio": Param(_DEFAULTS.row_count_min_ratio, type="number", minimum=0, description="Fail when the day's rows fall below this multiple of the recent daily mean."),
    "row_count_max_ratio": Param(_DEFAULTS.row_count_max_ratio, type="number", minimum=0, description="Fail when the day's rows exceed this multiple of the recent daily mean."),
    "freshness_days": Param(_DEFAULTS.freshness_days, type="integer", minimum=0, description="Fail when no order was updated within this many days before the snapshot."),
    "max_order_amount": Param(_DEFAULTS.max_order_amount, type="number", minimum=0, description="Orders above this gross amount are quarantined as absurd."),
    "company_start": Param(None, type=["null", "string"], description="YYYY-MM-DD; events before it are quarantined (default: first customer signup)."),
    "lapse_days": Param(_DEFAULTS.lapse_days, type="integer", minimum=1, description="Days without a purchase after which a customer is lapsed."),
    "active_days": Param(_DEFAULTS.active_days, type="integer", minimum=1, description="A customer whose last purchase is this recent counts as active."),
    "development_days": Param(_DEFAULTS.development_days, type="integer", minimum=1, description="Tenure below which a repeat customer is in development."),
    "decline_gap_factor": Param(_DEFAULTS.decline_gap_factor, type="number", minimum=1, description="Overdue by this multiple of the own mean gap = decline."),
    "kotler_profit_threshold": Param(None, type=["null", "number"], description="Profit split for the Kotler quadrants (default: median)."),
    "kotler_loyalty_threshold": Param(None, type=["null", "number"], description="Loyalty-score split for the Kotler quadrants (default: median)."),
    "clv_months": Param(_DEFAULTS.clv_months, type="integer", minimum=1, description="CLV horizon in months."),
    "clv_monthly_discount": Param(_DEFAULTS.clv_monthly_discount, type="number", minimum=0, description="Monthly discount rate of the CLV."),
    "clv_min_customers": Param(_DEFAULTS.clv_min_customers, type="integer", minimum=1, description="Fewer buying customers than this: the CLV models are skipped (recorded)."),
    "export_url": Param(None, type=["null", "string"], description="s3://bucket/prefix to export the snapshot to (default: $CRM_METRICS_EXPORT_URL; none: no export). Credentials: connection crm_export."),
}


# Local runs (crm-metrics run) shorten the delay; production keeps minutes.
RETRY_DELAY = timedelta(seconds=int(os.environ.get("CRM_METRICS_RETRY_DELAY_SECONDS", "300")))


def _step(step: str, context: dict[str, Any]) -> dict[str, Any]:
    """Run a pipeline step; failures that a retry cannot fix (bad data, missing input) fail at once."""
    from airflow.sdk.exceptions import AirflowFailException

    from jobs.pipeline import PERMANENT_ERRORS, run_step

    try:
        return run_step(step, _ctx(context))
    except PERMANENT_ERRORS as exc:
        raise AirflowFailException(str(exc)) from exc


def _ctx(context: dict[str, Any]) -> Any:
    from airflow.sdk.exceptions import AirflowFailException

    from jobs.pipeline import RunContext

    logical = context.get("logical_date")
    if logical is None:
        # Airflow 3 allows a manual run without one; the snapshot date is the logical date
        raise AirflowFailException(
            f"run {context.get('run_id')}: customer_metrics needs a logical date, the snapshot to build. "
            "Trigger it with one (the UI's Logical date field, `airflow dags trigger customer_metrics "
            "--logical-date 2024-12-31`, or `crm-metrics run --date 2024-12-31`)."
        )
    return RunContext.create(
        snapshot=logical.date(),
        run_id=context["run_id"],
        params={k: v for k, v in context["params"].items() if k in RunParams.__dataclass_fields__},
    )


@dag(
    dag_id="customer_metrics",
    description="Customer profitability, RFM, segments, cohorts and channel economics per daily snapshot.",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(1970, 1, 1),  # early enough to backfill any history; catchup stays off
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "crm-data", "retries": 2, "retry_delay": RETRY_DELAY},
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
        from jobs.pipeline import report_step

        return report_step(_ctx(context))

    @task
    def export(**context: Any) -> dict[str, Any]:
        return _step("export", context)

    @task(trigger_rule="all_done")
    def record(**context: Any) -> dict[str, Any]:
        """Retried like the other tasks (a transient warehouse error; its row is an upsert); a
        failed run, once recorded, fails the task without a retry."""
        from airflow.sdk.exceptions import AirflowFailException

        from jobs.pipeline import record_step

        summary = record_step(_ctx(context))
        if summary["outcome"] != "success":
            raise AirflowFailException(f"run failed at {summary['failed_step']}: {summary['message']}")
        return summary

    published = extract() >> validate_raw() >> build_marts() >> validate_marts() >> publish()
    published >> export() >> record() >> report()


customer_metrics()
