"""The Thredd simulator's HTTP handlers: the open-banking API and the simulated end user's Connect pages."""
from __future__ import annotations

import secrets
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from adapters.sandbox_kit import with_query

from adapters.mastercard_us.sandbox_data import INSTITUTIONS
from adapters.thredd.sandbox import (
    CONNECT_SIM, OUTCOMES, REGISTER_FIELDS, SANDBOX, Link, ThreddError, invalid_request, json_response,
)
from adapters.thredd.sandbox_data import DEFAULT_INSTITUTION, ThreddCustomer, account_json, details_json

if TYPE_CHECKING:
    from adapters.thredd.sandbox import ThreddSandbox


# --- API handlers ----------------------------------------------------------------------------------------------------
def _sandbox(request: web.Request) -> ThreddSandbox:
    return request.app[SANDBOX]


def _known_customer(sandbox: ThreddSandbox, customer_id: str) -> ThreddCustomer:
    customer = sandbox.customer(customer_id)
    if customer is None:
        raise ThreddError(404, "CUSTOMER_NOT_FOUND", f"Customer {customer_id} was not found")
    return customer


def _http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


async def _register(request: web.Request) -> web.Response:
    sandbox = _sandbox(request)
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise invalid_request("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object")
    unknown = sorted(set(body) - set(REGISTER_FIELDS))
    if unknown:
        raise invalid_request(f"Unknown field(s): {', '.join(unknown)}")
    for name in ("redirect_uri", "is_hosted_in_mobile_app", "application_id"):
        if body.get(name) is None:
            raise invalid_request(f"{name} is required")
    redirect_uri = body["redirect_uri"]
    if not isinstance(redirect_uri, str) or not _http_url(redirect_uri):
        raise invalid_request("redirect_uri must be an http(s) URL")
    if not isinstance(body["is_hosted_in_mobile_app"], bool):
        raise invalid_request("is_hosted_in_mobile_app must be a boolean")
    if not isinstance(body["application_id"], str) or not body["application_id"]:
        raise invalid_request("application_id must be a non-empty string")
    existing = body.get("openbanking_customer_id")
    if existing is not None and (not isinstance(existing, str) or not existing):
        raise invalid_request("openbanking_customer_id must be a non-empty string")
    if body["application_id"] != sandbox.application_id:
        raise ThreddError(400, "MASTERCARD_REJECTED",
                          f"Mastercard rejected the registration: unknown application_id {body['application_id']}")
    customer = _known_customer(sandbox, existing) if existing is not None else sandbox.add_customer()
    link = Link(secrets.token_hex(16), customer.id, redirect_uri, body["is_hosted_in_mobile_app"])
    sandbox.links[link.id] = link
    base = sandbox.base_url or f"{request.scheme}://{request.host}"
    return json_response({"request_id": str(uuid.uuid4()), "openbanking_customer_id": customer.id,
                          "link": f"{base}{CONNECT_SIM}{link.id}"})


async def _list_accounts(request: web.Request) -> web.Response:
    customer = _known_customer(_sandbox(request), request.match_info["customer_id"])
    refreshed = int(time.time())
    accounts = [account_json(a, refreshed=refreshed) for a in customer.accounts]
    return json_response({"request_id": str(uuid.uuid4()), "count": len(accounts), "accounts": accounts})


async def _account_details(request: web.Request) -> web.Response:
    customer = _known_customer(_sandbox(request), request.match_info["customer_id"])
    account_id = request.match_info["account_id"]
    account = next((a for a in customer.accounts if a.id == account_id), None)
    if account is None:
        raise ThreddError(404, "ACCOUNT_NOT_FOUND", f"Account {account_id} was not found for customer {customer.id}")
    return json_response({"request_id": str(uuid.uuid4()), "paymentInstruction": details_json(account)})


# --- the simulated end user ----------------------------------------------------------------------------------------
def _sim_error(status: int, error: str, message: str) -> web.Response:
    return json_response({"error": error, "message": message}, status)


