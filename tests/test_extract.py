"""Extraction into the lake: windows, versions, reruns, schema drift, PII and hostile input."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.cli import main
from jobs.extract import SchemaDriftError, extract
from jobs.generate import generate
from jobs.lake import Lake
from jobs.warehouse import open_warehouse

D = date(2024, 2, 29)


@pytest.fixture
def source(tmp_path: Path) -> str:
    url = f"duckdb:///{tmp_path}/w.duckdb"
    generate(open_warehouse(url), 300, date(2024, 1, 1), D, seed=9)
    return url


def test_first_run_takes_all_history_into_the_days_rows_were_updated(source: str, tmp_path: Path) -> None:
    lake = Lake.at(tmp_path / "lake")
    result = extract(open_warehouse(source), lake, D)
    assert result.full_refresh
    orders = open_warehouse(source).scalar("SELECT count(*) FROM crm.orders")
    assert result.rows["orders"] == orders
    days = lake.partition_dates("orders")
    assert days[0] >= date(2024, 1, 1) and days[-1] == D
    one = pq.read_table(lake.raw_partition("orders", days[0]))
    assert set(one.column("updated_at").cast("date32").to_pylist()) == {days[0]}
    assert lake.missing_days(D) == []


def test_daily_rerun_replaces_only_its_partition(source: str, tmp_path: Path) -> None:
    lake = Lake.at(tmp_path / "lake")
    wh = open_warehouse(source)
    extract(wh, lake, date(2024, 2, 27))
    before = {d: sorted(p.name for p in lake.raw_partition("orders", d).iterdir()) for d in lake.partition_dates("orders")}
    wh.execute("UPDATE crm.orders SET status = 'refunded', refund_amount = gross_amount - discount_amount, updated_at = TIMESTAMP '2024-02-28 08:00:00' WHERE order_id = (SELECT min(order_id) FROM crm.orders)")
    first = extract(wh, lake, date(2024, 2, 28))
    again = extract(wh, lake, date(2024, 2, 28))
    assert not first.full_refresh and first.rows == again.rows
    changed = pq.read_table(lake.raw_partition("orders", date(2024, 2, 28)))
    assert "refunded" in changed.column("status").to_pylist()
    # the older version stays in its own partition: both versions are kept
    for day, files in before.items():
        if day < date(2024, 2, 28):
            assert sorted(p.name for p in lake.raw_partition("orders", day).iterdir()) == files
    assert lake.missing_days(date(2024, 2, 28)) == [] and lake.missing_days(D) == [D]


def test_emails_never_leave_the_warehouse(source: str, tmp_path: Path) -> None:
    lake = Lake.at(tmp_path / "lake")
    extract(open_warehouse(source), lake, D)
    for f in (tmp_path / "lake").rglob("*.parquet"):
        table = pq.read_table(f)
        assert "email" not in table.column_names
        assert not any("@example.com" in str(v) for c in table.columns if str(c.type) == "string" for v in c.to_pylist())


def test_added_column_is_ignored_with_a_warning(source: str, tmp_path: Path) -> None:
    wh = open_warehouse(source)
    wh.execute("ALTER TABLE crm.orders ADD COLUMN coupon_code VARCHAR")
    result = extract(wh, Lake.at(tmp_path / "lake"), D)
    assert any("crm.orders: ignoring column(s) not in the contract: coupon_code" in w for w in result.warnings)
    assert "coupon_code" not in pq.read_table(Lake.at(tmp_path / "lake").raw_partition("orders", D)).column_names


def test_removed_column_fails_naming_it(source: str, tmp_path: Path) -> None:
    wh = open_warehouse(source)
    wh.execute("ALTER TABLE crm.orders DROP COLUMN discount_amount")
    with pytest.raises(SchemaDriftError, match=r"required column crm\.orders\.discount_amount is missing"):
        extract(wh, Lake.at(tmp_path / "lake"), D)
    assert not (tmp_path / "lake" / "raw" / "_coverage").exists() or not Lake.at(tmp_path / "lake").coverage()


def test_retyped_column_fails_naming_it(source: str, tmp_path: Path) -> None:
    wh = open_warehouse(source)
    wh.execute("ALTER TABLE crm.orders ALTER COLUMN gross_amount TYPE VARCHAR")
    with pytest.raises(SchemaDriftError, match=r"column crm\.orders\.gross_amount has type 'varchar', expected decimal\(14,2\)"):
        extract(wh, Lake.at(tmp_path / "lake"), D)


@pytest.mark.parametrize("bad_date", ["2024-13-01", "2024-01-01'; DROP TABLE crm.orders; --", "yesterday"])
def test_hostile_date_parameter_is_refused(bad_date: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--date", bad_date])
    assert exit_info.value.code == 2
    assert "invalid fromisoformat value" in capsys.readouterr().err
