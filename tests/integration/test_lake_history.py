"""The lake's history guarantees, with the real extraction and (for the slow tests) the real pipeline.

- a rerun of a published date gives back its first publication, whatever was captured since;
- a backfill of a date before the lake's install counts every order placed by then (restated
  from the versions captured later) and says how many rows it restated;
- forwards and backwards runs of the same days give the same marts, and a month-end snapshot
  after a month without runs succeeds;
- extraction: reruns add nothing, deletions become tombstones, late commits inside the lookback
  are caught, and a lake refuses a second source.

The generated sources are small (500 customers over six months). To make "the source as it was
on day X" the tests hold back, in a schema `hold` of the same DuckDB file, every row written after
X (`_hold_back`), leaving the earlier version of the rows that existed by then (an order refunded
later is back to `completed`); `_release` puts the held rows back, so the next run finds them as
that day's changes.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from devtools.generate import generate
from jobs.clean.snapshot_inputs import latest_versions, load_inputs, read_raw
from jobs.ingest.extract import ForeignSourceError, extract, source_identity
from jobs.pipeline.steps import RunContext, run_all
from jobs.platform.lake import Lake
from jobs.platform.warehouse import open_warehouse
from jobs.quality.rules import RuleParams
from tests.integration.conftest import mart_rows

START, END = date(2024, 2, 1), date(2024, 7, 31)
CUSTOMERS, SEED = 500, 5
HELD = ("customers", "orders", "order_items", "interactions")
KEYS = {"customers": ("customer_id",), "orders": ("order_id",), "order_items": ("order_id", "line_number"),
        "interactions": ("interaction_id",)}


# -- helpers -------------------------------------------------------------------------------------
def _generate(path: Path, customers: int = CUSTOMERS, start: date = START, end: date = END) -> str:
    url = f"duckdb:///{path}"
    generate(open_warehouse(url), customers, start, end, seed=SEED)
    return url


def _hold_back(url: str, cutoff: datetime) -> int:
    """Make the source what it was just before `cutoff`: move every row written at or after it to
    schema `hold` and put back, for a row whose entity existed before the cutoff, the version it
    had then (updated at its event time; an order refunded later not yet refunded). Returns the
    rows held (each one a version the lake has not seen once released)."""
    wh = open_warehouse(url)
    wh.execute("CREATE SCHEMA hold")
    for t in HELD:
        wh.execute(f"CREATE TABLE hold.{t} AS SELECT * FROM crm.{t} WHERE updated_at >= ?", [cutoff])
        wh.execute(f"DELETE FROM crm.{t} WHERE updated_at >= ?", [cutoff])
    late = "status IN ('refunded', 'partially_refunded')"
    wh.execute("INSERT INTO crm.customers SELECT * REPLACE (signup_at AS updated_at) FROM hold.customers WHERE signup_at < ?", [cutoff])
    wh.execute("INSERT INTO crm.interactions SELECT * REPLACE (occurred_at AS updated_at) FROM hold.interactions "
               "WHERE occurred_at < ?", [cutoff])
    wh.execute(
        f"INSERT INTO crm.orders SELECT * REPLACE (CASE WHEN {late} THEN 'completed' ELSE status END AS status, "
        f"CASE WHEN {late} THEN 0 ELSE refund_amount END AS refund_amount, ordered_at AS updated_at) "
        "FROM hold.orders WHERE ordered_at < ?", [cutoff],
    )
    wh.execute(
        "INSERT INTO crm.order_items SELECT i.* REPLACE (o.ordered_at AS updated_at) FROM hold.order_items i "
        "JOIN crm.orders o ON o.order_id = i.order_id WHERE o.ordered_at < ?", [cutoff],
    )
    return sum(int(wh.scalar(f"SELECT count(*) FROM hold.{t}")) for t in HELD)


def _release(url: str) -> None:
    """Put the held rows back in place of their earlier versions."""
    wh = open_warehouse(url)
    for t in HELD:
        match = " AND ".join(f"h.{k} = c.{k}" for k in KEYS[t])
        wh.execute(f"DELETE FROM crm.{t} c WHERE EXISTS (SELECT 1 FROM hold.{t} h WHERE {match})")
        wh.execute(f"INSERT INTO crm.{t} SELECT * FROM hold.{t}")
    wh.execute("DROP SCHEMA hold CASCADE")


def _run(url: str, lake: Path, day: date, **params: Any) -> dict[str, Any]:
    summary = run_all(RunContext.create(day, warehouse=url, lake=str(lake), params=params or None))
    assert summary["outcome"] == "success", summary
    return summary


def _recorded(url: str, day: date) -> dict[str, Any]:
    """The marts.pipeline_runs row of the run of `day` (run id manual__<day>)."""
    cols = ("outcome", "rows_extracted", "rows_quarantined", "rows_restated")
    row = open_warehouse(url).query(f"SELECT {', '.join(cols)} FROM marts.pipeline_runs WHERE run_id = ?", [f"manual__{day}"])
    assert len(row) == 1, row
    return dict(zip(cols, row[0], strict=True))


def _profit_row(url: str, day: date, customer: str) -> tuple[Any, ...]:
    rows = open_warehouse(url).query(
        "SELECT acquisition_channel, orders, purchase_orders, revenue, refunds FROM marts.customer_profitability "
        "WHERE snapshot_date = ? AND customer_id = ?", [day, customer],
    )
    assert len(rows) == 1, (day, customer, rows)
    return rows[0]


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


# -- 1. a rerun gives back the first publication --------------------------------------------------
# slow: `make test` checks the same guarantee under the scheduler, on an S3 lake (test_scheduler.py);
# this one adds the held-back source (every version of the next day unseen at D) and its counts
@pytest.mark.slow
def test_rerun_of_a_published_date_keeps_its_history(tmp_path: Path, spark: Any) -> None:
    d, nxt = date(2024, 7, 30), date(2024, 7, 31)  # nxt = END: the generator's last day
    url, lake = _generate(tmp_path / "w.duckdb"), tmp_path / "lake"
    held = _hold_back(url, _day_start(nxt))  # the source as it was at the end of D
    assert held > 0
    wh = open_warehouse(url)
    busy = "SELECT customer_id FROM hold.orders UNION SELECT customer_id FROM hold.interactions"
    # an order placed and last written well before D, of a customer with nothing else on D+1
    oid, buyer, paid = wh.query(
        "SELECT order_id, customer_id, gross_amount - discount_amount FROM crm.orders WHERE status = 'completed' "
        f"AND updated_at < TIMESTAMP '2024-07-01' AND gross_amount - discount_amount > 0 AND customer_id NOT IN ({busy}) "
        "ORDER BY order_id LIMIT 1"
    )[0]
    # another customer (signed up before D) whose acquisition channel is corrected on D+1
    moved, old_channel = wh.query(
        f"SELECT customer_id, acquisition_channel FROM crm.customers WHERE customer_id NOT IN ({busy}) "
        "AND customer_id <> ? AND signup_at < TIMESTAMP '2024-07-01' ORDER BY customer_id LIMIT 1", [buyer]
    )[0]
    new_channel = "referral" if old_channel != "referral" else "organic"

    _run(url, lake, d)
    first = mart_rows(url, d)
    assert first["customer_profitability"] and len(first["portfolio_summary"]) == 1
    buyer_d = _profit_row(url, d, buyer)
    assert _profit_row(url, d, moved)[0] == old_channel

    # D+1: the day's rows arrive, the order is refunded in full, the customer's channel changes
    _release(url)
    wh.execute("UPDATE crm.orders SET status = 'refunded', refund_amount = gross_amount - discount_amount, "
               "updated_at = TIMESTAMP '2024-07-31 10:00:00' WHERE order_id = ?", [oid])
    wh.execute("UPDATE crm.customers SET acquisition_channel = ?, updated_at = TIMESTAMP '2024-07-31 11:00:00' "
               "WHERE customer_id = ?", [new_channel, moved])
    _run(url, lake, nxt)
    # every held row is a new version, plus the order's and the customer's new versions
    assert _recorded(url, nxt)["rows_extracted"] == held + 2
    # D+1 sees the change: same orders, one purchase fewer (a full refund is not a purchase),
    # revenue down by what was paid, refunds up by it
    channel, orders, purchases, revenue, refunds = buyer_d
    assert _profit_row(url, nxt, buyer) == (channel, orders, purchases - 1, revenue - paid, refunds + paid)
    assert _profit_row(url, nxt, moved)[0] == new_channel

    # rerun D: nothing new to extract, and every mart row of D is its first publication
    _run(url, lake, d)
    assert _recorded(url, d)["rows_extracted"] == 0
    again = mart_rows(url, d)
    assert again == first


# -- 2. a backfill after the install restates from later versions --------------------------------
@pytest.mark.slow
def test_backfill_before_the_install_counts_every_order_placed_by_then(tmp_path: Path, spark: Any) -> None:
    install, d = END, date(2024, 6, 15)
    url, lake = _generate(tmp_path / "w.duckdb"), tmp_path / "lake"
    wh = open_warehouse(url)
    # an order placed in May whose only version the lake will ever see is written after D
    oid, buyer = wh.query(
        "SELECT order_id, customer_id FROM crm.orders WHERE ordered_at < TIMESTAMP '2024-05-15' "
        "AND updated_at < TIMESTAMP '2024-05-15' AND status = 'completed' ORDER BY order_id LIMIT 1"
    )[0]
    wh.execute("UPDATE crm.orders SET updated_at = TIMESTAMP '2024-07-10 12:00:00' WHERE order_id = ?", [oid])

    _run(url, lake, install)  # the first run: full extraction
    assert _recorded(url, install)["rows_restated"] == 0  # nothing was written after the install's day
    installed = mart_rows(url, install)
    _run(url, lake, d)  # default parameters: both gates pass

    end_d = _day_start(d + timedelta(days=1))
    # what D must count, straight from the source (one version per row: the lake has no other)
    placed = wh.scalar("SELECT count(*) FROM crm.orders WHERE ordered_at < ?", [end_d])
    purchases = wh.scalar("SELECT count(*) FROM crm.orders WHERE ordered_at < ? AND status NOT IN ('cancelled', 'refunded')", [end_d])
    revenue = wh.scalar("SELECT sum(gross_amount - discount_amount - refund_amount) FROM crm.orders "
                        "WHERE ordered_at < ? AND status <> 'cancelled'", [end_d])
    signed_up = wh.scalar("SELECT count(*) FROM crm.customers WHERE signup_at < ?", [end_d])
    buyer_orders = wh.scalar("SELECT count(*) FROM crm.orders WHERE customer_id = ? AND ordered_at < ?", [buyer, end_d])
    # rows of D known only from a version written after D: orders and interactions that existed by
    # D but were written later, order lines of orders placed by D written later
    restated = (
        wh.scalar("SELECT count(*) FROM crm.orders WHERE ordered_at < ? AND updated_at >= ?", [end_d, end_d])
        + wh.scalar("SELECT count(*) FROM crm.order_items i JOIN crm.orders o USING (order_id) "
                    "WHERE o.ordered_at < ? AND i.updated_at >= ?", [end_d, end_d])
        + wh.scalar("SELECT count(*) FROM crm.interactions WHERE occurred_at < ? AND updated_at >= ?", [end_d, end_d])
    )
    assert restated >= 1  # at least the order made above (and the generator's later refunds)

    record = _recorded(url, d)
    assert record["rows_quarantined"] == 0
    assert record["rows_restated"] == restated > 0
    assert wh.query("SELECT sum(orders), sum(purchase_orders) FROM marts.customer_profitability WHERE snapshot_date = ?",
                    [d]) == [(placed, purchases)]
    assert wh.query("SELECT customers, revenue FROM marts.portfolio_summary WHERE snapshot_date = ?", [d]) == [
        (signed_up, Decimal(revenue))
    ]
    assert _profit_row(url, d, buyer)[1] == buyer_orders  # the order written after D is one of them
    # the backfill left the install's snapshot alone
    assert mart_rows(url, install) == installed


# -- 3. forwards and backwards ----------------------------------------------------------------------
@pytest.mark.slow
def test_forwards_and_backwards_give_identical_marts_and_a_month_without_runs_is_fine(tmp_path: Path, spark: Any) -> None:
    days = (date(2024, 5, 30), date(2024, 5, 31), date(2024, 6, 1))  # across a month end
    later = date(2024, 7, 31)  # the next month end, after a month (June 2 - July 30) with no run
    fwd = _generate(tmp_path / "forwards.duckdb")
    held = _hold_back(fwd, _day_start(date(2024, 6, 2)))  # the source as of the end of June 1
    assert held > 0
    shutil.copy(tmp_path / "forwards.duckdb", tmp_path / "backwards.duckdb")
    if (tmp_path / "forwards.duckdb.wal").exists():
        shutil.copy(tmp_path / "forwards.duckdb.wal", tmp_path / "backwards.duckdb.wal")
    bwd = f"duckdb:///{tmp_path / 'backwards.duckdb'}"
    lake_f, lake_b = tmp_path / "lake_forwards", tmp_path / "lake_backwards"
    for day in days:
        _run(fwd, lake_f, day)
    for day in reversed(days):
        _run(bwd, lake_b, day)
    # the source does not change between the runs: each lake's first run extracts everything
    # (one version per source row), the others nothing
    source_rows = sum(open_warehouse(fwd).scalar(f"SELECT count(*) FROM crm.{t}")
                      for t in ("customers", "products", "orders", "order_items", "interactions", "marketing_spend"))
    assert [_recorded(fwd, day)["rows_extracted"] for day in days] == [source_rows, 0, 0]
    assert [_recorded(bwd, day)["rows_extracted"] for day in days] == [0, 0, source_rows]
    forwards = {day: mart_rows(fwd, day) for day in days}
    for day in days:
        assert forwards[day]["customer_profitability"] and len(forwards[day]["portfolio_summary"]) == 1, day
        assert forwards[day] == mart_rows(bwd, day), day
    # the three days are different snapshots (the orders of May 31 and June 1 are counted)
    assert len({forwards[day]["portfolio_summary"][0][1:] for day in days}) == 3

    _release(fwd)
    _run(fwd, lake_f, later)
    assert _recorded(fwd, later)["rows_extracted"] == held  # June and July, all at once
    wh = open_warehouse(fwd)
    assert wh.query("SELECT sum(orders) FROM marts.customer_profitability WHERE snapshot_date = ?", [later]) == [
        (wh.scalar("SELECT count(*) FROM crm.orders WHERE ordered_at < TIMESTAMP '2024-08-01'"),)
    ]
    assert mart_rows(fwd, days[-1]) == mart_rows(bwd, days[-1])  # the earlier snapshots stay as they were


# -- 4. extraction and reading, without the pipeline ------------------------------------------------
D = date(2024, 2, 29)


@pytest.fixture
def small(tmp_path: Path) -> str:
    return _generate(tmp_path / "small.duckdb", customers=300, start=date(2024, 1, 1), end=D)


def test_a_deleted_row_is_a_tombstone_for_later_snapshots_only(small: str, tmp_path: Path, spark: Any) -> None:
    lake, wh = Lake.at(tmp_path / "lake"), open_warehouse(small)
    gone = wh.scalar("SELECT min(interaction_id) FROM crm.interactions WHERE occurred_at < TIMESTAMP '2024-02-01'")
    extract(spark, wh, lake, D)
    wh.execute("DELETE FROM crm.interactions WHERE interaction_id = ?", [gone])
    found = D + timedelta(days=1)  # the run whose full refresh finds the deletion
    result = extract(spark, wh, lake, found, full_refresh=True)
    assert result.tombstones["interactions"] == 1 and result.rows["interactions"] == 1
    raw = lake.read_arrow(lake.raw_table("interactions")).to_pylist()
    tomb = [r for r in raw if r["_deleted"]]
    # no snapshot was built yet, so the deletion takes effect at the start of the finding run's
    # day (the generated history ends on D, so every version of the row is older than that)
    assert [(r["interaction_id"], r["updated_at"].replace(tzinfo=None)) for r in tomb] == [  # Delta: UTC
        (gone, datetime(found.year, found.month, found.day))
    ]
    assert len([r for r in raw if r["interaction_id"] == gone]) == 2  # the old version is kept
    before, after = D, found

    def newest_version(day: date) -> list[bool]:
        versions = latest_versions(read_raw(spark, lake, "interactions", day), ["interaction_id"])
        return [r["_deleted"] for r in versions.where(versions.interaction_id == gone).collect()]

    assert newest_version(before) == [False]
    assert newest_version(after) == [True]

    def live(day: date) -> set[str]:
        inputs = load_inputs(spark, lake, day, RuleParams(day, date(2024, 1, 1)))
        try:
            return {r["interaction_id"] for r in inputs.interactions.select("interaction_id").collect()}
        finally:
            inputs.release()

    assert gone in live(before)
    assert gone not in live(after)
    # a second full refresh does not delete it again
    assert extract(spark, wh, lake, D + timedelta(days=2), full_refresh=True).tombstones["interactions"] == 0


def _live_interactions(spark: Any, lake: Lake, day: date) -> set[str]:
    inputs = load_inputs(spark, lake, day, RuleParams(day, date(2024, 1, 1)))
    try:
        return {r["interaction_id"] for r in inputs.interactions.select("interaction_id").collect()}
    finally:
        inputs.release()


def test_a_deletion_found_later_does_not_rewrite_a_snapshot_that_saw_the_row(small: str, tmp_path: Path, spark: Any) -> None:
    lake, wh = Lake.at(tmp_path / "lake"), open_warehouse(small)
    gone = wh.scalar("SELECT min(interaction_id) FROM crm.interactions WHERE occurred_at < TIMESTAMP '2024-02-01'")
    seen = wh.scalar("SELECT max(updated_at) FROM crm.interactions").date()  # the last day with a write
    extract(spark, wh, lake, D)  # the capture for D (>= seen): the interaction exists
    assert gone in _live_interactions(spark, lake, seen)
    wh.execute("DELETE FROM crm.interactions WHERE interaction_id = ?", [gone])  # deleted after that capture
    extract(spark, wh, lake, D + timedelta(days=3), full_refresh=True)
    assert gone not in _live_interactions(spark, lake, D + timedelta(days=3))
    # `seen` was published with the row; its rerun must still see it
    assert gone in _live_interactions(spark, lake, seen)


def test_a_row_restored_after_its_deletion_is_live_again(small: str, tmp_path: Path, spark: Any) -> None:
    lake, wh = Lake.at(tmp_path / "lake"), open_warehouse(small)
    gone = wh.scalar("SELECT min(interaction_id) FROM crm.interactions WHERE occurred_at < TIMESTAMP '2024-02-01'")
    extract(spark, wh, lake, D)
    wh.execute("CREATE TABLE crm.saved AS SELECT * FROM crm.interactions WHERE interaction_id = ?", [gone])
    wh.execute("DELETE FROM crm.interactions WHERE interaction_id = ?", [gone])
    assert extract(spark, wh, lake, D + timedelta(days=1), full_refresh=True).tombstones["interactions"] == 1
    wh.execute("INSERT INTO crm.interactions SELECT * FROM crm.saved")  # restored from a backup, as it was
    wh.execute("DROP TABLE crm.saved")
    extract(spark, wh, lake, D + timedelta(days=2), full_refresh=True)
    assert gone in _live_interactions(spark, lake, D + timedelta(days=2))


def test_a_late_commit_is_caught_within_the_lookback_only(small: str, tmp_path: Path, spark: Any) -> None:
    lake, wh = Lake.at(tmp_path / "lake"), open_warehouse(small)
    extract(spark, wh, lake, D)
    mark = wh.scalar("SELECT max(updated_at) FROM crm.interactions")  # the raw table's watermark
    customer = wh.scalar("SELECT min(customer_id) FROM crm.customers")
    # two interactions committed now, stamped before the watermark: 30 minutes (inside the default
    # one-hour lookback) and 2 hours (outside it)
    for iid, age in (("late-in", timedelta(minutes=30)), ("late-out", timedelta(hours=2))):
        wh.execute("INSERT INTO crm.interactions VALUES (?, ?, ?, 'support_ticket', 5.00, NULL, ?)",
                   [iid, customer, mark - age, mark - age])
    result = extract(spark, wh, lake, D)
    assert result.watermarks["interactions"] == mark.isoformat()
    assert result.rows["interactions"] == 1
    ids = set(lake.read_arrow(lake.raw_table("interactions"), columns=["interaction_id"]).column(0).to_pylist())
    assert "late-in" in ids and "late-out" not in ids
    # a longer lookback (or a full refresh) catches the other one, and nothing twice
    wider = extract(spark, wh, lake, D, lookback=timedelta(hours=3))
    assert wider.rows["interactions"] == 1 and sum(wider.rows.values()) == 1


def test_a_lake_refuses_a_second_source(small: str, tmp_path: Path, spark: Any) -> None:
    lake = Lake.at(tmp_path / "lake")
    extract(spark, open_warehouse(small), lake, D)
    other = _generate(tmp_path / "other.duckdb", customers=20, start=date(2024, 1, 1), end=D)
    before = lake.read_arrow(lake.raw_table("orders")).num_rows
    with pytest.raises(ForeignSourceError) as info:
        extract(spark, open_warehouse(other), lake, D)
    message = str(info.value)
    assert source_identity(small) in message and source_identity(other) in message
    assert source_identity(small) != source_identity(other)
    assert "--lake" in message
    assert lake.read_arrow(lake.raw_table("orders")).num_rows == before  # nothing written
    # the same file under another spelling of its URL is the same source
    respelled = f"duckdb:///{tmp_path}/./sub/../small.duckdb"
    (tmp_path / "sub").mkdir()
    assert sum(extract(spark, open_warehouse(respelled), lake, D).rows.values()) == 0


def test_a_table_gains_and_loses_a_column_without_losing_its_snapshots(spark: Any, tmp_path: Path) -> None:
    """A new release adds a mart column and drops another: the next snapshot's write succeeds,
    the old snapshot keeps its values, the new column reads as null there and the dropped one as
    null in the new snapshot."""
    from jobs.platform.delta import read_snapshot, write_snapshot

    lake = Lake.at(tmp_path / "lake")
    path, d1, d2 = lake.mart_table("m"), date(2024, 1, 1), date(2024, 1, 2)
    write_snapshot(spark.createDataFrame([(1, "old")], "id INT, dropped STRING"), path, d1, "mart m")
    write_snapshot(spark.createDataFrame([(2, True)], "id INT, added BOOLEAN"), path, d2, "mart m")
    rows = {d: [r.asDict() for r in read_snapshot(spark, lake, path, d, "mart m").collect()] for d in (d1, d2)}
    assert rows == {d1: [{"id": 1, "dropped": "old", "added": None}], d2: [{"id": 2, "dropped": None, "added": True}]}
