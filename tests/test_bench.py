"""`crm-metrics bench` on a tiny generated history: the JSON line, the engine checks (clean layer
and marts, Spark = DuckDB; lifetimes summary, Spark = pandas = customer_rfm), that the checks
catch an injected difference, the DuckDB reference's as-of-snapshot reading of a hand-made raw
Delta lake (late first versions, tombstones, versions after the snapshot), and the progress bar
(on a terminal only). No timing assertions."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from devtools import bench
from devtools.bench.duckdb_reference import clean_snapshot

HEADLINE_KEYS = (
    "lines", "spark_seconds", "duckdb_seconds", "ratio",
    "inputs_spark_seconds", "inputs_duckdb_seconds", "inputs_ratio",
    "total_spark_seconds", "total_duckdb_seconds", "total_ratio",
    "spark_cpu_seconds", "duckdb_cpu_seconds", "cpu_ratio",
    "repeat_spark_seconds", "repeat_duckdb_seconds", "repeat_ratio",
    "inputs_spark_cpu_seconds", "inputs_duckdb_cpu_seconds", "inputs_cpu_ratio",
    "total_spark_cpu_seconds", "total_duckdb_cpu_seconds", "total_cpu_ratio",
    "pandas_seconds", "spark_summary_seconds", "pandas_ratio", "duckdb_summary_seconds", "pandas_duckdb_ratio",
    "session_start_seconds", "extract_seconds",
    "spark_mart_seconds", "check", "clean_check", "pandas_check", "spark_summary_check", "incremental", "memory_mb",
    "machine",
)
CLEAN_TABLES = ("orders", "order_items", "interactions", "customers", "products", "marketing_spend")


@pytest.fixture(scope="module")
def tiny_bench(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], str, Path]:
    """One tiny run (about 5k order lines over 60 days, no pipeline) in the tests' Spark session,
    with the two stages on Sail as well. 60 days, not the default two years: less history, a
    faster Spark job."""
    import devtools.bench

    workdir = tmp_path_factory.mktemp("bench")
    buf, err = io.StringIO(), io.StringIO()  # not terminals: no progress bar
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        code = devtools.bench.main(["--lines", "5000", "--days", "60", "--workdir", str(workdir), "--skip-pipeline", "--seed", "7",
                                    "--sail"])
    text = buf.getvalue()
    last = text.strip().splitlines()[-1]
    (workdir / "stderr.txt").write_text(err.getvalue())
    return code, json.loads(last), text, workdir


def test_json_line_has_the_headline_figures(tiny_bench: tuple[int, dict[str, Any], str, Path]) -> None:
    code, result, text, _ = tiny_bench
    assert code == 0, text
    for key in HEADLINE_KEYS:
        assert key in result, key
    assert 3500 <= result["lines"] <= 6500  # sized from the calibrated lines per customer
    assert result["window"] == ["2024-11-02", "2024-12-31"]
    for key in ("spark_seconds", "duckdb_seconds", "ratio", "inputs_spark_seconds", "inputs_duckdb_seconds", "inputs_ratio",
                "total_spark_seconds", "total_duckdb_seconds", "total_ratio", "pandas_seconds", "spark_summary_seconds",
                "pandas_ratio", "duckdb_summary_seconds", "pandas_duckdb_ratio", "session_start_seconds", "extract_seconds",
                "repeat_spark_seconds", "repeat_duckdb_seconds", "repeat_ratio"):
        assert isinstance(result[key], float) and result[key] >= 0, key
    assert list(result)[:4] == ["lines", "spark_seconds", "duckdb_seconds", "ratio"]
    assert set(result["spark_mart_seconds"]) == {"customer_profitability", "customer_rfm", "cohort_retention"}
    assert result["pipeline"] is None  # --skip-pipeline
    inc = result["incremental"]
    # the bench's warehouse holds its whole history (through the next day) when the full
    # extraction runs: the next day's extraction finds every version already in the raw tables,
    # and its MERGE adds none of them twice
    assert inc["extract_day_rows"] == 0 and inc["extract_ratio"] is not None
    assert "Spark / DuckDB" in text  # the table precedes the JSON line
    for stage in ("inputs: raw -> latest versions + rules -> clean", "metrics: clean -> 3 marts", "metrics, run again", "total"):
        assert any(line.startswith(stage) for line in text.splitlines()), stage


def test_spark_and_duckdb_agree(tiny_bench: tuple[int, dict[str, Any], str, Path]) -> None:
    _, result, _, _ = tiny_bench
    assert result["checks_passed"] is True
    assert result["mismatches"] == 0
    for name in ("customers", "cohorts"):
        check = result["check"][name]
        assert check["ran"] is True
        assert check["rows_compared"] > 0
        assert check["mismatches"] == 0, check
    assert result["check"]["customers"]["rows_compared"] == result["spark_rows"]["customer_profitability"]
    assert result["check"]["cohorts"]["rows_compared"] == result["spark_rows"]["cohort_retention"]


def test_sail_agrees_with_duckdb_and_with_spark_on_every_column(tiny_bench: tuple[int, dict[str, Any], str, Path]) -> None:
    """The same PySpark code on Sail: its clean layer and marts equal the DuckDB reference's, and
    its three marts equal JVM Spark's row for row, every column (doubles to 1e-9)."""
    _, result, text, _ = tiny_bench
    sail = result["sail"]
    assert sail["errors"] == {}
    assert sail["memory_pool_bytes"] == 8 * 1024**3  # the default --sail-memory 8g
    assert set(sail["clean_check"]) == set(CLEAN_TABLES)
    for name, check in sail["clean_check"].items():
        assert check["mismatches"] == 0 and check["same_hash"] is True, (name, check)
        assert check["rows_compared"] == result["clean_check"][name]["rows_compared"], name
    for name in ("customers", "cohorts"):
        assert sail["check"][name]["mismatches"] == 0, sail["check"][name]
        assert sail["check"][name]["rows_compared"] == result["check"][name]["rows_compared"]
    assert set(sail["spark_check"]) == {"customer_profitability", "customer_rfm", "cohort_retention"}
    for name, check in sail["spark_check"].items():
        assert check["mismatches"] == 0, (name, check)
        assert check["rows_compared"] == result["spark_rows"][name], name
    for key in ("inputs_seconds", "marts_seconds", "marts_again_seconds", "inputs_ratio", "marts_ratio", "total_ratio"):
        assert isinstance(sail[key], float) and sail[key] > 0, key
    assert sail["marts_server_cpu_seconds"] > 0  # the server's work, read from /proc
    assert "check Sail = Spark, cohort_retention, every column" in text


