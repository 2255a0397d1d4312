"""Stripe as a UK ASPSP (Open Banking v3.1.2, FAPI, DCR v3.2): the simulated upstream; the adapter lives beside it."""
