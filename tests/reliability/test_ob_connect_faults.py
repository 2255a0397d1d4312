"""ob-connect against a misbehaving hub, over real HTTP: every fault on an account-information read ends in a clear,
correctly attributed problem (retryable as the hub's `Recoverable` says, where its body says it); a fault while a
payment consent is created stores nothing; a transfer whose answer was lost, late, failed or cut off ends
`completed` with exactly one payment at the hub, through the reconciliation worker or the caller's own retry (the
hub answers a repeated transfer of one consent with its one payment); and neither the signing key's password nor
the OAuth signatures nor the payer's authorisation reach the logs."""
from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest

from adapters.ob_connect.settings import LOCAL_PASSWORD
from tests.conftest import DEV, count_rows, sandbox_of, serve
from tests.flows import play_end_user
from tests.payments_flow import complete, keyed, payer_decides, wait_for
from tests.reliability.common import assert_problem, write_faults

OBC = "ob-connect"
REDIRECT = "https://app.example.com/callback"
ALBION = "c058ee30-0239-5401-a3a7-6f0aec2ea477"  # GB
RHEINUFER = "2d5a7e23-1711-5059-8e3c-3a4471941b8c"  # DE
LENTO = "9edacef9-2104-543a-af67-0d3188cad2db"  # ES: every call for it waits `latency` seconds (0.5 by default)
SLOW = 1.5  # outlasts the timeout below

RETRY = {"attempts": 3, "backoff_base": 0.01, "backoff_max": 0.05, "max_retry_after": 0.5, "budget_ratio": 0.2}
FAST = {
    "adapters": {OBC: {
        "sandbox_payment_timeline": [0.05, 0.1, 0.15],
        "timeouts": {"connect": 1.0, "total": 1.0},  # roomy: a loaded CI machine must not time out a setup call
        "retry": RETRY,
        "circuit": {"failure_threshold": 500, "reset_after": 0.5},
    }},
    "payments": {"reconcile_tick_seconds": 0.02, "reconcile_backoff_base_seconds": 0.02,
                 "reconcile_backoff_max_seconds": 0.1},
}
HANDS_OFF = {**FAST, "payments": {**FAST["payments"], "reconcile": False}}  # no worker: only the caller acts

BALANCES = r"/accounts/account/balances$"
CONSENTS = r"/payments/domestic-credit-transfers/consents$"
TRANSFER = r"/payments/domestic-credit-transfers$"
STATUS = r"/payments/domestic-credit-transfers/payment-status$"


@pytest.fixture
async def gw(aiohttp_client, make_config):  # type: ignore[no-untyped-def]
    return await serve(aiohttp_client, make_config(FAST))


def order(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "provider": OBC, "type": "domestic", "institution_id": ALBION,
        "amount": {"amount": "42.00", "currency": "GBP"},
        "creditor": {"name": "Jane Supplier Ltd",
                     "account": {"scheme": "uk_sort_code", "sort_code": "400515", "account_number": "12345678"}},
        "reference": "INV2026077", "redirect_uri": REDIRECT}
    body.update(changes)
    return body


def hub_error(reason: str, recoverable: bool) -> dict[str, Any]:
    return {"Errors": {"Error": [{"Source": "ASPSP", "ReasonCode": reason, "Description": "simulated",
                                  "Recoverable": recoverable, "Details": ""}]}}


async def account_of(client: Any, bank: str = RHEINUFER) -> tuple[dict[str, Any], dict[str, Any]]:
    """An authorised consent at the bank and its current account."""
    resp = await client.post("/v1/consents", headers=DEV, json={"provider": OBC, "redirect_uri": REDIRECT,
                                                               "institution_id": bank})
    consent = await resp.json()
    assert resp.status == 201, consent
    redirect = await play_end_user(consent["authorisation_url"], outcome="approve")
    resp = await client.post(f"/v1/consents/{consent['id']}/complete", json={"redirect_result": redirect},
                             headers=DEV)
    assert resp.status == 200
    resp = await client.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)
    return consent, (await resp.json())["data"][0]


async def authorised_payment(client: Any) -> dict[str, Any]:
    resp = await client.post("/v1/payments", json=order(), headers=keyed())
    payment = await resp.json()
    assert resp.status == 201, payment
    redirect = await payer_decides(payment["authorisation_url"])
    resp = await complete(client, payment["id"], redirect, submit=False)
    done = await resp.json()
    assert resp.status == 200 and done["status"] == "authorised", done
    return done


