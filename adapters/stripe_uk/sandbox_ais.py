"""Account information (Open Banking v3.1.2) under /open-banking/v3.1/aisp: account-access consents and the data.

`gate` runs before every handler here: the bearer token (certificate-bound), the security scheme the spec gives the
operation (TPPOAuth2Security: a client_credentials token; PSUOAuth2Security: an authorization-code token of an
Authorised, unexpired consent), then the spec check of the request. Handlers check the consent's permissions and
accounts. Responses are built to the spec's schemas (OBReadConsentResponse1, OBReadAccount4, OBReadBalance1,
OBReadTransaction5, OBReadParty2); Basic permissions leave out what only Detail may show.
"""
from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from adapters.stripe_uk.sandbox_data import ACCOUNTS, BIC, PSUS, AccountTemplate, Txn, available_balance, \
    booked_balance
from adapters.stripe_uk.sandbox_http import SANDBOX, BearerError, OBError, challenge, json_response, problems_error
from adapters.stripe_uk.sandbox_world import AUTHORIZATION_CODE, CLIENT_CREDENTIALS, AccessToken, Consent, World

AIS_BASE = "/open-banking/v3.1/aisp"
PAGE_SIZE = 25
TOKEN = web.RequestKey("stripe_uk_access_token", AccessToken)
CONSENT = web.RequestKey("stripe_uk_consent", Consent)
TX_KINDS = frozenset({"ReadTransactionsBasic", "ReadTransactionsDetail"})
TX_DIRECTIONS = frozenset({"ReadTransactionsCredits", "ReadTransactionsDebits"})
MISMATCH = "UK.OBIE.Resource.ConsentMismatch"
NOT_FOUND = "UK.OBIE.Resource.NotFound"
INVALID_STATUS = "UK.OBIE.Resource.InvalidConsentStatus"


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def money(amount: Decimal) -> dict[str, str]:
    return {"Amount": f"{abs(amount):.2f}", "Currency": "GBP"}


def _indicator(amount: Decimal) -> str:
    return "Credit" if amount >= 0 else "Debit"


# --- the gate -------------------------------------------------------------------------------------------------
def _token(sandbox: Any, request: web.Request) -> AccessToken:
    try:
        return sandbox.access_token(request)
    except BearerError as err:
        code = "UK.OBIE.Header.Missing" if err.error == "invalid_request" else "UK.OBIE.Header.Invalid"
        raise OBError(401, code, err.description, path="Authorization",
                      headers={"WWW-Authenticate": challenge(err.error, err.description)}) from None


def _wrong_token(description: str) -> OBError:
    return OBError(403, "UK.OBIE.Header.Invalid", description, path="Authorization",
                   headers={"WWW-Authenticate": challenge("insufficient_scope", description)})


