"""The lake: Delta Lake tables on a local folder or on S3 (`s3a://bucket/prefix`).

Layout under the lake root (every table is a Delta table; its commits, history and retention
are Delta's, written and read through Spark, or through `deltalake` where no Spark runs):

  raw/<table>        every version of every source row ever captured (jobs.ingest.extract), never deleted
  clean/<table>      the valid latest rows as of the snapshot a run last moved it to; each
                     snapshot is a recorded Delta version of it (jobs.platform.state_tables)
  rejected/<table>   the latest rows that break a rule, with `reasons`, kept the same way (from
                     the first snapshot that has one)
  derived/customer_day  one row per customer per active day, computed from the clean layer
                     and moved with it (jobs.clean.customer_day_state): the metrics read it
  snapshots          which version of each clean, rejected and derived table holds which snapshot
  marts/<mart>       every metric mart, partitioned by snapshot_date
  quarantine         rows set aside by the raw gate, by snapshot_date
  runs/<date>/<run>/ one small JSON object per step of a run (read by the record step)
  quality/, reports/ Great Expectations Data Docs and the portfolio report

A snapshot's write is one Delta commit per table (the marts: `replaceWhere snapshot_date = D`; the
clean layer: a MERGE of the keys that changed, recorded once every table has moved): a reader, or
a run that was killed half-way, sees the old snapshot or the new one, never a mix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from jobs.platform.s3 import LAKE_CONN_ID, S3Connection

SNAPSHOT_COLUMN = "snapshot_date"


@dataclass(frozen=True)
class Lake:
    """A lake root: a local folder (absolute path) or `s3a://bucket/prefix`."""

    root: str

    @classmethod
    def at(cls, root: str | Path) -> Lake:
        text = str(root).rstrip("/")
        if "://" not in text:
            text = str(Path(text).absolute())
        return cls(text)

    @property
    def is_s3(self) -> bool:
        return self.root.startswith(("s3a://", "s3://"))

    # -- table paths (what Spark reads and writes) ---------------------------------------------
    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def raw_table(self, table: str) -> str:
        return self.path("raw", table)

    def clean_table(self, table: str) -> str:
        return self.path("clean", table)

    def rejected_table(self, table: str) -> str:
        return self.path("rejected", table)

    def customer_day_table(self) -> str:
        return self.path("derived", "customer_day")

    def snapshots_table(self) -> str:
        return self.path("snapshots")

    def mart_table(self, mart: str) -> str:
        return self.path("marts", mart)

    def quarantine_table(self) -> str:
        return self.path("quarantine")

    def quality_dir(self) -> str:
        return self.path("quality")

    def report_path(self, snapshot: date) -> str:
        return self.path("reports", f"portfolio_{snapshot.isoformat()}.html")

    def run_dir(self, snapshot: date) -> str:
        return self.path("runs", snapshot.isoformat())

    # -- files without Spark (pyarrow's file systems: local or S3) ------------------------------
    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """The file system and the root's path inside it."""
        if not self.is_s3:
            return pafs.LocalFileSystem(), self.root
        conn = lake_connection()
        parts = urlsplit(self.root)
        endpoint = urlsplit(conn.endpoint_url) if conn.endpoint_url else None
        fs = pafs.S3FileSystem(
            access_key=conn.access_key_id, secret_key=conn.secret_access_key, session_token=conn.session_token,
            region=conn.region_name or "us-east-1",
            endpoint_override=endpoint.netloc if endpoint else None,
            scheme=endpoint.scheme if endpoint else "https",
            force_virtual_addressing=False,
        )
        return fs, f"{parts.netloc}{parts.path}".rstrip("/")

    def write_text(self, path: str, text: str) -> None:
        """One small object (a run status, a report): written whole, so never half-visible."""
        fs, inner = self._inner(path)
        if not self.is_s3:
            Path(inner).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(inner).with_name(f".{Path(inner).name}.tmp")
            tmp.write_text(text)
            tmp.replace(inner)
            return
        with fs.open_output_stream(inner) as out:
            out.write(text.encode())

    def read_text(self, path: str) -> str | None:
        fs, inner = self._inner(path)
        if fs.get_file_info(inner).type != pafs.FileType.File:
            return None
        with fs.open_input_stream(inner) as src:
            return bytes(src.read()).decode()

    def delete_file(self, path: str) -> None:
        fs, inner = self._inner(path)
        if fs.get_file_info(inner).type == pafs.FileType.File:
            fs.delete_file(inner)

    def _inner(self, path: str) -> tuple[pafs.FileSystem, str]:
        fs, root = self.filesystem()
        if not path.startswith(self.root):
            raise ValueError(f"{path} is not inside the lake {self.root}")
        return fs, root + path[len(self.root):]

    # -- Delta tables without Spark (deltalake / Arrow) -------------------------------------------
    def delta_uri(self, path: str) -> str:
        """The URI delta-rs takes: s3:// instead of s3a://."""
        return "s3://" + path[len("s3a://"):] if path.startswith("s3a://") else path

    def storage_options(self) -> dict[str, str]:
        if not self.is_s3:
            return {}
        conn = lake_connection()
        opts = {"AWS_REGION": conn.region_name or "us-east-1", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
        if conn.endpoint_url:
            opts["AWS_ENDPOINT_URL"] = conn.endpoint_url
            opts["AWS_ALLOW_HTTP"] = "true"
            opts["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
        if conn.access_key_id:
            opts["AWS_ACCESS_KEY_ID"] = conn.access_key_id
        if conn.secret_access_key:
            opts["AWS_SECRET_ACCESS_KEY"] = conn.secret_access_key
        if conn.session_token:
            opts["AWS_SESSION_TOKEN"] = conn.session_token
        return opts

    def has_table(self, path: str) -> bool:
        """A Delta table with at least one commit is there (a folder left by a writer killed before
        its first commit is not a table)."""
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            DeltaTable(self.delta_uri(path), storage_options=self.storage_options())
        except TableNotFoundError:
            return False
        return True

    def read_arrow(self, path: str, snapshot: date | None = None, columns: list[str] | None = None) -> pa.Table:
        """A Delta table (or one snapshot of it) as Arrow, read by delta-rs: no Spark needed."""
        from deltalake import DeltaTable

        table = DeltaTable(self.delta_uri(path), storage_options=self.storage_options())
        filters: Any = [(SNAPSHOT_COLUMN, "=", snapshot.isoformat())] if snapshot is not None else None
        dataset = table.to_pyarrow_dataset()
        if filters:
            import pyarrow.dataset as ds

            return dataset.to_table(columns=columns, filter=ds.field(SNAPSHOT_COLUMN) == pa.scalar(snapshot, pa.date32()))
        return dataset.to_table(columns=columns)


def lake_connection() -> S3Connection:
    """S3 endpoint and credentials for an `s3a://` lake: connection `crm_lake`, else the export's
    connection `crm_export`, else the default AWS chain (environment, instance role)."""
    from jobs.platform.s3 import EXPORT_CONN_ID

    return S3Connection.from_env(LAKE_CONN_ID) or S3Connection.from_env(EXPORT_CONN_ID) or S3Connection(
        access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
        region_name=os.environ.get("AWS_REGION"),
    )


def s3a_settings(conn: S3Connection) -> dict[str, str]:
    """Spark's S3A settings for the connection (path-style access when an endpoint is set)."""
    out = {"spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem"}
    if conn.endpoint_url:
        out["spark.hadoop.fs.s3a.endpoint"] = conn.endpoint_url
        out["spark.hadoop.fs.s3a.path.style.access"] = "true"
        out["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(conn.endpoint_url.startswith("https")).lower()
    if conn.region_name or conn.endpoint_url:
        out["spark.hadoop.fs.s3a.endpoint.region"] = conn.region_name or "us-east-1"
    if conn.access_key_id and conn.secret_access_key:
        out["spark.hadoop.fs.s3a.access.key"] = conn.access_key_id
        out["spark.hadoop.fs.s3a.secret.key"] = conn.secret_access_key
        if conn.session_token:
            out["spark.hadoop.fs.s3a.session.token"] = conn.session_token
            out["spark.hadoop.fs.s3a.aws.credentials.provider"] = "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
        else:
            out["spark.hadoop.fs.s3a.aws.credentials.provider"] = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
    return out
