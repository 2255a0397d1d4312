"""Webhook delivery when things go wrong, over real HTTP: the gateway against its simulators, real subscribers on
local ports that go away, fail, answer 410, answer slowly, or sit at an address the gateway must not call.

Every assertion is on outcomes and counts (what arrived, what the gateway recorded), never on how long something
took; waits have generous deadlines."""
from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import web

from gateway.events import signing
from gateway.events.canonical import SubscriptionRecord
from gateway.ids import new_id
from gateway.models.time import utcnow
from tests.conftest import DEV, _merge, count_rows, sandbox_of, serve, state_of
from tests.events_support import FAST_EVENTS, Subscriber, all_events, subscribe, verifies
from tests.flows import authorised_consent, first_account, play_end_user


def fast(**events: Any) -> dict[str, Any]:
    """FAST_EVENTS with some `events` keys changed."""
    return _merge(FAST_EVENTS, {"events": events})


async def thredd_consent(gw: Any) -> dict[str, Any]:
    """A thredd consent authorised by the provider's webhooks alone: consent.authorised, then accounts.added."""
    resp = await gw.post("/v1/consents", json={"provider": "thredd", "redirect_uri": "https://app.example.com/cb"},
                         headers=DEV)
    consent = await resp.json()
    assert resp.status == 201, consent
    await play_end_user(consent["authorisation_url"])
    await sandbox_of(gw, "thredd").wait_webhooks_idle()
    return consent


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 25.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.05)


async def get_event(gw: Any, event_id: str) -> dict[str, Any]:
    resp = await gw.get(f"/v1/events/{event_id}", headers=DEV)
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def get_subscription(gw: Any, sub_id: str) -> dict[str, Any]:
    resp = await gw.get(f"/v1/webhook-subscriptions/{sub_id}", headers=DEV)
    body = await resp.json()
    assert resp.status == 200, body
    return body


def delivery_of(event: dict[str, Any], sub_id: str) -> dict[str, Any]:
    [delivery] = [d for d in event["deliveries"] if d["subscription_id"] == sub_id]
    return delivery


def assert_duplicates_are_the_same_message(subscriber: Subscriber) -> None:
    """However often an event arrived, it came under one `webhook-id` (its event id) with the same body."""
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for request in subscriber.received:
        assert request["headers"]["webhook-id"] == request["json"]["id"]
        bodies[request["headers"]["webhook-id"]].add(request["body"])
    assert all(len(b) == 1 for b in bodies.values()), "one webhook-id carried different bodies"


