"""Resident memory from /proc (Linux), without psutil: this process, the Spark JVM it started,
and a background sampler that keeps the peak of each over a phase of the benchmark. Also the
entry point of the benchmark's child processes (`child_main`)."""

from __future__ import annotations

import argparse
import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

PROC = Path("/proc")


def status_kb(pid: int | str, key: str) -> int | None:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM), or None when unreadable."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_mb(pid: int | str = "self") -> float | None:
    kb = status_kb(pid, "VmRSS")
    return kb / 1024 if kb is not None else None


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """Peak resident set of a process over its life so far (VmHWM)."""
    kb = status_kb(pid, "VmHWM")
    return kb / 1024 if kb is not None else None


def cpu_seconds(pid: int | str = "self") -> float | None:
    """User + system CPU seconds a process has used so far (its own threads, not its children)."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _parent(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def descendants(root: int) -> list[int]:
    """Every live process whose ancestry reaches `root`."""
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            ppid = _parent(int(entry.name))
            if ppid is not None:
                parents[int(entry.name)] = ppid
    out = []
    for pid in parents:
        p: int | None = pid
        while p is not None and p > 1:
            p = parents.get(p)
            if p == root:
                out.append(pid)
                break
    return sorted(out)


def find_jvm(root: int | None = None) -> int | None:
    """The Spark driver JVM started by this Python process (local or standalone client mode):
    a descendant whose command line runs java with SparkSubmit. None for Spark Connect."""
    for pid in descendants(root or os.getpid()):
        try:
            cmd = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"java") and any(b"SparkSubmit" in part for part in cmd):
            return pid
    return None


@dataclass
class Peaks:
    """Peak RSS seen during a phase, and CPU seconds used by this process and the JVM in it."""

    driver_mb: float = 0.0
    jvm_mb: float | None = None
    cpu_seconds: float | None = None


@dataclass
class MemorySampler:
    """Samples this process's and the JVM's RSS every `interval` seconds in a daemon thread.

    `with sampler.phase() as peaks:` gives the peaks seen while the block ran."""

    interval: float = 0.1
    jvm_pid: int | None = None
    _current: list[Peaks] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._loop, name="bench-memory", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)

    def _sample(self) -> None:
        driver = rss_mb() or 0.0
        jvm = rss_mb(self.jvm_pid) if self.jvm_pid else None
        with self._lock:
            for p in self._current:
                p.driver_mb = max(p.driver_mb, driver)
                if jvm is not None:
                    p.jvm_mb = max(p.jvm_mb or 0.0, jvm)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def phase(self) -> _Phase:
        return _Phase(self)


class _Phase:
    def __init__(self, sampler: MemorySampler) -> None:
        self.sampler = sampler
        self.peaks = Peaks()

    def _cpu(self) -> float:
        jvm = self.sampler.jvm_pid
        return (cpu_seconds() or 0.0) + ((cpu_seconds(jvm) or 0.0) if jvm else 0.0)

    def __enter__(self) -> Peaks:
        with self.sampler._lock:
            self.sampler._current.append(self.peaks)
        self.sampler._sample()
        self._cpu_start = self._cpu()
        return self.peaks

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.sampler._sample()
        self.peaks.cpu_seconds = self._cpu() - self._cpu_start
        with self.sampler._lock:
            self.sampler._current.remove(self.peaks)


def child_main(
    parser: argparse.ArgumentParser, work: Callable[[argparse.Namespace], dict[str, Any]], argv: Sequence[str] | None = None
) -> int:
    """The entry of a benchmark child process (`python -m devtools.bench.duckdb_reference ...`,
    `python -m devtools.bench.pandas_summary ...`): parse `argv`, run `work(args)`, add the CPU seconds
    it used and the process's peak RSS to its result, and print the result as one JSON line (the
    parent reads the last line of stdout)."""
    args = parser.parse_args(None if argv is None else list(argv))
    cpu_before = cpu_seconds() or 0.0
    result = dict(work(args))
    result["peak_rss_mb"] = peak_rss_mb()
    result["cpu_seconds"] = (cpu_seconds() or 0.0) - cpu_before
    print(json.dumps(result, default=str))
    return 0
