"""Opaque, tamper-evident list cursors.

A cursor is base64url(JSON) + "." + base64url(HMAC-SHA256 truncated to 128 bits). It binds the tenant, the list it
belongs to (route and filters) and an adapter-private position. A cursor that was altered, belongs to another
tenant or another query, or is older than its lifetime is refused with 422 and the parameter named.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import timezone
from typing import Any

import orjson

from gateway.errors import ValidationFailed

LIFETIME_SECONDS = 24 * 3600


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _bad(message: str) -> ValidationFailed:
    return ValidationFailed(f"cursor: {message}", errors=[{"location": "query", "field": "cursor", "message": message}])


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        self._key = hmac.new(key, b"gateway-cursor-v1", hashlib.sha256).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]

    def encode(self, tenant: str, scope: str, position: dict[str, Any]) -> str:
        payload = orjson.dumps({"t": tenant, "s": scope, "p": position, "i": int(time.time())})
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(self, token: str, tenant: str, scope: str) -> dict[str, Any]:
        body, dot, mac = token.partition(".")
        if not dot or len(token) > 4096:
            raise _bad("not a cursor issued by this API")
        try:
            payload, given = _unb64(body), _unb64(mac)
        except (ValueError, TypeError):
            raise _bad("not a cursor issued by this API") from None
        if not hmac.compare_digest(given, self._mac(payload)):
            raise _bad("the cursor was altered or is not from this API")
        data = orjson.loads(payload)
        if data.get("t") != tenant or data.get("s") != scope:
            raise _bad("the cursor belongs to another list or query; send the same filters it was issued with")
        if time.time() - data.get("i", 0) > LIFETIME_SECONDS:
            raise _bad("the cursor has expired; start the list again")
        position = data.get("p")
        if not isinstance(position, dict):
            raise _bad("not a cursor issued by this API")
        return position


def newest_first_position(codec: CursorCodec, query: Any, tenant: str, scope: str) -> tuple[str, str] | None:
    """The (created_at, id) after which a newest-first list continues, from its `cursor` parameter if any."""
    if "cursor" not in query:
        return None
    position = codec.decode(query["cursor"], tenant, scope)
    return position["created_at"], position["id"]


def newest_first_cursor(codec: CursorCodec, tenant: str, scope: str, last: Any) -> str:
    """The cursor that continues a newest-first list after `last` (a record with created_at and id)."""
    return codec.encode(tenant, scope, {"created_at": last.created_at.astimezone(timezone.utc).isoformat(),
                                        "id": last.id})
