"""A record of every request a simulator received, so tests can assert what reached the upstream (or that nothing did).

Control requests (`/_sandbox/...`) are never recorded. A call is recorded before faults apply, so a request answered
by an injected fault still counts as a call; its `status` is the status sent, or None when no response was sent.
The log keeps the latest `max_calls` calls, so a long load test against a simulator does not grow its memory.
"""
from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs
import orjson
from aiohttp import web

CONTROL_PREFIX = "/_sandbox/"


def is_control_path(path: str) -> bool:
    return path.startswith(CONTROL_PREFIX)


@attrs.define
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    time: float  # epoch seconds
    status: int | None = None

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "query": self.query, "headers": self.headers,
                "body": self.body.decode("utf-8", "replace"), "time": self.time, "status": self.status}


class CallLog:
    def __init__(self, max_calls: int | None = 10_000) -> None:
        self._calls: deque[Call] = deque(maxlen=max_calls)

    def __len__(self) -> int:
        return len(self._calls)

    def __iter__(self) -> Iterator[Call]:
        return iter(list(self._calls))

    def all(self) -> list[Call]:
        return list(self._calls)

    def clear(self) -> None:
        self._calls.clear()

    def matching(self, method: str | None = None, path_regex: str | None = None) -> list[Call]:
        pattern = re.compile(path_regex) if path_regex else None
        return [c for c in self._calls
                if (method is None or c.method == method.upper()) and (pattern is None or pattern.search(c.path))]

    async def record(self, request: web.Request) -> Call:
        body = await request.read() if request.body_exists else b""
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        call = Call(request.method, request.path, dict(request.query), headers, body, time.time())
        self._calls.append(call)
        return call

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if is_control_path(request.path):
            return await handler(request)
        call = await self.record(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            call.status = exc.status
            raise
        if request.transport is not None and not request.transport.is_closing():
            call.status = response.status
        return response
