"""`crm-metrics import` and `jobs.ingest.importer`: real files in, real DuckDB (and PostgreSQL) out.

Expected values are computed independently of the importer: by parsing the CDNOW files with
Python's own `str.split` and `decimal`, or by hand for the small files written here.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import jobs.cli as cli
from jobs.ingest.importer import ImportOptions, TransactionFileError, import_transactions
from jobs.platform.warehouse import open_warehouse
from schemas.source import SOURCE_SCHEMA, SOURCE_TABLES

CDNOW = Path(__file__).parent / "data" / "cdnow"
MASTER = CDNOW / "CDNOW_master.txt"
SAMPLE = CDNOW / "CDNOW_sample.txt"
SUMMARY = CDNOW / "cdnow_customers_summary.csv"

MASTER_ARGS = [
    "--delimiter",
    "whitespace",
    "--columns",
    "customer_id,date,quantity,amount",
    "--date-format",
    "%Y%m%d",
]
SAMPLE_ARGS = [
    "--delimiter",
    "whitespace",
    "--columns",
    "master_id,customer_id,date,quantity,amount",
    "--date-format",
    "%Y%m%d",
]


@pytest.fixture
def wh_url(tmp_path: Path) -> str:
    return f"duckdb:///{(tmp_path / 'wh.duckdb').as_posix()}"


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    return open_warehouse(url).query(sql)


def scalar(url: str, sql: str) -> Any:
    return open_warehouse(url).scalar(sql)


def counts(url: str) -> dict[str, int]:
    wh = open_warehouse(url)
    return {t.name: wh.count(SOURCE_SCHEMA, t.name) for t in SOURCE_TABLES}


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def parse_whitespace_file(path: Path, skip_header: bool) -> list[list[str]]:
    lines = path.read_text().splitlines()[1 if skip_header else 0 :]
    return [line.split() for line in lines if line.strip()]


# ---------------------------------------------------------------------------------------------
# CDNOW
# ---------------------------------------------------------------------------------------------
def test_cdnow_master_through_the_cli(wh_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["import", "--warehouse", wh_url, "--transactions", str(MASTER), *MASTER_ARGS])

    assert rc == 0
    out = capsys.readouterr().out
    assert "69,659 orders" in out and "23,570 customers" in out
    rows = parse_whitespace_file(MASTER, skip_header=True)
    expected_revenue = sum((Decimal(r[3]) for r in rows), Decimal("0"))
    expected_cds = sum(int(r[2]) for r in rows)
    assert len(rows) == 69_659
    assert len({r[0] for r in rows}) == 23_570
    n = counts(wh_url)
    assert n["orders"] == 69_659
    assert n["order_items"] == 69_659
    assert n["customers"] == 23_570
    assert n["products"] == 1
    assert n["interactions"] == 0 and n["marketing_spend"] == 0
    assert scalar(wh_url, "SELECT sum(gross_amount) FROM crm.orders") == expected_revenue
    assert scalar(wh_url, "SELECT sum(quantity) FROM crm.order_items") == expected_cds
    assert query(wh_url, "SELECT min(ordered_at), max(ordered_at) FROM crm.orders") == [
        (datetime(1997, 1, 1), datetime(1998, 6, 30))
    ]
    # Zero-value purchases are still orders (80 in the file), and all orders are plain purchases.
    assert scalar(wh_url, "SELECT count(*) FROM crm.orders WHERE gross_amount = 0") == sum(
        1 for r in rows if Decimal(r[3]) == 0
    )
    assert query(wh_url, "SELECT DISTINCT status, currency, channel FROM crm.orders") == [
        ("completed", "USD", "web")
    ]
    # Customer 00002 bought twice on 1997-01-12 (1 CD for 12.00 and 5 CDs for 77.00).
    assert query(
        wh_url,
        "SELECT o.order_id, o.gross_amount, i.quantity, i.unit_price FROM crm.orders o "
        "JOIN crm.order_items i USING (order_id) WHERE o.customer_id = '00002' ORDER BY o.order_id",
    ) == [
        ("00002-2", Decimal("12.00"), 1, Decimal("12.00")),
        ("00002-3", Decimal("77.00"), 5, Decimal("15.40")),
    ]
    assert query(
        wh_url,
        "SELECT signup_at, acquisition_channel, acquisition_cost, email FROM crm.customers WHERE customer_id = '00004'",
    ) == [(datetime(1997, 1, 1), "organic", Decimal("0.00"), None)]


def test_cdnow_sample_matches_the_published_summary(wh_url: str) -> None:
    stats = import_transactions(
        wh_url,
        SAMPLE,
        delimiter="whitespace",
        columns="master_id,customer_id,date,quantity,amount",
        date_format="%Y%m%d",
    )

    rows = parse_whitespace_file(SAMPLE, skip_header=False)
    assert (stats.transactions, stats.orders, stats.customers) == (6_919, 6_919, 2_357)
    assert stats.header is False
    assert stats.gross_amount == sum((Decimal(r[4]) for r in rows), Decimal("0"))
    assert counts(wh_url)["orders"] == 6_919
    assert counts(wh_url)["customers"] == 2_357
    # The customer id is the sample id (second column): the calibration-period summary computed
    # from the imported orders equals lifetimes' published summary for every customer.
    computed = query(
        wh_url,
        """
        WITH days AS (
            SELECT DISTINCT customer_id, CAST(ordered_at AS DATE) AS d
            FROM crm.orders WHERE ordered_at < TIMESTAMP '1997-10-01'
        )
        SELECT CAST(customer_id AS INTEGER), count(*) - 1,
               round(date_diff('day', min(d), max(d)) / 7.0, 2),
               round(date_diff('day', min(d), DATE '1997-09-30') / 7.0, 2)
        FROM days GROUP BY customer_id ORDER BY 1
        """,
    )
    published = [line.split(",") for line in SUMMARY.read_text().splitlines()[1:]]
    assert [(c[0], c[1], float(c[2]), float(c[3])) for c in computed] == [
        (int(p[0]), int(p[1]), float(p[2]), float(p[3])) for p in published
    ]


# ---------------------------------------------------------------------------------------------
# Plain CSV files
# ---------------------------------------------------------------------------------------------
def test_default_header_csv_needs_no_options(tmp_path: Path, wh_url: str) -> None:
    path = write(
        tmp_path / "tx.csv",
        "customer_id,date,amount\nc1,2024-01-02,10.50\nc2,2024-01-03 10:15:00,5\nc1,2024-02-01T08:00:00,0.99\n",
    )

    stats = import_transactions(wh_url, path)

    assert stats.header is True
    assert stats.gross_amount == Decimal("16.49")
    assert query(
        wh_url,
        "SELECT order_id, customer_id, ordered_at, channel, status, currency, gross_amount, discount_amount, "
        "refund_amount, shipping_cost, updated_at FROM crm.orders ORDER BY ordered_at",
    ) == [
        (
            "c1-1",
            "c1",
            datetime(2024, 1, 2),
            "web",
            "completed",
            "USD",
            Decimal("10.50"),
            0,
            0,
            0,
            datetime(2024, 1, 2),
        ),
        (
            "c2-2",
            "c2",
            datetime(2024, 1, 3, 10, 15),
            "web",
            "completed",
            "USD",
            Decimal("5.00"),
            0,
            0,
            0,
            datetime(2024, 1, 3, 10, 15),
        ),
        (
            "c1-3",
            "c1",
            datetime(2024, 2, 1, 8),
            "web",
            "completed",
            "USD",
            Decimal("0.99"),
            0,
            0,
            0,
            datetime(2024, 2, 1, 8),
        ),
    ]
    assert query(wh_url, "SELECT * FROM crm.order_items ORDER BY order_id") == [
        ("c1-1", 1, "UNKNOWN", 1, Decimal("10.50"), Decimal("0.00"), datetime(2024, 1, 2)),
        ("c1-3", 1, "UNKNOWN", 1, Decimal("0.99"), Decimal("0.00"), datetime(2024, 2, 1, 8)),
        ("c2-2", 1, "UNKNOWN", 1, Decimal("5.00"), Decimal("0.00"), datetime(2024, 1, 3, 10, 15)),
    ]
    assert query(wh_url, "SELECT * FROM crm.customers ORDER BY customer_id") == [
        ("c1", datetime(2024, 1, 2), "organic", Decimal("0.00"), None, None, None, datetime(2024, 1, 2)),
        (
            "c2",
            datetime(2024, 1, 3, 10, 15),
            "organic",
            Decimal("0.00"),
            None,
            None,
            None,
            datetime(2024, 1, 3, 10, 15),
        ),
    ]
    assert query(wh_url, "SELECT product_id, category, list_price, unit_cost FROM crm.products") == [
        ("UNKNOWN", "unknown", Decimal("0.00"), Decimal("0.00"))
    ]


def test_whitespace_runs_tabs_crlf_and_blank_lines(tmp_path: Path, wh_url: str) -> None:
    path = write(
        tmp_path / "tx.txt",
        "  a1 \t 20240105   2    19.98\r\n\r\n   \r\na2\t20240106\t1\t5.00  \r\n\t a1  20240107 1 1\r\n",
    )

    stats = import_transactions(
        wh_url,
        path,
        delimiter="whitespace",
        columns=("customer_id", "date", "quantity", "amount"),
        date_format="%Y%m%d",
    )

    assert (stats.orders, stats.customers, stats.gross_amount) == (3, 2, Decimal("25.98"))
    assert query(
        wh_url, "SELECT customer_id, ordered_at, gross_amount FROM crm.orders ORDER BY ordered_at"
    ) == [
        ("a1", datetime(2024, 1, 5), Decimal("19.98")),
        ("a2", datetime(2024, 1, 6), Decimal("5.00")),
        ("a1", datetime(2024, 1, 7), Decimal("1.00")),
    ]
    assert query(wh_url, "SELECT quantity, unit_price FROM crm.order_items ORDER BY order_id") == [
        (2, Decimal("9.99")),
        (1, Decimal("1.00")),
        (1, Decimal("5.00")),
    ]


def test_whitespace_file_with_a_short_line_names_its_physical_line(tmp_path: Path, wh_url: str) -> None:
    path = write(tmp_path / "tx.txt", "a 20240105 19.98\n\n   \nb 20240106\n")

    with pytest.raises(TransactionFileError) as err:
        import_transactions(
            wh_url, path, delimiter="whitespace", columns="customer_id,date,amount", date_format="%Y%m%d"
        )

    message = str(err.value)
    assert "line 4" in message and "expected 3 columns" in message and "found 2" in message
    assert "b 20240106" in message


def test_custom_date_format_and_other_column_names(tmp_path: Path, wh_url: str) -> None:
    path = write(
        tmp_path / "sales.csv",
        "Client;Day;Total;Units;Ref\nX;31/01/2024;12,00;3;A-1\nY;01/02/2024;7,5;1;A-2\n".replace(",", "."),
    )

    stats = import_transactions(
        wh_url,
        path,
        delimiter=";",
        customer_column="Client",
        date_column="Day",
        amount_column="Total",
        quantity_column="Units",
        order_id_column="Ref",
        date_format="%d/%m/%Y",
        currency="EUR",
    )

    assert stats.columns == {
        "customer_id": "Client",
        "date": "Day",
        "amount": "Total",
        "quantity": "Units",
        "order_id": "Ref",
    }
    assert query(
        wh_url, "SELECT order_id, customer_id, ordered_at, currency, gross_amount FROM crm.orders ORDER BY 1"
    ) == [
        ("A-1", "X", datetime(2024, 1, 31), "EUR", Decimal("12.00")),
        ("A-2", "Y", datetime(2024, 2, 1), "EUR", Decimal("7.50")),
    ]
    assert query(wh_url, "SELECT order_id, quantity, unit_price FROM crm.order_items ORDER BY 1") == [
        ("A-1", 3, Decimal("4.00")),
        ("A-2", 1, Decimal("7.50")),
    ]


def test_custom_date_format_rejects_impossible_dates(tmp_path: Path, wh_url: str) -> None:
    path = write(tmp_path / "tx.csv", "customer_id,date,amount\nc1,31/01/2024,1.00\nc2,30/02/2024,2.00\n")

    with pytest.raises(TransactionFileError) as err:
        import_transactions(wh_url, path, date_format="%d/%m/%Y")

    message = str(err.value)
    assert "line 3" in message and "'date'" in message and "'30/02/2024'" in message and "%d/%m/%Y" in message


def test_quantity_price_rounding_keeps_the_order_amount_exact(tmp_path: Path, wh_url: str) -> None:
    path = write(
        tmp_path / "tx.csv", "customer_id,date,quantity,amount\nc1,2024-01-02,3,10.00\nc1,2024-01-03,2,0.05\n"
    )

    import_transactions(wh_url, path)

    assert query(
        wh_url,
        "SELECT o.gross_amount, i.quantity, i.unit_price FROM crm.orders o JOIN crm.order_items i USING (order_id) "
        "ORDER BY o.ordered_at",
    ) == [(Decimal("10.00"), 3, Decimal("3.33")), (Decimal("0.05"), 2, Decimal("0.03"))]


def test_rows_sharing_an_order_id_become_lines_of_one_order(tmp_path: Path, wh_url: str) -> None:
    path = write(
        tmp_path / "tx.csv",
        "order_id,customer_id,date,amount,cost,channel\n"
        "o1,c1,2024-01-02 10:00:00,10.00,4.00,store\n"
        "o2,c2,2024-01-02 11:00:00,3.00,1.00,App\n"
        "o1,c1,2024-01-02 10:00:00,2.50,1.00,store\n",
    )

    stats = import_transactions(wh_url, path)

    assert (stats.orders, stats.order_items, stats.customers) == (2, 3, 2)
    assert query(
        wh_url, "SELECT order_id, customer_id, channel, gross_amount FROM crm.orders ORDER BY 1"
    ) == [
        ("o1", "c1", "store", Decimal("12.50")),
        ("o2", "c2", "app", Decimal("3.00")),
    ]
    assert query(
        wh_url, "SELECT order_id, line_number, unit_price, unit_cost FROM crm.order_items ORDER BY 1, 2"
    ) == [
        ("o1", 1, Decimal("10.00"), Decimal("4.00")),
        ("o1", 2, Decimal("2.50"), Decimal("1.00")),
        ("o2", 1, Decimal("3.00"), Decimal("1.00")),
    ]
    assert scalar(wh_url, "SELECT unit_cost FROM crm.products") == Decimal("2.00")


def test_one_order_id_for_two_customers_is_an_error(tmp_path: Path, wh_url: str) -> None:
    path = write(
        tmp_path / "tx.csv", "order_id,customer_id,date,amount\no1,c1,2024-01-02,1\no1,c2,2024-01-02,2\n"
    )

    with pytest.raises(TransactionFileError, match=r"line 3, column 'customer_id'.*'o1'.*line 2"):
        import_transactions(wh_url, path)


def test_negative_amounts_are_rejected_unless_allowed_then_become_refunds(
    tmp_path: Path, wh_url: str
) -> None:
    path = write(
        tmp_path / "tx.csv",
        "customer_id,date,amount\n"
        "c1,2024-01-02,20.00\n"
        "c2,2024-01-02,8.00\n"
        "c1,2024-01-05,-5.00\n"
        "c2,2024-01-03,-8.00\n"
        "c1,2024-01-09,30.00\n",
    )

    with pytest.raises(TransactionFileError) as err:
        import_transactions(wh_url, path)
    assert "line 4, column 'amount'" in str(err.value) and "--allow-negative" in str(err.value)

    stats = import_transactions(wh_url, path, allow_negative=True)

    assert (stats.orders, stats.refunds, stats.gross_amount, stats.refund_amount) == (
        3,
        2,
        Decimal("58.00"),
        Decimal("13.00"),
    )
    assert query(
        wh_url,
        "SELECT customer_id, ordered_at, status, gross_amount, refund_amount, updated_at FROM crm.orders ORDER BY 1, 2",
    ) == [
        (
            "c1",
            datetime(2024, 1, 2),
            "partially_refunded",
            Decimal("20.00"),
            Decimal("5.00"),
            datetime(2024, 1, 5),
        ),
        ("c1", datetime(2024, 1, 9), "completed", Decimal("30.00"), Decimal("0.00"), datetime(2024, 1, 9)),
        ("c2", datetime(2024, 1, 2), "refunded", Decimal("8.00"), Decimal("8.00"), datetime(2024, 1, 3)),
    ]


def test_a_refund_larger_than_its_order_or_before_any_purchase_is_an_error(
    tmp_path: Path, wh_url: str
) -> None:
    too_much = write(tmp_path / "a.csv", "customer_id,date,amount\nc1,2024-01-02,5.00\nc1,2024-01-03,-6.00\n")
    too_early = write(
        tmp_path / "b.csv", "customer_id,date,amount\nc1,2024-01-02,5.00\nc1,2024-01-01,-1.00\n"
    )

    with pytest.raises(
        TransactionFileError, match=r"line 3, column 'amount'.*6\.00, more than its amount 5\.00"
    ):
        import_transactions(wh_url, too_much, allow_negative=True)
    with pytest.raises(TransactionFileError, match=r"line 3, column 'amount'.*no purchase at or before"):
        import_transactions(wh_url, too_early, allow_negative=True)


def test_headerless_file_with_columns_and_header_detection(tmp_path: Path, wh_url: str) -> None:
    headerless = write(tmp_path / "a.csv", "c1,2024-01-02,4.00\nc2,2024-01-03,1.00\n")
    with_header = write(tmp_path / "b.csv", "id,day,value\nc1,2024-01-02,4.00\nc2,2024-01-03,1.00\n")

    first = import_transactions(wh_url, headerless, columns="customer_id,date,amount")
    second = import_transactions(wh_url, with_header, columns="customer_id,date,amount")

    assert (first.header, first.orders) == (False, 2)
    assert (second.header, second.orders) == (True, 2)
    with pytest.raises(TransactionFileError, match="needs --columns"):
        import_transactions(wh_url, headerless, header=False)


def test_parquet_with_native_types(tmp_path: Path, wh_url: str) -> None:
    path = tmp_path / "tx.parquet"
    pq.write_table(
        pa.table(
            {
                "customer_id": pa.array([101, 102, 101]),
                "date": pa.array(
                    [datetime(2024, 3, 1, 12), datetime(2024, 3, 2), datetime(2024, 3, 5)], pa.timestamp("ms")
                ),
                "amount": pa.array([19.99, 0.1 + 0.2, 3.0]),
                "quantity": pa.array([1, 2, 1], pa.int16()),
            }
        ),
        path,
    )

    stats = import_transactions(wh_url, path)

    assert (stats.orders, stats.customers, stats.gross_amount) == (3, 2, Decimal("23.29"))
    assert query(
        wh_url, "SELECT customer_id, ordered_at, gross_amount FROM crm.orders ORDER BY ordered_at"
    ) == [
        ("101", datetime(2024, 3, 1, 12), Decimal("19.99")),
        ("102", datetime(2024, 3, 2), Decimal("0.30")),
        ("101", datetime(2024, 3, 5), Decimal("3.00")),
    ]


def test_customers_file_overrides_derived_customers(tmp_path: Path, wh_url: str) -> None:
    tx = write(tmp_path / "tx.csv", "customer_id,date,amount\nc1,2024-01-02,1.00\nc2,2024-01-03,2.00\n")
    customers = write(
        tmp_path / "customers.csv",
        "customer_id,signup_at,acquisition_channel,acquisition_cost,region,email\n"
        "c1,2023-12-01,paid_search,12.50,north,c1@example.com\n"
        "c3,2023-11-01,Referral,,south,\n",
    )

    stats = import_transactions(wh_url, tx, customers_path=customers)

    assert (stats.customers, stats.customers_from_file) == (3, 2)
    assert query(
        wh_url,
        "SELECT customer_id, signup_at, acquisition_channel, acquisition_cost, region, email FROM crm.customers ORDER BY 1",
    ) == [
        ("c1", datetime(2023, 12, 1), "paid_search", Decimal("12.50"), "north", "c1@example.com"),
        ("c2", datetime(2024, 1, 3), "organic", Decimal("0.00"), None, None),
        ("c3", datetime(2023, 11, 1), "referral", Decimal("0.00"), "south", None),
    ]


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "tx.csv", "customer_id,date,amount\nc1,2024-01-02,1.00\n")
    db = tmp_path / "never.duckdb"

    stats = import_transactions(f"duckdb:///{db.as_posix()}", path, dry_run=True)

    assert stats.orders == 1 and stats.warehouse is None
    assert not db.exists()


# ---------------------------------------------------------------------------------------------
# Broken files: one clear error naming the line and the column
# ---------------------------------------------------------------------------------------------
BROKEN: dict[str, tuple[str, list[str]]] = {
    "wrong delimiter": (
        "customer_id;date;amount\nc1;2024-01-02;1.00\n",
        ["line 1", "1 column", "','", "'customer_id;date;amount'", "--delimiter ';'"],
    ),
    "unparseable date": (
        "customer_id,date,amount\nc1,2024-01-02,1.00\nc2,2024-13-45,2.00\n",
        ["line 3", "column 'date'", "'2024-13-45'", "expected"],
    ),
    "missing column": (
        "customer_id,date,total\nc1,2024-01-02,1.00\n",
        ["missing required column", "'amount'", "found columns: customer_id, date, total", "--amount-column"],
    ),
    "non-numeric amount": (
        "customer_id,date,amount\nc1,2024-01-02,1.00\nc1,2024-01-03,2.00\nc2,2024-01-04,abc\n",
        ["line 4", "column 'amount'", "'abc'", "not a number"],
    ),
    "three decimals": (
        "customer_id,date,amount\nc1,2024-01-02,1.005\n",
        ["line 2", "column 'amount'", "'1.005'", "more than 2 decimal places"],
    ),
    "short line": (
        "customer_id,date,amount\nc1,2024-01-02,1.00\n\nc2,2024-01-03\n",
        ["line 4", "expected 3 columns", "found 2", "'c2,2024-01-03'"],
    ),
    "empty customer": (
        "customer_id,date,amount\n ,2024-01-02,1.00\n",
        ["line 2", "column 'customer_id'", "empty customer id"],
    ),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_broken_file_error_names_line_and_column(case: str, tmp_path: Path, wh_url: str) -> None:
    content, pieces = BROKEN[case]
    path = write(tmp_path / "bad.csv", content)

    with pytest.raises(TransactionFileError) as err:
        import_transactions(wh_url, path)

    message = str(err.value)
    assert "\n" not in message
    for piece in pieces:
        assert piece in message, f"{piece!r} not in {message!r}"


# Read by DuckDB (read_csv with store_rejects, or one value per line for whitespace files): every
# error still names the physical line, counting the header and blank lines, the column and the value.
BROKEN_WITH_OPTIONS: dict[str, tuple[bytes, dict[str, Any], list[str]]] = {
    "too many fields after blank lines, CRLF": (
        b"customer_id,date,amount\r\nc1,2024-01-02,1.00\r\n\r\n\r\nc2,2024-01-03,1,2\r\n",
        {},
        ["bad.csv line 5:", "expected 3 columns", "found 4", "'c2,2024-01-03,1,2'"],
    ),
    "bad value after blank lines": (
        b"customer_id,date,amount\n\nc1,2024-01-02,1.00\n\nc2,2024-01-03,1.234\n",
        {},
        ["bad.csv line 5, column 'amount': '1.234' has more than 2 decimal places"],
    ),
    "negative amount after blank lines": (
        b"customer_id,date,amount\n\nc1,2024-01-02,1.00\n\n\nc1,2024-01-03,-1.00\n",
        {},
        ["bad.csv line 6, column 'amount': negative amount -1.00"],
    ),
    "quantity not a whole number": (
        b"customer_id,date,quantity,amount\nc1,2024-01-02,1,1.00\nc1,2024-01-02,1.5,1.00\n",
        {},
        ["bad.csv line 3, column 'quantity': '1.5' is not a whole number"],
    ),
    "unknown sales channel": (
        b"customer_id,date,amount,channel\nc1,2024-01-02,1.00,web\nc1,2024-01-02,1.00,fax\n",
        {},
        ["bad.csv line 3, column 'channel': 'fax' is not a sales channel"],
    ),
    "invalid utf-8": (
        b"customer_id,date,amount\nc1,2024-01-02,1.00\nc\xff,2024-01-02,1.00\n",
        {},
        ["bad.csv line 3", "not valid utf8", "--encoding"],
    ),
    "unterminated quote": (
        b'customer_id,date,amount\nc1,2024-01-02,1.00\n"c2,2024-01-02,1.00\n',
        {},
        ["bad.csv line 3", "unterminated quote", "'\"c2,2024-01-02,1.00'"],
    ),
    "unknown --date-format directive": (
        b"customer_id,date,amount\nc1,31/01/2024,1.00\n",
        {"date_format": "%Q"},
        ["--date-format '%Q'", "%Q"],
    ),
    "whitespace file: bad date after header and blank lines": (
        b"id date qty amount\n\n  a 20240105 1 19.98\n\t\nb 20241305 1 1.00\n",
        {"delimiter": "whitespace", "columns": "customer_id,date,quantity,amount", "date_format": "%Y%m%d"},
        ["bad.csv line 5, column 'date': cannot read '20241305' as a date; expected format %Y%m%d"],
    ),
    "whitespace file: zero quantity after blank lines": (
        b"a 20240105 1 19.98\n\n   \nb 20240106 0 1.00\n",
        {"delimiter": "whitespace", "columns": "customer_id,date,quantity,amount", "date_format": "%Y%m%d"},
        ["bad.csv line 4, column 'quantity': 0 is not a quantity"],
    ),
}


@pytest.mark.parametrize("case", BROKEN_WITH_OPTIONS, ids=list(BROKEN_WITH_OPTIONS))
def test_errors_name_the_physical_line_column_and_value(case: str, tmp_path: Path) -> None:
    content, options, pieces = BROKEN_WITH_OPTIONS[case]
    path = tmp_path / "bad.csv"
    path.write_bytes(content)

    with pytest.raises(TransactionFileError) as err:
        import_transactions(None, path, dry_run=True, **options)

    message = str(err.value)
    assert "\n" not in message
    for piece in pieces:
        assert piece in message, f"{piece!r} not in {message!r}"


def test_quotes_surrounding_whitespace_zones_and_gzip(tmp_path: Path, wh_url: str) -> None:
    """A quoted field keeps its delimiter; values are trimmed of spaces, tabs and no-break
    spaces; ISO values with a zone offset become UTC; a .gz file is read as it is."""
    text = (
        "customer_id,date,amount\n"
        '"Smith, J",2024-01-02T10:00:00+02:00,"1.50"\n'
        "\t c2 \u00a0, 2024-01-03 ,  2.25\t\n"
        "c3,2024-01-04T23:30:00-01:00,3\n"
    )
    path = tmp_path / "tx.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))

    stats = import_transactions(wh_url, path)

    assert (stats.orders, stats.gross_amount) == (3, Decimal("6.75"))
    assert query(wh_url, "SELECT customer_id, ordered_at, gross_amount FROM crm.orders ORDER BY ordered_at") == [
        ("Smith, J", datetime(2024, 1, 2, 8), Decimal("1.50")),
        ("c2", datetime(2024, 1, 3), Decimal("2.25")),
        ("c3", datetime(2024, 1, 5, 0, 30), Decimal("3.00")),
    ]


def test_an_encoding_duckdb_lacks_is_read_through_a_utf8_copy(tmp_path: Path, wh_url: str) -> None:
    path = tmp_path / "tx.csv"
    path.write_bytes("customer_id,date,amount\ncaf\u00e9 \u20ac,2024-01-02,1.00\n".encode("cp1252"))
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"customer_id,date,amount\nc1,2024-01-02,1.00\n\nc\x81,2024-01-02,1.00\n")

    stats = import_transactions(wh_url, path, encoding="cp1252")

    assert stats.orders == 1
    assert query(wh_url, "SELECT customer_id FROM crm.customers") == [("caf\u00e9 \u20ac",)]
    with pytest.raises(TransactionFileError, match=r"broken.csv line 4: not valid cp1252 text"):
        import_transactions(None, broken, dry_run=True, encoding="cp1252")
    with pytest.raises(TransactionFileError, match=r"--encoding 'nope': unknown encoding"):
        import_transactions(None, path, dry_run=True, encoding="nope")


def test_customers_file_errors_name_their_line(tmp_path: Path) -> None:
    tx = write(tmp_path / "tx.csv", "customer_id,date,amount\nc1,2024-01-02,1.00\n")
    repeated = write(tmp_path / "customers.csv", "customer_id,signup_at\nc1,2023-01-01\n\nc2,\nc2,2023-01-02\n")
    bad_cost = write(tmp_path / "costs.csv", "customer_id,acquisition_cost\nc1,\nc2,-1.00\n")

    with pytest.raises(TransactionFileError, match=r"customers.csv line 4, column 'customer_id': customer 'c2' appears more than once"):
        import_transactions(None, tx, dry_run=True, customers_path=repeated)
    with pytest.raises(TransactionFileError, match=r"costs.csv line 3, column 'acquisition_cost': negative acquisition cost"):
        import_transactions(None, tx, dry_run=True, customers_path=bad_cost)


def test_cli_prints_one_line_and_fails(
    tmp_path: Path, wh_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "bad.csv", "customer_id,date,amount\nc1,2024-01-02,1.00\nc2,2024-13-45,2.00\n")

    rc = cli.main(["import", "--warehouse", wh_url, "--transactions", str(path)])

    err = capsys.readouterr().err
    assert rc != 0
    assert err.count("\n") == 1
    assert err.startswith(
        "crm-metrics import: error: bad.csv line 3, column 'date': cannot read '2024-13-45'"
    )


def test_missing_file_is_a_clear_error(tmp_path: Path, wh_url: str) -> None:
    with pytest.raises(TransactionFileError, match="file not found"):
        import_transactions(wh_url, tmp_path / "nope.csv")


# ---------------------------------------------------------------------------------------------
# Atomicity: a failed import leaves the previous contents
# ---------------------------------------------------------------------------------------------
def _snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    return {t.name: sorted(query(url, f"SELECT * FROM crm.{t.name}"), key=repr) for t in SOURCE_TABLES}


def test_a_bad_file_leaves_the_previous_import(tmp_path: Path, wh_url: str) -> None:
    good = write(tmp_path / "good.csv", "customer_id,date,amount\nc1,2024-01-02,1.00\nc2,2024-01-03,2.00\n")
    bad = write(tmp_path / "bad.csv", "customer_id,date,amount\nc9,2024-01-02,1.00\nc9,2024-01-03,oops\n")
    import_transactions(wh_url, good)
    before = _snapshot(wh_url)

    with pytest.raises(TransactionFileError):
        import_transactions(wh_url, bad)

    assert _snapshot(wh_url) == before
    assert counts(wh_url)["orders"] == 2


@pytest.mark.parametrize("failing_table", ["customers", "order_items"])
def test_a_failure_while_loading_rolls_everything_back(
    tmp_path: Path, wh_url: str, failing_table: str
) -> None:
    first = write(tmp_path / "first.csv", "customer_id,date,amount\nc1,2024-01-02,1.00\nc2,2024-01-03,2.00\n")
    second = write(tmp_path / "second.csv", "customer_id,date,amount\nz1,2025-01-02,9.00\n")
    import_transactions(wh_url, first)
    before = _snapshot(wh_url)
    wh = open_warehouse(wh_url)
    real_load: Callable[..., int] = wh.load_arrow

    def load_then_fail(conn: Any, schema: str, table: Any, data: Any) -> int:
        loaded = real_load(conn, schema, table, data)
        if table.name == failing_table:
            raise RuntimeError("disk full")
        return loaded

    wh.load_arrow = load_then_fail  # type: ignore[method-assign]

    with pytest.raises(RuntimeError, match="disk full"):
        import_transactions(wh, second)

    assert _snapshot(wh_url) == before
    import_transactions(wh_url, second)  # and the warehouse is still usable
    assert query(wh_url, "SELECT customer_id FROM crm.customers") == [("z1",)]


def test_reimport_replaces_previous_contents(tmp_path: Path, wh_url: str) -> None:
    import_transactions(wh_url, write(tmp_path / "a.csv", "customer_id,date,amount\nc1,2024-01-02,1.00\n"))
    import_transactions(wh_url, write(tmp_path / "b.csv", "customer_id,date,amount\nc2,2024-01-05,3.00\n"))

    assert query(wh_url, "SELECT order_id, gross_amount FROM crm.orders") == [("c2-1", Decimal("3.00"))]
    assert query(wh_url, "SELECT customer_id FROM crm.customers") == [("c2",)]


def test_options_object_and_keywords_combine(tmp_path: Path, wh_url: str) -> None:
    path = write(tmp_path / "tx.tsv", "who\twhen\thow_much\nc1\t2024-01-02\t1.00\n")

    stats = import_transactions(
        wh_url, path, ImportOptions(customer_column="who", date_column="when"), amount_column="how_much"
    )

    assert stats.orders == 1 and stats.columns["amount"] == "how_much"


# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------
@pytest.mark.postgres
def test_cdnow_sample_into_postgres(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    try:
        url = request.getfixturevalue("postgres_warehouse_url")
    except pytest.FixtureLookupError:
        pytest.skip("no postgres_warehouse_url fixture (tests/conftest.py)")
    rows = parse_whitespace_file(SAMPLE, skip_header=False)

    stats = import_transactions(
        url,
        SAMPLE,
        delimiter="whitespace",
        columns="master_id,customer_id,date,quantity,amount",
        date_format="%Y%m%d",
    )

    assert (stats.orders, stats.customers) == (6_919, 2_357)
    assert counts(url)["orders"] == 6_919
    assert counts(url)["customers"] == 2_357
    assert scalar(url, "SELECT sum(gross_amount) FROM crm.orders") == sum(
        (Decimal(r[4]) for r in rows), Decimal("0")
    )
    # A failing import on PostgreSQL leaves the previous contents too.
    bad = write(tmp_path / "bad.csv", "customer_id,date,amount\nc1,2024-01-02,x\n")
    with pytest.raises(TransactionFileError):
        import_transactions(url, bad)
    wh = open_warehouse(url)
    real_load: Callable[..., int] = wh.load_arrow

    def load_then_fail(conn: Any, schema: str, table: Any, data: Any) -> int:
        loaded = real_load(conn, schema, table, data)
        if table.name == "orders":
            raise RuntimeError("connection lost")
        return loaded

    wh.load_arrow = load_then_fail  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        import_transactions(wh, write(tmp_path / "small.csv", "customer_id,date,amount\nz,2024-01-02,1.00\n"))
    assert counts(url)["orders"] == 6_919


def test_progress_bar_only_when_asked(tmp_path: Path, wh_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI asks for a bar only on a terminal: under pytest (and CI) stderr is not one."""
    path = tmp_path / "t.csv"
    path.write_text("customer_id,date,amount\nA,2024-01-02,10.00\n")
    import_transactions(wh_url, path, progress=True)
    err = capsys.readouterr().err
    assert f"{1 + len(SOURCE_TABLES)}/{1 + len(SOURCE_TABLES)}" in err and "loading" in err
    assert cli.main(["import", "--warehouse", wh_url, "--transactions", str(path)]) == 0
    assert capsys.readouterr().err == ""
