"""RunContext: what a run derives from the logical date and its parameters."""

from __future__ import annotations

from datetime import date

import pendulum
import pytest

from jobs.config import RunParams
from jobs.pipeline import RunContext


def test_snapshot_is_a_plain_date_even_from_airflow() -> None:
    ctx = RunContext.create(pendulum.datetime(2024, 3, 31, tz="UTC").date(), warehouse="duckdb:///x.duckdb", lake="lake")
    assert type(ctx.snapshot) is date and ctx.snapshot == date(2024, 3, 31)
    assert ctx.run_id == "manual__2024-03-31"


def test_params_are_typed_and_unknown_ones_refused() -> None:
    params = RunParams.from_mapping({"lapse_days": "180", "full_refresh": "true", "kotler_profit_threshold": "12.5"})
    assert (params.lapse_days, params.full_refresh, params.kotler_profit_threshold) == (180, True, 12.5)
    with pytest.raises(ValueError, match="unknown run parameter"):
        RunParams.from_mapping({"lapse_dayz": 3})
    with pytest.raises(ValueError, match="lapse_days='soon': expected int"):
        RunParams.from_mapping({"lapse_days": "soon"})


def test_status_folder_name_is_safe() -> None:
    ctx = RunContext.create(date(2024, 1, 1), run_id="manual__2024-01-01T00:00:00+00:00", warehouse="duckdb:///x.duckdb", lake="lake")
    assert ctx.status_path("extract").endswith("/runs/2024-01-01/manual__2024-01-01T00_00_00_00_00/extract.json")
