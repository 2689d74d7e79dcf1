"""crm-metrics: the one console command (`run.py`: run and backfill through Airflow;
`airflow_local.py`: the local Airflow home those use).

Each subcommand lives in its own module, which exposes `configure(parser)` and `run(args) -> int`;
modules are imported only when their subcommand runs, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help, example)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "generate": (
        "devtools.generate",
        "generate a realistic sample source warehouse",
        "crm-metrics generate --customers 20000 --start 2024-01-01 --end 2024-12-31 --seed 7",
    ),
    "import": (
        "jobs.ingest.importer",
        "import a plain transactions file (CSV or Parquet) into the source schema",
        "crm-metrics import --transactions CDNOW_master.txt --delimiter whitespace "
        "--columns customer_id,date,quantity,amount --date-format %Y%m%d",
    ),
    "run": ("jobs.cli.run", "run the customer_metrics DAG once for a date", "crm-metrics run --date 2024-12-31"),
    "backfill": (
        "jobs.cli.run",
        "run the customer_metrics DAG for a range of dates, in order",
        "crm-metrics backfill --from 2024-12-01 --to 2024-12-31",
    ),
    "report": (
        "jobs.report",
        "write the portfolio report of a published snapshot as one self-contained HTML file",
        "crm-metrics report --date 2024-12-31 --output portfolio.html",
    ),
    "export": (
        "jobs.publish.to_s3",
        "export a published snapshot to S3 as Parquet with a manifest (customer ids as keyed hashes)",
        "crm-metrics export --date 2024-12-31 --to s3://bucket/crm",
    ),
    "maintain": (
        "jobs.pipeline.maintain",
        "compact the lake's Delta tables and delete files outside the retention window",
        "crm-metrics maintain --retain-hours 168",
    ),
    "spark-server": (
        "jobs.cli.spark_server",
        "run a long-lived Spark Connect server for the DAG's tasks (crm_spark = sc://HOST:PORT)",
        "crm-metrics spark-server --port 15002",
    ),
    "bench": (
        "devtools.bench",
        "benchmark Spark against a DuckDB SQL reference (inputs stage, metric stage) and pandas",
        "crm-metrics bench --lines 1000000",
    ),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    epilog = "examples:\n" + "\n".join(f"  {ex}" for _, _, ex in SUBCOMMANDS.values())
    parser = argparse.ArgumentParser(
        prog="crm-metrics",
        description="Customer relationship metrics from transaction history (Airflow + Spark).",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    subparsers = {}
    for name, (_module, help_text, example) in SUBCOMMANDS.items():
        p = sub.add_parser(
            name,
            help=f"{help_text}  (e.g. {example})".replace("%", "%%"),
            description=f"{help_text}.\n\nexample:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument(
            "--warehouse",
            metavar="URL",
            help="duckdb:///path/file.duckdb or postgresql://user@host:port/db "
            "(default: $AIRFLOW_CONN_CRM_WAREHOUSE, else duckdb:///data/warehouse.duckdb)",
        )
        p.set_defaults(_subcommand=name, command=name)
        subparsers[name] = p
    return parser, subparsers


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, subparsers = build_parser()
    # Let the chosen module add its own options before the final parse.
    name = next((a for a in argv if a in SUBCOMMANDS), None)
    module = None
    if name:
        module = importlib.import_module(SUBCOMMANDS[name][0])
        module.configure(subparsers[name], name)
    args = parser.parse_args(argv)
    assert module is not None
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a user-facing error: one clear line, no traceback
        from jobs.platform.config import mask_secrets

        if getattr(args, "debug", False):
            raise
        print(f"crm-metrics {name}: error: {mask_secrets(str(exc))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
