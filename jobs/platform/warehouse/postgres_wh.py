"""PostgreSQL: the real warehouse. Bulk data moves with COPY, in both directions."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from jobs.platform.config import mask_secrets
from jobs.platform.warehouse.base import Warehouse, WarehouseError, check_ident, quote_ident
from schemas.types import Table, arrow_schema

_CHUNK_ROWS = 200_000


class PostgresWarehouse(Warehouse):
    dialect = "postgres"
    placeholder = "%s"

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise WarehouseError(
                f"cannot connect to PostgreSQL warehouse: {mask_secrets(str(exc), _password(self.url))}"
            ) from None
        try:
            conn.execute("SET TIME ZONE 'UTC'")
            yield conn
        finally:
            conn.close()

    def load_arrow(self, conn: Any, schema: str, table: Table, data: pa.Table | Iterable[pa.RecordBatch]) -> int:
        total = 0
        batches = data.to_batches(max_chunksize=_CHUNK_ROWS) if isinstance(data, pa.Table) else data
        cols = ", ".join(quote_ident(c) for c in table.column_names)
        copy_sql = f"COPY {quote_ident(schema, table.name)} ({cols}) FROM STDIN (FORMAT csv, HEADER true)"
        with conn.cursor().copy(copy_sql) as copy:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                buf = io.BytesIO()
                pacsv.write_csv(
                    pa.Table.from_batches([batch.select(table.column_names)]),
                    buf,
                    pacsv.WriteOptions(include_header=total == 0, quoting_style="all_valid"),
                )
                copy.write(buf.getvalue())
                total += batch.num_rows
            if total == 0:
                copy.write(",".join(table.column_names).encode() + b"\n")
        return total

    def load_parquet(self, conn: Any, schema: str, table: Table, files: Sequence[Path]) -> int:
        def batches() -> Iterator[pa.RecordBatch]:
            for f in files:
                yield from pq.ParquetFile(f).iter_batches(batch_size=_CHUNK_ROWS, columns=table.column_names)

        return self.load_arrow(conn, schema, table, batches())

    def export_parquet(
        self,
        select_sql: str,
        params: Sequence[Any],
        table: Table,
        dest: Path,
        partition_column: str | None,
    ) -> int:
        dest.mkdir(parents=True, exist_ok=True)
        schema = arrow_schema(table)
        if partition_column:
            schema = schema.append(pa.field(check_ident(partition_column), pa.date32()))
        with self.connect() as conn:
            # COPY takes no bind parameters: psycopg's client-side binding quotes them safely.
            bound = psycopg.ClientCursor(conn).mogrify(select_sql, list(params))
            spool = dest / "_copy.csv"
            try:
                with spool.open("wb") as out, conn.cursor().copy(f"COPY ({bound}) TO STDOUT (FORMAT csv, HEADER true)") as copy:
                    for chunk in copy:
                        out.write(chunk)
                reader = pacsv.open_csv(
                    spool,
                    read_options=pacsv.ReadOptions(block_size=64 << 20),
                    convert_options=pacsv.ConvertOptions(
                        column_types={f.name: f.type for f in schema},
                        strings_can_be_null=True,
                        quoted_strings_can_be_null=False,
                    ),
                )
                rows = 0

                def counted() -> Iterator[pa.RecordBatch]:
                    nonlocal rows
                    for batch in reader:
                        rows += batch.num_rows
                        yield batch

                pads.write_dataset(
                    _reader(counted(), schema),
                    dest,
                    format="parquet",
                    partitioning=[partition_column] if partition_column else None,
                    partitioning_flavor="hive" if partition_column else None,
                    basename_template="part-{i}.parquet",
                    existing_data_behavior="overwrite_or_ignore",
                )
            finally:
                spool.unlink(missing_ok=True)
        return rows


def _reader(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(schema, batches)


def _password(url: str) -> str | None:
    from urllib.parse import urlsplit

    return urlsplit(url).password


def connect_error(exc: Exception, url: str) -> WarehouseError:
    return WarehouseError(mask_secrets(str(exc), _password(url)))
