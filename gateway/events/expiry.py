"""The consent expiry watcher: announces consents about to end, ends those whose time is up, and purges old events.

- `consent.expiring`, once per consent, `events.consent_expiring_lead_seconds` before its `expires_at`.
- At `expires_at` the consent becomes expired and everything stored from it is deleted, with `consent.expired`,
  in one transaction (a consent changed meanwhile, say revoked, is left as it is).
- Events older than `events.retention_seconds` whose deliveries are all finished are deleted.
Several replicas may run it at once: each step writes once (a notice row, a compare-and-set on the consent).
"""
from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog

from gateway.config import EventsConfig
from gateway.events import canonical
from gateway.models import ConsentStatus
from gateway.models.time import utcnow
from gateway.observability import Metrics
from gateway.store import Store

log = structlog.get_logger("gateway.events")
_PURGE_EVERY = 3600.0


class ExpiryWatcher:
    def __init__(self, store: Store, config: EventsConfig, metrics: Metrics) -> None:
        self.store, self.config, self.metrics = store, config, metrics
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="consent-expiry")

    async def stop(self, grace: float = 0.0) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_purge = -_PURGE_EVERY
        while True:
            try:
                await self.run_once()
                if loop.time() - last_purge >= _PURGE_EVERY:
                    purged = await self.store.purge_events(utcnow() - timedelta(seconds=self.config.retention_seconds))
                    if purged:
                        log.info("events_purged", count=purged)
                    last_purge = loop.time()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("consent_expiry_round_failed")
            await asyncio.sleep(self.config.expiry_check_interval_seconds)

    async def run_once(self, limit: int = 500) -> tuple[int, int]:
        """(consents announced as expiring, consents expired) in this round."""
        now = utcnow()
        announced = expired = 0
        for consent in await self.store.consents_expiring(now + timedelta(seconds=self.config.consent_expiring_lead_seconds),
                                                          limit):
            if consent.expires_at is not None and consent.expires_at > now and await self.store.announce_expiring(
                    consent.tenant, consent.id, consent.expires_at, canonical.consent_expiring(consent)):
                announced += 1
                self.metrics.count(self.metrics.events_emitted, canonical.CONSENT_EXPIRING)
        for consent in await self.store.consents_past_expiry(now, limit):
            before = consent.updated_at
            assert consent.expires_at is not None
            consent.set_status(ConsentStatus.EXPIRED, f"expired at {consent.expires_at.isoformat()}", now)
            if await self.store.forget_accounts(consent, (), expected_updated_at=before) is not None:
                expired += 1
                self.metrics.count(self.metrics.events_emitted, canonical.CONSENT_EXPIRED)
                log.info("consent_expired", consent_id=consent.id, tenant=consent.tenant)
        return announced, expired