class GatedSubscriber(Subscriber):
    """A subscriber that answers nothing until `release()`d: a request it holds stays in flight, so what arrives
    while it is held is bounded by how many deliveries the gateway lets run at once, not by any clock."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.answered: list[str] = []  # webhook-ids, in the order they were answered 2xx

    def release(self) -> None:
        self.gate.set()

    async def _receive(self, request: web.Request) -> web.Response:
        response = await super()._receive(request)
        await self.gate.wait()
        self.answered.append(request.headers["webhook-id"])
        return response


@pytest.fixture
async def subscriber() -> Any:
    sub = await Subscriber().start()
    yield sub
    await sub.stop()


# --- 1. a subscriber that is away gets everything when it comes back ---------------------------------------------
@pytest.mark.parametrize("outage", ["connection_refused", "http_503"])
async def test_a_subscriber_that_was_down_receives_every_event_when_back(aiohttp_client: Any, make_config: Any,
                                                                         outage: str) -> None:
    gw = await serve(aiohttp_client, make_config(FAST_EVENTS))
    subscriber = await Subscriber().start()
    try:
        sub = await subscribe(gw, subscriber.url)
        if outage == "connection_refused":
            await subscriber.stop()  # nothing listens on its port now
        else:
            subscriber.status = 503
        for _ in range(3):
            await thredd_consent(gw)
        events = await all_events(gw)
        assert [e["type"] for e in events] == ["consent.authorised", "accounts.added"] * 3
        ids = [e["id"] for e in events]

        async def each_tried_twice() -> bool:
            return all([delivery_of(await get_event(gw, i), sub["id"])["attempts"] >= 2 for i in ids])

        await eventually(each_tried_twice, "every event to be tried at least twice while the subscriber is down")
        for event_id in ids:
            delivery = delivery_of(await get_event(gw, event_id), sub["id"])
            assert delivery["status"] == "pending" and delivery["last_error"], delivery
            if outage == "http_503":
                assert delivery["last_status"] == 503
        assert subscriber.accepted() == []

        if outage == "connection_refused":
            await subscriber.start()  # back, on the same port
        else:
            subscriber.status = 200
        await subscriber.wait_for(lambda s: set(s.accepted_ids()) >= set(ids))

        assert set(subscriber.accepted_ids()) == set(ids)  # none lost, nothing else
        assert_duplicates_are_the_same_message(subscriber)
        for request in subscriber.accepted():
            assert verifies(request, sub["secret"])

        async def all_delivered() -> bool:
            return all([delivery_of(await get_event(gw, i), sub["id"])["status"] == "delivered" for i in ids])

        await eventually(all_delivered, "the gateway to record every delivery")
        for event_id in ids:
            delivery = delivery_of(await get_event(gw, event_id), sub["id"])
            assert delivery["attempts"] > 1 and delivery["delivered_at"] and delivery["last_status"] == 200
        if outage == "http_503":
            failed = Counter(r["headers"]["webhook-id"] for r in subscriber.received if r["status"] == 503)
            assert set(failed) == set(ids)  # the refusals were of the same messages, under the same ids
    finally:
        await subscriber.stop()


# --- 2. ordered subscriptions stay in order through failures -----------------------------------------------------
async def test_an_ordered_subscription_gets_each_consents_events_in_order_after_failures(
        aiohttp_client: Any, make_config: Any, subscriber: Subscriber) -> None:
    gw = await serve(aiohttp_client, make_config(FAST_EVENTS))
    subscriber.status = 503
    sub = await subscribe(gw, subscriber.url, ordered=True)
    consents = [await thredd_consent(gw) for _ in range(3)]
    events = await all_events(gw)
    assert len(events) == 6
    first_ids = [e["id"] for e in events if e["type"] == "consent.authorised"]

    async def heads_tried_twice() -> bool:
        return all([delivery_of(await get_event(gw, i), sub["id"])["attempts"] >= 2 for i in first_ids])

    await eventually(heads_tried_twice, "each consent's first event to fail twice")
    # while a consent's first event fails, its second is held back: never even tried
    assert {r["json"]["type"] for r in subscriber.received} == {"consent.authorised"}
    for event in events:
        if event["type"] == "accounts.added":
            assert delivery_of(await get_event(gw, event["id"]), sub["id"])["attempts"] == 0

    subscriber.status = 200
    await subscriber.wait_for(lambda s: set(s.accepted_ids()) >= {e["id"] for e in events})
    assert_duplicates_are_the_same_message(subscriber)
    for consent in consents:
        mine = [(i, r) for i, r in enumerate(subscriber.received)
                if r["json"]["data"]["consent"]["id"] == consent["id"]]
        authorised_ok = min(i for i, r in mine if r["json"]["type"] == "consent.authorised" and r["status"] == 200)
        added = [i for i, r in mine if r["json"]["type"] == "accounts.added"]
        assert added and all(i > authorised_ok for i in added), consent["id"]  # not sent before the first landed
        accepted_types = [r["json"]["type"] for _, r in mine if r["status"] == 200]
        assert accepted_types.index("consent.authorised") < accepted_types.index("accounts.added")


# --- 3. 410 Gone --------------------------------------------------------------------------------------------------
async def test_410_gone_disables_the_subscription_until_it_is_enabled_again(aiohttp_client: Any, make_config: Any,
                                                                            subscriber: Subscriber) -> None:
    # One delivery at a time to a subscription, so nothing else is in flight when the 410 comes back.
    gw = await serve(aiohttp_client, make_config(fast(per_subscription_concurrency=1)))
    subscriber.status = 503  # pending deliveries pile up first
    sub = await subscribe(gw, subscriber.url)
    for _ in range(2):
        await thredd_consent(gw)
    ids = [e["id"] for e in await all_events(gw)]
    assert len(ids) == 4
    await subscriber.wait_for(lambda s: len(s.received) >= 2)
    subscriber.status = 410

    async def disabled() -> bool:
        return (await get_subscription(gw, sub["id"]))["status"] == "disabled"

    await eventually(disabled, "the 410 answer to disable the subscription")
    shown = await get_subscription(gw, sub["id"])
    assert "410" in shown["disabled_reason"], shown
    assert sum(1 for r in subscriber.received if r["status"] == 410) == 1

    async def attempts() -> int:
        return sum([delivery_of(await get_event(gw, i), sub["id"])["attempts"] for i in ids])

    async def recorded() -> bool:
        return await attempts() == len(subscriber.received)

    await eventually(recorded, "every attempt to be recorded")
    seen, tried = len(subscriber.received), await attempts()
    await asyncio.sleep(1.0)  # many poll intervals and retry delays: a live subscription would be tried again
    assert len(subscriber.received) == seen and await attempts() == tried  # no further attempts
    for event_id in ids:
        assert delivery_of(await get_event(gw, event_id), sub["id"])["status"] == "pending"

    subscriber.status = 200
    resp = await gw.patch(f"/v1/webhook-subscriptions/{sub['id']}", json={"enabled": True}, headers=DEV)
    enabled = await resp.json()
    assert resp.status == 200 and enabled["status"] == "enabled" and enabled["disabled_reason"] is None, enabled
    await subscriber.wait_for(lambda s: set(s.accepted_ids()) >= set(ids))
    assert set(subscriber.accepted_ids()) == set(ids)
    assert_duplicates_are_the_same_message(subscriber)


# --- 4. dead letter and redelivery --------------------------------------------------------------------------------
async def test_dead_lettered_deliveries_are_listed_and_can_be_redelivered(aiohttp_client: Any, make_config: Any,
                                                                          subscriber: Subscriber) -> None:
    gw = await serve(aiohttp_client, make_config(fast(retry_horizon_seconds=1, retention_seconds=60)))
    subscriber.status = 500
    sub = await subscribe(gw, subscriber.url, ["consent.authorised"])
    await thredd_consent(gw)
    [event] = await all_events(gw, type="consent.authorised")

    async def dead() -> bool:
        return [e["id"] for e in await all_events(gw, status="failed")] == [event["id"]]

    await eventually(dead, "the delivery to be dead-lettered")
    delivery = delivery_of(await get_event(gw, event["id"]), sub["id"])
    assert delivery["status"] == "failed" and delivery["last_status"] == 500 and delivery["attempts"] >= 1
    assert delivery["next_attempt_at"] is None
    failed_attempts = len(subscriber.received)
    assert failed_attempts == delivery["attempts"] and subscriber.accepted() == []
    assert await all_events(gw, status="pending") == []

    # redelivery is refused where it cannot go
    other = await Subscriber().start()
    try:
        parked = await subscribe(gw, other.url, ["consent.authorised"])
        resp = await gw.patch(f"/v1/webhook-subscriptions/{parked['id']}", json={"enabled": False}, headers=DEV)
        assert resp.status == 200
        resp = await gw.post(f"/v1/events/{event['id']}/redeliver", json={"subscription_id": parked["id"]},
                             headers=DEV)
        assert resp.status == 409, await resp.text()
        resp = await gw.post(f"/v1/events/{event['id']}/redeliver", json={"subscription_id": "sub_nope"},
                             headers=DEV)
        assert resp.status == 422, await resp.text()
        assert (await gw.post("/v1/events/evt_nope/redeliver", headers=DEV)).status == 404
        assert other.received == []
    finally:
        await other.stop()
    assert len(subscriber.received) == failed_attempts  # none of that sent anything

    subscriber.status = 200  # fixed
    resp = await gw.post(f"/v1/events/{event['id']}/redeliver", headers=DEV)
    queued = await resp.json()
    assert resp.status == 202 and queued["queued"] == 1, queued
    await subscriber.wait_for(lambda s: len(s.accepted()) == 1)
    assert subscriber.accepted_ids() == [event["id"]]
    assert {r["headers"]["webhook-id"] for r in subscriber.received} == {event["id"]}  # same id as the failures
    assert_duplicates_are_the_same_message(subscriber)
    assert verifies(subscriber.accepted()[0], sub["secret"])

    async def delivered() -> bool:
        return delivery_of(await get_event(gw, event["id"]), sub["id"])["status"] == "delivered"

    await eventually(delivered, "the redelivery to be recorded")
    assert await all_events(gw, status="failed") == []
    resp = await gw.post(f"/v1/events/{event['id']}/redeliver", headers=DEV)
    assert resp.status == 409, await resp.text()  # nothing failed now


# --- 5. secret rotation -------------------------------------------------------------------------------------------
async def test_rotated_secrets_sign_beside_the_old_one_during_the_overlap(aiohttp_client: Any, make_config: Any,
                                                                          subscriber: Subscriber) -> None:
    gw = await serve(aiohttp_client, make_config(FAST_EVENTS))
    sub = await subscribe(gw, subscriber.url, ["consent.authorised"])
    first = sub["secret"]
    await thredd_consent(gw)
    await subscriber.wait_for(lambda s: len(s.accepted()) == 1)
    before = subscriber.accepted()[0]
    assert len(before["headers"]["webhook-signature"].split(" ")) == 1 and verifies(before, first)

    resp = await gw.post(f"/v1/webhook-subscriptions/{sub['id']}/rotate-secret", headers=DEV)
    rotated = await resp.json()
    assert resp.status == 200, rotated
    second = rotated["secret"]
    assert second.startswith("whsec_") and second != first
    assert rotated["previous_secret_expires_at"] is not None
    shown = await get_subscription(gw, sub["id"])
    assert "secret" not in shown and shown["previous_secret_expires_at"] == rotated["previous_secret_expires_at"]

    await thredd_consent(gw)
    await subscriber.wait_for(lambda s: len(s.accepted()) == 2)
    during = subscriber.accepted()[1]
    signatures = during["headers"]["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    assert verifies(during, first) and verifies(during, second)

    resp = await gw.post(f"/v1/webhook-subscriptions/{sub['id']}/rotate-secret", json={"overlap_seconds": 0},
                         headers=DEV)
    again = await resp.json()
    assert resp.status == 200 and again["previous_secret_expires_at"] is None, again
    third = again["secret"]
    assert third not in (first, second)

    await thredd_consent(gw)
    await subscriber.wait_for(lambda s: len(s.accepted()) == 3)
    after = subscriber.accepted()[2]
    assert len(after["headers"]["webhook-signature"].split(" ")) == 1
    assert verifies(after, third)
    assert not verifies(after, second) and not verifies(after, first)


# --- 6. a slow subscriber does not hold up the others ------------------------------------------------------------
async def test_a_slow_subscriber_does_not_delay_the_others(aiohttp_client: Any, make_config: Any) -> None:
    # The request timeout outlasts the test, so a held request stays one in-flight delivery (never retried).
    gw = await serve(aiohttp_client, make_config(fast(request_timeout_seconds=60, lease_seconds=120)))
    cap = state_of(gw).config.events.per_subscription_concurrency
    slow, quick = GatedSubscriber(), Subscriber()
    await slow.start()
    await quick.start()
    try:
        await subscribe(gw, slow.url)
        await subscribe(gw, quick.url)
        for _ in range(4):
            await thredd_consent(gw)
        ids = {e["id"] for e in await all_events(gw)}
        assert len(ids) == 8 > cap
        await quick.wait_for(lambda s: set(s.accepted_ids()) >= ids)
        # The slow one holds at most its share of deliveries at once, and has answered none of them: the quick one
        # got everything while the slow one was still on its first few.
        assert len(slow.answered) < len(ids)
        assert len(slow.received) <= cap
        slow.release()
        await slow.wait_for(lambda s: set(s.answered) >= ids)
        assert set(slow.answered) == ids and len(slow.answered) == len(ids)
        assert set(quick.accepted_ids()) == ids
        assert_duplicates_are_the_same_message(slow)
    finally:
        slow.release()
        await slow.stop()
        await quick.stop()


async def test_a_slow_subscribers_backlog_does_not_starve_the_others(aiohttp_client: Any, make_config: Any) -> None:
    # Few slots, so the backlog of the slow one is larger than what one claim round looks at.
    gw = await serve(aiohttp_client, make_config(fast(request_timeout_seconds=60, lease_seconds=120, concurrency=2,
                                                      per_subscription_concurrency=1)))
    slow, quick = GatedSubscriber(), Subscriber()
    await slow.start()
    await quick.start()
    try:
        await subscribe(gw, slow.url)
        for _ in range(5):
            await thredd_consent(gw)  # ten deliveries for the slow one, due now: one held, nine waiting
        await slow.wait_for(lambda s: len(s.received) == 1)
        await subscribe(gw, quick.url)
        await thredd_consent(gw)
        newest = {e["id"] for e in (await all_events(gw))[-2:]}
        await quick.wait_for(lambda s: set(s.accepted_ids()) >= newest)
        assert set(quick.accepted_ids()) == newest
        assert len(slow.received) == 1 and slow.answered == []  # still holding its first
        slow.release()
        await slow.wait_for(lambda s: len(set(s.answered)) == 12)
    finally:
        slow.release()
        await slow.stop()
        await quick.stop()


class SharedHostSubscriber(GatedSubscriber):
    """One endpoint host for several subscriptions (a webhook relay, say): URLs with `?hold=1` are slow (held
    until released), the others answer at once."""

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append({"headers": dict(request.headers), "body": body, "json": json.loads(body),
                              "at": time.monotonic(), "status": 200, "url": str(request.rel_url)})
        if request.query.get("hold"):
            await self.gate.wait()
        self.answered.append(request.headers["webhook-id"])
        return web.Response(status=200)


async def test_slow_subscriptions_on_a_shared_host_do_not_block_another_on_it(aiohttp_client: Any,
                                                                              make_config: Any) -> None:
    gw = await serve(aiohttp_client, make_config(fast(request_timeout_seconds=60, lease_seconds=120)))
    host = await SharedHostSubscriber().start()
    try:
        slow = [await subscribe(gw, f"{host.url}?hold=1&team={n}") for n in (1, 2)]
        quick = await subscribe(gw, f"{host.url}?team=3")
        for _ in range(4):
            await thredd_consent(gw)
        ids = {e["id"] for e in await all_events(gw)}
        assert len(ids) == 8

        def quick_ones(s: Subscriber) -> set[str]:
            return {r["headers"]["webhook-id"] for r in s.received if "hold" not in r["url"]}

        await host.wait_for(lambda s: quick_ones(s) >= ids)
        assert len([r for r in host.received if "hold" in r["url"]]) <= 2 * 4  # each slow one holds its share
        host.release()

        async def all_delivered() -> bool:
            events = await all_events(gw)
            return all(d["status"] == "delivered" for e in events for d in e["deliveries"])

        await eventually(all_delivered, "every subscription to get everything")
        assert {s["id"] for s in slow} | {quick["id"]} == {
            d["subscription_id"] for e in await all_events(gw) for d in e["deliveries"]}
    finally:
        host.release()
        await host.stop()


# --- 7. SSRF at connect time --------------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_target_that_became_internal_gets_nothing(aiohttp_client: Any, make_config: Any,
                                                         subscriber: Subscriber, host: str) -> None:
    gw = await serve(aiohttp_client, make_config(fast(allow_private_targets=False, allow_http=True)))
    url = f"http://{host}:{subscriber.port}/hooks"
    # The API refuses it ...
    resp = await gw.post("/v1/webhook-subscriptions", json={"url": url, "event_types": ["*"]}, headers=DEV)
    assert resp.status == 422, await resp.text()
    # ... so it gets in as if its name pointed elsewhere when it was checked (DNS changed later).
    state, now, sub_id = state_of(gw), utcnow(), new_id("sub")
    sealed = signing.seal_secrets(state.vault, "dev", sub_id, [{"secret": signing.new_secret(), "expires_at": None}])
    await state.store.insert_subscription(SubscriptionRecord(
        tenant="dev", id=sub_id, url=url, event_types=("*",), ordered=False, status="enabled", created_at=now,
        updated_at=now, secrets=sealed))
    await thredd_consent(gw)
    events = await all_events(gw)
    assert len(events) == 2

    async def tried() -> bool:
        return all([delivery_of(await get_event(gw, e["id"]), sub_id)["attempts"] >= 2 for e in events])

    await eventually(tried, "the gateway to attempt the deliveries")
    for event in events:
        delivery = delivery_of(await get_event(gw, event["id"]), sub_id)
        assert delivery["status"] == "pending" and delivery["last_status"] is None
        assert "not a public address" in delivery["last_error"], delivery
    assert subscriber.received == []


# --- 8. consent expiry --------------------------------------------------------------------------------------------
async def test_a_consent_is_announced_as_expiring_then_expires_and_its_data_goes(aiohttp_client: Any,
                                                                                 make_config: Any,
                                                                                 subscriber: Subscriber) -> None:
    gw = await serve(aiohttp_client, make_config(fast(consent_expiring_lead_seconds=3600,
                                                      expiry_check_interval_seconds=0.05)))
    await subscribe(gw, subscriber.url, ["consent.expiring", "consent.expired"])
    consent = await authorised_consent(gw, "mastercard-us")
    await first_account(gw, consent["id"])
    db = state_of(gw).store.db

    def accounts() -> int:
        return int(db.execute("SELECT COUNT(*) FROM accounts WHERE consent_id = ?", (consent["id"],)).fetchone()[0])

    assert accounts() > 0
    store = state_of(gw).store
    record = await store.get_consent("dev", consent["id"])
    ends = utcnow() + timedelta(seconds=2)
    record.expires_at = ends
    assert await store.update_consent(record)

    await subscriber.wait_for(lambda s: len(s.of_type("consent.expired")) == 1)
    assert [r["json"]["type"] for r in subscriber.accepted()] == ["consent.expiring", "consent.expired"]
    expiring, expired = subscriber.of_type("consent.expiring")[0], subscriber.of_type("consent.expired")[0]
    assert expiring["data"]["consent"]["id"] == expired["data"]["consent"]["id"] == consent["id"]
    assert expiring["data"]["consent"]["status"] == "authorised"
    assert expired["data"]["consent"]["status"] == "expired" and expired["data"]["previous_status"] == "authorised"
    assert expiring["data"]["consent"]["expires_at"] == expired["data"]["consent"]["expires_at"]
    assert utcnow() >= ends

    shown = await (await gw.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert shown["status"] == "expired", shown
    assert accounts() == 0
    resp = await gw.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)
    assert resp.status != 200 or (await resp.json())["data"] == []
    # announced once however many rounds the watcher ran since
    await asyncio.sleep(0.5)
    assert [e["type"] for e in await all_events(gw, type="consent.expiring")] == ["consent.expiring"]
    assert len(subscriber.of_type("consent.expiring")) == 1 and len(subscriber.of_type("consent.expired")) == 1
    assert count_rows(gw, "consent_notices") == 1
