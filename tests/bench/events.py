"""Event delivery benchmark: how fast the outbox worker gets events to a subscriber, and how late they arrive.

    .venv/bin/python -m tests.bench.events [--events 2000] [--subscriptions 2]

Opens a SQLite store in a temporary directory, registers `--subscriptions` subscriptions pointing at a local
receiver (an aiohttp server in the same process, answering 204 at once), writes `--events` events in batches of
50 (each in its own transaction, as the API writes them), and runs one DeliveryWorker with the default
concurrency until every delivery is acknowledged. Prints deliveries per second and the emit-to-receipt latency
(p50, p99). The receiver and the worker share one process and core, so this is a floor, not a ceiling.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from typing import Any

from aiohttp import web

from gateway.config import EventsConfig
from gateway.events import canonical, signing
from gateway.events.delivery import DeliveryWorker
from gateway.ids import new_id
from gateway.models.time import utcnow
from gateway.observability import Metrics, configure_logging
from gateway.secrets import Secret
from gateway.store import open_store
from gateway.vault import Vault


async def run(events: int, subscriptions: int) -> dict[str, Any]:
    received: dict[str, float] = {}
    sent_at: dict[str, float] = {}
    done = asyncio.Event()
    expected = events * subscriptions

    async def receive(request: web.Request) -> web.Response:
        key = f"{request.match_info['sub']}/{request.headers['webhook-id']}"
        received.setdefault(key, time.perf_counter())
        if len(received) >= expected:
            done.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{sub}", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/bench.db")
        await store.open()
        vault = Vault(store, Secret("bench-only-encryption-key-0123456789"))
        now = utcnow()
        for i in range(subscriptions):
            sid = new_id("sub")
            await store.insert_subscription(canonical.SubscriptionRecord(
                tenant="bench", id=sid, url=f"http://127.0.0.1:{port}/{sid}", event_types=("*",), ordered=False,
                status="enabled", created_at=now, updated_at=now,
                secrets=signing.seal_secrets(vault, "bench", sid, [{"secret": signing.new_secret(),
                                                                    "expires_at": None}])))
        config = EventsConfig(allow_http=True, allow_private_targets=True, poll_interval_seconds=0.05)
        worker = DeliveryWorker(store, vault, config, Metrics(), name="bench")
        worker.start()
        started = time.perf_counter()
        for batch in range(0, events, 50):
            chunk = [canonical.EventRecord(tenant="bench", id=new_id("evt"), type=canonical.PAYMENT_STATUS_CHANGED,
                                           created_at=utcnow(), subject_type="payment", subject_id=f"pay_{n}",
                                           order_key=f"pay_{n}", data={"n": n})
                     for n in range(batch, min(batch + 50, events))]
            stamp = time.perf_counter()
            await store.emit_events(chunk)
            for event in chunk:
                sent_at[event.id] = stamp
        await asyncio.wait_for(done.wait(), timeout=600)
        elapsed = time.perf_counter() - started
        await worker.stop()
        await store.close()
    await runner.cleanup()
    latencies = sorted((at - sent_at[key.split("/", 1)[1]]) * 1000 for key, at in received.items())
    return {"deliveries": expected, "seconds": round(elapsed, 2), "per_second": round(expected / elapsed),
            "latency_ms_p50": round(statistics.median(latencies), 1),
            "latency_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--subscriptions", type=int, default=2)
    args = parser.parse_args()
    configure_logging("console", "warning")  # one line per delivery would measure the terminal
    print(asyncio.run(run(args.events, args.subscriptions)))


if __name__ == "__main__":
    main()
