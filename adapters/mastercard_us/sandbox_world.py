"""The Finicity simulator's mutable state: customers, linked accounts, consent receipts, Connect links, consumers and
reports.

Handlers change the world only through these methods, and read it through the `*_json` views, which render the
upstream's response shapes. A revoked consent receipt takes its accounts out of every account call.
"""
from __future__ import annotations

import bisect
import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs

from adapters.mastercard_us.sandbox_data import (
    DEPOSIT_TYPES, INSTITUTIONS, INVESTMENT_TYPES, LOAN_TYPES, PROFILES, SEEDED_CUSTOMERS, AccountTemplate,
    account_number, eastern_date, eastern_epoch, generate_transactions, json_number, routing_number,
)

D = Decimal
CONSENT_PURPOSE = "Personal financial management"
DATA_SCOPES = (
    {"id": "ACCOUNT_BASIC", "name": "Account display name, masked account number, type, description"},
    {"id": "ACCOUNT_DETAILED", "name": "Account Information - Basic + account balances, credit limits, due dates, "
                                       "interest rates, rewards balances, recurrences"},
    {"id": "TRANSACTIONS", "name": "Transaction history"},
    {"id": "CUSTOMER_PERSONAL", "name": "Name, Email, Address, Phone, Date of Birth, Tax ID, SSN on file with this "
                                        "institution"},
)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define
class Customer:
    id: str
    username: str
    type: str  # "testing" | "active"
    first_name: str | None
    last_name: str | None
    created: int


@attrs.define
class Account:
    id: str
    customer_id: str
    institution_id: int
    login_id: int
    profile: str
    template: AccountTemplate
    consent_id: str
    created: int
    number: str
    routing: str
    position: int
    status: str = "active"  # the upstream's aggregation status

    @property
    def last4(self) -> str:
        return self.number[-4:]


@attrs.define
class Consent:
    id: str
    customer_id: str
    institution_id: int
    login_id: int
    account_ids: list[str]
    created: datetime
    status_date: datetime
    status: str = "ACTIVE"  # the receipt: ACTIVE | INACTIVE
    institution_status: str = "ACTIVE"  # the arrangement: ACTIVE | REVOKED
    updated_by: str | None = None


def date_key(row: dict[str, Any]) -> int:
    """What the upstream sorts and filters transactions by: transactionDate, else postedDate."""
    return row["transactionDate"] if "transactionDate" in row else row["postedDate"]


@attrs.frozen
class Book:
    """An account's transactions oldest first, all of them and the settled ones (not pending), with their date keys,
    so that a page is two bisections and a slice."""

    rows: list[dict[str, Any]]
    keys: list[int]
    settled_rows: list[dict[str, Any]]
    settled_keys: list[int]
    pending_total: Decimal

    def between(self, low: int, high: int, *, pending: bool) -> list[dict[str, Any]]:
        keys, rows = (self.keys, self.rows) if pending else (self.settled_keys, self.settled_rows)
        return rows[bisect.bisect_left(keys, low):bisect.bisect_right(keys, high)]


@attrs.define
class ConnectLink:
    id: str
    customer_id: str
    kind: str  # "standard" | "lite"
    institution_id: int | None
    redirect_uri: str | None
    webhook: dict[str, Any] | None  # recorded for later delivery: url, contentType, data, headers
    expires_at: float  # monotonic
    used: bool = False


@attrs.define
class Consumer:
    """The person a customer's reports are about: one per customer, never deleted."""
    id: str
    customer_id: str
    fields: dict[str, Any]  # as created (firstName, lastName, state, …)
    created: int


@attrs.define
class Report:
    id: str
    request_id: str
    customer_id: str
    consumer_id: str
    type: str  # the platform's report type: voa | voi | cfrp
    created: int
    constraints: dict[str, Any]  # as the acknowledgement shows them: accountIds, fromDate, …
    account_ids: list[str]
    callback_url: str | None
    status: str = "inProgress"  # inProgress | success | failure
    document: dict[str, Any] | None = None  # the finished report's own fields


