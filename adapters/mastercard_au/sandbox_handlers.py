"""Request handlers of the AU simulator for the partner token, applications, customers, institutions, account data,
data-sharing consents and consent-notification subscriptions.

The gate has authenticated the call; each handler checks its own body and query (`sandbox_checks`) and raises
`AUError`, which the gate renders. Data calls honour the optional `Consent-Receipt-Id` header, injected aggregation
errors and the data scopes of the account's arrangement, in that order.
"""
from __future__ import annotations

import re
import secrets
from typing import Any

import orjson
from aiohttp import web

from adapters.mastercard_au.sandbox_checks import (
    HTTP_URL, AUError, Param, choice, integer, missing, one_of, opt, read_body, read_query, req,
)
from adapters.mastercard_au.sandbox_data import (
    DEPOSIT_TYPES, INSTITUTIONS, OWNER_SCOPE, TEST_INSTITUTION_IDS, abn_is_valid,
)
from adapters.mastercard_au.sandbox_events import ACCOUNT_ERRORS
from adapters.mastercard_au.sandbox_views import (
    PURPOSES, account_json, application_json, balance_json, customer_json, details_json, iso, owner_json,
    receipt_json,
)
from adapters.mastercard_au.sandbox_world import Account, Customer, Receipt, Subscription, World

SANDBOX: web.AppKey[Any] = web.AppKey("mastercard_au_sandbox")
USERNAME = re.compile(r"[A-Za-z0-9!@.#$%&*_\-+]{6,255}")
RECEIPT_HEADER = "Consent-Receipt-Id"
APPLICATION_FIELDS = {
    "ADR_OSP": (req("appName"), req("legalEntityName"), req("policyUrl"), req("dataComplaintsEmailAddress"),
                req("softwareId"), req("orgId"), req("copyrightLogo"), req("businessName"), req("fromEmail"),
                req("image"), opt("appDescription"), opt("appUrl"), opt("replyToEmail")),
    "CDR_REPRESENTATIVE": (req("appName"), req("appDescription"), req("appUrl"), req("image")),
    "BCDC": (req("appName"), req("appDescription"), req("appUrl"), req("image"), req("disclosureType"),
             req("policyUrl"), req("dataComplaintsEmailAddress")),
}
CUSTOMER_FIELDS = (req("username"), opt("firstName"), opt("lastName"), opt("email"), opt("phone"),
                   opt("applicationId"), opt("category", one_of("INDIVIDUAL", "BUSINESS")), opt("abn"))
TRANSACTION_QUERY = (Param("fromDate", integer(0), True), Param("toDate", integer(0), True),
                     Param("start", integer(1), default=1), Param("limit", integer(1, 1000), default=25),
                     Param("sort", choice("asc", "desc"), default="desc"),
                     Param("includePending", choice("true", "false"), default="false"))


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def world_of(request: web.Request) -> World:
    return request.app[SANDBOX].world


def customer_of(world: World, customer_id: str) -> Customer:
    customer = world.customers.get(customer_id)
    if customer is None:
        raise AUError(404, "10002", "Customer ID was not found.")
    return customer


# --- authentication, applications, customers ------------------------------------------------------------------
async def create_token(request: web.Request) -> web.Response:
    body = await read_body(request, (req("partnerId"), req("partnerSecret")))
    return json_response({"token": request.app[SANDBOX].authenticate(body["partnerId"], body["partnerSecret"])})


