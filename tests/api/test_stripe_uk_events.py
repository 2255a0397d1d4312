"""stripe-uk event notifications end to end: the gateway subscribes at start (idempotently), the simulated bank sends
signed Security Event Tokens to POST /webhooks/stripe-uk when the PSU revokes a consent in the bank's app or a
payment's status changes, and the gateway verifies them before anything changes (forged, misaddressed, unsigned,
replayed and malformed notifications change nothing)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from typing import Any

import orjson
import pytest

from adapters.stripe_uk.sandbox_events import CONSENT_REVOKED, RESOURCE_UPDATE
from gateway.errors import MalformedRequest, Unauthenticated
from tests.api.test_stripe_uk import authorised
from tests.conftest import DEV, count_rows, sandbox_of, state_of
from tests.payments_flow import complete as complete_payment, create, payer_decides

UK = "stripe-uk"
HOOK = "/webhooks/stripe-uk"
JWT = {"Content-Type": "application/jwt"}
OB = "http://openbanking.org.uk/"


def subscriptions(client: Any) -> list[Any]:
    return list(sandbox_of(client, UK).event_subscriptions.values())


def adapter_of(client: Any) -> Any:
    return state_of(client).adapters[UK]


async def inbound(client: Any) -> list[Any]:
    return await state_of(client).store.list_inbound_events(UK)


def claims_for(client: Any, **changes: Any) -> dict[str, Any]:
    """A well-formed revocation of `rid` (changes may replace any claim; a None value removes it)."""
    sandbox = sandbox_of(client, UK)
    now = int(time.time())
    rid = changes.pop("rid", "aac-unknown")
    link = f"{sandbox.issuer}/open-banking/v3.1/aisp/account-access-consents/{rid}"
    body = {"iss": sandbox.issuer, "iat": now, "jti": str(uuid.uuid4()), "aud": next(iter(sandbox.clients)),
            "sub": link, "txn": str(uuid.uuid4()), "toe": now,
            "events": {CONSENT_REVOKED: {"subject": {"subject_type": f"{OB}rid_{OB}rty", f"{OB}rid": rid,
                                                     f"{OB}rty": "account-access-consent",
                                                     f"{OB}rlk": [{"version": "v3.1", "link": link}]}}}}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- the subscription --------------------------------------------------------------------------------------------
async def test_subscribed_at_start_and_subscribing_again_changes_nothing(gateway):
    sandbox = sandbox_of(gateway, UK)
    adapter = adapter_of(gateway)
    [subscription] = subscriptions(gateway)
    assert subscription.callback_url == adapter.webhook_url() == adapter.public_url + HOOK
    assert (subscription.version, set(subscription.event_types)) == ("3.1", {RESOURCE_UPDATE, CONSENT_REVOKED})
    assert subscription.client_id in sandbox.clients and adapter.health().get("event_notifications") is None
    sandbox.calls.clear()
    # A restart: a new adapter (nothing cached) on the same store starts against the same bank.
    state = state_of(gateway)
    restarted = type(adapter)(adapter.config, state.upstreams, state.store, base_url=adapter.base_url,
                              vault=adapter.vault, public_url=adapter.public_url)
    await restarted.start()
    outcome, found = await restarted.subscribe_events()
    assert outcome == "kept" and found["EventSubscriptionId"] == subscription.subscription_id
    assert subscriptions(gateway) == [subscription] and len(sandbox.clients) == 1
    assert not [c for c in sandbox.calls.matching() if c.method in ("POST", "PUT") and "event" in c.path]
    posted = [c for c in sandbox.calls.matching() if c.path.endswith("/event-subscriptions")]
    assert posted and all(c.headers["authorization"].startswith("Bearer ") for c in posted)


async def test_a_moved_public_url_updates_the_subscription_and_a_lost_one_is_made_again(gateway):
    sandbox = sandbox_of(gateway, UK)
    adapter = adapter_of(gateway)
    [before] = subscriptions(gateway)
    adapter.public_url = "https://gateway.example.com"
    outcome, found = await adapter.subscribe_events()
    assert outcome == "updated" and found["CallbackUrl"] == "https://gateway.example.com" + HOOK
    assert [s.subscription_id for s in subscriptions(gateway)] == [before.subscription_id]
    sandbox.world.event_subscriptions.clear()  # the bank lost it
    outcome, found = await adapter.subscribe_events()
    assert outcome == "created" and len(subscriptions(gateway)) == 1
    put = [c for c in sandbox.calls.matching() if c.method in ("POST", "PUT") and "event-subscriptions" in c.path]
    assert all(c.headers.get("x-jws-signature") for c in put)  # signed requests, as the standard asks


async def test_a_failed_subscription_at_start_is_logged_not_fatal(gateway):
    sandbox = sandbox_of(gateway, UK)
    adapter = adapter_of(gateway)
    sandbox.world.event_subscriptions.clear()
    sandbox.faults.add("status", status=503, path=r"/event-subscriptions$", times=20)
    await adapter.start()
    assert adapter.health()["event_notifications"].startswith("not subscribed")
    sandbox.faults.clear()
    resp = await gateway.get("/v1/consents", headers=DEV)
    assert resp.status == 200  # the gateway works on
    await adapter.start()
    assert "event_notifications" not in adapter.health() and len(subscriptions(gateway)) == 1


async def test_not_subscribed_when_switched_off(aiohttp_client, make_config):
    from tests.conftest import serve

    client = await serve(aiohttp_client, make_config({"adapters": {UK: {"subscribe_events": False}}}))
    assert subscriptions(client) == []


# --- revocation at the bank -------------------------------------------------------------------------------------
async def test_revoked_in_the_bank_app_reaches_the_gateway_and_deletes_the_accounts(gateway):
    sandbox = sandbox_of(gateway, UK)
    consent = await authorised(gateway)
    resp = await gateway.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)
    assert resp.status == 200 and count_rows(gateway, "accounts") > 0
    sandbox.calls.clear()
    [made] = sandbox.revoke_consent(consent["provider_ref"])
    await sandbox.wait_events_idle()
    assert [d["status"] for d in sandbox.events.deliveries] == [202]  # the gateway acknowledged it
    got = await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] == "revoked" and got["status_reason"] == "revoked by the account holder at the bank"
    assert count_rows(gateway, "accounts") == 0  # nothing kept from a consent that ended
    assert not [c for c in sandbox.calls.matching() if "/aisp/" in c.path]  # learned without polling
    [event] = [e for e in await inbound(gateway) if e.type == CONSENT_REVOKED]
    assert (event.event_id, event.consent_id, event.tenant) == (made["jti"], consent["id"], "dev")
    assert event.payload == made  # the verified claims: ids and links, no tokens


async def test_a_replayed_notification_is_a_duplicate_and_changes_nothing(gateway):
    sandbox = sandbox_of(gateway, UK)
    consent = await authorised(gateway)
    sandbox.revoke_consent(consent["provider_ref"])
    await sandbox.wait_events_idle()
    token = sandbox.events.deliveries[-1]["token"]
    before = await inbound(gateway)
    resp = await gateway.post(HOOK, data=token, headers=JWT)
    assert resp.status == 202 and (await resp.json()) == {"received": True, "duplicate": True}  # OB: 202
    assert await inbound(gateway) == before


async def test_a_forged_notification_is_refused_and_changes_nothing(gateway):
    sandbox = sandbox_of(gateway, UK)
    consent = await authorised(gateway)
    sandbox.event_retry_delays = (0.01, 0.01)
    sandbox.forge_events = True
    sandbox.revoke_consent(consent["provider_ref"])
    await sandbox.wait_events_idle()
    assert [d["status"] for d in sandbox.events.deliveries] == [401, 401, 401]  # retried, refused each time
    got = await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] == "authorised"
    assert await inbound(gateway) == []


# --- payments ------------------------------------------------------------------------------------------------------
async def test_a_payment_status_change_is_received_and_recorded(gateway):
    sandbox = sandbox_of(gateway, UK)
    payment = await create(gateway)
    resp = await complete_payment(gateway, payment["id"], await payer_decides(payment["authorisation_url"]))
    submitted = await resp.json()
    assert resp.status == 200, submitted
    payment_ref = submitted["provider_ref"]
    await sandbox.wait_events_idle()
    deliveries = [d for d in sandbox.events.deliveries if d["rid"] == payment_ref]
    assert len(deliveries) == 2 and {d["status"] for d in deliveries} == {202}  # in settlement, then settled
    stored = [e for e in await inbound(gateway) if e.type == RESOURCE_UPDATE]
    assert [e.event_id for e in stored] == [d["jti"] for d in deliveries]
    for event in stored:
        subject = event.payload["events"][RESOURCE_UPDATE]["subject"]
        assert (subject[f"{OB}rid"], subject[f"{OB}rty"]) == (payment_ref, "domestic-payment")
    # What the adapter makes of one, read again (the replay is refused by the store, not by the adapter).
    event = await adapter_of(gateway).receive_webhook("", JWT, deliveries[0]["token"].encode())
    assert (event.payment_ref, event.provider_ref, event.consent_status) == (payment_ref, "", None)
    assert event.event_id == deliveries[0]["jti"]


# --- refusals ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, detail", [
    ({"aud": "another-tpp"}, "aud"),
    ({"iss": "https://bank.example.com"}, "iss"),
    ({"iat": int(time.time()) + 600}, "future"),
    ({"iat": int(time.time()) - 2 * 86400}, "seconds ago"),
    ({"exp": int(time.time()) - 600}, "expired"),
])
async def test_misaddressed_or_untimely_notifications_are_refused(gateway, change, detail):
    sandbox = sandbox_of(gateway, UK)
    consent = await authorised(gateway)
    claims = claims_for(gateway, rid=consent["provider_ref"], **change)
    if "iat" in change:
        claims["toe"] = claims["iat"]
    resp = await gateway.post(HOOK, data=sandbox.sign_event(claims), headers=JWT)
    problem = await resp.json()
    assert resp.status == 401 and detail in problem["detail"], problem
    assert await inbound(gateway) == []
    assert (await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json())["status"] == "authorised"


async def test_a_well_made_notification_is_accepted_where_a_list_audience_names_the_gateway(gateway):
    sandbox = sandbox_of(gateway, UK)
    consent = await authorised(gateway)
    claims = claims_for(gateway, rid=consent["provider_ref"])
    claims["aud"] = ["someone-else", claims["aud"]]
    resp = await gateway.post(HOOK, data=orjson.dumps(sandbox.sign_event(claims)),  # the swagger's JSON string
                              headers={"Content-Type": "application/json"})
    assert resp.status == 202 and (await resp.json())["duplicate"] is False
    assert (await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json())["status"] == "revoked"


def _unsigned(claims: dict[str, Any]) -> str:
    return f"{b64(orjson.dumps({'alg': 'none', 'typ': 'JWT'}))}.{b64(orjson.dumps(claims))}."


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64(orjson.dumps({'alg': 'HS256', 'typ': 'JWT'}))}.{b64(orjson.dumps(claims))}"
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


async def test_unsigned_hmac_and_strange_tokens_are_refused(gateway):
    sandbox = sandbox_of(gateway, UK)
    consent = await authorised(gateway)
    claims = claims_for(gateway, rid=consent["provider_ref"])
    public_key = orjson.dumps(sandbox.jwks()["keys"][0])  # the classic confusion: the public key as HMAC secret
    for token in (_unsigned(claims), _hs256(claims, public_key), _hs256(claims, b"secret"),
                  sandbox.sign_event(claims, {"typ": "at+jwt"})):
        resp = await gateway.post(HOOK, data=token, headers=JWT)
        assert resp.status == 401, (token, await resp.text())
    assert await inbound(gateway) == []


@pytest.mark.parametrize("body, headers", [
    (b"hello", JWT),
    (b"a.b", JWT),
    (b"", JWT),
    (b'{"iss": "x"}', {"Content-Type": "application/json"}),
    (b"not json", {"Content-Type": "application/json"}),
    ("SIGNED", {"Content-Type": "text/plain"}),
    ("!!!.???.###", JWT),
])
async def test_bodies_that_are_not_a_jws_are_malformed(gateway, body, headers):
    sandbox = sandbox_of(gateway, UK)
    await authorised(gateway)
    if body == "SIGNED":
        body = sandbox.sign_event(claims_for(gateway)).encode()
    elif isinstance(body, str):
        body = body.encode()
    resp = await gateway.post(HOOK, data=body, headers=headers)
    assert resp.status == 400, await resp.text()
    assert await inbound(gateway) == []


async def test_a_signed_notification_without_its_claims_is_malformed(gateway):
    sandbox = sandbox_of(gateway, UK)
    await authorised(gateway)
    for change in ({"jti": None}, {"txn": ""}, {"toe": int(time.time()) + 3600}, {"events": {}},
                   {"events": {CONSENT_REVOKED: {"reason": "x"}}}):
        resp = await gateway.post(HOOK, data=sandbox.sign_event(claims_for(gateway, **change)), headers=JWT)
        assert resp.status == 400, (change, await resp.text())
    assert await inbound(gateway) == []


async def test_an_unknown_kid_makes_the_gateway_look_once_for_new_keys(gateway):
    sandbox = sandbox_of(gateway, UK)
    consent = await authorised(gateway)
    adapter = adapter_of(gateway)
    sandbox.calls.clear()
    token = sandbox.sign_event(claims_for(gateway, rid=consent["provider_ref"]), {"kid": "rotated-away"})
    for _ in range(3):
        assert (await gateway.post(HOOK, data=token, headers=JWT)).status == 401
    assert len([c for c in sandbox.calls.matching() if c.path == "/jwks"]) == 1  # not once per forged kid
    # A key the gateway has not seen yet (the bank rotated it in): found by looking again.
    adapter._aspsp_jwks = {"keys": []}
    adapter._jwks_fetched_at = float("-inf")
    resp = await gateway.post(HOOK, data=sandbox.sign_event(claims_for(gateway, rid=consent["provider_ref"])),
                              headers=JWT)
    assert resp.status == 202 and len([c for c in sandbox.calls.matching() if c.path == "/jwks"]) == 2


async def test_the_adapter_refuses_with_gateway_errors(gateway):
    adapter = adapter_of(gateway)
    sandbox = sandbox_of(gateway, UK)
    with pytest.raises(MalformedRequest):
        await adapter.receive_webhook("", JWT, b"nope")
    with pytest.raises(Unauthenticated):
        await adapter.receive_webhook("", JWT, sandbox.sign_event(claims_for(gateway, aud="x")).encode())