# --- account information reads ---------------------------------------------------------------------------------------
# fault → (HTTP status, canonical code, retryable, the hub's ReasonCode passed on as provider_code)
READ_FAULTS: dict[str, tuple[dict[str, Any], tuple[int, str, bool, str | None]]] = {
    "500": ({"kind": "status", "status": 500}, (502, "provider_unavailable", True, "PROVIDER_ERROR")),
    "504_status": ({"kind": "status", "status": 504}, (504, "provider_timeout", True, "PROVIDER_TIMEOUT")),
    "429": ({"kind": "rate_limit", "retry_after": 1}, (503, "provider_rate_limited", True, "RATE_LIMITED")),
    "malformed_json": ({"kind": "malformed_json"}, (502, "provider_bad_response", False, None)),
    "dropped": ({"kind": "drop_connection"}, (502, "provider_unavailable", True, None)),
    "timeout": ({"kind": "latency", "delay": SLOW}, (504, "provider_timeout", True, None)),
    # the hub's body says whether a retry can succeed, whatever the status suggests
    "503_not_recoverable": ({"kind": "status", "status": 503, "body": hub_error("ASPSP_DOWN", False)},
                            (502, "provider_unavailable", False, "ASPSP_DOWN")),
    "400_from_the_hub": ({"kind": "status", "status": 400},  # the hub found our own request malformed
                         (502, "upstream_request_rejected", False, "INVALID_REQUEST")),
}


