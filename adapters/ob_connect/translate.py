"""Canonical ⇄ Open Banking Connect (Mastercard's EU/UK hub): banks, AIS resources, consents and the hub's error
body (payments: translate_pis). Pure functions, no I/O. Amounts arrive as JSON numbers and are read exactly
(their shortest representation, never binary expansion)."""
from __future__ import annotations

from datetime import date
from urllib.parse import urlsplit
from typing import Any

from gateway.connectivity.fapi import AuthorisationRefused
from gateway.errors import (
    AccountUnavailable,
    ConsentEndedUpstream,
    ConsentNotActive,
    GatewayCredentialsRejected,
    GatewayError,
    GatewayRequestRejected,
    InstitutionNotSupported,
    NotFound,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from gateway.ids import IdMinter
from gateway.models import (
    Account, AccountDetails, AccountType, Balance, BalanceType, Institution, Money, Owner, PaymentCoordinates,
    StandingOrder, Transaction, TransactionStatus,
)
from gateway.models.time import parse_upstream_time

PROVIDER = "ob-connect"

# Canonical permissions → the hub's (every permission lets the account list and details be read).
PERMISSIONS = {"accounts": "accounts", "details": "accounts", "owner": "accounts", "balances": "balances",
               "transactions": "transactions", "standing_orders": "standingOrders"}

_ACCOUNT_TYPES = {"CACC": AccountType.CHECKING, "SVGS": AccountType.SAVINGS, "CARD": AccountType.CREDIT_CARD,
                  "LOAN": AccountType.LOAN}
_CAPABILITY_NAMES = {"obtain_ais_consent": "ais", "domestic_credit_transfer": "pis_domestic",
                     "sepa_credit_transfer": "pis_sepa", "cross_border_credit_transfer": "pis_international",
                     "retrieve_standing_orders": "standing_orders"}


def _bad(what: str) -> ProviderBadResponse:
    return ProviderBadResponse(f"{PROVIDER} sent {what}")


def _money(node: Any, *, signed_by: Any = None) -> Money:
    if not isinstance(node, dict) or "amount" not in node or "currency" not in node:
        raise _bad("an amount without amount or currency")
    try:
        money = Money.of(node["amount"], str(node["currency"]))
    except (TypeError, ValueError, ArithmeticError):
        raise _bad(f"an amount that is not a number ({node.get('amount')!r})") from None
    if signed_by == "DBIT":
        money = Money(-money.amount, money.currency)
    return money


def _list(body: Any, key: str) -> list[dict[str, Any]]:
    rows = body.get(key) if isinstance(body, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise _bad(f"an answer without a {key} list")
    return rows


# --- institutions -------------------------------------------------------------------------------------------------
def institution(row: dict[str, Any]) -> Institution:
    try:
        ref, name, country = str(row["id"]), str(row["name"]), str(row["country"])
    except KeyError:
        raise _bad("an ASPSP without id, name or country") from None
    capabilities = row.get("capabilities") or {}
    if not isinstance(capabilities, dict):
        raise _bad("an ASPSP whose capabilities are not an object")
    services = set(row.get("aspspServices") or ())
    offered = tuple(sorted(canonical for key, canonical in _CAPABILITY_NAMES.items() if capabilities.get(key)))
    if not capabilities:  # no capability detail: the services say as much as is known
        offered = tuple(sorted({"ais"} & {s.lower() for s in services} | ({"pis"} if "PIS" in services else set())))
    return Institution(id=ref, provider=PROVIDER, provider_ref=ref, name=name, country=country,
                       capabilities=offered)


def institutions(body: Any) -> list[dict[str, Any]]:
    return _list(body, "aspsps")


# --- accounts -------------------------------------------------------------------------------------------------------
def _date(value: Any, what: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise _bad(f"{what} that is not a date ({value!r})") from None


def _mask(number: str) -> str:
    return "•••• " + number[-4:] if len(number) > 4 else number


def account(row: dict[str, Any], *, consent_id: str, ids: IdMinter, institution_id: str | None) -> Account:
    try:
        ref, currency = str(row["resourceId"]), str(row["currency"])
    except KeyError:
        raise _bad("an account without resourceId or currency") from None
    number = str(row.get("accountNumber") or "")
    return Account(
        id=ids.account(ref), provider=PROVIDER, provider_ref=ref, consent_id=consent_id,
        name=str(row.get("name") or "Account"), type=_ACCOUNT_TYPES.get(str(row.get("accountType")), AccountType.OTHER),
        currency=currency, masked_number=_mask(number) if number else None, institution_id=institution_id,
        extra={"account_type": row.get("accountType"), "scheme_name": row.get("schemeName")})


def accounts(body: Any, *, consent_id: str, ids: IdMinter, institution_id: str | None) -> list[Account]:
    return [account(row, consent_id=consent_id, ids=ids, institution_id=institution_id)
            for row in _list(body, "accounts")]


def one_account(body: Any) -> dict[str, Any]:
    row = body.get("account") if isinstance(body, dict) else None
    if not isinstance(row, dict):
        raise _bad("an answer without the account")
    return row


def coordinates(row: dict[str, Any], *, account_id: str) -> AccountDetails:
    number, scheme = str(row.get("accountNumber") or ""), row.get("schemeName")
    if scheme == "IBAN":
        found = PaymentCoordinates(scheme="iban", iban=number)
    elif scheme == "SortCodeAccountNumber" and len(number) == 14:
        found = PaymentCoordinates(scheme="uk_sort_code", sort_code=number[:6], account_number=number[6:])
    else:
        raise _bad(f"an account number of an unknown scheme ({scheme!r})")
    return AccountDetails(account_id=account_id, coordinates=(found,))


def owner(row: dict[str, Any], *, account_id: str) -> Owner:
    name = row.get("holderName")
    return Owner(account_id=account_id, names=(str(name),) if name else ())


_BALANCE_TYPES = {"interimAvailable": BalanceType.AVAILABLE, "closingBooked": BalanceType.CURRENT,
                  "expected": BalanceType.AVAILABLE, "interimBooked": BalanceType.CURRENT}


def balances(body: Any, *, account_id: str) -> list[Balance]:
    out: dict[BalanceType, Balance] = {}
    for row in _list(body, "balances"):
        kind = _BALANCE_TYPES.get(str(row.get("balanceType")))
        if kind is None or kind in out:
            continue
        out[kind] = Balance(account_id=account_id, type=kind,
                            amount=_money(row.get("balanceAmount"), signed_by=row.get("creditDebitIndicator")),
                            as_of=parse_upstream_time(row.get("dateTime")), live=True)
    if not out:
        raise _bad("balances of no known type")
    return list(out.values())


def transactions(body: Any, *, account_id: str, ids: IdMinter, include_pending: bool) -> list[Transaction]:
    out = []
    for row in _list(body, "transactions"):
        status = TransactionStatus.PENDING if row.get("status") == "PDNG" else TransactionStatus.BOOKED
        if status is TransactionStatus.PENDING and not include_pending:
            continue
        ref = str(row.get("transactionId") or "")
        if not ref:
            raise _bad("a transaction without transactionId")
        booked = parse_upstream_time(row.get("bookingDateTime"))
        value_date = row.get("valueDate")
        description = row.get("remittanceInformationUnstructured") or row.get("recipientName") or \
            row.get("senderName") or ""
        out.append(Transaction(
            ids.derive("txn", f"{account_id}\x00{ref}"), account_id, ref,
            _money(row.get("transactionAmount"), signed_by=row.get("creditDebitIndicator")), status, str(description),
            booked if status is TransactionStatus.BOOKED else None,
            _date(value_date, "a valueDate") if value_date is not None else (booked.date() if booked else None),
            row.get("transactionType"), None, None))
    return out


def next_offset(body: Any) -> str | None:
    offset = body.get("offset") if isinstance(body, dict) else None
    return offset if isinstance(offset, str) and offset else None


def standing_orders(body: Any, *, account_id: str, ids: IdMinter) -> list[StandingOrder]:
    out = []
    for row in _list(body, "standingOrders"):
        ref = str(row.get("standingOrderId") or "")
        if not ref:
            raise _bad("a standing order without standingOrderId")
        payment = row.get("nextPayment") or row.get("firstPayment") or {}
        money = _money(payment)
        recipient = row.get("recipientAccount") or {}

        def when(key: str) -> date | None:
            return _date((row.get(key) or {}).get("date"), f"a standing order's {key} date")

        out.append(StandingOrder(
            id=ids.derive("sto", f"{account_id}\x00{ref}"), account_id=account_id, provider_ref=ref,
            frequency=str((row.get("schedule") or {}).get("frequency") or ""),
            amount=Money(-money.amount, money.currency), creditor_name=recipient.get("name"),
            creditor_account=recipient.get("identification"), reference=row.get("reference"),
            first_payment_date=when("firstPayment"), next_payment_date=when("nextPayment"),
            final_payment_date=when("finalPayment"), status=str(row.get("status") or "ACTIVE").lower()))
    return out


# --- consents (AIS and PIS) ------------------------------------------------------------------------------------
def consent_link(body: Any) -> tuple[str, str]:
    """(consentRequestId, the SCA redirect URL) of a consent answer."""
    ref = body.get("consentRequestId") if isinstance(body, dict) else None
    links = body.get("_links") if isinstance(body, dict) else None
    redirect = links.get("scaRedirect") if isinstance(links, dict) else None
    if isinstance(redirect, dict):  # later hub versions wrap it as {href}
        redirect = redirect.get("href")
    if not isinstance(ref, str) or not isinstance(redirect, str) or not redirect:
        raise _bad("a consent without consentRequestId or _links.scaRedirect")
    parts = urlsplit(redirect)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise _bad("an SCA redirect that is not an absolute http(s) URL")
    return ref, redirect


# --- errors -----------------------------------------------------------------------------------------------------------
def hub_error(body: Any) -> tuple[str | None, str, bool | None]:
    """(ReasonCode, Description, Recoverable) of the hub's first error, when the body is the hub's error body."""
    errors = ((body or {}).get("Errors") or {}).get("Error") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        recoverable = first.get("Recoverable")
        return (str(first.get("ReasonCode")) if first.get("ReasonCode") else None,
                str(first.get("Description") or ""), recoverable if isinstance(recoverable, bool) else None)
    return None, "", None


def error_from_response(status: int, body: Any, *, retry_after: float | None) -> GatewayError:
    code, description, recoverable = hub_error(body)
    kwargs: dict[str, Any] = {"provider_code": code or f"http_{status}", "provider_body": body}
    said = f" ({description})" if description else ""
    error: GatewayError
    if status == 429:
        error = ProviderRateLimited(f"{PROVIDER} is rate limiting the gateway{said}.", retry_after=retry_after,
                                    **kwargs)
    elif status == 504:
        error = ProviderTimeout(f"{PROVIDER} or the bank behind it did not answer in time{said}.", **kwargs)
    elif status >= 500:
        error = ProviderUnavailable(f"{PROVIDER} failed (HTTP {status}){said}.", **kwargs)
    elif status == 401:
        error = GatewayCredentialsRejected(f"{PROVIDER} refused the gateway's signature or consumer key{said}; an "
                                           "operator must check the signing key and consumer key.", **kwargs)
    elif code in ("CONSENT_NOT_FOUND", "CONSENT_EXPIRED", "CONSENT_INVALID"):
        error = ConsentEndedUpstream(f"{PROVIDER} no longer accepts this consent{said}; a new consent is needed.",
                                     consent_status="expired" if code == "CONSENT_EXPIRED" else "revoked", **kwargs)
    elif code == "PERMISSION_DENIED":
        error = ConsentNotActive(f"the consent does not allow this{said}.", **kwargs)
    elif code == "ACCOUNT_NOT_FOUND":
        error = AccountUnavailable(f"the bank no longer shows this account under the consent{said}.", **kwargs)
    elif code in ("ASPSP_NOT_FOUND", "SERVICE_NOT_SUPPORTED"):
        error = InstitutionNotSupported(f"the bank does not offer this through {PROVIDER}{said}.", **kwargs)
    elif code == "AUTHORIZATION_INVALID":
        error = AuthorisationRefused(
            f"redirect_result: the bank does not accept it as the authorisation{said}",
            errors=[{"location": "body", "field": "redirect_result", "message": "not accepted by the bank"}], **kwargs)
    elif code == "PAYMENT_NOT_FOUND":
        error = NotFound(f"{PROVIDER} does not know this payment{said}.", **kwargs)
    elif code == "INVALID_PAYMENT":
        error = ProviderRejected(f"the bank refused the payment{said}; retrying it unchanged will not help.",
                                 **kwargs)
    elif code in ("INVALID_REQUEST", "NOT_FOUND", "METHOD_NOT_ALLOWED") or status in (404, 405):
        error = GatewayRequestRejected(f"{PROVIDER} found the gateway's request malformed (HTTP {status}){said}. "
                                       "This is a gateway defect; retrying will not help.", **kwargs)
    else:
        error = ProviderRejected(f"{PROVIDER} refused the request (HTTP {status}){said}.", **kwargs)
    if recoverable is not None:
        error.retryable = recoverable  # type: ignore[misc]  # the hub says whether a retry can succeed
    return error
