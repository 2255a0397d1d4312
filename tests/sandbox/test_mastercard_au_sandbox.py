"""The simulated Mastercard Open Banking Australia upstream over real HTTP: auth, strict bodies, applications,
customers, Connect with the simulated end user, signed webhooks (consent, Connect, report) to a local receiver,
account data, CDR consents and their revocation, reports, injected errors and faults."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import aiohttp
import attrs
import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDict

from adapters.mastercard_au.sandbox import MastercardAUSandbox
from adapters.mastercard_au.sandbox_data import BIG_ACCOUNT_ID, abn_is_valid
from adapters.sandbox_kit import SandboxServer
from tests.sandbox.replies import Reply

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=timezone.utc)  # 15:00 in Sydney
PARTNER, SECRET, APP_KEY = "2445585709680", "sandbox-au-partner-secret", "sandbox-au-app-key"
OLIVIA, KELLY, MIA, LIAM = "1035061234", "1035061235", "1035061236", "1035061237"
EVERYTHING = {"fromDate": "1", "toDate": str(int(NOW.timestamp()) + 86_400)}
VALID_ABN, INVALID_ABN = "51824753556", "51824753557"


def sign(key: str, raw: bytes) -> str:
    return hmac.new(key.encode(), raw, hashlib.sha256).hexdigest()


@attrs.frozen
class Hook:
    path: str
    headers: CIMultiDict[str]
    raw: bytes

    @property
    def body(self) -> Any:
        return orjson.loads(self.raw)


class Receiver:
    """The partner's webhook endpoints: records every POST; `fail[path]` answers that many 500s first."""

    def __init__(self) -> None:
        self.hooks: list[Hook] = []
        self.fail: Counter[str] = Counter()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.server = SandboxServer(app)
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.fail[request.path] > 0:
            self.fail[request.path] -= 1
            return web.json_response({"error": "down"}, status=500)
        self.hooks.append(Hook(request.path, request.headers.copy(), raw))
        return web.json_response({"ok": True})

    def on(self, path: str) -> list[Hook]:
        return [h for h in self.hooks if h.path == path]


class Upstream:
    def __init__(self, session: aiohttp.ClientSession, sandbox: MastercardAUSandbox) -> None:
        self.session, self.sandbox, self.token = session, sandbox, None

    async def authenticate(self, secret: str = SECRET, app_key: str = APP_KEY) -> Reply:
        reply = await self.call("POST", "/aggregation/v2/partners/authentication", auth=False,
                                json={"partnerId": PARTNER, "partnerSecret": secret}, headers={"App-Key": app_key})
        if reply.status == 200:
            self.token = reply.body["token"]
        return reply

    async def call(self, method: str, path: str, *, auth: bool = True, headers: dict[str, str] | None = None,
                   **kw: Any) -> Reply:
        sent = {"App-Key": APP_KEY, "Accept": "application/json"}
        if auth:
            if self.token is None:
                assert (await self.authenticate()).status == 200
            sent["App-Token"] = self.token
        sent.update(headers or {})
        async with self.session.request(method, self.sandbox.base_url + path, headers=sent, **kw) as resp:
            return Reply(resp.status, resp.headers, await resp.read())

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("POST", path, json=body, **kw)

    async def end_user(self, link: str, **choice: Any) -> Reply:
        async with self.session.post(link, json=choice or None) as resp:
            return Reply(resp.status, resp.headers, await resp.read())

    async def connect(self, customer: str, choice: dict[str, Any] | None = None, **body: Any) -> Reply:
        kind = "/lite" if "institutionId" in body else ""
        reply = await self.post("/connect/v2/generate" + kind, {"partnerId": PARTNER, "customerId": customer, **body})
        assert reply.status == 200, reply.body
        return await self.end_user(reply.body["link"], **(choice or {}))

    async def subscribe(self, url: str) -> str:
        reply = await self.post("/notifications/webhooks/subscriptions", {"url": url, "notificationType": "CONSENT"})
        assert reply.status == 201
        return reply.body["signingKey"]


@pytest.fixture
async def receiver():
    rec = Receiver()
    rec.url = await rec.server.start()
    yield rec
    await rec.server.stop()


async def _started(**kw: Any) -> MastercardAUSandbox:
    sim = MastercardAUSandbox(now=lambda: NOW, **kw)
    await sim.start()
    return sim


@pytest.fixture
async def sandbox():
    sim = await _started()
    yield sim
    await sim.stop()


@pytest.fixture
async def upstream(sandbox):
    async with aiohttp.ClientSession() as session:
        yield Upstream(session, sandbox)


