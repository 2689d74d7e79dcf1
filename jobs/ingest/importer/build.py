"""The source tables built from validated transactions (vectorised numpy and pyarrow):
orders, order lines, refunds matched to orders, derived or given customers, the one product."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.ingest.importer.options import (
    CUSTOMER_FILE_COLUMNS,
    MAX_GROSS_CENTS,
    MAX_LINE_CENTS,
    OPTIONAL_ROLES,
    REQUIRED_ROLES,
    ROLE_OPTION,
    UNKNOWN_CATEGORY,
    UNKNOWN_PRODUCT_ID,
    ImportOptions,
    SourceFile,
    TransactionFileError,
    fail_at,
)
from jobs.ingest.importer.read import RawTable, Staging, Wanted, read_tabular
from schemas.source import (
    ACQUISITION_CHANNELS,
    CUSTOMERS,
    ORDER_ITEMS,
    ORDERS,
    PRODUCTS,
    SALES_CHANNELS,
)
from schemas.types import Table, arrow_schema


def decimal_to_cents(arr: pa.Array) -> np.ndarray:
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


def _parse_transactions(raw: RawTable, options: ImportOptions) -> _Transactions:
    """Type and validate the transaction columns in SQL (see `Staging`), in the order they are
    checked: channel, customer, date, amount, quantity, cost, order id."""
    if raw.rows == 0:
        raise TransactionFileError(
            f"{raw.source.path.name}: no transactions found (the file has no data rows)"
        )
    staging = Staging(raw)
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


def build_source_tables(tx: _Transactions, source: SourceFile, options: ImportOptions) -> SourceTables:
    """Orders, order lines, products and customers from parsed transactions (see module doc)."""
    n = len(tx)
    rows = np.arange(n)
    refund_mask = tx.amount < 0
    if refund_mask.any() and not options.allow_negative:
        i = int(np.flatnonzero(refund_mask)[0])
        raise fail_at(
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
        raise fail_at(source, i, "quantity", f"{tx.quantity[i]} is not a quantity (at least 1 for a purchase)")
    if tx.cost is not None:
        bad_cost = np.flatnonzero(tx.cost[purchase_rows] < 0)
        if bad_cost.size:
            i = int(purchase_rows[bad_cost[0]])
            raise fail_at(source, i, "cost", f"negative cost {tx.cost[i] / 100:.2f}")

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
        raise fail_at(
            source,
            i,
            "customer_id",
            f"order {order_ids[int(line_order[mixed[0]])].as_py()!r} has customer {tx.customer[i].as_py()!r} here but "
            f"{tx.customer[first].as_py()!r} on {source.where(first)}; one order belongs to one customer",
        )
    order_time = np.minimum.reduceat(tx.ordered_at[line_rows], starts)
    order_gross = np.add.reduceat(tx.amount[line_rows], starts)
    over = np.flatnonzero(order_gross >= MAX_GROSS_CENTS)
    if over.size:
        raise fail_at(
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
            raise fail_at(
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
            raise fail_at(
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
        over = np.flatnonzero(values >= MAX_LINE_CENTS)
        if over.size:
            raise fail_at(source, int(line_rows[over[0]]), role, "unit value too large for decimal(12,2)")
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

    raw = read_tabular(
        Path(options.customers_path),
        fmt="auto",
        delimiter=None,
        header=None,
        columns=None,
        encoding=options.encoding,
        wanted=Wanted(
            roles={c: None for c in CUSTOMER_FILE_COLUMNS},
            required=("customer_id",),
            defaults={c: c for c in CUSTOMER_FILE_COLUMNS},
        ),
    )
    try:
        return _customers_with_file(derived, options, raw)
    finally:
        raw.close()


def _customers_with_file(derived: pa.Table, options: ImportOptions, raw: RawTable) -> tuple[pa.Table, int]:
    """The customers table when a customers file is given: its rows first, then derived ones."""
    source = raw.source
    if raw.rows == 0:
        raise TransactionFileError(f"{source.path.name}: the customers file has no rows")
    staging = Staging(raw)
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
        raise fail_at(source, int(row), "signup_at", "no signup_at and no transactions to derive it from")
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
    raw = read_tabular(
        path,
        fmt=options.format,
        delimiter=options.delimiter,
        header=options.header,
        columns=options.columns,
        encoding=options.encoding,
        wanted=Wanted(
            roles=options.role_columns(),
            required=REQUIRED_ROLES,
            defaults={role: role for role in (*REQUIRED_ROLES, *OPTIONAL_ROLES)},
            role_options=ROLE_OPTION,
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
