"""The simulated Thredd Open Banking upstream over real HTTP: credentials, registration, Connect with its webhooks,
accounts and ACH details, revocation, test-sent events, webhook retries and faults."""
from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
import pytest
from aiohttp import web

from adapters.mastercard.details import is_valid_aba
from adapters.sandbox_kit import SandboxServer
from adapters.thredd.sandbox import API, ThreddSandbox
from adapters.thredd.sandbox_data import CONNECTED_CUSTOMER, SECOND_CONNECTED_CUSTOMER, UNCONNECTED_CUSTOMER
from tests.sandbox.replies import Reply

CLIENT, PARTNER, APP_ID = "sandbox-thredd-client", "thredd-partner-1", "sandbox-app-001"
SECRET = "sandbox-thredd-webhook-secret"
HEADERS = {"client-id": CLIENT, "partner-id": PARTNER}
REGISTER = {"redirect_uri": "https://app.example.com/cb?state=s1", "is_hosted_in_mobile_app": False,
            "application_id": APP_ID}


class Client:
    def __init__(self, session: aiohttp.ClientSession, sandbox: ThreddSandbox) -> None:
        self.session, self.sandbox = session, sandbox

    async def call(self, method: str, path: str, *, headers: dict[str, str] | None = None, api: bool = True,
                   **kw: Any) -> Reply:
        url = (self.sandbox.base_url or "") + (API if api else "") + path
        sent = dict(HEADERS if headers is None else headers)
        async with self.session.request(method, url, headers=sent, **kw) as resp:
            return Reply(resp.status, resp.headers, await resp.read())

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def register(self, **fields: Any) -> Reply:
        return await self.call("POST", "/register", json={**REGISTER, **fields})

    async def end_user(self, link: str, **choice: Any) -> Reply:
        async with self.session.post(link, json=choice or None) as resp:
            return Reply(resp.status, resp.headers, await resp.read())


