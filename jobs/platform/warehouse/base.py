"""The warehouse interface: one contract, two real implementations (DuckDB and PostgreSQL).

Everything that touches the warehouse goes through these methods, so the same contract tests run
against both. SQL is built from registry identifiers (quoted) and bound parameters only.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from jobs.platform.config import mask_url
from schemas.types import Table, create_table_sql, sql_type

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class WarehouseError(RuntimeError):
    """A warehouse operation failed; the message never contains credentials."""


def check_ident(name: str) -> str:
    """Refuse anything that is not a plain identifier (letters, digits, underscore)."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise WarehouseError(
            f"refusing identifier {name!r}: use letters, digits and underscores only (max 63 characters)"
        )
    return name


def quote_ident(*parts: str) -> str:
    """A schema-qualified, double-quoted identifier, each part validated."""
    return ".".join(f'"{check_ident(p)}"' for p in parts)


class Warehouse(abc.ABC):
    """A connection factory plus the handful of bulk operations the pipeline needs."""

    dialect: str
    placeholder: str

    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({mask_url(self.url)!r})"

    # -- connections -------------------------------------------------------------------------
    @abc.abstractmethod
    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A DB-API connection; closed on exit."""

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        with self.connect() as conn:
            conn.execute("BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.connect() as conn:
            conn.execute(sql, list(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return list(conn.execute(sql, list(params)).fetchall())

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    # -- schema ------------------------------------------------------------------------------
    def ensure_tables(self, schema: str, tables: Iterable[Table], primary_keys: bool = True) -> None:
        """Create the schema and tables (with comments) if missing; add a column that a newer
        contract has and an older table lacks (nullable: old rows hold NULL there)."""
        tables = list(tables)
        in_schema = self.schema_columns(schema)
        existing = {t.name: in_schema.get(t.name, {}) for t in tables}
        with self.transaction() as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
            for table in tables:
                for stmt in create_table_sql(table, check_ident(schema), self.dialect, primary_keys):
                    conn.execute(stmt)
                for col in table.columns:
                    if existing[table.name] and col.name not in existing[table.name]:
                        conn.execute(
                            f"ALTER TABLE {quote_ident(schema, table.name)} ADD COLUMN {quote_ident(col.name)} "
                            f"{sql_type(col.type, self.dialect)}"
                        )

    def drop_schema(self, schema: str) -> None:
        self.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")

    def columns(self, schema: str, table: str) -> dict[str, str]:
        """Actual columns of a table: name -> lower-case SQL type name. Empty if no table."""
        return self.schema_columns(schema, table).get(table, {})

    def schema_columns(self, schema: str, table: str | None = None) -> dict[str, dict[str, str]]:
        """Every table's columns in `schema` (or only `table`'s), in one query: a DuckDB
        connection per table cost a small run about 2 s in `ensure_marts` alone."""
        p = self.placeholder
        rows = self.query(
            "SELECT table_name, column_name, lower(data_type) FROM information_schema.columns "
            f"WHERE table_schema = {p}{f' AND table_name = {p}' if table else ''} ORDER BY table_name, ordinal_position",
            [schema, table] if table else [schema],
        )
        out: dict[str, dict[str, str]] = {}
        for name, column, sql_type_name in rows:
            out.setdefault(name, {})[column] = sql_type_name
        return out

    def table_exists(self, schema: str, table: str) -> bool:
        return bool(self.columns(schema, table))

    def count(self, schema: str, table: str) -> int:
        return int(self.scalar(f"SELECT count(*) FROM {quote_ident(schema, table)}"))

    # -- bulk data ---------------------------------------------------------------------------
    @abc.abstractmethod
    def load_arrow(self, conn: Any, schema: str, table: Table, data: pa.Table | Iterable[pa.RecordBatch]) -> int:
        """Append rows (columns in the table's order) inside the caller's transaction."""

    @abc.abstractmethod
    def load_parquet(self, conn: Any, schema: str, table: Table, files: Sequence[Path]) -> int:
        """Append the rows of Parquet files inside the caller's transaction; returns rows."""

    @abc.abstractmethod
    def export_parquet(
        self,
        select_sql: str,
        params: Sequence[Any],
        table: Table,
        dest: Path,
        partition_column: str | None,
    ) -> int:
        """Write the rows of a SELECT (columns of `table`, plus the partition column when given)
        as Parquet under `dest`, Hive-partitioned by `partition_column`. Returns rows written."""

    def fetch_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run a query and return the result as Arrow (small results: reports, tests)."""
        with self.connect() as conn:
            cur = conn.execute(sql, list(params))
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)}) if names else pa.table({})


def literal_date(value: date | datetime) -> str:
    """A date/time as an SQL literal; only real date objects are accepted, never text."""
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    raise WarehouseError(f"expected a date or datetime, got {type(value).__name__}")
