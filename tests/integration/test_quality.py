"""The quality gates on generated dirty data: every injected defect is caught with its reason, a
few defects are quarantined exactly, too many stop the run before anything is published."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from devtools.generate import generate
from jobs.pipeline.steps import RunContext, run_all
from jobs.platform.warehouse import open_warehouse
from jobs.quality.gates import GateFailed

START, END = date(2023, 1, 1), date(2023, 6, 30)
# generator defect kind -> the reason code the gate must give (late updates are no defect to
# quarantine: the newer version of the order is simply the one counted)
EXPECTED_REASON = {
    "duplicate_order_id": "duplicate_order_id",
    "null_customer_id": "null_customer_id",
    "negative_amount": "negative_amount",
    "absurd_amount": "absurd_amount",
    "orphan_customer_id": "orphan_customer_id",
    "future_timestamp": "future_timestamp",
    "before_company_start": "before_company_start",
    "unknown_currency": "unknown_currency",
}


def test_every_injected_defect_is_quarantined_with_its_reason(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/dirty.duckdb"
    generate(open_warehouse(url), 2000, START, END, seed=21, dirty=0.004)
    summary = run_all(RunContext.create(END, warehouse=url, lake=str(tmp_path / "lake")))
    assert summary["outcome"] == "success", summary
    wh = open_warehouse(url)
    injected = wh.query("SELECT defect_kind, row_key FROM crm.injected_defects")
    assert {k for k, _ in injected} >= set(EXPECTED_REASON)
    quarantined = set(wh.query("SELECT row_key, reason_code FROM marts.quarantine WHERE source_table = 'orders'"))
    for kind, key in injected:
        if kind in EXPECTED_REASON:
            assert (key, EXPECTED_REASON[kind]) in quarantined, (kind, key)
    # exactly the damaged orders, nothing else
    damaged = {key for kind, key in injected if kind in EXPECTED_REASON}
    assert {key for key, _ in quarantined} == damaged
    # their lines are set aside too, with a reason, never silently dropped
    lines = set(wh.query("SELECT DISTINCT split_part(row_key, ':', 1) FROM marts.quarantine WHERE source_table = 'order_items'"))
    assert {k for (k,) in lines} <= damaged and lines
    # late updates: counted once, in their latest version
    for key in [k for kind, k in injected if kind == "late_update"]:
        status = wh.scalar("SELECT status FROM crm.orders WHERE order_id = ?", [key])
        assert status in ("refunded", "partially_refunded")
    assert wh.scalar("SELECT rows_quarantined FROM marts.pipeline_runs") == wh.scalar(
        "SELECT count(*) FROM (SELECT DISTINCT source_table, row_json FROM marts.quarantine)"
    )
    results = wh.query("SELECT suite, success FROM marts.dq_results WHERE suite = 'raw_orders'")
    assert results and all(ok for _, ok in results)
    assert (tmp_path / "lake" / "quality" / "data_docs" / "index.html").exists()


@pytest.mark.slow
def test_too_many_defects_stop_the_run_and_the_marts_keep_the_previous_snapshot(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/w.duckdb"
    lake = str(tmp_path / "lake")
    generate(open_warehouse(url), 1500, START, END, seed=4)
    day_before = END - timedelta(days=1)
    assert run_all(RunContext.create(day_before, warehouse=url, lake=lake))["outcome"] == "success"
    wh = open_warehouse(url)
    before = wh.query("SELECT * FROM marts.portfolio_summary")
    # 100 orders arrive on the last day with unknown currencies (written after every row the first
    # run captured, so the next extraction reads them): far above 1% of the day's rows
    wh.execute(
        "INSERT INTO crm.orders SELECT 'BAD-' || order_id, customer_id, TIMESTAMP '2023-06-30 10:00:00', channel, status, "
        "'XXX', gross_amount, discount_amount, refund_amount, shipping_cost, TIMESTAMP '2023-06-30 23:30:00' "
        "FROM crm.orders ORDER BY order_id LIMIT 100"
    )
    with pytest.raises(GateFailed) as failure:
        run_all(RunContext.create(END, warehouse=url, lake=lake))
    message = str(failure.value)
    assert "raw_orders" in message and "quarantined share" in message and "unknown_currency" in message
    assert "BAD-" in message  # examples are shown
    assert wh.query("SELECT * FROM marts.portfolio_summary") == before
    assert wh.scalar("SELECT max(snapshot_date) FROM marts.customer_rfm_latest") == day_before
    assert wh.scalar("SELECT count(*) FROM marts.quarantine WHERE snapshot_date = ? AND reason_code = 'unknown_currency'", [END]) == 100
    outcome, step, recorded, quarantined = wh.query(
        "SELECT outcome, failed_step, message, rows_quarantined FROM marts.pipeline_runs WHERE snapshot_date = ?", [END]
    )[0]
    assert (outcome, step) == ("failed", "validate_raw") and "unknown_currency" in recorded
    # the failed run's record counts what it set aside, as marts.quarantine holds it
    assert quarantined == wh.scalar("SELECT count(*) FROM marts.quarantine WHERE snapshot_date = ?", [END]) >= 100
