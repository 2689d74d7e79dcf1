"""One run of the customer_metrics pipeline, as steps the DAG (or the CLI) calls in order:

extract -> validate_raw -> build_marts -> validate_marts -> publish -> export -> record -> report

The report comes after the record so that it shows the run's own row of marts.pipeline_runs.

Each step reads and writes a fixed place (the lake partition of the snapshot, the warehouse rows of
the snapshot), so any step can be retried or rerun. Each step leaves a small status file in the
lake, which the record step turns into the marts.pipeline_runs row whatever happened.
"""

from __future__ import annotations

import json
import logging
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from jobs.config import RunParams, lake_root, mask_secrets, warehouse_url
from jobs.lake import Lake

log = logging.getLogger(__name__)

STEPS = ("extract", "validate_raw", "build_marts", "validate_marts", "publish", "export")


class LakeIncomplete(RuntimeError):
    """The lake lacks an extraction the snapshot needs."""


@dataclass(frozen=True)
class RunContext:
    snapshot: date
    run_id: str
    warehouse_url: str
    lake_root: str
    params: RunParams = field(default_factory=RunParams)

    @classmethod
    def create(
        cls,
        snapshot: date,
        run_id: str | None = None,
        warehouse: str | None = None,
        lake: str | None = None,
        params: dict[str, Any] | RunParams | None = None,
    ) -> RunContext:
        snapshot = date(snapshot.year, snapshot.month, snapshot.day)  # a plain date, not pendulum's subclass
        return cls(
            snapshot=snapshot,
            run_id=run_id or f"manual__{snapshot.isoformat()}",
            warehouse_url=warehouse_url(warehouse),
            lake_root=lake_root(lake),
            params=params if isinstance(params, RunParams) else RunParams.from_mapping(params),
        )

    @property
    def lake(self) -> Lake:
        return Lake.at(self.lake_root)

    def status_dir(self) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.run_id)
        return self.lake.run_dir(self.snapshot) / safe


# -- step bodies ---------------------------------------------------------------------------------
def _warehouse(ctx: RunContext) -> Any:
    from jobs.warehouse import open_warehouse

    return open_warehouse(ctx.warehouse_url)


def _spark() -> Any:
    from jobs.spark import get_spark

    return get_spark()


def _rule_params(ctx: RunContext, spark: Any) -> Any:
    from jobs.quality.rules import RuleParams
    from jobs.snapshot_inputs import company_start_default, read_raw

    missing = ctx.lake.missing_days(ctx.snapshot)
    if missing:
        raise LakeIncomplete(
            f"the lake at {ctx.lake_root} has no complete extraction for {len(missing)} day(s) up to "
            f"{ctx.snapshot} (first {missing[0]}, last {missing[-1]}). Run them first: "
            f"crm-metrics backfill --from {missing[0]} --to {missing[-1]}, or run this date with full_refresh=true."
        )
    start = ctx.params.company_start
    if start:
        company_start = date.fromisoformat(start)
    else:
        company_start = company_start_default(read_raw(spark, ctx.lake, "customers", ctx.snapshot, exact=True)) or date(1900, 1, 1)
    return RuleParams(ctx.snapshot, company_start, ctx.params.max_order_amount)


def _run_key(ctx: RunContext) -> str:
    """One run of one lake: its validation results make up the lake's Data Docs."""
    return f"{ctx.lake_root}|{ctx.snapshot.isoformat()}|{ctx.run_id}"


def extract_step(ctx: RunContext) -> dict[str, Any]:
    from jobs.extract import extract

    res = extract(_warehouse(ctx), ctx.lake, ctx.snapshot, full_refresh=ctx.params.full_refresh)
    return {"rows_extracted": res.total_rows, "rows": res.rows, "full_refresh": res.full_refresh, "warnings": res.warnings}


