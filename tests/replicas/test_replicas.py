"""Several `gateway serve` replicas on one PostgreSQL schema behave as one service: an idempotency key holds across
replicas, each delivery attempt is claimed by one replica (and a replica's death loses none), a consent moves from
replica to replica, one replica renews a consent's tokens while the others wait, a replica stops gracefully, and
replicas started together migrate an empty schema once.

Every replica is a real process (`cluster.py`); the simulators they call run once, in this process: stripe-uk
(mutual TLS, DCR, FAPI) where the point needs a bank with payments or tokens to renew, thredd (plain HTTP; it sends
its webhooks to the cluster) where it needs many events cheaply. Each test has a schema of its own, dropped
afterwards; without a reachable PostgreSQL the tests are skipped, or fail with GATEWAY_REQUIRE_POSTGRES=1.
"""
from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Callable

import aiohttp
import pytest

from gateway.store.postgres_schema import MIGRATIONS
from tests.payments_flow import order, payer_decides
from tests.replicas.cluster import Cluster, eventually, query
from tests.replicas.support import (
    HoldingSubscriber, call, deliveries_logged, keyed, one_message_per_id, outcome, refused, spread, subscribe,
    thredd_events, token_grants, uk_consent,
)

pytestmark = pytest.mark.postgres
MakeCluster = Callable[..., Cluster]
UK = "stripe-uk"
PIS = "/open-banking/v3.1/pisp"


# --- 1. payments: one Idempotency-Key, several replicas --------------------------------------------------------------
async def test_an_idempotency_key_holds_across_replicas(make_cluster: MakeCluster, http: aiohttp.ClientSession) -> None:
    """stripe-uk: ten identical payment orders under one key, at three replicas at once, make one payment consent at
    the bank and get one answer; the payer's redirect, sent to every replica at once under one key, is redeemed
    once and submitted once; submitting again anywhere sends nothing."""
    cluster = make_cluster(providers=(UK,))
    await cluster.start(http)
    bank = cluster.sandboxes[UK]
    bank.calls.clear()
    answers = await asyncio.gather(*(call(http, "POST", f"{base}/v1/payments", json=order(), headers=keyed("pay-1"))
                                     for base in spread(cluster, 10)))

    assert {status for status, _, _ in answers} == {201}, answers
    assert len({body for _, _, body in answers}) == 1  # byte for byte the same answer
    replayed = [headers.get("Idempotent-Replayed") for _, headers, _ in answers]
    assert replayed.count(None) == 1 and replayed.count("true") == 9, replayed
    assert len(bank.calls.matching("POST", PIS + "/domestic-payment-consents$")) == 1
    assert len(bank.payment_consents) == 1
    payment = json.loads(answers[0][2])

    redirect = await payer_decides(payment["authorisation_url"])
    completes = await asyncio.gather(*(
        call(http, "POST", f"{base}/v1/payments/{payment['id']}/complete",
             json={"redirect_result": redirect, "submit": True}, headers=keyed("complete-1"))
        for base in spread(cluster, 6)))
    assert {outcome(a) for a in completes} == {(200, "submitted")}, completes
    assert len({body for _, _, body in completes}) == 1
    assert [headers.get("Idempotent-Replayed") for _, headers, _ in completes].count("true") == 5
    submits = await asyncio.gather(*(call(http, "POST", f"{base}/v1/payments/{payment['id']}/submit")
                                     for base in spread(cluster, 6)))
    assert [status for status, _, _ in submits] == [200] * 6, submits

    assert len(token_grants(bank, "authorization_code")) == 1
    assert len(bank.calls.matching("POST", PIS + "/domestic-payments$")) == 1
    assert len(bank.payments) == 1


async def test_an_authorised_payment_submitted_at_every_replica_pays_once(make_cluster: MakeCluster,
                                                                          http: aiohttp.ClientSession) -> None:
    """stripe-uk: six submissions of one authorised payment, without a key, at three replicas at once: one replica
    submits (the payment's lease across replicas), the others wait and answer the payment as it then stands."""
    cluster = make_cluster(providers=(UK,))
    a, b, c = await cluster.start(http)
    bank = cluster.sandboxes[UK]
    status, _, body = await call(http, "POST", f"{a.base}/v1/payments", json=order(), headers=keyed("pay-2"))
    assert status == 201, body
    payment = json.loads(body)
    redirect = await payer_decides(payment["authorisation_url"])
    status, _, body = await call(http, "POST", f"{b.base}/v1/payments/{payment['id']}/complete",
                                 json={"redirect_result": redirect, "submit": False})
    assert status == 200 and json.loads(body)["status"] == "authorised", body

    submits = await asyncio.gather(*(call(http, "POST", f"{base}/v1/payments/{payment['id']}/submit")
                                     for base in spread(cluster, 6)))
    outcomes = [outcome(s) for s in submits]
    assert all(status == 200 and state != "authorised" for status, state in outcomes), outcomes
    assert len(bank.calls.matching("POST", PIS + "/domestic-payments$")) == 1
    assert len(bank.payments) == 1
    status, _, body = await call(http, "GET", f"{c.base}/v1/payments/{payment['id']}")
    assert status == 200 and json.loads(body)["provider_ref"] in bank.payments, body


