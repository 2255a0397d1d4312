"""Open Banking UK v3.1.2 (as Stripe serves it) ⇄ canonical: permissions, accounts, balances, transactions,
party, payment coordinates and OB error bodies. Pure functions, no I/O."""
from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from gateway.errors import (
    ConsentEndedUpstream,
    ConsentNotActive,
    GatewayCredentialsRejected,
    GatewayError,
    GatewayRequestRejected,
    NotFound,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from gateway.ids import IdMinter
from gateway.models import (
    Account,
    AccountDetails,
    AccountType,
    Balance,
    BalanceType,
    Money,
    Owner,
    PaymentCoordinates,
    PostalAddress,
    Transaction,
    TransactionStatus,
)
from gateway.models.time import UTC, parse_upstream_time

PROVIDER = "stripe-uk"

# canonical permission -> the OB permissions that grant it
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "accounts": ("ReadAccountsBasic",),
    "details": ("ReadAccountsDetail",),
    "balances": ("ReadBalances",),
    "transactions": ("ReadTransactionsBasic", "ReadTransactionsDetail", "ReadTransactionsCredits",
                     "ReadTransactionsDebits"),
    "owner": ("ReadParty",),
}

_ACCOUNT_TYPES = {
    "CurrentAccount": AccountType.CHECKING, "Savings": AccountType.SAVINGS, "CreditCard": AccountType.CREDIT_CARD,
    "ChargeCard": AccountType.CREDIT_CARD, "Loan": AccountType.LOAN, "Mortgage": AccountType.MORTGAGE,
    "EMoney": AccountType.CHECKING, "PrePaidCard": AccountType.OTHER,
}
# The balance a caller means by "available" and by "current", most preferred first.
_AVAILABLE = ("InterimAvailable", "ClosingAvailable", "Expected", "ForwardAvailable", "OpeningAvailable")
_CURRENT = ("InterimBooked", "ClosingBooked", "OpeningBooked")


def ob_permissions(permissions: tuple[str, ...]) -> list[str]:
    """The OB permissions for canonical ones; account details always come with the account list they need."""
    out: list[str] = []
    for permission in permissions:
        for ob in PERMISSIONS[permission]:
            if ob not in out:
                out.append(ob)
    if "ReadAccountsDetail" not in out and "ReadAccountsBasic" not in out:
        out.insert(0, "ReadAccountsBasic")
    return out


def consent_body(permissions: tuple[str, ...], *, expires_at: datetime | None, transactions_from: date | None,
                 transactions_to: date | None) -> dict[str, Any]:
    data: dict[str, Any] = {"Permissions": ob_permissions(permissions)}
    if expires_at is not None:
        data["ExpirationDateTime"] = expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if transactions_from is not None:
        data["TransactionFromDateTime"] = f"{transactions_from.isoformat()}T00:00:00Z"
    if transactions_to is not None:
        data["TransactionToDateTime"] = f"{transactions_to.isoformat()}T23:59:59Z"
    return {"Data": data, "Risk": {}}


def _bad(what: str) -> ProviderBadResponse:
    return ProviderBadResponse(f"{PROVIDER} sent {what} the gateway cannot read")


def _data(body: Any, key: str) -> list[dict[str, Any]]:
    try:
        rows = body["Data"][key]
    except (KeyError, TypeError):
        raise _bad(f"a response without Data.{key}") from None
    if not isinstance(rows, list):
        raise _bad(f"Data.{key} that is not a list")
    return [r for r in rows if isinstance(r, dict)]


def _amount(node: Any) -> Money:
    try:
        value = Decimal(str(node["Amount"]))
        currency = str(node["Currency"])
    except (KeyError, TypeError, InvalidOperation):
        raise _bad("an amount") from None
    if not value.is_finite() or len(currency) != 3:
        raise _bad("an amount")
    return Money(value, currency)


def _signed(node: dict[str, Any]) -> Money:
    money = _amount(node.get("Amount"))
    return Money(-money.amount, money.currency) if node.get("CreditDebitIndicator") == "Debit" else money


def _mask(identification: str) -> str:
    return "•" * 4 + identification[-4:] if len(identification) >= 4 else identification


