"""Generator benchmark: wall time and peak memory (RSS) for a size, into DuckDB.

    python benchmarks/bench_generate.py --customers 1000000 --start 2023-01-01 --end 2024-12-31

Each size runs in a fresh child process so peak RSS is that run's own. Prints a table and one
JSON line per size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time


def one(customers: int, start: str, end: str) -> dict[str, float]:
    from datetime import date

    from devtools.generate import generate
    from jobs.platform.warehouse import open_warehouse

    with tempfile.TemporaryDirectory() as tmp:
        wh = open_warehouse(f"duckdb:///{tmp}/bench.duckdb")
        t = time.perf_counter()
        stats = generate(wh, customers, date.fromisoformat(start), date.fromisoformat(end), seed=7)
        seconds = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "customers": customers,
        "order_lines": stats.rows["order_items"],
        "orders": stats.rows["orders"],
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak_mb),
        "lines_per_second": round(stats.rows["order_items"] / seconds),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--start", default="2023-01-01")
    parser.add_argument("--end", default="2024-12-31")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args.customers[0], args.start, args.end)))
        return 0
    print(f"{'customers':>10} {'order lines':>12} {'seconds':>8} {'peak RSS MB':>12} {'lines/s':>10}")
    for n in args.customers:
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--customers", str(n), "--start", args.start, "--end", args.end],
            capture_output=True, text=True, check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['customers']:>10,} {r['order_lines']:>12,} {r['seconds']:>8} {r['peak_rss_mb']:>12,} {r['lines_per_second']:>10,}")
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
