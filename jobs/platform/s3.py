"""S3 endpoint and credentials from an Airflow connection (`crm_export` for the export,
`crm_lake` for an `s3a://` lake), shared by boto3, pyarrow/deltalake and Spark's S3A."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

EXPORT_CONN_ID = "crm_export"
LAKE_CONN_ID = "crm_lake"


class S3Error(RuntimeError):
    """An S3 problem the user can act on; the message never contains credentials."""


@dataclass(frozen=True)
class S3Connection:
    """Endpoint and credentials for S3 (the Airflow connection `crm_export`, conn_type aws).

    Every field is optional: what is missing comes from boto3's default chain (environment,
    shared config, instance role). The secret never appears in repr or messages.
    """

    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    endpoint_url: str | None = None
    region_name: str | None = None

    @classmethod
    def from_airflow_value(cls, value: str) -> S3Connection:
        """Parse an `AIRFLOW_CONN_*` value, URI form
        (`aws://KEY:SECRET@/?endpoint_url=http%3A%2F%2Fhost%3A5000&region_name=us-east-1`) or JSON
        form (`{"conn_type": "aws", "login": ..., "password": ..., "extra": {...}}`)."""
        value = value.strip()
        if value.startswith("{"):
            try:
                conn = json.loads(value)
            except json.JSONDecodeError as exc:
                raise S3Error(
                    f"connection {EXPORT_CONN_ID}: JSON form does not parse ({exc.msg})"
                ) from None
            raw = conn.get("extra") or {}
            if isinstance(raw, str):
                raw = json.loads(raw) if raw.strip() else {}
            return cls._build(conn.get("login"), conn.get("password"), dict(raw))
        parts = urlsplit(value)
        if not parts.scheme:
            raise S3Error(
                f"connection {EXPORT_CONN_ID}: expected aws://KEY:SECRET@/?endpoint_url=... or JSON"
            )
        extra_pairs = dict(parse_qsl(parts.query, keep_blank_values=True))
        extra: dict[str, Any] = {}
        if "__extra__" in extra_pairs:
            extra.update(json.loads(extra_pairs.pop("__extra__")))
        extra.update(extra_pairs)
        login = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls._build(login, password, extra)

    @classmethod
    def from_airflow(cls, conn: Any) -> S3Connection:
        """From an Airflow `Connection` object (e.g. `BaseHook.get_connection("crm_export")` inside a
        task, which also covers secrets backends); only its attributes are used, no Airflow import."""
        extra = getattr(conn, "extra_dejson", None) or {}
        return cls._build(getattr(conn, "login", None), getattr(conn, "password", None), dict(extra))

    @classmethod
    def from_env(cls, conn_id: str = EXPORT_CONN_ID) -> S3Connection | None:
        """The connection from `AIRFLOW_CONN_<CONN_ID>`, or None when the variable is unset."""
        value = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
        return cls.from_airflow_value(value) if value and value.strip() else None

    @classmethod
    def _build(cls, login: str | None, password: str | None, extra: dict[str, Any]) -> S3Connection:
        service = ((extra.get("service_config") or {}).get("s3") or {}) if isinstance(extra, dict) else {}
        return cls(
            access_key_id=login or extra.get("aws_access_key_id") or None,
            secret_access_key=password or extra.get("aws_secret_access_key") or None,
            session_token=extra.get("aws_session_token") or None,
            endpoint_url=service.get("endpoint_url")
            or extra.get("endpoint_url")
            or extra.get("host")
            or None,
            region_name=extra.get("region_name") or None,
        )
