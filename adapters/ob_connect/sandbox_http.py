"""The hub's answers: JSON bodies, and errors in Mastercard's shape `{"Errors": {"Error": [...]}}`.

Every handler and the gate raise `HubError`; the gate turns it into the response. The five keys of an Error are always
present (`Details` may be an empty string), as UPSTREAM.md promises.
"""
from __future__ import annotations

from typing import Any

import attrs
import orjson
from aiohttp import web

from adapters.sandbox_kit import Problem

HUB = "OBC"  # Source of the hub's own validation errors
ASPSP = "ASPSP"  # Source of errors the bank (or the connection to it) causes
GATEWAY = "Gateway"  # Source of authentication errors (Mastercard's API gateway)


@attrs.frozen
class ErrorItem:
    reason_code: str
    description: str
    source: str = HUB
    details: str = ""
    recoverable: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"Source": self.source, "ReasonCode": self.reason_code, "Description": self.description,
                "Recoverable": self.recoverable, "Details": self.details}


class HubError(Exception):
    """An error answer of the hub: an HTTP status and one or more Error items."""

    def __init__(self, status: int, reason_code: str, description: str, *, source: str = HUB, details: str = "",
                 recoverable: bool = False, items: list[ErrorItem] | None = None) -> None:
        super().__init__(f"{status} {reason_code}: {description}")
        self.status = status
        self.items = items or [ErrorItem(reason_code, description, source, details, recoverable)]

    def response(self) -> web.Response:
        return json_response(error_body(self.items), status=self.status)


def bad_request(reason_code: str, description: str, *, source: str = HUB, details: str = "") -> HubError:
    return HubError(400, reason_code, description, source=source, details=details)


def error_body(items: list[ErrorItem]) -> dict[str, Any]:
    return {"Errors": {"Error": [item.to_json() for item in items]}}


def invalid_request(problems: list[Problem]) -> HubError:
    """400 INVALID_REQUEST naming every problem the schema check found: Source is the field path."""
    items = [ErrorItem("INVALID_REQUEST", f"{p.name or 'the body'} {p.reason}", p.name, p.reason)
             for p in problems]
    return HubError(400, "INVALID_REQUEST", items[0].description, items=items)


def fault_items(status: int) -> list[ErrorItem]:
    """The hub's body for an injected fault of this status."""
    if status == 504:
        return [ErrorItem("PROVIDER_TIMEOUT", "the ASPSP did not answer in time", ASPSP,
                          "simulated 504 fault", True)]
    if status >= 500:
        return [ErrorItem("PROVIDER_ERROR", "the ASPSP or the hub failed", ASPSP, f"simulated {status} fault",
                          True)]
    if status == 429:
        return [ErrorItem("RATE_LIMITED", "too many requests", GATEWAY, "simulated 429 fault", True)]
    return [ErrorItem("INVALID_REQUEST", "the request was refused", HUB, f"simulated {status} fault")]


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


SANDBOX = web.AppKey("ob_connect_sandbox", object)
BODY = web.RequestKey("ob_connect_body", dict)  # the request's JSON body (floats as Decimal), stored by the gate


def body_of(request: web.Request) -> dict[str, Any]:
    return request[BODY]


def answer(request: web.Request, payload: dict[str, Any]) -> web.Response:
    """200 with `originalRequestInfo` echoing the request's xRequestId."""
    x_request_id = body_of(request)["requestInfo"]["xRequestId"]
    return json_response({"originalRequestInfo": {"xRequestId": x_request_id}, **payload})
