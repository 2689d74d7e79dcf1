"""marts.pipeline_runs: one row per run, written by the last task whatever happened before."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pyarrow as pa

from jobs.platform.config import mask_secrets
from jobs.platform.warehouse import Warehouse, quote_ident
from schemas.marts import MARTS_SCHEMA, PIPELINE_RUNS


@dataclass
class RunRecord:
    run_id: str
    snapshot_date: date
    outcome: str
    failed_step: str | None = None
    message: str | None = None
    rows_extracted: int | None = None
    rows_quarantined: int | None = None
    rows_restated: int | None = None
    rows_published: int | None = None
    step_seconds: dict[str, float] = field(default_factory=dict)


def record_run(wh: Warehouse, rec: RunRecord) -> None:
    """Upsert the run's row (a retried record task overwrites its own row)."""
    row = pa.table(
        {
            "run_id": [rec.run_id],
            "snapshot_date": pa.array([rec.snapshot_date], pa.date32()),
            "outcome": [rec.outcome],
            "failed_step": [rec.failed_step],
            "message": [mask_secrets(rec.message)[:4000] if rec.message else None],
            "rows_extracted": pa.array([rec.rows_extracted], pa.int64()),
            "rows_quarantined": pa.array([rec.rows_quarantined], pa.int64()),
            "rows_restated": pa.array([rec.rows_restated], pa.int64()),
            "rows_published": pa.array([rec.rows_published], pa.int64()),
            "step_seconds": [json.dumps({k: round(v, 3) for k, v in rec.step_seconds.items()}, sort_keys=True)],
            # informational only; no metric depends on it
            "recorded_at": pa.array([datetime.now(UTC).replace(tzinfo=None)], pa.timestamp("us")),  # clock-ok
        }
    )
    with wh.transaction() as conn:
        conn.execute(
            f"DELETE FROM {quote_ident(MARTS_SCHEMA, PIPELINE_RUNS.name)} WHERE run_id = {wh.placeholder}", [rec.run_id]
        )
        wh.load_arrow(conn, MARTS_SCHEMA, PIPELINE_RUNS, row)
