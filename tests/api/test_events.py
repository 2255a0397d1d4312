"""Canonical events end to end: provider webhooks and state changes in, signed Standard Webhooks deliveries out,
over real HTTP (the gateway against its simulators, a real subscriber on a local port)."""
from __future__ import annotations

from typing import Any

import pytest

from gateway.events.canonical import EVENT_TYPES
from tests import payments_flow as pf
from tests.conftest import DEV, OTHER, READONLY, count_rows, sandbox_of, serve, state_of
from tests.events_support import FAST_EVENTS, Subscriber, all_events, subscribe, verifies
from tests.flows import authorised_consent, first_account, play_end_user


@pytest.fixture
async def gw(aiohttp_client: Any, make_config: Any) -> Any:
    return await serve(aiohttp_client, make_config(FAST_EVENTS))


@pytest.fixture
async def subscriber() -> Any:
    sub = await Subscriber().start()
    yield sub
    await sub.stop()


async def thredd_consent(gw: Any, headers: dict[str, str] = DEV) -> dict[str, Any]:
    """A thredd consent authorised by the provider's webhooks alone."""
    resp = await gw.post("/v1/consents", json={"provider": "thredd", "redirect_uri": "https://app.example.com/cb"},
                         headers=headers)
    consent = await resp.json()
    assert resp.status == 201, consent
    await play_end_user(consent["authorisation_url"])
    await sandbox_of(gw, "thredd").wait_webhooks_idle()
    return consent


async def test_subscribe_then_receive_signed_events(gw: Any, subscriber: Subscriber) -> None:
    sub = await subscribe(gw, subscriber.url, ["consent.authorised", "accounts.added"], description="ledger team")
    assert sub["secret"].startswith("whsec_") and sub["status"] == "enabled"
    shown = await (await gw.get(f"/v1/webhook-subscriptions/{sub['id']}", headers=DEV)).json()
    assert "secret" not in shown and shown["url"] == subscriber.url  # the secret is shown once

    consent = await thredd_consent(gw)
    await subscriber.wait_for(lambda s: len(s.accepted()) == 2)
    authorised, added = subscriber.accepted()
    assert authorised["json"]["type"] == "consent.authorised" and added["json"]["type"] == "accounts.added"
    assert authorised["json"]["data"]["consent"]["id"] == consent["id"]
    assert authorised["json"]["data"]["consent"]["status"] == "authorised"
    assert authorised["json"]["data"]["previous_status"] == "awaiting_authorisation"
    accounts = (await (await gw.get(f"/v1/accounts?consent_id={consent['id']}", headers=DEV)).json())["data"]
    assert sorted(added["json"]["data"]["account_ids"]) == sorted(a["id"] for a in accounts) or \
        added["json"]["data"]["account_ids"] == []
    for delivery in subscriber.accepted():
        assert delivery["headers"]["webhook-id"] == delivery["json"]["id"]
        assert delivery["headers"]["Content-Type"] == "application/json"
        assert verifies(delivery, sub["secret"])
        assert not verifies(delivery, "whsec_" + "A" * 43 + "=")  # any other secret fails

    # the same events are readable by polling, with how they were delivered
    events = await all_events(gw)
    assert [e["id"] for e in events] == subscriber.accepted_ids()
    assert all(e["deliveries"][0]["status"] == "delivered" for e in events)


async def test_a_tenant_receives_and_sees_only_its_own_events(gw: Any) -> None:
    mine, theirs = await Subscriber().start(), await Subscriber().start()
    try:
        await subscribe(gw, mine.url)
        await subscribe(gw, theirs.url, headers=OTHER)
        await thredd_consent(gw)
        await mine.wait_for(lambda s: len(s.accepted()) >= 2)
        assert theirs.received == []
        assert await all_events(gw, OTHER) == []
        first = (await all_events(gw))[0]
        assert (await gw.get(f"/v1/events/{first['id']}", headers=OTHER)).status == 404
        subs = (await (await gw.get("/v1/webhook-subscriptions", headers=OTHER)).json())["data"]
        assert len(subs) == 1 and subs[0]["url"] == theirs.url
        mine_id = (await (await gw.get("/v1/webhook-subscriptions", headers=DEV)).json())["data"][0]["id"]
        assert (await gw.get(f"/v1/webhook-subscriptions/{mine_id}", headers=OTHER)).status == 404
        assert (await gw.delete(f"/v1/webhook-subscriptions/{mine_id}", headers=OTHER)).status == 404
    finally:
        await mine.stop()
        await theirs.stop()


