"""JSON bodies into attrs request objects. Unknown fields are refused; every problem names its field path."""
from __future__ import annotations

from typing import Any, TypeVar

import cattrs
import orjson
from aiohttp import web
from cattrs.errors import BaseValidationError

from gateway.errors import MalformedRequest, PayloadTooLarge, ValidationFailed
from gateway.validation.structure import converter

T = TypeVar("T")


def field_error(field: str, message: str, location: str = "body") -> dict[str, str]:
    return {"location": location, "field": field, "message": message}


def _cattrs_errors(exc: BaseValidationError) -> list[dict[str, str]]:
    out = []
    for message in cattrs.transform_error(exc, format_exception=_describe):
        reason, _, where = message.rpartition(" @ ")
        field = where.removeprefix("$").lstrip(".") or "$"
        out.append(field_error(field, reason))
    return out


def _describe(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown field(s): {', '.join(sorted(exc.extra_fields))}"
    if isinstance(exc, ValueError) and str(exc):
        return str(exc)
    if isinstance(exc, TypeError) and type_ is not None:
        return f"expected {getattr(type_, '__name__', type_)}"
    return f"invalid value ({type(exc).__name__})"


async def read_json(request: web.Request, max_bytes: int) -> Any:
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"the body is {request.content_length} bytes; the limit is {max_bytes}")
    ctype = request.content_type
    if request.can_read_body and ctype not in ("application/json", "application/problem+json") and not ctype.endswith("+json"):
        raise MalformedRequest(f"Content-Type must be application/json, not {ctype or 'missing'}")
    raw = await request.content.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"the body is larger than the limit of {max_bytes} bytes")
    if not raw:
        raise MalformedRequest("a JSON body is required")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"the body is not valid JSON: {exc.args[0] if exc.args else exc}") from None


def structure(data: Any, cls: type[T]) -> T:
    if not isinstance(data, dict):
        raise ValidationFailed("the body must be a JSON object", errors=[field_error("$", "must be an object")])
    try:
        return converter.structure(data, cls)
    except BaseValidationError as exc:
        errors = _cattrs_errors(exc)
        raise ValidationFailed(
            "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]), errors=errors
        ) from None


async def parse_body(request: web.Request, cls: type[T], max_bytes: int) -> T:
    return structure(await read_json(request, max_bytes), cls)