@pytest.mark.parametrize("name", sorted(READ_FAULTS))
async def test_read_faults_end_in_the_right_problem(gw, name):
    sandbox = sandbox_of(gw, OBC)
    consent, account = await account_of(gw)
    fault, (http, code, retryable, provider_code) = READ_FAULTS[name]
    sandbox.faults.add(path=BALANCES, times=None, **fault)
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    problem = await resp.json()
    source = "gateway" if code == "upstream_request_rejected" else "provider"
    assert_problem(resp.status, problem, http=http, code=code, source=source, retryable=retryable)
    assert problem.get("provider_code") == provider_code, problem
    assert OBC in problem["detail"]
    if name == "429":
        assert problem["retry_after"] == 1 and resp.headers.get("Retry-After") == "1"
    sandbox.faults.clear()
    # the consent is untouched by a fault: the next read works
    current = await (await gw.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert current["status"] == "authorised"
    resp = await gw.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    assert resp.status == 200


async def test_a_read_failing_once_is_retried_and_a_refusal_is_not(gw):
    sandbox = sandbox_of(gw, OBC)
    _, account = await account_of(gw)
    sandbox.faults.add("status", path=r"/accounts/account/transactions$", status=503, times=1)
    resp = await gw.get(f"/v1/accounts/{account['id']}/transactions", params={"limit": "5"}, headers=DEV)
    assert resp.status == 200 and len((await resp.json())["data"]) == 5
    assert [c.status for c in sandbox.calls.matching("POST", r"/transactions$")] == [503, 200]
    sandbox.calls.clear()
    sandbox.faults.add("status", path=r"/accounts/account$", status=400, times=None)
    resp = await gw.get(f"/v1/accounts/{account['id']}/details", headers=DEV)
    assert resp.status == 502 and (await resp.json())["code"] == "upstream_request_rejected"
    assert len(sandbox.calls.matching("POST", r"/accounts/account$")) == 1  # a 400 is not worth repeating


async def test_the_slow_bank_times_out_and_nothing_is_stored(gw):
    sandbox = sandbox_of(gw, OBC)
    assert sandbox.aspsps[LENTO].latency > 0  # the simulated slow bank
    sandbox.aspsps[LENTO].latency = SLOW  # longer than the gateway's timeout here
    resp = await gw.post("/v1/consents", headers=DEV, json={"provider": OBC, "redirect_uri": REDIRECT,
                                                           "institution_id": LENTO})
    assert_problem(resp.status, await resp.json(), http=504, code="provider_timeout", source="provider",
                   retryable=True)
    assert count_rows(gw, "consents") == 0
    assert len(sandbox.calls.matching("POST", r"/accounts/consents$")) == 1  # a consent creation is not repeated
    sandbox.aspsps[LENTO].latency = 0.05
    resp = await gw.post("/v1/consents", headers=DEV, json={"provider": OBC, "redirect_uri": REDIRECT,
                                                           "institution_id": LENTO})
    assert resp.status == 201


async def test_a_stale_list_of_banks_keeps_serving_while_the_hub_cannot_be_read(aiohttp_client, make_config,
                                                                               capsys):
    client = await serve(aiohttp_client, make_config({**FAST, "adapters": {OBC: {
        **FAST["adapters"][OBC], "aspsp_cache_seconds": 0}}}))
    sandbox = sandbox_of(client, OBC)
    sandbox.faults.add("status", path=r"/aspsps$", status=503, times=None)
    resp = await client.get("/v1/institutions", params={"provider": OBC, "country": "DE"}, headers=DEV)
    assert resp.status == 200 and [i["id"] for i in (await resp.json())["data"]] == [RHEINUFER]
    resp = await client.post("/v1/payments", json=order(), headers=keyed())  # the capability check still works
    assert resp.status == 201
    assert any(c.status == 503 for c in sandbox.calls.matching("POST", r"/aspsps$"))
    assert '"event":"aspsps_stale"' in capsys.readouterr().out


# --- payment consent creation -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(write_faults(SLOW)))
async def test_payment_consent_faults_store_nothing(gw, name):
    sandbox = sandbox_of(gw, OBC)
    fault, (http, code, retryable) = write_faults(SLOW)[name]
    sandbox.faults.add(path=CONSENTS, method="POST", times=None, **fault)
    resp = await gw.post("/v1/payments", json=order(), headers=keyed("faulty"))
    assert_problem(resp.status, await resp.json(), http=http, code=code, source="provider", retryable=retryable)
    assert count_rows(gw, "payments") == 0 and count_rows(gw, "idempotency_keys") == 0
    # the hub makes a new consent per call: a consent creation is never repeated by the gateway itself
    assert len(sandbox.calls.matching("POST", CONSENTS)) == 1
    sandbox.faults.clear()
    resp = await gw.post("/v1/payments", json=order(), headers=keyed("faulty"))
    payment = await resp.json()
    assert resp.status == 201 and payment["consent_ref"] in sandbox.payment_consents
    assert count_rows(gw, "payments") == 1


# --- the transfer -----------------------------------------------------------------------------------------------------
TRANSFER_FAULTS = {
    "lost_after_acting": {"kind": "lose_response"},
    "late_after_acting": {"kind": "late_response", "delay": SLOW},
    "5xx": {"kind": "status", "status": 500},
    "dropped": {"kind": "drop_connection"},
}


@pytest.mark.parametrize("recovery", ["worker", "caller_refresh"])
@pytest.mark.parametrize("name", sorted(TRANSFER_FAULTS))
async def test_transfer_faults_end_in_one_completed_payment(aiohttp_client, make_config, name, recovery):
    client = await serve(aiohttp_client, make_config(FAST if recovery == "worker" else HANDS_OFF))
    sandbox = sandbox_of(client, OBC)
    payment = await authorised_payment(client)
    sandbox.faults.add(path=TRANSFER, method="POST", times=None, **TRANSFER_FAULTS[name])
    resp = await client.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    body = await resp.json()
    assert resp.status == 202 and body["status"] == "unknown", body
    assert "outcome was not learned" in body["status_reason"] and body["provider_ref"] is None
    acted = name in ("lost_after_acting", "late_after_acting")
    assert sandbox.payments_created == (1 if acted else 0)
    sandbox.faults.clear()
    if recovery == "worker":
        done = await wait_for(client, payment["id"], {"completed"})
    else:  # no worker: the caller asks again, and the gateway repeats the transfer to learn its outcome
        done = await wait_for(client, payment["id"], {"completed"}, refresh=True)
    assert sandbox.payments_created == 1 and done["provider_ref"] in sandbox.payments
    history = [h["status"] for h in done["history"]]
    assert history[:3] == ["awaiting_authorisation", "authorised", "unknown"], history
    assert history[3] in ("submitted", "pending", "completed")  # however far the hub's payment got meanwhile
    assert history[-1] == "completed" and history.count("completed") == 1
    assert done["history"][3]["reason"].startswith("found at the bank after a lost answer")
    # repeating the transfer presented the same authorisation: the hub answered its one payment
    authorizations = {c.json()["requestInfo"]["authorization"] for c in sandbox.calls.matching("POST", TRANSFER)}
    assert len(authorizations) == 1


async def test_a_transfer_answer_lost_once_is_recovered_by_the_gateways_own_retry(gw):
    sandbox = sandbox_of(gw, OBC)
    payment = await authorised_payment(gw)
    sandbox.faults.add("lose_response", path=TRANSFER, method="POST", times=1)
    resp = await gw.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "submitted", body  # the retry got the hub's one payment
    assert sandbox.payments_created == 1 and body["provider_ref"] in sandbox.payments
    assert len(sandbox.calls.matching("POST", TRANSFER)) == 2
    await wait_for(gw, payment["id"], {"completed"})
    assert sandbox.payments_created == 1


async def test_a_rate_limited_transfer_still_ends_in_one_payment(gw):
    """Refused before acting: the caller hears 503 and nothing was paid; whoever presents the transfer next, the
    hub makes one payment."""
    sandbox = sandbox_of(gw, OBC)
    payment = await authorised_payment(gw)
    sandbox.faults.add("rate_limit", path=TRANSFER, method="POST", times=None, retry_after=1)
    resp = await gw.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=503, code="provider_rate_limited", source="provider", retryable=True)
    assert sandbox.payments_created == 0
    sandbox.faults.clear()
    resp = await gw.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)  # the caller retries
    assert resp.status == 200
    done = await wait_for(gw, payment["id"], {"completed"})
    assert sandbox.payments_created == 1 and done["provider_ref"] in sandbox.payments


