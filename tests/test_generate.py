"""The sample-data generator: deterministic, realistic enough for every metric, defects on demand."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from devtools.generate import DEFECT_KINDS, generate
from jobs.cli import main
from jobs.platform.warehouse import open_warehouse
from schemas.source import ACQUISITION_CHANNELS, SOURCE_TABLES

START, END = date(2023, 1, 1), date(2024, 6, 30)


@pytest.fixture(scope="module")
def clean_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"duckdb:///{tmp_path_factory.mktemp('gen')}/clean.duckdb"
    generate(open_warehouse(url), 3000, START, END, seed=11)
    return url


def _all_rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    wh = open_warehouse(url)
    return {t.name: sorted(wh.query(f"SELECT * FROM crm.{t.name}"), key=repr) for t in SOURCE_TABLES}


def test_same_arguments_same_rows_other_seed_other_rows(clean_url: str, tmp_path: Path) -> None:
    again = f"duckdb:///{tmp_path}/again.duckdb"
    generate(open_warehouse(again), 3000, START, END, seed=11)
    assert _all_rows(again) == _all_rows(clean_url)
    other = f"duckdb:///{tmp_path}/other.duckdb"
    generate(open_warehouse(other), 3000, START, END, seed=12)
    assert _all_rows(other)["orders"] != _all_rows(clean_url)["orders"]


def test_refund_rate_within_two_to_five_percent(clean_url: str) -> None:
    refunded, total = open_warehouse(clean_url).query(
        "SELECT count(*) FILTER (WHERE status IN ('refunded', 'partially_refunded')), count(*) FROM crm.orders"
    )[0]
    assert 0.02 <= refunded / total <= 0.05


def test_channels_present_and_different(clean_url: str) -> None:
    rows = open_warehouse(clean_url).query(
        "SELECT c.acquisition_channel, avg(CASE WHEN n > 1 THEN 1.0 ELSE 0 END), avg(c.acquisition_cost) "
        "FROM crm.customers c JOIN (SELECT customer_id, count(*) n FROM crm.orders GROUP BY 1) o USING (customer_id) "
        "GROUP BY 1"
    )
    repeat = {r[0]: r[1] for r in rows}
    cost = {r[0]: r[2] for r in rows}
    assert set(repeat) == set(ACQUISITION_CHANNELS)
    # affiliates: cheap to acquire, poor retention; direct mail: dearer, stickier
    assert repeat["affiliate"] < repeat["direct_mail"]
    assert cost["affiliate"] < cost["direct_mail"]


def test_all_four_kotler_types_occur(clean_url: str) -> None:
    wh = open_warehouse(clean_url)
    rows = wh.query(
        """
        WITH lines AS (SELECT order_id, sum(quantity * unit_cost) cogs FROM crm.order_items GROUP BY 1),
        o AS (
          SELECT customer_id, count(DISTINCT CAST(ordered_at AS DATE)) n_days,
                 sum(gross_amount - discount_amount - refund_amount - coalesce(cogs, 0) - shipping_cost) margin
          FROM crm.orders LEFT JOIN lines USING (order_id) WHERE status <> 'cancelled' GROUP BY 1),
        i AS (SELECT customer_id, sum(cost) cost FROM crm.interactions GROUP BY 1),
        p AS (SELECT customer_id, n_days, margin - coalesce(i.cost, 0) profit FROM o LEFT JOIN i USING (customer_id))
        SELECT (profit > (SELECT median(profit) FROM p)) profitable, (n_days > (SELECT median(n_days) FROM p)) loyal, count(*)
        FROM p GROUP BY 1, 2
        """
    )
    quadrants = {(r[0], r[1]): r[2] for r in rows}
    assert set(quadrants) == {(True, True), (True, False), (False, True), (False, False)}
    assert min(quadrants.values()) >= 30


def test_money_is_consistent(clean_url: str) -> None:
    wh = open_warehouse(clean_url)
    mismatched = wh.scalar(
        "SELECT count(*) FROM crm.orders o JOIN (SELECT order_id, sum(quantity * unit_price) s FROM crm.order_items GROUP BY 1) l "
        "USING (order_id) WHERE o.gross_amount <> l.s"
    )
    assert mismatched == 0
    bad_refunds = wh.scalar(
        "SELECT count(*) FROM crm.orders WHERE (status = 'refunded' AND refund_amount <> gross_amount - discount_amount) "
        "OR (status IN ('completed', 'cancelled') AND refund_amount <> 0)"
    )
    assert bad_refunds == 0


def test_nothing_happens_after_the_end_or_before_signup(clean_url: str) -> None:
    wh = open_warehouse(clean_url)
    end = datetime(2024, 7, 1)
    assert wh.scalar("SELECT count(*) FROM crm.orders WHERE ordered_at >= ? OR updated_at >= ?", [end, end]) == 0
    assert wh.scalar("SELECT count(*) FROM crm.interactions WHERE occurred_at >= ?", [end]) == 0
    assert wh.scalar(
        "SELECT count(*) FROM crm.orders o JOIN crm.customers c USING (customer_id) WHERE o.ordered_at < c.signup_at"
    ) == 0
    assert wh.scalar("SELECT count(*) FROM crm.injected_defects") == 0


def test_there_is_something_for_every_metric(clean_url: str) -> None:
    wh = open_warehouse(clean_url)
    assert wh.scalar("SELECT count(*) FROM crm.customers WHERE referred_by IS NOT NULL") > 0
    assert wh.scalar("SELECT count(DISTINCT interaction_type) FROM crm.interactions") == 4
    assert wh.scalar("SELECT count(*) FROM crm.interactions WHERE satisfaction BETWEEN 1 AND 5") > 0
    assert wh.scalar("SELECT count(*) FROM crm.orders WHERE discount_amount > 0") > 0
    assert wh.scalar("SELECT count(*) FROM crm.orders WHERE updated_at > ordered_at + INTERVAL 1 DAY") > 0
    assert wh.scalar("SELECT count(*) FROM crm.customers WHERE customer_id NOT IN (SELECT customer_id FROM crm.orders)") > 0
    # seasonality: Q4 busier than Q3 in a full year
    q3, q4 = wh.query(
        "SELECT count(*) FILTER (WHERE month(ordered_at) IN (7, 8, 9)), count(*) FILTER (WHERE month(ordered_at) IN (10, 11, 12)) "
        "FROM crm.orders WHERE year(ordered_at) = 2023"
    )[0]
    assert q4 > q3
    assert wh.scalar("SELECT count(DISTINCT channel) FROM crm.marketing_spend") == len(ACQUISITION_CHANNELS)


def test_dirty_defects_are_recorded_and_real(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/dirty.duckdb"
    stats = generate(open_warehouse(url), 2000, START, END, seed=5, dirty=0.02)
    wh = open_warehouse(url)
    kinds = dict(wh.query("SELECT defect_kind, count(*) FROM crm.injected_defects GROUP BY 1"))
    assert set(kinds) == set(DEFECT_KINDS)
    assert stats.defects == sum(kinds.values())
    orders = wh.scalar("SELECT count(*) FROM crm.orders")
    damaged = sum(v for k, v in kinds.items() if k != "late_update")
    assert 0.015 <= damaged / orders <= 0.025

    def keys(kind: str) -> list[str]:
        return [r[0] for r in wh.query("SELECT row_key FROM crm.injected_defects WHERE defect_kind = ?", [kind])]

    for key in keys("null_customer_id"):
        assert wh.scalar("SELECT count(*) FROM crm.orders WHERE order_id = ? AND customer_id IS NULL", [key]) == 1
    for key in keys("duplicate_order_id"):
        assert wh.scalar("SELECT count(*) FROM crm.orders WHERE order_id = ?", [key]) == 2
    for key in keys("orphan_customer_id"):
        assert wh.scalar(
            "SELECT count(*) FROM crm.orders WHERE order_id = ? AND customer_id NOT IN (SELECT customer_id FROM crm.customers)",
            [key],
        ) == 1
    for key in keys("unknown_currency"):
        assert wh.scalar("SELECT currency FROM crm.orders WHERE order_id = ?", [key]) == "XXX"
    for key in keys("negative_amount"):
        assert wh.scalar("SELECT gross_amount FROM crm.orders WHERE order_id = ?", [key]) < 0
    for key in keys("late_update"):
        assert wh.scalar("SELECT updated_at >= ordered_at + INTERVAL 1 DAY FROM crm.orders WHERE order_id = ?", [key])


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"duckdb:///{tmp_path}/cli.duckdb"
    assert main(["generate", "--warehouse", url, "--customers", "200", "--start", "2024-01-01", "--end", "2024-03-31", "--seed", "3"]) == 0
    assert "customers 200" in capsys.readouterr().out
    assert open_warehouse(url).scalar("SELECT count(*) FROM crm.customers") == 200


def test_a_chunk_ending_with_customers_who_never_buy() -> None:
    """Regression: a chunk whose last customer never buys once indexed past its purchases (seen at
    1M customers). Small chunks over a short window make that common."""
    from devtools.generate import _epoch, make_chunk, products

    start, end = _epoch(date(2024, 1, 1)), _epoch(date(2024, 1, 10))
    catalogue = products(3)
    endings_without_orders = 0
    for index in range(60):
        chunk = make_chunk(index, index * 40 + 1, 40, 3, start, end, catalogue)
        last = chunk.customers.column("customer_id")[-1].as_py()
        endings_without_orders += last not in set(chunk.orders.column("customer_id").to_pylist())
    assert endings_without_orders > 0
