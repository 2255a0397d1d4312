"""Two replicas of the gateway on one database, racing through the Store interface: every race has exactly one
winner, and nothing is done twice."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import attrs
import pytest

from gateway.events import canonical
from gateway.models import ConsentStatus
from gateway.models.payments import PaymentStatus
from gateway.models.time import utcnow
from gateway.store import Store
from tests.store import factories as f

S = PaymentStatus


async def test_a_write_on_one_replica_is_read_on_the_other(two_stores: tuple[Store, Store]) -> None:
    a, b = two_stores
    con = f.consent()
    await a.insert_consent(con)
    assert await b.get_consent(f.TENANT, con.id) == con
    con.set_status(ConsentStatus.REVOKED, "on b", utcnow())
    assert await b.update_consent(con) is True
    assert (await a.get_consent(f.TENANT, con.id)).status is ConsentStatus.REVOKED
    assert [e.type for e in await a.list_events(f.TENANT, after_seq=0, limit=10)] == [canonical.CONSENT_REVOKED]


async def test_concurrent_claims_take_every_delivery_exactly_once(
        two_stores: tuple[Store, Store], backend: str, request: pytest.FixtureRequest) -> None:
    a, b = two_stores
    subs = [f.subscription(), f.subscription(), f.subscription(ordered=True)]
    for sub in subs:
        await a.insert_subscription(sub)
    await a.emit_events([f.event() for _ in range(15)])  # 45 deliveries, distinct order keys
    now = utcnow()

    async def claim(store: Store, n: int) -> list[tuple[str, int]]:
        took = await store.claim_deliveries(f"w{n}", now, now + timedelta(seconds=60), 3, per_subscription=50,
                                            busy={})
        return [(c.delivery.subscription_id, c.delivery.event_seq) for c in took]

    rounds = await asyncio.gather(*(claim(a if n % 2 else b, n) for n in range(20)))
    taken = [key for got in rounds for key in got]
    assert len(taken) == len(set(taken)), "a delivery was claimed twice"
    assert len(taken) == 45
    assert await claim(a, 99) == [] and await claim(b, 98) == []


async def test_concurrent_payment_updates_on_one_version_have_one_winner(two_stores: tuple[Store, Store]) -> None:
    a, b = two_stores
    record = f.payment()
    await a.insert_payment(record, f.move(S.AWAITING_AUTHORISATION))
    mine = attrs.evolve(record, status=S.AUTHORISED, status_reason="from a")
    theirs = attrs.evolve(record, status=S.CANCELLED, status_reason="from b")
    won = await asyncio.gather(
        a.update_payment(mine, [f.move(S.AUTHORISED, S.AWAITING_AUTHORISATION)]),
        b.update_payment(theirs, [f.move(S.CANCELLED, S.AWAITING_AUTHORISATION)]))
    assert sorted(won) == [False, True]
    winner = mine if won[0] else theirs
    stored = await b.get_payment(f.TENANT, record.id)
    assert stored.version == 1 and stored.status is winner.status and stored.status_reason == winner.status_reason
    assert [t.status for t in await a.payment_transitions(f.TENANT, record.id)] == [
        S.AWAITING_AUTHORISATION, winner.status]
    [event] = await a.list_events(f.TENANT, after_seq=0, limit=10)
    assert event.data["payment"]["status"] == winner.status.value


async def test_concurrent_claims_of_one_idempotency_key_have_one_owner(two_stores: tuple[Store, Store]) -> None:
    a, b = two_stores
    now = utcnow()
    got = await asyncio.gather(*(
        (a if n % 2 else b).claim_idempotency_key(f.key_claim("k-race", f"req-{n}", now=now)) for n in range(10)))
    owners = {record.owner for record in got}
    assert len(owners) == 1
    assert (await a.get_idempotency_key(f.TENANT, "k-race")).owner in owners


async def test_concurrent_deliveries_of_one_inbound_event_are_kept_once(two_stores: tuple[Store, Store]) -> None:
    a, b = two_stores
    con = f.consent()
    await a.insert_consent(con)
    await a.upsert_accounts([f.account(con, "r1")])
    event = f.inbound(tenant=f.TENANT, consent_id=con.id)
    ended = attrs.evolve(con)
    ended.set_status(ConsentStatus.REVOKED, "revoked at the bank", utcnow())
    fresh = await asyncio.gather(a.record_inbound_event(event, attrs.evolve(ended)),
                                 b.record_inbound_event(event, attrs.evolve(ended)))
    assert sorted(fresh) == [False, True]
    assert [e.type for e in await b.list_events(f.TENANT, after_seq=0, limit=10)] == [canonical.CONSENT_REVOKED]
    assert len(await a.list_inbound_events(f.PROVIDER)) == 1
    assert await a.list_accounts(f.TENANT, con.id) == []


async def test_concurrent_expiry_of_one_consent_happens_once(two_stores: tuple[Store, Store]) -> None:
    a, b = two_stores
    con = f.consent(expires_at=utcnow() - timedelta(seconds=1))
    await a.insert_consent(con)
    await a.upsert_accounts([f.account(con, "r1")])
    seen = con.updated_at

    def expired() -> object:
        record = attrs.evolve(con)
        record.set_status(ConsentStatus.EXPIRED, "time is up", utcnow())
        return record

    results = await asyncio.gather(a.forget_accounts(expired(), (), expected_updated_at=seen),  # type: ignore[arg-type]
                                   b.forget_accounts(expired(), (), expected_updated_at=seen))  # type: ignore[arg-type]
    assert sorted(results, key=lambda r: r is None) == [1, None]
    assert [e.type for e in await a.list_events(f.TENANT, after_seq=0, limit=10)] == [canonical.CONSENT_EXPIRED]


async def test_concurrent_announcements_of_one_expiry_happen_once(two_stores: tuple[Store, Store]) -> None:
    a, b = two_stores
    con = f.consent(expires_at=utcnow() + timedelta(hours=1))
    await a.insert_consent(con)
    fresh = await asyncio.gather(*(
        (a if n % 2 else b).announce_expiring(f.TENANT, con.id, con.expires_at, canonical.consent_expiring(con))
        for n in range(6)))
    assert sorted(fresh) == [False] * 5 + [True]
    assert len(await b.list_events(f.TENANT, after_seq=0, limit=10)) == 1


async def test_concurrent_takeovers_of_an_abandoned_key_have_one_owner(two_stores: tuple[Store, Store]) -> None:
    a, b = two_stores
    now = utcnow()
    await a.claim_idempotency_key(f.key_claim("k-dead", "req-dead", lease=1, now=now - timedelta(seconds=10)))
    got = await asyncio.gather(*(
        (a if n % 2 else b).claim_idempotency_key(f.key_claim("k-dead", f"req-{n}", now=now)) for n in range(10)))
    owners = {record.owner for record in got}
    assert len(owners) == 1 and owners != {"req-dead"}
    [owner] = owners
    await b.finish_idempotency_key(f.answer("k-dead", owner))
    assert (await a.get_idempotency_key(f.TENANT, "k-dead")).state == "done"


async def test_concurrent_compare_and_set_of_a_consent_has_one_winner(two_stores: tuple[Store, Store]) -> None:
    a, b = two_stores
    con = f.consent()
    await a.insert_consent(con)
    seen = con.updated_at
    revoked, lapsed = attrs.evolve(con), attrs.evolve(con)
    revoked.set_status(ConsentStatus.REVOKED, "by the customer", seen + timedelta(seconds=1))
    lapsed.set_status(ConsentStatus.REAUTHENTICATION_REQUIRED, "log in again", seen + timedelta(seconds=2))
    won = await asyncio.gather(a.update_consent(revoked, expected_updated_at=seen),
                               b.update_consent(lapsed, expected_updated_at=seen))
    assert sorted(won) == [False, True]
    winner = revoked if won[0] else lapsed
    assert await b.get_consent(f.TENANT, con.id) == winner
    assert [e.data["consent"]["status"] for e in await a.list_events(f.TENANT, after_seq=0, limit=10)] == [
        winner.status.value]


async def test_a_reader_catching_up_by_seq_misses_no_event_of_concurrent_writers(
        two_stores: tuple[Store, Store]) -> None:
    a, b = two_stores
    written: list[str] = []
    done = asyncio.Event()

    async def write(store: Store, n: int) -> None:
        batch = [f.event() for _ in range(1 + n % 3)]
        await store.emit_events(batch)
        written.extend(e.id for e in batch)

    async def read() -> list[str]:
        seen: list[str] = []
        after = 0
        while True:
            finished = done.is_set()
            page = await b.list_events(f.TENANT, after_seq=after, limit=7)
            seen += [e.id for e in page]
            after = page[-1].seq if page else after
            if finished and not page:
                return seen
            await asyncio.sleep(0)

    reader = asyncio.create_task(read())
    await asyncio.gather(*(write(a if n % 2 else b, n) for n in range(40)))
    done.set()
    seen = await reader
    assert len(seen) == len(set(seen)) == len(written)
    assert set(seen) == set(written), "a reader following seq skipped an event committed after a later one"


async def test_a_lease_holder_reads_the_previous_holders_write_past_its_read_cache(
        two_stores: tuple[Store, Store]) -> None:
    from gateway.store.cache import CachedStore
    from gateway.store.lease import held

    a, b = two_stores
    cached_a = CachedStore(a, ttl=60.0)
    con = f.consent()
    await b.insert_consent(con)
    assert (await cached_a.get_consent(f.TENANT, con.id)).upstream == con.upstream  # now in a's cache
    renewed = attrs.evolve(con, upstream={**con.upstream, "tokens": "renewed on b"})
    async with held(b, "consent-tokens"):
        assert await b.update_consent(renewed) is True  # the other replica renews first, under the lease
    async with held(cached_a, "consent-tokens") as reader:
        assert (await cached_a.get_consent(f.TENANT, con.id)).upstream["tokens"] == "renewed on b"  # cache dropped
        cached_a._entries[("consent", f.TENANT, con.id)] = (cached_a._clock(), con)  # refilled meanwhile, stale
        assert (await reader.get_consent(f.TENANT, con.id)).upstream["tokens"] == "renewed on b"
