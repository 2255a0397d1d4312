"""stripe-uk against a misbehaving ASPSP: every fault ends in a clear, correctly attributed answer, writes (consent
creation, the token endpoint) are never repeated nor half-stored, the consent's tokens survive an ASPSP fault and
end with the consent, the gateway's secrets stay out of logs and out of the store unsealed, and a transport
certificate the ASPSP does not trust gives a clear problem, not a crash.

Everything goes through the gateway over real HTTP, and from the gateway to the simulated ASPSP over HTTPS with
mutual TLS (the simulator is served on a real port).
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import attrs
import pytest

from adapters.stripe_uk.adapter import StripeUKAdapter
from tests.conftest import DEV, DEV_KEY, OTHER, READONLY, count_rows, sandbox_of, serve, state_of
from tests.reliability.common import assert_problem, stored_from, write_faults

UK = "stripe-uk"
REDIRECT = "https://app.example.com/callback"
AISP = r"^/open-banking/v3\.1/aisp"
BALANCES = AISP + r"/accounts/[^/]+/balances$"
TRANSACTIONS = AISP + r"/accounts/[^/]+/transactions$"
ACCOUNT = AISP + r"/accounts/[^/]+$"
ACCOUNTS = AISP + r"/accounts$"
CONSENTS = AISP + r"/account-access-consents$"
TOKEN = r"^/token$"

FAST = {"adapters": {UK: {
    "timeouts": {"connect": 1.0, "total": 1.0},  # roomy: a loaded CI machine must not time out a setup call
    "retry": {"attempts": 3, "backoff_base": 0.01, "backoff_max": 0.05, "max_retry_after": 2.0, "budget_ratio": 0.2},
    # High enough that no test here trips the breaker by accident.
    "circuit": {"failure_threshold": 50, "reset_after": 0.5},
}}}
SLOW = 1.5  # an injected latency longer than the total timeout above


# --- fixtures and helpers ---------------------------------------------------------------------------------------------
@pytest.fixture
async def gw(aiohttp_client, make_config):  # type: ignore[no-untyped-def]
    return await serve(aiohttp_client, make_config(FAST))


async def start_consent(client: Any, headers: dict = DEV) -> dict:
    resp = await client.post("/v1/consents", json={"provider": UK, "redirect_uri": REDIRECT}, headers=headers)
    body = await resp.json()
    assert resp.status == 201, body
    return body


async def approve(url: str) -> str:
    """The simulated PSU approves at the bank; the redirect URL (with its fragment) the app would receive."""
    async with aiohttp.ClientSession() as session:
        async with session.post(url, ssl=False) as resp:
            assert resp.status == 200, await resp.text()
            return str((await resp.json())["redirect_to"])


async def complete(client: Any, consent_id: str, redirect: str, headers: dict = DEV) -> aiohttp.ClientResponse:
    return await client.post(f"/v1/consents/{consent_id}/complete", json={"redirect_result": redirect},
                             headers=headers)


async def authorised(client: Any) -> tuple[dict, str]:
    """A consent approved at the bank and completed; (the consent, the redirect result used)."""
    consent = await start_consent(client)
    redirect = await approve(consent["authorisation_url"])
    resp = await complete(client, consent["id"], redirect)
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "authorised", body
    return body, redirect


async def list_accounts(client: Any, consent_id: str) -> list[dict]:
    resp = await client.get("/v1/accounts", params={"consent_id": consent_id}, headers=DEV)
    assert resp.status == 200, await resp.text()
    return list((await resp.json())["data"])


@pytest.fixture
async def linked(gw):  # type: ignore[no-untyped-def]
    """An authorised consent with its accounts listed (so stored); (consent, its current account). Calls cleared."""
    consent, _ = await authorised(gw)
    accounts = await list_accounts(gw, consent["id"])
    sandbox_of(gw, UK).calls.clear()
    return consent, next(a for a in accounts if a["type"] == "checking")


@pytest.fixture
async def account(linked):  # type: ignore[no-untyped-def]
    return linked[1]


def calls(client: Any, path_regex: str, method: str = "GET") -> list:
    return sandbox_of(client, UK).calls.matching(method=method, path_regex=path_regex)


def token_calls(client: Any, grant_type: str | None = None) -> list[dict[str, str]]:
    forms = [dict(parse_qsl(c.body.decode())) for c in calls(client, TOKEN, "POST")]
    return [f for f in forms if grant_type is None or f.get("grant_type") == grant_type]


async def stored_tokens(client: Any, consent_id: str) -> dict[str, Any]:
    """The consent's tokens as the adapter unseals them."""
    record = await state_of(client).store.get_consent("dev", consent_id)
    return state_of(client).adapters[UK]._unseal(record)


