"""Expectation suites as code: one per raw table and one per mart.

Each entry is (Great Expectations class name, keyword arguments). Row-level checks on raw tables
run on the rows that passed the quarantine rules, so any failure there means a rule is missing:
the run stops. Table-level checks (row-count band, freshness, reconciliation) are computed by
the gate from run parameters and added at run time (jobs/quality/gates.py).
"""

from __future__ import annotations

from schemas.marts import (
    CHANNEL_ECONOMICS,
    CLV_MODEL_FIT,
    COHORT_RETENTION,
    CUSTOMER_CLV,
    CUSTOMER_MOVEMENTS,
    CUSTOMER_PROFITABILITY,
    CUSTOMER_RFM,
    CUSTOMER_SEGMENTS,
    METRIC_MARTS,
    PORTFOLIO_BREAKDOWN,
    PORTFOLIO_SUMMARY,
    REVENUE_RETENTION,
    WHALE_CURVE,
)
from schemas.source import (
    ACQUISITION_CHANNELS,
    INTERACTION_TYPES,
    ORDER_STATUSES,
    SALES_CHANNELS,
    SOURCE_TABLES,
)
from schemas.types import Table

Expectation = tuple[str, dict[str, object]]


def _not_null(table: Table) -> list[Expectation]:
    return [("ExpectColumnValuesToNotBeNull", {"column": c.name}) for c in table.columns if not c.nullable]


_SOURCE = {t.name: t for t in SOURCE_TABLES}

RAW_SUITES: dict[str, list[Expectation]] = {
    "orders": [
        *_not_null(_SOURCE["orders"]),
        ("ExpectColumnValuesToBeInSet", {"column": "status", "value_set": list(ORDER_STATUSES)}),
        ("ExpectColumnValuesToBeInSet", {"column": "channel", "value_set": list(SALES_CHANNELS)}),
        ("ExpectColumnValuesToBeBetween", {"column": "gross_amount", "min_value": 0}),
        ("ExpectColumnValuesToBeBetween", {"column": "discount_amount", "min_value": 0}),
        ("ExpectColumnValuesToBeBetween", {"column": "refund_amount", "min_value": 0}),
        ("ExpectColumnValuesToBeBetween", {"column": "shipping_cost", "min_value": 0}),
        ("ExpectCompoundColumnsToBeUnique", {"column_list": ["order_id", "updated_at"]}),
    ],
    "order_items": [
        *_not_null(_SOURCE["order_items"]),
        ("ExpectColumnValuesToBeBetween", {"column": "quantity", "min_value": 1}),
        ("ExpectColumnValuesToBeBetween", {"column": "unit_price", "min_value": 0}),
        ("ExpectColumnValuesToBeBetween", {"column": "unit_cost", "min_value": 0}),
        ("ExpectCompoundColumnsToBeUnique", {"column_list": ["order_id", "line_number", "updated_at"]}),
    ],
    "interactions": [
        *_not_null(_SOURCE["interactions"]),
        ("ExpectColumnValuesToBeInSet", {"column": "interaction_type", "value_set": list(INTERACTION_TYPES)}),
        ("ExpectColumnValuesToBeBetween", {"column": "satisfaction", "min_value": 1, "max_value": 5}),
        ("ExpectColumnValuesToBeBetween", {"column": "cost", "min_value": 0}),
        ("ExpectCompoundColumnsToBeUnique", {"column_list": ["interaction_id", "updated_at"]}),
    ],
    "customers": [
        ("ExpectColumnValuesToNotBeNull", {"column": "customer_id"}),
        ("ExpectColumnValuesToBeUnique", {"column": "customer_id"}),
        ("ExpectColumnValuesToBeBetween", {"column": "acquisition_cost", "min_value": 0}),
        ("ExpectColumnValuesToNotBeNull", {"column": "acquisition_channel"}),
    ],
    "products": [
        ("ExpectColumnValuesToNotBeNull", {"column": "product_id"}),
        ("ExpectColumnValuesToBeUnique", {"column": "product_id"}),
        ("ExpectColumnValuesToBeBetween", {"column": "unit_cost", "min_value": 0}),
    ],
    "marketing_spend": [
        ("ExpectCompoundColumnsToBeUnique", {"column_list": ["month", "channel"]}),
        ("ExpectColumnValuesToBeBetween", {"column": "spend", "min_value": 0}),
    ],
}

# Informational: channels the generator uses; imported data may bring others (not an error).
KNOWN_ACQUISITION_CHANNELS = ACQUISITION_CHANNELS

def _between(column: str, min_value: float | None = None, max_value: float | None = None) -> Expectation:
    bounds: dict[str, object] = {"column": column}
    if min_value is not None:
        bounds["min_value"] = min_value
    if max_value is not None:
        bounds["max_value"] = max_value
    return ("ExpectColumnValuesToBeBetween", bounds)


def _rate(column: str) -> Expectation:
    return _between(column, 0, 1)


