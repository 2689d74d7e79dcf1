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

Everything in the happy path is vectorised (pyarrow and numpy, no per-row Python); validation
finds the first bad row with vectorised checks and only then scans the file to report its physical
line number. Errors raise `TransactionFileError` naming the line (CSV) or row (Parquet), the column
and the value.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
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
_NO_DELIMITER = "\x1f"  # whitespace files are read one line per value, then split in Arrow
_SAMPLE_TIME = datetime(2024, 1, 31, 13, 45, 0)


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
# Reading: one table of text (CSV) or native (Parquet) columns, named by role
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

    def where(self, row: int) -> str:
        if self.kind == "parquet":
            return f"{self.path.name} row {row + 1}"
        return f"{self.path.name} line {self.line_number(row)}"

    def column(self, role: str) -> str:
        return self.role_to_source.get(role, role)

    def line_number(self, row: int) -> int:
        """Physical line of data row `row` (0-based), skipping the header and empty lines.

        Only called on the error path: it scans the file in Python.
        """
        number = 0
        seen = -1
        with _open_binary(self.path) as f:
            for number, raw in enumerate(f, start=1):
                if number <= self.header_lines or _is_empty_line(raw, self.delimiter):
                    continue
                seen += 1
                if seen == row:
                    return number
        return number

    def first_line_with_wrong_width(self, expected: int) -> tuple[int, str] | None:
        """The first data line whose field count differs from `expected` (error path only)."""
        with _open_binary(self.path) as f:
            for number, raw in enumerate(f, start=1):
                if number <= self.header_lines or _is_empty_line(raw, self.delimiter):
                    continue
                text = raw.decode(_python_encoding(self.encoding), errors="replace").rstrip("\r\n")
                if len(_split_line(text, self.delimiter)) != expected:
                    return number, text
        return None


@dataclass
class _RawTable:
    table: pa.Table  # columns named by role
    source: _Source
    header: bool


def _open_binary(path: Path) -> io.BufferedIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def _python_encoding(encoding: str) -> str:
    return "utf-8-sig" if encoding.lower().replace("-", "") in ("utf8", "utf8sig") else encoding


def _is_empty_line(raw: bytes, delimiter: str) -> bool:
    if delimiter == WHITESPACE:
        return not raw.strip()
    return not raw.rstrip(b"\r\n")


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
) -> TransactionFileError:
    what = ", ".join(repr(wanted.get(r) or defaults.get(r, r)) for r in missing)
    if first_line is not None and len(names) < needed:
        hint = _suggest_delimiter(first_line, source.delimiter, needed)
        return TransactionFileError(
            f"{source.path.name} line 1: found {len(names)} column(s) using delimiter "
            f"{_describe_delimiter(source.delimiter)} but at least {needed} are needed "
            f"(missing {what}); the line reads {first_line!r}.{hint}"
        )
    options = ", ".join(f"{_ROLE_OPTION.get(r, r)} NAME" for r in missing if r in _ROLE_OPTION)
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
    except UnicodeDecodeError as exc:
        raise TransactionFileError(
            f"{path.name} line 1: not valid {encoding} text ({exc}); use --encoding"
        ) from None


