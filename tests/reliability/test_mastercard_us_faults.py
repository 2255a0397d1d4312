"""mastercard-us against a misbehaving upstream: every fault ends in a clear, correctly attributed answer."""
from __future__ import annotations

import asyncio

import pytest

from gateway.api.app import create_app
from tests.conftest import DEV, count_rows, sandbox_of, serve, state_of
from tests.flows import authorised_consent, first_account
from tests.reliability.common import assert_problem, write_faults

FAST = {"adapters": {"mastercard-us": {
    "timeouts": {"connect": 1.0, "total": 1.2},  # under the 2 s latency fault, over a busy machine's pauses
    "retry": {"attempts": 3, "backoff_base": 0.01, "backoff_max": 0.05, "max_retry_after": 2.0, "budget_ratio": 0.2},
    "circuit": {"failure_threshold": 4, "reset_after": 0.5},
}}}


@pytest.fixture
async def gw(aiohttp_client, make_config):  # type: ignore[no-untyped-def]
    # On its real address: Connect pings the webhook URL (the gateway's public URL) before it makes a link.
    return await serve(aiohttp_client, make_config(FAST))


@pytest.fixture
async def account(gw):  # type: ignore[no-untyped-def]
    consent = await authorised_consent(gw)
    account = await first_account(gw, consent["id"], account_type="checking")
    sandbox_of(gw, "mastercard-us").calls.clear()
    return account


def _balance_calls(gw) -> list:  # type: ignore[no-untyped-def]
    return sandbox_of(gw, "mastercard-us").calls.matching(method="GET", path_regex=r"/availableBalance$")


async def test_5xx_on_a_read_is_retried_then_succeeds(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, "mastercard-us").faults.add("status", status=503, path=r"/availableBalance$", times=1)
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    assert resp.status == 200
    assert len(_balance_calls(gw)) == 2


async def test_persistent_5xx_says_provider_and_retryable(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, "mastercard-us").faults.add("status", status=500, path=r"/availableBalance$", times=3)
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    assert resp.status == 502 and problem["source"] == "provider" and problem["retryable"] is True
    assert len(_balance_calls(gw)) == 3  # the configured attempts, no more


async def test_timeout(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, "mastercard-us").faults.add("latency", delay=2.0, path=r"/availableBalance$", times=3)
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    assert resp.status == 504 and problem["code"] == "provider_timeout" and problem["retryable"]


async def test_429_retry_after_is_honoured(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gw, "mastercard-us")
    sandbox.faults.add("rate_limit", retry_after=1, path=r"/availableBalance$", times=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    assert resp.status == 200
    assert loop.time() - started >= 0.95  # waited as the provider asked
    calls = _balance_calls(gw)
    assert len(calls) == 2


async def test_429_with_long_retry_after_is_passed_to_the_caller(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, "mastercard-us").faults.add("rate_limit", retry_after=30, path=r"/availableBalance$", times=1)
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    assert resp.status == 503 and problem["code"] == "provider_rate_limited"
    assert resp.headers["Retry-After"] == "30"
    assert len(_balance_calls(gw)) == 1


async def test_malformed_json(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, "mastercard-us").faults.add("malformed_json", path=r"/details$", times=1)
    resp = await gw.get(f"/v1/accounts/{account['id']}/details", headers=DEV)
    problem = await resp.json()
    assert resp.status == 502 and problem["code"] == "provider_bad_response" and problem["source"] == "provider"


async def test_dropped_connection(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, "mastercard-us").faults.add("drop_connection", path=r"/availableBalance$", times=None)
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    assert resp.status == 502 and problem["code"] == "provider_unavailable" and problem["retryable"]


async def test_writes_are_not_retried(gw) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gw, "mastercard-us")
    sandbox.faults.add("status", status=503, path=r"/customers/testing$", times=1)
    resp = await gw.post("/v1/customers", json={"provider": "mastercard-us", "external_ref": "once_only1"},
                         headers=DEV)
    assert resp.status == 502
    assert len(sandbox.calls.matching(method="POST", path_regex=r"/customers/testing$")) == 1
    assert count_rows(gw, "customers") == 0  # nothing half-written


