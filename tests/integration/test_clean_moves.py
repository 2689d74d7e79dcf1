"""The clean layer moved key by key equals the clean layer rebuilt whole, in every direction.

A day's run recomputes only the keys that can differ from the snapshot the tables hold
(jobs.clean.changes) and MERGEs them (jobs.platform.state_tables). The reference here is independent of
that diff: the same snapshot rebuilt whole from the raw history (`prepare(whole=True)`), which
reads every key. The source changes between the days as a real one does: orders placed and
refunded, customers signing up, a customer deleted (a tombstone), a product withdrawn, an old
order's line corrected, and a late row with an old `updated_at`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from deltalake import DeltaTable
from pyspark.testing import assertDataFrameEqual

from devtools.generate import generate
from jobs.clean.layer import prepare
from jobs.ingest.extract import extract
from jobs.platform.lake import Lake
from jobs.platform.state_tables import (
    CUSTOMER_DAY,
    MISSING,
    find_base,
    read_state,
    snapshot_record,
    state_tables,
)
from jobs.platform.warehouse import open_warehouse
from jobs.quality.rules import RuleParams

D1, D2, D3 = date(2024, 3, 31), date(2024, 4, 10), date(2024, 5, 31)
COMPANY_START = date(2024, 1, 1)


def _build(spark: Any, lake: Lake, day: date, whole: bool = False) -> dict[str, Any]:
    plan = prepare(spark, lake, day, RuleParams(day, COMPANY_START), whole=whole)
    try:
        scope = plan.scope.order_ids.count() if plan.scope else None
        out = plan.write()
    finally:
        plan.release()
    record = snapshot_record(lake, day)
    assert record is not None
    return {"mode": out["mode"], "versions": record.versions, "scoped_orders": scope}


def _commit(lake: Lake, path: str, version: int) -> dict[str, Any]:
    history = DeltaTable(lake.delta_uri(path), storage_options=lake.storage_options()).history()
    return next(c for c in history if int(c["version"]) == version)


def _rows(spark: Any, lake: Lake, name: str, version: int) -> Any:
    if version == MISSING:
        return None
    df = read_state(spark, lake, name, version)
    return df.select(*sorted(df.columns))


def _assert_same_state(spark: Any, lake: Lake, moved: dict[str, int], whole: dict[str, int]) -> None:
    for name in state_tables(lake):
        a, b = _rows(spark, lake, name, moved[name]), _rows(spark, lake, name, whole[name])
        if a is None or b is None:
            assert (a is None or a.isEmpty()) and (b is None or b.isEmpty()), name
            continue
        try:  # as multisets of rows, values exact (two scans; a table here is a few thousand rows)
            assertDataFrameEqual(a, b, rtol=0, atol=0)
        except AssertionError as difference:
            raise AssertionError(f"{name}: the moved state differs from the whole rebuild: {difference}") from None


def _change_source(url: str) -> None:
    """Changes dated on D1 + 1 .. D2 (and one late row dated before D1)."""
    wh = open_warehouse(url)
    day = datetime(2024, 4, 5, 12)
    # an old order refunded, a line of an old order corrected
    wh.execute("UPDATE crm.orders SET status = 'refunded', refund_amount = gross_amount - discount_amount, updated_at = ? "
               "WHERE order_id = (SELECT min(order_id) FROM crm.orders WHERE status = 'completed' AND ordered_at < '2024-02-01')", [day])
    order_id, line = wh.query("SELECT order_id, line_number FROM crm.order_items WHERE updated_at < '2024-02-15' "
                              "ORDER BY order_id, line_number LIMIT 1")[0]
    wh.execute("UPDATE crm.order_items SET quantity = quantity + 1, updated_at = ? WHERE order_id = ? AND line_number = ?",
               [day, order_id, line])
    # a customer deleted: their orders and interactions become orphans from then on
    wh.execute("DELETE FROM crm.customers WHERE customer_id = (SELECT min(customer_id) FROM crm.orders WHERE ordered_at < '2024-03-01')")
    # a product withdrawn: its lines become unknown_product
    wh.execute("DELETE FROM crm.products WHERE product_id = (SELECT min(product_id) FROM crm.order_items)")
    # a late commit inside the lookback: updated just before the watermark, captured on the next run
    wh.execute("UPDATE crm.interactions SET satisfaction = 9, updated_at = ? WHERE interaction_id = "
               "(SELECT min(interaction_id) FROM crm.interactions)", [datetime(2024, 3, 31, 23, 50)])


@pytest.fixture
def source(tmp_path: Path) -> str:
    url = f"duckdb:///{tmp_path / 'source.duckdb'}"
    generate(open_warehouse(url), 300, COMPANY_START, D3, seed=11)
    wh = open_warehouse(url)
    # the source as it was at the end of D1: later rows held back until the next extraction
    wh.execute("CREATE SCHEMA hold")
    for t in ("customers", "orders", "order_items", "interactions"):
        wh.execute(f"CREATE TABLE hold.{t} AS SELECT * FROM crm.{t} WHERE updated_at >= ?", [datetime(2024, 4, 1)])
        wh.execute(f"DELETE FROM crm.{t} WHERE updated_at >= ?", [datetime(2024, 4, 1)])
    return url


def _release(url: str) -> None:
    wh = open_warehouse(url)
    keys = {"customers": ("customer_id",), "orders": ("order_id",), "order_items": ("order_id", "line_number"),
            "interactions": ("interaction_id",)}
    for t, key in keys.items():
        match = " AND ".join(f"h.{k} = c.{k}" for k in key)
        wh.execute(f"DELETE FROM crm.{t} c WHERE EXISTS (SELECT 1 FROM hold.{t} h WHERE {match})")
        wh.execute(f"INSERT INTO crm.{t} SELECT * FROM hold.{t}")
    wh.execute("DROP SCHEMA hold CASCADE")


def _forwards(source: str, tmp_path: Path, spark: Any) -> tuple[Lake, date]:
    """D1 whole, then D2 and the day after moved, each equal to its whole rebuild. Returns the
    lake and the last day built."""
    lake, wh = Lake.at(tmp_path / "lake"), open_warehouse(source)
    extract(spark, wh, lake, D1)
    first = _build(spark, lake, D1)
    assert first["mode"] == "whole"  # the lake's first snapshot has no base

    _release(source)
    _change_source(source)
    extract(spark, wh, lake, D2, full_refresh=True)  # a full refresh records the deletions as tombstones
    moved = _build(spark, lake, D2)
    assert moved["mode"] == f"moved from {D1}"
    total_orders = int(wh.scalar("SELECT count(*) FROM crm.orders"))
    assert 0 < moved["scoped_orders"] < total_orders, (moved["scoped_orders"], total_orders)
    whole = _build(spark, lake, D2, whole=True)
    assert whole["mode"] == "whole"
    _assert_same_state(spark, lake, moved["versions"], whole["versions"])

    # the next day: only that day's orders and changes are recomputed
    next_day = D2 + timedelta(days=1)
    day = _build(spark, lake, next_day)
    assert day["mode"] == f"moved from {D2}"
    # at most: the orders with a version (or a line's version) updated on those two days, placed
    # on them, or of a customer who signed up on them (their orders are checked against them)
    conn = duckdb.connect()
    for table in ("orders", "order_items", "customers"):
        conn.register(table, lake.read_arrow(lake.raw_table(table)))
    changed = conn.execute(
        "SELECT count(DISTINCT order_id) FROM (SELECT order_id FROM orders WHERE ordered_at::DATE BETWEEN $a AND $b "
        "OR updated_at::DATE BETWEEN $a AND $b UNION ALL SELECT order_id FROM order_items WHERE updated_at::DATE BETWEEN $a AND $b "
        "UNION ALL SELECT order_id FROM orders WHERE customer_id IN "
        "(SELECT customer_id FROM customers WHERE signup_at::DATE BETWEEN $a AND $b))",
        {"a": D2, "b": next_day},
    ).fetchone()[0]
    assert 0 < day["scoped_orders"] <= changed < total_orders / 10, (day["scoped_orders"], changed, total_orders)
    # customer_day moved with it: one MERGE replacing the rows of the few customers of those orders
    merge = _commit(lake, lake.customer_day_table(), day["versions"][CUSTOMER_DAY])
    assert merge["operation"] == "MERGE", merge
    all_days = read_state(spark, lake, CUSTOMER_DAY, day["versions"][CUSTOMER_DAY]).count()
    assert 0 < int(merge["operationMetrics"]["numTargetRowsInserted"]) < all_days / 5, (merge["operationMetrics"], all_days)
    _assert_same_state(spark, lake, day["versions"], _build(spark, lake, next_day, whole=True)["versions"])
    return lake, next_day


def test_moved_clean_layer_equals_the_whole_rebuild_forwards(source: str, tmp_path: Path, spark: Any) -> None:
    _forwards(source, tmp_path, spark)


@pytest.mark.slow
def test_moved_clean_layer_equals_the_whole_rebuild_backwards_and_after_a_gap(source: str, tmp_path: Path, spark: Any) -> None:
    lake, next_day = _forwards(source, tmp_path, spark)

    # backwards: from the next day back to D1 (the late row, dated inside D1 but captured with D2, is part
    # of D1 now, in both)
    back = _build(spark, lake, D1)
    assert back["mode"] == f"moved from {next_day}"
    again = _build(spark, lake, D1, whole=True)
    _assert_same_state(spark, lake, back["versions"], again["versions"])

    # a gap: from D1 to the end of May, no run in between
    gap = _build(spark, lake, D3)
    assert gap["mode"] == f"moved from {D1}"
    _assert_same_state(spark, lake, gap["versions"], _build(spark, lake, D3, whole=True)["versions"])

    # other rule parameters: no base, the snapshot is rebuilt whole
    plan = prepare(spark, lake, D3, RuleParams(D3, COMPANY_START, max_order_amount=50.0))
    try:
        assert plan.base is None and plan.mode == "whole"
    finally:
        plan.release()
    assert find_base(lake, None) is not None
