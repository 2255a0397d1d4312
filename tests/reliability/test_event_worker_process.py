"""The event workers as real processes: `gateway serve` killed (SIGKILL) in the middle of deliveries, then
`gateway worker` taking over what it left; and `gateway worker` as the only deliverer when serve runs none.

The subscriber is a real local HTTP endpoint in the test process; events are made through real flows over HTTP
(thredd consents, whose simulator runs inside the gateway process and sends it its webhooks)."""
from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import IO, Any, Awaitable, Callable

import aiohttp
from aiohttp import web

from tests.conftest import DEV, ROOT, unused_port
from tests.events_support import Subscriber
from tests.flows import play_end_user

EVENTS_TABLE = """[events]
allow_http = true
allow_private_targets = true
worker_in_serve = {worker_in_serve}
poll_interval_seconds = 0.05
retry_base_seconds = 0.05
retry_max_interval_seconds = 0.2
retry_horizon_seconds = 60
retention_seconds = 120
request_timeout_seconds = 0.8
lease_seconds = 1
expiry_check_interval_seconds = 0.5
"""


def write_config(tmp_path: Path, port: int, *, worker_in_serve: bool = True) -> Path:
    """config/local.toml with its own database and ports, and fast event retries with a one-second lease."""
    text = (ROOT / "config" / "local.toml").read_text()
    text = re.sub(r"sandbox_port = \d+", "sandbox_port = 0", text)
    text = text.replace('url = "sqlite:///var/gateway.db"', f'url = "sqlite:///{tmp_path}/gw.db"')
    text = text.replace('public_url = "http://127.0.0.1:8080"', f'public_url = "http://127.0.0.1:{port}"')
    text = re.sub(r'format = "auto"', 'format = "json"', text)
    events = EVENTS_TABLE.format(worker_in_serve=str(worker_in_serve).lower())
    text, replaced = re.subn(r"^\[events\]\n.*?(?=^\[)", events + "\n", text, flags=re.S | re.M)
    assert replaced == 1, "config/local.toml has no [events] table to replace"
    path = tmp_path / "local.toml"
    path.write_text(text)
    return path


class Process:
    """A gateway command as a child process, its output in a file (a pipe nobody reads would block it)."""

    def __init__(self, tmp_path: Path, name: str, *args: str) -> None:
        self.log_path = tmp_path / f"{name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def log_events(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    async def wait(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while (code := self.proc.poll()) is None:
            assert time.monotonic() < deadline, f"{self.proc.args} did not exit:\n{self.tail()}"
            await asyncio.sleep(0.05)
        return code

    def tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])

    async def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            await self.wait()
        self._log.close()


def serve(tmp_path: Path, config: Path, port: int, name: str = "serve") -> Process:
    return Process(tmp_path, name, "serve", "--config", str(config), "--port", str(port))


def worker(tmp_path: Path, config: Path, name: str = "worker", *args: str) -> Process:
    return Process(tmp_path, name, "worker", "--config", str(config), *args)


async def metric_values(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """A Prometheus text page as {series: value} (`name{labels}` keys exactly as written)."""
    async with http.get(url) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.05)


async def ready(http: aiohttp.ClientSession, base: str, process: Process) -> None:
    async def up() -> bool:
        assert process.proc.poll() is None, f"the gateway exited:\n{process.tail()}"
        try:
            async with http.get(f"{base}/readyz") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    await eventually(up, "the gateway to become ready")


async def subscribe(http: aiohttp.ClientSession, base: str, url: str) -> dict[str, Any]:
    async with http.post(f"{base}/v1/webhook-subscriptions", json={"url": url, "event_types": ["*"]},
                         headers=DEV) as resp:
        body = await resp.json()
        assert resp.status == 201, body
        return body


async def thredd_consent(http: aiohttp.ClientSession, base: str) -> None:
    """A thredd consent, approved by the simulated end user; the simulator then sends the gateway its webhooks."""
    async with http.post(f"{base}/v1/consents", headers=DEV,
                         json={"provider": "thredd", "redirect_uri": "https://app.example.com/cb"}) as resp:
        consent = await resp.json()
        assert resp.status == 201, consent
    await play_end_user(consent["authorisation_url"])


