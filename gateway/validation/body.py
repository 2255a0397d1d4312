"""JSON bodies into attrs request objects. Unknown fields are refused; every problem names its field path."""
from __future__ import annotations

import unicodedata
from typing import Any, TypeVar

import cattrs
import orjson
from aiohttp import web
from cattrs.errors import BaseValidationError, ClassValidationError, IterableValidationError

from gateway.errors import MalformedRequest, PayloadTooLarge, ValidationFailed
from gateway.validation.structure import converter

T = TypeVar("T")
RAW_BODY: web.RequestKey[bytes] = web.RequestKey("raw_body", bytes)


# Control, format (bidi overrides, zero-width), line and paragraph separators: never in text sent on to a provider.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def plain_text(lo: int, hi: int):  # type: ignore[no-untyped-def]
    """A validator: `lo` to `hi` characters, no surrounding spaces, nothing hidden or direction-changing."""
    def check(_inst, attr, value: str) -> None:  # type: ignore[no-untyped-def]
        if not lo <= len(value) <= hi or value.strip() != value:
            raise FieldValueError(attr.name, f"must be {lo} to {hi} characters, without surrounding spaces")
        if any(unicodedata.category(c) in _HIDDEN for c in value):
            raise FieldValueError(attr.name, "must not contain control, invisible or direction-changing characters")
    return check


def field_error(field: str, message: str, location: str = "body") -> dict[str, str]:
    return {"location": location, "field": field, "message": message}


class FieldValueError(ValueError):
    """Raised by request-object validators: names the field, since attrs runs them after structuring."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else str(name)


def _walk(exc: BaseException, path: str, out: list[dict[str, str]]) -> None:
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        with_notes, without = exc.group_exceptions()
        for inner, note in with_notes:  # a field name for classes, an index for lists
            _walk(inner, _join(path, note.name if isinstance(exc, ClassValidationError) else note.index), out)
        for inner in without:
            _walk(inner, path, out)
    elif isinstance(exc, cattrs.ForbiddenExtraKeysError):
        out.append(field_error(path or "$", f"unknown field(s): {', '.join(sorted(exc.extra_fields))}"))
    elif isinstance(exc, FieldValueError):
        out.append(field_error(_join(path, exc.field), str(exc)))
    elif isinstance(exc, KeyError):
        out.append(field_error(path or "$", "required field missing"))
    elif isinstance(exc, (ValueError, TypeError)) and str(exc):
        out.append(field_error(path or "$", str(exc)))
    else:
        out.append(field_error(path or "$", f"invalid value ({type(exc).__name__})"))


async def read_raw(request: web.Request, max_bytes: int) -> bytes:
    """The body's bytes, refused past the size limit (signatures are checked on exactly these bytes). Read once:
    a second call (the idempotency layer reads first, the handler after) gets the same bytes."""
    cached = request.get(RAW_BODY)
    if cached is not None:
        return cached
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(f"the body is {request.content_length} bytes; the limit is {max_bytes}")
    chunks, size = [], 0
    while size <= max_bytes:  # read() may return what has arrived so far: read to the end
        chunk = await request.content.read(max_bytes + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    raw = b"".join(chunks)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"the body is larger than the limit of {max_bytes} bytes")
    request[RAW_BODY] = raw
    return raw


async def read_json(request: web.Request, max_bytes: int) -> Any:
    ctype = request.content_type
    if request.can_read_body and ctype not in ("application/json", "application/problem+json") and not ctype.endswith("+json"):
        raise MalformedRequest(f"Content-Type must be application/json, not {ctype or 'missing'}")
    raw = await read_raw(request, max_bytes)
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
        errors: list[dict[str, str]] = []
        _walk(exc, "", errors)
        raise ValidationFailed(
            "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]), errors=errors
        ) from None


async def parse_body(request: web.Request, cls: type[T], max_bytes: int) -> T:
    return structure(await read_json(request, max_bytes), cls)
