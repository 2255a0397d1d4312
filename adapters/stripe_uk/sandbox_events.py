"""Event notifications (Open Banking v3.1.2 Event Notification API): the event-subscription resource a TPP manages
under /open-banking/v3.1, and the real-time notifications the simulated bank sends to its CallbackUrl.

`gate` runs before the subscription handlers, in the order the PIS gate uses: the bearer token (certificate-bound;
a client_credentials token with `accounts` or `payments`, the scopes the spec's TPPOAuth2Security names), the spec
check of `upstream-events-openapi.yaml`, and for POST and PUT the TPP's detached JWS over the body ("Signed Request"
in the standard's endpoint table). Answers are signed by the simulator like PIS answers ("Signed Response").

A TPP (one registered client) has at most one subscription: a second POST is refused with 409, as the standard
says. When something the TPP should hear of happens at the bank (a domestic payment's status moves on its timeline,
the PSU revokes an account-access consent in the bank's app), the `Notifier` sends each subscription of the client
that owns the resource a Security Event Token (RFC 8417): a JWT signed PS256 with the key /jwks publishes, POSTed as
`application/jwt` with `x-fapi-financial-id` and `x-fapi-interaction-id` (= the SET's `txn`). Any 2xx counts as
delivered (the standard says the TPP answers 202); otherwise it is retried on `sandbox.event_retry_delays`.
Notifications of one subscription go out in order. `sandbox.forge_events` makes the SETs signed by a key the bank
never published (with the bank's kid), for tests of the receiver.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import attrs
import orjson
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey

from adapters.stripe_uk.sandbox_ais import AIS_BASE, MISMATCH, NOT_FOUND
from adapters.stripe_uk.sandbox_http import (
    SANDBOX, BearerError, Detail, OBError, insufficient_scope, json_response, ob_bearer_error, problems_error,
)
from adapters.stripe_uk.sandbox_jose import ALG
from adapters.stripe_uk.sandbox_pis import PIS_BASE, check_request_signature
from adapters.stripe_uk.sandbox_world import CLIENT_CREDENTIALS, AccessToken, EventSubscription, Payment

log = logging.getLogger(__name__)

EVENTS_BASE = "/open-banking/v3.1"
SUBSCRIPTIONS_PATH = EVENTS_BASE + "/event-subscriptions"
RESOURCE_UPDATE = "urn:uk:org:openbanking:events:resource-update"
CONSENT_REVOKED = "urn:uk:org:openbanking:events:consent-authorization-revoked"
SUPPORTED_EVENTS = (RESOURCE_UPDATE, CONSENT_REVOKED)
VERSIONS = ("3.1",)  # the event notification version this bank sends (the standard's own examples say "3.1")
OB = "http://openbanking.org.uk/"
RID, RTY, RLK = OB + "rid", OB + "rty", OB + "rlk"
SUBJECT_TYPE = f"{RID}_{RTY}"
LINK_VERSION = "v3.1"
DOMESTIC_PAYMENT = "domestic-payment"
ACCOUNT_ACCESS_CONSENT = "account-access-consent"
RETRY_DELAYS = (1.0, 5.0, 30.0, 120.0)  # seconds between attempts after a failed one
EVENT_SCOPES = frozenset({"accounts", "payments", "fundsconfirmations"})
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
TOKEN = web.RequestKey("stripe_uk_events_token", AccessToken)
BODY = web.RequestKey("stripe_uk_events_body", dict)


# --- the gate -------------------------------------------------------------------------------------------------
async def gate(sandbox: Any, request: web.Request,
               handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    found = sandbox.events_spec.find(request.method, request.path[len(EVENTS_BASE):])
    if found is None:
        return await handler(request)  # aiohttp answers 404 / 405
    op, params = found
    try:
        token: AccessToken = sandbox.access_token(request)
    except BearerError as err:
        raise ob_bearer_error(err) from None
    if token.grant != CLIENT_CREDENTIALS:
        raise insufficient_scope("event subscriptions need an access token from the client_credentials grant")
    if not EVENT_SCOPES & set(token.scope.split()):
        raise insufficient_scope("the access token has none of the scopes accounts, payments, fundsconfirmations")
    body = await request.read() if request.body_exists else None
    problems = op.check(params, request.query, request.headers, body)
    if problems:
        raise problems_error(problems)
    request[TOKEN] = token
    if body is not None and op.method in ("POST", "PUT"):
        check_request_signature(sandbox, request, token, body)
        request[BODY] = orjson.loads(body)
    return await handler(request)


# --- the resource ---------------------------------------------------------------------------------------------
def _callback_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "CallbackUrl must be an absolute https URL"
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        return "CallbackUrl must use https (plain http is accepted only for this machine)"
    if parts.username or parts.password or parts.fragment:
        return "CallbackUrl must not carry credentials or a fragment"
    return None


def _terms(data: dict[str, Any]) -> tuple[str, str, tuple[str, ...] | None]:
    """CallbackUrl, Version and EventTypes (None: every type) of a valid request; else OBError 400 naming every
    problem. The spec makes CallbackUrl optional (a subscription for aggregated polling only); this bank offers
    real-time notifications only, so it is required here."""
    details: list[Detail] = []
    url = data.get("CallbackUrl")
    if url is None:
        details.append(Detail("UK.OBIE.Field.Missing", "this bank sends real-time notifications only (no aggregated "
                              "polling): CallbackUrl is required", "Data.CallbackUrl"))
    elif (problem := _callback_problem(url)) is not None:
        details.append(Detail("UK.OBIE.Field.Invalid", problem, "Data.CallbackUrl"))
    if data["Version"] not in VERSIONS:
        details.append(Detail("UK.OBIE.Field.Invalid", f"Version must be one of {', '.join(VERSIONS)}",
                              "Data.Version"))
    types = data.get("EventTypes")
    if types is not None:
        if not types:
            details.append(Detail("UK.OBIE.Field.Invalid", "EventTypes, when given, names at least one event type "
                                  "(leave it out for every type)", "Data.EventTypes"))
        for index, name in enumerate(types):
            if name not in SUPPORTED_EVENTS:
                details.append(Detail("UK.OBIE.Field.Invalid", f"this bank sends only {', '.join(SUPPORTED_EVENTS)}",
                                      f"Data.EventTypes[{index}]"))
    if details:
        raise OBError(400, details[0].error_code, "The event subscription is not one this bank can serve",
                      details=details)
    return str(url), str(data["Version"]), tuple(dict.fromkeys(types)) if types is not None else None


def subscription_data(subscription: EventSubscription) -> dict[str, Any]:
    data: dict[str, Any] = {"EventSubscriptionId": subscription.subscription_id,
                            "CallbackUrl": subscription.callback_url, "Version": subscription.version}
    if subscription.event_types is not None:
        data["EventTypes"] = list(subscription.event_types)
    return data


def _answer(sandbox: Any, subscription: EventSubscription, status: int = 200) -> web.Response:
    return json_response({"Data": subscription_data(subscription),
                          "Links": {"Self": f"{sandbox.issuer}{SUBSCRIPTIONS_PATH}/{subscription.subscription_id}"},
                          "Meta": {}}, status)


async def create_subscription(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    client_id = request[TOKEN].client_id
    url, version, types = _terms(request[BODY]["Data"])
    existing = sandbox.world.subscriptions_of(client_id)
    if existing:  # the standard: "An ASPSP must respond with a 409 error if an event-subscription exists for that TPP"
        raise OBError(409, "UK.OBIE.Field.Unexpected", f"this TPP already has event subscription "
                      f"{existing[0].subscription_id}: change it with PUT or delete it first")
    subscription = sandbox.world.add_event_subscription(client_id, url, version, types)
    return _answer(sandbox, subscription, 201)


async def list_subscriptions(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    mine = sandbox.world.subscriptions_of(request[TOKEN].client_id)
    return json_response({"Data": {"EventSubscription": [subscription_data(s) for s in mine]},
                          "Links": {"Self": sandbox.issuer + SUBSCRIPTIONS_PATH}, "Meta": {}})


def _owned(request: web.Request) -> EventSubscription:
    found = request.app[SANDBOX].world.event_subscriptions.get(request.match_info["EventSubscriptionId"])
    if found is None:
        raise OBError(404, NOT_FOUND, "no event subscription has this EventSubscriptionId",
                      path="EventSubscriptionId")
    if found.client_id != request[TOKEN].client_id:
        raise OBError(403, MISMATCH, "the event subscription belongs to another TPP", path="EventSubscriptionId")
    return found


async def change_subscription(request: web.Request) -> web.Response:
    subscription = _owned(request)
    data = request[BODY]["Data"]
    if data["EventSubscriptionId"] != subscription.subscription_id:
        raise OBError(400, "UK.OBIE.Field.Invalid", "EventSubscriptionId must be the one in the path",
                      path="Data.EventSubscriptionId")
    # PUT replaces: what the body leaves out (EventTypes) goes back to its default (every type).
    subscription.callback_url, subscription.version, subscription.event_types = _terms(data)
    return _answer(request.app[SANDBOX], subscription)


async def delete_subscription(request: web.Request) -> web.Response:
    subscription = _owned(request)
    del request.app[SANDBOX].world.event_subscriptions[subscription.subscription_id]
    return web.Response(status=204)


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/event-subscriptions", create_subscription),
    ("GET", "/event-subscriptions", list_subscriptions),
    ("PUT", "/event-subscriptions/{EventSubscriptionId}", change_subscription),
    ("DELETE", "/event-subscriptions/{EventSubscriptionId}", delete_subscription),
]


# --- notifications --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def forger_key() -> RSAKey:
    """A key the bank never published: what `forge_events` signs with (made once per process)."""
    return RSAKey.generate_key(2048)


@attrs.frozen
class Delivery:
    subscription_id: str
    url: str
    event_type: str
    rty: str
    rid: str
    claims: dict[str, Any]
    token: str
    forged: bool


class Notifier:
    """Makes, signs and delivers the bank's event notifications from background tasks; `idle()` waits for them
    (and for payments still moving along their timeline), `close()` cancels them. Every attempt is appended to
    `deliveries`."""

    def __init__(self, sandbox: Any, *, timeout: float = 5.0) -> None:
        self.sandbox = sandbox
        self.timeout = timeout
        self.deliveries: list[dict[str, Any]] = []
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._channels: dict[str, asyncio.Task[None]] = {}

    # --- what happens at the bank ------------------------------------------------------------------------------
    def payment_submitted(self, payment: Payment) -> None:
        """Follow the payment along its timeline, notifying each status change when it happens."""
        first, second = payment.timeline
        moments = [first] if payment.rejected or second <= first else [first, second]
        if any(at > 0 for at in moments):
            self._spawn(self._follow(payment, [at for at in moments if at > 0]))

    async def _follow(self, payment: Payment, moments: list[float]) -> None:
        link = f"{self.sandbox.issuer}{PIS_BASE}/domestic-payments/{payment.payment_id}"
        for at in moments:
            await asyncio.sleep(max(0.0, payment.submitted_at + at - time.monotonic()))
            self.notify(payment.client_id, RESOURCE_UPDATE, DOMESTIC_PAYMENT, payment.payment_id, link)

    def consent_revoked(self, client_id: str, consent_id: str) -> list[dict[str, Any]]:
        link = f"{self.sandbox.issuer}{AIS_BASE}/account-access-consents/{consent_id}"
        return self.notify(client_id, CONSENT_REVOKED, ACCOUNT_ACCESS_CONSENT, consent_id, link)

    # --- making them ---------------------------------------------------------------------------------------------
    def notify(self, client_id: str, event: str, rty: str, rid: str, link: str) -> list[dict[str, Any]]:
        """Queue `event` about a resource of `client_id` to each of its subscriptions that takes it; the claims."""
        made = []
        for subscription in self.sandbox.world.subscriptions_of(client_id):
            chosen = _event_for(subscription, event)
            if chosen is None:
                continue
            claims = self.claims(client_id, chosen, rty, rid, link)
            forged = bool(self.sandbox.forge_events)
            self.queue(Delivery(subscription.subscription_id, subscription.callback_url, chosen, rty, rid, claims,
                                self.sign(claims, forged=forged), forged))
            made.append(claims)
        return made

    def claims(self, client_id: str, event: str, rty: str, rid: str, link: str) -> dict[str, Any]:
        """OBEventNotification1: a SET about one resource, made now (its time of event)."""
        now = int(self.sandbox.clock())
        subject = {"subject_type": SUBJECT_TYPE, RID: rid, RTY: rty, RLK: [{"version": LINK_VERSION, "link": link}]}
        return {"iss": self.sandbox.issuer, "iat": now, "jti": str(uuid.uuid4()), "aud": client_id, "sub": link,
                "txn": str(uuid.uuid4()), "toe": now, "events": {event: {"subject": subject}}}

    def sign(self, claims: dict[str, Any], *, forged: bool = False) -> str:
        key = forger_key() if forged else self.sandbox.signing_key
        return jwt.encode({"alg": ALG, "kid": self.sandbox.kid, "typ": "JWT"}, claims, key, algorithms=[ALG])

    # --- delivering them -------------------------------------------------------------------------------------------
    def _spawn(self, work: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def queue(self, delivery: Delivery) -> None:
        """Deliver after what this subscription has queued before, retrying on the sandbox's schedule."""
        channel = delivery.subscription_id
        task = self._spawn(self._deliver(self._channels.get(channel), delivery))
        self._channels[channel] = task
        task.add_done_callback(lambda t: self._channels.pop(channel, None) if self._channels.get(channel) is t
                               else None)

    async def _deliver(self, previous: asyncio.Task[None] | None, delivery: Delivery) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        delays = tuple(self.sandbox.event_retry_delays)
        for attempt in range(1, len(delays) + 2):
            status = await self.post(delivery, attempt)
            if status is not None and 200 <= status < 300:
                return
            if attempt <= len(delays):
                await asyncio.sleep(delays[attempt - 1])
        log.warning("stripe-uk sandbox gave up on event notification %s to %s", delivery.claims["jti"], delivery.url)

    async def post(self, delivery: Delivery, attempt: int = 1) -> int | None:
        """One attempt, recorded: the answer's status, or None when no answer came."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        headers = {"Content-Type": "application/jwt", "x-fapi-financial-id": self.sandbox.aspsp_org_id,
                   "x-fapi-interaction-id": delivery.claims["txn"]}
        status: int | None = None
        try:
            async with self._session.post(delivery.url, data=delivery.token.encode(), headers=headers) as resp:
                status = resp.status
                await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            log.info("stripe-uk sandbox event notification to %s failed: %r", delivery.url, exc)
        self.deliveries.append({"subscription_id": delivery.subscription_id, "url": delivery.url,
                                "jti": delivery.claims["jti"], "event_type": delivery.event_type,
                                "rty": delivery.rty, "rid": delivery.rid, "claims": delivery.claims,
                                "token": delivery.token, "forged": delivery.forged, "attempt": attempt,
                                "status": status})
        return status

    async def idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._channels.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None


def _event_for(subscription: EventSubscription, event: str) -> str | None:
    """The event type a subscription hears `event` as: itself when it takes it; a consent revocation as a
    resource-update when it takes only those (the backwards-compatible notification v3.1.2 describes); else None."""
    types = subscription.event_types or SUPPORTED_EVENTS
    if event in types:
        return event
    if event == CONSENT_REVOKED and RESOURCE_UPDATE in types:
        return RESOURCE_UPDATE
    return None
