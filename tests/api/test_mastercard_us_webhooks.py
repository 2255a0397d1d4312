"""mastercard-us webhooks end to end over HTTP: the simulator's Connect events reach the gateway, authorise the
consent on their own, are kept; forged ones are refused, replays change nothing, failures to connect are recorded."""
from __future__ import annotations

import hashlib
import hmac
from typing import Any

import aiohttp
import orjson

from tests.conftest import DEV, count_rows, sandbox_of, state_of
from tests.flows import create_consent, create_customer, first_account, play_end_user

US = "mastercard-us"
CONNECT = "/webhooks/mastercard-us/connect"
SECRET = b"sandbox-partner-secret"


def signature(body: bytes) -> str:
    return hmac.new(SECRET, body, hashlib.sha256).hexdigest()


async def events(client: Any) -> list[Any]:
    return await state_of(client).store.list_inbound_events(US)


async def canonical(client: Any, consent_id: str) -> list[dict[str, Any]]:
    """The canonical events about a consent, oldest first (GET /v1/events)."""
    resp = await client.get("/v1/events", params={"limit": "200"}, headers=DEV)
    assert resp.status == 200, await resp.text()
    return [e for e in (await resp.json())["data"] if (e["data"].get("consent") or {}).get("id") == consent_id]


async def end_user(authorisation_url: str, **choice: Any) -> tuple[int, dict]:
    """The simulated end user, whatever the page answers (play_end_user expects success)."""
    async with aiohttp.ClientSession() as session:
        async with session.post(authorisation_url, json=choice or None) as resp:
            return resp.status, await resp.json()


async def test_connect_webhooks_alone_authorise_the_consent(gateway):
    sandbox = sandbox_of(gateway, US)
    customer = await create_customer(gateway, US)
    consent = await create_consent(gateway, customer["id"])
    ping = [d for d in sandbox.deliveries if d["event_type"] == "ping"]
    assert ping and ping[-1]["status"] == 200 and ping[-1]["url"].endswith(CONNECT)  # checked before the link
    await play_end_user(consent["authorisation_url"])
    await sandbox.wait_webhooks_idle()

    got = await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] == "authorised", got  # no redirect completion call was made
    receipt = next(c for c in sandbox.world.consents.values() if c.customer_id == customer["provider_ref"])
    assert got["provider_ref"] == receipt.id and got["expires_at"]
    account = await first_account(gateway, consent["id"])
    assert account["provider_ref"] in receipt.account_ids

    kept = sorted((e for e in await events(gateway) if e.payload.get("customerId") == customer["provider_ref"]),
                  key=lambda e: e.received_at)
    assert [e.type for e in kept] == ["started", "institutionSupported", "adding", "added", "done"]
    # Until `added` they name the consent awaiting the end user; `done` comes after it was authorised and names
    # that live consent (it changes nothing there).
    assert [e.consent_id for e in kept] == [consent["id"]] * 5
    added = next(e for e in kept if e.type == "added")
    assert {a["id"] for a in added.payload["payload"]["accounts"]} == set(receipt.account_ids)
    assert not [d for d in sandbox.deliveries if d["status"] != 200]
    # ... and what they mean reaches the product teams as canonical events.
    announced = await canonical(gateway, consent["id"])
    assert [e["type"] for e in announced] == ["consent.authorised", "accounts.added"]
    listed = await (await gateway.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)).json()
    assert sorted(announced[1]["data"]["account_ids"]) == sorted(a["id"] for a in listed["data"])

    # The redirect completion afterwards is harmless: the same consent.
    redirect = "https://app.example.com/callback?code=200&reason=done"
    done = await gateway.post(f"/v1/consents/{consent['id']}/complete", json={"redirect_result": redirect},
                              headers=DEV)
    assert done.status == 200 and (await done.json())["provider_ref"] == receipt.id