async def consent_status(client: Any, consent_id: str) -> str:
    return str((await (await client.get(f"/v1/consents/{consent_id}", headers=DEV)).json())["status"])


# --- 1. upstream faults on AIS data calls (safe GETs: retried) -------------------------------------------------------
async def test_transient_5xx_on_a_read_is_retried_then_succeeds(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, UK).faults.add("status", status=503, path=BALANCES, times=1)
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    assert resp.status == 200, await resp.text()
    assert len(calls(gw, BALANCES)) == 2


async def test_transient_5xx_on_the_account_list_is_retried(gw, linked) -> None:  # type: ignore[no-untyped-def]
    consent, _ = linked
    sandbox_of(gw, UK).faults.add("status", status=502, path=ACCOUNTS, times=2)
    assert await list_accounts(gw, consent["id"])
    assert len(calls(gw, ACCOUNTS)) == 3


async def test_persistent_5xx_says_provider_and_retryable(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, UK).faults.add("status", status=500, path=BALANCES, times=None)
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=502, code="provider_unavailable", source="provider", retryable=True)
    assert problem["provider_code"] == "UK.OBIE.UnexpectedError"
    assert "simulated" not in problem["detail"]  # a sentence for people, never the upstream's text
    assert len(calls(gw, BALANCES)) == 3  # the configured attempts, no more
    assert await consent_status(gw, account["consent_id"]) == "authorised"  # a fault ends nothing


async def test_timeout_on_a_read(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, UK).faults.add("latency", delay=SLOW, path=TRANSACTIONS, times=3)
    resp = await gw.get(f"/v1/accounts/{account['id']}/transactions", headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=504, code="provider_timeout", source="provider", retryable=True)
    assert len(calls(gw, TRANSACTIONS)) == 3


async def test_transient_timeout_on_a_read_is_retried_then_succeeds(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, UK).faults.add("latency", delay=SLOW, path=TRANSACTIONS, times=1)
    resp = await gw.get(f"/v1/accounts/{account['id']}/transactions", headers=DEV)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]
    assert len(calls(gw, TRANSACTIONS)) == 2


async def test_429_retry_after_is_honoured(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, UK).faults.add("rate_limit", retry_after=1, path=BALANCES, times=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    assert resp.status == 200, await resp.text()
    assert loop.time() - started >= 0.95  # waited as the ASPSP asked, not the (much shorter) backoff
    assert len(calls(gw, BALANCES)) == 2


async def test_429_with_a_long_retry_after_goes_back_to_the_caller(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, UK).faults.add("rate_limit", retry_after=30, path=BALANCES, times=1)
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=503, code="provider_rate_limited", source="provider", retryable=True)
    assert resp.headers["Retry-After"] == "30"
    assert len(calls(gw, BALANCES)) == 1  # not retried: longer than a caller should be kept waiting


async def test_malformed_json_on_a_read(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, UK).faults.add("malformed_json", path=ACCOUNT, times=1)
    resp = await gw.get(f"/v1/accounts/{account['id']}/details", headers=DEV)
    problem = await resp.json()
    assert resp.status == 502 and problem["code"] == "provider_bad_response", problem
    assert problem["source"] == "provider"
    assert "desc" not in problem["detail"]  # the upstream body is never echoed
    assert len(calls(gw, ACCOUNT)) == 1  # a broken answer is not a transient fault