def accounts_path(customer: str = OLIVIA, account: str | None = None, tail: str = "", version: str = "v1") -> str:
    return f"/aggregation/{version}/customers/{customer}/accounts" + (f"/{account}" if account else "") + tail


def transactions_path(account: str = BIG_ACCOUNT_ID, customer: str = KELLY) -> str:
    return f"/aggregation/v3/customers/{customer}/accounts/{account}/transactions"


async def _accounts(upstream: Upstream, customer: str = OLIVIA, **kw: Any) -> list[dict[str, Any]]:
    return (await upstream.get(accounts_path(customer), **kw)).body["accounts"]


# --- auth ---------------------------------------------------------------------------------------------------------
async def test_auth_expiry_wrong_key_and_lockout(upstream, sandbox):
    reply = await upstream.authenticate()
    assert reply.status == 200 and re.fullmatch(r"[A-Za-z0-9]{20}", reply.body["token"])
    assert (await upstream.get(accounts_path())).status == 200
    assert (await upstream.get(accounts_path(), auth=False)).body == {"code": "10024",
                                                                       "message": "Missing parameter (App-Token)"}
    bogus = await upstream.get(accounts_path(), headers={"App-Token": "nope"})
    assert (bogus.status, bogus.body) == (401, {"code": "10022", "message": "Invalid (App-Token)"})
    sandbox.expire_tokens()
    expired = await upstream.get(accounts_path())
    assert (expired.status, expired.body) == (401, {"code": "10023", "message": "Expired (App-Token)"})
    assert (await upstream.authenticate(app_key="wrong")).status == 429
    assert (await upstream.get(accounts_path(), headers={"App-Key": "wrong"})).status == 429
    for _ in range(5):
        assert (await upstream.authenticate(secret="wrong")).body == {"code": "10001", "message": "Invalid credentials"}
    locked = await upstream.authenticate()
    assert (locked.status, locked.body["code"]) == (401, "24302")
    sandbox.reset_lockout()
    assert (await upstream.authenticate()).status == 200


async def test_tokens_live_token_ttl_seconds():
    sim = await _started(token_ttl=0.05)
    try:
        async with aiohttp.ClientSession() as session:
            upstream = Upstream(session, sim)
            assert (await upstream.get(accounts_path())).status == 200
            await asyncio.sleep(0.08)
            assert (await upstream.get(accounts_path())).body["code"] == "10023"
    finally:
        await sim.stop()


async def test_bodies_and_queries_are_checked_strictly(upstream):
    auth = "/aggregation/v2/partners/authentication"
    assert (await upstream.post(auth, {"partnerId": PARTNER}, auth=False)).body == {
        "code": "10005", "message": "Missing parameter: partnerSecret"}
    odd = await upstream.post(auth, {"partnerId": PARTNER, "partnerSecret": SECRET, "scope": "x"}, auth=False)
    assert (odd.status, odd.body["message"]) == (400, "Unknown parameter: scope")
    typed = await upstream.post("/aggregation/v2/customers/testing", {"username": 123456789})
    assert typed.body == {"code": "10005", "message": "Invalid parameter: username (must be a string)"}
    assert (await upstream.call("POST", auth, auth=False, data=b"{nope")).body["code"] == "10005"
    assert (await upstream.get(transactions_path(), params={"toDate": "5"})).body["message"] == \
        "Missing parameter: fromDate"
    too_many = await upstream.get(transactions_path(), params={**EVERYTHING, "limit": "1001"})
    assert too_many.status == 400 and "limit" in too_many.body["message"]


# --- applications and customers -------------------------------------------------------------------------------------
@pytest.mark.parametrize("model, first_missing, fields", [
    ("ADR_OSP", "legalEntityName", ["legalEntityName", "policyUrl", "dataComplaintsEmailAddress", "softwareId",
                                    "orgId", "copyrightLogo", "businessName", "fromEmail", "image"]),
    ("CDR_REPRESENTATIVE", "appDescription", ["appDescription", "appUrl", "image"]),
    ("BCDC", "appDescription", ["appDescription", "appUrl", "image", "disclosureType", "policyUrl",
                                "dataComplaintsEmailAddress"]),
])
async def test_applications_per_access_model(model, first_missing, fields):
    sim = await _started(access_model=model)
    try:
        async with aiohttp.ClientSession() as session:
            upstream = Upstream(session, sim)
            refused = await upstream.post("/applications", {"appName": "Budget Buddy"})
            assert refused.body == {"code": "10005", "message": f"Missing parameter: {first_missing}"}
            body = {"appName": "Budget Buddy", **{f: f"{f}-value" for f in fields}}
            created = await upstream.post("/applications", body)
            assert created.status == 201 and created.body["status"] == "Pending"
            app_id = created.body["applicationId"]
            assert app_id.isdigit()
            institutions = await upstream.get(f"/applications/{app_id}/institutions")
            assert {i["institutionId"]: i["status"] for i in institutions.body["institutions"]} == {
                200003: "PENDING", 2002119: "PENDING", 2002120: "PENDING"}
            sim.approve_applications()
            listed = (await upstream.get("/applications", params={"application_id": app_id})).body["applications"]
            assert [(a["status"], a["accessModel"]) for a in listed] == [("Approved", model)]
            again = await upstream.get(f"/applications/{app_id}/institutions")
            assert {i["status"] for i in again.body["institutions"]} == {"REGISTERED"}
            unknown = await upstream.get("/applications/42/institutions")
            assert (unknown.status, unknown.body) == (404, {"code": "38008", "message": "Application not found"})
            if model == "CDR_REPRESENTATIVE":
                extra = await upstream.post("/applications", {**body, "legalEntityName": "X Pty Ltd"})
                assert extra.body["message"] == "Unknown parameter: legalEntityName"
    finally:
        await sim.stop()


