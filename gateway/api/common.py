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


# Headers a caller may send to tell the provider about the end user behind a call (FAPI passes them on).
END_USER_HEADERS = {"X-End-User-IP": "ip", "X-End-User-Auth-Date": "auth_date", "X-End-User-Agent": "agent"}
_MAX_END_USER_VALUE = 512


def context(request: web.Request, caller: Caller) -> CallContext:
    end_user = {name: value for header, name in END_USER_HEADERS.items()
                if (value := request.headers.get(header)) and len(value) <= _MAX_END_USER_VALUE}
    return CallContext(request_id=request[REQUEST_ID], tenant=caller.tenant, id_key=request.app[STATE].id_key,
                       end_user=end_user)
