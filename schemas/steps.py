"""The pipeline's steps in run order: the DAG's task ids, `marts.pipeline_runs.failed_step` and
the keys of its step timings. `record` and `report` follow them as tasks but are no steps."""

STEPS = ("extract", "validate_raw", "build_marts", "validate_marts", "publish", "export")