async def test_forged_webhooks_are_refused_and_replays_change_nothing(gateway):
    sandbox = sandbox_of(gateway, US)
    customer = await create_customer(gateway, US)
    consent = await create_consent(gateway, customer["id"])
    await play_end_user(consent["authorisation_url"])
    await sandbox.wait_webhooks_idle()
    before = await events(gateway)
    rows = count_rows(gateway, "inbound_events")

    forged = orjson.dumps({"customerId": customer["provider_ref"], "eventType": "unableToConnect",
                           "eventId": "forged-1", "payload": {"code": 102}})
    for headers in ({"X-Signature": hmac.new(b"not-the-secret", forged, hashlib.sha256).hexdigest()}, {}):
        resp = await gateway.post(CONNECT, data=forged, headers={**headers, "Content-Type": "application/json"})
        assert resp.status == 401 and (await resp.json())["code"] == "unauthenticated"
    assert count_rows(gateway, "inbound_events") == rows

    sandbox.resend_last_connect_event()  # the platform's retry of `done`: the same bytes and eventId
    await sandbox.wait_webhooks_idle()
    assert sandbox.deliveries[-1]["status"] == 200  # acknowledged ...
    assert count_rows(gateway, "inbound_events") == rows  # ... and nothing new kept
    body = orjson.dumps({"customerId": customer["provider_ref"], "eventType": "started", "eventId": "evt-1",
                         "payload": {}})
    pretty = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
    first = await gateway.post(CONNECT, data=pretty, headers={"X-Finicity-Signature": signature(body)})
    again = await gateway.post(CONNECT, data=pretty, headers={"X-Finicity-Signature": signature(body)})
    assert (await first.json())["duplicate"] is False and (await again.json())["duplicate"] is True
    assert len(await events(gateway)) == len(before) + 1
    got = await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] == "authorised"


async def test_unable_to_connect_is_recorded_and_the_consent_waits(gateway):
    sandbox = sandbox_of(gateway, US)
    customer = await create_customer(gateway, US)
    consent = await create_consent(gateway, customer["id"])
    status, page = await end_user(consent["authorisation_url"], username="error_915")
    assert (status, page["error"], page["code"]) == (400, "unable_to_connect", 915)
    status, page = await end_user(consent["authorisation_url"], institution_id="4242")
    assert (status, page["error"]) == (400, "institution_not_found")
    await sandbox.wait_webhooks_idle()
    kept = {e.type: e for e in await events(gateway) if e.consent_id == consent["id"]}
    assert {"unableToConnect", "institutionNotFound"} <= set(kept)
    assert kept["unableToConnect"].payload["payload"] == {"institutionId": "102105", "code": 915}
    got = await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] == "awaiting_authorisation"  # the end user may still try again in the session

    errors = [e for e in await canonical(gateway, consent["id"]) if e["type"] == "connection.error"]
    assert [e["data"]["error"]["provider_code"] for e in errors] == ["915", "institutionNotFound"]
    assert errors[0]["data"]["error"]["retryable"] is True and errors[1]["data"]["error"]["retryable"] is False
    assert "repairing" in errors[0]["data"]["error"]["message"]

    adapter = state_of(gateway).adapters[US]
    raw = next(d for d in sandbox.deliveries if d["event_type"] == "unableToConnect")
    assert raw["status"] == 200
    await play_end_user(consent["authorisation_url"])  # the same link, another try: it works now
    await sandbox.wait_webhooks_idle()
    got = await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] == "authorised" and adapter.webhook_channels == {"connect", "reports"}


async def test_malformed_and_misdirected_webhooks(gateway):
    for body in (b"not json", b'{"payload": {}}', b"[]"):
        resp = await gateway.post(CONNECT, data=body, headers={"X-Signature": signature(body)})
        assert resp.status == 400, body
    resp = await gateway.post("/webhooks/mastercard-us/reports", data=b'{"eventName": "done"}',
                              headers={"X-Signature": signature(b'{"eventName": "done"}')})
    assert resp.status == 400
    assert (await gateway.post("/webhooks/mastercard-us/nope", data=b"{}")).status == 404
    assert (await gateway.post("/webhooks/mastercard-us", data=b"{}")).status == 404
    # An event about a customer the gateway does not know is acknowledged and kept, changing nothing.
    body = orjson.dumps({"customerId": "999", "eventType": "done", "eventId": "evt-unknown", "payload": {}})
    resp = await gateway.post(CONNECT, data=body, headers={"X-Signature": signature(body)})
    assert resp.status == 200
    kept = [e for e in await events(gateway) if e.event_id == "evt-unknown"]
    assert len(kept) == 1 and kept[0].consent_id is None and kept[0].tenant is None
