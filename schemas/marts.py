"""Mart contract: every published table, its grain, key and column comments.

The DDL (with COMMENT ON), the column order Spark writes, and docs/marts.md are all generated from
this file. Names are stable: BI tools depend on them.
"""

from __future__ import annotations

from schemas.types import Column, Table

MARTS_SCHEMA = "marts"

M = "decimal(18,2)"
_SNAP = Column("snapshot_date", "date", "Snapshot date: the run's logical date; metrics are as of the end of this day (UTC).", nullable=False)
_CUST = Column("customer_id", "string", "Customer identifier, as in the source warehouse.", nullable=False)
_CHANNEL = Column("acquisition_channel", "string", "Channel that acquired the customer ('all' = every channel together).", nullable=False)


def c(name: str, type_: str, comment: str, nullable: bool = True) -> Column:
    return Column(name, type_, comment, nullable=nullable)


CUSTOMER_PROFITABILITY = Table(
    name="customer_profitability",
    comment="Per-customer profitability (Kotler's customer profitability analysis).",
    grain="one row per customer per snapshot date (every customer signed up or active by the snapshot)",
    key=("snapshot_date", "customer_id"),
    notes=(
        "Cancelled orders carry no money. Net revenue = gross - discount - refund. A fully refunded order is not a purchase and has no cost of goods (the goods came back) but its shipping cost counts.",
        "Cost to serve = shipping cost + interaction costs (support, complaints, marketing contacts, surveys).",
        "profit_rank / profit_decile: exact window ranks over the buyers (customers with a purchase) by net_profit, ties broken by customer_id; null for prospects.",
    ),
    columns=(
        _SNAP,
        _CUST,
        c("acquisition_channel", "string", "Channel that acquired the customer."),
        c("orders", "int", "Orders placed up to the snapshot (any status)."),
        c("purchase_orders", "int", "Orders that count as purchases (not cancelled, not fully refunded)."),
        c("purchase_days", "int", "Purchase occasions: days with at least one purchase."),
        c("first_purchase_date", "date", "Day of the first purchase (UTC)."),
        c("last_purchase_date", "date", "Day of the latest purchase (UTC)."),
        c("gross_revenue", M, "Sum of order gross amounts (excluding cancelled orders)."),
        c("discounts", M, "Discounts granted."),
        c("refunds", M, "Amounts refunded."),
        c("revenue", M, "Net revenue = gross revenue - discounts - refunds."),
        c("cogs", M, "Cost of goods sold (quantity x unit cost on purchase orders)."),
        c("gross_margin", M, "revenue - cogs."),
        c("shipping_cost", M, "Shipping cost of the customer's orders."),
        c("interaction_cost", M, "Cost of the customer's interactions (support, complaints, marketing, surveys)."),
        c("cost_to_serve", M, "shipping_cost + interaction_cost."),
        c("acquisition_cost", M, "Direct acquisition cost recorded on the customer."),
        c("net_profit", M, "gross_margin - cost_to_serve (before acquisition cost)."),
        c("net_profit_after_acquisition", M, "net_profit - acquisition_cost."),
        c("profit_rank", "int", "Rank among buyers by net_profit, 1 = most profitable (the whale curve's x order); null for a prospect."),
        c("profit_decile", "int", "Decile of net_profit among buyers, 1 = the 10% most profitable buyers; null for a prospect."),
    ),
)

