"""One run of the customer_metrics pipeline, as steps the DAG (or the CLI) calls in order:

extract -> validate_raw -> build_marts -> validate_marts -> publish -> export -> record -> report

The report comes after the record so that it shows the run's own row of marts.pipeline_runs.

Each step reads and writes a fixed place (the snapshot's partition of each lake table, the warehouse
rows of the snapshot), so any step can be retried or rerun. Each step leaves a small status
object in the lake (runs/<date>/<run id>/<step>.json), which the record step turns into the
marts.pipeline_runs row whatever happened.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from jobs.platform.config import RunParams, lake_root, mask_secrets, source_url, warehouse_url
from jobs.platform.hooks import checkpoint
from jobs.platform.lake import Lake
from schemas.steps import STEPS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    snapshot: date
    run_id: str
    warehouse_url: str
    lake_root: str
    params: RunParams = field(default_factory=RunParams)
    # the database the extraction reads; the warehouse itself unless a source is configured
    source_url: str = ""

    @classmethod
    def create(
        cls,
        snapshot: date,
        run_id: str | None = None,
        warehouse: str | None = None,
        lake: str | None = None,
        params: dict[str, Any] | RunParams | None = None,
        source: str | None = None,
    ) -> RunContext:
        snapshot = date(snapshot.year, snapshot.month, snapshot.day)  # a plain date, not pendulum's subclass
        return cls(
            snapshot=snapshot,
            run_id=run_id or f"manual__{snapshot.isoformat()}",
            warehouse_url=warehouse_url(warehouse),
            lake_root=lake_root(lake),
            params=params if isinstance(params, RunParams) else RunParams.from_mapping(params),
            source_url=source_url(source, warehouse),
        )

    @property
    def lake(self) -> Lake:
        return Lake.at(self.lake_root)

    def status_path(self, step: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.run_id)
        return f"{self.lake.run_dir(self.snapshot)}/{safe}/{step}.json"


# -- step bodies ---------------------------------------------------------------------------------
def _warehouse(ctx: RunContext) -> Any:
    from jobs.platform.warehouse import open_warehouse

    return open_warehouse(ctx.warehouse_url)


def _source(ctx: RunContext) -> Any:
    from jobs.platform.warehouse import open_warehouse

    return open_warehouse(ctx.source_url or ctx.warehouse_url)


def _spark() -> Any:
    from jobs.platform.spark import get_spark

    return get_spark()


def _rule_params(ctx: RunContext, customers: Any) -> Any:
    from jobs.clean.snapshot_inputs import company_start_default
    from jobs.quality.rules import RuleParams

    start = ctx.params.company_start
    if start:
        company_start = date.fromisoformat(start)
    else:
        company_start = company_start_default(customers) or date(1900, 1, 1)
    return RuleParams(ctx.snapshot, company_start, ctx.params.max_order_amount)


def _run_key(ctx: RunContext) -> str:
    """One run of one lake: its validation results make up the lake's Data Docs."""
    return f"{ctx.lake_root}|{ctx.snapshot.isoformat()}|{ctx.run_id}"


def extract_step(ctx: RunContext) -> dict[str, Any]:
    from jobs.ingest.extract import extract

    res = extract(
        _spark(), _source(ctx), ctx.lake, ctx.snapshot, full_refresh=ctx.params.full_refresh, run_id=ctx.run_id,
        lookback=timedelta(minutes=ctx.params.extract_lookback_minutes),
    )
    return {
        "rows_extracted": res.total_rows, "rows": res.rows, "rows_read": res.rows_read, "tombstones": res.tombstones,
        "watermarks": res.watermarks, "full_refresh": res.full_refresh, "warnings": res.warnings,
    }


def _data_docs(ctx: RunContext) -> str | None:
    """Data Docs of the run's validations in the lake (quality/data_docs/index.html). On S3 they
    are rendered into a temporary folder and uploaded."""
    import pyarrow.fs as pafs

    from jobs.quality.gates import build_data_docs

    target = f"{ctx.lake.quality_dir()}/data_docs"
    if not ctx.lake.is_s3:
        docs = build_data_docs(Path(target))
        return str(docs) if docs else None
    with tempfile.TemporaryDirectory(prefix="crm-data-docs-") as tmp:
        docs = build_data_docs(Path(tmp))
        if docs is None:
            return None
        fs, root = ctx.lake.filesystem()
        pafs.copy_files(tmp, f"{root}/quality/data_docs", source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)
    return f"{target}/index.html"


