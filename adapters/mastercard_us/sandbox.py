"""A simulated Mastercard Open Finance US (Finicity) upstream, faithful to the published spec.

The gateway's embedded environment and its tests run against this instead of api.finicity.com. Every upstream
request passes one gate before its handler: authentication, in the upstream's order (app key, partner lockout,
token), then the spec check of `upstream-openapi.yaml` (required headers, parameters and body fields, their types
and ranges). Failures answer in the error shape the spec gives that operation: `{code, message}` for aggregation,
`{code, status, message, user_message}` for data-sharing consents. The simulated end user's Connect page
(`/connect/sim/...`) is not part of the upstream API and skips the gate.

The simulator sends real webhooks (Connect events to a link's `webhook`, report events to a report's `callbackUrl`;
see `sandbox_events` and `sandbox_connect`) from background tasks, records every attempt in `deliveries`, and
`wait_webhooks_idle()` waits for them. Reports are generated in the background too (`sandbox_reports`).

Out of process, the control routes of `adapters.sandbox_kit.server` apply, with actions `expire_tokens`,
`reset_lockout`, `fail_next_report`, `resend_last_connect_event` and `wait_webhooks_idle`.
"""
from __future__ import annotations

import secrets
import string
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.mastercard.sandbox_webhooks import SIGNATURE_MODES, Outbox
from adapters.mastercard_us.sandbox_events import Notifier
from adapters.mastercard_us.sandbox_handlers import (
    CONNECT_SIM, ROUTES, SANDBOX, FinicityError, invalid_field, json_response,
)
from adapters.mastercard_us.sandbox_world import World
from adapters.sandbox_kit import (
    CallLog, FaultInjector, OpenAPISpec, Operation, Problem, SandboxServer, SimulatorBase, build_app,
)
from adapters.sandbox_kit.calllog import is_control_path

SPEC_PATH = Path(__file__).with_name("upstream-openapi.yaml")
# The spec types ErrorMessage.code as `object` but describes it as "a number or a string", and every example of it
# is a string ("10023"), which is what the upstream sends. Validate it as sent.
SPEC_PATCHES = {
    "/components/schemas/ErrorMessage/properties/code": {"type": ["string", "integer"]},
    "/components/schemas/ConsentErrorMessage/properties/code": {"type": ["string", "integer"]},
}
APP_KEY = "Finicity-App-Key"
APP_TOKEN = "Finicity-App-Token"
LOCKOUT_AFTER = 5  # failed authentications with the right partner id and a wrong secret
# Bodies for injected status faults, from the spec's examples where it has one.
_STATUS_ERRORS = {
    400: ("14020", "Bad request."), 401: ("10022", "Invalid (Finicity-App-Token)"),
    404: ("14001", "Resource not found."),
    429: ("3300001", "Too many request. Please try after some time"),
}
_TOKEN_ALPHABET = string.ascii_letters + string.digits