async def create_application(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    body = await read_body(request, APPLICATION_FIELDS[sandbox.access_model])
    application = sandbox.world.add_application(body, sandbox.access_model)
    return json_response({"applicationId": application.id, "status": application.status}, 201)


async def list_applications(request: web.Request) -> web.Response:
    wanted = read_query(request, (Param("application_id"),))["application_id"]
    applications = [a for a in world_of(request).applications.values() if wanted in (None, a.id)]
    return json_response({"applications": [application_json(a) for a in applications]})


async def application_institutions(request: web.Request) -> web.Response:
    application = world_of(request).applications.get(request.match_info["application_id"])
    if application is None:
        raise AUError(404, "38008", "Application not found")
    status = "REGISTERED" if application.status == "Approved" else "PENDING"
    return json_response({"institutions": [{"institutionId": i, "name": INSTITUTIONS[i].name, "status": status}
                                           for i in TEST_INSTITUTION_IDS]})


async def _add_customer(request: web.Request, type_: str) -> web.Response:
    sandbox = request.app[SANDBOX]
    body = await read_body(request, CUSTOMER_FIELDS)
    world, username = sandbox.world, body["username"]
    if not USERNAME.fullmatch(username):
        raise AUError(400, "110039", "Username is not as per the policy.")
    if world.username_taken(username):
        raise AUError(409, "11000", "A user with this username already exists")
    category, abn = body.get("category", "INDIVIDUAL"), body.get("abn")
    if sandbox.access_model == "BCDC":
        if category != "BUSINESS":
            raise AUError(400, "10005", "Invalid category: partners under the BCDC model may only create "
                                        "BUSINESS customers")
        if abn is None:
            raise missing("abn")
        abn = abn.replace(" ", "")
        if not abn_is_valid(abn):
            raise AUError(400, "10005", "Invalid abn")
    fields = {k: body[k] for k in ("firstName", "lastName", "email", "phone", "applicationId") if k in body}
    customer = world.add_customer(username, type_, fields, category, abn)
    return json_response({"id": customer.id, "username": customer.username, "createdDate": str(customer.created)},
                         201)


async def add_testing_customer(request: web.Request) -> web.Response:
    return await _add_customer(request, "testing")


async def add_active_customer(request: web.Request) -> web.Response:
    return await _add_customer(request, "active")


async def get_customer(request: web.Request) -> web.Response:
    return json_response(customer_json(customer_of(world_of(request), request.match_info["customerId"])))


# --- institutions -----------------------------------------------------------------------------------------------
async def list_institutions(request: web.Request) -> web.Response:
    query = read_query(request, (Param("search", default=""), Param("start", integer(1), default=1),
                                 Param("limit", integer(1, 1000), default=25)))
    words, page, limit = query["search"].lower().split(), query["start"], query["limit"]
    found = sorted((i for i in INSTITUTIONS.values() if all(w in i.name.lower() for w in words)), key=lambda i: i.name)
    shown = found[(page - 1) * limit:page * limit]
    return json_response({"found": len(found), "displaying": len(shown), "moreAvailable": page * limit < len(found),
                          "createdDate": world_of(request).now_epoch(), "institutions": [i.to_json() for i in shown]})


async def get_institution(request: web.Request) -> web.Response:
    raw = request.match_info["institutionId"]
    if not (raw.isascii() and raw.isdigit()):
        raise AUError(400, "10005", "Invalid parameter: institutionId (must be a numeric id)")
    institution = INSTITUTIONS.get(int(raw))
    if institution is None:
        raise AUError(404, "14006", "Institution not found.")
    return json_response({"institution": institution.to_json()})


# --- account data -----------------------------------------------------------------------------------------------
def _not_covered(message: str = "Consent is not active for this account") -> AUError:
    return AUError(403, "10040", message)


def _header_receipt(request: web.Request, customer_id: str, account_id: str | None = None) -> Receipt | None:
    """The receipt named by Consent-Receipt-Id, which must be ACTIVE and cover the account (when one is named)."""
    receipt_id = request.headers.get(RECEIPT_HEADER)
    if receipt_id is None:
        return None
    world = world_of(request)
    receipt = world.receipts.get(receipt_id)
    if receipt is None or receipt.customer_id != customer_id or receipt.status != "ACTIVE":
        raise _not_covered()
    if account_id is not None:
        account = world.accounts.get(account_id)
        arrangement = receipt.arrangement(account.login_id) if account and account.receipt_id == receipt.id else None
        if arrangement is None or arrangement.status != "ACTIVE":
            raise _not_covered()
    return receipt


def _data_account(request: web.Request, *, deposit: bool = False, scope: str | None = None) -> Account:
    world = world_of(request)
    customer_id, account_id = request.match_info["customerId"], request.match_info["accountId"]
    customer_of(world, customer_id)
    _header_receipt(request, customer_id, account_id)
    account = world.account(customer_id, account_id)
    if account is None:
        raise AUError(404, "38003", f"customer does not have given account (customerId = {customer_id}, "
                                    f"accountId = [{account_id}])")
    if account.error_code is not None:
        status, message = ACCOUNT_ERRORS[account.error_code]
        raise AUError(status, account.error_code, message)
    if deposit and account.template.type not in DEPOSIT_TYPES:
        raise AUError(400, "14020", "Bad request. (Account type not supported).")
    if scope is not None and scope not in world.receipt_for_account(account)[1].scopes:
        raise _not_covered(f"Consent does not include the data scope {scope}")
    return account


async def list_accounts(request: web.Request) -> web.Response:
    world = world_of(request)
    customer = customer_of(world, request.match_info["customerId"])
    receipt = _header_receipt(request, customer.id)
    accounts = [a for a in world.available_accounts(customer.id) if receipt is None or a.receipt_id == receipt.id]
    return json_response({"accounts": [account_json(world, a) for a in accounts]})


async def get_account(request: web.Request) -> web.Response:
    return json_response(account_json(world_of(request), _data_account(request)))


async def get_available_balance(request: web.Request) -> web.Response:
    return json_response(balance_json(world_of(request), _data_account(request, deposit=True), live=False))


async def get_available_balance_live(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    body = balance_json(sandbox.world, _data_account(request, deposit=True), live=True)
    sandbox.live_balance_calls += 1  # billable per successful call
    return json_response(body)


async def get_account_details(request: web.Request) -> web.Response:
    return json_response(details_json(_data_account(request, deposit=True)))


async def get_owner(request: web.Request) -> web.Response:
    return json_response(owner_json(_data_account(request, scope=OWNER_SCOPE)))


async def get_account_transactions(request: web.Request) -> web.Response:
    account = _data_account(request)
    query = read_query(request, TRANSACTION_QUERY)
    low, high, start, limit = query["fromDate"], query["toDate"], query["start"], query["limit"]
    if low > high:
        raise AUError(400, "10005", "Invalid parameter: fromDate (must not be after toDate)")
    chosen = world_of(request).book(account).between(low, high, pending=query["includePending"] == "true")
    if query["sort"] == "desc":
        chosen = chosen[::-1]
    page = chosen[start - 1:start - 1 + limit]
    return json_response({"found": len(chosen), "displaying": len(page),
                          "moreAvailable": "true" if start - 1 + limit < len(chosen) else "false",
                          "fromDate": str(low), "toDate": str(high), "sort": query["sort"], "transactions": page})


# --- data-sharing consents --------------------------------------------------------------------------------------
def _receipt(request: web.Request) -> Receipt:
    receipt = world_of(request).receipts.get(request.match_info["consent_receipt_id"])
    if receipt is None:
        raise AUError(404, "10215", "Consent receipt not found")
    return receipt


async def list_consents(request: web.Request) -> web.Response:
    world = world_of(request)
    query = read_query(request, (Param("customer_id", required=True),
                                 Param("sort_order", choice("Asc", "Desc"), default="Desc")))
    if query["customer_id"] not in world.customers:
        raise AUError(404, "10215", "Consent receipt not found")
    receipts = sorted((r for r in world.receipts.values() if r.customer_id == query["customer_id"]),
                      key=lambda r: r.created, reverse=query["sort_order"] == "Desc")
    return json_response({"consents": [receipt_json(world, r) for r in receipts]})


async def list_purposes(request: web.Request) -> web.Response:
    return json_response({"purposes": [dict(p) for p in PURPOSES]})


async def get_consent(request: web.Request) -> web.Response:
    return json_response(receipt_json(world_of(request), _receipt(request)))


async def revoke_consent(request: web.Request) -> web.Response:
    sandbox, receipt = request.app[SANDBOX], _receipt(request)
    changed = sandbox.world.end_arrangements(receipt, receipt.active(), "REVOKED", "PARTNER")
    sandbox.notify.consent("INSTITUTIONS_REVOKED", receipt, changed)
    return web.Response(status=204)


async def revoke_institution_login(request: web.Request) -> web.Response:
    sandbox, receipt = request.app[SANDBOX], _receipt(request)
    login = request.match_info["institution_login_id"]
    arrangement = receipt.arrangement(int(login)) if login.isascii() and login.isdigit() else None
    if arrangement is None:
        raise AUError(404, "10215", "Institution login not found in this consent receipt")
    changed = sandbox.world.end_arrangements(receipt, [arrangement], "REVOKED", "PARTNER")
    sandbox.notify.consent("INSTITUTIONS_REVOKED", receipt, changed)
    return web.Response(status=204)


# --- consent notification subscriptions ---------------------------------------------------------------------------
def _subscription_json(subscription: Subscription) -> dict[str, Any]:
    return {"subscriptionId": subscription.id, "url": subscription.url, "notificationType": "CONSENT",
            "createdDate": iso(subscription.created), "lastUpdatedDate": iso(subscription.updated)}


def _subscription(request: web.Request) -> Subscription:
    subscription = world_of(request).subscriptions.get(request.match_info["subscription_id"])
    if subscription is None:
        raise AUError(404, "14001", "Subscription not found")
    return subscription


async def create_subscription(request: web.Request) -> web.Response:
    world = world_of(request)
    body = await read_body(request, (req("url", HTTP_URL), req("notificationType", one_of("CONSENT"))))
    now = world.now()
    subscription = Subscription(world.uuid(), body["url"], secrets.token_hex(32), now, now)
    world.subscriptions[subscription.id] = subscription
    return json_response({**_subscription_json(subscription), "signingKey": subscription.signing_key}, 201)


async def list_subscriptions(request: web.Request) -> web.Response:
    return json_response({"subscriptions": [_subscription_json(s) for s in world_of(request).subscriptions.values()]})


async def get_subscription(request: web.Request) -> web.Response:
    return json_response(_subscription_json(_subscription(request)))


async def update_subscription_url(request: web.Request) -> web.Response:
    subscription = _subscription(request)
    body = await read_body(request, (req("url", HTTP_URL),))
    subscription.url, subscription.updated = body["url"], world_of(request).now()
    return json_response(_subscription_json(subscription))


_ACCOUNT = "/aggregation/{version}/customers/{customerId}/accounts/{accountId}"
DATA_ROUTES: tuple[tuple[str, str, Any], ...] = (
    ("POST", "/aggregation/v2/partners/authentication", create_token),
    ("POST", "/applications", create_application),
    ("GET", "/applications", list_applications),
    ("GET", "/applications/{application_id}/institutions", application_institutions),
    ("POST", "/aggregation/v2/customers/testing", add_testing_customer),
    ("POST", "/aggregation/v2/customers/active", add_active_customer),
    ("GET", "/aggregation/v1/customers/{customerId}", get_customer),
    ("GET", "/institution/v2/institutions", list_institutions),
    ("GET", "/institution/v2/institutions/{institutionId}", get_institution),
    ("GET", "/aggregation/v1/customers/{customerId}/accounts", list_accounts),
    ("GET", _ACCOUNT.replace("{version}", "v2"), get_account),
    ("GET", _ACCOUNT.replace("{version}", "v1") + "/availableBalance", get_available_balance),
    ("GET", _ACCOUNT.replace("{version}", "v1") + "/availableBalance/live", get_available_balance_live),
    ("GET", _ACCOUNT.replace("{version}", "v3") + "/transactions", get_account_transactions),
    ("GET", _ACCOUNT.replace("{version}", "v3") + "/details", get_account_details),
    ("GET", _ACCOUNT.replace("{version}", "v3") + "/owner", get_owner),
    ("GET", "/data-sharing-consents", list_consents),
    ("GET", "/data-sharing-consents/purposes", list_purposes),  # before {consent_receipt_id}: routes match in order
    ("GET", "/data-sharing-consents/{consent_receipt_id}", get_consent),
    ("DELETE", "/data-sharing-consents/{consent_receipt_id}", revoke_consent),
    ("DELETE", "/data-sharing-consents/{consent_receipt_id}/institutionLogins/{institution_login_id}",
     revoke_institution_login),
    ("POST", "/notifications/webhooks/subscriptions", create_subscription),
    ("GET", "/notifications/webhooks/subscriptions", list_subscriptions),
    ("GET", "/notifications/webhooks/subscriptions/{subscription_id}", get_subscription),
    ("PUT", "/notifications/webhooks/subscriptions/{subscription_id}/url", update_subscription_url),
)
