"""The benchmark's two Spark stages on a second engine: Sail (`pysail`, a Rust Spark Connect server
on DataFusion), reached through Spark Connect and running the project's own PySpark code.

A child process of `crm-metrics bench --sail` (a Spark Connect session and the bench's classic
local session do not share one Python process), one per stage and server, so that a server lost
in one stage (out of memory) leaves the other stage's figures standing:

1. inputs stage: the raw Delta tables -> jobs.clean.snapshot_inputs.load_inputs -> clean_inputs,
   written as Parquet to <out>/clean/<table> (Sail 0.7 writes Delta tables but not the lake's
   tagged commits, so the clean layer it computes is written beside the lake, not into it);
2. metric stage: the clean layer JVM Spark recorded for the snapshot (Delta time travel, the
   same input as the DuckDB reference's metric stage) -> the three marts of the bench
   (devtools.bench.spark_job.build_three), written as Parquet to <out>/marts/<mart>; run twice,
   the second time on a warm server.

Grain of the outputs: those of the clean tables and of the three marts. Inputs: the bench's lake
and the URL of a running Sail server. The server's CPU seconds and peak memory are measured from
/proc (`--server-pid`), since its work is not this process's.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from devtools.bench.procmem import child_main, cpu_seconds, peak_rss_mb
from devtools.bench.spark_job import BENCH_MARTS, build_three
from jobs.clean.snapshot_inputs import clean_inputs, company_start_default, current_tables, load_inputs
from jobs.platform.lake import Lake
from jobs.platform.spark import get_spark
from jobs.quality.rules import RuleParams

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class SailServer:
    url: str
    pid: int
    process: subprocess.Popen[bytes]

    def death(self) -> str | None:
        """Why the server is gone, when it is: a SIGKILL here is almost always the kernel's
        out-of-memory killer (the server's own pool limit bounds only its operators)."""
        code = self.process.poll()
        if code is None:
            return None
        if code == -9:
            return "the Sail server was killed (SIGKILL: the kernel's out-of-memory killer, see dmesg)"
        return f"the Sail server exited with {code}"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((LOOPBACK, port)) == 0


@contextmanager
def sail_server(log_file: Path, memory_bytes: int | None = None, spill_dir: Path | None = None,
                timeout: float = 60.0) -> Iterator[SailServer]:
    """A Sail server on a free loopback port (`sail spark server`, the `sail` command pysail
    installs beside this interpreter), stopped on exit. `memory_bytes` bounds its operators with
    DataFusion's fair spill pool (they spill to `spill_dir` beyond it); without it the pool is
    unbounded, Sail's default."""
    binary = Path(sys.executable).with_name("sail")
    if not binary.exists():
        raise FileNotFoundError(f"no {binary}: pysail is a test dependency, run make install")
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port = int(sock.getsockname()[1])
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if memory_bytes:
        env |= {"SAIL_RUNTIME__MEMORY_POOL__TYPE": "fair", "SAIL_RUNTIME__MEMORY_POOL__FAIR__MAX_SIZE": str(memory_bytes)}
    if spill_dir:
        spill_dir.mkdir(parents=True, exist_ok=True)
        env["SAIL_RUNTIME__TEMPORARY_FILES__PATHS"] = json.dumps([str(spill_dir)])
    with log_file.open("w") as out:
        proc = subprocess.Popen([str(binary), "spark", "server", "--ip", LOOPBACK, "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout
        while not _port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Sail server did not start on port {port}: see {log_file}")
            time.sleep(0.2)
        yield SailServer(f"sc://{LOOPBACK}:{port}", proc.pid, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ServerClock:
    """Wall and server CPU seconds of one stage."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.wall = time.perf_counter()
        self.cpu = cpu_seconds(pid) if pid else None

    def stop(self) -> dict[str, float | None]:
        cpu = cpu_seconds(self.pid) if self.pid else None
        return {"seconds": time.perf_counter() - self.wall,
                "server_cpu_seconds": cpu - self.cpu if cpu is not None and self.cpu is not None else None}


def inputs_stage(spark: Any, lake: Lake, snapshot: date, out: Path, max_order_amount: float, pid: int | None) -> dict[str, Any]:
    clock = ServerClock(pid)
    current = current_tables(spark, lake, snapshot)
    start = company_start_default(current["customers"]) or date(1900, 1, 1)
    inputs = load_inputs(spark, lake, snapshot, RuleParams(snapshot, start, max_order_amount), current=current)
    for name, df in clean_inputs(inputs).tables().items():
        df.write.mode("overwrite").parquet(str(out / "clean" / name))
    return clock.stop()


def metric_stage(spark: Any, lake: Lake, snapshot: date, out: Path, pid: int | None) -> dict[str, Any]:
    clock = ServerClock(pid)
    marts, _ = build_three(spark, lake, snapshot)  # Sail ignores persist: nothing to release
    for name in BENCH_MARTS:
        marts[name].write.mode("overwrite").parquet(str(out / "marts" / name))
    return clock.stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    clock = ServerClock(args.server_pid)
    spark = get_spark(args.url)
    spark.range(1).count()
    result: dict[str, Any] = {"session_start": clock.stop()}
    lake = Lake.at(args.lake)
    if args.stage == "inputs":
        result["inputs"] = inputs_stage(spark, lake, args.snapshot, args.out, args.max_order_amount, args.server_pid)
    else:
        result["marts"] = metric_stage(spark, lake, args.snapshot, args.out, args.server_pid)
        result["marts_again"] = metric_stage(spark, lake, args.snapshot, args.out / "again", args.server_pid)
    result["server_peak_rss_mb"] = peak_rss_mb(args.server_pid) if args.server_pid else None
    spark.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the Sail server, sc://host:port")
    parser.add_argument("--stage", choices=("inputs", "marts"), required=True,
                        help="inputs: raw -> clean; marts: clean -> the three marts, twice on the same server")
    parser.add_argument("--lake", required=True)
    parser.add_argument("--snapshot", type=date.fromisoformat, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-order-amount", type=float, default=100_000.0)
    parser.add_argument("--server-pid", type=int, default=None)
    return child_main(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
