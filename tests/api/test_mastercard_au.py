"""mastercard-au through the canonical API, against its simulator over real HTTP: CDR consents and their terms,
consent notifications (signed, de-duplicated, deleting what a revocation takes away), Connect and report webhooks,
reports, applications, and bad input refused before any upstream call."""
from __future__ import annotations

import hashlib
import hmac
from datetime import date, timedelta
from typing import Any

import orjson
import pytest

from tests.conftest import DEV, OTHER, count_rows, sandbox_of, state_of
from tests.flows import create_consent, create_customer, first_account, play_end_user

AU = "mastercard-au"
VALID_ABN = "51824753556"  # passes the ABN check digits
END_USER = {"institution_id": "200003", "username": "profile_4110"}


async def authorised(client: Any, headers: dict[str, str] = DEV, **choice: Any) -> tuple[dict, dict]:
    customer = await create_customer(client, AU, headers)
    consent = await create_consent(client, customer["id"], headers)
    redirect = await play_end_user(consent["authorisation_url"], **{**END_USER, **choice})
    resp = await client.post(f"/v1/consents/{consent['id']}/complete", json={"redirect_result": redirect},
                             headers=headers)
    assert resp.status == 200, await resp.text()
    # The simulator's webhooks about this consent are settled, so no call they cause lands in a test's count.
    await sandbox_of(client, AU).wait_webhooks_idle()
    return customer, await resp.json()


def upstream_calls(client: Any) -> list[str]:
    return [c.path for c in sandbox_of(client, AU).calls.matching()]


# --- customers ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, field", [
    ({"category": "business", "abn": "51824753557"}, "abn"),  # wrong check digits
    ({"category": "individual", "abn": VALID_ABN}, "abn"),  # an individual has no ABN
    ({"category": "business", "abn": "1234"}, "abn"),
    ({"category": "charity"}, "category"),
    ({"external_ref": "a b"}, "external_ref"),  # the platform's username rules, checked here first
])
async def test_bad_customers_are_refused_before_any_upstream_call(gateway, body, field):
    sandbox_of(gateway, AU).calls.clear()
    resp = await gateway.post("/v1/customers", json={"provider": AU, "external_ref": "aucustomer1", **body},
                              headers=DEV)
    problem = await resp.json()
    assert resp.status == 422, problem
    assert [e["field"] for e in problem["errors"]] == [field]
    assert upstream_calls(gateway) == [] and count_rows(gateway, "customers") == 0


async def test_business_customer_with_abn(gateway):
    customer = await create_customer(gateway, AU, category="business", abn="51 824 753 556")
    assert customer["category"] == "business" and customer["abn"] == VALID_ABN
    sent = [c for c in sandbox_of(gateway, AU).calls.matching() if c.path.startswith("/aggregation/v2/customers")]
    assert orjson.loads(sent[-1].body)["category"] == "BUSINESS"


async def test_bcdc_partners_may_only_have_business_customers(aiohttp_client, make_config):
    from tests.conftest import serve

    client = await serve(aiohttp_client, make_config({"adapters": {AU: {"access_model": "BCDC"}}}))
    resp = await client.post("/v1/customers", json={"provider": AU, "external_ref": "aucustomer2"}, headers=DEV)
    assert resp.status == 422 and (await resp.json())["errors"][0]["field"] == "category"
    resp = await client.post("/v1/customers", json={"provider": AU, "external_ref": "aucustomer2",
                                                    "category": "business"}, headers=DEV)
    assert resp.status == 422 and (await resp.json())["errors"][0]["field"] == "abn"
    await create_customer(client, AU, category="business", abn=VALID_ABN)


# --- consents and their CDR terms ------------------------------------------------------------------------------------
async def test_consent_records_its_terms_and_data_stays_inside_them(gateway):
    _, consent = await authorised(gateway)
    terms = consent["terms"]
    assert terms["purpose"] and "bank:transactions:read" in terms["data_scopes"]
    assert terms["access_until"] and consent["expires_at"]
    assert terms["institutions"] and terms["institutions"][0]["status"] == "active"
    account = await first_account(gateway, consent["id"])
    assert account["currency"] == "AUD"
    # Data calls name the consent receipt upstream.
    calls = [c for c in sandbox_of(gateway, AU).calls.matching() if "/accounts" in c.path]
    assert calls and all(c.headers.get("consent-receipt-id") == consent["provider_ref"] for c in calls)
    # Transactions before the consent's history window are refused before any upstream call.
    too_early = date.fromisoformat(terms["transactions_from"]) - timedelta(days=1)
    sandbox_of(gateway, AU).calls.clear()
    resp = await gateway.get(f"/v1/accounts/{account['id']}/transactions", params={"from": too_early.isoformat()},
                             headers=DEV)
    problem = await resp.json()
    assert resp.status == 403 and problem["code"] == "outside_consent", problem
    assert problem["errors"][0]["field"] == "from" and upstream_calls(gateway) == []


