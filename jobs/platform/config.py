"""Settings from the environment and Airflow connections; the one place defaults live.

Resolution order for the warehouse URL (where the marts are published): an explicit
`--warehouse` argument, then the `AIRFLOW_CONN_CRM_WAREHOUSE` environment variable (the same
connection the DAGs use), then a DuckDB file under `./data/`. The source (the OLTP database or its
replica, schema `crm`) is `--source`, then `AIRFLOW_CONN_CRM_SOURCE`, then the warehouse itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any, get_args, get_type_hints
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

WAREHOUSE_CONN_ID = "crm_warehouse"
WAREHOUSE_ENV = "AIRFLOW_CONN_CRM_WAREHOUSE"
SOURCE_CONN_ID = "crm_source"
SOURCE_ENV = "AIRFLOW_CONN_CRM_SOURCE"
LAKE_ENV = "CRM_METRICS_LAKE"
POOL_ENV = "CRM_METRICS_POOL"
DATA_DIR_ENV = "CRM_METRICS_DATA"


def iso_date(value: str) -> date:
    """A date on the command line: exactly YYYY-MM-DD (argparse prints the message)."""
    reason = "expected YYYY-MM-DD"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError as exc:  # "month must be in 1..12"
            reason = str(exc)
    raise argparse.ArgumentTypeError(f"{value!r} is not a date: {reason}, e.g. 2024-12-31")


def airflow_pool() -> str:
    """The Airflow pool every task of the DAG runs in (one slot: runs sharing a lake or a DuckDB
    file take turns)."""
    return os.environ.get(POOL_ENV, "crm_metrics")


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, "data"))


def default_warehouse_url() -> str:
    return f"duckdb:///{(data_dir() / 'warehouse.duckdb').as_posix()}"


def warehouse_url(explicit: str | None = None) -> str:
    """The warehouse URL: argument, then environment, then the embedded DuckDB default."""
    if explicit:
        return explicit
    env = os.environ.get(WAREHOUSE_ENV)
    if env:
        return _from_airflow_conn(env)
    return default_warehouse_url()


def source_url(explicit: str | None = None, warehouse: str | None = None) -> str:
    """The database the extraction reads (schema `crm`): argument, then environment, then the
    warehouse (`warehouse`, else its own resolution): one database for both unless told apart."""
    if explicit:
        return explicit
    env = os.environ.get(SOURCE_ENV)
    if env:
        return _from_airflow_conn(env, SOURCE_CONN_ID)
    return warehouse_url(warehouse)


def _from_airflow_conn(value: str, conn_id: str = WAREHOUSE_CONN_ID) -> str:
    """Accept an Airflow connection as URI or JSON; return a plain URL."""
    value = value.strip()
    if value.startswith("{"):
        conn = json.loads(value)
        extra = conn.get("extra") or {}
        return warehouse_url_of(
            conn.get("conn_type", "postgres"), host=conn.get("host"), schema=conn.get("schema"), login=conn.get("login"),
            password=conn.get("password"), port=conn.get("port"), extra=json.loads(extra) if isinstance(extra, str) else extra,
            conn_id=conn_id,
        )
    if value.startswith("postgres://"):
        value = "postgresql://" + value[len("postgres://") :]
    return value


def warehouse_url_of(
    conn_type: str | None, *, host: str | None = None, schema: str | None = None, login: str | None = None,
    password: str | None = None, port: int | None = None, extra: dict[str, Any] | None = None,
    conn_id: str = WAREHOUSE_CONN_ID,
) -> str:
    """The warehouse URL of an Airflow connection's fields: `duckdb` (the file in host, schema or
    extra `path`) or `postgres` (extra keys such as sslmode become URL parameters)."""
    extra = extra or {}
    if conn_type == "duckdb":
        path = extra.get("path") or host or schema
        if not path:
            raise ValueError(f"connection {conn_id}: a duckdb connection needs the database file in host or extra.path")
        return f"duckdb:///{path}"
    if conn_type in ("postgres", "postgresql"):
        auth = quote(login or "", safe="") + (":" + quote(password, safe="") if password else "")
        netloc = (auth + "@" if auth else "") + (host or "localhost") + (f":{port}" if port else "")
        query = urlencode({k: str(v) for k, v in extra.items()})
        return urlunsplit(("postgresql", netloc, "/" + (schema or ""), query, ""))
    raise ValueError(f"connection {conn_id}: conn_type {conn_type!r} is not a warehouse; use duckdb or postgres")


def lake_root(explicit: str | None = None) -> str:
    """Where extracted partitions and mart files live: a local folder by default."""
    return explicit or os.environ.get(LAKE_ENV) or str(data_dir() / "lake")


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


_SECRET_IN_TEXT = re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)")


def mask_secrets(text: str, *secrets: str | None) -> str:
    """Remove passwords embedded in URLs and any listed secret from a message."""
    text = _SECRET_IN_TEXT.sub(r"\1***\3", text)
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _is_null(value: object) -> bool:
    """A parameter left unset: None, an empty string, or the text null / none (`--param x=null`)."""
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "none"))


def _param(default: Any, doc: str, *, minimum: float | None = None, maximum: float | None = None) -> Any:
    """A run parameter: its default, and the description and bounds the DAG's Param shows and
    validates (RunParams.param_schemas)."""
    bounds = {k: v for k, v in (("minimum", minimum), ("maximum", maximum)) if v is not None}
    return field(default=default, metadata={"description": doc, **bounds})


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


@dataclass(frozen=True)
class RunParams:
    """Parameters an analyst may set per run (DAG params, `crm-metrics run --param k=v`).

    Every field has a safe default; docs list them in the README.
    """

    full_refresh: bool = _param(False, "Read every source row (not only those changed since the lake's watermark) and record vanished keys as deletions; nothing captured before is removed.")
    # the MERGE on key + updated_at keeps a re-read idempotent
    extract_lookback_minutes: int = _param(60, "Re-read source changes from this long before the lake's watermark (rows committed late).", minimum=0)
    # quality gate
    quarantine_max_rate: float = _param(0.01, "Fail the run when more than this share of the run's rows is quarantined.", minimum=0, maximum=1)
    row_count_min_ratio: float = _param(0.2, "Fail when the day's rows fall below this multiple of the recent daily mean.", minimum=0)
    row_count_max_ratio: float = _param(5.0, "Fail when the day's rows exceed this multiple of the recent daily mean.", minimum=0)
    freshness_days: int = _param(7, "Fail when no order was updated within this many days before the snapshot.", minimum=0)
    max_order_amount: float = _param(100_000.0, "Orders above this gross amount are quarantined as absurd.", minimum=0)
    company_start: str | None = _param(None, "YYYY-MM-DD; events before it are quarantined (default: first customer signup).")
    # segments
    lapse_days: int = _param(365, "Days without a purchase after which a customer is lapsed.", minimum=1)
    active_days: int = _param(90, "A customer whose last purchase is this recent counts as active.", minimum=1)
    development_days: int = _param(365, "Tenure below which a repeat customer is in development.", minimum=1)
    decline_gap_factor: float = _param(2.0, "Overdue by this multiple of the own mean gap = decline.", minimum=1)
    supporter_min_repeat: int = _param(3, "Loyalty ladder: a supporter has at least this many repeat purchase occasions.", minimum=1)
    supporter_min_month_share: float = _param(0.25, "Loyalty ladder: ... and buys in at least this share of the months since the first purchase.", minimum=0, maximum=1)
    partner_max_decile: int = _param(2, "Loyalty ladder: a partner has referred someone and is in this profit decile or better.", minimum=1, maximum=10)
    partner_min_tenure_days: int = _param(365, "Loyalty ladder: ... and has been a customer for at least this many days.", minimum=0)
    kotler_profit_threshold: float | None = _param(None, "Profit split for the Kotler quadrants (default: median).")
    kotler_loyalty_threshold: float | None = _param(None, "Loyalty-score split for the Kotler quadrants (default: median).")
    # predictive CLV
    clv_months: int = _param(12, "CLV horizon in months.", minimum=1)
    clv_monthly_discount: float = _param(0.01, "Monthly discount rate of the CLV.", minimum=0)
    clv_min_customers: int = _param(50, "Fewer buying customers than this: the CLV models are skipped (recorded).", minimum=1)
    # outputs beyond the warehouse
    export_url: str | None = _param(None, "s3://bucket/prefix to export the snapshot to (default: $CRM_METRICS_EXPORT_URL; none: no export). Credentials: connection crm_export.")

    @classmethod
    def from_mapping(cls, values: dict[str, object] | None) -> RunParams:
        """Build from DAG params / CLI pairs; unknown names and bad values are errors."""
        values = {k: v for k, v in (values or {}).items() if not _is_null(v)}
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown run parameter(s) {unknown}; known: {sorted(known)}")
        out: dict[str, object] = {}
        for name, raw in values.items():
            default = getattr(cls, name)
            kind = type(default) if default is not None else (float if "threshold" in name else str)
            try:
                if kind is bool:
                    out[name] = raw if isinstance(raw, bool) else _BOOLEANS[str(raw).strip().lower()]
                elif kind is int and isinstance(raw, float):
                    raise ValueError(raw)  # 2.5 days is not 2 days
                else:
                    out[name] = kind(str(raw))
            except (KeyError, TypeError, ValueError):
                expected = "true or false" if kind is bool else kind.__name__
                raise ValueError(f"run parameter {name}={raw!r}: expected {expected} (or null for the default)") from None
        return cls(**out)  # type: ignore[arg-type]

    @classmethod
    def param_schemas(cls) -> dict[str, dict[str, Any]]:
        """Every field as the keyword arguments of an Airflow `Param` (default, description, JSON
        schema type and bounds): the DAG's params are these, not a second definition."""
        hints = get_type_hints(cls)
        out = {}
        for f in fields(cls):
            kinds = [k for k in get_args(hints[f.name]) if k is not type(None)] or [hints[f.name]]
            base = _JSON_TYPES[kinds[0]]
            json_type: str | list[str] = ["null", base] if f.default is None else base
            out[f.name] = {"default": f.default, "type": json_type, **f.metadata}
        return out

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