async def test_customers_usernames_and_categories(upstream):
    reply = await upstream.post("/aggregation/v2/customers/testing",
                                {"username": "ava.test-05+x", "firstName": "Ava", "category": "BUSINESS",
                                 "abn": INVALID_ABN})  # not checked outside BCDC
    assert reply.status == 201 and reply.body["createdDate"] == str(int(NOW.timestamp()))
    customer = (await upstream.get(f"/aggregation/v1/customers/{reply.body['id']}")).body
    assert (customer["category"], customer["abn"], customer["type"]) == ("BUSINESS", INVALID_ABN, "testing")
    dup = await upstream.post("/aggregation/v2/customers/active", {"username": "ava.test-05+x"})
    assert (dup.status, dup.body) == (409, {"code": "11000", "message": "A user with this username already exists"})
    for bad in ("short", "has space", "ünïcode_user", "x" * 256):
        assert (await upstream.post("/aggregation/v2/customers/testing", {"username": bad})).body["code"] == "110039"
    assert (await upstream.post("/aggregation/v2/customers/testing", {"username": "abcdefg",
                                                                      "category": "TRUST"})).status == 400


async def test_bcdc_customers_need_a_valid_abn():
    assert abn_is_valid(VALID_ABN) and not abn_is_valid(INVALID_ABN)
    sim = await _started(access_model="BCDC")
    try:
        async with aiohttp.ClientSession() as session:
            upstream = Upstream(session, sim)
            path = "/aggregation/v2/customers/testing"
            individual = await upstream.post(path, {"username": "person_01"})
            assert individual.status == 400 and "BUSINESS" in individual.body["message"]
            assert (await upstream.post(path, {"username": "biz_01", "category": "BUSINESS"})).body["message"] == \
                "Missing parameter: abn"
            invalid = await upstream.post(path, {"username": "biz_01", "category": "BUSINESS", "abn": INVALID_ABN})
            assert (invalid.status, invalid.body) == (400, {"code": "10005", "message": "Invalid abn"})
            ok = await upstream.post(path, {"username": "biz_01", "category": "BUSINESS", "abn": "51 824 753 556"})
            assert ok.status == 201
            assert (await upstream.get(f"/aggregation/v1/customers/{ok.body['id']}")).body["abn"] == VALID_ABN
    finally:
        await sim.stop()


