"""Developer tools, apart from the production package `jobs`: `generate` (a realistic sample
source warehouse), `bench/` (Spark against DuckDB and pandas) and `docs` (docs/ from schemas/).
Installed with it so that `crm-metrics generate` and `crm-metrics bench` work; nothing in
`jobs` imports them."""
