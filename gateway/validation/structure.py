"""The strict converter for caller input: no coercion of wrong types, unknown keys refused."""
from __future__ import annotations

import enum
import re
from datetime import date, datetime
from typing import Any

import cattrs

from gateway.models.time import parse_rfc3339

converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)


def _strict_str(value: Any, type_: type) -> Any:
    if type_ is not str and issubclass(type_, enum.Enum):
        return _enum(value, type_)  # str-based enums dispatch here (str precedes Enum in their MRO)
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected true or false")
    return value


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected an integer")
    return value


def _enum(value: Any, cls: type[enum.Enum]) -> enum.Enum:
    try:
        return cls(value)
    except ValueError:
        raise ValueError(f"must be one of: {', '.join(str(m.value) for m in cls)}") from None


_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _iso_date(value: Any, _: type) -> date:
    if not isinstance(value, str):
        raise TypeError("expected a date string (YYYY-MM-DD)")
    try:
        if not _DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a date in the form YYYY-MM-DD") from None


def _timestamp(value: Any, _: type) -> datetime:
    if not isinstance(value, str):
        raise TypeError("expected an RFC 3339 timestamp string")
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise ValueError("must be an RFC 3339 timestamp with an offset, e.g. 2027-01-31T12:00:00Z") from None


converter.register_structure_hook(date, _iso_date)
converter.register_structure_hook(datetime, _timestamp)
converter.register_structure_hook(str, _strict_str)
converter.register_structure_hook(bool, _strict_bool)
converter.register_structure_hook(int, _strict_int)
converter.register_structure_hook_func(lambda t: isinstance(t, type) and issubclass(t, enum.Enum), _enum)
