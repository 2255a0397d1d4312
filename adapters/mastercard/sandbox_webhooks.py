"""Outgoing webhooks of the Mastercard platform simulators (US and AU): Connect and report events signed as the
platform signs them, delivered from background tasks on the platform's retry schedules.

- Connect and report events: the body pretty-printed (indent=2); `X-Signature` = hex HMAC-SHA256 keyed with the
  partner secret, over the exact bytes ("raw") or over the compact re-serialisation
  `json.dumps(obj, separators=(",", ":"), ensure_ascii=False)` ("compact", what the provider's own JSON.stringify
  sample computes). Any 2xx counts as delivered.

A schedule lists when each retry happens, in seconds after the first attempt (already multiplied by the
simulator's `retry_scale`). Events of one channel (a Connect link, a report, a subscription) go out in order: an
event waits until the one before it was delivered or given up. Every attempt is appended to `deliveries`.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import attrs

from adapters.mastercard.webhooks import SIGNATURE_MODES

__all__ = ["CONNECT_SCHEDULE", "REPORT_SCHEDULE", "SIGNATURE_MODES", "Delivery", "Outbox", "hmac_hex", "ok_2xx",
           "ok_200", "signed_request"]

log = logging.getLogger(__name__)

# "we will try multiple times within the first few minutes": 12 ms, 72 ms, 432 ms, 2.592 s, 15.552 s, 93.312 s
# (the hourly retries for 72 hours after those are not simulated).
CONNECT_SCHEDULE = (0.012, 0.072, 0.432, 2.592, 15.552, 93.312)
REPORT_SCHEDULE = (10.0, 60.0, 300.0)  # "three attempts to retry"; the docs give no times


def hmac_hex(key: str, data: bytes) -> str:
    return hmac.new(key.encode(), data, hashlib.sha256).hexdigest()


def signed_request(body: dict[str, Any], secret: str, mode: str) -> tuple[bytes, dict[str, str]]:
    """The bytes and headers of a Connect or report event."""
    raw = json.dumps(body, indent=2, ensure_ascii=False).encode()
    signed = raw if mode == "raw" else json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return raw, {"Content-Type": "application/json", "X-Signature": hmac_hex(secret, signed)}


@attrs.frozen
class Delivery:
    kind: str  # consent | connect | report
    url: str
    event_id: str
    event_type: str
    body: bytes
    headers: dict[str, str]
    schedule: tuple[float, ...]
    accept: Callable[[int], bool]  # whether a status counts as delivered


def ok_200(status: int) -> bool:
    return status == 200


def ok_2xx(status: int) -> bool:
    return 200 <= status < 300


class Outbox:
    """Background delivery of webhooks, and the timers that produce them (report completion)."""

    def __init__(self, deliveries: list[dict[str, Any]], *, timeout: float = 5.0, name: str = "mastercard") -> None:
        self.deliveries = deliveries
        self.timeout = timeout
        self.name = name  # the simulator, in log lines
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._channels: dict[str, asyncio.Task[None]] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background; `idle()` waits for it and `close()` cancels it."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def queue(self, channel: str, delivery: Delivery) -> asyncio.Future[None]:
        """Deliver after whatever this channel has queued before, retrying on the delivery's schedule. The future
        returned is done once the first attempt was made (or the delivery was cancelled)."""
        loop = asyncio.get_running_loop()
        previous = self._channels.get(channel)
        first: asyncio.Future[None] = loop.create_future()
        task = loop.create_task(self._after(previous, delivery, first))
        self._channels[channel] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: self._channels.pop(channel, None) if self._channels.get(channel) is t
                               else None)
        return first

    async def _after(self, previous: asyncio.Task[None] | None, delivery: Delivery,
                     first: asyncio.Future[None]) -> None:
        try:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            loop = asyncio.get_running_loop()
            started = loop.time()
            for attempt, at in enumerate((0.0, *delivery.schedule), start=1):
                await asyncio.sleep(max(0.0, started + at - loop.time()))
                status = await self.post(delivery, attempt)
                if not first.done():
                    first.set_result(None)
                if status is not None and delivery.accept(status):
                    return
        finally:
            if not first.done():
                first.set_result(None)
        log.warning("%s sandbox gave up on %s webhook %s (%s) to %s", self.name, delivery.kind, delivery.event_id,
                    delivery.event_type, delivery.url)

    async def post(self, delivery: Delivery, attempt: int = 1) -> int | None:
        """One attempt, recorded: the answer's status, or None when no answer came."""
        status: int | None = None
        try:
            async with self._client().post(delivery.url, data=delivery.body, headers=delivery.headers) as resp:
                status = resp.status
                await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:  # ValueError: bad headers
            log.info("%s sandbox webhook to %s failed: %r", self.name, delivery.url, exc)
        self.deliveries.append({"kind": delivery.kind, "url": delivery.url, "event_id": delivery.event_id,
                                "event_type": delivery.event_type, "status": status, "attempt": attempt})
        return status

    async def idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._channels.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
