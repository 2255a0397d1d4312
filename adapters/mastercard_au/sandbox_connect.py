"""Connect in the AU simulator: the generate calls (Full, Lite, Dashboard) and the simulated end user's pages.

    GET  /connect/sim/{link}              what the end user sees: institutions, test profiles, how to finish
    POST /connect/sim/{link}              {institution_id?, username?, outcome?: approve | reject}
    GET  /connect/sim/dashboard/{id}      the customer's consent receipts
    POST /connect/sim/dashboard/{id}      {action: "revoke", consent_receipt_id, institution_login_id?}

A link stays usable until it expires (2 hours): a second approval through the same link adds an institution to the
receipt the link made, while that receipt is still ACTIVE. Picking an institution id from 920 to 929 makes Connect
fail as "institution not supported" with that code (Connect event unableToConnect); any other unknown id is
reported as institutionNotFound.
"""
from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from adapters.mastercard_au.sandbox_checks import (
    HTTP_URL, INTEGER, NUMERIC_ID, OBJECT, STRING_MAP, AUError, one_of, opt, read_body, req,
)
from adapters.mastercard_au.sandbox_data import (
    DEFAULT_PROFILE, FINBANK_A, INSTITUTIONS, PROFILES, TEST_INSTITUTION_IDS, UNSUPPORTED_INSTITUTION_CODES,
)
from adapters.mastercard_au.sandbox_handlers import SANDBOX, customer_of, json_response
from adapters.mastercard_au.sandbox_views import account_json, receipt_json
from adapters.mastercard_au.sandbox_world import Dashboard, Link, Receipt, World
from adapters.sandbox_kit import with_query

CONNECT_SIM = "/connect/sim/"
CONNECT_FIELDS = (req("partnerId"), req("customerId", NUMERIC_ID), opt("redirectUri"), opt("webhook", HTTP_URL),
                  opt("webhookContentType", one_of("application/json")), opt("webhookData", OBJECT),
                  opt("webhookHeaders", STRING_MAP), opt("experience"), opt("fromDate", INTEGER), opt("language"))
LITE_FIELDS = (*CONNECT_FIELDS, req("institutionId", NUMERIC_ID))
MANAGE_FIELDS = (req("partnerId"), req("customerId", NUMERIC_ID), opt("consentReceiptId"), opt("redirectUri"))
_ADDED_FIELDS = ("id", "number", "accountNumberDisplay", "name", "balance", "type", "status", "customerId",
                 "institutionId", "balanceDate", "createdDate", "lastUpdatedDate", "currency", "institutionLoginId",
                 "accountNickname", "marketSegment")


# --- the generate calls -----------------------------------------------------------------------------------------
def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}{CONNECT_SIM}"


def _partner_customer(request: web.Request, body: dict[str, Any]) -> str:
    sandbox = request.app[SANDBOX]
    if body["partnerId"] != sandbox.partner_id:
        raise AUError(400, "10005", "Invalid parameter: partnerId (does not match the App-Token)")
    return customer_of(sandbox.world, str(body["customerId"])).id


async def _generate(request: web.Request, kind: str) -> web.Response:
    sandbox = request.app[SANDBOX]
    body = await read_body(request, LITE_FIELDS if kind == "lite" else CONNECT_FIELDS)
    customer_id = _partner_customer(request, body)
    institution_id = int(body["institutionId"]) if kind == "lite" else None
    if institution_id is not None and institution_id not in INSTITUTIONS:
        raise AUError(400, "10005", "Invalid parameter: institutionId (no such institution)")
    webhook = None
    if "webhook" in body:
        webhook = {"url": body["webhook"], "data": body.get("webhookData"), "headers": body.get("webhookHeaders")}
        if not await sandbox.notify.ping(customer_id, webhook):
            raise AUError(400, "10005", "Webhook URL did not respond to ping")
    link = Link(secrets.token_hex(16), customer_id, kind, institution_id, body.get("redirectUri"), webhook,
                time.monotonic() + sandbox.connect_link_ttl)
    sandbox.world.links[link.id] = link
    params = {"customerId": customer_id, "origin": "url", "partnerId": sandbox.partner_id,
              "signature": secrets.token_hex(32), "timestamp": str(int(time.time() * 1000)),
              "ttl": str(int((time.time() + sandbox.connect_link_ttl) * 1000))}
    if institution_id is not None:
        params.update(institutionId=str(institution_id), type="lite")
    return json_response({"link": f"{_base(request)}{link.id}?{urlencode(params)}"})


async def generate_connect_url(request: web.Request) -> web.Response:
    return await _generate(request, "full")


async def generate_lite_connect_url(request: web.Request) -> web.Response:
    return await _generate(request, "lite")


