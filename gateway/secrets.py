"""Secrets: a value whose repr hides it, and the process-wide list of values the log redactor must never print."""
from __future__ import annotations

import threading


class Secret:
    """A secret string. `str()`/`repr()` never show it; call `reveal()` at the one place it is used."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

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
_version = 0


def register_secret(value: str) -> None:
    """Remember a secret value so log lines containing it are redacted. Short values are ignored (too common)."""
    global _version
    if not value or len(value) < 6:
        return
    with _lock:
        if value not in _known:
            _known.add(value)
            _version += 1


def secrets_version() -> int:
    """Changes whenever a secret is registered (cheap to poll: no lock, no copy)."""
    return _version


def known_secrets() -> tuple[int, frozenset[str]]:
    with _lock:
        return _version, frozenset(_known)
