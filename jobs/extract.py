"""Extract: rows that changed in the run's window, from the warehouse into the lake.

Incremental tables (orders, order_items, interactions) are taken by `updated_at` and written into
the partition of the day each row was last updated; every version is kept, so snapshot D can be
rebuilt from the latest version of each row updated on or before D, whatever order runs happen
in. The small current-state tables (customers, products, marketing_spend) are copied whole into
the partition of the run's date. PII columns never leave the warehouse.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from jobs.lake import Lake
from jobs.warehouse import Warehouse, quote_ident
from schemas.source import INCREMENTAL_TABLES, SOURCE_SCHEMA, SOURCE_TABLES
from schemas.types import Table, decimal_parts, sql_type

log = logging.getLogger(__name__)

# information_schema type names accepted for each logical type (both engines)
_TYPE_FAMILIES: dict[str, tuple[str, ...]] = {
    "string": ("varchar", "text", "character varying", "character", "char"),
    "int": ("integer", "int", "int4", "smallint", "int2", "tinyint"),
    "bigint": ("bigint", "int8", "integer", "int"),
    "double": ("double", "double precision", "real", "float", "float8"),
    "boolean": ("boolean", "bool"),
    "date": ("date",),
    "timestamp": ("timestamp", "timestamp without time zone", "timestamp with time zone", "timestamptz", "timestamp_ns", "timestamp_ms", "timestamp_s"),
    "decimal": ("decimal", "numeric"),
}


class SchemaDriftError(RuntimeError):
    """A source table lacks a required column or a column changed type."""


@dataclass
class ExtractResult:
    snapshot_date: date
    full_refresh: bool
    rows: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def exported_table(table: Table) -> Table:
    """The table as it lands in the lake: PII columns dropped."""
    return Table(
        name=table.name, comment=table.comment, grain=table.grain, key=table.key,
        columns=tuple(c for c in table.columns if not c.pii),
    )


def check_source_schema(wh: Warehouse, schema: str, table: Table) -> list[str]:
    """Compare a source table with its contract. Returns warnings for extra columns; raises
    SchemaDriftError naming a missing or retyped required column."""
    actual = wh.columns(schema, table.name)
    if not actual:
        raise SchemaDriftError(
            f"source table {schema}.{table.name} does not exist in the warehouse; "
            "create it (crm-metrics generate / import) or point --warehouse at the right database"
        )
    problems = []
    for col in table.columns:
        if col.name not in actual:
            problems.append(f"required column {schema}.{table.name}.{col.name} is missing")
            continue
        family = "decimal" if decimal_parts(col.type) else col.type
        found = actual[col.name].split("(")[0].strip()
        if found not in _TYPE_FAMILIES[family]:
            problems.append(
                f"column {schema}.{table.name}.{col.name} has type {actual[col.name]!r}, "
                f"expected {sql_type(col.type, wh.dialect).lower()}"
            )
    if problems:
        raise SchemaDriftError("; ".join(problems) + ". Fix the source table or the contract in schemas/source.py.")
    extra = sorted(set(actual) - set(table.column_names))
    return [f"{schema}.{table.name}: ignoring column(s) not in the contract: {', '.join(extra)}"] if extra else []


def _select_sql(wh: Warehouse, schema: str, table: Table, incremental: bool, full: bool) -> str:
    cols = ", ".join(
        f"CAST({quote_ident(c.name)} AS {sql_type(c.type, wh.dialect)}) AS {quote_ident(c.name)}"
        for c in table.columns
    )
    src = quote_ident(schema, table.name)
    if not incremental:
        return f"SELECT {cols} FROM {src}"
    p = wh.placeholder
    where = f'"updated_at" < {p}' if full else f'"updated_at" >= {p} AND "updated_at" < {p}'
    return f'SELECT {cols}, CAST("updated_at" AS DATE) AS extract_date FROM {src} WHERE {where}'


def extract(
    wh: Warehouse,
    lake: Lake,
    snapshot: date,
    *,
    full_refresh: bool = False,
    source_schema: str = SOURCE_SCHEMA,
) -> ExtractResult:
    """Write the run's window into the lake. One partition per extraction date.

    Window: rows updated on the snapshot day ([D 00:00, D+1 00:00) UTC). A full refresh (asked
    for, or the first run on an empty lake) takes everything updated before D+1 and replaces
    every partition up to D.
    """
    full = full_refresh or lake.is_empty()
    result = ExtractResult(snapshot_date=snapshot, full_refresh=full)
    start = datetime.combine(snapshot, time())
    end = start + timedelta(days=1)
    for table in SOURCE_TABLES:
        result.warnings += check_source_schema(wh, source_schema, table)
    for w in result.warnings:
        log.warning(w)
    # A day once covered by a full extraction stays covered back to the start: re-extracting
    # the day itself does not touch the older partitions.
    was_full = lake.coverage().get(snapshot, {}).get("window_start", "") is None
    lake.drop_coverage(snapshot)  # until the marker is rewritten, the day counts as not extracted
    for source in SOURCE_TABLES:
        table = exported_table(source)
        incremental = source.name in INCREMENTAL_TABLES
        sql = _select_sql(wh, source_schema, table, incremental, full)
        params: list[object] = ([end] if full else [start, end]) if incremental else []
        staging = lake.staging(lake.raw_table(table.name))
        try:
            result.rows[table.name] = wh.export_parquet(
                sql, params, table, staging, "extract_date" if incremental else None
            )
            if incremental:
                _commit_incremental(lake, table.name, staging, snapshot, full)
            else:
                lake.replace(staging, lake.raw_partition(table.name, snapshot))
        finally:
            lake.clean_staging(lake.raw_table(table.name))
        log.info("extracted %s rows from %s.%s", result.rows[table.name], source_schema, table.name)
    lake.write_coverage(snapshot, None if (full or was_full) else snapshot, {"rows": result.rows, "full_refresh": full})
    return result


def _commit_incremental(lake: Lake, table: str, staging: Path, snapshot: date, full: bool) -> None:
    written = {
        date.fromisoformat(p.name.split("=", 1)[1]): p
        for p in staging.iterdir()
        if p.is_dir() and p.name.startswith("extract_date=")
    }
    if full:
        for day in lake.partition_dates(table):
            if day <= snapshot and day not in written:
                lake.remove(lake.raw_partition(table, day))
    elif snapshot not in written:
        lake.remove(lake.raw_partition(table, snapshot))  # a rerun with no rows leaves none
    for day, path in sorted(written.items()):
        lake.replace(path, lake.raw_partition(table, day))
