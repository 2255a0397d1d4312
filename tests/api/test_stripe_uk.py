"""stripe-uk through the canonical API, against its simulated ASPSP over mutual TLS: registration (DCR),
the FAPI authorisation (request object, ID token checks), sealed tokens and their renewal, account information,
revocation, and bad input refused before any upstream call."""
from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from gateway.connectivity.fapi import half_hash
from tests.conftest import DEV, OTHER, count_rows, sandbox_of, state_of

UK = "stripe-uk"
REDIRECT = "https://app.example.com/callback"


async def start_consent(client: Any, **extra: Any) -> dict:
    resp = await client.post("/v1/consents", json={"provider": UK, "redirect_uri": REDIRECT, **extra}, headers=DEV)
    body = await resp.json()
    assert resp.status == 201, body
    return body


async def approve(url: str, **choice: Any) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=choice or None, ssl=False) as resp:
            assert resp.status == 200, await resp.text()
            return (await resp.json())["redirect_to"]


async def complete(client: Any, consent_id: str, redirect: str) -> aiohttp.ClientResponse:
    return await client.post(f"/v1/consents/{consent_id}/complete", json={"redirect_result": redirect}, headers=DEV)


async def authorised(client: Any, **extra: Any) -> dict:
    consent = await start_consent(client, **extra)
    resp = await complete(client, consent["id"], await approve(consent["authorisation_url"]))
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "authorised", body
    return body


def fragment(redirect: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(redirect).fragment))


def with_fragment(redirect: str, **changes: str) -> str:
    params = {**fragment(redirect), **changes}
    return redirect.split("#")[0] + "#" + "&".join(f"{k}={v}" for k, v in params.items())


# --- onboarding -----------------------------------------------------------------------------------------------------
async def test_registered_at_start_and_registration_is_idempotent(gateway):
    sandbox = sandbox_of(gateway, UK)
    assert len(sandbox.clients) == 1
    for _ in range(2):
        resp = await gateway.post(f"/v1/providers/{UK}/registration", headers=DEV)
        body = await resp.json()
        assert resp.status == 200 and body["outcome"] == "kept", body
    assert len(sandbox.clients) == 1  # re-running registration created no second client
    assert "software_statement" not in body["registration"]


async def test_a_client_the_bank_no_longer_knows_is_registered_anew_at_start(aiohttp_client, make_config, capsys):
    """A restarted `make run`: the database keeps the registration, the fresh simulator knows no client."""
    from tests.conftest import serve

    config = make_config()
    first = await serve(aiohttp_client, config)
    old = (await state_of(first).adapters[UK].get_registration(None))["client_id"]
    await first.close()
    second = await serve(aiohttp_client, config)  # the same database, a new simulated bank
    sandbox = sandbox_of(second, UK)
    assert list(sandbox.clients) != [old] and len(sandbox.clients) == 1
    assert (await state_of(second).adapters[UK].get_registration(None))["client_id"] in sandbox.clients
    assert '"event":"client_registration_replaced"' in capsys.readouterr().out
    consent = await start_consent(second)  # the new client works
    assert consent["status"] == "awaiting_authorisation"


async def test_registration_needs_admin(gateway):
    from tests.conftest import READONLY

    assert (await gateway.post(f"/v1/providers/{UK}/registration", headers=READONLY)).status == 403
    assert (await gateway.post("/v1/providers/mastercard-us/registration", headers=DEV)).status == 501


async def test_public_signing_keys(gateway):
    resp = await gateway.get("/.well-known/jwks.json")
    keys = (await resp.json())["keys"]
    adapter = state_of(gateway).adapters[UK]
    assert [k["kid"] for k in keys] == [adapter.material.signing.kid]
    assert all("d" not in k and "p" not in k for k in keys)  # public halves only


async def test_mutual_tls_is_required_by_the_aspsp(gateway):
    sandbox = sandbox_of(gateway, UK)
    import ssl

    plain = ssl.create_default_context(cafile=str(state_of(gateway).adapters[UK].material.trust_ca))
    async with aiohttp.ClientSession() as session:
        async with session.post(sandbox.base_url + "/token", data={"grant_type": "client_credentials"},
                                ssl=plain) as resp:
            assert resp.status == 401


