"""Idempotency keys sent to providers, derived so that a retry is recognisably the same request upstream."""
from __future__ import annotations

import hashlib
import hmac


def upstream_key(id_key: bytes, tenant: str, name: str, purpose: str) -> str:
    """40 hex characters (the Open Banking limit), the same on every retry, different per tenant and purpose, and
    revealing nothing of `name` (a caller's Idempotency-Key, or a payment id)."""
    mac = hmac.new(id_key, f"idempotency\x00{purpose}\x00{tenant}\x00{name}".encode(), hashlib.sha256)
    return mac.hexdigest()[:40]
