"""Middleware: request id, caller authentication, error rendering, one access-log line and metrics per request."""
from __future__ import annotations

import re
import time
import os
from typing import Awaitable, Callable

import structlog
from aiohttp import web

from gateway.api.render import problem_response
from gateway.api.state import CALLER, PROVIDER, REQUEST_ID, STATE
from gateway.errors import GatewayError, GatewayFault, MalformedRequest, MethodNotAllowed, NotFound, PayloadTooLarge

log = structlog.get_logger("gateway.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Routes anyone may call: operations probes, the contract and the public keys.
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/.well-known/", "/webhooks/")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_request_id() -> str:
    """A random (version 4) UUID as text; FAPI wants interaction ids in this form. Cheaper than str(uuid4())."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def gateway_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    started = time.perf_counter()
    given = request.headers.get("X-Request-Id")
    request_id = given if given and _REQUEST_ID.fullmatch(given) else new_request_id()
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    caller = None
    try:
        if not request.path.startswith(PUBLIC_PREFIXES):
            caller = state.callers.authenticate(request.headers.get("Authorization"))
            request[CALLER] = caller
        response = await handler(request)
    except GatewayError as exc:
        response = problem_response(exc, request_id)
        if exc.status >= 500:
            log.warning("request_failed", code=exc.code, detail=exc.detail, provider_code=exc.provider_code,
                        cause=repr(exc.__cause__) if exc.__cause__ else None)
    except web.HTTPRequestEntityTooLarge:
        response = problem_response(PayloadTooLarge(f"the limit is {state.config.server.max_body_bytes} bytes"), request_id)
    except web.HTTPNotFound:
        response = problem_response(NotFound(f"no route {request.path}"), request_id)
    except web.HTTPMethodNotAllowed as exc:
        response = problem_response(MethodNotAllowed(f"{request.method} is not allowed here; "
                                                     f"allowed: {', '.join(sorted(exc.allowed_methods))}"), request_id)
        response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem_response(MalformedRequest(exc.reason), request_id)
    except Exception:
        log.exception("unhandled_error", path=request.path)
        response = problem_response(GatewayFault("an unexpected error occurred; it has been logged"), request_id)
    response.headers["X-Request-Id"] = request_id
    elapsed = time.perf_counter() - started
    route = _route_name(request)
    state.metrics.observe_request(request.method, route, response.status, elapsed)
    log.info(
        "request",
        method=request.method,
        route=route,
        path=request.path,
        status=response.status,
        duration_ms=round(elapsed * 1000, 3),
        tenant=caller.tenant if caller else None,
        caller=caller.name if caller else None,
        provider=request.get(PROVIDER),
    )
    return response