async def generate_dashboard_url(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    body = await read_body(request, MANAGE_FIELDS)
    customer_id = _partner_customer(request, body)
    receipt_id = body.get("consentReceiptId")
    receipt = sandbox.world.receipts.get(receipt_id) if receipt_id else None
    if receipt_id is not None and (receipt is None or receipt.customer_id != customer_id):
        raise AUError(404, "10215", "Consent receipt not found")
    dashboard = Dashboard(secrets.token_hex(16), customer_id, receipt_id, body.get("redirectUri"),
                          time.monotonic() + sandbox.connect_link_ttl)
    sandbox.world.dashboards[dashboard.id] = dashboard
    return json_response({"link": f"{_base(request)}dashboard/{dashboard.id}"})


# --- the simulated end user ---------------------------------------------------------------------------------------
def _sim_error(status: int, error: str, message: str, **extra: Any) -> web.Response:
    return json_response({"error": error, "message": message, **extra}, status)


def _open(found: Link | Dashboard | None) -> Link | Dashboard | web.Response:
    if found is None:
        return _sim_error(404, "unknown_link", "No Connect session has this id.")
    if time.monotonic() >= found.expires_at:
        return _sim_error(410, "link_expired", "This Connect link has expired.")
    return found


async def _choice(request: web.Request, defaults: dict[str, str]) -> dict[str, str] | web.Response:
    raw = await request.read()
    try:
        sent = orjson.loads(raw) if raw.strip() else {}
        return {**defaults, **{k: str(v) for k, v in sent.items()}}
    except (orjson.JSONDecodeError, AttributeError):
        return _sim_error(400, "invalid_body", "Expected a JSON object.")


def _choices(world: World, link: Link) -> list[int]:
    testing = world.customers[link.customer_id].type == "testing"
    allowed = TEST_INSTITUTION_IDS if testing else tuple(INSTITUTIONS)  # testing customers connect FinBank only
    if link.institution_id is not None:
        return [link.institution_id] if link.institution_id in allowed else []
    return list(allowed)


def _defaults(link: Link) -> dict[str, str]:
    institution = link.institution_id or FINBANK_A
    return {"institution_id": str(institution), "username": DEFAULT_PROFILE, "outcome": "approve"}


async def connect_page(request: web.Request) -> web.Response:
    """What the end user would see: who is connecting, the banks on offer, the test logins, how to finish."""
    world = request.app[SANDBOX].world
    link = _open(world.links.get(request.match_info["link_id"]))
    if not isinstance(link, Link):
        return link
    customer = world.customers[link.customer_id]
    return json_response({
        "linkId": link.id, "type": link.kind, "customerId": customer.id, "customerType": customer.type,
        "customerCategory": customer.category,
        "institutions": [{"id": str(i), "name": INSTITUTIONS[i].name} for i in _choices(world, link)],
        "unsupportedInstitutionIds": [str(i) for i in UNSUPPORTED_INSTITUTION_CODES],
        "testProfiles": [{"username": p.username, "password": p.password,
                          "accounts": [{"type": a.type, "name": a.name} for a in p.accounts]}
                         for p in PROFILES.values()],
        "redirectUri": link.redirect_uri, "expiresIn": max(0, int(link.expires_at - time.monotonic())),
        "complete": {"method": "POST", "url": str(request.url.with_query(None)), "body": _defaults(link),
                     "outcomes": ["approve", "reject"]},
    })


async def connect_complete(request: web.Request) -> web.Response:
    """The end user signs in at the bank and approves (or leaves): accounts are linked under a consent receipt."""
    sandbox = request.app[SANDBOX]
    world, notify = sandbox.world, sandbox.notify
    link = _open(world.links.get(request.match_info["link_id"]))
    if not isinstance(link, Link):
        return link
    choice = await _choice(request, _defaults(link))
    if isinstance(choice, web.Response):
        return choice
    if choice["outcome"] not in ("approve", "reject"):
        return _sim_error(400, "invalid_outcome", "outcome must be approve or reject.")
    notify.connect(link, "started")
    if choice["outcome"] == "reject":
        return json_response({"outcome": "reject", "redirect_to": _redirect(link, code="100", reason="exited")})
    picked = choice["institution_id"]
    if not (picked.isascii() and picked.isdigit()):
        return _sim_error(400, "invalid_institution", "institution_id must be a number.")
    institution_id = int(picked)
    if institution_id in UNSUPPORTED_INSTITUTION_CODES:
        notify.connect(link, "unableToConnect", {"institutionId": picked, "code": institution_id})
        return _sim_error(400, "unable_to_connect", "This institution is not supported for aggregation.",
                          code=institution_id)
    if institution_id not in INSTITUTIONS:
        notify.connect(link, "institutionNotFound", {"query": picked})
        return _sim_error(400, "institution_not_found", "No institution has this id.")
    if institution_id not in _choices(world, link):
        return _sim_error(400, "institution_not_available",
                          "This customer cannot connect that institution (testing customers use the FinBank test "
                          "institutions; a Lite link only its own institution).")
    if choice["username"] not in PROFILES:
        return _sim_error(400, "invalid_credentials", f"Unknown test profile; use one of {', '.join(PROFILES)}.")
    receipt = world.receipts.get(link.receipt_id) if link.receipt_id else None
    created = receipt is None or receipt.status != "ACTIVE"
    if created:
        receipt = world.new_receipt(link.customer_id, choice["username"])
        link.receipt_id = receipt.id
    assert receipt is not None
    arrangement = world.add_arrangement(receipt, institution_id, choice["username"])
    if created:
        notify.consent("CONSENT_CREATED", receipt, [])
    notify.consent("INSTITUTIONS_ADDED", receipt, [arrangement])
    accounts = [account_json(world, world.accounts[i]) for i in arrangement.account_ids]
    notify.connect(link, "adding", {"institutionId": picked, "oauth": True})
    notify.connect(link, "added", {"institutionId": picked, "oauth": True, "receiptId": receipt.id,
                                   "accounts": [{k: a[k] for k in _ADDED_FIELDS} for a in accounts]})
    notify.connect(link, "done")
    return json_response({
        "outcome": "approve", "redirect_to": _redirect(link, code="200", reason="done"),
        "customerId": link.customer_id, "institutionId": picked, "institutionLoginId": str(arrangement.login_id),
        "accounts": list(arrangement.account_ids), "consentReceiptId": receipt.id,
    })


def _redirect(link: Link, **params: str) -> str | None:
    return with_query(link.redirect_uri, **params) if link.redirect_uri else None


def _dashboard_receipts(world: World, dashboard: Dashboard) -> list[Receipt]:
    return [r for r in world.receipts.values()
            if r.customer_id == dashboard.customer_id and dashboard.receipt_id in (None, r.id)]


async def dashboard_page(request: web.Request) -> web.Response:
    world = request.app[SANDBOX].world
    dashboard = _open(world.dashboards.get(request.match_info["dashboard_id"]))
    if not isinstance(dashboard, Dashboard):
        return dashboard
    return json_response({
        "dashboardId": dashboard.id, "customerId": dashboard.customer_id,
        "consents": [receipt_json(world, r) for r in _dashboard_receipts(world, dashboard)],
        "revoke": {"method": "POST", "url": str(request.url.with_query(None)),
                   "body": {"action": "revoke", "consent_receipt_id": "...", "institution_login_id": "(optional)"}},
    })


async def dashboard_action(request: web.Request) -> web.Response:
    """The customer revokes a whole receipt, or one institution login of it, from the dashboard."""
    sandbox = request.app[SANDBOX]
    world = sandbox.world
    dashboard = _open(world.dashboards.get(request.match_info["dashboard_id"]))
    if not isinstance(dashboard, Dashboard):
        return dashboard
    choice = await _choice(request, {"action": "revoke"})
    if isinstance(choice, web.Response):
        return choice
    if choice["action"] != "revoke":
        return _sim_error(400, "invalid_action", "action must be revoke.")
    receipt = next((r for r in _dashboard_receipts(world, dashboard) if r.id == choice.get("consent_receipt_id")), None)
    if receipt is None:
        return _sim_error(404, "unknown_consent", "This dashboard shows no consent receipt with that id.")
    chosen = receipt.active()
    if "institution_login_id" in choice:
        chosen = [a for a in chosen if str(a.login_id) == choice["institution_login_id"]]
    changed = world.end_arrangements(receipt, chosen, "REVOKED", "CUSTOMER")
    sandbox.notify.consent("INSTITUTIONS_REVOKED", receipt, changed)
    redirect = with_query(dashboard.redirect_uri, code="200", reason="done") if dashboard.redirect_uri else None
    return json_response({"outcome": "revoked", "consent": receipt_json(world, receipt), "redirect_to": redirect})


CONNECT_ROUTES: tuple[tuple[str, str, Any], ...] = (
    ("POST", "/connect/v2/generate", generate_connect_url),
    ("POST", "/connect/v2/generate/lite", generate_lite_connect_url),
    ("POST", "/connect/v2/generate/consent/manage", generate_dashboard_url),
    ("GET", CONNECT_SIM + "dashboard/{dashboard_id}", dashboard_page),
    ("POST", CONNECT_SIM + "dashboard/{dashboard_id}", dashboard_action),
    ("GET", CONNECT_SIM + "{link_id}", connect_page),
    ("POST", CONNECT_SIM + "{link_id}", connect_complete),
)