async def test_expired_token_is_renewed_once(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gw, "mastercard-us")
    sandbox.calls.clear()
    sandbox.expire_tokens()
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    assert resp.status == 200
    assert len(sandbox.calls.matching(method="POST", path_regex=r"/partners/authentication$")) == 1
    # via the fault too
    sandbox.faults.add("expired_token", path=r"/availableBalance$", times=1)
    assert (await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)).status == 200
    assert len(sandbox.calls.matching(method="POST", path_regex=r"/partners/authentication$")) == 2


async def test_concurrent_callers_share_one_token_fetch(aiohttp_client, make_config) -> None:  # type: ignore[no-untyped-def]
    # Normal timeouts: 30 callers at once on a busy machine must not trip the fault tests' short ones.
    gw = await serve(aiohttp_client, make_config())
    consent = await authorised_consent(gw)
    account = await first_account(gw, consent["id"], account_type="checking")
    sandbox = sandbox_of(gw, "mastercard-us")
    sandbox.expire_tokens()
    state_of(gw).adapters["mastercard-us"].client.tokens._token = None  # a cold start
    sandbox.calls.clear()
    results = await asyncio.gather(*(gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
                                     for _ in range(30)))
    assert all(r.status == 200 for r in results)
    assert len(sandbox.calls.matching(method="POST", path_regex=r"/partners/authentication$")) == 1


async def test_bad_partner_credentials_are_never_retried(aiohttp_client, make_config) -> None:  # type: ignore[no-untyped-def]
    config = make_config(FAST)
    app = create_app(config)
    client = await aiohttp_client(app)
    sandbox = sandbox_of(client, "mastercard-us")
    sandbox.partner_secret = "rotated-upstream"  # the upstream no longer accepts our secret
    for _ in range(6):
        resp = await client.post("/v1/customers", json={"provider": "mastercard-us",
                                                         "external_ref": "someone_new1"}, headers=DEV)
        problem = await resp.json()
        assert resp.status == 502 and problem["code"] == "gateway_credentials_rejected"
        assert problem["source"] == "gateway" and problem["retryable"] is False
    assert len(sandbox.calls.matching(method="POST", path_regex=r"/partners/authentication$")) == 1
    health = await (await client.get("/v1/providers", headers=DEV)).json()
    assert "rejected" in _us(health)["health"]["credentials"]


async def test_circuit_opens_shows_and_recovers(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_of(gw, "mastercard-us")
    sandbox.faults.add("status", status=500, path=r"/availableBalance$", times=None)
    for _ in range(3):
        await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    calls_when_open = len(_balance_calls(gw))
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    assert resp.status == 503 and problem["code"] == "provider_circuit_open" and "Retry-After" in resp.headers
    assert len(_balance_calls(gw)) == calls_when_open  # no call while open
    health = await (await gw.get("/v1/providers", headers=DEV)).json()
    assert _us(health)["health"]["circuit"] == "open"
    metrics = await (await gw.get("/metrics")).text()
    assert 'gateway_circuit_state{provider="mastercard-us"} 2.0' in metrics
    sandbox.faults.clear()
    await asyncio.sleep(0.6)
    assert (await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)).status == 200
    health = await (await gw.get("/v1/providers", headers=DEV)).json()
    assert _us(health)["health"]["circuit"] == "closed"


async def test_retry_budget_limits_extra_calls(aiohttp_client, make_config) -> None:  # type: ignore[no-untyped-def]
    patch = {"adapters": {"mastercard-us": {**FAST["adapters"]["mastercard-us"],
                                            "circuit": {"failure_threshold": 10_000, "reset_after": 1.0}}}}
    client = await serve(aiohttp_client, make_config(patch))
    consent = await authorised_consent(client)
    account = await first_account(client, consent["id"])
    sandbox = sandbox_of(client, "mastercard-us")
    sandbox.calls.clear()
    sandbox.faults.add("status", status=503, path=r"/availableBalance$", times=None)
    requests = 100
    for _ in range(requests):
        await client.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    upstream_calls = len(sandbox.calls.matching(method="GET", path_regex=r"/availableBalance$"))
    assert upstream_calls - requests <= 0.2 * requests + 3, upstream_calls


