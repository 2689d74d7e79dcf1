"""Settings from the environment and Airflow connections; the one place defaults live.

Resolution order for the warehouse URL: an explicit `--warehouse` argument, then the
`AIRFLOW_CONN_CRM_WAREHOUSE` environment variable (the same connection the DAGs use), then a
DuckDB file under `./data/`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

WAREHOUSE_CONN_ID = "crm_warehouse"
WAREHOUSE_ENV = "AIRFLOW_CONN_CRM_WAREHOUSE"
LAKE_ENV = "CRM_METRICS_LAKE"
DATA_DIR_ENV = "CRM_METRICS_DATA"


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


def _from_airflow_conn(value: str) -> str:
    """Accept an Airflow connection as URI or JSON; return a plain URL."""
    value = value.strip()
    if value.startswith("{"):
        import json

        conn = json.loads(value)
        ctype = conn.get("conn_type", "postgres")
        if ctype == "duckdb":
            return f"duckdb:///{conn.get('host') or conn.get('schema')}"
        auth = conn.get("login") or ""
        if conn.get("password"):
            auth += ":" + conn["password"]
        host = conn.get("host", "localhost") + (f":{conn['port']}" if conn.get("port") else "")
        return f"postgresql://{auth + '@' if auth else ''}{host}/{conn.get('schema', '')}"
    if value.startswith("postgres://"):
        value = "postgresql://" + value[len("postgres://") :]
    return value


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


@dataclass(frozen=True)
class RunParams:
    """Parameters an analyst may set per run (DAG params, `crm-metrics run --param k=v`).

    Every field has a safe default; docs list them in the README.
    """

    full_refresh: bool = False
    # extraction: re-read changes from this long before the lake's watermark (rows committed late
    # with an older updated_at); the MERGE keeps the rerun idempotent
    extract_lookback_minutes: int = 60
    # quality gate
    quarantine_max_rate: float = 0.01
    row_count_min_ratio: float = 0.2
    row_count_max_ratio: float = 5.0
    freshness_days: int = 7
    max_order_amount: float = 100_000.0
    company_start: str | None = None
    # segments
    lapse_days: int = 365
    active_days: int = 90
    development_days: int = 365
    decline_gap_factor: float = 2.0
    supporter_min_repeat: int = 3
    supporter_min_month_share: float = 0.25
    partner_max_decile: int = 2
    partner_min_tenure_days: int = 365
    kotler_profit_threshold: float | None = None
    kotler_loyalty_threshold: float | None = None
    # predictive CLV
    clv_months: int = 12
    clv_monthly_discount: float = 0.01
    clv_min_customers: int = 50
    # outputs beyond the warehouse
    export_url: str | None = None

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

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
