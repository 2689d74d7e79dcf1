"""newest_value: max(updated_at) of a Delta table from the files its log says can hold it, the
same answer as a full scan (microseconds kept, deleted rows not counted)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from jobs.platform.delta import _newest_floor, newest_value
from jobs.platform.lake import Lake


def _table(spark: Any, root: Path, files: list[str], properties: str = "") -> tuple[Lake, str]:
    """A Delta table with one file per entry of `files` (rows `(k, TIMESTAMP'...')`)."""
    path = str(root / "t")
    spark.sql(f"CREATE TABLE delta.`{path}` (k INT, updated_at TIMESTAMP) USING DELTA {properties}")
    for rows in files:
        spark.sql(f"SELECT * FROM VALUES {rows} AS v(k, updated_at)").coalesce(1).write.format("delta").mode("append").save(path)
    assert len(DeltaTable(path).get_add_actions(flatten=True)) == len(files), "one file per commit"
    return Lake.at(root), path


@pytest.fixture(scope="module")
def table(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, str]:
    """Three files (times UTC):
    1: 2024-01-01 10:00, 2024-01-02 12:00:00.250750 (its log max is truncated to .250)
    2: 2024-01-02 23:59:59.999900, 2024-01-04 08:00 (spans midnight of 01-03)
    3: 2024-01-05 00:00"""
    return _table(spark, tmp_path_factory.mktemp("newest"), [
        "(1, TIMESTAMP'2024-01-01 10:00:00'), (2, TIMESTAMP'2024-01-02 12:00:00.250750')",
        "(3, TIMESTAMP'2024-01-02 23:59:59.999900'), (4, TIMESTAMP'2024-01-04 08:00:00')",
        "(5, TIMESTAMP'2024-01-05 00:00:00')",
    ])


@pytest.mark.parametrize(("before", "expected"), [
    (None, datetime(2024, 1, 5)),
    # the newest row below midnight is in the file that spans it
    (datetime(2024, 1, 3), datetime(2024, 1, 2, 23, 59, 59, 999900)),
    # a file whose log max (.250) is within a millisecond of the bound: its microseconds are kept
    (datetime(2024, 1, 2, 12, 0, 0, 251000), datetime(2024, 1, 2, 12, 0, 0, 250750)),
    (datetime(2024, 1, 2, 12), datetime(2024, 1, 1, 10)),
    (datetime(2024, 1, 1), None),
])
def test_the_newest_time_below_a_bound_is_the_full_scans(table: tuple[Lake, str], spark: Any,
                                                         before: datetime | None, expected: datetime | None) -> None:
    lake, path = table
    assert newest_value(spark, lake, path, "updated_at", before=before) == expected


def test_the_log_bounds_the_scan_to_the_newest_files(table: tuple[Lake, str]) -> None:
    lake, path = table
    # below 01-03 only file 1 is wholly below: Spark reads the files reaching its max less 1 ms
    assert _newest_floor(lake, path, "updated_at", datetime(2024, 1, 3)) == datetime(2024, 1, 2, 12, 0, 0, 249000)
    assert _newest_floor(lake, path, "updated_at", None) == datetime(2024, 1, 4, 23, 59, 59, 999000)
    assert _newest_floor(lake, path, "updated_at", datetime(2024, 1, 2)) is None


def test_a_deleted_row_is_not_the_newest(spark: Any, tmp_path: Path) -> None:
    """With deletion vectors a file's log max can be a deleted row's: the whole table is read."""
    lake, path = _table(spark, tmp_path, [
        "(1, TIMESTAMP'2024-01-02 12:00:00')",
        "(6, TIMESTAMP'2024-01-02 20:00:00'), (7, TIMESTAMP'2024-01-02 22:00:00')",
    ], "TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')")
    spark.sql(f"DELETE FROM delta.`{path}` WHERE k = 7")
    assert len(DeltaTable(path).get_add_actions(flatten=True)) == 2, "the row is deleted by a vector, its file kept"
    assert newest_value(spark, lake, path, "updated_at", before=datetime(2024, 1, 2, 23)) == datetime(2024, 1, 2, 20)
    assert newest_value(spark, lake, path, "updated_at") == datetime(2024, 1, 2, 20)