async def test_upstream_metrics_by_outcome(gw, account) -> None:  # type: ignore[no-untyped-def]
    sandbox_of(gw, "mastercard-us").faults.add("status", status=503, path=r"/availableBalance$", times=1)
    await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    text = await (await gw.get("/metrics")).text()
    assert 'gateway_upstream_calls_total{operation="get_balances",outcome="server_error",provider="mastercard-us"}' in text
    assert 'gateway_upstream_calls_total{operation="get_balances",outcome="ok",provider="mastercard-us"}' in text
    assert 'gateway_requests_total{method="GET",route="/v1/accounts/{account_id}/balances",status="200"}' in text


def _us(listing: dict) -> dict:
    return next(p for p in listing["data"] if p["id"] == "mastercard-us")


# --- reports and webhooks ---------------------------------------------------------------------------------------------
CONSUMER = {"first_name": "Jordan", "last_name": "Whitaker", "email": "jordan.whitaker@example.com",
            "birth_date": "1985-04-12"}
WRITE_FAULTS = write_faults(2.0)  # outlasts FAST's 1.2 s


async def _with_consumer(gw) -> dict:  # type: ignore[no-untyped-def]
    consent = await authorised_consent(gw)
    resp = await gw.post(f"/v1/customers/{consent['customer_id']}/consumer", json=CONSUMER, headers=DEV)
    assert resp.status == 201, await resp.text()
    return consent


@pytest.mark.parametrize("fault", WRITE_FAULTS)
async def test_report_creation_faults_store_nothing(gw, fault) -> None:  # type: ignore[no-untyped-def]
    kwargs, (http, code, retryable) = WRITE_FAULTS[fault]
    consent = await _with_consumer(gw)
    sandbox = sandbox_of(gw, "mastercard-us")
    sandbox.calls.clear()
    sandbox.faults.add(path=r"/decisioning/v2/customers/\d+/voa$", method="POST", times=1, **kwargs)
    resp = await gw.post("/v1/reports", json={"customer_id": consent["customer_id"], "type": "voa"}, headers=DEV)
    assert_problem(resp.status, await resp.json(), http=http, code=code, source="provider", retryable=retryable)
    assert len(sandbox.calls.matching(method="POST", path_regex=r"/voa$")) == 1  # a write is never repeated
    assert count_rows(gw, "reports") == 0


@pytest.mark.parametrize("fault", ["5xx", "malformed_json"])
async def test_consumer_creation_faults_store_nothing(gw, fault) -> None:  # type: ignore[no-untyped-def]
    kwargs, (http, code, retryable) = WRITE_FAULTS[fault]
    consent = await authorised_consent(gw)
    sandbox = sandbox_of(gw, "mastercard-us")
    sandbox.faults.add(path=r"/consumer$", method="POST", times=1, **kwargs)
    resp = await gw.post(f"/v1/customers/{consent['customer_id']}/consumer", json=CONSUMER, headers=DEV)
    assert_problem(resp.status, await resp.json(), http=http, code=code, source="provider", retryable=retryable)
    customer = await (await gw.get(f"/v1/customers/{consent['customer_id']}", headers=DEV)).json()
    assert customer["consumer_ref"] is None


async def test_a_webhook_that_fails_here_is_retried_until_it_applies(gw) -> None:  # type: ignore[no-untyped-def]
    """The `added` event needs the consent receipt: while the platform fails that read, the gateway answers 5xx and
    the platform sends the event again on its schedule; once the read works, the consent is authorised."""
    from tests.flows import create_consent, create_customer, play_end_user

    sandbox = sandbox_of(gw, "mastercard-us")
    sandbox.retry_scale = 0.01  # retries at 0.1 ms … 0.9 s
    customer = await create_customer(gw, "mastercard-us")
    consent = await create_consent(gw, customer["id"])
    sandbox.faults.add("status", status=500, path=r"^/data-sharing-consents$", times=3)  # one request's attempts
    await play_end_user(consent["authorisation_url"])
    await sandbox.wait_webhooks_idle()
    added = [d for d in sandbox.deliveries if d["event_type"] == "added"]
    assert [d["status"] for d in added] == [502, 200], added
    got = await (await gw.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] == "authorised"
    events = await state_of(gw).store.list_inbound_events("mastercard-us")
    assert [e.type for e in events].count("added") == 1

