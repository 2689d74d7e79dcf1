"""The pipeline: `steps` (extract -> validate_raw -> build_marts -> validate_marts -> publish ->
export -> record -> report, each a function of one run's context, as the DAG's tasks call them),
`lineage` (each step's OpenLineage inputs and outputs) and `maintain` (compaction and vacuum)."""