def test_spark_and_duckdb_write_the_same_clean_layer(tiny_bench: tuple[int, dict[str, Any], str, Path]) -> None:
    _, result, _, workdir = tiny_bench
    assert set(result["clean_check"]) == set(CLEAN_TABLES)
    for name, check in result["clean_check"].items():
        assert check["mismatches"] == 0 and check["same_hash"] is True, (name, check)
        assert check["spark_rows"] == check["duckdb_rows"] == result["inputs_spark_rows"][name] == result["inputs_duckdb_rows"][name]
    assert result["clean_check"]["order_items"]["spark_rows"] > 1000
    # the DuckDB metric stage read Spark's clean layer (a Delta table), not its own files
    from jobs.platform.lake import Lake

    lake = Lake.at(workdir / "lake")
    assert lake.has_table(lake.clean_table("orders"))
    spark_orders = clean_snapshot(lake, "orders", date.fromisoformat(result["snapshot"])).to_table()
    assert spark_orders.num_rows == result["clean_check"]["orders"]["spark_rows"]
    assert (workdir / "out" / "duckdb" / "clean" / "orders.parquet").is_file()


def test_pandas_summary_equals_spark_rfm_for_every_customer(tiny_bench: tuple[int, dict[str, Any], str, Path]) -> None:
    _, result, _, workdir = tiny_bench
    assert result["pandas_check"]["ran"] is True and result["pandas_check"]["mismatches"] == 0
    from jobs.platform.lake import Lake

    lake = Lake.at(workdir / "lake")
    spark_rfm = lake.read_arrow(lake.mart_table("customer_rfm"), date.fromisoformat(result["snapshot"])).to_pandas()
    both = _same_summary_as_pandas(spark_rfm, workdir, "spark")
    # weeks = days / 7: a whole number of days in every value
    assert ((both["T_pandas"] * 7).round(9) % 1 == 0).all()