class Receiver:
    """The gateway's webhook endpoint, reduced to what the tests check: the secret, and a scripted failure."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.fail_next = 0
        self.probe: Any = None  # called on each receipt; its results land in `probed`
        self.probed: list[Any] = []
        app = web.Application()
        app.router.add_post("/webhooks/thredd", self.handle)
        self.server = SandboxServer(app)
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if request.headers.get("X-Thredd-Webhook-Secret") != SECRET:
            return web.json_response({"error": "bad secret"}, status=401)
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"error": "down"}, status=500)
        self.received.append((dict(request.headers), body))
        if self.probe is not None:
            self.probed.append(self.probe())
        return web.json_response({"ok": True})

    def types(self) -> list[str]:
        return [body["event_type"] for _, body in self.received]


@pytest.fixture
async def receiver():
    rec = Receiver()
    rec.url = await rec.server.start() + "/webhooks/thredd"
    yield rec
    await rec.server.stop()


@pytest.fixture
async def sandbox(receiver):
    sim = ThreddSandbox(webhook_retry_delays=(0.01, 0.02))
    sim.webhook_url = receiver.url  # set after construction, as the gateway does
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def client(sandbox):
    async with aiohttp.ClientSession() as session:
        yield Client(session, sandbox)


def assert_error(reply: Reply, status: int, code: str, mentions: str | None = None) -> None:
    assert reply.status == status, reply.raw
    body = reply.body
    assert set(body) == {"request_id", "status", "code", "message"}
    uuid.UUID(body["request_id"])
    assert body["status"] == status and body["code"] == code and re.fullmatch(r"[A-Z_]+", body["code"])
    if mentions:
        assert mentions in body["message"]


def accounts_path(customer: str, account: str | None = None) -> str:
    return f"/customers/{customer}/accounts" + (f"/{account}/details" if account else "")


# --- credentials -------------------------------------------------------------------------------------------------
async def test_client_id_required_and_partner_id_checked_when_sent(client, sandbox):
    path = accounts_path(CONNECTED_CUSTOMER)
    assert (await client.get(path)).status == 200
    assert (await client.get(path, headers={"client-id": CLIENT})).status == 200  # partner-id is optional
    assert_error(await client.get(path, headers={}), 401, "UNAUTHORISED", "client-id")
    assert_error(await client.get(path, headers={"client-id": "someone-else", "partner-id": PARTNER}), 401,
                 "UNAUTHORISED")
    assert_error(await client.get(path, headers={"client-id": CLIENT, "partner-id": "other"}), 401, "UNAUTHORISED",
                 "partner-id")
    assert_error(await client.call("POST", "/register", headers={}, json=REGISTER), 401, "UNAUTHORISED")
    assert_error(await client.get("/nothing-here"), 404, "INVALID_REQUEST")
    sandbox.client_id = "rotated"  # a mutable setting: tests rotate it
    assert_error(await client.get(path), 401, "UNAUTHORISED")


async def test_no_partner_configured_refuses_any_partner_id():
    sim = ThreddSandbox(partner_id=None)
    await sim.start()
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(session, sim)
            assert (await client.get(accounts_path(CONNECTED_CUSTOMER), headers={"client-id": CLIENT})).status == 200
            assert_error(await client.get(accounts_path(CONNECTED_CUSTOMER)), 401, "UNAUTHORISED")
    finally:
        await sim.stop()


# --- registration ------------------------------------------------------------------------------------------------
async def test_register_validation(client, sandbox):
    for name in ("redirect_uri", "is_hosted_in_mobile_app", "application_id"):
        body = {k: v for k, v in REGISTER.items() if k != name}
        assert_error(await client.call("POST", "/register", json=body), 400, "INVALID_REQUEST", name)
    assert_error(await client.register(mobile=True), 400, "INVALID_REQUEST", "mobile")
    assert_error(await client.register(redirect_uri="ftp://x.example/cb"), 400, "INVALID_REQUEST", "redirect_uri")
    assert_error(await client.register(is_hosted_in_mobile_app="no"), 400, "INVALID_REQUEST",
                 "is_hosted_in_mobile_app")
    assert_error(await client.register(application_id="someone-elses-app"), 400, "MASTERCARD_REJECTED")
    assert_error(await client.register(openbanking_customer_id="999"), 404, "CUSTOMER_NOT_FOUND")
    assert_error(await client.call("POST", "/register", data=b"{not json"), 400, "INVALID_REQUEST")
    assert_error(await client.call("POST", "/register", json=[REGISTER]), 400, "INVALID_REQUEST")
    before = set(sandbox.customers)
    ok = await client.register()
    assert ok.status == 200 and set(ok.body) == {"request_id", "openbanking_customer_id", "link"}
    assert ok.body["openbanking_customer_id"].isdigit() and ok.body["openbanking_customer_id"] not in before
    assert ok.body["link"].startswith(sandbox.base_url + "/connect/sim/")
    # registered, not connected: an empty list
    listing = await client.get(accounts_path(ok.body["openbanking_customer_id"]))
    assert listing.status == 200 and listing.body["count"] == 0 and listing.body["accounts"] == []


# --- Connect and its webhooks ------------------------------------------------------------------------------------
def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


async def test_connect_approve_links_accounts_and_sends_webhooks_in_order(client, sandbox, receiver):
    reg = (await client.register()).body
    customer, link = reg["openbanking_customer_id"], reg["link"]
    async with client.session.get(link) as resp:
        page = await resp.json()
    assert resp.status == 200 and page["openbanking_customer_id"] == customer
    assert set(page["complete"]["outcomes"]) == {"approve", "reject", "invalid_credentials"}
    assert "102105" in {i["id"] for i in page["institutions"]}

    # what the sandbox had answered the end user when each webhook arrived
    receiver.probe = lambda: sandbox.calls.matching("POST", r"^/connect/sim/")[-1].status
    done = await client.end_user(link)  # defaults: approve at 102105
    assert done.status == 200
    redirect = done.body["redirect_to"]
    assert redirect.startswith("https://app.example.com/cb?")
    assert _query(redirect) == {"state": ["s1"], "code": ["200"], "reason": ["done"]}
    await sandbox.wait_webhooks_idle()
    assert receiver.types() == ["started", "added", "done"]
    assert receiver.probed == [200, 200, 200]  # the redirect answer went out before the first webhook
    for headers, body in receiver.received:
        assert headers["X-Thredd-Webhook-Secret"] == SECRET
        assert headers["Content-Type"].startswith("application/json")
        assert set(body) == {"event_id", "event_code", "event_name", "openbanking_customer_id", "event_type",
                             "timestamp", "payload"}
        assert body["event_code"] == 117 and body["event_name"] == "Open Banking Registration"
        assert body["openbanking_customer_id"] == customer
        uuid.UUID(body["event_id"])
        assert body["timestamp"].endswith("Z") and datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert len({b["event_id"] for _, b in receiver.received}) == 3
    added = receiver.received[1][1]["payload"]
    assert added["institutionId"] == "102105" and added["accounts"] == done.body["accounts"]

    listing = (await client.get(accounts_path(customer))).body
    assert listing["count"] == 2 and {a["type"] for a in listing["accounts"]} == {"checking", "savings"}
    assert [a["id"] for a in listing["accounts"]] == added["accounts"]
    for account in listing["accounts"]:
        assert account["customerId"] == customer and account["currency"] == "USD"
        assert account["institutionId"] == "102105" and account["status"] == "active"
        for key in ("number", "accountNumberDisplay", "realAccountNumberLast4", "name", "institutionLoginId",
                    "balance", "balanceDate", "createdDate"):
            assert key in account
        details = (await client.get(accounts_path(customer, account["id"]))).body
        instruction = details["paymentInstruction"]
        assert instruction["type"] == "ach" and instruction["accountNumber"].isdigit()
        assert instruction["accountNumber"].endswith(account["realAccountNumberLast4"])
        [routing] = instruction["descriptors"]
        assert routing["type"] == "routingNumber" and is_valid_aba(routing["value"])

    # single use
    assert (await client.end_user(link)).status == 410
    async with client.session.get(link) as resp:
        assert resp.status == 410
    async with client.session.get(sandbox.base_url + "/connect/sim/nope") as resp:
        assert resp.status == 404
    # connecting the same customer again at the same bank keeps its accounts
    again = await client.register(openbanking_customer_id=customer)
    assert again.status == 200 and again.body["openbanking_customer_id"] == customer
    assert (await client.end_user(again.body["link"])).status == 200
    assert (await client.get(accounts_path(customer))).body["count"] == 2


async def test_connect_reject_and_invalid_credentials(client, sandbox, receiver):
    reg = (await client.register()).body
    out = await client.end_user(reg["link"], outcome="reject")
    assert out.status == 200 and _query(out.body["redirect_to"])["code"] == ["100"]
    assert _query(out.body["redirect_to"])["reason"] == ["exited"]
    await sandbox.wait_webhooks_idle()
    assert receiver.types() == ["started"]
    assert (await client.get(accounts_path(reg["openbanking_customer_id"]))).body["count"] == 0

    receiver.received.clear()
    reg = (await client.register()).body
    out = await client.end_user(reg["link"], outcome="invalid_credentials", institution_id="102224")
    assert out.status == 200
    assert _query(out.body["redirect_to"])["code"] == ["103"] and _query(out.body["redirect_to"])["reason"] == ["error"]
    await sandbox.wait_webhooks_idle()
    assert receiver.types() == ["started", "invalidCredentials"]
    assert receiver.received[1][1]["payload"]["institutionId"] == "102224"
    assert (await client.get(accounts_path(reg["openbanking_customer_id"]))).body["count"] == 0

    reg = (await client.register()).body  # a bad choice does not use up the link
    assert (await client.end_user(reg["link"], outcome="maybe")).status == 400
    assert (await client.end_user(reg["link"], institution_id="42")).status == 400
    assert (await client.end_user(reg["link"], username="x")).status == 400
    assert (await client.end_user(reg["link"], institution_id="102224")).status == 200


async def test_without_webhook_url_connect_still_completes(client, sandbox, receiver):
    sandbox.webhook_url = None
    reg = (await client.register()).body
    assert (await client.end_user(reg["link"])).status == 200
    await sandbox.wait_webhooks_idle()
    assert receiver.received == [] and sandbox.webhook_deliveries == []
    assert (await client.get(accounts_path(reg["openbanking_customer_id"]))).body["count"] == 2


# --- seeded data, details, revocation ----------------------------------------------------------------------------
async def test_seeded_customers_accounts_and_details(client, sandbox):
    first = (await client.get(accounts_path(CONNECTED_CUSTOMER))).body
    assert first["count"] == 2 and [a["id"] for a in first["accounts"]] == ["7300000001", "7300000002"]
    second = (await client.get(accounts_path(SECOND_CONNECTED_CUSTOMER))).body
    assert [a["id"] for a in second["accounts"]] == ["7300000011", "7300000012"]
    assert (await client.get(accounts_path(UNCONNECTED_CUSTOMER))).body["count"] == 0
    numbers = []
    for account in first["accounts"] + second["accounts"]:
        details = await client.get(accounts_path(account["customerId"], account["id"]))
        assert details.status == 200
        [routing] = details.body["paymentInstruction"]["descriptors"]
        assert is_valid_aba(routing["value"])
        numbers.append((details.body["paymentInstruction"]["accountNumber"], routing["value"]))
    assert_error(await client.get(accounts_path(CONNECTED_CUSTOMER, "7300000011")), 404, "ACCOUNT_NOT_FOUND")
    assert_error(await client.get(accounts_path(CONNECTED_CUSTOMER, "1")), 404, "ACCOUNT_NOT_FOUND")
    assert_error(await client.get(accounts_path("123")), 404, "CUSTOMER_NOT_FOUND")
    assert_error(await client.get(accounts_path("123", "7300000001")), 404, "CUSTOMER_NOT_FOUND")

    # deterministic per seed
    same, other = ThreddSandbox(), ThreddSandbox(seed=12)
    seeded = [a for c in (CONNECTED_CUSTOMER, SECOND_CONNECTED_CUSTOMER) for a in same.customers[c].accounts]
    assert [(a.number, a.routing) for a in seeded] == numbers
    assert [a.number for a in other.customers[CONNECTED_CUSTOMER].accounts] != [n for n, _ in numbers[:2]]


async def test_revocation_makes_the_customer_unknown(client, sandbox):
    reg = (await client.register(openbanking_customer_id=UNCONNECTED_CUSTOMER)).body
    sandbox.revoke_customer(CONNECTED_CUSTOMER)
    sandbox.revoke_customer(UNCONNECTED_CUSTOMER)
    assert sandbox.customers[CONNECTED_CUSTOMER].revoked
    assert_error(await client.get(accounts_path(CONNECTED_CUSTOMER)), 404, "CUSTOMER_NOT_FOUND")
    assert_error(await client.get(accounts_path(CONNECTED_CUSTOMER, "7300000001")), 404, "CUSTOMER_NOT_FOUND")
    assert_error(await client.register(openbanking_customer_id=CONNECTED_CUSTOMER), 404, "CUSTOMER_NOT_FOUND")
    assert (await client.end_user(reg["link"])).status == 410  # its open link is dead too
    assert (await client.get(accounts_path(SECOND_CONNECTED_CUSTOMER))).status == 200  # others unaffected
    with pytest.raises(KeyError):
        sandbox.revoke_customer("404404")


# --- test-sent events and retries --------------------------------------------------------------------------------
async def test_send_event_duplicate_and_forged(sandbox, receiver):
    first = await sandbox.send_event(CONNECTED_CUSTOMER, "started", event_id="evt-fixed-1")
    again = await sandbox.send_event(CONNECTED_CUSTOMER, "started", event_id="evt-fixed-1")
    assert first["status"] == again["status"] == 200
    assert first["event"]["event_id"] == again["event"]["event_id"] == "evt-fixed-1"
    assert [b["event_id"] for _, b in receiver.received] == ["evt-fixed-1", "evt-fixed-1"]
    forged = await sandbox.send_event(CONNECTED_CUSTOMER, "done", secret="not-the-secret",
                                      payload={"institutionId": "102105"})
    assert forged["status"] == 401 and forged["event"]["payload"] == {"institutionId": "102105"}
    assert len(receiver.received) == 2  # the forged one was refused
    assert [d["status"] for d in sandbox.webhook_deliveries] == [200, 200, 401]  # sent once each, never retried


async def test_webhook_retried_after_a_500_and_after_connection_errors(client, sandbox, receiver):
    receiver.fail_next = 1
    reg = (await client.register()).body
    await client.end_user(reg["link"])
    await sandbox.wait_webhooks_idle()
    assert receiver.types() == ["started", "added", "done"]  # still in order
    rows = [(d["event_type"], d["attempt"], d["status"]) for d in sandbox.webhook_deliveries]
    assert rows == [("started", 1, 500), ("started", 2, 200), ("added", 1, 200), ("done", 1, 200)]
    assert sandbox.webhook_deliveries[0]["event_id"] == sandbox.webhook_deliveries[1]["event_id"]

    sandbox.webhook_deliveries.clear()
    sandbox.webhook_url = "http://127.0.0.1:9/webhooks/thredd"  # nothing listens there
    reg = (await client.register()).body
    started = time.monotonic()
    await client.end_user(reg["link"], outcome="reject")
    await sandbox.wait_webhooks_idle()
    assert time.monotonic() - started >= 0.03  # the two backoff delays
    assert [(d["attempt"], d["status"]) for d in sandbox.webhook_deliveries] == [(1, None), (2, None), (3, None)]
    assert all(d["error"] for d in sandbox.webhook_deliveries)


# --- faults --------------------------------------------------------------------------------------------------------
async def test_every_fault_kind_is_observable(client, sandbox):
    path = accounts_path(CONNECTED_CUSTOMER)
    sandbox.faults.add("latency", path="/accounts$", delay=0.2)
    started = time.monotonic()
    assert (await client.get(path)).status == 200
    assert time.monotonic() - started >= 0.2

    sandbox.faults.add("status", path="/accounts$", status=500)
    assert_error(await client.get(path), 500, "INTERNAL_ERROR")
    sandbox.faults.add("status", path="/details$", status=404)
    assert_error(await client.get(accounts_path(CONNECTED_CUSTOMER, "7300000001")), 404, "ACCOUNT_NOT_FOUND")
    sandbox.faults.add("status", path="/register$", status=400)
    assert_error(await client.register(), 400, "INVALID_REQUEST")

    sandbox.faults.add("rate_limit", path="/accounts$", retry_after=7)
    reply = await client.get(path)
    assert reply.status == 429 and reply.headers["Retry-After"] == "7" and reply.body["status"] == 429

    sandbox.faults.add("malformed_json", path="/accounts$")
    reply = await client.get(path)
    assert reply.status == 200
    with pytest.raises(ValueError):
        orjson.loads(reply.raw)

    # aiohttp's client resends an idempotent request once after a disconnect, hence times=2 for a GET.
    sandbox.faults.add("drop_connection", path="/accounts$", times=2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.get(path)
    sandbox.faults.add("drop_connection", path="/register$")
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.register()

    sandbox.faults.add("expired_token", path="/accounts$")  # no tokens here: the request is refused as unauthorised
    assert_error(await client.get(path), 401, "UNAUTHORISED")
    assert sandbox.faults.faults == [] and (await client.get(path)).status == 200
    assert [c.status for c in sandbox.calls][-4:] == [None, None, 401, 200]


async def test_control_routes_and_call_log(client, sandbox):
    base = sandbox.base_url + "/_sandbox"
    session = client.session
    async with session.post(base + "/faults", json={"kind": "status", "status": 503, "path": "/accounts$"}) as r:
        assert r.status == 201
    assert_error(await client.get(accounts_path(CONNECTED_CUSTOMER)), 503, "INTERNAL_ERROR")
    async with session.post(base + "/actions/expire_credentials") as r:
        assert r.status == 200
    assert_error(await client.get(accounts_path(CONNECTED_CUSTOMER)), 401, "UNAUTHORISED")
    assert (await client.get(accounts_path(CONNECTED_CUSTOMER))).status == 200
    async with session.post(base + "/actions/wait_webhooks_idle") as r:
        assert r.status == 200
    async with session.get(base + "/calls") as r:
        calls = (await r.json())["calls"]
    assert [c["status"] for c in calls] == [503, 401, 200]
    assert calls[-1]["headers"]["client-id"] == CLIENT and calls[-1]["headers"]["partner-id"] == PARTNER
    assert not any(c["path"].startswith("/_sandbox") for c in calls)
    await client.register()
    assert sandbox.calls.matching("POST", r"/register$")[0].json() == REGISTER
    async with session.delete(base + "/calls") as r:
        assert r.status == 204
    assert len(sandbox.calls) == 0


async def test_webhooks_follow_the_redirect_across_links(client, sandbox, receiver):
    """Two sessions finished back to back: each batch is delivered whole, in the order the sessions finished."""
    links = [(await client.register()).body for _ in range(2)]
    await asyncio.gather(*(client.end_user(r["link"]) for r in links))
    await sandbox.wait_webhooks_idle()
    by_customer: dict[str, list[str]] = {}
    for _, body in receiver.received:
        by_customer.setdefault(body["openbanking_customer_id"], []).append(body["event_type"])
    assert list(by_customer.values()) == [["started", "added", "done"]] * 2
    assert receiver.types()[:3] == ["started", "added", "done"]
