"""Webhook subscriptions, the fan-out of events to them, and consent expiry notices through the Store interface,
on every backend."""
from __future__ import annotations

from datetime import timedelta

import attrs

from gateway.events import canonical
from gateway.models import ConsentStatus
from gateway.models.time import utcnow
from gateway.store import Store
from tests.store import factories as f
from tests.store.conftest import HORIZON_SECONDS


async def _subscriptions(store: Store, *records: object) -> None:
    for record in records:
        await store.insert_subscription(record)  # type: ignore[arg-type]


async def _deliveries_of(store: Store, event_id: str, tenant: str = f.TENANT) -> list:  # type: ignore[type-arg]
    found = await store.get_event(tenant, event_id)
    assert found is not None
    return (await store.event_deliveries(tenant, [found.seq]))[found.seq]


# --- subscriptions ------------------------------------------------------------------------------------------------
async def test_a_subscription_is_read_back_whole(store: Store) -> None:
    sub = f.subscription(event_types=("consent.revoked", "report.failed"), ordered=True)
    await store.insert_subscription(sub)
    assert await store.get_subscription(f.TENANT, sub.id) == sub
    assert await store.get_subscription(f.OTHER, sub.id) is None
    bare = f.subscription(description=None)
    await store.insert_subscription(bare)
    assert await store.get_subscription(f.TENANT, bare.id) == bare


async def test_list_subscriptions_newest_first_in_pages(store: Store) -> None:
    base = utcnow()
    subs = [f.subscription(created_at=base - timedelta(minutes=i)) for i in range(5)]
    await _subscriptions(store, *reversed(subs), f.subscription(f.OTHER))
    first = await store.list_subscriptions(f.TENANT, limit=3, after=None)
    assert first == subs[:3]
    rest = await store.list_subscriptions(f.TENANT, limit=3, after=f.position(first[-1]))
    assert rest == subs[3:]
    assert len(await store.list_subscriptions(f.OTHER, limit=10, after=None)) == 1


async def test_update_subscription_compare_and_set(store: Store) -> None:
    sub = f.subscription()
    await store.insert_subscription(sub)
    seen = sub.updated_at
    changed = attrs.evolve(sub, url="https://hooks.example.com/new", event_types=("payment.status_changed",),
                           ordered=True, secrets=b"\x02resealed", description="v2",
                           updated_at=seen + timedelta(seconds=1))
    assert await store.update_subscription(changed, expected_updated_at=seen) is True
    assert await store.get_subscription(f.TENANT, sub.id) == changed
    stale = attrs.evolve(sub, status="disabled", disabled_reason="stale", updated_at=seen + timedelta(seconds=2))
    assert await store.update_subscription(stale, expected_updated_at=seen) is False
    assert await store.get_subscription(f.TENANT, sub.id) == changed
    foreign = attrs.evolve(changed, tenant=f.OTHER, status="disabled")
    assert await store.update_subscription(foreign, expected_updated_at=changed.updated_at) is False


async def test_delete_subscription_drops_its_deliveries(store: Store) -> None:
    gone, kept = f.subscription(), f.subscription()
    await _subscriptions(store, gone, kept)
    event = f.event()
    await store.emit_events([event])
    assert await store.delete_subscription(f.OTHER, gone.id) is False
    assert await store.delete_subscription(f.TENANT, gone.id) is True
    assert await store.get_subscription(f.TENANT, gone.id) is None
    assert [d.subscription_id for d in await _deliveries_of(store, event.id)] == [kept.id]
    now = utcnow()
    claimed = await store.claim_deliveries("w1", now, now + timedelta(seconds=30), 10, per_subscription=10, busy={})
    assert [c.delivery.subscription_id for c in claimed] == [kept.id]
    assert await store.delete_subscription(f.TENANT, gone.id) is False


# --- fan-out ------------------------------------------------------------------------------------------------------
async def test_events_fan_out_to_the_tenants_enabled_subscriptions_that_want_them(store: Store) -> None:
    everything = f.subscription(event_types=("*",))
    revoked_only = f.subscription(event_types=("consent.revoked",))
    reports_only = f.subscription(event_types=("report.failed",))
    disabled = f.subscription(status="disabled", disabled_reason="410 Gone")
    foreign = f.subscription(f.OTHER)
    await _subscriptions(store, everything, revoked_only, reports_only, disabled, foreign)
    con = f.consent()
    await store.insert_consent(con)
    con.set_status(ConsentStatus.REVOKED, "by the customer", utcnow())
    await store.update_consent(con)
    [event] = await store.list_events(f.TENANT, after_seq=0, limit=10)
    deliveries = await _deliveries_of(store, event.id)
    assert sorted(d.subscription_id for d in deliveries) == sorted([everything.id, revoked_only.id])
    for d in deliveries:
        assert (d.tenant, d.event_seq, d.event_id, d.status, d.attempts) == (f.TENANT, event.seq, event.id,
                                                                           "pending", 0)
        assert d.next_attempt_at == event.created_at
        assert d.horizon_at == event.created_at + timedelta(seconds=HORIZON_SECONDS)
        assert d.delivered_at is None and d.last_status is None and d.last_error is None
    assert await store.list_events(f.OTHER, after_seq=0, limit=10) == []


