"""Fault injection for the provider simulators: the failures the gateway's connectivity layer must survive.

A `Fault` says what goes wrong (`kind`), for which requests (`path` regex, `method`) and how often (`times`; None
means until cleared). The injector's middleware applies the first matching fault. Most act instead of the
simulator's handler, so the request has no effect upstream:

- latency          sleep `delay` seconds, then answer normally
- status           answer `status` with `body`, or with the simulator's own error body for that status
- rate_limit       answer 429, with `Retry-After: retry_after` unless that is None
- malformed_json   answer 200 `application/json` whose body is cut off mid-document
- drop_connection  close the connection without answering (aiohttp's client resends an idempotent request once
                   when the server disconnects, so a GET, PUT or DELETE needs times=2 to fail at the client)
- expired_token    call the simulator's hook (which expires its issued tokens), then answer normally

Two act after the handler, so the request has taken effect upstream but the client cannot know it: what makes a
client that retries a payment without an idempotency key pay twice.

- lose_response    run the handler, then close the connection without sending its answer (same client retry
                   caveat as drop_connection)
- late_response    run the handler, then hold its answer `delay` seconds before sending it (a client with a
                   shorter timeout gives up after the upstream acted)
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from aiohttp import web

from adapters.sandbox_kit.calllog import is_control_path

FAULT_KINDS = frozenset({"latency", "status", "rate_limit", "malformed_json", "drop_connection", "expired_token",
                         "lose_response", "late_response"})
# What a client sees for malformed_json: a JSON document that stops in the middle of a string.
MALFORMED_JSON = b'{"found": 2, "displaying": 2, "moreAvailable": "false", "transactions": [{"id": 1001, "desc'

ErrorBody = Callable[[web.Request, int], dict[str, Any]]


def _check_regex(_: Any, __: Any, value: str | None) -> None:
    if value is not None:
        re.compile(value)


def _positive_or_none(_: Any, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{attribute.name} must be at least 1 or null (until cleared)")


@attrs.define(kw_only=True, on_setattr=attrs.setters.NO_OP)  # validated once; `times` then counts down
class Fault:
    kind: str = attrs.field(validator=attrs.validators.in_(FAULT_KINDS))
    path: str | None = attrs.field(default=None, validator=_check_regex)
    method: str | None = attrs.field(default=None, converter=lambda m: m.upper() if m else None)
    times: int | None = attrs.field(default=1, validator=_positive_or_none)
    delay: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    status: int = attrs.field(default=503, validator=[attrs.validators.ge(100), attrs.validators.le(599)])
    retry_after: int | None = 1
    body: dict[str, Any] | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        return self.path is None or re.search(self.path, path) is not None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class FaultInjector:
    """Holds the active faults and applies them to requests through `middleware`.

    `error_body(request, status)` gives the simulator's own error body for a status; `on_expired_token()` is called
    by the expired_token fault. Both are usually set by the simulator after construction.
    """

    def __init__(self, *, error_body: ErrorBody | None = None,
                 on_expired_token: Callable[[], None] | None = None) -> None:
        self.error_body = error_body
        self.on_expired_token = on_expired_token
        self._faults: list[Fault] = []

    @property
    def faults(self) -> list[Fault]:
        return list(self._faults)

    def add(self, kind: str, **kw: Any) -> Fault:
        fault = Fault(kind=kind, **kw)
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault matching this request, counting one use of it."""
        for fault in self._faults:
            if fault.matches(method, path):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault
        return None

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if not self._faults or is_control_path(request.path):
            return await handler(request)
        fault = self.take(request.method, request.path)
        if fault is None:
            return await handler(request)
        if fault.kind == "latency":
            await asyncio.sleep(fault.delay)
            return await handler(request)
        if fault.kind == "expired_token":
            if self.on_expired_token is not None:
                self.on_expired_token()
            return await handler(request)
        if fault.kind == "status":
            return web.json_response(self._body(request, fault, fault.status), status=fault.status)
        if fault.kind == "rate_limit":
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
            return web.json_response(self._body(request, fault, 429), status=429, headers=headers)
        if fault.kind == "malformed_json":
            return web.Response(body=MALFORMED_JSON, content_type="application/json")
        if fault.kind == "lose_response":
            await _run_anyway(request, handler)
            return await _drop(request)
        if fault.kind == "late_response":
            response = await _run_anyway(request, handler)
            await asyncio.sleep(fault.delay)
            if isinstance(response, web.HTTPException):
                raise response
            return response
        return await _drop(request)

    def _body(self, request: web.Request, fault: Fault, status: int) -> dict[str, Any]:
        if fault.body is not None:
            return fault.body
        if self.error_body is not None:
            return self.error_body(request, status)
        return {"error": "simulated fault", "status": status}


async def _run_anyway(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
    """The handler's answer, an HTTPException (aiohttp's way to answer 404 or 405) included: the faults that act
    after the handler must hold back or lose whatever it answered."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return exc


async def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without a response: the client sees a disconnect, not an HTTP status."""
    request.protocol.force_close()
    if request.transport is not None:
        request.transport.abort()
    # The response below is never written: aiohttp drops it quietly because the transport is gone.
    return web.Response(status=204)
