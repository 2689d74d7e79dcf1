"""Great Expectations Data Docs hold one run's validations, however many runs a process makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobs.quality.gates import _context, begin_run, build_data_docs, run_suite
from schemas.expectations import RAW_SUITES


def _stored() -> int:
    return len(_context().validation_results_store.list_keys())


def test_a_new_run_starts_with_only_its_own_validations(spark: Any, tmp_path: Path) -> None:
    products = spark.createDataFrame([("p1", 1.5), ("p2", 0.0)], "product_id string, unit_cost double")
    bad = spark.createDataFrame([("p1", 1.5), ("p1", -1.0)], "product_id string, unit_cost double")
    begin_run("lake-a|2024-01-01|run-1")
    assert _stored() == 0
    assert all(r.success for r in run_suite(products, "raw_products", RAW_SUITES["products"]))
    assert not all(r.success for r in run_suite(bad, "raw_products", RAW_SUITES["products"]))
    stored = _stored()
    assert stored >= 2  # the failed suite is also stored a second time, with its examples
    begin_run("lake-a|2024-01-01|run-1")  # the same run's next step (validate_marts after validate_raw)
    assert _stored() == stored
    index = build_data_docs(tmp_path / "docs_a")
    assert index is not None and index.read_text().count("raw_products") >= stored

    begin_run("lake-a|2024-01-02|run-2")
    assert _stored() == 0
    run_suite(products, "raw_products", RAW_SUITES["products"])
    assert _stored() == 1
    index = build_data_docs(tmp_path / "docs_b")
    assert index is not None
    assert index.read_text().count("raw_products") < (tmp_path / "docs_a" / "index.html").read_text().count("raw_products")
