"""The simulated Stripe UK ASPSP's event notifications (OB v3.1.2 Event Notification API) over real HTTPS with mutual
TLS: the event-subscription resource (spec checks, the bank's rules, one subscription per TPP, signed requests and
answers), and the Security Event Tokens it POSTs to a subscriber when a payment's status changes or the PSU revokes
a consent in the bank's app: their claims against the v3.1.2 OBEventNotification1 schema, their signature against
/jwks (checked here, not with the simulator's JOSE code), ordering, retries, forged signatures, and faults.

The TPP's callback endpoint is a small aiohttp app in the test, answering what each test tells it to.
"""
from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.errors import BadSignatureError

import adapters.stripe_uk.sandbox as sandbox_module
from adapters.sandbox_kit import OpenAPISpec
from adapters.stripe_uk.sandbox_events import CONSENT_REVOKED, EVENTS_BASE, RESOURCE_UPDATE, ROUTES
from adapters.stripe_uk.sandbox_pis import PIS_BASE
from gateway.certificates.keys import client_ssl_context
from tests.sandbox.replies import Reply
from tests.sandbox.test_stripe_uk_pis_sandbox import UNSET, Payer, consent_body, stranger_key
from tests.sandbox.test_stripe_uk_sandbox import _sandbox, material  # noqa: F401 (fixture)

TIMELINE = (0.05, 0.12)
OB = "http://openbanking.org.uk/"
NOTIFICATIONS_SPEC = Path(sandbox_module.__file__).parent / "upstream-event-notifications-openapi.yaml"
# The v3.1.2 swagger's OBEvent1 lists only resource-update (and forbids other members), while the v3.1.2 data model
# adds consent-authorization-revoked (OBEventConsentAuthorizationRevoked1: a subject, an optional reason). Patched so
# both validate; nothing else in the file is changed.
NOTIFICATION_PATCHES = {"/components/schemas/OBEvent1": {
    "type": "object", "minProperties": 1, "additionalProperties": False,
    "properties": {RESOURCE_UPDATE: {"$ref": "#/components/schemas/OBEventResourceUpdate1"},
                   CONSENT_REVOKED: {"type": "object", "additionalProperties": False, "required": ["subject"],
                                     "properties": {"subject": {"$ref": "#/components/schemas/OBEventSubject1"},
                                                    "reason": {"type": "string"}}}}}}


class Receiver:
    """The TPP's event-notification endpoint: records each request, answers from `answers` (then 202)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append({"headers": dict(request.headers), "body": await request.read()})
        return web.Response(status=self.answers.pop(0) if self.answers else 202)


class Subscriber(Payer):
    """The gateway's side of event subscriptions: signed requests, and every answer checked against the spec."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.events_seen: set[tuple[str, str, int]] = set()
        self._events_error_schema = self.sandbox.events_spec.validator(
            {"$ref": "#/components/schemas/OBErrorResponse1"}, "response")

    async def events(self, method: str, path: str, *, token: str | None, body: Any = None, raw: bytes | None = None,
                     signature: Any = UNSET, check: bool = True) -> Reply:
        sent = {"Accept": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        if body is not None and raw is None:
            raw = json.dumps(body).encode()
        if raw is not None:
            sent["Content-Type"] = "application/json"
            if signature is UNSET:
                signature = self.sign(raw)
            if isinstance(signature, str):
                sent["x-jws-signature"] = signature
        async with self.session.request(method, self.sandbox.issuer + EVENTS_BASE + path, headers=sent,
                                        data=raw) as resp:
            reply = Reply(resp.status, resp.headers, await resp.read())
        if check:
            self._events_conform(method, path, reply)
        return reply

    def _events_conform(self, method: str, path: str, reply: Reply) -> None:
        op = self.sandbox.events_spec.find(method, path)[0]
        if reply.raw:
            if reply.status in (401, 404, 409):  # no body in the spec (409: not in it at all); OBErrorResponse1 here
                assert list(self._events_error_schema.iter_errors(reply.body)) == [], reply.body
            else:
                problems = op.check_response(reply.status, reply.raw, reply.headers.get("Content-Type", ""))
                assert problems == [], f"{method} {path} -> {reply.status} breaks the spec: {problems}"
        else:
            assert op.check_response(reply.status, b"") == [], (method, path, reply.status)
        self.events_seen.add((op.method, op.template, reply.status))

    async def subscribe(self, client_id: str, url: str, **data: Any) -> dict[str, Any]:
        reply = await self.events("POST", "/event-subscriptions", token=await self.cc_token(client_id),
                                  body={"Data": {"CallbackUrl": url, "Version": "3.1", **data}})
        assert reply.status == 201, reply.body
        await self.verify_answer(reply)
        return reply.body["Data"]


@pytest.fixture
async def sandbox(material):  # noqa: F811
    sim = _sandbox(material, payment_timeline=TIMELINE, event_retry_delays=(0.01, 0.02))
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def tpp(sandbox, material):  # noqa: F811
    import ssl

    trust = ssl.create_default_context(cafile=str(material.ca_cert))
    mtls = client_ssl_context(material.transport_cert, material.transport_key, material.ca_cert)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=mtls)) as session, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as anonymous:
        yield Subscriber(sandbox, material, session, anonymous)


