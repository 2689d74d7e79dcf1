"""Keyed hashes of customer ids: the HMAC is the standard one, rotation changes every key."""

from __future__ import annotations

import pyarrow as pa
import pytest

from jobs.platform.pseudonymize import (
    ENV,
    CustomerKey,
    MissingSecret,
    load_key,
    parse_key,
    pseudonymize_table,
)


def test_hmac_matches_rfc_4231_test_case_2() -> None:
    """The published HMAC-SHA256 vector (RFC 4231, 4.3); the RFC key is below our length rule."""
    rfc = CustomerKey("t", b"Jefe")
    assert rfc.hash("what do ya want for nothing?") == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_table_columns_are_hashed_and_nulls_kept() -> None:
    key = parse_key("k1:" + "s" * 32)
    table = pa.table({"customer_id": ["C1", "C2", "C1"], "referred_by": [None, "C1", None], "revenue": [1, 2, 3]})
    out = pseudonymize_table(table, key)
    ids = out.column("customer_id").to_pylist()
    assert ids[0] == ids[2] != ids[1] and len(ids[0]) == 64 and "C1" not in ids
    assert out.column("referred_by").to_pylist() == [None, ids[0], None]  # the same customer, the same hash
    assert out.column("revenue").to_pylist() == [1, 2, 3]


def test_rotation_changes_every_hash_and_version_is_kept() -> None:
    old, new = parse_key("k1:" + "a" * 32), parse_key("k2:" + "b" * 32)
    assert (old.version, new.version) == ("k1", "k2")
    assert all(old.hash(c) != new.hash(c) for c in ("C1", "C2", "ÇİĞ-顧客"))
    assert "a" * 32 not in repr(old)


def test_missing_or_weak_secret_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(MissingSecret, match="crm_customer_key_secret"):
        load_key()
    monkeypatch.setenv(ENV, "k1:short")
    with pytest.raises(MissingSecret, match="shorter than 16 bytes"):
        load_key()
    monkeypatch.setenv(ENV, "k9:" + "x" * 20)
    assert load_key().version == "k9"
