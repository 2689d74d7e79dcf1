"""customer_day kept in the lake, updated month by month with the clean layer.

Layout: customer_day/snapshot_date=D/event_month=YYYY-MM/ (one row per customer per day with any
order or interaction, jobs.metrics.customer_day), and customer_day/_state/D.json written last.

A customer-day's row depends only on the clean rows of its own event month (orders and
interactions of that day, the lines of those orders). So when the clean layer of D was built
incrementally from D-1 (jobs.clean_layer), only its rebuilt months are recomputed here and every
other month is hard-linked from customer_day of D-1, provided that one was built from the very
clean layer D's was built on. Otherwise every month is computed.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.clean_layer import (
    EVENT_MONTH,
    clean_partition,
    in_months,
    read_layer,
    read_state,
    write_months,
)
from jobs.lake import Lake
from jobs.metrics.customer_day import customer_day
from jobs.metrics.orders import order_facts

# Bumped when customer_day's columns change (2: money in whole cents); a previous day kept in
# another layout is never reused, the day is computed in full.
LAYOUT = 2


def customer_day_partition(lake: Lake, snapshot: date) -> Path:
    return lake.root / "customer_day" / f"snapshot_date={snapshot.isoformat()}"


def customer_day_state_path(lake: Lake, snapshot: date) -> Path:
    return lake.root / "customer_day" / "_state" / f"{snapshot.isoformat()}.json"


def _compute(spark: SparkSession, lake: Lake, snapshot: date, months: set[str | None] | None) -> DataFrame:
    """customer_day of the given event months (all when None), with `event_month`."""
    def table(name: str) -> DataFrame:
        df = read_layer(spark, clean_partition(lake, name, snapshot), name)
        return (df if months is None else df.where(in_months(months))).drop(EVENT_MONTH)

    days = customer_day(order_facts(table("orders"), table("order_items")), table("interactions"))
    return days.withColumn(EVENT_MONTH, F.date_format("activity_date", "yyyy-MM"))


def update_customer_day(spark: SparkSession, lake: Lake, snapshot: date) -> tuple[DataFrame, dict[str, Any]]:
    """Bring customer_day of `snapshot` up to date with its clean layer; returns it (one row per
    customer per day with any activity, as of the snapshot) and how it was built."""
    clean = read_state(lake, snapshot)
    if clean is None:
        raise FileNotFoundError(
            f"clean layer for {snapshot} is incomplete (no {lake.root}/clean/_state/{snapshot}.json): run validate_raw first"
        )
    prev_day = snapshot - timedelta(days=1)
    prev_path = customer_day_state_path(lake, prev_day)
    prev = json.loads(prev_path.read_text()) if prev_path.exists() else None
    incremental = (
        clean["mode"] == "incremental"
        and prev is not None
        and prev.get("clean_build") == clean.get("base_build")
        and prev.get("layout") == LAYOUT
        and customer_day_partition(lake, prev_day).exists()
    )
    months: set[str | None] | None = set(clean["rebuilt_months"]) if incremental else None
    started = time.perf_counter()
    state_path = customer_day_state_path(lake, snapshot)
    state_path.unlink(missing_ok=True)
    days = _compute(spark, lake, snapshot, months)
    final = customer_day_partition(lake, snapshot)
    write_months(lake, days, final, customer_day_partition(lake, prev_day) if incremental else None, months)
    info = {
        "snapshot": snapshot.isoformat(),
        "build_id": uuid.uuid4().hex,
        "clean_build": clean["build_id"],
        "layout": LAYOUT,
        "mode": "incremental" if incremental else "full",
        "rebuilt_months": None if months is None else sorted(months, key=lambda m: m or ""),
        "seconds": round(time.perf_counter() - started, 3),
    }
    state_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = state_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=1, sort_keys=True))
    tmp.replace(state_path)
    stored = spark.read.schema(days.schema).option("basePath", str(final)).parquet(str(final)).drop(EVENT_MONTH)
    return stored, info
