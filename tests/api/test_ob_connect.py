"""ob-connect (Mastercard Open Banking Connect, an EU/UK hub in front of many banks) through the canonical API,
against its simulated hub over real HTTP: the hub's banks (cached), account information at the German and the UK
bank end to end, what every request carries (requestInfo, OAuth 1.0a with a body hash), the licence check by role
and by the bank's country, the hub refusing the gateway's signature, and domestic, SEPA and cross-border payments
through the canonical payments core (the ISO 20022 statuses, refusals, idempotency, the live environment).

The banks' ids are the fixed ones of adapters/ob_connect/UPSTREAM.md; the simulated end user's accounts and history
are read from the simulator's data (`sandbox.data`) to know what the gateway must answer."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp import web

from adapters.ob_connect.sandbox import ObConnectSandbox
from adapters.ob_connect.settings import LOCAL_PASSWORD, load_material
from gateway.models.time import utcnow
from tests.conftest import DEV, count_rows, sandbox_of, serve, state_of
from tests.flows import play_end_user
from tests.payments_flow import complete, keyed, payer_decides, wait_for

OBC = "ob-connect"
REDIRECT = "https://app.example.com/callback"
# The hub's banks (UPSTREAM.md): fixed ids.
ALBION = "c058ee30-0239-5401-a3a7-6f0aec2ea477"  # GB: AIS, PIS domestic + cross-border
RHEINUFER = "2d5a7e23-1711-5059-8e3c-3a4471941b8c"  # DE: AIS, PIS sepa + cross-border
WISLA = "7ed56ade-eaf3-5460-b1dc-77bf9a7c6a13"  # PL: AIS, PIS domestic only
POLDER = "402f12c6-97b0-5f55-8e5c-4ef3ab61557d"  # NL: AIS only
LENTO = "9edacef9-2104-543a-af67-0d3188cad2db"  # ES: slow
LIFFEY = "86b156a1-4710-5d84-857e-63c224d2c99a"  # IE: every payment ends RJCT
BANKS = {ALBION: ("Albion Savings Bank", "GB"), RHEINUFER: ("Rheinufer Bank", "DE"),
         WISLA: ("Bank Wiślany", "PL"), POLDER: ("Polder Data Bank", "NL"), LENTO: ("Banco Lento", "ES"),
         LIFFEY: ("Liffey Credit Union", "IE")}
EVERY_PERMISSION = ["accounts", "balances", "transactions", "details", "owner", "standing_orders"]
TIMELINE = [0.15, 0.3, 0.45]  # RCVD → ACTC at 0.15 s → ACSP at 0.3 s → ACSC at 0.45 s: each seen by a poll

FAST = {"adapters": {OBC: {"sandbox_payment_timeline": TIMELINE}},
        "payments": {"reconcile_tick_seconds": 0.02, "reconcile_backoff_base_seconds": 0.02,
                     "reconcile_backoff_max_seconds": 0.1}}


@pytest.fixture
def gateway_config(make_config):  # type: ignore[no-untyped-def]
    return make_config(FAST)


# --- helpers --------------------------------------------------------------------------------------------------------
def hub_posts(sandbox: Any, path_regex: str) -> list[Any]:
    """The POSTs the hub received whose path matches."""
    return sandbox.calls.matching("POST", path_regex)


def operation_calls(sandbox: Any) -> list[str]:
    """Every hub call but the (cached) list of banks: the calls an operation makes."""
    return [c.path for c in sandbox.calls.matching() if not c.path.endswith("/aspsps")]


async def start_consent(client: Any, bank: str, *, headers: dict[str, str] = DEV, **extra: Any) -> dict[str, Any]:
    resp = await client.post("/v1/consents", json={"provider": OBC, "redirect_uri": REDIRECT, "institution_id": bank,
                                                   **extra}, headers=headers)
    body = await resp.json()
    assert resp.status == 201, body
    return body


async def authorised_consent(client: Any, bank: str, **extra: Any) -> dict[str, Any]:
    consent = await start_consent(client, bank, **extra)
    redirect = await play_end_user(consent["authorisation_url"], outcome="approve")
    resp = await client.post(f"/v1/consents/{consent['id']}/complete", json={"redirect_result": redirect},
                             headers=DEV)
    done = await resp.json()
    assert resp.status == 200 and done["status"] == "authorised", done
    return done


async def get(client: Any, path: str, expect: int = 200, **params: Any) -> Any:
    resp = await client.get(path, params=params or None, headers=DEV)
    body = await resp.json()
    assert resp.status == expect, (path, body)
    return body


def oauth_params(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    assert scheme == "OAuth", header
    return dict(re.findall(r'([a-z_]+)="([^"]*)"', rest))


def sepa_order(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "provider": OBC, "type": "sepa", "institution_id": RHEINUFER,
        "amount": {"amount": "99.99", "currency": "EUR"}, "debtor_name": "Alex Morgan",
        "creditor": {"name": "Max Lieferant GmbH",
                     "account": {"scheme": "iban", "iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
                     "address": {"country": "DE", "lines": ["Hauptstrasse 1"], "city": "Berlin",
                                 "postal_code": "10115"}},
        "reference": "Invoice 2026-042", "redirect_uri": REDIRECT}
    body.update(changes)
    return body


def uk_order(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "provider": OBC, "type": "domestic", "institution_id": ALBION,
        "amount": {"amount": "25.50", "currency": "GBP"},
        "creditor": {"name": "Jane Supplier Ltd",
                     "account": {"scheme": "uk_sort_code", "sort_code": "40-05-15", "account_number": "12345678"}},
        "reference": "INV2026001", "redirect_uri": REDIRECT}
    body.update(changes)
    return body


def pl_order(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "provider": OBC, "type": "domestic", "institution_id": WISLA,
        "amount": {"amount": "120.00", "currency": "PLN"},
        "creditor": {"name": "Jan Kowalski", "account": {"scheme": "iban", "iban": "PL61109010140000071219812874"}},
        "reference": "Faktura 7/2026", "redirect_uri": REDIRECT}
    body.update(changes)
    return body


def cross_border_order(debtor_iban: str | None = None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "provider": OBC, "type": "international", "institution_id": RHEINUFER,
        "amount": {"amount": "310.20", "currency": "GBP"},
        "creditor": {"name": "Thames Imports Ltd",
                     "account": {"scheme": "iban", "iban": "GB29NWBK60161331926819", "bic": "NWBKGB2L"},
                     "address": {"country": "GB", "city": "London"}},
        "debtor_account": {"scheme": "iban", "iban": debtor_iban} if debtor_iban else None,
        "reference": "PO 5531", "redirect_uri": REDIRECT}
    body.update(changes)
    return body


async def create_payment(client: Any, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    resp = await client.post("/v1/payments", json=body, headers=keyed(key))
    payment = await resp.json()
    assert resp.status == 201, payment
    return payment


def statuses(payment: dict[str, Any]) -> list[str]:
    return [h["status"] for h in payment["history"]]


# --- institutions ---------------------------------------------------------------------------------------------------
async def test_institutions_are_the_hubs_banks_with_their_capabilities_and_the_list_is_cached(gateway):
    sandbox = sandbox_of(gateway, OBC)
    [read_at_start] = sandbox.calls.matching()  # the banks are read once when the gateway starts
    assert read_at_start.path.endswith("/accounts/aspsps")
    assert read_at_start.json()["returnAdditionalData"] == ["capabilities"]
    sandbox.calls.clear()
    page = await get(gateway, "/v1/institutions", provider=OBC)
    listed = {i["id"]: i for i in page["data"]}
    assert page["next_cursor"] is None
    assert {k: (v["name"], v["country"]) for k, v in listed.items()} == BANKS
    assert all(i["provider"] == OBC and i["provider_ref"] == i["id"] for i in listed.values())
    assert [i["country"] for i in page["data"]] == sorted(i["country"] for i in page["data"])
    assert set(listed[ALBION]["capabilities"]) == {"ais", "pis_domestic", "pis_international", "standing_orders"}
    assert set(listed[RHEINUFER]["capabilities"]) == {"ais", "pis_sepa", "pis_international", "standing_orders"}
    assert set(listed[WISLA]["capabilities"]) == {"ais", "pis_domestic", "standing_orders"}
    assert set(listed[POLDER]["capabilities"]) == {"ais", "standing_orders"}  # AIS only: no payments
    assert set(listed[LIFFEY]["capabilities"]) == set(listed[LENTO]["capabilities"]) == \
        {"ais", "pis_sepa", "pis_international", "standing_orders"}
    polish = await get(gateway, "/v1/institutions", provider=OBC, country="PL")
    assert [(i["id"], i["country"]) for i in polish["data"]] == [(WISLA, "PL")]
    searched = await get(gateway, "/v1/institutions", provider=OBC, search="bank")
    assert {i["id"] for i in searched["data"]} == {ALBION, RHEINUFER, WISLA, POLDER}
    first = await get(gateway, "/v1/institutions", provider=OBC, limit=4)
    rest = await get(gateway, "/v1/institutions", provider=OBC, limit=4, cursor=first["next_cursor"])
    assert [i["id"] for i in first["data"] + rest["data"]] == [i["id"] for i in page["data"]]
    assert rest["next_cursor"] is None
    assert not sandbox.calls.matching()  # every answer came from the list read at start


async def test_institutions_are_read_again_once_the_cache_expires(aiohttp_client, make_config):
    client = await serve(aiohttp_client, make_config({**FAST, "adapters": {OBC: {
        "sandbox_payment_timeline": TIMELINE, "aspsp_cache_seconds": 0}}}))
    sandbox = sandbox_of(client, OBC)
    sandbox.calls.clear()
    request_ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    for request_id in request_ids:
        resp = await client.get("/v1/institutions", params={"provider": OBC},
                                headers={**DEV, "X-Request-Id": request_id})
        assert resp.status == 200 and len((await resp.json())["data"]) == 6
    reads = hub_posts(sandbox, r"/accounts/aspsps$")
    assert [c.json()["requestInfo"]["xRequestId"] for c in reads] == request_ids  # read for, and named after, us


# --- account information --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bank, scheme", [(RHEINUFER, "iban"), (ALBION, "uk_sort_code")], ids=["DE", "GB"])
async def test_account_information_walkthrough(gateway, bank, scheme):
    sandbox = sandbox_of(gateway, OBC)
    psu = sandbox.data.by_bank[bank]  # the simulated end user's current and savings accounts at this bank
    currency = {RHEINUFER: "EUR", ALBION: "GBP"}[bank]

    consent = await start_consent(gateway, bank, permissions=EVERY_PERMISSION)
    assert consent["status"] == "awaiting_authorisation" and consent["institution_id"] == bank
    hub_consent = sandbox.consents[consent["provider_ref"]]
    assert hub_consent.aspsp_id == bank
    assert set(hub_consent.permissions) == {"accounts", "balances", "transactions", "standingOrders"}
    assert consent["authorisation_url"] == f"{sandbox.origin}/sca/{hub_consent.ticket}"
    async with aiohttp.ClientSession() as session:  # the bank's SCA page, as the end user's browser sees it
        async with session.get(consent["authorisation_url"]) as resp:
            page = await resp.json()
    assert page["kind"] == "ais" and page["aspspId"] == bank and page["aspspName"] == BANKS[bank][0]
    assert [a["resourceId"] for a in page["accounts"]] == [a.resource_id for a in psu]

    redirect = await play_end_user(consent["authorisation_url"], outcome="approve")
    assert redirect.startswith(REDIRECT + "?code=")
    resp = await gateway.post(f"/v1/consents/{consent['id']}/complete", json={"redirect_result": redirect},
                              headers=DEV)
    done = await resp.json()
    assert resp.status == 200 and done["status"] == "authorised", done
    assert done["provider_ref"] == hub_consent.consent_id and hub_consent.status == "valid"
    [exchange] = hub_posts(sandbox, r"/accounts/consents/authorizations$")
    assert exchange.json()["authorization"].startswith("code=")  # the redirect's query string, passed on

    # accounts
    accounts = (await get(gateway, "/v1/accounts", consent_id=consent["id"]))["data"]
    assert [a["provider_ref"] for a in accounts] == [a.resource_id for a in psu]
    assert [a["type"] for a in accounts] == ["checking", "savings"]
    assert all(a["currency"] == currency and a["institution_id"] == bank and a["consent_id"] == consent["id"]
               for a in accounts)
    assert [a["masked_number"] for a in accounts] == ["•••• " + a.number[-4:] for a in psu]
    current, savings = accounts
    assert await get(gateway, f"/v1/accounts/{current['id']}") == current

    # balances: exact decimal strings in the currency's places
    balances = {b["type"]: b for b in (await get(gateway, f"/v1/accounts/{current['id']}/balances"))["data"]}
    booked, available = sandbox.data.balances[psu[0].resource_id]
    assert set(balances) == {"available", "current"}
    for kind, expected in (("current", booked), ("available", available)):
        amount = balances[kind]["amount"]
        assert isinstance(amount["amount"], str) and re.fullmatch(r"-?\d+\.\d{2}", amount["amount"]), amount
        assert Decimal(amount["amount"]) == expected.quantize(Decimal("0.01")) and amount["currency"] == currency

    # transactions: every page through our cursor, to the end
    history = sandbox.data.transactions[psu[0].resource_id]  # newest first
    today = date.today()
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"from": (today - timedelta(days=185)).isoformat(), "to": today.isoformat(),
                              "limit": 25}
    pages = 0
    sandbox.calls.clear()
    while True:
        body = await get(gateway, f"/v1/accounts/{current['id']}/transactions", **params)
        pages += 1
        assert len(body["data"]) <= 25
        seen += body["data"]
        if not body["next_cursor"]:
            break
        assert pages < 20
        params["cursor"] = body["next_cursor"]
    assert pages == 6 and len(seen) == len(history) == 150
    assert len({t["id"] for t in seen}) == 150  # every id unique
    assert [t["provider_ref"] for t in seen] == [tx.transaction_id for tx in history]  # newest first
    asked = [c.json() for c in hub_posts(sandbox, r"/accounts/account/transactions$")]
    assert [a["limit"] for a in asked] == [25] * 6 and "offset" not in asked[0]
    assert all(a.get("offset") for a in asked[1:])  # the hub's opaque offset travels inside our cursor
    by_ref = {tx.transaction_id: tx for tx in history}
    for t in seen:
        tx = by_ref[t["provider_ref"]]
        assert Decimal(t["amount"]["amount"]) == (tx.amount if tx.credit else -tx.amount)
        assert t["status"] == ("pending" if tx.pending else "booked")
    assert sum(t["status"] == "pending" for t in seen) == 3

    # a booking-date window is respected
    start, end = today - timedelta(days=60), today - timedelta(days=30)
    window: list[dict[str, Any]] = []
    params = {"from": start.isoformat(), "to": end.isoformat(), "limit": 7}
    while True:
        body = await get(gateway, f"/v1/accounts/{current['id']}/transactions", **params)
        window += body["data"]
        if not body["next_cursor"]:
            break
        params["cursor"] = body["next_cursor"]
    expected = [tx.transaction_id for tx in history if start <= tx.booked_at.date() <= end]
    assert expected and [t["provider_ref"] for t in window] == expected
    assert all(start.isoformat() <= t["transaction_date"] <= end.isoformat() for t in window)
    savings_page = await get(gateway, f"/v1/accounts/{savings['id']}/transactions",
                             **{"from": (today - timedelta(days=185)).isoformat(), "limit": 500})
    assert len(savings_page["data"]) == 12 and savings_page["next_cursor"] is None

    # details and owner
    details = await get(gateway, f"/v1/accounts/{current['id']}/details")
    [coordinates] = details["coordinates"]
    assert coordinates["scheme"] == scheme
    if scheme == "iban":
        assert coordinates["iban"] == psu[0].number
    else:
        assert (coordinates["sort_code"], coordinates["account_number"]) == (psu[0].number[:6], psu[0].number[6:])
    owner = await get(gateway, f"/v1/accounts/{current['id']}/owner")
    assert owner["names"] == ["Alex Morgan"]

    # standing orders
    orders = (await get(gateway, f"/v1/accounts/{current['id']}/standing-orders"))["data"]
    hub_orders = sandbox.data.standing_orders[psu[0].resource_id]
    assert [o["provider_ref"] for o in orders] == [o["standingOrderId"] for o in hub_orders]
    for mine, theirs in zip(orders, hub_orders):
        assert Decimal(mine["amount"]["amount"]) == -Decimal(str(theirs["nextPayment"]["amount"]))
        assert mine["amount"]["currency"] == currency and mine["frequency"] == "MNTH"
        assert mine["next_payment_date"] == theirs["nextPayment"]["date"] and mine["status"] == "active"
        assert mine["creditor_name"] == theirs["recipientAccount"]["name"]
    assert orders[1]["final_payment_date"] == hub_orders[1]["finalPayment"]["date"]
    assert (await get(gateway, f"/v1/accounts/{savings['id']}/standing-orders"))["data"] == []

    # the consent as the hub holds it, and a refresh
    raw = await get(gateway, f"/v1/consents/{consent['id']}/raw")
    assert raw["consent_id"] == consent["id"] and raw["provider_ref"] == hub_consent.consent_id
    assert raw["raw"]["consentStatus"] == "valid" and raw["raw"]["aspspId"] == bank
    assert raw["raw"]["accounts"] == [a.resource_id for a in psu]
    assert set(raw["raw"]["permissions"]) == {"accounts", "balances", "transactions", "standingOrders"}
    sandbox.calls.clear()
    refreshed = await get(gateway, f"/v1/consents/{consent['id']}", refresh="true")
    assert refreshed["status"] == "authorised" and len(hub_posts(sandbox, r"/accounts/consents/raw$")) == 1

    # revocation reaches the hub, and what was stored is gone
    resp = await gateway.post(f"/v1/consents/{consent['id']}/revoke", headers=DEV)
    assert resp.status == 200 and (await resp.json())["status"] == "revoked"
    [deleted] = hub_posts(sandbox, r"/accounts/consents/delete$")
    assert deleted.json()["consentId"] == hub_consent.consent_id and hub_consent.status == "terminatedByTpp"
    await get(gateway, f"/v1/accounts/{current['id']}", 404)
    await get(gateway, "/v1/accounts", 403, consent_id=consent["id"])
    assert count_rows(gateway, "accounts") == 0


async def test_standing_orders_need_their_permission(gateway):
    sandbox = sandbox_of(gateway, OBC)
    consent = await authorised_consent(gateway, WISLA)  # the default permissions: no standing orders
    assert "standingOrders" not in sandbox.world.ais_by_consent_id[consent["provider_ref"]].permissions
    account = (await get(gateway, "/v1/accounts", consent_id=consent["id"]))["data"][0]
    sandbox.calls.clear()
    problem = await get(gateway, f"/v1/accounts/{account['id']}/standing-orders", 403)
    assert problem["code"] == "consent_not_active" and "standing_orders" in problem["detail"]
    assert not sandbox.calls.matching()


async def test_the_ais_only_bank_gives_account_information(gateway):
    sandbox = sandbox_of(gateway, OBC)
    consent = await authorised_consent(gateway, POLDER)
    accounts = (await get(gateway, "/v1/accounts", consent_id=consent["id"]))["data"]
    assert [a["provider_ref"] for a in accounts] == [a.resource_id for a in sandbox.data.by_bank[POLDER]]
    assert all(a["currency"] == "EUR" for a in accounts)
    details = await get(gateway, f"/v1/accounts/{accounts[0]['id']}/details")
    assert details["coordinates"][0]["iban"].startswith("NL")


async def test_the_end_user_refusing_at_the_bank_rejects_the_consent(gateway):
    sandbox = sandbox_of(gateway, OBC)
    consent = await start_consent(gateway, ALBION)
    redirect = await play_end_user(consent["authorisation_url"], outcome="reject")
    assert "error=access_denied" in redirect
    resp = await gateway.post(f"/v1/consents/{consent['id']}/complete", json={"redirect_result": redirect},
                              headers=DEV)
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "rejected" and "access_denied" in body["status_reason"]
    assert sandbox.consents[consent["provider_ref"]].status == "rejected"
    assert not hub_posts(sandbox, r"/authorizations$")  # nothing to exchange
    await get(gateway, "/v1/accounts", 403, consent_id=consent["id"])


async def test_a_consent_the_hub_expired_is_recorded_and_its_data_deleted(gateway):
    sandbox = sandbox_of(gateway, OBC)
    consent = await authorised_consent(gateway, RHEINUFER)
    account = (await get(gateway, "/v1/accounts", consent_id=consent["id"]))["data"][0]
    sandbox.expire_consent(consent["provider_ref"])
    problem = await get(gateway, f"/v1/accounts/{account['id']}/balances", 403)
    assert problem["code"] == "consent_revoked_upstream" and problem["provider_code"] == "CONSENT_EXPIRED"
    assert (await get(gateway, f"/v1/consents/{consent['id']}"))["status"] == "expired"  # the raw consent said so
    await get(gateway, f"/v1/accounts/{account['id']}", 404)

    other = await authorised_consent(gateway, ALBION)
    sandbox.world.ais_by_consent_id[other["provider_ref"]].status = "terminatedByTpp"  # ended at the hub
    refreshed = await get(gateway, f"/v1/consents/{other['id']}", refresh="true")
    assert refreshed["status"] == "revoked"


async def test_a_consent_expiry_is_sent_as_valid_until_and_at_most_90_days(gateway):
    sandbox = sandbox_of(gateway, OBC)
    until = (utcnow() + timedelta(days=30)).replace(microsecond=0)
    consent = await start_consent(gateway, RHEINUFER, expires_at=until.isoformat().replace("+00:00", "Z"))
    [created] = hub_posts(sandbox, r"/accounts/consents$")
    assert created.json()["validUntilDateTime"].startswith(until.isoformat()[:19])
    assert sandbox.consents[consent["provider_ref"]].valid_until == until
    sandbox.calls.clear()
    resp = await gateway.post("/v1/consents", headers=DEV, json={
        "provider": OBC, "redirect_uri": REDIRECT, "institution_id": RHEINUFER,
        "expires_at": (utcnow() + timedelta(days=91)).isoformat().replace("+00:00", "Z")})
    problem = await resp.json()
    assert resp.status == 422 and [e["field"] for e in problem["errors"]] == ["expires_at"]
    assert not operation_calls(sandbox)


@pytest.mark.parametrize("body, field", [
    ({"provider": OBC, "redirect_uri": REDIRECT}, "institution_id"),
    ({"provider": OBC, "redirect_uri": "https://evil.example.com/cb", "institution_id": ALBION}, "redirect_uri"),
    ({"provider": OBC, "redirect_uri": REDIRECT, "institution_id": ALBION, "transactions_from": "2026-01-01"},
     "transactions_from"),
    ({"provider": OBC, "redirect_uri": REDIRECT, "institution_id": "00000000-0000-4000-8000-000000000000"},
     "institution_id"),
])
async def test_bad_consents_are_refused_before_any_consent_call(gateway, body, field):
    sandbox = sandbox_of(gateway, OBC)
    resp = await gateway.post("/v1/consents", json=body, headers=DEV)
    problem = await resp.json()
    assert resp.status == 422 and field in [e["field"] for e in problem["errors"]], problem
    assert not operation_calls(sandbox) and count_rows(gateway, "consents") == 0


# --- what every request carries ---------------------------------------------------------------------------------------
async def test_requests_carry_request_info_and_an_oauth_signature_over_the_body(gateway):
    sandbox = sandbox_of(gateway, OBC)
    settings = state_of(gateway).config.adapters[OBC].settings
    [aspsps] = sandbox.calls.matching("POST")  # at start
    assert "aspspId" not in aspsps.json()["requestInfo"]
    sandbox.calls.clear()
    request_id = str(uuid.uuid4())
    resp = await gateway.post("/v1/consents", headers={**DEV, "X-Request-Id": request_id}, json={
        "provider": OBC, "redirect_uri": REDIRECT, "institution_id": RHEINUFER})
    assert resp.status == 201
    [consent] = sandbox.calls.matching("POST")
    info = consent.json()["requestInfo"]
    assert info["xRequestId"] == request_id  # our X-Request-Id, when it is a UUID
    assert info["merchant"] == {"id": settings.merchant_id, "name": settings.merchant_name}
    assert info["aspspId"] == RHEINUFER and info["tppRedirectURI"] == REDIRECT

    # a request id of the caller's own that is not a UUID becomes a UUID, the same one every time
    sent = []
    for rid in ("order-4711", "order-4711", "order-4712"):
        sandbox.calls.clear()
        resp = await gateway.post("/v1/consents", headers={**DEV, "X-Request-Id": rid}, json={
            "provider": OBC, "redirect_uri": REDIRECT, "institution_id": ALBION})
        assert resp.status == 201 and resp.headers["X-Request-Id"] == rid
        sent.append(sandbox.calls.matching("POST")[0].json()["requestInfo"]["xRequestId"])
    assert str(uuid.UUID(sent[0])) == sent[0] and sent[0] == sent[1] != sent[2]

    created = await resp.json()
    redirect = await play_end_user(created["authorisation_url"])
    resp = await gateway.post(f"/v1/consents/{created['id']}/complete", json={"redirect_result": redirect},
                              headers=DEV)
    done = await resp.json()
    account = (await get(gateway, "/v1/accounts", consent_id=done["id"]))["data"][0]
    await get(gateway, f"/v1/accounts/{account['id']}/balances")
    calls = sandbox.calls.matching(path_regex=r"^/openbanking/")
    assert len(calls) >= 4
    nonces = set()
    for call in calls:
        params = oauth_params(call.headers["authorization"])
        assert set(params) == {"oauth_consumer_key", "oauth_nonce", "oauth_timestamp", "oauth_signature_method",
                               "oauth_version", "oauth_body_hash", "oauth_signature"}
        assert params["oauth_consumer_key"] == settings.consumer_key
        assert params["oauth_signature_method"] == "RSA-SHA256" and params["oauth_version"] == "1.0"
        assert unquote(params["oauth_body_hash"]) == base64.b64encode(hashlib.sha256(call.body).digest()).decode()
        assert call.headers["content-type"] == "application/json"
        nonces.add(params["oauth_nonce"])
    assert len(nonces) == len(calls)
    data_calls = [c.json()["requestInfo"] for c in calls if re.search(r"/accounts(/account/balances)?$", c.path)]
    assert len(data_calls) == 2
    assert all(i["consentId"] == done["provider_ref"] and i["aspspId"] == ALBION for i in data_calls)
    assert all(c.json()["requestInfo"]["merchant"]["id"] == settings.merchant_id for c in calls)


async def test_a_refresh_of_the_banks_made_for_a_request_carries_its_request_id(aiohttp_client, make_config):
    client = await serve(aiohttp_client, make_config({**FAST, "adapters": {OBC: {
        "sandbox_payment_timeline": TIMELINE, "aspsp_cache_seconds": 0}}}))
    sandbox = sandbox_of(client, OBC)
    sandbox.calls.clear()
    request_id = str(uuid.uuid4())
    resp = await client.post("/v1/consents", headers={**DEV, "X-Request-Id": request_id}, json={
        "provider": OBC, "redirect_uri": REDIRECT, "institution_id": ALBION})
    assert resp.status == 201
    sent = [(c.path.rsplit("/api", 1)[1], c.json()["requestInfo"]["xRequestId"]) for c in sandbox.calls.matching()]
    assert [path for path, _ in sent] == ["/accounts/aspsps", "/accounts/consents"]
    assert {rid for _, rid in sent} == {request_id}, sent


async def test_a_retried_call_is_signed_afresh(gateway):
    """The hub failed once; the retry is a new request with its own nonce, timestamp and signature."""
    sandbox = sandbox_of(gateway, OBC)
    consent = await authorised_consent(gateway, RHEINUFER)
    sandbox.faults.add("status", path=r"/accounts$", status=500, times=1)
    assert len((await get(gateway, "/v1/accounts", consent_id=consent["id"]))["data"]) == 2
    first, retry = hub_posts(sandbox, r"/accounts$")
    assert (first.status, retry.status) == (500, 200)
    one, two = (oauth_params(c.headers["authorization"]) for c in (first, retry))
    assert one["oauth_nonce"] != two["oauth_nonce"] and one["oauth_signature"] != two["oauth_signature"]
    assert one["oauth_body_hash"] == two["oauth_body_hash"]  # the same bytes, signed again


# --- licence ---------------------------------------------------------------------------------------------------------
async def test_a_licence_without_aisp_refuses_consents_without_calling_the_hub(aiohttp_client, make_config):
    client = await serve(aiohttp_client, make_config({**FAST, "licence": {"roles": ["PISP"]}}))
    sandbox = sandbox_of(client, OBC)
    sandbox.calls.clear()  # the banks read at start
    resp = await client.post("/v1/consents", headers=DEV, json={
        "provider": OBC, "redirect_uri": REDIRECT, "institution_id": RHEINUFER})
    problem = await resp.json()
    assert resp.status == 403 and problem["code"] == "licence_not_permitted" and "AISP" in problem["detail"]
    assert problem["errors"][0]["field"] == "roles"
    assert not sandbox.calls.matching() and count_rows(client, "consents") == 0
    assert (await client.post("/v1/payments", json=sepa_order(), headers=keyed())).status == 201  # PISP holds


async def test_a_licence_without_pisp_refuses_payments_without_calling_the_hub(aiohttp_client, make_config):
    client = await serve(aiohttp_client, make_config({**FAST, "licence": {"roles": ["AISP"]}}))
    sandbox = sandbox_of(client, OBC)
    sandbox.calls.clear()  # the banks read at start
    resp = await client.post("/v1/payments", json=sepa_order(), headers=keyed())
    problem = await resp.json()
    assert resp.status == 403 and problem["code"] == "licence_not_permitted" and "PISP" in problem["detail"]
    assert not sandbox.calls.matching()
    assert count_rows(client, "payments") == 0 and count_rows(client, "idempotency_keys") == 0


async def test_a_licence_for_gb_only_refuses_the_polish_bank_and_allows_the_uk_one(aiohttp_client, make_config):
    client = await serve(aiohttp_client, make_config({**FAST, "licence": {"roles": ["AISP", "PISP"],
                                                                          "countries": ["GB"]}}))
    sandbox = sandbox_of(client, OBC)
    sandbox.calls.clear()  # the banks read at start: the bank's country is known without asking again
    resp = await client.post("/v1/consents", headers=DEV, json={
        "provider": OBC, "redirect_uri": REDIRECT, "institution_id": WISLA})
    problem = await resp.json()
    assert resp.status == 403 and problem["code"] == "licence_not_permitted", problem
    assert "PL" in problem["detail"] and problem["errors"][0]["field"] == "countries"
    resp = await client.post("/v1/payments", json=pl_order(), headers=keyed())
    problem = await resp.json()
    assert resp.status == 403 and problem["code"] == "licence_not_permitted" and "PL" in problem["detail"]
    assert not sandbox.calls.matching()  # no consent, no payment consent, not even the list of banks again
    assert count_rows(client, "consents") == count_rows(client, "payments") == 0

    await start_consent(client, ALBION)
    await create_payment(client, uk_order())
    assert len(hub_posts(sandbox, r"/accounts/consents$")) == 1
    assert len(hub_posts(sandbox, r"/domestic-credit-transfers/consents$")) == 1


# --- the hub refuses the gateway's signature --------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def separate_hub(make_config: Any) -> AsyncIterator[ObConnectSandbox]:
    """A hub of its own (not the gateway's embedded one), trusting the local environment's consumer key and signing
    certificate: a gateway configured otherwise is refused by it."""
    settings = make_config().adapters[OBC].settings
    hub = ObConnectSandbox(consumer_key=settings.consumer_key,
                           signing_cert_pem=load_material(settings).certificate_pem,
                           payment_timeline=tuple(TIMELINE))
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


class TamperingProxy:
    """Passes requests to the hub unchanged (the Host header kept, so the signed URL is the one the hub sees), or,
    with `tamper`, with one space added to the JSON body after the gateway signed it."""

    def __init__(self, upstream_origin: str) -> None:
        self.upstream = upstream_origin
        self.tamper = False
        self.answers: list[tuple[int, Any]] = []
        self._runner: web.AppRunner | None = None
        self.origin = ""

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.tamper and body:
            body = body.replace(b'"merchant"', b' "merchant"', 1)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-length",)}
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            async with session.request(request.method, self.upstream + request.path_qs, data=body,
                                       headers=headers) as resp:
                raw = await resp.read()
                self.answers.append((resp.status, json.loads(raw) if raw else None))
                return web.Response(body=raw, status=resp.status, content_type=resp.content_type)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.origin = f"http://127.0.0.1:{port}"
        return self.origin

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def assert_credentials_rejected(status: int, problem: dict[str, Any], reason: str) -> None:
    assert status == 502, problem
    assert (problem["code"], problem["source"], problem["retryable"]) == (
        "gateway_credentials_rejected", "gateway", False), problem
    assert problem["provider_code"] == reason, problem


async def test_another_consumer_key_is_refused_by_the_hub(aiohttp_client, make_config):
    async with separate_hub(make_config) as hub:
        right = await serve(aiohttp_client, make_config({**FAST, "adapters": {OBC: {"base_url": hub.base_url}}}))
        assert len((await get(right, "/v1/institutions", provider=OBC))["data"]) == 6  # the set-up works
        hub.calls.clear()
        wrong = await serve(aiohttp_client, make_config({**FAST, "adapters": {OBC: {
            "base_url": hub.base_url, "consumer_key": "another-consumer-key!not-registered"}}}))
        assert [c.status for c in hub.calls.matching()] == [401]  # its read of the banks at start
        hub.calls.clear()
        resp = await wrong.get("/v1/institutions", params={"provider": OBC}, headers=DEV)
        assert_credentials_rejected(resp.status, await resp.json(), "UNAUTHORIZED")
        assert len(hub.calls.matching()) == 1  # a refused signature is not retried
        resp = await wrong.post("/v1/consents", headers=DEV, json={
            "provider": OBC, "redirect_uri": REDIRECT, "institution_id": RHEINUFER})
        assert_credentials_rejected(resp.status, await resp.json(), "UNAUTHORIZED")
        assert not hub.consents and count_rows(wrong, "consents") == 0


async def test_another_signing_key_is_refused_by_the_hub(aiohttp_client, make_config, tmp_path):
    async with separate_hub(make_config) as hub:
        client = await serve(aiohttp_client, make_config({**FAST, "adapters": {OBC: {
            "base_url": hub.base_url, "local_material": str(tmp_path / "another-key")}}}))
        resp = await client.post("/v1/payments", json=sepa_order(), headers=keyed())
        assert_credentials_rejected(resp.status, await resp.json(), "INVALID_SIGNATURE")
        assert not hub.payment_consents and count_rows(client, "payments") == 0


async def test_a_request_altered_after_signing_is_refused_by_the_hub(aiohttp_client, make_config):
    async with separate_hub(make_config) as hub:
        proxy = TamperingProxy(hub.origin)
        origin = await proxy.start()
        try:
            client = await serve(aiohttp_client, make_config({**FAST, "adapters": {OBC: {
                "base_url": origin + "/openbanking/connect/api"}}}))
            assert (await client.get("/v1/institutions", params={"provider": OBC}, headers=DEV)).status == 200
            consent = await start_consent(client, RHEINUFER)  # untouched requests pass
            proxy.tamper = True
            redirect = await play_end_user(consent["authorisation_url"])  # the bank's page, not through the proxy
            resp = await client.post(f"/v1/consents/{consent['id']}/complete", json={"redirect_result": redirect},
                                     headers=DEV)
            assert_credentials_rejected(resp.status, await resp.json(), "BODY_HASH_MISMATCH")
            status, answer = proxy.answers[-1]
            assert status == 401 and answer == {"Errors": {"Error": [{
                "Source": "Gateway", "ReasonCode": "BODY_HASH_MISMATCH", "Recoverable": False, "Details": "",
                "Description": "oauth_body_hash does not match the request body"}]}}
            assert (await get(client, f"/v1/consents/{consent['id']}"))["status"] == "awaiting_authorisation"
            proxy.tamper = False  # the end user's redirect still works once requests arrive as signed
            resp = await client.post(f"/v1/consents/{consent['id']}/complete", json={"redirect_result": redirect},
                                     headers=DEV)
            assert resp.status == 200 and (await resp.json())["status"] == "authorised"
        finally:
            await proxy.stop()


# --- payments -------------------------------------------------------------------------------------------------------
async def _walk_to_completed(client: Any, sandbox: Any, payment: dict[str, Any]) -> dict[str, Any]:
    """Approve at the SCA page, complete, and follow the payment (refreshing) until completed; the hub's statuses
    seen on the way, in order."""
    async with aiohttp.ClientSession() as session:
        async with session.get(payment["authorisation_url"]) as resp:
            page = await resp.json()
    assert page["kind"] == "pis" and page["consentRequestId"] == payment["consent_ref"]
    assert Decimal(str(page["payment"]["instructedAmount"]["amount"])) == Decimal(payment["amount"]["amount"])
    redirect = await payer_decides(payment["authorisation_url"], outcome="approve")
    # Each of the hub's statuses lasts 0.3 s here, so polling every 20 ms sees every one even on a loaded machine.
    sandbox.payment_timeline = (0.3, 0.6, 0.9)
    resp = await complete(client, payment["id"], redirect)
    submitted = await resp.json()
    assert resp.status == 200, submitted
    assert submitted["status"] == "submitted" and submitted["upstream_status"] == "RCVD", submitted
    assert submitted["provider_ref"] in sandbox.payments
    seen = ["RCVD"]
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        current = await get(client, f"/v1/payments/{payment['id']}", refresh="true")
        if current["upstream_status"] != seen[-1]:
            seen.append(current["upstream_status"])
        if current["status"] == "completed":
            break
        assert asyncio.get_running_loop().time() < deadline, current
        await asyncio.sleep(0.02)
    # In the hub's order; a poll may miss the short ACSP (the worker may read it in between), never reorder.
    hub_order = [s for s in ("RCVD", "ACTC", "ACSP", "ACSC") if s in seen]
    assert seen[0] == "RCVD" and seen[-1] == "ACSC" and seen == hub_order
    assert statuses(current) == ["awaiting_authorisation", "authorised", "submitted", "pending", "completed"]
    assert [h["previous"] for h in current["history"]] == [None, "awaiting_authorisation", "authorised",
                                                           "submitted", "pending"]
    assert [h["upstream_status"] for h in current["history"][2:]] == ["RCVD", "ACTC", "ACSC"]
    assert all(a["at"] <= b["at"] for a, b in zip(current["history"], current["history"][1:]))
    assert current["provider_ref"] == submitted["provider_ref"] and sandbox.payments_created == 1
    hub_payment = sandbox.payments[current["provider_ref"]]
    assert hub_payment.consent_request_id == payment["consent_ref"]
    assert sandbox.payment_consents[payment["consent_ref"]].status == "consumed"
    return current


def _sent_payment(sandbox: Any, kind: str) -> dict[str, Any]:
    """The consent request the hub received for this payment type, as JSON (amounts as JSON numbers)."""
    [call] = hub_posts(sandbox, rf"/payments/{kind}-credit-transfers/consents$")
    body = call.json()
    amount = body["payments"]["instructedAmount"]["amount"]
    assert isinstance(amount, (int, float)) and not isinstance(amount, bool)  # a JSON number, never a string
    return body


async def test_sepa_payment_at_the_german_bank(gateway):
    sandbox = sandbox_of(gateway, OBC)
    payment = await create_payment(gateway, sepa_order())
    assert payment["status"] == "awaiting_authorisation" and payment["institution_id"] == RHEINUFER
    assert payment["debtor_name"] == "Alex Morgan" and payment["live"] is False
    assert payment["authorisation_url"].startswith(sandbox.origin + "/sca/")
    body = _sent_payment(sandbox, "sepa")
    info = body["requestInfo"]
    assert (info["aspspId"], info["tppRedirectURI"]) == (RHEINUFER, REDIRECT) and info["merchant"]["id"]
    sent = body["payments"]
    assert sent["instructedAmount"] == {"amount": 99.99, "currency": "EUR"}
    assert sent["creditorAccount"] == {"iban": "DE89370400440532013000"}
    assert sent["creditorAgent"] == {"bicfi": "COBADEFFXXX"}
    assert sent["creditorAddress"] == {"country": "DE", "city": "Berlin", "postalCode": "10115",
                                       "street": "Hauptstrasse 1"}
    assert (sent["debtorName"], sent["creditorName"], sent["localInstrument"]) == (
        "Alex Morgan", "Max Lieferant GmbH", "SEPA")
    assert sent["remittanceInformationUnstructured"] == "Invoice 2026-042"
    assert sent["endToEndIdentification"] == payment["end_to_end_id"] and len(payment["end_to_end_id"]) <= 18
    done = await _walk_to_completed(gateway, sandbox, payment)
    assert done["amount"] == {"amount": "99.99", "currency": "EUR"}


async def test_domestic_payment_at_the_uk_bank(gateway):
    sandbox = sandbox_of(gateway, OBC)
    payment = await create_payment(gateway, uk_order())
    sent = _sent_payment(sandbox, "domestic")["payments"]
    assert sent["instructedAmount"] == {"amount": 25.5, "currency": "GBP"}
    assert sent["creditorAccount"] == {"identification": "12345678", "schemeName": "UK.AccountNumber"}
    assert sent["creditorAgent"] == {"clearingSystemIdentification": "UK.SortCode", "memberIdentification": "400515"}
    assert sent["localInstrument"] == "UK.FasterPayments"
    await _walk_to_completed(gateway, sandbox, payment)


async def test_domestic_payment_at_the_polish_bank(gateway):
    sandbox = sandbox_of(gateway, OBC)
    debtor = sandbox.data.by_bank[WISLA][0]  # the simulated payer's current account there
    payment = await create_payment(gateway, pl_order(debtor_account={"scheme": "iban", "iban": debtor.number}))
    sent = _sent_payment(sandbox, "domestic")["payments"]
    assert sent["instructedAmount"] == {"amount": 120, "currency": "PLN"}
    assert sent["creditorAccount"] == {"identification": "61109010140000071219812874",
                                       "schemeName": "PL.AccountNumber"}
    assert sent["localInstrument"] == "PL.Elixir" and sent["debtorAccount"] == {"identification": debtor.number[2:]}
    assert sandbox.payment_consents[payment["consent_ref"]].debtor_account_id == debtor.resource_id
    await _walk_to_completed(gateway, sandbox, payment)


async def test_cross_border_payment_from_the_payers_german_account(gateway):
    sandbox = sandbox_of(gateway, OBC)
    debtor = sandbox.data.by_bank[RHEINUFER][0]  # UPSTREAM.md: the debtor must be the PSU's account at that bank
    payment = await create_payment(gateway, cross_border_order(debtor.number))
    assert payment["debtor_account"]["iban"] == debtor.number
    sent = _sent_payment(sandbox, "cross-border")["payments"]
    assert sent["instructedAmount"] == {"amount": 310.2, "currency": "GBP"}
    assert sent["creditorAccount"] == {"identification": "GB29NWBK60161331926819", "schemeName": "IBAN"}
    assert sent["creditorAgent"] == {"identification": "NWBKGB2L", "schemeName": "BIC"}
    assert sent["debtorAccount"] == {"identification": debtor.number, "schemeName": "IBAN"}
    assert sent["localInstrument"] == "Swift" and sent["creditorAddress"] == {"country": "GB", "city": "London"}
    await _walk_to_completed(gateway, sandbox, payment)


async def test_cross_border_payment_from_the_payers_uk_account(gateway):
    sandbox = sandbox_of(gateway, OBC)
    debtor = sandbox.data.by_bank[ALBION][0]  # 14 digits: sort code and account number
    payment = await create_payment(gateway, cross_border_order(
        institution_id=ALBION, amount={"amount": "75.00", "currency": "EUR"},
        creditor={"name": "Max Lieferant GmbH", "account": {"scheme": "iban", "iban": "DE89370400440532013000",
                                                              "bic": "COBADEFFXXX"}},
        debtor_account={"scheme": "uk_sort_code", "sort_code": debtor.number[:6],
                        "account_number": debtor.number[6:]}))
    sent = _sent_payment(sandbox, "cross-border")["payments"]
    assert sent["debtorAccount"] == {"identification": debtor.number, "schemeName": "SortCodeAccountNumber"}
    assert sandbox.payment_consents[payment["consent_ref"]].debtor_account_id == debtor.resource_id
    resp = await complete(gateway, payment["id"], await payer_decides(payment["authorisation_url"]))
    assert resp.status == 200 and (await resp.json())["status"] == "submitted"
    assert sandbox.payments_created == 1


async def test_the_irish_bank_rejects_every_payment(gateway):
    sandbox = sandbox_of(gateway, OBC)
    payment = await create_payment(gateway, sepa_order(
        institution_id=LIFFEY, creditor={"name": "Dunnes Stores", "account": {
            "scheme": "iban", "iban": "IE29AIBK93115212345678", "bic": "AIBKIE2D"}, "address": {"country": "IE"}}))
    resp = await complete(gateway, payment["id"], await payer_decides(payment["authorisation_url"]))
    assert resp.status == 200 and (await resp.json())["status"] == "submitted"
    rejected = await wait_for(gateway, payment["id"], {"rejected"})  # the reconciliation worker
    assert rejected["upstream_status"] == "RJCT" and "AM04" in rejected["status_reason"]
    assert statuses(rejected) == ["awaiting_authorisation", "authorised", "submitted", "rejected"]
    assert rejected["history"][-1]["upstream_status"] == "RJCT" and sandbox.payments_created == 1
    resp = await gateway.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    assert resp.status == 409  # final


async def test_the_payer_refusing_at_the_bank_rejects_the_payment(gateway):
    sandbox = sandbox_of(gateway, OBC)
    payment = await create_payment(gateway, uk_order())
    redirect = await payer_decides(payment["authorisation_url"], outcome="reject")
    resp = await complete(gateway, payment["id"], redirect)
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "rejected" and body["upstream_status"] == "RJCT", body
    assert "access_denied" in body["status_reason"]
    assert not hub_posts(sandbox, r"-credit-transfers$") and sandbox.payments_created == 0


@pytest.mark.parametrize("body", [
    sepa_order(institution_id=POLDER),  # AIS only
    pl_order(type="international", amount={"amount": "50.00", "currency": "EUR"},
             creditor={"name": "Max", "account": {"scheme": "iban", "iban": "DE89370400440532013000",
                                                  "bic": "COBADEFFXXX"}},
             debtor_account={"scheme": "iban", "iban": "PL51911108324444706775482269"}),  # no cross-border there
    uk_order(institution_id=RHEINUFER),  # no domestic payments at the German bank
    sepa_order(institution_id=ALBION),  # no SEPA at the UK bank
], ids=["ais_only_bank", "cross_border_at_polish_bank", "domestic_at_german_bank", "sepa_at_uk_bank"])
async def test_payments_a_bank_does_not_offer_are_refused_before_any_consent_call(gateway, body):
    sandbox = sandbox_of(gateway, OBC)
    resp = await gateway.post("/v1/payments", json=body, headers=keyed())
    problem = await resp.json()
    assert resp.status == 422 and [e["field"] for e in problem["errors"]] == ["institution_id"], problem
    assert BANKS[body["institution_id"]][0] in problem["errors"][0]["message"]
    assert not operation_calls(sandbox)  # only the list of banks, to know what this one offers
    assert count_rows(gateway, "payments") == 0 and count_rows(gateway, "idempotency_keys") == 0


@pytest.mark.parametrize("body, field", [
    # SEPA: EUR, to an IBAN with the creditor's BIC and country, and the payer's name
    (sepa_order(amount={"amount": "10.00", "currency": "GBP"}), "amount.currency"),
    (sepa_order(creditor={"name": "X", "account": {"scheme": "uk_sort_code", "sort_code": "400515",
                                                   "account_number": "12345678"}, "address": {"country": "GB"}}),
     "creditor.account.scheme"),
    (sepa_order(creditor={"name": "X", "account": {"scheme": "iban", "iban": "DE89370400440532013000"},
                          "address": {"country": "DE"}}), "creditor.account.bic"),
    (sepa_order(creditor={"name": "X", "account": {"scheme": "iban", "iban": "DE89370400440532013000",
                                                   "bic": "COBADEFFXXX"}}), "creditor.address"),
    (sepa_order(debtor_name=None), "debtor_name"),
    # domestic UK: GBP to a sort code and account number
    (uk_order(amount={"amount": "10.00", "currency": "EUR"}), "amount.currency"),
    (uk_order(creditor={"name": "X", "account": {"scheme": "iban", "iban": "GB29NWBK60161331926819"}}),
     "creditor.account.scheme"),
    (uk_order(amount={"amount": "10.00", "currency": "PLN"}, creditor={"name": "X", "account": {
        "scheme": "iban", "iban": "PL61109010140000071219812874"}}), "amount.currency"),  # PLN at the UK bank
    # domestic PL: PLN to a Polish IBAN
    (pl_order(amount={"amount": "10.00", "currency": "GBP"}, creditor={"name": "X", "account": {
        "scheme": "uk_sort_code", "sort_code": "400515", "account_number": "12345678"}}), "amount.currency"),
    (pl_order(creditor={"name": "X", "account": {"scheme": "iban", "iban": "DE89370400440532013000"}}),
     "creditor.account.iban"),
    (pl_order(creditor={"name": "X", "account": {"scheme": "uk_sort_code", "sort_code": "400515",
                                                 "account_number": "12345678"}}), "creditor.account.scheme"),
    # cross-border: the creditor's BIC and the payer's account
    (cross_border_order("DE86734639724725325847", creditor={"name": "X", "account": {
        "scheme": "iban", "iban": "GB29NWBK60161331926819"}}), "creditor.account.bic"),
    (cross_border_order(), "debtor_account"),
    # for every type
    (sepa_order(institution_id=None), "institution_id"),
    (sepa_order(institution_id="00000000-0000-4000-8000-000000000000"), "institution_id"),
    (sepa_order(amount={"amount": "10", "currency": "JPY"}), "amount.currency"),
    (sepa_order(end_to_end_id="E2E-0123456789-ABCD"), "end_to_end_id"),  # 19: the hub carries 18
    (sepa_order(redirect_uri="https://evil.example.com/cb"), "redirect_uri"),
], ids=lambda v: v if isinstance(v, str) else None)
async def test_bad_orders_are_refused_naming_the_field_before_any_consent_call(gateway, body, field):
    sandbox = sandbox_of(gateway, OBC)
    resp = await gateway.post("/v1/payments", json=body, headers=keyed("one-key-for-all"))
    problem = await resp.json()
    assert resp.status == 422, problem
    assert field in [e["field"] for e in problem["errors"]], problem
    assert not operation_calls(sandbox)
    assert count_rows(gateway, "payments") == 0 and count_rows(gateway, "idempotency_keys") == 0


@pytest.mark.parametrize("body", [
    sepa_order(debtor_account={"scheme": "uk_sort_code", "sort_code": "200000", "account_number": "12345678"}),
    uk_order(debtor_account={"scheme": "iban", "iban": "DE86734639724725325847"}),
    pl_order(debtor_account={"scheme": "uk_sort_code", "sort_code": "200000", "account_number": "12345678"}),
], ids=["sepa_from_a_sort_code", "uk_domestic_from_an_iban", "pl_domestic_from_a_sort_code"])
async def test_a_debtor_account_of_the_wrong_scheme_is_refused_before_any_consent_call(gateway, body):
    sandbox = sandbox_of(gateway, OBC)
    resp = await gateway.post("/v1/payments", json=body, headers=keyed())
    problem = await resp.json()
    assert resp.status == 422 and [e["field"] for e in problem["errors"]] == ["debtor_account.scheme"], problem
    assert not operation_calls(sandbox)
    assert count_rows(gateway, "payments") == 0 and count_rows(gateway, "idempotency_keys") == 0


async def test_a_mangled_redirect_does_not_spoil_the_payment(gateway):
    """The hub checks the payer's authorisation only at the transfer: one it refuses sends the payment back to
    awaiting authorisation (nothing was paid, the bad authorisation is forgotten), and the payer's genuine redirect
    still completes it."""
    sandbox = sandbox_of(gateway, OBC)
    payment = await create_payment(gateway, uk_order())
    redirect = await payer_decides(payment["authorisation_url"])
    resp = await complete(gateway, payment["id"], redirect.replace("code=", "code=x"))
    problem = await resp.json()
    assert resp.status == 422 and problem["code"] == "authorisation_result_invalid", problem
    assert problem["provider_code"] == "AUTHORIZATION_INVALID"
    assert [e["field"] for e in problem["errors"]] == ["redirect_result"]
    await asyncio.sleep(0.3)  # the worker runs meanwhile: it has no authorisation to present
    current = await get(gateway, f"/v1/payments/{payment['id']}")
    assert current["status"] == "awaiting_authorisation" and current["provider_ref"] is None, current
    assert statuses(current) == ["awaiting_authorisation", "authorised", "awaiting_authorisation"]
    assert len(hub_posts(sandbox, r"-credit-transfers$")) == 1 and sandbox.payments_created == 0
    resp = await complete(gateway, payment["id"], redirect)  # the payer's genuine redirect
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "submitted", body
    assert sandbox.payments_created == 1 and body["provider_ref"] in sandbox.payments
    genuine = re.search(r"[?&]code=([^&]+)", redirect).group(1)
    codes = [re.search(r"code=([^&]+)", c.json()["requestInfo"]["authorization"]).group(1)
             for c in hub_posts(sandbox, r"-credit-transfers$")]
    assert codes == ["x" + genuine, genuine]


async def test_an_idempotent_retry_returns_the_same_payment_and_makes_one_hub_consent(gateway):
    sandbox = sandbox_of(gateway, OBC)
    first = await gateway.post("/v1/payments", json=sepa_order(), headers=keyed("sepa-once"))
    again = await gateway.post("/v1/payments", json=sepa_order(), headers=keyed("sepa-once"))
    assert first.status == again.status == 201
    assert await first.read() == await again.read() and again.headers["Idempotent-Replayed"] == "true"
    assert len(sandbox.payment_consents) == 1 and len(hub_posts(sandbox, r"/consents$")) == 1
    other = await gateway.post("/v1/payments", json=sepa_order(amount={"amount": "99.98", "currency": "EUR"}),
                               headers=keyed("sepa-once"))
    assert other.status == 422 and (await other.json())["code"] == "idempotency_key_reused"
    assert len(sandbox.payment_consents) == 1 and count_rows(gateway, "payments") == 1


async def test_twenty_concurrent_completes_make_one_hub_payment(gateway):
    sandbox = sandbox_of(gateway, OBC)
    payment = await create_payment(gateway, uk_order())
    redirect = await payer_decides(payment["authorisation_url"])

    async def finish() -> tuple[int, str]:
        resp = await complete(gateway, payment["id"], redirect)
        return resp.status, (await resp.json())["status"]

    results = await asyncio.gather(*(finish() for _ in range(20)))
    assert {status for status, _ in results} == {200}, results
    assert {s for _, s in results} <= {"submitted", "pending", "completed"}
    assert sandbox.payments_created == 1
    assert len(hub_posts(sandbox, r"/domestic-credit-transfers$")) == 1
    done = await wait_for(gateway, payment["id"], {"completed"})
    assert statuses(done).count("submitted") == 1 and done["provider_ref"] in sandbox.payments


async def test_a_live_environment_tags_payments_and_warns_at_start(aiohttp_client, make_config, capsys):
    client = await serve(aiohttp_client, make_config({**FAST, "adapters": {OBC: {
        "sandbox_payment_timeline": TIMELINE, "live": True}}}))
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    warnings = [entry for entry in lines if entry.get("event") == "live_environment"]
    assert [(w["provider"], w["level"]) for w in warnings] == [(OBC, "warning")], warnings
    assert warnings[0]["base_url"] == sandbox_of(client, OBC).base_url
    payment = await create_payment(client, uk_order())
    assert payment["live"] is True
    row = state_of(client).store.db.execute("SELECT live FROM payments WHERE id = ?", (payment["id"],)).fetchone()
    assert row == (1,)
    other = await create_payment(client, sepa_order())
    assert other["live"] is True
    assert LOCAL_PASSWORD not in out + capsys.readouterr().out


async def test_a_local_environment_is_not_live(gateway, capsys):
    payment = await create_payment(gateway, uk_order())
    assert payment["live"] is False
    assert "live_environment" not in capsys.readouterr().out
