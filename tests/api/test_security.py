"""Callers, scopes, providers and tenants; request ids; no secret ever reaches a log line."""
from __future__ import annotations

import json
import re

from tests.conftest import DEV, DEV_KEY, OTHER, READONLY, sandbox_of, state_of
from tests.flows import authorised_consent, first_account


async def test_missing_or_wrong_key_is_401(gateway) -> None:  # type: ignore[no-untyped-def]
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": DEV_KEY}, {"Authorization": "Basic x"}):
        resp = await gateway.get("/v1/providers", headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await resp.json())["code"] == "unauthenticated"


async def test_missing_scope_is_403(gateway) -> None:  # type: ignore[no-untyped-def]
    resp = await gateway.post("/v1/customers", json={"provider": "mastercard-us", "external_ref": "readonly1"},
                              headers=READONLY)
    assert resp.status == 403 and "ais:write" in (await resp.json())["detail"]
    assert not sandbox_of(gateway, "mastercard-us").calls.matching(method="POST", path_regex="/customers/")


async def test_provider_not_allowed_is_403(make_config, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    from gateway.api.app import create_app

    config = make_config({"callers": [
        {"name": "dev", "tenant": "dev", "key_sha256": "9f022c2bbe3d22412258738ebc90253a36039603b9aefcb13d19c1fc4acd4ff9",
         "scopes": ["ais:read", "ais:write"], "providers": []}]})
    client = await aiohttp_client(create_app(config))
    resp = await client.get("/v1/institutions", params={"provider": "mastercard-us"}, headers=DEV)
    assert resp.status == 403 and "mastercard-us" in (await resp.json())["detail"]
    resp = await client.post("/v1/customers", json={"provider": "mastercard-us", "external_ref": "someone1"},
                             headers=DEV)
    assert resp.status == 403
    providers = await (await client.get("/v1/providers", headers=DEV)).json()
    assert providers["data"] == []


async def test_another_tenants_ids_are_404(gateway) -> None:  # type: ignore[no-untyped-def]
    consent = await authorised_consent(gateway)
    account = await first_account(gateway, consent["id"])
    for path in (f"/v1/consents/{consent['id']}", f"/v1/customers/{consent['customer_id']}",
                 f"/v1/accounts/{account['id']}", f"/v1/accounts/{account['id']}/balances",
                 f"/v1/accounts/{account['id']}/transactions"):
        resp = await gateway.get(path, headers=OTHER)
        assert resp.status == 404, path
    revoke = await gateway.post(f"/v1/consents/{consent['id']}/revoke", headers=OTHER)
    assert revoke.status == 404
    listing = await (await gateway.get("/v1/consents", headers=OTHER)).json()
    assert listing["data"] == []
    # and the owner still has it
    assert (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).status == 200


async def test_request_id_accepted_generated_and_forwarded_to_logs(gateway, capsys) -> None:  # type: ignore[no-untyped-def]
    resp = await gateway.get("/v1/providers", headers={**DEV, "X-Request-Id": "trace-abc-123"})
    assert resp.headers["X-Request-Id"] == "trace-abc-123"
    generated = await gateway.get("/v1/providers", headers={**DEV, "X-Request-Id": "bad id with spaces"})
    assert re.fullmatch(r"[0-9a-f-]{36}", generated.headers["X-Request-Id"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    access = [e for e in lines if e.get("event") == "request" and e.get("request_id") == "trace-abc-123"]
    assert len(access) == 1  # one canonical line per request
    entry = access[0]
    assert entry["route"] == "/v1/providers" and entry["status"] == 200 and entry["tenant"] == "dev"
    assert entry["duration_ms"] >= 0 and entry["timestamp"].endswith("Z")


async def test_no_secret_in_logs(gateway, capsys) -> None:  # type: ignore[no-untyped-def]
    """Credentials pass through every layer (caller key, partner secret, app key, app token); none is logged."""
    sandbox = sandbox_of(gateway, "mastercard-us")
    consent = await authorised_consent(gateway)
    account = await first_account(gateway, consent["id"])
    sandbox.faults.add("status", status=500, path=r"/availableBalance$", times=5)
    await gateway.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    await gateway.post("/v1/customers", json={"provider": "mastercard-us",
                                              "external_ref": "sandbox-partner-secret"}, headers=DEV)
    await gateway.get("/v1/providers", headers={"Authorization": "Bearer sandbox-app-key-guess"})
    out = capsys.readouterr().out
    assert out, "expected log lines"
    broker = state_of(gateway).adapters["mastercard-us"].client.tokens
    tokens = [broker._token.value] if broker._token else []
    assert tokens
    for secret in [DEV_KEY, "sandbox-partner-secret", "sandbox-app-key", *tokens]:
        assert secret not in out, f"secret {secret[:4]}… leaked into logs"