CUSTOMER_RFM = Table(
    name="customer_rfm",
    comment="RFM scores and the lifetimes-style purchase summary (frequency, recency, T, monetary value).",
    grain="one row per customer with at least one purchase, per snapshot date",
    key=("snapshot_date", "customer_id"),
    notes=(
        "A purchase occasion is a customer-day with at least one purchase; several orders on a day are one occasion with their money summed.",
        "frequency = occasions - 1; recency = (last - first occasion) in weeks; T = (snapshot - first occasion) in weeks; weeks = days / 7. monetary_value = mean spend over repeat occasions (the first is left out), 0 for one-time buyers. Same as the lifetimes library.",
        "RFM scores 1-5 by rank among buyers, 1 + floor(5 x (rank - 1) / buyers): R on days since last purchase (fewer days score 5), F on frequency, M on average spend per occasion (all occasions). Tied buyers share the rank of the first of them and so the same, lower score (every one-time buyer has F = 1); a score may hold more or fewer than a fifth of the buyers.",
        "Segments from R and F: Champions 5/4-5, Loyal 3-4/4-5, Potential loyalists 4-5/2-3, New 5/1, Promising 4/1, Need attention 3/3, About to sleep 3/1-2, At risk 1-2/3-4, Can't lose 1-2/5, Hibernating 1-2/1-2.",
    ),
    columns=(
        _SNAP,
        _CUST,
        c("frequency", "int", "Repeat purchase occasions (occasions - 1)."),
        c("recency", "double", "Weeks between the first and the last purchase occasion (lifetimes convention)."),
        c("T", "double", "Weeks between the first purchase occasion and the snapshot date."),
        c("monetary_value", "double", "Mean spend per repeat occasion; 0 for one-time buyers."),
        c("days_since_last_purchase", "int", "Days from the last purchase to the snapshot date (the RFM recency)."),
        c("purchase_days", "int", "Purchase occasions (frequency + 1)."),
        c("avg_occasion_spend", "double", "Mean spend per purchase occasion, first included (basis of the M score)."),
        c("spend_cv", "double", "Coefficient of variation of spend per occasion (population std / mean): spend consistency."),
        c("gap_mean_days", "double", "Mean days between consecutive purchase occasions; null for one-time buyers."),
        c("gap_cv", "double", "Coefficient of variation of the gaps between occasions: purchase regularity."),
        c("r_score", "int", "Recency score 1-5 (5 = most recent): 1 + floor(5 x (rank - 1) / buyers), ranked from the longest since the last purchase; tied buyers share the lower score."),
        c("f_score", "int", "Frequency score 1-5 (5 = most frequent), ranked as r_score on `frequency`; tied buyers (e.g. every one-time buyer) share the lower score."),
        c("m_score", "int", "Monetary score 1-5 (5 = highest average spend per occasion), ranked as r_score; tied buyers share the lower score."),
        c("rfm_cell", "string", "R, F and M scores as one string, e.g. '545'."),
        c("rfm_segment", "string", "Named segment from the R/F scores (see table notes)."),
    ),
)

CUSTOMER_SEGMENTS = Table(
    name="customer_segments",
    comment="Segment labels per customer: Kotler quadrant, value tier, lifecycle stage, loyalty ladder, preferences.",
    grain="one row per customer per snapshot date (same population as customer_profitability)",
    key=("snapshot_date", "customer_id"),
    notes=(
        "loyalty_score = active-month share (months with a purchase / months since the first purchase, inclusive) x min(1, tenure days / 365).",
        "kotler_quadrant: profit above the threshold and loyalty above the threshold = true_friend; profit only = butterfly; loyalty only = barnacle; neither = stranger; no purchase = prospect. Thresholds default to the medians over buyers (percentile_approx, accuracy 1e-4) and are run parameters.",
        "value_tier (Zeithaml's customer pyramid): lead = net profit below 0; platinum = profit decile 1 (deciles rank buyers only); gold = deciles 2-3; iron = the rest; prospect = no purchase.",
        "lifecycle_stage, first rule that matches: prospect (no purchase); lapsed (no purchase for more than lapse_days); acquisition (one occasion so far); decline (days since last purchase above decline_gap_factor x the customer's own mean gap); development (tenure below development_days); retention.",
        "loyalty_rung, first rule that matches: prospect (no purchase); customer (one occasion); partner (referred someone, profit decile <= partner_max_decile, tenure >= partner_min_tenure_days); advocate (referred someone); supporter (at least supporter_min_repeat repeat occasions and active-month share >= supporter_min_month_share); client.",
    ),
    columns=(
        _SNAP,
        _CUST,
        c("acquisition_channel", "string", "Channel that acquired the customer."),
        c("region", "string", "Customer region."),
        c("kotler_quadrant", "string", "true_friend, butterfly, barnacle, stranger or prospect (see notes)."),
        c("value_tier", "string", "platinum, gold, iron, lead or prospect (see notes)."),
        c("value_decile", "int", "Profit decile among buyers, 1 = top 10%; null for a prospect (value_tier prospect)."),
        c("lifecycle_stage", "string", "prospect, acquisition, development, retention, decline or lapsed (see notes)."),
        c("loyalty_rung", "string", "prospect, customer, client, supporter, advocate or partner (see notes)."),
        c("loyalty_score", "double", "0..1 loyalty measure used for the Kotler quadrant (see notes)."),
        c("referrals_made", "int", "Customers who signed up by the end of the snapshot date and name this customer in referred_by."),
        c("preferred_channel", "string", "Sales channel with the most purchase orders (ties alphabetical)."),
        c("preferred_category", "string", "Product category with the most line revenue (ties alphabetical)."),
        c("category_breadth", "int", "Distinct product categories bought (cross-sell breadth)."),
        c("discount_sensitivity", "double", "Share of gross spend on orders with a discount."),
        c("satisfaction_score", "double", "Mean survey satisfaction (1-5); null when never surveyed."),
        c("satisfaction_band", "string", "low (< 3), medium (3 to < 4), high (>= 4) or unknown."),
        c("complaints", "int", "Complaint interactions up to the snapshot."),
    ),
)

