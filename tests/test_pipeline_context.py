"""RunContext: what a run derives from the logical date and its parameters."""

from __future__ import annotations

import argparse
import copy
from datetime import date

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowFailException, ParamValidationError

from dags.customer_metrics import PARAMS, _ctx, failure_message, on_failure
from jobs.cli.run import _params
from jobs.pipeline.steps import RunContext, run_outcome
from jobs.platform.config import RunParams


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


def _resolve(name: str, *value: object) -> object:
    """The DAG Param's validated value, on a copy: Param.resolve keeps the value it resolved."""
    return copy.deepcopy(PARAMS[name]).resolve(*value)


def _cli(*pairs: str, full_refresh: bool = False) -> dict[str, object]:
    return _params(argparse.Namespace(param=list(pairs), full_refresh=full_refresh))


@pytest.mark.parametrize(
    ("pair", "name", "value"),
    [
        ("quarantine_max_rate=0.05", "quarantine_max_rate", 0.05),  # the README's example
        ("lapse_days=180", "lapse_days", 180),
        ("full_refresh=false", "full_refresh", False),
        ("full_refresh=TRUE", "full_refresh", True),
        ("kotler_profit_threshold=null", "kotler_profit_threshold", None),
        ("company_start=", "company_start", None),
    ],
)
def test_cli_params_are_typed_as_the_dag_params_expect(pair: str, name: str, value: object) -> None:
    """crm-metrics run --param: a number, a boolean or null reaches the DAG typed, and the DAG's
    own Param (its JSON schema) accepts it."""
    got = _cli(pair)
    assert got == {name: value} and type(got[name]) is type(value)
    assert _resolve(name, got[name]) == value


def test_cli_flag_and_bad_values() -> None:
    assert _cli(full_refresh=True) == {"full_refresh": True}
    with pytest.raises(ValueError, match="full_refresh='maybe': expected true or false"):
        _cli("full_refresh=maybe")
    with pytest.raises(ValueError, match="quarantine_max_rate='five percent': expected float"):
        _cli("quarantine_max_rate=five percent")


def test_dag_params_are_run_params_with_their_bounds() -> None:
    assert set(PARAMS) == set(RunParams.__dataclass_fields__)
    defaults = RunParams()
    for name in PARAMS:
        assert _resolve(name) == getattr(defaults, name), name  # each default passes its own schema
    assert _resolve("kotler_profit_threshold", 12.5) == 12.5
    for name, bad in (("quarantine_max_rate", 1.5), ("lapse_days", 0), ("lapse_days", "soon"), ("partner_max_decile", 11)):
        with pytest.raises(ParamValidationError):
            _resolve(name, bad)


def test_a_run_without_a_logical_date_fails_with_what_to_do() -> None:
    with pytest.raises(AirflowFailException, match="needs a logical date.*--logical-date"):
        _ctx({"run_id": "manual__2026-12-02T10:00:00", "logical_date": None, "params": {}})


def test_status_folder_name_is_safe() -> None:
    ctx = RunContext.create(date(2024, 1, 1), run_id="manual__2024-01-01T00:00:00+00:00", warehouse="duckdb:///x.duckdb", lake="lake")
    assert ctx.status_path("extract").endswith("/runs/2024-01-01/manual__2024-01-01T00_00_00_00_00/extract.json")


def test_a_failed_task_names_its_step_the_snapshot_and_what_to_do(caplog: pytest.LogCaptureFixture) -> None:
    ti = argparse.Namespace(task_id="validate_raw", try_number=3)
    context = {"ti": ti, "logical_date": pendulum.datetime(2024, 6, 30, tz="UTC"), "run_id": "scheduled__2024-06-30",
               "exception": RuntimeError("quarantined share 0.08 above quarantine_max_rate 0.05")}
    assert failure_message(context) == (
        "customer_metrics: step validate_raw failed for snapshot 2024-06-30 (run scheduled__2024-06-30, try 3): "
        "quarantined share 0.08 above quarantine_max_rate 0.05. Fix the cause, then clear validate_raw in Airflow "
        "or rerun the date: crm-metrics run --date 2024-06-30"
    )
    with caplog.at_level("ERROR"):
        on_failure(context)
    assert "step validate_raw failed for snapshot 2024-06-30" in caplog.text


def test_the_run_outcome_takes_airflow_s_word_for_a_task_that_left_no_status() -> None:
    ok = {"ok": True}
    done = {"extract": ok, "validate_raw": ok, "build_marts": ok, "validate_marts": ok, "publish": ok, "export": ok}
    assert run_outcome(done) == ("success", None, None)
    stopped = {"extract": ok, "validate_raw": {"ok": False, "error": "quarantined share 0.08 > 0.05"}}
    assert run_outcome(stopped, {"build_marts": "upstream_failed"}) == ("failed", "validate_raw", "quarantined share 0.08 > 0.05")
    # build_marts' process was killed: no status file, Airflow marked it failed; later steps never ran
    killed = {"extract": ok, "validate_raw": ok}
    outcome, step, message = run_outcome(killed, {"extract": "success", "validate_raw": "success", "build_marts": "failed",
                                                  "validate_marts": "upstream_failed"})
    assert (outcome, step) == ("failed", "build_marts") and "without writing its status" in str(message)
    # outside Airflow (no task states) the same files say which steps never ran
    assert run_outcome(killed) == ("failed", "build_marts", "step(s) not run: build_marts, validate_marts, publish, export")
