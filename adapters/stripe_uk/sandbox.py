"""A simulated Stripe UK ASPSP: an OpenID Provider with DCR v3.2 and the Open Banking v3.1.2 resource server for
account information (AIS), domestic payment initiation (PIS) and event notifications (event subscriptions, and
real-time notifications sent to the subscriber: `sandbox_events`).

The gateway's embedded environment and its tests run against this over HTTPS with mutual TLS, as they would against
Stripe. `adapters/stripe_uk/UPSTREAM.md` is the contract both sides follow. One gate runs before every handler:
the client certificate check on /register, /token and the AIS, PIS and event-subscription paths (the TLS layer
already verified any certificate against `client_ca`; here it must be present), then for those resources the bearer
token, the operation's security scheme and the spec check of `upstream-ais-openapi.yaml` / `upstream-pis-openapi.yaml`
/ `upstream-events-openapi.yaml` (and for the PIS POSTs and the event-subscription POST and PUT the request's
detached JWS). Failures answer in the shape of the endpoint: OAuth JSON for the authorisation server,
OBErrorResponse1 for the Open Banking resources. Discovery, /jwks and /authorize need no client certificate. Every
JSON answer on a PIS or event-subscription path, error or not, carries an `x-jws-signature` made with the ASPSP key
that /jwks publishes.

Out of process, the control routes of `adapters.sandbox_kit.server` apply, with the action `expire_access_tokens`,
and `POST /_sandbox/psu/account-access-consents/{ConsentId}/revoke` (the PSU revokes a consent in the bank's app).
"""
from __future__ import annotations

import functools
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey

from adapters.sandbox_kit import CallLog, FaultInjector, OpenAPISpec, SandboxServer, SimulatorBase, build_app
from adapters.sandbox_kit.calllog import CONTROL_PREFIX, is_control_path
from adapters.stripe_uk import sandbox_ais, sandbox_dcr, sandbox_events, sandbox_oauth, sandbox_pis
from adapters.stripe_uk.sandbox_ais import AIS_BASE
from adapters.stripe_uk.sandbox_data import DEFAULT_PSU
from adapters.stripe_uk.sandbox_events import EVENTS_BASE, RETRY_DELAYS, SUBSCRIPTIONS_PATH, Notifier
from adapters.stripe_uk.sandbox_http import (
    CLIENT_CERT, SANDBOX, SIGNATURE_HEADER, BearerError, Detail, OAuthError, OBError, cert_thumbprint, challenge,
    ob_error_body, peer_certificate, status_phrase,
)
from adapters.stripe_uk.sandbox_jose import ALG, sign_detached
from adapters.stripe_uk.sandbox_pis import PIS_BASE
from adapters.stripe_uk.sandbox_world import (
    AccessToken, Client, Consent, EventSubscription, Payment, PaymentConsent, World,
)

HERE = Path(__file__).parent
AIS_SPEC_PATH = HERE / "upstream-ais-openapi.yaml"
DCR_SPEC_PATH = HERE / "upstream-dcr-openapi.yaml"
PIS_SPEC_PATH = HERE / "upstream-pis-openapi.yaml"
EVENTS_SPEC_PATH = HERE / "upstream-events-openapi.yaml"
ASPSP_ORG_ID = "0015800001HQQrZAAX"  # the simulated ASPSP's directory organisation: `iss` of its signatures
# The v3.1.2 swagger offers OBAccount4 and OBTransaction5 as `oneOf` Basic / Detail. Neither variant forbids other
# properties and Detail only adds optional ones (OBAccount4Detail adds a required Account), so every transaction and
# every detailed account matches both and `oneOf` can never hold. The standard means "either shape": validate anyOf.
AIS_SPEC_PATCHES = {
    "/components/schemas/OBAccount4": {"anyOf": [{"$ref": "#/components/schemas/OBAccount4Basic"},
                                                 {"$ref": "#/components/schemas/OBAccount4Detail"}]},
    "/components/schemas/OBTransaction5": {"anyOf": [{"$ref": "#/components/schemas/OBTransaction5Basic"},
                                                     {"$ref": "#/components/schemas/OBTransaction5Detail"}]},
}
MTLS_MESSAGE = "a client certificate is required (mutual TLS)"


