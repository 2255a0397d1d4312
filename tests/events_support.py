"""A product team's webhook endpoint for the event tests: a real HTTP server on a local port that records every
delivery and can be told to fail, answer slowly, answer 410, or go away and come back on the same port."""
from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.conftest import DEV, unused_port

# Events delivered within a test's patience: retries after 50 ms, 100 ms, 200 ms …, for 30 s.
FAST_EVENTS: dict[str, Any] = {"events": {
    "poll_interval_seconds": 0.05, "retry_base_seconds": 0.05, "retry_max_interval_seconds": 0.2,
    "retry_horizon_seconds": 30, "retention_seconds": 60, "request_timeout_seconds": 2, "lease_seconds": 3,
    "expiry_check_interval_seconds": 0.05,
}}


class Subscriber:
    def __init__(self, *, status: int = 200, delay: float = 0.0) -> None:
        self.status, self.delay = status, delay
        self.received: list[dict[str, Any]] = []  # {"headers", "body", "json", "at"} per request, failed ones too
        self.port = unused_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> "Subscriber":
        app = web.Application()
        app.router.add_post("/hooks", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        for _ in range(50):  # coming back on the same port: the old socket may linger a moment
            try:
                await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()
                return self
            except OSError:
                await asyncio.sleep(0.05)
        raise AssertionError(f"port {self.port} stayed busy")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append({"headers": dict(request.headers), "body": body, "json": orjson.loads(body),
                              "at": time.monotonic(), "status": self.status})
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status)

    # --- what arrived ---------------------------------------------------------------------------------------------
    def accepted(self) -> list[dict[str, Any]]:
        """Deliveries answered 2xx, in arrival order."""
        return [r for r in self.received if 200 <= r["status"] < 300]

    def accepted_ids(self) -> list[str]:
        return [r["headers"]["webhook-id"] for r in self.accepted()]

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [r["json"] for r in self.accepted() if r["json"]["type"] == event_type]

    async def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            assert time.monotonic() < deadline, f"gave up waiting; received {[r['json']['type'] for r in self.received]}"
            await asyncio.sleep(0.02)


def verifies(delivery: dict[str, Any], secret: str) -> bool:
    try:
        Webhook(secret).verify(delivery["body"], delivery["headers"])
        return True
    except WebhookVerificationError:
        return False


async def subscribe(gw: Any, url: str, event_types: list[str] | None = None, headers: dict[str, str] = DEV,
                    **extra: Any) -> dict[str, Any]:
    resp = await gw.post("/v1/webhook-subscriptions", json={"url": url, "event_types": event_types or ["*"], **extra},
                         headers=headers)
    body = await resp.json()
    assert resp.status == 201, body
    return body


async def all_events(gw: Any, headers: dict[str, str] = DEV, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 200, **params}
    while True:
        resp = await gw.get("/v1/events", params=query, headers=headers)
        page = await resp.json()
        assert resp.status == 200, page
        out += page["data"]
        if not page["has_more"]:
            return out
        query = {"limit": 200, "cursor": page["next_cursor"], **{k: v for k, v in params.items()}}
