-- crm-metrics bench: the lifetimes-style summary (frequency, recency, T, monetary_value) in
-- DuckDB SQL, from the raw lake's orders: the third engine beside pandas
-- (devtools/bench/pandas_summary.py) and Spark (devtools/bench/spark_job.py lifetimes_summary), with the
-- same conventions: the orders as of the snapshot (the versions visible at it, as in
-- reference_inputs.sql: updated by the end of the snapshot day, or an order's first version
-- when the order was placed by then), the latest version of each order by updated_at (an order
-- whose latest version is a tombstone is gone), no validity rules, a purchase occasion = a
-- customer-day with an order neither cancelled nor refunded (a null status counts, as pandas'
-- `~isin`), spend = gross - discount - refund in integer cents, the first occasion left out of
-- the monetary value, weeks = days / 7.
--
-- The raw orders (a Delta table) are registered as raw_orders by devtools/bench/duckdb_reference.py
-- (an Arrow dataset read by delta-rs).
-- Placeholders filled in by devtools/bench/duckdb_reference.py:
--   {snapshot}          YYYY-MM-DD               {snapshot_end}  snapshot + 1 day
--   {out}               output folder
-- Run by hand: register raw_orders, fill the placeholders in, then run the statement.

-- timestamps are UTC by contract
SET TimeZone = 'UTC';

COPY (
    WITH visible AS (
        SELECT * FROM (SELECT *, min(updated_at) OVER (PARTITION BY order_id) AS first_update FROM raw_orders)
        WHERE updated_at < TIMESTAMP '{snapshot_end}'
           OR (updated_at = first_update AND coalesce(ordered_at < TIMESTAMP '{snapshot_end}', false))
    ),
    newest AS (
        SELECT unnest(arg_max({{'customer_id': customer_id, 'ordered_at': ordered_at, 'status': status,
                                'spend': CAST((gross_amount - discount_amount - refund_amount) * 100 AS BIGINT),
                                'deleted': _deleted}},
                              updated_at))
        FROM visible
        GROUP BY order_id
    ),
    latest AS (
        SELECT * FROM newest WHERE NOT deleted
    ),
    occasions AS (
        SELECT customer_id, CAST(CAST(ordered_at AS TIMESTAMP) AS DATE) AS day, sum(spend) AS spend
        FROM latest
        WHERE (status IS NULL OR status NOT IN ('cancelled', 'refunded'))
          AND customer_id IS NOT NULL AND ordered_at IS NOT NULL
        GROUP BY ALL
    ),
    per AS (
        SELECT customer_id, min(day) AS first, max(day) AS last, count(*) - 1 AS frequency,
               sum(spend) - arg_min(spend, day) AS repeat_cents
        FROM occasions
        GROUP BY customer_id
    )
    SELECT customer_id,
           CAST(frequency AS INTEGER) AS frequency,
           date_diff('day', first, last) / 7.0 AS recency,
           date_diff('day', first, DATE '{snapshot}') / 7.0 AS "T",
           CASE WHEN frequency > 0 THEN (CAST(repeat_cents AS DOUBLE) / 100.0) / frequency ELSE 0.0 END AS monetary_value
    FROM per
) TO '{out}/lifetimes_summary.parquet' (FORMAT parquet);