async def test_dropped_connections_on_a_read(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gw, UK)
    sandbox.faults.add("drop_connection", path=BALANCES, times=None)
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=502, code="provider_unavailable", source="provider", retryable=True)
    sandbox.faults.clear()
    # One dropped attempt (aiohttp itself resends an idempotent request once, hence two drops): retried, then fine.
    sandbox.faults.add("drop_connection", path=BALANCES, times=2)
    sandbox.calls.clear()
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    assert resp.status == 200, await resp.text()
    assert len(calls(gw, BALANCES)) == 3


# --- 1. upstream faults on writes (POSTs: never repeated, nothing stored) ---------------------------------------------
# fault kwargs, expected (HTTP status, canonical code, retryable)
WRITE_FAULTS = write_faults(SLOW)
# Which POST of a consent creation fails: the account-access consent itself, or the client-credentials token.
WRITES = {"account-access-consents": CONSENTS, "token": TOKEN}


@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize("fault", WRITE_FAULTS)
async def test_consent_creation_is_not_retried_and_stores_nothing(gw, write, fault, request) -> None:  # type: ignore[no-untyped-def]
    kwargs, (http, code, retryable) = WRITE_FAULTS[fault]
    sandbox = sandbox_of(gw, UK)
    sandbox.calls.clear()
    sandbox.faults.add(path=WRITES[write], method="POST", times=1, **kwargs)
    before = set(sandbox.consents)
    resp = await gw.post("/v1/consents", json={"provider": UK, "redirect_uri": REDIRECT}, headers=DEV)
    problem = await resp.json()
    assert len(calls(gw, WRITES[write], "POST")) == 1, "a write was sent more than once"
    assert count_rows(gw, "consents") == 0  # nothing half-written
    assert_problem(resp.status, problem, http=http, code=code, source="provider", retryable=retryable)
    if write == "token":
        assert set(sandbox.consents) == before  # no consent was even asked for without a token
    # The fault was one-off: the next attempt works and stores exactly one consent.
    await start_consent(gw)
    assert count_rows(gw, "consents") == 1


# --- 2. the token endpoint: renewal, a failing renewal, a refused renewal ---------------------------------------------
async def test_expired_access_tokens_are_renewed_transparently(gw, linked) -> None:  # type: ignore[no-untyped-def]
    consent, account = linked
    sandbox = sandbox_of(gw, UK)
    before = await stored_tokens(gw, consent["id"])
    sandbox.expire_access_tokens()
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    assert resp.status == 200, await resp.text()
    refreshes = token_calls(gw, "refresh_token")
    assert len(refreshes) == 1 and refreshes[0]["refresh_token"] == before["refresh_token"]
    assert [c.status for c in calls(gw, BALANCES)] == [401, 200]  # refused once, renewed, then served
    after = await stored_tokens(gw, consent["id"])
    assert after["access_token"] != before["access_token"] and after["access_token"] in sandbox.world.access_tokens
    assert after["refresh_token"] == before["refresh_token"]
    # The renewed token is kept: the next calls need no renewal.
    assert (await gw.get(f"/v1/accounts/{account['id']}/transactions", headers=DEV)).status == 200
    assert len(token_calls(gw, "refresh_token")) == 1


RENEWAL_FAULTS = {
    "503": ({"kind": "status", "status": 503}, (502, "provider_unavailable")),
    "timeout": ({"kind": "latency", "delay": SLOW}, (504, "provider_timeout")),
    "dropped": ({"kind": "drop_connection"}, (502, "provider_unavailable")),
}


