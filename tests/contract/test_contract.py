"""The contract suite: every canonical scenario against every adapter that declares the capability.

An adapter that does not declare an operation must answer 501 `unsupported_operation` without calling upstream;
every response is checked against the OpenAPI contract.
"""
from __future__ import annotations

import asyncio
import secrets
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from adapters.base import OPERATIONS, PROVIDERS, implemented_operations, load_adapter_class
from tests.conftest import DEV, sandbox_of
from tests.contract.kits import KITS, ProviderKit
from tests.openapi_check import validate_response

pytestmark = pytest.mark.parametrize("provider", sorted(PROVIDERS))


class Api:
    """Calls the gateway and checks every answer against the OpenAPI document."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def call(self, method: str, path: str, expect: int, *, headers: dict[str, str] | None = None,
                   **kwargs: Any) -> Any:
        resp = await self.client.request(method, path, headers={**DEV, **(headers or {})}, **kwargs)
        body = await resp.json()
        assert resp.status == expect, (method, path, resp.status, body)
        validate_response(method, path, resp.status, body, resp.content_type)
        return body


def _kit(provider: str) -> ProviderKit:
    if provider not in KITS:
        pytest.fail(f"no contract kit for {provider}: add one to tests/contract/kits.py")
    return KITS[provider]


def _caps(provider: str) -> frozenset[str]:
    return load_adapter_class(provider).capabilities


async def _authorised(api: Api, kit: ProviderKit) -> dict[str, Any]:
    """An authorised consent; its `customer_id` names the customer when the provider has customers."""
    body: dict[str, Any] = {"redirect_uri": "https://app.example.com/cb", **kit.consent}
    if kit.customer is not None:
        customer = await api.call("POST", "/v1/customers", 201, json={
            "provider": kit.provider, "external_ref": f"contract{secrets.token_hex(4)}", **kit.customer})
        assert customer["id"].startswith("cus_") and customer["provider"] == kit.provider
        assert (await api.call("GET", f"/v1/customers/{customer['id']}", 200)) == customer
        body["customer_id"] = customer["id"]
    else:
        body["provider"] = kit.provider
    consent = await api.call("POST", "/v1/consents", 201, json=body)
    assert consent["status"] == "awaiting_authorisation" and consent["authorisation_url"]
    async with aiohttp.ClientSession() as session:
        async with session.post(consent["authorisation_url"], json=kit.end_user or None, ssl=False) as resp:
            assert resp.status == 200
            redirect = (await resp.json())["redirect_to"]
    done = await api.call("POST", f"/v1/consents/{consent['id']}/complete", 200, json={"redirect_result": redirect})
    assert done["status"] == "authorised" and done["authorised_at"]
    # completing twice is harmless
    assert (await api.call("POST", f"/v1/consents/{consent['id']}/complete", 200,
                           json={"redirect_result": redirect}))["status"] == "authorised"
    return done


async def _events_about(api: Api, kind: str, subject_id: str) -> list[dict[str, Any]]:
    """The tenant's canonical events about one consent, payment or report, oldest first."""
    events = (await api.call("GET", "/v1/events?limit=200", 200))["data"]
    return [e for e in events if (e["data"].get(kind) or {}).get("id") == subject_id]


def test_declared_capabilities_are_implemented(provider: str) -> None:
    cls = load_adapter_class(provider)
    assert cls.capabilities == implemented_operations(cls)
    assert cls.capabilities <= set(OPERATIONS)


async def test_provider_listed_with_capabilities(gateway, provider: str) -> None:  # type: ignore[no-untyped-def]
    listing = await Api(gateway).call("GET", "/v1/providers", 200)
    entry = next(p for p in listing["data"] if p["id"] == provider)
    assert set(entry["capabilities"]) == _caps(provider)
    assert entry["health"]["circuit"] in ("closed", "half_open", "open")


