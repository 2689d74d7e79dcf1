"""OpenLineage datasets per step: names by the OpenLineage naming spec, no credentials, the contract's columns."""

from __future__ import annotations

from datetime import date

from jobs.pipeline.lineage import step_lineage
from jobs.pipeline.steps import RunContext

SNAPSHOT = date(2024, 12, 31)


def _names(datasets: list) -> set[tuple[str, str]]:
    return {(d.namespace, d.name) for d in datasets}


def test_postgres_source_and_duckdb_warehouse_are_named_by_host_and_file_without_credentials() -> None:
    ctx = RunContext.create(SNAPSHOT, warehouse="duckdb:////srv/wh/analytics.duckdb", lake="/srv/lake",
                            source="postgresql://reader:s3cret@replica.internal:6543/shop?sslmode=require")
    extract = step_lineage("extract", ctx)
    assert ("postgres://replica.internal:6543", "shop.crm.orders") in _names(extract.inputs)
    assert len(extract.inputs) == 6
    assert ("file", "/srv/lake/raw/order_items") in _names(extract.outputs)
    assert not [d for d in extract.inputs if "s3cret" in d.namespace + d.name or "reader" in d.namespace]
    publish = step_lineage("publish", ctx)
    assert ("duckdb:///srv/wh/analytics.duckdb", "marts.customer_rfm") in _names(publish.outputs)
    assert ("file", "/srv/lake/marts/customer_rfm") in _names(publish.inputs)


def test_an_s3_lake_is_named_by_bucket_and_key_prefix() -> None:
    ctx = RunContext.create(SNAPSHOT, warehouse="postgresql://crm@wh:5432/analytics", lake="s3a://crm-lake/prod")
    build = step_lineage("build_marts", ctx)
    assert ("s3://crm-lake", "prod/derived/customer_day") in _names(build.inputs)
    assert ("s3://crm-lake", "prod/marts/whale_curve") in _names(build.outputs)
    # the default port is spelled out, as the spec's namespace has it
    assert ("postgres://wh:5432", "analytics.marts.dq_results") in _names(step_lineage("validate_marts", ctx).outputs)


def test_export_without_a_url_and_the_bookkeeping_steps_name_nothing(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("CRM_METRICS_EXPORT_URL", raising=False)
    ctx = RunContext.create(SNAPSHOT, warehouse="duckdb:////tmp/w.duckdb", lake="/tmp/lake")
    assert step_lineage("export", ctx).outputs == [] and step_lineage("record", ctx).inputs == []
    ctx = RunContext.create(SNAPSHOT, warehouse="duckdb:////tmp/w.duckdb", lake="/tmp/lake",
                            params={"export_url": "s3://bi-exports/crm"})
    assert ("s3://bi-exports", "crm/customer_segments") in _names(step_lineage("export", ctx).outputs)


def test_each_dataset_carries_the_columns_and_comments_of_the_contract() -> None:
    ctx = RunContext.create(SNAPSHOT, warehouse="duckdb:////tmp/w.duckdb", lake="/tmp/lake")
    rfm = next(d for d in step_lineage("publish", ctx).outputs if d.name == "marts.customer_rfm")
    fields = {f.name: f for f in rfm.facets["schema"].fields}
    assert {"snapshot_date", "customer_id", "frequency", "recency", "T", "monetary_value"} <= set(fields)
    assert fields["customer_id"].description == "Customer identifier, as in the source warehouse."
    assert fields["snapshot_date"].type == "date"
