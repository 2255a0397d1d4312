"""What the gateway stores: only what it needs to serve a consent, each record bound to its tenant."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from gateway.models import ConsentStatus, CustomerType, ReportStatus


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