async def test_a_payment_completed_at_every_replica_without_a_key(make_cluster: MakeCluster,
                                                                  http: aiohttp.ClientSession) -> None:
    """stripe-uk: the payer's redirect sent, without a key, to three replicas at once (the bank slowed, so their
    work overlaps). The payer's authorisation code can be redeemed once (the bank revokes what it gave on a second
    use): one replica redeems it and submits, the others wait for it and answer the payment as it then stands."""
    cluster = make_cluster(providers=(UK,))
    a, _, _ = await cluster.start(http)
    bank = cluster.sandboxes[UK]
    status, _, body = await call(http, "POST", f"{a.base}/v1/payments", json=order(), headers=keyed("pay-3"))
    assert status == 201, body
    payment = json.loads(body)
    redirect = await payer_decides(payment["authorisation_url"])
    bank.faults.add("latency", path=r"^/token$", delay=1.0, times=None)  # the replicas' redemptions overlap
    completes = await asyncio.gather(*(
        call(http, "POST", f"{base}/v1/payments/{payment['id']}/complete",
             json={"redirect_result": redirect, "submit": True}) for base in spread(cluster, 3)))
    bank.faults.clear()
    assert [status for status, _, _ in completes] == [200] * 3, completes
    assert len(token_grants(bank, "authorization_code")) == 1
    assert len(bank.calls.matching("POST", PIS + "/domestic-payments$")) == 1
    assert len(bank.payments) == 1


# --- 2. the outbox, drained by every replica -------------------------------------------------------------------------
async def test_every_event_is_delivered_once_by_one_of_three_replicas(make_cluster: MakeCluster,
                                                                      http: aiohttp.ClientSession) -> None:
    """thredd: twenty events (ten consents, their webhooks to replica a), a subscription made on b, three delivery
    workers claiming at once: every event arrives once, and each attempt was made by one replica."""
    cluster = make_cluster(providers=("thredd",))
    await cluster.start(http)
    subscriber = await HoldingSubscriber().start()
    try:
        await subscribe(http, cluster["b"].base, subscriber.url)
        ids = {e["id"] for e in await thredd_events(http, cluster, 10)}
        assert len(ids) == 20

        async def delivered() -> bool:
            rows = await query(cluster.schema, "SELECT status, attempts FROM deliveries")
            return len(rows) == 20 and {tuple(r) for r in rows} == {("delivered", 1)}

        await eventually(delivered, "every delivery to be recorded as delivered at the first attempt")
        assert sorted(r["headers"]["webhook-id"] for r in subscriber.received) == sorted(ids)  # each once
        one_message_per_id(subscriber.received)
        attempts = [event_id for sent in deliveries_logged(cluster).values() for event_id in sent]
        assert sorted(attempts) == sorted(ids)  # no attempt was made by two replicas
    finally:
        await subscriber.stop()


