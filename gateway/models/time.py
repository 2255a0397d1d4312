"""Time is timezone-aware UTC everywhere; upstream epoch seconds convert exactly."""
from __future__ import annotations

from datetime import date, datetime, timezone

UTC = timezone.utc


def utcnow() -> datetime:
    return datetime.now(UTC)


def utc_from_epoch(seconds: int | float | str) -> datetime:
    """Epoch seconds (int, numeric string, or float with a fractional part) to an aware UTC datetime."""
    if isinstance(seconds, bool):
        raise TypeError("a boolean is not a timestamp")
    if isinstance(seconds, str):
        seconds = int(seconds) if seconds.lstrip("-").isdigit() else float(seconds)
    if isinstance(seconds, float) and seconds.is_integer():
        seconds = int(seconds)
    if isinstance(seconds, int):
        return datetime.fromtimestamp(seconds, UTC)
    return datetime.fromtimestamp(seconds, UTC)


def date_from_epoch(seconds: int | float | str) -> date:
    return utc_from_epoch(seconds).date()


def to_epoch(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return int(moment.timestamp())


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; an offset is required and the result is UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("timestamp needs a UTC offset, e.g. 2026-01-31T12:00:00Z")
    return value.astimezone(UTC)


def parse_upstream_time(value: object) -> datetime | None:
    """An upstream ISO 8601 timestamp as UTC, leniently: None when absent or unreadable, naive read as UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