COHORT_RETENTION = Table(
    name="cohort_retention",
    comment="Cohort retention and value by cohort month, acquisition channel and period.",
    grain="one row per cohort month x acquisition channel (plus 'all') x period, per snapshot date",
    key=("snapshot_date", "cohort_month", "acquisition_channel", "period"),
    notes=(
        "Cohort = calendar month of the first purchase. Period k = whole calendar months since the cohort month. Active in k = at least one purchase occasion in that month.",
        "Right-censored: periods after the snapshot's month have no rows (never zeros). The snapshot's own month is included with is_complete_period = false unless the snapshot is the month's last day.",
        "Margin = revenue - cost of goods - shipping - interaction costs of the cohort's customers in the period.",
    ),
    columns=(
        _SNAP,
        c("cohort_month", "date", "First day of the cohort's month.", nullable=False),
        _CHANNEL,
        c("period", "int", "Months since the cohort month (0 = the cohort month).", nullable=False),
        c("period_month", "date", "First day of the period's calendar month."),
        c("is_complete_period", "boolean", "False when the period's month is not over at the snapshot date."),
        c("cohort_size", "bigint", "Customers in the cohort."),
        c("active_customers", "bigint", "Cohort customers with a purchase occasion in the period."),
        c("retention_rate", "double", "Bounded retention: active_customers / cohort_size."),
        c("unbounded_active_customers", "bigint", "Cohort customers with a purchase occasion in this period or later."),
        c("unbounded_retention_rate", "double", "Unbounded retention: unbounded_active_customers / cohort_size (never increases with period)."),
        c("revenue", M, "Net revenue of the cohort in the period."),
        c("revenue_vs_period_0", "double", "Cohort revenue curve: revenue / the cohort's revenue in period 0 (the acquisition month, which holds the first orders and is usually partial). Not NRR: see revenue_retention."),
        c("margin", M, "Contribution margin of the cohort in the period (see notes)."),
        c("cumulative_revenue_per_customer", "double", "Revenue of periods 0..k divided by cohort_size."),
        c("cumulative_margin_per_customer", "double", "Margin of periods 0..k divided by cohort_size."),
    ),
)