def accounts(body: Any, *, consent_id: str, ids: IdMinter) -> list[Account]:
    out = []
    for row in _data(body, "Account"):
        try:
            ref = str(row["AccountId"])
            currency = str(row["Currency"])
        except KeyError:
            raise _bad("an account without AccountId or Currency") from None
        identifiers = [a for a in row.get("Account") or [] if isinstance(a, dict)]
        masked = _mask(str(identifiers[0].get("Identification", ""))) if identifiers else None
        name = row.get("Nickname") or (identifiers[0].get("Name") if identifiers else None) or "Account"
        out.append(Account(
            id=ids.account(ref), provider=PROVIDER, provider_ref=ref, consent_id=consent_id, name=str(name),
            type=_ACCOUNT_TYPES.get(str(row.get("AccountSubType")), AccountType.OTHER), currency=currency,
            masked_number=masked, status=str(row.get("Status", "Enabled")).lower(),
            extra={"account_type": row.get("AccountType"), "account_sub_type": row.get("AccountSubType"),
                   "identifiers": [{"scheme": a.get("SchemeName"), "identification": a.get("Identification"),
                                    "name": a.get("Name")} for a in identifiers]},
        ))
    return out


def _pick(rows: list[dict[str, Any]], preferred: tuple[str, ...]) -> dict[str, Any] | None:
    for kind in preferred:
        for row in rows:
            if row.get("Type") == kind:
                return row
    return None


def balances(body: Any, *, account_id: str) -> list[Balance]:
    rows = _data(body, "Balance")
    out = []
    for kind, preferred in ((BalanceType.AVAILABLE, _AVAILABLE), (BalanceType.CURRENT, _CURRENT)):
        row = _pick(rows, preferred)
        if row is not None:
            out.append(Balance(account_id=account_id, type=kind, amount=_signed(row),
                               as_of=parse_upstream_time(row.get("DateTime")), live=True))
    if not out:
        raise _bad("balances of no known type")
    return out


def transactions(body: Any, *, account_id: str, ids: IdMinter, include_pending: bool) -> list[Transaction]:
    # OB transaction ids are free text (letters, dashes...): each gateway id is derived whole, not appended.
    def derive(ref: str) -> str:
        return ids.derive("txn", f"{account_id}\x00{ref}")

    out = []
    for row in _data(body, "Transaction"):
        status = TransactionStatus.PENDING if row.get("Status") == "Pending" else TransactionStatus.BOOKED
        if status is TransactionStatus.PENDING and not include_pending:
            continue
        ref = str(row.get("TransactionId") or row.get("TransactionReference") or "")
        if not ref:
            raise _bad("a transaction without TransactionId")
        booked = parse_upstream_time(row.get("BookingDateTime"))
        merchant = (row.get("MerchantDetails") or {}).get("MerchantName")
        description = row.get("TransactionInformation") or merchant or ""
        code = (row.get("BankTransactionCode") or {}).get("Code")
        out.append(Transaction(derive(ref), account_id, ref, _signed(row), status, str(description),
                                booked if status is TransactionStatus.BOOKED else None,
                                booked.date() if booked else None, code, row.get("TransactionReference"), None))
    return out


def booking_window(from_date: date, to_date: date) -> dict[str, str]:
    return {"fromBookingDateTime": datetime.combine(from_date, time.min).isoformat(),
            "toBookingDateTime": datetime.combine(to_date, time(23, 59, 59)).isoformat()}


def next_link(body: Any) -> str | None:
    link = (body.get("Links") or {}).get("Next") if isinstance(body, dict) else None
    return link if isinstance(link, str) and link else None


def payment_coordinates(raw_account: Any, *, account_id: str) -> AccountDetails:
    rows = _data(raw_account, "Account")
    coordinates = []
    for row in rows:
        for identifier in row.get("Account") or []:
            if not isinstance(identifier, dict):
                continue
            scheme, ident = identifier.get("SchemeName"), str(identifier.get("Identification", ""))
            if scheme == "UK.OBIE.SortCodeAccountNumber" and len(ident) == 14 and ident.isdigit():
                coordinates.append(PaymentCoordinates(scheme="uk_sort_code", sort_code=ident[:6],
                                                      account_number=ident[6:]))
            elif scheme == "UK.OBIE.IBAN" and ident:
                coordinates.append(PaymentCoordinates(scheme="iban", iban=ident.replace(" ", "")))
            elif scheme == "UK.OBIE.Wallet" and ident:
                coordinates.append(PaymentCoordinates(scheme="wallet", account_number=ident))
    return AccountDetails(account_id=account_id, coordinates=tuple(coordinates))