def validate_raw_step(ctx: RunContext) -> dict[str, Any]:
    from jobs.clean_layer import prepare
    from jobs.publish import ensure_marts
    from jobs.quality.gates import begin_run, build_data_docs
    from jobs.quality.raw_gate import GATE, raise_on_failure, validate_raw
    from jobs.quality.records import store_dq_results, store_quarantine

    spark = _spark()
    begin_run(_run_key(ctx))
    params = _rule_params(ctx, spark)
    coverage = ctx.lake.coverage().get(ctx.snapshot, {})
    full = bool(coverage.get("full_refresh", coverage.get("window_start", "") is None))
    plan = prepare(spark, ctx.lake, ctx.snapshot, params, full=full)
    inputs = plan.inputs.persist()
    p = ctx.params
    result, quarantined = validate_raw(
        inputs, ctx.lake, ctx.snapshot, ctx.run_id, full=full, newest_order_update=plan.newest_order_update,
        quarantine_max_rate=p.quarantine_max_rate, row_count_min_ratio=p.row_count_min_ratio,
        row_count_max_ratio=p.row_count_max_ratio, freshness_days=p.freshness_days,
    )
    wh = _warehouse(ctx)
    ensure_marts(wh)
    files: list[Path] = []
    target = ctx.lake.quarantine_partition(ctx.snapshot)
    if quarantined is not None and result.rows_quarantined:
        staging = ctx.lake.staging(target.parent)
        try:
            quarantined.coalesce(1).write.mode("overwrite").parquet(str(staging / "data"))
            ctx.lake.replace(staging / "data", target)
        finally:
            ctx.lake.clean_staging(target.parent)
        from jobs.publish import parquet_files

        files = parquet_files(target)
    else:
        ctx.lake.remove(target)
    store_quarantine(wh, ctx.snapshot, files)
    store_dq_results(wh, ctx.snapshot, ctx.run_id, GATE, result.results)
    docs = build_data_docs(ctx.lake.quality_dir() / "data_docs")
    if docs:
        log.info("Great Expectations Data Docs: %s", docs)
    if result.rows_quarantined:
        log.warning("quarantined %s of %s rows: %s (see marts.quarantine)", result.rows_quarantined, result.rows_checked, result.reasons)
    try:
        layer = plan.write() if not result.failures else {}
    finally:
        plan.release()
    raise_on_failure(result)
    return {
        "clean_rows": layer.get("rows", {}),
        "clean_layer": {k: layer[k] for k in ("mode", "why_full", "rebuilt_months")} if layer else None,
        "rows_checked": result.rows_checked,
        "rows_quarantined": result.rows_quarantined,
        "reasons": result.reasons,
        "data_docs": str(docs) if docs else None,
    }


def build_marts_step(ctx: RunContext) -> dict[str, Any]:
    from jobs.customer_day_layer import update_customer_day
    from jobs.metrics.clv import ClvSettings
    from jobs.metrics.customers import SegmentRules
    from jobs.snapshot_inputs import read_clean
    from jobs.transform import build_marts, write_marts

    spark = _spark()
    inputs = read_clean(spark, ctx.lake, ctx.snapshot)
    days, days_info = update_customer_day(spark, ctx.lake, ctx.snapshot)
    p = ctx.params
    rules = SegmentRules(
        lapse_days=p.lapse_days, active_days=p.active_days, development_days=p.development_days,
        decline_gap_factor=p.decline_gap_factor, supporter_min_repeat=p.supporter_min_repeat,
        supporter_min_month_share=p.supporter_min_month_share, partner_max_decile=p.partner_max_decile,
        partner_min_tenure_days=p.partner_min_tenure_days, kotler_profit_threshold=p.kotler_profit_threshold,
        kotler_loyalty_threshold=p.kotler_loyalty_threshold,
    )
    settings = ClvSettings(min_customers=p.clv_min_customers, clv_months=p.clv_months, monthly_discount=p.clv_monthly_discount)
    built = build_marts(inputs, ctx.snapshot, rules, settings, days=days)
    try:
        counts = write_marts(ctx.lake, ctx.snapshot, built)
    finally:
        built.release()
    fits = {f.model: {"params": f.params, "log_likelihood": f.log_likelihood, "status": f.message} for f in built.fits}
    return {"rows_built": sum(counts.values()), "marts": counts, "clv_fits": fits, "customer_day": days_info}


def validate_marts_step(ctx: RunContext) -> dict[str, Any]:
    from jobs.quality.gates import GateFailed, begin_run, build_data_docs
    from jobs.quality.mart_gate import GATE, validate_marts
    from jobs.quality.records import store_dq_results
    from jobs.snapshot_inputs import read_clean
    from jobs.transform import parquet_rows, read_mart
    from schemas.marts import METRIC_MARTS

    spark = _spark()
    begin_run(_run_key(ctx))
    clean = read_clean(spark, ctx.lake, ctx.snapshot)
    marts = {t.name: read_mart(spark, ctx.lake, t.name, ctx.snapshot).cache() for t in METRIC_MARTS}
    try:
        rows = {t.name: parquet_rows(ctx.lake.mart_partition(t.name, ctx.snapshot)) for t in METRIC_MARTS}
        results = validate_marts(marts, clean.orders, ctx.snapshot, rows)
    finally:
        for df in marts.values():
            df.unpersist()
    store_dq_results(_warehouse(ctx), ctx.snapshot, ctx.run_id, GATE, results)
    docs = build_data_docs(ctx.lake.quality_dir() / "data_docs")
    failures = [r for r in results if not r.success]
    if failures:
        raise GateFailed("validate_marts", failures)
    return {"checks": len(results), "data_docs": str(docs) if docs else None}