async def test_account_information_scenario(gateway, provider: str) -> None:  # type: ignore[no-untyped-def]
    caps = _caps(provider)
    if not {"create_consent", "complete_consent", "list_accounts"} <= caps:
        pytest.skip(f"{provider} has no account-information consents")
    api, kit = Api(gateway), _kit(provider)
    consent = await _authorised(api, kit)
    assert (await api.call("GET", f"/v1/consents/{consent['id']}", 200))["id"] == consent["id"]
    # the authorisation is an event, once, however many ways it was learned (redirect result, webhooks)
    authorised = [e for e in await _events_about(api, "consent", consent["id"]) if e["type"] == "consent.authorised"]
    assert len(authorised) == 1 and authorised[0]["data"]["consent"]["status"] == "authorised"
    accounts = (await api.call("GET", f"/v1/accounts?consent_id={consent['id']}", 200))["data"]
    assert accounts and all(a["id"].startswith("acc_") and a["consent_id"] == consent["id"] for a in accounts)
    again = (await api.call("GET", f"/v1/accounts?consent_id={consent['id']}", 200))["data"]
    assert [a["id"] for a in again] == [a["id"] for a in accounts]  # ids are stable across calls
    account = accounts[0]
    assert await api.call("GET", f"/v1/accounts/{account['id']}", 200) == account

    if "get_balances" in caps:
        balances = (await api.call("GET", f"/v1/accounts/{account['id']}/balances", 200))["data"]
        assert balances and all(Decimal(b["amount"]["amount"]).is_finite() for b in balances)
    if "get_live_balances" in caps:
        live = (await api.call("GET", f"/v1/accounts/{account['id']}/balances?live=true", 200))["data"]
        assert live and all(b["live"] for b in live)
    if "list_transactions" in caps:
        start = (date.today() - timedelta(days=365)).isoformat()
        first = await api.call("GET", f"/v1/accounts/{account['id']}/transactions?from={start}&limit=3", 200)
        assert len(first["data"]) <= 3
        if first["next_cursor"]:
            second = await api.call("GET", f"/v1/accounts/{account['id']}/transactions?from={start}&limit=3"
                                           f"&cursor={first['next_cursor']}", 200)
            assert not {t["id"] for t in first["data"]} & {t["id"] for t in second["data"]}
    if "get_account_details" in caps:
        details = await api.call("GET", f"/v1/accounts/{account['id']}/details", 200)
        assert details["account_id"] == account["id"]
        assert {c["scheme"] for c in details["coordinates"]} >= {kit.payment_scheme}
    if "get_account_owner" in caps:
        owner = await api.call("GET", f"/v1/accounts/{account['id']}/owner", 200)
        assert owner["names"]
    if "revoke_consent" in caps:
        revoked = await api.call("POST", f"/v1/consents/{consent['id']}/revoke", 200)
        assert revoked["status"] == "revoked"
        assert (await _events_about(api, "consent", consent["id"]))[-1]["type"] == "consent.revoked"
        await api.call("GET", f"/v1/accounts/{account['id']}", 404)
        await api.call("GET", f"/v1/accounts?consent_id={consent['id']}", 403)


async def test_report_scenario(gateway, provider: str) -> None:  # type: ignore[no-untyped-def]
    caps = _caps(provider)
    if not {"create_consumer", "create_report", "get_report", "get_report_content"} <= caps:
        pytest.skip(f"{provider} has no reports")
    api, kit = Api(gateway), _kit(provider)
    consent = await _authorised(api, kit)
    customer_id = consent["customer_id"]
    customer = await api.call("POST", f"/v1/customers/{customer_id}/consumer", 201, json=kit.consumer)
    assert customer["consumer_ref"]
    await api.call("POST", f"/v1/customers/{customer_id}/consumer", 409, json=kit.consumer)
    for report_type in kit.report_types:
        report = await api.call("POST", "/v1/reports", 202, json={"customer_id": customer_id, "type": report_type})
        assert report["id"].startswith("rep_") and report["status"] in ("pending", "ready")
        for _ in range(200):
            report = await api.call("GET", f"/v1/reports/{report['id']}", 200)
            if report["status"] != "pending":
                break
            await asyncio.sleep(0.02)
        assert report["status"] == "ready", report
        completed = await _events_about(api, "report", report["id"])
        assert [e["type"] for e in completed] == ["report.completed"]
        resp = await gateway.get(f"/v1/reports/{report['id']}/content", headers=DEV)
        assert resp.status == 200 and resp.content_type == "application/json"
    listing = await api.call("GET", f"/v1/reports?customer_id={customer_id}", 200)
    assert len(listing["data"]) == len(kit.report_types)
    if "revoke_consent" in caps:
        await api.call("POST", f"/v1/consents/{consent['id']}/revoke", 200)
        listing = await api.call("GET", f"/v1/reports?customer_id={customer_id}", 200)
        assert listing["data"] == []  # derived from the consent's data: gone with it


