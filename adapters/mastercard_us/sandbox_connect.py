"""Connect in the Finicity simulator: the generate calls, and the simulated end user's page with its Connect events.

    GET  /connect/sim/{link}    what the end user sees: institutions, test profiles, how to finish
    POST /connect/sim/{link}    {institution_id?, username?, outcome?: approve | reject}

Generating a link with a `webhook` first sends that URL a `ping` (one attempt): anything but a 2xx fails the call,
as upstream. The link's session then sends its Connect events there, in order:
- approve: started, institutionSupported (not for Lite), adding, added (the accounts), done;
- reject: started (the end user left);
- an institution id the simulator does not know: started, institutionNotFound;
- a failing test login `error_<code>` (code one of `UNABLE_TO_CONNECT`, e.g. `error_915`, at any institution):
  started, institutionSupported, adding, unableToConnect with that aggregation status code. The end user's page
  answers 400 `unable_to_connect`; the link stays usable.
The end user's page answers once each of these events had its first delivery attempt (at most 5 s); retries go on
in the background.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from adapters.mastercard_us.sandbox_common import SANDBOX, invalid_field, json_response
from adapters.mastercard_us.sandbox_data import INSTITUTIONS, PROFILES
from adapters.mastercard_us.sandbox_world import ConnectLink, World, account_json
from adapters.sandbox_kit import with_query

CONNECT_SIM = "/connect/sim/"
DEFAULT_PROFILE = "profile_03"
DEFAULT_TEST_INSTITUTION = 102105
SESSION_EVENTS_WAIT = 5.0  # seconds the end user's page waits for its events' first delivery attempts
# The codes the platform documents for unableToConnect; the test login `error_<code>` fails with each.
UNABLE_TO_CONNECT: dict[str, int] = {f"error_{code}": code
                                     for code in (102, 500, 900, 901, 903, 904, 910, 915, 916, 920)}
# What an `added` event lists of each account.
_ADDED_FIELDS = ("id", "number", "realAccountNumberLast4", "accountNumberDisplay", "name", "balance", "type",
                 "aggregationStatusCode", "status", "customerId", "institutionId", "balanceDate", "createdDate",
                 "lastUpdatedDate", "currency", "institutionLoginId", "displayPosition")


# --- the generate calls -----------------------------------------------------------------------------------------
async def _generate(request: web.Request, kind: str) -> web.Response:
    sandbox, body = request.app[SANDBOX], await request.json()
    world = sandbox.world
    if body["partnerId"] != sandbox.partner_id:
        raise invalid_field("Partner ID does not match the Finicity-App-Token")
    if body["customerId"] not in world.customers:
        raise invalid_field("Customer ID does not exist or does not belong to this partner")
    institution_id = body.get("institutionId")
    if kind == "lite" and institution_id not in INSTITUTIONS:
        raise invalid_field("Institution ID does not exist")
    webhook = None
    if body.get("webhook"):
        content_type = body.get("webhookContentType", "application/json")
        if content_type != "application/json":
            raise invalid_field(f'"webhookContentType" {content_type} is not simulated; use application/json')
        webhook = {"url": body["webhook"], "contentType": content_type, "data": body.get("webhookData"),
                   "headers": body.get("webhookHeaders")}
        if not await sandbox.notify.ping(body["customerId"], webhook):
            raise invalid_field('"webhook" did not answer the ping event with a 2xx status')
    link = ConnectLink(secrets.token_hex(16), body["customerId"], kind, institution_id, body.get("redirectUri"),
                       webhook, time.monotonic() + sandbox.connect_link_ttl)
    world.links[link.id] = link
    params = {"customerId": link.customer_id, "origin": "url", "partnerId": sandbox.partner_id,
              "signature": secrets.token_hex(32), "timestamp": str(int(time.time() * 1000)),
              "ttl": str(int((time.time() + sandbox.connect_link_ttl) * 1000))}
    if kind == "lite":
        params.update(institutionId=str(institution_id), type="lite")
    return json_response({"link": f"{request.scheme}://{request.host}{CONNECT_SIM}{link.id}?{urlencode(params)}"})


async def generate_connect_url(request: web.Request) -> web.Response:
    return await _generate(request, "standard")


async def generate_lite_connect_url(request: web.Request) -> web.Response:
    return await _generate(request, "lite")


# --- the simulated end user ---------------------------------------------------------------------------------------
def _sim_error(status: int, error: str, message: str, **extra: Any) -> web.Response:
    return json_response({"error": error, "message": message, **extra}, status)


def _open_link(world: World, link_id: str) -> ConnectLink | web.Response:
    link = world.links.get(link_id)
    if link is None:
        return _sim_error(404, "unknown_link", "No Connect session has this id.")
    if link.used or time.monotonic() >= link.expires_at:
        return _sim_error(410, "link_expired", "This Connect link was already used or has expired.")
    return link


def _choices(world: World, link: ConnectLink) -> list[int]:
    if link.institution_id is not None:
        return [link.institution_id]
    testing = world.customers[link.customer_id].type == "testing"
    return [i.id for i in INSTITUTIONS.values() if i.test == testing]


def _defaults(world: World, link: ConnectLink) -> dict[str, str]:
    choices = _choices(world, link)
    institution = DEFAULT_TEST_INSTITUTION if DEFAULT_TEST_INSTITUTION in choices else choices[0]
    return {"institution_id": str(institution), "username": DEFAULT_PROFILE, "outcome": "approve"}


async def connect_page(request: web.Request) -> web.Response:
    """What the end user would see: who is connecting, the banks on offer, the test logins, how to finish."""
    world = request.app[SANDBOX].world
    link = _open_link(world, request.match_info["link_id"])
    if isinstance(link, web.Response):
        return link
    customer = world.customers[link.customer_id]
    return json_response({
        "linkId": link.id, "type": link.kind, "customerId": customer.id, "customerType": customer.type,
        "institutions": [{"id": str(i), "name": INSTITUTIONS[i].name} for i in _choices(world, link)],
        "testProfiles": [{"username": p.username, "password": p.password,
                          "accounts": [{"type": a.type, "name": a.name} for a in p.accounts]}
                         for p in PROFILES.values()],
        "failingLogins": {username: f"unableToConnect with code {code}"
                          for username, code in UNABLE_TO_CONNECT.items()},
        "redirectUri": link.redirect_uri, "expiresIn": max(0, int(link.expires_at - time.monotonic())),
        "complete": {"method": "POST", "url": str(request.url.with_query(None)), "body": _defaults(world, link),
                     "outcomes": ["approve", "reject"]},
    })


async def connect_complete(request: web.Request) -> web.Response:
    """The end user signs in at the bank and approves (or leaves): accounts are linked and a receipt is made. The
    page answers once each Connect event of the session had its first delivery attempt (Connect sends them while
    the end user is still in the session, before the browser goes back to the partner)."""
    sandbox = request.app[SANDBOX]
    link = _open_link(sandbox.world, request.match_info["link_id"])
    if isinstance(link, web.Response):
        return link
    sent: list[asyncio.Future[None]] = []
    response = await _complete(request, sandbox, link, sent)
    if sent:
        await asyncio.wait(sent, timeout=SESSION_EVENTS_WAIT)
    return response


async def _complete(request: web.Request, sandbox: Any, link: ConnectLink,
                    sent: list[asyncio.Future[None]]) -> web.Response:
    world = sandbox.world

    def emit(event_type: str, payload: dict[str, Any] | None = None) -> None:
        queued = sandbox.notify.connect(link, event_type, payload)
        if queued is not None:
            sent.append(queued)

    raw = await request.read()
    try:
        choice = {**_defaults(world, link), **{k: str(v) for k, v in (orjson.loads(raw) if raw else {}).items()}}
    except (orjson.JSONDecodeError, AttributeError):
        return _sim_error(400, "invalid_body", "Expected a JSON object: institution_id, username, outcome.")
    if choice["outcome"] not in ("approve", "reject"):
        return _sim_error(400, "invalid_outcome", "outcome must be approve or reject.")
    emit("started")
    if choice["outcome"] == "reject":
        link.used = True
        return json_response({"outcome": "reject", "redirect_to": _redirect(link, code="100", reason="exited")})
    picked = choice["institution_id"]
    if not (picked.isascii() and picked.isdigit()) or int(picked) not in INSTITUTIONS:
        emit("institutionNotFound", {"query": picked})
        return _sim_error(400, "institution_not_found", "No institution has this id.")
    if int(picked) not in _choices(world, link):
        return _sim_error(400, "institution_not_available",
                          "This customer cannot connect that institution (testing customers use FinBank test "
                          "institutions, active customers the others).")
    institution = INSTITUTIONS[int(picked)]
    if link.kind != "lite":
        emit("institutionSupported", {"institutionId": picked})
    if choice["username"] in UNABLE_TO_CONNECT:
        code = UNABLE_TO_CONNECT[choice["username"]]
        emit("adding", {"institutionId": picked, "oauth": institution.oauth})
        emit("unableToConnect", {"institutionId": picked, "code": code})
        return _sim_error(400, "unable_to_connect", "Connect could not connect to this institution.", code=code)
    if choice["username"] not in PROFILES:
        return _sim_error(400, "invalid_credentials", f"Unknown test profile; use one of {', '.join(PROFILES)}.")
    emit("adding", {"institutionId": picked, "oauth": institution.oauth})
    consent = world.link_profile(link.customer_id, int(picked), choice["username"])
    link.used = True
    accounts = [account_json(world, world.accounts[i]) for i in consent.account_ids]
    emit("added", {"accounts": [{k: a[k] for k in _ADDED_FIELDS if k in a} for a in accounts],
                   "institutionId": picked, "oauth": institution.oauth})
    emit("done")
    return json_response({
        "outcome": "approve", "redirect_to": _redirect(link, code="200", reason="done"),
        "customerId": link.customer_id, "institutionId": picked,
        "institutionLoginId": str(consent.login_id), "accounts": consent.account_ids, "consentReceiptId": consent.id,
    })


def _redirect(link: ConnectLink, **params: str) -> str | None:
    return with_query(link.redirect_uri, **params) if link.redirect_uri else None


CONNECT_ROUTES: tuple[tuple[str, str, Any], ...] = (
    ("POST", "/connect/v2/generate", generate_connect_url),
    ("POST", "/connect/v2/generate/lite", generate_lite_connect_url),
    ("GET", CONNECT_SIM + "{link_id}", connect_page),
    ("POST", CONNECT_SIM + "{link_id}", connect_complete),
)
