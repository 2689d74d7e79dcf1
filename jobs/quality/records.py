"""Store quality results and quarantined rows in the warehouse (marts.dq_results, marts.quarantine)."""

from __future__ import annotations

from datetime import date

import pyarrow as pa

from jobs.platform.warehouse import Warehouse, quote_ident
from jobs.quality.gates import CheckResult
from schemas.marts import DQ_RESULTS, MARTS_SCHEMA, QUARANTINE


def store_dq_results(wh: Warehouse, snapshot: date, run_id: str, gate: str, results: list[CheckResult]) -> None:
    """Replace this run's results for one gate (a retry overwrites its own attempt)."""
    table = pa.table(
        {
            "snapshot_date": pa.array([snapshot] * len(results), pa.date32()),
            "run_id": [run_id] * len(results),
            "suite": [r.suite for r in results],
            "expectation": [r.expectation for r in results],
            "success": pa.array([r.success for r in results], pa.bool_()),
            "observed_value": [r.observed_value for r in results],
            "details": [r.details for r in results],
        }
    )
    ph = wh.placeholder
    with wh.transaction() as conn:
        conn.execute(
            f"DELETE FROM {quote_ident(MARTS_SCHEMA, DQ_RESULTS.name)} WHERE run_id = {ph} AND suite LIKE {ph}",
            [run_id, f"{gate}%"],
        )
        wh.load_arrow(conn, MARTS_SCHEMA, DQ_RESULTS, table)


def store_quarantine(wh: Warehouse, snapshot: date, rows: pa.Table) -> int:
    """Replace the snapshot's quarantine rows with the gate's latest findings (the lake's
    quarantine table of the snapshot, as Arrow)."""
    with wh.transaction() as conn:
        conn.execute(
            f"DELETE FROM {quote_ident(MARTS_SCHEMA, QUARANTINE.name)} WHERE snapshot_date = {wh.placeholder}", [snapshot]
        )
        return wh.load_arrow(conn, MARTS_SCHEMA, QUARANTINE, rows) if rows.num_rows else 0