# --- authorisation ---------------------------------------------------------------------------------------------------
async def test_account_information_walkthrough(gateway):
    sandbox = sandbox_of(gateway, UK)
    consent = await authorised(gateway)
    assert consent["provider_ref"] and consent["provider_ref"] in sandbox.consents
    resp = await gateway.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)
    accounts = (await resp.json())["data"]
    assert accounts and all(a["currency"] == "GBP" for a in accounts)
    account = next(a for a in accounts if a["type"] == "checking")
    balances = (await (await gateway.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)).json())["data"]
    assert {b["type"] for b in balances} == {"available", "current"}
    details = await (await gateway.get(f"/v1/accounts/{account['id']}/details", headers=DEV)).json()
    sort_code = next(c for c in details["coordinates"] if c["scheme"] == "uk_sort_code")
    assert len(sort_code["sort_code"]) == 6 and len(sort_code["account_number"]) == 8
    owner = await (await gateway.get(f"/v1/accounts/{account['id']}/owner", headers=DEV)).json()
    assert owner["names"]
    # transactions, page after page through the provider's Links.Next behind the gateway's cursor
    seen: list[str] = []
    params = {"from": "2026-01-01", "limit": "10"}
    for _ in range(30):
        page = await (await gateway.get(f"/v1/accounts/{account['id']}/transactions", params=params,
                                        headers=DEV)).json()
        seen += [t["id"] for t in page["data"]]
        if not page["next_cursor"]:
            break
        params = {**params, "cursor": page["next_cursor"]}
    assert len(seen) > 25 and len(seen) == len(set(seen))


async def test_end_user_details_and_interaction_id_reach_the_aspsp(gateway):
    sandbox = sandbox_of(gateway, UK)
    consent = await authorised(gateway)
    sandbox.calls.clear()
    resp = await gateway.get("/v1/accounts", params={"consent_id": consent["id"]},
                             headers={**DEV, "X-Request-Id": "req-12345", "X-End-User-IP": "203.0.113.9",
                                      "X-End-User-Auth-Date": "Sun, 10 Sep 2026 19:43:31 GMT"})
    assert resp.status == 200 and resp.headers["X-Request-Id"] == "req-12345"
    call = next(c for c in sandbox.calls.matching() if c.path.endswith("/accounts"))
    assert call.headers["x-fapi-interaction-id"] == "req-12345"
    assert call.headers["x-fapi-customer-ip-address"] == "203.0.113.9"
    assert call.headers["x-fapi-auth-date"] == "Sun, 10 Sep 2026 19:43:31 GMT"


async def test_rejected_at_the_bank(gateway):
    consent = await start_consent(gateway)
    redirect = await approve(consent["authorisation_url"], outcome="reject")
    body = await (await complete(gateway, consent["id"], redirect)).json()
    assert body["status"] == "rejected"


def _forged_key_token(claims: dict) -> str:
    key = RSAKey.generate_key(2048)
    return jwt.encode({"alg": "PS256", "kid": "not-the-aspsps"}, claims, key, algorithms=["PS256"])


@pytest.mark.parametrize("tamper", ["forged_signature", "wrong_nonce", "wrong_c_hash", "expired", "wrong_state",
                                    "other_audience", "missing_id_token"])
async def test_untrustworthy_redirect_results_are_refused_and_change_nothing(gateway, tamper):
    sandbox = sandbox_of(gateway, UK)
    consent = await start_consent(gateway)
    redirect = await approve(consent["authorisation_url"])
    got = fragment(redirect)
    claims = dict(jwt.decode(got["id_token"], _aspsp_keys(sandbox), algorithms=["PS256"]).claims)
    now = int(time.time())
    if tamper == "forged_signature":
        redirect = with_fragment(redirect, id_token=_forged_key_token(claims))
    elif tamper == "wrong_nonce":
        redirect = with_fragment(redirect, id_token=sandbox.sign_id_token({**claims, "nonce": "another"}))
    elif tamper == "wrong_c_hash":
        redirect = with_fragment(redirect, id_token=sandbox.sign_id_token({**claims, "c_hash": half_hash("x")}))
    elif tamper == "expired":
        redirect = with_fragment(redirect, id_token=sandbox.sign_id_token(
            {**claims, "iat": now - 3600, "exp": now - 1800}))
    elif tamper == "wrong_state":
        redirect = with_fragment(redirect, state="not-the-state")
    elif tamper == "other_audience":
        redirect = with_fragment(redirect, id_token=sandbox.sign_id_token({**claims, "aud": "someone-else"}))
    else:
        redirect = redirect.split("#")[0] + "#" + f"code={got['code']}&state={got['state']}"
    sandbox.calls.clear()
    resp = await complete(gateway, consent["id"], redirect)
    problem = await resp.json()
    assert resp.status == 422 and problem["code"] == "authorisation_result_invalid", problem
    assert not [c for c in sandbox.calls.matching() if c.path == "/token"]  # the code was never exchanged
    after = await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert after["status"] == "awaiting_authorisation"


def _aspsp_keys(sandbox: Any) -> Any:
    from joserfc.jwk import KeySet

    return KeySet.import_key_set(sandbox.jwks())