def validate_raw_step(ctx: RunContext) -> dict[str, Any]:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from jobs.clean.layer import prepare, restated_rows
    from jobs.clean.snapshot_inputs import current_tables, daily_version_counts
    from jobs.platform.delta import write_snapshot
    from jobs.publish.to_warehouse import ensure_marts
    from jobs.quality.gates import begin_run
    from jobs.quality.raw_gate import GATE, ROW_COUNT_HISTORY, raise_on_failure, validate_raw
    from jobs.quality.records import store_dq_results, store_quarantine
    from schemas.marts import QUARANTINE

    spark = _spark()
    begin_run(_run_key(ctx))
    # persisted once: the rule parameters, the changed scope and the checks all read them
    # (plan.release() frees them with the checked rows)
    current = {t: df.persist(StorageLevel.MEMORY_AND_DISK) for t, df in current_tables(spark, ctx.lake, ctx.snapshot).items()}
    params = _rule_params(ctx, current["customers"])
    # after a full extraction (the lake's first, or a full refresh) every row is checked; after
    # an incremental one, the rows updated on the snapshot's day
    full = bool(step_statuses(ctx).get("extract", {}).get("full_refresh", False))
    plan = prepare(spark, ctx.lake, ctx.snapshot, params, whole=full, current=current)
    inputs = plan.inputs.persist()
    p = ctx.params
    result, quarantined = validate_raw(
        inputs, daily_version_counts(spark, ctx.lake, ctx.snapshot, ROW_COUNT_HISTORY), ctx.snapshot, ctx.run_id,
        full=full, newest_order_update=plan.newest_order_update,
        quarantine_max_rate=p.quarantine_max_rate, row_count_min_ratio=p.row_count_min_ratio,
        row_count_max_ratio=p.row_count_max_ratio, freshness_days=p.freshness_days,
    )
    wh = _warehouse(ctx)
    ensure_marts(wh)
    empty = spark.createDataFrame([], ", ".join(f"`{c.name}` STRING" for c in QUARANTINE.columns if c.name != "snapshot_date"))
    rows = quarantined.drop("snapshot_date") if quarantined is not None else empty
    write_snapshot(rows.select(*[F.col(c.name) for c in QUARANTINE.columns if c.name != "snapshot_date"]),
                   ctx.lake.quarantine_table(), ctx.snapshot, "quarantine")
    store_quarantine(wh, ctx.snapshot, ctx.lake.read_arrow(ctx.lake.quarantine_table(), ctx.snapshot))
    store_dq_results(wh, ctx.snapshot, ctx.run_id, GATE, result.results)
    docs = _data_docs(ctx)
    if docs:
        log.info("Great Expectations Data Docs: %s", docs)
    if result.rows_quarantined:
        log.warning("quarantined %s of %s rows: %s (see marts.quarantine)", result.rows_quarantined, result.rows_checked, result.reasons)
    try:
        layer = plan.write() if not result.failures else {}
    finally:
        plan.release()
    raise_on_failure(result)
    restated = restated_rows(spark, ctx.lake, ctx.snapshot)
    return {
        "clean_rows": layer.get("rows", {}),
        "clean_layer": layer.get("mode"),
        "rows_checked": result.rows_checked,
        "rows_quarantined": result.rows_quarantined,
        "rows_restated": sum(restated.values()),
        "restated": restated,
        "reasons": result.reasons,
        "data_docs": docs,
    }


