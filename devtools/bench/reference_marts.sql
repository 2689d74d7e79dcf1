-- crm-metrics bench: the DuckDB reference, metric stage, hand-written: customer_profitability,
-- customer_rfm and cohort_retention from the clean layer; what a user would otherwise run on one
-- machine.
--
-- It reads the clean layer that Spark's inputs stage wrote (the same Delta tables Spark's metric
-- stage reads: lake/clean/<table> at the Delta version recorded for snapshot D, valid latest
-- versions only), registered in the connection by devtools/bench/duckdb_reference.py as
-- clean_<table>: an Arrow dataset read by delta-rs (only the files of that version). It applies the same metric rules (schemas/marts.py,
-- docs/marts.md) and writes the three marts as Parquet under {out}. The inputs stage (versions visible at the snapshot,
-- latest versions, validity rules) is reference_inputs.sql.
--
-- Placeholders filled in by devtools/bench/duckdb_reference.py:
--   {snapshot}          YYYY-MM-DD               {snapshot_end}  snapshot + 1 day
--   {out}               output folder
-- Run by hand: register clean_customers, clean_orders, clean_order_items and
-- clean_interactions (e.g. in Python, con.register('clean_orders',
-- deltalake.DeltaTable('<lake>/clean/orders', version=V).to_pyarrow_dataset()), V from the
-- lake's `snapshots` table),
-- fill the placeholders in, then run the statements.

-- timestamps are UTC by contract (the clean layer stores instants)
SET TimeZone = 'UTC';

-- -- inputs: the clean layer of the snapshot (its recorded version) ------------------------------------------------
CREATE OR REPLACE TEMP TABLE customers AS
SELECT customer_id, CAST(signup_at AS TIMESTAMP) AS signup_at, acquisition_channel, acquisition_cost
FROM clean_customers;

CREATE OR REPLACE TEMP TABLE orders_ok AS
SELECT order_id, customer_id, CAST(CAST(ordered_at AS TIMESTAMP) AS DATE) AS activity_date, status,
       gross_amount, discount_amount, refund_amount, shipping_cost
FROM clean_orders;

-- cost of goods per order from its lines (clean lines belong to clean orders)
CREATE OR REPLACE TEMP TABLE order_cogs AS
SELECT order_id, sum(quantity * unit_cost) AS line_cogs
FROM clean_order_items
GROUP BY order_id;

-- interaction cost per customer and day
CREATE OR REPLACE TEMP TABLE interaction_day AS
SELECT customer_id, CAST(CAST(occurred_at AS TIMESTAMP) AS DATE) AS activity_date, sum(cost) AS interaction_cost
FROM clean_interactions
GROUP BY ALL;

-- -- customer-day facts: one row per customer and day with an order or an interaction --------
-- cancelled orders carry no money; a fully refunded order is not a purchase and has no cost of
-- goods, but its shipping counts; a purchase day has at least one purchase
CREATE OR REPLACE TEMP TABLE customer_day AS
WITH order_day AS (
    SELECT o.customer_id, o.activity_date,
           count(*) AS orders,
           count(*) FILTER (WHERE o.status NOT IN ('cancelled', 'refunded')) AS purchase_orders,
           sum(CASE WHEN o.status <> 'cancelled' THEN o.gross_amount ELSE 0 END) AS gross_revenue,
           sum(CASE WHEN o.status <> 'cancelled' THEN o.discount_amount ELSE 0 END) AS discount,
           sum(CASE WHEN o.status <> 'cancelled' THEN o.refund_amount ELSE 0 END) AS refund,
           sum(CASE WHEN o.status <> 'cancelled' THEN o.gross_amount - o.discount_amount - o.refund_amount ELSE 0 END) AS net_revenue,
           sum(CASE WHEN o.status NOT IN ('cancelled', 'refunded') THEN coalesce(c.line_cogs, 0) ELSE 0 END) AS cogs,
           sum(CASE WHEN o.status <> 'cancelled' THEN o.shipping_cost ELSE 0 END) AS shipping_cost
    FROM orders_ok o LEFT JOIN order_cogs c ON o.order_id = c.order_id
    GROUP BY ALL
)
SELECT customer_id, activity_date,
       coalesce(orders, 0) AS orders,
       coalesce(purchase_orders, 0) AS purchase_orders,
       coalesce(purchase_orders, 0) > 0 AS is_purchase_day,
       coalesce(gross_revenue, 0) AS gross_revenue,
       coalesce(discount, 0) AS discount,
       coalesce(refund, 0) AS refund,
       coalesce(net_revenue, 0) AS net_revenue,
       coalesce(cogs, 0) AS cogs,
       coalesce(shipping_cost, 0) AS shipping_cost,
       coalesce(interaction_cost, 0) AS interaction_cost
FROM order_day FULL OUTER JOIN interaction_day USING (customer_id, activity_date);

-- -- per customer: money, purchase days, lifetimes fields ----------------------------------
CREATE OR REPLACE TEMP TABLE summary AS
WITH days AS (
    SELECT *,
           CASE WHEN is_purchase_day THEN activity_date - lag(activity_date) OVER (
               PARTITION BY customer_id, is_purchase_day ORDER BY activity_date) END AS gap_days
    FROM customer_day
), s AS (
    SELECT customer_id,
           sum(orders) AS orders,
           sum(purchase_orders) AS purchase_orders,
           count(*) FILTER (WHERE is_purchase_day) AS purchase_days,
           sum(gross_revenue) AS gross_revenue,
           sum(discount) AS discounts,
           sum(refund) AS refunds,
           sum(net_revenue) AS revenue,
           sum(cogs) AS cogs,
           sum(shipping_cost) AS shipping_cost,
           sum(interaction_cost) AS interaction_cost,
           min(activity_date) FILTER (WHERE is_purchase_day) AS first_purchase_date,
           max(activity_date) FILTER (WHERE is_purchase_day) AS last_purchase_date,
           sum(net_revenue) FILTER (WHERE is_purchase_day) AS purchase_spend,
           arg_min(net_revenue, activity_date) FILTER (WHERE is_purchase_day) AS first_day_spend,
           avg(CAST(net_revenue AS DOUBLE)) FILTER (WHERE is_purchase_day) AS spend_mean,
           stddev_pop(CAST(net_revenue AS DOUBLE)) FILTER (WHERE is_purchase_day) AS spend_std,
           avg(CAST(gap_days AS DOUBLE)) AS gap_mean_days,
           stddev_pop(CAST(gap_days AS DOUBLE)) AS gap_std_days
    FROM days
    GROUP BY customer_id
)
SELECT *,
       purchase_days - 1 AS frequency,
       (last_purchase_date - first_purchase_date) / 7.0 AS recency,
       (DATE '{snapshot}' - first_purchase_date) / 7.0 AS "T",
       CASE WHEN purchase_days > 1
            THEN CAST(purchase_spend - first_day_spend AS DOUBLE) / (purchase_days - 1) ELSE 0.0 END AS monetary_value,
       DATE '{snapshot}' - last_purchase_date AS days_since_last_purchase
FROM s;

-- every customer signed up by the snapshot or active by then
CREATE OR REPLACE TEMP TABLE base AS
SELECT p.customer_id, c.acquisition_channel,
       coalesce(c.acquisition_cost, 0) AS acquisition_cost,
       coalesce(s.orders, 0) AS orders,
       coalesce(s.purchase_orders, 0) AS purchase_orders,
       coalesce(s.purchase_days, 0) AS purchase_days,
       s.first_purchase_date, s.last_purchase_date,
       coalesce(s.gross_revenue, 0) AS gross_revenue,
       coalesce(s.discounts, 0) AS discounts,
       coalesce(s.refunds, 0) AS refunds,
       coalesce(s.revenue, 0) AS revenue,
       coalesce(s.cogs, 0) AS cogs,
       coalesce(s.shipping_cost, 0) AS shipping_cost,
       coalesce(s.interaction_cost, 0) AS interaction_cost,
       coalesce(s.purchase_spend, 0) AS purchase_spend,
       s.spend_mean, s.spend_std, s.gap_mean_days, s.gap_std_days,
       s.frequency, s.recency, s."T", s.monetary_value, s.days_since_last_purchase
FROM (SELECT customer_id FROM customers WHERE signup_at < TIMESTAMP '{snapshot_end}'
      UNION SELECT customer_id FROM summary) p
LEFT JOIN customers c ON p.customer_id = c.customer_id
LEFT JOIN summary s ON p.customer_id = s.customer_id;

-- -- customer_profitability ------------------------------------------------------------------
COPY (
    WITH p AS (
        SELECT *, CAST(revenue - cogs AS DECIMAL(18, 2)) AS gross_margin,
               CAST(shipping_cost + interaction_cost AS DECIMAL(18, 2)) AS cost_to_serve
        FROM base
    )
    SELECT DATE '{snapshot}' AS snapshot_date, customer_id, acquisition_channel,
           orders, purchase_orders, purchase_days, first_purchase_date, last_purchase_date,
           CAST(gross_revenue AS DECIMAL(18, 2)) AS gross_revenue,
           CAST(discounts AS DECIMAL(18, 2)) AS discounts,
           CAST(refunds AS DECIMAL(18, 2)) AS refunds,
           CAST(revenue AS DECIMAL(18, 2)) AS revenue,
           CAST(cogs AS DECIMAL(18, 2)) AS cogs,
           gross_margin,
           CAST(shipping_cost AS DECIMAL(18, 2)) AS shipping_cost,
           CAST(interaction_cost AS DECIMAL(18, 2)) AS interaction_cost,
           cost_to_serve,
           CAST(acquisition_cost AS DECIMAL(18, 2)) AS acquisition_cost,
           CAST(gross_margin - cost_to_serve AS DECIMAL(18, 2)) AS net_profit,
           CAST(gross_margin - cost_to_serve - acquisition_cost AS DECIMAL(18, 2)) AS net_profit_after_acquisition,
           CASE WHEN purchase_days > 0 THEN row_number() OVER w END AS profit_rank,
           CASE WHEN purchase_days > 0 THEN ntile(10) OVER w END AS profit_decile
    FROM p
    WINDOW w AS (PARTITION BY purchase_days > 0 ORDER BY gross_margin - cost_to_serve DESC, customer_id)
) TO '{out}/customer_profitability.parquet' (FORMAT parquet);

-- -- customer_rfm ----------------------------------------------------------------------------
COPY (
    WITH r AS (
        SELECT customer_id, frequency, recency, "T", monetary_value, days_since_last_purchase, purchase_days,
               CAST(purchase_spend AS DOUBLE) / purchase_days AS avg_occasion_spend,
               CASE WHEN spend_mean > 0 THEN spend_std / spend_mean END AS spend_cv,
               gap_mean_days,
               CASE WHEN gap_mean_days > 0 THEN gap_std_days / gap_mean_days END AS gap_cv
        FROM base
        WHERE purchase_days > 0
    ), scored AS (
        SELECT *,
               -- rank-based quintiles: tied customers share the lower score
               CAST(1 + 5 * (rank() OVER (ORDER BY days_since_last_purchase DESC) - 1) // count(*) OVER () AS INTEGER) AS r_score,
               CAST(1 + 5 * (rank() OVER (ORDER BY frequency) - 1) // count(*) OVER () AS INTEGER) AS f_score,
               CAST(1 + 5 * (rank() OVER (ORDER BY avg_occasion_spend) - 1) // count(*) OVER () AS INTEGER) AS m_score
        FROM r
    )
    SELECT DATE '{snapshot}' AS snapshot_date, *,
           CAST(r_score AS VARCHAR) || CAST(f_score AS VARCHAR) || CAST(m_score AS VARCHAR) AS rfm_cell,
           CASE
               WHEN r_score = 5 AND f_score IN (4, 5) THEN 'Champions'
               WHEN r_score IN (3, 4) AND f_score IN (4, 5) THEN 'Loyal'
               WHEN r_score IN (4, 5) AND f_score IN (2, 3) THEN 'Potential loyalists'
               WHEN r_score = 5 AND f_score = 1 THEN 'New'
               WHEN r_score = 4 AND f_score = 1 THEN 'Promising'
               WHEN r_score = 3 AND f_score = 3 THEN 'Need attention'
               WHEN r_score = 3 AND f_score IN (1, 2) THEN 'About to sleep'
               WHEN r_score IN (1, 2) AND f_score IN (3, 4) THEN 'At risk'
               WHEN r_score IN (1, 2) AND f_score = 5 THEN 'Can''t lose'
               WHEN r_score IN (1, 2) AND f_score IN (1, 2) THEN 'Hibernating'
           END AS rfm_segment
    FROM scored
) TO '{out}/customer_rfm.parquet' (FORMAT parquet);

-- -- cohort_retention ------------------------------------------------------------------------
-- cohort = month of the first purchase; period k = whole months since; active = a purchase day
-- in the period; periods after the snapshot's month do not exist (no rows, never zeros)
CREATE OR REPLACE TEMP TABLE cohort AS
SELECT customer_id, CAST(date_trunc('month', first_purchase_date) AS DATE) AS cohort_month,
       coalesce(acquisition_channel, 'unknown') AS acquisition_channel
FROM base WHERE purchase_days > 0;

CREATE OR REPLACE TEMP TABLE cohort_month_activity AS
WITH months AS (
    SELECT customer_id, CAST(date_trunc('month', activity_date) AS DATE) AS month,
           bool_or(is_purchase_day) AS active,
           sum(net_revenue) AS revenue,
           sum(net_revenue - cogs - shipping_cost - interaction_cost) AS margin
    FROM customer_day GROUP BY ALL
)
SELECT m.customer_id, c.cohort_month, c.acquisition_channel, m.active, m.revenue, m.margin,
       datediff('month', c.cohort_month, m.month) AS period
FROM months m JOIN cohort c ON m.customer_id = c.customer_id
WHERE m.month >= c.cohort_month;

COPY (
    WITH sizes AS (
        SELECT cohort_month, acquisition_channel, count(*) AS cohort_size FROM cohort GROUP BY ALL
    ), by_period AS (
        SELECT cohort_month, acquisition_channel, period,
               count(*) FILTER (WHERE active) AS active_customers,
               sum(revenue) AS revenue, sum(margin) AS margin
        FROM cohort_month_activity GROUP BY ALL
    ), last_active AS (
        SELECT cohort_month, acquisition_channel, last_period AS period, count(*) AS last_active_here
        FROM (SELECT customer_id, cohort_month, acquisition_channel, max(period) AS last_period
              FROM cohort_month_activity WHERE active GROUP BY ALL)
        GROUP BY ALL
    ), grid AS (
        SELECT cohort_month, acquisition_channel, cohort_size,
               unnest(range(0, datediff('month', cohort_month, CAST(date_trunc('month', DATE '{snapshot}') AS DATE)) + 1)) AS period
        FROM sizes
    ), per_channel AS (
        SELECT g.cohort_month, g.acquisition_channel, g.period, g.cohort_size,
               coalesce(b.active_customers, 0) AS active_customers,
               coalesce(l.last_active_here, 0) AS last_active_here,
               coalesce(b.revenue, 0) AS revenue,
               coalesce(b.margin, 0) AS margin
        FROM grid g
        LEFT JOIN by_period b USING (cohort_month, acquisition_channel, period)
        LEFT JOIN last_active l USING (cohort_month, acquisition_channel, period)
    ), all_rows AS (
        SELECT * FROM per_channel
        UNION ALL
        SELECT cohort_month, 'all', period, sum(cohort_size), sum(active_customers), sum(last_active_here),
               sum(revenue), sum(margin)
        FROM per_channel GROUP BY cohort_month, period
    )
    SELECT DATE '{snapshot}' AS snapshot_date, cohort_month, acquisition_channel,
           CAST(period AS INTEGER) AS period,
           CAST(cohort_month + to_months(CAST(period AS INTEGER)) AS DATE) AS period_month,
           last_day(cohort_month + to_months(CAST(period AS INTEGER))) <= DATE '{snapshot}' AS is_complete_period,
           CAST(cohort_size AS BIGINT) AS cohort_size,
           CAST(active_customers AS BIGINT) AS active_customers,
           active_customers / cohort_size AS retention_rate,
           CAST(sum(last_active_here) OVER following AS BIGINT) AS unbounded_active_customers,
           sum(last_active_here) OVER following / cohort_size AS unbounded_retention_rate,
           CAST(revenue AS DECIMAL(18, 2)) AS revenue,
           CASE WHEN max(CASE WHEN period = 0 THEN revenue END) OVER cohort <> 0
                THEN CAST(revenue / max(CASE WHEN period = 0 THEN revenue END) OVER cohort AS DOUBLE) END AS revenue_vs_period_0,
           CAST(margin AS DECIMAL(18, 2)) AS margin,
           CAST(sum(revenue) OVER to_date / cohort_size AS DOUBLE) AS cumulative_revenue_per_customer,
           CAST(sum(margin) OVER to_date / cohort_size AS DOUBLE) AS cumulative_margin_per_customer
    FROM all_rows
    WINDOW cohort AS (PARTITION BY cohort_month, acquisition_channel),
           following AS (PARTITION BY cohort_month, acquisition_channel ORDER BY period
                         ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING),
           to_date AS (PARTITION BY cohort_month, acquisition_channel ORDER BY period
                       ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
) TO '{out}/cohort_retention.parquet' (FORMAT parquet);
