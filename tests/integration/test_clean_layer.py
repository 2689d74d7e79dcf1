"""The incremental clean layer and customer_day equal a full rebuild, day by day.

One lake is built the way the daily DAG builds it (each day from the previous day's layer); a
second lake shares its raw folder and rebuilds everything every day. Between days the source
changes the ways that make incremental maintenance hard: an order moved to another month, an
order of a customer who only appears the next day, a line changed without its order, two
different rows of one order at the same updated_at in different months, a row with a null key,
an order dated the next day, dirty rows from the generator.
"""

from __future__ import annotations

import os
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.clean_layer import (
    VERSIONED,
    clean_partition,
    prepare,
    read_layer,
    read_state,
    rejected_partition,
)
from jobs.customer_day_layer import update_customer_day
from jobs.extract import extract
from jobs.generate import generate
from jobs.lake import Lake
from jobs.quality.rules import RuleParams
from jobs.snapshot_inputs import company_start_default, read_raw
from jobs.warehouse import open_warehouse

START, FULL_DAY, LAST_DAY = date(2023, 1, 1), date(2024, 3, 27), date(2024, 3, 30)


def _params(spark: SparkSession, lake: Lake, d: date) -> RuleParams:
    start = company_start_default(read_raw(spark, lake, "customers", d, exact=True)) or date(1900, 1, 1)
    return RuleParams(d, start, 100_000.0)


def _build(spark: SparkSession, lake: Lake, d: date, *, full: bool) -> dict[str, object]:
    plan = prepare(spark, lake, d, _params(spark, lake, d), full=full)
    plan.inputs.persist()
    try:
        out = plan.write()
    finally:
        plan.release()
    _, days_info = update_customer_day(spark, lake, d)
    return {**out, "customer_day": days_info["mode"]}


def _same(a: DataFrame, b: DataFrame, what: str) -> None:
    """The same rows, duplicates counted (as exceptAll both ways), in one aggregation: each row
    counts +1 on the incremental side and -1 on the full side; a row whose count is not 0 is on
    one side more often than on the other."""
    cols = sorted(a.columns)
    assert sorted(b.columns) == cols, what
    sides = a.select(*cols, F.lit(1).alias("_side")).unionByName(b.select(*cols, F.lit(-1).alias("_side")))
    differ = sides.groupBy(*cols).agg(F.sum("_side").alias("_surplus")).where("_surplus <> 0").limit(5).collect()
    assert not differ, f"{what}: rows not matched on the other side (surplus > 0: incremental): {differ}"


def _compare(spark: SparkSession, inc: Lake, full: Lake, d: date) -> None:
    for t in VERSIONED:
        _same(read_layer(spark, clean_partition(inc, t, d), t), read_layer(spark, clean_partition(full, t, d), t), f"clean {t} {d}")
        reasons = ", `reasons` ARRAY<STRING>"
        sort = F.array_sort("reasons").alias("reasons")
        a = read_layer(spark, rejected_partition(inc, t, d), t, reasons)
        b = read_layer(spark, rejected_partition(full, t, d), t, reasons)
        _same(a.withColumn("reasons", sort), b.withColumn("reasons", sort), f"rejected {t} {d}")
    cd = "customer_day/snapshot_date=" + d.isoformat()
    _same(spark.read.parquet(str(inc.root / cd)), spark.read.parquet(str(full.root / cd)), f"customer_day {d}")


def _append_raw(spark: SparkSession, lake: Lake, table: str, day: date, rows: DataFrame, scratch: Path) -> None:
    """Add rows to a raw partition as one more Parquet file (what a second writer would leave)."""
    out = scratch / f"{table}-{day}-{os.urandom(4).hex()}"
    rows.drop("extract_date").coalesce(1).write.parquet(str(out))
    target = lake.raw_partition(table, day)
    target.mkdir(parents=True, exist_ok=True)
    for f in out.glob("*.parquet"):
        shutil.move(str(f), str(target / f"extra-{out.name}.parquet"))


def _at(d: date, hour: int) -> str:
    return datetime.combine(d, datetime.min.time()).replace(hour=hour).isoformat(sep=" ")


