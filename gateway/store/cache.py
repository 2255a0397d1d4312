"""A short-lived read cache in front of a store, for the lookups every call makes.

Account (with its consent), consent, customer and a consent's account list are kept for `ttl` seconds. Any
write through this process clears the cache at once, so a revocation here is seen here immediately; another
replica sees it within `ttl` (keep it short; writes that race use the store's compare-and-set). Records from
`get_account` and `list_accounts` are shared and must be treated as read-only; `get_consent` and `get_customer`
hand out copies, since handlers change the consent they load.
"""
from __future__ import annotations

import time

import attrs
from datetime import datetime
from typing import Any, Callable

from gateway.store.base import Store
from gateway.store.records import (
    AccountRecord, ApplicationRecord, ConsentRecord, CustomerRecord, InboundEventRecord, ReportRecord,
)


def _through(name: str) -> Callable[..., Any]:
    """A method that hands the call to the store behind the cache, as it is."""
    async def call(self: CachedStore, *args: Any, **kw: Any) -> Any:
        return await getattr(self.inner, name)(*args, **kw)
    call.__name__ = call.__qualname__ = name
    return call


class CachedStore(Store):
    # Payments and idempotency keys are never cached: every read must see the latest write of any replica.
    insert_payment = _through("insert_payment")
    update_payment = _through("update_payment")
    get_payment = _through("get_payment")
    list_payments = _through("list_payments")
    payment_transitions = _through("payment_transitions")
    due_payments = _through("due_payments")
    claim_idempotency_key = _through("claim_idempotency_key")
    get_idempotency_key = _through("get_idempotency_key")
    finish_idempotency_key = _through("finish_idempotency_key")
    release_idempotency_key = _through("release_idempotency_key")
    purge_idempotency_keys = _through("purge_idempotency_keys")
    # Neither are events, subscriptions, deliveries, consent expiry and leases: every replica's workers share them.
    find_payments_by_ref = _through("find_payments_by_ref")
    emit_events = _through("emit_events")
    list_events = _through("list_events")
    get_event = _through("get_event")
    event_deliveries = _through("event_deliveries")
    insert_subscription = _through("insert_subscription")
    get_subscription = _through("get_subscription")
    list_subscriptions = _through("list_subscriptions")
    update_subscription = _through("update_subscription")
    delete_subscription = _through("delete_subscription")
    claim_deliveries = _through("claim_deliveries")
    finish_delivery = _through("finish_delivery")
    release_deliveries = _through("release_deliveries")
    redeliver = _through("redeliver")
    purge_events = _through("purge_events")
    delivery_backlog = _through("delivery_backlog")
    consents_expiring = _through("consents_expiring")
    consents_past_expiry = _through("consents_past_expiry")
    announce_expiring = _through("announce_expiring")
    try_lease = _through("try_lease")
    release_lease = _through("release_lease")

    def __init__(self, inner: Store, ttl: float, *, max_entries: int = 50_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[tuple[str, str, str], tuple[float, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # backend extras (e.g. the SQLite read connection tests inspect)

    def invalidate(self) -> None:
        self._entries.clear()

    def uncached(self) -> Store:
        """The store behind the cache, for a reader that must see the latest commit of any replica."""
        return self.inner

    async def _cached(self, key: tuple[str, str, str], load: Callable[[], Any]) -> Any:
        now = self._clock()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = await load()
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (now, value)
        return value

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        self.invalidate()
        await self.inner.close()

    async def ping(self) -> bool:
        return await self.inner.ping()

    async def insert_customer(self, record: CustomerRecord) -> None:
        try:
            await self.inner.insert_customer(record)
        finally:
            self.invalidate()

    async def get_customer(self, tenant: str, customer_id: str) -> CustomerRecord | None:
        found = await self._cached(("customer", tenant, customer_id),
                                   lambda: self.inner.get_customer(tenant, customer_id))
        return attrs.evolve(found) if found is not None else None

    async def find_customer(self, tenant: str, provider: str, external_ref: str) -> CustomerRecord | None:
        return await self.inner.find_customer(tenant, provider, external_ref)

    async def find_customers_by_ref(self, provider: str, provider_ref: str) -> list[CustomerRecord]:
        return await self.inner.find_customers_by_ref(provider, provider_ref)

    async def set_consumer_ref(self, tenant: str, customer_id: str, consumer_ref: str) -> bool:
        return await self._writing(self.inner.set_consumer_ref(tenant, customer_id, consumer_ref))

    async def _writing(self, write: Any) -> Any:
        """Run a write with the cache cleared before and after (a concurrent read may refill it in between)."""
        self.invalidate()
        try:
            return await write
        finally:
            self.invalidate()

    async def insert_consent(self, record: ConsentRecord) -> None:
        try:
            await self.inner.insert_consent(record)
        finally:
            self.invalidate()

    async def get_consent(self, tenant: str, consent_id: str) -> ConsentRecord | None:
        found = await self._cached(("consent", tenant, consent_id), lambda: self.inner.get_consent(tenant, consent_id))
        return attrs.evolve(found, upstream=dict(found.upstream)) if found is not None else None

    async def update_consent(self, record: ConsentRecord, *, expected_updated_at: datetime | None = None) -> bool:
        self.invalidate()
        try:
            return await self.inner.update_consent(record, expected_updated_at=expected_updated_at)
        finally:
            self.invalidate()

    async def list_consents(self, tenant: str, *, customer_id: str | None, limit: int,
                            after: tuple[str, str] | None) -> list[ConsentRecord]:
        return await self.inner.list_consents(tenant, customer_id=customer_id, limit=limit, after=after)

    async def upsert_accounts(self, records: list[AccountRecord]) -> None:
        try:
            await self.inner.upsert_accounts(records)
        finally:
            self.invalidate()

    async def get_account(self, tenant: str, account_id: str) -> tuple[AccountRecord, ConsentRecord] | None:
        result: tuple[AccountRecord, ConsentRecord] | None = await self._cached(
            ("account", tenant, account_id), lambda: self.inner.get_account(tenant, account_id))
        return result

    async def list_accounts(self, tenant: str, consent_id: str) -> list[AccountRecord]:
        result: list[AccountRecord] = await self._cached(("accounts", tenant, consent_id),
                                                         lambda: self.inner.list_accounts(tenant, consent_id))
        return result

    async def delete_consent_data(self, tenant: str, consent_id: str) -> int:
        self.invalidate()
        try:
            return await self.inner.delete_consent_data(tenant, consent_id)
        finally:
            self.invalidate()

    async def forget_accounts(self, consent: ConsentRecord, account_refs: tuple[str, ...], *,
                              expected_updated_at: datetime | None = None) -> int | None:
        return await self._writing(self.inner.forget_accounts(consent, account_refs,
                                                              expected_updated_at=expected_updated_at))

    async def find_consents_by_ref(self, provider: str, provider_ref: str) -> list[ConsentRecord]:
        return await self.inner.find_consents_by_ref(provider, provider_ref)

    async def record_inbound_event(self, event: InboundEventRecord, consent: ConsentRecord | None, *,
                                   forget_account_refs: tuple[str, ...] = (),
                                   report: ReportRecord | None = None, events: list[Any] | None = None) -> bool:
        return await self._writing(self.inner.record_inbound_event(
            event, consent, forget_account_refs=forget_account_refs, report=report, events=events))

    # Reports, applications and provider secrets are not on the hot path: straight to the store.
    async def insert_report(self, record: ReportRecord) -> None:
        await self.inner.insert_report(record)

    async def get_report(self, tenant: str, report_id: str) -> ReportRecord | None:
        return await self.inner.get_report(tenant, report_id)

    async def update_report(self, record: ReportRecord) -> bool:
        return await self.inner.update_report(record)

    async def list_reports(self, tenant: str, *, customer_id: str | None, limit: int,
                           after: tuple[str, str] | None) -> list[ReportRecord]:
        return await self.inner.list_reports(tenant, customer_id=customer_id, limit=limit, after=after)

    async def find_reports_by_ref(self, provider: str, provider_ref: str) -> list[ReportRecord]:
        return await self.inner.find_reports_by_ref(provider, provider_ref)

    async def insert_application(self, record: ApplicationRecord) -> None:
        await self.inner.insert_application(record)

    async def get_application(self, tenant: str, application_id: str) -> ApplicationRecord | None:
        return await self.inner.get_application(tenant, application_id)

    async def update_application(self, record: ApplicationRecord) -> None:
        await self.inner.update_application(record)

    async def put_secret(self, provider: str, name: str, sealed: bytes, updated_at: datetime) -> None:
        await self.inner.put_secret(provider, name, sealed, updated_at)

    async def delete_secret(self, provider: str, name: str) -> None:
        await self.inner.delete_secret(provider, name)

    async def get_secret(self, provider: str, name: str) -> bytes | None:
        return await self.inner.get_secret(provider, name)

    async def list_inbound_events(self, provider: str, *, limit: int = 100) -> list[InboundEventRecord]:
        return await self.inner.list_inbound_events(provider, limit=limit)

