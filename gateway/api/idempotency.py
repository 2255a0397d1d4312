"""Idempotency keys: the same request sent twice has one effect and one answer.

`Idempotency-Key` is required on payment creation and accepted on every other canonical POST. Keys are scoped per
tenant. Before the handler runs (so before any upstream call) the key is claimed in the store with a fingerprint of
the canonical request: the API key that sent it, the method, the path and the body as parsed JSON with sorted keys
(so whitespace or key order do not make two requests differ), as an HMAC keyed with the gateway's id key, so the
stored fingerprint gives away nothing of a body (an SSN, say). The API key is part of it so that a replay never
hands a response to a caller whose scopes or providers would not have allowed the request: the same key from
another API key of the tenant is another request.

- Same key, same request, first one finished → its response again, byte for byte (status, content type and body),
  marked `Idempotent-Replayed: true`.
- Same key, same request, first one still running → the duplicate waits for it (up to
  `payments.idempotency_wait_seconds`) and then answers the same way; past the wait, 409 `request_in_progress` with
  `Retry-After`. Waiting, rather than refusing at once, means a client's automatic retry usually just gets its
  answer.
- Same key, another request → 422 `idempotency_key_reused`, whatever the state of the first.
- Only successful (2xx) responses are kept. A request that fails (validation, an upstream refusal, a crash) releases
  its key and leaves nothing, so the caller may retry with the same key. For payments, the upstream calls made on
  the way carried provider idempotency keys derived from this one where the provider takes them
  (`gateway.payments.keys.upstream_key`; stripe-uk), so the retry reaches the provider as the same request and
  cannot make a second payment consent or payment. Where the provider takes no key for a consent (ob-connect, or
  a customer or AIS consent anywhere), a retry after a failure may leave an unused consent behind at the
  provider; nothing is paid without the payer's authorisation of the one consent the gateway keeps.
- A claim whose process died is taken over once its lease (`payments.idempotency_lease_seconds`) runs out.
- Keys are kept `payments.idempotency_retention_hours` (72 by default, never under 24), then purged.

Handlers that write a resource keep the response in the same store transaction (`Claim.response()` passed to the
store, then `claim.finished = True`), so the resource never exists without its kept answer; other handlers' 2xx
responses are kept right after they return.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from datetime import timedelta
from typing import Any, Awaitable, Callable

import attrs
import orjson
from aiohttp import web

from gateway.api.state import CALLER, STATE
from gateway.errors import IdempotencyKeyReused, RequestInProgress, ValidationFailed
from gateway.models.time import utcnow
from gateway.store.records import IdempotencyRecord, IdempotentResponse
from gateway.store.sqlite_payments import LostIdempotencyClaim
from gateway.validation.body import field_error, read_raw

HEADER = "Idempotency-Key"
_POLL_SECONDS = 0.05
_MAX_KEY_LENGTH = 255

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.define
class Claim:
    tenant: str
    key: str
    owner: str
    finished: bool = False

    def response(self, status: int, body: bytes, content_type: str = "application/json") -> IdempotentResponse:
        return IdempotentResponse(tenant=self.tenant, key=self.key, owner=self.owner, status=status,
                                  content_type=content_type, body=body)


CLAIM: web.RequestKey[Claim] = web.RequestKey("idempotency_claim", Claim)


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= _MAX_KEY_LENGTH or not key.isprintable() or not key.isascii() or key.strip() != key:
        raise ValidationFailed(f"{HEADER}: must be 1 to {_MAX_KEY_LENGTH} printable ASCII characters", errors=[
            field_error(HEADER, f"must be 1 to {_MAX_KEY_LENGTH} printable ASCII characters, no surrounding spaces",
                        "header")])


def fingerprint(method: str, path: str, raw: bytes, caller: str = "", key: bytes = b"") -> str:
    """What a retry must repeat exactly. Keyed (HMAC with the gateway's id key): a body may carry personal data
    with few possible values (an SSN, a birth date), which a plain hash kept for days would let anyone reading
    the table recover by trying them all."""
    try:
        canonical = orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS) if raw else b""
    except orjson.JSONDecodeError:
        canonical = raw  # the handler will refuse it; the key is released then
    digest = hmac.new(key, b"idempotency-fingerprint-v1", hashlib.sha256)
    for part in (caller.encode(), method.encode(), path.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


_SEALED_SCOPE = "idempotent-responses"


def _replay(stored: IdempotencyRecord, vault: Any = None) -> web.Response:
    body = stored.body
    if vault is not None and body is not None:
        body = vault.open(_SEALED_SCOPE, f"{stored.tenant}/{stored.key}", body).encode()
    response = web.Response(body=body, status=stored.status or 200,
                            headers={"Content-Type": stored.content_type or "application/json",
                                     "Idempotent-Replayed": "true"})
    return response


def idempotent(handler: Handler, *, required: bool = False, sealed: bool = False) -> Handler:
    """`sealed`: the kept response carries a secret shown once (a webhook signing secret), so it is kept sealed
    by the vault, like every other secret at rest."""
    async def wrapped(request: web.Request) -> web.StreamResponse:
        key = request.headers.get(HEADER)
        if key is None:
            if required:
                raise ValidationFailed(f"{HEADER}: required on this request", errors=[
                    field_error(HEADER, "required: a unique key per payment, reused only to retry it", "header")])
            return await handler(request)
        _check_key(key)
        state = request.app[STATE]
        settings = state.config.payments
        tenant = request[CALLER].tenant
        raw = await read_raw(request, state.config.server.max_body_bytes)
        now = utcnow()
        claim = IdempotencyRecord(
            tenant=tenant, key=key, fingerprint=fingerprint(request.method, request.path, raw, request[CALLER].name,
                                                           state.id_key),
            state="in_progress",
            owner=secrets.token_hex(12), lease_until=now + timedelta(seconds=settings.idempotency_lease_seconds),
            created_at=now, expires_at=now + timedelta(hours=settings.idempotency_retention_hours))
        stored = await state.store.claim_idempotency_key(claim)
        metrics = state.metrics
        deadline = time.monotonic() + settings.idempotency_wait_seconds
        while not (stored.owner == claim.owner and stored.state == "in_progress"):
            if stored.fingerprint != claim.fingerprint:
                metrics.count(metrics.idempotency, "reused")
                raise IdempotencyKeyReused(
                    f"this {HEADER} was first used at {stored.created_at.isoformat()} for another request; "
                    "use a new key for a new request", errors=[field_error(HEADER, "already used for another request",
                                                                          "header")])
            if stored.state == "done":
                metrics.count(metrics.idempotency, "replayed")
                return _replay(stored, state.vault if sealed else None)
            if time.monotonic() >= deadline:
                metrics.count(metrics.idempotency, "in_progress")
                raise RequestInProgress(f"a request with this {HEADER} is still being processed; retry shortly "
                                        "for its response", retry_after=1)
            await asyncio.sleep(_POLL_SECONDS)
            current = await state.store.get_idempotency_key(tenant, key)
            if current is None or (current.state == "in_progress" and current.lease_until < utcnow()):
                # The first request failed (and left nothing) or its process died: this one takes the key.
                now = utcnow()
                claim = attrs.evolve(claim, created_at=now,
                                     lease_until=now + timedelta(seconds=settings.idempotency_lease_seconds))
                current = await state.store.claim_idempotency_key(claim)
            stored = current
        metrics.count(metrics.idempotency, "claimed")
        held = Claim(tenant=tenant, key=key, owner=claim.owner)
        request[CLAIM] = held
        try:
            response = await handler(request)
        except LostIdempotencyClaim:
            raise RequestInProgress(f"another request with this {HEADER} took over while this one ran long; "
                                    "retry for its response", retry_after=1) from None
        except BaseException:
            if not held.finished:
                metrics.count(metrics.idempotency, "released")
                await asyncio.shield(state.store.release_idempotency_key(tenant, key, held.owner))
            raise
        if held.finished:
            return response
        if 200 <= response.status < 300 and isinstance(response, web.Response) and isinstance(response.body, bytes):
            kept = response.body
            if sealed:
                kept = state.vault.seal(_SEALED_SCOPE, f"{tenant}/{key}", kept.decode())
            try:
                await state.store.finish_idempotency_key(
                    held.response(response.status, kept, response.content_type or "application/json"))
            except LostIdempotencyClaim:
                raise RequestInProgress(f"another request with this {HEADER} took over while this one ran long; "
                                        "retry for its response", retry_after=1) from None
        else:
            await state.store.release_idempotency_key(tenant, key, held.owner)
        return response

    wrapped.__name__ = getattr(handler, "__name__", "idempotent")
    wrapped.__doc__ = handler.__doc__
    return wrapped

