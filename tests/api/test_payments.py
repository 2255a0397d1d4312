"""Payments through the canonical API against the stripe-uk simulated ASPSP: the walk-through, the state machine
as callers see it, validation before any upstream call, scopes, licences, tenants, funds confirmation, refusals
by the payer and by the bank, and the bank's message signatures."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import DEV, OTHER, READONLY, count_rows, sandbox_of, serve, state_of
from tests.payments_flow import (
    UK, authorised, complete, create, keyed, order, payer_decides, wait_for,
)

FAST = {"adapters": {UK: {"sandbox_payment_timeline": [0.05, 0.15]}},
        "payments": {"reconcile_tick_seconds": 0.02, "reconcile_backoff_base_seconds": 0.02,
                     "reconcile_backoff_max_seconds": 0.1}}


@pytest.fixture
def gateway_config(make_config):  # type: ignore[no-untyped-def]
    return make_config(FAST)


def _statuses(payment: dict[str, Any]) -> list[str]:
    return [h["status"] for h in payment["history"]]


async def test_payment_walkthrough(gateway):
    sandbox = sandbox_of(gateway, UK)
    payment = await create(gateway)
    assert payment["id"].startswith("pay_") and payment["status"] == "awaiting_authorisation"
    assert payment["amount"] == {"amount": "25.50", "currency": "GBP"}
    assert payment["creditor"]["account"] == {"scheme": "uk_sort_code", "sort_code": "040004",
                                              "account_number": "12345678", "iban": None, "bic": None,
                                              "wallet_id": None, "secondary_identification": None}
    assert payment["consent_ref"] in sandbox.payment_consents and payment["provider_ref"] is None
    assert payment["authorisation_url"].startswith(sandbox.issuer + "/authorize?")
    assert _statuses(payment) == ["awaiting_authorisation"]
    upstream = sandbox.payment_consents[payment["consent_ref"]]
    assert upstream.initiation["InstructedAmount"] == {"Amount": "25.50", "Currency": "GBP"}
    assert upstream.initiation["RemittanceInformation"]["Reference"] == "INV2026001"

    sandbox.payment_timeline = (0.3, 0.6)  # each status lasts long enough for the worker to see it when loaded
    resp = await complete(gateway, payment["id"], await payer_decides(payment["authorisation_url"]))
    submitted = await resp.json()
    assert resp.status == 200, submitted
    assert submitted["status"] == "submitted" and submitted["upstream_status"] == "Pending"
    assert submitted["provider_ref"] in sandbox.payments
    assert sandbox.payment_consents[payment["consent_ref"]].status == "Consumed"

    done = await wait_for(gateway, payment["id"], {"completed"})  # the reconciliation worker gets it there
    assert done["upstream_status"] == "AcceptedSettlementCompleted"
    assert _statuses(done) == ["awaiting_authorisation", "authorised", "submitted", "pending", "completed"]
    history = done["history"]
    assert [h["previous"] for h in history] == [None, "awaiting_authorisation", "authorised", "submitted", "pending"]
    assert [h["upstream_status"] for h in history[2:]] == ["Pending", "AcceptedSettlementInProcess",
                                                           "AcceptedSettlementCompleted"]
    assert all(a["at"] <= b["at"] for a, b in zip(history, history[1:]))
    # completing again is harmless: the payment as it stands, nothing sent
    sandbox.calls.clear()
    again = await complete(gateway, payment["id"], "state=whatever")
    assert again.status == 200 and (await again.json())["status"] == "completed"
    assert not [c for c in sandbox.calls.matching() if c.method == "POST"]
    listing = await (await gateway.get("/v1/payments", headers=DEV)).json()
    assert [p["id"] for p in listing["data"]] == [payment["id"]]
    metrics = await (await gateway.get("/metrics")).text()
    for status in ("awaiting_authorisation", "authorised", "submitted", "pending", "completed"):
        assert f'gateway_payment_transitions_total{{provider="stripe-uk",status="{status}"}} 1.0' in metrics
    assert 'gateway_idempotency_keys_total{outcome="claimed"} 1.0' in metrics


async def test_funds_confirmation_then_submit(gateway):
    sandbox = sandbox_of(gateway, UK)
    payment = await authorised(gateway)
    resp = await gateway.get(f"/v1/payments/{payment['id']}/funds-confirmation", headers=DEV)
    funds = await resp.json()
    assert resp.status == 200 and funds["funds_available"] is True and funds["payment_id"] == payment["id"], funds
    assert not sandbox.payments  # confirming funds submits nothing
    resp = await gateway.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    assert resp.status == 200 and (await resp.json())["status"] == "submitted"
    # after submission funds cannot be confirmed any more (the consent is consumed)
    resp = await gateway.get(f"/v1/payments/{payment['id']}/funds-confirmation", headers=DEV)
    assert resp.status == 409


async def test_funds_not_available_and_the_bank_rejects_the_payment(gateway):
    payment = await authorised(gateway, order(amount={"amount": "9999999.00", "currency": "GBP"}))
    funds = await (await gateway.get(f"/v1/payments/{payment['id']}/funds-confirmation", headers=DEV)).json()
    assert funds["funds_available"] is False
    await gateway.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    rejected = await wait_for(gateway, payment["id"], {"rejected"})
    assert _statuses(rejected)[-1] == "rejected" and rejected["upstream_status"] == "Rejected"
    resp = await gateway.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    assert resp.status == 409  # final


async def test_payer_refuses_at_the_bank(gateway):
    payment = await create(gateway)
    redirect = await payer_decides(payment["authorisation_url"], outcome="reject")
    resp = await complete(gateway, payment["id"], redirect)
    body = await resp.json()
    # Refused, by the payer's return or (when the reconciler read the bank first) by the bank's own status.
    assert resp.status == 200 and body["status"] == "rejected" and body["status_reason"], body
    assert sandbox_of(gateway, UK).payments == {}


async def test_a_refusal_the_gateway_already_learned_from_the_bank_completes_as_rejected(gateway):
    payment = await create(gateway)
    redirect = await payer_decides(payment["authorisation_url"], outcome="reject")
    seen = await (await gateway.get(f"/v1/payments/{payment['id']}", params={"refresh": "true"}, headers=DEV)).json()
    assert seen["status"] == "rejected", seen  # read from the bank before the payer's browser came back
    resp = await complete(gateway, payment["id"], redirect)
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "rejected" and body["history"] == seen["history"], body
    approved = await create(gateway, key="another")
    await payer_decides(approved["authorisation_url"], outcome="reject")
    await gateway.get(f"/v1/payments/{approved['id']}", params={"refresh": "true"}, headers=DEV)
    forged_success = "https://app.example.com/callback?code=abc&state=x"
    resp = await complete(gateway, approved["id"], forged_success)
    assert resp.status in (409, 422), await resp.text()  # a rejected payment is never completed by a code


async def test_forged_redirect_is_refused_and_changes_nothing(gateway):
    payment = await create(gateway)
    redirect = await payer_decides(payment["authorisation_url"])
    forged = redirect.replace("state=", "state=x")
    resp = await complete(gateway, payment["id"], forged)
    assert resp.status == 422
    current = await (await gateway.get(f"/v1/payments/{payment['id']}", headers=DEV)).json()
    assert current["status"] == "awaiting_authorisation"
    assert sandbox_of(gateway, UK).payments == {}


@pytest.mark.parametrize("change, field", [
    ({"amount": {"amount": "10.001", "currency": "GBP"}}, "amount.amount"),
    ({"amount": {"amount": "0.00", "currency": "GBP"}}, "amount.amount"),
    ({"amount": {"amount": 10.5, "currency": "GBP"}}, "amount.amount"),
    ({"amount": {"amount": "10.00", "currency": "EUR"}}, "amount.currency"),
    ({"type": "sepa"}, "type"),
    ({"reference": "AB-12"}, "reference"),
    ({"reference": "AAAAAAAA"}, "reference"),
    ({"reference": "X" * 36}, "reference"),
    ({"creditor": {"name": "Acme", "account": {"scheme": "iban", "iban": "GB82WEST12345698765432"}}},
     "creditor.account.scheme"),
    ({"creditor": {"name": "Acme", "account": {"scheme": "wallet", "wallet_id": "wallet_123"}}},
     "creditor.account.wallet_id"),
    ({"creditor": {"name": "Acme", "account": {"scheme": "uk_sort_code", "sort_code": "0400",
                                               "account_number": "12345678"}}}, "creditor.account.sort_code"),
    ({"redirect_uri": "https://evil.example.com/cb"}, "redirect_uri"),
    ({"unexpected": True}, "$"),
])
async def test_bad_orders_are_refused_before_any_upstream_call(gateway, change, field):
    sandbox = sandbox_of(gateway, UK)
    sandbox.calls.clear()
    resp = await gateway.post("/v1/payments", json=order(**change), headers=keyed("same-key-for-all"))
    problem = await resp.json()
    assert resp.status == 422, problem
    assert field in [e["field"] for e in problem["errors"]], problem
    assert not sandbox.calls.matching()
    assert count_rows(gateway, "payments") == 0 and count_rows(gateway, "idempotency_keys") == 0


async def test_idempotency_key_is_required_and_checked(gateway):
    resp = await gateway.post("/v1/payments", json=order(), headers=DEV)
    problem = await resp.json()
    assert resp.status == 422 and problem["errors"][0] == {
        "location": "header", "field": "Idempotency-Key",
        "message": "required: a unique key per payment, reused only to retry it"}
    resp = await gateway.post("/v1/payments", json=order(), headers=keyed("k" * 256))
    assert resp.status == 422
    assert count_rows(gateway, "payments") == 0


async def test_scope_and_tenants(gateway):
    resp = await gateway.post("/v1/payments", json=order(), headers=keyed(headers=READONLY))
    assert resp.status == 403
    payment = await create(gateway)
    for path in (f"/v1/payments/{payment['id']}", f"/v1/payments/{payment['id']}/funds-confirmation"):
        assert (await gateway.get(path, headers=OTHER)).status == 404
    resp = await complete(gateway, payment["id"], "state=x", headers=OTHER)
    assert resp.status == 404
    assert (await (await gateway.get("/v1/payments", headers=OTHER)).json())["data"] == []
    # the same Idempotency-Key in another tenant is another request
    again = await create(gateway, key="shared-key-1")
    other = await create(gateway, key="shared-key-1", headers=OTHER)
    assert again["id"] != other["id"]


async def test_licence_without_pisp_refuses_payments(aiohttp_client, make_config):
    client = await serve(aiohttp_client, make_config({**FAST, "licence": {"roles": ["AISP"]}}))
    sandbox = sandbox_of(client, UK)
    sandbox.calls.clear()
    resp = await client.post("/v1/payments", json=order(), headers=keyed())
    problem = await resp.json()
    assert resp.status == 403 and problem["code"] == "licence_not_permitted" and "PISP" in problem["detail"]
    assert not sandbox.calls.matching() and count_rows(client, "idempotency_keys") == 0


async def test_licence_for_other_countries_refuses_payments(aiohttp_client, make_config):
    client = await serve(aiohttp_client, make_config({**FAST, "licence": {"roles": ["AISP", "PISP"],
                                                                          "countries": ["PL", "DE"]}}))
    resp = await client.post("/v1/payments", json=order(), headers=keyed())
    problem = await resp.json()
    assert resp.status == 403 and problem["code"] == "licence_not_permitted" and "GB" in problem["detail"]


async def test_requests_are_signed_and_tampered_answers_refused(gateway):
    sandbox = sandbox_of(gateway, UK)
    payment = await authorised(gateway)
    posts = [c for c in sandbox.calls.matching() if c.method == "POST" and "/pisp/" in c.path]
    assert posts and all(c.headers.get("x-jws-signature", "").count("..") == 1 for c in posts)
    assert all(len(c.headers.get("x-idempotency-key", "")) == 40 for c in posts)
    sandbox.tamper_response_signatures = True
    resp = await gateway.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    body = await resp.json()
    # the bank acted, but its answer cannot be trusted: the outcome is unknown until the bank is asked again
    assert resp.status == 202 and body["status"] == "unknown", body
    assert len(sandbox.payments) == 1
    sandbox.tamper_response_signatures = False
    settled = await wait_for(gateway, payment["id"], {"completed"})
    assert settled["provider_ref"] in sandbox.payments and len(sandbox.payments) == 1
    assert "unknown" in _statuses(settled)


async def test_refresh_asks_the_bank_now(aiohttp_client, make_config):
    client = await serve(aiohttp_client, make_config({**FAST, "payments": {"reconcile": False}}))
    payment = await authorised(client)
    await client.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    stored = await (await client.get(f"/v1/payments/{payment['id']}", headers=DEV)).json()
    assert stored["status"] == "submitted"
    done = await wait_for(client, payment["id"], {"completed"}, refresh=True)
    assert done["upstream_status"] == "AcceptedSettlementCompleted"


async def test_payments_records_are_tagged_live_when_the_provider_moves_real_money(aiohttp_client, make_config):
    client = await serve(aiohttp_client, make_config({**FAST, "adapters": {UK: {
        "sandbox_payment_timeline": [0.05, 0.15], "live": True}}}))
    payment = await create(client)
    assert payment["live"] is True
    row = state_of(client).store.db.execute("SELECT live FROM payments WHERE id = ?", (payment["id"],)).fetchone()
    assert row == (1,)


async def test_a_whole_amount_reaches_the_bank_in_its_currency_format(gateway):
    payment = await create(gateway, order(amount={"amount": "10", "currency": "GBP"}))
    assert payment["amount"] == {"amount": "10.00", "currency": "GBP"}  # in the currency's minor units
    upstream = sandbox_of(gateway, UK).payment_consents[payment["consent_ref"]]
    assert upstream.initiation["InstructedAmount"] == {"Amount": "10.00", "Currency": "GBP"}


async def test_approval_seen_by_the_worker_waits_for_the_redirect_result(gateway):
    """The worker sees the bank's consent Authorised before the caller brings the redirect result back: the payment
    stays awaiting authorisation (the gateway has no payer token to submit with yet), then completes normally."""
    sandbox = sandbox_of(gateway, UK)
    payment = await create(gateway)
    redirect = await payer_decides(payment["authorisation_url"])
    for _ in range(100):
        current = await (await gateway.get(f"/v1/payments/{payment['id']}", headers=DEV)).json()
        if current["upstream_status"] == "Authorised":
            break
        await asyncio.sleep(0.02)
    assert current["status"] == "awaiting_authorisation" and current["upstream_status"] == "Authorised", current
    resp = await complete(gateway, payment["id"], redirect)
    assert resp.status == 200 and (await resp.json())["status"] == "submitted"
    assert len(sandbox.payments) == 1


async def test_every_problem_with_an_order_is_named_at_once(gateway):
    resp = await gateway.post("/v1/payments", headers=keyed(), json=order(
        amount={"amount": "10.00", "currency": "EUR"}, reference="AB", redirect_uri="https://evil.example.com/cb"))
    problem = await resp.json()
    assert resp.status == 422
    assert {e["field"] for e in problem["errors"]} == {"amount.currency", "reference", "redirect_uri"}


async def test_malformed_end_user_hints_are_dropped_not_passed_to_the_bank(gateway):
    sandbox = sandbox_of(gateway, UK)
    payment = await authorised(gateway)
    sandbox.calls.clear()
    resp = await gateway.get(f"/v1/payments/{payment['id']}/funds-confirmation", headers={
        **DEV, "X-End-User-Auth-Date": "yesterday", "X-End-User-IP": "not-an-ip"})
    assert resp.status == 200
    sent = [c.headers for c in sandbox.calls.matching() if "funds-confirmation" in c.path]
    assert sent and "x-fapi-auth-date" not in sent[0] and "x-fapi-customer-ip-address" not in sent[0]
    resp = await gateway.get(f"/v1/payments/{payment['id']}/funds-confirmation", headers={
        **DEV, "X-End-User-Auth-Date": "Tue, 03 Feb 2026 10:15:00 GMT", "X-End-User-IP": "203.0.113.9"})
    assert resp.status == 200
    sent = [c.headers for c in sandbox.calls.matching() if "funds-confirmation" in c.path]
    assert sent[-1]["x-fapi-auth-date"] == "Tue, 03 Feb 2026 10:15:00 GMT"
    assert sent[-1]["x-fapi-customer-ip-address"] == "203.0.113.9"


async def test_creditor_address_is_carried_and_stripe_refuses_an_institution(gateway):
    address = {"country": "GB", "lines": ["1 Market Street"], "city": "Leeds", "postal_code": "LS1 6DT"}
    body = order(creditor={**order()["creditor"], "address": address})
    payment = await create(gateway, body)
    assert payment["creditor"]["address"] == {"lines": ["1 Market Street"], "city": "Leeds", "region": None,
                                              "postal_code": "LS1 6DT", "country": "GB"}
    upstream = sandbox_of(gateway, UK).payment_consents[payment["consent_ref"]]
    assert upstream.initiation["CreditorPostalAddress"] == {"Country": "GB", "AddressLine": ["1 Market Street"],
                                                            "TownName": "Leeds", "PostCode": "LS1 6DT"}
    resp = await gateway.post("/v1/payments", json=order(institution_id="some-bank"), headers=keyed())
    problem = await resp.json()
    assert resp.status == 422 and [e["field"] for e in problem["errors"]] == ["institution_id"]