CHANNEL_ECONOMICS = Table(
    name="channel_economics",
    comment="Acquisition channel economics: CAC, retention, LTV and payback per acquisition month.",
    grain="one row per acquisition channel (plus 'all') x acquisition month, per snapshot date",
    key=("snapshot_date", "acquisition_channel", "acquisition_month"),
    notes=(
        "Acquired in a month = first purchase in that month (the cohort). CAC = marketing spend of the channel in the month / customers acquired.",
        "Period 0 is the acquisition month, so X months are periods 0..X-1. retention_Xm = bounded retention in period X (the X-th month after the acquisition month); margin_per_customer_Xm = cumulative margin per acquired customer over the first X months, periods 0..X-1 (X-month LTV). Each is null until its last period is complete.",
        "payback_months = months, counting the acquisition month, until the cumulative margin per customer reaches CAC (1 = within the acquisition month; equal to the first X whose X-month LTV reaches CAC); null when not reached yet.",
    ),
    columns=(
        _SNAP,
        _CHANNEL,
        c("acquisition_month", "date", "First day of the acquisition month.", nullable=False),
        c("customers_acquired", "bigint", "Customers whose first purchase fell in the month."),
        c("spend", M, "Marketing spend of the channel in the month."),
        c("cac", "double", "Customer acquisition cost = spend / customers_acquired."),
        c("retention_3m", "double", "Bounded retention in period 3 (the third month after the acquisition month)."),
        c("retention_6m", "double", "Bounded retention in period 6 (the sixth month after the acquisition month)."),
        c("retention_12m", "double", "Bounded retention in period 12 (the same month a year after acquisition)."),
        c("margin_per_customer_3m", "double", "Cumulative margin per customer over the first 3 months, periods 0-2 (3-month LTV)."),
        c("margin_per_customer_6m", "double", "Cumulative margin per customer over the first 6 months, periods 0-5."),
        c("margin_per_customer_12m", "double", "Cumulative margin per customer over the first 12 months, periods 0-11 (12-month LTV)."),
        c("margin_per_customer_24m", "double", "Cumulative margin per customer over the first 24 months, periods 0-23."),
        c("ltv_to_cac_12m", "double", "margin_per_customer_12m / cac."),
        c("payback_months", "int", "Months, counting the acquisition month, until cumulative margin per customer reaches CAC (1 = within the acquisition month)."),
    ),
)

REVENUE_RETENTION = Table(
    name="revenue_retention",
    comment="Net and gross revenue retention (NRR, GRR) over trailing windows, per acquisition channel.",
    grain="one row per acquisition channel (plus 'all') x window length (3 and 12 months), per snapshot date",
    key=("snapshot_date", "acquisition_channel", "window_months"),
    notes=(
        "Two back-to-back windows of window_months calendar months: the current one ends on the snapshot date (window_start..window_end), the prior one ends the day before it starts. A month-end snapshot gives whole calendar months: 2024-06-30 with 3 months is prior 2024-01-01..2024-03-31, current 2024-04-01..2024-06-30. Otherwise the same day of the month: 2024-05-15 with 3 months is prior 2023-11-16..2024-02-15, current 2024-02-16..2024-05-15.",
        "Starting customers = customers with net revenue above zero in the prior window. Their net revenue in the current window is floored at zero per customer (refunds cannot take back more than the customer brought). Customers without revenue in the prior window (new or won back) are in neither ratio.",
        "net_revenue_retention = current_revenue / prior_revenue = (prior + expansion - contraction - churned) / prior. gross_revenue_retention caps each customer at their prior-window revenue: (prior - contraction - churned) / prior, between 0 and 1 and never above NRR.",
        "Net revenue is gross - discounts - refunds of the customer's orders dated in the window (cancelled orders carry none), as in customer_profitability.",
    ),
    columns=(
        _SNAP,
        _CHANNEL,
        c("window_months", "int", "Length of each window in calendar months (3 or 12).", nullable=False),
        c("prior_window_start", "date", "First day of the prior window."),
        c("prior_window_end", "date", "Last day of the prior window (the day before window_start)."),
        c("window_start", "date", "First day of the current window."),
        c("window_end", "date", "Last day of the current window: the snapshot date."),
        c("is_full_prior_window", "boolean", "True when the lake's history (the earliest order or interaction) starts on or before prior_window_start; false means the prior window is cut short and the ratios are not comparable with later snapshots."),
        c("starting_customers", "bigint", "Customers with net revenue above zero in the prior window."),
        c("retained_customers", "bigint", "Starting customers with net revenue above zero in the current window."),
        c("customer_retention_rate", "double", "retained_customers / starting_customers; null without starting customers."),
        c("prior_revenue", M, "Net revenue of the starting customers in the prior window."),
        c("current_revenue", M, "Net revenue of the starting customers in the current window (each floored at zero)."),
        c("expansion_revenue", M, "Sum over starting customers who spent more than in the prior window of the increase."),
        c("contraction_revenue", M, "Sum over retained customers who spent less than in the prior window of the decrease."),
        c("churned_revenue", M, "Prior-window revenue of the starting customers without revenue in the current window."),
        c("net_revenue_retention", "double", "NRR = current_revenue / prior_revenue; null without starting customers."),
        c("gross_revenue_retention", "double", "GRR = (prior_revenue - contraction_revenue - churned_revenue) / prior_revenue, each customer capped at their prior revenue; null without starting customers."),
    ),
)