async def test_forged_and_replayed_webhooks_create_no_events(gw: Any, subscriber: Subscriber) -> None:
    await subscribe(gw, subscriber.url)
    sandbox = sandbox_of(gw, "thredd")
    resp = await gw.post("/v1/consents", json={"provider": "thredd", "redirect_uri": "https://app.example.com/cb"},
                         headers=DEV)
    consent = await resp.json()
    forged = await sandbox.send_event(consent["provider_ref"], "done", secret="not-the-secret")
    assert forged["status"] == 401
    assert count_rows(gw, "events") == 0
    first = await sandbox.send_event(consent["provider_ref"], "added", event_id="evt-once")
    again = await sandbox.send_event(consent["provider_ref"], "added", event_id="evt-once")
    assert first["status"] == again["status"] == 200
    await subscriber.wait_for(lambda s: len(s.accepted()) == 2)
    assert [e["type"] for e in await all_events(gw)] == ["consent.authorised", "accounts.added"]


async def test_connection_errors_and_reauthentication_are_events(gw: Any, subscriber: Subscriber) -> None:
    await subscribe(gw, subscriber.url, ["connection.error", "consent.reauthentication_required"])
    consent = await thredd_consent(gw)
    sandbox = sandbox_of(gw, "thredd")
    await sandbox.send_event(consent["provider_ref"], "unableToConnect")
    await sandbox.send_event(consent["provider_ref"], "invalidCredentials")
    await subscriber.wait_for(lambda s: len(s.accepted()) == 3)
    kinds = [r["json"]["type"] for r in subscriber.accepted()]
    assert kinds == ["connection.error", "consent.reauthentication_required", "connection.error"]
    error = subscriber.accepted()[0]["json"]["data"]["error"]
    assert error == {"provider_code": "unableToConnect", "retryable": True,
                     "message": "the institution could not be reached; the end user may try again later"}


async def test_payment_transitions_arrive_in_order(gw: Any, subscriber: Subscriber) -> None:
    await subscribe(gw, subscriber.url, ["payment.status_changed"], ordered=True)
    payment = await pf.create(gw)
    resp = await pf.complete(gw, payment["id"], await pf.payer_decides(payment["authorisation_url"]))
    assert resp.status in (200, 202), await resp.text()
    done = await pf.wait_for(gw, payment["id"], {"completed"})
    history = [h["status"] for h in done["history"]]  # pending may be skipped when the bank settles quickly
    assert history[:3] == ["awaiting_authorisation", "authorised", "submitted"] and history[-1] == "completed"
    await subscriber.wait_for(lambda s: len(s.accepted()) == len(history) - 1)
    moves = [(r["json"]["data"]["previous_status"], r["json"]["data"]["payment"]["status"])
             for r in subscriber.accepted()]
    assert moves == list(zip(history, history[1:]))
    last = subscriber.accepted()[-1]["json"]["data"]
    assert last["payment"]["amount"] == "25.50" and last["provider_status"] == "AcceptedSettlementCompleted"


async def test_revoking_a_consent_is_an_event_written_with_the_deletion(gw: Any, subscriber: Subscriber) -> None:
    await subscribe(gw, subscriber.url, ["consent.revoked"])
    consent = await authorised_consent(gw, "mastercard-us")
    await first_account(gw, consent["id"])
    assert count_rows(gw, "accounts") > 0
    resp = await gw.post(f"/v1/consents/{consent['id']}/revoke", headers=DEV)
    assert resp.status == 200
    await subscriber.wait_for(lambda s: len(s.accepted()) == 1)
    revoked = subscriber.accepted()[0]["json"]["data"]
    assert revoked["consent"]["status"] == "revoked" and revoked["consent"]["id"] == consent["id"]
    assert count_rows(gw, "accounts") == 0


