"""Fault injection for the reliability tests: named points where a run can be made to fail.

`CRM_METRICS_FAIL_AT=point[,point...]` fails at those points every time.
`CRM_METRICS_FAIL_ONCE_DIR=DIR` with `CRM_METRICS_FAIL_AT` fails each point only the first time
(a marker file in DIR remembers it), which is how retries are tested.
`CRM_METRICS_PAUSE_AT=point` with `CRM_METRICS_PAUSE_FILE=FILE` writes FILE and sleeps at that
point, so a test can kill the process exactly there.
Never set in production; the points cost one environment lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


class InjectedFault(RuntimeError):
    pass


def maybe_fail(point: str) -> None:
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


def maybe_pause(point: str) -> None:
    if os.environ.get("CRM_METRICS_PAUSE_AT") != point:
        return
    Path(os.environ["CRM_METRICS_PAUSE_FILE"]).write_text(f"paused at {point}\n")
    time.sleep(600)
