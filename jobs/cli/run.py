"""`crm-metrics run` and `crm-metrics backfill`: the DAG through Airflow, from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date, timedelta
from typing import Any

from jobs.platform.config import (
    LAKE_ENV,
    SOURCE_ENV,
    WAREHOUSE_ENV,
    RunParams,
    iso_date,
    lake_root,
    warehouse_url,
)
from jobs.platform.lake import Lake


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "run":
        parser.add_argument("--date", required=True, type=iso_date, help="snapshot date (YYYY-MM-DD)")
    else:
        parser.add_argument("--from", dest="start", required=True, type=iso_date, help="first snapshot date")
        parser.add_argument("--to", dest="end", required=True, type=iso_date, help="last snapshot date")
    parser.add_argument(
        "--source", metavar="URL",
        help="the database to extract from, schema crm (default: $AIRFLOW_CONN_CRM_SOURCE, else the warehouse)",
    )
    parser.add_argument("--lake", help="lake folder (default: $CRM_METRICS_LAKE or ./data/lake)")
    parser.add_argument("--full-refresh", action="store_true", help="extract all history up to the (first) date")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help=f"run parameter, repeatable; known: {', '.join(RunParams.__dataclass_fields__)}",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _params(args: argparse.Namespace) -> dict[str, Any]:
    pairs = {}
    for item in args.param:
        if "=" not in item:
            raise ValueError(f"--param {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        pairs[k.strip()] = v.strip()
    if args.full_refresh:
        pairs["full_refresh"] = "true"
    # typed as the DAG's Params expect them (a number, a boolean, null), and a bad name or value
    # fails here, before Airflow starts
    params = RunParams.from_mapping(pairs)
    return {k: getattr(params, k) for k in pairs}


def summary(wh_url: str, snapshot: date) -> dict[str, Any]:
    """The run's record plus a few headline numbers from the published marts."""
    from jobs.platform.warehouse import open_warehouse

    wh = open_warehouse(wh_url)
    ph = wh.placeholder
    out: dict[str, Any] = {"snapshot_date": snapshot.isoformat()}
    if not wh.table_exists("marts", "pipeline_runs"):
        return out
    run = wh.query(
        "SELECT run_id, outcome, failed_step, message, rows_extracted, rows_quarantined, rows_restated, rows_published, step_seconds "
        f"FROM marts.pipeline_runs WHERE snapshot_date = {ph} ORDER BY recorded_at DESC LIMIT 1",
        [snapshot],
    )
    if run:
        keys = ["run_id", "outcome", "failed_step", "message", "rows_extracted", "rows_quarantined", "rows_restated", "rows_published", "step_seconds"]
        out.update(dict(zip(keys, run[0], strict=True)))
        out["step_seconds"] = json.loads(out["step_seconds"] or "{}")
    if out.get("outcome") == "success":
        p = wh.query(
            f"SELECT customers, buying_customers, revenue, net_profit FROM marts.portfolio_summary WHERE snapshot_date = {ph}",
            [snapshot],
        )
        if p:
            out.update(customers=p[0][0], buying_customers=p[0][1], revenue=str(p[0][2]), net_profit=str(p[0][3]))
        r3 = wh.scalar(
            "SELECT sum(active_customers) * 1.0 / nullif(sum(cohort_size), 0) FROM marts.cohort_retention "
            f"WHERE snapshot_date = {ph} AND acquisition_channel = 'all' AND period = 3 AND is_complete_period",
            [snapshot],
        )
        out["month3_retention"] = round(float(r3), 4) if r3 is not None else None
        seg = wh.query(
            "SELECT rfm_segment, count(*) AS n FROM marts.customer_rfm "
            f"WHERE snapshot_date = {ph} GROUP BY rfm_segment ORDER BY n DESC, rfm_segment LIMIT 1",
            [snapshot],
        )
        out["largest_rfm_segment"] = f"{seg[0][0]} ({seg[0][1]} customers)" if seg else None
        quad = wh.query(
            "SELECT segment, customers FROM marts.portfolio_breakdown "
            f"WHERE snapshot_date = {ph} AND dimension = 'kotler_quadrant' ORDER BY customers DESC, segment LIMIT 1",
            [snapshot],
        )
        out["largest_kotler_quadrant"] = f"{quad[0][0]} ({quad[0][1]} customers)" if quad else None
    return out


def _print(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(info, default=str))
        return
    print(f"snapshot {info['snapshot_date']}: {info.get('outcome', 'not recorded')}")
    for key in ("failed_step", "message", "rows_extracted", "rows_quarantined", "rows_restated", "rows_published", "customers",
                "buying_customers", "revenue", "net_profit", "month3_retention", "largest_rfm_segment",
                "largest_kotler_quadrant"):
        if info.get(key) not in (None, ""):
            print(f"  {key:24} {info[key]}")
    if info.get("step_seconds"):
        print("  seconds per step         " + ", ".join(f"{k} {v:.1f}" for k, v in info["step_seconds"].items()))


def run(args: argparse.Namespace) -> int:
    wh = warehouse_url(args.warehouse)
    os.environ[WAREHOUSE_ENV] = wh
    if args.source:
        os.environ[SOURCE_ENV] = args.source
    os.environ[LAKE_ENV] = Lake.at(lake_root(args.lake)).root  # an s3a:// root stays as it is
    conf = _params(args)
    from jobs.cli.airflow_local import run_dag

    dates = [args.date] if args.command == "run" else _range(args.start, args.end)
    failed = 0
    show_progress = len(dates) > 1 and sys.stderr.isatty()
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(dates), unit="day", file=sys.stderr)
    for i, day in enumerate(dates):
        started = time.perf_counter()
        run_conf = conf if i == 0 else {k: v for k, v in conf.items() if k != "full_refresh"}
        state = run_dag(day, run_conf)
        info = summary(wh, day)
        info["airflow_state"] = state
        info["wall_seconds"] = round(time.perf_counter() - started, 1)
        _print(info, args.json)
        if bar:
            bar.update(1)
        if state != "success":
            failed += 1
            if args.command == "backfill":
                print(f"backfill stopped at {day}: fix the cause and rerun from this date", file=sys.stderr)
                break
    if bar:
        bar.close()
    return 1 if failed else 0


def _range(start: date, end: date) -> list[date]:
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]
