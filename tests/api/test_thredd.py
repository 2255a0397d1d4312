"""thredd end to end: registration, Connect, webhooks (code 117), accounts and ACH details, revocation, faults."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.mastercard.details import is_valid_aba
from tests.conftest import DEV, count_rows, sandbox_of, serve, state_of
from tests.flows import play_end_user


async def _consent(gw: Any) -> dict[str, Any]:
    resp = await gw.post("/v1/consents", json={"provider": "thredd", "redirect_uri": "https://app.example.com/cb"},
                         headers=DEV)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def _events(gw: Any) -> list[Any]:
    return await state_of(gw).store.list_inbound_events("thredd")


async def test_verification_walkthrough(gateway) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gateway, "thredd")
    consent = await _consent(gateway)
    assert consent["status"] == "awaiting_authorisation" and consent["provider_ref"]
    register = sandbox.calls.matching(method="POST", path_regex=r"/register$")[0]
    assert register.headers["client-id"] == "sandbox-thredd-client"
    assert register.headers["partner-id"] == "thredd-partner-1"

    redirect = await play_end_user(consent["authorisation_url"])
    await sandbox.wait_webhooks_idle()
    # the webhooks alone authorised the consent ...
    seen = await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert seen["status"] == "authorised"
    assert [e.type for e in await _events(gateway)] == ["started", "added", "done"]
    # ... and completing with the redirect result agrees
    done = await (await gateway.post(f"/v1/consents/{consent['id']}/complete", json={"redirect_result": redirect},
                                     headers=DEV)).json()
    assert done["status"] == "authorised"

    accounts = (await (await gateway.get(f"/v1/accounts?consent_id={consent['id']}", headers=DEV)).json())["data"]
    assert {a["type"] for a in accounts} == {"checking", "savings"}
    for account in accounts:
        details = await (await gateway.get(f"/v1/accounts/{account['id']}/details", headers=DEV)).json()
        [ach] = details["coordinates"]
        assert ach["scheme"] == "us_ach" and is_valid_aba(ach["routing_number"]) and ach["account_number"]


async def test_completion_without_webhooks(gateway) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gateway, "thredd")
    sandbox.webhook_url = None  # the provider's webhooks never arrive: the redirect result is enough
    consent = await _consent(gateway)
    redirect = await play_end_user(consent["authorisation_url"])
    done = await (await gateway.post(f"/v1/consents/{consent['id']}/complete", json={"redirect_result": redirect},
                                     headers=DEV)).json()
    assert done["status"] == "authorised"


async def test_rejected_and_invalid_credentials(gateway) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gateway, "thredd")
    rejected = await _consent(gateway)
    redirect = await play_end_user(rejected["authorisation_url"], outcome="reject")
    resp = await gateway.post(f"/v1/consents/{rejected['id']}/complete", json={"redirect_result": redirect},
                              headers=DEV)
    assert (await resp.json())["status"] == "rejected"

    consent = await _consent(gateway)
    await play_end_user(consent["authorisation_url"])
    await sandbox.wait_webhooks_idle()
    await sandbox.send_event(consent["provider_ref"], "invalidCredentials")
    seen = await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert seen["status"] == "reauthentication_required" and "credentials" in seen["status_reason"]
    listing = await gateway.get(f"/v1/accounts?consent_id={consent['id']}", headers=DEV)
    assert listing.status == 403


async def test_duplicate_and_forged_webhooks(gateway) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gateway, "thredd")
    consent = await _consent(gateway)
    first = await sandbox.send_event(consent["provider_ref"], "started", event_id="evt-fixed-1")
    again = await sandbox.send_event(consent["provider_ref"], "started", event_id="evt-fixed-1")
    assert first["status"] == again["status"] == 200
    assert [e.event_id for e in await _events(gateway)].count("evt-fixed-1") == 1
    forged = await sandbox.send_event(consent["provider_ref"], "done", secret="not-the-secret")
    assert forged["status"] == 401
    assert len(await _events(gateway)) == 1
    seen = await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert seen["status"] == "awaiting_authorisation"  # the forged "done" changed nothing


async def test_malformed_and_unsigned_webhooks(gateway) -> None:  # type: ignore[no-untyped-def]
    secret = {"X-Thredd-Webhook-Secret": "sandbox-thredd-webhook-secret", "Content-Type": "application/json"}
    assert (await gateway.post("/webhooks/thredd", data=b"{}")).status == 401
    assert (await gateway.post("/webhooks/thredd", data=b"not json", headers=secret)).status == 400
    assert (await gateway.post("/webhooks/thredd", data=b'{"event_code": 999}', headers=secret)).status == 400
    assert (await gateway.post("/webhooks/nowhere", data=b"{}", headers=secret)).status == 404
    assert (await gateway.post("/webhooks/mastercard-us", data=b"{}", headers=secret)).status == 404
    assert count_rows(gateway, "inbound_events") == 0


async def test_revoked_at_thredd_surfaces_as_consent_state(gateway) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gateway, "thredd")
    consent = await _consent(gateway)
    await play_end_user(consent["authorisation_url"])
    await sandbox.wait_webhooks_idle()
    accounts = (await (await gateway.get(f"/v1/accounts?consent_id={consent['id']}", headers=DEV)).json())["data"]
    sandbox.revoke_customer(consent["provider_ref"])
    resp = await gateway.get(f"/v1/accounts/{accounts[0]['id']}/details", headers=DEV)
    problem = await resp.json()
    assert resp.status == 403 and problem["code"] == "consent_revoked_upstream" and problem["source"] == "caller"
    seen = await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert seen["status"] == "revoked"
    assert await state_of(gateway).store.list_accounts("dev", consent["id"]) == []  # nothing kept


async def test_refresh_learns_revocation(gateway) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gateway, "thredd")
    consent = await _consent(gateway)
    await play_end_user(consent["authorisation_url"])
    await sandbox.wait_webhooks_idle()
    sandbox.revoke_customer(consent["provider_ref"])
    seen = await (await gateway.get(f"/v1/consents/{consent['id']}?refresh=true", headers=DEV)).json()
    assert seen["status"] == "revoked"


async def test_bad_input_stores_nothing(gateway) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gateway, "thredd")
    for body in ({"provider": "thredd"}, {"provider": "thredd", "redirect_uri": "ftp://x"},
                 {"provider": "thredd", "redirect_uri": "https://a.example/cb", "mobile": True}):
        resp = await gateway.post("/v1/consents", json=body, headers=DEV)
        assert resp.status == 422, body
    assert not sandbox.calls.matching(path_regex="/register")
    assert count_rows(gateway, "consents") == 0


@pytest.fixture
async def fast(aiohttp_client, make_config):  # type: ignore[no-untyped-def]
    patch = {"adapters": {"thredd": {
        "timeouts": {"connect": 1.0, "total": 1.0},
        "retry": {"attempts": 3, "backoff_base": 0.01, "backoff_max": 0.05, "max_retry_after": 2.0,
                  "budget_ratio": 0.2}}}}
    return await serve(aiohttp_client, make_config(patch))


async def test_upstream_faults(fast) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(fast, "thredd")
    consent = await _consent(fast)
    await play_end_user(consent["authorisation_url"])
    await sandbox.wait_webhooks_idle()
    account = (await (await fast.get(f"/v1/accounts?consent_id={consent['id']}", headers=DEV)).json())["data"][0]
    path = f"/v1/accounts/{account['id']}/details"
    expectations = [
        ({"kind": "status", "status": 500, "times": 1}, 200, None),  # retried
        ({"kind": "status", "status": 500, "times": None}, 502, "provider_unavailable"),
        ({"kind": "latency", "delay": 2.0, "times": None}, 504, "provider_timeout"),
        ({"kind": "malformed_json", "times": None}, 502, "provider_bad_response"),
        ({"kind": "drop_connection", "times": None}, 502, "provider_unavailable"),
        ({"kind": "rate_limit", "retry_after": 30, "times": 1}, 503, "provider_rate_limited"),
    ]
    for fault, status, code in expectations:
        sandbox.faults.clear()
        kind = fault.pop("kind")
        sandbox.faults.add(kind, path=r"/details$", **fault)
        resp = await fast.get(path, headers=DEV)
        assert resp.status == status, (kind, await resp.text())
        if code:
            assert (await resp.json())["code"] == code
    sandbox.faults.clear()


async def test_bad_client_id_is_the_gateways_fault(aiohttp_client, make_config) -> None:  # type: ignore[no-untyped-def]
    client = await serve(aiohttp_client, make_config())
    sandbox_of(client, "thredd").client_id = "rotated-at-thredd"
    resp = await client.post("/v1/consents", json={"provider": "thredd", "redirect_uri": "https://a.example/cb"},
                             headers=DEV)
    problem = await resp.json()
    assert resp.status == 502 and problem["code"] == "gateway_credentials_rejected" and problem["source"] == "gateway"
    assert count_rows(client, "consents") == 0


async def test_webhook_secret_and_client_id_never_logged(gateway, capsys) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gateway, "thredd")
    consent = await _consent(gateway)
    await play_end_user(consent["authorisation_url"])
    await sandbox.wait_webhooks_idle()
    await sandbox.send_event(consent["provider_ref"], "done", secret="wrong-secret-guess")
    await asyncio.sleep(0)
    out = capsys.readouterr().out
    assert out
    for secret in ("sandbox-thredd-webhook-secret", "sandbox-thredd-client"):
        assert secret not in out


async def test_reconnect_the_same_end_user(gateway) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gateway, "thredd")
    first = await _consent(gateway)
    await play_end_user(first["authorisation_url"])
    await sandbox.wait_webhooks_idle()
    await sandbox.send_event(first["provider_ref"], "invalidCredentials")
    resp = await gateway.post("/v1/consents", json={"provider": "thredd", "redirect_uri": "https://app.example.com/cb",
                                                    "previous_consent_id": first["id"]}, headers=DEV)
    assert resp.status == 201, await resp.text()
    again = await resp.json()
    register = sandbox.calls.matching(method="POST", path_regex=r"/register$")[-1]
    import orjson

    assert orjson.loads(register.body)["openbanking_customer_id"] == first["provider_ref"]
    assert again["provider_ref"] == first["provider_ref"]
    other = await gateway.post("/v1/consents", json={"provider": "thredd", "redirect_uri": "https://a.example/cb",
                                                     "previous_consent_id": "con_unknown1"}, headers=DEV)
    assert other.status == 422 and (await other.json())["errors"][0]["field"] == "previous_consent_id"