class World:
    def __init__(self, *, seed: int, partner_id: str, now: Callable[[], datetime]) -> None:
        self.seed = seed
        self.partner_id = partner_id
        self.now = now
        self.rng = random.Random(seed)
        self.customers: dict[str, Customer] = {}
        self.accounts: dict[str, Account] = {}
        self.consents: dict[str, Consent] = {}
        self.links: dict[str, ConnectLink] = {}
        self.consumers: dict[str, Consumer] = {}  # by customer id
        self.reports: dict[str, Report] = {}
        self._books: dict[str, Book] = {}
        self._live: dict[str, dict[str, Any]] = {}
        self._next_customer = 1005061300
        self._next_account = 5011700000
        self._next_login = 1007303000
        created = int((now() - timedelta(days=200)).timestamp())
        for seeded in SEEDED_CUSTOMERS:
            self.customers[seeded.id] = Customer(seeded.id, seeded.username, seeded.type, seeded.first_name,
                                                 seeded.last_name, created)
            for link in seeded.links:
                self.link_profile(seeded.id, link.institution_id, link.profile, login_id=link.login_id,
                                  first_account_id=link.first_account_id, created=now() - timedelta(days=200))

    def now_epoch(self) -> int:
        return int(self.now().timestamp())

    def token(self, length: int, alphabet: str = "abcdefghijklmnopqrstuvwxyz0123456789") -> str:
        """A random id in the upstream's style (report ids, consumer ids), from the seeded generator."""
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    # --- customers -------------------------------------------------------------------------------------------
    def username_taken(self, username: str) -> bool:
        return any(c.username == username for c in self.customers.values())

    def add_customer(self, username: str, type_: str, first: str | None, last: str | None) -> Customer:
        customer = Customer(str(self._next_customer), username, type_, first, last, self.now_epoch())
        self._next_customer += 1
        self.customers[customer.id] = customer
        return customer

    # --- accounts ----------------------------------------------------------------------------------------------
    def link_profile(self, customer_id: str, institution_id: int, profile_name: str, *, login_id: int | None = None,
                     first_account_id: int | None = None, created: datetime | None = None) -> Consent:
        """An end user approved sharing this profile's accounts at this institution: accounts plus a receipt."""
        created = created or self.now()
        if login_id is None:
            login_id, self._next_login = self._next_login, self._next_login + 1
        profile = PROFILES[profile_name]
        if first_account_id is None:
            first_account_id = self._next_account
            self._next_account += len(profile.accounts)
        consent_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        ids = []
        for offset, template in enumerate(profile.accounts):
            account_id = str(first_account_id + offset)
            numbers = random.Random(f"{self.seed}:account:{account_id}")
            self.accounts[account_id] = Account(
                account_id, customer_id, institution_id, login_id, profile_name, template, consent_id,
                int(created.timestamp()), account_number(numbers), routing_number(numbers), offset + 1)
            ids.append(account_id)
        consent = Consent(consent_id, customer_id, institution_id, login_id, ids, created, created)
        self.consents[consent_id] = consent
        return consent

    def available_accounts(self, customer_id: str) -> list[Account]:
        return [a for a in self.accounts.values()
                if a.customer_id == customer_id and self.consents[a.consent_id].institution_status == "ACTIVE"]

    def account(self, customer_id: str, account_id: str) -> Account | None:
        account = self.accounts.get(account_id)
        if account is None or account.customer_id != customer_id:
            return None
        return account if self.consents[account.consent_id].institution_status == "ACTIVE" else None

    def book(self, account: Account) -> Book:
        """The account's transactions; generated on first use."""
        book = self._books.get(account.id)
        if book is None:
            rows, pending = generate_transactions(
                seed=self.seed, profile=account.profile, template=account.template, account_id=account.id,
                customer_id=account.customer_id, now=self.now())
            settled = [t for t in rows if t["status"] != "pending"]
            book = self._books[account.id] = Book(rows, list(map(date_key, rows)), settled,
                                                  list(map(date_key, settled)), pending)
        return book

    def live_balance(self, account: Account, cache_minutes: int) -> dict[str, Any]:
        """A live balance, or the last live one when it is at most `cache_minutes` old (`balance_cache_interval`)."""
        last = self._live.get(account.id)
        if last is not None and cache_minutes > 0:
            if self.now_epoch() - last["availableBalanceDate"] <= cache_minutes * 60:
                return last
        body = self._live[account.id] = balance_json(self, account, live=True)
        return body

    def revoke(self, consent: Consent, updated_by: str) -> None:
        if consent.status == "INACTIVE":
            return
        consent.status, consent.institution_status = "INACTIVE", "REVOKED"
        consent.updated_by = updated_by
        consent.status_date = self.now()


