"""Property-based contract testing: schemathesis drives the live app over real HTTP.

The gateway runs in-process on 127.0.0.1 (its own event loop in a background thread, its simulators on ephemeral
ports) and must serve at `/openapi.json` the very contract the tests are generated from. For every operation
schemathesis sends valid and invalid requests: the documented examples, the coverage phase (boundaries, missing
and malformed values) and bounded, derandomized fuzzing. Every response must be no server error and have a
documented status, Content-Type, headers and body.

Random ids only ever reach "not found", so real customers, consents and accounts are created first, and most
valid cases use them: that way the account operations really call the simulated provider and their answers are
checked too (the operations only ob-connect offers, standing orders and the raw consent, get an ob-connect consent
and its accounts). Bugs found this way are pinned by the regression tests at the end.
"""
from __future__ import annotations

import asyncio
import secrets
import threading
import zlib
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import attrs
import pytest
import requests
import schemathesis
from aiohttp import web
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.api.app import create_app
from gateway.config import parse_config
from tests.conftest import DEV, local_raw_config, unused_port
from tests.openapi_check import document, validate_response

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 25
# aiohttp's default max_line_size and max_field_size, which the gateway runs with (gateway/cli.py).
HTTP_LINE_LIMIT = 8190
PROVIDER = "mastercard-us"


class BackgroundGateway:
    """The app on a real socket, served by its own event loop in a daemon thread (schemathesis is synchronous)."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway-under-test", daemon=True)
        self.runner = web.AppRunner(app, access_log=None)

    def _run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, port: int = 0) -> str:
        self.thread.start()
        self._run(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        self._run(site.start())
        host, port = self.runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        try:
            self._run(self.runner.cleanup())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()


@attrs.frozen
class KnownIds:
    """Real resources of the dev tenant.

    `consent_id` (of `customer_id`) may be revoked during the run; the accounts belong to another customer's
    consent, which the run never names, so they stay readable throughout. Both payments start `authorised` at
    stripe-uk: `payment_id` may be submitted during the run (complete, submit), `funds_payment_id` is only ever
    read by the funds confirmation, which so meets an authorised payment whatever the order of the operations.
    The ob-connect consent (with `standing_orders`) and its accounts serve the operations only ob-connect offers.
    """

    customer_id: str
    consent_id: str
    account_consent_id: str
    accounts: tuple[tuple[str, str], ...]  # (id, type)
    # mastercard-au resources, for the operations only it offers (reports, consumers, applications, CDR consents)
    au_customer_id: str
    au_consent_id: str
    report_id: str
    application_id: str
    login_ref: str
    payment_id: str
    funds_payment_id: str
    # ob-connect resources, for the operations only it offers (standing orders, the raw consent)
    ob_consent_id: str
    ob_accounts: tuple[str, ...]

    def for_path(self, operation_path: str, name: str, generated: str) -> str | None:
        """The real id to use instead of a generated one, chosen by the generated value (so deterministic)."""
        pick = zlib.crc32(generated.encode())
        if pick % 4 == 0:
            return None  # keep one in four random ids: they must answer 404
        if operation_path.endswith(OB_ONLY_SUFFIXES):
            if name == "account_id":
                return self.ob_accounts[pick % len(self.ob_accounts)]
            if name == "consent_id":
                return self.ob_consent_id
        if name == "account_id":
            return self.accounts[pick % len(self.accounts)][0]
        if name == "payment_id":
            return self.funds_payment_id if operation_path.endswith("/funds-confirmation") else self.payment_id
        if any(part in operation_path for part in AU_ONLY_PATHS):
            return {"customer_id": self.au_customer_id, "consent_id": self.au_consent_id,
                    "login_ref": self.login_ref}.get(name)
        return {"customer_id": self.customer_id, "consent_id": self.consent_id, "report_id": self.report_id,
                "application_id": self.application_id}.get(name)


AU = "mastercard-au"
AU_ONLY_PATHS = ("/consumer", "/consent-dashboard", "/institution-logins/")
OB = "ob-connect"
OB_ONLY_SUFFIXES = ("/standing-orders", "/raw")


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The local environment (all adapters on their simulators) with its own database."""
    raw = local_raw_config()
    db: Path = tmp_path_factory.mktemp("schemathesis") / "gateway.db"
    raw["store"] = {"url": f"sqlite:///{db}"}
    raw["logging"] = {"format": "json", "level": "warning"}
    for adapter in raw["adapters"].values():
        adapter["sandbox_port"] = 0
    port = unused_port()  # its public URL must be its real address: providers call back there
    raw["server"]["public_url"] = f"http://127.0.0.1:{port}"
    server = BackgroundGateway(create_app(parse_config(raw, source="test")))
    base_url = server.start(port)
    try:
        served = requests.get(f"{base_url}/openapi.json", timeout=10)
        assert served.status_code == 200 and served.json() == document(), "the app serves another contract"
        yield base_url
    finally:
        server.stop()


