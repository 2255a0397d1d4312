"""The store interface. Every read takes the tenant: a record of another tenant does not exist for the caller.

Backends (SQLite now, PostgreSQL for scale-out) implement exactly these methods; nothing above the store knows
which one runs. Each method is atomic on its own.
"""
from __future__ import annotations

import abc
from datetime import datetime

from gateway.models.payments import PaymentTransition
from gateway.store.records import (
    AccountRecord, ApplicationRecord, ConsentRecord, CustomerRecord, IdempotencyRecord, IdempotentResponse,
    InboundEventRecord, PaymentRecord, ReportRecord,
)


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
    async def forget_accounts(self, consent: ConsentRecord, account_refs: tuple[str, ...]) -> int:
        """In one transaction: write the consent and delete what was stored from the accounts it no longer covers
        (everything, when it has ended). Returns rows removed."""

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
                                   report: ReportRecord | None = None) -> bool:
        """In one transaction: keep the event and, with it, the consent's new state (deleting what a consent that
        ended leaves behind, or the accounts in `forget_account_refs`) and the report's new state. False, and
        nothing written, when the event was already received."""

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