def test_spark_lifetimes_summary_equals_pandas(tiny_bench: tuple[int, dict[str, Any], str, Path]) -> None:
    _, result, _, workdir = tiny_bench
    check = result["spark_summary_check"]
    assert check["ran"] is True and check["mismatches"] == 0 and check["rows_compared"] == result["pandas_check"]["rows_compared"]
    spark_summary = pd.read_parquet(workdir / "out" / "spark" / "lifetimes_summary")
    assert list(spark_summary.columns) == ["customer_id", "frequency", "recency", "T", "monetary_value"]
    assert len(spark_summary) == check["rows_compared"] > 50


def test_duckdb_lifetimes_summary_equals_pandas(tiny_bench: tuple[int, dict[str, Any], str, Path]) -> None:
    """The third engine's summary, compared here with pandas' directly (the bench compares it with
    Spark's), customer by customer."""
    _, result, text, workdir = tiny_bench
    check = result["duckdb_summary_check"]
    assert check["ran"] is True and check["mismatches"] == 0 and check["rows_compared"] == result["pandas_check"]["rows_compared"]
    duck = pd.read_parquet(workdir / "out" / "duckdb" / "lifetimes_summary.parquet")
    assert list(duck.columns) == ["customer_id", "frequency", "recency", "T", "monetary_value"]
    _same_summary_as_pandas(duck, workdir, "duckdb")
    assert "lifetimes summary in DuckDB SQL" in text


def _same_summary_as_pandas(other: pd.DataFrame, workdir: Path, engine: str) -> pd.DataFrame:
    """`other` has pandas' summary customers, and per customer the same frequency and, to 1e-9,
    recency, T and monetary value. Returns the two side by side (suffixes _<engine>, _pandas)."""
    summary = pd.read_parquet(workdir / "out" / "pandas" / "lifetimes_summary.parquet")
    both = other.merge(summary, on="customer_id", suffixes=(f"_{engine}", "_pandas"), how="outer", indicator=True)
    assert len(both) == len(summary) > 50 and (both["_merge"] == "both").all()
    assert (both[f"frequency_{engine}"] == both["frequency_pandas"]).all()
    assert (both["monetary_value_pandas"] > 0).any()  # repeat buyers: the monetary value is not all zeros
    for col in ("recency", "T", "monetary_value"):
        assert (both[f"{col}_{engine}"] - both[f"{col}_pandas"]).abs().max() <= 1e-9, col
    return both


# -- the checks catch a difference ------------------------------------------------------------------
def _rewrite(path: Path, select: str) -> None:
    """Replace a Parquet file by `select` over it (`t`)."""
    tmp = path.with_suffix(".tmp.parquet")
    conn = duckdb.connect()
    try:
        conn.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet('{path}')")
        conn.execute(f"COPY ({select}) TO '{tmp}' (FORMAT parquet)")
    finally:
        conn.close()
    tmp.replace(path)


def test_clean_check_detects_a_changed_and_a_missing_row(tiny_bench: tuple[int, dict[str, Any], str, Path], tmp_path: Path) -> None:
    from devtools.bench.duckdb_reference import check_clean

    _, result, _, workdir = tiny_bench
    ref = tmp_path / "clean"
    shutil.copytree(workdir / "out" / "duckdb" / "clean", ref)
    _rewrite(ref / "orders.parquet", "SELECT * REPLACE (CASE WHEN order_id = (SELECT min(order_id) FROM t) "
                                     "THEN gross_amount + 0.01 ELSE gross_amount END AS gross_amount) FROM t")
    _rewrite(ref / "products.parquet", "SELECT * FROM t WHERE product_id <> (SELECT min(product_id) FROM t)")
    checks = check_clean(workdir / "lake", date.fromisoformat(result["snapshot"]), ref)
    assert checks["orders"].mismatches == {"only_spark": 1, "only_duckdb": 1}
    assert checks["products"].mismatches == {"only_spark": 1}
    assert checks["orders"].examples and checks["orders"].as_dict()["same_hash"] is False
    assert all(checks[t].total == 0 for t in ("order_items", "interactions", "customers", "marketing_spend"))