CUSTOMER_MOVEMENTS = Table(
    name="customer_movements",
    comment="Customer flows per month (growth accounting): acquisition, retention, re-acquisition and lapse.",
    grain="one row per month x acquisition channel (plus 'all'), per snapshot date",
    key=("snapshot_date", "month", "acquisition_channel"),
    notes=(
        "Active in a month = a purchase occasion in it. new = first purchase in the month; retained = also active the month before; reactivated = active before but not the month before (won back); lapsed = active the month before but not this month.",
        "lapsed_revenue is the revenue those customers brought in the month before (what the month lost).",
        "A customer lapses in a month only once it is over: in an incomplete snapshot month (is_complete_month false) lapsed is 0.",
    ),
    columns=(
        _SNAP,
        c("month", "date", "First day of the month.", nullable=False),
        _CHANNEL,
        c("is_complete_month", "boolean", "False for the snapshot's own month when the snapshot is not its last day: its counts are so far, and no one has lapsed in it yet."),
        c("new_customers", "bigint", "Customers with their first purchase in the month."),
        c("retained_customers", "bigint", "Customers active in the month and the month before."),
        c("reactivated_customers", "bigint", "Customers active in the month, not the month before, and not new."),
        c("lapsed_customers", "bigint", "Customers active the month before but not in this month (complete months only)."),
        c("new_revenue", M, "Revenue of new customers in the month."),
        c("retained_revenue", M, "Revenue of retained customers in the month."),
        c("reactivated_revenue", M, "Revenue of reactivated customers in the month."),
        c("lapsed_revenue", M, "Revenue lapsed customers brought the month before."),
        c("active_customers", "bigint", "new + retained + reactivated."),
    ),
)

PORTFOLIO_SUMMARY = Table(
    name="portfolio_summary",
    comment="The customer portfolio at a glance: size, money, concentration and Kotler quadrants.",
    grain="one row per snapshot date",
    key=("snapshot_date",),
    notes=(
        "Concentration measures are over customers with at least one purchase. Top x% shares take the first ceil(x n) customers by revenue (or profit).",
        "Revenue Gini from the sorted-rank formula. Profit has no Gini (loss-making customers push it out of [0, 1]): loss_making_customer_share, profit_lost_share and whale_peak_profit_share describe its concentration.",
    ),
    columns=(
        _SNAP,
        c("customers", "bigint", "Customers signed up or active by the snapshot."),
        c("buying_customers", "bigint", "Customers with at least one purchase."),
        c("active_customers", "bigint", "Customers whose last purchase is within active_days of the snapshot."),
        c("revenue", M, "Net revenue of all customers."),
        c("gross_margin", M, "Gross margin of all customers."),
        c("net_profit", M, "Net profit before acquisition cost."),
        c("net_profit_after_acquisition", M, "Net profit after acquisition cost."),
        c("top20_revenue_share", "double", "Share of revenue from the top 20% of buyers by revenue."),
        c("top25_revenue_share", "double", "Share of revenue from the top 25% of buyers by revenue."),
        c("top20_profit_share", "double", "Share of profit from the top 20% of buyers by profit."),
        c("top25_profit_share", "double", "Share of profit from the top 25% of buyers by profit."),
        c("gini_revenue", "double", "Gini coefficient of revenue over buyers."),
        c("loss_making_customer_share", "double", "Share of buyers whose net profit is below zero."),
        c("profit_lost_share", "double", "Profit the loss-making buyers lose, as a share of the profit the profitable buyers make (0 = no losses)."),
        c("whale_peak_profit_share", "double", "Peak of the whale curve: net profit of the profitable buyers / total net profit (1 without losses, 1.5 = the best customers earn 150% of the profit); null when total profit is not positive."),
        c("true_friend_customers", "bigint", "Customers in the true_friend quadrant."),
        c("butterfly_customers", "bigint", "Customers in the butterfly quadrant."),
        c("barnacle_customers", "bigint", "Customers in the barnacle quadrant."),
        c("stranger_customers", "bigint", "Customers in the stranger quadrant."),
    ),
)

