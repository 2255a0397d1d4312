"""What the replica tests do over HTTP: requests spread over replicas, consents through the shared simulators, and
a webhook endpoint that can hold its answers (so deliveries stay in flight at the replica that sent them)."""
from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import orjson
from aiohttp import web

from tests.conftest import DEV
from tests.events_support import Subscriber
from tests.flows import play_end_user
from tests.payments_flow import REDIRECT
from tests.replicas.cluster import Cluster, eventually, listen_port

Answer = tuple[int, dict[str, str], bytes]  # status, headers, body


async def call(http: aiohttp.ClientSession, method: str, url: str, *, headers: dict[str, str] = DEV,
               **kw: Any) -> Answer:
    async with http.request(method, url, headers=headers, **kw) as resp:
        return resp.status, dict(resp.headers), await resp.read()


def keyed(key: str) -> dict[str, str]:
    return {**DEV, "Idempotency-Key": key}


def outcome(answer: Answer) -> tuple[int, str]:
    """(status, the resource's `status`) for a success, (status, the problem's `code`) for a failure."""
    status, _, body = answer
    document = json.loads(body)
    return status, str(document.get("status") if status < 300 else document.get("code"))


def spread(cluster: Cluster, n: int) -> list[str]:
    """n base URLs, round robin over the replicas."""
    bases = [cluster[name].base for name in cluster.names]
    return [bases[i % len(bases)] for i in range(n)]


def token_grants(bank: Any, grant_type: str) -> list[dict[str, str]]:
    """The forms of the bank's token endpoint calls with this grant type (the simulator's call log)."""
    forms = [dict(parse_qsl(c.body.decode())) for c in bank.calls.matching("POST", r"^/token$")]
    return [f for f in forms if f.get("grant_type") == grant_type]


async def refused(port: int) -> bool:
    """Whether a new connection to the local port is refused (nothing listens there)."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except (ConnectionRefusedError, ConnectionResetError):  # reset: the listener closed while this one was queued
        return True
    writer.close()
    return False


# --- consents --------------------------------------------------------------------------------------------------------
async def uk_consent(http: aiohttp.ClientSession, create: str, complete: str) -> dict[str, Any]:
    """A stripe-uk consent created through `create`, approved at the bank, completed through `complete`."""
    status, _, body = await call(http, "POST", f"{create}/v1/consents",
                                 json={"provider": "stripe-uk", "redirect_uri": REDIRECT})
    assert status == 201, body
    consent = json.loads(body)
    redirect = await play_end_user(consent["authorisation_url"])
    status, _, body = await call(http, "POST", f"{complete}/v1/consents/{consent['id']}/complete",
                                 json={"redirect_result": redirect})
    assert status == 200 and json.loads(body)["status"] == "authorised", body
    return dict(json.loads(body))


async def thredd_events(http: aiohttp.ClientSession, cluster: Cluster, consents: int) -> list[dict[str, Any]]:
    """`consents` thredd consents made through the replicas in turn and approved by the simulated end user; the
    simulator's webhooks (to the public address, replica a) make two events of each (consent.authorised,
    accounts.added). Returns the events once all are in."""
    for base in spread(cluster, consents):
        status, _, body = await call(http, "POST", f"{base}/v1/consents",
                                     json={"provider": "thredd", "redirect_uri": "https://app.example.com/cb"})
        assert status == 201, body
        await play_end_user(json.loads(body)["authorisation_url"])
    found: list[dict[str, Any]] = []

    async def all_in() -> bool:
        nonlocal found
        status, _, body = await call(http, "GET", f"{cluster.replicas['a'].base}/v1/events", params={"limit": 200})
        page = json.loads(body)
        assert status == 200 and not page["has_more"], page
        found = list(page["data"])
        return len(found) == 2 * consents

    await eventually(all_in, f"{2 * consents} events")
    return found


# --- the subscriber --------------------------------------------------------------------------------------------------
async def subscribe(http: aiohttp.ClientSession, base: str, url: str) -> dict[str, Any]:
    status, _, body = await call(http, "POST", f"{base}/v1/webhook-subscriptions",
                                 json={"url": url, "event_types": ["*"]})
    assert status == 201, body
    return dict(json.loads(body))


class HoldingSubscriber(Subscriber):
    """Records each delivery as it arrives, with the sender's local port, and answers 200, at once or, while
    holding, only after `release()`: what it holds is in flight at the replica that sent it."""

    def __init__(self, *, holding: bool = False) -> None:
        super().__init__()
        self.port = listen_port()
        self.gate = asyncio.Event()
        if not holding:
            self.gate.set()

    def release(self) -> None:
        self.gate.set()

    @property
    def held(self) -> list[dict[str, Any]]:
        return [r for r in self.received if not r["answered"]]

    def held_by(self, cluster: Cluster, name: str) -> set[str]:
        """webhook-ids held now whose sender is replica `name` (its connection is open: it is waiting)."""
        return {r["headers"]["webhook-id"] for r in self.held
                if r["peer_port"] is not None and cluster.owner_of(r["peer_port"]) == name}

    async def _receive(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        body = await request.read()
        entry = {"headers": dict(request.headers), "body": body, "json": orjson.loads(body), "at": time.monotonic(),
                 "status": 200, "peer_port": peer[1] if peer else None, "answered": False}
        self.received.append(entry)
        await self.gate.wait()
        entry["answered"] = True
        return web.Response(status=200)


def one_message_per_id(received: list[dict[str, Any]]) -> None:
    """Every webhook-id names its event and always came with the same body."""
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for request in received:
        assert request["headers"]["webhook-id"] == request["json"]["id"]
        bodies[request["json"]["id"]].add(request["body"])
    assert all(len(b) == 1 for b in bodies.values()), "a webhook-id was sent with two different bodies"


def deliveries_logged(cluster: Cluster) -> dict[str, list[str]]:
    """Each replica's delivery attempts (event ids), from its log."""
    return {name: [e["event_id"] for e in r.log_events() if e.get("event") == "event_delivery"]
            for name, r in cluster.replicas.items()}
