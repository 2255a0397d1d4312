"""Strict request checks of the AU simulator: JSON bodies and query parameters against small declarative tables.

The AU platform publishes no machine-readable spec, so each handler declares its fields here. A missing required
field, an unknown field or a field of the wrong type is refused with 400 and code 10005, naming the field, before
the handler changes anything:

    {"code": "10005", "message": "Missing parameter: appName"}
    {"code": "10005", "message": "Unknown parameter: nickname"}
    {"code": "10005", "message": "Invalid parameter: limit (must be an integer from 1 to 1000)"}
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import orjson
from aiohttp import web

Check = Callable[[Any], "str | None"]  # why a value is wrong, or None


class AUError(Exception):
    """An upstream error answer: HTTP status, the platform's code and message."""

    def __init__(self, http_status: int, code: str, message: str) -> None:
        super().__init__(f"{http_status} {code} {message}")
        self.http_status, self.code, self.message = http_status, code, message


def missing(name: str) -> AUError:
    return AUError(400, "10005", f"Missing parameter: {name}")


def invalid(name: str, why: str) -> AUError:
    return AUError(400, "10005", f"Invalid parameter: {name} ({why})")


# --- value checks -------------------------------------------------------------------------------------------------
def STRING(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def INTEGER(value: Any) -> str | None:
    return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"


def BOOLEAN(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def HTTP_URL(value: Any) -> str | None:
    return None if isinstance(value, str) and value.startswith(("https://", "http://")) else "must be an http(s) URL"


def NUMERIC_ID(value: Any) -> str | None:
    """An id the platform accepts as a number or as a string of digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return None
    return None if isinstance(value, str) and value.isascii() and value.isdigit() else "must be a numeric id"


def OBJECT(value: Any) -> str | None:
    return None if isinstance(value, dict) else "must be a JSON object"


def STRING_MAP(value: Any) -> str | None:
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return None
    return "must be a JSON object of strings"


def list_of(item: Check) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return "must be a JSON array"
        return next((f"item {i + 1} {why}" for i, v in enumerate(value) if (why := item(v))), None)
    return check


def one_of(*values: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in values else f"must be one of {', '.join(values)}"
    return check


def object_with(fields: Sequence[Field]) -> Check:
    """A nested object checked like a body; the first problem is reported."""
    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return "must be a JSON object"
        try:
            check_fields(value, fields)
        except AUError as err:
            return err.message.lower()
        return None
    return check


# --- bodies -------------------------------------------------------------------------------------------------------
@attrs.frozen
class Field:
    name: str
    check: Check = STRING
    required: bool = False


def req(name: str, check: Check = STRING) -> Field:
    return Field(name, check, True)


def opt(name: str, check: Check = STRING) -> Field:
    return Field(name, check, False)


def check_fields(data: dict[str, Any], fields: Sequence[Field]) -> dict[str, Any]:
    """Required fields first (in declaration order), then types, then unknown names. Null counts as absent, and a
    required string must not be blank."""
    for field in fields:
        value = data.get(field.name)
        if field.required and (value is None or (isinstance(value, str) and not value.strip())):
            raise missing(field.name)
    for field in fields:
        value = data.get(field.name)
        if value is not None and (why := field.check(value)):
            raise invalid(field.name, why)
    known = {f.name for f in fields}
    for name in data:
        if name not in known:
            raise AUError(400, "10005", f"Unknown parameter: {name}")
    return {k: v for k, v in data.items() if v is not None}


async def read_body(request: web.Request, fields: Sequence[Field]) -> dict[str, Any]:
    """The request's JSON object, checked against `fields` (absent optional fields left out)."""
    raw = await request.read() if request.body_exists else b""
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise AUError(400, "10005", "Invalid request body: not valid JSON") from None
    if not isinstance(data, dict):
        raise AUError(400, "10005", "Invalid request body: expected a JSON object")
    return check_fields(data, fields)


# --- query parameters ---------------------------------------------------------------------------------------------
Convert = Callable[[str], Any]  # raises ValueError with the reason


def integer(low: int | None = None, high: int | None = None) -> Convert:
    def convert(text: str) -> int:
        if not (text.lstrip("-").isascii() and text.lstrip("-").isdigit()):
            raise ValueError("must be an integer")
        value = int(text)
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise ValueError(f"must be an integer {bounds}")
        return value
    return convert


def choice(*values: str) -> Convert:
    """One of `values`, matched case-insensitively, returned as declared."""
    def convert(text: str) -> str:
        for value in values:
            if text.lower() == value.lower():
                return value
        raise ValueError(f"must be one of {', '.join(values)}")
    return convert


def text(value: str) -> str:
    return value


def url(value: str) -> str:
    why = HTTP_URL(value)
    if why:
        raise ValueError(why)
    return value


@attrs.frozen
class Param:
    name: str
    convert: Convert = text
    required: bool = False
    default: Any = None


def read_query(request: web.Request, params: Sequence[Param]) -> dict[str, Any]:
    """The declared query parameters, converted (defaults filled in); other parameters are ignored."""
    out: dict[str, Any] = {}
    for param in params:
        raw = request.query.get(param.name)
        if raw is None or raw == "":
            if param.required:
                raise missing(param.name)
            out[param.name] = param.default
            continue
        try:
            out[param.name] = param.convert(raw)
        except ValueError as exc:
            raise invalid(param.name, str(exc)) from None
    return out
