"""Customer keys that leave the warehouse are keyed hashes, never the raw ids.

`customer_key = hex(HMAC-SHA256(secret, customer_id))`: stable for joins across exports made with
the same secret, meaningless without it, and unlinkable once the secret is rotated.

The secret comes from the Airflow Variable `crm_customer_key_secret` (in the environment as
`AIRFLOW_VAR_CRM_CUSTOMER_KEY_SECRET`, or from the Airflow secrets backend). Its value is
`<version>:<secret>`, e.g. `k2:3f9c...`; the version is written next to every export so a consumer
knows which key made the hashes. Rotation: add the new value, export again, retire the old.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

import pyarrow as pa

VARIABLE = "crm_customer_key_secret"
ENV = f"AIRFLOW_VAR_{VARIABLE.upper()}"
# Columns that identify a customer; they are hashed in anything that leaves the warehouse.
CUSTOMER_KEY_COLUMNS = ("customer_id", "referred_by")
MIN_SECRET_BYTES = 16


class MissingSecret(RuntimeError):
    """No key is configured for hashing customer ids."""


@dataclass(frozen=True)
class CustomerKey:
    version: str
    secret: bytes

    def __repr__(self) -> str:  # never print the secret
        return f"CustomerKey(version={self.version!r}, secret=***)"

    def hash(self, customer_id: str) -> str:
        return hmac.new(self.secret, customer_id.encode("utf-8"), hashlib.sha256).hexdigest()


def parse_key(value: str) -> CustomerKey:
    """`version:secret` -> CustomerKey; a value without a version is version `v1`."""
    version, sep, secret = value.partition(":")
    if not sep:
        version, secret = "v1", value
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise MissingSecret(
            f"the customer key secret (Variable {VARIABLE}) is shorter than {MIN_SECRET_BYTES} bytes; "
            "generate one with: python -c 'import secrets; print(\"k1:\" + secrets.token_hex(32))'"
        )
    return CustomerKey(version.strip() or "v1", secret.encode())


def load_key() -> CustomerKey:
    """The key from the environment or, inside Airflow, from its Variables and secrets backend."""
    value = os.environ.get(ENV)
    if value is None:
        try:
            from airflow.sdk import Variable

            value = Variable.get(VARIABLE, default=None)
        except Exception:  # noqa: BLE001 - outside a task there is no Airflow to ask
            value = None
    if not value:
        raise MissingSecret(
            f"customer ids leave the warehouse only as keyed hashes, and no key is set: set the Airflow "
            f"Variable {VARIABLE} (or the environment variable {ENV}) to 'k1:<at least 16 random bytes>'"
        )
    return parse_key(value)


def pseudonymize_table(table: pa.Table, key: CustomerKey, columns: tuple[str, ...] = CUSTOMER_KEY_COLUMNS) -> pa.Table:
    """The same table with every customer key column replaced by its keyed hash (nulls stay null)."""
    for name in columns:
        if name not in table.column_names:
            continue
        index = table.column_names.index(name)
        values = table.column(name).to_pylist()
        cache: dict[str, str] = {}
        hashed = [None if v is None else cache.setdefault(str(v), key.hash(str(v))) for v in values]
        table = table.set_column(index, pa.field(name, pa.string(), nullable=True), pa.array(hashed, pa.string()))
    return table