def test_mart_and_lifetimes_checks_detect_a_changed_value(tiny_bench: tuple[int, dict[str, Any], str, Path], tmp_path: Path) -> None:
    from devtools.bench.duckdb_reference import check_lifetimes, check_marts, mart_snapshot

    _, result, _, workdir = tiny_bench
    ref = tmp_path / "duckdb"
    ref.mkdir()
    for mart in ("customer_profitability", "customer_rfm", "cohort_retention"):
        shutil.copy(workdir / "out" / "duckdb" / f"{mart}.parquet", ref)
    _rewrite(ref / "customer_profitability.parquet", "SELECT * REPLACE (CASE WHEN customer_id = (SELECT max(customer_id) FROM t) "
                                                     "THEN revenue + 1 ELSE revenue END AS revenue) FROM t")
    snapshot = date.fromisoformat(result["snapshot"])
    marts = {m: mart_snapshot(workdir / "lake", m, snapshot) for m in ("customer_profitability", "customer_rfm", "cohort_retention")}
    checks = check_marts(marts, ref)
    assert checks["customers"].mismatches == {"revenue": 1} and checks["cohorts"].total == 0

    summary = tmp_path / "summary.parquet"
    shutil.copy(workdir / "out" / "pandas" / "lifetimes_summary.parquet", summary)
    _rewrite(summary, "SELECT * REPLACE (CASE WHEN customer_id = (SELECT min(customer_id) FROM t) "
                      "THEN monetary_value + 1e-6 ELSE monetary_value END AS monetary_value) FROM t")
    check = check_lifetimes(workdir / "out" / "spark" / "lifetimes_summary", summary)
    assert check.mismatches == {"monetary_value": 1}


# -- the reference reads the lake as of the snapshot ------------------------------------------------
D = date(2024, 3, 10)  # the snapshot; its end is 2024-03-11 00:00 UTC


