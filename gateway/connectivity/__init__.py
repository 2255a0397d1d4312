"""Connectivity: pooled sessions per upstream, timeouts, retries within a budget, circuit breakers, tokens."""