def _call(method: str, url: str, expect: int, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
    resp = requests.request(method, url, headers={**DEV, **(headers or {})}, timeout=15, **kwargs)
    assert resp.status_code == expect, (method, url, resp.status_code, resp.text[:500])
    return resp.json()


def _authorised_consent(base_url: str, customer_id: str | None, **terms: Any) -> dict[str, Any]:
    order = {"customer_id": customer_id} if customer_id is not None else {}
    consent = _call("POST", f"{base_url}/v1/consents", 201,
                    json={**order, "redirect_uri": "https://app.example.com/callback", **terms})
    approved = requests.post(consent["authorisation_url"], timeout=15, verify=False)  # the simulated end user approves
    assert approved.status_code == 200, approved.text[:500]
    done = _call("POST", f"{base_url}/v1/consents/{consent['id']}/complete", 200,
                 json={"redirect_result": approved.json()["redirect_to"]})
    assert done["status"] == "authorised", done
    return dict(done)


UK = "stripe-uk"
PAYMENT_ORDER = {
    "provider": UK, "type": "domestic", "amount": {"amount": "25.50", "currency": "GBP"},
    "creditor": {"name": "Contract Supplies Ltd",
                 "account": {"scheme": "uk_sort_code", "sort_code": "04-00-04", "account_number": "12345678"}},
    "reference": "CONTRACT001", "redirect_uri": "https://app.example.com/callback",
}


def _authorised_payment(base_url: str) -> str:
    """A stripe-uk payment the simulated payer approved, completed without submitting it."""
    payment = _call("POST", f"{base_url}/v1/payments", 201, json=PAYMENT_ORDER,
                    headers={"Idempotency-Key": f"contract-{secrets.token_hex(8)}"})
    approved = requests.post(payment["authorisation_url"], timeout=15, verify=False)  # the simulated payer approves
    assert approved.status_code == 200, approved.text[:500]
    done = _call("POST", f"{base_url}/v1/payments/{payment['id']}/complete", 200,
                 json={"redirect_result": approved.json()["redirect_to"], "submit": False})
    assert done["status"] == "authorised", done
    return str(done["id"])


def _new_customer(base_url: str, provider: str = PROVIDER) -> str:
    customer = _call("POST", f"{base_url}/v1/customers", 201,
                     json={"provider": provider, "external_ref": f"contract{secrets.token_hex(4)}"})
    return str(customer["id"])


@pytest.fixture(scope="module")
def known_ids(live_gateway: str) -> KnownIds:
    customer_id = _new_customer(live_gateway)
    consent_id = _authorised_consent(live_gateway, customer_id)["id"]
    account_consent_id = _authorised_consent(live_gateway, _new_customer(live_gateway))["id"]
    accounts = _call("GET", f"{live_gateway}/v1/accounts", 200, params={"consent_id": account_consent_id})["data"]
    assert accounts, "the simulator shares no accounts"
    au_customer_id = _new_customer(live_gateway, AU)
    au_consent = _authorised_consent(live_gateway, au_customer_id)
    _call("POST", f"{live_gateway}/v1/customers/{au_customer_id}/consumer", 201,
          json={"first_name": "Ruby", "last_name": "Taylor"})
    report = _call("POST", f"{live_gateway}/v1/reports", 202, json={"customer_id": au_customer_id, "type": "voa"})
    application = _call("POST", f"{live_gateway}/v1/applications", 201, json={
        "provider": AU, "access_model": "CDR_REPRESENTATIVE", "name": "Contract", "description": "Contract tests",
        "url": "https://contract.example.com", "image": "iVBORw0KGgo="})
    bank = _call("GET", f"{live_gateway}/v1/institutions", 200, params={"provider": OB, "country": "GB"})["data"][0]
    ob_consent = _authorised_consent(live_gateway, None, provider=OB, institution_id=bank["id"], permissions=[
        "accounts", "balances", "transactions", "details", "owner", "standing_orders"])
    ob_accounts = _call("GET", f"{live_gateway}/v1/accounts", 200, params={"consent_id": ob_consent["id"]})["data"]
    assert ob_accounts, "the ob-connect simulator shares no accounts"
    return KnownIds(customer_id=customer_id, consent_id=consent_id, account_consent_id=account_consent_id,
                    accounts=tuple((a["id"], a["type"]) for a in accounts), au_customer_id=au_customer_id,
                    au_consent_id=au_consent["id"], report_id=report["id"], application_id=application["id"],
                    login_ref=au_consent["terms"]["institutions"][0]["login_ref"],
                    payment_id=_authorised_payment(live_gateway), funds_payment_id=_authorised_payment(live_gateway),
                    ob_consent_id=ob_consent["id"], ob_accounts=tuple(a["id"] for a in ob_accounts))


def _use_known_ids(case: schemathesis.Case, ids: KnownIds) -> None:
    """Valid cases mostly get real ids instead of random ones, so they reach the provider (see KnownIds)."""
    meta = case.meta
    if case.path_parameters and (meta is None or not meta.is_negative_at(ParameterLocation.PATH)):
        params = dict(case.path_parameters)
        for name, value in params.items():
            params[name] = ids.for_path(case.path, name, str(value)) or value
        case.path_parameters = params
    query = case.query
    if case.path == "/v1/accounts" and isinstance((query or {}).get("consent_id"), str) and (
            meta is None or not meta.is_negative_at(ParameterLocation.QUERY)):
        if zlib.crc32(query["consent_id"].encode()) % 4:
            case.query = {**query, "consent_id": ids.account_consent_id}
    body = case.body
    if case.method.upper() == "POST" and isinstance(body, dict) and (
            meta is None or not meta.is_negative_at(ParameterLocation.BODY)):
        if case.path == "/v1/consents" and isinstance(body.get("customer_id"), str):
            case.body = {**body, "customer_id": ids.customer_id, "provider": None}
        elif case.path == "/v1/customers" and isinstance(body.get("provider"), str):
            case.body = {**body, "provider": PROVIDER}
        elif case.path == "/v1/payments" and isinstance(body.get("provider"), str):
            case.body = {**body, "provider": UK}  # the provider's own rules, and now and then a real payment


SCHEMA_CONFIG = schemathesis.Config.from_dict({
    "seed": 20260131,
    "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
    "headers": dict(DEV),
    "request-timeout": 15,
    "generation": {
        "mode": "all",  # positive and negative data
        "max-examples": MAX_EXAMPLES,
        "deterministic": True,
        "database": "none",
    },
    "phases": {
        "examples": {"enabled": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
        "stateful": {"enabled": False},
    },
})
# Collected from the contract file, one test per operation; `live_gateway` proves the app serves this very document.
schema = schemathesis.openapi.from_dict(document(), config=SCHEMA_CONFIG)


def _beyond_http_limits(response: schemathesis.Response) -> bool:
    """Whether the request line or a header was longer than the HTTP server reads (see the contract's limits)."""
    sent = response.request
    url = urlsplit(sent.url or "")
    target = url.path + (f"?{url.query}" if url.query else "")
    return len(target.encode()) > HTTP_LINE_LIMIT or any(
        len(str(name).encode()) > HTTP_LINE_LIMIT or len(str(value).encode()) > HTTP_LINE_LIMIT
        for name, value in sent.headers.items()
    )


@schema.parametrize()
def test_api_conforms_to_its_contract(case: schemathesis.Case, live_gateway: str, known_ids: KnownIds) -> None:
    _use_known_ids(case, known_ids)
    response = case.call(base_url=live_gateway, headers=DEV)
    if _beyond_http_limits(response):
        # Refused by the HTTP server before the gateway sees it (plain-text 400, documented in info.description).
        assert response.status_code == 400, (response.status_code, response.text[:300])
        return
    case.validate_response(response, checks=CHECKS, headers=DEV, transport_kwargs={"base_url": live_gateway})


@pytest.mark.parametrize("sub", ["balances", "details"])
def test_non_deposit_accounts_get_documented_answers(live_gateway: str, known_ids: KnownIds, sub: str) -> None:
    failures = []
    for account_id, kind in known_ids.accounts:
        path = f"/v1/accounts/{account_id}/{sub}"
        resp = requests.get(live_gateway + path, headers=DEV, timeout=15)
        try:
            assert resp.status_code < 500, f"{resp.status_code} {resp.text[:300]}"
            validate_response("GET", path, resp.status_code, resp.json(), resp.headers.get("Content-Type", ""),
                              headers=resp.headers)
        except AssertionError as exc:
            failures.append(f"{kind}: {exc}")
    assert not failures, "\n".join(failures)


def test_revoking_a_consent_leaves_another_consents_accounts_readable(live_gateway: str) -> None:
    customer_id = _new_customer(live_gateway)
    first = _authorised_consent(live_gateway, customer_id)["id"]
    second = _authorised_consent(live_gateway, customer_id)["id"]
    listed = _call("GET", f"{live_gateway}/v1/accounts", 200, params={"consent_id": second})["data"]
    _call("POST", f"{live_gateway}/v1/consents/{first}/revoke", 200)
    gone = []
    for account in listed:
        resp = requests.get(f"{live_gateway}/v1/accounts/{account['id']}/owner", headers=DEV, timeout=15)
        if resp.status_code != 200:
            gone.append((account["provider_ref"], resp.status_code, resp.json().get("code")))
    assert not gone, f"accounts listed under {second} that it no longer reads: {gone}"


@pytest.mark.parametrize("redirect_result", ["a=1&" * 51, "http://[oops/cb?code=200"], ids=["51-fields", "bad-url"])
def test_unreadable_redirect_result_is_a_documented_422(live_gateway: str, redirect_result: str) -> None:
    consent = _call("POST", f"{live_gateway}/v1/consents", 201,
                    json={"customer_id": _new_customer(live_gateway), "redirect_uri": "https://app.example.com/cb"})
    path = f"/v1/consents/{consent['id']}/complete"
    resp = requests.post(live_gateway + path, headers=DEV, json={"redirect_result": redirect_result}, timeout=15)
    validate_response("POST", path, resp.status_code, resp.json(), resp.headers.get("Content-Type", ""),
                      headers=resp.headers)
    assert resp.status_code == 422, resp.text[:300]
