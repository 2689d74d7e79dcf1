-- crm-metrics bench: the DuckDB reference, inputs stage, hand-written: raw lake -> the versions
-- visible at the snapshot -> the latest version of every row -> the validity rules -> the clean
-- layer (what the pipeline's validate_raw gate writes with jobs.clean.snapshot_inputs.write_clean).
--
-- It reads the same raw Delta tables as Spark (every captured version of every row, with the
-- lake's bookkeeping columns _deleted, _captured_for, _captured_run), registered in the
-- connection by devtools/bench/duckdb_reference.py as raw_<table> (Arrow datasets read by delta-rs:
-- only the files of the table's current version). It rebuilds the as-of-snapshot view on its own
-- (the rules of jobs.clean.snapshot_inputs.read_raw, written again here, not called):
--   * a version is visible at D when it was updated by the end of D (updated_at < D + 1 day);
--   * so is the earliest version of an entity whose first version is newer than that but which
--     existed by D: its event time (orders ordered_at, an order line's order's earliest
--     ordered_at, interactions occurred_at, customers signup_at, marketing_spend month) before
--     D + 1 day; any product;
--   * orders, order lines, interactions: the newest visible version per key (ties kept, exact
--     duplicates once; two different rows at the newest updated_at are both invalid), keys whose
--     newest visible version is a tombstone (_deleted) left out;
--   * customers, products, marketing_spend: one row per key, the newest visible version, deleted
--     keys left out;
-- then the validity rules of jobs/quality/rules.py (a row is clean when no rule flags it), and
-- writes the six clean tables as Parquet files {clean_out}/<table>.parquet, with the columns of
-- the lake contract (no bookkeeping columns). The bench checks them against Spark's clean layer
-- (row count and an order-independent hash).
--
-- Placeholders filled in by devtools/bench/duckdb_reference.py:
--   {snapshot}          YYYY-MM-DD               {snapshot_end}  snapshot + 1 day
--   {clean_out}         output folder            {max_order_amount}  run parameter
--   {currencies} {statuses} {sales_channels} {interaction_types}
--                       accepted values (schemas/source.py), as SQL lists
-- Run by hand: register the raw tables (e.g. in Python, con.register('raw_orders',
-- deltalake.DeltaTable('<lake>/raw/orders').to_pyarrow_dataset()), one per table), fill the
-- placeholders in, then run the statements.

-- timestamps are UTC by contract
SET TimeZone = 'UTC';

-- -- current-state tables: the newest version visible at the snapshot, one row per key --------
CREATE OR REPLACE TEMP TABLE customers AS
WITH v AS (
    SELECT *, min(updated_at) OVER (PARTITION BY customer_id) AS first_update FROM raw_customers
), newest AS (
    SELECT * FROM v
    WHERE updated_at < TIMESTAMP '{snapshot_end}'
       OR (updated_at = first_update AND coalesce(signup_at < TIMESTAMP '{snapshot_end}', false))
    QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY updated_at DESC) = 1
)
SELECT customer_id, signup_at, acquisition_channel, acquisition_cost, region, referred_by, updated_at
FROM newest WHERE NOT _deleted;

CREATE OR REPLACE TEMP TABLE products AS
WITH v AS (
    SELECT *, min(updated_at) OVER (PARTITION BY product_id) AS first_update FROM raw_products
), newest AS (
    SELECT * FROM v
    WHERE updated_at < TIMESTAMP '{snapshot_end}' OR updated_at = first_update
    QUALIFY row_number() OVER (PARTITION BY product_id ORDER BY updated_at DESC) = 1
)
SELECT product_id, category, list_price, unit_cost, updated_at
FROM newest WHERE NOT _deleted;

CREATE OR REPLACE TEMP TABLE marketing_spend AS
WITH v AS (
    SELECT *, min(updated_at) OVER (PARTITION BY month, channel) AS first_update FROM raw_marketing_spend
), newest AS (
    SELECT * FROM v
    WHERE updated_at < TIMESTAMP '{snapshot_end}'
       OR (updated_at = first_update AND coalesce(CAST(month AS TIMESTAMP) < TIMESTAMP '{snapshot_end}', false))
    QUALIFY row_number() OVER (PARTITION BY month, channel ORDER BY updated_at DESC) = 1
)
SELECT month, channel, spend, updated_at
FROM newest WHERE NOT _deleted;

-- nothing can be bought before the first customer signed up (run parameter company_start)
CREATE OR REPLACE TEMP TABLE company AS
SELECT CAST(min(CAST(signup_at AS DATE)) AS TIMESTAMP) AS company_start FROM customers;

-- -- orders -------------------------------------------------------------------------------------
-- the newest visible version of each order_id (ties kept, identical rows once, as Spark's
-- latest_versions); two different rows at the newest updated_at are both invalid
-- (duplicate_order_id: the row hashes differ); an order whose newest version is a tombstone is
-- gone
CREATE OR REPLACE TEMP TABLE orders_checked AS
WITH v AS (
    SELECT *, min(updated_at) OVER (PARTITION BY order_id) AS first_update FROM raw_orders
), latest AS (
    SELECT DISTINCT order_id, customer_id, ordered_at, channel, status, currency, gross_amount,
           discount_amount, refund_amount, shipping_cost, updated_at, _deleted
    FROM v
    WHERE updated_at < TIMESTAMP '{snapshot_end}'
       OR (updated_at = first_update AND coalesce(ordered_at < TIMESTAMP '{snapshot_end}', false))
    QUALIFY rank() OVER (PARTITION BY order_id ORDER BY updated_at DESC) = 1
), hashed AS (
    SELECT *, hash(order_id, customer_id, ordered_at, channel, status, currency, gross_amount,
                   discount_amount, refund_amount, shipping_cost, updated_at) AS row_hash
    FROM latest
), versions AS (
    SELECT *, min(row_hash) OVER v <> max(row_hash) OVER v AS duplicate
    FROM hashed
    WINDOW v AS (PARTITION BY order_id, updated_at)
), flagged AS (
    SELECT h.*, k.customer_id IS NOT NULL AS known_customer
    FROM (SELECT * FROM versions WHERE NOT _deleted) h LEFT JOIN (SELECT DISTINCT customer_id FROM customers) k ON h.customer_id = k.customer_id
)
SELECT order_id, customer_id, ordered_at, channel, status, currency, gross_amount, discount_amount,
       refund_amount, shipping_cost, updated_at,
       order_id IS NOT NULL AND customer_id IS NOT NULL AND NOT duplicate AND known_customer
       AND NOT coalesce(gross_amount < 0 OR discount_amount < 0 OR refund_amount < 0 OR shipping_cost < 0, false)
       AND NOT coalesce(gross_amount > {max_order_amount}, false)
       AND NOT coalesce(discount_amount > gross_amount, false)
       AND NOT coalesce(refund_amount > gross_amount - discount_amount, false)
       AND coalesce(currency IN ({currencies}), false)
       AND coalesce(status IN ({statuses}), false)
       AND coalesce(channel IN ({sales_channels}), false)
       AND NOT coalesce(ordered_at >= TIMESTAMP '{snapshot_end}' OR ordered_at > updated_at, false)
       AND NOT coalesce(ordered_at < company_start, false) AS is_valid
FROM flagged, company;

-- -- order lines: valid only when their order has a valid version (orphan_order_id,
-- order_quarantined) and their product exists. A line's event time is its order's: the
-- earliest ordered_at of any captured version of the order ------------------------------------
CREATE OR REPLACE TEMP TABLE order_items_clean AS
WITH placed AS (
    SELECT order_id, min(ordered_at) AS placed_at FROM raw_orders GROUP BY order_id
), v AS (
    SELECT i.*, p.placed_at, min(i.updated_at) OVER (PARTITION BY i.order_id, i.line_number) AS first_update
    FROM raw_order_items i LEFT JOIN placed p ON i.order_id IS NOT DISTINCT FROM p.order_id
), latest AS (
    SELECT DISTINCT order_id, line_number, product_id, quantity, unit_price, unit_cost, updated_at, _deleted
    FROM v
    WHERE updated_at < TIMESTAMP '{snapshot_end}'
       OR (updated_at = first_update AND coalesce(placed_at < TIMESTAMP '{snapshot_end}', false))
    QUALIFY rank() OVER (PARTITION BY order_id, line_number ORDER BY updated_at DESC) = 1
), hashed AS (
    SELECT *, hash(order_id, line_number, product_id, quantity, unit_price, unit_cost, updated_at) AS row_hash
    FROM latest
), flagged AS (
    SELECT *, min(row_hash) OVER v <> max(row_hash) OVER v AS duplicate
    FROM hashed
    WINDOW v AS (PARTITION BY order_id, line_number, updated_at)
)
SELECT order_id, line_number, product_id, quantity, unit_price, unit_cost, updated_at
FROM flagged
WHERE NOT _deleted AND order_id IS NOT NULL AND line_number IS NOT NULL AND NOT duplicate
  AND order_id IN (SELECT order_id FROM orders_checked WHERE is_valid)
  AND product_id IN (SELECT product_id FROM products WHERE product_id IS NOT NULL)
  AND NOT coalesce(quantity <= 0, false)
  AND NOT coalesce(unit_price < 0 OR unit_cost < 0, false);

-- -- interactions -------------------------------------------------------------------------------
CREATE OR REPLACE TEMP TABLE interactions_clean AS
WITH v AS (
    SELECT *, min(updated_at) OVER (PARTITION BY interaction_id) AS first_update FROM raw_interactions
), latest AS (
    SELECT DISTINCT interaction_id, customer_id, occurred_at, interaction_type, cost, satisfaction, updated_at, _deleted
    FROM v
    WHERE updated_at < TIMESTAMP '{snapshot_end}'
       OR (updated_at = first_update AND coalesce(occurred_at < TIMESTAMP '{snapshot_end}', false))
    QUALIFY rank() OVER (PARTITION BY interaction_id ORDER BY updated_at DESC) = 1
), hashed AS (
    SELECT *, hash(interaction_id, customer_id, occurred_at, interaction_type, cost, satisfaction, updated_at) AS row_hash
    FROM latest
), flagged AS (
    SELECT *, min(row_hash) OVER v <> max(row_hash) OVER v AS duplicate
    FROM hashed
    WINDOW v AS (PARTITION BY interaction_id, updated_at)
)
SELECT interaction_id, customer_id, occurred_at, interaction_type, cost, satisfaction, updated_at
FROM flagged, company
WHERE NOT _deleted AND interaction_id IS NOT NULL AND customer_id IS NOT NULL AND NOT duplicate
  AND customer_id IN (SELECT customer_id FROM customers)
  AND NOT coalesce(interaction_type NOT IN ({interaction_types}), false)
  AND NOT coalesce(cost < 0, false)
  AND NOT coalesce(satisfaction < 1 OR satisfaction > 5, false)
  AND NOT coalesce(occurred_at >= TIMESTAMP '{snapshot_end}' OR occurred_at > updated_at, false)
  AND NOT coalesce(occurred_at < company_start, false);

-- -- the clean layer ---------------------------------------------------------------------------
COPY (SELECT order_id, customer_id, ordered_at, channel, status, currency, gross_amount, discount_amount,
             refund_amount, shipping_cost, updated_at
      FROM orders_checked WHERE is_valid) TO '{clean_out}/orders.parquet' (FORMAT parquet);
COPY order_items_clean TO '{clean_out}/order_items.parquet' (FORMAT parquet);
COPY interactions_clean TO '{clean_out}/interactions.parquet' (FORMAT parquet);
COPY customers TO '{clean_out}/customers.parquet' (FORMAT parquet);
COPY products TO '{clean_out}/products.parquet' (FORMAT parquet);
COPY marketing_spend TO '{clean_out}/marketing_spend.parquet' (FORMAT parquet);
