"""`crm-metrics import`: load a plain transactions file into the source schema `crm`.

Input: one transactions file, CSV (any single-character delimiter, or runs of whitespace) or
Parquet, with one row per purchase: a customer id, a date or date-time and an amount. Optional
columns: quantity, order id, cost of goods, sales channel. Optionally a customers file with the
contract's column names (`customer_id`, `signup_at`, `acquisition_channel`, `acquisition_cost`,
`region`, `referred_by`, `email`).

Output: the tables of `schemas/source.py`, replaced as a whole in ONE transaction (the import is
a full load of that file: a failed import leaves the previous contents untouched):

- `orders`, one row per order. Without an order-id column every transaction row is its own order,
  with the deterministic id `{customer_id}-{row}` (row = position of the transaction in the file,
  1 = first transaction after any header). With an order-id column, rows sharing an id become the
  lines of one order (same customer required; `ordered_at` = the earliest row's time).
  `status` 'completed', `currency` from --currency, `channel` from the channel column or
  --sales-channel, `gross_amount` = the file's amount exactly (the sum of the order's rows),
  discount 0, shipping 0, `updated_at` = `ordered_at` (or the last refund's time, see below).
- `order_items`, one row per purchase row: product 'UNKNOWN', `quantity` from the quantity column
  (default 1), `unit_price` = amount / quantity rounded half-up to cents. Because of that rounding
  quantity x unit_price can differ from the amount by less than quantity/2 cents: ORDER TOTALS COME
  FROM `orders.gross_amount`, never from the lines. `unit_cost` = cost / quantity rounded the same
  way when a cost column is given (its value is the cost of goods for the whole row), else 0.
- `products`, one row: 'UNKNOWN' in category 'unknown'; list price 0 (not known from transactions);
  unit cost = total cost / total quantity when a cost column is given, else 0.
- `customers`, one row per customer: from the customers file when given, else derived:
  `signup_at` = first transaction time, `acquisition_channel` = --default-channel ('organic'),
  `acquisition_cost` 0, region, referred_by and email NULL, `updated_at` = `signup_at`.
  With a customers file, its customers keep their values (an empty `signup_at` falls back to the
  first transaction; a customer with neither is an error) and customers found only in the
  transactions are derived as above.
- `interactions` and `marketing_spend` are emptied (a transactions file carries neither).

How the tables are replaced: PostgreSQL truncates the six tables and loads them (COPY) in one
transaction; DuckDB drops and re-creates them (with their comments) in one transaction, because
DELETE then INSERT of the same keys in one DuckDB transaction is very slow on primary-key tables.
Either way a reader sees all-old or all-new contents. Measured here: CDNOW master (70k rows) in
about 1.5 s; 3 million rows in about 27 s on DuckDB, most of it DuckDB building the primary keys.

Amounts are exact decimals with at most 2 places (never floats; floats in Parquet are accepted
only when they are cents plus binary noise). A NEGATIVE amount is a refund or return. It is
rejected unless --allow-negative; then it is not an order of its own: it is added to
`refund_amount` of the same customer's latest order placed at or before the refund's time, whose
status becomes 'partially_refunded' or 'refunded' (refunds may not exceed the order's amount) and
whose `updated_at` becomes the refund's time. That is the contract's meaning: a refund lowers net
revenue and a fully refunded order is not a purchase.

Times are UTC by contract: date-only values mean midnight UTC; ISO values with a zone offset are
converted to UTC.

Reading and validation run in DuckDB: CSV with a single-character delimiter through `read_csv`
(explicit all-VARCHAR columns, `store_rejects` for malformed lines with their physical line);
whitespace-delimited files read one line per value and split in SQL; Parquet through pyarrow.
Each value is typed in SQL (`try_cast`, `try_strptime` with --date-format) and every rule is a SQL
predicate; one scan finds the first failing row of each. Building the tables is numpy and pyarrow.
Everything in the happy path is vectorised (no per-row Python). Errors raise `TransactionFileError`
naming the physical line (CSV) or row (Parquet), the column and the value.
"""

from __future__ import annotations

import argparse
import csv
import functools
import gzip
import io
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.source import (
    ACQUISITION_CHANNELS,
    CUSTOMERS,
    ORDER_ITEMS,
    ORDERS,
    PRODUCTS,
    SALES_CHANNELS,
    SOURCE_SCHEMA,
    SOURCE_TABLES,
)
from schemas.types import Table, arrow_schema, create_table_sql

UNKNOWN_PRODUCT_ID = "UNKNOWN"
UNKNOWN_CATEGORY = "unknown"
WHITESPACE = "whitespace"

# Logical roles of transaction columns, and the source column name each takes by default.
REQUIRED_ROLES = ("customer_id", "date", "amount")
OPTIONAL_ROLES = ("quantity", "order_id", "cost", "channel")
_ROLE_OPTION = {
    "customer_id": "--customer-column",
    "date": "--date-column",
    "amount": "--amount-column",
    "quantity": "--quantity-column",
    "order_id": "--order-id-column",
    "cost": "--cost-column",
    "channel": "--channel-column",
}
_CUSTOMER_FILE_COLUMNS = (
    "customer_id",
    "signup_at",
    "acquisition_channel",
    "acquisition_cost",
    "region",
    "referred_by",
    "email",
)

_MAX_GROSS_CENTS = 10**14  # decimal(14,2)
_MAX_LINE_CENTS = 10**12  # decimal(12,2)
_INT32_MAX = 2**31 - 1
_NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)$"
_AT_MOST_TWO_DECIMALS = r"^[+-]?\d*(\.\d{0,2}0*)?$"
_AT_MOST_12_INTEGER_DIGITS = r"^[+-]?0*\d{0,12}(\.|$)"
_INTEGER = r"^[+-]?\d+$"
_NO_DELIMITER = "\x1f"  # whitespace files are read one line per value, then split in SQL
_SAMPLE_TIME = datetime(2024, 1, 31, 13, 45, 0)
_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
_FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")
# Unicode White_Space, as trimmed before (Arrow's utf8_trim_whitespace). trim() alone removes
# spaces only and trim() with a character list is slow: it runs only on columns where some value
# may need it (see _Staging._needs_trim), and there only where a regex sees edge whitespace.
_WHITESPACE_CODES = (
    *range(9, 14), 32, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000
)
_WHITESPACE_CHARS_SQL = "(" + " || ".join(f"chr({c})" for c in _WHITESPACE_CODES) + ")"
_EDGE_WHITESPACE = r"^[\s\x0b\x{85}\pZ]|[\s\x0b\x{85}\pZ]$"
# ISO values without a zone: cast to TIMESTAMP directly (the zone-aware cast is several times
# slower; TIMESTAMP alone would ignore an offset instead of converting it).
_NAIVE_ISO = r"^\d{4}-\d{1,2}-\d{1,2}([T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?$"
# One regex for the three amount rules' happy path: the rules run only when it fails somewhere.
_PLAIN_AMOUNT = r"^[+-]?0*\d{0,12}(\.\d{0,2}0*)?$"


class TransactionFileError(ValueError):
    """The input file cannot be imported; the message names the line, the column and the value."""


# --------------------------------------------------------------------------------------------
# Options and results
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportOptions:
    """How to read a transactions file. The defaults read a CSV with header `customer_id,date,amount`.

    `columns` names the file's columns by position (replacing the header, or naming a headerless
    file); columns whose name maps to no role are ignored. `header` None means: a header is
    present unless `columns` is given, in which case line 1 is a header exactly when its amount
    field is not a number.
    """

    format: str = "auto"  # auto (by extension) | csv | parquet
    delimiter: str | None = None  # one character, or "whitespace"; default ',' (tab for .tsv/.tab)
    header: bool | None = None
    columns: tuple[str, ...] | None = None
    customer_column: str = "customer_id"
    date_column: str = "date"
    amount_column: str = "amount"
    quantity_column: str | None = None  # None: a column named 'quantity' if present, else 1
    order_id_column: str | None = None  # None: 'order_id' if present, else one order per row
    cost_column: str | None = None  # None: 'cost' if present, else 0
    channel_column: str | None = None  # None: 'channel' if present, else sales_channel
    date_format: str | None = None  # strptime format; None: ISO 8601 date or date-time
    encoding: str = "utf8"
    currency: str = "USD"
    default_channel: str = "organic"  # customers.acquisition_channel of derived customers
    sales_channel: str = "web"  # orders.channel when there is no channel column
    allow_negative: bool = False
    customers_path: Path | None = None

    def role_columns(self) -> dict[str, str | None]:
        """Role -> source column name as configured (None: use the default name if present)."""
        return {
            "customer_id": self.customer_column,
            "date": self.date_column,
            "amount": self.amount_column,
            "quantity": self.quantity_column,
            "order_id": self.order_id_column,
            "cost": self.cost_column,
            "channel": self.channel_column,
        }


