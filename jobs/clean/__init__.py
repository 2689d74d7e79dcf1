"""The validate_raw stage's data side: `snapshot_inputs` (raw history -> the versions visible at a
snapshot, checked by the rules), `changes` (which keys can differ from a recorded snapshot),
`layer` (the clean and rejected Delta tables, moved key by key or rebuilt) and
`customer_day_state` (the customer-day facts moved with them)."""
