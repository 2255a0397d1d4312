"""A simulated Mastercard Open Banking Australia (CDR) upstream, as `adapters/mastercard_au/UPSTREAM.md` describes it.

The gateway's embedded environment and its tests run against this instead of api.openbanking.mastercard.com.au.
Every upstream request passes one gate before its handler: the app key (an unknown key has a rate limit of 0, so
429), the partner lockout, then the App-Token (except for the token call itself). Handlers check their bodies
strictly (`sandbox_checks`) and raise `AUError`, which the gate renders as `{code, message}`, or as
`{code, status, message, user_message}` on the data-sharing consent API. The simulated end user's pages
(`/connect/sim/...`) are not part of the upstream API and skip the gate.

The simulator sends real webhooks (consent notifications, Connect events, report events; see `sandbox_webhooks`)
from background tasks, records every attempt in `deliveries`, and `wait_webhooks_idle()` waits for them. Tests steer
it with the control methods below; the parameterless ones are also kit actions (`POST /_sandbox/actions/<name>`).
"""
from __future__ import annotations

import secrets
import string
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any

from aiohttp import web

from adapters.mastercard_au.sandbox_checks import AUError
from adapters.mastercard_au.sandbox_connect import CONNECT_ROUTES, CONNECT_SIM
from adapters.mastercard_au.sandbox_data import ACCESS_MODELS
from adapters.mastercard_au.sandbox_events import ACCOUNT_ERRORS, Notifier
from adapters.mastercard_au.sandbox_handlers import DATA_ROUTES, SANDBOX, json_response
from adapters.mastercard_au.sandbox_reports import REPORT_ROUTES
from adapters.mastercard_au.sandbox_webhooks import SIGNATURE_MODES, Outbox
from adapters.mastercard_au.sandbox_world import World
from adapters.sandbox_kit import CallLog, FaultInjector, SandboxServer, SimulatorBase, build_app
from adapters.sandbox_kit.calllog import is_control_path

APP_KEY = "App-Key"
APP_TOKEN = "App-Token"
TOKEN_PATH = "/aggregation/v2/partners/authentication"
CONSENT_API = "/data-sharing-consents"
LOCKOUT_AFTER = 5  # failed authentications with the right partner id and a wrong secret
# Bodies for injected status faults and aiohttp's own 404/405.
_STATUS_ERRORS = {
    400: ("10005", "Bad request"), 401: ("10022", "Invalid (App-Token)"), 404: ("14001", "Resource not found."),
    405: ("14020", "Bad request. (Method not allowed)."),
    429: ("3300001", "Too many request. Please try after some time"),
}
_TOKEN_ALPHABET = string.ascii_letters + string.digits


