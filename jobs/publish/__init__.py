"""Getting results out: `to_warehouse` (lake marts -> warehouse marts in one transaction, with
views and grants), `to_s3` (a published snapshot -> Parquet and a manifest on S3) and `runs`
(the run's row in marts.pipeline_runs)."""
