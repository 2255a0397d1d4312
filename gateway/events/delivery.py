"""The delivery worker: takes pending deliveries from the outbox and POSTs them to the subscribers.

At least once: a delivery is marked delivered only after the subscriber answered 2xx, so a worker that dies
mid-delivery leaves it claimed until its lease ends, and then any worker sends it again with the same
`webhook-id`. Failed attempts are retried with exponential backoff and jitter until the event's horizon (three
days by default), then the delivery is dead-lettered (`GET /v1/events?status=failed`) and can be redelivered.
A 410 Gone disables the subscription. Concurrency is bounded overall and per subscription, and every request
has a timeout, so one slow subscriber holds a few slots and never delays the others.
"""
from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from datetime import datetime, timedelta

import aiohttp
import orjson
import structlog

from gateway.config import EventsConfig
from gateway.events import signing
from gateway.events.canonical import Claimed
from gateway.events.targets import PublicOnlyResolver, literal_refused
from gateway.models.time import utcnow
from gateway.observability import Metrics
from gateway.store import Store
from gateway.vault import Vault, VaultError

log = structlog.get_logger("gateway.events")
USER_AGENT = "open-banking-gateway-webhooks/1"


def next_delay(config: EventsConfig, attempts: int, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after `attempts` failed ones: base × 2^(attempts−1), capped, ±jitter."""
    raw = min(config.retry_base_seconds * 2 ** min(attempts - 1, 40), config.retry_max_interval_seconds)
    spread = raw * config.retry_jitter
    return max(0.0, raw + (rng or random).uniform(-spread, spread))


class DeliveryWorker:
    def __init__(self, store: Store, vault: Vault, config: EventsConfig, metrics: Metrics, *,
                 name: str = "worker") -> None:
        self.store, self.vault, self.config, self.metrics = store, vault, config, metrics
        self.owner = f"{name}-{secrets.token_hex(6)}"  # claims are per worker instance
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(config.concurrency)
        self._busy: dict[str, int] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False

    # --- life cycle ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is not None:
            return
        # No per-host limit: subscriptions are capped one by one (in the claim), and several of them may share a
        # host (a webhook relay); a per-host cap would let slow ones there hold every connection a quick one needs.
        connector = aiohttp.TCPConnector(
            limit=self.config.concurrency, limit_per_host=0,
            resolver=None if self.config.allow_private_targets else PublicOnlyResolver(), ttl_dns_cache=10)
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
            timeout=aiohttp.ClientTimeout(total=self.config.request_timeout_seconds),
            headers={"User-Agent": USER_AGENT})
        self.store.event_listeners.append(self.wake)
        self._task = asyncio.create_task(self._run(), name="event-delivery")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming; give in-flight deliveries `grace` seconds; cancel the rest and hand their claims back."""
        self._stopping = True
        with contextlib.suppress(ValueError):
            self.store.event_listeners.remove(self.wake)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(Exception):
            released = await self.store.release_deliveries(self.owner)
            if released:
                log.info("event_deliveries_released", count=released)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- the loop -----------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            try:
                claimed = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event_delivery_round_failed")
                claimed = 0
            if claimed:
                continue  # there may be more due right now
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval_seconds)

    async def run_once(self) -> int:
        """Claim what is due and free slots allow; start sending it. Returns how many were claimed."""
        free = self.config.concurrency - len(self._inflight)
        if free <= 0:
            await asyncio.wait(set(self._inflight), return_when=asyncio.FIRST_COMPLETED)
            return 1
        now = utcnow()
        claimed = await self.store.claim_deliveries(
            self.owner, now, now + timedelta(seconds=self.config.lease_seconds), free,
            per_subscription=self.config.per_subscription_concurrency, busy=dict(self._busy))
        for item in claimed:
            sub = item.delivery.subscription_id
            self._busy[sub] = self._busy.get(sub, 0) + 1
            task = asyncio.create_task(self._deliver(item), name=f"deliver-{item.event.id}")
            self._inflight.add(task)
            task.add_done_callback(lambda t, s=sub: self._done(t, s))
        return len(claimed)

    def _done(self, task: asyncio.Task[None], subscription_id: str) -> None:
        self._inflight.discard(task)
        left = self._busy.get(subscription_id, 1) - 1
        if left > 0:
            self._busy[subscription_id] = left
        else:
            self._busy.pop(subscription_id, None)
        self._wake.set()  # a slot is free: more may be claimable (an ordered follower, say)

    # --- one delivery -------------------------------------------------------------------------------------------
    async def _deliver(self, item: Claimed) -> None:
        delivery, started = item.delivery, utcnow()
        status, error, gone = await self._post(item, started)
        delivery.attempts += 1
        delivery.last_attempt_at, delivery.last_status, delivery.last_error = started, status, error
        outcome = "delivered"
        if status is not None and 200 <= status < 300:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = "delivered", utcnow(), None
        elif gone:
            outcome = "gone"  # stays pending, sent again if the subscription is enabled again
            delivery.next_attempt_at = utcnow()
        else:
            later = utcnow() + timedelta(seconds=next_delay(self.config, delivery.attempts))
            if later > delivery.horizon_at:
                outcome, delivery.status, delivery.next_attempt_at = "dead", "failed", None
            else:
                outcome, delivery.next_attempt_at = "retry", later
        reason = f"the endpoint answered 410 Gone at {started.isoformat()}" if gone else None
        try:
            kept = await self.store.finish_delivery(delivery, self.owner, disable_reason=reason)
        except Exception:
            log.exception("event_delivery_not_recorded", event_id=item.event.id,
                          subscription_id=delivery.subscription_id)
            return  # the lease runs out and the delivery is sent again: at least once
        self.metrics.count(self.metrics.event_deliveries, outcome)
        emit = log.info if outcome == "delivered" else log.warning
        emit("event_delivery", event_id=item.event.id,
                event_type=item.event.type, subscription_id=delivery.subscription_id, outcome=outcome,
                status=status, error=error, attempt=delivery.attempts, claim_kept=kept,
                next_attempt_at=delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else None)
        if gone:
            log.warning("webhook_subscription_disabled", subscription_id=delivery.subscription_id, reason=reason)

    async def _post(self, item: Claimed, at: datetime) -> tuple[int | None, str | None, bool]:
        """(HTTP status or None, what went wrong or None, whether the endpoint said 410 Gone)."""
        if self._session is None:
            return None, "the worker is stopping", False
        if not self.config.allow_private_targets and (why := literal_refused(item.url)):
            return None, f"refused: {why}", False
        try:
            entries = signing.open_secrets(self.vault, item.delivery.tenant, item.delivery.subscription_id,
                                           item.secrets)
        except (VaultError, ValueError) as exc:
            return None, f"the signing secret cannot be opened: {exc}", False
        body = orjson.dumps(item.event.body())
        headers = signing.headers(item.event.id, at, body, signing.active(entries, at))
        headers["Content-Type"] = "application/json"
        try:
            async with self._slots:
                async with self._session.post(item.url, data=body, headers=headers, allow_redirects=False) as resp:
                    await resp.content.read(4096)  # a little of the answer, to reuse the connection; never kept
                    status = resp.status
        except asyncio.TimeoutError:
            return None, f"no answer within {self.config.request_timeout_seconds:g} s", False
        except aiohttp.ClientError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300], False
        except OSError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300], False
        if status == 410:
            return status, "410 Gone: the subscriber retired this endpoint", True
        if 200 <= status < 300:
            return status, None, False
        return status, f"answered HTTP {status}", False