def build_marts_step(ctx: RunContext) -> dict[str, Any]:
    from jobs.clean.customer_day_state import read_customer_day
    from jobs.clean.snapshot_inputs import read_clean
    from jobs.metrics.build import build_marts, write_marts
    from jobs.metrics.clv import ClvSettings
    from jobs.metrics.customers import SegmentRules

    spark = _spark()
    inputs = read_clean(spark, ctx.lake, ctx.snapshot)
    p = ctx.params
    rules = SegmentRules(
        lapse_days=p.lapse_days, active_days=p.active_days, development_days=p.development_days,
        decline_gap_factor=p.decline_gap_factor, supporter_min_repeat=p.supporter_min_repeat,
        supporter_min_month_share=p.supporter_min_month_share, partner_max_decile=p.partner_max_decile,
        partner_min_tenure_days=p.partner_min_tenure_days, kotler_profit_threshold=p.kotler_profit_threshold,
        kotler_loyalty_threshold=p.kotler_loyalty_threshold,
    )
    settings = ClvSettings(min_customers=p.clv_min_customers, clv_months=p.clv_months, monthly_discount=p.clv_monthly_discount)
    built = build_marts(inputs, ctx.snapshot, rules, settings, read_customer_day(spark, ctx.lake, ctx.snapshot))
    try:
        counts = write_marts(ctx.lake, ctx.snapshot, built)
    finally:
        built.release()
    fits = {f.model: {"params": f.params, "log_likelihood": f.log_likelihood, "status": f.message} for f in built.fits}
    return {"rows_built": sum(counts.values()), "marts": counts, "clv_fits": fits}


def validate_marts_step(ctx: RunContext) -> dict[str, Any]:
    from jobs.clean.snapshot_inputs import read_clean
    from jobs.metrics.build import read_mart
    from jobs.platform.delta import snapshot_rows
    from jobs.quality.gates import GateFailed, begin_run
    from jobs.quality.mart_gate import GATE, validate_marts
    from jobs.quality.records import store_dq_results
    from schemas.marts import METRIC_MARTS

    spark = _spark()
    begin_run(_run_key(ctx))
    clean = read_clean(spark, ctx.lake, ctx.snapshot)
    marts = {t.name: read_mart(spark, ctx.lake, t.name, ctx.snapshot).cache() for t in METRIC_MARTS}
    try:
        rows = {t.name: snapshot_rows(ctx.lake, ctx.lake.mart_table(t.name), ctx.snapshot) for t in METRIC_MARTS}
        results = validate_marts(marts, clean.orders, ctx.snapshot, rows)
    finally:
        for df in marts.values():
            df.unpersist()
    store_dq_results(_warehouse(ctx), ctx.snapshot, ctx.run_id, GATE, results)
    docs = _data_docs(ctx)
    failures = [r for r in results if not r.success]
    if failures:
        raise GateFailed("validate_marts", failures)
    return {"checks": len(results), "data_docs": docs}


def publish_step(ctx: RunContext) -> dict[str, Any]:
    from jobs.publish.to_warehouse import publish

    rows = publish(_warehouse(ctx), ctx.lake, ctx.snapshot)
    return {"rows_published": sum(rows.values()), "marts": rows}


def report_step(ctx: RunContext) -> dict[str, Any]:
    """The portfolio report of the published snapshot, as one HTML file in the lake."""
    from jobs.report import build_html, write_report

    target = ctx.lake.report_path(ctx.snapshot)
    if ctx.lake.is_s3:
        ctx.lake.write_text(target, build_html(ctx.warehouse_url, ctx.snapshot))
        return {"report": target}
    return {"report": str(write_report(ctx.warehouse_url, ctx.snapshot, Path(target)))}


def export_step(ctx: RunContext) -> dict[str, Any]:
    """The published snapshot to S3 (Parquet + manifest) when an export URL is configured."""
    import os

    from jobs.publish.to_s3 import EXPORT_URL_ENV, export_snapshot

    url = ctx.params.export_url or os.environ.get(EXPORT_URL_ENV)
    if not url:
        return {"skipped": f"no export URL (run parameter export_url or ${EXPORT_URL_ENV})"}
    result = export_snapshot(ctx.warehouse_url, ctx.snapshot, url, run_id=ctx.run_id)
    return {"manifest": result.manifest_url, "objects": len(result.objects), "bytes": result.bytes}


STEP_FUNCTIONS: dict[str, Callable[[RunContext], dict[str, Any]]] = {
    "extract": extract_step,
    "validate_raw": validate_raw_step,
    "build_marts": build_marts_step,
    "validate_marts": validate_marts_step,
    "publish": publish_step,
    "export": export_step,
}


def _permanent_errors() -> tuple[type[BaseException], ...]:
    from jobs.ingest.extract import ForeignSourceError, SchemaDriftError
    from jobs.quality.gates import GateFailed

    return (GateFailed, ForeignSourceError, SchemaDriftError)


