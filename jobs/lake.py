"""The lake: a folder of Hive-partitioned Parquet (local by default).

Layout under the lake root:
  raw/<table>/extract_date=YYYY-MM-DD/part-*.parquet   one partition per extraction date
  raw/_coverage/YYYY-MM-DD.json                         written last: the partition is complete
  clean/<table>/snapshot_date=YYYY-MM-DD/event_month=YYYY-MM/  valid latest rows (jobs.clean_layer)
  rejected/<table>/snapshot_date=YYYY-MM-DD/event_month=YYYY-MM/  rows that break a rule
  customer_day/snapshot_date=YYYY-MM-DD/event_month=YYYY-MM/  jobs.customer_day_layer
  marts/<mart>/snapshot_date=YYYY-MM-DD/part-*.parquet  Spark output per snapshot
  quarantine/snapshot_date=YYYY-MM-DD/                  rows set aside by the gate
  quality/...                                           Great Expectations Data Docs

A partition is written to a staging folder (names starting with `_` or `.` are invisible to
Spark's partition discovery) and renamed into place, so a reader sees the old or the new
partition, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Lake:
    root: Path

    @classmethod
    def at(cls, root: str | Path) -> Lake:
        return cls(Path(root))

    # -- paths -------------------------------------------------------------------------------
    def raw_table(self, table: str) -> Path:
        return self.root / "raw" / table

    def raw_partition(self, table: str, day: date) -> Path:
        return self.raw_table(table) / f"extract_date={day.isoformat()}"

    def mart_table(self, mart: str) -> Path:
        return self.root / "marts" / mart

    def mart_partition(self, mart: str, snapshot: date) -> Path:
        return self.mart_table(mart) / f"snapshot_date={snapshot.isoformat()}"

    def quarantine_partition(self, snapshot: date) -> Path:
        return self.root / "quarantine" / f"snapshot_date={snapshot.isoformat()}"

    def quality_dir(self) -> Path:
        return self.root / "quality"

    def report_path(self, snapshot: date) -> Path:
        return self.root / "reports" / f"portfolio_{snapshot.isoformat()}.html"

    def run_dir(self, snapshot: date) -> Path:
        return self.root / "runs" / snapshot.isoformat()

    def staging(self, parent: Path) -> Path:
        path = parent / "_staging" / uuid.uuid4().hex
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- atomic replacement ------------------------------------------------------------------
    def replace(self, staged: Path, final: Path) -> None:
        """Move a fully written folder into place, replacing what was there."""
        final.parent.mkdir(parents=True, exist_ok=True)
        trash = final.with_name(f".trash-{final.name}-{uuid.uuid4().hex}")
        if final.exists():
            os.rename(final, trash)
        os.rename(staged, final)
        shutil.rmtree(trash, ignore_errors=True)

    def remove(self, path: Path) -> None:
        if path.exists():
            trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex}")
            os.rename(path, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def clean_staging(self, parent: Path) -> None:
        shutil.rmtree(parent / "_staging", ignore_errors=True)

    def partition_dates(self, table: str) -> list[date]:
        base = self.raw_table(table)
        if not base.exists():
            return []
        return sorted(
            date.fromisoformat(p.name.split("=", 1)[1])
            for p in base.iterdir()
            if p.is_dir() and p.name.startswith("extract_date=")
        )

    # -- coverage: which extraction windows are complete ---------------------------------------
    def coverage_dir(self) -> Path:
        return self.root / "raw" / "_coverage"

    def coverage_path(self, day: date) -> Path:
        return self.coverage_dir() / f"{day.isoformat()}.json"

    def write_coverage(self, day: date, window_start: date | None, info: dict[str, Any]) -> None:
        self.coverage_dir().mkdir(parents=True, exist_ok=True)
        tmp = self.coverage_dir() / f".{day.isoformat()}.{uuid.uuid4().hex}.tmp"
        payload = {"extract_date": day.isoformat(), "window_start": window_start.isoformat() if window_start else None, **info}
        tmp.write_text(json.dumps(payload, sort_keys=True, indent=1))
        os.replace(tmp, self.coverage_path(day))

    def drop_coverage(self, day: date) -> None:
        self.coverage_path(day).unlink(missing_ok=True)

    def coverage(self) -> dict[date, dict[str, Any]]:
        out: dict[date, dict[str, Any]] = {}
        if self.coverage_dir().exists():
            for f in self.coverage_dir().glob("*.json"):
                out[date.fromisoformat(f.stem)] = json.loads(f.read_text())
        return out

    def is_empty(self) -> bool:
        return not self.coverage()

    def missing_days(self, snapshot: date) -> list[date]:
        """Days up to `snapshot` whose extraction is not complete in the lake.

        Complete = covered by a full extraction (window_start null, covering everything up to its
        date) or by the daily extraction of that day.
        """
        cov = self.coverage()
        full_ends = [d for d, info in cov.items() if info.get("window_start") is None]
        if not full_ends:
            return [snapshot]
        covered_to = max(full_ends)  # a full extraction covers every day up to its date
        return [d for d in days(covered_to + timedelta(days=1), snapshot) if d not in cov]


def days(start: date, end: date) -> Iterable[date]:
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)
