"""Errors every store backend raises the same way, so callers catch one class whichever backend runs."""
from __future__ import annotations


class LostIdempotencyClaim(Exception):
    """The claim on an idempotency key passed to another request before this one could finish."""