async def test_cdr_consent_management_scenario(gateway, provider: str) -> None:  # type: ignore[no-untyped-def]
    caps = _caps(provider)
    if not {"revoke_institution_login", "consent_dashboard"} <= caps:
        pytest.skip(f"{provider} has no per-institution consent management")
    api, kit = Api(gateway), _kit(provider)
    consent = await _authorised(api, kit)
    assert consent["terms"] and consent["terms"]["institutions"]
    dashboard = await api.call("POST", f"/v1/customers/{consent['customer_id']}/consent-dashboard", 201, json={})
    assert dashboard["url"]
    accounts = (await api.call("GET", f"/v1/accounts?consent_id={consent['id']}", 200))["data"]
    login = consent["terms"]["institutions"][0]["login_ref"]
    after = await api.call("POST", f"/v1/consents/{consent['id']}/institution-logins/{login}/revoke", 200)
    assert after["status"] in ("revoked", "authorised")
    await api.call("GET", f"/v1/accounts/{accounts[0]['id']}", 404)


async def test_client_registration_scenario(gateway, provider: str) -> None:  # type: ignore[no-untyped-def]
    if "register_client" not in _caps(provider):
        pytest.skip(f"{provider} has no client registration")
    api = Api(gateway)
    first = await api.call("POST", f"/v1/providers/{provider}/registration", 200)  # registered at start: kept
    assert first["outcome"] == "kept" and first["registration"]["client_id"]
    read = await api.call("GET", f"/v1/providers/{provider}/registration", 200)
    assert read["registration"]["client_id"] == first["registration"]["client_id"]
    resp = await gateway.delete(f"/v1/providers/{provider}/registration", headers=DEV)
    assert resp.status == 204
    await api.call("GET", f"/v1/providers/{provider}/registration", 404)
    again = await api.call("POST", f"/v1/providers/{provider}/registration", 201)
    assert again["outcome"] == "created" and again["registration"]["client_id"] != first["registration"]["client_id"]
    # the new client works: a consent can be created and authorised under it
    await _authorised(api, _kit(provider))


PAYMENT_OPERATIONS = {"create_payment", "authorise_payment", "submit_payment", "get_payment"}


async def test_payment_scenario(gateway, provider: str) -> None:  # type: ignore[no-untyped-def]
    caps = _caps(provider)
    if not PAYMENT_OPERATIONS <= caps:
        pytest.skip(f"{provider} initiates no payments")
    api, kit = Api(gateway), _kit(provider)
    assert kit.payment is not None, f"the {provider} kit needs a payment order"
    key = {"Idempotency-Key": f"contract-{secrets.token_hex(6)}"}
    order = {"provider": provider, **kit.payment}
    payment = await api.call("POST", "/v1/payments", 201, json=order, headers=key)
    assert payment["id"].startswith("pay_") and payment["status"] == "awaiting_authorisation"
    assert payment["authorisation_url"] and payment["consent_ref"]
    assert payment["amount"] == kit.payment["amount"]
    assert await api.call("POST", "/v1/payments", 201, json=order, headers=key) == payment  # the same answer
    problem = await api.call("POST", "/v1/payments", 422, headers=key,
                             json={**order, "reference": kit.payment["reference"] + "X"})
    assert problem["code"] == "idempotency_key_reused"
    async with aiohttp.ClientSession() as session:
        async with session.post(payment["authorisation_url"], json=kit.end_user or None, ssl=False) as resp:
            assert resp.status == 200
            redirect = (await resp.json())["redirect_to"]
    path = f"/v1/payments/{payment['id']}"
    if "confirm_funds" in caps:
        authorised = await api.call("POST", f"{path}/complete", 200,
                                    json={"redirect_result": redirect, "submit": False})
        assert authorised["status"] == "authorised"
        funds = await api.call("GET", f"{path}/funds-confirmation", 200)
        assert funds["funds_available"] is True
        submitted = await api.call("POST", f"{path}/submit", 200)
    else:
        submitted = await api.call("POST", f"{path}/complete", 200, json={"redirect_result": redirect})
    assert submitted["status"] in ("submitted", "pending", "completed") and submitted["provider_ref"]
    for _ in range(500):
        current = await api.call("GET", f"{path}?refresh=true", 200)
        if current["status"] == "completed":
            break
        await asyncio.sleep(0.02)
    assert current["status"] == "completed", current
    history = [h["status"] for h in current["history"]]
    assert history[0] == "awaiting_authorisation" and history[-1] == "completed"
    # every transition after creation is a payment.status_changed event, in order, written with it
    moves = await _events_about(api, "payment", payment["id"])
    assert {e["type"] for e in moves} == {"payment.status_changed"}
    assert [e["data"]["payment"]["status"] for e in moves] == history[1:]
    assert [e["data"]["previous_status"] for e in moves] == history[:-1]
    assert history.index("authorised") < history.index("completed")
    listing = await api.call("GET", "/v1/payments", 200)
    assert payment["id"] in [p["id"] for p in listing["data"]]
    # a final payment cannot be resubmitted into a second payment
    assert (await api.call("POST", f"{path}/submit", 200))["provider_ref"] == submitted["provider_ref"]


