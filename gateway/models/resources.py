"""Canonical resources. They know nothing about providers: adapters build them in translate.py.

Every resource keeps `provider_ref` (the upstream id) and, where useful, `extra` with provider-specific fields that
have no canonical home, so nothing the upstream said is lost to a caller who needs it.
"""
from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any, Generic, TypeVar

import attrs

from gateway.models.money import Money

T = TypeVar("T")


class CustomerType(str, enum.Enum):
    TESTING = "testing"
    ACTIVE = "active"


class CustomerCategory(str, enum.Enum):
    INDIVIDUAL = "individual"
    BUSINESS = "business"


class ConsentStatus(str, enum.Enum):
    AWAITING_AUTHORISATION = "awaiting_authorisation"
    AUTHORISED = "authorised"
    REJECTED = "rejected"
    REVOKED = "revoked"
    EXPIRED = "expired"
    REAUTHENTICATION_REQUIRED = "reauthentication_required"

    @property
    def is_final(self) -> bool:
        return self in (ConsentStatus.REJECTED, ConsentStatus.REVOKED, ConsentStatus.EXPIRED)


class ReportStatus(str, enum.Enum):
    PENDING = "pending"  # the provider is still generating it
    READY = "ready"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self is not ReportStatus.PENDING


class AccountType(str, enum.Enum):
    CHECKING = "checking"
    SAVINGS = "savings"
    CREDIT_CARD = "credit_card"
    LOAN = "loan"
    MORTGAGE = "mortgage"
    INVESTMENT = "investment"
    RETIREMENT = "retirement"
    OTHER = "other"


class BalanceType(str, enum.Enum):
    AVAILABLE = "available"
    CURRENT = "current"


class TransactionStatus(str, enum.Enum):
    BOOKED = "booked"
    PENDING = "pending"
    REMOVED = "removed"  # seen upstream earlier, gone now (Finicity "shadow")


@attrs.frozen(slots=True)
class Institution:
    id: str
    provider: str
    provider_ref: str
    name: str
    country: str
    url: str | None = None
    capabilities: tuple[str, ...] = ()


@attrs.frozen(slots=True)
class Customer:
    id: str
    provider: str
    provider_ref: str
    type: CustomerType
    external_ref: str
    created_at: datetime
    category: CustomerCategory = CustomerCategory.INDIVIDUAL
    abn: str | None = None
    consumer_ref: str | None = None  # the provider's consumer record, once created (reports need it)


@attrs.frozen(slots=True)
class ConnectLink:
    """What an adapter returns when it starts an authorisation: where to send the end user."""
    url: str
    provider_ref: str | None = None
    expires_at: datetime | None = None


@attrs.frozen(slots=True)
class ConsentInstitution:
    institution_id: str
    login_ref: str  # the provider's institution login id: name it to revoke this arrangement alone
    status: str  # active | revoked | expired
    name: str | None = None


@attrs.frozen(slots=True)
class ConsentTerms:
    purpose: str | None = None
    data_scopes: tuple[str, ...] = ()
    access_from: datetime | None = None
    access_until: datetime | None = None
    transactions_from: date | None = None
    institutions: tuple[ConsentInstitution, ...] = ()


@attrs.frozen(slots=True)
class Report:
    id: str
    provider: str
    customer_id: str
    consent_id: str
    type: str
    status: ReportStatus
    created_at: datetime
    updated_at: datetime
    provider_ref: str
    interval_types: tuple[str, ...] = ()
    status_reason: str | None = None


@attrs.frozen(slots=True)
class Application:
    id: str
    provider: str
    provider_ref: str
    access_model: str
    name: str
    status: str
    created_at: datetime
    updated_at: datetime


@attrs.frozen(slots=True)
class Consent:
    id: str
    provider: str
    customer_id: str | None
    status: ConsentStatus
    created_at: datetime
    provider_ref: str | None = None
    authorisation_url: str | None = None
    redirect_uri: str | None = None
    institution_id: str | None = None
    permissions: tuple[str, ...] = ()
    authorised_at: datetime | None = None
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    status_reason: str | None = None
    # What the end user agreed to, where the provider records it (CDR consents): purpose, data scopes, access
    # period, how far back transactions may be read, and the institutions under the consent.
    terms: ConsentTerms | None = None


@attrs.frozen(slots=True)
class Account:
    id: str
    provider: str
    provider_ref: str
    consent_id: str
    name: str
    type: AccountType
    currency: str
    masked_number: str | None = None
    institution_id: str | None = None
    status: str = "active"
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class Balance:
    account_id: str
    type: BalanceType
    amount: Money
    as_of: datetime | None
    live: bool = False


@attrs.define(slots=True)
class Transaction:
    """One transaction. Not frozen, unlike the other models: pages carry hundreds of them and attrs' frozen
    __init__ costs three times a plain one on that hot path. Treat it as immutable all the same."""

    id: str
    account_id: str
    provider_ref: str
    amount: Money
    status: TransactionStatus
    description: str
    booked_at: datetime | None = None
    transaction_date: date | None = None
    category: str | None = None
    memo: str | None = None
    check_number: str | None = None


@attrs.frozen(slots=True)
class PaymentCoordinates:
    """How to pay into an account. `scheme` tells which fields are set."""
    scheme: str  # us_ach | au_bsb | uk_sort_code | iban | wallet
    account_number: str | None = None
    routing_number: str | None = None
    wire_routing_number: str | None = None
    bsb: str | None = None
    sort_code: str | None = None
    iban: str | None = None
    bic: str | None = None


@attrs.frozen(slots=True)
class AccountDetails:
    account_id: str
    coordinates: tuple[PaymentCoordinates, ...]


@attrs.frozen(slots=True)
class PostalAddress:
    lines: tuple[str, ...] = ()
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None


@attrs.frozen(slots=True)
class Owner:
    account_id: str
    names: tuple[str, ...]
    addresses: tuple[PostalAddress, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()


@attrs.frozen(slots=True)
class StandingOrder:
    """A recurring payment set up on an account (read-only: the gateway does not create or change them)."""
    id: str
    account_id: str
    provider_ref: str
    frequency: str  # the provider's own expression, e.g. ISO 20022 "MNTH" or OB "EvryDay"
    amount: Money  # the next (or recurring) payment, negative: money out
    creditor_name: str | None = None
    creditor_account: str | None = None  # the creditor's identification as the bank shows it (IBAN, sort code …)
    reference: str | None = None
    first_payment_date: date | None = None
    next_payment_date: date | None = None
    final_payment_date: date | None = None
    status: str = "active"


@attrs.frozen(slots=True)
class Page(Generic[T]):
    """One page of a list. `next_position` is adapter-private; the API wraps it in a signed cursor."""
    data: tuple[T, ...]
    next_position: dict[str, Any] | None = None