async def test_deliveries_of_a_killed_replica_are_made_by_the_others(make_cluster: MakeCluster,
                                                                     http: aiohttp.ClientSession) -> None:
    """thredd: the subscriber holds every delivery; a replica with some in flight is SIGKILLed. Once its claims'
    lease ends the others send what it had in flight, under the same webhook-id and body; nothing is lost."""
    cluster = make_cluster(providers=("thredd",), events={"request_timeout_seconds": 2.0, "lease_seconds": 2.5})
    await cluster.start(http)
    subscriber = await HoldingSubscriber(holding=True).start()
    try:
        await subscribe(http, cluster["a"].base, subscriber.url)
        ids = {e["id"] for e in await thredd_events(http, cluster, 10)}
        victim, in_flight = "", set()

        async def b_or_c_waits() -> bool:  # a replica other than the webhook receiver has deliveries in flight
            nonlocal victim, in_flight
            victim, in_flight = max(((name, subscriber.held_by(cluster, name)) for name in "bc"),
                                    key=lambda held: len(held[1]))
            return bool(in_flight)

        await eventually(b_or_c_waits, "replica b or c to have deliveries in flight")
        claims = await query(cluster.schema, "SELECT DISTINCT claimed_by FROM deliveries WHERE event_id = ANY($1)",
                             list(in_flight))
        [victims_worker] = {r[0] for r in claims}
        assert victims_worker is not None
        cluster[victim].signal(signal.SIGKILL)
        assert await cluster[victim].wait() == -signal.SIGKILL
        before = len(subscriber.received)
        subscriber.release()  # answered at once from now on (held answers to the dead replica go nowhere)

        async def all_delivered() -> bool:
            rows = await query(cluster.schema, "SELECT event_id, status, claimed_by FROM deliveries")
            return {r[0] for r in rows} == ids and all(r[1] == "delivered" and r[2] is None for r in rows)

        await eventually(all_delivered, "the other replicas to deliver everything")
        assert in_flight <= {r["headers"]["webhook-id"] for r in subscriber.received[before:]}  # sent again ...
        one_message_per_id(subscriber.received)  # ... as the same message under the same webhook-id
        assert {r["headers"]["webhook-id"] for r in subscriber.received} == ids
        assert not await query(cluster.schema, "SELECT 1 FROM deliveries WHERE claimed_by = $1", victims_worker)
    finally:
        subscriber.release()
        await subscriber.stop()


# --- 3. a consent moves from replica to replica ----------------------------------------------------------------------
async def test_a_consent_created_on_a_is_completed_on_b_and_read_on_c(make_cluster: MakeCluster,
                                                                     http: aiohttp.ClientSession) -> None:
    """stripe-uk: b completes with what a kept for the redirect (state, nonce) and seals the tokens; c opens them
    and reads the accounts at the bank; a sees the consent authorised and b the account c stored."""
    cluster = make_cluster(providers=(UK,))
    a, b, c = await cluster.start(http)
    consent = await uk_consent(http, a.base, b.base)

    status, _, body = await call(http, "GET", f"{c.base}/v1/accounts", params={"consent_id": consent["id"]})
    assert status == 200, body
    accounts = json.loads(body)["data"]
    assert accounts and {x["consent_id"] for x in accounts} == {consent["id"]}
    status, _, body = await call(http, "GET", f"{c.base}/v1/accounts/{accounts[0]['id']}/balances")
    assert status == 200 and json.loads(body)["data"], body
    status, _, body = await call(http, "GET", f"{a.base}/v1/consents/{consent['id']}")
    assert status == 200 and json.loads(body)["status"] == "authorised", body
    status, _, body = await call(http, "GET", f"{b.base}/v1/accounts/{accounts[0]['id']}")
    assert status == 200 and json.loads(body)["id"] == accounts[0]["id"], body


# --- 4. one renewal of a consent's tokens across replicas ------------------------------------------------------------
async def test_one_replica_renews_an_expired_token_while_the_others_wait(make_cluster: MakeCluster,
                                                                         http: aiohttp.ClientSession) -> None:
    """stripe-uk: the bank refuses every access token issued so far, then nine reads of one account hit three
    replicas at once. The store lease lets one replica spend the refresh token; the others, once they hold it, read
    the renewed tokens (not the copy in their short read cache, which every replica has just filled) and use them."""
    cluster = make_cluster(providers=(UK,))
    a, b, c = await cluster.start(http)
    bank = cluster.sandboxes[UK]
    consent = await uk_consent(http, a.base, b.base)
    status, _, body = await call(http, "GET", f"{c.base}/v1/accounts", params={"consent_id": consent["id"]})
    assert status == 200, body
    account = json.loads(body)["data"][0]
    for replica in (a, b, c):
        status, _, body = await call(http, "GET", f"{replica.base}/v1/consents/{consent['id']}")
        assert status == 200, body
    bank.calls.clear()
    bank.expire_access_tokens()

    reads = await asyncio.gather(*(call(http, "GET", f"{base}/v1/accounts/{account['id']}/balances")
                                   for base in spread(cluster, 9)))
    assert [status for status, _, _ in reads] == [200] * 9, reads
    assert len(token_grants(bank, "refresh_token")) == 1
    status, _, body = await call(http, "GET", f"{a.base}/v1/consents/{consent['id']}")
    assert status == 200 and json.loads(body)["status"] == "authorised", body