@pytest.mark.parametrize("fault", RENEWAL_FAULTS)
async def test_a_failed_renewal_keeps_the_refresh_token(gw, linked, fault) -> None:  # type: ignore[no-untyped-def]
    consent, account = linked
    kwargs, (http, code) = RENEWAL_FAULTS[fault]
    sandbox = sandbox_of(gw, UK)
    before = await stored_tokens(gw, consent["id"])
    sandbox.expire_access_tokens()
    sandbox.faults.add(path=TOKEN, method="POST", times=None, **kwargs)
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=http, code=code, source="provider", retryable=True)
    assert len(token_calls(gw)) == 1  # the token endpoint is not retried
    assert await consent_status(gw, consent["id"]) == "authorised"
    assert (await stored_tokens(gw, consent["id"]))["refresh_token"] == before["refresh_token"]
    assert stored_from(gw, consent["id"]) > 0  # nothing deleted on a fault
    sandbox.faults.clear()
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    assert resp.status == 200, await resp.text()  # the refresh token survived the failed renewal
    assert [f["refresh_token"] for f in token_calls(gw, "refresh_token")][-1] == before["refresh_token"]


async def test_a_refused_renewal_revokes_the_consent_and_deletes_its_data(gw, linked) -> None:  # type: ignore[no-untyped-def]
    consent, account = linked
    sandbox = sandbox_of(gw, UK)
    assert stored_from(gw, consent["id"]) > 0
    sandbox.world.event_subscriptions.clear()  # the bank's event notification is not sent (or was lost)
    sandbox.revoke_consent(consent["provider_ref"])  # the PSU revoked at the bank; no one told the gateway
    sandbox.expire_access_tokens()
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=403, code="consent_revoked_upstream", source="caller", retryable=False)
    assert len(token_calls(gw, "refresh_token")) == 1  # invalid_grant is final: asked once
    assert await consent_status(gw, consent["id"]) == "revoked"
    assert stored_from(gw, consent["id"]) == 0 and count_rows(gw, "accounts") == 0
    sandbox.calls.clear()
    assert (await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)).status == 404
    resp = await gw.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)
    assert resp.status == 403 and (await resp.json())["code"] == "consent_not_active"
    assert sandbox.calls.matching() == []  # the gateway no longer asks the ASPSP


# --- 3. tls_client_auth ---------------------------------------------------------------------------------------------
async def test_tls_client_auth_completes_a_consent_and_reads_accounts(aiohttp_client, make_config) -> None:  # type: ignore[no-untyped-def]
    gw = await serve(aiohttp_client, make_config({"adapters": {UK: {
        **FAST["adapters"][UK], "token_endpoint_auth_method": "tls_client_auth"}}}))
    sandbox = sandbox_of(gw, UK)
    assert [(c.auth_method, bool(c.subject_dn)) for c in sandbox.clients.values()] == [("tls_client_auth", True)]
    client_id = next(iter(sandbox.clients))
    consent, _ = await authorised(gw)
    accounts = await list_accounts(gw, consent["id"])
    assert accounts and all(a["currency"] == "GBP" for a in accounts)
    sandbox.expire_access_tokens()  # a refresh with tls_client_auth too
    assert (await gw.get(f"/v1/accounts/{accounts[0]['id']}/balances", headers=DEV)).status == 200
    forms = token_calls(gw)
    assert {f["grant_type"] for f in forms} == {"client_credentials", "authorization_code", "refresh_token"}
    assert all(f["client_id"] == client_id and "client_assertion" not in f for f in forms)


# --- 4. security ----------------------------------------------------------------------------------------------------
@pytest.fixture
async def debug_gw(aiohttp_client, make_config, monkeypatch):  # type: ignore[no-untyped-def]
    """The gateway logging at debug level (every upstream call logged). structlog caches a module's logger, with the
    level of the time, on first use; forget those caches for this test (monkeypatch restores them afterwards)."""
    import adapters.stripe_uk.adapter
    import gateway.api.app
    import gateway.api.middleware
    import gateway.connectivity.client

    for module in (gateway.api.app, gateway.api.middleware, gateway.connectivity.client, adapters.stripe_uk.adapter):
        if "bind" in vars(module.log):  # the instance's cached bind (the class's own method stays)
            monkeypatch.delattr(module.log, "bind")
    return await serve(aiohttp_client, make_config({**FAST, "logging": {"format": "json", "level": "debug"}}))


