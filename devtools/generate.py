"""`crm-metrics generate`: a realistic, deterministic sample source warehouse.

Customers arrive over [start, end] through acquisition channels that differ in cost, retention
and value. Each buying customer follows a purchase-and-dropout process with heterogeneity across
customers, as BG/NBD assumes: a purchase rate lambda ~ Gamma(r, alpha) per week and, after every
purchase, a dropout probability p ~ Beta(a, b); spend per order follows Gamma-Gamma. Seasonality
(a November-December peak) thins purchases; low satisfaction raises dropout. Orders carry
discounts, refunds (2-5%) that arrive days later as updates, cancellations and shipping; support
tickets, complaints, marketing contacts and surveys carry cost to serve. Some customers refer
others. A latent "habit" makes all four Kotler types appear: frequent buyers of small discounted
baskets with many support contacts become barnacles.

Determinism: customers are made in chunks, each from its own random stream
`default_rng([seed, chunk])`, so the same arguments give the same rows to the byte, whatever the
chunk size. Memory: one chunk at a time (streams into the warehouse).

`--dirty RATE` injects known defects into about that share of orders and records each one in
`crm.injected_defects`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from jobs.platform.warehouse import Warehouse, open_warehouse, quote_ident
from schemas.source import (
    ACQUISITION_CHANNELS,
    CATEGORIES,
    SALES_CHANNELS,
    SOURCE_SCHEMA,
    SOURCE_TABLES,
)
from schemas.types import Column, Table

CHUNK = 20_000
N_PRODUCTS = 400
DAY = 86_400
WEEK = 7 * DAY

INJECTED_DEFECTS = Table(
    name="injected_defects",
    comment="Defects the generator injected on purpose (--dirty), so tests can check each is caught.",
    grain="one row per injected defect",
    key=("defect_id",),
    columns=(
        Column("defect_id", "bigint", "Sequence number.", nullable=False),
        Column("defect_kind", "string", "Kind of defect.", nullable=False),
        Column("table_name", "string", "Table holding the defective row.", nullable=False),
        Column("row_key", "string", "Key of the affected row (order_id).", nullable=False),
        Column("detail", "string", "What was changed."),
    ),
)

DEFECT_KINDS = (
    "duplicate_order_id",
    "null_customer_id",
    "negative_amount",
    "absurd_amount",
    "orphan_customer_id",
    "future_timestamp",
    "before_company_start",
    "unknown_currency",
    "late_update",
)


@dataclass(frozen=True)
class ChannelProfile:
    share: float
    acquisition_cost: float  # mean direct cost per customer
    dropout_a: float  # Beta(a, b) of the dropout probability after each purchase
    dropout_b: float
    spend_scale: float  # multiplies basket size
    buyer_share: float  # share of sign-ups that ever buy


# Affiliates are cheap and leave; direct mail is dear and stays (the source material's publisher).
CHANNELS: dict[str, ChannelProfile] = {
    "direct_mail": ChannelProfile(0.15, 42.0, 1.2, 9.0, 1.25, 0.92),
    "affiliate": ChannelProfile(0.22, 9.0, 3.0, 3.5, 0.75, 0.85),
    "paid_search": ChannelProfile(0.20, 26.0, 1.6, 4.5, 1.0, 0.88),
    "social": ChannelProfile(0.15, 16.0, 2.0, 4.5, 0.85, 0.80),
    "referral": ChannelProfile(0.10, 12.0, 1.2, 7.0, 1.1, 0.93),
    "organic": ChannelProfile(0.18, 0.0, 1.5, 5.5, 1.0, 0.86),
}
assert set(CHANNELS) == set(ACQUISITION_CHANNELS)
REGIONS = ("north", "south", "east", "west", "central")


@dataclass
class GenerateStats:
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    defects: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v:,}" for k, v in self.rows.items())
        extra = f"; {self.defects:,} injected defects recorded in crm.injected_defects" if self.defects else ""
        return f"generated {parts}{extra} in {self.seconds:.1f}s"


# -- Arrow helpers ---------------------------------------------------------------------------------
def money(cents: np.ndarray, precision: int = 14) -> pa.Array:
    """Exact decimals from integer cents (no float on the way)."""
    cents = np.ascontiguousarray(cents, dtype=np.int64)
    words = np.empty((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = np.where(cents < 0, -1, 0)
    return pa.Array.from_buffers(pa.decimal128(precision, 2), len(cents), [None, pa.py_buffer(words.tobytes())])


def stamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(seconds, dtype=np.int64) * 1_000_000, pa.timestamp("us"))


def ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    return pa.array(np.char.add(prefix, _zfill(numbers, width)), pa.string())


def _zfill(numbers: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal strings; numpy's zfill fails on an empty array (a chunk with no orders)."""
    return np.char.zfill(numbers.astype(str), width) if len(numbers) else np.array([], dtype="<U1")


