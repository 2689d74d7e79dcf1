"""Hand-written bad and odd input, through the whole pipeline: each run completes with numbers
checked by hand, or fails with a message a user can act on. Nothing is dropped silently: every
source order is either in the marts or in marts.quarantine with a reason.

(The generator's own defect kinds are covered in test_quality.py.)
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from jobs.ingest.importer import ImportOptions, TransactionFileError, import_transactions
from jobs.pipeline.steps import RunContext, run_all
from jobs.platform.warehouse import open_warehouse
from jobs.quality.gates import GateFailed

SNAPSHOT = date(2024, 3, 31)
UNICODE_ID = "Ünïcødé-客户-1"
# 20 ordinary customers keep the quarantine rate of the hand-written defects meaningful
ORDINARY = "".join(f"C{n:02d},2024-01-{n + 1:02d},{n}.25\n" for n in range(1, 21))
CORPUS = (
    "customer_id,date,amount\n"
    f"{UNICODE_ID},2024-01-05,10.00\n"
    f"{UNICODE_ID},2024-02-10,20.50\n"
    "REFUND-ONLY,2024-01-07,15.00\n"
    "BIG,2024-01-08,9999999999.99\n"
    "BIG,2024-03-01,0.01\n"
    "ORPHAN,2024-01-09,5.00\n" + ORDINARY
)


def _run(url: str, tmp_path: Path, **params: object) -> dict[str, object]:
    return run_all(RunContext.create(SNAPSHOT, warehouse=url, lake=str(tmp_path / "lake"), params=dict(params)))


def _import(url: str, tmp_path: Path, text: str) -> None:
    path = tmp_path / "transactions.csv"
    path.write_text(text, encoding="utf-8")
    import_transactions(open_warehouse(url), path, ImportOptions())


@pytest.mark.slow
def test_hand_written_corpus_completes_with_exact_numbers(tmp_path: Path, spark: object) -> None:
    url = f"duckdb:///{tmp_path}/w.duckdb"
    _import(url, tmp_path, CORPUS)
    wh = open_warehouse(url)
    # the refund arrives later as a new version of the order; the orphan's customer row is gone
    wh.execute(
        "UPDATE crm.orders SET status = 'refunded', refund_amount = gross_amount - discount_amount, "
        "updated_at = TIMESTAMP '2024-01-20 10:00:00' WHERE customer_id = 'REFUND-ONLY'"
    )
    wh.execute("DELETE FROM crm.customers WHERE customer_id = 'ORPHAN'")
    orphan_order = wh.scalar("SELECT order_id FROM crm.orders WHERE customer_id = 'ORPHAN'")

    summary = _run(url, tmp_path, max_order_amount=1e11, quarantine_max_rate=0.2, freshness_days=60)
    assert summary["outcome"] == "success", summary

    def profit(customer: str) -> tuple[object, ...]:
        return wh.query(
            "SELECT revenue, refunds, orders FROM marts.customer_profitability WHERE snapshot_date = ? AND customer_id = ?",
            [SNAPSHOT, customer],
        )[0]

    assert profit(UNICODE_ID) == (Decimal("30.50"), Decimal("0.00"), 2)
    assert profit("REFUND-ONLY") == (Decimal("0.00"), Decimal("15.00"), 1)
    assert profit("BIG") == (Decimal("10000000000.00"), Decimal("0.00"), 2)  # exact to the cent
    frequency = wh.scalar("SELECT frequency FROM marts.customer_rfm WHERE snapshot_date = ? AND customer_id = ?", [SNAPSHOT, UNICODE_ID])
    assert frequency == 1
    # the orphan is quarantined with its reason, not lost
    reasons = wh.query("SELECT source_table, row_key, reason_code FROM marts.quarantine WHERE snapshot_date = ?", [SNAPSHOT])
    assert ("orders", orphan_order, "orphan_customer_id") in reasons
    # portfolio revenue = the file's total, minus the refund, minus the quarantined orphan (by hand)
    ordinary = sum(Decimal(f"{n}.25") for n in range(1, 21))
    expected = Decimal("30.50") + Decimal("10000000000.00") + ordinary
    assert wh.scalar("SELECT revenue FROM marts.portfolio_summary WHERE snapshot_date = ?", [SNAPSHOT]) == expected
    # every source order is accounted for: published in a customer's orders, or quarantined
    published = wh.scalar("SELECT sum(orders) FROM marts.customer_profitability WHERE snapshot_date = ?", [SNAPSHOT])
    quarantined = wh.scalar(
        "SELECT count(DISTINCT row_key) FROM marts.quarantine WHERE snapshot_date = ? AND source_table = 'orders'", [SNAPSHOT]
    )
    assert published + quarantined == wh.scalar("SELECT count(*) FROM crm.orders")


@pytest.mark.slow
def test_a_single_customer_completes_and_says_the_clv_model_was_not_fitted(tmp_path: Path, spark: object) -> None:
    url = f"duckdb:///{tmp_path}/w.duckdb"
    _import(url, tmp_path, "customer_id,date,amount\nSOLO,2024-01-15,42.00\nSOLO,2024-02-15,8.00\n")
    assert _run(url, tmp_path, freshness_days=60)["outcome"] == "success"
    wh = open_warehouse(url)
    row = wh.query(
        "SELECT customers, revenue, top20_revenue_share FROM marts.portfolio_summary WHERE snapshot_date = ?", [SNAPSHOT]
    )[0]
    assert row == (1, Decimal("50.00"), pytest.approx(1.0))
    statuses = {r[0] for r in wh.query("SELECT status FROM marts.clv_model_fit WHERE snapshot_date = ?", [SNAPSHOT])}
    assert statuses and all(s != "fitted" for s in statuses), statuses


@pytest.mark.slow
def test_an_empty_source_fails_with_a_message_naming_the_table(tmp_path: Path, spark: object) -> None:
    """Customers but no orders at all: nothing to compute, the gate says which table and why,
    nothing is published and the failed run is recorded."""
    url = f"duckdb:///{tmp_path}/w.duckdb"
    _import(url, tmp_path, "customer_id,date,amount\nX,2024-01-15,1.00\n")
    wh = open_warehouse(url)
    wh.execute("DELETE FROM crm.order_items")
    wh.execute("DELETE FROM crm.orders")
    with pytest.raises(GateFailed, match=r"raw_orders: freshness.*newest orders.updated_at None"):
        _run(url, tmp_path)
    assert wh.query("SELECT outcome, failed_step FROM marts.pipeline_runs WHERE snapshot_date = ?", [SNAPSHOT]) == [
        ("failed", "validate_raw")
    ]
    assert wh.scalar("SELECT count(*) FROM marts.customer_profitability") == 0


def test_an_amount_beyond_the_source_precision_is_refused_with_its_line(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/w.duckdb"
    with pytest.raises(TransactionFileError, match=r"line 2, column 'amount': '99999999999999.99' is too large"):
        _import(url, tmp_path, "customer_id,date,amount\nHUGE,2024-01-15,99999999999999.99\n")
