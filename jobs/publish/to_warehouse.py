"""Publish: the snapshot's marts into the warehouse's `marts` schema, all or nothing.

Stage: each mart's snapshot in the lake (its Delta table, read with delta-rs) is loaded into a staging table (schema `marts_staging`, not
readable by BI users). Swap: one transaction deletes the snapshot's rows from every mart and
inserts the staged rows, refreshes the `<mart>_latest` views and re-applies grants. A reader sees
the old snapshot or the new one, never a mix; a failure before the commit leaves the old one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date
from typing import Any

from jobs.platform.delta import snapshot_rows
from jobs.platform.hooks import checkpoint
from jobs.platform.lake import Lake
from jobs.platform.warehouse import Warehouse, quote_ident
from schemas.marts import MARTS_SCHEMA, METRIC_MARTS, OPERATIONAL_TABLES
from schemas.types import Table, comment_sql

log = logging.getLogger(__name__)

STAGING_SCHEMA = "marts_staging"
BI_ROLE = "crm_bi_reader"


def ensure_marts(wh: Warehouse) -> None:
    """Create the marts schema and tables (with comments) if they are missing."""
    wh.ensure_tables(MARTS_SCHEMA, METRIC_MARTS + OPERATIONAL_TABLES, primary_keys=False)


def _stage_name(table: Table, snapshot: date) -> str:
    return f"{table.name}_{snapshot.strftime('%Y%m%d')}"


def publish(wh: Warehouse, lake: Lake, snapshot: date, marts: Sequence[Table] = METRIC_MARTS) -> dict[str, int]:
    """Stage every mart, then swap the snapshot in one transaction. Returns rows per mart."""
    ensure_marts(wh)
    wh.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(STAGING_SCHEMA)}")
    rows: dict[str, int] = {}
    staged: list[tuple[Table, str]] = []
    try:
        for table in marts:
            path = lake.mart_table(table.name)
            if not lake.has_table(path) or not snapshot_rows(lake, path, snapshot) and not _snapshot_committed(lake, path, snapshot):
                raise FileNotFoundError(
                    f"no lake snapshot {snapshot} of mart {table.name} ({path}): run the build_marts step first"
                )
            data = lake.read_arrow(path, snapshot, columns=table.column_names)
            stage = _stage_name(table, snapshot)
            with wh.transaction() as conn:
                conn.execute(f"DROP TABLE IF EXISTS {quote_ident(STAGING_SCHEMA, stage)}")
                conn.execute(
                    f"CREATE TABLE {quote_ident(STAGING_SCHEMA, stage)} AS SELECT * FROM {quote_ident(MARTS_SCHEMA, table.name)} WHERE 1 = 0"
                )
                rows[table.name] = wh.load_arrow(conn, STAGING_SCHEMA, Table(stage, "", "", table.columns), data)
            staged.append((table, stage))
        checkpoint("publish_before_swap")
        with wh.transaction() as conn:
            cols_by_table = {t.name: ", ".join(quote_ident(c) for c in t.column_names) for t, _ in staged}
            for table, stage in staged:
                target = quote_ident(MARTS_SCHEMA, table.name)
                conn.execute(f"DELETE FROM {target} WHERE snapshot_date = {wh.placeholder}", [snapshot])
                cols = cols_by_table[table.name]
                conn.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {quote_ident(STAGING_SCHEMA, stage)}")
                checkpoint(f"publish_during_swap_{table.name}")
            refresh_views(conn, marts)
            apply_grants(wh, conn)
            checkpoint("publish_before_commit")
    finally:
        for _table, stage in staged:
            try:
                wh.execute(f"DROP TABLE IF EXISTS {quote_ident(STAGING_SCHEMA, stage)}")
            except Exception as exc:  # noqa: BLE001 - cleanup must not hide the real error
                log.warning("could not drop staging table %s: %s", stage, exc)
    return rows


def _snapshot_committed(lake: Lake, path: str, snapshot: date) -> bool:
    """An empty mart snapshot was written (a commit whose replaceWhere names the date)."""
    from deltalake import DeltaTable

    history = DeltaTable(lake.delta_uri(path), storage_options=lake.storage_options()).history()
    needle = snapshot.isoformat()
    return any(needle in str((h.get("operationParameters") or {}).get("predicate", "")) for h in history)


def refresh_views(conn: Any, marts: Sequence[Table]) -> None:
    """`<mart>_latest`: the newest snapshot of each mart, for dashboards that want 'now', with the
    mart's comments on the view and its columns (DuckDB drops them when a view is replaced, so
    they are set every time)."""
    for table in marts:
        target = quote_ident(MARTS_SCHEMA, table.name)
        view = f"{table.name}_latest"
        conn.execute(
            f"CREATE OR REPLACE VIEW {quote_ident(MARTS_SCHEMA, view)} AS SELECT * FROM {target} "
            f"WHERE snapshot_date = (SELECT max(snapshot_date) FROM {target})"
        )
        for stmt in comment_sql(table, MARTS_SCHEMA, view, kind="VIEW"):
            conn.execute(stmt)


def apply_grants(wh: Warehouse, conn: Any) -> None:
    """PostgreSQL: the BI role may read the marts schema and nothing else. DuckDB has no roles."""
    if wh.dialect != "postgres":
        return
    role = quote_ident(BI_ROLE)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [BI_ROLE]).fetchone()
    if not exists:
        can_create = conn.execute("SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        if not (can_create and can_create[0]):
            log.warning("role %s does not exist and this user cannot create it; grants skipped", BI_ROLE)
            return
        conn.execute(f"CREATE ROLE {role} NOLOGIN")
    schema = quote_ident(MARTS_SCHEMA)
    conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
    conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {role}")
