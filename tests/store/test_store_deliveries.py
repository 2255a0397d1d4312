"""Claiming and finishing webhook deliveries through the Store interface, on every backend: leases, the
per-subscription cap, ordering by order key, the holder's outcome, redelivery and purging."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest

from gateway.events.canonical import Claimed, DeliveryRecord, EventRecord, SubscriptionRecord
from gateway.models.time import utcnow
from gateway.store import Store
from tests.store import factories as f
from tests.store.conftest import HORIZON_SECONDS


async def _claim(store: Store, owner: str = "w1", *, now: datetime | None = None, lease: float = 30.0,
                 limit: int = 100, per_subscription: int = 100, busy: dict[str, int] | None = None) -> list[Claimed]:
    now = now or utcnow()
    return await store.claim_deliveries(owner, now, now + timedelta(seconds=lease), limit,
                                        per_subscription=per_subscription, busy=busy or {})


async def _emit(store: Store, *events: EventRecord) -> list[EventRecord]:
    await store.emit_events(list(events))
    return [await store.get_event(e.tenant, e.id) for e in events]  # type: ignore[misc]


async def _delivery(store: Store, event: EventRecord, subscription_id: str) -> DeliveryRecord:
    [found] = [d for d in (await store.event_deliveries(event.tenant, [event.seq]))[event.seq]
               if d.subscription_id == subscription_id]
    return found


def _outcome(claimed: Claimed, **kw: Any) -> DeliveryRecord:
    return attrs.evolve(claimed.delivery, attempts=claimed.delivery.attempts + 1, last_attempt_at=utcnow(), **kw)


async def _sub(store: Store, **kw: Any) -> SubscriptionRecord:
    sub = f.subscription(**kw)
    await store.insert_subscription(sub)
    return sub


# --- claiming -----------------------------------------------------------------------------------------------------
async def test_a_claim_carries_what_sending_needs(store: Store) -> None:
    sub = await _sub(store)
    [event] = await _emit(store, f.event())
    [claimed] = await _claim(store)
    assert claimed.url == sub.url and claimed.secrets == sub.secrets and claimed.event == event
    d = claimed.delivery
    assert (d.tenant, d.subscription_id, d.event_seq, d.event_id, d.status, d.attempts) == (
        f.TENANT, sub.id, event.seq, event.id, "pending", 0)
    assert d.horizon_at == event.created_at + timedelta(seconds=HORIZON_SECONDS)


async def test_nothing_is_claimed_before_it_is_due(store: Store) -> None:
    await _sub(store)
    [event] = await _emit(store, f.event())
    assert await _claim(store, now=event.created_at - timedelta(seconds=1)) == []
    assert len(await _claim(store, now=event.created_at)) == 1


async def test_a_claimed_delivery_waits_for_its_lease_to_pass(store: Store) -> None:
    await _sub(store)
    await _emit(store, f.event())
    now = utcnow()
    [mine] = await _claim(store, "w1", now=now, lease=30)
    assert await _claim(store, "w2", now=now) == []
    assert await _claim(store, "w2", now=now + timedelta(seconds=29)) == []
    [theirs] = await _claim(store, "w2", now=now + timedelta(seconds=31))
    assert theirs.delivery.event_seq == mine.delivery.event_seq
    assert await store.finish_delivery(_outcome(mine, status="delivered", delivered_at=utcnow()), "w1") is False
    assert await store.finish_delivery(_outcome(theirs, status="delivered", delivered_at=utcnow()), "w2") is True


async def test_claims_come_oldest_first_up_to_the_limit(store: Store) -> None:
    await _sub(store)
    base = utcnow() - timedelta(minutes=1)
    events = await _emit(store, *[f.event(created_at=base + timedelta(seconds=i)) for i in range(5)])
    first = await _claim(store, limit=2)
    second = await _claim(store, limit=2)
    third = await _claim(store, limit=2)
    assert [c.event.id for c in first + second + third] == [e.id for e in events]
    assert [len(first), len(second), len(third)] == [2, 2, 1]


async def test_per_subscription_cap_counts_what_is_busy(store: Store) -> None:
    a, b = await _sub(store), await _sub(store)
    await _emit(store, *[f.event() for _ in range(3)])
    took = await _claim(store, "w1", per_subscription=2, busy={a.id: 2, b.id: 1})
    assert [c.delivery.subscription_id for c in took] == [b.id]
    took = await _claim(store, "w2", per_subscription=2, busy={})
    assert sorted(c.delivery.subscription_id for c in took) == sorted([a.id, a.id, b.id, b.id])
    took = await _claim(store, "w3", per_subscription=2, busy={})
    assert [c.delivery.subscription_id for c in took] == [a.id]


async def test_a_disabled_subscriptions_deliveries_wait(store: Store) -> None:
    sub = await _sub(store)
    await _emit(store, f.event())
    off = attrs.evolve(sub, status="disabled", disabled_reason="paused", updated_at=utcnow())
    assert await store.update_subscription(off, expected_updated_at=sub.updated_at) is True
    assert await _claim(store) == []
    on = attrs.evolve(off, status="enabled", disabled_reason=None, updated_at=utcnow())
    assert await store.update_subscription(on, expected_updated_at=off.updated_at) is True
    assert len(await _claim(store)) == 1


async def test_ordered_deliveries_of_one_key_go_one_after_another(store: Store) -> None:
    ordered = await _sub(store, ordered=True)
    base = utcnow() - timedelta(minutes=1)
    k1, k2, other = await _emit(store, f.event(subject_id="con_k", created_at=base),
                                f.event(subject_id="con_k", created_at=base + timedelta(seconds=1)),
                                f.event(subject_id="con_l", created_at=base + timedelta(seconds=2)))
    now = utcnow()
    took = await _claim(store, "w1", now=now)
    assert [c.event.id for c in took] == [k1.id, other.id]  # k2 waits behind k1
    assert await _claim(store, "w2", now=now) == []
    retaken = await _claim(store, "w2", now=now + timedelta(minutes=5))  # w1's leases ran out; k1 still pending
    assert [c.event.id for c in retaken] == [k1.id, other.id]
    retry = _outcome(retaken[0], next_attempt_at=now + timedelta(minutes=6), last_status=503)
    assert await store.finish_delivery(retry, "w2") is True
    assert await store.finish_delivery(_outcome(retaken[1], status="delivered", delivered_at=utcnow()), "w2")
    assert await _claim(store, "w3", now=now + timedelta(minutes=5)) == []  # k1 is to be retried: k2 still waits
    [again] = await _claim(store, "w3", now=now + timedelta(minutes=6))
    assert again.event.id == k1.id
    assert await store.finish_delivery(_outcome(again, status="delivered", delivered_at=utcnow()), "w3") is True
    [follower] = await _claim(store, "w4", now=now + timedelta(minutes=6))
    assert follower.event.id == k2.id and follower.delivery.subscription_id == ordered.id


async def test_ordering_is_per_subscription(store: Store) -> None:
    slow, fast = await _sub(store, ordered=True), await _sub(store, ordered=True)
    base = utcnow() - timedelta(minutes=1)
    k1, k2 = await _emit(store, f.event(subject_id="con_k", created_at=base),
                         f.event(subject_id="con_k", created_at=base + timedelta(seconds=1)))
    took = {(c.delivery.subscription_id, c.event.id): c for c in await _claim(store, "w1")}
    assert set(took) == {(slow.id, k1.id), (fast.id, k1.id)}
    done = _outcome(took[(fast.id, k1.id)], status="delivered", delivered_at=utcnow())
    assert await store.finish_delivery(done, "w1") is True
    [follower] = await _claim(store, "w2")  # fast's k2 goes; slow's k2 still waits behind slow's k1
    assert (follower.delivery.subscription_id, follower.event.id) == (fast.id, k2.id)


async def test_unordered_subscriptions_get_one_keys_events_at_once(store: Store) -> None:
    await _sub(store, ordered=False)
    await _emit(store, f.event(subject_id="con_k"), f.event(subject_id="con_k"))
    assert len(await _claim(store)) == 2


# --- finishing ----------------------------------------------------------------------------------------------------
async def test_a_delivered_delivery_is_done(store: Store) -> None:
    sub = await _sub(store)
    [event] = await _emit(store, f.event())
    [claimed] = await _claim(store, lease=1)
    done = _outcome(claimed, status="delivered", delivered_at=utcnow(), next_attempt_at=None, last_status=200)
    assert await store.finish_delivery(done, "w1") is True
    assert await _delivery(store, event, sub.id) == done
    assert await _claim(store, "w2", now=utcnow() + timedelta(hours=1)) == []
    assert await store.finish_delivery(done, "w1") is False  # finished: the claim is gone


async def test_a_holder_whose_lease_ran_out_still_finishes_if_nobody_took_over(store: Store) -> None:
    sub = await _sub(store)
    [event] = await _emit(store, f.event())
    [claimed] = await _claim(store, lease=0.001)
    await asyncio.sleep(0.01)
    done = _outcome(claimed, status="delivered", delivered_at=utcnow())
    assert await store.finish_delivery(done, "w1") is True
    assert (await _delivery(store, event, sub.id)).status == "delivered"


async def test_a_rescheduled_delivery_comes_back_when_due(store: Store) -> None:
    sub = await _sub(store)
    [event] = await _emit(store, f.event())
    [claimed] = await _claim(store, lease=600)
    when = utcnow() + timedelta(seconds=60)
    retry = _outcome(claimed, next_attempt_at=when, last_status=500, last_error="answered HTTP 500")
    assert await store.finish_delivery(retry, "w1") is True
    stored = await _delivery(store, event, sub.id)
    assert stored == retry and stored.status == "pending" and stored.attempts == 1
    assert await _claim(store, "w2", now=when - timedelta(seconds=1)) == []
    [back] = await _claim(store, "w2", now=when)  # the claim was freed, whatever the old lease said
    assert back.delivery.attempts == 1 and back.delivery.last_error == "answered HTTP 500"


async def test_a_failed_delivery_is_dead_lettered(store: Store) -> None:
    sub = await _sub(store)
    [event] = await _emit(store, f.event())
    [claimed] = await _claim(store)
    dead = _outcome(claimed, status="failed", next_attempt_at=None, last_error="no answer within 10 s")
    assert await store.finish_delivery(dead, "w1") is True
    assert (await _delivery(store, event, sub.id)).status == "failed"
    assert await _claim(store, now=utcnow() + timedelta(days=1)) == []


async def test_only_the_holder_finishes_a_delivery(store: Store) -> None:
    sub = await _sub(store)
    [event] = await _emit(store, f.event())
    [claimed] = await _claim(store, "w1")
    before = await _delivery(store, event, sub.id)
    done = _outcome(claimed, status="delivered", delivered_at=utcnow())
    assert await store.finish_delivery(done, "w2") is False
    assert await _delivery(store, event, sub.id) == before
    assert await store.finish_delivery(done, "w1") is True


async def test_disable_reason_disables_the_subscription(store: Store) -> None:
    sub = await _sub(store)
    await _emit(store, f.event(), f.event())
    [first] = await _claim(store, "w1", limit=1)
    gone = _outcome(first, next_attempt_at=utcnow(), last_status=410, last_error="410 Gone")
    assert await store.finish_delivery(gone, "w1", disable_reason="the endpoint answered 410 Gone") is True
    stored = await store.get_subscription(f.TENANT, sub.id)
    assert stored.status == "disabled" and stored.disabled_reason == "the endpoint answered 410 Gone"
    assert await _claim(store, "w2", now=utcnow() + timedelta(minutes=1)) == []


async def test_release_gives_back_every_claim_of_its_owner(store: Store) -> None:
    await _sub(store)
    await _emit(store, f.event(), f.event(), f.event())
    assert len(await _claim(store, "w1", limit=2, lease=600)) == 2
    assert await store.release_deliveries("w-nobody") == 0
    assert await store.release_deliveries("w1") == 2
    assert len(await _claim(store, "w2")) == 3
    assert await store.release_deliveries("w1") == 0


# --- redelivery and purging ---------------------------------------------------------------------------------------
async def test_redeliver_queues_failed_and_new_deliveries(store: Store) -> None:
    failing, ok = await _sub(store), await _sub(store)
    [event] = await _emit(store, f.event())
    for claimed in await _claim(store):
        status = "failed" if claimed.delivery.subscription_id == failing.id else "delivered"
        await store.finish_delivery(_outcome(claimed, status=status, next_attempt_at=None), "w1")
    late = await _sub(store)  # never had a delivery of this event
    now = utcnow()
    horizon = now + timedelta(hours=2)
    assert await store.redeliver(f.TENANT, event, [failing.id, late.id], now, horizon) == 2
    for sid in (failing.id, late.id):
        d = await _delivery(store, event, sid)
        assert (d.status, d.attempts, d.next_attempt_at, d.horizon_at) == ("pending", 0, now, horizon)
    assert (await _delivery(store, event, ok.id)).status == "delivered"
    assert await store.redeliver(f.TENANT, event, [failing.id], now, horizon) == 0  # already pending
    took = await _claim(store, "w2", now=now)
    assert sorted(c.delivery.subscription_id for c in took) == sorted([failing.id, late.id])
    assert await store.redeliver(f.TENANT, event, [ok.id], now, horizon) == 1  # delivered ones too, when asked


async def test_redeliver_never_sends_one_tenants_event_to_another(
        store: Store, backend: str, request: pytest.FixtureRequest) -> None:
    theirs = f.subscription(f.OTHER)
    await store.insert_subscription(theirs)
    [mine] = await _emit(store, f.event(f.TENANT))
    now = utcnow()
    await store.redeliver(f.OTHER, mine, [theirs.id], now, now + timedelta(hours=1))
    leaked = [c for c in await _claim(store, now=now) if c.event.tenant != c.delivery.tenant]
    assert leaked == [], f"{f.TENANT}'s event was claimed for {f.OTHER}'s endpoint {theirs.url}"


async def test_purge_events_keeps_those_still_on_their_way(store: Store) -> None:
    old = utcnow() - timedelta(hours=2)
    [quiet] = await _emit(store, f.event(created_at=old))  # before any subscription: no deliveries
    sub = await _sub(store)
    pending, delivered, failed = await _emit(store, *[f.event(created_at=old) for _ in range(3)])
    [young] = await _emit(store, f.event())
    took = {c.event.id: c for c in await _claim(store, "w1")}
    for event, status in ((delivered, "delivered"), (failed, "failed"), (young, "delivered")):
        assert await store.finish_delivery(_outcome(took[event.id], status=status, next_attempt_at=None), "w1")
    assert await store.purge_events(utcnow() - timedelta(hours=1)) == 3
    for gone in (quiet, delivered, failed):
        assert await store.get_event(f.TENANT, gone.id) is None
        assert (await store.event_deliveries(f.TENANT, [gone.seq]))[gone.seq] == []
    assert await store.get_event(f.TENANT, pending.id) == pending
    assert (await _delivery(store, pending, sub.id)).status == "pending"
    assert await store.get_event(f.TENANT, young.id) == young
    assert [e.id for e in await store.list_events(f.TENANT, after_seq=0, limit=10)] == [pending.id, young.id]
    assert await store.purge_events(utcnow() - timedelta(hours=1)) == 0


# --- the backlog an operator watches ------------------------------------------------------------------------------
async def test_the_backlog_counts_pending_due_and_dead_lettered_over_every_tenant(store: Store) -> None:
    empty = await store.delivery_backlog(utcnow())
    assert (empty.pending, empty.due, empty.oldest_due_at, empty.failed) == (0, 0, None, 0)
    await _sub(store)
    await _sub(store, tenant="other")
    events = await _emit(store, f.event(), f.event(), f.event(), f.event("other"))
    oldest = min(e.created_at for e in events)
    backlog = await store.delivery_backlog(utcnow())
    assert (backlog.pending, backlog.due, backlog.failed) == (4, 4, 0)
    assert backlog.oldest_due_at == oldest and backlog.oldest_due_at.tzinfo is not None

    claimed = await _claim(store, limit=2)
    later = utcnow() + timedelta(seconds=60)
    assert await store.finish_delivery(_outcome(claimed[0], next_attempt_at=later, last_status=503), "w1")
    assert await store.finish_delivery(_outcome(claimed[1], status="failed", next_attempt_at=None), "w1")
    backlog = await store.delivery_backlog(utcnow())
    assert (backlog.pending, backlog.due, backlog.failed) == (3, 2, 1)  # one waits for its retry, one is dead
    assert (await store.delivery_backlog(later)).due == 3
