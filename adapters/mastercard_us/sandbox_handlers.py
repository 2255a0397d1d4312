"""Request handlers of the Finicity simulator, one per upstream operation: customers, institutions, accounts,
transactions and data-sharing consents here; Connect (with the simulated end user's pages) in `sandbox_connect`,
consumers and reports in `sandbox_reports`. `ROUTES` lists them all.

By the time a handler runs, the simulator's gate has authenticated the call and checked it against the spec, so
required parameters are present and well-typed. Handlers raise `FinicityError`; the gate renders it in the error
shape the spec gives that operation.
"""
from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from adapters.mastercard_us.sandbox_common import (
    SANDBOX, FinicityError, customer_of, invalid_field, json_response, world_of,
)
from adapters.mastercard_us.sandbox_connect import CONNECT_ROUTES, CONNECT_SIM
from adapters.mastercard_us.sandbox_data import DEPOSIT_TYPES, INSTITUTIONS
from adapters.mastercard_us.sandbox_reports import REPORT_ROUTES
from adapters.mastercard_us.sandbox_world import (
    Account, Customer, World, account_json, balance_json, consent_json, date_key, owner_json,
)

__all__ = ["CONNECT_SIM", "ROUTES", "SANDBOX", "FinicityError", "invalid_field", "json_response"]

USERNAME = re.compile(r"[A-Za-z0-9!@.#$%&*_\-+]{6,255}")


def _world(request: web.Request) -> World:
    return world_of(request)


def _customer(world: World, customer_id: str) -> Customer:
    return customer_of(world, customer_id)


def _account(request: web.Request) -> Account:
    world = _world(request)
    customer_id, account_id = request.match_info["customerId"], request.match_info["accountId"]
    _customer(world, customer_id)
    account = world.account(customer_id, account_id)
    if account is None:
        raise FinicityError(404, "38003", f"customer does not have given account (customerId = {customer_id}, "
                                          f"accountId = [{account_id}])")
    return account


def _deposit_account(request: web.Request) -> Account:
    account = _account(request)
    if account.template.type not in DEPOSIT_TYPES:
        raise FinicityError(400, "14020", "Bad request. (Account type not supported).")
    return account


# --- authentication and customers -------------------------------------------------------------------------------
async def create_token(request: web.Request) -> web.Response:
    body = await request.json()
    return json_response({"token": request.app[SANDBOX].authenticate(body["partnerId"], body["partnerSecret"])})


async def _add_customer(request: web.Request, type_: str) -> web.Response:
    body = await request.json()
    world, username = _world(request), body["username"]
    if not USERNAME.fullmatch(username):
        raise FinicityError(400, "110039", "Username is not as per the policy.")
    if world.username_taken(username):
        raise FinicityError(409, "110002", "Username is not available.")
    customer = world.add_customer(username, type_, body.get("firstName"), body.get("lastName"))
    return json_response({"id": customer.id, "username": customer.username, "createdDate": customer.created}, 201)


async def add_testing_customer(request: web.Request) -> web.Response:
    return await _add_customer(request, "testing")


async def add_active_customer(request: web.Request) -> web.Response:
    return await _add_customer(request, "active")


# --- institutions -----------------------------------------------------------------------------------------------
async def list_institutions(request: web.Request) -> web.Response:
    query = request.query
    words = query.get("search", "").lower().split()
    page, limit = int(query.get("start", "1")), int(query.get("limit", "25"))
    if page < 1:
        raise FinicityError(400, "41003", "Start index cannot be less than one.")
    found = sorted((i for i in INSTITUTIONS.values() if all(w in i.name.lower() for w in words)), key=lambda i: i.name)
    shown = found[(page - 1) * limit:page * limit]
    return json_response({"found": len(found), "displaying": len(shown), "moreAvailable": page * limit < len(found),
                          "createdDate": _world(request).now_epoch(), "institutions": [i.to_json() for i in shown]})


async def get_institution(request: web.Request) -> web.Response:
    institution = INSTITUTIONS.get(int(request.match_info["institutionId"]))
    if institution is None:
        raise FinicityError(404, "14006", "Institution not found.")
    return json_response({"institution": institution.to_json()})


# --- accounts ---------------------------------------------------------------------------------------------------
async def list_accounts(request: web.Request) -> web.Response:
    world = _world(request)
    customer = _customer(world, request.match_info["customerId"])
    status = request.query.get("status")
    accounts = [a for a in world.available_accounts(customer.id) if status is None or a.status == status]
    return json_response({"accounts": [account_json(world, a) for a in accounts]})


async def get_account(request: web.Request) -> web.Response:
    return json_response(account_json(_world(request), _account(request)))


async def get_available_balance(request: web.Request) -> web.Response:
    return json_response(balance_json(_world(request), _deposit_account(request), live=False))


async def get_available_balance_live(request: web.Request) -> web.Response:
    sandbox, account = request.app[SANDBOX], _deposit_account(request)
    body = sandbox.world.live_balance(account, int(request.query.get("balance_cache_interval", "30")))
    sandbox.live_balance_calls += 1  # billable per successful call
    return json_response(body)


async def get_ach_details(request: web.Request) -> web.Response:
    account = _deposit_account(request)
    return json_response({"routingNumber": account.routing, "realAccountNumber": account.number})


async def get_owner(request: web.Request) -> web.Response:
    return json_response(owner_json(_account(request)))


