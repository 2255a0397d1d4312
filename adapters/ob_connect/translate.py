"""Canonical ⇄ Open Banking Connect (Mastercard's EU/UK hub): AIS resources, PIS payment bodies, ISO 20022
statuses and the hub's error body. Pure functions, no I/O. Amounts arrive as JSON numbers and are read exactly
(their shortest representation, never binary expansion)."""
from __future__ import annotations

from datetime import date
from urllib.parse import urlsplit
from decimal import Decimal
from typing import Any

from adapters.base import PaymentInput
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
from gateway.models.money import minor_units
from gateway.models.payments import PaymentStatus
from gateway.models.serialize import decimal_text
from gateway.models.time import parse_upstream_time

PROVIDER = "ob-connect"

# Canonical permissions → the hub's (every permission lets the account list and details be read).
PERMISSIONS = {"accounts": "accounts", "details": "accounts", "owner": "accounts", "balances": "balances",
               "transactions": "transactions", "standing_orders": "standingOrders"}

# Canonical payment types → the hub's path segment and the capability that offers it.
PAYMENT_PATHS = {"domestic": "domestic", "sepa": "sepa", "international": "cross-border"}
PAYMENT_CAPABILITIES = {"domestic": "domestic_credit_transfer", "sepa": "sepa_credit_transfer",
                        "international": "cross_border_credit_transfer"}

# ISO 20022 transaction statuses → the canonical state machine.
ISO_STATUSES: dict[str, PaymentStatus] = {
    "RCVD": PaymentStatus.SUBMITTED,  # received
    "PDNG": PaymentStatus.SUBMITTED,  # pending further checks
    "ACTC": PaymentStatus.PENDING,  # accepted after technical validation
    "ACCP": PaymentStatus.PENDING,  # accepted after customer profile checks
    "ACSP": PaymentStatus.PENDING,  # accepted, settlement in process
    "ACWC": PaymentStatus.PENDING,  # accepted with change
    "ACWP": PaymentStatus.PENDING,  # accepted without posting
    "ACSC": PaymentStatus.COMPLETED,  # accepted, settlement completed
    "RJCT": PaymentStatus.REJECTED,
    "CANC": PaymentStatus.CANCELLED,
}
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


# --- payments -------------------------------------------------------------------------------------------------------
def amount(value: Decimal, currency: str) -> float:
    """The hub takes amounts as JSON numbers (the swagger: number/double). Sent from the exact decimal text, with
    the currency's places, so the number on the wire reads exactly as the canonical amount."""
    return float(decimal_text(Decimal(value).quantize(Decimal(1).scaleb(-minor_units(currency)))))


def _account_identification(account: Any) -> dict[str, str]:
    if account.scheme == "iban":
        return {"identification": account.iban, "schemeName": "IBAN"}
    return {"identification": f"{account.sort_code}{account.account_number}", "schemeName": "SortCodeAccountNumber"}


def _domestic_number(account: Any, country: str) -> dict[str, str]:
    if country == "GB":
        return {"identification": account.account_number, "schemeName": "UK.AccountNumber"}
    return {"identification": (account.iban or "").removeprefix("PL"), "schemeName": "PL.AccountNumber"}


def _address(creditor: Any) -> dict[str, Any] | None:
    address = creditor.address
    if address is None:
        return None
    out: dict[str, Any] = {"country": address.country}
    if address.city:
        out["city"] = address.city
    if address.postal_code:
        out["postalCode"] = address.postal_code
    if address.lines:
        out["street"] = address.lines[0]
    return out


def payment_body(data: PaymentInput, *, country: str) -> dict[str, Any]:
    """The `payments` object of a credit-transfer consent, per the hub's swagger for the payment's type (and, for
    domestic payments, the bank's country: UK Faster Payments or Polish Elixir)."""
    creditor = data.creditor
    account = creditor.account
    body: dict[str, Any] = {
        "endToEndIdentification": data.end_to_end_id,
        "instructedAmount": {"amount": amount(data.amount, data.currency), "currency": data.currency},
        "creditorName": creditor.name,
        "remittanceInformationUnstructured": data.reference,
    }
    address = _address(creditor) if data.type != "domestic" else None  # optional for domestic, and the hub's
    # domestic address needs a building number the canonical address does not carry: not sent
    if data.type == "domestic":
        body["creditorAccount"] = _domestic_number(account, country)
        if country == "GB":
            body["creditorAgent"] = {"clearingSystemIdentification": "UK.SortCode",
                                     "memberIdentification": account.sort_code}
        body["localInstrument"] = "UK.FasterPayments" if country == "GB" else "PL.Elixir"
        if data.debtor_account is not None:
            body["debtorAccount"] = {"identification": _domestic_number(data.debtor_account, country)["identification"]}
    elif data.type == "sepa":
        body["creditorAccount"] = {"iban": account.iban}
        body["creditorAgent"] = {"bicfi": account.bic}
        body["localInstrument"] = "SEPA"
        body["instructionPriority"] = "Normal"
        body["debtorName"] = data.debtor_name
        if data.debtor_account is not None:
            body["debtorAccount"] = {"iban": data.debtor_account.iban}
    else:
        body["creditorAccount"] = _account_identification(account)
        body["creditorAgent"] = {"identification": account.bic, "schemeName": "BIC"}
        body["localInstrument"] = "Swift"
        body["instructionPriority"] = "Normal"
        if data.debtor_account is not None:
            body["debtorAccount"] = _account_identification(data.debtor_account)
        if data.debtor_name:
            body["debtorName"] = data.debtor_name
    if address is not None:
        body["creditorAddress"] = address
    return body


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


def transfer(body: Any, *, consent_request_id: str | None = None) -> tuple[str, str, str | None, PaymentStatus]:
    """(paymentId, consentId, ISO status, canonical status) of a transfer answer. With `consent_request_id`, the
    transfer must be of that consent: an authorisation of another payment made (or found) another payment."""
    node = body.get("transfer") if isinstance(body, dict) else None
    consent = body.get("consent") if isinstance(body, dict) else None
    if consent_request_id is not None and (not isinstance(consent, dict)
                                           or consent.get("consentRequestId") != consent_request_id):
        raise AuthorisationRefused("redirect_result: it authorised another payment, not this one", errors=[
            {"location": "body", "field": "redirect_result", "message": "the authorisation of another payment"}])
    if not isinstance(node, dict) or not isinstance(node.get("paymentId"), str):
        raise _bad("a transfer without paymentId")
    status = node.get("transactionStatus")
    consent_id = consent.get("consentId") if isinstance(consent, dict) else None
    if not isinstance(status, str) or status not in ISO_STATUSES or not isinstance(consent_id, str):
        raise _bad("a transfer without a known transactionStatus or its consentId")
    return node["paymentId"], consent_id, status, ISO_STATUSES[status]


def payment_status(body: Any) -> tuple[str, PaymentStatus, str | None]:
    node = body.get("payments") if isinstance(body, dict) else None
    status = node.get("transactionStatus") if isinstance(node, dict) else None
    if not isinstance(status, str) or status not in ISO_STATUSES:
        raise _bad("a payment status that is not an ISO 20022 status")
    return status, ISO_STATUSES[status], node.get("statusReasonCode")


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
        error = AuthorisationRefused(f"redirect_result: the bank does not accept it as the authorisation{said}", errors=[{"location": "body", "field": "redirect_result",
                                                                      "message": "not accepted by the bank"}],
                                     **kwargs)
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
