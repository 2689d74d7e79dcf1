"""Data-quality gates: row-level rules (quarantine) and Great Expectations suites."""