async def test_subscription_lifecycle(gw: Any, subscriber: Subscriber) -> None:
    sub = await subscribe(gw, subscriber.url, ["consent.authorised"])
    resp = await gw.patch(f"/v1/webhook-subscriptions/{sub['id']}",
                          json={"event_types": ["consent.revoked"], "description": "only revocations"}, headers=DEV)
    changed = await resp.json()
    assert resp.status == 200 and changed["event_types"] == ["consent.revoked"]
    assert changed["description"] == "only revocations"
    await thredd_consent(gw)  # consent.authorised is no longer wanted
    resp = await gw.patch(f"/v1/webhook-subscriptions/{sub['id']}", json={"enabled": False}, headers=DEV)
    assert (await resp.json())["status"] == "disabled"
    listed = await (await gw.get("/v1/webhook-subscriptions", headers=DEV)).json()
    assert [s["id"] for s in listed["data"]] == [sub["id"]]
    assert (await gw.delete(f"/v1/webhook-subscriptions/{sub['id']}", headers=DEV)).status == 204
    assert (await gw.get(f"/v1/webhook-subscriptions/{sub['id']}", headers=DEV)).status == 404
    assert subscriber.received == []
    assert count_rows(gw, "deliveries") == 0


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://example.com/hook", "event_types": ["*"]}, "url"),
    ({"url": "https://user:pw@example.com/hook", "event_types": ["*"]}, "url"),
    ({"url": "https://example.com/hook", "event_types": []}, "event_types"),
    ({"url": "https://example.com/hook", "event_types": ["consent.exploded"]}, "event_types"),
    ({"url": "https://example.com/hook", "event_types": ["*"], "colour": "red"}, "colour"),
    ({"event_types": ["*"]}, "url"),
    ({"url": "https://example.com/hook", "event_types": ["*"], "ordered": "yes"}, "ordered"),
])
async def test_bad_subscriptions_are_refused_naming_the_field(gw: Any, body: dict[str, Any], field: str) -> None:
    resp = await gw.post("/v1/webhook-subscriptions", json=body, headers=DEV)
    problem = await resp.json()
    assert resp.status == 422, problem
    assert field in {e["field"] for e in problem["errors"]} or field in problem["detail"]
    assert count_rows(gw, "webhook_subscriptions") == 0


async def test_subscriptions_need_the_webhooks_scope(gw: Any, subscriber: Subscriber) -> None:
    resp = await gw.post("/v1/webhook-subscriptions", json={"url": subscriber.url, "event_types": ["*"]},
                         headers=READONLY)
    assert resp.status == 403
    assert (await gw.get("/v1/events", headers=READONLY)).status == 403
    assert count_rows(gw, "webhook_subscriptions") == 0


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hook", "https://10.1.2.3/hook", "https://169.254.169.254/latest/meta-data",
    "https://[::1]/hook", "https://[::ffff:192.168.0.1]/hook", "https://localhost/hook", "https://100.64.0.1/x",
    "http://example.com/hook",
])
async def test_internal_and_plain_http_targets_are_refused_outside_local(aiohttp_client: Any, make_config: Any,
                                                                         url: str) -> None:
    gw = await serve(aiohttp_client, make_config({"events": {"allow_http": False, "allow_private_targets": False}}))
    resp = await gw.post("/v1/webhook-subscriptions", json={"url": url, "event_types": ["*"]}, headers=DEV)
    problem = await resp.json()
    assert resp.status == 422 and problem["errors"][0]["field"] == "url", problem
    assert count_rows(gw, "webhook_subscriptions") == 0


