"""Payment initiation, provider-agnostic: the state machine, idempotency, and the reconciliation worker."""
