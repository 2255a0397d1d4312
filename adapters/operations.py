"""What adapter operations take and give back, beside the canonical models: the inputs the API layer builds from a
validated request, and the updates, links and events an adapter answers with. Plain frozen records, no behaviour."""
from __future__ import annotations

from datetime import date
from typing import Any

import attrs

from gateway.ids import IdMinter
from gateway.models import ConsentStatus, CustomerType, PostalAddress, ReportStatus
from gateway.models.payments import Creditor, PaymentAccount, PaymentStatus


@attrs.frozen(slots=True)
class CallContext:
    """Who is calling and how to name what comes back."""
    request_id: str
    tenant: str
    id_key: bytes
    # What the caller said about the end user behind the call: ip, auth_date (RFC 7231 date), agent.
    end_user: dict[str, str] = attrs.field(factory=dict)

    def ids(self, consent_id: str) -> IdMinter:
        return IdMinter(self.id_key, self.tenant, consent_id)


@attrs.frozen(slots=True)
class CreateCustomerInput:
    external_ref: str
    type: CustomerType
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    category: str = "individual"  # "individual" | "business"
    abn: str | None = None  # Australian Business Number, for business customers in AU


@attrs.frozen(slots=True)
class CreatedCustomer:
    provider_ref: str
    created_at: Any  # datetime


@attrs.frozen(slots=True)
class CreateConsentInput:
    redirect_uri: str
    institution_id: str | None = None
    permissions: tuple[str, ...] = ()
    language: str | None = None
    # The upstream reference of an earlier consent of the same end user, when connecting them again.
    previous_provider_ref: str | None = None
    # The consent's own limits, where the provider records them (OB: ExpirationDateTime, the transaction window).
    expires_at: Any = None  # datetime | None
    transactions_from: date | None = None
    transactions_to: date | None = None


@attrs.frozen(slots=True)
class ConsentUpdate:
    """What an adapter learned upstream about a consent."""
    status: ConsentStatus
    provider_ref: str | None = None
    expires_at: Any = None  # datetime | None
    reason: str | None = None
    upstream: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class ConnectionProblem:
    """The end user's institution could not be reached or refused them (canonical event `connection.error`)."""
    code: str  # the provider's own code or event type, e.g. "unableToConnect", "938"
    message: str  # what went wrong, in words a product team can show or log (no personal data)
    retryable: bool  # True when trying again later may work without the end user doing anything different


@attrs.frozen(slots=True)
class InboundEvent:
    """A provider webhook, verified and read by its adapter."""
    event_id: str
    type: str  # the provider's own event type
    provider_ref: str  # the upstream reference that names the consent (customer id, consent receipt id, …)
    payload: dict[str, Any]
    consent_status: ConsentStatus | None = None  # what the event means for the consent, if anything
    reason: str | None = None
    # How `provider_ref` names the consent: "consent" (its provider_ref) or "customer" (the upstream customer id:
    # the event is about that customer's newest consent still awaiting authorisation).
    ref_kind: str = "consent"
    # A consent authorised by the event, with what the adapter learned upstream (overrides consent_status).
    consent_update: ConsentUpdate | None = None
    # Upstream account ids the consent no longer covers: everything stored from them is deleted (CDR duty).
    forget_account_refs: tuple[str, ...] = ()
    # A report the event is about, and its new state.
    report_ref: str | None = None
    report_status: ReportStatus | None = None
    # The end user added accounts under the consent (canonical event `accounts.added`); the upstream account ids
    # when the event lists them.
    accounts_added: bool = False
    added_account_refs: tuple[str, ...] = ()
    # Connecting to the institution failed (canonical event `connection.error`).
    connection_error: ConnectionProblem | None = None
    # A payment the event is about, by its upstream payment id: the gateway reads its status from the provider at
    # once (the event says it changed; the provider's status read says to what).
    payment_ref: str | None = None


@attrs.frozen(slots=True)
class CreateConsumerInput:
    """The person a provider's reports are about (the platform's "consumer", one per customer)."""
    first_name: str
    last_name: str
    email: str | None = None
    phone: str | None = None
    birth_date: date | None = attrs.field(default=None, repr=False)
    ssn: str | None = attrs.field(default=None, repr=False)  # nine digits (US)
    address: PostalAddress | None = attrs.field(default=None, repr=False)


@attrs.frozen(slots=True)
class CreateReportInput:
    type: str  # "voa" | "voi" | "cash_flow"
    interval_types: tuple[str, ...] = ()
    from_date: date | None = None
    account_refs: tuple[str, ...] = ()  # upstream ids of the accounts to report on; empty = all the consent covers
    callback_url: str | None = None


@attrs.frozen(slots=True)
class ReportUpdate:
    status: ReportStatus
    reason: str | None = None


@attrs.frozen(slots=True)
class ReportContent:
    media_type: str
    body: bytes


@attrs.frozen(slots=True)
class RegisterApplicationInput:
    access_model: str
    fields: dict[str, str]  # the canonical field names the access model requires or allows


@attrs.frozen(slots=True)
class PaymentInput:
    """A payment order, validated by the canonical checks, for the provider's own rules and its consent."""
    type: str  # domestic | sepa | international
    amount: Any  # Decimal, > 0, within the currency's minor units
    currency: str
    creditor: Creditor
    reference: str
    end_to_end_id: str
    instruction_id: str
    redirect_uri: str
    debtor_account: PaymentAccount | None = None
    institution_id: str | None = None  # the payer's bank, where the provider reaches many
    debtor_name: str | None = None
    # Sent upstream as the provider's idempotency key: derived from the tenant and the caller's key, so a retry
    # after a crash or a timeout reaches the provider as the same request.
    idempotency_key: str | None = None


@attrs.frozen(slots=True)
class PaymentLink:
    """A payment consent made upstream: where the payer authorises it."""
    url: str
    consent_ref: str
    expires_at: Any = None  # datetime | None
    upstream: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class PaymentUpdate:
    """What an adapter learned upstream about a payment."""
    status: PaymentStatus
    upstream_status: str | None = None
    provider_ref: str | None = None  # the upstream payment, once it exists
    reason: str | None = None
    upstream: dict[str, Any] = attrs.field(factory=dict)  # adapter-private facts to keep with the payment


@attrs.frozen(slots=True)
class TransactionQuery:
    from_date: date
    to_date: date
    limit: int
    include_pending: bool = True
    include_removed: bool = False
    position: dict[str, Any] | None = None  # adapter-private, from a previous Page.next_position


@attrs.frozen(slots=True)
class InstitutionQuery:
    search: str | None = None
    country: str | None = None
    limit: int = 25
    position: dict[str, Any] | None = None