# --- views: the upstream's JSON shapes ------------------------------------------------------------------------------
def _refreshed(world: World) -> int:
    """When the upstream last aggregated: 06:00 US Eastern today (or now, if that is still ahead)."""
    now = world.now()
    return min(eastern_epoch(eastern_date(now), 6 * 60), int(now.timestamp()))


def _hold(template: AccountTemplate) -> Decimal:
    return (abs(template.balance) % 97).quantize(D("0.01"))


def account_json(world: World, account: Account) -> dict[str, Any]:
    template, refreshed = account.template, _refreshed(world)
    return {
        "id": account.id, "number": account.last4, "accountNumberDisplay": account.last4,
        "realAccountNumberLast4": account.last4, "name": template.name, "accountNickname": template.name,
        "balance": json_number(template.balance), "type": template.type, "aggregationStatusCode": 0,
        "status": account.status, "customerId": account.customer_id, "institutionId": str(account.institution_id),
        "balanceDate": refreshed, "aggregationSuccessDate": refreshed, "aggregationAttemptDate": refreshed,
        "createdDate": account.created, "lastUpdatedDate": refreshed, "marketSegment": "personal", "currency": "USD",
        "institutionLoginId": account.login_id, "displayPosition": account.position,
        "linkedAccountDate": account.created, "detail": _detail(template, refreshed),
        **({"position": _positions(template, refreshed)} if template.type in INVESTMENT_TYPES else {}),
    }


def _detail(template: AccountTemplate, refreshed: int) -> dict[str, Any]:
    balance, day, cents = template.balance, 86_400, D("0.01")
    if template.type in DEPOSIT_TYPES:
        return {"dateAsOf": refreshed, "availableBalanceAmount": json_number(balance - _hold(template)),
                "currentBalance": json_number(balance), "openDate": refreshed - 900 * day,
                "interestYtdAmount": json_number((abs(balance) / 400).quantize(cents))}
    if template.type in LOAN_TYPES:
        owed = -balance
        detail = {"dateAsOf": refreshed, "principalBalance": json_number(owed),
                  "payoffAmount": json_number(owed + D("312.45")),
                  "nextPayment": json_number((owed / 180).quantize(cents)),
                  "nextPaymentDate": refreshed + 12 * day, "interestRate": "6.125", "loanPaymentFreq": "monthly",
                  "initialMlAmount": json_number((owed * D("1.35")).quantize(D("1"))), "paymentsMade": 41,
                  "paymentsRemaining": 139}
        if template.type == "mortgage":
            detail["escrowBalance"] = json_number(D("2345.01"))
        return detail
    if template.type in INVESTMENT_TYPES:
        return {"dateAsOf": refreshed, "availableCashBalance": json_number((balance / 20).quantize(cents)),
                "vestedBalance": json_number(balance), "marginAllowed": False, "cashAccountAllowed": True}
    limit = D("10000")  # credit cards: the balance is what is owed, negative
    return {"dateAsOf": refreshed, "creditMaxAmount": json_number(limit),
            "creditAvailableAmount": json_number(limit + balance), "currentBalance": json_number(-balance),
            "paymentMinAmount": 35, "paymentDueDate": refreshed + 18 * day, "lastPaymentAmount": 250,
            "statementCloseBalance": json_number(-balance - D("118.42")), "lastPaymentDate": refreshed - 13 * day,
            "interestRate": "19.99"}


