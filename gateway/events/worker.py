"""Running the event workers: inside `gateway serve`, or alone as `gateway worker` (a separate process).

`gateway worker` opens the store and runs the delivery worker and the consent expiry watcher until SIGTERM or
SIGINT; then it stops claiming, lets in-flight deliveries finish within `server.shutdown_grace_seconds`, and hands
back what it still holds so another worker takes it at once. Any number of workers may run against one store.
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import structlog

from gateway.config import GatewayConfig
from gateway.events.delivery import DeliveryWorker
from gateway.events.expiry import ExpiryWatcher
from gateway.observability import Metrics
from gateway.store import Store
from gateway.vault import Vault

log = structlog.get_logger("gateway.events")


def start_event_workers(store: Store, vault: Vault | None, config: GatewayConfig, metrics: Metrics, *,
                        name: str) -> list[Any]:
    """Start the expiry watcher and (with a vault to open signing secrets) the delivery worker."""
    watcher = ExpiryWatcher(store, config.events, metrics)
    watcher.start()
    workers: list[Any] = [watcher]
    if vault is None:
        log.warning("event_delivery_off", reason="security.encryption_key is not set: subscriptions cannot exist")
        return workers
    delivery = DeliveryWorker(store, vault, config.events, metrics, name=name)
    delivery.start()
    return [delivery, *workers]


async def run_worker(config: GatewayConfig, *, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set or the process is told to end."""
    from gateway.store import open_store

    if config.security.encryption_key is None:
        raise SystemExit("security.encryption_key is required: subscriptions' signing secrets are kept sealed")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    store = open_store(config.store.url, event_horizon_seconds=config.events.retry_horizon_seconds,
                       pool_min_size=config.store.pool_min_size, pool_max_size=config.store.pool_max_size,
                       schema=config.store.schema)
    await store.open()
    metrics = Metrics()
    workers = start_event_workers(store, Vault(store, config.security.encryption_key), config, metrics,
                                  name="worker")
    log.info("event_worker_started", store=config.store.url.split("://", 1)[0])
    try:
        await stop.wait()
    finally:
        log.info("event_worker_stopping", grace_seconds=config.server.shutdown_grace_seconds)
        for worker in workers:
            await worker.stop(config.server.shutdown_grace_seconds)
        await store.close()
        log.info("event_worker_stopped")
