"""Query-string parameters, strictly: wrong values are 400s naming the parameter, never silently ignored."""
from __future__ import annotations

import re
from datetime import date
from typing import Mapping

from gateway.errors import MalformedRequest, ValidationFailed

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII only; no ISO week dates
# Upstream APIs count time in epoch seconds: dates before 1970 mean nothing to them.
EARLIEST_DATE = date(1970, 1, 1)
LATEST_DATE = date.max


def _bad(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{name}: {message}", errors=[{"location": "query", "field": name, "message": message}])


def reject_unknown(query: Mapping[str, str], allowed: frozenset[str]) -> None:
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise MalformedRequest(
            f"unknown query parameter(s): {', '.join(unknown)}",
            errors=[{"location": "query", "field": n, "message": "unknown parameter"} for n in unknown],
        )


def limit(query: Mapping[str, str], *, default: int, maximum: int) -> int:
    raw = query.get("limit")
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6):
        raise _bad("limit", f"must be a whole number from 1 to {maximum}")
    value = int(raw)
    if not 1 <= value <= maximum:
        raise _bad("limit", f"must be from 1 to {maximum}")
    return value


def boolean(query: Mapping[str, str], name: str, default: bool) -> bool:
    raw = query.get(name)
    if raw is None:
        return default
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise _bad(name, "must be true or false")


def iso_date(query: Mapping[str, str], name: str) -> date | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not _DATE.fullmatch(raw):
        raise _bad(name, "must be a date as YYYY-MM-DD")
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise _bad(name, "must be a real calendar date as YYYY-MM-DD") from None
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise _bad(name, f"must be from {EARLIEST_DATE} to {LATEST_DATE}")
    return value


def text(query: Mapping[str, str], name: str, *, max_len: int = 200) -> str | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not raw or len(raw) > max_len:
        raise _bad(name, f"must be 1 to {max_len} characters long")
    return raw
