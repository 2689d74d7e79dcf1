"""Logical column types and their spelling in each engine.

One logical type per column lets the same table definition produce DuckDB DDL, PostgreSQL DDL,
a Spark schema and an Arrow schema without writing any of them twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyarrow as pa

_DECIMAL = re.compile(r"^decimal\((\d+),(\d+)\)$")

LOGICAL_TYPES = ("string", "int", "bigint", "double", "boolean", "date", "timestamp")


@dataclass(frozen=True)
class Column:
    """One column: logical type, comment (becomes COMMENT ON COLUMN), and flags."""

    name: str
    type: str
    comment: str
    nullable: bool = True
    pii: bool = False

    def __post_init__(self) -> None:
        if self.type not in LOGICAL_TYPES and not _DECIMAL.match(self.type):
            raise ValueError(f"column {self.name}: unknown logical type {self.type!r}")


@dataclass(frozen=True)
class Table:
    """A table contract: name, grain, key and columns. Used for source tables and marts."""

    name: str
    comment: str
    grain: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name!r}")


def decimal_parts(logical: str) -> tuple[int, int] | None:
    m = _DECIMAL.match(logical)
    return (int(m.group(1)), int(m.group(2))) if m else None


def sql_type(logical: str, dialect: str) -> str:
    """Spell a logical type for `duckdb` or `postgres` DDL."""
    dec = decimal_parts(logical)
    if dec:
        return f"{'NUMERIC' if dialect == 'postgres' else 'DECIMAL'}({dec[0]},{dec[1]})"
    mapping = {
        "string": "TEXT" if dialect == "postgres" else "VARCHAR",
        "int": "INTEGER",
        "bigint": "BIGINT",
        "double": "DOUBLE PRECISION" if dialect == "postgres" else "DOUBLE",
        "boolean": "BOOLEAN",
        "date": "DATE",
        # Times are UTC by contract; stored without zone so every engine reads the same instant.
        "timestamp": "TIMESTAMP",
    }
    return mapping[logical]


def arrow_type(logical: str) -> pa.DataType:
    dec = decimal_parts(logical)
    if dec:
        return pa.decimal128(*dec)
    return {
        "string": pa.string(),
        "int": pa.int32(),
        "bigint": pa.int64(),
        "double": pa.float64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us"),
    }[logical]


def arrow_schema(table: Table) -> pa.Schema:
    return pa.schema([pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in table.columns])


def spark_type_ddl(logical: str) -> str:
    """Spark SQL type name, usable in a DDL schema string (no pyspark import needed)."""
    dec = decimal_parts(logical)
    if dec:
        return f"DECIMAL({dec[0]},{dec[1]})"
    return {
        "string": "STRING",
        "int": "INT",
        "bigint": "BIGINT",
        "double": "DOUBLE",
        "boolean": "BOOLEAN",
        "date": "DATE",
        "timestamp": "TIMESTAMP",
    }[logical]


def spark_schema_ddl(table: Table) -> str:
    """A Spark DDL schema string, e.g. for `spark.read.schema(...)`."""
    return ", ".join(f"`{c.name}` {spark_type_ddl(c.type)}" for c in table.columns)


def create_table_sql(table: Table, schema: str, dialect: str, primary_key: bool = True) -> list[str]:
    """CREATE TABLE IF NOT EXISTS plus COMMENT ON statements.

    primary_key=False leaves the key out of the DDL (marts: the quality gate checks it, and
    DuckDB's key index makes delete+insert of a snapshot slow).

    Identifiers come from the registry, never from user input; they are still quoted.
    """
    cols = ",\n  ".join(
        f'"{c.name}" {sql_type(c.type, dialect)}{"" if c.nullable else " NOT NULL"}' for c in table.columns
    )
    pk = "" if not primary_key else f',\n  PRIMARY KEY ({", ".join(chr(34) + k + chr(34) for k in table.key)})' if table.key else ""
    return [f'CREATE TABLE IF NOT EXISTS "{schema}"."{table.name}" (\n  {cols}{pk}\n)',
            *comment_sql(table, schema)]


def comment_sql(table: Table, schema: str, relation: str | None = None, kind: str = "TABLE") -> list[str]:
    """COMMENT ON statements giving `relation` (the table itself, or a view over all its columns,
    kind="VIEW") the table's comment, grain and column comments: what a BI tool shows when
    browsing. The same statements on PostgreSQL and DuckDB."""
    name = relation or table.name
    stmts = [f'COMMENT ON {kind} "{schema}"."{name}" IS {sql_literal(table.comment + " Grain: " + table.grain)}']
    stmts += [f'COMMENT ON COLUMN "{schema}"."{name}"."{c.name}" IS {sql_literal(c.comment)}' for c in table.columns]
    return stmts


def sql_literal(text: str) -> str:
    """Quote a constant from the registry (never user input) as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