async def test_account_details_give_a_bsb(gateway):
    _, consent = await authorised(gateway)
    resp = await gateway.get("/v1/accounts", params={"consent_id": consent["id"]}, headers=DEV)
    deposit = next(a for a in (await resp.json())["data"] if a["type"] in ("checking", "savings"))
    details = await (await gateway.get(f"/v1/accounts/{deposit['id']}/details", headers=DEV)).json()
    coordinates = details["coordinates"][0]
    assert coordinates["scheme"] == "au_bsb" and len(coordinates["bsb"]) == 7 and coordinates["bsb"][3] == "-"


async def test_the_end_user_leaving_connect_rejects_the_consent(gateway):
    customer = await create_customer(gateway, AU)
    consent = await create_consent(gateway, customer["id"])
    redirect = await play_end_user(consent["authorisation_url"], outcome="reject")
    resp = await gateway.post(f"/v1/consents/{consent['id']}/complete", json={"redirect_result": redirect},
                              headers=DEV)
    body = await resp.json()
    assert body["status"] == "rejected" and "left Connect" in body["status_reason"]


async def test_consent_dashboard_link(gateway):
    customer, _ = await authorised(gateway)
    resp = await gateway.post(f"/v1/customers/{customer['id']}/consent-dashboard",
                              json={"redirect_uri": "https://app.example.com/done"}, headers=DEV)
    body = await resp.json()
    assert resp.status == 201 and body["url"].startswith("http")
    resp = await gateway.post(f"/v1/customers/{customer['id']}/consent-dashboard", json={}, headers=OTHER)
    assert resp.status == 404  # another tenant's customer does not exist for them


# --- revocation and the CDR deletion duty ----------------------------------------------------------------------------
async def _stored_from(client: Any, consent_id: str) -> int:
    db = state_of(client).store.db
    return int(db.execute("SELECT COUNT(*) FROM accounts WHERE consent_id = ?", (consent_id,)).fetchone()[0]) + \
        int(db.execute("SELECT COUNT(*) FROM reports WHERE consent_id = ?", (consent_id,)).fetchone()[0])


async def test_revocation_at_the_bank_arrives_signed_and_deletes_everything(gateway):
    sandbox = sandbox_of(gateway, AU)
    _, consent = await authorised(gateway)
    account = await first_account(gateway, consent["id"])
    assert await _stored_from(gateway, consent["id"]) > 0
    login = consent["terms"]["institutions"][0]["login_ref"]
    sandbox.revoke_institution(consent["provider_ref"], login)
    await sandbox.wait_webhooks_idle()
    assert await _stored_from(gateway, consent["id"]) == 0  # nothing remains
    got = await (await gateway.get(f"/v1/consents/{consent['id']}", headers=DEV)).json()
    assert got["status"] == "revoked"
    assert (await gateway.get(f"/v1/accounts/{account['id']}", headers=DEV)).status == 404
    events = await state_of(gateway).store.list_inbound_events(AU)
    assert "INSTITUTIONS_REVOKED" in [e.type for e in events]


async def test_duplicate_and_forged_notifications_change_nothing(gateway):
    import asyncio

    sandbox = sandbox_of(gateway, AU)
    await authorised(gateway)
    await sandbox.wait_webhooks_idle()
    before = len(await state_of(gateway).store.list_inbound_events(AU))
    sandbox.resend_last_consent_event()
    await sandbox.wait_webhooks_idle()
    assert len(await state_of(gateway).store.list_inbound_events(AU)) == before
    assert [d["status"] for d in sandbox.deliveries if d["kind"] == "consent"][-1] == 200  # acknowledged
    sandbox.send_forged_consent_event()
    for _ in range(100):  # refused; the provider would go on retrying for a day, so do not wait for it
        if any(d["kind"] == "consent" and d["status"] == 401 for d in sandbox.deliveries):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the forged notification was not refused")
    assert len(await state_of(gateway).store.list_inbound_events(AU)) == before


