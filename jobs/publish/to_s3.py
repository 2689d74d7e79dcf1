"""Export one published snapshot of every metric mart to S3 as Parquet, with a manifest.

Grain: one export per snapshot date. Inputs: the `marts` schema of the warehouse (DuckDB or
PostgreSQL), read inside ONE read-only transaction so every mart comes from the same published
state; the target `s3://bucket/prefix`; the S3 endpoint and credentials of the Airflow connection
`crm_export` (env `AIRFLOW_CONN_CRM_EXPORT`, URI or JSON form), else boto3's default chain.

Layout (Hive-style, what Athena / Spark / DuckDB / pyarrow read as a partitioned table per mart)::

    s3://bucket/prefix/<mart>/snapshot_date=YYYY-MM-DD/part-00000.parquet   (part-00001, ... when
                                                                           a mart is large)
    s3://bucket/prefix/_manifests/snapshot_date=YYYY-MM-DD/_manifest.json

- The partition column `snapshot_date` lives in the path only, not inside the files (the
  convention of Spark's `partitionBy`, DuckDB's `PARTITION_BY` and Athena, which reject or
  duplicate a column found both in the path and in the file). The manifest's `schema` is the full
  mart schema, `snapshot_date` included, and lists it under `partition_columns`.
- The manifests live under their own `_manifests/` folder, so a table defined on
  `prefix/<mart>/` never sees them (readers also skip names starting with `_`).
- The manifest is the commit marker and is written LAST. Order of one export: delete the date's
  old manifest, upload every file, delete stale objects of the date's partitions that the new
  export did not write, then write the manifest. A failure anywhere leaves no manifest, so a
  reader that goes through the manifest never sees a mix of old and new files.
- Deterministic: rows are sorted by the mart's key (then every other column), Parquet is written
  by pyarrow with fixed row groups and no timestamps, and the manifest holds only the snapshot
  date, the run id, the masked warehouse URL and the files. Exporting the same snapshot twice
  yields byte-identical objects and manifest (same pyarrow version).
- Large files go up as multipart uploads (`TransferSettings.multipart_threshold` /
  `multipart_chunksize`), with botocore's standard retry mode (`max_attempts`).
- Customer keys (`customer_id`, `referred_by`) leave the warehouse only as HMAC-SHA256 hashes
  keyed by the Airflow Variable `crm_customer_key_secret` (see jobs/platform/pseudonymize.py); the
  manifest names the key version.
- Two exports of the same date must not run at the same time (the DAG runs one per date).

Spark clusters that ship `hadoop-aws` can read the same layout through `s3a://bucket/prefix/<mart>/`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.platform.config import iso_date, mask_secrets, mask_url, warehouse_url
from jobs.platform.hooks import checkpoint
from jobs.platform.pseudonymize import CUSTOMER_KEY_COLUMNS, CustomerKey, load_key, pseudonymize_table
from jobs.platform.s3 import EXPORT_CONN_ID, S3Connection, S3Error
from jobs.platform.warehouse import Warehouse, open_warehouse, quote_ident
from schemas.marts import MARTS_SCHEMA, METRIC_MARTS
from schemas.types import Table, arrow_schema

log = logging.getLogger(__name__)

EXPORT_URL_ENV = "CRM_METRICS_EXPORT_URL"
PARTITION_COLUMN = "snapshot_date"
MANIFEST_DIR = "_manifests"
MANIFEST_NAME = "_manifest.json"
MANIFEST_FORMAT = "crm-metrics-export/1"
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
FAULT_BEFORE_MANIFEST = "export_before_manifest"

MiB = 1024 * 1024


# An export problem the user can act on; the message never contains credentials.
ExportError = S3Error


# -- settings -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransferSettings:
    """How files are cut and uploaded. Defaults suit marts of a few million rows."""

    multipart_threshold: int = 64 * MiB  # files at least this big go up in parts
    multipart_chunksize: int = 16 * MiB  # part size (S3's minimum is 5 MiB, except the last part)
    max_concurrency: int = 4  # parallel part uploads per file
    max_attempts: int = 5  # botocore standard retry mode: total attempts per request
    rows_per_file: int = 5_000_000  # a mart with more rows is split into part-00000, part-00001, ...
    row_group_rows: int = 250_000  # fixed row groups: the same rows always give the same bytes
    compression: str = "zstd"

    def __post_init__(self) -> None:
        if self.multipart_chunksize < 5 * MiB:
            raise ExportError("multipart_chunksize must be at least 5 MiB (S3's minimum part size)")
        if self.rows_per_file < 1 or self.row_group_rows < 1 or self.max_attempts < 1:
            raise ExportError("rows_per_file, row_group_rows and max_attempts must be positive")


# -- results --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportedFile:
    """One Parquet object: its key, size, row count and SHA-256 (hex) of its bytes."""

    key: str
    bytes: int
    rows: int
    sha256: str


@dataclass(frozen=True)
class MartExport:
    """One mart's partition for the snapshot: its files and schema (column, Arrow type)."""

    name: str
    rows: int
    files: tuple[ExportedFile, ...]
    schema: tuple[tuple[str, str], ...]

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)


