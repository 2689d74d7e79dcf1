"""`crm-metrics import`: load a plain transactions file into the source schema `crm`.

Input: one transactions file, CSV (any single-character delimiter, or runs of whitespace) or
Parquet, with one row per purchase: a customer id, a date or date-time and an amount. Optional
columns: quantity, order id, cost of goods, sales channel. Optionally a customers file with the
contract's column names (`customer_id`, `signup_at`, `acquisition_channel`, `acquisition_cost`,
`region`, `referred_by`, `email`).

Output: the tables of `schemas/source.py`, replaced as a whole in ONE transaction (the import is
a full load of that file: a failed import leaves the previous contents untouched):

- `orders`, one row per order. Without an order-id column every transaction row is its own order,
  with the deterministic id `{customer_id}-{row}` (row = position of the transaction in the file,
  1 = first transaction after any header). With an order-id column, rows sharing an id become the
  lines of one order (same customer required; `ordered_at` = the earliest row's time).
  `status` 'completed', `currency` from --currency, `channel` from the channel column or
  --sales-channel, `gross_amount` = the file's amount exactly (the sum of the order's rows),
  discount 0, shipping 0, `updated_at` = `ordered_at` (or the last refund's time, see below).
- `order_items`, one row per purchase row: product 'UNKNOWN', `quantity` from the quantity column
  (default 1), `unit_price` = amount / quantity rounded half-up to cents. Because of that rounding
  quantity x unit_price can differ from the amount by less than quantity/2 cents: ORDER TOTALS COME
  FROM `orders.gross_amount`, never from the lines. `unit_cost` = cost / quantity rounded the same
  way when a cost column is given (its value is the cost of goods for the whole row), else 0.
- `products`, one row: 'UNKNOWN' in category 'unknown'; list price 0 (not known from transactions);
  unit cost = total cost / total quantity when a cost column is given, else 0.
- `customers`, one row per customer: from the customers file when given, else derived:
  `signup_at` = first transaction time, `acquisition_channel` = --default-channel ('organic'),
  `acquisition_cost` 0, region, referred_by and email NULL, `updated_at` = `signup_at`.
  With a customers file, its customers keep their values (an empty `signup_at` falls back to the
  first transaction; a customer with neither is an error) and customers found only in the
  transactions are derived as above.
- `interactions` and `marketing_spend` are emptied (a transactions file carries neither).

How the tables are replaced: PostgreSQL truncates the six tables and loads them (COPY) in one
transaction; DuckDB drops and re-creates them (with their comments) in one transaction, because
DELETE then INSERT of the same keys in one DuckDB transaction is very slow on primary-key tables.
Either way a reader sees all-old or all-new contents. Measured here (2026-12-04, 2 cores): CDNOW
master (70k rows) in 0.8 s into DuckDB; 3 million rows took about 27 s with the earlier Arrow
reader (not measured since), most of it DuckDB building the primary keys.

Amounts are exact decimals with at most 2 places (never floats; floats in Parquet are accepted
only when they are cents plus binary noise). A NEGATIVE amount is a refund or return. It is
rejected unless --allow-negative; then it is not an order of its own: it is added to
`refund_amount` of the same customer's latest order placed at or before the refund's time, whose
status becomes 'partially_refunded' or 'refunded' (refunds may not exceed the order's amount) and
whose `updated_at` becomes the refund's time. That is the contract's meaning: a refund lowers net
revenue and a fully refunded order is not a purchase.

Times are UTC by contract: date-only values mean midnight UTC; ISO values with a zone offset are
converted to UTC.

Reading and validation run in DuckDB: CSV with a single-character delimiter through `read_csv`
(explicit all-VARCHAR columns, `store_rejects` for malformed lines with their physical line);
whitespace-delimited files read one line per value and split in SQL; Parquet through pyarrow.
Each value is typed in SQL (`try_cast`, `try_strptime` with --date-format) and every rule is a SQL
predicate; one scan finds the first failing row of each. Building the tables is numpy and pyarrow.
Everything in the happy path is vectorised (no per-row Python). Errors raise `TransactionFileError`
naming the physical line (CSV) or row (Parquet), the column and the value.

The rooms: `options` (what an import is asked and reports, the error type), `read` (DuckDB reading
and the SQL rules), `build` (the source tables from validated rows), `load` (one transaction into
the warehouse), `cli` (`crm-metrics import`).
"""


from jobs.ingest.importer.build import SourceTables, read_transactions
from jobs.ingest.importer.cli import configure, options_from_args, run
from jobs.ingest.importer.load import import_transactions, replace_source_tables
from jobs.ingest.importer.options import ImportOptions, ImportStats, TransactionFileError, parse_delimiter

__all__ = [
    "ImportOptions", "ImportStats", "SourceTables", "TransactionFileError", "configure", "import_transactions",
    "options_from_args", "parse_delimiter", "read_transactions", "replace_source_tables", "run",
]
