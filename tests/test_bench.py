"""`crm-metrics bench` on a tiny generated history: the JSON line, the engine checks, and the
pandas lifetimes summary against Spark's customer_rfm. No timing assertions."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

HEADLINE_KEYS = (
    "lines", "spark_seconds", "duckdb_seconds", "ratio", "pandas_seconds", "session_start_seconds",
    "extract_seconds", "spark_mart_seconds", "check", "pandas_check", "incremental", "memory_mb", "machine",
)


@pytest.fixture(scope="module")
def tiny_bench(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], str, Path]:
    """One tiny run (about 5k order lines over 60 days, no pipeline) in the tests' Spark session.
    60 days, not the default two years: fewer daily lake partitions, a faster Spark job."""
    import jobs.bench

    workdir = tmp_path_factory.mktemp("bench")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = jobs.bench.main(["--lines", "5000", "--days", "60", "--workdir", str(workdir), "--skip-pipeline", "--seed", "7"])
    text = buf.getvalue()
    last = text.strip().splitlines()[-1]
    return code, json.loads(last), text, workdir


def test_json_line_has_the_headline_figures(tiny_bench: tuple[int, dict[str, Any], str, Path]) -> None:
    code, result, text, _ = tiny_bench
    assert code == 0, text
    for key in HEADLINE_KEYS:
        assert key in result, key
    assert 3500 <= result["lines"] <= 6500  # sized from the calibrated lines per customer
    assert result["window"] == ["2024-11-02", "2024-12-31"]
    for key in ("spark_seconds", "duckdb_seconds", "ratio", "pandas_seconds", "session_start_seconds", "extract_seconds"):
        assert isinstance(result[key], float) and result[key] >= 0, key
    assert set(result["spark_mart_seconds"]) == {"customer_profitability", "customer_rfm", "cohort_retention"}
    assert result["pipeline"] is None  # --skip-pipeline
    inc = result["incremental"]
    assert inc["extract_day_rows"] > 0 and inc["extract_ratio"] is not None
    assert "Spark / DuckDB" in text  # the table precedes the JSON line


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


def test_pandas_summary_equals_spark_rfm_for_every_customer(tiny_bench: tuple[int, dict[str, Any], str, Path]) -> None:
    _, result, _, workdir = tiny_bench
    assert result["pandas_check"]["ran"] is True and result["pandas_check"]["mismatches"] == 0
    spark_rfm = pd.read_parquet(workdir / "lake" / "marts" / "customer_rfm" / f"snapshot_date={result['snapshot']}")
    summary = pd.read_parquet(workdir / "out" / "pandas" / "lifetimes_summary.parquet")
    assert len(spark_rfm) > 50
    assert set(spark_rfm["customer_id"]) == set(summary["customer_id"])
    both = spark_rfm.merge(summary, on="customer_id", suffixes=("_spark", "_pandas"))
    assert (both["frequency_spark"] == both["frequency_pandas"]).all()
    for col in ("recency", "T", "monetary_value"):
        assert (both[f"{col}_spark"] - both[f"{col}_pandas"]).abs().max() <= 1e-9, col
    # weeks = days / 7: a whole number of days in every value
    assert ((both["T_pandas"] * 7).round(9) % 1 == 0).all()
