"""S3 export of a published snapshot, against a real S3 endpoint (moto_server over HTTP) and the
session's published DuckDB warehouse (read-only). No mocks: objects are read back with boto3 and
pyarrow and compared with SQL on the warehouse."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from jobs.platform.config import mask_url
from jobs.platform.pseudonymize import ENV as KEY_ENV
from jobs.platform.pseudonymize import MissingSecret, load_key
from jobs.platform.warehouse import open_warehouse
from jobs.publish import to_s3 as export_s3
from jobs.publish.to_s3 import ExportError, S3Connection, TransferSettings, export_snapshot
from schemas.marts import METRIC_MARTS
from tests.support.faults import InjectedFault, inject

MiB = 1024 * 1024
PREFIX = "crm/v1"
SECRET = "s3cr/et+key=="  # moto accepts any credentials; this one has characters URIs must escape


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"crm-export-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def connection(s3_endpoint: str) -> S3Connection:
    return S3Connection(
        access_key_id="testing", secret_access_key=SECRET, endpoint_url=s3_endpoint, region_name="us-east-1"
    )


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing from the machine (AWS files, a connection, faults) may leak into these tests."""
    for name in (
        "AIRFLOW_CONN_CRM_EXPORT",
        "CRM_METRICS_FAIL_AT",
        "CRM_METRICS_FAIL_ONCE_DIR",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv(KEY_ENV, "k7:" + "s" * 32)


def body(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def keys_under(s3: Any, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", ()))


def exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in ("404", "NoSuchKey")
        return False


def read_mart(s3: Any, bucket: str, manifest: dict[str, Any], name: str) -> pa.Table:
    files = manifest["marts"][name]["files"]
    return pa.concat_tables(pq.read_table(io.BytesIO(body(s3, bucket, f["key"]))) for f in files)


def manifest_of(s3: Any, bucket: str, snapshot: date, prefix: str = PREFIX) -> dict[str, Any]:
    key = f"{prefix}/_manifests/snapshot_date={snapshot.isoformat()}/_manifest.json"
    return dict(json.loads(body(s3, bucket, key)))


def test_export_writes_every_mart_partition_then_the_manifest(
    published_warehouse: dict[str, Any], s3: Any, s3_endpoint: str, bucket: str, connection: S3Connection
) -> None:
    url, snapshot = str(published_warehouse["warehouse"]), published_warehouse["snapshot"]
    result = export_snapshot(
        url, snapshot, f"s3://{bucket}/{PREFIX}/", run_id="manual__test", connection=connection
    )

    assert result.manifest_key == f"{PREFIX}/_manifests/snapshot_date=2024-06-30/_manifest.json"
    manifest = json.loads(body(s3, bucket, result.manifest_key))
    assert manifest["snapshot_date"] == "2024-06-30"
    assert manifest["run_id"] == "manual__test"
    assert manifest["warehouse"] == url
    assert manifest["partition_columns"] == ["snapshot_date"]
    assert list(manifest["marts"]) == [t.name for t in METRIC_MARTS]

    wh = open_warehouse(url)
    every_key = set()
    for table in METRIC_MARTS:
        entry = manifest["marts"][table.name]
        partition = f"{PREFIX}/{table.name}/snapshot_date=2024-06-30/"
        # the partition holds exactly the files the manifest lists
        assert keys_under(s3, bucket, partition) == sorted(f["key"] for f in entry["files"])
        assert entry["files"][0]["key"] == partition + "part-00000.parquet"
        for f in entry["files"]:
            assert re.fullmatch(re.escape(partition) + r"part-\d{5}\.parquet", f["key"])
            data = body(s3, bucket, f["key"])
            assert len(data) == f["bytes"]
            assert hashlib.sha256(data).hexdigest() == f["sha256"]
            assert pq.read_metadata(io.BytesIO(data)).num_rows == f["rows"]
            every_key.add(f["key"])
        # row count: files = manifest = warehouse
        expected_rows = wh.scalar(
            f"SELECT count(*) FROM marts.{table.name} WHERE snapshot_date = ?", [snapshot]
        )
        assert expected_rows > 0, table.name
        assert entry["rows"] == sum(f["rows"] for f in entry["files"]) == expected_rows
        assert result.rows[table.name] == expected_rows
        # schema in the manifest is the mart's, with the exact Arrow types
        assert [c["name"] for c in entry["schema"]] == table.column_names
        assert {c["name"]: c["type"] for c in entry["schema"]}["snapshot_date"] == "date32[day]"
        # files carry every other column with the manifest's types (partition column in the path)
        got = read_mart(s3, bucket, manifest, table.name)
        assert got.num_rows == expected_rows
        assert [(f.name, str(f.type)) for f in got.schema] == [
            (c["name"], c["type"]) for c in entry["schema"] if c["name"] != "snapshot_date"
        ]
    assert set(result.objects) == every_key
    assert result.bytes == sum(m["bytes"] for m in manifest["marts"].values())

    profitability = manifest["marts"]["customer_profitability"]
    assert {c["name"]: c["type"] for c in profitability["schema"]}["revenue"] == "decimal128(18, 2)"
    assert {c["name"]: c["type"] for c in profitability["schema"]}["customer_id"] == "string"

    # money and measures add up to the warehouse's own totals
    profit = read_mart(s3, bucket, manifest, "customer_profitability")
    revenue, net_profit = wh.query(
        "SELECT sum(revenue), sum(net_profit) FROM marts.customer_profitability WHERE snapshot_date = ?",
        [snapshot],
    )[0]
    assert pc.sum(profit["revenue"]).as_py() == Decimal(revenue)
    assert pc.sum(profit["net_profit"]).as_py() == Decimal(net_profit)
    # customer ids leave only as keyed hashes, in the mart's key order; the manifest names the key
    raw_ids = [r[0] for r in wh.query(
        "SELECT customer_id FROM marts.customer_profitability WHERE snapshot_date = ? ORDER BY customer_id", [snapshot]
    )]
    key = load_key()
    assert profit["customer_id"].to_pylist() == [key.hash(c) for c in raw_ids]
    assert not set(raw_ids) & set(profit["customer_id"].to_pylist())
    assert manifest["customer_key"] == {"algorithm": "HMAC-SHA256", "key_version": "k7", "columns": ["customer_id", "referred_by"]}
    rfm = read_mart(s3, bucket, manifest, "customer_rfm")
    monetary = wh.scalar(
        "SELECT sum(monetary_value) FROM marts.customer_rfm WHERE snapshot_date = ?", [snapshot]
    )
    assert pc.sum(rfm["monetary_value"]).as_py() == pytest.approx(monetary, rel=1e-12)

    # an Athena-style reader: pyarrow over S3 with Hive partitioning finds the snapshot column
    fs = pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        endpoint_override=s3_endpoint,
        region="us-east-1",
        allow_bucket_creation=False,
    )
    dataset = ds.dataset(
        f"{bucket}/{PREFIX}/customer_profitability", filesystem=fs, format="parquet", partitioning="hive"
    )
    table = dataset.to_table(filter=ds.field("snapshot_date") == "2024-06-30")
    assert table.num_rows == manifest["marts"]["customer_profitability"]["rows"]


def test_export_twice_gives_identical_objects_and_manifest(
    published_warehouse: dict[str, Any], s3: Any, bucket: str, connection: S3Connection
) -> None:
    url, snapshot = str(published_warehouse["warehouse"]), published_warehouse["snapshot"]
    first = export_snapshot(url, snapshot, f"s3://{bucket}/{PREFIX}", run_id="r1", connection=connection)
    before = {k: body(s3, bucket, k) for k in keys_under(s3, bucket, PREFIX)}
    etags = {k: s3.head_object(Bucket=bucket, Key=k)["ETag"] for k in before}
    second = export_snapshot(url, snapshot, f"s3://{bucket}/{PREFIX}", run_id="r1", connection=connection)
    after = {k: body(s3, bucket, k) for k in keys_under(s3, bucket, PREFIX)}

    assert first.manifest_key in after
    assert after == before
    assert {k: s3.head_object(Bucket=bucket, Key=k)["ETag"] for k in after} == etags
    assert second == first
    assert second.deleted_keys == ()

    # same content wherever it goes: another prefix gets the same file bytes
    elsewhere = export_snapshot(url, snapshot, f"s3://{bucket}/other", run_id="r1", connection=connection)
    assert [(f.sha256, f.bytes) for m in elsewhere.marts for f in m.files] == [
        (f.sha256, f.bytes) for m in first.marts for f in m.files
    ]


def test_reexport_removes_stale_objects_of_that_date_only(
    published_warehouse: dict[str, Any], s3: Any, bucket: str, connection: S3Connection
) -> None:
    url, snapshot = str(published_warehouse["warehouse"]), published_warehouse["snapshot"]
    stale = f"{PREFIX}/customer_rfm/snapshot_date=2024-06-30/part-00042.parquet"
    other_date = f"{PREFIX}/customer_rfm/snapshot_date=2024-06-29/part-00000.parquet"
    s3.put_object(Bucket=bucket, Key=stale, Body=b"left by an older, larger export")
    s3.put_object(Bucket=bucket, Key=other_date, Body=b"another snapshot")

    result = export_snapshot(url, snapshot, f"s3://{bucket}/{PREFIX}", connection=connection)

    assert result.deleted_keys == (stale,)
    assert not exists(s3, bucket, stale)
    assert body(s3, bucket, other_date) == b"another snapshot"
    assert manifest_of(s3, bucket, snapshot)["run_id"] is None


def test_large_mart_is_split_into_several_files(
    published_warehouse: dict[str, Any], s3: Any, bucket: str, connection: S3Connection
) -> None:
    url, snapshot = str(published_warehouse["warehouse"]), published_warehouse["snapshot"]
    whole = export_snapshot(url, snapshot, f"s3://{bucket}/whole", connection=connection)
    split = export_snapshot(
        url,
        snapshot,
        f"s3://{bucket}/split",
        connection=connection,
        transfer=TransferSettings(rows_per_file=500, row_group_rows=200),
    )
    whole_manifest = manifest_of(s3, bucket, snapshot, "whole")
    split_manifest = manifest_of(s3, bucket, snapshot, "split")
    files = split_manifest["marts"]["customer_profitability"]["files"]
    rows = whole.rows["customer_profitability"]
    assert len(files) == -(-rows // 500) >= 3
    assert [f["key"].rsplit("/", 1)[1] for f in files] == [f"part-{i:05d}.parquet" for i in range(len(files))]
    assert all(f["rows"] == 500 for f in files[:-1])
    assert pq.read_metadata(io.BytesIO(body(s3, bucket, files[0]["key"]))).num_row_groups == 3
    assert split.rows == whole.rows
    for table in METRIC_MARTS:
        assert read_mart(s3, bucket, split_manifest, table.name).equals(
            read_mart(s3, bucket, whole_manifest, table.name)
        ), table.name


def test_large_file_goes_up_as_multipart(
    s3: Any, bucket: str, connection: S3Connection, tmp_path: Path
) -> None:
    blob = hashlib.sha256(b"seed").digest() * (11 * MiB // 32)  # 11 MiB
    path = tmp_path / "big.parquet"
    path.write_bytes(blob)
    client = export_s3.s3_client(connection)
    settings = TransferSettings(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_attempts=3)

    export_s3.upload_file(client, path, bucket, "big/part-00000.parquet", settings, metadata={"sha256": "x"})
    head = s3.head_object(Bucket=bucket, Key="big/part-00000.parquet")
    assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 1 MiB parts
    assert head["ContentLength"] == len(blob)
    assert head["Metadata"] == {"sha256": "x"}
    assert body(s3, bucket, "big/part-00000.parquet") == blob

    export_s3.upload_file(
        client, path, bucket, "big/single.parquet", TransferSettings(multipart_threshold=64 * MiB)
    )
    assert "-" not in s3.head_object(Bucket=bucket, Key="big/single.parquet")["ETag"]

    with pytest.raises(ExportError, match="5 MiB"):
        TransferSettings(multipart_chunksize=1 * MiB)


def test_failed_export_leaves_no_manifest_and_a_rerun_completes(
    published_warehouse: dict[str, Any],
    s3: Any,
    bucket: str,
    connection: S3Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, snapshot = str(published_warehouse["warehouse"]), published_warehouse["snapshot"]
    target = f"s3://{bucket}/{PREFIX}"
    good = export_snapshot(url, snapshot, target, run_id="r1", connection=connection)
    good_manifest = body(s3, bucket, good.manifest_key)

    inject(monkeypatch, "export_before_manifest")
    with pytest.raises(InjectedFault):
        export_snapshot(url, snapshot, target, run_id="r1", connection=connection)
    # the earlier manifest of that date is gone too: no reader follows it into replaced files
    assert not exists(s3, bucket, good.manifest_key)
    assert keys_under(s3, bucket, f"{PREFIX}/_manifests/") == []

    monkeypatch.delenv("CRM_METRICS_FAIL_AT")
    again = export_snapshot(url, snapshot, target, run_id="r1", connection=connection)
    assert body(s3, bucket, again.manifest_key) == good_manifest


def test_errors_name_what_to_fix(
    published_warehouse: dict[str, Any], s3_endpoint: str, bucket: str, connection: S3Connection
) -> None:
    url = str(published_warehouse["warehouse"])
    with pytest.raises(ExportError) as missing_bucket:
        export_snapshot(url, date(2024, 6, 30), "s3://no-such-bucket-here/x", connection=connection)
    assert "'no-such-bucket-here'" in str(missing_bucket.value)
    assert s3_endpoint in str(missing_bucket.value)

    with pytest.raises(ExportError) as no_marts:
        export_snapshot(url, date(2024, 6, 29), f"s3://{bucket}/x", connection=connection)
    assert "2024-06-29" in str(no_marts.value)
    assert "crm-metrics run --date 2024-06-29" in str(no_marts.value)

    with pytest.raises(ExportError, match="s3://bucket/prefix"):
        export_snapshot(url, date(2024, 6, 30), f"/local/{bucket}", connection=connection)
    for err in (missing_bucket.value, no_marts.value):
        assert SECRET not in str(err)


def test_no_customer_key_secret_no_export(
    published_warehouse: dict[str, Any], s3: Any, bucket: str, connection: S3Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(MissingSecret, match="crm_customer_key_secret"):
        export_snapshot(str(published_warehouse["warehouse"]), published_warehouse["snapshot"], f"s3://{bucket}/{PREFIX}", connection=connection)
    assert keys_under(s3, bucket, "") == []


def test_connection_parses_airflow_uri_and_json_forms() -> None:
    uri = "aws://AKIDEXAMPLE:s3cr%2Fet%2Bkey%3D%3D@/?endpoint_url=http%3A%2F%2F127.0.0.1%3A5000&region_name=eu-west-1"
    from_uri = S3Connection.from_airflow_value(uri)
    assert from_uri == S3Connection("AKIDEXAMPLE", SECRET, None, "http://127.0.0.1:5000", "eu-west-1")
    as_json = json.dumps(
        {
            "conn_type": "aws",
            "login": "AKIDEXAMPLE",
            "password": SECRET,
            "extra": {"endpoint_url": "http://127.0.0.1:5000", "region_name": "eu-west-1"},
        }
    )
    assert S3Connection.from_airflow_value(as_json) == from_uri
    # extra given as a JSON string, as Airflow stores it
    as_json_string_extra = json.dumps(
        {
            "conn_type": "aws",
            "login": "AKIDEXAMPLE",
            "password": SECRET,
            "extra": json.dumps({"region_name": "eu-west-1"}),
        }
    )
    assert S3Connection.from_airflow_value(as_json_string_extra).region_name == "eu-west-1"
    assert SECRET not in repr(from_uri)
    with pytest.raises(ExportError):
        S3Connection.from_airflow_value("not a uri")


def test_cli_uses_the_airflow_connection_from_the_environment(
    published_warehouse: dict[str, Any],
    s3: Any,
    s3_endpoint: str,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from urllib.parse import quote

    monkeypatch.setenv(
        "AIRFLOW_CONN_CRM_EXPORT",
        f"aws://testing:{quote(SECRET, safe='')}@/?endpoint_url={quote(s3_endpoint, safe='')}&region_name=us-east-1",
    )
    monkeypatch.setenv("CRM_METRICS_EXPORT_URL", f"s3://{bucket}/{PREFIX}")
    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse")
    export_s3.configure(parser, "export")
    args = parser.parse_args(
        ["--warehouse", str(published_warehouse["warehouse"]), "--date", "2024-06-30", "--run-id", "cli"]
    )
    with caplog.at_level("DEBUG"):
        assert export_s3.run(args) == 0

    out = capsys.readouterr().out
    assert f"manifest s3://{bucket}/{PREFIX}/_manifests/snapshot_date=2024-06-30/_manifest.json" in out
    assert "customer_profitability:" in out
    assert manifest_of(s3, bucket, date(2024, 6, 30))["run_id"] == "cli"
    assert SECRET not in out and SECRET not in caplog.text


def test_without_a_connection_boto3_default_chain_is_used(
    published_warehouse: dict[str, Any],
    s3: Any,
    s3_endpoint: str,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    url, snapshot = str(published_warehouse["warehouse"]), published_warehouse["snapshot"]
    result = export_snapshot(url, snapshot, f"s3://{bucket}/{PREFIX}")
    assert exists(s3, bucket, result.manifest_key)


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_warehouse_exports_the_same_bytes(
    published_warehouse: dict[str, Any],
    postgres_warehouse_url: str,
    s3: Any,
    bucket: str,
    connection: S3Connection,
) -> None:
    """The same marts in PostgreSQL (copied from the DuckDB warehouse) give byte-identical files:
    the ordering, types and row groups do not depend on the engine."""
    from schemas.types import arrow_schema

    duck = open_warehouse(str(published_warehouse["warehouse"]))
    pg = open_warehouse(postgres_warehouse_url)
    pg.ensure_tables("marts", METRIC_MARTS, primary_keys=False)
    with pg.transaction() as conn:
        for table in METRIC_MARTS:
            rows = duck.fetch_arrow(f"SELECT * FROM marts.{table.name}").select(table.column_names)
            pg.load_arrow(conn, "marts", table, rows.cast(arrow_schema(table)))

    snapshot = published_warehouse["snapshot"]
    from_duck = export_snapshot(duck.url, snapshot, f"s3://{bucket}/duck", connection=connection)
    from_pg = export_snapshot(postgres_warehouse_url, snapshot, f"s3://{bucket}/pg", connection=connection)
    assert from_pg.rows == from_duck.rows
    assert [(m.name, [(f.sha256, f.rows) for f in m.files]) for m in from_pg.marts] == [
        (m.name, [(f.sha256, f.rows) for f in m.files]) for m in from_duck.marts
    ]
    assert manifest_of(s3, bucket, snapshot, "pg")["warehouse"] == mask_url(postgres_warehouse_url)
