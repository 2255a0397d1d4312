"""A simulated Thredd Open Banking upstream (US instant account verification, on Mastercard Finicity).

The API lives under `/api/v1/open-banking`:

    POST /register                                       a Connect link for a new (or an existing) customer
    GET  /customers/{id}/accounts                        Finicity-shaped accounts, with request_id and count
    GET  /customers/{id}/accounts/{account_id}/details   the ACH payment instruction

Every API call passes the gate first: header `client-id` must equal the configured client id, and `partner-id`, when
sent, the configured partner id (else 401 UNAUTHORISED). Every error answers
`{request_id, status, code, message}`, injected faults included.

The simulated end user is outside the API and skips the gate: `GET /connect/sim/{link_id}` describes the session,
`POST /connect/sim/{link_id}` with `{"outcome": "approve" | "reject" | "invalid_credentials", "institution_id"}`
finishes it (approve by default) and answers `redirect_to`. The Connect events then go out as webhooks (event code
117) from a background task, after the answer, in order; `wait_webhooks_idle()` waits for them.

The expired_token fault has no tokens to expire here (Thredd authenticates by client id): it refuses the request
it applies to with 401 UNAUTHORISED, as when the client id is rotated at Thredd. Out of process, the control routes
of `adapters.sandbox_kit.server` apply, with actions `expire_credentials` and `wait_webhooks_idle`.

Seeded customers are listed in `adapters.thredd.sandbox_data`.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any

import aiohttp
import attrs
import orjson
from aiohttp import web

from adapters.sandbox_kit import CallLog, FaultInjector, SandboxServer, SimulatorBase, build_app
from adapters.sandbox_kit.calllog import is_control_path
from adapters.thredd.sandbox_data import (
    FIRST_NEW_ACCOUNT, FIRST_NEW_CUSTOMER, FIRST_NEW_LOGIN, SEEDED_CUSTOMERS, ThreddAccount, ThreddCustomer,
    make_accounts,
)

log = logging.getLogger(__name__)

API = "/api/v1/open-banking"
CONNECT_SIM = "/connect/sim/"
SECRET_HEADER = "X-Thredd-Webhook-Secret"
EVENT_CODE = 117
EVENT_NAME = "Open Banking Registration"
EVENT_TYPES = ("started", "added", "done", "invalidCredentials", "institutionNotFound", "unableToConnect")
OUTCOMES = ("approve", "reject", "invalid_credentials")
REGISTER_FIELDS = ("redirect_uri", "is_hosted_in_mobile_app", "application_id", "openbanking_customer_id")
SANDBOX: web.AppKey[Any] = web.AppKey("thredd_sandbox")
# Codes of injected status faults (and of aiohttp's own 404/405 under the API prefix) by HTTP status.
_STATUS_CODES = {400: "INVALID_REQUEST", 401: "UNAUTHORISED", 404: "CUSTOMER_NOT_FOUND", 429: "TOO_MANY_REQUESTS"}


class ThreddError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message = status, code, message


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    return {"request_id": str(uuid.uuid4()), "status": status, "code": code, "message": message}


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def invalid_request(message: str) -> ThreddError:
    return ThreddError(400, "INVALID_REQUEST", message)


def rfc3339_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@attrs.define
class Link:
    id: str
    customer_id: str
    redirect_uri: str
    hosted_in_mobile_app: bool
    used: bool = False


class ThreddSandbox(SimulatorBase):
    def __init__(self, *, client_id: str = "sandbox-thredd-client", partner_id: str | None = "thredd-partner-1",
                 application_id: str = "sandbox-app-001", webhook_url: str | None = None,
                 webhook_secret: str = "sandbox-thredd-webhook-secret", seed: int = 11,
                 webhook_retry_delays: tuple[float, ...] = (0.05, 0.2)) -> None:
        self.client_id = client_id
        self.partner_id = partner_id
        self.application_id = application_id
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.seed = seed
        self.webhook_retry_delays = tuple(webhook_retry_delays)
        self.webhook_timeout = 5.0  # seconds per delivery attempt
        self.faults = FaultInjector(error_body=self._fault_body, on_expired_token=self.expire_credentials)
        self.calls = CallLog()
        self.base_url: str | None = None
        self.webhook_deliveries: list[dict[str, Any]] = []
        self.links: dict[str, Link] = {}
        self._customers: dict[str, ThreddCustomer] = {}
        self._next_customer = FIRST_NEW_CUSTOMER
        self._next_account = FIRST_NEW_ACCOUNT
        self._next_login = FIRST_NEW_LOGIN
        self._refuse_next = False
        self._webhook_tasks: set[asyncio.Task[None]] = set()
        self._last_batch: asyncio.Task[None] | None = None
        self._app: web.Application | None = None
        self._server: SandboxServer | None = None
        created = int(time.time()) - 200 * 86_400
        for seeded in SEEDED_CUSTOMERS:
            customer = self._customers[seeded.id] = ThreddCustomer(seeded.id, created)
            if seeded.institution_id is not None:
                assert seeded.login_id is not None and seeded.first_account_id is not None
                customer.accounts = make_accounts(seed=seed, customer_id=seeded.id,
                                                  institution_id=seeded.institution_id, login_id=seeded.login_id,
                                                  first_account_id=seeded.first_account_id, created=created)

    # --- lifecycle -------------------------------------------------------------------------------------------
    def _build_app(self) -> web.Application:
        from adapters.thredd.sandbox_handlers import (_register, _list_accounts, _account_details, _connect_page, _connect_complete)

        app = build_app(faults=self.faults, calls=self.calls, middlewares=[self._gate],
                        actions={"expire_credentials": self.expire_credentials,
                                 "wait_webhooks_idle": self.wait_webhooks_idle})
        app[SANDBOX] = self
        app.router.add_post(API + "/register", _register)
        app.router.add_get(API + "/customers/{customer_id}/accounts", _list_accounts)
        app.router.add_get(API + "/customers/{customer_id}/accounts/{account_id}/details", _account_details)
        app.router.add_get(CONNECT_SIM + "{link_id}", _connect_page)
        app.router.add_post(CONNECT_SIM + "{link_id}", _connect_complete)
        return app

    async def stop(self) -> None:
        for task in list(self._webhook_tasks):
            task.cancel()
        if self._webhook_tasks:
            await asyncio.gather(*self._webhook_tasks, return_exceptions=True)
        await super().stop()

    # --- state and test controls -----------------------------------------------------------------------------
    @property
    def customers(self) -> dict[str, ThreddCustomer]:
        """Every customer ever registered, revoked ones included (`revoked` is True)."""
        return dict(self._customers)

    def customer(self, customer_id: str) -> ThreddCustomer | None:
        """A customer the API knows: registered and not revoked."""
        customer = self._customers.get(customer_id)
        return None if customer is None or customer.revoked else customer

    def revoke_customer(self, customer_id: str) -> None:
        """The end user withdrew consent: every later call about this customer answers 404 CUSTOMER_NOT_FOUND."""
        if customer_id not in self._customers:
            raise KeyError(f"no Thredd customer {customer_id}")
        self._customers[customer_id].revoked = True

    def expire_credentials(self) -> None:
        """The next API call is refused with 401 UNAUTHORISED (the expired_token fault calls this)."""
        self._refuse_next = True

    def add_customer(self) -> ThreddCustomer:
        customer = ThreddCustomer(str(self._next_customer), int(time.time()))
        self._next_customer += 1
        self._customers[customer.id] = customer
        return customer

    def connect(self, customer: ThreddCustomer, institution_id: int) -> list[ThreddAccount]:
        """The end user approved sharing at an institution: its checking and savings accounts are linked. Connecting
        an institution again keeps the accounts already linked there."""
        existing = [a for a in customer.accounts if a.institution_id == institution_id]
        if existing:
            return existing
        login_id, self._next_login = self._next_login, self._next_login + 1
        accounts = make_accounts(seed=self.seed, customer_id=customer.id, institution_id=institution_id,
                                 login_id=login_id, first_account_id=self._next_account, created=int(time.time()))
        self._next_account += len(accounts)
        customer.accounts.extend(accounts)
        return accounts

    # --- webhooks ----------------------------------------------------------------------------------------------
    def event(self, customer_id: str, event_type: str, *, event_id: str | None = None,
              payload: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"event_id": event_id or str(uuid.uuid4()), "event_code": EVENT_CODE, "event_name": EVENT_NAME,
                "openbanking_customer_id": customer_id, "event_type": event_type, "timestamp": rfc3339_now(),
                "payload": dict(payload or {})}

    async def send_event(self, customer_id: str, event_type: str, *, event_id: str | None = None,
                         secret: str | None = None, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one event now, once (no retry): `{"event": body sent, "status": answer status or None,
        "error": connection error or None}`."""
        if self.webhook_url is None:
            raise RuntimeError("the sandbox has no webhook_url to send to")
        body = self.event(customer_id, event_type, event_id=event_id, payload=payload)
        async with self._webhook_session() as session:
            status, error = await self._post_event(session, body, secret, attempt=1)
        return {"event": body, "status": status, "error": error}

    async def wait_webhooks_idle(self) -> None:
        """Return once every webhook queued so far has been delivered or has given up."""
        while self._webhook_tasks:
            await asyncio.gather(*list(self._webhook_tasks), return_exceptions=True)

    def _queue_events(self, events: list[dict[str, Any]]) -> None:
        """Deliver these events after every batch queued before them, in order, from a background task."""
        previous = self._last_batch
        task = asyncio.get_running_loop().create_task(self._deliver_batch(previous, events))
        self._last_batch = task
        self._webhook_tasks.add(task)
        task.add_done_callback(self._webhook_tasks.discard)

    async def _deliver_batch(self, previous: asyncio.Task[None] | None, events: list[dict[str, Any]]) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        if self.webhook_url is None:  # read when sending: the gateway sets it once it knows its own address
            return
        async with self._webhook_session() as session:
            for body in events:
                await self._deliver(session, body)

    async def _deliver(self, session: aiohttp.ClientSession, body: dict[str, Any]) -> None:
        delays = self.webhook_retry_delays
        for attempt in range(1, len(delays) + 2):
            status, _ = await self._post_event(session, body, None, attempt=attempt)
            if status is not None and 200 <= status < 300:
                return
            if attempt <= len(delays):
                await asyncio.sleep(delays[attempt - 1])
        log.warning("thredd sandbox gave up on webhook %s (%s)", body["event_id"], body["event_type"])

    def _webhook_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.webhook_timeout))

    async def _post_event(self, session: aiohttp.ClientSession, body: dict[str, Any], secret: str | None, *,
                          attempt: int) -> tuple[int | None, str | None]:
        headers = {SECRET_HEADER: self.webhook_secret if secret is None else secret,
                   "Content-Type": "application/json"}
        status: int | None = None
        error: str | None = None
        url = self.webhook_url
        if url is None:
            error = "no webhook_url"
        else:
            try:
                async with session.post(url, data=orjson.dumps(body), headers=headers) as resp:
                    status = resp.status
                    await resp.read()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.webhook_deliveries.append({"event": body, "event_id": body["event_id"],
                                        "event_type": body["event_type"], "attempt": attempt, "url": url,
                                        "status": status, "error": error})
        return status, error

    # --- the gate ----------------------------------------------------------------------------------------------
    @web.middleware
    async def _gate(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if is_control_path(request.path) or not (request.path == API or request.path.startswith(API + "/")):
            return await handler(request)
        try:
            self._authorise(request)
            return await handler(request)
        except ThreddError as err:
            return json_response(error_body(err.status, err.code, err.message), err.status)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:  # no such operation: the caller's mistake
            return json_response(error_body(exc.status, "INVALID_REQUEST",
                                            f"no operation {request.method} {request.path}"), exc.status)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("thredd sandbox handler failed")
            return json_response(error_body(500, "INTERNAL_ERROR", "Internal server error"), 500)

    def _authorise(self, request: web.Request) -> None:
        if self._refuse_next:
            self._refuse_next = False
            raise ThreddError(401, "UNAUTHORISED", "The client credentials have expired")
        client_id = request.headers.get("client-id")
        if not client_id:
            raise ThreddError(401, "UNAUTHORISED", "Missing client-id header")
        if not secrets.compare_digest(client_id.encode(), self.client_id.encode()):
            raise ThreddError(401, "UNAUTHORISED", "Invalid client-id")
        partner_id = request.headers.get("partner-id")
        if partner_id is not None and (self.partner_id is None or partner_id != self.partner_id):
            raise ThreddError(401, "UNAUTHORISED", "Invalid partner-id")

    def _fault_body(self, request: web.Request, status: int) -> dict[str, Any]:
        code = _STATUS_CODES.get(status)
        if status == 404 and request.path.endswith("/details"):
            code = "ACCOUNT_NOT_FOUND"
        if code is None:
            code = "INTERNAL_ERROR" if status >= 500 else HTTPStatus(status).name
        return error_body(status, code, HTTPStatus(status).phrase)