PORTFOLIO_BREAKDOWN = Table(
    name="portfolio_breakdown",
    comment="Customers, revenue and profit per segment of each segmentation.",
    grain="one row per snapshot date x dimension x segment",
    key=("snapshot_date", "dimension", "segment"),
    columns=(
        _SNAP,
        c("dimension", "string", "kotler_quadrant, lifecycle_stage, loyalty_rung or value_tier.", nullable=False),
        c("segment", "string", "The segment label within the dimension.", nullable=False),
        c("customers", "bigint", "Customers in the segment."),
        c("revenue", M, "Net revenue of the segment."),
        c("net_profit", M, "Net profit of the segment."),
        c("customer_share", "double", "Share of the dimension's customers."),
        c("revenue_share", "double", "Share of the dimension's revenue."),
        c("profit_share", "double", "Share of the dimension's net profit."),
    ),
)

WHALE_CURVE = Table(
    name="whale_curve",
    comment="Whale curve: cumulative share of profit against cumulative share of customers ranked by profit.",
    grain="one row per snapshot date x percentile of buying customers (1..100)",
    key=("snapshot_date", "percentile"),
    columns=(
        _SNAP,
        c("percentile", "int", "Percentile of buyers ranked by net profit, 1 = most profitable 1%.", nullable=False),
        c("customers", "bigint", "Customers in the percentile."),
        c("cumulative_customer_share", "double", "Share of buyers in percentiles 1..p."),
        c("cumulative_profit_share", "double", "Share of total net profit from percentiles 1..p (peaks above 1 when the tail loses money)."),
        c("cumulative_revenue_share", "double", "Share of total revenue from percentiles 1..p."),
    ),
)

CUSTOMER_CLV = Table(
    name="customer_clv",
    comment="Predictive customer lifetime value: BG/NBD purchases and Gamma-Gamma spend, as revenue and as margin.",
    grain="one row per customer with at least one purchase, per snapshot date",
    key=("snapshot_date", "customer_id"),
    notes=(
        "Models fitted per snapshot by maximum likelihood on frequency / recency / T (weeks) from customer_rfm; parameters and fit quality in clv_model_fit.",
        "BG/NBD assumes a customer can only drop out right after a purchase, so one-time buyers (frequency 0) always get p_alive = 1; their expected purchases still fall with T.",
        "Gamma-Gamma is fitted on repeat buyers with positive mean spend only; expected_average_spend shrinks a customer's own mean towards the population mean (one-time buyers get the population mean).",
        "clv_revenue = expected_average_spend x sum over months i = 1..H of [E N(i) - E N(i-1)] / (1 + d)^i with H = clv_horizon_months (run parameter clv_months, default 12), a month of 4.345 weeks and d = clv_monthly_discount (default 1%). Null when a model was skipped.",
        "clv = clv_revenue x margin_rate: expected contribution margin (revenue - cost of goods - shipping - interaction costs, the margin of channel_economics' LTV), so CLV and LTV/CAC compare like with like. margin_rate is the customer's own net_profit / revenue with at least 2 purchase days and positive revenue, else the portfolio's (margin_rate_source).",
    ),
    columns=(
        _SNAP,
        _CUST,
        c("p_alive", "double", "Probability that the customer is still active (BG/NBD)."),
        c("expected_purchases_4w", "double", "Expected purchase days in the next 4 weeks."),
        c("expected_purchases_13w", "double", "Expected purchase days in the next 13 weeks."),
        c("expected_purchases_52w", "double", "Expected purchase days in the next 52 weeks."),
        c("expected_average_spend", "double", "Expected spend per future purchase day (Gamma-Gamma)."),
        c("clv_revenue", "double", "Discounted expected revenue over the next clv_horizon_months months (see notes)."),
        c("margin_rate", "double", "Contribution margin rate applied to clv_revenue: net_profit / revenue of the customer, or of the portfolio (margin_rate_source)."),
        c("margin_rate_source", "string", "customer (own history: 2+ purchase days, positive revenue) or portfolio (all buyers)."),
        c("clv", "double", "Discounted expected contribution margin over the next clv_horizon_months months: clv_revenue x margin_rate."),
        c("clv_horizon_months", "int", "CLV horizon in months (default 12)."),
    ),
)