# --- Connect, consent notifications, Connect webhooks ----------------------------------------------------------------
async def test_connect_approve_makes_a_receipt_and_signed_webhooks(upstream, sandbox, receiver):
    key = await upstream.subscribe(receiver.url + "/consent")
    generated = await upstream.post("/connect/v2/generate", {
        "partnerId": PARTNER, "customerId": MIA, "redirectUri": "https://app.example.com.au/cb?state=s1",
        "webhook": receiver.url + "/connect", "webhookData": {"ref": "abc"}, "webhookHeaders": {"X-Ref": "r1"}})
    assert generated.status == 200 and [h.body["eventType"] for h in receiver.on("/connect")] == ["ping"]
    link = generated.body["link"]
    async with upstream.session.get(link) as resp:
        page = await resp.json()
    assert {i["id"] for i in page["institutions"]} == {"200003", "2002119", "2002120"}  # a testing customer
    done = await upstream.end_user(link)  # FinBank Aus OAuth, profile_4110, approve
    assert done.body["redirect_to"] == "https://app.example.com.au/cb?state=s1&code=200&reason=done"
    accounts = await _accounts(upstream, MIA)
    assert [a["id"] for a in accounts] == done.body["accounts"] and {a["currency"] for a in accounts} == {"AUD"}
    assert {a["type"] for a in accounts} == {"transactionAndSavings", "savings", "loan", "mortgage", "creditCard"}
    receipt = (await upstream.get(f"/data-sharing-consents/{done.body['consentReceiptId']}")).body
    assert receipt["statusDetails"]["status"] == "ACTIVE" and receipt["customerCategory"] == "INDIVIDUAL"
    assert receipt["institutions"][0]["institutionLoginId"] == done.body["institutionLoginId"]
    assert receipt["accessPeriod"]["type"] == "timeframe" and receipt["allowedTrnxHistoryInDays"] == 365

    await sandbox.wait_webhooks_idle()
    consent = receiver.on("/consent")
    assert [h.headers["Event-Type"] for h in consent] == ["CONSENT_CREATED", "INSTITUTIONS_ADDED"]
    for hook in consent:
        assert hook.headers["Event-Signature"] == sign(key, hook.raw)
        assert hook.headers["Event-Id"] == hook.body["eventId"] and hook.headers["Event-Context"] == "CONSENT"
    added = consent[1].body
    assert added["payload"]["changes"]["details"] == [{
        "consentReceiptId": done.body["consentReceiptId"], "institutionId": "200003",
        "institutionLoginId": done.body["institutionLoginId"], "accountIds": done.body["accounts"]}]
    assert added["customerId"] == MIA and added["payload"]["consent"]["consentReceiptId"] == receipt["consentReceiptId"]

    connect = receiver.on("/connect")
    assert [h.body["eventType"] for h in connect] == ["ping", "started", "adding", "added", "done"]
    for hook in connect:
        compact = json.dumps(json.loads(hook.raw), separators=(",", ":")).encode()
        assert hook.headers["X-Signature"] == sign(SECRET, compact) != sign(SECRET, hook.raw)
        assert hook.headers["X-Ref"] == "r1" and hook.body["customerId"] == MIA
    assert connect[3].body["payload"]["receiptId"] == receipt["consentReceiptId"]
    assert connect[3].body["webhookData"] == {"ref": "abc"} and "webhookData" not in connect[0].body
    assert {d["kind"] for d in sandbox.deliveries} == {"consent", "connect"}


async def test_connect_signature_raw_mode(receiver):
    sim = await _started(connect_signature="raw")
    try:
        async with aiohttp.ClientSession() as session:
            await Upstream(session, sim).connect(MIA, webhook=receiver.url + "/connect")
            await sim.wait_webhooks_idle()
    finally:
        await sim.stop()
    hooks = receiver.on("/connect")
    assert len(hooks) == 5 and all(h.headers["X-Signature"] == sign(SECRET, h.raw) for h in hooks)


async def test_ping_failure_refuses_generate(upstream, sandbox, receiver):
    receiver.fail["/connect"] = 1
    reply = await upstream.post("/connect/v2/generate", {"partnerId": PARTNER, "customerId": MIA,
                                                         "webhook": receiver.url + "/connect"})
    assert (reply.status, reply.body) == (400, {"code": "10005", "message": "Webhook URL did not respond to ping"})
    assert sandbox.world.links == {} and sandbox.deliveries[-1]["status"] == 500


async def test_connect_reject_lite_and_unusual_institutions(upstream, sandbox, receiver):
    rejected = await upstream.connect(MIA, {"outcome": "reject"}, redirectUri="https://app.example.com.au/cb")
    assert rejected.body["redirect_to"] == "https://app.example.com.au/cb?code=100&reason=exited"
    assert await _accounts(upstream, MIA) == []
    lite = await upstream.connect(MIA, {"username": "profile_4117"}, institutionId=2002120)
    assert lite.body["institutionId"] == "2002120" and len(await _accounts(upstream, MIA)) == 2
    elsewhere = await upstream.connect(MIA, {"institution_id": "200003"}, institutionId=2002120)
    assert (elsewhere.status, elsewhere.body["error"]) == (400, "institution_not_available")
    assert (await upstream.connect(MIA, {"institution_id": "200010"})).status == 400  # testing: FinBank only
    assert (await upstream.connect(MIA, {}, institutionId=200010)).status == 400  # in Lite too
    assert (await upstream.connect(LIAM, {"institution_id": "200010"})).status == 200  # active: live banks too
    hooks = receiver.url + "/connect"
    unsupported = await upstream.connect(MIA, {"institution_id": "925"}, webhook=hooks)
    assert (unsupported.status, unsupported.body["code"]) == (400, 925)
    assert (await upstream.connect(MIA, {"institution_id": "4242"}, webhook=hooks)).body["error"] == \
        "institution_not_found"
    await sandbox.wait_webhooks_idle()
    events = [(h.body["eventType"], h.body["payload"]) for h in receiver.on("/connect") if h.body["eventType"] not in
              ("ping", "started")]
    assert events == [("unableToConnect", {"institutionId": "925", "code": 925}),
                      ("institutionNotFound", {"query": "4242"})]


