"""The store interface. Every read takes the tenant: a record of another tenant does not exist for the caller.

Writes that change a consent's status, a report's status or a payment's status also write the canonical event
that change means (gateway.events.canonical), in the same transaction: neither exists without the other.

Backends (SQLite now, PostgreSQL for scale-out) implement exactly these methods; nothing above the store knows
which one runs. Each method is atomic on its own.
"""
from __future__ import annotations

import abc
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.models.payments import PaymentTransition
from gateway.store.records import (
    AccountRecord, ApplicationRecord, ConsentRecord, CustomerRecord, IdempotencyRecord, IdempotentResponse,
    InboundEventRecord, PaymentRecord, ReportRecord,
)


if TYPE_CHECKING:  # gateway.events builds on the store's records: named here for the annotations only
    from gateway.events.canonical import Claimed, DeliveryBacklog, DeliveryRecord, EventRecord, SubscriptionRecord


class Store(abc.ABC):
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, create or migrate the schema."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> bool: ...

    # customers
    @abc.abstractmethod
    async def insert_customer(self, record: CustomerRecord) -> None: ...

    @abc.abstractmethod
    async def get_customer(self, tenant: str, customer_id: str) -> CustomerRecord | None: ...

    @abc.abstractmethod
    async def find_customer(self, tenant: str, provider: str, external_ref: str) -> CustomerRecord | None: ...

    @abc.abstractmethod
    async def find_customers_by_ref(self, provider: str, provider_ref: str) -> list[CustomerRecord]:
        """Customers of any tenant with this upstream id (webhooks carry no tenant)."""

    @abc.abstractmethod
    async def set_consumer_ref(self, tenant: str, customer_id: str, consumer_ref: str) -> bool:
        """Record the customer's consumer once; False when it already had one."""

    # consents
    @abc.abstractmethod
    async def insert_consent(self, record: ConsentRecord) -> None: ...

    @abc.abstractmethod
    async def get_consent(self, tenant: str, consent_id: str) -> ConsentRecord | None: ...

    @abc.abstractmethod
    async def update_consent(self, record: ConsentRecord, *, expected_updated_at: datetime | None = None) -> bool:
        """Write the record; with `expected_updated_at`, only if nobody changed it since (returns False if they did)."""

    @abc.abstractmethod
    async def list_consents(
        self, tenant: str, *, customer_id: str | None, limit: int, after: tuple[str, str] | None
    ) -> list[ConsentRecord]:
        """Newest first; `after` is the (created_at, id) of the last item of the previous page."""

    # accounts
    @abc.abstractmethod
    async def upsert_accounts(self, records: list[AccountRecord]) -> None: ...

    @abc.abstractmethod
    async def get_account(self, tenant: str, account_id: str) -> tuple[AccountRecord, ConsentRecord] | None:
        """The account and the consent it was seen under, in one read."""

    @abc.abstractmethod
    async def list_accounts(self, tenant: str, consent_id: str) -> list[AccountRecord]: ...

    @abc.abstractmethod
    async def delete_consent_data(self, tenant: str, consent_id: str) -> int:
        """Delete everything stored from a consent (accounts, their cached data, reports). Returns rows removed."""

    @abc.abstractmethod
    async def forget_accounts(self, consent: ConsentRecord, account_refs: tuple[str, ...], *,
                              expected_updated_at: datetime | None = None) -> int | None:
        """In one transaction: write the consent and delete what was stored from the accounts it no longer covers
        (everything, when it has ended), with the events that means. Returns rows removed; with
        `expected_updated_at`, None and nothing written when someone changed the consent since."""

    # reports
    @abc.abstractmethod
    async def insert_report(self, record: ReportRecord) -> None: ...

    @abc.abstractmethod
    async def get_report(self, tenant: str, report_id: str) -> ReportRecord | None: ...

    @abc.abstractmethod
    async def update_report(self, record: ReportRecord) -> bool: ...

    @abc.abstractmethod
    async def list_reports(self, tenant: str, *, customer_id: str | None, limit: int,
                           after: tuple[str, str] | None) -> list[ReportRecord]:
        """Newest first, like list_consents."""

    @abc.abstractmethod
    async def find_reports_by_ref(self, provider: str, provider_ref: str) -> list[ReportRecord]: ...

    # applications registered with providers
    @abc.abstractmethod
    async def insert_application(self, record: ApplicationRecord) -> None: ...

    @abc.abstractmethod
    async def get_application(self, tenant: str, application_id: str) -> ApplicationRecord | None: ...

    @abc.abstractmethod
    async def update_application(self, record: ApplicationRecord) -> None: ...

    # secrets providers issue at run time (e.g. a webhook signing key), sealed by gateway.vault
    @abc.abstractmethod
    async def put_secret(self, provider: str, name: str, sealed: bytes, updated_at: datetime) -> None: ...

    @abc.abstractmethod
    async def get_secret(self, provider: str, name: str) -> bytes | None: ...

    @abc.abstractmethod
    async def delete_secret(self, provider: str, name: str) -> None: ...

    # inbound provider events
    @abc.abstractmethod
    async def find_consents_by_ref(self, provider: str, provider_ref: str) -> list[ConsentRecord]:
        """Consents of any tenant that an upstream reference names (webhooks carry no tenant). Newest first."""

    @abc.abstractmethod
    async def record_inbound_event(self, event: InboundEventRecord, consent: ConsentRecord | None, *,
                                   forget_account_refs: tuple[str, ...] = (),
                                   report: ReportRecord | None = None,
                                   events: list[EventRecord] | None = None) -> bool:
        """In one transaction: keep the event and, with it, the consent's new state (deleting what a consent that
        ended leaves behind, or the accounts in `forget_account_refs`), the report's new state, the canonical
        events those changes mean and `events`. False, and nothing written, when the event was already received."""

    @abc.abstractmethod
    async def list_inbound_events(self, provider: str, *, limit: int = 100) -> list[InboundEventRecord]: ...

    # payments
    @abc.abstractmethod
    async def insert_payment(self, record: PaymentRecord, transition: PaymentTransition,
                             response: IdempotentResponse | None = None) -> None:
        """In one transaction: the payment, its first transition and (when given) the response kept under the
        caller's idempotency key (raises LostIdempotencyClaim, writing nothing, if the claim was taken over)."""

    @abc.abstractmethod
    async def update_payment(self, record: PaymentRecord, transitions: list[PaymentTransition], *,
                             response: IdempotentResponse | None = None) -> bool:
        """In one transaction, only if the stored version is still `record.version`: the payment (version bumped),
        its transitions and the idempotent response. False, and nothing written, if someone wrote it since."""

    @abc.abstractmethod
    async def get_payment(self, tenant: str, payment_id: str) -> PaymentRecord | None: ...

    @abc.abstractmethod
    async def list_payments(self, tenant: str, *, limit: int, after: tuple[str, str] | None) -> list[PaymentRecord]:
        """Newest first, like list_consents."""

    @abc.abstractmethod
    async def payment_transitions(self, tenant: str, payment_id: str) -> list[PaymentTransition]:
        """Oldest first."""

    @abc.abstractmethod
    async def due_payments(self, now: datetime, limit: int) -> list[PaymentRecord]:
        """Payments of any tenant whose next reconciliation check is due, the most overdue first."""

    # idempotency keys
    @abc.abstractmethod
    async def claim_idempotency_key(self, claim: IdempotencyRecord) -> IdempotencyRecord:
        """Insert the claim, or take over an in-progress one with the same fingerprint whose lease ran out; return
        the stored record (the caller holds the key when its owner is the claim's)."""

    @abc.abstractmethod
    async def get_idempotency_key(self, tenant: str, key: str) -> IdempotencyRecord | None: ...

    @abc.abstractmethod
    async def finish_idempotency_key(self, response: IdempotentResponse) -> None: ...

    @abc.abstractmethod
    async def release_idempotency_key(self, tenant: str, key: str, owner: str) -> None: ...

    @abc.abstractmethod
    async def purge_idempotency_keys(self, now: datetime) -> int:
        """Delete keys past their expiry; returns how many."""

    @abc.abstractmethod
    async def find_payments_by_ref(self, provider: str, provider_ref: str) -> list[PaymentRecord]:
        """Payments of any tenant with this upstream payment id (provider events carry no tenant)."""

    # events, the outbox and webhook subscriptions (gateway.events)
    event_listeners: list[Any]  # callables told, on the event loop, that this process wrote events

    @abc.abstractmethod
    async def emit_events(self, events: list[EventRecord]) -> None:
        """Write events that record no state change of their own, with their deliveries."""

    @abc.abstractmethod
    async def list_events(self, tenant: str, *, after_seq: int, limit: int, types: tuple[str, ...] = (),
                          delivery_status: str | None = None) -> list[EventRecord]:
        """Oldest first after `after_seq`; with `delivery_status`, only events with a delivery in that state."""

    @abc.abstractmethod
    async def get_event(self, tenant: str, event_id: str) -> EventRecord | None: ...

    @abc.abstractmethod
    async def event_deliveries(self, tenant: str, seqs: list[int]) -> dict[int, list[DeliveryRecord]]: ...

    @abc.abstractmethod
    async def insert_subscription(self, record: SubscriptionRecord) -> None: ...

    @abc.abstractmethod
    async def get_subscription(self, tenant: str, subscription_id: str) -> SubscriptionRecord | None: ...

    @abc.abstractmethod
    async def list_subscriptions(self, tenant: str, *, limit: int,
                                 after: tuple[str, str] | None) -> list[SubscriptionRecord]:
        """Newest first, like list_consents."""

    @abc.abstractmethod
    async def update_subscription(self, record: SubscriptionRecord, *, expected_updated_at: datetime) -> bool:
        """Write it only if nobody changed it since `expected_updated_at`."""

    @abc.abstractmethod
    async def delete_subscription(self, tenant: str, subscription_id: str) -> bool:
        """Delete it and its deliveries still queued; False when there was none."""

    @abc.abstractmethod
    async def claim_deliveries(self, owner: str, now: datetime, lease_until: datetime, limit: int, *,
                               per_subscription: int, busy: dict[str, int]) -> list[Claimed]:
        """Claim due deliveries of enabled subscriptions (in order per order key where the subscription asked),
        skipping those another worker holds, at most `per_subscription` in flight per subscription."""

    @abc.abstractmethod
    async def finish_delivery(self, delivery: DeliveryRecord, owner: str, *,
                              disable_reason: str | None = None) -> bool:
        """Record an attempt's outcome while `owner` still holds the claim (False if it lost it)."""

    @abc.abstractmethod
    async def release_deliveries(self, owner: str) -> int: ...

    @abc.abstractmethod
    async def redeliver(self, tenant: str, event: EventRecord, subscription_ids: list[str], now: datetime,
                        horizon_at: datetime) -> int: ...

    @abc.abstractmethod
    async def purge_events(self, before: datetime) -> int: ...

    @abc.abstractmethod
    async def delivery_backlog(self, now: datetime) -> DeliveryBacklog:
        """Counts of pending (and due) and dead-lettered deliveries over every tenant."""

    @abc.abstractmethod
    async def consents_expiring(self, until: datetime, limit: int) -> list[ConsentRecord]: ...

    @abc.abstractmethod
    async def consents_past_expiry(self, now: datetime, limit: int) -> list[ConsentRecord]: ...

    @abc.abstractmethod
    async def announce_expiring(self, tenant: str, consent_id: str, expires_at: datetime, event: EventRecord) -> bool:
        """Record the consent.expiring event once per consent and expiry time; False when announced before."""

    # leases: one holder at a time across processes and replicas (e.g. renewing a consent's tokens)
    @abc.abstractmethod
    async def try_lease(self, name: str, owner: str, until: datetime, now: datetime) -> bool:
        """Take (or, for its holder, extend) the lease `name` until `until`; True when `owner` holds it now. A
        lease whose time ran out is free."""

    @abc.abstractmethod
    async def release_lease(self, name: str, owner: str) -> None: ...