CLV_MODEL_FIT = Table(
    name="clv_model_fit",
    comment="Fitted CLV model parameters and fit quality per snapshot, in long format.",
    grain="one row per snapshot date x model x parameter",
    key=("snapshot_date", "model", "parameter"),
    notes=(
        "model bgnbd: parameters r, alpha, a, b; model gamma_gamma: p, q, gamma (named as in Fader, Hardie and Lee).",
        "status ok = converged within sane bounds; skipped = too few customers (message says how many); failed = stops the run at the mart gate.",
    ),
    columns=(
        _SNAP,
        c("model", "string", "bgnbd or gamma_gamma.", nullable=False),
        c("parameter", "string", "Parameter name (r, alpha, a, b, p, q, gamma) or 'skipped'.", nullable=False),
        c("value", "double", "Maximum-likelihood estimate."),
        c("log_likelihood", "double", "Log-likelihood of the fit."),
        c("customers", "bigint", "Customers the fit used."),
        c("converged", "boolean", "Whether the optimiser reported convergence."),
        c("status", "string", "ok, skipped or failed."),
        c("message", "string", "Optimiser message, skip reason or the bounds that were broken."),
    ),
)

METRIC_MARTS: tuple[Table, ...] = (
    CUSTOMER_PROFITABILITY,
    CUSTOMER_RFM,
    CUSTOMER_SEGMENTS,
    COHORT_RETENTION,
    CHANNEL_ECONOMICS,
    REVENUE_RETENTION,
    CUSTOMER_MOVEMENTS,
    PORTFOLIO_SUMMARY,
    PORTFOLIO_BREAKDOWN,
    WHALE_CURVE,
    CUSTOMER_CLV,
    CLV_MODEL_FIT,
)

PIPELINE_RUNS = Table(
    name="pipeline_runs",
    comment="One row per pipeline run attempt that reached the record step.",
    grain="one row per run id",
    key=("run_id",),
    columns=(
        c("run_id", "string", "Airflow run id (or the CLI's run id).", nullable=False),
        _SNAP,
        c("outcome", "string", "success or failed."),
        c("failed_step", "string", "The step that failed, if any (one of schemas.steps.STEPS)."),
        c("message", "string", "Error message of the failed step (credentials masked)."),
        c("rows_extracted", "bigint", "Rows written to the lake by the extract step."),
        c("rows_quarantined", "bigint", "Rows set aside by the quality gate."),
        c("rows_restated", "bigint", "Rows of the snapshot known only from a version captured after it (an entity first "
          "captured later, counted from its earliest version: see the README's backfills section)."),
        c("rows_published", "bigint", "Rows written to the marts for the snapshot."),
        c("step_seconds", "string", "JSON object: seconds per step."),
        c("recorded_at", "timestamp", "Wall-clock time the run was recorded (informational only)."),
    ),
)

QUARANTINE = Table(
    name="quarantine",
    comment="Rows left out of the metrics by the quality gate, with the reason.",
    grain="one row per quarantined source row version per snapshot date",
    key=(),
    columns=(
        _SNAP,
        c("run_id", "string", "Run that quarantined the row."),
        c("source_table", "string", "Source table of the row.", nullable=False),
        c("row_key", "string", "The row's key (order_id, interaction_id, order_id:line_number)."),
        c("reason_code", "string", "Why the row was set aside (see docs/quality.md).", nullable=False),
        c("row_json", "string", "The row as JSON (PII-free columns only)."),
    ),
)

DQ_RESULTS = Table(
    name="dq_results",
    comment="Great Expectations results per run, suite and expectation.",
    grain="one row per run x suite x expectation",
    key=(),
    columns=(
        _SNAP,
        c("run_id", "string", "Run id."),
        c("suite", "string", "Expectation suite name (raw_<table> or mart_<table>).", nullable=False),
        c("expectation", "string", "Expectation type and column.", nullable=False),
        c("success", "boolean", "Whether the expectation held."),
        c("observed_value", "string", "Observed value or unexpected count, as text."),
        c("details", "string", "A few unexpected values, as JSON."),
    ),
)

OPERATIONAL_TABLES: tuple[Table, ...] = (PIPELINE_RUNS, QUARANTINE, DQ_RESULTS)
MART_BY_NAME = {t.name: t for t in METRIC_MARTS + OPERATIONAL_TABLES}