async def test_institutions(gateway, provider: str) -> None:  # type: ignore[no-untyped-def]
    if "list_institutions" not in _caps(provider):
        pytest.skip(f"{provider} does not list institutions")
    page = await Api(gateway).call("GET", f"/v1/institutions?provider={provider}&limit=2", 200)
    assert page["data"] and all(i["provider"] == provider for i in page["data"])
    if page["next_cursor"]:
        await Api(gateway).call("GET", f"/v1/institutions?provider={provider}&limit=2&cursor={page['next_cursor']}", 200)


async def test_undeclared_operations_answer_501_without_upstream_call(gateway, provider: str) -> None:  # type: ignore[no-untyped-def]
    caps = _caps(provider)
    missing = set(OPERATIONS) - caps
    if not missing:
        pytest.skip(f"{provider} declares every operation")
    api, kit = Api(gateway), _kit(provider)
    account_id = consent_id = None
    if {"create_consent", "complete_consent", "list_accounts"} <= caps:
        consent = await _authorised(api, kit)
        consent_id = consent["id"]
        account_id = (await api.call("GET", f"/v1/accounts?consent_id={consent_id}", 200))["data"][0]["id"]
    calls: list[tuple[str, str, str, dict[str, Any] | None]] = []
    if "list_institutions" in missing:
        calls.append(("list_institutions", "GET", f"/v1/institutions?provider={provider}", None))
    if "create_customer" in missing:
        calls.append(("create_customer", "POST", "/v1/customers",
                      {"provider": provider, "external_ref": "nobody_here1"}))
    if account_id is not None:
        for op, path in (("get_balances", "/balances"), ("get_live_balances", "/balances?live=true"),
                         ("list_transactions", "/transactions"), ("get_account_owner", "/owner"),
                         ("get_account_details", "/details")):
            if op in missing:
                calls.append((op, "GET", f"/v1/accounts/{account_id}{path}", None))
    if consent_id is not None and "revoke_consent" in missing:
        calls.append(("revoke_consent", "POST", f"/v1/consents/{consent_id}/revoke", None))
    if consent_id is not None and "revoke_institution_login" in missing:
        calls.append(("revoke_institution_login", "POST",
                      f"/v1/consents/{consent_id}/institution-logins/1/revoke", None))
    customer_id = consent["customer_id"] if consent_id is not None else None
    if customer_id is not None:
        if "consent_dashboard" in missing:
            calls.append(("consent_dashboard", "POST", f"/v1/customers/{customer_id}/consent-dashboard", {}))
        if "create_consumer" in missing:
            calls.append(("create_consumer", "POST", f"/v1/customers/{customer_id}/consumer",
                          {"first_name": "Ann", "last_name": "Lee"}))
        if "create_report" in missing:
            calls.append(("create_report", "POST", "/v1/reports", {"customer_id": customer_id, "type": "voa"}))
    if "register_client" in missing:
        calls.append(("register_client", "POST", f"/v1/providers/{provider}/registration", None))
    if "create_payment" in missing:
        calls.append(("create_payment", "POST", "/v1/payments", {
            "provider": provider, "type": "domestic", "amount": {"amount": "1.00", "currency": "USD"},
            "creditor": {"name": "Nobody", "account": {"scheme": "iban", "iban": "DE89370400440532013000"}},
            "reference": "NOBODY01", "redirect_uri": "https://app.example.com/cb"}))
    if "register_application" in missing:
        calls.append(("register_application", "POST", "/v1/applications",
                      {"provider": provider, "access_model": "CDR_REPRESENTATIVE", "name": "App"}))
    assert calls, f"no way to reach {sorted(missing)} through the API"
    # get_report, get_report_content, get_application and list_application_institutions act on records that
    # only create_report / register_application make, and the other payment operations on payments that only
    # create_payment makes, so refusing those refuses them.
    sandbox = sandbox_of(gateway, provider)
    sandbox.calls.clear()
    for op, method, path, body in calls:
        headers = {"Idempotency-Key": f"undeclared-{op}"} if op == "create_payment" else None
        problem = await api.call(method, path, 501, json=body, headers=headers)
        assert problem["code"] == "unsupported_operation" and provider in problem["detail"], (op, problem)
    assert not sandbox.calls.matching(), [c.path for c in sandbox.calls.matching()]
