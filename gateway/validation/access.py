"""Who may do what: API-key callers, their scopes and providers, and what each provider can do at all."""
from __future__ import annotations

import hashlib

import attrs

from adapters.base import Adapter
from gateway.config import CallerConfig
from gateway.errors import Forbidden, Unauthenticated, UnsupportedOperation


@attrs.frozen(slots=True)
class Caller:
    name: str
    tenant: str
    scopes: frozenset[str]
    providers: frozenset[str]  # "*" means all

    def may_use(self, provider: str) -> bool:
        return "*" in self.providers or provider in self.providers


class CallerDirectory:
    """API keys are stored as SHA-256 hashes; a presented key is hashed and looked up."""

    def __init__(self, callers: tuple[CallerConfig, ...]) -> None:
        self._by_hash = {
            bytes.fromhex(c.key_sha256): Caller(c.name, c.tenant, frozenset(c.scopes), frozenset(c.providers))
            for c in callers
        }

    def authenticate(self, authorization: str | None) -> Caller:
        if not authorization:
            raise Unauthenticated("send the API key as 'Authorization: Bearer <key>'")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthenticated("send the API key as 'Authorization: Bearer <key>'")
        digest = hashlib.sha256(key.strip().encode()).digest()
        # The lookup is by SHA-256 of the presented key, so its timing tells nothing about any stored key.
        caller = self._by_hash.get(digest)
        if caller is None:
            raise Unauthenticated("the API key is not valid")
        return caller


def require_scope(caller: Caller, scope: str) -> None:
    if scope not in caller.scopes:
        raise Forbidden(f"this API key lacks the scope {scope!r}")


def require_provider(caller: Caller, provider: str) -> None:
    if not caller.may_use(provider):
        raise Forbidden(f"this API key may not use the provider {provider!r}")


def require_capability(adapter: Adapter, operation: str) -> None:
    if operation not in adapter.capabilities:
        raise UnsupportedOperation(f"{adapter.provider_id} does not support {operation}")
