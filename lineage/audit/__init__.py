"""The audit log, one module per noun: records, append, checkpoints, proofs, verify."""
