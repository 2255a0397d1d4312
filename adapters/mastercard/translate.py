"""Platform payloads ⇄ canonical models. Pure functions, no I/O; shapes follow the platform's OpenAPI schemas.

Amounts arrive as JSON floats and become exact Decimals through their shortest repr; epoch seconds become aware UTC
datetimes (and UTC dates). A payload that cannot be read raises ProviderBadResponse rather than passing on a
guess; payment coordinates are checked (ABA checksum, BSB format) before anyone could send money with them.
`transactions` is the hot path and is written for speed; everything else favours plainness.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable

import attrs

from adapters.mastercard.region import REGIONS, MastercardRegion
from gateway.errors import ProviderBadResponse
from gateway.ids import IdMinter
from gateway.models import (
    Account,
    AccountType,
    Balance,
    BalanceType,
    Institution,
    Money,
    Transaction,
    TransactionStatus,
)
from gateway.models.money import minor_units
from gateway.models.time import UTC, date_from_epoch, utc_from_epoch

ACCOUNT_TYPES: dict[str, AccountType] = {
    "checking": AccountType.CHECKING,
    "transactionAndSavings": AccountType.CHECKING,  # AU transaction accounts
    "savings": AccountType.SAVINGS,
    "cd": AccountType.SAVINGS,
    "moneyMarket": AccountType.SAVINGS,
    "healthSavingsAccount": AccountType.SAVINGS,
    "creditCard": AccountType.CREDIT_CARD,
    "lineOfCredit": AccountType.LOAN,
    "loan": AccountType.LOAN,
    "autoLoan": AccountType.LOAN,
    "studentLoan": AccountType.LOAN,
    "studentLoanGroup": AccountType.LOAN,
    "studentLoanAccount": AccountType.LOAN,
    "mortgage": AccountType.MORTGAGE,
    "investment": AccountType.INVESTMENT,
    "brokerageAccount": AccountType.INVESTMENT,
    "employeeStockPurchasePlan": AccountType.INVESTMENT,
    "ugma": AccountType.INVESTMENT,
    "utma": AccountType.INVESTMENT,
    "529": AccountType.INVESTMENT,
    "529plan": AccountType.INVESTMENT,
    "educationSavings": AccountType.INVESTMENT,
    **{kind: AccountType.RETIREMENT for kind in (
        "investmentTaxDeferred", "ira", "401k", "401a", "403b", "457", "457plan", "roth", "roth401k", "rollover",
        "keogh", "sepIRA", "simpleIRA", "pension", "profitSharingPlan", "thriftSavingsPlan", "variableAnnuity",
    )},
}

# The platform serves available balances, live balances and ACH/BSB details for deposit accounts only.
DEPOSIT_TYPES = frozenset({"checking", "savings", "moneyMarket", "cd", "transactionAndSavings"})

TRANSACTION_STATUSES: dict[str, TransactionStatus] = {
    "active": TransactionStatus.BOOKED,
    "pending": TransactionStatus.PENDING,
    "shadow": TransactionStatus.REMOVED,  # seen in an earlier aggregation, gone from the institution now
}

# What an institution's product flags allow, in the gateway's permission vocabulary (reports by product name).
_INSTITUTION_CAPABILITIES = (
    ("transAgg", ("accounts", "transactions")), ("availBalance", ("balances",)), ("ach", ("details",)),
    ("accountOwner", ("owner",)), ("voa", ("voa",)), ("voi", ("voi",)), ("aha", ("account_history",)),
    ("stateAgg", ("statements",)),
)
_COUNTRY_ALPHA3 = {"USA": "US", "CAN": "CA", "AUS": "AU", "NZL": "NZ", "GBR": "GB", "MEX": "MX", "PRI": "PR"}
_NO_DESCRIPTION = "No description provided by institution"

_CURRENCY_RE = re.compile(r"[A-Z]{3}")


def _bad(region_or_provider: MastercardRegion | str, what: str) -> ProviderBadResponse:
    provider = region_or_provider if isinstance(region_or_provider, str) else region_or_provider.provider_id
    return ProviderBadResponse(f"{provider} sent {what} the gateway cannot read; retrying will not help.")


def _ref(value: Any) -> str:
    """An upstream id (number or string) as a non-empty string."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"not an id: {value!r}")
    text = str(value)
    if not text:
        raise ValueError("empty id")
    return text


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _currency(value: Any, default: str) -> str:
    return value if isinstance(value, str) and _CURRENCY_RE.fullmatch(value) else default


def _country(value: Any, default: str | None) -> str | None:
    text = _text(value)
    if text is None:
        return default
    text = text.upper()
    return text if len(text) == 2 else _COUNTRY_ALPHA3.get(text, default)


def _epoch(value: Any) -> datetime | None:
    """Epoch seconds → aware UTC datetime; absent, null and 0 (the platform's "not set") → None."""
    if value is None or value == 0 or value == "":
        return None
    return utc_from_epoch(value)