async def test_notification_checks(gateway):
    body = orjson.dumps({"eventId": "e-1", "eventType": "INSTITUTIONS_REVOKED", "eventContext": "CONSENT",
                         "customerId": "1", "payload": {"changes": {"details": []}, "consent": {}}})
    url = "/webhooks/mastercard-au/consent-notifications"
    headers = {"Event-Id": "e-1", "Event-Type": "INSTITUTIONS_REVOKED", "Event-Context": "CONSENT",
               "Event-Signature": hmac.new(b"not-the-key", body, hashlib.sha256).hexdigest(),
               "Content-Type": "application/json"}
    resp = await gateway.post(url, data=body, headers=headers)
    assert resp.status == 401
    resp = await gateway.post(url, data=body, headers={**headers, "Event-Context": "CONNECT"})
    assert resp.status == 400
    assert await state_of(gateway).store.list_inbound_events(AU) == [] or all(
        e.event_id != "e-1" for e in await state_of(gateway).store.list_inbound_events(AU))


async def test_revoking_one_institution_login(gateway):
    _, consent = await authorised(gateway)
    await first_account(gateway, consent["id"])
    login = consent["terms"]["institutions"][0]["login_ref"]
    resp = await gateway.post(f"/v1/consents/{consent['id']}/institution-logins/nope/revoke", headers=DEV)
    assert resp.status == 404
    resp = await gateway.post(f"/v1/consents/{consent['id']}/institution-logins/{login}/revoke", headers=DEV)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["status"] == "revoked"  # it was the consent's only institution
    assert await _stored_from(gateway, consent["id"]) == 0


async def test_connect_webhooks_are_verified(gateway):
    body = orjson.dumps({"customerId": "1", "eventType": "started", "eventId": "c-1", "payload": {}})
    url = "/webhooks/mastercard-au/connect"
    resp = await gateway.post(url, data=body, headers={"X-Signature": "00" * 32, "Content-Type": "application/json"})
    assert resp.status == 401
    secret = b"sandbox-au-partner-secret"
    pretty = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
    compact_signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
    resp = await gateway.post(url, data=pretty, headers={"X-Signature": compact_signature,
                                                         "Content-Type": "application/json"})
    assert resp.status == 200  # signed over the compact re-serialisation, as the provider's sample does
    resp = await gateway.post(url, data=pretty, headers={"X-Signature": compact_signature,
                                                         "Content-Type": "application/json"})
    assert (await resp.json())["duplicate"] is True


# --- reports --------------------------------------------------------------------------------------------------------
async def test_voi_report_lifecycle(gateway):
    sandbox = sandbox_of(gateway, AU)
    customer, consent = await authorised(gateway, username="profile_voi_001")
    resp = await gateway.post("/v1/reports", json={"customer_id": customer["id"], "type": "voi"}, headers=DEV)
    assert resp.status == 409 and (await resp.json())["code"] == "consumer_required"
    resp = await gateway.post(f"/v1/customers/{customer['id']}/consumer",
                              json={"first_name": "Olivia", "last_name": "Nguyen"}, headers=DEV)
    assert resp.status == 201 and (await resp.json())["consumer_ref"]
    resp = await gateway.post(f"/v1/customers/{customer['id']}/consumer",
                              json={"first_name": "Olivia", "last_name": "Nguyen"}, headers=DEV)
    assert resp.status == 409  # one consumer per customer

    sandbox.calls.clear()
    resp = await gateway.post("/v1/reports", json={"customer_id": customer["id"], "type": "voi",
                                                   "interval_types": ["DAILY", "ANNUALLY", "HISTORICALLY"]},
                              headers=DEV)
    problem = await resp.json()
    assert resp.status == 422 and problem["errors"][0]["field"] == "interval_types", problem
    assert upstream_calls(gateway) == [] and count_rows(gateway, "reports") == 0

    resp = await gateway.post("/v1/reports", json={"customer_id": customer["id"], "type": "voi"}, headers=DEV)
    report = await resp.json()
    assert resp.status == 202 and report["status"] == "pending", report
    assert report["interval_types"] == ["MONTHLY_CALENDAR"] and report["consent_id"] == consent["id"]
    await sandbox.wait_webhooks_idle()
    await _until_ready(gateway, report["id"])
    content = await gateway.get(f"/v1/reports/{report['id']}/content", headers=DEV)
    assert content.status == 200 and content.content_type == "application/json"
    pdf = await gateway.get(f"/v1/reports/{report['id']}/content", headers={**DEV, "Accept": "application/pdf"})
    assert pdf.status == 422  # VOI reports come as JSON only
    listing = await (await gateway.get("/v1/reports", params={"customer_id": customer["id"]}, headers=DEV)).json()
    assert [r["id"] for r in listing["data"]] == [report["id"]]


async def _until_ready(client: Any, report_id: str) -> dict:
    import asyncio

    for _ in range(100):
        got = await (await client.get(f"/v1/reports/{report_id}", headers=DEV)).json()
        if got["status"] != "pending":
            assert got["status"] == "ready", got
            return got
        await asyncio.sleep(0.05)
    raise AssertionError("the report never became ready")


