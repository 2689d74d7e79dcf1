"""A BI-style client: SQLAlchemy, logged in as a member of crm_bi_reader, runs the queries a
dashboard would (retention curves by channel, top segments, the whale curve) against PostgreSQL
marts published by the real publish step. The answers are checked against what holds by
definition, against the source, and against the same SQL on the DuckDB marts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from jobs.platform.lake import Lake
from jobs.platform.warehouse import open_warehouse
from jobs.publish.to_warehouse import publish

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RETENTION_BY_CHANNEL = """
    SELECT acquisition_channel, period,
           sum(active_customers)::double precision / sum(cohort_size) AS retention
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


CUSTOMERS_BY_TIER = """
    SELECT sum(customers) FROM marts.portfolio_breakdown
    WHERE snapshot_date = :snapshot AND dimension = 'value_tier'
"""


def _answers(run: Any, snapshot: Any) -> dict[str, list[tuple[Any, ...]]]:
    """The dashboard's answers through `run(sql, params)`."""
    return {
        "retention": run(RETENTION_BY_CHANNEL, {}),
        "segments": run(TOP_SEGMENTS, {"snapshot": snapshot}),
        "whale": run(WHALE_CURVE, {"snapshot": snapshot}),
        "tier_customers": run(CUSTOMERS_BY_TIER, {"snapshot": snapshot}),
    }


def test_dashboard_queries_through_sqlalchemy(dashboard_url: str, published_warehouse: dict[str, Any]) -> None:
    """Checked against what holds by definition and against the source, then against the same
    SQL on the DuckDB warehouse the pipeline published to (another engine, same marts)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(dashboard_url)
    snapshot = published_warehouse["snapshot"]
    with engine.connect() as conn:
        got = _answers(lambda sql, params: [tuple(r) for r in conn.execute(text(sql), params)], snapshot)
    engine.dispose()

    retention = got["retention"]
    assert len(retention) > 10 and len({r[0] for r in retention}) >= 3  # several channels, several periods each
    # a cohort is the customers whose first purchase fell in its month: all of them active in period 0
    assert {r[2] for r in retention if r[1] == 0} == {1.0}
    assert all(0.0 <= r[2] <= 1.0 for r in retention)
    whale = got["whale"]
    assert [r[0] for r in whale] == list(range(1, 101))
    assert whale[-1][1] == pytest.approx(1.0, abs=1e-12)  # all buyers together earn all the profit
    assert max(r[1] for r in whale) > 1.0  # the whale: the most profitable customers earn more than all
    segments = got["segments"]
    assert len(segments) == 3 and all(isinstance(r[2], Decimal) for r in segments)  # money stays exact
    assert [r[2] for r in segments] == sorted((r[2] for r in segments), reverse=True)
    # every customer of the source sits in exactly one value tier (prospects included)
    source = open_warehouse(str(published_warehouse["warehouse"]))
    assert got["tier_customers"] == [(source.scalar("SELECT count(*) FROM crm.customers"),)]

    duckdb = _answers(
        lambda sql, params: [tuple(r) for r in source.query(sql.replace(":snapshot", "?"), list(params.values()))], snapshot
    )
    assert got["segments"] == duckdb["segments"] and got["tier_customers"] == duckdb["tier_customers"]
    for name in ("retention", "whale"):
        assert len(got[name]) == len(duckdb[name])
        for mine, theirs in zip(got[name], duckdb[name], strict=True):
            assert mine[:-1] == theirs[:-1] and mine[-1] == pytest.approx(theirs[-1], abs=1e-12), name


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
