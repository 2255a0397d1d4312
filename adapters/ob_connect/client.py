"""The hub client: every call a signed POST whose body carries `requestInfo`.

Signing is Mastercard OAuth 1.0a with a body hash, by the provider's own library (`mastercard-oauth1-signer`),
over the exact bytes sent and the full URL; each attempt is signed afresh (a retry must not replay the first
attempt's nonce). `xRequestId` is the gateway's request id when it is a UUID (it is, unless the caller chose its
own), else a UUID derived from it, so the hub's logs and ours name the same request.
"""
from __future__ import annotations

import uuid
from typing import Any, Mapping

import orjson
from oauth1.oauth import OAuth

from adapters.base import CallContext
from adapters.ob_connect import translate as obc
from gateway.connectivity.client import UpstreamClient
from gateway.errors import ProviderUnavailable

_NAMESPACE = uuid.UUID("5b1f2d3e-9c4a-4e8b-a6f0-2d7c1e9b3a54")


def request_uuid(request_id: str) -> str:
    try:
        return str(uuid.UUID(request_id))
    except ValueError:
        return str(uuid.uuid5(_NAMESPACE, request_id))


class HubClient:
    def __init__(self, upstream: UpstreamClient, *, consumer_key: str, signing_key: Any,
                 merchant: Mapping[str, str]) -> None:
        self.upstream = upstream
        self.consumer_key = consumer_key
        self._key = signing_key
        self.merchant = dict(merchant)

    def _sign(self, method: str, url: str, body: bytes | None) -> dict[str, str]:
        payload = body.decode("utf-8") if body else None
        return {"Authorization": OAuth.get_authorization_header(url, method, payload, self.consumer_key, self._key)}

    async def post(self, ctx: CallContext, path: str, body: dict[str, Any], *, operation: str,
                   request_info: Mapping[str, Any] | None = None, safe: bool = True, effect: bool = False) -> Any:
        """POST `body` with `requestInfo` (xRequestId and merchant, plus `request_info`); the answer's JSON, or the
        hub's error as a canonical error. `safe`: the call may be repeated after a failure (reads, and writes the
        hub makes idempotent). `effect`: the call changes something at the hub (a transfer), so a refusal of a
        retry whose first attempt went unanswered leaves the outcome unknown rather than "nothing happened"."""
        info = {"xRequestId": request_uuid(ctx.request_id), "merchant": self.merchant, **(request_info or {})}
        raw = orjson.dumps({"requestInfo": info, **body})
        response = await self.upstream.request(
            "POST", path, operation=operation, data=raw, sign=self._sign, idempotent=safe,
            headers={"Content-Type": "application/json", "Accept": "application/json"})
        if effect and not response.ok and response.status < 500 and response.earlier_attempt_lost:
            raise ProviderUnavailable(f"an earlier attempt of this request to the hub got no answer and the retry "
                                      f"was refused (HTTP {response.status}): the hub may have acted on the first; "
                                      "its outcome is not known", retryable=True)
        if not response.ok:
            try:
                parsed = orjson.loads(response.body) if response.body else None
            except orjson.JSONDecodeError:
                parsed = None
            raise obc.error_from_response(response.status, parsed, retry_after=response.retry_after)
        return response.json()