def _private_parts(client: Any) -> list[tuple[str, str]]:
    """The gateway's signing key's private JWK members and the base64 lines of its PEM file."""
    adapter = state_of(client).adapters[UK]
    jwk = adapter.material.signing.key.as_dict(private=True)
    parts = [(f"signing key {name}", str(jwk[name])) for name in ("d", "p", "q", "dp", "dq", "qi")]
    pem = Path(adapter.settings.local_material, "signing.key").read_text().splitlines()
    return parts + [("signing key PEM", line) for line in pem if line and not line.startswith("-----")]


async def test_no_token_key_or_assertion_reaches_the_logs_or_the_store_unsealed(debug_gw, capsys, caplog,
                                                                                tmp_path) -> None:  # type: ignore[no-untyped-def]
    gw = debug_gw
    caplog.set_level(logging.DEBUG)  # standard-library loggers too (aiohttp, the simulator)
    sandbox = sandbox_of(gw, UK)
    consent, _ = await authorised(gw)
    account = next(a for a in await list_accounts(gw, consent["id"]) if a["type"] == "checking")
    assert (await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)).status == 200
    sandbox.expire_access_tokens()  # a renewal happens in the middle of the flow
    assert (await gw.get(f"/v1/accounts/{account['id']}/transactions", headers=DEV)).status == 200
    sandbox.faults.add("status", status=500, path=BALANCES, times=3)  # failures log the upstream's answer
    assert (await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)).status == 502
    sandbox.faults.add("status", status=400, path=TOKEN, method="POST", times=1,
                       body={"error": "invalid_request", "error_description": "simulated"})
    sandbox.expire_access_tokens()  # a refused renewal logs the token endpoint's answer
    await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)

    captured = capsys.readouterr()
    out = captured.out + captured.err + caplog.text
    assert '"event":"upstream_call"' in out, "expected the gateway's debug log lines"
    access = list(sandbox.world.access_tokens)
    refresh = list(sandbox.world.refresh_tokens)
    assertions = [f["client_assertion"] for f in token_calls(gw) if "client_assertion" in f]
    assert len(access) >= 3 and refresh and assertions  # client credentials, code, renewed
    secrets = [("caller key", DEV_KEY), *(("access token", t) for t in access),
               *(("refresh token", t) for t in refresh), *(("client assertion", a) for a in assertions),
               *(("client assertion signature", a.rsplit(".", 1)[1]) for a in assertions),
               *_private_parts(gw)]
    for name, secret in secrets:
        assert secret not in out, f"the {name} ({secret[:6]}…) leaked into the logs"

    # The store file on disk: the consent's tokens only sealed, no assertion, no key.
    files = [p for p in tmp_path.iterdir() if p.name.startswith("gateway.db")]
    assert files
    on_disk = b"".join(p.read_bytes() for p in files)
    assert consent["id"].encode() in on_disk  # (the right file: it holds the consent)
    for name, secret in secrets[1:]:
        assert secret.encode() not in on_disk, f"the {name} ({secret[:6]}…) is in the store unsealed"


