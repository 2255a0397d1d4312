"""Canonical events: what product teams are told happened, built from the state change that made it happen.

The store writes an event in the same transaction as the change it describes (a consent's new status, a report
finished, a payment's transition, an inbound webhook's effect), using the builders here, so neither exists
without the other. An event carries ids and statuses, never account data or personal data: a consent revoked
later must not leave its data behind in events.

Every event has an ordering key (the consent or payment it is about): subscribers that ask for ordering receive a
key's events one after another, in the order they happened.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from gateway.ids import new_id
from gateway.models import ConsentStatus, ReportStatus
from gateway.models.payments import PaymentTransition
from gateway.models.time import rfc3339, utcnow
from gateway.store.records import ConsentRecord, PaymentRecord, ReportRecord

CONSENT_AUTHORISED = "consent.authorised"
CONSENT_REVOKED = "consent.revoked"
CONSENT_EXPIRED = "consent.expired"
CONSENT_EXPIRING = "consent.expiring"
CONSENT_REJECTED = "consent.rejected"
CONSENT_REAUTHENTICATION_REQUIRED = "consent.reauthentication_required"
ACCOUNTS_ADDED = "accounts.added"
ACCOUNTS_REMOVED = "accounts.removed"
REPORT_COMPLETED = "report.completed"
REPORT_FAILED = "report.failed"
PAYMENT_STATUS_CHANGED = "payment.status_changed"
CONNECTION_ERROR = "connection.error"

EVENT_TYPES: tuple[str, ...] = (
    CONSENT_AUTHORISED, CONSENT_REVOKED, CONSENT_EXPIRED, CONSENT_EXPIRING, CONSENT_REJECTED,
    CONSENT_REAUTHENTICATION_REQUIRED, ACCOUNTS_ADDED, ACCOUNTS_REMOVED, REPORT_COMPLETED, REPORT_FAILED,
    PAYMENT_STATUS_CHANGED, CONNECTION_ERROR,
)

_CONSENT_EVENT: dict[ConsentStatus, str] = {
    ConsentStatus.AUTHORISED: CONSENT_AUTHORISED,
    ConsentStatus.REVOKED: CONSENT_REVOKED,
    ConsentStatus.EXPIRED: CONSENT_EXPIRED,
    ConsentStatus.REJECTED: CONSENT_REJECTED,
    ConsentStatus.REAUTHENTICATION_REQUIRED: CONSENT_REAUTHENTICATION_REQUIRED,
}


@attrs.define
class EventRecord:
    """One canonical event of one tenant. `seq` is given by the store: it orders all events for catching up."""
    tenant: str
    id: str
    type: str
    created_at: datetime
    subject_type: str  # consent | payment | report
    subject_id: str
    order_key: str  # events with one key are delivered in order to subscribers that ask for it
    data: dict[str, Any]
    seq: int = 0

    def body(self) -> dict[str, Any]:
        """The event as product teams receive it (webhook payload and GET /v1/events item): the Standard Webhooks
        payload shape (type, timestamp, data) with the event's id."""
        return {"id": self.id, "type": self.type, "timestamp": iso(self.created_at), "data": self.data}


def iso(value: datetime | None) -> str | None:
    return rfc3339(value) if value is not None else None


def _event(tenant: str, type_: str, subject_type: str, subject_id: str, order_key: str, data: dict[str, Any],
           at: datetime | None = None) -> EventRecord:
    return EventRecord(tenant=tenant, id=new_id("evt"), type=type_, created_at=at or utcnow(),
                       subject_type=subject_type, subject_id=subject_id, order_key=order_key, data=data)


def consent_data(consent: ConsentRecord) -> dict[str, Any]:
    return {
        "consent": {
            "id": consent.id, "provider": consent.provider, "customer_id": consent.customer_id,
            "status": consent.status.value, "status_reason": consent.status_reason,
            "institution_id": consent.institution_id, "permissions": list(consent.permissions),
            "authorised_at": iso(consent.authorised_at), "revoked_at": iso(consent.revoked_at),
            "expires_at": iso(consent.expires_at),
        },
    }


