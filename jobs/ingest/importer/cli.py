"""`crm-metrics import`: its arguments and its one-line result."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jobs.ingest.importer.load import import_transactions
from jobs.ingest.importer.options import ImportOptions, TransactionFileError, parse_columns, parse_delimiter
from schemas.source import (
    ACQUISITION_CHANNELS,
    SALES_CHANNELS,
)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def _arg_delimiter(text: str) -> str:
    try:
        return parse_delimiter(text)
    except TransactionFileError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _arg_columns(text: str) -> tuple[str, ...]:
    try:
        return parse_columns(text)
    except TransactionFileError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the import options (`--warehouse` is added by jobs.cli)."""
    del name
    parser.add_argument(
        "--transactions",
        metavar="FILE",
        required=True,
        type=Path,
        help="transactions file: CSV (.csv, .txt, .tsv, optionally .gz) or Parquet",
    )
    parser.add_argument(
        "--customers",
        metavar="FILE",
        type=Path,
        dest="customers_path",
        help="optional customers file (CSV with header or Parquet) with the contract's column "
        "names: customer_id, signup_at, acquisition_channel, acquisition_cost, region, "
        "referred_by, email. Without it customers are derived from the transactions",
    )
    parser.add_argument(
        "--format",
        choices=("auto", "csv", "parquet"),
        default="auto",
        help="file format (default: by extension; .parquet/.pq is Parquet, anything else CSV)",
    )
    parser.add_argument(
        "--delimiter",
        type=_arg_delimiter,
        default=None,
        help="CSV field delimiter: ',' (default), ';', '|', '\\t' (tab; default for .tsv), "
        "or whitespace (runs of spaces/tabs, as in CDNOW)",
    )
    parser.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether line 1 is a header (default: yes; with --columns, yes when line 1's "
        "amount field is not a number)",
    )
    parser.add_argument(
        "--columns",
        type=_arg_columns,
        metavar="NAMES",
        help="comma-separated names for the file's columns, in order (e.g. "
        "customer_id,date,quantity,amount); names that are no role are ignored",
    )
    parser.add_argument(
        "--customer-column", default="customer_id", metavar="NAME", help="default: customer_id"
    )
    parser.add_argument("--date-column", default="date", metavar="NAME", help="default: date")
    parser.add_argument(
        "--amount-column",
        default="amount",
        metavar="NAME",
        help="transaction value in the currency, 2 decimals at most (default: amount)",
    )
    parser.add_argument(
        "--quantity-column", metavar="NAME", help="units (default: 'quantity' if present, else 1)"
    )
    parser.add_argument(
        "--order-id-column",
        metavar="NAME",
        help="order id; rows sharing one become lines of one order "
        "(default: 'order_id' if present, else {customer_id}-{row})",
    )
    parser.add_argument(
        "--cost-column",
        metavar="NAME",
        help="cost of goods of the whole row (default: 'cost' if present, else 0)",
    )
    parser.add_argument(
        "--channel-column",
        metavar="NAME",
        help=f"sales channel: {', '.join(SALES_CHANNELS)} (default: 'channel' if present)",
    )
    parser.add_argument(
        "--date-format",
        metavar="FORMAT",
        help="strptime format of the date column, e.g. %%Y%%m%%d (default: ISO 8601 date or date-time)",
    )
    parser.add_argument("--encoding", default="utf8", help="text encoding of a CSV (default: utf8)")
    parser.add_argument("--currency", default="USD", help="ISO 4217 currency of the amounts (default: USD)")
    parser.add_argument(
        "--default-channel",
        default="organic",
        choices=ACQUISITION_CHANNELS,
        help="acquisition channel of derived customers (default: organic)",
    )
    parser.add_argument(
        "--sales-channel",
        default="web",
        choices=SALES_CHANNELS,
        help="orders.channel when there is no channel column (default: web)",
    )
    parser.add_argument(
        "--allow-negative",
        action="store_true",
        help="import negative amounts as refunds of the customer's latest earlier order "
        "(default: reject them)",
    )
    parser.add_argument("--dry-run", action="store_true", help="read and validate only; write nothing")
    parser.add_argument("--debug", action="store_true", help="on error, show the full traceback")


def options_from_args(args: argparse.Namespace) -> ImportOptions:
    return ImportOptions(
        format=args.format,
        delimiter=args.delimiter,
        header=args.header,
        columns=args.columns,
        customer_column=args.customer_column,
        date_column=args.date_column,
        amount_column=args.amount_column,
        quantity_column=args.quantity_column,
        order_id_column=args.order_id_column,
        cost_column=args.cost_column,
        channel_column=args.channel_column,
        date_format=args.date_format,
        encoding=args.encoding,
        currency=args.currency,
        default_channel=args.default_channel,
        sales_channel=args.sales_channel,
        allow_negative=args.allow_negative,
        customers_path=args.customers_path,
    )


def run(args: argparse.Namespace) -> int:
    """`crm-metrics import`: import the file and print a one-line summary."""
    stats = import_transactions(
        args.warehouse, args.transactions, options_from_args(args), dry_run=args.dry_run,
        progress=sys.stderr.isatty(),  # a bar on a terminal, quiet in CI and pipes
    )
    print(stats.summary())
    return 0