# -- running and recording -----------------------------------------------------------------------
def run_step(step: str, ctx: RunContext) -> dict[str, Any]:
    """Run one step, leave its status file (success or error) for the record step, re-raise."""
    if step == STEPS[0]:
        clear_statuses(ctx)  # a new attempt at the whole run: earlier statuses no longer apply
    started = time.perf_counter()
    try:
        checkpoint(f"step_{step}")
        out = STEP_FUNCTIONS[step](ctx)
    except Exception as exc:
        info = {
            "step": step, "ok": False, "seconds": time.perf_counter() - started,
            "error": mask_secrets(f"{type(exc).__name__}: {exc}"),
            "traceback": mask_secrets(traceback.format_exc(limit=5)),
            **getattr(exc, "counts", {}),  # a stopped gate's counts (rows_quarantined) for the record
        }
        _write_status(ctx, step, info)
        raise
    out = {"step": step, "ok": True, "seconds": time.perf_counter() - started, **out}
    _write_status(ctx, step, out)
    log.info("step %s done in %.1f s", step, out["seconds"])
    return out


def _write_status(ctx: RunContext, step: str, info: dict[str, Any]) -> None:
    ctx.lake.write_text(ctx.status_path(step), json.dumps(info, default=str, indent=1, sort_keys=True))


def step_statuses(ctx: RunContext) -> dict[str, dict[str, Any]]:
    out = {}
    for step in STEPS:
        text = ctx.lake.read_text(ctx.status_path(step))
        if text is not None:
            out[step] = json.loads(text)
    return out


def run_outcome(
    statuses: dict[str, dict[str, Any]], task_states: dict[str, str | None] | None = None
) -> tuple[str, str | None, str | None]:
    """(outcome, failed step, message) of a run from its steps' status files and, under Airflow,
    its task states: a task that failed without writing a status (killed, out of memory, timed
    out) is that run's failed step, not a step that never ran."""
    task_states = task_states or {}
    for step in STEPS:
        if step in statuses and not statuses[step]["ok"]:
            return "failed", step, statuses[step]["error"]
        if step not in statuses and task_states.get(step) == "failed":
            return "failed", step, (f"task {step} failed under Airflow without writing its status (killed, out of "
                                    "memory or timed out): see the task's log")
    not_run = [s for s in STEPS if s not in statuses]
    if not_run:
        return "failed", not_run[0], f"step(s) not run: {', '.join(not_run)}"
    return "success", None, None


def record_step(ctx: RunContext, task_states: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Write the marts.pipeline_runs row from the steps' status files (and, under Airflow, the
    run's task states). Never raises for a failed run."""
    from jobs.platform.spark import release_table_caches
    from jobs.publish.runs import RunRecord, record_run
    from jobs.publish.to_warehouse import ensure_marts

    statuses = step_statuses(ctx)
    outcome, failed_step, message = run_outcome(statuses, task_states)
    rec = RunRecord(
        run_id=ctx.run_id,
        snapshot_date=ctx.snapshot,
        outcome=outcome,
        failed_step=failed_step,
        message=message,
        rows_extracted=statuses.get("extract", {}).get("rows_extracted"),
        rows_quarantined=statuses.get("validate_raw", {}).get("rows_quarantined"),
        rows_restated=statuses.get("validate_raw", {}).get("rows_restated"),
        rows_published=statuses.get("publish", {}).get("rows_published"),
        step_seconds={s: statuses[s]["seconds"] for s in STEPS if s in statuses},
    )
    wh = _warehouse(ctx)
    ensure_marts(wh)
    record_run(wh, rec)
    release_table_caches()  # the next run in this process starts with a lean heap
    return {"outcome": outcome, "failed_step": rec.failed_step, "message": rec.message, "step_seconds": rec.step_seconds}


def clear_statuses(ctx: RunContext) -> None:
    for step in STEPS:
        ctx.lake.delete_file(ctx.status_path(step))


def run_all(ctx: RunContext) -> dict[str, Any]:
    """All steps in order without Airflow (benchmarks, debugging); stops at the first failure."""
    try:
        for step in STEPS:
            run_step(step, ctx)
    finally:
        summary = record_step(ctx)
    if summary["outcome"] == "success":
        summary["report"] = report_step(ctx)["report"]
    return summary


# Failures that a retry cannot fix: bad data, a missing lake day, a changed source schema.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = _permanent_errors()
