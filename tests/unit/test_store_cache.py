"""The account read cache: served from memory within its ttl, cleared by any write through this process."""
from __future__ import annotations

from pathlib import Path

import attrs

from gateway.models import ConsentStatus
from gateway.models.time import utcnow
from gateway.store.cache import CachedStore
from gateway.store.records import AccountRecord, ConsentRecord
from gateway.store.sqlite import SQLiteStore


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_cache_hits_expires_and_clears_on_write(tmp_path: Path) -> None:
    inner = SQLiteStore(f"sqlite:///{tmp_path}/s.db")
    clock = Clock()
    store = CachedStore(inner, ttl=1.0, clock=clock)
    await store.open()
    try:
        now = utcnow()
        consent = ConsentRecord(id="con_1", tenant="t", provider="p", customer_id=None,
                                status=ConsentStatus.AUTHORISED, created_at=now, updated_at=now)
        await store.insert_consent(consent)
        await store.upsert_accounts([AccountRecord(id="acc_1", tenant="t", provider="p", consent_id="con_1",
                                                   provider_ref="9", created_at=now)])
        first = await store.get_account("t", "acc_1")
        assert first is not None and first[1].status is ConsentStatus.AUTHORISED
        # a change behind the cache's back (another replica) is seen once the ttl passes
        await inner.update_consent(attrs.evolve(consent, status=ConsentStatus.REVOKED))
        assert (await store.get_account("t", "acc_1"))[1].status is ConsentStatus.AUTHORISED
        clock.now += 1.5
        assert (await store.get_account("t", "acc_1"))[1].status is ConsentStatus.REVOKED
        # a change through this store is seen at once
        await store.update_consent(attrs.evolve(consent, status=ConsentStatus.AUTHORISED))
        assert (await store.get_account("t", "acc_1"))[1].status is ConsentStatus.AUTHORISED
        await store.delete_consent_data("t", "con_1")
        assert await store.get_account("t", "acc_1") is None
        assert await store.get_account("other-tenant", "acc_1") is None
    finally:
        await store.close()


async def test_cached_consents_are_copies(tmp_path: Path) -> None:
    store = CachedStore(SQLiteStore(f"sqlite:///{tmp_path}/s.db"), ttl=60.0)
    await store.open()
    try:
        now = utcnow()
        await store.insert_consent(ConsentRecord(id="con_1", tenant="t", provider="p", customer_id=None,
                                                 status=ConsentStatus.AWAITING_AUTHORISATION, created_at=now,
                                                 updated_at=now, upstream={"customer_ref": "1"}))
        first = await store.get_consent("t", "con_1")
        first.status = ConsentStatus.REVOKED  # a handler changing its copy ...
        first.upstream["customer_ref"] = "2"
        again = await store.get_consent("t", "con_1")
        assert again.status is ConsentStatus.AWAITING_AUTHORISATION  # ... changes nothing cached
        assert again.upstream == {"customer_ref": "1"}
        assert await store.get_consent("t", "con_missing") is None
        await store.insert_consent(attrs.evolve(again, id="con_missing"))
        assert await store.get_consent("t", "con_missing") is not None  # an insert clears a cached miss
    finally:
        await store.close()
