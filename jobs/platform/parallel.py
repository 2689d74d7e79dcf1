"""A few independent Spark writes at once, from driver threads.

On a daily run most writes are small: each costs planning, task launch and the file commit on
the driver more than executor work, so a few in flight keep both the driver and the executor
busy. Spark schedules concurrent jobs of one session side by side (FIFO by default, each job
taking the free cores), and a cached block computed by one job is read, not recomputed, by the
others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

PARALLEL_WRITES_ENV = "CRM_METRICS_PARALLEL_WRITES"


def parallel_writes() -> int:
    """How many writes may be in flight (1 = one after another), from CRM_METRICS_PARALLEL_WRITES."""
    value = os.environ.get(PARALLEL_WRITES_ENV, "3")
    try:
        workers = int(value)
    except ValueError:
        raise ValueError(f"{PARALLEL_WRITES_ENV}={value!r} is not a whole number; set it to 1 or more") from None
    if workers < 1:
        raise ValueError(f"{PARALLEL_WRITES_ENV}={value!r} must be 1 or more (1 writes one table at a time)")
    return workers


def in_parallel(calls: Sequence[Callable[[], T]], workers: int | None = None) -> list[T]:
    """Run `calls` on up to `workers` threads; their results in the order of `calls`.

    Every call runs to its end even when another fails (each one cleans up its own staging
    folder), then the first failure in call order is raised."""
    workers = parallel_writes() if workers is None else workers
    if workers <= 1 or len(calls) <= 1:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=min(workers, len(calls)), thread_name_prefix="crm-write") as pool:
        futures = [pool.submit(call) for call in calls]
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error
    return [future.result() for future in futures]
