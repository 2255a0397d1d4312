"""One operation at a time per payment: a lock in this process, and a lease in the store for every replica.

The version check on every write already keeps two replicas from both recording an outcome, but it comes too late
for what cannot be done twice at the bank: a payer's authorisation code redeemed by two replicas at once is
revoked by the bank on its second use. The lease makes the second replica wait and then find the payment already
done (every holder reloads the payment once it holds it).
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

from gateway.store.lease import held


class KeyedLocks:
    def __init__(self, store: Any = None, *, lease_seconds: float = 120.0, wait_seconds: float = 60.0) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self.store = store  # with a store, also a lease across replicas
        self.lease_seconds, self.wait_seconds = lease_seconds, wait_seconds

    @contextlib.asynccontextmanager
    async def hold(self, key: str, *, wait: float | None = None) -> AsyncIterator[None]:
        """Hold `key` here and, with a store, across replicas (LeaseBusy after `wait` seconds there)."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                if self.store is None:
                    yield
                else:
                    async with held(self.store, f"payment:{key}", ttl=self.lease_seconds,
                                    wait=self.wait_seconds if wait is None else wait):
                        yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]  # nobody else waits: the map does not grow with every payment ever seen
            else:
                self._locks[key] = (lock, users - 1)