def owner(body: Any, *, account_id: str) -> Owner:
    try:
        party = body["Data"]["Party"]
    except (KeyError, TypeError):
        raise _bad("a party response without Data.Party") from None
    parties = party if isinstance(party, list) else [party]
    names, addresses, emails, phones = [], [], [], []
    for p in parties:
        if not isinstance(p, dict):
            continue
        name = p.get("FullLegalName") or p.get("Name")
        if name:
            names.append(str(name))
        if p.get("EmailAddress"):
            emails.append(str(p["EmailAddress"]))
        for key in ("Phone", "Mobile"):
            if p.get(key):
                phones.append(str(p[key]))
        for a in p.get("Address") or []:
            if isinstance(a, dict):
                lines = tuple(str(x) for x in a.get("AddressLine") or [])
                if a.get("BuildingNumber") or a.get("StreetName"):
                    lines = (" ".join(str(x) for x in (a.get("BuildingNumber"), a.get("StreetName")) if x),) + lines
                addresses.append(PostalAddress(lines=lines, city=a.get("TownName"),
                                               region=a.get("CountrySubDivision"), postal_code=a.get("PostCode"),
                                               country=a.get("Country")))
    if not names:
        raise _bad("a party without a name")
    return Owner(account_id=account_id, names=tuple(names), addresses=tuple(addresses), emails=tuple(emails),
                 phones=tuple(phones))


# --- errors -----------------------------------------------------------------------------------------------------
_CONSENT_ENDED = ("UK.OBIE.Resource.InvalidConsentStatus", "UK.OBIE.Resource.ConsentMismatch")


def ob_error_code(body: bytes) -> tuple[str | None, Any]:
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None, None
    if isinstance(parsed, dict):
        for entry in parsed.get("Errors") or []:
            if isinstance(entry, dict) and entry.get("ErrorCode"):
                return str(entry["ErrorCode"]), parsed
        if parsed.get("error"):
            return str(parsed["error"]), parsed
    return None, parsed


def error_from_response(status: int, body: bytes, *, retry_after: float | None) -> GatewayError:
    code, parsed = ob_error_code(body)
    kwargs: dict[str, Any] = {"provider_code": code or f"http_{status}", "provider_body": parsed}
    if status == 429:
        return ProviderRateLimited(f"{PROVIDER} is rate limiting the gateway; retry after a pause.",
                                   retry_after=retry_after, **kwargs)
    if status >= 500:
        return ProviderUnavailable(f"{PROVIDER} failed (HTTP {status}); retry later.", retryable=True, **kwargs)
    if code in _CONSENT_ENDED:
        return ConsentEndedUpstream(f"{PROVIDER} no longer accepts this consent (revoked or expired at the bank); "
                                    "a new consent is needed.", **kwargs)
    if code == "UK.OBIE.Resource.NotFound" or status == 404:
        return NotFound(f"{PROVIDER} does not know this resource.", **kwargs)
    if status == 403:
        return ConsentNotActive(f"{PROVIDER} refused: the consent does not cover this data.", **kwargs)
    if status == 401:
        return GatewayCredentialsRejected(f"{PROVIDER} rejected the gateway's access token or client; an operator "
                                          "must check the registration. Retrying will not help.", retryable=False,
                                          **kwargs)
    if code and code.startswith(("UK.OBIE.Field.", "UK.OBIE.Header.", "UK.OBIE.Unsupported.")):
        return GatewayRequestRejected(f"{PROVIDER} found the gateway's request malformed ({code}). This is a "
                                      "gateway defect; retrying will not help.", retryable=False, **kwargs)
    return ProviderRejected(f"{PROVIDER} refused the request (HTTP {status}); retrying it unchanged will not help.",
                            retryable=False, **kwargs)
