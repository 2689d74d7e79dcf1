"""The DuckDB reference (reference_inputs.sql, reference_marts.sql) and the checks that compare
other engines' output with it.

Two stages, and the lifetimes summary, each run as a child process so its time, CPU and peak
memory are its own:
    python -m devtools.bench.duckdb_reference --stage inputs --lake LAKE --snapshot D --out DIR
        raw lake (every captured version) -> as of D: latest versions + validity rules
        -> DIR/clean/<table>.parquet
    python -m devtools.bench.duckdb_reference --stage marts --lake LAKE --snapshot D --out DIR
        the lake's clean layer of D (written by Spark's inputs stage) -> DIR/<mart>.parquet
    python -m devtools.bench.duckdb_reference --stage summary --lake LAKE --snapshot D --out DIR
        the raw lake's orders as of D -> DIR/lifetimes_summary.parquet (pandas_summary's conventions)
each prints one JSON line: seconds, per-statement seconds, peak RSS, CPU seconds, row counts.

The lake's tables are Delta tables. They are read here with `deltalake` (delta-rs), as Arrow
datasets of the files the table's current version holds, and registered in DuckDB under the
names the SQL uses (`raw_<table>`, `clean_<table>`): never by globbing the Parquet files of a
Delta table, which also holds files that later commits removed. (DuckDB's delta extension is not
used: it is downloaded at run time.)

The checks run in DuckDB over each engine's output (Spark's Delta tables as Arrow datasets, the
reference's Parquet files): no engine's customer-level output passes through Python objects.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeAlias

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from devtools.bench.procmem import child_main
from jobs.clean.snapshot_inputs import CLEAN_TABLES
from jobs.ingest.extract import exported_table
from jobs.platform.lake import SNAPSHOT_COLUMN, Lake
from jobs.platform.state_tables import snapshot_record
from schemas.marts import MART_BY_NAME
from schemas.source import CURRENCIES, INTERACTION_TYPES, ORDER_STATUSES, SALES_CHANNELS, SOURCE_BY_NAME
from schemas.types import Table, sql_type

STAGES = ("inputs", "marts", "summary")
REFERENCE_SQL = {stage: Path(__file__).with_name(f"reference_{stage}.sql") for stage in STAGES}
MARTS = ("customer_profitability", "customer_rfm", "cohort_retention")
SUMMARY = "lifetimes_summary"
FLOAT_TOLERANCE = 1e-9
# what each stage reads from the lake: (layer, tables); registered as <layer>_<table>
STAGE_INPUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "inputs": ("raw", CLEAN_TABLES),
    "marts": ("clean", ("customers", "orders", "order_items", "interactions")),
    "summary": ("raw", ("orders",)),
}

# Spark's output or the reference's: a Parquet file or folder, or an Arrow table or dataset
Source: TypeAlias = Path | pa.Table | ds.Dataset


def as_lake(lake: Lake | str | Path) -> Lake:
    return lake if isinstance(lake, Lake) else Lake.at(lake)


def delta_dataset(lake: Lake, path: str, snapshot: date | None = None, version: int | None = None) -> ds.Dataset:
    """A Delta table's current version (or `version`) as an Arrow dataset (delta-rs: only the
    files the Delta log holds), or only its partition snapshot_date = `snapshot`. Lazy: DuckDB
    scans it with its projection and filters pushed down."""
    from deltalake import DeltaTable

    if not lake.has_table(path):
        raise FileNotFoundError(f"no Delta table at {path}")
    table = DeltaTable(lake.delta_uri(path), version=version, storage_options=lake.storage_options())
    dataset = table.to_pyarrow_dataset()
    if snapshot is None:
        return dataset
    return dataset.filter(ds.field(SNAPSHOT_COLUMN) == pa.scalar(snapshot, pa.date32()))


def mart_snapshot(lake: Lake | str | Path, mart: str, snapshot: date) -> ds.Dataset:
    """One snapshot of a mart Spark wrote (`marts/<mart>`, partition snapshot_date)."""
    lk = as_lake(lake)
    return delta_dataset(lk, lk.mart_table(mart), snapshot)


def clean_snapshot(lake: Lake | str | Path, table: str, snapshot: date) -> ds.Dataset:
    """One snapshot of a clean table Spark wrote (`clean/<table>` at the version recorded for it)."""
    lk = as_lake(lake)
    record = snapshot_record(lk, snapshot)
    if record is None:
        raise FileNotFoundError(f"no clean layer is recorded for {snapshot} in {lk.root}")
    return delta_dataset(lk, lk.clean_table(table), version=record.versions[f"clean/{table}"])


def register_lake(conn: duckdb.DuckDBPyConnection, stage: str, lake: Lake, snapshot: date) -> dict[str, str]:
    """Register the lake tables a stage reads in `conn`: `raw_<table>` (every captured version;
    the SQL decides what is visible at the snapshot) or `clean_<table>` (the snapshot's
    recorded version). Returns name -> Delta table path."""
    layer, tables = STAGE_INPUTS[stage]
    registered = {}
    for table in tables:
        if layer == "raw":
            path, dataset = lake.raw_table(table), delta_dataset(lake, lake.raw_table(table))
        else:
            path, dataset = lake.clean_table(table), clean_snapshot(lake, table, snapshot)
        conn.register(f"{layer}_{table}", dataset)
        registered[f"{layer}_{table}"] = path
    return registered


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _path(p: Path) -> str:
    return str(p).replace("'", "''")


def clean_dir(out: Path) -> Path:
    """Where the reference's inputs stage writes its clean tables (one file per table)."""
    return out / "clean"