async def test_another_tenant_cannot_see_read_or_complete_stripe_consents(gw, linked) -> None:  # type: ignore[no-untyped-def]
    consent, account = linked
    sandbox = sandbox_of(gw, UK)
    waiting = await start_consent(gw)
    redirect = await approve(waiting["authorisation_url"])
    sandbox.calls.clear()
    for method, path in [
        ("GET", f"/v1/consents/{consent['id']}"),
        ("POST", f"/v1/consents/{consent['id']}/revoke"),
        ("GET", f"/v1/consents/{waiting['id']}"),
        ("GET", f"/v1/accounts/{account['id']}"),
        ("GET", f"/v1/accounts/{account['id']}/balances"),
        ("GET", f"/v1/accounts/{account['id']}/transactions"),
        ("GET", f"/v1/accounts/{account['id']}/details"),
        ("GET", f"/v1/accounts/{account['id']}/owner"),
    ]:
        resp = await gw.request(method, path, headers=OTHER, **({"json": {}} if method == "POST" else {}))
        assert resp.status == 404, (method, path, resp.status, await resp.text())
    resp = await gw.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=OTHER)
    assert resp.status == 404
    resp = await complete(gw, waiting["id"], redirect, headers=OTHER)
    assert resp.status == 404, await resp.text()
    listing = await (await gw.get("/v1/consents", headers=OTHER)).json()
    assert all(c["id"] not in (consent["id"], waiting["id"]) for c in listing["data"])
    assert sandbox.calls.matching() == []  # nothing reached the ASPSP on their behalf (the code was not spent)
    assert await consent_status(gw, consent["id"]) == "authorised"
    assert await consent_status(gw, waiting["id"]) == "awaiting_authorisation"
    # The owner can still complete with that very redirect result.
    resp = await complete(gw, waiting["id"], redirect)
    assert resp.status == 200 and (await resp.json())["status"] == "authorised"


async def test_registration_needs_the_admin_scope(gw) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gw, UK)
    clients = dict(sandbox.clients)
    sandbox.calls.clear()
    for method in ("POST", "GET", "DELETE"):
        resp = await gw.request(method, f"/v1/providers/{UK}/registration", headers=READONLY)
        assert resp.status == 403, (method, await resp.text())
        problem = await resp.json()
        assert problem["code"] == "forbidden" and "'admin'" in problem["detail"], (method, problem)  # the scope
    assert sandbox.calls.matching() == [] and sandbox.clients == clients
    resp = await gw.get(f"/v1/providers/{UK}/registration", headers=DEV)  # control: the admin may
    assert resp.status == 200 and (await resp.json())["registration"]["client_id"] in clients


async def test_a_replayed_redirect_result_changes_nothing_and_fits_no_other_consent(gw) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gw, UK)
    consent, redirect = await authorised(gw)
    tokens = await stored_tokens(gw, consent["id"])
    record = await state_of(gw).store.get_consent("dev", consent["id"])
    sandbox.calls.clear()
    # Onto the same, already authorised consent: harmless, and the (spent) code is not sent again.
    resp = await complete(gw, consent["id"], redirect)
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "authorised", body
    assert token_calls(gw) == []
    again = await state_of(gw).store.get_consent("dev", consent["id"])
    assert again.updated_at == record.updated_at and await stored_tokens(gw, consent["id"]) == tokens
    assert all(t in sandbox.world.access_tokens or t in sandbox.world.refresh_tokens
               for t in (tokens["access_token"], tokens["refresh_token"]))  # no second use revoked them
    # Onto a second consent: refused before the code is exchanged.
    second = await start_consent(gw)
    sandbox.calls.clear()
    resp = await complete(gw, second["id"], redirect)
    problem = await resp.json()
    assert resp.status == 422 and problem["code"] == "authorisation_result_invalid", problem
    assert token_calls(gw) == []
    assert await consent_status(gw, second["id"]) == "awaiting_authorisation"
    assert sandbox.consents[second["provider_ref"]].status == "AwaitingAuthorisation"
    assert (await gw.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)).status == 200


