"""Lake maintenance (`crm-metrics maintain`): compaction and retention of the Delta tables.

Grain: one pass over every Delta table of the lake. Inputs: the lake root, a retention window
for Delta's VACUUM (files no table version inside the window needs are deleted; time travel and
readers inside the window keep working) and how many snapshots of the working layers
(clean/rejected, which a rerun of any date rebuilds from the raw history) to keep. The raw
history and the lake's marts are never deleted.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from datetime import timedelta

import pyarrow.fs as pafs
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.config import lake_root
from jobs.delta import optimize, retry_conflicts, vacuum
from jobs.lake import SNAPSHOT_COLUMN, Lake

log = logging.getLogger(__name__)

DEFAULT_RETAIN_HOURS = 168.0  # Delta's own default: a week of time travel
DEFAULT_KEEP_SNAPSHOTS = 7
WORKING_LAYERS = ("clean", "rejected")
LAYERS = ("raw", "clean", "rejected", "marts")


@dataclass
class MaintainResult:
    tables: list[str] = field(default_factory=list)
    snapshots_dropped: dict[str, int] = field(default_factory=dict)


def delta_tables(lake: Lake) -> list[str]:
    """Every Delta table of the lake (a folder holding `_delta_log`)."""
    fs, root = lake.filesystem()
    out = []
    for layer in LAYERS:
        infos = fs.get_file_info(pafs.FileSelector(f"{root}/{layer}", allow_not_found=True))
        for info in sorted(infos, key=lambda i: i.path):
            if info.type == pafs.FileType.Directory and fs.get_file_info(f"{info.path}/_delta_log").type == pafs.FileType.Directory:
                out.append(f"{lake.root}/{layer}/{info.base_name}")
    if fs.get_file_info(f"{root}/quarantine/_delta_log").type == pafs.FileType.Directory:
        out.append(lake.quarantine_table())
    return out


def drop_old_snapshots(spark: SparkSession, path: str, keep: int) -> int:
    """Delete all but the newest `keep` snapshots of a working-layer table; returns how many went."""
    dates = [r[0] for r in spark.read.format("delta").load(path).select(SNAPSHOT_COLUMN).distinct().orderBy(F.desc(SNAPSHOT_COLUMN)).collect()]
    old = dates[keep:]
    if old:
        cutoff = old[0]
        retry_conflicts(f"retention of {path}", lambda: spark.sql(f"DELETE FROM delta.`{path}` WHERE {SNAPSHOT_COLUMN} <= DATE'{cutoff.isoformat()}'"))
    return len(old)


def maintain(spark: SparkSession, lake: Lake, retain: timedelta, keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS) -> MaintainResult:
    """Drop old working snapshots, compact every table (OPTIMIZE), then VACUUM with `retain`."""
    hours = retain.total_seconds() / 3600
    # Delta refuses a window shorter than a week unless told: readers older than the window break
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", str(hours >= DEFAULT_RETAIN_HOURS).lower())
    result = MaintainResult()
    for path in delta_tables(lake):
        layer = path[len(lake.root) + 1:].split("/", 1)[0]
        if layer in WORKING_LAYERS:
            result.snapshots_dropped[path] = drop_old_snapshots(spark, path, keep_snapshots)
        optimize(spark, path)
        vacuum(spark, path, hours)
        result.tables.append(path)
        log.info("maintained %s", path)
    return result


def configure(parser: argparse.ArgumentParser, _name: str) -> None:
    parser.add_argument("--lake", help="lake root: a folder or s3a://bucket/prefix (default: $CRM_METRICS_LAKE, else data/lake)")
    parser.add_argument("--retain-hours", type=float, default=DEFAULT_RETAIN_HOURS,
                        help=f"keep every file a table version of the last N hours needs (default {DEFAULT_RETAIN_HOURS:g})")
    parser.add_argument("--keep-snapshots", type=int, default=DEFAULT_KEEP_SNAPSHOTS,
                        help=f"snapshots of the clean/rejected layers to keep (default {DEFAULT_KEEP_SNAPSHOTS})")


def run(args: argparse.Namespace) -> int:
    from jobs.spark import get_spark

    lake = Lake.at(lake_root(args.lake))
    result = maintain(get_spark(), lake, timedelta(hours=args.retain_hours), args.keep_snapshots)
    dropped = sum(result.snapshots_dropped.values())
    print(f"maintained {len(result.tables)} Delta tables in {lake.root}; {dropped} old working snapshot(s) dropped")
    return 0
