"""AIS: ASPSP list, consents (create, exchange the redirect result, delete, raw) and the data calls."""
from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta, timezone
from typing import Any

import orjson
from aiohttp import web

from adapters.ob_connect.sandbox_data import Account, Aspsp, money
from adapters.ob_connect.sandbox_http import SANDBOX, answer, bad_request, body_of
from adapters.ob_connect.sandbox_world import AIS, AisConsent, parse_authorization

DEFAULT_LIMIT = 50
MAX_VALIDITY = timedelta(days=90)


# --- shared with PIS -------------------------------------------------------------------------------------------
async def bank(sandbox: Any, body: dict[str, Any], service: str | None = None) -> Aspsp:
    """The request's ASPSP (after its latency), offering `service` when given."""
    aspsp = sandbox.aspsps.get(str(body["requestInfo"].get("aspspId", "")).lower())
    if aspsp is None:
        raise bad_request("ASPSP_NOT_FOUND", "no ASPSP with this id is connected to the hub",
                          source="requestInfo.aspspId")
    if aspsp.latency > 0:
        await asyncio.sleep(aspsp.latency)
    if service is not None and service not in aspsp.services:
        raise bad_request("SERVICE_NOT_SUPPORTED", f"{aspsp.name} does not offer {service}",
                          source="requestInfo.aspspId")
    return aspsp


def redirect_target(sandbox: Any, ticket: str) -> str:
    return f"{sandbox.origin}/sca/{ticket}"