def T(text: str) -> datetime:
    """A UTC instant (Spark reads a naive datetime in the Python process's zone)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _raw_lake(spark: Any, root: Path) -> Any:
    """A raw lake written by hand (Spark, Delta, the raw tables' schema): per table, versions
    before and after the snapshot, late first versions of entities that existed by the
    snapshot, tombstones before and after it, and versions that must stay invisible."""
    from decimal import Decimal

    from jobs.ingest.extract import exported_table, raw_ddl
    from jobs.platform.lake import Lake
    from schemas.source import SOURCE_BY_NAME
    from schemas.types import decimal_parts

    live, dead = False, True
    cust = [  # customer_id, signup_at, acquisition_channel, acquisition_cost, region, referred_by, updated_at, _deleted
        ("c1", T("2024-01-01 09:00"), "web", 10, "north", None, T("2024-01-01 09:00"), live),
        ("c1", T("2024-01-01 09:00"), "web", 10, "south", None, T("2024-03-12 08:00"), live),  # after D
        ("c2", T("2024-02-01 09:00"), "app", 5, "east", None, T("2024-02-01 09:00"), live),
        ("c2", None, None, None, None, None, T("2024-03-05 00:00"), dead),  # deleted by D
        ("c3", T("2024-03-10 23:00"), "store", 0, "west", "c1", T("2024-03-11 02:00"), live),  # late first version
        ("c4", T("2024-03-11 12:00"), "web", 0, "west", None, T("2024-03-11 12:00"), live),  # signed up after D
        ("c5", T("2024-01-05 09:00"), "phone", 3, "north", None, T("2024-01-05 09:00"), live),
        ("c5", None, None, None, None, None, T("2024-03-12 00:00"), dead),  # deleted after D
    ]
    prod = [  # product_id, category, list_price, unit_cost, updated_at, _deleted
        ("p1", "books", 10, 4, T("1970-01-01 00:00"), live),
        ("p1", "books", 12, 4, T("2024-03-12 00:00"), live),
        ("p2", "toys", 5, 2, T("2024-03-15 00:00"), live),  # any product: its first version is visible
    ]
    spend = [  # month, channel, spend, updated_at, _deleted
        (date(2024, 3, 1), "web", 100, T("2024-03-05 00:00"), live),
        (date(2024, 3, 1), "web", 150, T("2024-03-10 12:00"), live),
        (date(2024, 3, 1), "app", 70, T("2024-03-31 00:00"), live),  # the month began by D
        (date(2024, 4, 1), "app", 80, T("2024-04-30 00:00"), live),
    ]
    orders = [  # order_id, customer_id, ordered_at, channel, status, currency, gross, discount, refund, shipping, updated_at, _deleted
        ("o1", "c1", T("2024-02-01 10:00"), "web", "completed", "USD", 20, 0, 0, 3, T("2024-02-01 10:00"), live),
        ("o1", "c1", T("2024-02-01 10:00"), "web", "refunded", "USD", 20, 0, 20, 3, T("2024-03-12 10:00"), live),
        ("o2", "c1", T("2024-03-10 20:00"), "app", "completed", "USD", 15, 1, 0, 2, T("2024-03-11 01:00"), live),
        ("o2", "c1", T("2024-03-10 20:00"), "app", "cancelled", "USD", 15, 1, 0, 2, T("2024-03-13 01:00"), live),
        ("o3", "c5", T("2024-03-01 10:00"), "web", "completed", "USD", 10, 0, 0, 1, T("2024-03-01 10:00"), live),
        ("o3", None, None, None, None, None, None, None, None, None, T("2024-03-08 00:00"), dead),
        ("o4", "c1", T("2024-03-11 10:00"), "web", "completed", "USD", 10, 0, 0, 1, T("2024-03-11 10:00"), live),
        ("o5", "c3", T("2024-03-10 23:30"), "store", "completed", "USD", 10, 0, 0, 0, T("2024-03-10 23:30"), live),
        ("o6", "c2", T("2024-02-10 10:00"), "web", "completed", "USD", 10, 0, 0, 1, T("2024-02-10 10:00"), live),
        ("o7", "c1", T("2024-02-15 10:00"), "web", "completed", "USD", 10, 0, 0, 1, T("2024-02-15 10:00"), live),
        ("o7", "c1", T("2024-02-15 10:00"), "web", "cancelled", "USD", 10, 0, 0, 1, T("2024-02-15 10:00"), live),
    ]
    items = [  # order_id, line_number, product_id, quantity, unit_price, unit_cost, updated_at, _deleted
        ("o1", 1, "p1", 2, 10, 4, T("2024-02-01 10:00"), live),
        ("o1", 2, "p1", 1, 10, 4, T("2024-02-01 10:00"), live),
        ("o1", 2, None, None, None, None, T("2024-03-09 00:00"), dead),
        ("o2", 1, "p1", 1, 10, 4, T("2024-03-11 01:00"), live),  # the order was placed by D
        ("o2", 2, "p2", 1, 5, 2, T("2024-03-11 01:00"), live),
        ("o3", 1, "p1", 1, 10, 4, T("2024-03-01 10:00"), live),  # its order is deleted
        ("o4", 1, "p1", 1, 10, 4, T("2024-03-11 10:00"), live),  # its order was placed after D
        ("o5", 1, "p1", 1, 10, 4, T("2024-03-10 23:30"), live),
    ]
    inter = [  # interaction_id, customer_id, occurred_at, interaction_type, cost, satisfaction, updated_at, _deleted
        ("i1", "c1", T("2024-02-02 10:00"), "survey", 1, 5, T("2024-02-02 10:00"), live),
        ("i2", "c1", T("2024-03-10 22:00"), "complaint", 2, 2, T("2024-03-11 03:00"), live),
        ("i3", "c1", T("2024-03-11 05:00"), "survey", 1, 4, T("2024-03-11 05:00"), live),
        ("i4", "c2", T("2024-02-03 10:00"), "survey", 1, 4, T("2024-02-03 10:00"), live),
        ("i5", "c1", T("2024-02-03 10:00"), "support_ticket", 3, 5, T("2024-02-03 10:00"), live),
        ("i5", "c1", T("2024-02-03 10:00"), "support_ticket", 3, 3, T("2024-03-09 10:00"), live),
    ]
    lake = Lake.at(root)
    rows = {"customers": cust, "products": prod, "marketing_spend": spend, "orders": orders, "order_items": items,
            "interactions": inter}
    for name, versions in rows.items():
        table = exported_table(SOURCE_BY_NAME[name])
        money = [bool(decimal_parts(c.type)) for c in table.columns]
        with_capture = [
            (*[Decimal(x) if m and x is not None else x for x, m in zip(v, [*money, False], strict=True)], D, "hand-made")
            for v in versions
        ]
        frame = spark.createDataFrame(with_capture, raw_ddl(table))
        frame.write.format("delta").mode("overwrite").save(lake.raw_table(name))
    return lake


def test_reference_reads_the_raw_lake_as_of_the_snapshot(spark: Any, tmp_path: Path) -> None:
    """On a hand-made raw lake the DuckDB reference keeps exactly the rows the as-of rules say,
    and Spark's inputs stage writes the same clean layer."""
    from devtools.bench.duckdb_reference import check_clean, clean_dir, run_reference
    from devtools.bench.spark_job import run_inputs_stage

    lake = _raw_lake(spark, tmp_path / "lake")
    out = tmp_path / "duckdb"
    ref = run_reference("inputs", lake, D, out)
    conn = duckdb.connect()
    try:
        def rows(table: str, cols: str) -> list[tuple[Any, ...]]:
            return conn.execute(f"SELECT {cols} FROM read_parquet('{clean_dir(out) / table}.parquet') ORDER BY ALL").fetchall()

        assert rows("customers", "customer_id, region") == [("c1", "north"), ("c3", "west"), ("c5", "north")]
        assert rows("products", "product_id, CAST(list_price AS INT)") == [("p1", 10), ("p2", 5)]
        assert rows("marketing_spend", "channel, CAST(spend AS INT)") == [("app", 70), ("web", 150)]
        assert rows("orders", "order_id, status") == [("o1", "completed"), ("o2", "completed"), ("o5", "completed")]
        assert rows("order_items", "order_id, line_number") == [("o1", 1), ("o2", 1), ("o2", 2), ("o5", 1)]
        assert rows("interactions", "interaction_id, satisfaction") == [("i1", 5), ("i2", 2), ("i5", 3)]
    finally:
        conn.close()
    assert ref["rows"] == {"orders": 3, "order_items": 4, "interactions": 3, "customers": 3, "products": 2, "marketing_spend": 2}

    spark_run = run_inputs_stage(spark, lake, D)
    assert spark_run.rows == ref["rows"]
    checks = check_clean(lake, D, clean_dir(out))
    assert {name: c.total for name, c in checks.items()} == dict.fromkeys(checks, 0)
    assert all(c.details["same_hash"] for c in checks.values())


# -- child processes -----------------------------------------------------------------------------
def test_child_main_prints_the_result_with_cpu_and_memory_last(capsys: pytest.CaptureFixture[str]) -> None:
    from devtools.bench.procmem import child_main

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, required=True)
    assert child_main(parser, lambda a: {"seconds": 0.5, "n": a.n}, ["--n", "3"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["n"] == 3 and line["seconds"] == 0.5
    assert line["peak_rss_mb"] > 0 and line["cpu_seconds"] >= 0


# -- progress bar (issue #9) ---------------------------------------------------------------------
def test_no_progress_bar_without_a_terminal(tiny_bench: tuple[int, dict[str, Any], str, Path]) -> None:
    from devtools.bench import PHASES

    _, _, text, workdir = tiny_bench
    err = (workdir / "stderr.txt").read_text()
    assert f"/{len(PHASES)}" not in err and "spark metric stage" not in err
    assert "spark metric stage" not in text and "\r" not in text


@pytest.mark.slow
def test_progress_bar_on_a_terminal(spark: Any, tmp_path: Path) -> None:
    """stderr on a pseudo-terminal: a bar over the phases there; stdout (a pipe here) still ends
    with the JSON line and has no bar."""
    import devtools.bench
    from devtools.bench import PHASES

    master, replica = os.openpty()
    shown: list[bytes] = []

    def drain() -> None:  # a full pty buffer would block the writer
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO once the replica side is closed
                return
            if not data:
                return
            shown.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out = io.StringIO()
    with open(replica, "w", buffering=1, closefd=True) as tty:
        assert tty.isatty()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(tty):
            code = devtools.bench.main(["--lines", "1500", "--days", "20", "--workdir", str(tmp_path), "--skip-pipeline"])
    reader.join(timeout=10)
    os.close(master)
    bar = b"".join(shown).decode(errors="replace")
    assert code == 0, out.getvalue()
    assert f"{len(PHASES)}/{len(PHASES)}" in bar and "spark metric stage" in bar and "pipeline full (skipped)" in bar
    lines = out.getvalue().strip().splitlines()
    result = json.loads(lines[-1])
    assert result["checks_passed"] is True
    assert not any("spark metric stage" in line for line in lines)


@pytest.mark.parametrize(("size", "expected"), [("8g", 8 * 1024**3), ("512m", 512 * 1024**2), ("1.5G", 3 * 1024**3 // 2),
                                                ("1048576", 1048576), ("0", None)])
def test_sail_memory_sizes(size: str, expected: int | None) -> None:
    assert bench._bytes(size) == expected


def test_sail_memory_refuses_a_size_it_cannot_read() -> None:
    with pytest.raises(SystemExit, match="--sail-memory '8 gigs'"):
        bench._bytes("8 gigs")