async def test_a_redirect_result_of_another_consent_is_refused(gateway):
    first = await start_consent(gateway)
    second = await start_consent(gateway)
    redirect = await approve(first["authorisation_url"])
    resp = await complete(gateway, second["id"], redirect)
    assert resp.status == 422


# --- tokens ---------------------------------------------------------------------------------------------------------
async def test_tokens_are_sealed_and_renewed(gateway):
    sandbox = sandbox_of(gateway, UK)
    consent = await authorised(gateway)
    stored = await state_of(gateway).store.get_consent("dev", consent["id"])
    sealed = stored.upstream["tokens"]
    raw = state_of(gateway).store.db.execute("SELECT upstream FROM consents WHERE id = ?",
                                            (consent["id"],)).fetchone()[0]
    for token in [*sandbox.world.access_tokens, *sandbox.world.refresh_tokens]:
        assert token not in raw  # only sealed
    sandbox.expire_access_tokens()
    resp = await gateway.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)
    assert resp.status == 200, await resp.text()
    renewed = await state_of(gateway).store.get_consent("dev", consent["id"])
    assert renewed.upstream["tokens"] != sealed


async def test_a_failed_renewal_keeps_the_refresh_token(gateway):
    sandbox = sandbox_of(gateway, UK)
    consent = await authorised(gateway)
    sandbox.expire_access_tokens()
    sandbox.faults.add("status", status=503, path=r"/token$", times=10)
    resp = await gateway.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)
    problem = await resp.json()
    assert resp.status in (502, 503) and problem["source"] == "provider" and problem["retryable"], problem
    sandbox.faults.clear()
    resp = await gateway.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)
    assert resp.status == 200  # the refresh token survived the failed renewal
    got = await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] == "authorised"


# --- revocation ----------------------------------------------------------------------------------------------------
async def test_revocation_deletes_upstream_and_locally(gateway):
    sandbox = sandbox_of(gateway, UK)
    consent = await authorised(gateway)
    await gateway.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)
    assert count_rows(gateway, "accounts") > 0
    body = await (await gateway.post(f"/v1/consents/{consent['id']}/revoke", headers=DEV)).json()
    assert body["status"] == "revoked"
    assert sandbox.consents[consent["provider_ref"]].status == "Revoked"
    assert count_rows(gateway, "accounts") == 0


async def test_revoked_at_the_bank_is_noticed(gateway):
    sandbox = sandbox_of(gateway, UK)
    consent = await authorised(gateway)
    sandbox.revoke_consent(consent["provider_ref"])
    resp = await gateway.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)
    assert resp.status == 403
    got = await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] == "revoked"


# --- bad input -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, field", [
    ({"redirect_uri": "https://elsewhere.example.com/cb"}, "redirect_uri"),  # not registered with the ASPSP
    ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
    ({"transactions_from": "2026-05-01", "transactions_to": "2026-01-01"}, "transactions_to"),
    ({"permissions": ["accounts", "telepathy"]}, "permissions"),
    ({"institution_id": "123"}, "institution_id"),
])
async def test_bad_consents_are_refused_before_any_upstream_call(gateway, body, field):
    sandbox = sandbox_of(gateway, UK)
    sandbox.calls.clear()
    resp = await gateway.post("/v1/consents", json={"provider": UK, "redirect_uri": REDIRECT, **body}, headers=DEV)
    problem = await resp.json()
    assert resp.status == 422, problem
    assert field in [e["field"] for e in problem["errors"]], problem
    assert sandbox.calls.matching() == [] and count_rows(gateway, "consents") == 0


async def test_consent_limits_reach_the_aspsp(gateway):
    sandbox = sandbox_of(gateway, UK)
    consent = await start_consent(gateway, expires_at="2030-01-31T00:00:00Z", transactions_from="2026-01-01",
                                  permissions=["accounts", "balances"])
    data = sandbox.consents[consent["provider_ref"]]
    assert data.expiration.isoformat().startswith("2030-01-31")
    assert "ReadBalances" in data.permissions and "ReadTransactionsDetail" not in data.permissions


async def test_other_providers_refuse_consent_limits(gateway):
    customer = await (await gateway.post("/v1/customers", json={"provider": "mastercard-us", "external_ref":
                                                                "limits_user1"}, headers=DEV)).json()
    resp = await gateway.post("/v1/consents", json={"customer_id": customer["id"], "redirect_uri": REDIRECT,
                                                   "expires_at": "2030-01-01T00:00:00Z"}, headers=DEV)
    assert resp.status == 422 and (await resp.json())["errors"][0]["field"] == "expires_at"


async def test_another_tenant_cannot_complete_or_read(gateway):
    consent = await authorised(gateway)
    assert (await gateway.get(f"/v1/consents/{consent['id']}", headers=OTHER)).status == 404
