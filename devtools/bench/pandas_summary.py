"""A pandas lifetimes-style summary (frequency, recency, T, monetary_value) from the raw lake.

The conventions of `lifetimes.utils.summary_data_from_transaction_data` with daily periods, as in
docs/marts.md and the project's customer_rfm: a purchase occasion is a customer-day with at least
one purchase (an order neither cancelled nor fully refunded; several orders on a day are one
occasion, their money summed); frequency = occasions - 1; recency = last - first occasion and
T = snapshot - first occasion, in weeks = days / 7; monetary_value = mean spend over the repeat
occasions (the first left out), 0 for one-time buyers. Spend = net revenue (gross - discount -
refund), summed in integer cents.

It reads the raw orders (a Delta table of every captured version, read with `deltalake` into
Arrow) as of the snapshot: the versions updated by the end of the snapshot day, plus an order's
first version when it is newer but the order was placed by then (jobs.clean.snapshot_inputs.read_raw's
rule, written again here); then the latest version of each order, an order whose latest version
is a tombstone (`_deleted`) left out. It applies no validity rules (a pandas user's script; on
generated data without --dirty the rules remove nothing).

Run as a child process so its time and peak memory are its own:
    python -m devtools.bench.pandas_summary --lake LAKE --snapshot D --out FILE.parquet
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from devtools.bench.procmem import child_main
from jobs.ingest.extract import DELETED
from jobs.platform.lake import Lake

DAYS_PER_WEEK = 7.0
NOT_PURCHASES = ("cancelled", "refunded")
COLUMNS = ["order_id", "customer_id", "ordered_at", "status", "gross_amount", "discount_amount", "refund_amount", "updated_at",
           DELETED]
TIMES = ("ordered_at", "updated_at")


def _cents(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Exact decimal money -> int64 cents."""
    return pc.cast(pc.multiply(col, pa.scalar(100)), pa.int64())


def read_orders(lake_root: str | Path, snapshot: date) -> pd.DataFrame:
    """Every version of every order visible at the snapshot, money in cents, times as naive UTC."""
    lake = Lake.at(lake_root)
    table = lake.read_arrow(lake.raw_table("orders"), columns=COLUMNS)
    for name in ("gross_amount", "discount_amount", "refund_amount"):
        table = table.set_column(table.schema.get_field_index(name), name, _cents(table[name]))
    for name in TIMES:  # instants (UTC) -> the same wall time without a zone
        table = table.set_column(table.schema.get_field_index(name), name, pc.cast(table[name], pa.timestamp("us")))
    return visible_versions(table.to_pandas(), snapshot)


def visible_versions(orders: pd.DataFrame, snapshot: date) -> pd.DataFrame:
    """The versions visible at the snapshot: updated before the end of its day, or the order's
    first version when the order was placed by then."""
    end = pd.Timestamp(snapshot + timedelta(days=1))
    first = orders.groupby("order_id", sort=False, dropna=False)["updated_at"].transform("min")
    late_first = (orders["updated_at"] == first) & (orders["ordered_at"] < end)
    return orders[(orders["updated_at"] < end) | late_first]


def lifetimes_summary(orders: pd.DataFrame, snapshot: date) -> pd.DataFrame:
    """One row per customer with a purchase: frequency, recency, T, monetary_value."""
    latest = orders.sort_values("updated_at", kind="stable").drop_duplicates("order_id", keep="last")
    latest = latest[~latest[DELETED].eq(True)]  # the order was deleted by the snapshot
    purchases = latest[~latest["status"].isin(NOT_PURCHASES)]
    tx = pd.DataFrame(
        {
            "customer_id": purchases["customer_id"],
            "day": purchases["ordered_at"].dt.floor("D"),
            "spend": purchases["gross_amount"] - purchases["discount_amount"] - purchases["refund_amount"],
        }
    )
    occasions = tx.groupby(["customer_id", "day"], sort=True)["spend"].sum().reset_index()
    per = occasions.groupby("customer_id", sort=False).agg(
        first=("day", "min"), last=("day", "max"), occasions=("day", "size"),
        total=("spend", "sum"), first_spend=("spend", "first"),
    )
    frequency = per["occasions"] - 1
    end = pd.Timestamp(snapshot)
    repeat_cents = (per["total"] - per["first_spend"]).to_numpy()
    freq = frequency.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        monetary = np.where(freq > 0, (repeat_cents / 100.0) / np.maximum(freq, 1), 0.0)
    return pd.DataFrame(
        {
            "customer_id": per.index.to_numpy(),
            "frequency": freq.astype("int32"),
            "recency": (per["last"] - per["first"]).dt.days.to_numpy() / DAYS_PER_WEEK,
            "T": (end - per["first"]).dt.days.to_numpy() / DAYS_PER_WEEK,
            "monetary_value": monetary,
        }
    )


def run_summary(lake_root: str | Path, snapshot: date, out: Path) -> dict[str, Any]:
    started = time.perf_counter()
    orders = read_orders(lake_root, snapshot)
    read_seconds = time.perf_counter() - started
    summary = lifetimes_summary(orders, snapshot)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(summary, preserve_index=False), out)
    return {
        "seconds": time.perf_counter() - started,
        "read_seconds": read_seconds,
        "order_versions": len(orders),
        "customers": len(summary),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", required=True, help="the lake root: a folder or s3a://bucket/prefix")
    parser.add_argument("--snapshot", type=date.fromisoformat, required=True)
    parser.add_argument("--out", type=Path, required=True)
    return child_main(parser, lambda args: run_summary(args.lake, args.snapshot, args.out), argv)


if __name__ == "__main__":
    sys.exit(main())
