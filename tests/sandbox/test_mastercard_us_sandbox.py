"""The simulated Finicity upstream over real HTTP: auth, faults, spec checks, Connect and its webhooks, paging,
consents, consumers and reports with their webhooks, conformance.

Every response of a spec operation received through `Upstream.call` is validated against the spec's response
schema for its status, so each test is also a conformance test; `test_every_operation_conforms` covers them all.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from adapters.mastercard_us.sandbox import MastercardUSSandbox
from adapters.mastercard_us.sandbox_data import BIG_ACCOUNT_ID, aba_check_digit, dst_changes
from adapters.mastercard_us.sandbox_handlers import ROUTES
from tests.sandbox.replies import Reply

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)  # 10:00 in New York
PARTNER, SECRET, APP_KEY = "1445585709680", "sandbox-partner-secret", "sandbox-app-key"
ALICE, BOB, CAROL, DAVE = "1005061234", "1005061235", "1005061236", "1005061237"
EVERYTHING = {"fromDate": "1", "toDate": str(int(NOW.timestamp()) + 86_400)}


class Upstream:
    """A thin client of the simulator that checks every answer of a spec operation against the spec."""

    def __init__(self, session: aiohttp.ClientSession, sandbox: MastercardUSSandbox) -> None:
        self.session, self.sandbox, self.token = session, sandbox, None
        self.seen: set[tuple[str, str, int]] = set()
        self.undeclared: set[tuple[str, str, int]] = set()  # statuses the spec does not list for the operation

    async def authenticate(self, secret: str = SECRET, partner: str = PARTNER, app_key: str = APP_KEY) -> Reply:
        reply = await self.call("POST", "/aggregation/v2/partners/authentication", auth=False,
                                json={"partnerId": partner, "partnerSecret": secret},
                                headers={"Finicity-App-Key": app_key})
        if reply.status == 200:
            self.token = reply.body["token"]
        return reply

    async def call(self, method: str, path: str, *, auth: bool = True, headers: dict[str, str] | None = None,
                   **kw: Any) -> Reply:
        sent = {"Finicity-App-Key": APP_KEY, "Accept": "application/json"}
        if auth:
            if self.token is None:
                assert (await self.authenticate()).status == 200
            sent["Finicity-App-Token"] = self.token
        sent.update(headers or {})
        async with self.session.request(method, self.sandbox.base_url + path, headers=sent, **kw) as resp:
            reply = Reply(resp.status, resp.headers, await resp.read())
        found = self.sandbox.spec.find(method, path.split("?")[0])
        if found is not None and found[0].response(reply.status) is None:
            self.undeclared.add((found[0].method, found[0].template, reply.status))
        elif found is not None:
            op = found[0]
            problems = op.check_response(reply.status, reply.raw, reply.headers.get("Content-Type", "application/json"))
            assert problems == [], f"{method} {path} -> {reply.status} breaks the spec: {problems}"
            self.seen.add((op.method, op.template, reply.status))
        return reply

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)


@pytest.fixture
async def sandbox():
    sim = MastercardUSSandbox(now=lambda: NOW)
    await sim.start()
    yield sim
    await sim.stop()


class Receiver:
    """A local webhook endpoint: keeps what arrives and answers `statuses` in turn (then 200)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.path, dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(body) for _, _, body in self.received]


@pytest.fixture
async def receiver(aiohttp_server):
    hooks = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", hooks.handle)
    server = await aiohttp_server(app)
    hooks.url = str(server.make_url("/hooks"))
    return hooks


@pytest.fixture
async def upstream(sandbox):
    async with aiohttp.ClientSession() as session:
        yield Upstream(session, sandbox)


def accounts_path(customer: str = ALICE, account: str | None = None, tail: str = "", version: str = "v1") -> str:
    base = f"/aggregation/{version}/customers/{customer}/accounts"
    return base + (f"/{account}" if account else "") + tail


def transactions_path(account: str = BIG_ACCOUNT_ID, customer: str = ALICE) -> str:
    return f"/aggregation/v4/customers/{customer}/accounts/{account}/transactions"


# --- authentication -------------------------------------------------------------------------------------------------
async def test_token_flow_and_header_errors(upstream):
    reply = await upstream.authenticate()
    assert reply.status == 200 and re.fullmatch(r"[A-Za-z0-9]{20}", reply.body["token"])
    assert (await upstream.get(accounts_path())).status == 200

    missing_key = await upstream.get(accounts_path(), headers={"Finicity-App-Key": ""})
    assert missing_key.status == 401
    assert missing_key.body == {"code": "10026", "message": "Missing parameter (Finicity-App-Key)"}
    missing_token = await upstream.get(accounts_path(), auth=False)
    assert (missing_token.status, missing_token.body["code"]) == (401, "10024")
    bogus = await upstream.get(accounts_path(), headers={"Finicity-App-Token": "not-a-token"})
    assert (bogus.status, bogus.body) == (401, {"code": "10022", "message": "Invalid (Finicity-App-Token)"})
    consent_shape = await upstream.get("/data-sharing-consents?customer_id=" + ALICE, auth=False)
    assert consent_shape.body == {"code": "10024", "status": "401", "message": "Missing parameter (App-Token)",
                                  "user_message": ""}


async def test_unknown_app_key_is_rate_limited_without_retry_after(upstream):
    reply = await upstream.authenticate(app_key="wrong-key")
    assert reply.status == 429 and "Retry-After" not in reply.headers
    assert (await upstream.get(accounts_path(), headers={"Finicity-App-Key": "wrong-key"})).status == 429


async def test_five_bad_secrets_lock_the_partner_until_reset(upstream, sandbox):
    await upstream.authenticate()
    assert (await upstream.authenticate(partner="999", secret="x")).body["code"] == "10001"  # unknown partner: no count
    for _ in range(5):
        reply = await upstream.authenticate(secret="wrong")
        assert (reply.status, reply.body) == (401, {"code": "10001", "message": "Invalid credentials"})
    locked = await upstream.authenticate()
    assert (locked.status, locked.body) == (401, {"code": "24302", "message": "Bad credentials"})
    assert (await upstream.get(accounts_path())).body["code"] == "24302"  # an earlier token is refused too
    sandbox.reset_lockout()
    assert (await upstream.authenticate()).status == 200
    assert (await upstream.get(accounts_path())).status == 200


