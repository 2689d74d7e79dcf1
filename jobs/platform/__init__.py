"""What the stages run on: `config` (settings and run parameters), `spark` (the session),
`warehouse/` (DuckDB and PostgreSQL), `lake` (paths, local or s3a://), `delta` (snapshot tables,
conflicts), `state_tables` (the clean layer's Delta versions and their record), `s3`,
`airflow_connections`, `parallel`, `pseudonymize` (keyed hashes) and `hooks` (the checkpoints
tests step in at)."""
