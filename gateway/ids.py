"""Gateway ids: a type prefix and 128+ bits that are unguessable, and for upstream objects also stable.

Created resources (customers, consents, …) get random ids. Objects that come from upstream listings (accounts,
transactions) get ids derived by HMAC from the tenant, the consent and the upstream id, so the same account has the
same id on every call, a caller cannot forge one for another tenant, and nothing needs storing to keep them stable.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIXES = frozenset({"cus", "con", "acc", "txn", "pay", "rep", "evt", "sub"})


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def new_id(prefix: str) -> str:
    assert prefix in PREFIXES, prefix
    return f"{prefix}_{_b32(secrets.token_bytes(15))}"


def has_prefix(value: str, prefix: str) -> bool:
    return isinstance(value, str) and value.startswith(prefix + "_") and 8 <= len(value) <= 64


class IdMinter:
    """Derives stable ids for upstream objects, scoped to one tenant and one consent."""

    __slots__ = ("_mac",)

    def __init__(self, key: bytes, tenant: str, scope: str) -> None:
        self._mac = hmac.new(key, f"{tenant}\x00{scope}\x00".encode(), hashlib.sha256)

    def derive(self, prefix: str, upstream_ref: str) -> str:
        mac = self._mac.copy()
        mac.update(f"{prefix}\x00{upstream_ref}".encode())
        return f"{prefix}_{_b32(mac.digest()[:15])}"

    def account(self, upstream_ref: str) -> str:
        return self.derive("acc", upstream_ref)

    def transaction(self, upstream_ref: str) -> str:
        return self.derive("txn", upstream_ref)
