"""Which Delta errors a commit retries: a concurrent writer's, never a real error."""

from __future__ import annotations

import pytest

from jobs.platform.delta import LakeConflict, retry_conflicts

# the message Delta 4 gave one of two runs creating a new lake's raw table at the same moment
CREATING_ELSEWHERE = (
    "[DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION] Cannot create table ('`delta`.`/lake/raw/customers`'). "
    "The associated location ('/lake/raw/customers') is not empty and also not a Delta table."
)


def test_a_table_another_run_is_creating_is_retried_until_it_exists() -> None:
    attempts = []

    def create() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError(CREATING_ELSEWHERE)
        return "created"

    assert retry_conflicts("create raw/customers", create) == "created" and len(attempts) == 3


def test_a_real_error_is_not_retried_and_endless_conflicts_end() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("[DELTA_MISSING_COLUMN] Cannot find customer_id")

    with pytest.raises(RuntimeError, match="DELTA_MISSING_COLUMN"):
        retry_conflicts("write", broken)
    assert len(calls) == 1

    def always() -> None:
        raise RuntimeError(CREATING_ELSEWHERE)

    with pytest.raises(LakeConflict, match="retry the task"):
        retry_conflicts("create raw/customers", always, attempts=2)
