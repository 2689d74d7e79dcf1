"""Loading the built tables into the warehouse's source schema in one transaction."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from jobs.ingest.importer.build import decimal_to_cents, read_transactions
from jobs.ingest.importer.options import ImportOptions, ImportStats, parse_columns, parse_delimiter
from jobs.platform.config import mask_url
from jobs.platform.warehouse import open_warehouse, quote_ident
from schemas.source import (
    SOURCE_SCHEMA,
    SOURCE_TABLES,
)
from schemas.types import create_table_sql


def replace_source_tables(warehouse: Any, tables: dict[str, pa.Table], bar: Any = None) -> None:
    """Replace every table of the source schema with `tables` (missing ones left empty), atomically.
    `bar`: an optional progress bar advanced once per table."""
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
    cents = sum(int(decimal_to_cents(chunk).sum()) for chunk in values.chunks)
    return Decimal(cents).scaleb(-2)


def _normalise_settings(settings: dict[str, Any]) -> dict[str, Any]:
    out = dict(settings)
    if isinstance(out.get("columns"), str):
        out["columns"] = parse_columns(out["columns"])
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
