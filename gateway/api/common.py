"""Small helpers the resource handlers share."""
from __future__ import annotations

from aiohttp import web

from adapters.base import CallContext
from gateway.api.state import CALLER, GatewayState, REQUEST_ID, STATE
from gateway.validation.access import Caller


def state_of(request: web.Request) -> GatewayState:
    return request.app[STATE]


def caller_of(request: web.Request) -> Caller:
    caller: Caller = request[CALLER]
    return caller


def context(request: web.Request, caller: Caller) -> CallContext:
    return CallContext(request_id=request[REQUEST_ID], tenant=caller.tenant, id_key=request.app[STATE].id_key)