async def gate(sandbox: Any, request: web.Request,
               handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    found = sandbox.spec.find(request.method, request.path[len(AIS_BASE):])
    if found is None:
        return await handler(request)  # aiohttp answers 404 / 405
    op, params = found
    token = _token(sandbox, request)
    psu = "PSUOAuth2Security" in op.raw["security"][0]
    if "accounts" not in token.scope.split():
        raise _wrong_token("the access token lacks the accounts scope")
    if psu and token.grant != AUTHORIZATION_CODE:
        raise _wrong_token("this resource needs an access token from the authorization_code grant")
    if not psu and token.grant != CLIENT_CREDENTIALS:
        raise _wrong_token("account-access-consents need an access token from the client_credentials grant")
    body = await request.read() if request.body_exists else None
    problems = op.check(params, request.query, request.headers, body)
    if problems:
        raise problems_error(problems)
    request[TOKEN] = token
    if psu:
        consent = sandbox.world.consents.get(token.consent_id)
        if consent is None or consent.status != "Authorised":
            status = consent.status if consent else "gone"
            raise OBError(403, INVALID_STATUS, f"the consent is {status}, not Authorised")
        if consent.expired(sandbox.now()):
            raise OBError(403, INVALID_STATUS, "consent expired")
        request[CONSENT] = consent
    return await handler(request)


# --- consents -------------------------------------------------------------------------------------------------
def _body_time(data: dict[str, Any], name: str) -> datetime | None:
    if name not in data:
        return None
    try:
        moment = datetime.fromisoformat(data[name])
    except ValueError:
        raise OBError(400, "UK.OBIE.Field.InvalidDate", f"{name} is not an ISO 8601 date-time",
                      path=f"Data.{name}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def consent_json(sandbox: Any, consent: Consent) -> dict[str, Any]:
    data: dict[str, Any] = {"ConsentId": consent.consent_id, "CreationDateTime": iso(consent.created),
                            "Status": consent.status, "StatusUpdateDateTime": iso(consent.status_updated),
                            "Permissions": consent.permissions}
    for name, value in (("ExpirationDateTime", consent.expiration), ("TransactionFromDateTime",
                        consent.transaction_from), ("TransactionToDateTime", consent.transaction_to)):
        if value is not None:
            data[name] = iso(value)
    return {"Data": data, "Risk": {},
            "Links": {"Self": f"{sandbox.issuer}{AIS_BASE}/account-access-consents/{consent.consent_id}"},
            "Meta": {"TotalPages": 1}}


async def create_consent(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    data = orjson.loads(await request.read())["Data"]
    permissions = list(dict.fromkeys(data["Permissions"]))
    kinds, directions = TX_KINDS & set(permissions), TX_DIRECTIONS & set(permissions)
    if bool(kinds) != bool(directions):
        raise OBError(400, "UK.OBIE.Field.Invalid", "ReadTransactionsBasic or ReadTransactionsDetail goes with "
                      "ReadTransactionsCredits and/or ReadTransactionsDebits, and the other way round",
                      path="Data.Permissions")
    expiration = _body_time(data, "ExpirationDateTime")
    start, end = _body_time(data, "TransactionFromDateTime"), _body_time(data, "TransactionToDateTime")
    if expiration is not None and expiration <= sandbox.now():
        raise OBError(400, "UK.OBIE.Field.InvalidDate", "ExpirationDateTime must be in the future",
                      path="Data.ExpirationDateTime")
    if start is not None and end is not None and start > end:
        raise OBError(400, "UK.OBIE.Field.InvalidDate", "TransactionFromDateTime is after TransactionToDateTime",
                      path="Data.TransactionFromDateTime")
    consent = sandbox.world.add_consent(request[TOKEN].client_id, permissions, expiration, start, end)
    return json_response(consent_json(sandbox, consent), 201)


def _own_consent(request: web.Request) -> Consent:
    consent = request.app[SANDBOX].world.consents.get(request.match_info["ConsentId"])
    if consent is None:
        raise OBError(404, NOT_FOUND, "no account-access consent has this ConsentId", path="ConsentId")
    if consent.client_id != request[TOKEN].client_id:
        raise OBError(403, MISMATCH, "the consent belongs to another client", path="ConsentId")
    return consent


async def get_consent(request: web.Request) -> web.Response:
    return json_response(consent_json(request.app[SANDBOX], _own_consent(request)))


async def delete_consent(request: web.Request) -> web.Response:
    consent = _own_consent(request)
    world: World = request.app[SANDBOX].world
    if consent.status != "Revoked":
        world.set_status(consent, "Revoked")
    return web.Response(status=204)


# --- data -----------------------------------------------------------------------------------------------------
def _needs(consent: Consent, *alternatives: str) -> None:
    if not set(alternatives) & set(consent.permissions):
        raise OBError(403, MISMATCH, f"the consent does not grant {' or '.join(alternatives)}")


def _account(request: web.Request) -> AccountTemplate:
    account_id = request.match_info["AccountId"]
    if account_id not in ACCOUNTS:
        raise OBError(404, NOT_FOUND, "no account has this AccountId", path="AccountId")
    if account_id not in request[CONSENT].account_ids:
        raise OBError(403, MISMATCH, "the account is not part of this consent", path="AccountId")
    return ACCOUNTS[account_id]


def _links(sandbox: Any, request: web.Request) -> dict[str, str]:
    return {"Self": sandbox.issuer + request.raw_path}


def account_json(account: AccountTemplate, detail: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"AccountId": account.account_id, "Status": "Enabled",
                           "StatusUpdateDateTime": iso(account.status_since), "Currency": "GBP",
                           "AccountType": account.account_type, "AccountSubType": account.sub_type,
                           "Nickname": account.nickname}
    if detail:
        out["Account"] = [{"SchemeName": account.scheme, "Identification": account.identification,
                           "Name": account.holder}]
        out["Servicer"] = {"SchemeName": "UK.OBIE.BICFI", "Identification": BIC}
    return out


def _accounts_answer(request: web.Request, accounts: list[AccountTemplate]) -> web.Response:
    consent: Consent = request[CONSENT]
    detail = "ReadAccountsDetail" in consent.permissions
    return json_response({"Data": {"Account": [account_json(a, detail) for a in accounts]},
                          "Links": _links(request.app[SANDBOX], request), "Meta": {"TotalPages": 1}})


async def list_accounts(request: web.Request) -> web.Response:
    consent: Consent = request[CONSENT]
    _needs(consent, "ReadAccountsBasic", "ReadAccountsDetail")
    return _accounts_answer(request, [ACCOUNTS[a] for a in consent.account_ids])


async def get_account(request: web.Request) -> web.Response:
    _needs(request[CONSENT], "ReadAccountsBasic", "ReadAccountsDetail")
    return _accounts_answer(request, [_account(request)])


async def balances(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    _needs(request[CONSENT], "ReadBalances")
    account = _account(request)
    rows = sandbox.world.transactions(account.account_id)
    now = iso(sandbox.now())
    data = [{"AccountId": account.account_id, "CreditDebitIndicator": _indicator(amount), "Type": kind,
             "DateTime": now, "Amount": money(amount)}
            for kind, amount in (("InterimAvailable", available_balance(account, rows)),
                                 ("InterimBooked", booked_balance(account, rows)))]
    return json_response({"Data": {"Balance": data}, "Links": _links(sandbox, request), "Meta": {"TotalPages": 1}})


def transaction_json(txn: Txn, detail: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"AccountId": txn.account_id, "TransactionId": txn.transaction_id}
    if txn.reference:
        out["TransactionReference"] = txn.reference
    out.update({"Amount": money(txn.amount), "CreditDebitIndicator": "Credit" if txn.credit else "Debit",
                "Status": "Pending" if txn.pending else "Booked", "BookingDateTime": iso(txn.booked_at)})
    if not txn.pending:
        out["ValueDateTime"] = iso(txn.booked_at)
    out["BankTransactionCode"] = {"Code": txn.bank_code[0], "SubCode": txn.bank_code[1]}
    out["ProprietaryBankTransactionCode"] = {"Code": txn.proprietary, "Issuer": "Stripe"}
    if detail:
        out["TransactionInformation"] = txn.merchant if not txn.reference else f"{txn.merchant} {txn.reference}"
        if txn.balance_after is not None:
            out["Balance"] = {"Amount": money(txn.balance_after), "CreditDebitIndicator":
                              _indicator(txn.balance_after), "Type": "InterimBooked"}
        if txn.mcc:
            out["MerchantDetails"] = {"MerchantName": txn.merchant, "MerchantCategoryCode": txn.mcc}
    return out


def _query_time(request: web.Request, name: str) -> datetime | None:
    """A filter date-time; as the spec says, a time zone in it is ignored (the wall time is read as UTC)."""
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=timezone.utc)
    except ValueError:
        raise OBError(400, "UK.OBIE.Field.InvalidDate", f"{name} is not an ISO 8601 date-time", path=name) from None


def _page_url(sandbox: Any, request: web.Request, page: int) -> str:
    params = [(k, v) for k, v in request.query.items() if k != "page"] + [("page", str(page))]
    return f"{sandbox.issuer}{request.path}?{urlencode(params)}"


async def transactions(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    consent: Consent = request[CONSENT]
    granted = set(consent.permissions)
    if not (granted & TX_KINDS and granted & TX_DIRECTIONS):
        raise OBError(403, MISMATCH, "the consent does not grant reading transactions")
    account = _account(request)
    start, end = _query_time(request, "fromBookingDateTime"), _query_time(request, "toBookingDateTime")
    if start is not None and end is not None and start > end:
        raise OBError(400, "UK.OBIE.Field.InvalidDate", "fromBookingDateTime is after toBookingDateTime",
                      path="fromBookingDateTime")
    lower = max((t for t in (start, consent.transaction_from) if t is not None), default=None)
    upper = min((t for t in (end, consent.transaction_to) if t is not None), default=None)
    credits, debits = "ReadTransactionsCredits" in granted, "ReadTransactionsDebits" in granted
    every = sandbox.world.transactions(account.account_id)
    rows = [t for t in reversed(every)  # newest first
            if (lower is None or t.booked_at >= lower) and (upper is None or t.booked_at <= upper)
            and (credits if t.credit else debits)]
    raw_page = request.query.get("page", "1")
    total = max(1, math.ceil(len(rows) / PAGE_SIZE))
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= total:
        raise OBError(400, "UK.OBIE.Field.Invalid", f"page must be a number from 1 to {total}", path="page")
    page = int(raw_page)
    detail = "ReadTransactionsDetail" in granted
    links = {"Self": sandbox.issuer + request.raw_path, "First": _page_url(sandbox, request, 1),
             "Last": _page_url(sandbox, request, total)}
    if page > 1:
        links["Prev"] = _page_url(sandbox, request, page - 1)
    if page < total:
        links["Next"] = _page_url(sandbox, request, page + 1)
    meta: dict[str, Any] = {"TotalPages": total}
    if every:
        meta.update(FirstAvailableDateTime=iso(every[0].booked_at), LastAvailableDateTime=iso(every[-1].booked_at))
    shown = rows[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
    return json_response({"Data": {"Transaction": [transaction_json(t, detail) for t in shown]},
                          "Links": links, "Meta": meta})


async def party(request: web.Request) -> web.Response:
    _needs(request[CONSENT], "ReadParty")
    account = _account(request)
    holder = PSUS[account.psu_id].party
    data = {"PartyId": holder.party_id, "PartyNumber": holder.party_number, "PartyType": "Sole",
            "Name": holder.name, "FullLegalName": holder.full_legal_name, "EmailAddress": holder.email,
            "Mobile": holder.mobile,
            "Address": [{"AddressType": "Residential", "BuildingNumber": holder.building, "StreetName": holder.street,
                         "TownName": holder.town, "PostCode": holder.post_code, "Country": "GB"}]}
    return json_response({"Data": {"Party": data}, "Links": _links(request.app[SANDBOX], request),
                          "Meta": {"TotalPages": 1}})


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/account-access-consents", create_consent),
    ("GET", "/account-access-consents/{ConsentId}", get_consent),
    ("DELETE", "/account-access-consents/{ConsentId}", delete_consent),
    ("GET", "/accounts", list_accounts),
    ("GET", "/accounts/{AccountId}", get_account),
    ("GET", "/accounts/{AccountId}/balances", balances),
    ("GET", "/accounts/{AccountId}/transactions", transactions),
    ("GET", "/accounts/{AccountId}/party", party),
]