def _positions(template: AccountTemplate, refreshed: int) -> list[dict[str, Any]]:
    holdings = (("VTI", "VANGUARD TOTAL STOCK MARKET ETF", D("0.60"), D("241.37"), "922908769"),
                ("AAPL", "APPLE INC", D("0.25"), D("189.84"), "037833100"),
                ("BND", "VANGUARD TOTAL BOND MARKET ETF", D("0.15"), D("72.15"), "921937835"))
    out = []
    for index, (symbol, name, share, price, cusip) in enumerate(holdings, start=1):
        units = (template.balance * share / price).quantize(D("0.001"))
        out.append({"id": 454678000 + index, "symbol": symbol, "securityName": name, "units": json_number(units),
                    "currentPrice": json_number(price), "marketValue": json_number((units * price).quantize(D("0.01"))),
                    "securityType": "Stock", "holdType": "INVESTMENT", "posType": "Long", "status": "A",
                    "currentPriceDate": refreshed, "securityId": cusip, "securityIdType": "CUSIP",
                    "securityCurrency": "USD"})
    return out


def balance_json(world: World, account: Account, *, live: bool) -> dict[str, Any]:
    """Cached: as of the last aggregation. Live: now, with the pending transactions applied."""
    available = account.template.balance - _hold(account.template)
    when = _refreshed(world)
    if live:
        available += world.book(account).pending_total
        when = world.now_epoch()
    return {"id": int(account.id), "realAccountNumberLast4": account.last4, "availableBalance": json_number(available),
            "availableBalanceDate": when, "clearedBalance": json_number(account.template.balance),
            "clearedBalanceDate": when, "aggregationStatusCode": 0, "currency": "USD"}


def owner_json(account: Account) -> dict[str, Any]:
    owner = PROFILES[account.profile].owner
    full = " ".join(p for p in (owner.first, owner.middle, owner.last) if p)
    return {"holders": [{
        "relationship": "PRIMARY", "ownerName": full.upper(), "firstName": owner.first,
        **({"middleName": owner.middle} if owner.middle else {}), "lastName": owner.last,
        # The spec requires this spelling (its property list spells it nameClassificationconfidencescore).
        "nameClassification": "person", "nameClassificationConfidenceScore": 0.98,
        "addresses": [{"ownerAddress": f"{owner.line1} {owner.city} {owner.state} {owner.postal_code}", "type": "Home",
                       "line1": owner.line1, "city": owner.city, "state": owner.state,
                       "postalCode": owner.postal_code, "country": "USA"}],
        "emails": [{"isPrimary": True, "email": owner.email, "emailType": "Personal"}],
        "phones": [{"type": "CELL", "country": "1", "phone": owner.phone}],
    }]}


def consent_json(world: World, consent: Consent) -> dict[str, Any]:
    start, end = iso(consent.created), iso(consent.created + timedelta(days=365))
    institution = INSTITUTIONS[consent.institution_id]
    account_status = "ACTIVE" if consent.institution_status == "ACTIVE" else "INACTIVE"
    accounts = [world.accounts[i] for i in consent.account_ids]
    arrangement: dict[str, Any] = {
        "institutionId": str(institution.id), "institutionLoginId": str(consent.login_id),
        "institutionName": institution.name,
        "accounts": [{"id": a.id, "realAccountNumberLast4": a.last4, "type": a.template.type,
                      "name": a.template.name, "status": account_status} for a in accounts],
        "createdDate": iso(consent.created),
        "dataHandling": {"postUsageStorage": "deIdentification", "statement": "To improve the service"},
        "statusDetails": {"status": consent.institution_status, "statusDate": iso(consent.status_date)},
        "accessPeriod": {"startDate": start, "endDate": end}, "isBusinessConsumerStatement": "false",
        "accountOwnerCategory": "INDIVIDUAL", "dataScopes": [dict(s) for s in DATA_SCOPES],
    }
    if consent.updated_by:
        arrangement["lastUpdatedBy"] = consent.updated_by
    return {
        "consentReceiptId": consent.id, "receiptVersion": 2 if consent.updated_by else 1,
        "customerId": consent.customer_id, "customerCategory": "INDIVIDUAL", "purpose": CONSENT_PURPOSE,
        "purposeStatement": "to show your accounts and transactions in one place", "partnerId": world.partner_id,
        "context": "partner", "allowedTrnxHistoryInDays": 365, "createdDate": iso(consent.created),
        "statusDetails": {"status": consent.status, "statusDate": iso(consent.status_date)},
        "institutions": [arrangement], "accessPeriod": {"startDate": start, "endDate": end},
    }
