"""One contract, two real warehouses: every test runs on DuckDB and on PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.platform.warehouse import WarehouseError, check_ident, open_warehouse
from jobs.publish.to_warehouse import ensure_marts, refresh_views
from schemas.marts import MARTS_SCHEMA, METRIC_MARTS
from schemas.types import Column, Table, arrow_schema

PEOPLE = Table(
    name="people",
    comment="People for the contract tests.",
    grain="one row per person",
    key=("person_id",),
    columns=(
        Column("person_id", "string", "Identifier.", nullable=False),
        Column("amount", "decimal(14,2)", "Money."),
        Column("seen_at", "timestamp", "UTC time."),
        Column("note", "string", "Free text."),
        Column("day", "date", "A day."),
    ),
)

ROWS = pa.table(
    {
        "person_id": ["a", "Müşteri-ğüş-😀", "c"],
        "amount": pa.array([Decimal("12345.67"), Decimal("0.01"), None], pa.decimal128(14, 2)),
        "seen_at": pa.array([datetime(2024, 1, 2, 3, 4, 5, 123456), None, datetime(1997, 1, 1)], pa.timestamp("us")),
        "note": ["", None, "it's"],
        "day": pa.array([date(2024, 1, 2), date(1997, 1, 1), date(2024, 1, 2)], pa.date32()),
    },
    schema=arrow_schema(PEOPLE),
)


def _load(url: str) -> None:
    wh = open_warehouse(url)
    wh.ensure_tables("t", [PEOPLE])
    with wh.transaction() as conn:
        assert wh.load_arrow(conn, "t", PEOPLE, ROWS) == 3


def test_tables_columns_and_comments(warehouse_url: str) -> None:
    wh = open_warehouse(warehouse_url)
    wh.ensure_tables("t", [PEOPLE])
    wh.ensure_tables("t", [PEOPLE])  # idempotent
    assert list(wh.columns("t", "people")) == PEOPLE.column_names
    if wh.dialect == "postgres":
        comment = wh.scalar("SELECT col_description('t.people'::regclass, 2)")
        table_comment = wh.scalar("SELECT obj_description('t.people'::regclass)")
    else:
        comment = wh.scalar("SELECT comment FROM duckdb_columns() WHERE table_name = 'people' AND column_name = 'amount'")
        table_comment = wh.scalar("SELECT comment FROM duckdb_tables() WHERE table_name = 'people'")
    assert comment == "Money."
    assert table_comment.startswith("People for the contract tests.")


def test_round_trip_is_exact(warehouse_url: str) -> None:
    _load(warehouse_url)
    rows = open_warehouse(warehouse_url).query('SELECT person_id, amount, seen_at, note, "day" FROM t.people ORDER BY amount NULLS LAST')
    assert rows == [
        ("Müşteri-ğüş-😀", Decimal("0.01"), None, None, date(1997, 1, 1)),
        ("a", Decimal("12345.67"), datetime(2024, 1, 2, 3, 4, 5, 123456), "", date(2024, 1, 2)),
        ("c", None, datetime(1997, 1, 1), "it's", date(2024, 1, 2)),
    ]


def test_transaction_rolls_back_on_error(warehouse_url: str) -> None:
    wh = open_warehouse(warehouse_url)
    wh.ensure_tables("t", [PEOPLE])
    with pytest.raises(RuntimeError, match="boom"), wh.transaction() as conn:
        wh.load_arrow(conn, "t", PEOPLE, ROWS)
        raise RuntimeError("boom")
    assert wh.count("t", "people") == 0


def test_load_parquet_and_export_partitioned(warehouse_url: str, tmp_path: Path) -> None:
    wh = open_warehouse(warehouse_url)
    wh.ensure_tables("t", [PEOPLE])
    pq.write_table(ROWS, tmp_path / "people.parquet")
    with wh.transaction() as conn:
        assert wh.load_parquet(conn, "t", PEOPLE, [tmp_path / "people.parquet"]) == 3
    p = wh.placeholder
    sql = f'SELECT person_id, amount, seen_at, note, "day", "day" AS extract_date FROM t.people WHERE amount IS NULL OR amount > {p}'
    n = wh.export_parquet(sql, [Decimal("0")], PEOPLE, tmp_path / "out", "extract_date")
    assert n == 3
    parts = sorted(d.name for d in (tmp_path / "out").iterdir() if d.is_dir())
    assert parts == ["extract_date=1997-01-01", "extract_date=2024-01-02"]
    back = pq.read_table(tmp_path / "out" / "extract_date=2024-01-02")
    assert sorted(back.column("person_id").to_pylist()) == ["a", "c"]
    assert back.schema.field("amount").type == pa.decimal128(14, 2)


@pytest.mark.parametrize("hostile", ['x"; DROP TABLE people; --', "a b", "", "1abc", "x" * 64])
def test_hostile_identifiers_are_refused(hostile: str) -> None:
    with pytest.raises(WarehouseError):
        check_ident(hostile)


@pytest.mark.postgres
def test_password_never_shown(postgres_warehouse_url: str) -> None:
    password = postgres_warehouse_url.split(":")[2].split("@")[0]
    wh = open_warehouse(postgres_warehouse_url)
    assert password not in repr(wh)
    port = postgres_warehouse_url.rsplit(":", 1)[1].split("/")[0]
    broken = open_warehouse(postgres_warehouse_url.replace(f":{port}/", ":1/"))
    with pytest.raises(WarehouseError) as info:
        broken.query("SELECT 1")
    assert password not in str(info.value) and password not in repr(info.value.__cause__ or "")


def _comments(wh: Any, relation: str) -> tuple[str | None, dict[str, str | None]]:
    """The relation's own comment and its columns' comments, as the warehouse's catalog holds them."""
    if wh.dialect == "postgres":
        rel = f"{MARTS_SCHEMA}.{relation}"
        own = wh.scalar("SELECT obj_description(%s::regclass)", [rel])
        cols = wh.query("SELECT attname, col_description(attrelid, attnum) FROM pg_attribute "
                        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped", [rel])
    else:
        own = wh.scalar("SELECT comment FROM duckdb_views() WHERE schema_name = ? AND view_name = ? UNION ALL "
                        "SELECT comment FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                        [MARTS_SCHEMA, relation] * 2)
        cols = wh.query("SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
                        [MARTS_SCHEMA, relation])
    return own, dict(cols)


def test_latest_views_carry_the_marts_comments(warehouse_url: str) -> None:
    """What a BI tool browsing `<mart>_latest` sees: the mart's comment and every column's, also
    after the views are replaced by the next publish."""
    wh = open_warehouse(warehouse_url)
    ensure_marts(wh)
    for _ in range(2):  # the second publish replaces the views
        with wh.transaction() as conn:
            refresh_views(conn, METRIC_MARTS)
    for mart in METRIC_MARTS:
        table_comment, table_columns = _comments(wh, mart.name)
        view_comment, view_columns = _comments(wh, f"{mart.name}_latest")
        assert view_comment and view_comment == table_comment, mart.name
        assert list(view_columns) == list(table_columns) == mart.column_names
        assert all(view_columns.values()) and view_columns == table_columns, mart.name
