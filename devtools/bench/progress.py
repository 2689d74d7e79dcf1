"""A progress bar over the bench's phases: on a terminal only, as `crm-metrics import`,
`generate` and `backfill` do (tqdm on stderr, shown when stderr is a TTY), so CI logs and pipes
get no bar and stdout keeps the table and the JSON line only."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any


def is_terminal(stream: IO[str] | Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


def _columns(stream: IO[str] | Any) -> int:
    """The terminal's width; 0 when it reports none (a pseudo-terminal nobody sized)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


class PhaseBar:
    """`with bar.phase("spark metric stage"):` names the running phase, then advances the bar by
    one. The elapsed time is redrawn every `refresh` seconds while a long phase runs. Without a
    terminal (or with `enabled=False`) every call is a no-op."""

    def __init__(self, total: int, stream: IO[str] | None = None, enabled: bool | None = None, refresh: float = 1.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = is_terminal(self.stream) if enabled is None else enabled
        self._bar: Any = None
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="phase", desc="bench", file=self.stream, leave=True,
                             # a terminal that reports no size (an unsized pseudo-terminal) would
                             # hide the bar: tqdm skips bars below the terminal's last row
                             **({} if _columns(self.stream) else {"ncols": 80, "nrows": 24}),
                             bar_format="{desc:<32.32} {n_fmt}/{total_fmt} |{bar}| {elapsed}")
            self._stop = threading.Event()
            self._ticker = threading.Thread(target=self._tick, args=(refresh,), name="bench-progress", daemon=True)
            self._ticker.start()

    def _tick(self, every: float) -> None:
        while not self._stop.wait(every):
            bar = self._bar
            if bar is not None:
                bar.refresh()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self._bar is not None:
            self._bar.set_description_str(name)
        yield
        if self._bar is not None:
            self._bar.update(1)

    def skip(self, name: str) -> None:
        """A phase that does not run this time (e.g. the pipeline under --skip-pipeline)."""
        with self.phase(name + " (skipped)"):
            pass

    def close(self) -> None:
        if self._bar is not None:
            self._stop.set()
            self._ticker.join(timeout=5)
            self._bar.set_description_str("done")
            self._bar.close()
            self._bar = None
