"""Canonical payments: one status vocabulary and one shape, whatever the provider behind them."""
from __future__ import annotations

import enum
from datetime import datetime

import attrs

from gateway.models.money import Money
from gateway.models.resources import PostalAddress


class PaymentStatus(str, enum.Enum):
    AWAITING_AUTHORISATION = "awaiting_authorisation"  # the payer has not yet approved it at their bank
    AUTHORISED = "authorised"  # approved, not yet submitted
    SUBMITTED = "submitted"  # the bank has received the payment order
    PENDING = "pending"  # the bank accepted it; settlement is under way
    COMPLETED = "completed"  # settled
    REJECTED = "rejected"  # the payer or the bank refused it
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # never authorised or submitted in time
    UNKNOWN = "unknown"  # a submission's outcome could not be learned; reconciliation asks the bank

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({PaymentStatus.COMPLETED, PaymentStatus.REJECTED, PaymentStatus.CANCELLED,
                    PaymentStatus.EXPIRED})

PAYMENT_TYPES = ("domestic", "sepa", "international")
ACCOUNT_SCHEMES = ("uk_sort_code", "iban", "wallet")


@attrs.frozen(slots=True)
class PaymentAccount:
    """Where money comes from or goes: `scheme` says which of the other fields are set."""
    scheme: str  # uk_sort_code | iban | wallet
    sort_code: str | None = None
    account_number: str | None = None
    iban: str | None = None
    bic: str | None = None
    wallet_id: str | None = None  # a provider's own account id (a Stripe account, acct_…)
    secondary_identification: str | None = None  # e.g. a building society roll number


@attrs.frozen(slots=True)
class Creditor:
    name: str
    account: PaymentAccount
    address: PostalAddress | None = None  # cross-border payments need the creditor's country and town


@attrs.frozen(slots=True)
class PaymentTransition:
    """One recorded change of a payment's status."""
    status: PaymentStatus
    at: datetime
    previous: PaymentStatus | None = None
    upstream_status: str | None = None
    reason: str | None = None


@attrs.frozen(slots=True)
class Payment:
    id: str
    provider: str
    type: str
    status: PaymentStatus
    amount: Money
    creditor: Creditor
    reference: str
    end_to_end_id: str
    created_at: datetime
    updated_at: datetime
    debtor_account: PaymentAccount | None = None
    redirect_uri: str | None = None
    authorisation_url: str | None = None
    consent_ref: str | None = None  # the provider's payment consent
    provider_ref: str | None = None  # the provider's payment, once submitted
    upstream_status: str | None = None
    status_reason: str | None = None
    customer_id: str | None = None
    institution_id: str | None = None  # the payer's bank, where the provider is a hub of many (ob-connect)
    debtor_name: str | None = None
    live: bool = False  # moves real money (an environment marked live)
    history: tuple[PaymentTransition, ...] = ()


@attrs.frozen(slots=True)
class FundsConfirmation:
    payment_id: str
    funds_available: bool
    checked_at: datetime
