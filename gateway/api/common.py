"""Small helpers the resource handlers share."""
from __future__ import annotations

import ipaddress
from email.utils import parsedate_to_datetime

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


def _well_formed(name: str, value: str) -> bool:
    """Values a provider would refuse are dropped, not passed on: the headers are hints, never a reason to fail."""
    if not value or len(value) > _MAX_END_USER_VALUE or not value.isprintable():
        return False
    if name == "ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
    elif name == "auth_date":
        try:
            parsedate_to_datetime(value)  # an HTTP date (RFC 7231 IMF-fixdate), as FAPI's x-fapi-auth-date is
        except (TypeError, ValueError, IndexError):
            return False
    return True


def context(request: web.Request, caller: Caller) -> CallContext:
    end_user = {name: value for header, name in END_USER_HEADERS.items()
                if (value := request.headers.get(header)) is not None and _well_formed(name, value)}
    return CallContext(request_id=request[REQUEST_ID], tenant=caller.tenant, id_key=request.app[STATE].id_key,
                       end_user=end_user)
