"""Secrets: a value whose repr hides it, and the process-wide list of values the log redactor must never print."""
from __future__ import annotations

import threading
from collections import OrderedDict


class Secret:
    """A secret string. `str()`/`repr()` never show it; call `reveal()` at the one place it is used."""

    __slots__ = ("_value",)

    def __init__(self, value: str, *, transient: bool = False) -> None:
        self._value = value
        register_secret(value, transient=transient)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


_lock = threading.Lock()
_known: set[str] = set()
# Secrets learned at run time (from the vault, from providers): the most recent ones only, so neither memory nor
# the log scrubber's pattern grows with the number of consents or restarts of simulators.
_transient: OrderedDict[str, None] = OrderedDict()
TRANSIENT_LIMIT = 256
_version = 0


def register_secret(value: str, *, transient: bool = False) -> None:
    """Remember a secret value so log lines containing it are redacted. Short values are ignored (too common)."""
    global _version
    if not value or len(value) < 6:
        return
    with _lock:
        if value in _known:
            return
        if transient:
            if value in _transient:
                _transient.move_to_end(value)
                return
            _transient[value] = None
            if len(_transient) > TRANSIENT_LIMIT:
                _transient.popitem(last=False)
        else:
            _known.add(value)
        _version += 1


def secrets_version() -> int:
    """Changes whenever a secret is registered (cheap to poll: no lock, no copy)."""
    return _version


def known_secrets() -> tuple[int, frozenset[str]]:
    with _lock:
        return _version, frozenset(_known) | frozenset(_transient)
