"""Lake maintenance (`crm-metrics maintain`): compaction and retention of the Delta tables.

Grain: one pass over every Delta table of the lake. Inputs: the lake root and a retention window
for Delta's VACUUM: files no table version inside the window needs are deleted; time travel and
readers inside the window keep working. The clean layer's snapshots are versions of its tables
(jobs.platform.state_tables), so a snapshot older than the window can no longer be read from it: a rerun
of that date rebuilds it from the raw history. The raw history and the lake's marts are never
deleted. Compaction does not change what the clean tables hold, so the snapshot they held is
recorded again at the compacted versions (the next run still moves from it).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from datetime import timedelta

import pyarrow.fs as pafs
from pyspark.sql import SparkSession

from jobs.platform.config import lake_root
from jobs.platform.delta import optimize, vacuum
from jobs.platform.lake import Lake
from jobs.platform.state_tables import TIME_ORDER, current_versions, find_base, state_tables, write_record
from schemas.source import SOURCE_TABLES

log = logging.getLogger(__name__)

DEFAULT_RETAIN_HOURS = 168.0  # Delta's own default: a week of time travel
LAYERS = ("raw", "clean", "rejected", "derived", "marts")


@dataclass
class MaintainResult:
    tables: list[str] = field(default_factory=list)


def delta_tables(lake: Lake) -> list[str]:
    """Every Delta table of the lake (a folder holding `_delta_log`)."""
    fs, root = lake.filesystem()
    out = []
    for layer in LAYERS:
        infos = fs.get_file_info(pafs.FileSelector(f"{root}/{layer}", allow_not_found=True))
        for info in sorted(infos, key=lambda i: i.path):
            if info.type == pafs.FileType.Directory and fs.get_file_info(f"{info.path}/_delta_log").type == pafs.FileType.Directory:
                out.append(f"{lake.root}/{layer}/{info.base_name}")
    for table in (lake.quarantine_table(), lake.snapshots_table()):
        if fs.get_file_info(f"{root}{table[len(lake.root):]}/_delta_log").type == pafs.FileType.Directory:
            out.append(table)
    return out


def maintain(spark: SparkSession, lake: Lake, retain: timedelta) -> MaintainResult:
    """Compact every table (OPTIMIZE; the raw tables Z-ordered by updated_at, the state tables by
    their time column, see jobs.platform.state_tables.TIME_ORDER), then VACUUM with `retain`."""
    hours = retain.total_seconds() / 3600
    # Delta refuses a window shorter than a week unless told: readers older than the window break
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", str(hours >= DEFAULT_RETAIN_HOURS).lower())
    result = MaintainResult()
    held = find_base(lake, None)
    order = {path: TIME_ORDER[name] for name, path in state_tables(lake).items() if name in TIME_ORDER}
    # the raw history stays in updated_at order: a day's reads by time skip its older files
    order.update({lake.raw_table(t.name): "updated_at" for t in SOURCE_TABLES})
    for path in delta_tables(lake):
        column = order.get(path)
        if column is not None and column not in spark.read.format("delta").load(path).columns:
            column = None  # a table of another shape at a state table's path: plain compaction
        optimize(spark, path, column)
        vacuum(spark, path, hours)
        result.tables.append(path)
        log.info("maintained %s", path)
    if held is not None and current_versions(lake) != held.versions:
        write_record(spark, lake, held.snapshot, current_versions(lake), held.params, held.raw_versions)
    return result


def configure(parser: argparse.ArgumentParser, _name: str) -> None:
    parser.add_argument("--lake", help="lake root: a folder or s3a://bucket/prefix (default: $CRM_METRICS_LAKE, else data/lake)")
    parser.add_argument("--retain-hours", type=float, default=DEFAULT_RETAIN_HOURS,
                        help=f"keep every file a table version of the last N hours needs (default {DEFAULT_RETAIN_HOURS:g})")


def run(args: argparse.Namespace) -> int:
    from jobs.platform.spark import get_spark

    lake = Lake.at(lake_root(args.lake))
    result = maintain(get_spark(), lake, timedelta(hours=args.retain_hours))
    print(f"maintained {len(result.tables)} Delta tables in {lake.root}")
    return 0
