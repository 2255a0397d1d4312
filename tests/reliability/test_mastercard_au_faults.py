"""mastercard-au against a misbehaving upstream: every fault ends in a clear, correctly attributed answer, writes are
never repeated nor half-stored, an ended consent takes its data with it, and nothing secret reaches the logs.

Everything goes through the gateway over real HTTP against the AU simulator (served on a real port, so the
simulator's consent notifications and webhooks reach the gateway). No test waits for webhooks after one was
refused: the consent-notification retry schedule would keep `wait_webhooks_idle()` busy for ~86 s.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import uuid
from typing import Any

import orjson
import pytest

from adapters.mastercard.errors import ERRORS
from adapters.mastercard_au.adapter import MastercardAUAdapter
from adapters.mastercard_au.sandbox_events import ACCOUNT_ERRORS
from tests.conftest import DEV, DEV_KEY, OTHER, count_rows, sandbox_of, serve, state_of
from tests.flows import create_consent, create_customer, play_end_user
from tests.reliability.common import assert_problem, stored_from, write_faults

AU = "mastercard-au"
END_USER = {"institution_id": "200003", "username": "profile_4110"}
PARTNER_SECRET = "sandbox-au-partner-secret"
APP_KEY = "sandbox-au-app-key"
AUTH = r"/partners/authentication$"
NOTIFICATIONS = "/webhooks/mastercard-au/consent-notifications"

FAST = {"adapters": {AU: {
    "timeouts": {"connect": 1.0, "total": 1.0},  # roomy: a loaded CI machine must not time out a setup call
    "retry": {"attempts": 3, "backoff_base": 0.01, "backoff_max": 0.05, "max_retry_after": 2.0, "budget_ratio": 0.2},
    # High enough that no test here trips the breaker by accident (the US fault tests cover the circuit).
    "circuit": {"failure_threshold": 50, "reset_after": 0.5},
}}}


# --- fixtures and helpers ---------------------------------------------------------------------------------------------
@pytest.fixture
async def gw(aiohttp_client, make_config):  # type: ignore[no-untyped-def]
    return await serve(aiohttp_client, make_config(FAST))


async def authorised(client: Any, **choice: Any) -> tuple[dict, dict]:
    """Customer → consent → the end user approves at FinBank → complete. Returns (customer, consent)."""
    customer = await create_customer(client, AU)
    consent = await create_consent(client, customer["id"])
    redirect = await play_end_user(consent["authorisation_url"], **{**END_USER, **choice})
    resp = await client.post(f"/v1/consents/{consent['id']}/complete", json={"redirect_result": redirect},
                             headers=DEV)
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    assert done["status"] == "authorised", done
    return customer, done


async def deposit_account(client: Any, consent_id: str) -> dict:
    resp = await client.get("/v1/accounts", params={"consent_id": consent_id}, headers=DEV)
    assert resp.status == 200, await resp.text()
    return next(a for a in (await resp.json())["data"] if a["type"] in ("checking", "savings"))


@pytest.fixture
async def linked(gw):  # type: ignore[no-untyped-def]
    """An authorised consent with its accounts listed; (customer, consent, a deposit account). Webhooks settled."""
    customer, consent = await authorised(gw)
    account = await deposit_account(gw, consent["id"])
    await sandbox_of(gw, AU).wait_webhooks_idle()
    sandbox_of(gw, AU).calls.clear()
    return customer, consent, account


@pytest.fixture
async def account(linked):  # type: ignore[no-untyped-def]
    return linked[2]


def calls(client: Any, path_regex: str, method: str = "GET") -> list:
    return sandbox_of(client, AU).calls.matching(method=method, path_regex=path_regex)


async def with_consumer(client: Any, customer_id: str) -> None:
    resp = await client.post(f"/v1/customers/{customer_id}/consumer", json={"first_name": "Jack", "last_name": "Li"},
                             headers=DEV)
    assert resp.status == 201, await resp.text()


# --- 1. upstream faults on data calls (safe GETs: retried) ------------------------------------------------------------
BALANCE = r"/availableBalance$"


async def test_transient_5xx_on_a_read_is_retried_then_succeeds(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, AU).faults.add("status", status=503, path=BALANCE, times=1)
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    assert resp.status == 200, await resp.text()
    assert len(calls(gw, BALANCE)) == 2


async def test_persistent_5xx_says_provider_and_retryable(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, AU).faults.add("status", status=500, path=BALANCE, times=None)
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=502, code="provider_unavailable", source="provider", retryable=True)
    assert len(calls(gw, BALANCE)) == 3  # the configured attempts, no more


async def test_timeout_on_a_read(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, AU).faults.add("latency", delay=1.5, path=r"/transactions$", times=3)
    resp = await gw.get(f"/v1/accounts/{account['id']}/transactions", headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=504, code="provider_timeout", source="provider", retryable=True)
    assert len(calls(gw, r"/transactions$")) == 3


async def test_transient_timeout_on_a_read_is_retried_then_succeeds(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, AU).faults.add("latency", delay=1.5, path=r"/transactions$", times=1)
    resp = await gw.get(f"/v1/accounts/{account['id']}/transactions", headers=DEV)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]
    assert len(calls(gw, r"/transactions$")) == 2


async def test_429_retry_after_is_honoured(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, AU).faults.add("rate_limit", retry_after=1, path=BALANCE, times=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    assert resp.status == 200, await resp.text()
    assert loop.time() - started >= 0.95  # waited as the provider asked, not the (much shorter) backoff
    assert len(calls(gw, BALANCE)) == 2


async def test_429_with_a_long_retry_after_goes_back_to_the_caller(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, AU).faults.add("rate_limit", retry_after=30, path=BALANCE, times=1)
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=503, code="provider_rate_limited", source="provider", retryable=True)
    assert resp.headers["Retry-After"] == "30" and problem["provider_code"] == "3300001"
    assert len(calls(gw, BALANCE)) == 1  # not retried: longer than a caller should be kept waiting


async def test_malformed_json_on_a_read(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, AU).faults.add("malformed_json", path=r"/details$", times=1)
    resp = await gw.get(f"/v1/accounts/{account['id']}/details", headers=DEV)
    problem = await resp.json()
    assert resp.status == 502 and problem["code"] == "provider_bad_response", problem
    assert problem["source"] == "provider"
    assert "desc" not in problem["detail"]  # the upstream body is never echoed


async def test_dropped_connections_on_a_read(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gw, AU)
    sandbox.faults.add("drop_connection", path=BALANCE, times=None)
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=502, code="provider_unavailable", source="provider", retryable=True)
    sandbox.faults.clear()
    # One dropped attempt (aiohttp itself resends an idempotent request once, hence two drops): retried, then fine.
    sandbox.faults.add("drop_connection", path=BALANCE, times=2)
    sandbox.calls.clear()
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    assert resp.status == 200, await resp.text()
    assert len(calls(gw, BALANCE)) == 3


# --- 1. upstream faults on writes (POSTs: never repeated, nothing stored) ---------------------------------------------
# fault kwargs, expected (HTTP status, canonical code, retryable)
WRITE_FAULTS = write_faults(1.5)


@pytest.mark.parametrize("fault", WRITE_FAULTS)
async def test_customer_creation_is_not_retried_and_stores_nothing(gw, fault) -> None:  # type: ignore[no-untyped-def]
    kwargs, (http, code, retryable) = WRITE_FAULTS[fault]
    sandbox = sandbox_of(gw, AU)
    sandbox.calls.clear()
    sandbox.faults.add(path=r"/aggregation/v2/customers/testing$", method="POST", times=1, **kwargs)
    resp = await gw.post("/v1/customers", json={"provider": AU, "external_ref": f"au_once_{fault}"}, headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=http, code=code, source="provider", retryable=retryable)
    assert len(calls(gw, r"/customers/testing$", "POST")) == 1  # never sent twice
    assert count_rows(gw, "customers") == 0  # nothing half-written


@pytest.mark.parametrize("fault", WRITE_FAULTS)
async def test_report_creation_is_not_retried_and_stores_nothing(gw, linked, fault) -> None:  # type: ignore[no-untyped-def]
    kwargs, (http, code, retryable) = WRITE_FAULTS[fault]
    customer, _, _ = linked
    await with_consumer(gw, customer["id"])
    sandbox = sandbox_of(gw, AU)
    sandbox.calls.clear()
    sandbox.faults.add(path=r"/decisioning/v2/customers/[^/]+/voa$", method="POST", times=1, **kwargs)
    resp = await gw.post("/v1/reports", json={"customer_id": customer["id"], "type": "voa"}, headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=http, code=code, source="provider", retryable=retryable)
    assert len(calls(gw, r"/voa$", "POST")) == 1
    assert count_rows(gw, "reports") == 0


async def test_consent_creation_failure_stores_no_consent(gw) -> None:  # type: ignore[no-untyped-def]
    customer = await create_customer(gw, AU)
    sandbox = sandbox_of(gw, AU)
    sandbox.calls.clear()
    sandbox.faults.add("status", status=503, path=r"/connect/v2/generate$", method="POST", times=1)
    resp = await gw.post("/v1/consents", json={"customer_id": customer["id"],
                                               "redirect_uri": "https://app.example.com/callback"}, headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=502, code="provider_unavailable", source="provider", retryable=True)
    assert len(calls(gw, r"/connect/v2/generate$", "POST")) == 1
    assert count_rows(gw, "consents") == 0


# --- 2. the app token and the gateway's own credentials ---------------------------------------------------------------
async def test_expired_token_is_renewed_once(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gw, AU)
    sandbox.expire_tokens()
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    assert resp.status == 200, await resp.text()
    assert len(calls(gw, AUTH, "POST")) == 1
    balance_calls = calls(gw, BALANCE)
    assert len(balance_calls) == 2 and balance_calls[0].headers["app-token"] != balance_calls[1].headers["app-token"]
    # The same when the token expires between two calls (the fault expires it just before answering).
    sandbox.faults.add("expired_token", path=BALANCE, times=1)
    assert (await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)).status == 200
    assert len(calls(gw, AUTH, "POST")) == 2


async def test_a_token_refused_even_after_renewal_is_a_gateway_problem(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gw, AU)
    sandbox.faults.add("status", status=401, path=BALANCE, times=None)  # 10022 Invalid (App-Token), every time
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=502, code="gateway_credentials_rejected", source="gateway",
                   retryable=False)
    assert len(calls(gw, AUTH, "POST")) == 1 and len(calls(gw, BALANCE)) == 2  # one renewal, one retry


@pytest.fixture
async def wrong_key_gw(aiohttp_client, make_config, monkeypatch):  # type: ignore[no-untyped-def]
    """The gateway configured with a wrong app key; the upstream (simulator) keeps its real one."""
    original = MastercardAUAdapter.create_sandbox.__func__  # type: ignore[attr-defined]

    def create_sandbox(cls, config):  # type: ignore[no-untyped-def]
        sandbox = original(cls, config)
        sandbox.app_key = APP_KEY
        return sandbox

    monkeypatch.setattr(MastercardAUAdapter, "create_sandbox", classmethod(create_sandbox))
    patch = {"adapters": {AU: {**FAST["adapters"][AU], "app_key": "wrong"}}}
    return await serve(aiohttp_client, make_config(patch))


async def _sign_up_with_the_wrong_key(client: Any, requests: int = 5) -> list[dict]:
    sandbox = sandbox_of(client, AU)
    sandbox.calls.clear()
    problems = []
    for i in range(requests):
        resp = await client.post("/v1/customers", json={"provider": AU, "external_ref": f"au_wrongkey{i}"},
                                 headers=DEV)
        assert resp.status >= 500, await resp.text()
        problems.append({**await resp.json(), "http": resp.status})
    return problems


async def test_wrong_app_key_makes_no_retry_storm_and_stores_nothing(wrong_key_gw) -> None:  # type: ignore[no-untyped-def]
    client = wrong_key_gw
    requests = 5
    problems = await _sign_up_with_the_wrong_key(client, requests)
    for problem in problems:
        assert "app key" in problem["detail"], problem  # the operator is told what to look at
    upstream = sandbox_of(client, AU).calls.matching()
    # Never more than one upstream call per caller request: each one a refused sign-in, never retried.
    assert len(upstream) <= requests and all(c.path.endswith("/partners/authentication") for c in upstream), \
        [c.path for c in upstream]
    assert calls(client, r"/customers/testing$", "POST") == []  # the write never reached the upstream
    assert count_rows(client, "customers") == 0
    providers = await (await client.get("/v1/providers", headers=DEV)).json()
    health = next(p for p in providers["data"] if p["id"] == AU)["health"]
    assert "app key" in health.get("consent_notifications", ""), health  # could not subscribe at start either


async def test_wrong_app_key_is_a_gateway_credentials_problem(wrong_key_gw) -> None:  # type: ignore[no-untyped-def]
    for problem in await _sign_up_with_the_wrong_key(wrong_key_gw, 3):
        assert problem["http"] == 502, problem
        assert problem["code"].startswith("gateway_credentials"), problem
        assert problem["source"] == "gateway" and problem["retryable"] is False, problem


# --- 3. aggregation status codes: the institution's problems --------------------------------------------------------
# code -> (HTTP status, canonical code, retryable), as adapters/mastercard/errors.py says
AGGREGATION = {
    "103": (409, "institution_credentials_invalid", False),
    "108": (409, "user_action_required", False),
    "109": (409, "user_action_required", False),
    "913": (410, "account_closed", False),
    "914": (410, "account_not_found", False),
    "915": (503, "institution_unavailable", True),
    "916": (503, "institution_unavailable", True),
    "921": (422, "institution_not_supported", False),
    "931": (409, "one_time_passcode_required", False),
    "936": (409, "user_action_required", False),
    "3255006": (503, "account_being_aggregated", True),
}


def test_expectations_match_the_error_table() -> None:
    for code, expected in AGGREGATION.items():
        rule = ERRORS[code]
        retryable = rule.retryable if rule.retryable is not None else rule.error.retryable
        assert (rule.error.status, rule.code or rule.error.code, retryable) == expected, code
        assert rule.error.source == "institution", code


@pytest.mark.parametrize("code", AGGREGATION)
async def test_aggregation_status_codes(gw, account, code) -> None:  # type: ignore[no-untyped-def]
    http, canonical, retryable = AGGREGATION[code]
    sandbox = sandbox_of(gw, AU)
    sandbox.set_account_error(account["provider_ref"], code)
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=http, code=canonical, source="institution", retryable=retryable)
    assert problem["provider_code"] == code
    assert ACCOUNT_ERRORS[code][1] not in problem["detail"]  # a sentence for people, never the upstream's text
    # The consent is untouched by an account's problem, and the account works again once the institution does.
    consent = await (await gw.get(f"/v1/consents/{account['consent_id']}", headers=DEV)).json()
    assert consent["status"] == "authorised"
    sandbox.set_account_error(account["provider_ref"], None)
    assert (await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)).status == 200


# --- 4. the end of a consent: notification, or the platform's refusal ---------------------------------------------
async def test_expiry_notification_expires_the_consent_and_deletes_its_data(gw, linked) -> None:  # type: ignore[no-untyped-def]
    customer, consent, account = linked
    sandbox = sandbox_of(gw, AU)
    await with_consumer(gw, customer["id"])
    resp = await gw.post("/v1/reports", json={"customer_id": customer["id"], "type": "voa"}, headers=DEV)
    assert resp.status == 202, await resp.text()
    report = await resp.json()
    await sandbox.wait_webhooks_idle()  # the report is done
    assert count_rows(gw, "reports") == 1 and stored_from(gw, consent["id"]) > 1
    sandbox.expire_consent(consent["provider_ref"])
    await sandbox.wait_webhooks_idle()
    assert [d["status"] for d in sandbox.deliveries if d["event_type"] == "INSTITUTIONS_EXPIRED"] == [200]
    got = await (await gw.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] == "expired", got
    assert stored_from(gw, consent["id"]) == 0  # accounts and reports alike
    assert count_rows(gw, "reports") == 0
    assert (await gw.get(f"/v1/accounts/{account['id']}", headers=DEV)).status == 404
    assert (await gw.get(f"/v1/reports/{report['id']}", headers=DEV)).status == 404
    resp = await gw.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)
    assert resp.status == 403 and (await resp.json())["code"] == "consent_not_active"


@pytest.mark.parametrize("ending", ["REVOKED", "EXPIRED"])
async def test_platform_refusing_an_ended_receipt_ends_the_consent(gw, linked, ending) -> None:  # type: ignore[no-untyped-def]
    """The receipt ends upstream but its notification has not arrived (yet): the platform's 403 10040 on the next
    data call is enough for the gateway to record the end and delete what it stored."""
    _, consent, account = linked
    sandbox = sandbox_of(gw, AU)
    receipt = sandbox.world.receipts[consent["provider_ref"]]
    sandbox.world.end_arrangements(receipt, receipt.active(), ending, "DATA_HOLDER")  # no notification sent
    assert stored_from(gw, consent["id"]) > 0
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=403, code="consent_revoked_upstream", source="caller", retryable=False)
    assert problem["provider_code"] == "10040"
    assert len(calls(gw, BALANCE)) == 1  # a refusal, not a fault: not retried
    got = await (await gw.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] in ("revoked", "expired"), got  # which one: see the next test
    assert stored_from(gw, consent["id"]) == 0
    sandbox.calls.clear()
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    assert resp.status == 404  # the account is gone with the consent
    resp = await gw.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)
    assert resp.status == 403
    assert sandbox.calls.matching() == []  # the gateway no longer asks upstream


async def test_an_expired_receipt_refused_upstream_is_recorded_as_expired(gw, linked) -> None:  # type: ignore[no-untyped-def]
    _, consent, account = linked
    sandbox = sandbox_of(gw, AU)
    receipt = sandbox.world.receipts[consent["provider_ref"]]
    sandbox.world.end_arrangements(receipt, receipt.active(), "EXPIRED", "SYSTEM")  # its notification is late
    assert (await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)).status == 403
    got = await (await gw.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] == "expired", got


# --- 5. security --------------------------------------------------------------------------------------------------
@pytest.fixture
async def debug_gw(aiohttp_client, make_config, monkeypatch):  # type: ignore[no-untyped-def]
    """The gateway logging at debug level (every upstream call logged). structlog caches a module's logger, with the
    level of the time, on first use; forget those caches for this test (monkeypatch restores them afterwards)."""
    import adapters.mastercard_au.adapter
    import gateway.api.app
    import gateway.api.middleware
    import gateway.connectivity.client

    for module in (gateway.api.app, gateway.api.middleware, gateway.connectivity.client,
                   adapters.mastercard_au.adapter):
        if "bind" in vars(module.log):  # the instance's cached bind (the class's own method stays)
            monkeypatch.delattr(module.log, "bind")
    return await serve(aiohttp_client, make_config({**FAST, "logging": {"format": "json", "level": "debug"}}))


async def test_no_credential_or_key_reaches_the_logs(debug_gw, capsys, caplog) -> None:  # type: ignore[no-untyped-def]
    gw = debug_gw
    caplog.set_level(logging.DEBUG)  # standard-library loggers too (aiohttp, the simulator)
    sandbox = sandbox_of(gw, AU)
    customer, consent = await authorised(gw)
    account = await deposit_account(gw, consent["id"])
    assert (await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)).status == 200
    await with_consumer(gw, customer["id"])
    resp = await gw.post("/v1/reports", json={"customer_id": customer["id"], "type": "voa"}, headers=DEV)
    assert resp.status == 202
    sandbox.expire_tokens()  # a renewal happens in the middle of the flow
    assert (await gw.get(f"/v1/accounts/{account['id']}/transactions", headers=DEV)).status == 200
    sandbox.faults.add("status", status=500, path=BALANCE, times=3)  # failures log the upstream's answer
    await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    await sandbox.wait_webhooks_idle()
    login = consent["terms"]["institutions"][0]["login_ref"]
    sandbox.revoke_institution(consent["provider_ref"], login)
    await sandbox.wait_webhooks_idle()
    got = await (await gw.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] == "revoked"

    captured = capsys.readouterr()
    out = captured.out + captured.err + caplog.text
    assert '"event":"upstream_call"' in out, "expected the gateway's debug log lines"
    assert '"route":"/webhooks/{provider}/{channel}"' in out, "expected the notifications' request lines"
    signing_keys = [s.signing_key for s in sandbox.world.subscriptions.values()]
    token = state_of(gw).adapters[AU].client.tokens._token
    assert signing_keys and token is not None
    tokens = [c.headers["app-token"] for c in sandbox.calls.matching() if "app-token" in c.headers]
    assert token.value in tokens
    for name, secret in [("partner secret", PARTNER_SECRET), ("app key", APP_KEY), ("caller key", DEV_KEY),
                         *(("signing key", k) for k in signing_keys), *(("app token", t) for t in set(tokens))]:
        assert secret not in out, f"the {name} ({secret[:4]}…) leaked into the logs"


async def test_another_tenant_cannot_see_au_resources(gw, linked) -> None:  # type: ignore[no-untyped-def]
    customer, consent, account = linked
    await with_consumer(gw, customer["id"])
    report = await (await gw.post("/v1/reports", json={"customer_id": customer["id"], "type": "voa"},
                                  headers=DEV)).json()
    app = await (await gw.post("/v1/applications", json={
        "provider": AU, "access_model": "CDR_REPRESENTATIVE", "name": "Budget Buddy", "description": "Budgeting",
        "url": "https://budget.example.com", "image": "iVBORw0KGgo="}, headers=DEV)).json()
    assert app["id"].startswith("app_"), app
    await sandbox_of(gw, AU).wait_webhooks_idle()
    sandbox = sandbox_of(gw, AU)
    sandbox.calls.clear()
    for method, path in [
        ("GET", f"/v1/customers/{customer['id']}"),
        ("POST", f"/v1/customers/{customer['id']}/consumer"),
        ("POST", f"/v1/customers/{customer['id']}/consent-dashboard"),
        ("GET", f"/v1/consents/{consent['id']}"),
        ("POST", f"/v1/consents/{consent['id']}/revoke"),
        ("GET", f"/v1/accounts/{account['id']}"),
        ("GET", f"/v1/accounts/{account['id']}/balances"),
        ("GET", f"/v1/reports/{report['id']}"),
        ("GET", f"/v1/reports/{report['id']}/content"),
        ("GET", f"/v1/applications/{app['id']}"),
        ("GET", f"/v1/applications/{app['id']}/institutions"),
    ]:
        kwargs: dict[str, Any] = {"json": {"first_name": "Eve", "last_name": "Spy"}} if "consumer" in path else \
            {"json": {}} if method == "POST" else {}
        resp = await gw.request(method, path, headers=OTHER, **kwargs)
        assert resp.status == 404, (method, path, resp.status, await resp.text())
    resp = await gw.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=OTHER)
    assert resp.status == 404
    listing = await (await gw.get("/v1/reports", params={"customer_id": customer["id"]}, headers=OTHER)).json()
    assert listing["data"] == []
    assert sandbox.calls.matching() == []  # nothing reached the upstream on their behalf
    got = await (await gw.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] == "authorised"  # and the owner's consent is untouched


def _signed_notification(key: str, event_id: str, event_type: str, customer_ref: str, receipt_ref: str,
                         login_ref: str, account_refs: list[str]) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps({
        "eventId": event_id, "eventType": event_type, "eventContext": "CONSENT",
        "eventTime": "2030-01-01T00:00:00.000Z", "customerId": customer_ref,
        "payload": {"changes": {"summary": "Institutions revoked from the consent: FinBank Aus OAuth",
                                "details": [{"consentReceiptId": receipt_ref, "institutionId": "200003",
                                             "institutionLoginId": login_ref, "accountIds": account_refs}]},
                    "consent": {"consentReceiptId": receipt_ref, "statusDetails": {"status": "REVOKED"},
                                "institutions": []}}})
    signature = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "Event-Id": event_id, "Event-Type": event_type,
                  "Event-Context": "CONSENT", "Event-Signature": signature}


async def test_validly_signed_notification_with_a_replayed_event_id_changes_nothing(gw, linked) -> None:  # type: ignore[no-untyped-def]
    _, consent, _ = linked
    sandbox = sandbox_of(gw, AU)
    store = state_of(gw).store
    events = await store.list_inbound_events(AU)
    added = next(e for e in events if e.type == "INSTITUTIONS_ADDED")  # already processed
    key = next(iter(sandbox.world.subscriptions.values())).signing_key
    receipt = sandbox.world.receipts[consent["provider_ref"]]
    login = consent["terms"]["institutions"][0]["login_ref"]
    account_refs = [a for arrangement in receipt.arrangements for a in arrangement.account_ids]
    stored = stored_from(gw, consent["id"])
    assert stored > 0

    # A revocation, correctly signed, but under the Event-Id of an event already processed: acknowledged, ignored.
    body, headers = _signed_notification(key, added.event_id, "INSTITUTIONS_REVOKED", receipt.customer_id,
                                         receipt.id, login, account_refs)
    resp = await gw.post(NOTIFICATIONS, data=body, headers=headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["duplicate"] is True
    got = await (await gw.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] == "authorised" and stored_from(gw, consent["id"]) == stored
    after = await store.list_inbound_events(AU)
    assert len(after) == len(events)
    assert next(e for e in after if e.event_id == added.event_id).type == "INSTITUTIONS_ADDED"  # not overwritten

    # Control: the very same notification under a new Event-Id does revoke (so the replay was really ignored).
    body, headers = _signed_notification(key, str(uuid.uuid4()), "INSTITUTIONS_REVOKED", receipt.customer_id,
                                         receipt.id, login, account_refs)
    resp = await gw.post(NOTIFICATIONS, data=body, headers=headers)
    assert resp.status == 200 and (await resp.json())["duplicate"] is False
    got = await (await gw.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] == "revoked" and stored_from(gw, consent["id"]) == 0
    # ... and replaying that one again changes nothing either.
    resp = await gw.post(NOTIFICATIONS, data=body, headers=headers)
    assert resp.status == 200 and (await resp.json())["duplicate"] is True
