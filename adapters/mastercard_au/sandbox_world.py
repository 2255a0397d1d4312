"""The AU simulator's mutable state: applications, customers, linked accounts, CDR consent receipts with their
institution arrangements, Connect links and dashboards, notification subscriptions, consumers and reports.

Handlers change the world only through these methods and read it through `sandbox_views`. An account is visible
while its arrangement is ACTIVE; revoking or expiring the arrangement (or the whole receipt) hides it from every
account call.
"""
from __future__ import annotations

import random
import string
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import attrs

from adapters.mastercard_au.sandbox_data import (
    FIRST_NEW_ACCOUNT, FIRST_NEW_CUSTOMER, FIRST_NEW_LOGIN, INSTITUTIONS, PROFILES, SEEDED_APPLICATION_ID,
    SEEDED_CUSTOMERS, AccountTemplate, account_number, bsb,
)
from adapters.mastercard_au.sandbox_ledger import generate_transactions
from adapters.mastercard_us.sandbox_world import Book, date_key

ACCESS_DAYS = 365  # a receipt's access period


@attrs.define
class Application:
    id: str
    fields: dict[str, str]
    access_model: str
    created: int
    status: str = "Pending"  # Pending | Approved | Rejected


@attrs.define
class Customer:
    id: str
    username: str
    type: str  # "testing" | "active"
    fields: dict[str, str]  # firstName, lastName, email, phone, applicationId as sent
    category: str  # INDIVIDUAL | BUSINESS
    abn: str | None
    created: int


@attrs.define
class Account:
    id: str
    customer_id: str
    institution_id: int
    login_id: int
    profile: str
    template: AccountTemplate
    receipt_id: str
    created: int
    number: str
    bsb: str
    position: int
    error_code: str | None = None  # an injected aggregation status code

    @property
    def last4(self) -> str:
        return self.number[-4:]


@attrs.define
class Arrangement:
    """The part of a receipt about one institution login."""
    institution_id: int
    login_id: int
    profile: str
    account_ids: list[str]
    created: datetime
    status_date: datetime
    status: str = "ACTIVE"  # ACTIVE | REVOKED | EXPIRED
    updated_by: str | None = None

    @property
    def scopes(self) -> tuple[str, ...]:
        return PROFILES[self.profile].scopes


@attrs.define
class Receipt:
    id: str
    customer_id: str
    created: datetime
    end: datetime
    status_date: datetime
    scopes: tuple[str, ...]
    arrangements: list[Arrangement] = attrs.Factory(list)
    status: str = "ACTIVE"  # ACTIVE | REVOKED | EXPIRED
    version: int = 1

    def arrangement(self, login_id: int) -> Arrangement | None:
        return next((a for a in self.arrangements if a.login_id == login_id), None)

    def active(self) -> list[Arrangement]:
        return [a for a in self.arrangements if a.status == "ACTIVE"]


@attrs.define
class Link:
    id: str
    customer_id: str
    kind: str  # "full" | "lite"
    institution_id: int | None
    redirect_uri: str | None
    webhook: dict[str, Any] | None  # url, data, headers
    expires_at: float  # monotonic
    receipt_id: str | None = None  # the receipt this link's approvals build


@attrs.define
class Dashboard:
    id: str
    customer_id: str
    receipt_id: str | None
    redirect_uri: str | None
    expires_at: float  # monotonic


@attrs.define
class Subscription:
    id: str
    url: str
    signing_key: str
    created: datetime
    updated: datetime


@attrs.define
class Consumer:
    id: str
    customer_id: str
    fields: dict[str, Any]
    created: int


@attrs.define
class Report:
    id: str
    request_id: str
    customer_id: str
    consumer_id: str
    type: str  # voa | voi | cfrb
    created: int
    constraints: dict[str, Any]
    account_ids: list[str]
    callback_url: str | None
    status: str = "inProgress"  # inProgress | success | failure
    document: dict[str, Any] | None = None


