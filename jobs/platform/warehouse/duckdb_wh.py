"""DuckDB: the embedded default warehouse (a single file)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from jobs.platform.warehouse.base import Warehouse, WarehouseError, check_ident, quote_ident
from schemas.types import Table


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"
    placeholder = "?"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        path = url.split("duckdb://", 1)[1]
        # duckdb:///abs/path and duckdb:///rel/path both mean a path after the third slash
        self.path = Path(path[1:] if path.startswith("/") and not path.startswith("//") else path)
        if url.startswith("duckdb:////"):
            self.path = Path("/" + path.lstrip("/"))
        self.threads: int | None = None

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            raise WarehouseError(
                f"cannot open DuckDB warehouse {self.path}: {exc}. Another process may hold it open "
                "for writing; DuckDB allows one writer at a time."
            ) from exc
        try:
            if self.threads:
                conn.execute(f"SET threads = {int(self.threads)}")
            # DuckDB's default is 80% of RAM; a bound makes large loads spill to disk instead
            limit = os.environ.get("CRM_METRICS_DUCKDB_MEMORY_LIMIT")
            if limit:
                conn.execute(f"SET memory_limit = '{_checked_size(limit)}'")
            yield conn
        finally:
            conn.close()

    def load_arrow(self, conn: Any, schema: str, table: Table, data: pa.Table | Iterable[pa.RecordBatch]) -> int:
        total = 0
        batches = data.to_batches() if isinstance(data, pa.Table) else data
        target = quote_ident(schema, table.name)
        cols = ", ".join(quote_ident(c) for c in table.column_names)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            conn.register("_crm_batch", batch)
            try:
                conn.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM _crm_batch")
            finally:
                conn.unregister("_crm_batch")
            total += batch.num_rows
        return total

    def load_parquet(self, conn: Any, schema: str, table: Table, files: Sequence[Path]) -> int:
        if not files:
            return 0
        cols = ", ".join(quote_ident(c) for c in table.column_names)
        before = conn.execute(f"SELECT count(*) FROM {quote_ident(schema, table.name)}").fetchone()[0]
        conn.execute(
            f"INSERT INTO {quote_ident(schema, table.name)} ({cols}) SELECT {cols} FROM read_parquet(?)",
            [[str(f) for f in files]],
        )
        after = conn.execute(f"SELECT count(*) FROM {quote_ident(schema, table.name)}").fetchone()[0]
        return int(after - before)

    def export_parquet(
        self,
        select_sql: str,
        params: Sequence[Any],
        table: Table,
        dest: Path,
        partition_column: str | None,
    ) -> int:
        dest.mkdir(parents=True, exist_ok=True)
        with self.connect() as conn:
            if partition_column:
                check_ident(partition_column)
                cur = conn.execute(
                    f"COPY ({select_sql}) TO ? (FORMAT parquet, PARTITION_BY ({partition_column}), "
                    "OVERWRITE_OR_IGNORE, FILENAME_PATTERN 'part-{i}')",
                    [*params, str(dest)],
                )
            else:
                cur = conn.execute(f"COPY ({select_sql}) TO ? (FORMAT parquet)", [*params, str(dest / "part-0.parquet")])
            row = cur.fetchone()
        return int(row[0]) if row else 0



def _checked_size(value: str) -> str:
    """'1.5GB', '800MB': a size DuckDB understands, never arbitrary SQL."""
    import re

    if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", value.strip(), re.IGNORECASE):
        raise WarehouseError(f"CRM_METRICS_DUCKDB_MEMORY_LIMIT={value!r}: use a size such as 1GB or 800MB")
    return value.strip()