async def listed_events(http: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    async with http.get(f"{base}/v1/events", params={"limit": 200}, headers=DEV) as resp:
        page = await resp.json()
        assert resp.status == 200 and not page["has_more"], page
        return list(page["data"])


def stored(db_path: Path) -> tuple[set[str], dict[str, str]]:
    """(every event id, each delivery's status by event id), read from the database file, read-only."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as db:
        events = {row[0] for row in db.execute("SELECT id FROM events")}
        deliveries = {row[0]: row[1] for row in db.execute("SELECT event_id, status FROM deliveries")}
    return events, deliveries


class HoldingSubscriber(Subscriber):
    """Answers the first `free` deliveries at once and holds the rest, unanswered, until `release()`: what it holds
    is in flight at the gateway."""

    def __init__(self, free: int) -> None:
        super().__init__()
        self.free, self.gate = free, asyncio.Event()
        self.answered: list[str] = []

    def release(self) -> None:
        self.gate.set()

    async def _receive(self, request: web.Request) -> web.Response:
        response = await super()._receive(request)
        if self.free > 0:
            self.free -= 1
        else:
            await self.gate.wait()
        self.answered.append(request.headers["webhook-id"])
        return response


def assert_one_message_per_id(received: list[dict[str, Any]]) -> None:
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for request in received:
        assert request["headers"]["webhook-id"] == request["json"]["id"]
        bodies[request["json"]["id"]].add(request["body"])
    assert all(len(b) == 1 for b in bodies.values())


async def test_deliveries_in_flight_when_serve_is_killed_are_completed_by_a_worker(tmp_path: Path) -> None:
    port = unused_port()
    base, config, db_path = f"http://127.0.0.1:{port}", write_config(tmp_path, port), tmp_path / "gw.db"
    subscriber = await HoldingSubscriber(free=3).start()
    gateway = serve(tmp_path, config, port)
    separate: Process | None = None
    try:
        async with aiohttp.ClientSession() as http:
            await ready(http, base, gateway)
            await subscribe(http, base, subscriber.url)
            for _ in range(5):
                await thredd_consent(http, base)

            async def all_in() -> bool:
                return len(await listed_events(http, base)) == 10

            await eventually(all_in, "the simulator's webhooks to become 10 events")

            async def mid_delivery() -> bool:  # some answered, some held in flight, the rest not yet sent
                return len(subscriber.answered) >= 3 and len(subscriber.received) > len(subscriber.answered)

            await eventually(mid_delivery, "deliveries to be in flight")
        gateway.proc.send_signal(signal.SIGKILL)
        assert await gateway.wait() == -signal.SIGKILL
        before = len(subscriber.received)
        held = {r["headers"]["webhook-id"] for r in subscriber.received} - set(subscriber.answered)
        answered_before = set(subscriber.answered)
        events, deliveries = stored(db_path)
        assert len(events) == 10 and before < len(events) and held
        assert {e for e, status in deliveries.items() if status != "delivered"} >= held  # never answered
        subscriber.release()  # from now on every delivery is answered at once (the held answers go nowhere)

        separate = worker(tmp_path, config)

        def after_kill() -> set[str]:
            return {r["headers"]["webhook-id"] for r in subscriber.received[before:]}

        async def caught_up() -> bool:
            assert separate is not None and separate.proc.poll() is None, separate.tail() if separate else ""
            ids, status = stored(db_path)
            return ids <= answered_before | after_kill() and set(status.values()) == {"delivered"}

        await eventually(caught_up, "the worker to deliver every event")
        ids, status = stored(db_path)
        assert ids == events and set(status) == events  # every event of the database, each delivered
        assert held <= after_kill()  # what was in flight when serve died was sent again ...
        assert_one_message_per_id(subscriber.received)  # ... as the same message, under the same webhook-id
        assert {r["json"]["type"] for r in subscriber.received} == {"consent.authorised", "accounts.added"}

        separate.proc.send_signal(signal.SIGTERM)
        assert await separate.wait() == 0, separate.tail()
        logged = [e.get("event") for e in separate.log_events()]
        assert "event_worker_started" in logged and "event_worker_stopped" in logged
        assert any(e.get("event") == "event_delivery" and e.get("outcome") == "delivered"
                   for e in separate.log_events())
    finally:
        subscriber.release()
        await gateway.kill()
        if separate is not None:
            await separate.kill()
        await subscriber.stop()


async def test_with_no_worker_in_serve_only_a_worker_process_delivers(tmp_path: Path) -> None:
    port = unused_port()
    base, config = f"http://127.0.0.1:{port}", write_config(tmp_path, port, worker_in_serve=False)
    subscriber = await Subscriber().start()
    gateway = serve(tmp_path, config, port)
    separate: Process | None = None
    try:
        async with aiohttp.ClientSession() as http:
            await ready(http, base, gateway)
            sub = await subscribe(http, base, subscriber.url)
            await thredd_consent(http, base)

            async def both_in() -> bool:
                return len(await listed_events(http, base)) == 2

            await eventually(both_in, "the simulator's webhooks to become events")
            await asyncio.sleep(1.0)  # twenty poll intervals: a delivery worker would have sent them by now
            events = await listed_events(http, base)
            assert subscriber.received == []
            for event in events:
                [delivery] = event["deliveries"]
                assert delivery["subscription_id"] == sub["id"]
                assert delivery["status"] == "pending" and delivery["attempts"] == 0, delivery
            # The backlog shows on serve's metrics: two due and waiting for at least the second just slept.
            seen = await metric_values(http, f"{base}/metrics")
            assert seen["gateway_event_deliveries_pending"] == 2 and seen["gateway_event_deliveries_due"] == 2
            assert seen["gateway_event_delivery_lag_seconds"] >= 1.0 and seen["gateway_event_deliveries_failed"] == 0

            probe = unused_port()
            separate = worker(tmp_path, config, "worker", "--metrics-port", str(probe))
            await subscriber.wait_for(lambda s: set(s.accepted_ids()) >= {e["id"] for e in events}, timeout=30)

            async def recorded() -> bool:
                return all([e["deliveries"][0]["status"] == "delivered" for e in await listed_events(http, base)])

            await eventually(recorded, "serve to show the worker's deliveries")
            assert set(subscriber.accepted_ids()) == {e["id"] for e in events}
            assert_one_message_per_id(subscriber.received)
            # The worker process answers its own probes: what it delivered, and the backlog now empty.
            worker_base = f"http://127.0.0.1:{probe}"
            seen = await metric_values(http, f"{worker_base}/metrics")
            assert seen['gateway_event_deliveries_total{outcome="delivered"}'] == 2
            assert seen["gateway_event_deliveries_pending"] == 0 and seen["gateway_event_delivery_lag_seconds"] == 0
            for path in ("/healthz", "/readyz"):
                async with http.get(f"{worker_base}{path}") as resp:
                    assert resp.status == 200, await resp.text()
            worker_log = separate.log_events()
            assert [e.get("metrics_port") for e in worker_log if e.get("event") == "event_worker_started"] == [probe]

        separate.proc.send_signal(signal.SIGTERM)
        assert await separate.wait() == 0, separate.tail()
        assert "event_worker_stopped" in [e.get("event") for e in separate.log_events()]
        gateway.proc.send_signal(signal.SIGTERM)
        assert await gateway.wait() == 0, gateway.tail()
    finally:
        await gateway.kill()
        if separate is not None:
            await separate.kill()
        await subscriber.stop()


async def test_a_worker_whose_metrics_port_is_taken_says_so_and_exits(tmp_path: Path) -> None:
    import socket

    config = write_config(tmp_path, unused_port(), worker_in_serve=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = worker(tmp_path, config, "worker", "--metrics-port", str(taken.getsockname()[1]))
        try:
            assert await busy.wait() == 1, busy.tail()
        finally:
            await busy.kill()
    assert "cannot listen on the metrics port" in busy.log_path.read_text()