async def test_a_rate_limited_transfer_is_left_to_the_caller(gw):
    sandbox = sandbox_of(gw, OBC)
    payment = await authorised_payment(gw)
    sandbox.faults.add("rate_limit", path=TRANSFER, method="POST", times=None, retry_after=30)
    resp = await gw.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    assert (await resp.json())["code"] == "provider_rate_limited"
    await asyncio.sleep(0.3)  # the worker runs meanwhile; the hub asked for 30 s
    assert len(sandbox.calls.matching("POST", TRANSFER)) == 1
    sandbox.faults.clear()
    await asyncio.sleep(0.3)
    stored = await (await gw.get(f"/v1/payments/{payment['id']}", headers=DEV)).json()
    assert stored["status"] == "authorised" and sandbox.payments_created == 0, stored  # nothing was submitted
    resp = await gw.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    assert resp.status == 200 and (await resp.json())["status"] == "submitted"


async def test_status_faults_only_delay_reconciliation(gw):
    sandbox = sandbox_of(gw, OBC)
    payment = await authorised_payment(gw)
    sandbox.faults.add("status", path=STATUS, method="POST", status=503, times=None)
    resp = await gw.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    assert (await resp.json())["status"] == "submitted"
    resp = await gw.get(f"/v1/payments/{payment['id']}", params={"refresh": "true"}, headers=DEV)
    assert_problem(resp.status, await resp.json(), http=502, code="provider_unavailable", source="provider",
                   retryable=True)
    await asyncio.sleep(0.2)  # the worker meets the same fault meanwhile
    stored = await (await gw.get(f"/v1/payments/{payment['id']}", headers=DEV)).json()
    assert stored["status"] == "submitted" and stored["upstream_status"] == "RCVD"
    sandbox.faults.clear()
    done = await wait_for(gw, payment["id"], {"completed"})
    assert done["upstream_status"] == "ACSC" and sandbox.payments_created == 1


# --- secrets -------------------------------------------------------------------------------------------------------
async def test_secrets_stay_out_of_logs(aiohttp_client, make_config, capsys, caplog, tmp_path):
    """Through account information, a payment with a lost transfer answer and refused signatures: neither the
    PKCS#12 password nor any OAuth signature nor the payer's authorisation code is logged (debug level is asked
    for; it applies when this is the first app of the test process, as structlog caches its loggers), and the
    authorisation is sealed at rest."""
    caplog.set_level(logging.DEBUG)
    client = await serve(aiohttp_client, make_config({**FAST, "logging": {"format": "json", "level": "debug"}}))
    sandbox = sandbox_of(client, OBC)
    _, account = await account_of(client, ALBION)
    assert (await client.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)).status == 200
    resp = await client.post("/v1/payments", json=order(), headers=keyed())
    payment = await resp.json()
    redirect = await payer_decides(payment["authorisation_url"])
    sandbox.faults.add("lose_response", path=TRANSFER, method="POST", times=None)
    resp = await complete(client, payment["id"], redirect)
    assert (await resp.json())["status"] == "unknown"
    sandbox.faults.clear()
    await wait_for(client, payment["id"], {"completed"})
    sandbox.verifier.consumer_key = "rotated-at-the-hub"  # every request from now on is refused with 401
    resp = await client.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)
    assert (await resp.json())["code"] == "gateway_credentials_rejected"

    captured = capsys.readouterr()
    logs = captured.out + captured.err + caplog.text
    assert '"event":"request"' in logs and "reconcile" in logs  # the logs were captured
    signatures = [re.search(r'oauth_signature="([^"]+)"', c.headers["authorization"]).group(1)
                  for c in sandbox.calls.matching() if "authorization" in c.headers]
    assert len(signatures) > 10
    code = re.search(r"code=([^&]+)", redirect).group(1)
    assert LOCAL_PASSWORD not in logs, "the signing key's password leaked into the logs"
    assert "oauth_signature" not in logs and "OAuth oauth_consumer_key" not in logs
    for signature in signatures:
        assert signature not in logs and signature.replace("%2B", "+").replace("%2F", "/") not in logs
    assert code not in logs, "the payer's authorisation code leaked into the logs"
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("gateway.db"))
    assert payment["id"].encode() in on_disk
    assert code.encode() not in on_disk and LOCAL_PASSWORD.encode() not in on_disk
