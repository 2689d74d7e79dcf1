"""The single-pass formulations (customer_summary's gap statistics, customer_movements, binned
Gamma-Gamma pairs) against straightforward references."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from jobs.metrics import clv, movements
from jobs.metrics import customers as C

SNAP = date(2024, 3, 31)


def test_gap_statistics_equal_the_window_over_every_day(spark: Any) -> None:
    """Gaps between purchase days (interaction-only days in between) as the unbounded window
    over all customer-days computes them."""
    rng = random.Random(7)
    rows = []
    for c in range(40):
        for d in rng.sample(range(200), rng.randint(1, 12)):
            rows.append((f"c{c}", date(2024, 1, 1) + timedelta(days=d), rng.random() < 0.6, rng.randint(0, 9000) / 100))
    days = spark.createDataFrame(rows, "customer_id string, activity_date date, is_purchase_day boolean, net double").select(
        "customer_id", "activity_date", "is_purchase_day", F.round(F.col("net") * 100).cast("bigint").alias("net_revenue_cents"),
        *[F.lit(0).cast(t).alias(c) for c, t in [
            ("orders", "int"), ("purchase_orders", "int"), ("gross_revenue_cents", "bigint"), ("discount_cents", "bigint"),
            ("refund_cents", "bigint"), ("cogs_cents", "bigint"), ("shipping_cost_cents", "bigint"),
            ("interaction_cost_cents", "bigint"), ("discounted_gross_cents", "bigint"), ("interactions", "int"),
            ("complaints", "int"), ("satisfaction_sum", "bigint"), ("satisfaction_count", "bigint"),
        ]],
    )
    before = F.last(F.when(F.col("is_purchase_day"), F.col("activity_date")), ignorenulls=True).over(
        Window.partitionBy("customer_id").orderBy("activity_date").rowsBetween(Window.unboundedPreceding, -1)
    )
    reference = (
        days.withColumn("prev", before)
        .groupBy("customer_id")
        .agg(
            F.avg(F.when(F.col("is_purchase_day"), F.datediff("activity_date", "prev")).cast("double")).alias("gap_mean_days"),
            F.stddev_pop(F.when(F.col("is_purchase_day"), F.datediff("activity_date", "prev")).cast("double")).alias("gap_std_days"),
            F.sum(F.when(F.col("is_purchase_day"), F.col("prev").isNull() | (F.trunc("prev", "month") != F.trunc("activity_date", "month"))).cast("int")).alias("active_months"),
            F.sum(F.col("is_purchase_day").cast("int")).alias("purchase_days"),
        )
    )
    got = C.customer_summary(days, SNAP).select("customer_id", "gap_mean_days", "gap_std_days", "active_months", "purchase_days")
    want = {r.customer_id: r for r in reference.collect()}
    have = {r.customer_id: r for r in got.collect()}
    assert set(have) == set(want)
    for cid, r in want.items():
        h = have[cid]
        assert (h.active_months, h.purchase_days) == (r.active_months, r.purchase_days), cid
        for field in ("gap_mean_days", "gap_std_days"):
            assert (h[field] is None) == (r[field] is None), (cid, field)
            if r[field] is not None:
                assert h[field] == pytest.approx(r[field], rel=1e-12, abs=1e-12), (cid, field)


def test_gamma_gamma_pairs_are_binned_beyond_the_cap(spark: Any) -> None:
    rng = np.random.default_rng(3)
    n = 3000
    x = rng.integers(1, 8, n)
    m = np.round(rng.gamma(4.0, 12.0, n) + 1.0, 4)
    rfm = spark.createDataFrame(
        [(int(a), float(b)) for a, b in zip(x, m, strict=True)], "frequency int, monetary_value double"
    )
    exact = clv.gamma_gamma_pairs(rfm)
    binned = clv.gamma_gamma_pairs(rfm, max_pairs=100)
    assert len(exact) > 2000 and len(binned) < len(exact)
    assert int(binned["n"].sum()) == int(exact["n"].sum()) == n
    assert list(binned.columns) == ["x", "m", "n"]
    # one pair per bin: m strictly increasing within each x
    per_x = binned.groupby("x")["m"].apply(lambda s: np.log(s.to_numpy()))
    assert all(np.all(np.diff(v) > 0) for v in per_x)
    a = clv.fit_gamma_gamma(exact["x"], exact["m"], exact["n"])
    b = clv.fit_gamma_gamma(binned["x"], binned["m"], binned["n"])
    for k in clv.GG_PARAMS:
        assert b.params[k] == pytest.approx(a.params[k], rel=1e-3)


def _movements_reference(months: Any, cohort_of: Any, snapshot: date) -> Any:
    """The straightforward formulation: flows and lapses as two frames over the same window, per
    channel, then 'all' summed from the per-channel rows."""
    snap_month = F.trunc(F.lit(snapshot.isoformat()).cast("date"), "month")
    active = months.where("active").join(cohort_of, "customer_id")
    w = Window.partitionBy("customer_id").orderBy("month")
    marked = active.select(
        "acquisition_channel", "month", "revenue_cents",
        F.when(F.col("month") == F.col("cohort_month"), "new")
        .when(F.lag("month").over(w) == F.add_months("month", -1), "retained")
        .otherwise("reactivated").alias("flow"),
        F.lead("month").over(w).alias("next_month"),
    )
    nxt = F.add_months("month", 1)
    lapses = marked.where((F.col("next_month").isNull() | (F.col("next_month") != nxt)) & (nxt <= snap_month)).select(
        "acquisition_channel", nxt.alias("month"), "revenue_cents", F.lit("lapsed").alias("flow")
    )
    flows = marked.drop("next_month").unionByName(lapses)
    per = flows.groupBy("month", "acquisition_channel").agg(
        *[F.sum((F.col("flow") == f).cast("int")).cast("bigint").alias(f"{f}_customers") for f in movements.FLOWS],
        *[F.sum(F.when(F.col("flow") == f, F.col("revenue_cents"))).alias(f"{f}_cents") for f in movements.FLOWS],
    )
    sums = [c for c in per.columns if c not in ("month", "acquisition_channel")]
    rows = per.unionByName(per.groupBy("month").agg(F.lit("all").alias("acquisition_channel"), *[F.sum(c).alias(c) for c in sums]))
    return rows.select(
        "month", "acquisition_channel",
        *[F.coalesce(f"{f}_customers", F.lit(0)).cast("bigint").alias(f"{f}_customers") for f in movements.FLOWS],
        *[(F.coalesce(f"{f}_cents", F.lit(0)).cast("decimal(18,0)") / 100).cast("decimal(18,2)").alias(f"{f}_revenue") for f in movements.FLOWS],
    )


def test_movements_single_pass_equals_the_two_frame_reference(spark: Any) -> None:
    """Random customers with gaps, reactivations and lapses in several channels."""
    rng = random.Random(11)
    month_rows, cohort_rows = [], []
    firsts = [date(2023, m, 1) for m in range(1, 13)] + [date(2024, m, 1) for m in range(1, 4)]
    for c in range(300):
        first = rng.choice(firsts)
        n = (SNAP.year - first.year) * 12 + SNAP.month - first.month + 1
        active_periods = {0} | {k for k in range(1, n) if rng.random() < 0.35}
        for k in range(n):
            month = date(first.year + (first.month - 1 + k) // 12, (first.month - 1 + k) % 12 + 1, 1)
            if k in active_periods or rng.random() < 0.2:  # inactive months with interaction costs only
                month_rows.append((f"c{c}", month, k in active_periods, rng.randint(-500, 90000), rng.randint(-900, 50000)))
        cohort_rows.append((f"c{c}", first, rng.choice(["email", "search", "social"])))
    months = spark.createDataFrame(month_rows, "customer_id string, month date, active boolean, revenue_cents bigint, margin_cents bigint")
    cohort_of = spark.createDataFrame(cohort_rows, "customer_id string, cohort_month date, acquisition_channel string")
    got = movements.customer_movements(months, cohort_of, SNAP).drop("snapshot_date", "active_customers", "is_complete_month")
    want = _movements_reference(months, cohort_of, SNAP)
    assert got.count() > 50
    assertDataFrameEqual(got, want.select(*got.columns))
