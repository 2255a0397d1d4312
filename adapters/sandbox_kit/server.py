"""Assemble a simulator's aiohttp app with the kit's pieces, and run it on a local port inside the current loop.

`build_app` puts the call log outermost (every request is recorded, faulted or not), then the fault injector, then
the simulator's own middlewares, and adds the control routes an out-of-process test uses:

    POST   /_sandbox/faults           JSON of a Fault -> 201 the fault
    GET    /_sandbox/faults           the active faults
    DELETE /_sandbox/faults           clear them
    GET    /_sandbox/calls            the recorded calls
    DELETE /_sandbox/calls            forget them
    POST   /_sandbox/actions/{name}   run one of the simulator's named actions (e.g. expire_tokens)
"""
from __future__ import annotations

import abc
from urllib.parse import urlencode, urlsplit, urlunsplit

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from adapters.sandbox_kit.calllog import CONTROL_PREFIX, CallLog
from adapters.sandbox_kit.faults import FaultInjector

FAULTS = web.AppKey("sandbox_faults", FaultInjector)
CALLS = web.AppKey("sandbox_calls", CallLog)
ACTIONS = web.AppKey("sandbox_actions", dict)


def build_app(*, faults: FaultInjector, calls: CallLog, middlewares: Iterable[Any] = (),
              actions: Mapping[str, Callable[[], Any]] | None = None,
              client_max_size: int = 1024 * 1024) -> web.Application:
    app = web.Application(middlewares=[calls.middleware, faults.middleware, *middlewares],
                          client_max_size=client_max_size)
    app[FAULTS] = faults
    app[CALLS] = calls
    app[ACTIONS] = dict(actions or {})
    app.router.add_post(CONTROL_PREFIX + "faults", _add_fault)
    app.router.add_get(CONTROL_PREFIX + "faults", _list_faults)
    app.router.add_delete(CONTROL_PREFIX + "faults", _clear_faults)
    app.router.add_get(CONTROL_PREFIX + "calls", _list_calls)
    app.router.add_delete(CONTROL_PREFIX + "calls", _clear_calls)
    app.router.add_post(CONTROL_PREFIX + "actions/{name}", _run_action)
    return app


async def _add_fault(request: web.Request) -> web.Response:
    try:
        spec = await request.json()
        if not isinstance(spec, dict) or "kind" not in spec:
            raise ValueError("expected a JSON object with at least 'kind'")
        fault = request.app[FAULTS].add(**spec)
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(fault.to_json(), status=201)


async def _list_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": [f.to_json() for f in request.app[FAULTS].faults]})


async def _clear_faults(request: web.Request) -> web.Response:
    request.app[FAULTS].clear()
    return web.Response(status=204)


async def _list_calls(request: web.Request) -> web.Response:
    return web.json_response({"calls": [c.to_json() for c in request.app[CALLS]]})


async def _clear_calls(request: web.Request) -> web.Response:
    request.app[CALLS].clear()
    return web.Response(status=204)


async def _run_action(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    action = request.app[ACTIONS].get(name)
    if action is None:
        return web.json_response({"error": f"no action {name!r}", "actions": sorted(request.app[ACTIONS])}, status=404)
    result = action()
    if inspect.isawaitable(result):
        await result
    return web.json_response({"done": name})


class SandboxServer:
    """Runs one aiohttp app on `host:port` (0 = an ephemeral port) in the running event loop."""

    def __init__(self, app: web.Application, ssl_context: Any = None) -> None:
        self.app = app
        self.ssl_context = ssl_context  # serve HTTPS (e.g. with client certificates for mutual TLS) when set
        self._runner: web.AppRunner | None = None
        self.base_url: str | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._runner is not None:
            raise RuntimeError("already started")
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, ssl_context=self.ssl_context)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        scheme = "https" if self.ssl_context is not None else "http"
        self.base_url = f"{scheme}://{_url_host(bound_host)}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        self.base_url = None
        if runner is not None:
            await runner.cleanup()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class SimulatorBase(abc.ABC):
    """What every simulator shares: build its app once, serve it on a local port, stop it.

    Subclasses set `self._app = None`, `self._server = None`, `self.base_url = None` in __init__ and build their
    routes in `_build_app()`.
    """

    _app: web.Application | None
    _server: SandboxServer | None
    base_url: str | None

    def ssl_context(self) -> Any:
        """The server's TLS context; None serves plain HTTP (simulators of mutual-TLS providers override it)."""
        return None

    @abc.abstractmethod
    def _build_app(self) -> web.Application:
        """The simulator's routes, faults and call log."""

    def app(self) -> web.Application:
        if self._app is None:
            self._app = self._build_app()
        return self._app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._server is not None:
            raise RuntimeError("the sandbox is already running at " + str(self.base_url))
        self._server = SandboxServer(self.app(), self.ssl_context())
        self.base_url = await self._server.start(host, port)
        return self.base_url

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
        self._server = None
        self.base_url = None


def with_query(url: str, **params: str) -> str:
    """`url` with `params` appended to its query string (what a Connect page redirects the end user to)."""
    parts = urlsplit(url)
    extra = urlencode(params)
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))
