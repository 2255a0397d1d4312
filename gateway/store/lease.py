"""A lease held through the store: one holder at a time across processes and replicas.

    async with held(store, f"consent-tokens:{consent.id}", ttl=30.0) as reader:
        fresh = await reader.get_consent(...)  # renew only if nobody did meanwhile

The lease ends when the block ends, or after `ttl` if its holder died; a caller that cannot get it within
`wait` seconds gets `LeaseBusy` (retryable). The holder must read what the previous holder wrote, so the block
gets `reader`: the store past this process's short read cache (`gateway.store.cache`), whose copy may be from
before that holder's commit, even when another request of this process refills the cache meanwhile. Taking the
lease also drops that cache, so other readers here catch up at once.
"""
from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from datetime import timedelta
from typing import AsyncIterator

from gateway.errors import GatewayBusy
from gateway.models.time import utcnow
from gateway.store.base import Store


class LeaseBusy(GatewayBusy):
    """Another replica holds the lease for too long; trying again shortly will work."""


@contextlib.asynccontextmanager
async def held(store: Store, name: str, *, ttl: float = 30.0, wait: float = 15.0,
               poll: float = 0.05) -> AsyncIterator[Store]:
    owner = secrets.token_hex(8)
    deadline = time.monotonic() + wait
    while True:
        now = utcnow()
        if await store.try_lease(name, owner, now + timedelta(seconds=ttl), now):
            invalidate = getattr(store, "invalidate", None)
            if callable(invalidate):
                invalidate()
            break
        if time.monotonic() >= deadline:
            raise LeaseBusy(f"another gateway replica is renewing this ({name}); retry shortly", retry_after=1)
        await asyncio.sleep(poll)
    uncached = getattr(type(store), "uncached", None)
    try:
        yield uncached(store) if callable(uncached) else store
    finally:
        await asyncio.shield(store.release_lease(name, owner))