async def test_consent_notification_retries_duplicates_and_forgeries(upstream, sandbox, receiver):
    key = await upstream.subscribe(receiver.url + "/consent")
    receiver.fail["/consent"] = 1
    await upstream.connect(MIA)
    await sandbox.wait_webhooks_idle()
    attempts = [(d["event_type"], d["attempt"], d["status"]) for d in sandbox.deliveries if d["kind"] == "consent"]
    assert attempts == [("CONSENT_CREATED", 1, 500), ("CONSENT_CREATED", 2, 200), ("INSTITUTIONS_ADDED", 1, 200)]
    sandbox.resend_last_consent_event()
    await sandbox.wait_webhooks_idle()
    last, duplicate = receiver.on("/consent")[-2:]
    assert duplicate.raw == last.raw and duplicate.headers["Event-Id"] == last.headers["Event-Id"]
    assert duplicate.headers["Event-Signature"] == sign(key, duplicate.raw)
    sandbox.send_forged_consent_event()
    await sandbox.wait_webhooks_idle()
    forged = receiver.on("/consent")[-1]
    assert forged.body["eventType"] == "INSTITUTIONS_REVOKED"
    assert forged.headers["Event-Signature"] != sign(key, forged.raw)
    assert forged.body["payload"]["consent"]["statusDetails"]["status"] == "ACTIVE"  # nothing was revoked


# --- consents and their revocation ---------------------------------------------------------------------------------
async def test_receipt_header_and_revocation(upstream, sandbox, receiver):
    key = await upstream.subscribe(receiver.url + "/consent")
    receipt = (await upstream.get("/data-sharing-consents", params={"customer_id": OLIVIA})).body["consents"][0]
    header = {"Consent-Receipt-Id": receipt["consentReceiptId"]}
    account = receipt["institutions"][0]["accounts"][0]["id"]
    assert (await upstream.get(accounts_path(account=account, version="v2"), headers=header)).status == 200
    elsewhere = {"Consent-Receipt-Id": (await upstream.get("/data-sharing-consents", params={
        "customer_id": KELLY})).body["consents"][0]["consentReceiptId"]}
    assert (await upstream.get(accounts_path(account=account, version="v2"), headers=elsewhere)).status == 403
    gone = await upstream.call("DELETE", f"/data-sharing-consents/{receipt['consentReceiptId']}")
    assert gone.status == 204 and gone.raw == b""
    refused = await upstream.get(accounts_path(account=account, version="v2"), headers=header)
    assert (refused.status, refused.body) == (403, {"code": "10040",
                                                    "message": "Consent is not active for this account"})
    assert (await upstream.get(accounts_path(account=account, version="v2"))).body["code"] == "38003"
    assert await _accounts(upstream) == [] and await _accounts(upstream, KELLY)
    after = (await upstream.get(f"/data-sharing-consents/{receipt['consentReceiptId']}")).body
    assert after["statusDetails"]["status"] == "REVOKED" and after["institutions"][0]["lastUpdatedBy"] == "PARTNER"
    missing = await upstream.get("/data-sharing-consents/123e4567-e89b-42d3-a456-556642440000")
    assert missing.body == {"code": "10215", "status": "404", "message": "Consent receipt not found",
                            "user_message": ""}
    await sandbox.wait_webhooks_idle()
    hook = receiver.on("/consent")[-1]
    assert hook.headers["Event-Type"] == "INSTITUTIONS_REVOKED"
    assert hook.headers["Event-Signature"] == sign(key, hook.raw)
    purposes = (await upstream.get("/data-sharing-consents/purposes")).body["purposes"]
    assert "bank:transactions:read" in purposes[0]["dataScopes"]