async def aspsps(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    body = body_of(request)
    wanted_name = str(body.get("name", "")).lower()
    found = [a for a in sandbox.aspsps.values()
             if ("id" not in body or a.id == str(body["id"]).lower())
             and ("country" not in body or a.country == body["country"])
             and wanted_name in a.name.lower()]
    additional = body.get("returnAdditionalData") or []
    return answer(request, {"aspsps": [a.to_json(additional) for a in found]})


async def health(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    return web.json_response({"status": "UP", "connectors": [{"name": a.name, "status": "UP"}
                                                              for a in sandbox.aspsps.values()]})


# --- consents --------------------------------------------------------------------------------------------------
async def create_consent(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    body = body_of(request)
    aspsp = await bank(sandbox, body, "AIS")
    now = sandbox.now()
    valid_until = now + MAX_VALIDITY
    if "validUntilDateTime" in body:
        valid_until = _datetime(body["validUntilDateTime"], "validUntilDateTime")
        if valid_until <= now or valid_until > now + MAX_VALIDITY + timedelta(minutes=1):
            raise bad_request("INVALID_REQUEST", "validUntilDateTime must be in the future and at most 90 days away",
                              source="validUntilDateTime", details=str(body["validUntilDateTime"]))
    requested = None
    if body.get("accounts"):
        own = sandbox.data.by_bank[aspsp.id]
        requested = []
        for n, item in enumerate(body["accounts"]):
            number = item["accountReference"]["accountNumber"]
            match = next((a for a in own if _same_account(a, number["identification"], number["schemeName"])), None)
            if match is None:
                raise bad_request("ACCOUNT_NOT_FOUND", "the PSU holds no such account at this ASPSP",
                                  source=f"accounts[{n}]")
            requested.append(match.resource_id)
    consent = sandbox.world.new_ais_consent(
        aspsp_id=aspsp.id, permissions=list(dict.fromkeys(body["permissions"])), requested_accounts=requested,
        valid_until=valid_until, tpp_redirect_uri=body["requestInfo"]["tppRedirectURI"])
    return answer(request, {"consentRequestId": consent.consent_request_id, "aspspSCAApproach": "REDIRECT",
                            "_links": {"scaRedirect": redirect_target(sandbox, consent.ticket)}})


async def authorize_consent(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    body = body_of(request)
    aspsp = await bank(sandbox, body, "AIS")
    consent = granted_consent(sandbox, body["authorization"], AIS, aspsp.id)
    consent_id = sandbox.world.validate_ais(consent)
    return answer(request, {"consentId": consent_id, "consentRequestId": consent.consent_request_id})


def granted_consent(sandbox: Any, authorization: str, flow: str, aspsp_id: str) -> Any:
    """The consent an approve redirect's query string stands for; PSU_REJECTED / AUTHORIZATION_INVALID else."""
    world = sandbox.world
    redirect = parse_authorization(authorization)
    if redirect.code is not None:
        grant = world.codes.get(redirect.code)
        if grant is None or grant.flow != flow or grant.aspsp_id != aspsp_id:
            raise bad_request("AUTHORIZATION_INVALID", "the authorization code is unknown or was issued for "
                              "another ASPSP or flow", source="authorization")
        store = world.consents if flow == AIS else world.payment_consents
        return store[grant.consent_request_id]
    if redirect.error is not None and redirect.state is not None:
        known = world.states.get(redirect.state)
        store = world.consents if flow == AIS else world.payment_consents
        if known is not None and known[0] == flow and store[known[1]].aspsp_id == aspsp_id:
            raise bad_request("PSU_REJECTED", "the PSU did not authorise the consent", source="authorization",
                              details=redirect.error)
    raise bad_request("AUTHORIZATION_INVALID", "the authorization carries no usable code", source="authorization")


def _consent_by_id(sandbox: Any, consent_id: str, aspsp: Aspsp) -> AisConsent:
    consent = sandbox.world.ais_by_consent_id.get(consent_id)
    if consent is None or consent.aspsp_id != aspsp.id:
        raise bad_request("CONSENT_NOT_FOUND", "no AIS consent with this id at this ASPSP", source="consentId")
    return consent


async def delete_consent(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    body = body_of(request)
    aspsp = await bank(sandbox, body, "AIS")
    consent = _consent_by_id(sandbox, body["consentId"], aspsp)
    consent.status = "terminatedByTpp"
    return answer(request, {})


async def raw_consent(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    body = body_of(request)
    aspsp = await bank(sandbox, body, "AIS")
    consent = _consent_by_id(sandbox, body["requestInfo"]["consentId"], aspsp)
    raw = {"consentId": consent.consent_id, "consentStatus": sandbox.world.ais_status(consent),
           "validUntil": consent.valid_until.date().isoformat(), "permissions": consent.permissions,
           "accounts": consent.account_ids, "aspspId": aspsp.id}
    return answer(request, {"rawConsent": orjson.dumps(raw).decode()})


# --- data ------------------------------------------------------------------------------------------------------
async def _usable_consent(request: web.Request, permission: str) -> tuple[Any, AisConsent]:
    sandbox = request.app[SANDBOX]
    body = body_of(request)
    aspsp = await bank(sandbox, body, "AIS")
    consent = _consent_by_id(sandbox, body["requestInfo"]["consentId"], aspsp)
    status = sandbox.world.ais_status(consent)
    if status == "expired":
        raise bad_request("CONSENT_EXPIRED", "the consent has expired", source="requestInfo.consentId",
                          details=consent.valid_until.isoformat())
    if status != "valid":
        raise bad_request("CONSENT_INVALID", f"the consent is {status}", source="requestInfo.consentId")
    if not consent.allows(permission):
        raise bad_request("PERMISSION_DENIED", f"the consent does not grant {permission}",
                          source="requestInfo.consentId")
    return sandbox, consent


def _account(sandbox: Any, consent: AisConsent, account_id: str) -> Account:
    if account_id not in consent.account_ids:
        raise bad_request("ACCOUNT_NOT_FOUND", "no account with this id under the consent", source="accountId")
    return sandbox.data.accounts[account_id]


async def list_accounts(request: web.Request) -> web.Response:
    sandbox, consent = await _usable_consent(request, "accounts")
    return answer(request, {"accounts": [sandbox.data.accounts[a].to_json() for a in consent.account_ids]})


async def get_account(request: web.Request) -> web.Response:
    sandbox, consent = await _usable_consent(request, "accounts")
    return answer(request, {"account": _account(sandbox, consent, body_of(request)["accountId"]).to_json()})


async def balances(request: web.Request) -> web.Response:
    sandbox, consent = await _usable_consent(request, "balances")
    account = _account(sandbox, consent, body_of(request)["accountId"])
    booked, available = sandbox.data.balances[account.resource_id]
    at = sandbox.now().isoformat()
    return answer(request, {"balances": [
        {"balanceType": kind, "balanceAmount": {"amount": money(abs(value)), "currency": account.currency},
         "creditDebitIndicator": "CRDT" if value >= 0 else "DBIT", "dateTime": at}
        for kind, value in (("interimAvailable", available), ("closingBooked", booked))]})


async def transactions(request: web.Request) -> web.Response:
    sandbox, consent = await _usable_consent(request, "transactions")
    body = body_of(request)
    account = _account(sandbox, consent, body["accountId"])
    start = _date(body["bookingDateFrom"], "bookingDateFrom") if "bookingDateFrom" in body else None
    end = _date(body["bookingDateTo"], "bookingDateTo") if "bookingDateTo" in body else None
    if start and end and start > end:
        raise bad_request("INVALID_REQUEST", "bookingDateFrom is after bookingDateTo", source="bookingDateFrom")
    scope = {"c": consent.consent_id, "a": account.resource_id, "f": body.get("bookingDateFrom"),
             "t": body.get("bookingDateTo")}
    index = 0
    if "offset" in body:
        cursor = sandbox.world.read_offset(body["offset"])
        if cursor is None or {k: cursor.get(k) for k in scope} != scope:
            raise bad_request("INVALID_REQUEST", "the offset is not one this hub gave for this account, consent "
                              "and date range", source="offset")
        index = int(cursor["i"])
    limit = int(body.get("limit", DEFAULT_LIMIT))
    selected = [tx for tx in sandbox.data.transactions[account.resource_id]
                if (start is None or tx.booked_at.date() >= start) and (end is None or tx.booked_at.date() <= end)]
    page = selected[index:index + limit]
    out: dict[str, Any] = {"transactions": [tx.to_json() for tx in page]}
    if index + limit < len(selected):
        out["offset"] = sandbox.world.make_offset({**scope, "i": index + limit})
    return answer(request, out)


async def standing_orders(request: web.Request) -> web.Response:
    sandbox, consent = await _usable_consent(request, "standingOrders")
    account = _account(sandbox, consent, body_of(request)["accountId"])
    return answer(request, {"standingOrders": sandbox.data.standing_orders[account.resource_id]})


# --- helpers ---------------------------------------------------------------------------------------------------
def _same_account(account: Account, identification: str, scheme: str) -> bool:
    return account.scheme == scheme and account.number == identification.replace(" ", "").upper()


def _datetime(raw: Any, field: str) -> datetime:
    try:
        value = datetime.fromisoformat(str(raw))
    except ValueError:
        raise bad_request("INVALID_REQUEST", f"{field} is not an ISO 8601 date-time", source=field) from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _date(raw: Any, field: str) -> date:
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise bad_request("INVALID_REQUEST", f"{field} is not a date (YYYY-MM-DD)", source=field) from None


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/accounts/health", health),
    ("POST", "/accounts/aspsps", aspsps),
    ("POST", "/accounts/consents", create_consent),
    ("POST", "/accounts/consents/authorizations", authorize_consent),
    ("POST", "/accounts/consents/delete", delete_consent),
    ("POST", "/accounts/consents/raw", raw_consent),
    ("POST", "/accounts", list_accounts),
    ("POST", "/accounts/account", get_account),
    ("POST", "/accounts/account/balances", balances),
    ("POST", "/accounts/account/transactions", transactions),
    ("POST", "/accounts/account/standing-orders", standing_orders),
]