def _open_link(sandbox: ThreddSandbox, link_id: str) -> Link | web.Response:
    link = sandbox.links.get(link_id)
    if link is None:
        return _sim_error(404, "unknown_link", "No Connect session has this id.")
    if link.used:
        return _sim_error(410, "link_used", "This Connect link was already used.")
    if sandbox.customer(link.customer_id) is None:
        return _sim_error(410, "customer_revoked", "The customer of this Connect link was revoked.")
    return link


def _redirect(link: Link, **params: str) -> str:
    return with_query(link.redirect_uri, **params)


async def _connect_page(request: web.Request) -> web.Response:
    sandbox = _sandbox(request)
    link = _open_link(sandbox, request.match_info["link_id"])
    if isinstance(link, web.Response):
        return link
    customer = sandbox._customers[link.customer_id]
    return json_response({
        "linkId": link.id, "purpose": "Thredd Open Banking: instant account verification (checking and savings)",
        "openbanking_customer_id": customer.id, "reconnect": bool(customer.accounts),
        "redirectUri": link.redirect_uri, "isHostedInMobileApp": link.hosted_in_mobile_app,
        "institutions": [{"id": str(i.id), "name": i.name} for i in INSTITUTIONS.values()],
        "complete": {"method": "POST", "url": str(request.url.with_query(None)),
                     "body": {"outcome": "approve", "institution_id": DEFAULT_INSTITUTION},
                     "outcomes": list(OUTCOMES)},
    })


async def _connect_complete(request: web.Request) -> web.Response:
    """The end user finishes Connect; the answer comes first, the webhooks follow from a background task."""
    sandbox = _sandbox(request)
    link = _open_link(sandbox, request.match_info["link_id"])
    if isinstance(link, web.Response):
        return link
    raw = await request.read()
    try:
        choice = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        choice = None
    if choice is None:
        choice = {}
    if not isinstance(choice, dict) or set(choice) - {"outcome", "institution_id"}:
        return _sim_error(400, "invalid_body", "Expected a JSON object with outcome and institution_id only.")
    outcome = str(choice.get("outcome") or "approve")
    institution = str(choice.get("institution_id") or DEFAULT_INSTITUTION)
    if outcome not in OUTCOMES:
        return _sim_error(400, "invalid_outcome", f"outcome must be one of {', '.join(OUTCOMES)}.")
    if not institution.isdigit() or int(institution) not in INSTITUTIONS:
        return _sim_error(400, "institution_not_found",
                          f"Unknown institution; choose one of {', '.join(str(i) for i in INSTITUTIONS)}.")
    customer = sandbox._customers[link.customer_id]
    link.used = True
    events = [sandbox.event(customer.id, "started", payload={"institutionId": institution})]
    answer: dict[str, Any] = {"outcome": outcome, "openbanking_customer_id": customer.id,
                              "institutionId": institution}
    if outcome == "approve":
        accounts = sandbox.connect(customer, int(institution))
        ids = [a.id for a in accounts]
        login = str(accounts[0].login_id)
        events.append(sandbox.event(customer.id, "added", payload={
            "institutionId": institution, "institutionLoginId": login, "accounts": ids}))
        events.append(sandbox.event(customer.id, "done", payload={
            "institutionId": institution, "institutionLoginId": login, "accounts": ids, "code": 200,
            "reason": "done"}))
        answer.update(redirect_to=_redirect(link, code="200", reason="done"), accounts=ids,
                      institutionLoginId=login)
    elif outcome == "reject":
        answer["redirect_to"] = _redirect(link, code="100", reason="exited")
    else:
        events.append(sandbox.event(customer.id, "invalidCredentials", payload={"institutionId": institution}))
        answer["redirect_to"] = _redirect(link, code="103", reason="error")
    answer["events"] = [e["event_type"] for e in events]
    response = json_response(answer)
    await response.prepare(request)  # the redirect reaches the end user before any webhook leaves
    await response.write_eof()
    sandbox._queue_events(events)
    return response