def _change_source(wh: object, spark: SparkSession, lake: Lake, d: date, scratch: Path) -> None:
    """The day's changes in the source (updated on day d), and rows written straight to the lake."""
    ex = wh.execute  # type: ignore[attr-defined]
    q = wh.query  # type: ignore[attr-defined]
    day = d - FULL_DAY
    if day == timedelta(days=2):  # an old order moves to another month; a line changes alone
        (oid,) = q("SELECT order_id FROM crm.orders WHERE ordered_at < '2024-02-01' AND status = 'completed' ORDER BY order_id LIMIT 1")[0]
        ex(f"UPDATE crm.orders SET ordered_at = TIMESTAMP '2024-03-05 09:00:00', updated_at = TIMESTAMP '{_at(d, 8)}' WHERE order_id = '{oid}'")
        (oid2,) = q("SELECT order_id FROM crm.order_items WHERE order_id <> ? ORDER BY order_id LIMIT 1", [oid])[0]
        ex(f"UPDATE crm.order_items SET quantity = quantity + 1, updated_at = TIMESTAMP '{_at(d, 9)}' WHERE order_id = '{oid2}' AND line_number = 1")
    if day == timedelta(days=1):  # an order of a customer who does not exist yet; an order dated tomorrow
        row = q("SELECT * FROM crm.orders ORDER BY order_id LIMIT 1")[0]
        cols = [c for c in ("order_id", "customer_id", "ordered_at", "channel", "status", "currency",
                            "gross_amount", "discount_amount", "refund_amount", "shipping_cost", "updated_at")]
        values = dict(zip([r[0] for r in q("SELECT column_name FROM information_schema.columns WHERE table_schema='crm' AND table_name='orders' ORDER BY ordinal_position")], row, strict=False))
        for oid_new, cust, ordered in (("ghost-order", "ghost", _at(d, 7)), ("tomorrow-order", values["customer_id"], _at(d + timedelta(days=1), 6))):
            v = {**values, "order_id": oid_new, "customer_id": cust, "ordered_at": ordered, "updated_at": _at(d, 10)}
            ex(f"INSERT INTO crm.orders ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", [v[c] for c in cols])
    if day == timedelta(days=2):  # the ghost customer arrives
        cols = [r[0] for r in q("SELECT column_name FROM information_schema.columns WHERE table_schema='crm' AND table_name='customers' ORDER BY ordinal_position")]
        row = dict(zip(cols, q("SELECT * FROM crm.customers ORDER BY customer_id LIMIT 1")[0], strict=True))
        row.update(customer_id="ghost", updated_at=_at(d, 5))
        ex(f"INSERT INTO crm.customers ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", [row[c] for c in cols])
    if day == timedelta(days=3):  # the twin order gets a newer single version: both months rebuilt
        row = q("SELECT * FROM crm.orders WHERE status = 'completed' ORDER BY order_id DESC LIMIT 1")[0]
        cols = [r[0] for r in q("SELECT column_name FROM information_schema.columns WHERE table_schema='crm' AND table_name='orders' ORDER BY ordinal_position")]
        v = dict(zip(cols, row, strict=True))
        v.update(order_id="twin-order", ordered_at=_at(date(2024, 1, 15), 12), updated_at=_at(d, 13))
        ex(f"INSERT INTO crm.orders ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", [v[c] for c in cols])


def _write_to_lake(spark: SparkSession, lake: Lake, d: date, scratch: Path) -> None:
    """Rows no source table can hold, added to the day's raw partition after its extraction:
    two different rows of one order at the same updated_at, in different months, and an
    interaction with a null key."""
    if d - FULL_DAY == timedelta(days=1):
        base = read_raw(spark, lake, "orders", FULL_DAY).where(F.col("ordered_at") < F.lit("2024-02-01").cast("timestamp")).orderBy("order_id").limit(1)
        twins = base.select(
            F.lit("twin-order").alias("order_id"), *[c for c in base.columns if c not in ("order_id", "ordered_at", "updated_at")],
            F.lit(_at(date(2024, 1, 15), 12)).cast("timestamp").alias("ordered_at"), F.lit(_at(d, 11)).cast("timestamp").alias("updated_at"),
        )
        other = twins.withColumn("ordered_at", F.lit(_at(date(2024, 3, 2), 12)).cast("timestamp"))
        _append_raw(spark, lake, "orders", d, twins.unionByName(other), scratch)
        inter = read_raw(spark, lake, "interactions", FULL_DAY).orderBy("interaction_id").limit(1)
        _append_raw(spark, lake, "interactions", d, inter.withColumn("interaction_id", F.lit(None).cast("string"))
                    .withColumn("updated_at", F.lit(_at(d, 12)).cast("timestamp")), scratch)


@pytest.mark.slow
def test_daily_layer_equals_full_rebuild(spark: SparkSession, tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/warehouse.duckdb"
    wh = open_warehouse(url)
    generate(wh, 200, START, LAST_DAY + timedelta(days=30), seed=5, dirty=0.02)
    # the generated history runs past the last day; rows updated later are not visible yet
    inc, full = Lake.at(tmp_path / "inc"), Lake.at(tmp_path / "full")
    full.root.mkdir()
    scratch = tmp_path / "scratch"
    modes = {}
    d = FULL_DAY
    while d <= LAST_DAY:
        _change_source(wh, spark, inc, d, scratch)
        extract(wh, inc, d, full_refresh=d == FULL_DAY)
        if d == FULL_DAY:
            os.symlink(inc.root / "raw", full.root / "raw")
        _write_to_lake(spark, inc, d, scratch)
        got = _build(spark, inc, d, full=d == FULL_DAY)
        _build(spark, full, d, full=True)
        modes[d] = (got["mode"], got["customer_day"], got["rebuilt_months"])
        _compare(spark, inc, full, d)
        d += timedelta(days=1)
    later = [m for day, m in modes.items() if day > FULL_DAY]
    assert all(mode == "incremental" and cd == "incremental" for mode, cd, _ in later), modes
    # not everything was rebuilt: the point of the layer
    all_months = {p.name for p in clean_partition(inc, "orders", LAST_DAY).iterdir()}
    assert all(len(months) < len(all_months) for _, _, months in later), (modes, all_months)
    # the twin order (rows in January and March at one updated_at) pulled January into the first day
    assert "2024-01" in modes[FULL_DAY + timedelta(days=1)][2]
    state = read_state(inc, LAST_DAY)
    assert state is not None and state["base_build"] == read_state(inc, LAST_DAY - timedelta(days=1))["build_id"]  # type: ignore[index]


def test_rewritten_raw_partition_forces_full_rebuild(spark: SparkSession, tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/warehouse.duckdb"
    wh = open_warehouse(url)
    generate(wh, 60, date(2024, 2, 1), date(2024, 3, 31), seed=3)
    lake = Lake.at(tmp_path / "lake")
    d1, d2 = date(2024, 3, 10), date(2024, 3, 11)
    extract(wh, lake, d1, full_refresh=True)
    assert _build(spark, lake, d1, full=False)["mode"] == "full"  # no earlier layer
    extract(wh, lake, d2)
    extract(wh, lake, d1)  # a backfill of the day before rewrites its partition
    got = _build(spark, lake, d2, full=False)
    assert got["mode"] == "full" and "rewritten" in str(got["why_full"]), got
    assert got["customer_day"] == "full"
