"""Open a warehouse by URL: `duckdb:///path/file.duckdb` or `postgresql://user@host:port/db`."""

from __future__ import annotations

from jobs.platform.config import mask_url, warehouse_url
from jobs.platform.warehouse.base import Warehouse, WarehouseError, check_ident, quote_ident

__all__ = ["Warehouse", "WarehouseError", "open_warehouse", "check_ident", "quote_ident"]


def open_warehouse(url: str | None = None) -> Warehouse:
    """The warehouse named by `url` (or the configured default)."""
    resolved = warehouse_url(url)
    if resolved.startswith("duckdb://"):
        from jobs.platform.warehouse.duckdb_wh import DuckDBWarehouse

        return DuckDBWarehouse(resolved)
    if resolved.startswith(("postgresql://", "postgres://")):
        from jobs.platform.warehouse.postgres_wh import PostgresWarehouse

        return PostgresWarehouse(resolved.replace("postgres://", "postgresql://", 1))
    raise WarehouseError(
        f"unsupported warehouse URL {mask_url(resolved)!r}: use duckdb:///path/file.duckdb "
        "or postgresql://user@host:port/db"
    )
