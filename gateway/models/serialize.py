"""One cattrs converter for canonical resources → JSON-ready dicts (Decimal strings, RFC 3339 UTC)."""
from __future__ import annotations

import enum
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import cattrs
import orjson

from gateway.models.money import Money

converter = cattrs.Converter(omit_if_default=False)


def _datetime(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


converter.register_unstructure_hook(datetime, _datetime)
converter.register_unstructure_hook(date, date.isoformat)
converter.register_unstructure_hook(Decimal, lambda d: format(d, "f"))
converter.register_unstructure_hook(Money, Money.to_json)
converter.register_unstructure_hook_func(lambda t: isinstance(t, type) and issubclass(t, enum.Enum), lambda e: e.value)


def to_plain(obj: Any) -> Any:
    return converter.unstructure(obj)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)
