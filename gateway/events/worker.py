"""Running the event workers: inside `gateway serve`, or alone as `gateway worker` (a separate process).

`gateway worker` opens the store and runs the delivery worker and the consent expiry watcher until SIGTERM or
SIGINT; then it stops claiming, lets in-flight deliveries finish within `server.shutdown_grace_seconds`, and hands
back what it still holds so another worker takes it at once. Any number of workers may run against one store.
With `events.worker_metrics_port` (or `--metrics-port`) it also answers /metrics, /healthz and /readyz there.
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.config import GatewayConfig
from gateway.events.delivery import DeliveryWorker
from gateway.events.expiry import ExpiryWatcher
from gateway.models.time import utcnow
from gateway.observability import Metrics
from gateway.store import Store, store_check
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


# The backlog is counted at most this often, however often /metrics is read (it is public on the serve port).
BACKLOG_READ_INTERVAL_SECONDS = 2.0


async def observe_backlog(store: Store, metrics: Metrics) -> None:
    """Set the backlog gauges from the store (at scrape time: nothing is counted unless someone looks)."""
    if time.monotonic() - metrics.backlog_read_at < BACKLOG_READ_INTERVAL_SECONDS:
        return
    metrics.backlog_read_at = time.monotonic()
    now = utcnow()
    try:
        backlog = await store.delivery_backlog(now)
    except Exception as exc:  # a scrape reports what it can; the store's own probe says why
        log.warning("event_backlog_unreadable", error=type(exc).__name__)
        return
    metrics.deliveries_pending.set(backlog.pending)
    metrics.deliveries_due.set(backlog.due)
    metrics.deliveries_failed.set(backlog.failed)
    lag = (now - backlog.oldest_due_at).total_seconds() if backlog.oldest_due_at is not None else 0.0
    metrics.delivery_lag.set(max(lag, 0.0))


def probe_app(store: Store, metrics: Metrics) -> web.Application:
    """What `gateway worker` answers on its metrics port: /metrics, /healthz (alive) and /readyz (store reachable)."""

    async def metrics_view(_request: web.Request) -> web.Response:
        await observe_backlog(store, metrics)
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        checks = {"store": await store_check(store)}
        ready = checks["store"] == "ok"
        return web.json_response({"status": "ready" if ready else "not_ready", "checks": checks},
                                 status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def run_worker(config: GatewayConfig, *, stop: asyncio.Event | None = None,
                     metrics_port: int | None = None) -> None:
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
    port = config.events.worker_metrics_port if metrics_port is None else metrics_port
    runner: web.AppRunner | None = None
    if port is not None:
        runner = web.AppRunner(probe_app(store, metrics), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, config.server.host, port).start()
        except OSError:
            await runner.cleanup()
            await store.close()
            raise
    workers = start_event_workers(store, Vault(store, config.security.encryption_key), config, metrics,
                                  name="worker")
    log.info("event_worker_started", store=config.store.url.split("://", 1)[0],
             metrics_port=_bound_port(runner))
    try:
        await stop.wait()
    finally:
        log.info("event_worker_stopping", grace_seconds=config.server.shutdown_grace_seconds)
        for worker in workers:
            await worker.stop(config.server.shutdown_grace_seconds)
        if runner is not None:
            await runner.cleanup()
        await store.close()
        log.info("event_worker_stopped")


def _bound_port(runner: web.AppRunner | None) -> int | None:
    """The port the probe server listens on (the one the OS chose when asked for 0)."""
    if runner is None:
        return None
    for address in runner.addresses:
        return int(address[1])
    return None
