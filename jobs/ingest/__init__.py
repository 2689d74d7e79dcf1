"""Getting data in: `extract` (the source warehouse's tables -> the lake's raw Delta history of
captured versions) and `importer/` (a plain transactions file -> the source schema)."""
