"""The tests' own support code: fault injection at the pipeline's checkpoints."""