class World:
    def __init__(self, *, seed: int, partner_id: str, now: Callable[[], datetime]) -> None:
        self.seed = seed
        self.partner_id = partner_id
        self.now = now
        self.rng = random.Random(seed)
        self.applications: dict[str, Application] = {}
        self.customers: dict[str, Customer] = {}
        self.accounts: dict[str, Account] = {}
        self.receipts: dict[str, Receipt] = {}
        self.links: dict[str, Link] = {}
        self.dashboards: dict[str, Dashboard] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.consumers: dict[str, Consumer] = {}  # by customer id
        self.reports: dict[str, Report] = {}
        self._books: dict[str, Book] = {}
        self._next_customer = FIRST_NEW_CUSTOMER
        self._next_account = FIRST_NEW_ACCOUNT
        self._next_login = FIRST_NEW_LOGIN
        self._next_application = int(SEEDED_APPLICATION_ID) + 1
        then = now() - timedelta(days=200)
        self.applications[SEEDED_APPLICATION_ID] = Application(
            SEEDED_APPLICATION_ID, {"appName": "Sandbox Budget Buddy"}, "CDR_REPRESENTATIVE", int(then.timestamp()),
            "Approved")
        for seeded in SEEDED_CUSTOMERS:
            self.customers[seeded.id] = Customer(
                seeded.id, seeded.username, seeded.type,
                {"firstName": seeded.first_name, "lastName": seeded.last_name, "applicationId": SEEDED_APPLICATION_ID},
                seeded.category, seeded.abn, int(then.timestamp()))
            for link in seeded.links:
                receipt = self.new_receipt(seeded.id, link.profile, created=then)
                self.add_arrangement(receipt, link.institution_id, link.profile, login_id=link.login_id,
                                     first_account_id=link.first_account_id, created=then)

    def now_epoch(self) -> int:
        return int(self.now().timestamp())

    def token(self, length: int, alphabet: str = string.ascii_lowercase + string.digits) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # --- applications and customers ------------------------------------------------------------------------------
    def add_application(self, fields: dict[str, str], access_model: str) -> Application:
        application = Application(str(self._next_application), fields, access_model, self.now_epoch())
        self._next_application += 1
        self.applications[application.id] = application
        return application

    def username_taken(self, username: str) -> bool:
        return any(c.username == username for c in self.customers.values())

    def add_customer(self, username: str, type_: str, fields: dict[str, str], category: str,
                     abn: str | None) -> Customer:
        customer = Customer(str(self._next_customer), username, type_, fields, category, abn, self.now_epoch())
        self._next_customer += 1
        self.customers[customer.id] = customer
        return customer

    # --- consent receipts ---------------------------------------------------------------------------------------
    def new_receipt(self, customer_id: str, profile: str, *, created: datetime | None = None) -> Receipt:
        created = created or self.now()
        receipt = Receipt(self.uuid(), customer_id, created, created + timedelta(days=ACCESS_DAYS), created,
                          PROFILES[profile].scopes)
        self.receipts[receipt.id] = receipt
        return receipt

    def add_arrangement(self, receipt: Receipt, institution_id: int, profile_name: str, *,
                        login_id: int | None = None, first_account_id: int | None = None,
                        created: datetime | None = None) -> Arrangement:
        """The end user approved sharing this profile's accounts at this institution under `receipt`."""
        created = created or self.now()
        if login_id is None:
            login_id, self._next_login = self._next_login, self._next_login + 1
        profile = PROFILES[profile_name]
        if first_account_id is None:
            first_account_id = self._next_account
            self._next_account += len(profile.accounts)
        institution = INSTITUTIONS[institution_id]
        ids = []
        for offset, template in enumerate(profile.accounts):
            account_id = str(first_account_id + offset)
            numbers = random.Random(f"{self.seed}:account:{account_id}")
            self.accounts[account_id] = Account(
                account_id, receipt.customer_id, institution_id, login_id, profile_name, template, receipt.id,
                int(created.timestamp()), account_number(numbers), bsb(institution, profile.owner.state, numbers),
                offset + 1)
            ids.append(account_id)
        arrangement = Arrangement(institution_id, login_id, profile_name, ids, created, created)
        receipt.arrangements.append(arrangement)
        if len(receipt.arrangements) > 1:
            receipt.version += 1
        return arrangement

    def end_arrangements(self, receipt: Receipt, arrangements: list[Arrangement], status: str,
                         updated_by: str) -> list[Arrangement]:
        """Revoke (REVOKED) or expire (EXPIRED) these arrangements; the receipt follows when none is left active.
        Returns the arrangements that changed."""
        now = self.now()
        changed = [a for a in arrangements if a.status == "ACTIVE"]
        for arrangement in changed:
            arrangement.status, arrangement.status_date, arrangement.updated_by = status, now, updated_by
        if changed:
            receipt.version += 1
        if receipt.status == "ACTIVE" and not receipt.active():
            receipt.status, receipt.status_date = status, now
            if status == "EXPIRED":
                receipt.end = now
        return changed

    def receipt_for_account(self, account: Account) -> tuple[Receipt, Arrangement]:
        receipt = self.receipts[account.receipt_id]
        arrangement = receipt.arrangement(account.login_id)
        assert arrangement is not None
        return receipt, arrangement

    # --- accounts -----------------------------------------------------------------------------------------------
    def _visible(self, account: Account) -> bool:
        return self.receipt_for_account(account)[1].status == "ACTIVE"

    def available_accounts(self, customer_id: str) -> list[Account]:
        return [a for a in self.accounts.values() if a.customer_id == customer_id and self._visible(a)]

    def account(self, customer_id: str, account_id: str) -> Account | None:
        account = self.accounts.get(account_id)
        if account is None or account.customer_id != customer_id or not self._visible(account):
            return None
        return account

    def book(self, account: Account) -> Book:
        """The account's transactions; generated on first use."""
        book = self._books.get(account.id)
        if book is None:
            rows, pending = generate_transactions(
                seed=self.seed, profile=PROFILES[account.profile], template=account.template, account_id=account.id,
                customer_id=account.customer_id, now=self.now())
            settled = [t for t in rows if t["status"] != "pending"]
            book = self._books[account.id] = Book(rows, list(map(date_key, rows)), settled,
                                                  list(map(date_key, settled)), pending)
        return book