async def test_revoking_one_institution_login_leaves_the_other(upstream, sandbox, receiver):
    await upstream.subscribe(receiver.url + "/consent")
    generated = await upstream.post("/connect/v2/generate", {"partnerId": PARTNER, "customerId": MIA})
    first = (await upstream.end_user(generated.body["link"])).body
    second = (await upstream.end_user(generated.body["link"], institution_id="2002119", username="profile_4117")).body
    receipt_id = first["consentReceiptId"]
    assert second["consentReceiptId"] == receipt_id and len(await _accounts(upstream, MIA)) == 7
    reply = await upstream.call("DELETE", f"/data-sharing-consents/{receipt_id}/institutionLogins/"
                                          f"{first['institutionLoginId']}")
    assert reply.status == 204
    assert [a["id"] for a in await _accounts(upstream, MIA)] == second["accounts"]
    receipt = (await upstream.get(f"/data-sharing-consents/{receipt_id}")).body
    assert receipt["statusDetails"]["status"] == "ACTIVE"
    assert [i["statusDetails"]["status"] for i in receipt["institutions"]] == ["REVOKED", "ACTIVE"]
    sandbox.revoke_institution(receipt_id, second["institutionLoginId"])  # at the bank
    assert (await upstream.get(f"/data-sharing-consents/{receipt_id}")).body["statusDetails"]["status"] == "REVOKED"
    await sandbox.wait_webhooks_idle()
    types = [h.headers["Event-Type"] for h in receiver.on("/consent")]
    assert types == ["CONSENT_CREATED", "INSTITUTIONS_ADDED", "INSTITUTIONS_ADDED", "INSTITUTIONS_REVOKED",
                     "INSTITUTIONS_REVOKED"]
    assert receiver.on("/consent")[3].body["payload"]["changes"]["details"][0]["institutionLoginId"] == \
        first["institutionLoginId"]


async def test_expiry_and_dashboard(upstream, sandbox, receiver):
    await upstream.subscribe(receiver.url + "/consent")
    kelly = (await upstream.get("/data-sharing-consents", params={"customer_id": KELLY})).body["consents"][0]
    sandbox.expire_consent(kelly["consentReceiptId"])
    assert await _accounts(upstream, KELLY) == []
    reply = await upstream.post("/connect/v2/generate/consent/manage", {"partnerId": PARTNER, "customerId": OLIVIA})
    dashboard = reply.body["link"]
    assert "/connect/sim/dashboard/" in dashboard
    async with upstream.session.get(dashboard) as resp:
        receipt = (await resp.json())["consents"][0]
    done = await upstream.end_user(dashboard, action="revoke", consent_receipt_id=receipt["consentReceiptId"])
    assert done.body["consent"]["statusDetails"]["status"] == "REVOKED" and await _accounts(upstream) == []
    await sandbox.wait_webhooks_idle()
    assert [h.headers["Event-Type"] for h in receiver.on("/consent")] == ["INSTITUTIONS_EXPIRED",
                                                                          "INSTITUTIONS_REVOKED"]
    expired = (await upstream.get(f"/data-sharing-consents/{kelly['consentReceiptId']}")).body
    assert expired["statusDetails"]["status"] == "EXPIRED"


# --- account data ----------------------------------------------------------------------------------------------------
async def test_accounts_balances_details_owner(upstream, sandbox):
    accounts = await _accounts(upstream)
    deposit = [a for a in accounts if a["type"] in ("transactionAndSavings", "savings")]
    card = next(a for a in accounts if a["type"] == "creditCard")
    cached = (await upstream.get(accounts_path(account=deposit[0]["id"], tail="/availableBalance"))).body
    live = (await upstream.get(accounts_path(account=deposit[0]["id"], tail="/availableBalance/live"))).body
    assert live["availableBalanceDate"] == int(NOW.timestamp()) > cached["availableBalanceDate"]
    assert cached["currency"] == "AUD" and sandbox.live_balance_calls == 1
    assert (await upstream.get(accounts_path(account=card["id"], tail="/availableBalance"))).status == 400
    for account in deposit:
        details = (await upstream.get(accounts_path(account=account["id"], tail="/details", version="v3"))).body
        [instruction] = details["paymentInstructions"]
        assert instruction["type"] == "moneyTransfer" and instruction["accountNumber"].endswith(
            account["realAccountNumberLast4"])
        assert re.fullmatch(r"80\d-\d{3}", instruction["descriptors"][0]["value"])  # FinBank Aus OAuth, NSW
    owner = (await upstream.get(accounts_path(account=card["id"], tail="/owner", version="v3"))).body
    assert owner["holders"][0]["ownerName"] == "OLIVIA NGUYEN" and owner["holders"][0]["addresses"][0]["state"] == "NSW"
    business = (await upstream.get(accounts_path(KELLY, BIG_ACCOUNT_ID, "/owner", "v3"))).body
    assert business["holders"][0]["nameClassification"] == "business"
    await upstream.connect(MIA, {"username": "profile_4117"})
    no_scope = await upstream.get(accounts_path(MIA, (await _accounts(upstream, MIA))[0]["id"], "/owner", "v3"))
    assert no_scope.status == 403 and "common:customer.basic:read" in no_scope.body["message"]


