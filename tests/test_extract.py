"""Extraction into the raw Delta history: every version once, reruns that add nothing, schema
drift, PII and hostile input."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from devtools.generate import generate
from jobs.cli import main
from jobs.ingest.extract import SchemaDriftError, extract
from jobs.platform.lake import Lake
from jobs.platform.warehouse import open_warehouse
from schemas.source import SOURCE_TABLES

D = date(2024, 2, 29)


@pytest.fixture
def source(tmp_path: Path) -> str:
    url = f"duckdb:///{tmp_path}/w.duckdb"
    generate(open_warehouse(url), 300, date(2024, 1, 1), D, seed=9)
    return url


def test_first_run_captures_every_row_once(source: str, tmp_path: Path, spark: Any) -> None:
    lake = Lake.at(tmp_path / "lake")
    wh = open_warehouse(source)
    result = extract(spark, wh, lake, D)
    assert result.full_refresh
    for table in SOURCE_TABLES:
        in_source = wh.scalar(f"SELECT count(*) FROM crm.{table.name}")
        raw = lake.read_arrow(lake.raw_table(table.name))
        assert result.rows[table.name] == in_source == raw.num_rows, table.name
        assert set(raw.column("_captured_for").to_pylist()) == {D}
        assert not any(raw.column("_deleted").to_pylist())


def test_rerun_adds_nothing_and_a_change_adds_one_version(source: str, tmp_path: Path, spark: Any) -> None:
    lake = Lake.at(tmp_path / "lake")
    wh = open_warehouse(source)
    extract(spark, wh, lake, date(2024, 2, 27))
    oid = wh.scalar("SELECT min(order_id) FROM crm.orders")
    wh.execute(
        "UPDATE crm.orders SET status = 'refunded', refund_amount = gross_amount - discount_amount, "
        "updated_at = TIMESTAMP '2024-03-01 08:00:00' WHERE order_id = ?", [oid]
    )
    first = extract(spark, wh, lake, date(2024, 2, 28))
    again = extract(spark, wh, lake, date(2024, 2, 28))
    older = extract(spark, wh, lake, date(2024, 2, 1))  # a backfill's extraction: harmless too
    refresh = extract(spark, wh, lake, date(2024, 2, 28), full_refresh=True)  # and a full refresh
    assert not first.full_refresh and refresh.full_refresh
    assert first.rows["orders"] == 1  # the changed order's new version, nothing else
    assert again.rows == older.rows == refresh.rows == {t.name: 0 for t in SOURCE_TABLES}
    assert set(refresh.tombstones.values()) == {0}  # nothing was deleted in the source
    raw = lake.read_arrow(lake.raw_table("orders"))
    versions = sorted(
        (s for o, s in zip(raw.column("order_id").to_pylist(), raw.column("status").to_pylist(), strict=True) if o == oid)
    )
    assert len(versions) == 2 and "refunded" in versions  # both versions are kept


def test_emails_never_leave_the_warehouse(source: str, tmp_path: Path, spark: Any) -> None:
    lake = Lake.at(tmp_path / "lake")
    extract(spark, open_warehouse(source), lake, D)
    for table in SOURCE_TABLES:
        raw = lake.read_arrow(lake.raw_table(table.name))
        assert "email" not in raw.column_names
        assert not any("@example.com" in str(v) for c in raw.columns if str(c.type) == "string" for v in c.to_pylist())


def test_added_column_is_ignored_with_a_warning(source: str, tmp_path: Path, spark: Any) -> None:
    wh = open_warehouse(source)
    wh.execute("ALTER TABLE crm.orders ADD COLUMN coupon_code VARCHAR")
    lake = Lake.at(tmp_path / "lake")
    result = extract(spark, wh, lake, D)
    assert any("crm.orders: ignoring column(s) not in the contract: coupon_code" in w for w in result.warnings)
    assert "coupon_code" not in lake.read_arrow(lake.raw_table("orders")).column_names


def test_removed_column_fails_naming_it_before_anything_is_written(source: str, tmp_path: Path, spark: Any) -> None:
    wh = open_warehouse(source)
    wh.execute("ALTER TABLE crm.orders DROP COLUMN discount_amount")
    with pytest.raises(SchemaDriftError, match=r"required column crm\.orders\.discount_amount is missing"):
        extract(spark, wh, Lake.at(tmp_path / "lake"), D)
    assert not (tmp_path / "lake").exists()


def test_retyped_column_fails_naming_it(source: str, tmp_path: Path, spark: Any) -> None:
    wh = open_warehouse(source)
    wh.execute("ALTER TABLE crm.orders ALTER COLUMN gross_amount TYPE VARCHAR")
    with pytest.raises(SchemaDriftError, match=r"column crm\.orders\.gross_amount has type 'varchar', expected decimal\(14,2\)"):
        extract(spark, wh, Lake.at(tmp_path / "lake"), D)


@pytest.mark.parametrize(
    "bad_date",
    [
        "2024-13-01",
        "2024-01-01'; DROP TABLE crm.orders; --",
        "yesterday",
        "20240101",  # Python's own parser takes it; the CLI takes one spelling
        "2024-02-30",
    ],
)
def test_hostile_date_parameter_is_refused(bad_date: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before anything runs: exit 2, naming the argument, the value and the spelling wanted."""
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--date", bad_date])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --date: {bad_date!r} is not a date" in err
    assert "e.g. 2024-12-31" in err
