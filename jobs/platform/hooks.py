"""Named checkpoints of a run (`checkpoint("publish_before_commit")`) where a test can step in.

In production nothing happens: a checkpoint costs one environment lookup. With
`CRM_METRICS_HOOKS=<module>` set, the checkpoint calls that module's `at(point)`, which may raise
or pause; the only such module is the tests' fault injection (tests/support/faults.py), so no
code that breaks runs on purpose ships in the package.
"""

from __future__ import annotations

import importlib
import os

HOOKS_ENV = "CRM_METRICS_HOOKS"


def checkpoint(point: str) -> None:
    """Let the hooks module named by $CRM_METRICS_HOOKS act at `point`; nothing when unset."""
    name = os.environ.get(HOOKS_ENV)
    if name:
        importlib.import_module(name).at(point)