def consent_changed(consent: ConsentRecord, previous: ConsentStatus | None) -> list[EventRecord]:
    """The event a consent's move from `previous` to its status means, if any."""
    if previous is consent.status:
        return []
    type_ = _CONSENT_EVENT.get(consent.status)
    if type_ is None:
        return []
    data = consent_data(consent)
    data["previous_status"] = previous.value if previous is not None else None
    return [_event(consent.tenant, type_, "consent", consent.id, consent.id, data, consent.updated_at)]


def consent_expiring(consent: ConsentRecord) -> EventRecord:
    return _event(consent.tenant, CONSENT_EXPIRING, "consent", consent.id, consent.id, consent_data(consent))


def accounts_added(consent: ConsentRecord, account_ids: list[str]) -> EventRecord:
    data = consent_data(consent)
    data["account_ids"] = account_ids  # gateway ids; empty when the provider did not say which
    return _event(consent.tenant, ACCOUNTS_ADDED, "consent", consent.id, consent.id, data)


def accounts_removed(consent: ConsentRecord, account_ids: list[str]) -> EventRecord:
    data = consent_data(consent)
    data["account_ids"] = account_ids
    return _event(consent.tenant, ACCOUNTS_REMOVED, "consent", consent.id, consent.id, data)


def connection_error(consent: ConsentRecord, code: str, message: str, retryable: bool) -> EventRecord:
    data = consent_data(consent)
    data["error"] = {"provider_code": code, "message": message, "retryable": retryable}
    return _event(consent.tenant, CONNECTION_ERROR, "consent", consent.id, consent.id, data)


def report_changed(report: ReportRecord, previous: ReportStatus | None) -> list[EventRecord]:
    if previous is report.status or report.status is ReportStatus.PENDING:
        return []
    type_ = REPORT_COMPLETED if report.status is ReportStatus.READY else REPORT_FAILED
    data = {"report": {"id": report.id, "provider": report.provider, "type": report.type,
                       "status": report.status.value, "status_reason": report.status_reason,
                       "customer_id": report.customer_id, "consent_id": report.consent_id}}
    return [_event(report.tenant, type_, "report", report.id, report.consent_id or report.id, data,
                   report.updated_at)]


def payment_moved(payment: PaymentRecord, transitions: list[PaymentTransition]) -> list[EventRecord]:
    """One `payment.status_changed` per recorded transition, in order."""
    out = []
    for move in transitions:
        if move.previous is move.status:
            continue
        data = {
            "payment": {
                "id": payment.id, "provider": payment.provider, "type": payment.type,
                "status": move.status.value, "amount": str(payment.amount), "currency": payment.currency,
                "customer_id": payment.customer_id, "live": payment.live,
            },
            "previous_status": move.previous.value if move.previous is not None else None,
            "provider_status": move.upstream_status, "reason": move.reason, "at": iso(move.at),
        }
        out.append(_event(payment.tenant, PAYMENT_STATUS_CHANGED, "payment", payment.id, payment.id, data, move.at))
    return out


@attrs.define
class SubscriptionRecord:
    """A product team's webhook endpoint. `secrets` is sealed: the JSON list of signing secrets in use (the newest
    first, each with the time it stops signing, none for the current one)."""
    tenant: str
    id: str
    url: str
    event_types: tuple[str, ...]
    ordered: bool
    status: str  # enabled | disabled
    created_at: datetime
    updated_at: datetime
    secrets: bytes
    description: str | None = None
    disabled_reason: str | None = None

    def wants(self, event_type: str) -> bool:
        return "*" in self.event_types or event_type in self.event_types


@attrs.define
class DeliveryRecord:
    """One event on its way to one subscription."""
    tenant: str
    subscription_id: str
    event_seq: int
    event_id: str
    status: str  # pending | delivered | failed
    attempts: int
    next_attempt_at: datetime | None
    horizon_at: datetime
    last_attempt_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None


@attrs.frozen
class DeliveryBacklog:
    """Deliveries not yet finished, over every tenant: what an operator watches to see the workers keep up."""
    pending: int  # waiting to be sent, now or after a backoff
    due: int  # of those, due now (a worker should be sending them)
    oldest_due_at: datetime | None  # when the longest-waiting due one became due
    failed: int  # dead-lettered, waiting for a redelivery or the purge


@attrs.define
class Claimed:
    """A delivery a worker holds, with what it needs to send it."""
    delivery: DeliveryRecord
    event: EventRecord
    url: str
    secrets: bytes