def reference_sql(stage: str, snapshot: date, out: Path, max_order_amount: float = 100_000.0) -> str:
    """reference_<stage>.sql with its placeholders filled in (the lake's tables are not named by
    path: register_lake registers them in the connection)."""
    return REFERENCE_SQL[stage].read_text().format(
        snapshot=snapshot.isoformat(),
        snapshot_end=(snapshot + timedelta(days=1)).isoformat(),
        out=_path(out),
        clean_out=_path(clean_dir(out)),
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


def _one(conn: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...] | None:
    """The first row of `sql`, the result read to its end: DuckDB refuses to register an Arrow
    object while a result of the connection is still pending."""
    rows = conn.execute(sql).fetchall()
    return rows[0] if rows else None


def _count(conn: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = _one(conn, sql)
    return int(row[0]) if row else 0


def run_reference(
    stage: str, lake_root: Lake | str | Path, snapshot: date, out: Path, max_order_amount: float = 100_000.0,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run one stage of the reference. `inputs`: read the raw lake, write the clean tables as of
    the snapshot to `out`/clean; `marts`: read the lake's clean layer of the snapshot, write the
    three marts to `out`; `summary`: read the raw orders, write `out`/lifetimes_summary.parquet.
    Timed from connect (the Delta logs' reading included) to the last file written (the row
    counts after that are not timed)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: one of {STAGES}")
    lake = as_lake(lake_root)
    written = clean_dir(out) if stage == "inputs" else out
    written.mkdir(parents=True, exist_ok=True)
    sql = reference_sql(stage, snapshot, out, max_order_amount)
    started = time.perf_counter()
    conn = duckdb.connect()
    try:
        if threads:
            conn.execute(f"SET threads = {int(threads)}")
        used_threads = conn.execute("SELECT current_setting('threads')").fetchall()  # fetched whole: nothing left pending
        statements: list[dict[str, Any]] = []
        t = time.perf_counter()
        register_lake(conn, stage, lake, snapshot)
        statements.append({"sql": "read Delta logs", "seconds": round(time.perf_counter() - t, 3)})
        for stmt in duckdb.extract_statements(sql):
            t = time.perf_counter()
            conn.execute(stmt)
            statements.append({"sql": _label(stmt.query), "seconds": round(time.perf_counter() - t, 3)})
        seconds = time.perf_counter() - started
        names = {"inputs": CLEAN_TABLES, "marts": MARTS, "summary": (SUMMARY,)}[stage]
        rows = {n: _count(conn, f"SELECT count(*) FROM read_parquet('{_path(written / n)}.parquet')") for n in names}
    finally:
        conn.close()
    return {
        "stage": stage,
        "seconds": seconds,
        "threads": int(used_threads[0][0]) if used_threads else None,
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
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.mismatches.values())

    def as_dict(self) -> dict[str, Any]:
        return {"ran": True, "rows_compared": self.rows_compared, "mismatches": self.total, "by_field": self.mismatches,
                "examples": self.examples, **self.details}


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
    row = _one(conn, f"SELECT count(*) AS n, {counts} FROM ({left}) l FULL OUTER JOIN ({right}) r ON {on}")
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
    """A Parquet file, or a folder of them written by Spark outside the lake (not a Delta table)."""
    p = folder_or_file
    pattern = p if p.suffix == ".parquet" else p / "*.parquet"
    return f"read_parquet('{_path(pattern)}')"


def _relation(conn: duckdb.DuckDBPyConnection, name: str, source: Source) -> str:
    """SQL naming `source`: read_parquet(...) for a path, else the Arrow object registered as `name`."""
    if isinstance(source, Path):
        return _parquet(source)
    conn.register(name, source)
    return name


CUSTOMER_EXACT = [
    "purchase_days", "frequency", "revenue", "net_profit", "cogs", "cost_to_serve", "profit_rank", "profit_decile",
    "days_since_last_purchase", "r_score", "f_score", "m_score", "rfm_segment",
]
CUSTOMER_APPROX = ["recency", "T", "monetary_value", "spend_cv", "gap_cv"]
COHORT_EXACT = ["cohort_size", "active_customers", "unbounded_active_customers", "revenue", "margin", "is_complete_period"]
COHORT_APPROX = ["retention_rate", "cumulative_revenue_per_customer", "cumulative_margin_per_customer"]


def _customers(profitability: str, rfm: str) -> str:
    cols = ", ".join(f'r."{c}"' for c in ["frequency", "recency", "T", "monetary_value", "days_since_last_purchase",
                                            "r_score", "f_score", "m_score", "rfm_segment", "spend_cv", "gap_cv"])
    return (
        "SELECT p.customer_id, p.purchase_days, p.revenue, p.net_profit, p.cogs, p.cost_to_serve, p.profit_rank, "
        f"p.profit_decile, {cols} FROM {profitability} p LEFT JOIN {rfm} r ON p.customer_id = r.customer_id"
    )


def check_marts(spark_marts: Mapping[str, Source], reference: Path) -> dict[str, Check]:
    """Spark's marts (one snapshot of each Delta table, as from mart_snapshot) against the
    reference's files."""
    conn = duckdb.connect()
    try:
        spark = {m: _relation(conn, f"spark_{m}", spark_marts[m]) for m in MARTS}
        customers = _compare(
            conn, "customers",
            _customers(spark["customer_profitability"], spark["customer_rfm"]),
            _customers(_parquet(reference / "customer_profitability.parquet"), _parquet(reference / "customer_rfm.parquet")),
            ["customer_id"], CUSTOMER_EXACT, CUSTOMER_APPROX,
        )
        cohort_cols = ", ".join(f'"{c}"' for c in ["cohort_month", "acquisition_channel", "period", *COHORT_EXACT, *COHORT_APPROX])
        cohorts = _compare(
            conn, "cohorts",
            f"SELECT {cohort_cols} FROM {spark['cohort_retention']}",
            f"SELECT {cohort_cols} FROM {_parquet(reference / 'cohort_retention.parquet')}",
            ["cohort_month", "acquisition_channel", "period"], COHORT_EXACT, COHORT_APPROX,
        )
    finally:
        conn.close()
    return {"customers": customers, "cohorts": cohorts}


def check_same_marts(left: Mapping[str, Source], right: Mapping[str, Source]) -> dict[str, Check]:
    """Two engines' marts, every column of each mart's contract, row for row by its key: doubles to
    FLOAT_TOLERANCE, every other column exactly."""
    conn = duckdb.connect()
    try:
        checks = {}
        for name in left:
            table = MART_BY_NAME[name]
            cols = ", ".join(f'"{c}"' for c in table.column_names)
            doubles = [c.name for c in table.columns if c.type == "double" and c.name not in table.key]
            exact = [c.name for c in table.columns if c.type != "double" and c.name not in table.key]
            checks[name] = _compare(
                conn, name,
                f"SELECT {cols} FROM {_relation(conn, f'left_{name}', left[name])}",
                f"SELECT {cols} FROM {_relation(conn, f'right_{name}', right[name])}",
                list(table.key), exact, doubles,
            )
    finally:
        conn.close()
    return checks


def check_lifetimes(left: Source, right: Source, name: str = "lifetimes") -> Check:
    """Two lifetimes-style summaries (or a summary and Spark's customer_rfm, from mart_snapshot),
    customer by customer: frequency exactly, recency / T / monetary_value to 1e-9."""
    conn = duckdb.connect()
    try:
        cols = 'customer_id, frequency, recency, "T", monetary_value'
        return _compare(
            conn, name,
            f"SELECT {cols} FROM {_relation(conn, 'left_side', left)}",
            f"SELECT {cols} FROM {_relation(conn, 'right_side', right)}",
            ["customer_id"], ["frequency"], ["recency", "T", "monetary_value"],
        )
    finally:
        conn.close()


def _canonical(table: Table) -> str:
    """The table's columns cast to the contract's types: Spark stores timestamps as instants
    (TIMESTAMP WITH TIME ZONE in DuckDB), the reference as plain TIMESTAMP (UTC by contract)."""
    return ", ".join(f'CAST("{c.name}" AS {sql_type(c.type, "duckdb")}) AS "{c.name}"' for c in table.columns)


def check_clean(lake_root: Lake | str | Path, snapshot: date, reference_clean: Path) -> dict[str, Check]:
    """Spark's clean layer (each Delta table `clean/<table>` at the version recorded for the
    snapshot) against the reference's clean tables (check_clean_files)."""
    lake = as_lake(lake_root)
    return check_clean_files({name: clean_snapshot(lake, name, snapshot) for name in CLEAN_TABLES}, reference_clean)


def check_clean_files(engine: Mapping[str, Source], reference_clean: Path) -> dict[str, Check]:
    """An engine's clean tables (a Delta snapshot as from clean_snapshot, or a Parquet folder)
    against the reference's, per table: the row count and an order-independent hash sum (sum of
    the row hashes, as HUGEINT) must be equal. When they are not, the rows on one side only are
    counted (EXCEPT ALL) and a few keys shown."""
    conn = duckdb.connect()
    try:
        conn.execute("SET TimeZone = 'UTC'")
        checks = {}
        for name in CLEAN_TABLES:
            contract = exported_table(SOURCE_BY_NAME[name])
            cols = _canonical(contract)
            names = ", ".join(f'"{c}"' for c in contract.column_names)
            spark = f"SELECT {cols} FROM {_relation(conn, f'spark_clean_{name}', engine[name])}"
            ref = f"SELECT {cols} FROM read_parquet('{_path(reference_clean / name)}.parquet', hive_partitioning = false)"
            sides = {}
            for side, rel in (("spark", spark), ("duckdb", ref)):
                row = _one(conn, f"SELECT count(*), coalesce(sum(CAST(hash({names}) AS HUGEINT)), 0) FROM ({rel})")
                assert row is not None
                sides[side] = (int(row[0]), str(row[1]))
            check = Check(name, rows_compared=sides["spark"][0],
                          details={"spark_rows": sides["spark"][0], "duckdb_rows": sides["duckdb"][0],
                                   "same_hash": sides["spark"][1] == sides["duckdb"][1]})
            if sides["spark"] != sides["duckdb"]:
                key = ", ".join(f'CAST("{k}" AS VARCHAR)' for k in contract.key) or "'?'"
                for label, a, b in (("only_spark", spark, ref), ("only_duckdb", ref, spark)):
                    n = _count(conn, f"SELECT count(*) FROM ({a} EXCEPT ALL {b})")
                    if n:
                        check.mismatches[label] = n
                        rows = conn.execute(f"SELECT concat_ws('/', {key}) FROM ({a} EXCEPT ALL {b}) LIMIT 3").fetchall()
                        check.examples += [f"{label}: {r[0]}" for r in rows]
                if not check.mismatches:  # same rows by EXCEPT ALL, different hash sums: still a failure
                    check.mismatches["hash"] = 1
            checks[name] = check
    finally:
        conn.close()
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=STAGES, required=True)
    parser.add_argument("--lake", required=True, help="the lake root: a folder or s3a://bucket/prefix")
    parser.add_argument("--snapshot", type=date.fromisoformat, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-order-amount", type=float, default=100_000.0)
    parser.add_argument("--threads", type=int, default=None)
    return child_main(
        parser,
        lambda a: run_reference(a.stage, a.lake, a.snapshot, a.out, a.max_order_amount, a.threads),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