def _epoch(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def _season(t: np.ndarray) -> np.ndarray:
    """Relative purchase intensity by day of year: a Nov-Dec peak, a quiet late summer."""
    doy = (t // DAY) % 365.25
    peak = np.exp(-(((doy - 340) / 25.0) ** 2))
    return 0.65 + 0.35 * peak + 0.1 * np.cos(2 * np.pi * doy / 365.25)


# -- the catalogue ---------------------------------------------------------------------------------
def products(seed: int) -> pa.Table:
    rng = np.random.default_rng([seed, 1_000_000_007])
    n = N_PRODUCTS
    category = rng.integers(0, len(CATEGORIES), n)
    price = np.round(np.exp(rng.normal(3.0, 0.8, n)) * 100).astype(np.int64)  # ~ $20 median
    price = np.maximum(price, 199)
    cost = (price * rng.uniform(0.35, 0.75, n)).astype(np.int64)
    return pa.table(
        {
            "product_id": ids("P", np.arange(1, n + 1), 4),
            "category": pa.array(np.array(CATEGORIES)[category]),
            "list_price": money(price, 12),
            "unit_cost": money(cost, 12),
            "updated_at": stamps(np.zeros(n, dtype=np.int64)),
        }
    )


# -- one chunk of customers ----------------------------------------------------------------------
@dataclass
class Chunk:
    customers: pa.Table
    orders: pa.Table
    order_items: pa.Table
    interactions: pa.Table
    spend: dict[tuple[int, str], int]  # (month start epoch, channel) -> acquisition cents
    late_updates: list[str]


def make_chunk(index: int, first: int, count: int, seed: int, start: int, end: int, catalogue: pa.Table) -> Chunk:
    """Customers first .. first+count-1 and everything they did in [start, end]."""
    rng = np.random.default_rng([seed, index])
    n = count
    cust_no = np.arange(first, first + n)
    names = list(CHANNELS)
    channel_idx = rng.choice(len(names), n, p=np.array([CHANNELS[c].share for c in names]))
    prof = [CHANNELS[c] for c in names]
    signup = start + (rng.random(n) ** 0.85 * (end - start)).astype(np.int64)  # growing intake
    acq_mean = np.array([p.acquisition_cost for p in prof])[channel_idx]
    acq_cost = np.round(acq_mean * rng.lognormal(0, 0.3, n) * 100).astype(np.int64)
    buyer = rng.random(n) < np.array([p.buyer_share for p in prof])[channel_idx]
    satisfaction = np.clip(np.round(rng.normal(3.8, 0.9, n)), 1, 5).astype(np.int64)
    # latent habit: 0 = normal, 1 = "barnacle" (frequent, small, discounted, needy)
    habit = (rng.random(n) < 0.12).astype(np.int64)
    lam = rng.gamma(1.2, 1.0 / 2.5, n) * (1 + 1.5 * habit)  # purchases per week, mean ~0.5
    a = np.array([p.dropout_a for p in prof])[channel_idx]
    b = np.array([p.dropout_b for p in prof])[channel_idx]
    p_drop = 0.55 * rng.beta(a, b) * (1.0 + 0.35 * (3.5 - satisfaction).clip(0)) * (1 - 0.5 * habit)
    p_drop = np.clip(p_drop, 0.005, 0.95)
    basket = rng.gamma(3.0, 1.0 / 3.0, n) * np.array([p.spend_scale for p in prof])[channel_idx] * (1 - 0.5 * habit)
    discount_propensity = np.clip(rng.beta(1.2, 6.0, n) + 0.45 * habit, 0, 0.95)
    preferred_cat = rng.integers(0, len(CATEGORIES), n)
    preferred_sales = rng.integers(0, len(SALES_CHANNELS), n)
    region = rng.integers(0, len(REGIONS), n)

    # purchases: first one shortly after sign-up, then Exp(lambda) gaps until dropout or `end`
    first_buy = signup + (rng.exponential(5.0, n) * DAY).astype(np.int64)
    buyer &= first_buy <= end
    repeats = np.where(buyer, rng.geometric(p_drop) - 1, 0)
    repeats = np.minimum(repeats, 400)
    total = int(buyer.sum() + repeats.sum())
    owner = np.repeat(np.arange(n), np.where(buyer, repeats + 1, 0))
    starts = np.cumsum(np.where(buyer, repeats + 1, 0)) - np.where(buyer, repeats + 1, 0)
    seq = np.arange(total) - np.repeat(starts, np.where(buyer, repeats + 1, 0))
    gaps = rng.exponential(1.0, total) / lam[owner] * WEEK
    gaps[seq == 0] = 0
    gap_sums = np.cumsum(gaps)
    # non-buyers repeat 0 times, but a trailing one's start index equals `total`: clip it
    base = np.repeat(gap_sums[np.minimum(starts, total - 1)] if total else np.array([]), np.where(buyer, repeats + 1, 0))
    t = first_buy[owner] + (gap_sums - base).astype(np.int64)
    keep = (t <= end) & ((seq == 0) | (rng.random(total) < _season(t) / 1.1))
    owner, t, seq = owner[keep], t[keep], seq[keep]
    order_rank = np.zeros(len(owner), dtype=np.int64)
    if len(owner):
        bounds = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        order_rank = np.arange(len(owner)) - np.repeat(bounds, np.diff(np.r_[bounds, len(owner)]))
    n_orders = len(owner)
    order_ids = np.char.add(
        np.char.add("O", _zfill(cust_no[owner], 7)), np.char.add("-", _zfill(order_rank + 1, 4))
    )
    # lines: 1 + Poisson(basket); products near the customer's favourite category
    n_lines = 1 + rng.poisson(np.clip(basket[owner] * 3.0, 0.05, 10))
    line_owner = np.repeat(np.arange(n_orders), n_lines)
    line_no = np.arange(len(line_owner)) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines) + 1
    cat_of_product = np.array([CATEGORIES.index(c) for c in catalogue.column("category").to_pylist()])
    by_cat = [np.flatnonzero(cat_of_product == k) for k in range(len(CATEGORIES))]
    fav = rng.random(len(line_owner)) < 0.65
    cust_of_line = owner[line_owner]
    random_product = rng.integers(0, N_PRODUCTS, len(line_owner))
    fav_cat = preferred_cat[cust_of_line]
    fav_product = np.array([by_cat[c][i % len(by_cat[c])] for c, i in zip(fav_cat, rng.integers(0, 1 << 30, len(line_owner)), strict=True)], dtype=np.int64) if len(line_owner) else np.array([], dtype=np.int64)
    product = np.where(fav, fav_product, random_product)
    price = np.array([int(round(x * 100)) for x in catalogue.column("list_price").to_pylist()], dtype=np.int64)
    cost = np.array([int(round(x * 100)) for x in catalogue.column("unit_cost").to_pylist()], dtype=np.int64)
    quantity = 1 + rng.poisson(0.35, len(line_owner))
    unit_price = price[product]
    unit_cost = cost[product]
    line_total = unit_price * quantity
    gross = np.bincount(line_owner, weights=line_total, minlength=n_orders).astype(np.int64)
    # discounts, status, refunds, shipping
    discounted = rng.random(n_orders) < discount_propensity[owner]
    discount = np.where(discounted, (gross * rng.uniform(0.05, 0.3, n_orders)).astype(np.int64), 0)
    u = rng.random(n_orders)
    status = np.full(n_orders, "completed", dtype=object)
    status[u < 0.02] = "cancelled"
    status[(u >= 0.02) & (u < 0.045)] = "refunded"
    status[(u >= 0.045) & (u < 0.06)] = "partially_refunded"
    paid = gross - discount
    refund = np.where(status == "refunded", paid, 0)
    refund = np.where(status == "partially_refunded", (paid * rng.uniform(0.1, 0.6, n_orders)).astype(np.int64), refund)
    sales_channel = np.where(rng.random(n_orders) < 0.7, preferred_sales[owner], rng.integers(0, len(SALES_CHANNELS), n_orders))
    shipping = np.where(
        (np.array(SALES_CHANNELS)[sales_channel] == "store") | (status == "cancelled"),
        0,
        rng.integers(300, 900, n_orders),
    )
    ordered_at = t
    created = ordered_at + rng.integers(0, 600, n_orders)
    # a refund arrives 1-20 days later as an update; if that is after `end`, it has not happened yet
    refund_at = ordered_at + rng.integers(1, 21, n_orders) * DAY
    late = (status == "refunded") | (status == "partially_refunded")
    not_yet = late & (refund_at > end)
    status[not_yet] = "completed"
    refund[not_yet] = 0
    late &= ~not_yet
    updated_at = np.where(late, refund_at, np.minimum(created, end))
    items_updated = np.minimum(created, end)[line_owner]

    # interactions: support and complaints scale with orders and dissatisfaction; barnacles need more
    orders_per_customer = np.bincount(owner, minlength=n)
    support_rate = 0.08 + 0.25 * habit + 0.05 * (5 - satisfaction)
    n_support = rng.poisson(orders_per_customer * support_rate)
    n_complaint = rng.poisson(orders_per_customer * (0.02 + 0.04 * (satisfaction <= 2)))
    active_span = np.where(orders_per_customer > 0, np.maximum(end - first_buy, DAY), 0)
    n_marketing = rng.poisson(active_span / (90 * DAY)) * (orders_per_customer > 0)
    n_survey = rng.poisson(active_span / (200 * DAY)) * (orders_per_customer > 0)
    kinds = []
    for kind, counts in (("support_ticket", n_support), ("complaint", n_complaint), ("marketing_contact", n_marketing), ("survey", n_survey)):
        who = np.repeat(np.arange(n), counts)
        kinds.append((kind, who))
    i_kind = np.concatenate([np.full(len(w), k, dtype=object) for k, w in kinds]) if kinds else np.array([], dtype=object)
    i_who = np.concatenate([w for _, w in kinds])
    i_time = first_buy[i_who] + (rng.random(len(i_who)) * active_span[i_who]).astype(np.int64)
    i_time = np.minimum(i_time, end)
    cost_cents = np.select(
        [i_kind == "support_ticket", i_kind == "complaint", i_kind == "marketing_contact"],
        [rng.integers(250, 1200, len(i_who)), rng.integers(800, 2500, len(i_who)), rng.integers(20, 120, len(i_who))],
        rng.integers(50, 200, len(i_who)),
    )
    surveyed = i_kind == "survey"
    i_sat = np.where(surveyed, np.clip(satisfaction[i_who] + rng.integers(-1, 2, len(i_who)), 1, 5), -1)
    i_order = np.lexsort((i_time, i_who))
    i_who, i_kind, i_time, cost_cents, i_sat = i_who[i_order], i_kind[i_order], i_time[i_order], cost_cents[i_order], i_sat[i_order]
    i_seq = np.arange(len(i_who)) - np.repeat(
        np.cumsum(np.bincount(i_who, minlength=n)) - np.bincount(i_who, minlength=n), np.bincount(i_who, minlength=n)
    )

    # referrals: 'referral' customers name an earlier buyer of the same chunk, favouring frequent ones
    referred_by = np.full(n, None, dtype=object)
    ref_idx = np.flatnonzero(np.array(names)[channel_idx] == "referral")
    weights = (orders_per_customer + 0.1) * buyer
    order_by_signup = np.argsort(signup, kind="stable")
    rank_of = np.empty(n, dtype=np.int64)
    rank_of[order_by_signup] = np.arange(n)
    for i in ref_idx:
        earlier = order_by_signup[: rank_of[i]]
        if len(earlier):
            w = weights[earlier]
            if w.sum() > 0:
                referred_by[i] = f"C{cust_no[earlier[rng.choice(len(earlier), p=w / w.sum())]]:07d}"

    # monthly acquisition spend per channel (direct costs x overhead), summed over chunks later
    spend: dict[tuple[int, str], int] = defaultdict(int)
    months = (signup.astype("datetime64[s]").astype("datetime64[M]")).astype("datetime64[s]").astype(np.int64)
    for m, c, cents in zip(months, channel_idx, acq_cost, strict=True):
        spend[(int(m), names[c])] += int(cents * 1.6) + 1500

    customers = pa.table(
        {
            "customer_id": ids("C", cust_no, 7),
            "signup_at": stamps(signup),
            "acquisition_channel": pa.array(np.array(names)[channel_idx]),
            "acquisition_cost": money(acq_cost, 12),
            "region": pa.array(np.array(REGIONS)[region]),
            "referred_by": pa.array(list(referred_by), pa.string()),
            "email": pa.array(np.char.add(np.char.add("c", cust_no.astype(str)), "@example.com")),
            "updated_at": stamps(signup),
        }
    )
    orders = pa.table(
        {
            "order_id": pa.array(order_ids),
            "customer_id": ids("C", cust_no[owner], 7),
            "ordered_at": stamps(ordered_at),
            "channel": pa.array(np.array(SALES_CHANNELS)[sales_channel]),
            "status": pa.array(status.astype(str)),
            "currency": pa.array(np.full(n_orders, "USD")),
            "gross_amount": money(gross),
            "discount_amount": money(discount),
            "refund_amount": money(refund),
            "shipping_cost": money(shipping, 12),
            "updated_at": stamps(updated_at),
        }
    )
    items = pa.table(
        {
            "order_id": pa.array(order_ids[line_owner]) if len(line_owner) else pa.array([], pa.string()),
            "line_number": pa.array(line_no.astype(np.int32)),
            "product_id": ids("P", product + 1, 4),
            "quantity": pa.array(quantity.astype(np.int32)),
            "unit_price": money(unit_price, 12),
            "unit_cost": money(unit_cost, 12),
            "updated_at": stamps(items_updated),
        }
    )
    interactions = pa.table(
        {
            "interaction_id": pa.array(
                np.char.add(np.char.add("I", _zfill(cust_no[i_who], 7)), np.char.add("-", _zfill(i_seq + 1, 4)))
            ) if len(i_who) else pa.array([], pa.string()),
            "customer_id": ids("C", cust_no[i_who], 7),
            "occurred_at": stamps(i_time),
            "interaction_type": pa.array(i_kind.astype(str)) if len(i_who) else pa.array([], pa.string()),
            "cost": money(cost_cents, 10),
            "satisfaction": pa.array(np.where(i_sat > 0, i_sat, 0).astype(np.int32), mask=i_sat <= 0),
            "updated_at": stamps(i_time),
        }
    )
    late_ids = list(order_ids[late][: max(1, int(late.sum()))]) if late.any() else []
    return Chunk(customers, orders, items, interactions, spend, late_ids)


# -- defects -------------------------------------------------------------------------------------
def inject_defects(chunk: Chunk, rate: float, rng: np.random.Generator, start: int, end: int) -> tuple[Chunk, list[tuple[str, str, str, str]]]:
    """Damage about `rate` of the chunk's orders, spread over the kinds; return what was done."""
    orders = chunk.orders
    n = orders.num_rows
    k = int(round(rate * n))
    if n == 0 or k == 0:
        return chunk, []
    damage_kinds = [d for d in DEFECT_KINDS if d != "late_update"]
    picks = rng.choice(n, size=min(k, n), replace=False)
    cols = {name: orders.column(name).to_pylist() for name in orders.column_names}
    extra_rows: list[dict[str, Any]] = []
    records: list[tuple[str, str, str, str]] = []
    for j, row in enumerate(picks):
        kind = damage_kinds[j % len(damage_kinds)]
        oid = cols["order_id"][row]
        if kind == "duplicate_order_id":
            dup = {c: cols[c][row] for c in cols}
            dup["customer_id"] = cols["customer_id"][picks[(j + 1) % len(picks)]]
            dup["gross_amount"] = dup["gross_amount"] + 1
            extra_rows.append(dup)
            detail = "a second, different row with the same order_id and updated_at"
        elif kind == "null_customer_id":
            cols["customer_id"][row] = None
            detail = "customer_id set to NULL"
        elif kind == "negative_amount":
            cols["gross_amount"][row] = -abs(cols["gross_amount"][row]) - 1
            detail = "gross_amount negative"
        elif kind == "absurd_amount":
            from decimal import Decimal

            cols["gross_amount"][row] = Decimal("9999999.99")
            detail = "gross_amount 9,999,999.99"
        elif kind == "orphan_customer_id":
            cols["customer_id"][row] = f"GHOST-{oid}"
            detail = "customer_id not in customers"
        elif kind == "future_timestamp":
            cols["ordered_at"][row] = datetime.fromtimestamp(end + 30 * DAY, tz=UTC).replace(tzinfo=None)
            detail = "ordered_at 30 days after the end and after updated_at"
        elif kind == "before_company_start":
            cols["ordered_at"][row] = datetime.fromtimestamp(start - 3 * 365 * DAY, tz=UTC).replace(tzinfo=None)
            detail = "ordered_at three years before the first customer"
        else:  # unknown_currency
            cols["currency"][row] = "XXX"
            detail = "currency XXX"
        records.append((kind, "orders", oid, detail))
    damaged = {r[2] for r in records}
    untouched_late = [oid for oid in chunk.late_updates if oid not in damaged]
    for oid in untouched_late[: max(1, len(picks) // len(damage_kinds))]:
        records.append(("late_update", "orders", oid, "refund recorded days after the order: a later version"))
    table = pa.table({c: pa.array(v, orders.schema.field(c).type) for c, v in cols.items()})
    if extra_rows:
        table = pa.concat_tables([table, pa.Table.from_pylist(extra_rows, schema=orders.schema)])
    return replace(chunk, orders=table), records


# -- writing -------------------------------------------------------------------------------------
def _relaxed(table: Table) -> Table:
    """No keys and no NOT NULL: a dirty source must be able to hold its defects."""
    return replace(table, key=(), columns=tuple(replace(c, nullable=True) for c in table.columns))


def generate(
    warehouse: Warehouse,
    customers: int,
    start: date,
    end: date,
    seed: int,
    dirty: float = 0.0,
    progress: bool = False,
) -> GenerateStats:
    """Replace the source tables with a generated history; returns row counts."""
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    if not 0 <= dirty < 0.5:
        raise ValueError(f"--dirty {dirty}: use a share between 0 and 0.5")
    started = time.perf_counter()
    t0, t1 = _epoch(start), _epoch(end) + DAY - 1
    stats = GenerateStats()
    tables = [_relaxed(t) if dirty else t for t in SOURCE_TABLES]
    by_name = {t.name: t for t in tables}
    for t in (*SOURCE_TABLES, INJECTED_DEFECTS):
        warehouse.execute(f"DROP TABLE IF EXISTS {quote_ident(SOURCE_SCHEMA, t.name)}")
    warehouse.ensure_tables(SOURCE_SCHEMA, [*tables, INJECTED_DEFECTS])
    catalogue = products(seed)
    spend: dict[tuple[int, str], int] = defaultdict(int)
    defects: list[tuple[str, str, str, str]] = []
    bar = _progress(customers, progress)
    # One transaction per chunk: a single one made DuckDB hold every uncommitted row in memory
    # (5.6 GB peak at 1M customers, 1.1 GB this way). An interrupted run leaves partial tables;
    # rerunning replaces them.
    with warehouse.transaction() as conn:
        stats.rows["products"] = warehouse.load_arrow(conn, SOURCE_SCHEMA, by_name["products"], catalogue)
    for index, first in enumerate(range(1, customers + 1, CHUNK)):
        count = min(CHUNK, customers + 1 - first)
        chunk = make_chunk(index, first, count, seed, t0, t1, catalogue)
        if dirty:
            chunk, found = inject_defects(chunk, dirty, np.random.default_rng([seed, index, 7]), t0, t1)
            defects += found
        with warehouse.transaction() as conn:
            for name in ("customers", "orders", "order_items", "interactions"):
                stats.rows[name] += warehouse.load_arrow(conn, SOURCE_SCHEMA, by_name[name], getattr(chunk, name))
        for key, cents in chunk.spend.items():
            spend[key] += cents
        if bar:
            bar.update(count)
    with warehouse.transaction() as conn:
        keys = sorted(spend)
        stats.rows["marketing_spend"] = warehouse.load_arrow(
            conn,
            SOURCE_SCHEMA,
            by_name["marketing_spend"],
            pa.table(
                {
                    "month": pa.array([datetime.fromtimestamp(m, tz=UTC).date() for m, _ in keys], pa.date32()),
                    "channel": [c for _, c in keys],
                    "spend": money(np.array([spend[k] for k in keys], dtype=np.int64)),
                    "updated_at": stamps(np.array([min(_month_end(m), t1) for m, _ in keys], dtype=np.int64)),
                }
            ),
        )
        if defects:
            warehouse.load_arrow(
                conn,
                SOURCE_SCHEMA,
                INJECTED_DEFECTS,
                pa.table(
                    {
                        "defect_id": pa.array(np.arange(1, len(defects) + 1), pa.int64()),
                        "defect_kind": [d[0] for d in defects],
                        "table_name": [d[1] for d in defects],
                        "row_key": [d[2] for d in defects],
                        "detail": [d[3] for d in defects],
                    }
                ),
            )
    if bar:
        bar.close()
    stats.defects = len(defects)
    stats.seconds = time.perf_counter() - started
    return stats


def _month_end(month_start: int) -> int:
    d = datetime.fromtimestamp(month_start, tz=UTC)
    nxt = (d.replace(day=28) + timedelta(days=4)).replace(day=1)
    return int(nxt.timestamp()) - 1


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="customer", file=sys.stderr)


# -- CLI -----------------------------------------------------------------------------------------
def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--customers", type=int, required=True, help="number of customers")
    parser.add_argument("--start", type=date.fromisoformat, required=True, help="first day (YYYY-MM-DD)")
    parser.add_argument("--end", type=date.fromisoformat, required=True, help="last day (YYYY-MM-DD)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (same arguments, same rows)")
    parser.add_argument("--dirty", type=float, default=0.0, metavar="RATE", help="inject defects into about this share of orders")


def run(args: argparse.Namespace) -> int:
    wh = open_warehouse(args.warehouse)
    stats = generate(wh, args.customers, args.start, args.end, args.seed, args.dirty, progress=sys.stderr.isatty())
    print(f"{stats.summary()} into {wh!r}")
    return 0


def iter_chunks(customers: int, seed: int, start: date, end: date) -> Iterator[Chunk]:
    """The chunks `generate` writes, without a warehouse (benchmarks, tests)."""
    catalogue = products(seed)
    t0, t1 = _epoch(start), _epoch(end) + DAY - 1
    for index, first in enumerate(range(1, customers + 1, CHUNK)):
        yield make_chunk(index, first, min(CHUNK, customers + 1 - first), seed, t0, t1, catalogue)
