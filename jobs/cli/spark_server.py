"""`crm-metrics spark-server`: a long-lived Spark Connect server for the DAG's tasks, in the foreground.

Under a scheduler every task is its own process; with the `crm_spark` connection set to
`sc://HOST:PORT`, the Spark tasks reach this server instead of each starting a JVM and a session
(measured in docs/benchmarks.md). The server's session is set up as a task's own would be
(jobs.platform.spark.session_settings: Delta, the jars, UTC, the lake's S3A settings, memory).
Run it under systemd, supervisord or a container beside the Airflow workers; it stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import sys

from jobs.platform.spark import connect_server_command


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=15002, help="port to listen on (default: 15002)")
    parser.add_argument("--master", default="local[*]",
                        help="where the server's own session runs: local[*] (default) or a cluster's master URL")


def run(args: argparse.Namespace) -> int:
    command = connect_server_command(args.host, args.port, args.master)
    print(f"crm-metrics spark-server: serving sc://{args.host}:{args.port} (master {args.master})", flush=True)
    # the server's Python workers (the CLV pandas UDF) need this interpreter's packages
    env = {**os.environ, "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable)}
    os.execve(command[0], command, env)  # spark-submit in place of this process: signals reach the JVM
