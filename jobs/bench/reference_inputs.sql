-- crm-metrics bench: the DuckDB reference, inputs stage, hand-written: raw lake -> the latest
-- version of every row -> the validity rules -> the clean layer (what the pipeline's validate_raw
-- gate writes with jobs.snapshot_inputs.write_clean).
--
-- It reads the same lake Parquet as Spark (raw/<table>/extract_date=D/*.parquet, every version
-- of every row), applies the same as-of-snapshot rules (latest version per key, as
-- jobs.snapshot_inputs.latest_versions; the validity rules of jobs/quality/rules.py; a row is
-- clean when no rule flags it) and writes the six clean tables as Parquet files
-- {clean_out}/<table>.parquet, with the columns of the lake contract (extract_date dropped).
-- The bench checks them against Spark's clean layer (row count and an order-independent hash).
--
-- Placeholders filled in by jobs/bench/duckdb_reference.py:
--   {raw}               lake raw folder          {snapshot}      YYYY-MM-DD
--   {snapshot_end}      snapshot + 1 day         {clean_out}     output folder
--   {max_order_amount}  run parameter            {currencies} {statuses} {sales_channels}
--   {interaction_types} accepted values (schemas/source.py), as SQL lists
-- Run by hand: fill them in, then `duckdb < reference_inputs.sql`.

-- timestamps are UTC by contract
SET TimeZone = 'UTC';

-- -- current-state tables: the snapshot's copy ---------------------------------------------
CREATE OR REPLACE TEMP TABLE customers AS
SELECT customer_id, signup_at, acquisition_channel, acquisition_cost, region, referred_by, updated_at
FROM read_parquet('{raw}/customers/extract_date={snapshot}/*.parquet', hive_partitioning = false);

CREATE OR REPLACE TEMP TABLE products AS
SELECT product_id, category, list_price, unit_cost, updated_at
FROM read_parquet('{raw}/products/extract_date={snapshot}/*.parquet', hive_partitioning = false);

CREATE OR REPLACE TEMP TABLE marketing_spend AS
SELECT month, channel, spend, updated_at
FROM read_parquet('{raw}/marketing_spend/extract_date={snapshot}/*.parquet', hive_partitioning = false);

-- nothing can be bought before the first customer signed up (run parameter company_start)
CREATE OR REPLACE TEMP TABLE company AS
SELECT CAST(min(CAST(signup_at AS DATE)) AS TIMESTAMP) AS company_start FROM customers;

-- -- orders -------------------------------------------------------------------------------------
-- the newest version of each order_id (ties kept, identical rows once per extract_date, as
-- Spark's rank + dropDuplicates); two different rows at the newest updated_at are both invalid
-- (duplicate_order_id: the row hashes differ)
CREATE OR REPLACE TEMP TABLE orders_checked AS
WITH latest AS (
    SELECT DISTINCT order_id, customer_id, ordered_at, channel, status, currency, gross_amount,
           discount_amount, refund_amount, shipping_cost, updated_at, extract_date
    FROM read_parquet('{raw}/orders/extract_date=*/*.parquet', hive_partitioning = true,
                      hive_types = {{'extract_date': DATE}})
    WHERE extract_date <= DATE '{snapshot}'
    QUALIFY rank() OVER (PARTITION BY order_id ORDER BY updated_at DESC) = 1
), hashed AS (
    SELECT *, hash(order_id, customer_id, ordered_at, channel, status, currency, gross_amount,
                   discount_amount, refund_amount, shipping_cost, updated_at) AS row_hash
    FROM latest
), flagged AS (
    SELECT h.*, min(row_hash) OVER v <> max(row_hash) OVER v AS duplicate,
           k.customer_id IS NOT NULL AS known_customer
    FROM hashed h LEFT JOIN (SELECT DISTINCT customer_id FROM customers) k ON h.customer_id = k.customer_id
    WINDOW v AS (PARTITION BY h.order_id, h.updated_at)
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
-- order_quarantined) and their product exists ------------------------------------------------
CREATE OR REPLACE TEMP TABLE order_items_clean AS
WITH latest AS (
    SELECT DISTINCT order_id, line_number, product_id, quantity, unit_price, unit_cost, updated_at, extract_date
    FROM read_parquet('{raw}/order_items/extract_date=*/*.parquet', hive_partitioning = true,
                      hive_types = {{'extract_date': DATE}})
    WHERE extract_date <= DATE '{snapshot}'
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
WHERE order_id IS NOT NULL AND line_number IS NOT NULL AND NOT duplicate
  AND order_id IN (SELECT order_id FROM orders_checked WHERE is_valid)
  AND product_id IN (SELECT product_id FROM products WHERE product_id IS NOT NULL)
  AND NOT coalesce(quantity <= 0, false)
  AND NOT coalesce(unit_price < 0 OR unit_cost < 0, false);

-- -- interactions -------------------------------------------------------------------------------
CREATE OR REPLACE TEMP TABLE interactions_clean AS
WITH latest AS (
    SELECT DISTINCT interaction_id, customer_id, occurred_at, interaction_type, cost, satisfaction, updated_at, extract_date
    FROM read_parquet('{raw}/interactions/extract_date=*/*.parquet', hive_partitioning = true,
                      hive_types = {{'extract_date': DATE}})
    WHERE extract_date <= DATE '{snapshot}'
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
WHERE interaction_id IS NOT NULL AND customer_id IS NOT NULL AND NOT duplicate
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
