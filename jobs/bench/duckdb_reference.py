"""The DuckDB reference (reference.sql) and the checks that compare other engines' output with it.

Run as a child process so its peak memory is its own:
    python -m jobs.bench.duckdb_reference --lake LAKE --snapshot D --out DIR
prints one JSON line: seconds, per-statement seconds, peak RSS, row counts.

The checks run in DuckDB over the Parquet files each engine wrote: no engine's customer-level
output passes through Python objects.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

from jobs.bench.procmem import cpu_seconds, peak_rss_mb
from schemas.source import CURRENCIES, INTERACTION_TYPES, ORDER_STATUSES, SALES_CHANNELS

REFERENCE_SQL = Path(__file__).with_name("reference.sql")
MARTS = ("customer_profitability", "customer_rfm", "cohort_retention")
FLOAT_TOLERANCE = 1e-9


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _path(p: Path) -> str:
    return str(p).replace("'", "''")


def reference_sql(raw: Path, snapshot: date, out: Path, max_order_amount: float) -> str:
    """reference.sql with its placeholders filled in."""
    return REFERENCE_SQL.read_text().format(
        raw=_path(raw),
        snapshot=snapshot.isoformat(),
        snapshot_end=(snapshot + timedelta(days=1)).isoformat(),
        out=_path(out),
        max_order_amount=repr(float(max_order_amount)),
        currencies=_sql_list(CURRENCIES),
        statuses=_sql_list(ORDER_STATUSES),
        sales_channels=_sql_list(SALES_CHANNELS),
        interaction_types=_sql_list(INTERACTION_TYPES),
    )


def _label(sql: str) -> str:
    """A short name for a statement: the table it creates or the file it writes."""
    text = " ".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    created = re.search(r"TABLE\s+(\w+)", text)
    copied = re.search(r"TO\s+'[^']*/(\w+)\.parquet'", text)
    if copied:
        return copied.group(1)
    return created.group(1) if created else " ".join(text.split())[:40]


def _count(conn: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def run_reference(
    lake_root: Path, snapshot: date, out: Path, max_order_amount: float = 100_000.0, threads: int | None = None
) -> dict[str, Any]:
    """Run the reference: read the raw lake, write the three marts to `out`. Timed from connect
    to the last file written."""
    out.mkdir(parents=True, exist_ok=True)
    sql = reference_sql(lake_root / "raw", snapshot, out, max_order_amount)
    started = time.perf_counter()
    conn = duckdb.connect()
    try:
        if threads:
            conn.execute(f"SET threads = {int(threads)}")
        used_threads = conn.execute("SELECT current_setting('threads')").fetchone()
        statements: list[dict[str, Any]] = []
        for stmt in duckdb.extract_statements(sql):
            t = time.perf_counter()
            conn.execute(stmt)
            statements.append({"sql": _label(stmt.query), "seconds": round(time.perf_counter() - t, 3)})
        rows = {m: _count(conn, f"SELECT count(*) FROM read_parquet('{_path(out / m)}.parquet')") for m in MARTS}
    finally:
        conn.close()
    return {
        "seconds": time.perf_counter() - started,
        "threads": int(used_threads[0]) if used_threads else None,
        "statements": statements,
        "rows": rows,
    }


# -- checks ----------------------------------------------------------------------------------------
@dataclass
class Check:
    """Mismatch counts per compared field between two outputs (0 everywhere = same numbers)."""

    name: str
    rows_compared: int = 0
    mismatches: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.mismatches.values())

    def as_dict(self) -> dict[str, Any]:
        return {"ran": True, "rows_compared": self.rows_compared, "mismatches": self.total, "by_field": self.mismatches, "examples": self.examples}


def _compare(
    conn: duckdb.DuckDBPyConnection,
    name: str,
    left: str,
    right: str,
    key: list[str],
    exact: list[str],
    approx: list[str],
) -> Check:
    """Full outer join of two relations on `key`; count rows missing on a side and, per field,
    rows that differ (exact: IS DISTINCT FROM; approx: both null or |a-b| <= tol*max(1,|a|))."""
    on = " AND ".join(f'l."{k}" IS NOT DISTINCT FROM r."{k}"' for k in key)
    conds: dict[str, str] = {
        "missing_left": " AND ".join(f'l."{k}" IS NULL' for k in key),
        "missing_right": " AND ".join(f'r."{k}" IS NULL' for k in key),
    }
    for c in exact:
        conds[c] = f'l."{c}" IS DISTINCT FROM r."{c}"'
    for c in approx:
        conds[c] = (
            f'NOT coalesce((l."{c}" IS NULL AND r."{c}" IS NULL) OR '
            f'abs(l."{c}" - r."{c}") <= {FLOAT_TOLERANCE} * greatest(1.0, abs(l."{c}")), false)'
        )
    counts = ", ".join(f"count(*) FILTER (WHERE {cond}) AS \"{n}\"" for n, cond in conds.items())
    row = conn.execute(f"SELECT count(*) AS n, {counts} FROM ({left}) l FULL OUTER JOIN ({right}) r ON {on}").fetchone()
    assert row is not None
    check = Check(name, rows_compared=int(row[0]), mismatches={n: int(v) for n, v in zip(conds, row[1:], strict=True) if v})
    if check.total:
        any_bad = " OR ".join(f"({c})" for c in conds.values())
        keys = ", ".join(f'coalesce(CAST(l."{k}" AS VARCHAR), CAST(r."{k}" AS VARCHAR))' for k in key)
        bad = conn.execute(
            f"SELECT concat_ws('/', {keys}) FROM ({left}) l FULL OUTER JOIN ({right}) r ON {on} WHERE {any_bad} LIMIT 5"
        ).fetchall()
        check.examples = [str(b[0]) for b in bad]
    return check


def _parquet(folder_or_file: Path) -> str:
    p = folder_or_file
    pattern = p if p.suffix == ".parquet" else p / "*.parquet"
    return f"read_parquet('{_path(pattern)}')"


CUSTOMER_EXACT = [
    "purchase_days", "frequency", "revenue", "net_profit", "cogs", "cost_to_serve", "profit_rank", "profit_decile",
    "days_since_last_purchase", "r_score", "f_score", "m_score", "rfm_segment",
]
CUSTOMER_APPROX = ["recency", "T", "monetary_value", "spend_cv", "gap_cv"]
COHORT_EXACT = ["cohort_size", "active_customers", "unbounded_active_customers", "revenue", "margin", "is_complete_period"]
COHORT_APPROX = ["retention_rate", "cumulative_revenue_per_customer"]


def _customers(profitability: str, rfm: str) -> str:
    cols = ", ".join(f'r."{c}"' for c in ["frequency", "recency", "T", "monetary_value", "days_since_last_purchase",
                                            "r_score", "f_score", "m_score", "rfm_segment", "spend_cv", "gap_cv"])
    return (
        "SELECT p.customer_id, p.purchase_days, p.revenue, p.net_profit, p.cogs, p.cost_to_serve, p.profit_rank, "
        f"p.profit_decile, {cols} FROM {profitability} p LEFT JOIN {rfm} r ON p.customer_id = r.customer_id"
    )


def check_marts(spark_marts: dict[str, Path], reference: Path) -> dict[str, Check]:
    """Spark's marts (folders of Parquet) against the reference's files."""
    conn = duckdb.connect()
    try:
        customers = _compare(
            conn, "customers",
            _customers(_parquet(spark_marts["customer_profitability"]), _parquet(spark_marts["customer_rfm"])),
            _customers(_parquet(reference / "customer_profitability.parquet"), _parquet(reference / "customer_rfm.parquet")),
            ["customer_id"], CUSTOMER_EXACT, CUSTOMER_APPROX,
        )
        cohort_cols = ", ".join(f'"{c}"' for c in ["cohort_month", "acquisition_channel", "period", *COHORT_EXACT, *COHORT_APPROX])
        cohorts = _compare(
            conn, "cohorts",
            f"SELECT {cohort_cols} FROM {_parquet(spark_marts['cohort_retention'])}",
            f"SELECT {cohort_cols} FROM {_parquet(reference / 'cohort_retention.parquet')}",
            ["cohort_month", "acquisition_channel", "period"], COHORT_EXACT, COHORT_APPROX,
        )
    finally:
        conn.close()
    return {"customers": customers, "cohorts": cohorts}


def check_lifetimes(spark_rfm: Path, summary: Path) -> Check:
    """The pandas lifetimes-style summary against Spark's customer_rfm: frequency exactly,
    recency / T / monetary_value to 1e-9."""
    conn = duckdb.connect()
    try:
        cols = 'customer_id, frequency, recency, "T", monetary_value'
        return _compare(
            conn, "lifetimes",
            f"SELECT {cols} FROM {_parquet(spark_rfm)}",
            f"SELECT {cols} FROM {_parquet(summary)}",
            ["customer_id"], ["frequency"], ["recency", "T", "monetary_value"],
        )
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--snapshot", type=date.fromisoformat, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-order-amount", type=float, default=100_000.0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    cpu_before = cpu_seconds() or 0.0
    result = run_reference(args.lake, args.snapshot, args.out, args.max_order_amount, args.threads)
    result["peak_rss_mb"] = peak_rss_mb()
    result["cpu_seconds"] = (cpu_seconds() or 0.0) - cpu_before
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
