"""What an import is asked to do (ImportOptions), what it reports (ImportStats), the
file being read (SourceFile) and the error a user can act on (TransactionFileError)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

UNKNOWN_PRODUCT_ID = "UNKNOWN"
UNKNOWN_CATEGORY = "unknown"
WHITESPACE = "whitespace"

# Logical roles of transaction columns, and the source column name each takes by default.
REQUIRED_ROLES = ("customer_id", "date", "amount")
OPTIONAL_ROLES = ("quantity", "order_id", "cost", "channel")
ROLE_OPTION = {
    "customer_id": "--customer-column",
    "date": "--date-column",
    "amount": "--amount-column",
    "quantity": "--quantity-column",
    "order_id": "--order-id-column",
    "cost": "--cost-column",
    "channel": "--channel-column",
}
CUSTOMER_FILE_COLUMNS = (
    "customer_id",
    "signup_at",
    "acquisition_channel",
    "acquisition_cost",
    "region",
    "referred_by",
    "email",
)

MAX_GROSS_CENTS = 10**14  # decimal(14,2)
MAX_LINE_CENTS = 10**12  # decimal(12,2)


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
class SourceFile:
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


def fail_at(source: SourceFile, row: int, role: str, problem: str) -> TransactionFileError:
    return TransactionFileError(f"{source.where(row)}, column {source.column(role)!r}: {problem}")



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


def parse_columns(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    if not all(names):
        raise TransactionFileError(f"--columns {text!r}: empty column name")
    return names