class MastercardUSSandbox(SimulatorBase):
    def __init__(self, *, partner_id: str = "1445585709680", partner_secret: str = "sandbox-partner-secret",
                 app_key: str = "sandbox-app-key", token_ttl: float = 7200.0, seed: int = 7,
                 now: Callable[[], datetime] | None = None, retry_scale: float = 0.001, report_delay: float = 0.2,
                 connect_signature: str = "compact") -> None:
        if connect_signature not in SIGNATURE_MODES:
            raise ValueError(f"connect_signature must be one of {', '.join(SIGNATURE_MODES)}")
        self.partner_id = partner_id
        self.partner_secret = partner_secret
        self.app_key = app_key
        self.token_ttl = token_ttl
        self.now = now or (lambda: datetime.now(timezone.utc))
        self.world = World(seed=seed, partner_id=partner_id, now=self.now)
        self.spec = OpenAPISpec.load(SPEC_PATH, SPEC_PATCHES)
        self.faults = FaultInjector(error_body=self._fault_body, on_expired_token=self.expire_tokens)
        self.calls = CallLog()
        self.retry_scale = retry_scale  # multiplies the webhook retry schedules
        self.report_delay = report_delay  # seconds a report stays inProgress
        self.connect_signature = connect_signature  # "compact" (the provider's sample) or "raw"
        self.deliveries: list[dict[str, Any]] = []  # every webhook attempt: kind, url, event, status, attempt
        self.outbox = Outbox(self.deliveries, name="mastercard-us")
        self.notify = Notifier(self)
        self.fail_reports = 0  # how many of the next reports fail
        self.connect_link_ttl = 7200.0  # seconds a Connect link stays usable
        self.live_balance_calls = 0  # billable: successful calls to availableBalance/live
        self.failed_authentications = 0
        self.locked = False
        self.base_url: str | None = None
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._app: web.Application | None = None
        self._server: SandboxServer | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------
    def _build_app(self) -> web.Application:
        actions = {name: getattr(self, name) for name in (
            "expire_tokens", "reset_lockout", "fail_next_report", "resend_last_connect_event", "wait_webhooks_idle")}
        app = build_app(faults=self.faults, calls=self.calls, middlewares=[self._gate], actions=actions)
        app[SANDBOX] = self
        for method, template, handler in ROUTES:
            app.router.add_route(method, template, handler)
        return app

    async def stop(self) -> None:
        """Stop serving; queued webhooks and reports in progress are cancelled."""
        await self.outbox.close()
        await super().stop()

    # --- test controls ---------------------------------------------------------------------------------------
    def fail_next_report(self) -> None:
        """The next report requested ends in status failure."""
        self.fail_reports += 1

    def resend_last_connect_event(self) -> None:
        """Send the last Connect event again: the same bytes, eventId and signature."""
        self.notify.resend_last_connect()

    async def wait_webhooks_idle(self) -> None:
        """Return once every queued webhook is delivered or given up (and every report in progress is done)."""
        await self.outbox.idle()

    def expire_tokens(self) -> None:
        """Every token issued so far answers 10023 from now on."""
        self._tokens = dict.fromkeys(self._tokens, float("-inf"))

    def reset_lockout(self) -> None:
        self.locked = False
        self.failed_authentications = 0

    # --- authentication --------------------------------------------------------------------------------------
    def authenticate(self, partner_id: str, partner_secret: str) -> str:
        if partner_id != self.partner_id:
            raise FinicityError(401, "10001", "Invalid credentials")
        if not secrets.compare_digest(partner_secret.encode(), self.partner_secret.encode()):
            self.failed_authentications += 1
            self.locked = self.failed_authentications >= LOCKOUT_AFTER
            raise FinicityError(401, "10001", "Invalid credentials")
        self.failed_authentications = 0
        token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(20))
        self._tokens[token] = time.monotonic() + self.token_ttl
        return token

    def _authorize(self, request: web.Request, op: Operation) -> None:
        needed = frozenset.intersection(*op.security) if op.security else frozenset()
        if APP_KEY in needed:
            key = request.headers.get(APP_KEY)
            if not key:
                raise FinicityError(401, "10026", f"Missing parameter ({APP_KEY})")
            if key != self.app_key:  # the rate limit of an unknown key is 0
                raise FinicityError(429, *_STATUS_ERRORS[429])
        if self.locked:
            raise FinicityError(401, "24302", "Bad credentials")
        if APP_TOKEN in needed:
            token = request.headers.get(APP_TOKEN)
            if not token:
                raise FinicityError(401, "10024", f"Missing parameter ({APP_TOKEN})")
            expires = self._tokens.get(token)
            if expires is None:
                raise FinicityError(401, "10022", f"Invalid ({APP_TOKEN})")
            if time.monotonic() >= expires:
                raise FinicityError(401, "10023", f"Expired ({APP_TOKEN})")

    # --- the gate --------------------------------------------------------------------------------------------
    @web.middleware
    async def _gate(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if is_control_path(request.path) or request.path.startswith(CONNECT_SIM):
            return await handler(request)
        op = self.spec.operation_for(request)
        if op is None:
            return await handler(request)  # aiohttp answers 404 / 405
        try:
            self._authorize(request, op)
            problems = await self.spec.validate_request(request, op)
            if problems:
                raise _problem_error(op, problems[0])
            return await handler(request)
        except FinicityError as err:
            return json_response(error_body(op, err), err.http_status)

    def _fault_body(self, request: web.Request, status: int) -> dict[str, Any]:
        code, message = _STATUS_ERRORS.get(status, (str(status), HTTPStatus(status).phrase))
        return error_body(self.spec.operation_for(request), FinicityError(status, code, message))


def _problem_error(op: Operation, problem: Problem) -> FinicityError:
    name = problem.name or "request body"
    if op.response_schema_name(400) == "ConsentErrorMessage":
        word = "Missing" if problem.kind == "missing" else "Invalid"
        return FinicityError(400, "10100", f"{word} parameter - {name}")
    if problem.kind == "missing":
        return FinicityError(400, "10005", f"Missing parameter ({name})")
    return invalid_field(f'"{name}" {problem.reason}')


def error_body(op: Operation | None, err: FinicityError) -> dict[str, Any]:
    """The error body in the shape the spec gives this operation and status."""
    shape = op.response_schema_name(err.http_status) if op is not None else None
    if shape == "ErrorWrapper":
        return {"Errors": {"Error": [{"Source": "", "ReasonCode": err.code, "Description": err.message,
                                      "Recoverable": err.http_status == 429 or err.http_status >= 500, "Details": ""}]}}
    if shape == "ConsentErrorMessage":
        # The consent service names the headers App-Key / App-Token in its messages (see the spec's examples).
        message = err.message.replace("Finicity-App-", "App-")
        return {"code": err.code, "status": str(err.http_status), "message": message,
                "user_message": err.fields.get("user_message", "")}
    return {"code": err.code, "message": err.message, **err.fields}