# --- 5. graceful shutdown --------------------------------------------------------------------------------------------
async def test_sigterm_finishes_the_request_in_flight_and_hands_back_claims(make_cluster: MakeCluster,
                                                                           http: aiohttp.ClientSession) -> None:
    """thredd: replica b gets SIGTERM while a consent request of its waits on a slow bank and while it has
    deliveries in flight at a subscriber that does not answer. It stops listening at once, answers the request in
    flight as usual, cuts its deliveries off at the grace, hands their claims back, and exits 0 within the grace."""
    grace = 3.0
    cluster = make_cluster(providers=("thredd",), replicas=2, server={"shutdown_grace_seconds": grace},
                           events={"request_timeout_seconds": 10.0, "lease_seconds": 12.0})
    a, b = await cluster.start(http)
    bank = cluster.sandboxes["thredd"]
    subscriber = await HoldingSubscriber(holding=True).start()
    try:
        await subscribe(http, a.base, subscriber.url)
        await thredd_events(http, cluster, 3)

        async def b_waits() -> bool:
            return bool(subscriber.held_by(cluster, "b"))

        await eventually(b_waits, "replica b to have deliveries in flight")
        held_by_b = subscriber.held_by(cluster, "b")
        claims = await query(cluster.schema, "SELECT DISTINCT claimed_by FROM deliveries WHERE event_id = ANY($1)",
                             list(held_by_b))
        [b_worker] = {r[0] for r in claims}
        assert b_worker is not None

        bank.calls.clear()
        bank.faults.add("latency", path=r"/register$", delay=2.0)
        slow = asyncio.create_task(call(http, "POST", f"{b.base}/v1/consents",
                                        json={"provider": "thredd", "redirect_uri": "https://app.example.com/cb"}))

        async def at_the_bank() -> bool:
            return bool(bank.calls.matching("POST", r"/register$"))

        await eventually(at_the_bank, "b's consent request to reach the bank")
        signalled = time.monotonic()
        b.signal(signal.SIGTERM)

        async def not_listening() -> bool:
            return await refused(b.port)

        await eventually(not_listening, "replica b to refuse new connections", timeout=grace)
        assert not slow.done()  # refused while the request in flight is still being served ...
        status, _, body = await slow
        assert status == 201 and json.loads(body)["status"] == "awaiting_authorisation", body  # ... which ends well
        assert await b.wait(timeout=grace + 10) == 0, b.tail()
        took = time.monotonic() - signalled
        assert took < grace + 2.0, f"replica b took {took:.1f} s to stop; its grace is {grace:g} s"

        assert not await query(cluster.schema, "SELECT 1 FROM deliveries WHERE claimed_by = $1", b_worker)
        released = [e for e in b.log_events() if e.get("event") == "event_deliveries_released"]
        assert released and released[0]["count"] >= len(held_by_b), released
        subscriber.release()

        async def all_delivered() -> bool:
            rows = await query(cluster.schema, "SELECT status FROM deliveries")
            return len(rows) == 6 and {r[0] for r in rows} == {"delivered"}

        await eventually(all_delivered, "replica a to deliver everything")
    finally:
        subscriber.release()
        await subscriber.stop()


# --- 6. migrations under the advisory lock ---------------------------------------------------------------------------
async def test_replicas_started_together_migrate_an_empty_schema_once(make_cluster: MakeCluster,
                                                                      http: aiohttp.ClientSession) -> None:
    """thredd (no registration at start): three replicas started at the same moment on a schema that does not exist
    yet all come up; one migrated under the advisory lock, the others waited and found the work done."""
    cluster = make_cluster(providers=("thredd",))
    assert not await query(cluster.schema, "SELECT 1 FROM pg_namespace WHERE nspname = $1", cluster.schema)
    replicas = await cluster.start(http, together=True)

    rows = await query(cluster.schema, "SELECT version, count(*) FROM schema_version GROUP BY version ORDER BY 1")
    assert [tuple(r) for r in rows] == [(v, 1) for v in range(1, len(MIGRATIONS) + 1)]
    for replica in replicas:
        status, _, body = await call(http, "GET", f"{replica.base}/readyz")
        assert status == 200 and json.loads(body)["checks"] == {"store": "ok"}, body
        status, _, body = await call(http, "GET", f"{replica.base}/v1/events")
        assert status == 200, body


async def test_replicas_started_together_register_one_client_at_the_bank(make_cluster: MakeCluster,
                                                                         http: aiohttp.ClientSession) -> None:
    """stripe-uk: three replicas start at the same moment on an empty store; they register one after another under
    a lease, so the first registers and the others find its registration: one client at the bank, not three."""
    cluster = make_cluster(providers=(UK,))
    await cluster.start(http, together=True)
    assert len(cluster.sandboxes[UK].clients) == 1
