"""Fault injection for the reliability tests, at the pipeline's named checkpoints
(jobs.platform.hooks.checkpoint): `inject(...)` sets the environment, `at(point)` acts on it.

`CRM_METRICS_FAIL_AT=point[,point...]` fails at those points every time.
`CRM_METRICS_FAIL_ONCE_DIR=DIR` with `CRM_METRICS_FAIL_AT` fails each point only the first time
(a marker file in DIR remembers it), which is how retries are tested.
`CRM_METRICS_PAUSE_AT=point` with `CRM_METRICS_PAUSE_FILE=FILE` writes FILE and sleeps at that
point, so a test can kill the process exactly there.
Each of these also needs `CRM_METRICS_HOOKS=tests.support.faults` (HOOKS below), which makes the
checkpoints call `at`; child processes inherit it with the rest of the environment.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from jobs.platform.hooks import HOOKS_ENV

HOOKS = {HOOKS_ENV: __name__}


class InjectedFault(RuntimeError):
    pass


def inject(monkeypatch: pytest.MonkeyPatch, fail_at: str, once_dir: Path | None = None) -> None:
    """Fail at the checkpoints `fail_at` (comma-separated) from now on; with `once_dir`, only the
    first time each. `monkeypatch.delenv("CRM_METRICS_FAIL_AT")` ends it."""
    monkeypatch.setenv(HOOKS_ENV, __name__)
    monkeypatch.setenv("CRM_METRICS_FAIL_AT", fail_at)
    if once_dir is not None:
        monkeypatch.setenv("CRM_METRICS_FAIL_ONCE_DIR", str(once_dir))


def at(point: str) -> None:
    """Fail or pause at `point` when the environment asks for it."""
    _maybe_fail(point)
    _maybe_pause(point)


def _maybe_fail(point: str) -> None:
    points = {p.strip() for p in os.environ.get("CRM_METRICS_FAIL_AT", "").split(",") if p.strip()}
    if point not in points:
        return
    once_dir = os.environ.get("CRM_METRICS_FAIL_ONCE_DIR")
    if once_dir:
        marker = Path(once_dir) / f"{point}.failed"
        if marker.exists():
            return
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("failed once\n")
    raise InjectedFault(f"injected fault at {point} (CRM_METRICS_FAIL_AT)")


def _maybe_pause(point: str) -> None:
    if os.environ.get("CRM_METRICS_PAUSE_AT") != point:
        return
    Path(os.environ["CRM_METRICS_PAUSE_FILE"]).write_text(f"paused at {point}\n")
    time.sleep(600)