@dataclass(frozen=True)
class ExportResult:
    """What one export wrote: every mart's files, and the manifest written last."""

    snapshot: date
    bucket: str
    prefix: str
    manifest_key: str
    marts: tuple[MartExport, ...]
    deleted_keys: tuple[str, ...] = ()

    @property
    def objects(self) -> tuple[str, ...]:
        """Keys of the data objects (the manifest not included)."""
        return tuple(f.key for m in self.marts for f in m.files)

    @property
    def rows(self) -> dict[str, int]:
        return {m.name: m.rows for m in self.marts}

    @property
    def bytes(self) -> int:
        return sum(m.bytes for m in self.marts)

    @property
    def manifest_url(self) -> str:
        return f"s3://{self.bucket}/{self.manifest_key}"

    def summary(self) -> str:
        return (
            f"exported snapshot {self.snapshot.isoformat()}: {len(self.marts)} marts, "
            f"{sum(self.rows.values()):,} rows, {len(self.objects)} files, {self.bytes:,} bytes; "
            f"manifest {self.manifest_url}"
            + (f"; removed {len(self.deleted_keys)} stale objects" if self.deleted_keys else "")
        )


# -- layout ---------------------------------------------------------------------------------------
def parse_export_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, prefix without surrounding slashes; may be empty)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("s3", "s3a") or not parts.netloc:
        raise ExportError(f"export URL {mask_url(url)!r}: expected s3://bucket/prefix")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ExportError(
            f"export URL {mask_url(url)!r}: expected s3://bucket/prefix (no credentials, no query)"
        )
    return parts.netloc, parts.path.strip("/")


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def partition_prefix(prefix: str, mart: str, snapshot: date) -> str:
    """Key prefix (ending in /) of one mart's partition for a snapshot."""
    return _join(prefix, mart, f"{PARTITION_COLUMN}={snapshot.isoformat()}") + "/"


def manifest_key(prefix: str, snapshot: date) -> str:
    return _join(prefix, MANIFEST_DIR, f"{PARTITION_COLUMN}={snapshot.isoformat()}", MANIFEST_NAME)


def file_schema(table: Table) -> pa.Schema:
    """The Arrow schema of the files: the mart's exact types, without the partition column."""
    full = arrow_schema(table)
    return full.remove(full.get_field_index(PARTITION_COLUMN))