def _read_csv(
    path: Path,
    delimiter: str,
    header: bool | None,
    columns: tuple[str, ...] | None,
    wanted: dict[str, str | None],
    required: Sequence[str],
    defaults: dict[str, str],
    encoding: str,
    header_probe_role: str | None,
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
            probe = (
                _resolve_roles(names, {header_probe_role: wanted.get(header_probe_role)}, defaults)
                if header_probe_role
                else {}
            )
            probe_name = probe.get(header_probe_role or "")
            header = probe_name is not None and not re.match(_NUMBER, first_fields[names.index(probe_name)])
    else:
        if header is False:
            raise TransactionFileError("a file without a header needs --columns to name its columns")
        header = True
        names = first_fields

    source.header_lines = 1 if header else 0
    roles = _resolve_roles(names, wanted, defaults)
    missing = [r for r in wanted if r not in roles and (r in required or wanted[r] is not None)]
    if missing:
        needed = len([r for r in wanted if r in required or wanted[r] is not None])
        raise _missing_roles_error(
            source, names, missing, wanted, defaults, first_line if header else None, needed
        )
    source.role_to_source = roles

    if delimiter == WHITESPACE:
        table = _read_whitespace_columns(source, names, roles)
    else:
        table = _read_delimited_columns(source, names, roles)
    return _RawTable(table, source, header=bool(header))


def _read_delimited_columns(source: _Source, names: list[str], roles: dict[str, str]) -> pa.Table:
    """The role columns of a delimited file, as text, read by Arrow's CSV reader."""
    # Unique internal names: the file's own names may repeat or clash with role names.
    internal = [f"c{i}" for i in range(len(names))]
    include = {role: internal[names.index(col)] for role, col in roles.items()}
    problem: dict[str, Any] = {}

    def on_invalid_row(row: Any) -> str:
        problem.setdefault("row", (row.expected_columns, row.actual_columns, row.text))
        return "error"

    try:
        table = pacsv.read_csv(
            str(source.path),
            read_options=_csv_read_options(source, internal),
            parse_options=pacsv.ParseOptions(
                delimiter=source.delimiter, quote_char='"', invalid_row_handler=on_invalid_row
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(include.values()),
                column_types={c: pa.string() for c in include.values()},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        if "row" not in problem:
            raise TransactionFileError(f"{source.path.name}: cannot read as CSV: {exc}") from None
        expected, actual, text = problem["row"]
        located = source.first_line_with_wrong_width(expected)
        where = f"{source.path.name} line {located[0]}" if located else source.path.name
        raise TransactionFileError(
            f"{where}: expected {expected} columns separated by {_describe_delimiter(source.delimiter)} "
            f"but found {actual}; the line reads {located[1] if located else text!r}"
        ) from None
    return table.select(list(include.values())).rename_columns(list(include.keys()))


def _read_whitespace_columns(source: _Source, names: list[str], roles: dict[str, str]) -> pa.Table:
    """The role columns of a file whose fields are separated by runs of whitespace (CDNOW).

    Arrow reads each line as one value; Arrow's whitespace split then makes the fields, all in C++.
    Blank lines are skipped, as in the line numbering of error messages.
    """
    try:
        lines = pacsv.read_csv(
            str(source.path),
            read_options=_csv_read_options(source, ["line"]),
            parse_options=pacsv.ParseOptions(delimiter=_NO_DELIMITER, quote_char=False),
            convert_options=pacsv.ConvertOptions(
                column_types={"line": pa.string()}, strings_can_be_null=False
            ),
        ).column("line")
    except pa.ArrowInvalid as exc:
        raise TransactionFileError(f"{source.path.name}: cannot read as text: {exc}") from None
    trimmed = pc.utf8_trim_whitespace(lines)
    blank = pc.equal(pc.utf8_length(trimmed), 0)
    if pc.any(blank).as_py():
        trimmed = trimmed.filter(pc.invert(blank))
    fields = pc.utf8_split_whitespace(trimmed)
    width = pc.list_value_length(fields)
    bad = _first_true(pc.not_equal(width, len(names)))
    if bad is not None:
        found = width[bad].as_py()
        text = " ".join(fields[bad].as_py())
        raise TransactionFileError(
            f"{source.where(bad)}: expected {len(names)} columns separated by "
            f"{_describe_delimiter(WHITESPACE)} but found {found}; the line reads {text!r}"
        )
    return pa.table({role: pc.list_element(fields, names.index(col)) for role, col in roles.items()})


def _csv_read_options(source: _Source, column_names: list[str]) -> pacsv.ReadOptions:
    return pacsv.ReadOptions(
        column_names=column_names,
        skip_rows=source.header_lines,
        encoding=source.encoding,
        block_size=16 << 20,
    )


def _read_parquet(
    path: Path,
    columns: tuple[str, ...] | None,
    wanted: dict[str, str | None],
    required: Sequence[str],
    defaults: dict[str, str],
) -> _RawTable:
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
    roles = _resolve_roles(names, wanted, defaults)
    missing = [r for r in wanted if r not in roles and (r in required or wanted[r] is not None)]
    if missing:
        raise _missing_roles_error(source, names, missing, wanted, defaults, None, 0)
    source.role_to_source = roles
    picked = {role: file_names[names.index(col)] for role, col in roles.items()}
    table = pq.read_table(path, columns=list(dict.fromkeys(picked.values())))
    arrays = [table.column(col) for col in picked.values()]
    return _RawTable(pa.table(dict(zip(picked.keys(), arrays, strict=True))), source, header=False)


def _read_tabular(
    path: Path,
    options: ImportOptions,
    wanted: dict[str, str | None],
    required: Sequence[str],
    defaults: dict[str, str],
    header_probe_role: str | None,
) -> _RawTable:
    if not path.is_file():
        raise TransactionFileError(f"file not found: {path}")
    if _detect_format(path, options.format) == "parquet":
        return _read_parquet(path, options.columns, wanted, required, defaults)
    delimiter = options.delimiter or _default_delimiter(path)
    return _read_csv(
        path,
        delimiter,
        options.header,
        options.columns,
        wanted,
        required,
        defaults,
        options.encoding,
        header_probe_role,
    )


# --------------------------------------------------------------------------------------------
# Parsing and validation: vectorised; the first bad row is reported with its line
# --------------------------------------------------------------------------------------------
def _first_true(mask: pa.Array | pa.ChunkedArray) -> int | None:
    if not pc.any(mask).as_py():
        return None
    return int(pc.index(mask, True).as_py())


def _fail(source: _Source, row: int, role: str, problem: str) -> TransactionFileError:
    return TransactionFileError(f"{source.where(row)}, column {source.column(role)!r}: {problem}")


def _as_text(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    return pc.utf8_trim_whitespace(arr.cast(pa.string()))


def _require_present(values: pa.Array, source: _Source, role: str, what: str) -> None:
    bad = _first_true(pc.or_kleene(pc.is_null(values), pc.equal(pc.utf8_length(values), 0)).fill_null(True))
    if bad is not None:
        raise _fail(source, bad, role, f"empty {what}")


def _parse_text_ids(values: pa.ChunkedArray, source: _Source, role: str, what: str) -> pa.Array:
    text = _as_text(values)
    _require_present(text, source, role, what)
    return text


def _parse_cents(
    values: pa.ChunkedArray, source: _Source, role: str, *, max_integer_digits: int = 12
) -> np.ndarray:
    """Money to int64 cents, exactly. Text must be a plain decimal with at most 2 places."""
    arr = values.combine_chunks()
    if pa.types.is_floating(arr.type):
        rounded = pc.round(arr, 2)
        noisy = pc.greater(pc.abs(pc.subtract(arr, rounded)), 1e-6)
        bad = _first_true(pc.or_kleene(noisy, pc.is_null(arr)).fill_null(True))
        if bad is not None:
            raise _fail(
                source, bad, role, f"{arr[bad].as_py()!r} is not an amount with at most 2 decimal places"
            )
        cents = np.rint(rounded.to_numpy(zero_copy_only=False) * 100).astype(np.int64)
    else:
        text = _as_text(arr)
        _require_present(text, source, role, "value (expected a number like 12.34)")
        for pattern, problem in (
            (_NUMBER, "is not a number (expected digits with an optional '.', like 12.34)"),
            (_AT_MOST_TWO_DECIMALS, "has more than 2 decimal places"),
            (_AT_MOST_12_INTEGER_DIGITS, "is too large (at most 12 digits before the decimal point)"),
        ):
            bad = _first_true(pc.invert(pc.match_substring_regex(text, pattern)))
            if bad is not None:
                raise _fail(source, bad, role, f"{text[bad].as_py()!r} {problem}")
        cents = _decimal_to_cents(pc.cast(text, pa.decimal128(14, 2)))
    too_big = np.flatnonzero(np.abs(cents) >= 10 ** (max_integer_digits + 2))
    if too_big.size:
        raise _fail(source, int(too_big[0]), role, f"{cents[too_big[0]] / 100:.2f} is too large")
    return cents


def _parse_quantity(values: pa.ChunkedArray, source: _Source) -> np.ndarray:
    arr = values.combine_chunks()
    if pa.types.is_integer(arr.type):
        bad = _first_true(pc.is_null(arr))
        if bad is not None:
            raise _fail(source, bad, "quantity", "empty quantity")
        qty = arr.to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        text = _as_text(arr)
        _require_present(text, source, "quantity", "quantity (expected a whole number)")
        bad = _first_true(pc.invert(pc.match_substring_regex(text, _INTEGER)))
        if bad is not None:
            raise _fail(source, bad, "quantity", f"{text[bad].as_py()!r} is not a whole number")
        too_long = _first_true(pc.greater(pc.utf8_length(text), 11))
        if too_long is not None:
            raise _fail(source, too_long, "quantity", f"{text[too_long].as_py()!r} is too large")
        qty = pc.cast(text, pa.int64()).to_numpy()
    over = np.flatnonzero(np.abs(qty) > _INT32_MAX)
    if over.size:
        raise _fail(source, int(over[0]), "quantity", f"{qty[over[0]]} is too large")
    return qty


def _date_hint(date_format: str | None) -> str:
    if date_format is None:
        return "expected an ISO 8601 date or date-time like 2024-01-31 or 2024-01-31 13:45:00 (use --date-format for others)"
    return f"expected format {date_format} (e.g. {_SAMPLE_TIME.strftime(date_format)})"


def _parse_times(
    values: pa.ChunkedArray, source: _Source, role: str, date_format: str | None, *, optional: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Dates or date-times to int64 microseconds since the epoch (UTC), and a mask of present values.

    Empty values are an error unless `optional` (then their microseconds are 0 and mask False).
    """
    arr = values.combine_chunks()
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        present = pc.is_valid(arr)
        bad = None if optional else _first_true(pc.invert(present))
        if bad is not None:
            raise _fail(source, bad, role, "empty date")
        # Casting a zoned timestamp to a naive one keeps the UTC instant.
        micros = pc.cast(arr, pa.timestamp("us")).cast(pa.int64()).fill_null(0).to_numpy()
        return micros, present.to_numpy(zero_copy_only=False)
    text = _as_text(arr)
    present = pc.and_kleene(pc.is_valid(text), pc.greater(pc.utf8_length(text), 0)).fill_null(False)
    if not optional:
        _require_present(text, source, role, f"date ({_date_hint(date_format)})")
    elif not pc.all(present).as_py():
        # Parse the present values only; a placeholder keeps positions (and line numbers) intact.
        text = pc.if_else(present, text, _SAMPLE_TIME.strftime(date_format or "%Y-%m-%d"))
    return _parse_time_text(text, source, role, date_format), present.to_numpy(zero_copy_only=False)


def _parse_time_text(text: pa.Array, source: _Source, role: str, date_format: str | None) -> np.ndarray:
    if date_format is None:
        try:
            return pc.cast(text, pa.timestamp("us")).cast(pa.int64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            suspicious = pa.repeat(True, len(text))
            parsed = pa.nulls(len(text), pa.timestamp("us"))
    else:
        # Arrow's strptime is lenient (2024-02-30 becomes 2024-03-01) and knows no %f: keep only
        # values that print back exactly; the rest (few distinct values: dates repeat) are judged
        # by Python's strptime, which is strict.
        try:
            parsed = pc.strptime(text, format=date_format, unit="s", error_is_null=True)
            printed = pc.strftime(parsed, format=date_format)
            suspicious = pc.invert(pc.equal(printed, text).fill_null(False))
            parsed = parsed.cast(pa.timestamp("us"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            suspicious = pa.repeat(True, len(text))
            parsed = pa.nulls(len(text), pa.timestamp("us"))
    micros = parsed.cast(pa.int64()).fill_null(0).to_numpy()
    check_rows = np.flatnonzero(np.asarray(suspicious.to_numpy(zero_copy_only=False), dtype=bool))
    if check_rows.size:
        odd = pc.take(text, pa.array(check_rows))
        encoded = odd.dictionary_encode()
        uniques = encoded.dictionary.to_pylist()
        resolved = np.empty(len(uniques), dtype=np.int64)
        for k, value in enumerate(uniques):
            stamp = _python_time(value, date_format)
            if stamp is None:
                first = int(check_rows[pc.index(encoded.indices, k).as_py()])
                raise _fail(
                    source, first, role, f"cannot read {value!r} as a date; {_date_hint(date_format)}"
                )
            resolved[k] = stamp
        micros = micros.copy()
        micros[check_rows] = resolved[encoded.indices.to_numpy(zero_copy_only=False)]
    return micros.astype(np.int64)


def _python_time(value: str, date_format: str | None) -> int | None:
    """One distinct date text to epoch microseconds (UTC), or None when it does not parse."""
    try:
        stamp = (
            datetime.fromisoformat(value) if date_format is None else datetime.strptime(value, date_format)
        )
    except ValueError:
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(UTC).replace(tzinfo=None)
    delta = stamp - datetime(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


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
    t, source = raw.table, raw.source
    if t.num_rows == 0:
        raise TransactionFileError(f"{source.path.name}: no transactions found (the file has no data rows)")
    channel = None
    if "channel" in t.column_names:
        channel = pc.utf8_lower(_as_text(t.column("channel")))
        bad = _first_true(pc.invert(pc.is_in(channel, pa.array(SALES_CHANNELS))).fill_null(True))
        if bad is not None:
            raise _fail(
                source,
                bad,
                "channel",
                f"{channel[bad].as_py()!r} is not a sales channel ({', '.join(SALES_CHANNELS)})",
            )
    return _Transactions(
        customer=_parse_text_ids(t.column("customer_id"), source, "customer_id", "customer id"),
        ordered_at=_parse_times(t.column("date"), source, "date", options.date_format)[0],
        amount=_parse_cents(t.column("amount"), source, "amount"),
        quantity=_parse_quantity(t.column("quantity"), source)
        if "quantity" in t.column_names
        else np.ones(t.num_rows, np.int64),
        cost=_parse_cents(t.column("cost"), source, "cost") if "cost" in t.column_names else None,
        channel=channel,
        order_id=_parse_text_ids(t.column("order_id"), source, "order_id", "order id")
        if "order_id" in t.column_names
        else None,
    )


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

    file_options = ImportOptions(format="auto", encoding=options.encoding)
    wanted: dict[str, str | None] = {c: None for c in _CUSTOMER_FILE_COLUMNS}
    raw = _read_tabular(
        Path(options.customers_path),
        file_options,
        wanted,
        ("customer_id",),
        {c: c for c in _CUSTOMER_FILE_COLUMNS},
        None,
    )
    t, source = raw.table, raw.source
    if t.num_rows == 0:
        raise TransactionFileError(f"{source.path.name}: the customers file has no rows")
    ids = _parse_text_ids(t.column("customer_id"), source, "customer_id", "customer id")
    counts = pc.value_counts(ids)
    dup = _first_true(pc.greater(counts.field("counts"), 1))
    if dup is not None:
        value = counts.field("values")[dup].as_py()
        raise _fail(
            source,
            int(pc.index(ids, value).as_py()),
            "customer_id",
            f"customer {value!r} appears more than once",
        )
    cols: dict[str, pa.Array] = {"customer_id": ids}
    if "signup_at" in t.column_names:
        micros, present = _parse_times(t.column("signup_at"), source, "signup_at", None, optional=True)
        cols["signup_at"] = pc.if_else(
            pa.array(present), _micros_to_timestamp(micros), pa.nulls(len(ids), pa.timestamp("us"))
        )
    else:
        cols["signup_at"] = pa.nulls(len(ids), pa.timestamp("us"))
    if "acquisition_channel" in t.column_names:
        channel = pc.utf8_lower(_as_text(t.column("acquisition_channel")))
        channel = pc.if_else(
            pc.equal(pc.utf8_length(channel), 0).fill_null(True), options.default_channel, channel
        )
        bad = _first_true(pc.invert(pc.is_in(channel, pa.array(ACQUISITION_CHANNELS))))
        if bad is not None:
            raise _fail(
                source,
                bad,
                "acquisition_channel",
                f"{channel[bad].as_py()!r} is not an acquisition channel ({', '.join(ACQUISITION_CHANNELS)})",
            )
        cols["acquisition_channel"] = channel
    else:
        cols["acquisition_channel"] = pa.repeat(options.default_channel, len(ids))
    if "acquisition_cost" in t.column_names:
        raw_cost = t.column("acquisition_cost")
        text = _as_text(raw_cost)
        filled = pc.if_else(pc.equal(pc.utf8_length(text), 0).fill_null(True), "0", text)
        cost = _parse_cents(pa.chunked_array([filled]), source, "acquisition_cost", max_integer_digits=10)
        neg = np.flatnonzero(cost < 0)
        if neg.size:
            raise _fail(source, int(neg[0]), "acquisition_cost", "negative acquisition cost")
        cols["acquisition_cost"] = _cents_to_decimal(cost, 12)
    else:
        cols["acquisition_cost"] = _cents_to_decimal(np.zeros(len(ids), np.int64), 12)
    for name in ("region", "referred_by", "email"):
        if name in t.column_names:
            text = _as_text(t.column(name))
            cols[name] = pc.if_else(
                pc.equal(pc.utf8_length(text), 0).fill_null(True), pa.nulls(len(ids), pa.string()), text
            )
        else:
            cols[name] = pa.nulls(len(ids), pa.string())
    cols["_file_row"] = pa.array(np.arange(len(ids)))
    listed = pa.table(cols)
    # File customers first, in file order; then customers known only from transactions.
    joined = listed.join(derived, keys="customer_id", join_type="full outer").sort_by(
        [("_file_row", "ascending"), ("customer_id", "ascending")]
    )
    signup = pc.coalesce(joined.column("signup_at"), joined.column("first_purchase")).combine_chunks()
    missing = _first_true(pc.is_null(signup))
    if missing is not None:
        row = joined.column("_file_row")[missing].as_py()
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
    return table, len(ids)


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
    defaults = {role: role for role in (*REQUIRED_ROLES, *OPTIONAL_ROLES)}
    raw = _read_tabular(
        path, options, options.role_columns(), REQUIRED_ROLES, defaults, header_probe_role="amount"
    )
    tx = _parse_transactions(raw, options)
    built = build_source_tables(tx, raw.source, options)
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