@dataclass(frozen=True)
class ImportStats:
    """What one import read and wrote."""

    path: Path
    transactions: int  # data rows read from the file
    orders: int
    order_items: int
    customers: int
    customers_from_file: int
    refunds: int  # negative-amount rows applied to earlier orders
    products: int
    gross_amount: Decimal  # sum of orders.gross_amount (= sum of the non-negative amounts)
    refund_amount: Decimal  # sum of orders.refund_amount
    first_ordered_at: datetime
    last_ordered_at: datetime
    header: bool
    columns: dict[str, str] = field(default_factory=dict)  # role -> source column used
    warehouse: str | None = None  # masked URL written to; None for a dry run
    seconds: float = 0.0

    @property
    def net_amount(self) -> Decimal:
        return self.gross_amount - self.refund_amount

    def summary(self) -> str:
        target = f"into {self.warehouse}" if self.warehouse else "(dry run: nothing written)"
        refunds = f", {self.refunds:,} refunds ({self.refund_amount:,})" if self.refunds else ""
        return (
            f"imported {self.path.name} {target}: {self.transactions:,} transactions -> "
            f"{self.orders:,} orders, {self.order_items:,} order lines, {self.customers:,} customers"
            f"{refunds}; gross {self.gross_amount:,}; {self.first_ordered_at:%Y-%m-%d} .. "
            f"{self.last_ordered_at:%Y-%m-%d}; {self.seconds:.1f}s"
        )


# --------------------------------------------------------------------------------------------
# Reading into DuckDB: a raw table of text (CSV) or native (Parquet) columns, named by role
# --------------------------------------------------------------------------------------------
@dataclass
class _Source:
    """Where the rows came from: turns a data-row index into 'line N' (CSV) or 'row N' (Parquet)."""

    path: Path
    kind: str  # csv | parquet
    header_lines: int = 0
    delimiter: str = ","
    encoding: str = "utf8"
    role_to_source: dict[str, str] = field(default_factory=dict)
    # Data row (0-based) -> physical line; set by the CSV readers, asked on the error path only.
    locate: Callable[[int], int] | None = None
    key_is_line: bool = False  # the raw table's `_key` is the physical line (else the data row)
    # What DuckDB reads: the file itself, or a UTF-8 copy when DuckDB lacks its encoding.
    read_path: Path | None = None
    read_encoding: str = "utf-8"

    def where(self, row: int) -> str:
        if self.kind == "parquet" or self.locate is None:
            return f"{self.path.name} row {row + 1}"
        return f"{self.path.name} line {self.locate(row)}"

    def where_key(self, key: int) -> str:
        """Like `where`, for a value of the raw table's `_key` column."""
        return f"{self.path.name} line {key}" if self.key_is_line else self.where(key)

    def column(self, role: str) -> str:
        return self.role_to_source.get(role, role)


def _fail(source: _Source, row: int, role: str, problem: str) -> TransactionFileError:
    return TransactionFileError(f"{source.where(row)}, column {source.column(role)!r}: {problem}")


@dataclass
class _RawTable:
    """The temp table or view `raw` on `con`: `_key` plus one column per role found in the file.

    `_key` orders the rows as in the file: the data row (0-based) or, for whitespace files, the
    physical line (numbering data rows would cost a window over the whole file).
    """

    con: duckdb.DuckDBPyConnection
    source: _Source
    header: bool
    rows: int
    types: dict[str, str]  # role -> DuckDB type of its raw column
    trimmed: bool = False  # text values carry no surrounding whitespace (split on it)

    def close(self) -> None:
        """Drop the connection (its temp tables go with it) and any transcoded copy of the file."""
        self.con.close()
        if self.source.read_path is not None and self.source.read_path != self.source.path:
            self.source.read_path.unlink(missing_ok=True)


_DATABASE_LOCK = threading.Lock()


@functools.cache
def _database(pid: int) -> duckdb.DuckDBPyConnection:
    """The importer's private in-memory DuckDB, one per process (`pid`: never shared across a fork)."""
    del pid
    return duckdb.connect(":memory:")


def _connect() -> duckdb.DuckDBPyConnection:
    """A new connection with its own temp tables. Opening a database costs about 20 ms, a cursor
    on an open one almost nothing."""
    with _DATABASE_LOCK:  # a connection is not safe to share between threads, even for cursor()
        con = _database(os.getpid()).cursor()
    # Zoned values become naive UTC when cast to TIMESTAMP only when the session zone is UTC.
    con.execute("SET TimeZone = 'UTC'")
    return con


def _first(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None
) -> tuple[Any, ...] | None:
    """The first row of a query, or None. Fetches to the end: DuckDB refuses other work on a
    connection while a result is unfinished."""
    rows = con.execute(sql, params).fetchall()
    return tuple(rows[0]) if rows else None


def _finish(raw: _RawTable) -> _RawTable:
    """Fill in the row count and the column types of the raw table just created."""
    described = raw.con.execute("DESCRIBE raw").fetchall()
    raw.types = {str(r[0]): str(r[1]) for r in described if not str(r[0]).startswith("_")}
    count = _first(raw.con, "SELECT count(*) FROM raw")
    raw.rows = int(count[0]) if count else 0
    return raw


# --------------------------------------------------------------------------------------------
# Small text helpers (the first line only: header detection and delimiter hints)
# --------------------------------------------------------------------------------------------
def _open_binary(path: Path) -> io.BufferedIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def _python_encoding(encoding: str) -> str:
    return "utf-8-sig" if encoding.lower().replace("-", "") in ("utf8", "utf8sig") else encoding


def _duckdb_encoding(encoding: str) -> str | None:
    """DuckDB's name for an encoding it reads built in (utf-8, utf-16, latin-1), else None."""
    key = encoding.lower().replace("-", "").replace("_", "")
    names = {
        "utf8": "utf-8", "utf8sig": "utf-8", "utf16": "utf-16", "latin1": "latin-1", "iso88591": "latin-1"
    }
    return names.get(key)


def _readable_by_duckdb(source: _Source) -> None:
    """Set what DuckDB reads: the file, or a UTF-8 copy when DuckDB lacks its encoding (cp1252...).

    The copy keeps every line where it was, so line numbers stay those of the file.
    """
    known = _duckdb_encoding(source.encoding)
    if known is not None:
        source.read_path, source.read_encoding = source.path, known
        return
    with _open_binary(source.path) as f:
        data = f.read()
    try:
        text = data.decode(source.encoding)
    except LookupError:
        raise TransactionFileError(f"--encoding {source.encoding!r}: unknown encoding") from None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TransactionFileError(
            f"{source.path.name} line {line}: not valid {source.encoding} text; use --encoding"
        ) from None
    with tempfile.NamedTemporaryFile("wb", suffix=".csv", prefix="import-", delete=False) as out:
        out.write(text.encode("utf-8"))
    source.read_path, source.read_encoding = Path(out.name), "utf-8"


def _split_line(text: str, delimiter: str) -> list[str]:
    if delimiter == WHITESPACE:
        return text.split()
    return next(csv.reader([text], delimiter=delimiter), [""])


def _describe_delimiter(delimiter: str) -> str:
    if delimiter == WHITESPACE:
        return "runs of whitespace (--delimiter whitespace)"
    if delimiter == "\t":
        return "tab ('\\t')"
    return repr(delimiter)


def _delimiter_option(delimiter: str) -> str:
    return {"\t": "'\\t'", WHITESPACE: WHITESPACE}.get(delimiter, repr(delimiter))


def _detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        if fmt not in ("csv", "parquet"):
            raise TransactionFileError(f"unknown format {fmt!r}: use csv or parquet")
        return fmt
    return "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"