async def test_transactions_paging_pending_and_amounts(upstream):
    first = (await upstream.get(transactions_path(), params={**EVERYTHING, "limit": "1000"})).body
    assert first["found"] >= 3000 and first["displaying"] == 1000 and first["moreAvailable"] == "true"
    rows, start = [], 1
    while True:
        page = (await upstream.get(transactions_path(), params={**EVERYTHING, "limit": "1000", "start": str(start),
                                                                  "sort": "asc", "includePending": "true"})).body
        rows += page["transactions"]
        if page["moreAvailable"] == "false":
            break
        start += 1000
    statuses = Counter(t["status"] for t in rows)
    assert statuses["pending"] > 0 and statuses["shadow"] > 0 and len(rows) == first["found"] + statuses["pending"]
    assert all("postedDate" not in t for t in rows if t["status"] == "pending")
    dates = [t["transactionDate"] for t in rows]
    assert dates == sorted(dates) and all(isinstance(d, int) for d in dates)
    assert all(isinstance(t["amount"], float) and round(t["amount"], 2) == t["amount"] for t in rows)
    default = (await upstream.get(transactions_path(), params=EVERYTHING)).body
    assert default["displaying"] == 25 and default["sort"] == "desc"
    assert [t["id"] for t in default["transactions"]] == [t["id"] for t in first["transactions"][:25]]
    assert (await upstream.get(transactions_path(), params={"fromDate": "200", "toDate": "100"})).status == 400


async def test_injected_account_errors(upstream, sandbox):
    account = (await _accounts(upstream))[0]["id"]
    path = accounts_path(account=account, version="v2")
    for code, status in (("103", 400), ("915", 503), ("914", 404), ("925", 400), ("3255006", 500)):
        sandbox.set_account_error(account, code)
        reply = await upstream.get(path)
        assert (reply.status, reply.body["code"]) == (status, code)
    assert (await _accounts(upstream))[0]["aggregationStatusCode"] == 3255006
    sandbox.set_account_error(account, None)
    assert (await upstream.get(path)).status == 200
    with pytest.raises(ValueError):
        sandbox.set_account_error(account, "999")


async def test_data_is_deterministic_per_seed():
    pages = []
    for seed in (17, 17, 18):
        sim = await _started(seed=seed)
        try:
            async with aiohttp.ClientSession() as session:
                pages.append((await Upstream(session, sim).get(transactions_path(), params=EVERYTHING)).raw)
        finally:
            await sim.stop()
    assert pages[0] == pages[1] != pages[2]


# --- reports -------------------------------------------------------------------------------------------------------
async def test_reports_lifecycle_and_webhooks(upstream, sandbox, receiver):
    base = f"/decisioning/v2/customers/{OLIVIA}"
    callback = {"callbackUrl": receiver.url + "/reports"}
    assert (await upstream.post(base + "/voa", {})).body["message"] == "Consumer not found"
    consumer = await upstream.post(f"/decisioning/v1/customers/{OLIVIA}/consumer",
                                   {"firstName": "Olivia", "lastName": "Nguyen"})
    assert consumer.status == 201 and re.fullmatch(r"[0-9a-f]{32}", consumer.body["id"])
    again = await upstream.post(f"/decisioning/v1/customers/{OLIVIA}/consumer", {"firstName": "O", "lastName": "N"})
    assert (again.status, again.body["code"]) == (409, "11000")

    voa = await upstream.post(base + "/voa", {}, params=callback)
    assert voa.status == 202 and re.fullmatch(r"[a-z0-9]{12}", voa.body["id"]) and voa.body["status"] == "inProgress"
    report_path = f"/decisioning/v4/customers/{OLIVIA}/reports/{voa.body['id']}"
    pending = await upstream.get(report_path)
    assert (pending.status, pending.body["code"]) == (202, "18001")
    three = await upstream.post(base + "/voi", {"intervalTypes": ["DAILY", "WEEKLY_CALENDAR", "ANNUALLY"]})
    assert three.body == {"code": "10005", "message": "More than 2 intervalTypes passed request."}
    voi = await upstream.post(base + "/voi", {"intervalTypes": ["MONTHLY_CALENDAR", "WEEKLY_ROLLING_7"]})
    assert (await upstream.post(base + "/cashFlowBusiness", {})).status == 400  # an individual
    sandbox.fail_next_report()
    failing = await upstream.post(base + "/voa", {}, params=callback)
    await sandbox.wait_webhooks_idle()

    done = (await upstream.get(report_path)).body
    assert done["status"] == "success" and done["institutions"][0]["accounts"][0]["currency"] == "AUD"
    assert done["assets"]["accountCount"] == 2  # deposit accounts only
    pdf = await upstream.get(report_path, headers={"Accept": "application/pdf"})
    assert pdf.headers["Content-Type"] == "application/pdf" and pdf.raw.startswith(b"%PDF-") and b"%%EOF" in pdf.raw
    voi_path = f"/decisioning/v4/customers/{OLIVIA}/reports/{voi.body['id']}"
    assert (await upstream.get(voi_path, headers={"Accept": "application/pdf"})).body["message"] == \
        "PDF format is not supported for this report type"
    income = (await upstream.get(voi_path)).body["customerAnalytics"]["transactionalAttributes"]
    net = next(a for a in income if a["attributeName"] == "NET_INCOME")
    assert [p["timeIntervalType"] for p in net["aggregatedByTimePeriods"]] == ["MONTHLY_CALENDAR", "WEEKLY_ROLLING_7"]
    assert 12 <= len(net["aggregatedByTimePeriods"][0]["periods"]) <= 13 and net["streamIds"]
    assert (await upstream.get(f"/decisioning/v4/customers/{OLIVIA}/reports/{failing.body['id']}")).body[
        "status"] == "failure"
    listed = (await upstream.get(f"/decisioning/v1/customers/{OLIVIA}/reports")).body["reports"]
    assert [(r["type"], r["status"]) for r in listed] == [("voa", "success"), ("voi", "success"), ("voa", "failure")]

    hooks = receiver.on("/reports")
    assert [(h.body["id"], h.body["eventName"], h.body["status"]) for h in hooks] == [
        (voa.body["id"], "inProgress", "inProgress"), (failing.body["id"], "inProgress", "inProgress"),
        (voa.body["id"], "done", "success"), (failing.body["id"], "failed", "failure")]
    compact = json.dumps(hooks[2].body, separators=(",", ":")).encode()
    assert hooks[2].headers["X-Signature"] == sign(SECRET, compact) and hooks[2].body["customerId"] == int(OLIVIA)