def _key(table: Table) -> list[Expectation]:
    key = [k for k in table.key]
    out: list[Expectation] = [("ExpectColumnValuesToNotBeNull", {"column": k}) for k in key]
    if len(key) == 1:
        out.append(("ExpectColumnValuesToBeUnique", {"column": key[0]}))
    elif key:
        out.append(("ExpectCompoundColumnsToBeUnique", {"column_list": key}))
    return out


MART_SUITES: dict[str, list[Expectation]] = {t.name: _key(t) for t in METRIC_MARTS}
MART_SUITES[CUSTOMER_PROFITABILITY.name] += [
    ("ExpectColumnValuesToBeBetween", {"column": "profit_decile", "min_value": 1, "max_value": 10}),
    ("ExpectColumnValuesToBeUnique", {"column": "profit_rank"}),
]
MART_SUITES[CUSTOMER_RFM.name] += [
    ("ExpectColumnValuesToBeBetween", {"column": "frequency", "min_value": 0}),
    ("ExpectColumnValuesToBeBetween", {"column": "recency", "min_value": 0}),
    ("ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "T", "column_B": "recency", "or_equal": True}),
    *[_between(s, 1, 5) for s in ("r_score", "f_score", "m_score")],
    ("ExpectColumnValuesToNotBeNull", {"column": "rfm_segment"}),
]
MART_SUITES[CUSTOMER_SEGMENTS.name] += [
    ("ExpectColumnValuesToBeInSet", {"column": "kotler_quadrant", "value_set": ["true_friend", "butterfly", "barnacle", "stranger", "prospect"]}),
    ("ExpectColumnValuesToBeInSet", {"column": "lifecycle_stage", "value_set": ["prospect", "acquisition", "development", "retention", "decline", "lapsed"]}),
    ("ExpectColumnValuesToBeInSet", {"column": "loyalty_rung", "value_set": ["prospect", "customer", "client", "supporter", "advocate", "partner"]}),
    ("ExpectColumnValuesToBeBetween", {"column": "loyalty_score", "min_value": 0, "max_value": 1}),
    ("ExpectColumnValuesToBeBetween", {"column": "discount_sensitivity", "min_value": 0, "max_value": 1}),
]
MART_SUITES[COHORT_RETENTION.name] += [
    _rate("retention_rate"),
    _rate("unbounded_retention_rate"),
    ("ExpectColumnValuesToBeBetween", {"column": "period", "min_value": 0}),
    ("ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "unbounded_active_customers", "column_B": "active_customers", "or_equal": True}),
]
MART_SUITES[CHANNEL_ECONOMICS.name] += [
    *[_rate(f"retention_{k}m") for k in (3, 6, 12)],
    ("ExpectColumnValuesToBeBetween", {"column": "cac", "min_value": 0}),
]
MART_SUITES[REVENUE_RETENTION.name] += [
    ("ExpectColumnValuesToBeInSet", {"column": "window_months", "value_set": [3, 12]}),
    _rate("customer_retention_rate"),
    _rate("gross_revenue_retention"),
    _between("net_revenue_retention", 0),
    ("ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "starting_customers", "column_B": "retained_customers", "or_equal": True}),
    ("ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "net_revenue_retention", "column_B": "gross_revenue_retention", "or_equal": True}),
]
MART_SUITES[CUSTOMER_MOVEMENTS.name] += [
    *[_between(f"{f}_customers", 0) for f in ("new", "retained", "reactivated", "lapsed")],
]
MART_SUITES[PORTFOLIO_SUMMARY.name] += [
    ("ExpectTableRowCountToEqual", {"value": 1}),
    *[_rate(c) for c in ("top20_revenue_share", "top25_revenue_share", "gini_revenue")],
]
MART_SUITES[PORTFOLIO_BREAKDOWN.name] += [
    _rate("customer_share"),
]
MART_SUITES[WHALE_CURVE.name] += [
    ("ExpectColumnValuesToBeBetween", {"column": "percentile", "min_value": 1, "max_value": 100}),
    _rate("cumulative_customer_share"),
]
MART_SUITES[CUSTOMER_CLV.name] += [
    _rate("p_alive"),
    _between("expected_purchases_4w", 0),
    _between("expected_purchases_52w", 0),
    # clv is margin and may be negative (a loss-making customer); expected revenue may not, and
    # no margin exceeds its revenue
    _between("clv_revenue", 0),
    _between("margin_rate", None, 1),
    ("ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "expected_purchases_52w", "column_B": "expected_purchases_13w", "or_equal": True}),
    ("ExpectColumnPairValuesAToBeGreaterThanB", {"column_A": "expected_purchases_13w", "column_B": "expected_purchases_4w", "or_equal": True}),
]
MART_SUITES[CLV_MODEL_FIT.name] += [
    ("ExpectColumnValuesToBeInSet", {"column": "model", "value_set": ["bgnbd", "gamma_gamma"]}),
    ("ExpectColumnValuesToBeInSet", {"column": "status", "value_set": ["ok", "skipped", "failed"]}),
]