@pytest.fixture
async def receiver(aiohttp_server):
    found = Receiver()
    app = web.Application()
    app.router.add_post("/webhooks/stripe-uk", found.handle)
    server = await aiohttp_server(app)
    found.url = str(server.make_url("/webhooks/stripe-uk"))
    return found


def notification_schema() -> Any:
    spec = OpenAPISpec.load(NOTIFICATIONS_SPEC, NOTIFICATION_PATCHES)
    return spec.validator({"$ref": "#/components/schemas/OBEventNotification1"}, "response")


async def read_notification(tpp: Subscriber, received: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The verified header and claims of one notification, checked against the schema and the headers."""
    assert received["headers"]["Content-Type"] == "application/jwt"
    assert received["headers"]["x-fapi-financial-id"] == tpp.sandbox.aspsp_org_id
    token = received["body"].decode()
    decoded = jwt.decode(token, await tpp.aspsp_keys(), algorithms=["PS256"])
    claims = dict(decoded.claims)
    assert decoded.header == {"alg": "PS256", "kid": tpp.sandbox.kid, "typ": "JWT"}
    assert list(notification_schema().iter_errors(claims)) == [], claims
    assert received["headers"]["x-fapi-interaction-id"] == claims["txn"]
    return dict(decoded.header), claims


# --- the subscription resource ----------------------------------------------------------------------------------
async def test_subscription_lifecycle(tpp, sandbox, receiver):
    client_id = await tpp.client()
    token = await tpp.cc_token(client_id, "payments")
    listed = await tpp.events("GET", "/event-subscriptions", token=token)
    assert listed.status == 200 and listed.body["Data"] == {"EventSubscription": []}
    created = await tpp.subscribe(client_id, receiver.url, EventTypes=[RESOURCE_UPDATE, RESOURCE_UPDATE])
    sub_id = created["EventSubscriptionId"]
    assert sub_id.startswith("es-") and len(sub_id) <= 40
    assert created == {"EventSubscriptionId": sub_id, "CallbackUrl": receiver.url, "Version": "3.1",
                       "EventTypes": [RESOURCE_UPDATE]}
    again = await tpp.events("POST", "/event-subscriptions", token=token,
                             body={"Data": {"CallbackUrl": receiver.url, "Version": "3.1"}})
    assert again.status == 409 and sub_id in again.body["Errors"][0]["Message"]  # one subscription per TPP
    await tpp.verify_answer(again)
    listed = await tpp.events("GET", "/event-subscriptions", token=token)
    assert listed.body["Data"]["EventSubscription"] == [created]
    assert listed.body["Links"]["Self"] == f"{sandbox.issuer}{EVENTS_BASE}/event-subscriptions"
    await tpp.verify_answer(listed)

    changed = await tpp.events("PUT", f"/event-subscriptions/{sub_id}", token=token,
                               body={"Data": {"EventSubscriptionId": sub_id, "CallbackUrl": receiver.url + "?v=2",
                                              "Version": "3.1"}})
    assert changed.status == 200 and changed.body["Data"] == {
        "EventSubscriptionId": sub_id, "CallbackUrl": receiver.url + "?v=2", "Version": "3.1"}  # all types now
    assert sandbox.event_subscriptions[sub_id].event_types is None
    mismatch = await tpp.events("PUT", f"/event-subscriptions/{sub_id}", token=token,
                                body={"Data": {"EventSubscriptionId": "es-other", "Version": "3.1",
                                               "CallbackUrl": receiver.url}})
    assert (mismatch.status, mismatch.body["Errors"][0]["Path"]) == (400, "Data.EventSubscriptionId")

    other = await tpp.client()
    other_token = await tpp.cc_token(other)
    for method, body in (("PUT", {"Data": {"EventSubscriptionId": sub_id, "Version": "3.1",
                                           "CallbackUrl": receiver.url}}), ("DELETE", None)):
        refused = await tpp.events(method, f"/event-subscriptions/{sub_id}", token=other_token, body=body)
        assert (refused.status, refused.body["Errors"][0]["ErrorCode"]) == (403, "UK.OBIE.Resource.ConsentMismatch")
        unknown = await tpp.events(method, "/event-subscriptions/es-nope", token=token,
                                   body=body and {"Data": {**body["Data"], "EventSubscriptionId": "es-nope"}})
        assert unknown.status == 404
    assert (await tpp.events("GET", "/event-subscriptions", token=other_token)).body["Data"]["EventSubscription"] == []

    deleted = await tpp.events("DELETE", f"/event-subscriptions/{sub_id}", token=token)
    assert deleted.status == 204 and deleted.raw == b"" and sub_id not in sandbox.event_subscriptions
    assert (await tpp.events("GET", "/event-subscriptions", token=token)).body["Data"]["EventSubscription"] == []
    await tpp.subscribe(client_id, receiver.url)  # a new one may be made once the old one is gone


async def test_deleting_the_client_ends_its_subscription(tpp, sandbox, receiver):
    client_id = await tpp.client()
    await tpp.subscribe(client_id, receiver.url)
    sandbox.world.remove_client(client_id)
    assert sandbox.event_subscriptions == {}


def _error_paths(reply: Reply) -> list[tuple[str, str | None]]:
    return [(e["ErrorCode"], e.get("Path")) for e in reply.body["Errors"]]


@pytest.mark.parametrize("data, expected", [
    ({"Version": "3.1"}, [("UK.OBIE.Field.Missing", "Data.CallbackUrl")]),  # real time only: no aggregated polling
    ({"CallbackUrl": "RECEIVER"}, [("UK.OBIE.Field.Missing", "Data.Version")]),
    ({"CallbackUrl": "RECEIVER", "Version": "3.1.2.1234567"}, [("UK.OBIE.Field.Invalid", "Data.Version")]),
    ({"CallbackUrl": "RECEIVER", "Version": "2.0"}, [("UK.OBIE.Field.Invalid", "Data.Version")]),
    ({"CallbackUrl": 42, "Version": "3.1"}, [("UK.OBIE.Field.Invalid", "Data.CallbackUrl")]),
    ({"CallbackUrl": "http://tpp.example.com/events", "Version": "3.1"}, [("UK.OBIE.Field.Invalid",
                                                                           "Data.CallbackUrl")]),
    ({"CallbackUrl": "/relative/events", "Version": "3.1"}, [("UK.OBIE.Field.Invalid", "Data.CallbackUrl")]),
    ({"CallbackUrl": "https://user:pw@tpp.example.com/e", "Version": "3.1"}, [("UK.OBIE.Field.Invalid",
                                                                                "Data.CallbackUrl")]),
    ({"CallbackUrl": "RECEIVER", "Version": "3.1", "EventTypes": "all"}, [("UK.OBIE.Field.Invalid",
                                                                           "Data.EventTypes")]),
    ({"CallbackUrl": "RECEIVER", "Version": "3.1", "EventTypes": []}, [("UK.OBIE.Field.Invalid",
                                                                        "Data.EventTypes")]),
    ({"CallbackUrl": "RECEIVER", "Version": "3.1",
      "EventTypes": [RESOURCE_UPDATE, "urn:uk:org:openbanking:events:account-access-consent-linked-account-update"]},
     [("UK.OBIE.Field.Invalid", "Data.EventTypes[1]")]),
    ({"Version": "9.9", "EventTypes": ["nope"]}, [("UK.OBIE.Field.Missing", "Data.CallbackUrl"),
                                                  ("UK.OBIE.Field.Invalid", "Data.Version"),
                                                  ("UK.OBIE.Field.Invalid", "Data.EventTypes[0]")]),  # all at once
])
async def test_subscriptions_the_bank_refuses(tpp, sandbox, receiver, data, expected):
    client_id = await tpp.client()
    data = {k: receiver.url if v == "RECEIVER" else v for k, v in data.items()}
    reply = await tpp.events("POST", "/event-subscriptions", token=await tpp.cc_token(client_id), body={"Data": data})
    assert reply.status == 400 and _error_paths(reply) == expected, reply.body
    await tpp.verify_answer(reply)
    assert sandbox.event_subscriptions == {}


async def test_requests_refused_before_the_handler(tpp, sandbox, receiver):
    client_id = await tpp.client()
    token = await tpp.cc_token(client_id)
    good = {"Data": {"CallbackUrl": receiver.url, "Version": "3.1"}}
    reply = await tpp.events("POST", "/event-subscriptions", token=token, body={"Version": "3.1"})
    assert (reply.status, _error_paths(reply)) == (400, [("UK.OBIE.Field.Missing", "Data")])
    reply = await tpp.events("POST", "/event-subscriptions", token=token, raw=b"{not json")
    assert _error_paths(reply) == [("UK.OBIE.Resource.InvalidFormat", None)]
    reply = await tpp.events("POST", "/event-subscriptions", token=token, body=good, signature=None)
    assert _error_paths(reply) == [("UK.OBIE.Signature.Missing", "x-jws-signature")]
    raw = json.dumps(good).encode()
    reply = await tpp.events("POST", "/event-subscriptions", token=token, raw=raw, signature=tpp.sign(raw + b" "))
    assert _error_paths(reply) == [("UK.OBIE.Signature.Invalid", "x-jws-signature")]
    reply = await tpp.events("POST", "/event-subscriptions", token=token, raw=raw,
                             signature=tpp.sign(raw, stranger_key()))
    assert reply.status == 400 and reply.body["Errors"][0]["ErrorCode"] == "UK.OBIE.Signature.Invalid"
    reply = await tpp.events("PUT", "/event-subscriptions/es-x", token=token, raw=raw, signature=None)
    assert reply.status == 400  # the spec check: the PUT body is OBEventSubscriptionResponse1, and it is signed
    assert {p for _, p in _error_paths(reply)} == {"Data.EventSubscriptionId", "x-jws-signature"}
    assert (await tpp.events("GET", "/event-subscriptions", token=None)).status == 401
    assert (await tpp.events("GET", "/event-subscriptions", token="not-a-token")).status == 401
    _, consent_id, tokens = await tpp.data_tokens()  # a PSU's token is the wrong kind
    reply = await tpp.events("GET", "/event-subscriptions", token=tokens["access_token"])
    assert reply.status == 403 and "client_credentials" in reply.body["Errors"][0]["Message"]
    async with tpp.anonymous.get(sandbox.issuer + EVENTS_BASE + "/event-subscriptions",
                                 headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 401  # no client certificate
    assert sandbox.event_subscriptions == {}


# --- notifications ---------------------------------------------------------------------------------------------
async def test_payment_status_changes_are_notified_in_order(tpp, sandbox, receiver):
    client_id = await tpp.client()
    await tpp.subscribe(client_id, receiver.url)
    consent_id = await tpp.payment_consent(client_id)
    psu = (await tpp.psu_tokens(client_id, consent_id))["access_token"]
    started = time.time()
    payment_id = (await tpp.submit(psu, consent_id)).body["Data"]["DomesticPaymentId"]
    await sandbox.wait_events_idle()
    assert len(receiver.received) == 2  # Pending -> InProcess at t1, -> Completed at t2; nothing for the 201
    seen = [await read_notification(tpp, r) for r in receiver.received]
    link = f"{sandbox.issuer}{PIS_BASE}/domestic-payments/{payment_id}"
    for _, claims in seen:
        assert (claims["iss"], claims["aud"], claims["sub"]) == (sandbox.issuer, client_id, link)
        assert claims["events"] == {RESOURCE_UPDATE: {"subject": {
            "subject_type": f"{OB}rid_{OB}rty", f"{OB}rid": payment_id, f"{OB}rty": "domestic-payment",
            f"{OB}rlk": [{"version": "v3.1", "link": link}]}}}
        assert claims["toe"] == claims["iat"] and started - 1 <= claims["toe"] <= time.time() + 1
        uuid.UUID(claims["jti"]), uuid.UUID(claims["txn"])
    assert len({c["jti"] for _, c in seen}) == 2 and seen[0][1]["toe"] <= seen[1][1]["toe"]
    assert [d["status"] for d in sandbox.events.deliveries] == [202, 202]


async def test_a_rejected_payment_is_notified_once(tpp, sandbox, receiver):
    client_id = await tpp.client()
    await tpp.subscribe(client_id, receiver.url, EventTypes=[RESOURCE_UPDATE])
    consent_id = await tpp.payment_consent(client_id)
    psu = (await tpp.psu_tokens(client_id, consent_id))["access_token"]
    sandbox.reject_payments = True
    payment_id = (await tpp.submit(psu, consent_id)).body["Data"]["DomesticPaymentId"]
    await sandbox.wait_events_idle()
    assert sandbox.payments[payment_id].status == "Rejected"
    assert [c["events"][RESOURCE_UPDATE]["subject"][f"{OB}rid"]
            for _, c in [await read_notification(tpp, r) for r in receiver.received]] == [payment_id]


async def test_revocation_in_the_bank_app_is_notified(tpp, sandbox, receiver, aiohttp_server):
    client_id, consent_id, _ = await tpp.data_tokens()
    await tpp.subscribe(client_id, receiver.url)
    made = sandbox.revoke_consent(consent_id)
    await sandbox.wait_events_idle()
    assert sandbox.consents[consent_id].status == "Revoked"
    [(_, claims)] = [await read_notification(tpp, r) for r in receiver.received]
    assert made == [claims]
    link = f"{sandbox.issuer}/open-banking/v3.1/aisp/account-access-consents/{consent_id}"
    assert (claims["aud"], claims["sub"]) == (client_id, link)
    assert claims["events"] == {CONSENT_REVOKED: {"subject": {
        "subject_type": f"{OB}rid_{OB}rty", f"{OB}rid": consent_id, f"{OB}rty": "account-access-consent",
        f"{OB}rlk": [{"version": "v3.1", "link": link}]}}}
    assert sandbox.revoke_consent(consent_id) == []  # already revoked: nothing new to say


async def test_which_subscriptions_hear_what(tpp, sandbox, receiver):
    updates_only = await tpp.client()
    await tpp.subscribe(updates_only, receiver.url, EventTypes=[RESOURCE_UPDATE])
    revocations_only = await tpp.client()
    await tpp.subscribe(revocations_only, receiver.url, EventTypes=[CONSENT_REVOKED])
    silent = await tpp.client()  # no subscription
    for client_id in (updates_only, revocations_only, silent):
        consent_id = await tpp.consent(client_id)
        sandbox.revoke_consent(consent_id)
    await sandbox.wait_events_idle()
    got = [claims for _, claims in [await read_notification(tpp, r) for r in receiver.received]]
    assert sorted((c["aud"], next(iter(c["events"]))) for c in got) == sorted([
        (updates_only, RESOURCE_UPDATE),  # the backwards-compatible form of a revocation
        (revocations_only, CONSENT_REVOKED)])
    # A revocation the TPP asked for itself (DELETE) is not news to it.
    consent_id = await tpp.consent(revocations_only)
    deleted = await tpp.call("DELETE", f"/open-banking/v3.1/aisp/account-access-consents/{consent_id}",
                             token=await tpp.cc_token(revocations_only))
    assert deleted.status == 204
    # Payments of a client subscribed to revocations only are not notified.
    payment_consent = await tpp.payment_consent(revocations_only)
    psu = (await tpp.psu_tokens(revocations_only, payment_consent))["access_token"]
    await tpp.submit(psu, payment_consent)
    await sandbox.wait_events_idle()
    assert len(receiver.received) == 2


async def test_the_psu_revokes_through_the_control_route(tpp, sandbox, receiver):
    client_id, consent_id, _ = await tpp.data_tokens()
    await tpp.subscribe(client_id, receiver.url)
    path = f"/_sandbox/psu/account-access-consents/{consent_id}/revoke"
    done = await tpp.call("POST", path, mtls=False)
    assert done.status == 200 and done.body == {"revoked": consent_id, "notified": 1}
    assert (await tpp.call("POST", "/_sandbox/psu/account-access-consents/aac-nope/revoke", mtls=False)).status == 404
    await sandbox.wait_events_idle()
    assert len(receiver.received) == 1 and sandbox.consents[consent_id].status == "Revoked"
    assert not [c for c in sandbox.calls.matching() if c.path.startswith("/_sandbox/")]  # controls are not calls


async def test_failed_deliveries_are_retried_then_given_up(tpp, sandbox, receiver):
    client_id, consent_id, _ = await tpp.data_tokens()
    await tpp.subscribe(client_id, receiver.url)
    receiver.answers = [503, 500]
    sandbox.revoke_consent(consent_id)
    await sandbox.wait_events_idle()
    assert [d["status"] for d in sandbox.events.deliveries] == [503, 500, 202]
    assert len({r["body"] for r in receiver.received}) == 1  # the same notification, byte for byte
    assert [d["attempt"] for d in sandbox.events.deliveries] == [1, 2, 3]
    receiver.answers = [401, 401, 401]
    second, second_consent, _ = await tpp.data_tokens()
    await tpp.subscribe(second, receiver.url)
    sandbox.revoke_consent(second_consent)
    await sandbox.wait_events_idle()
    assert [d["status"] for d in sandbox.events.deliveries[3:]] == [401, 401, 401]  # 1 + 2 retries, then gave up


async def test_an_unreachable_callback_is_retried(tpp, sandbox, receiver):
    client_id, consent_id, _ = await tpp.data_tokens()
    await tpp.subscribe(client_id, "http://127.0.0.1:9/nobody-listens")
    sandbox.revoke_consent(consent_id)
    await sandbox.wait_events_idle()
    assert [d["status"] for d in sandbox.events.deliveries] == [None, None, None]


async def test_forged_notifications_do_not_verify(tpp, sandbox, receiver):
    client_id, consent_id, _ = await tpp.data_tokens()
    await tpp.subscribe(client_id, receiver.url)
    sandbox.forge_events = True
    sandbox.revoke_consent(consent_id)
    await sandbox.wait_events_idle()
    token = receiver.received[0]["body"].decode()
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["kid"] == sandbox.kid  # it claims the bank's key
    with pytest.raises(BadSignatureError):
        jwt.decode(token, await tpp.aspsp_keys(), algorithms=["PS256"])
    assert sandbox.events.deliveries[0]["forged"] is True


async def test_stopping_the_bank_ends_pending_notifications(material, receiver):  # noqa: F811
    sim = _sandbox(material)
    await sim.start()
    sim.world.add_event_subscription("c-1", receiver.url, "3.1", None)
    consent = sim.world.add_consent("c-1", ["ReadAccountsBasic"], None, None, None)
    sim.event_retry_delays = (30.0,)
    receiver.answers = [503]
    sim.revoke_consent(consent.consent_id)
    for _ in range(100):
        if sim.events.deliveries:
            break
        await asyncio.sleep(0.01)
    started = time.monotonic()
    await asyncio.wait_for(sim.stop(), 5)
    assert time.monotonic() - started < 2 and [d["status"] for d in sim.events.deliveries] == [503]


async def test_faults_keep_working_on_subscriptions(tpp, sandbox, receiver):
    client_id = await tpp.client()
    token = await tpp.cc_token(client_id)
    sandbox.faults.add("status", status=503, path=r"/event-subscriptions$", times=1)
    reply = await tpp.events("GET", "/event-subscriptions", token=token, check=False)
    assert reply.status == 503 and reply.body["Errors"][0]["ErrorCode"] == "UK.OBIE.UnexpectedError"
    await tpp.verify_answer(reply)  # signed like every answer on these paths
    sandbox.faults.add("lose_response", path=r"/event-subscriptions$", method="POST", times=1)
    with pytest.raises(aiohttp.ClientError):
        await tpp.events("POST", "/event-subscriptions", token=token,
                         body={"Data": {"CallbackUrl": receiver.url, "Version": "3.1"}})
    assert len(sandbox.event_subscriptions) == 1  # it took effect; a repeat now gets 409
    repeat = await tpp.events("POST", "/event-subscriptions", token=token,
                              body={"Data": {"CallbackUrl": receiver.url, "Version": "3.1"}})
    assert repeat.status == 409


# --- conformance ------------------------------------------------------------------------------------------------
def test_routes_are_exactly_the_trimmed_events_spec(material):  # noqa: F811
    served = {(m, t) for m, t, _ in ROUTES}
    assert served == {(op.method, op.template) for op in _sandbox(material).events_spec.operations()}
    assert len(served) == 4


async def test_every_subscription_operation_answers_to_the_spec(tpp, sandbox, receiver):
    client_id = await tpp.client()
    token = await tpp.cc_token(client_id)
    sub_id = (await tpp.subscribe(client_id, receiver.url))["EventSubscriptionId"]
    await tpp.events("GET", "/event-subscriptions", token=token)
    body = {"Data": {"EventSubscriptionId": sub_id, "CallbackUrl": receiver.url, "Version": "3.1"}}
    await tpp.events("PUT", f"/event-subscriptions/{sub_id}", token=token, body=body)
    await tpp.events("PUT", f"/event-subscriptions/{sub_id}", token=token, body={"Data": {}})
    await tpp.events("PUT", f"/event-subscriptions/{sub_id}", token=await tpp.cc_token(await tpp.client()), body=body)
    await tpp.events("DELETE", f"/event-subscriptions/{sub_id}", token=token)
    await tpp.events("DELETE", f"/event-subscriptions/{sub_id}", token=token)
    await tpp.events("GET", "/event-subscriptions", token="unknown")
    exercised = {(method, template) for method, template, _ in tpp.events_seen}
    assert exercised == {(op.method, op.template) for op in sandbox.events_spec.operations()}
    assert {status for *_, status in tpp.events_seen} == {200, 201, 204, 400, 401, 403, 404}
