"""BG/NBD and Gamma-Gamma against the published CDNOW results and the lifetimes reference values."""

from __future__ import annotations

import csv
import math
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobs.metrics import clv

CDNOW = Path(__file__).resolve().parents[1] / "data" / "cdnow"
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # Fader, Hardie and Lee (2005)


def _sig3(value: float) -> float:
    return float(f"{value:.3g}")


def test_bgnbd_fit_on_the_lifetimes_summary_reproduces_the_published_estimates() -> None:
    """The reference summary (not our pipeline's output) -> the published MLE to 3 significant figures."""
    with (CDNOW / "cdnow_customers_summary.csv").open() as f:
        rows = [(float(r["frequency"]), float(r["recency"]), float(r["T"])) for r in csv.DictReader(f)]
    x, tx, T = (np.array(col) for col in zip(*rows, strict=True))
    fit = clv.fit_bgnbd(x, tx, T, np.ones(len(x)))
    assert fit.converged and fit.customers == 2357
    assert {k: _sig3(v) for k, v in fit.params.items()} == {k: _sig3(v) for k, v in PUBLISHED.items()}
    assert fit.params == pytest.approx(PUBLISHED, abs=1e-3)
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    assert fit.problems() == []


def test_compressed_fit_equals_the_fit_on_every_customer() -> None:
    """Grouping customers into unique (x, t_x, T) with counts changes nothing."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, 3000).astype(float)
    T = rng.integers(20, 40, 3000).astype(float)
    tx = np.where(x > 0, np.floor(rng.random(3000) * T), 0.0)
    full = clv.fit_bgnbd(x, tx, T, np.ones(3000))
    keys, counts = np.unique(np.stack([x, tx, T], axis=1), axis=0, return_counts=True)
    assert len(keys) < 2000  # the likelihood is evaluated once per unique triple
    compressed = clv.fit_bgnbd(keys[:, 0], keys[:, 1], keys[:, 2], counts)
    assert compressed.log_likelihood == pytest.approx(full.log_likelihood, rel=1e-9)
    for k in clv.BGNBD_PARAMS:
        assert compressed.params[k] == pytest.approx(full.params[k], rel=1e-4)


def test_lifetimes_reference_customer() -> None:
    """x = 2, t_x = 30.43, T = 38.86 with the CDNOW estimates: 1.226 purchases in 39 weeks, P(alive) 0.727."""
    params = {"r": 0.242593, "alpha": 4.413643, "a": 0.792886, "b": 2.425752}
    one = np.array([2.0]), np.array([30.43]), np.array([38.86])
    assert round(float(clv.expected_purchases(params, 39, *one)[0]), 3) == 1.226
    assert round(float(clv.p_alive(params, *one)[0]), 3) == 0.727


def test_one_time_buyers_are_alive_under_bgnbd() -> None:
    params = {"r": 0.24, "alpha": 4.4, "a": 0.79, "b": 2.4}
    x, tx, T = np.array([0.0, 0.0]), np.array([0.0, 0.0]), np.array([1.0, 70.0])
    assert list(clv.p_alive(params, x, tx, T)) == [1.0, 1.0]
    early, late = clv.expected_purchases(params, 52, x, tx, T)
    assert early > late > 0  # still alive, but the longer the silence the lower the rate


def test_gamma_gamma_expected_spend() -> None:
    params = {"p": 6.25, "q": 3.74, "gamma": 15.44}
    population = 6.25 * 15.44 / 2.74
    weight = 6.25 * 4 / (6.25 * 4 + 2.74)
    got = clv.expected_spend(params, np.array([0.0, 4.0]), np.array([0.0, 30.0]))
    assert got[0] == pytest.approx(population)
    assert got[1] == pytest.approx((1 - weight) * population + weight * 30.0)


def test_clv_without_discount_is_spend_times_expected_purchases() -> None:
    params = {"r": 0.24, "alpha": 4.4, "a": 0.79, "b": 2.4}
    x, tx, T = np.array([3.0]), np.array([20.0]), np.array([30.0])
    value = clv.clv(params, np.array([50.0]), x, tx, T, months=12, monthly_discount=0.0)
    assert value[0] == pytest.approx(50.0 * clv.expected_purchases(params, 12 * clv.WEEKS_PER_MONTH, x, tx, T)[0])
    discounted = clv.clv(params, np.array([50.0]), x, tx, T, months=12, monthly_discount=0.01)
    assert 0 < discounted[0] < value[0]


def test_failed_and_skipped_fits_are_reported() -> None:
    snap = date(2024, 1, 31)
    bad = clv.FitResult("bgnbd", {"r": 1e9, "alpha": 1.0, "a": 1.0, "b": 1.0}, -1.0, 500, True, "ok")
    skipped = clv.FitResult("gamma_gamma", {}, math.nan, 12, False, "skipped: 12 repeat buyers", skipped=True)
    rows = clv.model_fit_rows(bad, skipped, snap)
    status = {(r[1], r[2]): r[7] for r in rows}
    assert status[("bgnbd", "r")] == "failed" and "outside" in rows[0][8]
    assert status[("gamma_gamma", "skipped")] == "skipped"
    not_converged = clv.FitResult("bgnbd", {"r": 0.2, "alpha": 4.0, "a": 0.8, "b": 2.4}, -1.0, 500, False, "Maximum number of iterations")
    assert not_converged.problems() == ["bgnbd did not converge: Maximum number of iterations"]


def test_too_few_customers_skips_the_models(spark: Any) -> None:
    rfm = spark.createDataFrame(
        [(f"c{i}", i % 3, float(i % 3), 10.0, 5.0 * (i % 3)) for i in range(20)],
        "customer_id string, frequency int, recency double, T double, monetary_value double",
    )
    bg, gg = clv.fit_models(rfm, clv.ClvSettings(min_customers=50))
    assert bg.skipped and gg.skipped and "20 buying customers" in bg.message
    margins = spark.createDataFrame([(f"c{i}", 0.5, "customer") for i in range(20)], "customer_id string, margin_rate double, margin_rate_source string")
    scored = clv.customer_clv(rfm, margins, bg, gg, date(2024, 1, 31), clv.ClvSettings()).collect()
    assert len(scored) == 20 and all(r.p_alive is None and r.clv is None and r.clv_revenue is None for r in scored)


def test_clv_is_margin_at_the_customers_own_rate_or_the_portfolios(spark: Any) -> None:
    """Buyers: a (3 purchase days, revenue 200, net profit 50: own rate 0.25), b (1 day, revenue
    100, net profit 40: too little history), c (2 days, revenue 0 after refunds, net profit -10:
    no rate of its own); prospect p is not a buyer. Portfolio: (50 + 40 - 10) / (200 + 100 + 0) =
    80 / 300 = 0.2667. With a fitted model, clv = clv_revenue x that rate."""
    profitability = spark.createDataFrame(
        [("a", 3, 200.0, 50.0), ("b", 1, 100.0, 40.0), ("c", 2, 0.0, -10.0), ("p", 0, 0.0, -5.0)],
        "customer_id string, purchase_days int, revenue double, net_profit double",
    )
    rates = {r.customer_id: (r.margin_rate, r.margin_rate_source) for r in clv.margin_rates(profitability).collect()}
    assert rates == {"a": (pytest.approx(0.25), "customer"), "b": (pytest.approx(80 / 300), "portfolio"),
                     "c": (pytest.approx(80 / 300), "portfolio")}
    rfm = spark.createDataFrame(
        [("a", 2, 20.0, 30.0, 60.0), ("b", 0, 0.0, 10.0, 0.0), ("c", 1, 5.0, 20.0, 0.0)],
        "customer_id string, frequency int, recency double, T double, monetary_value double",
    )
    bg = clv.FitResult("bgnbd", {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.4}, -1.0, 3, True, "ok")
    gg = clv.FitResult("gamma_gamma", {"p": 6.0, "q": 4.0, "gamma": 16.0}, -1.0, 2, True, "ok")
    scored = {r.customer_id: r for r in clv.customer_clv(rfm, clv.margin_rates(profitability), bg, gg, date(2024, 1, 31),
                                                         clv.ClvSettings()).collect()}
    for cid, (rate, _source) in rates.items():
        assert scored[cid].clv_revenue > 0 and scored[cid].margin_rate == rate
        assert scored[cid].clv == pytest.approx(scored[cid].clv_revenue * rate)
