"""A simulated Mastercard Open Banking Connect hub: AIS and PIS against six simulated banks in five countries.

`adapters/ob_connect/UPSTREAM.md` is the contract the gateway's adapter and this simulator share. One gate runs before
every hub handler: OAuth 1.0a verification (401 with the hub's error body), then the JSON body and the schema check
(`upstream-ais-openapi.yaml` for /accounts, `upstream-pis-openapi.yaml` — the 1.16.0 swagger converted — for
/payments), and it turns every refusal into `{"Errors": {"Error": [...]}}`. The SCA pages under /sca/ belong to the
simulated banks: no OAuth there. Kit faults act before the gate and answer with the hub's error bodies.

Out of process, the control routes of `adapters.sandbox_kit.server` apply, with the actions `reject_payments_on` and
`reject_payments_off`.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from adapters.ob_connect import sandbox_ais, sandbox_pis, sandbox_sca
from adapters.ob_connect.sandbox_data import Aspsp, HubData, make_aspsps
from adapters.ob_connect.sandbox_http import (
    BODY, SANDBOX, HubError, bad_request, error_body, fault_items, invalid_request,
)
from adapters.ob_connect.sandbox_oauth1 import OAuth1Verifier
from adapters.ob_connect.sandbox_world import AisConsent, Payment, PaymentConsent, World
from adapters.sandbox_kit import CallLog, FaultInjector, OpenAPISpec, SandboxServer, SimulatorBase, build_app
from adapters.sandbox_kit.calllog import is_control_path

HERE = Path(__file__).parent
AIS_SPEC_PATH = HERE / "upstream-ais-openapi.yaml"
PIS_SPEC_PATH = HERE / "upstream-pis-openapi.yaml"
BASE_PATH = "/openbanking/connect/api"
SCA_PREFIX = "/sca/"


def _timeline(value: tuple[float, float, float]) -> tuple[float, float, float]:
    t1, t2, t3 = (float(v) for v in value)
    if not 0.0 <= t1 <= t2 <= t3:
        raise ValueError(f"payment_timeline must be (t1, t2, t3) with 0 <= t1 <= t2 <= t3 seconds, not {value!r}")
    return t1, t2, t3


class ObConnectSandbox(SimulatorBase):
    def __init__(self, *, consumer_key: str, signing_cert_pem: bytes, seed: int = 31,
                 payment_timeline: tuple[float, float, float] = (1.0, 2.0, 4.0),
                 now: Callable[[], datetime] | None = None) -> None:
        self.now = now or (lambda: datetime.now(timezone.utc))
        self.consumer_key = consumer_key
        self.verifier = OAuth1Verifier(consumer_key=consumer_key, certificate_pem=signing_cert_pem)
        self.seed = seed
        self.aspsps: dict[str, Aspsp] = make_aspsps()
        self.data = HubData(seed, self.aspsps, self.now())
        self.world = World(now=self.now)
        self.payment_timeline = _timeline(payment_timeline)  # read when a payment is made
        self.reject_payments = False  # True: payments made from now on end RJCT (AM04) at t1
        self.ais_spec = OpenAPISpec.load(AIS_SPEC_PATH)
        self.pis_spec = OpenAPISpec.load(PIS_SPEC_PATH)
        self.faults = FaultInjector(error_body=lambda _request, status: error_body(fault_items(status)))
        self.calls = CallLog()
        self.origin: str | None = None
        self.base_url: str | None = None
        self._app: web.Application | None = None
        self._server: SandboxServer | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve; returns the hub's base URL (origin + /openbanking/connect/api), the adapter's base_url."""
        origin = await super().start(host, port)
        self.origin = origin
        self.base_url = origin + BASE_PATH
        return self.base_url

    async def stop(self) -> None:
        await super().stop()
        self.origin = None

    def _build_app(self) -> web.Application:
        app = build_app(faults=self.faults, calls=self.calls, middlewares=[self._gate],
                        actions={"reject_payments_on": lambda: setattr(self, "reject_payments", True),
                                 "reject_payments_off": lambda: setattr(self, "reject_payments", False)})
        app[SANDBOX] = self
        for routes, prefix in ((sandbox_ais.ROUTES, BASE_PATH), (sandbox_pis.ROUTES, BASE_PATH),
                               (sandbox_sca.ROUTES, "")):
            for method, template, handler in routes:
                app.router.add_route(method, prefix + template, handler)
        return app

    # --- test controls ---------------------------------------------------------------------------------------
    @property
    def consents(self) -> dict[str, AisConsent]:
        return self.world.consents

    @property
    def payment_consents(self) -> dict[str, PaymentConsent]:
        return self.world.payment_consents

    @property
    def payments(self) -> dict[str, Payment]:
        return self.world.payments

    @property
    def payments_created(self) -> int:
        return len(self.world.payments)

    @property
    def timestamp_window(self) -> float:
        return self.verifier.window

    @timestamp_window.setter
    def timestamp_window(self, seconds: float) -> None:
        self.verifier.window = float(seconds)

    def expire_consent(self, consent_id: str) -> None:
        """The AIS consent (by consentId or consentRequestId) is valid until now: data calls answer CONSENT_EXPIRED."""
        consent = self.world.ais_by_consent_id.get(consent_id) or self.world.consents[consent_id]
        consent.valid_until = self.now()

    # --- the gate --------------------------------------------------------------------------------------------
    @web.middleware
    async def _gate(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if is_control_path(request.path) or request.path.startswith(SCA_PREFIX):
            return await handler(request)
        try:
            if not request.path.startswith(BASE_PATH + "/"):
                raise HubError(404, "NOT_FOUND", "no such resource", details=request.path)
            raw = await request.read()
            url = f"{request.scheme}://{request.host}{request.raw_path}"
            self.verifier.verify(request.method, url, request.headers.get("Authorization"), raw)
            relative = request.path[len(BASE_PATH):]
            spec = self.pis_spec if relative.startswith("/payments/") else self.ais_spec
            found = spec.find(request.method, relative)
            if found is None:
                known = any(spec.find(m, relative) for m in ("GET", "POST"))
                raise HubError(405 if known else 404, "METHOD_NOT_ALLOWED" if known else "NOT_FOUND",
                               "this method is not offered here" if known else "no such resource",
                               details=f"{request.method} {relative}")
            operation, path_params = found
            if request.method == "POST":
                problems = operation.check(path_params, request.query, request.headers, raw)
                if problems:
                    raise invalid_request(problems)
                try:
                    body = json.loads(raw, parse_float=Decimal)
                except ValueError:
                    raise bad_request("INVALID_REQUEST", "the body is not JSON", source="") from None
                if not isinstance(body, dict):
                    raise bad_request("INVALID_REQUEST", "the body must be a JSON object", source="")
                request[BODY] = body
            return await handler(request)
        except HubError as err:
            return err.response()
        except web.HTTPNotFound:
            return HubError(404, "NOT_FOUND", "no such resource", details=request.path).response()
        except web.HTTPMethodNotAllowed:
            return HubError(405, "METHOD_NOT_ALLOWED", "this method is not offered here",
                            details=request.path).response()