async def test_a_later_subscription_gets_no_earlier_event(store: Store) -> None:
    early = f.event()
    await store.emit_events([early])
    sub = f.subscription()
    await store.insert_subscription(sub)
    late = f.event()
    await store.emit_events([late])
    assert await _deliveries_of(store, early.id) == []
    assert [d.subscription_id for d in await _deliveries_of(store, late.id)] == [sub.id]


async def test_event_deliveries_answers_for_each_seq_asked_of_its_tenant(store: Store) -> None:
    a, b = f.subscription(), f.subscription()
    await _subscriptions(store, a, b, f.subscription(f.OTHER))
    mine, theirs = f.event(), f.event(f.OTHER)
    await store.emit_events([mine, theirs])
    seq = (await store.get_event(f.TENANT, mine.id)).seq
    their_seq = (await store.get_event(f.OTHER, theirs.id)).seq
    found = await store.event_deliveries(f.TENANT, [seq, their_seq])
    assert set(found) == {seq, their_seq} and found[their_seq] == []
    assert sorted(d.subscription_id for d in found[seq]) == sorted([a.id, b.id])
    assert await store.event_deliveries(f.TENANT, []) == {}


# --- consent expiry -----------------------------------------------------------------------------------------------
async def test_consents_expiring_lists_active_consents_not_yet_announced(store: Store) -> None:
    now = utcnow()
    soon = f.consent(expires_at=now + timedelta(hours=1))
    sooner = f.consent(f.OTHER, expires_at=now + timedelta(minutes=30))
    waiting = f.consent(status=ConsentStatus.REAUTHENTICATION_REQUIRED, expires_at=now + timedelta(hours=2))
    for record in (soon, sooner, waiting,
                   f.consent(expires_at=now + timedelta(days=30)),  # too far
                   f.consent(expires_at=None),
                   f.consent(status=ConsentStatus.REVOKED, expires_at=now + timedelta(hours=1)),
                   f.consent(status=ConsentStatus.AWAITING_AUTHORISATION, expires_at=now + timedelta(hours=1))):
        await store.insert_consent(record)
    until = now + timedelta(days=1)
    assert [c.id for c in await store.consents_expiring(until, 10)] == [sooner.id, soon.id, waiting.id]
    assert [c.id for c in await store.consents_expiring(until, 1)] == [sooner.id]
    assert (await store.consents_expiring(until, 10))[1] == soon


async def test_announce_expiring_once_per_consent_and_expiry(store: Store) -> None:
    sub = f.subscription(event_types=(canonical.CONSENT_EXPIRING,))
    await store.insert_subscription(sub)
    now = utcnow()
    con = f.consent(expires_at=now + timedelta(hours=1))
    await store.insert_consent(con)
    until = now + timedelta(days=1)
    first = canonical.consent_expiring(con)
    assert await store.announce_expiring(f.TENANT, con.id, con.expires_at, first) is True
    assert await store.consents_expiring(until, 10) == []
    assert await store.announce_expiring(f.TENANT, con.id, con.expires_at, canonical.consent_expiring(con)) is False
    [event] = await store.list_events(f.TENANT, after_seq=0, limit=10)
    assert event.id == first.id and event.type == canonical.CONSENT_EXPIRING
    assert [d.subscription_id for d in await _deliveries_of(store, event.id)] == [sub.id]
    # the consent is extended: its new expiry is announced in its turn
    con.expires_at, con.updated_at = now + timedelta(hours=5), utcnow()
    assert await store.update_consent(con) is True
    assert [c.id for c in await store.consents_expiring(until, 10)] == [con.id]
    assert await store.announce_expiring(f.TENANT, con.id, con.expires_at, canonical.consent_expiring(con)) is True
    assert await store.announce_expiring(f.TENANT, con.id, con.expires_at, canonical.consent_expiring(con)) is False
    assert len(await store.list_events(f.TENANT, after_seq=0, limit=10)) == 2


async def test_consents_past_expiry_across_tenants_earliest_first(store: Store) -> None:
    now = utcnow()
    late = f.consent(f.OTHER, expires_at=now - timedelta(hours=2))
    just = f.consent(status=ConsentStatus.REAUTHENTICATION_REQUIRED, expires_at=now - timedelta(seconds=1))
    for record in (just, late, f.consent(expires_at=now + timedelta(minutes=1)), f.consent(expires_at=None),
                   f.consent(status=ConsentStatus.EXPIRED, expires_at=now - timedelta(hours=1))):
        await store.insert_consent(record)
    assert [c.id for c in await store.consents_past_expiry(now, 10)] == [late.id, just.id]
    assert await store.consents_past_expiry(now, 1) == [late]
    late.set_status(ConsentStatus.EXPIRED, "time is up", now)
    assert await store.forget_accounts(late, ()) == 0
    assert [c.id for c in await store.consents_past_expiry(now, 10)] == [just.id]