def publish_step(ctx: RunContext) -> dict[str, Any]:
    from jobs.publish import publish

    rows = publish(_warehouse(ctx), ctx.lake, ctx.snapshot)
    return {"rows_published": sum(rows.values()), "marts": rows}


def report_step(ctx: RunContext) -> dict[str, Any]:
    """The portfolio report of the published snapshot, as one HTML file in the lake."""
    from jobs.report import write_report

    path = write_report(ctx.warehouse_url, ctx.snapshot, ctx.lake.report_path(ctx.snapshot))
    return {"report": str(path)}


def export_step(ctx: RunContext) -> dict[str, Any]:
    """The published snapshot to S3 (Parquet + manifest) when an export URL is configured."""
    import os

    from jobs.export_s3 import EXPORT_URL_ENV, export_snapshot

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
    from jobs.extract import SchemaDriftError
    from jobs.quality.gates import GateFailed

    return (GateFailed, LakeIncomplete, SchemaDriftError)


# -- running and recording -----------------------------------------------------------------------
def run_step(step: str, ctx: RunContext) -> dict[str, Any]:
    """Run one step, leave its status file (success or error) for the record step, re-raise."""
    from jobs.faults import maybe_fail

    if step == STEPS[0]:
        clear_statuses(ctx)  # a new attempt at the whole run: earlier statuses no longer apply
    status = ctx.status_dir()
    status.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        maybe_fail(f"step_{step}")
        out = STEP_FUNCTIONS[step](ctx)
    except Exception as exc:
        info = {
            "step": step, "ok": False, "seconds": time.perf_counter() - started,
            "error": mask_secrets(f"{type(exc).__name__}: {exc}"),
            "traceback": mask_secrets(traceback.format_exc(limit=5)),
        }
        _write_status(status / f"{step}.json", info)
        raise
    out = {"step": step, "ok": True, "seconds": time.perf_counter() - started, **out}
    _write_status(status / f"{step}.json", out)
    log.info("step %s done in %.1f s", step, out["seconds"])
    return out


def _write_status(path: Path, info: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, default=str, indent=1, sort_keys=True))
    tmp.replace(path)


def step_statuses(ctx: RunContext) -> dict[str, dict[str, Any]]:
    out = {}
    for step in STEPS:
        f = ctx.status_dir() / f"{step}.json"
        if f.exists():
            out[step] = json.loads(f.read_text())
    return out


def record_step(ctx: RunContext) -> dict[str, Any]:
    """Write the marts.pipeline_runs row from the steps' status files. Never raises for a failed run."""
    from jobs.publish import ensure_marts
    from jobs.runs import RunRecord, record_run

    statuses = step_statuses(ctx)
    failed = next((s for s in STEPS if s in statuses and not statuses[s]["ok"]), None)
    not_run = [s for s in STEPS if s not in statuses]
    outcome = "success" if failed is None and not not_run else "failed"
    rec = RunRecord(
        run_id=ctx.run_id,
        snapshot_date=ctx.snapshot,
        outcome=outcome,
        failed_step=failed or (not_run[0] if not_run else None),
        message=statuses[failed]["error"] if failed else (f"step(s) not run: {', '.join(not_run)}" if not_run else None),
        rows_extracted=statuses.get("extract", {}).get("rows_extracted"),
        rows_quarantined=statuses.get("validate_raw", {}).get("rows_quarantined"),
        rows_published=statuses.get("publish", {}).get("rows_published"),
        step_seconds={s: statuses[s]["seconds"] for s in STEPS if s in statuses},
    )
    wh = _warehouse(ctx)
    ensure_marts(wh)
    record_run(wh, rec)
    return {"outcome": outcome, "failed_step": rec.failed_step, "message": rec.message, "step_seconds": rec.step_seconds}


def clear_statuses(ctx: RunContext) -> None:
    for step in STEPS:
        (ctx.status_dir() / f"{step}.json").unlink(missing_ok=True)


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