# --- 5. a transport certificate the ASPSP does not trust ------------------------------------------------------------
@pytest.fixture
async def untrusted_gw(aiohttp_client, make_config, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """The gateway's stripe-uk material (transport certificate, signing key, software statement) comes from a fresh
    local CA, while the simulator is built from the default var/certs material and trusts only that CA for client
    certificates. The gateway trusts both CAs for the simulator's server certificate, so the only problem left is
    the ASPSP refusing the gateway's client certificate."""
    from gateway.certificates.local import ensure_local_material

    default = make_config().adapters[UK].settings.local_material
    assert default and Path(default).resolve() != (tmp_path / "certs").resolve()
    original = StripeUKAdapter.create_sandbox.__func__  # type: ignore[attr-defined]

    def sandbox_on_default_material(cls, config):  # type: ignore[no-untyped-def]
        return original(cls, attrs.evolve(config, settings=attrs.evolve(config.settings, local_material=default)))

    monkeypatch.setattr(StripeUKAdapter, "create_sandbox", classmethod(sandbox_on_default_material))
    raw = make_config().adapters[UK].settings
    fresh = ensure_local_material(tmp_path / "certs", software_id=raw.software_id,
                                  organisation_id=raw.organisation_id, redirect_uris=raw.redirect_uris)
    trusted = ensure_local_material(Path(default), software_id=raw.software_id,
                                    organisation_id=raw.organisation_id, redirect_uris=raw.redirect_uris)
    fresh.ca_cert.write_text(fresh.ca_cert.read_text() + trusted.ca_cert.read_text())
    return await serve(aiohttp_client, make_config({"adapters": {UK: {
        **FAST["adapters"][UK], "local_material": str(tmp_path / "certs")}}})), fresh


async def test_the_simulator_refuses_an_untrusted_client_certificate(untrusted_gw) -> None:  # type: ignore[no-untyped-def]
    """Control for the next test: the simulator refuses the fresh client certificate, and its server certificate
    is trusted by the bundle the gateway uses."""
    gw, fresh = untrusted_gw
    sandbox = sandbox_of(gw, UK)
    context = ssl.create_default_context(cafile=str(fresh.ca_cert))
    context.load_cert_chain(str(fresh.transport_cert), str(fresh.transport_key))
    async with aiohttp.ClientSession() as session:
        with pytest.raises((aiohttp.ClientConnectionError, ssl.SSLError)):
            async with session.post(sandbox.base_url + "/token", data={"grant_type": "client_credentials"},
                                    ssl=context) as resp:
                await resp.read()
        # The same trust, no client certificate: the server side is fine (discovery needs no mTLS).
        plain = ssl.create_default_context(cafile=str(fresh.ca_cert))
        async with session.get(sandbox.base_url + "/.well-known/openid-configuration", ssl=plain) as resp:
            assert resp.status == 200


async def test_an_untrusted_transport_certificate_is_a_clear_problem_not_a_500(untrusted_gw) -> None:  # type: ignore[no-untyped-def]
    """Under TLS 1.3 the ASPSP refuses the client certificate after the client's side of the handshake, so the
    gateway only sees the server disconnect: it says the connection to stripe-uk failed (a 502, never a 500 nor a
    hang), and its provider health says the gateway is not registered, with that reason, for the operator."""
    gw, _ = untrusted_gw
    sandbox = sandbox_of(gw, UK)
    assert sandbox.clients == {}  # registration at start could not happen
    providers = await (await gw.get("/v1/providers", headers=DEV)).json()
    health = next(p for p in providers["data"] if p["id"] == UK)["health"]
    assert "not registered" in str(health.get("registration")), health
    assert "connection to stripe-uk failed" in str(health.get("registration")), health
    for method, path, body in [("POST", f"/v1/providers/{UK}/registration", None),  # registering now
                               ("POST", "/v1/consents", {"provider": UK, "redirect_uri": REDIRECT})]:
        resp = await gw.request(method, path, json=body, headers=DEV)
        problem = await resp.json()
        assert resp.status == 502 and problem["code"] == "provider_unavailable", (path, problem)
        assert problem["code"] != "internal_error" and "connection to stripe-uk failed" in problem["detail"], problem
    assert count_rows(gw, "consents") == 0
    assert sandbox.clients == {} and sandbox.consents == {}
    assert sandbox.calls.matching() == []  # no request got past the handshake