# --- transactions -----------------------------------------------------------------------------------------------
def _window(request: web.Request) -> tuple[int, int, int, int, bool, bool]:
    query = request.query
    low, high = int(query["fromDate"]), int(query["toDate"])
    sort = query.get("sort", "desc")
    if sort not in ("asc", "desc"):
        raise invalid_field('"sort" must be asc or desc')
    if low > high:
        raise invalid_field('"fromDate" must not be after "toDate"')
    pending = query.get("includePending", "false").lower() == "true"
    return low, high, int(query.get("start", "1")), int(query.get("limit", "25")), sort == "desc", pending


def _transactions_page(request: web.Request, accounts: list[Account]) -> web.Response:
    low, high, start, limit, descending, pending = _window(request)
    world = _world(request)
    parts = [world.book(account).between(low, high, pending=pending) for account in accounts]
    chosen = parts[0] if len(parts) == 1 else sorted((row for part in parts for row in part),
                                                     key=lambda row: (date_key(row), row["id"]))
    if descending:
        chosen.reverse()
    page = chosen[start - 1:start - 1 + limit]
    return json_response({"found": len(chosen), "displaying": len(page),
                          "moreAvailable": "true" if start - 1 + limit < len(chosen) else "false",
                          "fromDate": request.query["fromDate"], "toDate": request.query["toDate"],
                          "sort": "desc" if descending else "asc", "transactions": page})


async def get_account_transactions(request: web.Request) -> web.Response:
    return _transactions_page(request, [_account(request)])


async def get_customer_transactions(request: web.Request) -> web.Response:
    world = _world(request)
    return _transactions_page(request, world.available_accounts(_customer(world, request.match_info["customerId"]).id))


# --- data-sharing consents --------------------------------------------------------------------------------------
_CONSENT_SORTS = {"startdate": lambda c: c.created, "enddate": lambda c: c.created, "status": lambda c: c.status}


def _consent_error(status: int, code: str, message: str) -> FinicityError:
    return FinicityError(status, code, message, status=str(status), user_message="")


async def list_consents(request: web.Request) -> web.Response:
    world, query = _world(request), request.query
    customer_id = query["customer_id"]
    if customer_id not in world.customers:
        raise _consent_error(404, "10215", "Consent receipt not found")
    sort_key = _CONSENT_SORTS.get(query.get("sort_by", "startDate").lower())
    if sort_key is None:
        raise _consent_error(400, "10100", "Invalid parameter - sortBy")
    order = query.get("sort_order", "Desc").lower()
    if order not in ("asc", "desc"):
        raise _consent_error(400, "10100", "Invalid parameter - sortOrder")
    status, context = query.get("status"), query.get("context")
    consents = [c for c in world.consents.values() if c.customer_id == customer_id
                and (status is None or c.status == status.upper()) and context in (None, "partner")]
    consents.sort(key=sort_key, reverse=order == "desc")
    page, limit = int(query.get("start", "1")), int(query.get("limit", "25"))
    shown = consents[(page - 1) * limit:page * limit]
    more = page * limit < len(consents)
    return json_response({"found": len(consents), "displaying": len(shown), "moreAvailable": more,
                          "consents": [consent_json(world, c) for c in shown]})


def _consent(request: web.Request) -> Any:
    consent = _world(request).consents.get(request.match_info["consent_receipt_id"])
    if consent is None:
        raise _consent_error(404, "10215", "Consent receipt not found")
    return consent


async def get_consent(request: web.Request) -> web.Response:
    return json_response(consent_json(_world(request), _consent(request)))


async def revoke_consent(request: web.Request) -> web.Response:
    _world(request).revoke(_consent(request), request.headers.get("Update-By", "PARTNER").upper())
    return web.Response(status=204)


# (method, path template exactly as in the spec, handler); the simulated end user's pages are under CONNECT_SIM
ROUTES: tuple[tuple[str, str, Any], ...] = (
    ("POST", "/aggregation/v2/partners/authentication", create_token),
    ("POST", "/aggregation/v2/customers/testing", add_testing_customer),
    ("POST", "/aggregation/v2/customers/active", add_active_customer),
    ("GET", "/institution/v2/institutions", list_institutions),
    ("GET", "/institution/v2/institutions/{institutionId}", get_institution),
    ("GET", "/aggregation/v1/customers/{customerId}/accounts", list_accounts),
    ("GET", "/aggregation/v2/customers/{customerId}/accounts/{accountId}", get_account),
    ("GET", "/aggregation/v1/customers/{customerId}/accounts/{accountId}/availableBalance", get_available_balance),
    ("GET", "/aggregation/v1/customers/{customerId}/accounts/{accountId}/availableBalance/live",
     get_available_balance_live),
    ("GET", "/aggregation/v1/customers/{customerId}/accounts/{accountId}/details", get_ach_details),
    ("GET", "/aggregation/v3/customers/{customerId}/accounts/{accountId}/owner", get_owner),
    ("GET", "/aggregation/v4/customers/{customerId}/accounts/{accountId}/transactions", get_account_transactions),
    ("GET", "/aggregation/v3/customers/{customerId}/transactions", get_customer_transactions),
    ("GET", "/data-sharing-consents", list_consents),
    ("GET", "/data-sharing-consents/{consent_receipt_id}", get_consent),
    ("DELETE", "/data-sharing-consents/{consent_receipt_id}", revoke_consent),
) + CONNECT_ROUTES + REPORT_ROUTES
