"""The contract, as code, below everything else: `source` (the source warehouse's tables),
`marts` (every mart's columns, types, comments, grain and keys), `expectations` (the Great
Expectations suites), `steps` (the DAG's steps in order) and `types` (logical column types per engine). The
DDL, Spark schemas, DAG assets and docs/ are generated from these."""
