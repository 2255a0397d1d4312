"""What the gateway stores: only what it needs to serve a consent, each record bound to its tenant."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from gateway.models import ConsentStatus, CustomerType, PaymentStatus, ReportStatus


@attrs.define(slots=True)
class CustomerRecord:
    id: str
    tenant: str
    provider: str
    provider_ref: str
    type: CustomerType
    external_ref: str
    created_at: datetime
    category: str = "individual"
    abn: str | None = None
    consumer_ref: str | None = None


@attrs.define(slots=True)
class ConsentRecord:
    id: str
    tenant: str
    provider: str
    customer_id: str | None
    status: ConsentStatus
    created_at: datetime
    updated_at: datetime
    provider_ref: str | None = None
    authorisation_url: str | None = None
    redirect_uri: str | None = None
    institution_id: str | None = None
    permissions: tuple[str, ...] = ()
    authorised_at: datetime | None = None
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    status_reason: str | None = None
    # Adapter-private upstream facts (e.g. the upstream customer id), never shown to callers.
    upstream: dict[str, Any] = attrs.field(factory=dict)

    def set_status(self, status: ConsentStatus, reason: str | None, now: datetime) -> None:
        """Move to `status`, stamping when it happened (the store write is the caller's)."""
        self.status = status
        self.status_reason = reason
        self.updated_at = now
        if status is ConsentStatus.AUTHORISED:
            self.authorised_at = now
        elif status is ConsentStatus.REVOKED:
            self.revoked_at = now


@attrs.define(slots=True)
class AccountRecord:
    """Maps a gateway account id to its upstream reference under one consent."""
    id: str
    tenant: str
    provider: str
    consent_id: str
    provider_ref: str
    created_at: datetime
    data: dict[str, Any] = attrs.field(factory=dict)


@attrs.define(slots=True)
class InboundEventRecord:
    """A provider webhook as received: kept once per (provider, event_id), the source of canonical events."""
    provider: str
    event_id: str
    type: str
    received_at: datetime
    payload: dict[str, Any]
    tenant: str | None = None
    consent_id: str | None = None


@attrs.define(slots=True)
class ReportRecord:
    """A report asked of a provider for a customer, under the consent that allowed it."""
    id: str
    tenant: str
    provider: str
    customer_id: str
    consent_id: str
    type: str
    status: ReportStatus
    provider_ref: str
    created_at: datetime
    updated_at: datetime
    interval_types: tuple[str, ...] = ()
    status_reason: str | None = None


@attrs.define(slots=True)
class ApplicationRecord:
    """An application registered with a provider (the CDR requires one per product); owned by a tenant."""
    id: str
    tenant: str
    provider: str
    provider_ref: str
    access_model: str
    name: str
    status: str
    created_at: datetime
    updated_at: datetime


@attrs.define(slots=True)
class PaymentRecord:
    """A payment and where it stands. `request` is the canonical order as the caller gave it (creditor, debtor
    account, reference, …); `upstream` is adapter-private (the consent's state and nonce, sealed tokens, the exact
    body submitted), never shown to callers."""
    id: str
    tenant: str
    provider: str
    type: str
    status: PaymentStatus
    amount: Decimal
    currency: str
    request: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    consent_ref: str | None = None
    provider_ref: str | None = None
    authorisation_url: str | None = None
    redirect_uri: str | None = None
    upstream_status: str | None = None
    status_reason: str | None = None
    customer_id: str | None = None
    live: bool = False
    upstream: dict[str, Any] = attrs.field(factory=dict)
    # Reconciliation: when the worker looks next, and how many times it has looked.
    next_check_at: datetime | None = None
    check_attempts: int = 0
    version: int = 0  # bumped on every write; a write that expected another version is refused


@attrs.define(slots=True)
class IdempotencyRecord:
    """A caller's Idempotency-Key: claimed before anything happens, holding the first response once done."""
    tenant: str
    key: str
    fingerprint: str  # hash of the canonical request
    state: str  # "in_progress" | "done"
    owner: str  # who holds an in-progress claim (one request)
    lease_until: datetime  # an in-progress claim past this is abandoned (its process died)
    created_at: datetime
    expires_at: datetime
    status: int | None = None
    content_type: str | None = None
    body: bytes | None = None


@attrs.frozen(slots=True)
class IdempotentResponse:
    """What to keep under a key, written in the same transaction as the resource it describes."""
    tenant: str
    key: str
    owner: str
    status: int
    content_type: str
    body: bytes
