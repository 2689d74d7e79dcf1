"""jobs.platform.parallel: results in call order, every call finishes, the first failure is raised."""

from __future__ import annotations

import threading
import time

import pytest

from jobs.platform.parallel import PARALLEL_WRITES_ENV, in_parallel, parallel_writes


def test_results_come_in_call_order_and_calls_overlap() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def call(i: int, pause: float) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(pause)
        with lock:
            running -= 1
        return i * 10

    pauses = [0.6, 0.0, 0.5, 0.4, 0.0]
    assert in_parallel([lambda i=i, p=p: call(i, p) for i, p in enumerate(pauses)], workers=3) == [0, 10, 20, 30, 40]
    assert most == 3


def test_every_call_finishes_then_the_first_failure_in_call_order_is_raised() -> None:
    done: list[str] = []

    def ok(name: str) -> str:
        time.sleep(0.1)
        done.append(name)
        return name

    def fail(message: str) -> str:
        raise ValueError(message)

    calls = [lambda: fail("first"), lambda: ok("a"), lambda: fail("second"), lambda: ok("b")]
    with pytest.raises(ValueError, match="^first$"):
        in_parallel(calls, workers=2)
    assert sorted(done) == ["a", "b"]


def test_one_worker_runs_in_this_thread_one_after_another() -> None:
    threads: list[str] = []
    in_parallel([lambda: threads.append(threading.current_thread().name)] * 2, workers=1)
    assert threads == [threading.current_thread().name] * 2


def test_the_setting_is_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PARALLEL_WRITES_ENV, raising=False)
    assert parallel_writes() == 3
    monkeypatch.setenv(PARALLEL_WRITES_ENV, "1")
    assert parallel_writes() == 1
    for bad in ("0", "two"):
        monkeypatch.setenv(PARALLEL_WRITES_ENV, bad)
        with pytest.raises(ValueError, match=PARALLEL_WRITES_ENV):
            parallel_writes()
