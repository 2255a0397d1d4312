"""The reconciliation worker: every payment that is not final is looked at upstream again, with backoff, until it
is final or its horizon passes. It never submits a payment on its own: an `unknown` payment (a submission whose
answer was lost) is resolved by asking the provider what that submission did (`Adapter.get_payment`); where the
provider's only way to answer is the repeated submission itself under its original idempotency key (stripe-uk
with a consumed consent, ob-connect's per-consent transfer), that repeat can find the one payment or make it,
never a second. Payments that were refused or never sent are not `unknown` and are left to the caller.

One worker runs inside `gateway serve`. Each round takes the payments whose `next_check_at` is due, checks at most
`reconcile_concurrency` at once, and writes each result with the store's version check, so an API request that
changed the payment meanwhile wins and the worker's stale view is dropped.
"""
from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog

from adapters.base import CallContext, PaymentUpdate
from gateway.api.middleware import new_request_id
from gateway.api.state import GatewayState
from gateway.errors import GatewayError
from gateway.models.payments import PaymentStatus
from gateway.models.time import utcnow
from gateway.payments import service
from gateway.store.lease import LeaseBusy
from gateway.store.records import PaymentRecord

log = structlog.get_logger("gateway.reconcile")
_PURGE_EVERY = 600.0  # seconds between purges of expired idempotency keys


class Reconciler:
    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self.config = state.config.payments
        self._task: asyncio.Task[None] | None = None
        self._gate = asyncio.Semaphore(self.config.reconcile_concurrency)
        self.rounds = 0
        self._soon: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="payments-reconciler")

    async def stop(self) -> None:
        for task in list(self._soon):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        last_purge = -_PURGE_EVERY
        loop = asyncio.get_running_loop()
        while True:
            try:
                if loop.time() - last_purge >= _PURGE_EVERY:
                    purged = await self.state.store.purge_idempotency_keys(utcnow())
                    if purged:
                        log.info("idempotency_keys_purged", count=purged)
                    last_purge = loop.time()
                if self.config.reconcile:
                    await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad round must not stop reconciliation for good
                log.exception("reconcile_round_failed")
            await asyncio.sleep(self.config.reconcile_tick_seconds)

    def check_soon(self, record: PaymentRecord) -> None:
        """Check one payment now, outside the schedule (a provider event says it changed)."""
        task = asyncio.create_task(self._guarded(record), name=f"reconcile-{record.id}")
        self._soon.add(task)
        task.add_done_callback(self._soon.discard)

    async def run_once(self, limit: int = 200) -> int:
        """Check every due payment once; how many were checked."""
        due = await self.state.store.due_payments(utcnow(), limit)
        if due:
            await asyncio.gather(*(self._guarded(record) for record in due))
        self.rounds += 1
        return len(due)

    async def _guarded(self, record: PaymentRecord) -> None:
        async with self._gate:
            try:
                async with self.state.payment_locks.hold(record.id, wait=0.0):
                    fresh = await self.state.store.get_payment(record.tenant, record.id)
                    if fresh is not None and fresh.version == record.version:
                        await self.check(fresh)
            except LeaseBusy:
                log.debug("reconcile_payment_busy", payment_id=record.id)  # another replica is on it
            except Exception:
                log.exception("reconcile_payment_failed", payment_id=record.id)

    async def check(self, record: PaymentRecord) -> None:
        now = utcnow()
        adapter = self.state.adapters.get(record.provider)
        record.check_attempts += 1
        moves = []
        checked = False
        if adapter is None:
            log.warning("reconcile_provider_disabled", payment_id=record.id, provider=record.provider)
        else:
            ctx = CallContext(request_id=new_request_id(), tenant=record.tenant, id_key=self.state.id_key)
            try:
                update = await adapter.get_payment(ctx, record)
            except GatewayError as exc:
                self.state.metrics.count(self.state.metrics.reconcile_checks, record.provider, exc.code)
                log.info("reconcile_check_failed", payment_id=record.id, code=exc.code, retryable=exc.retryable,
                         attempt=record.check_attempts)
            except Exception:
                # A local fault (say, a sealed authorisation the current key cannot open): counted and backed off
                # like any failed check, never retried every tick.
                self.state.metrics.count(self.state.metrics.reconcile_checks, record.provider, "internal_error")
                log.exception("reconcile_check_crashed", payment_id=record.id, attempt=record.check_attempts)
            else:
                checked = True
                self.state.metrics.count(self.state.metrics.reconcile_checks, record.provider, "ok")
                before = record.status
                moves = service.apply_update(record, update, now, observed=True)
                if record.status is not before:
                    log.info("payment_reconciled", payment_id=record.id, provider=record.provider,
                             previous=before.value, status=record.status.value,
                             upstream_status=record.upstream_status)
        horizon = record.created_at + timedelta(hours=self.config.reconcile_horizon_hours)
        never_sent = record.status is PaymentStatus.AUTHORISED and not record.upstream.get("submission_started_at")
        # Only what the provider itself just confirmed expires a payment: a failed check proves nothing.
        if checked and now >= horizon and (record.status is PaymentStatus.AWAITING_AUTHORISATION or never_sent):
            what = "authorised" if record.status is PaymentStatus.AWAITING_AUTHORISATION else "submitted"
            moves += service.apply_update(record, PaymentUpdate(
                status=PaymentStatus.EXPIRED, reason=f"not {what} within the reconciliation horizon"), now)
        service.schedule(record, self.config, now)
        if record.next_check_at is None and not record.status.is_final:
            log.warning("payment_reconciliation_gave_up", payment_id=record.id, status=record.status.value,
                        hint="the horizon passed; GET the payment with ?refresh=true to ask again")
        if not await service.save(self.state.store, self.state.metrics, record, moves):
            log.info("reconcile_lost_race", payment_id=record.id)  # an API request wrote it first: it wins
