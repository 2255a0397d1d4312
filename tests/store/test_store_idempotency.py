"""Idempotency keys through the Store interface, on every backend: one request holds a key; another with the
same request takes it over only once the holder's lease ran out; the answer is kept only by its holder."""
from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.models.time import utcnow
from gateway.store import Store
from gateway.store.sqlite_payments import LostIdempotencyClaim
from tests.store import factories as f


async def test_a_fresh_key_is_claimed(store: Store) -> None:
    claim = f.key_claim("k-1", "req-1")
    got = await store.claim_idempotency_key(claim)
    assert got == claim and got.owner == "req-1" and got.state == "in_progress"
    assert got.status is None and got.body is None and got.content_type is None
    assert await store.get_idempotency_key(f.TENANT, "k-1") == claim
    assert await store.get_idempotency_key(f.OTHER, "k-1") is None
    assert await store.get_idempotency_key(f.TENANT, "k-2") is None


async def test_a_held_key_is_not_taken_over(store: Store) -> None:
    first = f.key_claim("k-1", "req-1")
    await store.claim_idempotency_key(first)
    second = await store.claim_idempotency_key(f.key_claim("k-1", "req-2"))
    assert second == first  # the stored claim: req-2 does not hold the key


async def test_another_request_under_the_key_gets_the_stored_one(store: Store) -> None:
    now = utcnow()
    first = f.key_claim("k-1", "req-1", lease=-1, now=now - timedelta(seconds=10))  # its lease already ran out
    await store.claim_idempotency_key(first)
    other = await store.claim_idempotency_key(f.key_claim("k-1", "req-2", fingerprint="fp-other", now=now))
    assert other == first  # another request is never given the key, abandoned or not


async def test_an_abandoned_claim_is_taken_over_by_the_same_request(store: Store) -> None:
    now = utcnow()
    await store.claim_idempotency_key(f.key_claim("k-1", "req-1", lease=5, now=now - timedelta(seconds=10)))
    again = f.key_claim("k-1", "req-2", lease=30, now=now)
    got = await store.claim_idempotency_key(again)
    assert got.owner == "req-2" and got.lease_until == again.lease_until and got.state == "in_progress"
    assert (await store.get_idempotency_key(f.TENANT, "k-1")).owner == "req-2"
    with pytest.raises(LostIdempotencyClaim):
        await store.finish_idempotency_key(f.answer("k-1", "req-1"))


async def test_a_finished_key_is_never_taken_over(store: Store) -> None:
    now = utcnow()
    await store.claim_idempotency_key(f.key_claim("k-1", "req-1", lease=1, now=now - timedelta(seconds=10)))
    await store.finish_idempotency_key(f.answer("k-1", "req-1", body=b"first answer"))
    got = await store.claim_idempotency_key(f.key_claim("k-1", "req-2", now=now))
    assert got.owner == "req-1" and got.state == "done" and got.body == b"first answer" and got.status == 201


async def test_finish_keeps_the_answer_for_its_holder(store: Store) -> None:
    await store.claim_idempotency_key(f.key_claim("k-1", "req-1"))
    body = b'{"id": "pay_1", "amount": "1.00"}\x00\xff'
    await store.finish_idempotency_key(f.answer("k-1", "req-1", status=202, body=body))
    kept = await store.get_idempotency_key(f.TENANT, "k-1")
    assert kept.state == "done" and kept.status == 202 and kept.body == body
    assert kept.content_type == "application/json" and kept.fingerprint == "fp-1"


async def test_finish_by_another_owner_is_refused_and_changes_nothing(store: Store) -> None:
    claim = f.key_claim("k-1", "req-1")
    await store.claim_idempotency_key(claim)
    with pytest.raises(LostIdempotencyClaim):
        await store.finish_idempotency_key(f.answer("k-1", "req-2"))
    assert await store.get_idempotency_key(f.TENANT, "k-1") == claim
    with pytest.raises(LostIdempotencyClaim):
        await store.finish_idempotency_key(f.answer("k-1", "req-1", tenant=f.OTHER))
    with pytest.raises(LostIdempotencyClaim):
        await store.finish_idempotency_key(f.answer("k-unclaimed", "req-1"))


async def test_a_key_is_finished_only_once(store: Store) -> None:
    await store.claim_idempotency_key(f.key_claim("k-1", "req-1"))
    await store.finish_idempotency_key(f.answer("k-1", "req-1", body=b"one"))
    with pytest.raises(LostIdempotencyClaim):
        await store.finish_idempotency_key(f.answer("k-1", "req-1", body=b"two"))
    assert (await store.get_idempotency_key(f.TENANT, "k-1")).body == b"one"


async def test_release_frees_the_key_for_its_holder_only(store: Store) -> None:
    await store.claim_idempotency_key(f.key_claim("k-1", "req-1"))
    await store.release_idempotency_key(f.TENANT, "k-1", "req-2")
    await store.release_idempotency_key(f.OTHER, "k-1", "req-1")
    assert (await store.get_idempotency_key(f.TENANT, "k-1")).owner == "req-1"
    await store.release_idempotency_key(f.TENANT, "k-1", "req-1")
    assert await store.get_idempotency_key(f.TENANT, "k-1") is None
    fresh = await store.claim_idempotency_key(f.key_claim("k-1", "req-3", fingerprint="fp-new"))
    assert fresh.owner == "req-3" and fresh.fingerprint == "fp-new"


async def test_a_finished_key_is_not_released(store: Store) -> None:
    await store.claim_idempotency_key(f.key_claim("k-1", "req-1"))
    await store.finish_idempotency_key(f.answer("k-1", "req-1"))
    await store.release_idempotency_key(f.TENANT, "k-1", "req-1")
    assert (await store.get_idempotency_key(f.TENANT, "k-1")).state == "done"


async def test_purge_deletes_keys_past_their_expiry(store: Store) -> None:
    now = utcnow()
    old = f.key_claim("old", "req-1", now=now - timedelta(days=2), expires=86400)
    old_done = f.key_claim("old-done", "req-2", now=now - timedelta(days=2), expires=86400)
    young = f.key_claim("young", "req-3", now=now, expires=86400)
    elsewhere = f.key_claim("old", "req-4", tenant=f.OTHER, now=now - timedelta(days=3), expires=3600)
    for claim in (old, old_done, young, elsewhere):
        await store.claim_idempotency_key(claim)
    await store.finish_idempotency_key(f.answer("old-done", "req-2"))
    assert await store.purge_idempotency_keys(now) == 3
    assert await store.get_idempotency_key(f.TENANT, "old") is None
    assert await store.get_idempotency_key(f.TENANT, "old-done") is None
    assert await store.get_idempotency_key(f.OTHER, "old") is None
    assert await store.get_idempotency_key(f.TENANT, "young") == young
    assert await store.purge_idempotency_keys(now) == 0


async def test_the_same_key_in_two_tenants_is_two_keys(store: Store) -> None:
    mine = await store.claim_idempotency_key(f.key_claim("k-1", "req-1"))
    theirs = await store.claim_idempotency_key(f.key_claim("k-1", "req-2", tenant=f.OTHER, fingerprint="fp-2"))
    assert mine.owner == "req-1" and theirs.owner == "req-2" and theirs.tenant == f.OTHER
    await store.finish_idempotency_key(f.answer("k-1", "req-2", tenant=f.OTHER))
    assert (await store.get_idempotency_key(f.TENANT, "k-1")).state == "in_progress"