async def test_events_list_filters_and_cursors(gw: Any) -> None:
    await thredd_consent(gw)
    await thredd_consent(gw)
    everything = await all_events(gw)
    assert [e["type"] for e in everything] == ["consent.authorised", "accounts.added"] * 2
    page = await (await gw.get("/v1/events", params={"limit": 3}, headers=DEV)).json()
    assert len(page["data"]) == 3 and page["has_more"]
    rest = await (await gw.get("/v1/events", params={"cursor": page["next_cursor"]}, headers=DEV)).json()
    assert [e["id"] for e in page["data"] + rest["data"]] == [e["id"] for e in everything]
    # polling: the cursor of an exhausted page, or the last id, continues once more happens
    after_last = await (await gw.get("/v1/events", params={"after": everything[-1]["id"]}, headers=DEV)).json()
    assert after_last["data"] == [] and not after_last["has_more"]
    await thredd_consent(gw)
    newer = await (await gw.get("/v1/events", params={"cursor": rest["next_cursor"]}, headers=DEV)).json()
    assert [e["type"] for e in newer["data"]] == ["consent.authorised", "accounts.added"]
    only = await all_events(gw, type="accounts.added")
    assert len(only) == 3 and {e["type"] for e in only} == {"accounts.added"}
    for params in ({"type": "nope"}, {"status": "lost"}, {"cursor": "forged.cursor"}, {"after": "evt_unknown"},
                   {"limit": "0"}, {"colour": "red"}):
        resp = await gw.get("/v1/events", params=params, headers=DEV)
        assert resp.status in (400, 422), (params, await resp.text())


def test_every_event_type_is_documented() -> None:
    import pathlib

    text = (pathlib.Path(__file__).resolve().parents[2] / "gateway" / "api" / "openapi.yaml").read_text()
    for event_type in EVENT_TYPES:
        assert event_type in text, event_type


async def test_nothing_is_signed_without_an_encryption_key(aiohttp_client: Any, make_config: Any) -> None:
    config = make_config(FAST_EVENTS)
    import attrs

    config = attrs.evolve(config, security=attrs.evolve(config.security, encryption_key=None))
    gw = await serve(aiohttp_client, config)
    resp = await gw.post("/v1/webhook-subscriptions", json={"url": "https://example.com/h", "event_types": ["*"]},
                         headers=DEV)
    assert resp.status == 500 and "encryption_key" in (await resp.json())["detail"]
    assert count_rows(gw, "webhook_subscriptions") == 0
    assert state_of(gw).vault is None


async def test_a_retried_subscription_replays_its_secret_kept_sealed(gw: Any, subscriber: Subscriber) -> None:
    headers = {**DEV, "Idempotency-Key": "subscribe-ledger-1"}
    body = {"url": subscriber.url, "event_types": ["*"]}
    first = await gw.post("/v1/webhook-subscriptions", json=body, headers=headers)
    again = await gw.post("/v1/webhook-subscriptions", json=body, headers=headers)
    assert first.status == again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
    created = await first.json()
    assert await again.json() == created  # the same subscription and secret, and no second subscription
    assert count_rows(gw, "webhook_subscriptions") == 1
    # neither the kept answer nor the subscription row holds the secret in the clear
    db = state_of(gw).store.db
    for table, column in (("idempotency_keys", "body"), ("webhook_subscriptions", "secrets")):
        for (stored,) in db.execute(f"SELECT {column} FROM {table}").fetchall():
            assert created["secret"].encode() not in bytes(stored)
            assert created["secret"].removeprefix("whsec_").encode() not in bytes(stored)


async def test_a_bank_event_about_a_payment_moves_it_without_waiting_for_the_schedule(
        aiohttp_client: Any, make_config: Any, subscriber: Subscriber) -> None:
    # The reconciliation worker would not look for an hour: only the bank's event notification can move it.
    gw = await serve(aiohttp_client, make_config({**FAST_EVENTS, "payments": {
        "reconcile_backoff_base_seconds": 3600, "reconcile_backoff_max_seconds": 3600}}))
    await subscribe(gw, subscriber.url, ["payment.status_changed"], ordered=True)
    payment = await pf.create(gw)
    resp = await pf.complete(gw, payment["id"], await pf.payer_decides(payment["authorisation_url"]))
    assert resp.status == 200, await resp.text()
    done = await pf.wait_for(gw, payment["id"], {"completed"})
    assert [h["status"] for h in done["history"]][-1] == "completed"
    await subscriber.wait_for(lambda s: s.accepted() and s.accepted()[-1]["json"]["data"]["payment"]["status"]
                              == "completed")
    notices = await state_of(gw).store.list_inbound_events("stripe-uk")
    assert notices and all(n.payload["events"] for n in notices)  # the signed notifications that moved it