def _ob_resource(path: str) -> bool:
    """An Open Banking resource path: OBErrorResponse1 errors and an echoed x-fapi-interaction-id."""
    return path.startswith(AIS_BASE) or path.startswith(PIS_BASE) or _signed(path)


def _signed(path: str) -> bool:
    """A path whose JSON answers the bank signs (x-jws-signature): PIS and event subscriptions."""
    return path.startswith(PIS_BASE) or path.startswith(SUBSCRIPTIONS_PATH)


def _needs_mtls(path: str) -> bool:
    return path == "/token" or path == "/register" or path.startswith("/register/") or _ob_resource(path)


def _timeline(value: tuple[float, float]) -> tuple[float, float]:
    first, second = (float(v) for v in value)
    if not 0.0 <= first <= second:
        raise ValueError(f"payment_timeline must be (t1, t2) with 0 <= t1 <= t2 seconds, not {value!r}")
    return first, second


@functools.lru_cache(maxsize=1)
def _aspsp_key() -> RSAKey:
    """The simulated ASPSP's ID-token signing key: made once per process (an RSA key costs ~40 ms to make, and the
    tests start hundreds of simulators)."""
    return RSAKey.generate_key(2048)


class StripeUKSandbox(SimulatorBase):
    def __init__(self, *, server_cert: Path, server_key: Path, client_ca: Path, directory_jwks: dict,
                 keystore: dict[str, dict], seed: int = 23, now: Callable[[], datetime] | None = None,
                 access_token_ttl: float = 300.0, refresh_token_ttl: float = 7776000.0,
                 code_ttl: float = 60.0, payment_timeline: tuple[float, float] = (1.0, 3.0),
                 event_retry_delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        self.server_cert, self.server_key, self.client_ca = Path(server_cert), Path(server_key), Path(client_ca)
        self.directory_jwks = directory_jwks
        self.keystore = keystore
        self.now = now or (lambda: datetime.now(timezone.utc))
        self.world = World(seed=seed, now=self.now, access_token_ttl=access_token_ttl,
                           refresh_token_ttl=refresh_token_ttl, code_ttl=code_ttl)
        self.signing_key = _aspsp_key()
        self.kid = self.signing_key.thumbprint()
        self.spec = OpenAPISpec.load(AIS_SPEC_PATH, AIS_SPEC_PATCHES)
        self.dcr_spec = OpenAPISpec.load(DCR_SPEC_PATH)
        self.pis_spec = OpenAPISpec.load(PIS_SPEC_PATH)
        self.events_spec = OpenAPISpec.load(EVENTS_SPEC_PATH)
        self.aspsp_org_id = ASPSP_ORG_ID
        # seconds after submission a payment leaves Pending, then settles (read when a payment is submitted)
        self.payment_timeline = _timeline(payment_timeline)
        self.reject_payments = False  # True: payments submitted from now on are Rejected after t1
        self.tamper_response_signatures = False  # True: PIS answers carry a signature that does not match the body
        self.events = Notifier(self)  # real-time event notifications to the subscribers' CallbackUrls
        self.event_retry_delays = tuple(event_retry_delays)  # seconds between delivery attempts of a notification
        self.forge_events = False  # True: notifications are signed with a key the bank never published
        self.faults = FaultInjector(error_body=self._fault_body, on_expired_token=self.expire_access_tokens)
        self.calls = CallLog()
        self.default_psu = DEFAULT_PSU  # whose accounts the simulated PSU page offers unless the POST names one
        self.clock: Callable[[], float] = time.time  # wall clock for JWT iat / exp checks
        self.base_url: str | None = None
        self._app: web.Application | None = None
        self._server: SandboxServer | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.server_cert), str(self.server_key))
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(str(self.client_ca))
        return context

    def _build_app(self) -> web.Application:
        app = build_app(faults=self.faults, calls=self.calls, middlewares=[self._gate],
                        actions={"expire_access_tokens": self.expire_access_tokens})
        app[SANDBOX] = self
        for routes, prefix in ((sandbox_oauth.ROUTES, ""), (sandbox_dcr.ROUTES, ""), (sandbox_ais.ROUTES, AIS_BASE),
                               (sandbox_pis.ROUTES, PIS_BASE), (sandbox_events.ROUTES, EVENTS_BASE)):
            for method, template, handler in routes:
                app.router.add_route(method, prefix + template, handler)
        app.router.add_post(CONTROL_PREFIX + "psu/account-access-consents/{ConsentId}/revoke", self._psu_revokes)
        app.on_response_prepare.append(self._sign_answer)
        return app

    async def stop(self) -> None:
        await self.events.close()  # pending notifications and payment timelines end with the bank
        await super().stop()

    @property
    def issuer(self) -> str:
        if self.base_url is None:
            raise RuntimeError("the sandbox is not running: start() it first")
        return self.base_url

    @property
    def token_endpoint(self) -> str:
        return self.issuer + "/token"

    # --- test controls ---------------------------------------------------------------------------------------
    @property
    def clients(self) -> dict[str, Client]:
        return self.world.clients

    @property
    def consents(self) -> dict[str, Consent]:
        return self.world.consents

    @property
    def payment_consents(self) -> dict[str, PaymentConsent]:
        return self.world.payment_consents

    @property
    def payments(self) -> dict[str, Payment]:
        return self.world.payments

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is refused (401 invalid_token) from now on; refresh tokens still work."""
        self.world.expire_access_tokens()

    def expire_consent(self, consent_id: str) -> None:
        """The consent's ExpirationDateTime becomes now: data calls answer 403, refreshing answers invalid_grant."""
        self.world.consents[consent_id].expiration = self.now()

    @property
    def event_subscriptions(self) -> dict[str, EventSubscription]:
        return self.world.event_subscriptions

    def revoke_consent(self, consent_id: str) -> list[dict[str, Any]]:
        """As if the PSU revoked the consent in the bank's app: it is Revoked, and the TPP's event subscription
        hears of it (the claims of the notifications queued; none when it was already Revoked)."""
        consent = self.world.consents[consent_id]
        if consent.status == "Revoked":
            return []
        self.world.set_status(consent, "Revoked")
        return self.events.consent_revoked(consent.client_id, consent_id)

    async def _psu_revokes(self, request: web.Request) -> web.Response:
        consent_id = request.match_info["ConsentId"]
        if consent_id not in self.world.consents:
            return web.json_response({"error": f"no account-access consent {consent_id!r}"}, status=404)
        return web.json_response({"revoked": consent_id, "notified": len(self.revoke_consent(consent_id))})

    async def wait_events_idle(self) -> None:
        """Return once every event notification queued so far is delivered or given up, and every payment that
        was moving along its timeline has reached its last status."""
        await self.events.idle()

    def sign_event(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        """Any claims signed as the bank signs its event notifications (tests craft bad ones with it)."""
        return jwt.encode({"alg": ALG, "kid": self.kid, "typ": "JWT", **(header or {})}, claims, self.signing_key,
                          algorithms=[ALG])

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self.signing_key.as_dict(private=False), "kid": self.kid, "use": "sig", "alg": ALG}]}

    def sign_id_token(self, claims: dict[str, Any]) -> str:
        """Any claims, signed PS256 with the ASPSP key that /jwks publishes (tests craft bad ID tokens with it)."""
        return jwt.encode({"alg": ALG, "kid": self.kid, "typ": "JWT"}, claims, self.signing_key, algorithms=[ALG])

    def sign_body(self, body: bytes) -> str:
        """The ASPSP's detached JWS (`x-jws-signature`) over exactly these bytes, `iss` = aspsp_org_id."""
        return sign_detached(body, self.signing_key, self.kid, self.aspsp_org_id, self.clock())

    async def _sign_answer(self, request: web.Request, response: web.StreamResponse) -> None:
        """Sign every JSON answer on a PIS or event-subscription path just before it is sent: the handlers' answers,
        the gate's errors and injected faults alike, over the bytes that go on the wire. With
        `tamper_response_signatures` the signature is made over other bytes, so a client that checks it must refuse
        the answer."""
        if not _signed(request.path) or not isinstance(response, web.Response):
            return
        body = response.body
        if response.content_type != "application/json" or not isinstance(body, bytes) or not body:
            return
        response.headers[SIGNATURE_HEADER] = self.sign_body(body + b" " if self.tamper_response_signatures else body)

    # --- shared checks ---------------------------------------------------------------------------------------
    def software_jwks(self, endpoint: str) -> dict[str, Any]:
        jwks = self.keystore.get(endpoint)
        if jwks is None:
            raise KeyError(endpoint)
        return jwks

    def access_token(self, request: web.Request) -> AccessToken:
        """The valid access token of a request, bound to its client certificate; else BearerError 401."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise BearerError(401, "invalid_request", "an Authorization: Bearer access token is required")
        token = self.world.access_tokens.get(value.strip())
        if token is None:
            raise BearerError(401, "invalid_token", "the access token is unknown or revoked")
        if time.monotonic() >= token.expires_at:
            raise BearerError(401, "invalid_token", "the access token has expired")
        if token.client_id not in self.world.clients:
            raise BearerError(401, "invalid_token", "the client of this access token no longer exists")
        if cert_thumbprint(request[CLIENT_CERT]) != token.cert_thumbprint:
            raise BearerError(401, "invalid_token", "the access token is bound to another client certificate")
        return token

    # --- the gate --------------------------------------------------------------------------------------------
    @web.middleware
    async def _gate(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if is_control_path(request.path):
            return await handler(request)
        ob = _ob_resource(request.path)
        interaction_id = (request.headers.get("x-fapi-interaction-id") or str(uuid.uuid4())) if ob else None
        try:
            if _needs_mtls(request.path):
                cert = peer_certificate(request)
                if cert is None:
                    if ob:
                        raise OBError(401, "UK.OBIE.Header.Invalid", MTLS_MESSAGE,
                                      headers={"WWW-Authenticate": challenge("invalid_request", MTLS_MESSAGE)})
                    raise OAuthError(401, "invalid_client", MTLS_MESSAGE)
                request[CLIENT_CERT] = cert
            if request.path.startswith(AIS_BASE):
                response = await sandbox_ais.gate(self, request, handler)
            elif request.path.startswith(PIS_BASE):
                response = await sandbox_pis.gate(self, request, handler)
            elif request.path.startswith(SUBSCRIPTIONS_PATH):
                response = await sandbox_events.gate(self, request, handler)
            else:
                response = await handler(request)
        except (OAuthError, BearerError, OBError) as err:
            response = err.response()
        except web.HTTPException as exc:
            if interaction_id is not None:
                exc.headers["x-fapi-interaction-id"] = interaction_id
            raise
        if interaction_id is not None:
            response.headers["x-fapi-interaction-id"] = interaction_id
        return response

    def _fault_body(self, request: web.Request, status: int) -> dict[str, Any]:
        if _ob_resource(request.path):
            code = "UK.OBIE.UnexpectedError" if status >= 500 else "UK.OBIE.Header.Invalid"
            return ob_error_body(status, status_phrase(status), [Detail(code, f"simulated {status} fault")])
        error = "temporarily_unavailable" if status in (429, 503) else "server_error" if status >= 500 else \
            "invalid_request"
        return {"error": error, "error_description": f"simulated {status} fault ({status_phrase(status)})"}

