"""A BI-style client: SQLAlchemy, logged in as a member of crm_bi_reader, runs the queries a
dashboard would (retention curves by channel, top segments, the whale curve) against PostgreSQL
marts published by the real publish step. The answers equal Spark's over the lake's marts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.lake import Lake
from jobs.publish import publish
from jobs.transform import read_mart
from jobs.warehouse import open_warehouse

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RETENTION_BY_CHANNEL = """
    SELECT acquisition_channel, period,
           sum(active_customers)::float / sum(cohort_size) AS retention
    FROM marts.cohort_retention_latest
    WHERE acquisition_channel <> 'all' AND is_complete_period
    GROUP BY acquisition_channel, period
    ORDER BY acquisition_channel, period
"""
TOP_SEGMENTS = """
    SELECT segment, customers, revenue
    FROM marts.portfolio_breakdown
    WHERE snapshot_date = :snapshot AND dimension = 'value_tier'
    ORDER BY revenue DESC, segment
    LIMIT 3
"""
WHALE_CURVE = """
    SELECT percentile, cumulative_profit_share
    FROM marts.whale_curve
    WHERE snapshot_date = :snapshot
    ORDER BY percentile
"""


@pytest.fixture(scope="module")
def dashboard_url(published_warehouse: dict[str, Any], postgres_server: Any) -> str:
    """The fixture's lake published into a fresh PostgreSQL database; a login in crm_bi_reader."""
    import psycopg

    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "bi_client"')
        conn.execute('CREATE DATABASE "bi_client"')
        conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'looker') THEN "
            "CREATE ROLE looker LOGIN PASSWORD 'looker-pw'; END IF; END $$"
        )
    admin_url = postgres_server.url.rsplit("/", 1)[0] + "/bi_client"
    publish(open_warehouse(admin_url), Lake.at(str(published_warehouse["lake"])), published_warehouse["snapshot"])
    admin = open_warehouse(admin_url)
    admin.execute("GRANT crm_bi_reader TO looker")
    admin.execute("CREATE SCHEMA IF NOT EXISTS crm")  # a source table the dashboard must not see
    admin.execute("CREATE TABLE IF NOT EXISTS crm.orders (order_id text)")
    return "postgresql+psycopg://looker:looker-pw@" + admin_url.split("@", 1)[1]


def _mart(spark: SparkSession, published: dict[str, Any], name: str) -> DataFrame:
    return read_mart(spark, Lake.at(str(published["lake"])), name, published["snapshot"])


def test_dashboard_queries_through_sqlalchemy_equal_spark(
    dashboard_url: str, published_warehouse: dict[str, Any], spark: SparkSession
) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(dashboard_url)
    snapshot = published_warehouse["snapshot"]
    with engine.connect() as conn:
        retention = [tuple(r) for r in conn.execute(text(RETENTION_BY_CHANNEL))]
        segments = [tuple(r) for r in conn.execute(text(TOP_SEGMENTS), {"snapshot": snapshot})]
        whale = [tuple(r) for r in conn.execute(text(WHALE_CURVE), {"snapshot": snapshot})]
    engine.dispose()

    cohorts = _mart(spark, published_warehouse, "cohort_retention")
    expected_retention = (
        cohorts.where((F.col("acquisition_channel") != "all") & F.col("is_complete_period"))
        .groupBy("acquisition_channel", "period")
        .agg((F.sum("active_customers") / F.sum("cohort_size")).alias("retention"))
        .orderBy("acquisition_channel", "period")
        .collect()
    )
    assert len(retention) == len(expected_retention) > 10
    assert len({r[0] for r in retention}) >= 3  # several channels, several periods each
    for got, want in zip(retention, expected_retention, strict=True):
        assert got[:2] == (want["acquisition_channel"], want["period"])
        assert got[2] == pytest.approx(want["retention"], abs=1e-12)

    breakdown = _mart(spark, published_warehouse, "portfolio_breakdown")
    expected_segments = [
        (r["segment"], r["customers"], r["revenue"])
        for r in breakdown.where(F.col("dimension") == "value_tier").orderBy(F.desc("revenue"), "segment").limit(3).collect()
    ]
    assert segments == expected_segments and len(segments) == 3
    assert all(isinstance(r[2], Decimal) for r in segments)  # money stays exact for the BI tool

    curve = _mart(spark, published_warehouse, "whale_curve").orderBy("percentile").collect()
    assert [(r[0], pytest.approx(r[1], abs=1e-12)) for r in whale] == [
        (r["percentile"], r["cumulative_profit_share"]) for r in curve
    ]
    assert max(r[1] for r in whale) > 1.0  # the whale: the most profitable customers earn more than all


def test_the_dashboard_login_cannot_write_or_read_sources(dashboard_url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import ProgrammingError

    engine = create_engine(dashboard_url)
    try:
        for sql in ("DELETE FROM marts.whale_curve", "SELECT 1 FROM crm.orders", "CREATE TABLE marts.scratch (i int)"):
            with engine.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
                conn.execute(text(sql))
    finally:
        engine.dispose()