class MastercardAUSandbox(SimulatorBase):
    def __init__(self, *, partner_id: str = "2445585709680", partner_secret: str = "sandbox-au-partner-secret",
                 app_key: str = "sandbox-au-app-key", token_ttl: float = 7200.0,
                 access_model: str = "CDR_REPRESENTATIVE", seed: int = 17,
                 now: Callable[[], datetime] | None = None, retry_scale: float = 0.001, report_delay: float = 0.2,
                 connect_signature: str = "compact") -> None:
        if access_model not in ACCESS_MODELS:
            raise ValueError(f"access_model must be one of {', '.join(ACCESS_MODELS)}")
        if connect_signature not in SIGNATURE_MODES:
            raise ValueError(f"connect_signature must be one of {', '.join(SIGNATURE_MODES)}")
        self.partner_id = partner_id
        self.partner_secret = partner_secret
        self.app_key = app_key
        self.token_ttl = token_ttl
        self.access_model = access_model
        self.retry_scale = retry_scale
        self.report_delay = report_delay
        self.connect_signature = connect_signature
        self.now = now or (lambda: datetime.now(timezone.utc))
        self.world = World(seed=seed, partner_id=partner_id, now=self.now)
        self.faults = FaultInjector(error_body=self._fault_body, on_expired_token=self.expire_tokens)
        self.calls = CallLog()
        self.deliveries: list[dict[str, Any]] = []
        self.outbox = Outbox(self.deliveries)
        self.notify = Notifier(self)
        self.connect_link_ttl = 7200.0  # seconds a Connect link (and a dashboard link) stays usable
        self.live_balance_calls = 0  # billable: successful calls to availableBalance/live
        self.failed_authentications = 0
        self.locked = False
        self.fail_reports = 0  # how many of the next reports fail
        self.base_url: str | None = None
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._app: web.Application | None = None
        self._server: SandboxServer | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------
    def _build_app(self) -> web.Application:
        actions = {name: getattr(self, name) for name in (
            "expire_tokens", "reset_lockout", "resend_last_consent_event", "send_forged_consent_event",
            "approve_applications", "fail_next_report", "wait_webhooks_idle")}
        app = build_app(faults=self.faults, calls=self.calls, middlewares=[self._gate], actions=actions)
        app[SANDBOX] = self
        for method, template, handler in (*DATA_ROUTES, *CONNECT_ROUTES, *REPORT_ROUTES):
            app.router.add_route(method, template, handler)
        return app

    async def stop(self) -> None:
        """Stop serving; queued webhooks and report timers are cancelled."""
        await self.outbox.close()
        await super().stop()

    # --- test controls ---------------------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        """Every token issued so far answers 10023 from now on."""
        self._tokens = dict.fromkeys(self._tokens, float("-inf"))

    def reset_lockout(self) -> None:
        self.locked = False
        self.failed_authentications = 0

    def approve_applications(self) -> None:
        """Every Pending application becomes Approved (its FinBank institutions REGISTERED)."""
        for application in self.world.applications.values():
            if application.status == "Pending":
                application.status = "Approved"

    def fail_next_report(self) -> None:
        """The next report requested ends in status failure."""
        self.fail_reports += 1

    def set_account_error(self, account_id: str, code: str | int | None) -> None:
        """Data calls on this account answer the platform error for an aggregation status `code` (see
        `sandbox_events.ACCOUNT_ERRORS`); None clears it."""
        account = self.world.accounts[str(account_id)]
        if code is not None and str(code) not in ACCOUNT_ERRORS:
            raise ValueError(f"no simulated aggregation error {code!r}; use one of {', '.join(ACCOUNT_ERRORS)}")
        account.error_code = None if code is None else str(code)

    def revoke_institution(self, receipt_id: str, login_id: str | int) -> None:
        """The end user revoked one institution's arrangement at the bank: INSTITUTIONS_REVOKED follows."""
        receipt = self.world.receipts[receipt_id]
        arrangement = receipt.arrangement(int(login_id))
        if arrangement is None:
            raise KeyError(f"receipt {receipt_id} has no institution login {login_id}")
        changed = self.world.end_arrangements(receipt, [arrangement], "REVOKED", "DATA_HOLDER")
        self.notify.consent("INSTITUTIONS_REVOKED", receipt, changed)

    def expire_consent(self, receipt_id: str) -> None:
        """The receipt's access period ends now: INSTITUTIONS_EXPIRED for every institution still active."""
        receipt = self.world.receipts[receipt_id]
        changed = self.world.end_arrangements(receipt, receipt.active(), "EXPIRED", "SYSTEM")
        self.notify.consent("INSTITUTIONS_EXPIRED", receipt, changed)

    def resend_last_consent_event(self) -> None:
        """Send the last consent notification again: the same bytes, Event-Id and signature."""
        self.notify.resend_last_consent()

    def send_forged_consent_event(self) -> None:
        """Send an INSTITUTIONS_REVOKED notification for the newest active receipt, well formed but signed with a
        key no subscription has (nothing changes here)."""
        self.notify.forged_consent()

    async def wait_webhooks_idle(self) -> None:
        """Return once every queued webhook is delivered or given up (and every report in progress is done)."""
        await self.outbox.idle()

    # --- authentication --------------------------------------------------------------------------------------
    def authenticate(self, partner_id: str, partner_secret: str) -> str:
        if partner_id != self.partner_id:
            raise AUError(401, "10001", "Invalid credentials")
        if not secrets.compare_digest(partner_secret.encode(), self.partner_secret.encode()):
            self.failed_authentications += 1
            self.locked = self.failed_authentications >= LOCKOUT_AFTER
            raise AUError(401, "10001", "Invalid credentials")
        self.failed_authentications = 0
        token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(20))
        self._tokens[token] = time.monotonic() + self.token_ttl
        return token

    def _authorize(self, request: web.Request) -> None:
        key = request.headers.get(APP_KEY)
        if not key:
            raise AUError(401, "10026", f"Missing parameter ({APP_KEY})")
        if not secrets.compare_digest(key.encode(), self.app_key.encode()):  # an unknown key's rate limit is 0
            raise AUError(429, *_STATUS_ERRORS[429])
        if self.locked:
            raise AUError(401, "24302", "Bad credentials")
        if request.path == TOKEN_PATH:
            return
        token = request.headers.get(APP_TOKEN)
        if not token:
            raise AUError(401, "10024", f"Missing parameter ({APP_TOKEN})")
        expires = self._tokens.get(token)
        if expires is None:
            raise AUError(401, "10022", f"Invalid ({APP_TOKEN})")
        if time.monotonic() >= expires:
            raise AUError(401, "10023", f"Expired ({APP_TOKEN})")

    # --- the gate --------------------------------------------------------------------------------------------
    @web.middleware
    async def _gate(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if is_control_path(request.path) or request.path.startswith(CONNECT_SIM):
            return await handler(request)
        try:
            self._authorize(request)
            return await handler(request)
        except AUError as err:
            return json_response(error_body(request, err), err.http_status)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
            return json_response(self._fault_body(request, exc.status), exc.status)

    def _fault_body(self, request: web.Request, status: int) -> dict[str, Any]:
        known = status in HTTPStatus._value2member_map_
        code, message = _STATUS_ERRORS.get(status, (str(status), HTTPStatus(status).phrase if known else "Error"))
        return error_body(request, AUError(status, code, message))


def error_body(request: web.Request, err: AUError) -> dict[str, Any]:
    """`{code, message}`, or the consent API's `{code, status, message, user_message}`."""
    if request.path == CONSENT_API or request.path.startswith(CONSENT_API + "/"):
        return {"code": err.code, "status": str(err.http_status), "message": err.message, "user_message": ""}
    return {"code": err.code, "message": err.message}