async def test_voa_report_as_pdf_and_webhook_marks_it_ready(gateway):
    sandbox = sandbox_of(gateway, AU)
    customer, _ = await authorised(gateway)
    await gateway.post(f"/v1/customers/{customer['id']}/consumer", json={"first_name": "Jack", "last_name": "Li"},
                       headers=DEV)
    report = await (await gateway.post("/v1/reports", json={"customer_id": customer["id"], "type": "voa"},
                                       headers=DEV)).json()
    await sandbox.wait_webhooks_idle()
    stored = await state_of(gateway).store.get_report("dev", report["id"])
    assert stored.status.value == "ready"  # the signed report webhook did it, without a GET
    pdf = await gateway.get(f"/v1/reports/{report['id']}/content", headers={**DEV, "Accept": "application/pdf"})
    assert pdf.status == 200 and pdf.content_type == "application/pdf"
    assert (await pdf.read()).startswith(b"%PDF")
    resp = await gateway.get(f"/v1/reports/{report['id']}/content", headers={**DEV, "Accept": "text/html"})
    assert resp.status == 406


async def test_cash_flow_is_for_business_customers(gateway):
    customer, _ = await authorised(gateway)
    await gateway.post(f"/v1/customers/{customer['id']}/consumer", json={"first_name": "Jack", "last_name": "Li"},
                       headers=DEV)
    resp = await gateway.post("/v1/reports", json={"customer_id": customer["id"], "type": "cash_flow"},
                              headers=DEV)
    assert resp.status == 422 and (await resp.json())["errors"][0]["field"] == "type"


async def test_reports_go_with_their_consent(gateway):
    customer, consent = await authorised(gateway)
    await gateway.post(f"/v1/customers/{customer['id']}/consumer", json={"first_name": "Jack", "last_name": "Li"},
                       headers=DEV)
    report = await (await gateway.post("/v1/reports", json={"customer_id": customer["id"], "type": "voa"},
                                       headers=DEV)).json()
    await gateway.post(f"/v1/consents/{consent['id']}/revoke", headers=DEV)
    assert (await gateway.get(f"/v1/reports/{report['id']}", headers=DEV)).status == 404
    assert await _stored_from(gateway, consent["id"]) == 0


# --- applications ---------------------------------------------------------------------------------------------------
APP = {"provider": AU, "access_model": "CDR_REPRESENTATIVE", "name": "Budget Buddy", "description": "Budgeting",
       "url": "https://budget.example.com", "image": "iVBORw0KGgo="}


async def test_application_registration(gateway):
    sandbox = sandbox_of(gateway, AU)
    sandbox.calls.clear()
    resp = await gateway.post("/v1/applications", json={**APP, "url": None, "legal_entity_name": "Budget Pty"},
                              headers=DEV)
    problem = await resp.json()
    assert resp.status == 422
    assert {e["field"] for e in problem["errors"]} == {"url", "legal_entity_name"}
    resp = await gateway.post("/v1/applications", json={**APP, "access_model": "ADR_OSP"}, headers=DEV)
    assert resp.status == 422 and (await resp.json())["errors"][0]["field"] == "access_model"
    assert upstream_calls(gateway) == []

    app = await (await gateway.post("/v1/applications", json=APP, headers=DEV)).json()
    assert app["id"].startswith("app_") and app["status"] == "pending"
    sandbox.approve_applications()
    got = await (await gateway.get(f"/v1/applications/{app['id']}", headers=DEV)).json()
    assert got["status"] == "approved"
    institutions = await (await gateway.get(f"/v1/applications/{app['id']}/institutions", headers=DEV)).json()
    assert {"200003", "2002119", "2002120"} <= {i["institution_id"] for i in institutions["data"]}
    resp = await gateway.get(f"/v1/applications/{app['id']}", headers=OTHER)
    assert resp.status == 404


async def test_applications_need_the_admin_scope(gateway):
    from tests.conftest import READONLY

    resp = await gateway.post("/v1/applications", json=APP, headers=READONLY)
    assert resp.status == 403


# --- consent notifications: subscribed at start, signing key sealed --------------------------------------------------
async def test_subscribed_at_start_with_the_key_sealed(gateway):
    store = state_of(gateway).store
    sealed = await store.get_secret(AU, "consent_signing_key")
    assert sealed is not None
    sandbox = sandbox_of(gateway, AU)
    keys = [s["signingKey"] for s in sandbox.subscriptions.values()] if hasattr(sandbox, "subscriptions") else []
    for key in keys:
        assert key.encode() not in sealed