async def test_cash_flow_business_for_a_business_customer(upstream, sandbox):
    await upstream.post(f"/decisioning/v1/customers/{KELLY}/consumer", {"firstName": "Grace", "lastName": "Kelly"})
    reply = await upstream.post(f"/decisioning/v2/customers/{KELLY}/cashFlowBusiness", {"accountIds": BIG_ACCOUNT_ID})
    assert reply.status == 202 and reply.body["type"] == "cfrb"
    await sandbox.wait_webhooks_idle()
    report = await upstream.get(f"/decisioning/v4/customers/{KELLY}/reports/{reply.body['id']}")
    assert report.body["cashFlowAnalytics"]["inflowStreams"] and len(report.body["cashFlowAnalytics"]["monthly"]) >= 12
    pdf = await upstream.get(f"/decisioning/v4/customers/{KELLY}/reports/{reply.body['id']}",
                             headers={"Accept": "application/pdf"})
    assert pdf.status == 200 and pdf.raw.startswith(b"%PDF-")


# --- faults and controls ------------------------------------------------------------------------------------------
async def test_faults_and_out_of_process_controls(upstream, sandbox):
    path = "/institution/v2/institutions"
    found = (await upstream.get(path, params={"search": "finbank"})).body
    assert found["found"] == 3 and {i["address"]["country"] for i in found["institutions"]} == {"Australia"}
    sandbox.faults.add("status", path=path, status=503)
    reply = await upstream.get(path)
    assert (reply.status, reply.body) == (503, {"code": "503", "message": "Service Unavailable"})
    sandbox.faults.add("status", path="^/data-sharing-consents", status=401)
    assert (await upstream.get("/data-sharing-consents", params={"customer_id": OLIVIA})).body == {
        "code": "10022", "status": "401", "message": "Invalid (App-Token)", "user_message": ""}
    sandbox.faults.add("malformed_json", path=path)
    with pytest.raises(ValueError):
        orjson.loads((await upstream.get(path)).raw)
    sandbox.faults.add("expired_token", path="/accounts$")
    assert (await upstream.get(accounts_path())).body["code"] == "10023"
    await upstream.authenticate()
    base = sandbox.base_url + "/_sandbox/actions/"
    await upstream.post("/applications", {"appName": "A", "appDescription": "B", "appUrl": "https://a.example",
                                          "image": "aW1n"})
    for action in ("approve_applications", "wait_webhooks_idle", "expire_tokens"):
        async with upstream.session.post(base + action) as resp:
            assert resp.status == 200
    assert {a.status for a in sandbox.world.applications.values()} == {"Approved"}
    assert (await upstream.get(path)).body["code"] == "10023"
    assert (await upstream.get("/no/such/path")).status in (401, 404)
