"""A token broker: one fetch at a time per credential, renewal before expiry, one renewal on rejection.

Any number of concurrent callers share one fetch. A token is renewed after `renew_after` seconds (before the
provider's own expiry). `renew(stale)` replaces the token only if it is still the stale one, so a burst of
rejections triggers one renewal, not one each. A credentials failure is latched: the broker never asks again
with credentials the provider refused (some providers lock the account after a few failures); an operator must
fix the configuration and restart.
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

import attrs

from gateway.errors import GatewayCredentialsRejected, GatewayError


@attrs.frozen
class Token:
    value: str = attrs.field(repr=False)
    obtained_at: float


class TokenBroker:
    def __init__(self, name: str, fetch: Callable[[], Awaitable[str]], *, renew_after: float,
                 clock: Callable[[], float] = time.monotonic, on_fetch: Callable[[str], None] | None = None) -> None:
        self.name = name
        self._fetch = fetch
        self.renew_after = renew_after
        self._clock = clock
        self._on_fetch = on_fetch
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self._latched: GatewayError | None = None

    @property
    def latched_error(self) -> GatewayError | None:
        return self._latched

    def _fresh(self, token: Token | None) -> bool:
        return token is not None and self._clock() - token.obtained_at < self.renew_after

    async def get(self) -> Token:
        token = self._token
        if self._fresh(token):
            assert token is not None
            return token
        return await self._refresh(stale=token)

    async def renew(self, stale: Token) -> Token:
        """The provider rejected `stale`: fetch a new token unless someone already did."""
        return await self._refresh(stale=stale, force=True)

    async def _refresh(self, *, stale: Token | None, force: bool = False) -> Token:
        async with self._lock:
            if self._latched is not None:
                raise self._latched
            current = self._token
            if current is not None and current is not stale and (force or self._fresh(current)):
                return current  # another caller renewed while we waited
            try:
                value = await self._fetch()
            except GatewayCredentialsRejected as exc:
                if getattr(exc, "latch", True):
                    self._latched = exc
                self._token = None
                if self._on_fetch:
                    self._on_fetch("credentials_rejected")
                raise
            except GatewayError:
                if self._on_fetch:
                    self._on_fetch("error")
                raise
            self._token = Token(value, self._clock())
            if self._on_fetch:
                self._on_fetch("ok")
            return self._token