def _default_delimiter(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    return "\t" if ".tsv" in suffixes or ".tab" in suffixes else ","


def _resolve_roles(
    names: Sequence[str], wanted: dict[str, str | None], defaults: dict[str, str]
) -> dict[str, str]:
    """Role -> the file's column name. Exact match first, then case-insensitive."""
    lower: dict[str, list[str]] = {}
    for n in names:
        lower.setdefault(n.lower(), []).append(n)
    resolved: dict[str, str] = {}
    for role, configured in wanted.items():
        name = configured if configured is not None else defaults.get(role)
        if name is None:
            continue
        if name in names:
            if list(names).count(name) > 1:
                raise TransactionFileError(
                    f"column {name!r} appears more than once in the file's columns: {', '.join(names)}"
                )
            resolved[role] = name
        elif len(lower.get(name.lower(), [])) == 1:
            resolved[role] = lower[name.lower()][0]
    return resolved


def _missing_roles_error(
    source: _Source,
    names: Sequence[str],
    missing: Sequence[str],
    wanted: dict[str, str | None],
    defaults: dict[str, str],
    first_line: str | None,
    needed: int,
    role_options: dict[str, str],
) -> TransactionFileError:
    what = ", ".join(repr(wanted.get(r) or defaults.get(r, r)) for r in missing)
    if first_line is not None and len(names) < needed:
        hint = _suggest_delimiter(first_line, source.delimiter, needed)
        return TransactionFileError(
            f"{source.path.name} line 1: found {len(names)} column(s) using delimiter "
            f"{_describe_delimiter(source.delimiter)} but at least {needed} are needed "
            f"(missing {what}); the line reads {first_line!r}.{hint}"
        )
    options = ", ".join(f"{role_options[r]} NAME" for r in missing if r in role_options)
    how = f" Name the column(s) with {options}, or name all columns with --columns." if options else ""
    return TransactionFileError(
        f"{source.path.name}: missing required column(s) {what}; found columns: "
        f"{', '.join(names) if names else '(none)'}.{how}"
    )


def _suggest_delimiter(line: str, tried: str, needed: int) -> str:
    best: tuple[int, str] | None = None
    for candidate in (",", ";", "\t", "|", WHITESPACE):
        if candidate == tried:
            continue
        width = len(_split_line(line, candidate))
        if width >= needed and (best is None or width > best[0]):
            best = (width, candidate)
    if best is None:
        return " Is the delimiter right? (--delimiter ',', ';', '\\t', '|' or whitespace)"
    return (
        f" Is the delimiter right? {_describe_delimiter(best[1])} splits it into {best[0]} columns: "
        f"try --delimiter {_delimiter_option(best[1])}"
    )


def _read_first_line(path: Path, encoding: str) -> str:
    with _open_binary(path) as f:
        raw = f.readline(1 << 20)
    try:
        return raw.decode(_python_encoding(encoding)).rstrip("\r\n")
    except LookupError:
        raise TransactionFileError(f"--encoding {encoding!r}: unknown encoding") from None
    except UnicodeDecodeError as exc:
        raise TransactionFileError(
            f"{path.name} line 1: not valid {encoding} text ({exc}); use --encoding"
        ) from None


# --------------------------------------------------------------------------------------------
# CSV through DuckDB
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Wanted:
    """Which roles to look for in a file's columns, and how to name them in errors."""

    roles: dict[str, str | None]  # role -> configured column name (None: the default if present)
    required: Sequence[str]
    defaults: dict[str, str]
    role_options: dict[str, str] = field(default_factory=dict)  # role -> CLI option naming it
    header_probe_role: str | None = None  # with --columns: line 1 is a header when this is no number

    def needed(self) -> list[str]:
        """Roles that must be found: the required ones and those named by an option."""
        return [r for r in self.roles if r in self.required or self.roles[r] is not None]


def _read_csv(
    path: Path,
    delimiter: str,
    header: bool | None,
    columns: tuple[str, ...] | None,
    wanted: _Wanted,
    encoding: str,
) -> _RawTable:
    source = _Source(path=path, kind="csv", delimiter=delimiter, encoding=encoding)
    first_line = _read_first_line(path, encoding)
    if not first_line.strip():
        raise TransactionFileError(
            f"{path.name} line 1 is empty: the file must start with its header or its first transaction"
        )
    first_fields = [f.strip() for f in _split_line(first_line, delimiter)]

    if columns is not None:
        names = list(columns)
        if len(set(names)) != len(names):
            raise TransactionFileError(f"--columns names a column more than once: {', '.join(names)}")
        if len(first_fields) != len(names):
            hint = (
                _suggest_delimiter(first_line, delimiter, len(names))
                if len(first_fields) < len(names)
                else ""
            )
            raise TransactionFileError(
                f"{path.name} line 1: found {len(first_fields)} column(s) using delimiter "
                f"{_describe_delimiter(delimiter)} but --columns names {len(names)} "
                f"({', '.join(names)}); the line reads {first_line!r}.{hint}"
            )
        if header is None:
            probe_role = wanted.header_probe_role
            probe = (
                _resolve_roles(names, {probe_role: wanted.roles.get(probe_role)}, wanted.defaults)
                if probe_role
                else {}
            )
            probe_name = probe.get(probe_role or "")
            header = probe_name is not None and not re.match(_NUMBER, first_fields[names.index(probe_name)])
    else:
        if header is False:
            raise TransactionFileError("a file without a header needs --columns to name its columns")
        header = True
        names = first_fields

    source.header_lines = 1 if header else 0
    roles = _resolve_roles(names, wanted.roles, wanted.defaults)
    missing = [r for r in wanted.needed() if r not in roles]
    if missing:
        needed = len(wanted.needed())
        raise _missing_roles_error(
            source,
            names,
            missing,
            wanted.roles,
            wanted.defaults,
            first_line if header else None,
            needed,
            wanted.role_options,
        )
    source.role_to_source = roles

    _readable_by_duckdb(source)
    raw = _RawTable(_connect(), source, bool(header), 0, {}, trimmed=delimiter == WHITESPACE)
    try:
        if delimiter == WHITESPACE:
            _read_whitespace_columns(raw.con, source, names, roles)
        else:
            _read_delimited_columns(raw.con, source, names, roles)
        return _finish(raw)
    except BaseException:
        raw.close()
        raise


def _lines_sql(source: _Source) -> tuple[str, dict[str, Any]]:
    """read_csv of a file as one VARCHAR per physical line (an empty line is one NULL value)."""
    sql = (
        "read_csv($path, columns = {'line': 'VARCHAR'}, delim = $nodelim, quote = '', escape = '', "
        "header = false, auto_detect = false, encoding = $encoding)"
    )
    return sql, {"path": str(source.read_path), "nodelim": _NO_DELIMITER, "encoding": source.read_encoding}


def _read_delimited_columns(
    con: duckdb.DuckDBPyConnection, source: _Source, names: list[str], roles: dict[str, str]
) -> None:
    """The role columns of a delimited file, as text, read by DuckDB's read_csv into `raw`.

    Malformed lines (too few or too many fields, bad quoting or encoding) land in the rejects
    table with their physical line; the first one is the error.
    """
    # Unique internal names: the file's own names may repeat or clash with role names or SQL.
    internal = [f"c{i}" for i in range(len(names))]
    spec = ", ".join(f"'{c}': 'VARCHAR'" for c in internal)
    picked = ", ".join(f'{internal[names.index(col)]} AS "{role}"' for role, col in roles.items())
    try:
        con.execute(
            f"CREATE TEMP TABLE raw_csv AS SELECT {picked} FROM read_csv($path, columns = {{{spec}}}, "
            "delim = $delim, quote = '\"', escape = '\"', header = false, skip = $skip, "
            "auto_detect = false, encoding = $encoding, "
            "store_rejects = true, rejects_table = 'rejects', rejects_scan = 'rejects_scan')",
            {
                "path": str(source.read_path),
                "delim": source.delimiter,
                "skip": source.header_lines,
                "encoding": source.read_encoding,
            },
        )
    except duckdb.Error as exc:
        raise TransactionFileError(f"{source.path.name}: cannot read as CSV: {_one_line(exc)}") from None
    rejected = _first(
        con,
        "SELECT line, CAST(error_type AS VARCHAR), csv_line, error_message FROM rejects ORDER BY line LIMIT 1",
    )
    if rejected is not None:
        raise _rejected_line_error(source, len(names), *rejected)
    con.execute("CREATE TEMP VIEW raw AS SELECT rowid AS _key, * FROM raw_csv")

    def locate(row: int) -> int:
        # The (row+1)-th non-empty line after the header, as DuckDB skips empty lines too.
        lines, params = _lines_sql(source)
        con.execute(f"CREATE TEMP TABLE IF NOT EXISTS lines AS SELECT line FROM {lines}", params)
        # rowid is the insertion order of `lines`, i.e. the physical line number minus one.
        found = _first(
            con,
            "SELECT rowid + 1 FROM lines WHERE rowid >= $skip AND line IS NOT NULL "
            "ORDER BY rowid LIMIT 1 OFFSET $row",
            {"skip": source.header_lines, "row": row},
        )
        return int(found[0]) if found else row + 1 + source.header_lines

    source.locate = locate


def _rejected_line_error(
    source: _Source, expected: int, line: int, error_type: str, text: str | None, message: str | None
) -> TransactionFileError:
    """The error for the first line in DuckDB's rejects table, worded as for any other line."""
    where = f"{source.path.name} line {line}"
    shown = (text or "").strip("\r\n")
    if error_type in ("MISSING COLUMNS", "TOO MANY COLUMNS"):
        found = re.search(r"Found: (\d+)", message or "")
        actual = int(found.group(1)) if found else len(_split_line(shown, source.delimiter))
        return TransactionFileError(
            f"{where}: expected {expected} columns separated by {_describe_delimiter(source.delimiter)} "
            f"but found {actual}; the line reads {shown!r}"
        )
    if error_type == "INVALID ENCODING":
        return TransactionFileError(f"{where}: not valid {source.encoding} text; use --encoding")
    return TransactionFileError(
        f"{where}: cannot read as CSV ({error_type.lower()}: {_one_line(message or '')}); "
        f"the line reads {shown!r}"
    )


def _one_line(text: object) -> str:
    """DuckDB's multi-line messages on one line (the CLI prints errors as one line)."""
    return " ".join(str(text).split())


def _read_whitespace_columns(
    con: duckdb.DuckDBPyConnection, source: _Source, names: list[str], roles: dict[str, str]
) -> None:
    """The role columns of a file whose fields are separated by runs of whitespace (CDNOW).

    DuckDB reads each line as one value (numbered by its physical line); one regular expression
    with a group per column splits it (faster than a split into lists) and matches only lines
    with exactly that many fields. Blank lines are skipped, as in the line numbering of errors.
    """
    internal = [f"c{i}" for i in range(len(names))]
    # A constant, not a parameter: DuckDB compiles a constant pattern once.
    pattern = r"^\s*" + r"\s+".join([r"(\S+)"] * len(names)) + r"\s*$"
    lines, params = _lines_sql(source)
    try:
        con.execute(f"CREATE TEMP TABLE lines AS SELECT line FROM {lines}", params)
        # rowid is the insertion order of `lines`, i.e. the physical line number minus one.
        con.execute(
            "CREATE TEMP TABLE fields AS SELECT rowid + 1 AS _key, "
            f"regexp_extract(line, {_lit(pattern)}, [{', '.join(_lit(c) for c in internal)}]) AS f FROM lines "
            r"WHERE rowid >= $skip AND regexp_matches(line, '\S')",
            {"skip": source.header_lines},
        )
    except duckdb.Error as exc:
        raise TransactionFileError(f"{source.path.name}: cannot read as text: {_one_line(exc)}") from None
    # No match leaves every group empty, and a field is never empty.
    bad = _first(con, "SELECT _key FROM fields WHERE f.c0 = '' ORDER BY _key LIMIT 1")
    if bad is not None:
        line = _first(con, "SELECT line FROM lines WHERE rowid = $row", {"row": int(bad[0]) - 1})
        found = (line[0] if line else "").split()
        raise TransactionFileError(
            f"{source.path.name} line {bad[0]}: expected {len(names)} columns separated by "
            f"{_describe_delimiter(WHITESPACE)} but found {len(found)}; the line reads {' '.join(found)!r}"
        )
    picked = ", ".join(f'f.{internal[names.index(col)]} AS "{role}"' for role, col in roles.items())
    con.execute(f"CREATE TEMP VIEW raw AS SELECT _key, {picked} FROM fields")

    def locate(row: int) -> int:
        found = _first(con, "SELECT _key FROM fields ORDER BY _key LIMIT 1 OFFSET $row", {"row": row})
        return int(found[0]) if found else row + 1 + source.header_lines

    source.locate = locate
    source.key_is_line = True


# --------------------------------------------------------------------------------------------
# Parquet through pyarrow
# --------------------------------------------------------------------------------------------
def _read_parquet(path: Path, columns: tuple[str, ...] | None, wanted: _Wanted) -> _RawTable:
    source = _Source(path=path, kind="parquet")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise TransactionFileError(f"{path.name}: cannot read as Parquet: {exc}") from None
    names = list(schema.names)
    file_names = names
    if columns is not None:
        if len(columns) != len(names):
            raise TransactionFileError(
                f"{path.name}: --columns names {len(columns)} columns but the Parquet file has "
                f"{len(names)}: {', '.join(names)}"
            )
        names = list(columns)
    roles = _resolve_roles(names, wanted.roles, wanted.defaults)
    missing = [r for r in wanted.needed() if r not in roles]
    if missing:
        raise _missing_roles_error(
            source, names, missing, wanted.roles, wanted.defaults, None, 0, wanted.role_options
        )
    source.role_to_source = roles
    picked = {role: file_names[names.index(col)] for role, col in roles.items()}
    table = pq.read_table(path, columns=list(dict.fromkeys(picked.values())))
    arrays = {"_key": pa.array(np.arange(table.num_rows, dtype=np.int64))}
    arrays.update({role: table.column(col) for role, col in picked.items()})
    con = _connect()
    con.register("raw_arrow", pa.table(arrays))
    con.execute("CREATE TEMP TABLE raw AS SELECT * FROM raw_arrow")
    con.unregister("raw_arrow")
    return _finish(_RawTable(con, source, header=False, rows=0, types={}))


def _read_tabular(
    path: Path,
    *,
    fmt: str,
    delimiter: str | None,
    header: bool | None,
    columns: tuple[str, ...] | None,
    encoding: str,
    wanted: _Wanted,
) -> _RawTable:
    """Read a CSV or Parquet file into the raw table of a new DuckDB connection."""
    if not path.is_file():
        raise TransactionFileError(f"file not found: {path}")
    if _detect_format(path, fmt) == "parquet":
        return _read_parquet(path, columns, wanted)
    return _read_csv(path, delimiter or _default_delimiter(path), header, columns, wanted, encoding)


# --------------------------------------------------------------------------------------------
# Typing and validation in SQL: vectorised; the first broken rule is reported with its line
# --------------------------------------------------------------------------------------------
def _date_hint(date_format: str | None) -> str:
    if date_format is None:
        return "expected an ISO 8601 date or date-time like 2024-01-31 or 2024-01-31 13:45:00 (use --date-format for others)"
    return f"expected format {date_format} (e.g. {_SAMPLE_TIME.strftime(date_format)})"


def _lit(pattern: str) -> str:
    """A constant of this module (a regex) as a SQL string literal."""
    return "'" + pattern.replace("'", "''") + "'"


def _quoted(problem: str) -> Callable[[Any], str]:
    """A message: the value in quotes, then what is wrong with it."""
    return lambda value: f"{value!r} {problem}"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Rule:
    role: str
    bad: str  # SQL predicate over the staged columns: true on a row that breaks the rule
    shown: str  # SQL expression for the value the message shows
    problem: Callable[[Any], str]  # shown value -> what is wrong
    guard: str | None = None  # a cheaper predicate, true wherever this rule (or its group's) is


@dataclass
class _Staging:
    """Typed columns of one raw table, computed in SQL, and the rules their rows must pass.

    `texts` are computed from `raw` (trimmed text, NULL when empty); `values` from the texts
    (with `try_cast`/`try_strptime`, so building never fails); rules and outputs may refer to
    both. `run` builds the table once, finds the first failing row of every rule with one
    aggregate (a second only on the way to an error) and returns the outputs in file order.
    """

    raw: _RawTable
    texts: dict[str, str] = field(default_factory=dict)
    text_roles: dict[str, str] = field(default_factory=dict)  # text name -> its raw column
    values: dict[str, str] = field(default_factory=dict)
    rules: list[_Rule] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    native: set[str] = field(default_factory=set)  # raw columns used as they are (Parquet types)

    def has(self, role: str) -> bool:
        return role in self.raw.types

    def _type(self, role: str) -> str:
        return self.raw.types[role].upper()

    def _text(self, role: str) -> str:
        """The trimmed text of a raw column, NULL when empty (`{text}` is filled in by `run`)."""
        name = f"t_{role}"
        self.text_roles[name] = role
        self.texts[name] = "nullif({text}, '')"
        return name

    def _needs_trim(self) -> set[str]:
        """The text roles where some value may start or end with whitespace.

        A cheap scan of first and last characters (ASCII control or space, or any non-ASCII
        character) spares the trimming expression, which is slow, on columns that need none.
        """
        roles = sorted(set(self.text_roles.values()))
        if self.raw.trimmed or not roles:
            return set()
        ends = []
        for role in roles:
            x = f"CAST({_q(role)} AS VARCHAR)"
            ends += [f"min(ord({x})), max(ord({x})), min(ord(right({x}, 1))), max(ord(right({x}, 1)))"]
        found = list(_first(self.raw.con, f"SELECT {', '.join(ends)} FROM raw") or ())
        return {
            role
            for k, role in enumerate(roles)
            if any(v is not None and not 33 <= v <= 127 for v in found[4 * k : 4 * k + 4])
        }

    def _native(self, role: str) -> str:
        self.native.add(role)
        return _q(role)

    def _rule(
        self, role: str, bad: str, shown: str, problem: Callable[[Any], str], guard: str | None = None
    ) -> None:
        self.rules.append(_Rule(role, bad, shown, problem, guard))

    def text_id(self, role: str, what: str) -> str:
        """Required text (ids): trimmed, never empty."""
        t = self._text(role)
        self._rule(role, f"{t} IS NULL", "NULL", lambda _: f"empty {what}")
        return t

    def unique_id(self, role: str, what: str, noun: str) -> str:
        """Required text that no other row has (the first row of a repeated value is reported)."""
        t = self.text_id(role, what)
        self.values[f"n_{role}"] = f"count(*) OVER (PARTITION BY {t})"
        self._rule(role, f"n_{role} > 1", t, lambda v: f"{noun} {v!r} appears more than once")
        return t

    def rule(self, role: str, bad: str, problem: str) -> None:
        """A rule with a fixed message, checked after the ones added before it."""
        self._rule(role, bad, "NULL", lambda _: problem)

    def optional_text(self, role: str) -> str:
        """Trimmed text, NULL when empty."""
        return self._text(role)

    def choice(self, role: str, allowed: Sequence[str], what: str, default: str | None = None) -> str:
        """Lower-cased text that must be one of `allowed`; empty is `default` (None: an error)."""
        t = self._text(role)
        name = f"v_{role}"
        param = f"allowed_{role}"
        self.params[param] = list(allowed)
        if default is None:
            self.values[name] = f"coalesce(lower({t}), '')"
        else:
            self.params[f"default_{role}"] = default
            self.values[name] = f"coalesce(lower({t}), $default_{role})"
        listed = ", ".join(allowed)
        self._rule(
            role, f"NOT list_contains(${param}, {name})", name, lambda v: f"{v!r} is not {what} ({listed})"
        )
        return name

    def cents(self, role: str, *, max_integer_digits: int = 12, empty_as_zero: bool = False) -> str:
        """Money to BIGINT cents, exactly. Text must be a plain decimal with at most 2 places."""
        name = f"v_{role}"
        if self._type(role) in _FLOAT_TYPES:
            x = self._native(role)
            # Floats only when they are cents plus binary noise.
            self._rule(
                role,
                f"{x} IS NULL OR abs({x} - round({x}, 2)) > 1e-6",
                x,
                lambda v: f"{v!r} is not an amount with at most 2 decimal places",
            )
            self.values[name] = f"TRY_CAST(round(round({x}, 2) * 100) AS BIGINT)"
            shown = x
        else:
            t = self._text(role)
            if empty_as_zero:
                self.texts[t] = f"coalesce({self.texts[t]}, '0')"  # still a template
            else:
                empty = "empty value (expected a number like 12.34)"
                self._rule(role, f"{t} IS NULL", "NULL", lambda _: empty)
            # Exact: the rules below leave at most 12 integer digits and 2 significant decimals.
            self.values[name] = f"TRY_CAST(TRY_CAST({t} AS DECIMAL(18, 2)) * 100 AS BIGINT)"
            # A text passing _PLAIN_AMOUNT with a value has a digit, so passes all three rules.
            guard = f"NOT regexp_matches({t}, {_lit(_PLAIN_AMOUNT)}) OR {name} IS NULL"
            for pattern, problem in (
                (_NUMBER, "is not a number (expected digits with an optional '.', like 12.34)"),
                (_AT_MOST_TWO_DECIMALS, "has more than 2 decimal places"),
                (_AT_MOST_12_INTEGER_DIGITS, "is too large (at most 12 digits before the decimal point)"),
            ):
                self._rule(role, f"NOT regexp_matches({t}, {_lit(pattern)})", t, _quoted(problem), guard)
            shown = t
        self._rule(role, f"{name} IS NULL", shown, lambda v: f"{v!r} is too large")
        limit = 10 ** (max_integer_digits + 2)
        self._rule(role, f"abs({name}) >= {limit}", name, lambda v: f"{v / 100:.2f} is too large")
        return name

    def quantity(self, role: str = "quantity") -> str:
        """Whole numbers to BIGINT, within INTEGER range."""
        name = f"v_{role}"
        if self._type(role) in _INTEGER_TYPES:
            x = self._native(role)
            self._rule(role, f"{x} IS NULL", "NULL", lambda _: "empty quantity")
            self.values[name] = f"TRY_CAST({x} AS BIGINT)"
        else:
            t = self._text(role)
            self._rule(role, f"{t} IS NULL", "NULL", lambda _: "empty quantity (expected a whole number)")
            self._rule(role, f"NOT regexp_matches({t}, {_lit(_INTEGER)})", t, _quoted("is not a whole number"))
            self._rule(role, f"length({t}) > 11", t, lambda v: f"{v!r} is too large")
            self.values[name] = f"TRY_CAST({t} AS BIGINT)"
        self._rule(role, f"{name} IS NULL OR abs({name}) > {_INT32_MAX}", name, lambda v: f"{v} is too large")
        return name

    def times(self, role: str, date_format: str | None, *, optional: bool = False) -> str:
        """Dates or date-times to BIGINT microseconds since the epoch (UTC); NULL when empty.

        Empty values are an error unless `optional`. Date-only values mean midnight UTC; ISO
        values with a zone offset are converted to UTC (the session zone is UTC).
        """
        name = f"v_{role}"
        kind = self._type(role)
        if kind.startswith("TIMESTAMP") or kind == "DATE":
            x = self._native(role)
            if not optional:
                self._rule(role, f"{x} IS NULL", "NULL", lambda _: "empty date")
            self.values[name] = f"epoch_us(CAST({x} AS TIMESTAMP))"
            return name
        t = self._text(role)
        hint = _date_hint(date_format)
        if not optional:
            self._rule(role, f"{t} IS NULL", "NULL", lambda _: f"empty date ({hint})")
        if date_format is None:
            parsed = (
                f"CASE WHEN regexp_matches({t}, {_lit(_NAIVE_ISO)}) THEN TRY_CAST({t} AS TIMESTAMP) "
                f"ELSE CAST(TRY_CAST({t} AS TIMESTAMPTZ) AS TIMESTAMP) END"
            )
        else:
            param = f"format_{role}"
            self.params[param] = date_format
            parsed = f"CAST(try_strptime({t}, ${param}) AS TIMESTAMP)"
        self.values[name] = f"epoch_us({parsed})"
        self._rule(
            role,
            f"{t} IS NOT NULL AND {name} IS NULL",
            t,
            lambda v: f"cannot read {v!r} as a date; {hint}",
        )
        return name

    def _first_failures(self) -> list[Any]:
        """The `_key` of the first row breaking each rule (None: no row does), in rule order.

        One scan checks the unguarded rules and the guards; a second scan, only when a guard
        fires (an error is coming), checks the rules behind it. A NULL predicate is no failure:
        the empty-value rule before it reports those rows.
        """
        con = self.raw.con

        def scan(predicates: list[str]) -> list[Any]:
            sql = "SELECT " + ", ".join(f"min(_key) FILTER (WHERE {p})" for p in predicates) + " FROM staged"
            return list(_first(con, sql, _used(sql, self.params)) or [None] * len(predicates))

        guards = list(dict.fromkeys(r.guard for r in self.rules if r.guard is not None))
        plain = [r for r in self.rules if r.guard is None]
        first = scan([r.bad for r in plain] + guards)
        found = dict(zip((id(r) for r in plain), first, strict=False))
        fired = {g for g, key in zip(guards, first[len(plain) :], strict=True) if key is not None}
        behind = [r for r in self.rules if r.guard in fired]
        if behind:
            found.update(zip((id(r) for r in behind), scan([r.bad for r in behind]), strict=True))
        return [found.get(id(r)) for r in self.rules]

    def run(self, outputs: Sequence[str], date_format: str | None = None) -> pa.Table:
        """Build the typed table, raise for the first broken rule, return `outputs` by file row."""
        con, source = self.raw.con, self.raw.source
        # Only what the rules and outputs use: copying every raw column costs time on big files.
        texts = "".join(f", {_q(role)}" for role in sorted(self.native))
        trim = self._needs_trim()
        for name, template in self.texts.items():
            role = self.text_roles[name]
            text = f"CAST({_q(role)} AS VARCHAR)"
            if role in trim:
                text = (
                    f"CASE WHEN regexp_matches({text}, {_lit(_EDGE_WHITESPACE)}) "
                    f"THEN trim({text}, {_WHITESPACE_CHARS_SQL}) ELSE {text} END"
                )
            texts += f", {template.format(text=text)} AS {name}"
        values = "".join(f", {sql} AS {name}" for name, sql in self.values.items())
        try:
            sql = f"CREATE OR REPLACE TEMP TABLE staged AS SELECT *{values} FROM (SELECT _key{texts} FROM raw)"
            con.execute(sql, _used(sql, self.params))
        except duckdb.Error as exc:
            if date_format is not None and "format" in str(exc).lower():
                raise TransactionFileError(f"--date-format {date_format!r}: {_one_line(exc)}") from None
            raise
        if self.rules:
            for rule, key in zip(self.rules, self._first_failures(), strict=True):
                if key is not None:
                    shown = _first(con, f"SELECT {rule.shown} FROM staged WHERE _key = $key", {"key": key})
                    raise TransactionFileError(
                        f"{source.where_key(int(key))}, column {source.column(rule.role)!r}: "
                        f"{rule.problem(shown[0] if shown else None)}"
                    )
        columns = ", ".join(outputs)
        return con.sql(f"SELECT {columns} FROM staged ORDER BY _key").to_arrow_table()


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The named parameters `sql` refers to (DuckDB rejects values for parameters it lacks)."""
    used = {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}
    return used or None


def _decimal_to_cents(arr: pa.Array) -> np.ndarray:
    """decimal128(p<=18, 2) without nulls -> int64 unscaled values (cents), zero copy."""
    words = np.frombuffer(arr.buffers()[1], dtype=np.int64).reshape(-1, 2)
    return words[arr.offset : arr.offset + len(arr), 0].copy()


def _cents_to_decimal(cents: np.ndarray, precision: int) -> pa.Array:
    """int64 cents -> decimal128(precision, 2), exact (two's complement 128-bit words)."""
    words = np.empty((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = cents >> 63
    return pa.Array.from_buffers(
        pa.decimal128(precision, 2), len(cents), [None, pa.py_buffer(words.tobytes())]
    )


def _micros_to_timestamp(micros: np.ndarray) -> pa.Array:
    return pa.array(micros, pa.int64()).cast(pa.timestamp("us"))


def _round_div(cents: np.ndarray, quantity: np.ndarray) -> np.ndarray:
    """cents / quantity rounded half away from zero (quantity >= 1)."""
    sign = np.where(cents < 0, -1, 1)
    return sign * ((2 * np.abs(cents) + quantity) // (2 * quantity))


@dataclass
class _Transactions:
    """Parsed transaction rows: one entry per data row of the file, in file order."""

    customer: pa.Array
    ordered_at: np.ndarray  # int64 microseconds, UTC
    amount: np.ndarray  # int64 cents
    quantity: np.ndarray  # int64
    cost: np.ndarray | None  # int64 cents for the whole row
    channel: pa.Array | None
    order_id: pa.Array | None

    def __len__(self) -> int:
        return len(self.amount)


def _parse_transactions(raw: _RawTable, options: ImportOptions) -> _Transactions:
    """Type and validate the transaction columns in SQL (see `_Staging`), in the order they are
    checked: channel, customer, date, amount, quantity, cost, order id."""
    if raw.rows == 0:
        raise TransactionFileError(
            f"{raw.source.path.name}: no transactions found (the file has no data rows)"
        )
    staging = _Staging(raw)
    outputs = {}
    if staging.has("channel"):
        outputs["channel"] = staging.choice("channel", SALES_CHANNELS, "a sales channel")
    outputs["customer_id"] = staging.text_id("customer_id", "customer id")
    outputs["date"] = staging.times("date", options.date_format)
    outputs["amount"] = staging.cents("amount")
    if staging.has("quantity"):
        outputs["quantity"] = staging.quantity()
    if staging.has("cost"):
        outputs["cost"] = staging.cents("cost")
    if staging.has("order_id"):
        outputs["order_id"] = staging.text_id("order_id", "order id")
    typed = staging.run(list(outputs.values()), options.date_format)
    cols = {role: typed.column(name) for role, name in outputs.items()}

    def text(role: str) -> pa.Array | None:
        return _string_array(cols[role]) if role in cols else None

    def numbers(role: str) -> np.ndarray | None:
        return cols[role].to_numpy().astype(np.int64) if role in cols else None

    customer = text("customer_id")
    ordered_at, amount = numbers("date"), numbers("amount")
    assert customer is not None and ordered_at is not None and amount is not None
    quantity = numbers("quantity")
    return _Transactions(
        customer=customer,
        ordered_at=ordered_at,
        amount=amount,
        quantity=quantity if quantity is not None else np.ones(raw.rows, np.int64),
        cost=numbers("cost"),
        channel=text("channel"),
        order_id=text("order_id"),
    )


def _string_array(values: pa.ChunkedArray) -> pa.Array:
    """One plain `string` array (DuckDB may hand out chunks, large or view strings)."""
    return values.combine_chunks().cast(pa.string())


# --------------------------------------------------------------------------------------------
# Building the source tables
# --------------------------------------------------------------------------------------------
@dataclass
class SourceTables:
    """The rows of one import, in contract schemas, plus what the stats report."""

    tables: dict[str, pa.Table]  # customers, products, orders, order_items
    refunds: int
    customers_from_file: int
    transactions: int = 0  # data rows read
    header: bool = False  # whether line 1 was a header
    columns: dict[str, str] = field(default_factory=dict)  # role -> source column


def _table(contract: Table, arrays: dict[str, pa.Array]) -> pa.Table:
    return pa.Table.from_arrays([arrays[c] for c in contract.column_names], schema=arrow_schema(contract))


def build_source_tables(tx: _Transactions, source: _Source, options: ImportOptions) -> SourceTables:
    """Orders, order lines, products and customers from parsed transactions (see module doc)."""
    n = len(tx)
    rows = np.arange(n)
    refund_mask = tx.amount < 0
    if refund_mask.any() and not options.allow_negative:
        i = int(np.flatnonzero(refund_mask)[0])
        raise _fail(
            source,
            i,
            "amount",
            f"negative amount {tx.amount[i] / 100:.2f} (a refund or return); pass --allow-negative to apply "
            "negative amounts as refunds of the same customer's latest earlier order",
        )
    purchase_rows = rows[~refund_mask]
    refund_rows = rows[refund_mask]
    if purchase_rows.size == 0:
        raise TransactionFileError(f"{source.path.name}: no purchases found (every amount is negative)")
    bad_qty = np.flatnonzero(tx.quantity[purchase_rows] < 1)
    if bad_qty.size:
        i = int(purchase_rows[bad_qty[0]])
        raise _fail(source, i, "quantity", f"{tx.quantity[i]} is not a quantity (at least 1 for a purchase)")
    if tx.cost is not None:
        bad_cost = np.flatnonzero(tx.cost[purchase_rows] < 0)
        if bad_cost.size:
            i = int(purchase_rows[bad_cost[0]])
            raise _fail(source, i, "cost", f"negative cost {tx.cost[i] / 100:.2f}")

    customer_enc = tx.customer.dictionary_encode()
    customer_code = customer_enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    customer_ids = customer_enc.dictionary

    # -- orders: group purchase rows by order id (or one order per row) ----------------------
    if tx.order_id is not None:
        order_enc = pc.take(tx.order_id, pa.array(purchase_rows)).dictionary_encode()
        order_code = order_enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        order_ids = order_enc.dictionary
    else:
        order_code = np.arange(purchase_rows.size)
        row_text = pc.cast(pa.array(purchase_rows + 1), pa.string())
        order_ids = pc.binary_join_element_wise(pc.take(tx.customer, pa.array(purchase_rows)), row_text, "-")
    by_order = np.lexsort((purchase_rows, order_code))
    line_rows = purchase_rows[by_order]  # file rows, grouped by order, in file order within an order
    line_order = order_code[by_order]
    starts = np.flatnonzero(np.r_[True, line_order[1:] != line_order[:-1]])
    n_orders = starts.size
    line_number = np.arange(line_rows.size) - np.repeat(starts, np.diff(np.r_[starts, line_rows.size])) + 1

    line_customer = customer_code[line_rows]
    order_customer = line_customer[starts]
    mixed = np.flatnonzero(line_customer != np.repeat(order_customer, np.diff(np.r_[starts, line_rows.size])))
    if mixed.size:
        i = int(line_rows[mixed[0]])
        first = int(line_rows[starts[line_order[mixed[0]]]])
        raise _fail(
            source,
            i,
            "customer_id",
            f"order {order_ids[int(line_order[mixed[0]])].as_py()!r} has customer {tx.customer[i].as_py()!r} here but "
            f"{tx.customer[first].as_py()!r} on {source.where(first)}; one order belongs to one customer",
        )
    order_time = np.minimum.reduceat(tx.ordered_at[line_rows], starts)
    order_gross = np.add.reduceat(tx.amount[line_rows], starts)
    over = np.flatnonzero(order_gross >= _MAX_GROSS_CENTS)
    if over.size:
        raise _fail(
            source, int(line_rows[starts[over[0]]]), "amount", "order total too large for decimal(14,2)"
        )
    order_first_row = line_rows[starts]

    # -- refunds: each negative row goes to the customer's latest order at or before it -------
    order_refund = np.zeros(n_orders, dtype=np.int64)
    order_updated = order_time.copy()
    if refund_rows.size:
        target = _match_refunds(
            order_customer,
            order_time,
            order_first_row,
            customer_code[refund_rows],
            tx.ordered_at[refund_rows],
        )
        orphan = np.flatnonzero(target < 0)
        if orphan.size:
            i = int(refund_rows[orphan[0]])
            raise _fail(
                source,
                i,
                "amount",
                f"refund {tx.amount[i] / 100:.2f} for customer {tx.customer[i].as_py()!r} has no purchase "
                "at or before its date to refund",
            )
        np.add.at(order_refund, target, -tx.amount[refund_rows])
        np.maximum.at(order_updated, target, tx.ordered_at[refund_rows])
        over_refunded = np.flatnonzero(order_refund > order_gross)
        if over_refunded.size:
            k = int(over_refunded[0])
            last = int(refund_rows[np.flatnonzero(target == k)[-1]])
            raise _fail(
                source,
                last,
                "amount",
                f"refunds for order {order_ids[int(line_order[starts[k]])].as_py()!r} total "
                f"{order_refund[k] / 100:.2f}, more than its amount {order_gross[k] / 100:.2f}",
            )
    status_code = np.where(order_refund == 0, 0, np.where(order_refund == order_gross, 2, 1))
    statuses = pa.array(["completed", "partially_refunded", "refunded"])

    if tx.channel is not None:
        order_channel = pc.take(tx.channel, pa.array(order_first_row))
    else:
        order_channel = pa.repeat(options.sales_channel, n_orders)
    ordered_at = _micros_to_timestamp(order_time)
    order_id_by_order = pc.take(order_ids, pa.array(line_order[starts]))
    zeros_14 = _cents_to_decimal(np.zeros(n_orders, np.int64), 14)
    orders = _table(
        ORDERS,
        {
            "order_id": order_id_by_order,
            "customer_id": pc.take(customer_ids, pa.array(order_customer)),
            "ordered_at": ordered_at,
            "channel": order_channel,
            "status": pc.take(statuses, pa.array(status_code)),
            "currency": pa.repeat(options.currency, n_orders),
            "gross_amount": _cents_to_decimal(order_gross, 14),
            "discount_amount": zeros_14,
            "refund_amount": _cents_to_decimal(order_refund, 14),
            "shipping_cost": _cents_to_decimal(np.zeros(n_orders, np.int64), 12),
            "updated_at": _micros_to_timestamp(order_updated),
        },
    )

    # -- order lines ------------------------------------------------------------------------
    quantity = tx.quantity[line_rows]
    unit_price = _round_div(tx.amount[line_rows], quantity)
    unit_cost = (
        _round_div(tx.cost[line_rows], quantity)
        if tx.cost is not None
        else np.zeros(line_rows.size, np.int64)
    )
    for values, role in ((unit_price, "amount"), (unit_cost, "cost")):
        over = np.flatnonzero(values >= _MAX_LINE_CENTS)
        if over.size:
            raise _fail(source, int(line_rows[over[0]]), role, "unit value too large for decimal(12,2)")
    order_of_line = np.repeat(np.arange(n_orders), np.diff(np.r_[starts, line_rows.size]))
    items = _table(
        ORDER_ITEMS,
        {
            "order_id": pc.take(order_id_by_order, pa.array(order_of_line)),
            "line_number": pa.array(line_number, pa.int32()),
            "product_id": pa.repeat(UNKNOWN_PRODUCT_ID, line_rows.size),
            "quantity": pa.array(quantity, pa.int32()),
            "unit_price": _cents_to_decimal(unit_price, 12),
            "unit_cost": _cents_to_decimal(unit_cost, 12),
            "updated_at": pc.take(ordered_at, pa.array(order_of_line)),
        },
    )

    # -- the one product --------------------------------------------------------------------
    product_cost = 0
    if tx.cost is not None:
        product_cost = int(
            _round_div(np.array([tx.cost[purchase_rows].sum()]), np.array([max(int(quantity.sum()), 1)]))[0]
        )
    products = _table(
        PRODUCTS,
        {
            "product_id": pa.array([UNKNOWN_PRODUCT_ID]),
            "category": pa.array([UNKNOWN_CATEGORY]),
            "list_price": _cents_to_decimal(np.zeros(1, np.int64), 12),
            "unit_cost": _cents_to_decimal(np.array([product_cost], np.int64), 12),
            "updated_at": _micros_to_timestamp(np.array([order_time.min()])),
        },
    )

    # -- customers --------------------------------------------------------------------------
    first_purchase = np.full(len(customer_ids), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_purchase, order_customer, order_time)
    derived = pa.table(
        {
            "customer_id": customer_ids,
            "first_purchase": _micros_to_timestamp(first_purchase),
        }
    )
    # Every customer in the file made a purchase (refund-only customers were rejected above).
    customers, from_file = _customers(derived, options)
    return SourceTables(
        tables={"customers": customers, "products": products, "orders": orders, "order_items": items},
        refunds=int(refund_rows.size),
        customers_from_file=from_file,
    )


def _match_refunds(
    order_customer: np.ndarray,
    order_time: np.ndarray,
    order_first_row: np.ndarray,
    refund_customer: np.ndarray,
    refund_time: np.ndarray,
) -> np.ndarray:
    """For each refund, the index of the same customer's latest order at or before it; -1 if none.

    Ties on time go to the order that comes last in the file. Vectorised: one sort and one
    binary search on a (customer, time rank) key.
    """
    _, time_rank = np.unique(np.r_[order_time, refund_time], return_inverse=True)
    span = int(time_rank.max()) + 1
    order_key = order_customer * span + time_rank[: order_time.size]
    refund_key = refund_customer * span + time_rank[order_time.size :]
    perm = np.lexsort((order_first_row, order_key))
    pos = np.searchsorted(order_key[perm], refund_key, side="right") - 1
    target = np.where(pos >= 0, perm[np.maximum(pos, 0)], -1)
    same_customer = (target >= 0) & (order_customer[np.maximum(target, 0)] == refund_customer)
    return np.where(same_customer, target, -1)


def _customers(derived: pa.Table, options: ImportOptions) -> tuple[pa.Table, int]:
    """The customers table: derived defaults, overridden by the customers file when given."""
    n = derived.num_rows
    if options.customers_path is None:
        signup = derived.column("first_purchase").combine_chunks()
        table = _table(
            CUSTOMERS,
            {
                "customer_id": derived.column("customer_id").combine_chunks(),
                "signup_at": signup,
                "acquisition_channel": pa.repeat(options.default_channel, n),
                "acquisition_cost": _cents_to_decimal(np.zeros(n, np.int64), 12),
                "region": pa.nulls(n, pa.string()),
                "referred_by": pa.nulls(n, pa.string()),
                "email": pa.nulls(n, pa.string()),
                "updated_at": signup,
            },
        )
        return table, 0

    raw = _read_tabular(
        Path(options.customers_path),
        fmt="auto",
        delimiter=None,
        header=None,
        columns=None,
        encoding=options.encoding,
        wanted=_Wanted(
            roles={c: None for c in _CUSTOMER_FILE_COLUMNS},
            required=("customer_id",),
            defaults={c: c for c in _CUSTOMER_FILE_COLUMNS},
        ),
    )
    try:
        return _customers_with_file(derived, options, raw)
    finally:
        raw.close()


def _customers_with_file(derived: pa.Table, options: ImportOptions, raw: _RawTable) -> tuple[pa.Table, int]:
    """The customers table when a customers file is given: its rows first, then derived ones."""
    source = raw.source
    if raw.rows == 0:
        raise TransactionFileError(f"{source.path.name}: the customers file has no rows")
    staging = _Staging(raw)
    outputs = {"customer_id": staging.unique_id("customer_id", "customer id", "customer")}
    if staging.has("signup_at"):
        outputs["signup_at"] = staging.times("signup_at", None, optional=True)
    if staging.has("acquisition_channel"):
        outputs["acquisition_channel"] = staging.choice(
            "acquisition_channel",
            ACQUISITION_CHANNELS,
            "an acquisition channel",
            default=options.default_channel,
        )
    if staging.has("acquisition_cost"):
        outputs["acquisition_cost"] = staging.cents(
            "acquisition_cost", max_integer_digits=10, empty_as_zero=True
        )
        staging.rule("acquisition_cost", f"{outputs['acquisition_cost']} < 0", "negative acquisition cost")
    for name in ("region", "referred_by", "email"):
        if staging.has(name):
            outputs[name] = staging.optional_text(name)
    typed = staging.run(list(outputs.values()))
    ids = _string_array(typed.column(outputs["customer_id"]))
    n_file = len(ids)
    cols: dict[str, pa.Array] = {"customer_id": ids}
    cols["signup_at"] = (
        pc.cast(typed.column(outputs["signup_at"]).combine_chunks().cast(pa.int64()), pa.timestamp("us"))
        if "signup_at" in outputs
        else pa.nulls(n_file, pa.timestamp("us"))
    )
    cols["acquisition_channel"] = (
        _string_array(typed.column(outputs["acquisition_channel"]))
        if "acquisition_channel" in outputs
        else pa.repeat(options.default_channel, n_file)
    )
    cost = (
        typed.column(outputs["acquisition_cost"]).to_numpy().astype(np.int64)
        if "acquisition_cost" in outputs
        else np.zeros(n_file, np.int64)
    )
    cols["acquisition_cost"] = _cents_to_decimal(cost, 12)
    for name in ("region", "referred_by", "email"):
        cols[name] = (
            _string_array(typed.column(outputs[name])) if name in outputs else pa.nulls(n_file, pa.string())
        )
    cols["_file_row"] = pa.array(np.arange(n_file))
    listed = pa.table(cols)
    # File customers first, in file order; then customers known only from transactions.
    joined = listed.join(derived, keys="customer_id", join_type="full outer").sort_by(
        [("_file_row", "ascending"), ("customer_id", "ascending")]
    )
    signup = pc.coalesce(joined.column("signup_at"), joined.column("first_purchase")).combine_chunks()
    if signup.null_count:
        row = joined.column("_file_row")[int(pc.index(pc.is_null(signup), True).as_py())].as_py()
        raise _fail(source, int(row), "signup_at", "no signup_at and no transactions to derive it from")
    m = joined.num_rows
    in_file = pc.is_valid(joined.column("_file_row"))

    def fill(name: str, default: pa.Array) -> pa.Array:
        return pc.if_else(in_file, joined.column(name), default).combine_chunks()

    table = _table(
        CUSTOMERS,
        {
            "customer_id": joined.column("customer_id").combine_chunks(),
            "signup_at": signup,
            "acquisition_channel": fill("acquisition_channel", pa.repeat(options.default_channel, m)),
            "acquisition_cost": fill("acquisition_cost", _cents_to_decimal(np.zeros(m, np.int64), 12)),
            "region": joined.column("region").combine_chunks(),
            "referred_by": joined.column("referred_by").combine_chunks(),
            "email": joined.column("email").combine_chunks(),
            "updated_at": signup,
        },
    )
    return table, n_file


# --------------------------------------------------------------------------------------------
# The import
# --------------------------------------------------------------------------------------------
def read_transactions(path: str | Path, options: ImportOptions | None = None) -> SourceTables:
    """Read, validate and build the source tables of one file, without touching a warehouse."""
    options = options or ImportOptions()
    path = Path(path)
    if not re.fullmatch(r"[A-Z]{3}", options.currency):
        raise TransactionFileError(f"--currency {options.currency!r} is not an ISO 4217 code like USD")
    if options.sales_channel not in SALES_CHANNELS:
        raise TransactionFileError(
            f"--sales-channel {options.sales_channel!r} is not one of {', '.join(SALES_CHANNELS)}"
        )
    if options.default_channel not in ACQUISITION_CHANNELS:
        raise TransactionFileError(
            f"--default-channel {options.default_channel!r} is not an acquisition channel ({', '.join(ACQUISITION_CHANNELS)})"
        )
    raw = _read_tabular(
        path,
        fmt=options.format,
        delimiter=options.delimiter,
        header=options.header,
        columns=options.columns,
        encoding=options.encoding,
        wanted=_Wanted(
            roles=options.role_columns(),
            required=REQUIRED_ROLES,
            defaults={role: role for role in (*REQUIRED_ROLES, *OPTIONAL_ROLES)},
            role_options=_ROLE_OPTION,
            header_probe_role="amount",
        ),
    )
    try:
        tx = _parse_transactions(raw, options)
        built = build_source_tables(tx, raw.source, options)
    finally:
        raw.close()
    built.transactions = len(tx)
    built.header = raw.header
    built.columns = dict(raw.source.role_to_source)
    return built


def replace_source_tables(warehouse: Any, tables: dict[str, pa.Table], bar: Any = None) -> None:
    """Replace every table of the source schema with `tables` (missing ones left empty), atomically.
    `bar`: an optional progress bar advanced once per table."""
    from jobs.warehouse import quote_ident

    warehouse.ensure_tables(SOURCE_SCHEMA, SOURCE_TABLES)
    with warehouse.transaction() as conn:
        if warehouse.dialect == "postgres":
            names = ", ".join(quote_ident(SOURCE_SCHEMA, t.name) for t in SOURCE_TABLES)
            conn.execute(f"TRUNCATE {names}")
        else:
            # DuckDB: DELETE then INSERT of the same keys in one transaction is very slow on
            # primary-key tables (about 30 s for 3M rows); dropping and re-creating is atomic too.
            for t in SOURCE_TABLES:
                conn.execute(f"DROP TABLE IF EXISTS {quote_ident(SOURCE_SCHEMA, t.name)}")
                for stmt in create_table_sql(t, SOURCE_SCHEMA, warehouse.dialect):
                    conn.execute(stmt)
        for t in SOURCE_TABLES:
            if bar is not None:
                bar.set_description(f"loading {t.name}")
            if t.name in tables:
                warehouse.load_arrow(conn, SOURCE_SCHEMA, t, tables[t.name])
            if bar is not None:
                bar.update(1)


def import_transactions(
    warehouse: Any,
    path: str | Path,
    options: ImportOptions | None = None,
    *,
    dry_run: bool = False,
    progress: bool = False,
    **settings: Any,
) -> ImportStats:
    """Import one transactions file into the source schema of `warehouse`, replacing its contents.

    `warehouse`: a URL (duckdb:///file or postgresql://...), a Warehouse, or None for the
    configured default. `options` and/or keyword `settings` (fields of ImportOptions, e.g.
    `delimiter="whitespace", columns=("customer_id", "date", "quantity", "amount")`) say how to
    read the file. Raises TransactionFileError for a bad file; nothing is written then.
    `progress`: show a progress bar (reading, then one step per table loaded) on stderr.
    """
    started = time.monotonic()
    options = replace(options or ImportOptions(), **_normalise_settings(settings))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=1 + (0 if dry_run else len(SOURCE_TABLES)), unit="step", desc="reading", file=sys.stderr)
    try:
        built = read_transactions(path, options)
        if bar is not None:
            bar.update(1)
        written_to = None
        if not dry_run:
            from jobs.config import mask_url
            from jobs.warehouse import open_warehouse

            wh = open_warehouse(warehouse) if warehouse is None or isinstance(warehouse, str) else warehouse
            replace_source_tables(wh, built.tables, bar)
            written_to = mask_url(wh.url)
    finally:
        if bar is not None:
            bar.close()
    orders = built.tables["orders"]
    gross = _sum_decimal(orders.column("gross_amount"))
    refunded = _sum_decimal(orders.column("refund_amount"))
    times = orders.column("ordered_at")
    return ImportStats(
        path=Path(path),
        transactions=built.transactions,
        orders=orders.num_rows,
        order_items=built.tables["order_items"].num_rows,
        customers=built.tables["customers"].num_rows,
        customers_from_file=built.customers_from_file,
        refunds=built.refunds,
        products=built.tables["products"].num_rows,
        gross_amount=gross,
        refund_amount=refunded,
        first_ordered_at=pc.min(times).as_py(),
        last_ordered_at=pc.max(times).as_py(),
        header=built.header,
        columns=built.columns,
        warehouse=written_to,
        seconds=time.monotonic() - started,
    )


def _sum_decimal(values: pa.ChunkedArray) -> Decimal:
    cents = sum(int(_decimal_to_cents(chunk).sum()) for chunk in values.chunks)
    return Decimal(cents).scaleb(-2)


def _normalise_settings(settings: dict[str, Any]) -> dict[str, Any]:
    out = dict(settings)
    if isinstance(out.get("columns"), str):
        out["columns"] = _parse_columns(out["columns"])
    elif out.get("columns") is not None:
        out["columns"] = tuple(out["columns"])
    if out.get("delimiter") is not None:
        out["delimiter"] = parse_delimiter(out["delimiter"])
    if out.get("customers_path") is not None:
        out["customers_path"] = Path(out["customers_path"])
    unknown = set(out) - set(ImportOptions.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown import option(s): {', '.join(sorted(unknown))}")
    return out


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def parse_delimiter(text: str) -> str:
    """',', ';', '|', '\\t' or 'tab', 'whitespace' (runs of blanks), or any one character."""
    named = {
        "\\t": "\t",
        "tab": "\t",
        "comma": ",",
        "semicolon": ";",
        "pipe": "|",
        WHITESPACE: WHITESPACE,
        "space": WHITESPACE,
    }
    value = named.get(text.lower(), text) if len(text) != 1 else text
    if value != WHITESPACE and len(value) != 1:
        raise TransactionFileError(f"delimiter {text!r}: use one character, '\\t', or whitespace")
    if value in ("\n", "\r", '"'):
        raise TransactionFileError(f"delimiter {text!r} cannot be used")
    return value


def _parse_columns(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    if not all(names):
        raise TransactionFileError(f"--columns {text!r}: empty column name")
    return names


def _arg_delimiter(text: str) -> str:
    try:
        return parse_delimiter(text)
    except TransactionFileError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _arg_columns(text: str) -> tuple[str, ...]:
    try:
        return _parse_columns(text)
    except TransactionFileError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the import options (`--warehouse` is added by jobs.cli)."""
    del name
    parser.add_argument(
        "--transactions",
        metavar="FILE",
        required=True,
        type=Path,
        help="transactions file: CSV (.csv, .txt, .tsv, optionally .gz) or Parquet",
    )
    parser.add_argument(
        "--customers",
        metavar="FILE",
        type=Path,
        dest="customers_path",
        help="optional customers file (CSV with header or Parquet) with the contract's column "
        "names: customer_id, signup_at, acquisition_channel, acquisition_cost, region, "
        "referred_by, email. Without it customers are derived from the transactions",
    )
    parser.add_argument(
        "--format",
        choices=("auto", "csv", "parquet"),
        default="auto",
        help="file format (default: by extension; .parquet/.pq is Parquet, anything else CSV)",
    )
    parser.add_argument(
        "--delimiter",
        type=_arg_delimiter,
        default=None,
        help="CSV field delimiter: ',' (default), ';', '|', '\\t' (tab; default for .tsv), "
        "or whitespace (runs of spaces/tabs, as in CDNOW)",
    )
    parser.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether line 1 is a header (default: yes; with --columns, yes when line 1's "
        "amount field is not a number)",
    )
    parser.add_argument(
        "--columns",
        type=_arg_columns,
        metavar="NAMES",
        help="comma-separated names for the file's columns, in order (e.g. "
        "customer_id,date,quantity,amount); names that are no role are ignored",
    )
    parser.add_argument(
        "--customer-column", default="customer_id", metavar="NAME", help="default: customer_id"
    )
    parser.add_argument("--date-column", default="date", metavar="NAME", help="default: date")
    parser.add_argument(
        "--amount-column",
        default="amount",
        metavar="NAME",
        help="transaction value in the currency, 2 decimals at most (default: amount)",
    )
    parser.add_argument(
        "--quantity-column", metavar="NAME", help="units (default: 'quantity' if present, else 1)"
    )
    parser.add_argument(
        "--order-id-column",
        metavar="NAME",
        help="order id; rows sharing one become lines of one order "
        "(default: 'order_id' if present, else {customer_id}-{row})",
    )
    parser.add_argument(
        "--cost-column",
        metavar="NAME",
        help="cost of goods of the whole row (default: 'cost' if present, else 0)",
    )
    parser.add_argument(
        "--channel-column",
        metavar="NAME",
        help=f"sales channel: {', '.join(SALES_CHANNELS)} (default: 'channel' if present)",
    )
    parser.add_argument(
        "--date-format",
        metavar="FORMAT",
        help="strptime format of the date column, e.g. %%Y%%m%%d (default: ISO 8601 date or date-time)",
    )
    parser.add_argument("--encoding", default="utf8", help="text encoding of a CSV (default: utf8)")
    parser.add_argument("--currency", default="USD", help="ISO 4217 currency of the amounts (default: USD)")
    parser.add_argument(
        "--default-channel",
        default="organic",
        choices=ACQUISITION_CHANNELS,
        help="acquisition channel of derived customers (default: organic)",
    )
    parser.add_argument(
        "--sales-channel",
        default="web",
        choices=SALES_CHANNELS,
        help="orders.channel when there is no channel column (default: web)",
    )
    parser.add_argument(
        "--allow-negative",
        action="store_true",
        help="import negative amounts as refunds of the customer's latest earlier order "
        "(default: reject them)",
    )
    parser.add_argument("--dry-run", action="store_true", help="read and validate only; write nothing")
    parser.add_argument("--debug", action="store_true", help="on error, show the full traceback")


def options_from_args(args: argparse.Namespace) -> ImportOptions:
    return ImportOptions(
        format=args.format,
        delimiter=args.delimiter,
        header=args.header,
        columns=args.columns,
        customer_column=args.customer_column,
        date_column=args.date_column,
        amount_column=args.amount_column,
        quantity_column=args.quantity_column,
        order_id_column=args.order_id_column,
        cost_column=args.cost_column,
        channel_column=args.channel_column,
        date_format=args.date_format,
        encoding=args.encoding,
        currency=args.currency,
        default_channel=args.default_channel,
        sales_channel=args.sales_channel,
        allow_negative=args.allow_negative,
        customers_path=args.customers_path,
    )


def run(args: argparse.Namespace) -> int:
    """`crm-metrics import`: import the file and print a one-line summary."""
    stats = import_transactions(
        args.warehouse, args.transactions, options_from_args(args), dry_run=args.dry_run,
        progress=sys.stderr.isatty(),  # a bar on a terminal, quiet in CI and pipes
    )
    print(stats.summary())
    return 0