def masked_number(*candidates: Any) -> str | None:
    """The last four digits of the first candidate that has any, behind a fixed mask; never more digits."""
    for candidate in candidates:
        if isinstance(candidate, (str, int)) and not isinstance(candidate, bool):
            digits = [c for c in str(candidate) if "0" <= c <= "9"]
            if digits:
                return "****" + "".join(digits[-4:])
    return None


# --- accounts -----------------------------------------------------------------------------------------------------
def account(raw: dict[str, Any], *, region: MastercardRegion, consent_id: str, ids: IdMinter) -> Account:
    try:
        ref = _ref(raw["id"])
        kind = raw.get("type")
        extra: dict[str, Any] = {"provider_type": kind}
        login = raw.get("institutionLoginId")
        if login is not None:
            extra["institution_login_id"] = _ref(login)
        for source, target in (("accountNickname", "nickname"), ("marketSegment", "market_segment"),
                               ("aggregationStatusCode", "aggregation_status_code")):
            if raw.get(source) is not None:
                extra[target] = raw[source]
        institution = raw.get("institutionId")
        return Account(
            id=ids.account(ref),
            provider=region.provider_id,
            provider_ref=ref,
            consent_id=consent_id,
            name=_text(raw.get("name")) or _text(raw.get("accountNickname")) or "",
            type=ACCOUNT_TYPES.get(kind, AccountType.OTHER) if isinstance(kind, str) else AccountType.OTHER,
            currency=_currency(raw.get("currency"), region.currency),
            masked_number=masked_number(raw.get("accountNumberDisplay"), raw.get("realAccountNumberLast4"),
                                        raw.get("number")),
            institution_id=_ref(institution) if institution is not None else None,
            status=_text(raw.get("status")) or "active",
            extra=extra,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _bad(region, "an account") from exc


def accounts(body: dict[str, Any], *, region: MastercardRegion, consent_id: str, ids: IdMinter) -> list[Account]:
    rows = body.get("accounts") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise _bad(region, "an account list")
    return [account(raw, region=region, consent_id=consent_id, ids=ids) for raw in rows]


# --- transactions: the hot path -----------------------------------------------------------------------------------
@attrs.frozen(slots=True)
class TransactionsPage:
    items: list[Transaction]
    found: int  # upstream counts, before pending/removed filtering: paging follows them
    displaying: int
    more_available: bool


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_from_timestamp = datetime.fromtimestamp
_from_ordinal = date.fromordinal

def _money(value: Any, currency: str) -> Money:
    money = Money.of(value, currency)
    if not money.amount.is_finite():
        raise ValueError("amount is not a finite number")
    return money


def money_reader(currency: str) -> Callable[[Any], Money]:
    """A converter of upstream amounts to Money, equal to `Money.of(value, currency)` but faster for floats.

    A float's shortest repr is padded to the currency's minor unit, which is what Money.of's quantize does;
    anything unusual (exponent notation, ints, strings, bools, NaN) goes through Money.of itself.
    """
    places = minor_units(currency)
    pads = ["0" * (places - n) if n < places else "" for n in range(places + 1)]
    zero = Money.of(0.0, currency)
    cache: dict[float, Money] = {}

    def read(value: Any) -> Money:
        if type(value) is not float:
            return _money(value, currency)
        found = cache.get(value)
        if found is not None:
            return found
        text = repr(value)
        dot = text.find(".")
        if dot < 0 or "e" in text:
            money = _money(value, currency)
        elif value == 0:
            money = zero
        elif len(text) - dot - 1 > places:
            money = _money(value, currency)  # more digits than the minor unit: Money.of decides what is exact
        else:
            money = Money(Decimal(text + pads[len(text) - dot - 1]), currency)
        cache[value] = money
        return money

    return read


def transactions(body: dict[str, Any], *, region: MastercardRegion, account_id: str, ids: IdMinter,
                 include_pending: bool, include_removed: bool, currency: str | None = None) -> TransactionsPage:
    """One page of an account's transactions. `currency` is the account's (the region's by default)."""
    rows = body.get("transactions") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise _bad(region, "a transaction page")
    money = money_reader(currency or region.currency)
    days: dict[int, date] = {}  # many rows share a day
    derive = ids.transactions_of(account_id)
    statuses = TRANSACTION_STATUSES
    pending, removed = TransactionStatus.PENDING, TransactionStatus.REMOVED
    utc = UTC
    items: list[Transaction] = []
    append = items.append
    try:
        for row in rows:
            status = statuses[row["status"]]
            if status is pending:
                if not include_pending:
                    continue
            elif status is removed and not include_removed:
                continue
            ref = row["id"]
            ref = str(ref) if type(ref) is int else _ref(ref)
            description = row.get("description")
            memo = row.get("memo")
            if type(memo) is not str:
                memo = None
            if type(description) is not str or not description or description == _NO_DESCRIPTION:
                description = memo or (description if type(description) is str else "")
            posted = row.get("postedDate")
            if status is pending or not posted:
                posted = None
            elif type(posted) is int:
                posted = _from_timestamp(posted, utc)
            else:
                posted = utc_from_epoch(posted)
            day = row.get("transactionDate")
            if not day:
                day = None
            elif type(day) is int:
                number = day // 86400
                day = days.get(number)
                if day is None:
                    day = days[number] = _from_ordinal(_EPOCH_ORDINAL + number)
            else:
                day = date_from_epoch(day)
            category = row.get("categorization")
            if category is not None:
                category = category.get("category")
                if type(category) is not str:
                    category = None
            check = row.get("checkNum")
            if check is not None and type(check) is not str:
                check = str(check) if type(check) is int else None
            txn = Transaction(derive(ref), account_id, ref, money(row["amount"]), status, description, posted, day,
                              category, memo, check)
            append(txn)
        more = body.get("moreAvailable")
        return TransactionsPage(
            items=items,
            found=int(body.get("found", len(rows))),
            displaying=int(body.get("displaying", len(rows))),
            more_available=more is True or (isinstance(more, str) and more.strip().lower() == "true"),
        )
    except KeyError as exc:
        raise _bad(region, "a transaction with a missing field or an unknown status that") from exc
    except (TypeError, ValueError, AttributeError, ArithmeticError, OSError) as exc:
        raise _bad(region, "a transaction") from exc


# --- balances -----------------------------------------------------------------------------------------------------
def balances(body: dict[str, Any], *, region: MastercardRegion, account_id: str, live: bool) -> list[Balance]:
    """The availableBalance (and /live) answer: an AVAILABLE and a CURRENT (cleared) balance where present.

    A live call whose aggregation did not succeed (a non-zero aggregationStatusCode) returns the cached figures,
    so those are marked live=False.
    """
    if not isinstance(body, dict):
        raise _bad(region, "a balance")
    try:
        currency = _currency(body.get("currency"), region.currency)
        fresh = live and body.get("aggregationStatusCode") in (None, 0, "0")
        out = []
        for kind, amount_key, date_key in ((BalanceType.AVAILABLE, "availableBalance", "availableBalanceDate"),
                                           (BalanceType.CURRENT, "clearedBalance", "clearedBalanceDate")):
            amount = body.get(amount_key)
            if amount is not None:
                out.append(Balance(account_id=account_id, type=kind, amount=_money(amount, currency),
                                   as_of=_epoch(body.get(date_key)), live=fresh))
        return out
    except (TypeError, ValueError, ArithmeticError, OSError) as exc:
        raise _bad(region, "a balance") from exc


# --- balances of non-deposit accounts, and what a consent receipt covers -----------------------------------------
def account_balance(raw: dict[str, Any], *, region: MastercardRegion, account_id: str) -> list[Balance]:
    """The current balance an account record carries (`balance`, `balanceDate`): what non-deposit accounts offer."""
    try:
        amount = raw["balance"]
        currency = _currency(raw.get("currency"), region.currency)
        return [Balance(account_id=account_id, type=BalanceType.CURRENT, amount=_money(amount, currency),
                        as_of=_epoch(raw.get("balanceDate")), live=False)]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _bad(region, "an account balance") from exc


def receipt_account_refs(receipt: dict[str, Any]) -> list[str]:
    """The upstream ids of the accounts a data-sharing consent receipt covers."""
    refs: list[str] = []
    for arrangement in receipt.get("institutions") or []:
        if isinstance(arrangement, dict):
            refs.extend(_ref(a["id"]) for a in arrangement.get("accounts") or [] if isinstance(a, dict) and "id" in a)
    return refs


# --- institutions -------------------------------------------------------------------------------------------------
def institution(raw: dict[str, Any], *, provider: str) -> Institution:
    try:
        ref = _ref(raw["id"])
        capabilities: list[str] = []
        for flag, names in _INSTITUTION_CAPABILITIES:
            if raw.get(flag) is True:
                capabilities.extend(names)
        address = raw.get("address") if isinstance(raw.get("address"), dict) else {}
        default_country = REGIONS[provider].country if provider in REGIONS else None
        return Institution(
            id=ref,
            provider=provider,
            provider_ref=ref,
            name=_text(raw.get("displayName")) or _text(raw.get("name")) or ref,
            country=_country(address.get("country"), default_country) or "",
            url=_text(raw.get("urlHomeApp")),
            capabilities=tuple(capabilities),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _bad(provider, "an institution") from exc


def institutions(body: dict[str, Any], *, provider: str) -> tuple[list[Institution], int, bool]:
    """The institution search answer: (institutions, found, more available)."""
    rows = body.get("institutions") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise _bad(provider, "an institution list")
    items = [institution(raw, provider=provider) for raw in rows]
    try:
        found = int(body.get("found", len(items)))
    except (TypeError, ValueError) as exc:
        raise _bad(provider, "an institution list") from exc
    more = body.get("moreAvailable")
    return items, found, more is True or (isinstance(more, str) and more.strip().lower() == "true")