# -- S3 -------------------------------------------------------------------------------------------
def s3_client(connection: S3Connection | None, transfer: TransferSettings | None = None) -> Any:
    """A boto3 S3 client for the connection (None: boto3's default chain), with standard retries."""
    import boto3
    from botocore.config import Config

    transfer = transfer or TransferSettings()
    conn = connection or S3Connection()
    config = Config(
        retries={"max_attempts": transfer.max_attempts, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
        # moto and most S3-compatible stores want path-style addressing on a custom endpoint
        s3={"addressing_style": "path"} if conn.endpoint_url else None,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=conn.endpoint_url,
        region_name=conn.region_name,
        aws_access_key_id=conn.access_key_id,
        aws_secret_access_key=conn.secret_access_key,
        aws_session_token=conn.session_token,
        config=config,
    )


def upload_file(
    client: Any,
    path: Path,
    bucket: str,
    key: str,
    transfer: TransferSettings,
    metadata: dict[str, str] | None = None,
    content_type: str = PARQUET_CONTENT_TYPE,
) -> None:
    """Upload one local file; multipart when it is at least `transfer.multipart_threshold` bytes."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(
        multipart_threshold=transfer.multipart_threshold,
        multipart_chunksize=transfer.multipart_chunksize,
        max_concurrency=transfer.max_concurrency,
        use_threads=transfer.max_concurrency > 1,
    )
    extra: dict[str, Any] = {"ContentType": content_type}
    if metadata:
        extra["Metadata"] = metadata
    client.upload_file(str(path), bucket, key, ExtraArgs=extra, Config=config)


def _endpoint(client: Any) -> str:
    return str(getattr(getattr(client, "meta", None), "endpoint_url", None) or "the default AWS endpoint")


def _check_bucket(client: Any, bucket: str) -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise ExportError(
                f"S3 bucket {bucket!r} does not exist at endpoint {_endpoint(client)}: create it, or fix "
                f"the export URL (--to / ${EXPORT_URL_ENV}) or the endpoint of connection {EXPORT_CONN_ID}"
            ) from None
        if code in ("403", "AccessDenied", "Forbidden"):
            raise ExportError(
                f"access denied to S3 bucket {bucket!r} at endpoint {_endpoint(client)}: check the "
                f"credentials of connection {EXPORT_CONN_ID} (AIRFLOW_CONN_{EXPORT_CONN_ID.upper()})"
            ) from None
        raise ExportError(f"S3 bucket {bucket!r} at {_endpoint(client)}: {code or exc}") from None
    except EndpointConnectionError:
        raise ExportError(f"cannot reach S3 endpoint {_endpoint(client)} (bucket {bucket!r})") from None
    except NoCredentialsError:
        raise ExportError(
            f"no S3 credentials: set connection {EXPORT_CONN_ID} (AIRFLOW_CONN_{EXPORT_CONN_ID.upper()}) "
            "or AWS credentials in the environment"
        ) from None


def _list_keys(client: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", ()))
    return keys


def _delete_keys(client: Any, bucket: str, keys: Sequence[str]) -> None:
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        answer = client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
        )
        errors = answer.get("Errors") or []
        if errors:
            raise ExportError(
                f"could not delete {len(errors)} stale objects, e.g. {errors[0].get('Key')!r}: {errors[0].get('Message')}"
            )


# -- reading the marts ----------------------------------------------------------------------------
def _select_sql(wh: Warehouse, table: Table) -> str:
    """The snapshot's rows of a mart, columns of the file schema, in a total, stable order."""
    names = [n for n in table.column_names if n != PARTITION_COLUMN]
    key = [k for k in table.key if k != PARTITION_COLUMN]
    order = key + [n for n in names if n not in key]
    text_cols = {c.name for c in table.columns if c.type == "string"}

    def order_term(name: str) -> str:
        # byte order for text in PostgreSQL, as in DuckDB, whatever the database's collation
        collate = ' COLLATE "C"' if wh.dialect == "postgres" and name in text_cols else ""
        return f"{quote_ident(name)}{collate} NULLS LAST"

    return (
        f"SELECT {', '.join(quote_ident(n) for n in names)} FROM {quote_ident(MARTS_SCHEMA, table.name)} "
        f"WHERE {quote_ident(PARTITION_COLUMN)} = {wh.placeholder} ORDER BY {', '.join(order_term(n) for n in order)}"
    )


def _stream(
    conn: Any, dialect: str, sql: str, params: Sequence[Any], schema: pa.Schema, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """Rows of a query as Arrow batches of `schema`, in query order, without holding them all."""
    if dialect == "duckdb":
        reader = conn.sql(sql, params=list(params)).to_arrow_reader(batch_rows)
        for batch in reader:
            yield batch.cast(schema)
        return
    # PostgreSQL (and any DB-API connection): a server-side cursor, fetched in batches
    cursor = conn.cursor(name="crm_export_stream") if dialect == "postgres" else conn.cursor()
    try:
        cursor.execute(sql, list(params))
        while rows := cursor.fetchmany(batch_rows):
            columns = list(zip(*rows, strict=True))
            yield pa.record_batch(
                [pa.array(col, type=f.type) for col, f in zip(columns, schema, strict=True)], schema=schema
            )
    finally:
        cursor.close()


def _group_sizes(rows_per_file: int, row_group_rows: int) -> Iterator[int]:
    """Row-group sizes, file after file: full groups, then what is left to fill the file."""
    full, rest = divmod(rows_per_file, row_group_rows)
    pattern = [row_group_rows] * full + ([rest] if rest else [])
    while True:
        yield from pattern


def _row_groups(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, sizes: Iterator[int]
) -> Iterator[pa.Table]:
    """Re-cut batches into tables of exactly the next size's rows (the last may be smaller), so
    row groups, hence file bytes, do not depend on how the warehouse happened to batch rows."""
    pending: list[pa.RecordBatch] = []
    held = 0
    size = next(sizes)
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        held += batch.num_rows
        while held >= size:
            table = pa.Table.from_batches(pending, schema=schema)
            yield table.slice(0, size).combine_chunks()
            rest = table.slice(size)
            pending = rest.to_batches()
            held = rest.num_rows
            size = next(sizes)
    if held:
        yield pa.Table.from_batches(pending, schema=schema).combine_chunks()


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@contextmanager
def _snapshot_reader(wh: Warehouse) -> Iterator[Any]:
    """One connection inside one read-only transaction, so every mart comes from the same
    published state even if a publish commits while the export runs."""
    with wh.connect() as conn:
        conn.execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
            if wh.dialect == "postgres"
            else "BEGIN TRANSACTION"
        )
        try:
            yield conn
        finally:
            try:
                conn.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - closing the connection ends the transaction anyway
                log.debug("rollback of the export's read transaction failed", exc_info=True)


def _run_hint(snapshot: date) -> str:
    return f"run `crm-metrics run --date {snapshot.isoformat()}` first"


def _check_tables(wh: Warehouse, snapshot: date) -> None:
    """Every mart table exists with the contract's columns, or a message saying what to do."""
    missing = [t.name for t in METRIC_MARTS if not wh.columns(MARTS_SCHEMA, t.name)]
    if len(missing) == len(METRIC_MARTS):
        raise ExportError(
            f"no marts for snapshot {snapshot.isoformat()} in warehouse {mask_url(wh.url)}: schema "
            f"{MARTS_SCHEMA!r} has no mart tables; {_run_hint(snapshot)}"
        )
    if missing:
        raise ExportError(
            f"warehouse {mask_url(wh.url)} lacks mart tables {missing}; {_run_hint(snapshot)} (it creates them)"
        )
    for table in METRIC_MARTS:
        have = wh.columns(MARTS_SCHEMA, table.name)
        lacking = [c for c in table.column_names if c not in have]
        if lacking:
            raise ExportError(
                f"{MARTS_SCHEMA}.{table.name} lacks columns {lacking} (published by an older version); "
                f"{_run_hint(snapshot)} to republish"
            )


def _count(conn: Any, wh: Warehouse, table: Table, snapshot: date) -> int:
    sql = (
        f"SELECT count(*) FROM {quote_ident(MARTS_SCHEMA, table.name)} "
        f"WHERE {quote_ident(PARTITION_COLUMN)} = {wh.placeholder}"
    )
    rows = conn.execute(sql, [snapshot]).fetchall()
    return int(rows[0][0]) if rows else 0


def _parquet_writer(path: Path, schema: pa.Schema, transfer: TransferSettings) -> pq.ParquetWriter:
    return pq.ParquetWriter(
        str(path),
        schema,
        compression=transfer.compression,
        use_dictionary=True,
        write_statistics=True,
        version="2.6",
    )


def _export_mart(
    client: Any,
    conn: Any,
    wh: Warehouse,
    table: Table,
    snapshot: date,
    bucket: str,
    prefix: str,
    transfer: TransferSettings,
    workdir: Path,
    key: CustomerKey,
) -> MartExport:
    """Write one mart's snapshot as Parquet files (sorted, fixed row groups) and upload each as
    soon as it is complete, so local disk holds one file at a time."""
    schema = file_schema(table)
    base = partition_prefix(prefix, table.name, snapshot)
    group_rows = min(transfer.row_group_rows, transfer.rows_per_file)
    files: list[ExportedFile] = []

    def finish(writer: pq.ParquetWriter, path: Path, rows: int) -> None:
        writer.close()
        key = base + path.name
        digest = _sha256(path)
        size = path.stat().st_size
        metadata = {"sha256": digest, "rows": str(rows), "snapshot-date": snapshot.isoformat()}
        upload_file(client, path, bucket, key, transfer, metadata=metadata)
        path.unlink()
        files.append(ExportedFile(key=key, bytes=size, rows=rows, sha256=digest))
        log.info("uploaded s3://%s/%s (%d rows, %d bytes)", bucket, key, rows, size)

    writer: pq.ParquetWriter | None = None
    path = workdir / "part-00000.parquet"
    file_rows = 0
    batches = _stream(conn, wh.dialect, _select_sql(wh, table), [snapshot], schema, group_rows)
    sizes = _group_sizes(transfer.rows_per_file, group_rows)
    for group in _row_groups(batches, schema, sizes):
        group = pseudonymize_table(group, key).cast(schema)  # customer ids leave only as keyed hashes
        if writer is not None and file_rows >= transfer.rows_per_file:
            finish(writer, path, file_rows)
            writer = None
        if writer is None:
            path = workdir / f"part-{len(files):05d}.parquet"
            writer = _parquet_writer(path, schema, transfer)
            file_rows = 0
        writer.write_table(group, row_group_size=group_rows)
        file_rows += group.num_rows
    if writer is None:  # no rows: still one file with the schema, so every mart has its partition
        writer = _parquet_writer(path, schema, transfer)
    finish(writer, path, file_rows)
    full = arrow_schema(table)
    return MartExport(
        name=table.name,
        rows=sum(f.rows for f in files),
        files=tuple(files),
        schema=tuple((f.name, str(f.type)) for f in full),
    )


def build_manifest(
    result_marts: Sequence[MartExport],
    snapshot: date,
    run_id: str | None,
    warehouse: str,
    bucket: str,
    prefix: str,
    key_version: str,
) -> dict[str, Any]:
    """The manifest: only facts of the export (no wall-clock time), so reruns give the same bytes."""
    tables = {t.name: t for t in METRIC_MARTS}
    return {
        "format": MANIFEST_FORMAT,
        "snapshot_date": snapshot.isoformat(),
        "run_id": run_id,
        "warehouse": mask_url(warehouse),
        "location": f"s3://{bucket}/{prefix}".rstrip("/") + "/",
        "partition_columns": [PARTITION_COLUMN],
        "customer_key": {"algorithm": "HMAC-SHA256", "key_version": key_version, "columns": list(CUSTOMER_KEY_COLUMNS)},
        "rows": sum(m.rows for m in result_marts),
        "bytes": sum(m.bytes for m in result_marts),
        "marts": {
            m.name: {
                "location": f"s3://{bucket}/{_join(prefix, m.name)}/",
                "partition": f"{PARTITION_COLUMN}={snapshot.isoformat()}",
                "grain": tables[m.name].grain,
                "key": list(tables[m.name].key),
                "rows": m.rows,
                "bytes": m.bytes,
                "schema": [
                    {"name": name, "type": type_, "nullable": tables[m.name].column(name).nullable}
                    for name, type_ in m.schema
                ],
                "files": [
                    {"key": f.key, "bytes": f.bytes, "rows": f.rows, "sha256": f.sha256} for f in m.files
                ],
            }
            for m in result_marts
        },
    }


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# -- the job --------------------------------------------------------------------------------------
def export_snapshot(
    warehouse_url: str,
    snapshot: date,
    export_url: str,
    *,
    run_id: str | None = None,
    connection: S3Connection | None = None,
    transfer: TransferSettings | None = None,
    key: CustomerKey | None = None,
) -> ExportResult:
    """Export every metric mart's rows for `snapshot` to `export_url` (s3://bucket/prefix).

    Grain of the output: one Parquet partition per mart and snapshot date (one or more files),
    plus one manifest per snapshot date, written last. Inputs: `marts.*` of the warehouse, rows
    with `snapshot_date = snapshot`. Re-exporting a date replaces its objects and manifest.
    `connection` None means the `crm_export` connection from the environment, else boto3's chain.
    Customer ids are replaced by their keyed hash (`jobs.platform.pseudonymize`); `key` None means the
    secret configured in the Airflow Variable crm_customer_key_secret, and no secret, no export.
    """
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    transfer = transfer or TransferSettings()
    key = key or load_key()
    bucket, prefix = parse_export_url(export_url)
    if connection is None:
        connection = S3Connection.from_env()
    secret = connection.secret_access_key if connection else None
    wh = open_warehouse(warehouse_url)
    _check_tables(wh, snapshot)
    client = s3_client(connection, transfer)
    _check_bucket(client, bucket)
    mkey = manifest_key(prefix, snapshot)
    target = f"s3://{bucket}/{prefix}".rstrip("/")
    try:
        with _snapshot_reader(wh) as conn:
            counts = {t.name: _count(conn, wh, t, snapshot) for t in METRIC_MARTS}
            if not any(counts.values()):
                raise ExportError(
                    f"no marts for snapshot {snapshot.isoformat()} in warehouse {mask_url(wh.url)}; {_run_hint(snapshot)}"
                )
            # The old manifest goes first: until the new one is written the date has none, so no
            # reader follows a manifest into a half-replaced partition.
            client.delete_object(Bucket=bucket, Key=mkey)
            with tempfile.TemporaryDirectory(prefix="crm-export-") as tmp:
                marts = tuple(
                    _export_mart(client, conn, wh, table, snapshot, bucket, prefix, transfer, Path(tmp), key)
                    for table in METRIC_MARTS
                )
        for mart in marts:
            if mart.rows != counts[mart.name]:
                raise ExportError(
                    f"{mart.name}: wrote {mart.rows} rows, the warehouse has {counts[mart.name]}"
                )
        written = {f.key for m in marts for f in m.files}
        stale = sorted(
            key
            for table in METRIC_MARTS
            for key in _list_keys(client, bucket, partition_prefix(prefix, table.name, snapshot))
            if key not in written
        )
        _delete_keys(client, bucket, stale)
        manifest = build_manifest(marts, snapshot, run_id, wh.url, bucket, prefix, key.version)
        checkpoint(FAULT_BEFORE_MANIFEST)
        client.put_object(
            Bucket=bucket, Key=mkey, Body=manifest_bytes(manifest), ContentType="application/json"
        )
    except (Boto3Error, BotoCoreError, ClientError) as exc:  # Boto3Error: S3UploadFailedError
        raise ExportError(
            f"export of snapshot {snapshot.isoformat()} to {target} failed, no manifest written: "
            f"{mask_secrets(str(exc), secret)}"
        ) from exc
    result = ExportResult(
        snapshot=snapshot,
        bucket=bucket,
        prefix=prefix,
        manifest_key=mkey,
        marts=marts,
        deleted_keys=tuple(stale),
    )
    log.info("%s", result.summary())
    return result


# -- CLI ------------------------------------------------------------------------------------------
def configure(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the export options (`--warehouse` is added by jobs.cli)."""
    del name
    parser.add_argument(
        "--date",
        type=iso_date,
        required=True,
        metavar="YYYY-MM-DD",
        help="snapshot date to export (published by `crm-metrics run --date`)",
    )
    parser.add_argument(
        "--to",
        metavar="URL",
        default=os.environ.get(EXPORT_URL_ENV),
        help=f"s3://bucket/prefix (default: ${EXPORT_URL_ENV}); endpoint and credentials come from the "
        f"Airflow connection {EXPORT_CONN_ID} ($AIRFLOW_CONN_{EXPORT_CONN_ID.upper()}), else boto3's default chain",
    )
    parser.add_argument("--run-id", help="run id recorded in the manifest")


def run(args: argparse.Namespace) -> int:
    """Export one snapshot and print a short summary."""
    if not args.to:
        raise ExportError(f"no export URL: pass --to s3://bucket/prefix or set {EXPORT_URL_ENV}")
    result = export_snapshot(warehouse_url(args.warehouse), args.date, args.to, run_id=args.run_id)
    print(result.summary())
    for mart in result.marts:
        print(f"  {mart.name}: {mart.rows:,} rows in {len(mart.files)} file(s), {mart.bytes:,} bytes")
    return 0
