"""Small builders of store records for the store suite: sensible defaults, every field overridable by keyword."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from gateway.events.canonical import EventRecord, SubscriptionRecord
from gateway.ids import new_id
from gateway.models import ConsentStatus, CustomerType, ReportStatus
from gateway.models.payments import PaymentStatus, PaymentTransition
from gateway.models.time import utcnow
from gateway.store.records import (
    AccountRecord, ApplicationRecord, ConsentRecord, CustomerRecord, IdempotencyRecord, IdempotentResponse,
    InboundEventRecord, PaymentRecord, ReportRecord,
)

TENANT = "tenant-a"
OTHER = "tenant-b"
PROVIDER = "mastercard-us"


def ago(**delta: float) -> datetime:
    """A moment in the past, e.g. ago(minutes=5)."""
    return utcnow() - timedelta(**delta)


def later(**delta: float) -> datetime:
    """A moment in the future, e.g. later(hours=1)."""
    return utcnow() + timedelta(**delta)


def position(record: Any) -> tuple[str, str]:
    """Where a newest-first list continues after `record`, as the API's cursor gives it."""
    return record.created_at.astimezone(timezone.utc).isoformat(), record.id


def customer(tenant: str = TENANT, **kw: Any) -> CustomerRecord:
    fields: dict[str, Any] = dict(
        id=new_id("cus"), tenant=tenant, provider=PROVIDER, provider_ref=f"up-{secrets.token_hex(4)}",
        type=CustomerType.TESTING, external_ref=f"ext-{secrets.token_hex(4)}", created_at=utcnow())
    return CustomerRecord(**{**fields, **kw})


def consent(tenant: str = TENANT, **kw: Any) -> ConsentRecord:
    now = kw.pop("created_at", None) or utcnow()
    fields: dict[str, Any] = dict(
        id=new_id("con"), tenant=tenant, provider=PROVIDER, customer_id=None, status=ConsentStatus.AUTHORISED,
        created_at=now, updated_at=now, provider_ref=f"cref-{secrets.token_hex(4)}",
        permissions=("accounts", "transactions"), upstream={"customer": "u-1", "nested": {"n": [1, 2]}})
    return ConsentRecord(**{**fields, **kw})


def account(of: ConsentRecord, provider_ref: str, **kw: Any) -> AccountRecord:
    fields: dict[str, Any] = dict(
        id=new_id("acc"), tenant=of.tenant, provider=of.provider, consent_id=of.id, provider_ref=provider_ref,
        created_at=utcnow(), data={"name": f"account {provider_ref}", "balance": "10.00"})
    return AccountRecord(**{**fields, **kw})


def report(of: ConsentRecord, **kw: Any) -> ReportRecord:
    now = kw.pop("created_at", None) or utcnow()
    fields: dict[str, Any] = dict(
        id=new_id("rep"), tenant=of.tenant, provider=of.provider, customer_id=of.customer_id or "cus_x",
        consent_id=of.id, type="voa", status=ReportStatus.PENDING, provider_ref=f"rref-{secrets.token_hex(4)}",
        created_at=now, updated_at=now, interval_types=("monthly",))
    return ReportRecord(**{**fields, **kw})


def application(tenant: str = TENANT, **kw: Any) -> ApplicationRecord:
    now = utcnow()
    fields: dict[str, Any] = dict(
        id=new_id("app"), tenant=tenant, provider="mastercard-au", provider_ref=f"aref-{secrets.token_hex(4)}",
        access_model="direct", name="Budget app", status="pending", created_at=now, updated_at=now)
    return ApplicationRecord(**{**fields, **kw})


def inbound(provider: str = PROVIDER, **kw: Any) -> InboundEventRecord:
    fields: dict[str, Any] = dict(
        provider=provider, event_id=f"ev-{secrets.token_hex(6)}", type="consentRevoked", received_at=utcnow(),
        payload={"eventType": "consentRevoked", "amounts": ["1.10"]})
    return InboundEventRecord(**{**fields, **kw})


def payment(tenant: str = TENANT, **kw: Any) -> PaymentRecord:
    now = kw.pop("created_at", None) or utcnow()
    fields: dict[str, Any] = dict(
        id=new_id("pay"), tenant=tenant, provider="stripe-uk", type="domestic",
        status=PaymentStatus.AWAITING_AUTHORISATION, amount=Decimal("1234.56"), currency="GBP",
        request={"creditor": {"name": "Ada", "account": {"scheme": "uk_sort_code", "sort_code": "040004"}},
                 "reference": "INV 7"},
        created_at=now, updated_at=now, consent_ref=f"pc-{secrets.token_hex(4)}",
        upstream={"nonce": "n-1", "submitted": {"amount": "1234.56"}})
    return PaymentRecord(**{**fields, **kw})


def move(status: PaymentStatus, previous: PaymentStatus | None = None, **kw: Any) -> PaymentTransition:
    return PaymentTransition(status=status, previous=previous, at=kw.pop("at", None) or utcnow(), **kw)


def key_claim(key: str, owner: str, tenant: str = TENANT, *, fingerprint: str = "fp-1",
              lease: float = 30.0, now: datetime | None = None, expires: float = 86400.0) -> IdempotencyRecord:
    """A claim made at `now` holding the key for `lease` seconds, kept for `expires` seconds."""
    now = now or utcnow()
    return IdempotencyRecord(tenant=tenant, key=key, fingerprint=fingerprint, state="in_progress", owner=owner,
                             lease_until=now + timedelta(seconds=lease), created_at=now,
                             expires_at=now + timedelta(seconds=expires))


def answer(key: str, owner: str, tenant: str = TENANT, *, status: int = 201,
           body: bytes = b'{"id": "pay_1"}') -> IdempotentResponse:
    return IdempotentResponse(tenant=tenant, key=key, owner=owner, status=status, content_type="application/json",
                              body=body)


def subscription(tenant: str = TENANT, **kw: Any) -> SubscriptionRecord:
    now = kw.pop("created_at", None) or utcnow()
    fields: dict[str, Any] = dict(
        id=new_id("sub"), tenant=tenant, url=f"https://hooks.example.com/{secrets.token_hex(3)}",
        event_types=("*",), ordered=False, status="enabled", created_at=now, updated_at=now,
        secrets=b"\x00sealed\xff" + secrets.token_bytes(8), description="team hook")
    return SubscriptionRecord(**{**fields, **kw})


def event(tenant: str = TENANT, type_: str = "connection.error", **kw: Any) -> EventRecord:
    """An event that records no state change of its own (for emit_events)."""
    subject = kw.pop("subject_id", None) or new_id("con")
    fields: dict[str, Any] = dict(
        id=new_id("evt"), tenant=tenant, type=type_, created_at=utcnow(), subject_type="consent",
        subject_id=subject, order_key=subject, data={"consent": {"id": subject}, "error": {"retryable": True}})
    return EventRecord(**{**fields, **kw})