async def test_expired_tokens(upstream, sandbox):
    await upstream.authenticate()
    sandbox.expire_tokens()
    reply = await upstream.get(accounts_path())
    assert (reply.status, reply.body) == (401, {"code": "10023", "message": "Expired (Finicity-App-Token)"})
    await upstream.authenticate()
    assert (await upstream.get(accounts_path())).status == 200

    sandbox.faults.add("expired_token", path="/accounts$")  # expires every token, then the request goes on
    assert (await upstream.get(accounts_path())).body["code"] == "10023"
    await upstream.authenticate()
    assert (await upstream.get(accounts_path())).status == 200


async def test_tokens_live_token_ttl_seconds():
    sim = MastercardUSSandbox(token_ttl=0.05, now=lambda: NOW)
    await sim.start()
    try:
        async with aiohttp.ClientSession() as session:
            upstream = Upstream(session, sim)
            assert (await upstream.get(accounts_path())).status == 200
            await asyncio.sleep(0.08)
            assert (await upstream.get(accounts_path())).body["code"] == "10023"
    finally:
        await sim.stop()


# --- faults -----------------------------------------------------------------------------------------------------
async def test_every_fault_kind_is_observable(upstream, sandbox):
    path = "/institution/v2/institutions"
    sandbox.faults.add("latency", path=path, delay=0.2)
    started = time.monotonic()
    assert (await upstream.get(path)).status == 200
    assert time.monotonic() - started >= 0.2

    sandbox.faults.add("status", path=path, status=503)
    reply = await upstream.get(path)
    assert (reply.status, reply.body) == (503, {"code": "503", "message": "Service Unavailable"})
    sandbox.faults.add("status", path="^/data-sharing-consents", status=401)
    assert (await upstream.get("/data-sharing-consents?customer_id=" + ALICE)).body == {
        "code": "10022", "status": "401", "message": "Invalid (App-Token)", "user_message": ""}

    sandbox.faults.add("rate_limit", path=path, retry_after=7)
    reply = await upstream.get(path)
    assert reply.status == 429 and reply.headers["Retry-After"] == "7"

    sandbox.faults.add("malformed_json", path=path)
    async with upstream.session.get(sandbox.base_url + path) as resp:
        assert resp.status == 200 and resp.content_type == "application/json"
        with pytest.raises(ValueError):
            await resp.json()

    # aiohttp's client resends an idempotent request once after a disconnect, hence times=2 for a GET.
    sandbox.faults.add("drop_connection", path=path, times=2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await upstream.get(path)
    sandbox.faults.add("drop_connection", path="/authentication$")
    with pytest.raises(aiohttp.ClientConnectionError):
        await upstream.authenticate()
    assert [c.status for c in sandbox.calls][-3:] == [None, None, None]
    assert sandbox.faults.faults == [] and (await upstream.get(path)).status == 200


async def test_fault_matching_and_lifetime(upstream, sandbox):
    until_cleared = sandbox.faults.add("status", path="/details$", method="GET", times=None, status=500)
    assert until_cleared.times is None
    for _ in range(3):
        assert (await upstream.get(accounts_path(account=BIG_ACCOUNT_ID, tail="/details"))).status == 500
    assert (await upstream.get(accounts_path())).status == 200  # other paths are untouched
    sandbox.faults.clear()
    assert (await upstream.get(accounts_path(account=BIG_ACCOUNT_ID, tail="/details"))).status == 200
    with pytest.raises(ValueError):
        sandbox.faults.add("meteor_strike")


async def test_control_routes_work_out_of_process_and_are_never_logged(upstream, sandbox):
    base = sandbox.base_url + "/_sandbox"
    session = upstream.session
    async with session.post(base + "/faults", json={"kind": "status", "status": 502, "path": "/institutions$"}) as r:
        assert r.status == 201 and (await r.json())["status"] == 502
    async with session.post(base + "/faults", json={"kind": "nonsense"}) as r:
        assert r.status == 400
    assert (await upstream.get("/institution/v2/institutions")).status == 502
    async with session.post(base + "/faults", json={"kind": "status", "status": 500}) as r:  # any path...
        assert r.status == 201
    async with session.get(base + "/calls") as r:  # ...but never a control route
        calls = (await r.json())["calls"]
    assert calls[-1]["path"] == "/institution/v2/institutions" and calls[-1]["status"] == 502
    assert calls[-1]["headers"]["finicity-app-key"] == APP_KEY
    assert not any(c["path"].startswith("/_sandbox") for c in calls)
    async with session.delete(base + "/faults") as r:
        assert r.status == 204
    async with session.post(base + "/actions/expire_tokens") as r:
        assert r.status == 200
    assert (await upstream.get(accounts_path())).body["code"] == "10023"
    async with session.delete(base + "/calls") as r:
        assert r.status == 204
    assert len(sandbox.calls) == 0


# --- the spec gate ----------------------------------------------------------------------------------------------
async def _refused_requests(upstream: Upstream) -> None:
    reply = await upstream.get(transactions_path(), params={"toDate": "1700000000"})
    assert (reply.status, reply.body) == (400, {"code": "10005", "message": "Missing parameter (fromDate)"})
    reply = await upstream.get(transactions_path(), params={**EVERYTHING, "limit": "1001"})
    assert reply.status == 400 and reply.body["code"] == "10010" and "limit" in reply.body["message"]
    reply = await upstream.get(transactions_path(), params={**EVERYTHING, "includePending": "maybe"})
    assert reply.status == 400
    reply = await upstream.call("POST", "/aggregation/v2/partners/authentication", auth=False,
                                json={"partnerId": PARTNER})
    assert reply.body == {"code": "10005", "message": "Missing parameter (partnerSecret)"}
    reply = await upstream.call("POST", "/aggregation/v2/customers/testing", json={"firstName": "No", "username": 42})
    assert (reply.status, reply.body["code"]) == (400, "10010")
    assert (await upstream.call("POST", "/aggregation/v2/customers/testing")).body["code"] == "10005"
    reply = await upstream.call("POST", "/connect/v2/generate/lite", json={"partnerId": PARTNER, "customerId": CAROL})
    assert reply.body == {"code": "10005", "message": "Missing parameter (institutionId)"}
    assert (await upstream.get("/institution/v2/institutions/not-a-number")).status == 400
    reply = await upstream.get("/data-sharing-consents")
    assert reply.body == {"code": "10100", "status": "400", "message": "Missing parameter - customer_id",
                          "user_message": ""}


async def test_requests_the_spec_refuses_never_reach_a_handler(upstream, sandbox):
    await _refused_requests(upstream)
    assert len(sandbox.world.customers) == 4 and sandbox.world.links == {}


async def test_customers(upstream):
    reply = await upstream.call("POST", "/aggregation/v2/customers/testing",
                                json={"username": "erin.test-05+x", "firstName": "Erin", "lastName": "Lee"})
    assert reply.status == 201 and reply.body["username"] == "erin.test-05+x"
    assert reply.body["createdDate"] == int(NOW.timestamp()) and reply.body["id"].isdigit()
    again = await upstream.call("POST", "/aggregation/v2/customers/active", json={"username": "erin.test-05+x"})
    assert (again.status, again.body) == (409, {"code": "110002", "message": "Username is not available."})
    for bad in ("short", "has space ok", "ünïcode_user", "x" * 256):
        reply = await upstream.call("POST", "/aggregation/v2/customers/testing", json={"username": bad})
        assert reply.body == {"code": "110039", "message": "Username is not as per the policy."}, bad


async def test_institutions(upstream):
    reply = await upstream.get("/institution/v2/institutions", params={"search": "finbank", "limit": "2"})
    assert (reply.body["found"], reply.body["displaying"], reply.body["moreAvailable"]) == (3, 2, True)
    second = await upstream.get("/institution/v2/institutions",
                                params={"search": "finbank", "limit": "2", "start": "2"})
    names = [i["name"] for i in reply.body["institutions"] + second.body["institutions"]]
    assert names == ["FinBank", "FinBank Profiles - A", "FinBank Profiles - B"]
    assert second.body["moreAvailable"] is False
    one = await upstream.get("/institution/v2/institutions/102224")
    assert one.body["institution"]["name"] == "FinBank Profiles - B"
    missing = await upstream.get("/institution/v2/institutions/4")
    assert (missing.status, missing.body) == (404, {"code": "14006", "message": "Institution not found."})


# --- Connect ----------------------------------------------------------------------------------------------------
async def _connect(upstream: Upstream, customer: str, choice: dict[str, Any] | None = None,
                   **body: Any) -> tuple[str, Reply]:
    kind = "/lite" if "institutionId" in body else ""
    reply = await upstream.call("POST", "/connect/v2/generate" + kind,
                                json={"partnerId": PARTNER, "customerId": customer, **body})
    assert reply.status == 200, reply.body
    link = reply.body["link"]
    async with upstream.session.post(link, json=choice) as resp:
        return link, Reply(resp.status, resp.headers, await resp.read())


async def test_connect_links_a_profile_and_makes_a_consent(upstream, sandbox, receiver):
    assert (await upstream.get(accounts_path(CAROL))).body == {"accounts": []}
    reply = await upstream.call("POST", "/connect/v2/generate", json={
        "partnerId": PARTNER, "customerId": CAROL, "redirectUri": "https://app.example/done?state=s1",
        "webhook": receiver.url + "/finicity", "webhookData": {"ref": "abc"}})
    link = reply.body["link"]
    assert link.startswith(sandbox.base_url + "/connect/sim/")
    async with upstream.session.get(link) as resp:
        page = await resp.json()
    assert page["customerId"] == CAROL and {"102105", "102224", "101732"} == {i["id"] for i in page["institutions"]}
    assert page["complete"]["body"] == {"institution_id": "102105", "username": "profile_03", "outcome": "approve"}
    link_id = page["linkId"]
    assert sandbox.world.links[link_id].webhook["url"] == receiver.url + "/finicity"

    async with upstream.session.post(link) as resp:  # the defaults: FinBank Profiles - A, profile_03, approve
        done = await resp.json()
    assert done["redirect_to"] == "https://app.example/done?state=s1&code=200&reason=done"
    accounts = (await upstream.get(accounts_path(CAROL))).body["accounts"]
    assert [a["id"] for a in accounts] == done["accounts"]
    assert {a["type"] for a in accounts} >= {"checking", "savings", "creditCard", "investment", "ira", "mortgage"}
    assert {a["institutionId"] for a in accounts} == {"102105"}
    consents = (await upstream.get("/data-sharing-consents", params={"customer_id": CAROL})).body["consents"]
    assert [c["consentReceiptId"] for c in consents] == [done["consentReceiptId"]]
    assert {a["id"] for a in consents[0]["institutions"][0]["accounts"]} == set(done["accounts"])
    async with upstream.session.get(link) as resp:
        assert resp.status == 410  # single use
    async with upstream.session.post(link) as resp:
        assert resp.status == 410


async def test_connect_reject_lite_and_customer_kinds(upstream, sandbox):
    _, rejected = await _connect(upstream, CAROL, {"outcome": "reject"}, redirectUri="https://app.example/cb")
    assert rejected.body["redirect_to"] == "https://app.example/cb?code=100&reason=exited"
    assert (await upstream.get(accounts_path(CAROL))).body == {"accounts": []}

    _, lite = await _connect(upstream, CAROL, {"username": "profile_02"}, institutionId=102224)
    assert lite.status == 200 and lite.body["institutionId"] == "102224" and lite.body["redirect_to"] is None
    assert len((await upstream.get(accounts_path(CAROL))).body["accounts"]) == 5
    _, elsewhere = await _connect(upstream, CAROL, {"institution_id": "102105"}, institutionId=102224)
    assert (elsewhere.status, elsewhere.body["error"]) == (400, "institution_not_available")

    _, active = await _connect(upstream, DAVE, {"institution_id": "102105"})  # active customers: live institutions only
    assert active.status == 400
    _, wrong_login = await _connect(upstream, CAROL, {"username": "profile_99"})
    assert wrong_login.body["error"] == "invalid_credentials"
    unknown = await upstream.call("POST", "/connect/v2/generate", json={"partnerId": PARTNER, "customerId": "77"})
    assert (unknown.status, unknown.body["code"]) == (400, "10010")

    sandbox.connect_link_ttl = 0
    _, expired = await _connect(upstream, CAROL)
    assert expired.status == 410


# --- Connect webhooks -------------------------------------------------------------------------------------------
def _signature(body: bytes, mode: str = "compact") -> str:
    signed = body if mode == "raw" else json.dumps(orjson.loads(body), separators=(",", ":"),
                                                   ensure_ascii=False).encode()
    return hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()


async def test_connect_sends_its_events_signed_and_in_order(upstream, sandbox, receiver):
    _, done = await _connect(upstream, CAROL, None, webhook=receiver.url, webhookData={"ref": "abc"},
                             webhookHeaders={"X-Partner-Ref": "r1"})
    assert done.status == 200
    await sandbox.wait_webhooks_idle()
    events = receiver.events()
    assert [e["eventType"] for e in events] == ["ping", "started", "institutionSupported", "adding", "added", "done"]
    assert events[0] == {"eventType": "ping", "payload": {}}  # as documented
    assert all(e["webhookData"] == {"ref": "abc"} and e["customerId"] == CAROL for e in events[1:])
    added = events[4]["payload"]
    assert [a["id"] for a in added["accounts"]] == done.body["accounts"] and added["institutionId"] == "102105"
    assert len({e["eventId"] for e in events[1:]}) == len(events) - 1
    for _, headers, body in receiver.received:
        assert body.startswith(b'{\n  "')  # pretty-printed, as the platform sends it
        assert headers["X-Signature"] == _signature(body) and headers["X-Partner-Ref"] == "r1"
    assert {(d["kind"], d["attempt"], d["status"]) for d in sandbox.deliveries} == {("connect", 1, 200)}

    sandbox.connect_signature = "raw"
    await _connect(upstream, CAROL, {"username": "profile_04"}, webhook=receiver.url)
    await sandbox.wait_webhooks_idle()
    _, headers, body = receiver.received[-1]
    assert headers["X-Signature"] == _signature(body, "raw") != _signature(body)


async def test_a_webhook_that_does_not_answer_the_ping_fails_the_link(upstream, sandbox, receiver):
    receiver.statuses = [500]
    reply = await upstream.call("POST", "/connect/v2/generate", json={
        "partnerId": PARTNER, "customerId": CAROL, "webhook": receiver.url})
    assert (reply.status, reply.body["code"]) == (400, "10010") and "ping" in reply.body["message"]
    assert sandbox.world.links == {} and len(receiver.received) == 1  # one attempt, no retry
    reply = await upstream.call("POST", "/connect/v2/generate", json={
        "partnerId": PARTNER, "customerId": CAROL, "webhook": receiver.url, "webhookContentType": "application/xml"})
    assert reply.status == 400 and "webhookContentType" in reply.body["message"]


async def test_connect_failures_are_announced(upstream, sandbox, receiver):
    link, unable = await _connect(upstream, CAROL, {"username": "error_915"}, webhook=receiver.url)
    assert (unable.status, unable.body["error"], unable.body["code"]) == (400, "unable_to_connect", 915)
    async with upstream.session.post(link, json={"institution_id": "999999"}) as resp:
        assert (resp.status, (await resp.json())["error"]) == (400, "institution_not_found")
    async with upstream.session.post(link) as resp:  # the link is still usable
        assert resp.status == 200
    await sandbox.wait_webhooks_idle()
    events = receiver.events()
    assert [e["eventType"] for e in events] == [
        "ping", "started", "institutionSupported", "adding", "unableToConnect", "started", "institutionNotFound",
        "started", "institutionSupported", "adding", "added", "done"]
    assert events[4]["payload"] == {"institutionId": "102105", "code": 915}
    assert events[6]["payload"] == {"query": "999999"}
    page = await (await upstream.session.get(
        (await _connect(upstream, CAROL, None, webhook=receiver.url))[0])).json()
    assert page["error"] == "link_expired"  # (used) ... the page of a fresh link lists the failing logins:
    fresh = await upstream.call("POST", "/connect/v2/generate", json={"partnerId": PARTNER, "customerId": CAROL})
    async with upstream.session.get(fresh.body["link"]) as resp:
        assert "error_102" in (await resp.json())["failingLogins"]


async def test_webhooks_are_retried_in_order_and_given_up(upstream, sandbox, receiver):
    receiver.statuses = [200, 503, 503]  # the ping passes; `started` fails twice
    await _connect(upstream, CAROL, None, webhook=receiver.url)
    await sandbox.wait_webhooks_idle()
    attempts = [(d["event_type"], d["attempt"], d["status"]) for d in sandbox.deliveries]
    assert attempts[:5] == [("ping", 1, 200), ("started", 1, 503), ("started", 2, 503), ("started", 3, 200),
                            ("institutionSupported", 1, 200)]
    assert [e["eventType"] for e in receiver.events()][-3:] == ["adding", "added", "done"]

    sandbox.deliveries.clear()
    receiver.statuses = [200] + [500] * 7  # `started` never gets through: 1 attempt + 6 retries, then the next
    await _connect(upstream, CAROL, {"username": "profile_04"}, webhook=receiver.url)
    await sandbox.wait_webhooks_idle()
    started = [d for d in sandbox.deliveries if d["event_type"] == "started"]
    assert [d["attempt"] for d in started] == [1, 2, 3, 4, 5, 6, 7] and started[-1]["status"] == 500
    assert sandbox.deliveries[-1]["event_type"] == "done" and sandbox.deliveries[-1]["status"] == 200

    before = len(receiver.received)
    sandbox.resend_last_connect_event()
    await sandbox.wait_webhooks_idle()
    assert receiver.received[-1][2] == receiver.received[before - 1][2]  # the same bytes, eventId and signature


# --- consumers and reports --------------------------------------------------------------------------------------
CONSUMER = {"firstName": "Jordan", "lastName": "Whitaker", "state": "UT", "email": "jordan@example.com",
            "birthday": {"year": 1985, "month": 4, "dayOfMonth": 12}}


def decisioning(customer: str, tail: str, version: str = "v2") -> str:
    return f"/decisioning/{version}/customers/{customer}/{tail}"


async def _consumer(upstream: Upstream, customer: str) -> str:
    reply = await upstream.call("POST", decisioning(customer, "consumer", "v1"), json=CONSUMER)
    assert reply.status == 201, reply.body
    return reply.body["id"]


async def test_consumers(upstream):
    path = decisioning(ALICE, "consumer", "v1")
    missing = await upstream.call("POST", path, json={"firstName": "A", "lastName": "B"})
    assert missing.body == {"code": "10005", "message": "Missing parameter (state)"}
    no_contact = await upstream.call("POST", path, json={"firstName": "A", "lastName": "B", "state": "UT",
                                                         "ssn": "999-60-1111"})
    assert (no_contact.status, no_contact.body) == (400, {"code": "10005",
                                                          "message": "Missing parameter (phone or email)"})
    unknown = await upstream.call("POST", path, json={"firstName": "A", "lastName": "B", "state": "UT",
                                                      "email": "a@example.com"})
    assert (unknown.status, unknown.body) == (400, {"code": "10005", "message": "Missing parameter (ssn or birthday)"})
    for bad, code in (({"ssn": "99960111"}, "10100"), ({"ssn": "999-60-111x"}, "10100"),
                      ({"birthday": {"year": 1985, "month": 2, "dayOfMonth": 30}}, "10100"),
                      ({"birthday": {"year": 1985, "month": "2", "dayOfMonth": 3}}, "10010")):  # the schema's check
        refused = await upstream.call("POST", path, json={"firstName": "A", "lastName": "B", "state": "UT",
                                                          "email": "a@example.com", **bad})
        assert (refused.status, refused.body["code"]) == (400, code), (bad, refused.body)
    assert (await upstream.get(path)).body["code"] == "10100"  # none yet
    consumer = await _consumer(upstream, ALICE)
    again = await upstream.call("POST", path, json=CONSUMER)
    assert (again.status, again.body["code"]) == (409, "11000")
    got = (await upstream.get(path)).body
    assert got["id"] == consumer and got["state"] == "UT" and got["customerId"] == int(ALICE)
    assert (await upstream.get(decisioning("123", "consumer", "v1"))).body["code"] == "10002"


async def test_reports_are_generated_and_announced(upstream, sandbox, receiver):
    consumer = await _consumer(upstream, ALICE)
    acks = {}
    for segment in ("voa", "voi", "cashFlowPersonal"):
        reply = await upstream.call("POST", decisioning(ALICE, segment), params={"callbackUrl": receiver.url},
                                    json={"reportCustomFields": [{"label": "loanID", "value": "42", "shown": True}]})
        assert reply.status == 202 and reply.body["status"] == "inProgress", reply.body
        acks[reply.body["type"]] = reply.body
    assert set(acks) == {"voa", "voi", "cfrp"} and acks["voi"]["id"].endswith("-voi")
    assert acks["voa"]["consumerId"] == consumer
    assert acks["voa"]["constraints"]["reportCustomFields"][0]["value"] == "42"
    pending = await upstream.get(decisioning(ALICE, f"reports/{acks['voa']['id']}", "v3"))
    assert pending.status == 200 and pending.body["status"] == "inProgress" and "institutions" not in pending.body
    await sandbox.wait_webhooks_idle()

    events = receiver.events()
    assert sorted((e["type"], e["eventName"]) for e in events) == sorted(
        (t, name) for t in ("voa", "voi", "cfrp") for name in ("inProgress", "done"))
    assert {e["status"] for e in events if e["eventName"] == "done"} == {"success"}
    for _, headers, body in receiver.received:
        assert headers["X-Signature"] == _signature(body)
    assert events[0] == {"eventName": "inProgress", "id": acks["voa"]["id"], "consumerId": consumer, "type": "voa",
                         "status": "inProgress", "customerId": int(ALICE)}

    voa = (await upstream.get(decisioning(ALICE, f"reports/{acks['voa']['id']}", "v3"))).body
    assert voa["status"] == "success" and voa["institutions"][0]["id"] == 102105
    checking = next(a for a in voa["institutions"][0]["accounts"] if a["type"] == "checking")
    assert checking["asset"]["currentBalance"] == 12345.67 and checking["transactions"]
    assert all(a["type"] != "creditCard" for a in voa["institutions"][0]["accounts"])  # assets only
    voi = (await upstream.get(decisioning(ALICE, f"reports/{acks['voi']['id']}", "v3"))).body
    streams = [s for i in voi["institutions"] for a in i["accounts"] for s in a["incomeStreams"]]
    payroll = next(s for s in streams if s["name"] == "ACME CORP PAYROLL")
    assert payroll["status"] == "ACTIVE" and payroll["cadence"]["days"] == 14
    assert voi["income"][0]["incomeEstimate"]["netAnnual"] > 0
    cfr = (await upstream.get(decisioning(ALICE, f"reports/{acks['cfrp']['id']}", "v3"))).body
    assert len(cfr["cashFlowCreditSummary"]["monthlyCashFlowCreditSummaries"]) >= 12
    assert {a["type"] for a in cfr["institutions"][0]["accounts"]} >= {"creditCard", "mortgage"}

    async with upstream.session.get(sandbox.base_url + decisioning(ALICE, f"reports/{acks['voa']['id']}", "v3"),
                                    headers={"Finicity-App-Key": APP_KEY, "Finicity-App-Token": upstream.token,
                                             "Accept": "application/pdf"}) as resp:
        assert resp.status == 200 and resp.content_type == "application/pdf"
        assert (await resp.read()).startswith(b"%PDF-1.4")
    listing = (await upstream.get(decisioning(ALICE, "reports", "v1"))).body["reports"]
    assert {r["id"] for r in listing} == {a["id"] for a in acks.values()}
    assert {r["status"] for r in listing} == {"success"}


async def test_failing_reports(upstream, sandbox, receiver):
    await _consumer(upstream, BOB)  # BOB's accounts are profile_02's: its reports fail
    failed = (await upstream.call("POST", decisioning(BOB, "voa"), params={"callbackUrl": receiver.url},
                                  json={})).body
    await _consumer(upstream, ALICE)
    sandbox.fail_next_report()
    once = (await upstream.call("POST", decisioning(ALICE, "voi"), json={})).body  # no callbackUrl: no events
    later = (await upstream.call("POST", decisioning(ALICE, "voi"), json={})).body
    await sandbox.wait_webhooks_idle()
    assert [e["eventName"] for e in receiver.events()] == ["inProgress", "failed"]
    assert receiver.events()[1]["status"] == "failure"
    for report, customer, status in ((failed, BOB, "failure"), (once, ALICE, "failure"), (later, ALICE, "success")):
        got = (await upstream.get(decisioning(customer, f"reports/{report['id']}", "v3"))).body
        assert got["status"] == status


async def test_report_requests_the_platform_refuses(upstream, sandbox):
    no_consumer = await upstream.call("POST", decisioning(DAVE, "voa"), json={})
    assert (no_consumer.status, no_consumer.body["code"]) == (404, "10100")
    await _consumer(upstream, ALICE)
    card = next(a["id"] for a in (await upstream.get(accounts_path(ALICE))).body["accounts"]
                if a["type"] == "creditCard")
    reply = await upstream.call("POST", decisioning(ALICE, "voa"), json={"accountIds": card})
    assert (reply.status, reply.body["code"]) == (400, "14020")
    reply = await upstream.call("POST", decisioning(ALICE, "voi"), json={"fromDate": int(NOW.timestamp()) + 60})
    assert (reply.status, reply.body["code"]) == (400, "1618")
    reply = await upstream.call("POST", decisioning(ALICE, "voa"), json={"fromDate": "last year"})
    assert (reply.status, reply.body["code"]) == (400, "10010")  # the spec gate
    assert (await upstream.call("POST", decisioning(ALICE, "voa"))).body["code"] == "10005"  # a body is required
    assert (await upstream.get(decisioning(ALICE, "reports/nope", "v3"))).body["code"] == "14001"
    assert sandbox.world.reports == {}


async def test_report_endpoints_take_faults(upstream, sandbox):
    await _consumer(upstream, ALICE)
    sandbox.faults.add("status", path="/voa$", status=503)
    reply = await upstream.call("POST", decisioning(ALICE, "voa"), json={})
    assert (reply.status, reply.body) == (503, {"code": "503", "message": "Service Unavailable"})
    sandbox.faults.add("rate_limit", path="/voi$", retry_after=3)
    reply = await upstream.call("POST", decisioning(ALICE, "voi"), json={})
    assert reply.status == 429 and reply.headers["Retry-After"] == "3"
    assert sandbox.world.reports == {}  # a faulted request never reaches its handler
    report = (await upstream.call("POST", decisioning(ALICE, "voa"), json={})).body
    sandbox.faults.add("malformed_json", path="/reports/")
    async with upstream.session.get(sandbox.base_url + decisioning(ALICE, f"reports/{report['id']}", "v3"),
                                    headers={"Finicity-App-Key": APP_KEY,
                                             "Finicity-App-Token": upstream.token}) as resp:
        with pytest.raises(ValueError):
            await resp.json()


async def _report_operations(upstream: Upstream, sandbox: MastercardUSSandbox) -> None:
    """Every decisioning operation through success and its main errors (for the conformance test)."""
    await test_consumers(upstream)
    await _consumer(upstream, CAROL)  # connected to profile_04 by now
    for segment in ("voa", "voi", "cashFlowPersonal"):
        reply = await upstream.call("POST", decisioning(CAROL, segment), json={})
        assert reply.status == 202, reply.body
    await upstream.call("POST", decisioning(DAVE, "cashFlowPersonal"), json={})  # no consumer: 404
    await upstream.call("POST", decisioning(CAROL, "voa"), json={"accountIds": "1"})  # 400
    await sandbox.wait_webhooks_idle()
    for report in list(sandbox.world.reports.values()):
        await upstream.get(decisioning(CAROL, f"reports/{report.id}", "v3"), params={"purpose": "31"})
    await upstream.get(decisioning(CAROL, "reports/none", "v3"))
    await upstream.get(decisioning(CAROL, "reports", "v1"))
    await upstream.get(decisioning("123", "reports", "v1"))


# --- accounts, balances, details, owner -------------------------------------------------------------------------
async def test_accounts_balances_details_owner(upstream, sandbox):
    accounts = (await upstream.get(accounts_path())).body["accounts"]
    assert accounts[0]["id"] == BIG_ACCOUNT_ID and len(accounts) == 6
    assert (await upstream.get(accounts_path(), params={"status": "pending"})).body == {"accounts": []}
    one = await upstream.get(accounts_path(account=BIG_ACCOUNT_ID, version="v2"))
    assert one.body["name"] == "Everyday Checking" and one.body["balance"] == 12345.67

    cached = (await upstream.get(accounts_path(account=BIG_ACCOUNT_ID, tail="/availableBalance"))).body
    live = (await upstream.get(accounts_path(account=BIG_ACCOUNT_ID, tail="/availableBalance/live"))).body
    assert live["availableBalance"] != cached["availableBalance"]
    assert live["availableBalanceDate"] == int(NOW.timestamp()) > cached["availableBalanceDate"]
    await upstream.get(accounts_path(account=BIG_ACCOUNT_ID, tail="/availableBalance/live"),
                       params={"balance_cache_interval": "0"})
    assert sandbox.live_balance_calls == 2
    card = next(a["id"] for a in accounts if a["type"] == "creditCard")
    refused = await upstream.get(accounts_path(account=card, tail="/availableBalance/live"))
    assert refused.body == {"code": "14020", "message": "Bad request. (Account type not supported)."}
    assert sandbox.live_balance_calls == 2

    routing_numbers = set()
    for account in accounts + (await upstream.get(accounts_path(BOB))).body["accounts"]:
        if account["type"] in ("checking", "savings", "moneyMarket", "cd"):
            details = (await upstream.get(accounts_path(account["customerId"], account["id"], "/details"))).body
            routing = details["routingNumber"]
            assert re.fullmatch(r"\d{9}", routing) and int(routing[8]) == aba_check_digit(routing[:8])
            assert details["realAccountNumber"].endswith(account["realAccountNumberLast4"])
            routing_numbers.add(routing)
    assert len(routing_numbers) > 1

    owner = (await upstream.get(f"/aggregation/v3/customers/{ALICE}/accounts/{BIG_ACCOUNT_ID}/owner")).body
    assert owner["holders"][0]["ownerName"] == "JORDAN L WHITAKER"
    not_hers = await upstream.get(accounts_path(ALICE, "5011648390", version="v2"))  # Bob's account
    assert (not_hers.status, not_hers.body["code"]) == (404, "38003")
    nobody = await upstream.get(accounts_path("99"))
    assert (nobody.status, nobody.body["code"]) == (404, "10002")


# --- transactions -----------------------------------------------------------------------------------------------
async def test_transaction_paging(upstream):
    first = (await upstream.get(transactions_path(), params={**EVERYTHING, "limit": "1000"})).body
    assert first["found"] >= 1200 and first["displaying"] == 1000 and first["moreAvailable"] == "true"
    assert first["fromDate"] == EVERYTHING["fromDate"] and first["sort"] == "desc"
    rest = (await upstream.get(transactions_path(), params={**EVERYTHING, "limit": "1000", "start": "1001"})).body
    assert rest["moreAvailable"] == "false" and rest["displaying"] == first["found"] - 1000
    pages, start = [], 1
    while True:
        page = (await upstream.get(transactions_path(), params={**EVERYTHING, "limit": "250", "start": str(start),
                                                                  "sort": "asc"})).body
        pages += page["transactions"]
        if page["moreAvailable"] == "false":
            break
        start += 250
    assert [t["id"] for t in pages] == [t["id"] for t in reversed(first["transactions"] + rest["transactions"])]
    dates = [t.get("transactionDate", t.get("postedDate")) for t in pages]
    assert dates == sorted(dates) and (NOW - datetime.fromtimestamp(dates[0], timezone.utc)).days >= 360
    default = (await upstream.get(transactions_path(), params=EVERYTHING)).body
    assert default["displaying"] == 25
    assert [t["id"] for t in default["transactions"]] == [t["id"] for t in first["transactions"][:25]]
    window = {"fromDate": str(int((NOW - timedelta(days=30)).timestamp())), "toDate": str(int(NOW.timestamp()))}
    recent = (await upstream.get(transactions_path(), params={**window, "limit": "1000"})).body
    assert 0 < recent["found"] < 200
    assert all(int(window["fromDate"]) <= t.get("transactionDate", t.get("postedDate")) for t in recent["transactions"])
    refused = await upstream.get(transactions_path(), params={"fromDate": "200", "toDate": "100"})
    assert refused.status == 400


async def test_transaction_statuses_amounts_and_dates(upstream):
    without = (await upstream.get(transactions_path(), params={**EVERYTHING, "limit": "1000"})).body
    reply = await upstream.get(transactions_path(), params={**EVERYTHING, "limit": "1000", "includePending": "true"})
    more = await upstream.get(transactions_path(), params={**EVERYTHING, "limit": "1000", "start": "1001",
                                                             "includePending": "true"})
    rows = reply.body["transactions"] + more.body["transactions"]
    statuses = Counter(t["status"] for t in rows)
    assert statuses["pending"] > 0 and statuses["shadow"] > 0 and statuses["active"] > 1100
    assert reply.body["found"] == without["found"] + statuses["pending"]
    assert all("postedDate" not in t for t in rows if t["status"] == "pending")
    assert any("transactionDate" not in t for t in rows)  # cleared checks carry only postedDate

    raw = reply.raw + more.raw  # the amounts exactly as JSON numbers on the wire
    for text in (b'"amount":0.30000000000000004,', b'"amount":-0.0,', b'"amount":1234567890.12,',
                 b'"amount":19.99,', b'"amount":-7.1,', b'"amount":2500,'):
        assert text in raw, text
    assert 0.1 + 0.2 in [t["amount"] for t in rows]
    assert all(isinstance(t["amount"], (int, float)) for t in rows)

    posted = {datetime.fromtimestamp(t["postedDate"], timezone.utc) for t in rows if "postedDate" in t}
    for change in dst_changes(2026):  # 2026-03-08 and 2026-11-01: local midnight is 04:00 or 05:00 UTC
        near = {(p.hour, p.minute) for p in posted if abs(p.date() - change) <= timedelta(days=1)}
        # 00:30 local is 05:30 UTC in winter and 04:30 in summer; 23:30 local is 04:30 or 03:30 UTC the next day.
        assert near >= {(5, 30), (4, 30), (3, 30)}, change


async def test_customer_transactions_span_accounts(upstream):
    body = (await upstream.get(f"/aggregation/v3/customers/{ALICE}/transactions",
                               params={**EVERYTHING, "limit": "1000", "start": "1201"})).body
    assert body["found"] > 1300 and {t["accountId"] for t in body["transactions"]} != {int(BIG_ACCOUNT_ID)}


async def test_data_is_deterministic_per_seed():
    pages = []
    for seed in (7, 7, 8):
        sim = MastercardUSSandbox(seed=seed, now=lambda: NOW)
        await sim.start()
        try:
            async with aiohttp.ClientSession() as session:
                pages.append((await Upstream(session, sim).get(transactions_path(), params=EVERYTHING)).raw)
        finally:
            await sim.stop()
    assert pages[0] == pages[1] != pages[2]


# --- consents ---------------------------------------------------------------------------------------------------
async def test_revoking_a_consent_hides_its_accounts(upstream):
    consent = (await upstream.get("/data-sharing-consents", params={"customer_id": ALICE})).body["consents"][0]
    assert consent["statusDetails"]["status"] == "ACTIVE" and consent["partnerId"] == PARTNER
    receipt = consent["consentReceiptId"]
    reply = await upstream.call("DELETE", f"/data-sharing-consents/{receipt}", headers={"Update-By": "CUSTOMER"})
    assert reply.status == 204 and reply.raw == b""
    assert (await upstream.get(accounts_path())).body == {"accounts": []}
    gone = await upstream.get(transactions_path(), params=EVERYTHING)
    assert (gone.status, gone.body["code"]) == (404, "38003")
    assert (await upstream.get(accounts_path(account=BIG_ACCOUNT_ID, tail="/details"))).status == 404
    after = (await upstream.get(f"/data-sharing-consents/{receipt}")).body
    arrangement = after["institutions"][0]
    assert after["statusDetails"]["status"] == "INACTIVE" and arrangement["statusDetails"]["status"] == "REVOKED"
    assert arrangement["lastUpdatedBy"] == "CUSTOMER" and {a["status"] for a in arrangement["accounts"]} == {"INACTIVE"}
    listed = await upstream.get("/data-sharing-consents", params={"customer_id": ALICE, "status": "ACTIVE"})
    assert listed.body["found"] == 0
    assert (await upstream.get(accounts_path(BOB))).body["accounts"]  # other customers keep theirs
    missing = await upstream.get("/data-sharing-consents/123e4567-e89b-42d3-a456-556642440000")
    assert missing.body == {"code": "10215", "status": "404", "message": "Consent receipt not found",
                            "user_message": ""}


# --- conformance ------------------------------------------------------------------------------------------------
def test_routes_are_exactly_the_trimmed_spec():
    served = {(m, t) for m, t, _ in ROUTES if not t.startswith("/connect/sim/")}
    assert served == {(op.method, op.template) for op in MastercardUSSandbox().spec.operations()}


async def test_every_operation_conforms(upstream, sandbox):
    """Drive every operation through success and its main errors; `Upstream.call` validates each response."""
    await test_customers(upstream)
    await test_institutions(upstream)
    await _connect(upstream, CAROL, {"username": "profile_04"}, institutionId=101732)
    await _connect(upstream, DAVE, {"institution_id": "16441"})
    for customer in (ALICE, BOB, CAROL, DAVE):
        for account in (await upstream.get(accounts_path(customer))).body["accounts"]:
            for tail in ("", "/availableBalance", "/availableBalance/live", "/details"):
                await upstream.get(accounts_path(customer, account["id"], tail, version="v2" if not tail else "v1"))
            await upstream.get(f"/aggregation/v3/customers/{customer}/accounts/{account['id']}/owner")
            await upstream.get(transactions_path(account["id"], customer), params={**EVERYTHING, "limit": "1000"})
        await upstream.get(f"/aggregation/v3/customers/{customer}/transactions", params=EVERYTHING)
        await upstream.get("/data-sharing-consents", params={"customer_id": customer, "sort_order": "Asc"})
    await upstream.get("/data-sharing-consents", params={"customer_id": ALICE, "sort_by": "nope"})
    await upstream.get("/data-sharing-consents", params={"customer_id": "42"})
    await test_revoking_a_consent_hides_its_accounts(upstream)
    await _refused_requests(upstream)
    await upstream.get(f"/aggregation/v3/customers/{BOB}/accounts/{BIG_ACCOUNT_ID}/owner")
    await upstream.get(accounts_path(customer="123", account="1", version="v2"))
    await upstream.get(accounts_path(customer="123", account="1", tail="/availableBalance"))
    await upstream.get(accounts_path(customer="123", account="1", tail="/details"))
    await upstream.get("/institution/v2/institutions", auth=False)
    await _report_operations(upstream, sandbox)
    await upstream.authenticate(secret="wrong")
    exercised = {(method, template) for method, template, _ in upstream.seen}
    assert exercised == {(op.method, op.template) for op in sandbox.spec.operations()}
    assert {status for *_, status in upstream.seen} >= {200, 201, 202, 204, 400, 401, 404, 409}
    # The spec lists no 404 for the owner operation; the upstream answers a foreign account as elsewhere.
    assert upstream.undeclared == {("GET", "/aggregation/v3/customers/{customerId}/accounts/{accountId}/owner", 404)}


# --- the kit's spec checks on OpenAPI 3.0 features this spec does not use ------------------------------------------
def test_spec_checks_handle_nullable_read_only_and_recursive_schemas():
    from multidict import CIMultiDict, MultiDict

    from adapters.sandbox_kit import OpenAPISpec

    node = {"type": "object", "required": ["id", "name"], "additionalProperties": False, "properties": {
        "id": {"type": "string", "readOnly": True}, "name": {"type": "string", "nullable": True},
        "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}
    spec = OpenAPISpec({"openapi": "3.0.3", "paths": {"/nodes/{n}": {"put": {
        "parameters": [{"name": "n", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}},
                       {"name": "tags", "in": "query", "schema": {"type": "array", "items": {"enum": ["a", "b"]}}}],
        "requestBody": {"required": True, "content": body},
        "responses": {"200": {"description": "ok", "content": body}}}}}, "components": {"schemas": {"Node": node}}})
    op, params = spec.find("PUT", "/nodes/3")
    ok = orjson.dumps({"name": None, "children": [{"name": "x", "children": [{"name": "y"}]}]})
    assert op.check(params, MultiDict(tags="a,b"), CIMultiDict(), ok) == []  # id is readOnly: not required in a request
    bad = orjson.dumps({"name": "x", "extra": 1, "children": [{"children": [{"name": 5}]}]})
    problems = op.check({"n": "0"}, MultiDict(tags="c"), CIMultiDict(), bad)
    assert [(p.location, p.name, p.kind) for p in problems] == [
        ("path", "n", "invalid"), ("query", "tags", "invalid"), ("body", "", "invalid"),
        ("body", "children[0].name", "missing"), ("body", "children[0].children[0].name", "invalid")]
    assert op.check_response(200, {"name": "x"}) == ["$: 'id' is a required property"]
