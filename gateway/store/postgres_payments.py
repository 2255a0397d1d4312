"""Payments, their transitions and idempotency keys in the PostgreSQL store. A mixin of `PostgresStore`, with the
semantics of the SQLite one (`sqlite_payments.py`).

Every write that matters to money is one transaction: a payment, its first transition and the response kept under
the caller's idempotency key; a payment's new state and its transitions, only if the stored `version` is still the
one read (the UPDATE's own row lock decides between two writers); a key's claim, inserted or taken over from a
request whose lease ran out, in one `INSERT … ON CONFLICT DO UPDATE … WHERE`, which PostgreSQL evaluates on the
latest committed row under its lock, so two requests racing for an abandoned key cannot both win it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Awaitable, Callable

import asyncpg
import orjson

from gateway.events import canonical
from gateway.events.canonical import EventRecord
from gateway.models import PaymentStatus
from gateway.models.payments import PaymentTransition
from gateway.models.serialize import dumps
from gateway.store.errors import LostIdempotencyClaim
from gateway.store.postgres_events import count
from gateway.store.records import IdempotencyRecord, IdempotentResponse, PaymentRecord

_PAYMENT_COLS = ("tenant, id, provider, type, status, amount, currency, request, created_at, updated_at, consent_ref, "
                 "provider_ref, authorisation_url, redirect_uri, upstream_status, status_reason, customer_id, live, "
                 "upstream, next_check_at, check_attempts, version")
_KEY_COLS = ("tenant, key, fingerprint, state, owner, lease_until, created_at, expires_at, status, content_type, "
             "body")


def _payment_args(r: PaymentRecord) -> tuple[Any, ...]:
    return (r.tenant, r.id, r.provider, r.type, r.status.value, r.amount, r.currency, dumps(r.request).decode(),
            r.created_at, r.updated_at, r.consent_ref, r.provider_ref, r.authorisation_url, r.redirect_uri,
            r.upstream_status, r.status_reason, r.customer_id, bool(r.live), dumps(r.upstream).decode(),
            r.next_check_at, r.check_attempts, r.version)


def _payment(row: Any) -> PaymentRecord:
    return PaymentRecord(
        tenant=row[0], id=row[1], provider=row[2], type=row[3], status=PaymentStatus(row[4]), amount=row[5],
        currency=row[6], request=orjson.loads(row[7]), created_at=row[8], updated_at=row[9], consent_ref=row[10],
        provider_ref=row[11], authorisation_url=row[12], redirect_uri=row[13], upstream_status=row[14],
        status_reason=row[15], customer_id=row[16], live=row[17], upstream=orjson.loads(row[18]),
        next_check_at=row[19], check_attempts=row[20], version=row[21])


def _key(row: Any) -> IdempotencyRecord:
    return IdempotencyRecord(tenant=row[0], key=row[1], fingerprint=row[2], state=row[3], owner=row[4],
                             lease_until=row[5], created_at=row[6], expires_at=row[7], status=row[8],
                             content_type=row[9], body=bytes(row[10]) if row[10] is not None else None)


async def _add_transitions(conn: asyncpg.Connection, tenant: str, payment_id: str,
                           transitions: list[PaymentTransition]) -> None:
    """Append transitions after the payment's last one (seq 1, 2, … in the order given), in one statement."""
    if not transitions:
        return
    await conn.execute(
        "INSERT INTO payment_transitions (tenant, payment_id, seq, status, previous, at, upstream_status, reason) "
        "SELECT $1, $2, last.seq + u.n, u.status, u.previous, u.at, u.upstream_status, u.reason "
        "FROM (SELECT COALESCE(MAX(seq), 0) AS seq FROM payment_transitions WHERE tenant = $1 AND payment_id = $2) "
        "AS last, unnest($3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::text[]) WITH ORDINALITY "
        "AS u (status, previous, at, upstream_status, reason, n)",
        tenant, payment_id, [t.status.value for t in transitions],
        [t.previous.value if t.previous else None for t in transitions], [t.at for t in transitions],
        [t.upstream_status for t in transitions], [t.reason for t in transitions])


async def _finish_key(conn: Any, done: IdempotentResponse) -> None:
    """Keep the response under the key while `done.owner` still holds it (`conn`: a connection or the pool)."""
    updated = count(await conn.execute(
        "UPDATE idempotency_keys SET state = 'done', status = $1, content_type = $2, body = $3 "
        "WHERE tenant = $4 AND key = $5 AND owner = $6 AND state = 'in_progress'",
        done.status, done.content_type, done.body, done.tenant, done.key, done.owner))
    if updated != 1:
        # Another request took the key over (this one outlived its lease): keep nothing of this one.
        raise LostIdempotencyClaim(done.key)


class PaymentsAndKeys:
    _tx: Any
    _pool: Any
    _execute: Callable[..., Awaitable[str]]
    _write_emitting: Any
    _emit: Callable[[asyncpg.Connection, list[EventRecord]], Awaitable[int]]
    _one: Callable[..., Awaitable[Any]]
    _all: Callable[..., Awaitable[list[Any]]]

    # --- payments -------------------------------------------------------------------------------------------
    async def insert_payment(self, record: PaymentRecord, transition: PaymentTransition,
                             response: IdempotentResponse | None = None) -> None:
        args = _payment_args(record)
        async with self._tx() as conn:
            await conn.execute(f"INSERT INTO payments ({_PAYMENT_COLS}) VALUES "
                               f"({', '.join(f'${i}' for i in range(1, 23))})", *args)
            await _add_transitions(conn, record.tenant, record.id, [transition])
            if response is not None:
                await _finish_key(conn, response)

    async def update_payment(self, record: PaymentRecord, transitions: list[PaymentTransition], *,
                             response: IdempotentResponse | None = None) -> bool:
        """Write the payment if its stored version is still `record.version` (then bump it); False if not."""
        args = _payment_args(record)
        expected = record.version
        sets = ", ".join(f"{c.strip()} = ${i}" for i, c in enumerate(_PAYMENT_COLS.split(",")[2:-1], start=3))

        async def apply(conn: asyncpg.Connection) -> tuple[bool, int]:
            changed = count(await conn.execute(
                f"UPDATE payments SET {sets}, version = version + 1 WHERE tenant = $1 AND id = $2 AND version = $22",
                *args[:-1], expected)) == 1
            if not changed:
                return False, 0
            await _add_transitions(conn, record.tenant, record.id, transitions)
            if response is not None:
                await _finish_key(conn, response)
            return True, await self._emit(conn, canonical.payment_moved(record, transitions))

        if await self._write_emitting(apply):
            record.version = expected + 1
            return True
        return False

    async def get_payment(self, tenant: str, payment_id: str) -> PaymentRecord | None:
        row = await self._one(f"SELECT {_PAYMENT_COLS} FROM payments WHERE tenant = $1 AND id = $2",
                              tenant, payment_id)
        return _payment(row) if row else None

    async def list_payments(self, tenant: str, *, limit: int, after: tuple[str, str] | None) -> list[PaymentRecord]:
        where, params = "tenant = $1", [tenant]
        if after is not None:
            where += " AND (created_at, id) < ($2, $3)"
            params += [datetime.fromisoformat(after[0]), after[1]]
        params.append(limit)
        rows = await self._all(f"SELECT {_PAYMENT_COLS} FROM payments WHERE {where} "
                               f"ORDER BY created_at DESC, id DESC LIMIT ${len(params)}", *params)
        return [_payment(r) for r in rows]

    async def payment_transitions(self, tenant: str, payment_id: str) -> list[PaymentTransition]:
        rows = await self._all("SELECT status, previous, at, upstream_status, reason FROM payment_transitions "
                               "WHERE tenant = $1 AND payment_id = $2 ORDER BY seq", tenant, payment_id)
        return [PaymentTransition(status=PaymentStatus(r[0]), previous=PaymentStatus(r[1]) if r[1] else None,
                                  at=r[2], upstream_status=r[3], reason=r[4]) for r in rows]

    async def find_payments_by_ref(self, provider: str, provider_ref: str) -> list[PaymentRecord]:
        rows = await self._all(f"SELECT {_PAYMENT_COLS} FROM payments WHERE provider = $1 AND provider_ref = $2 "
                               "ORDER BY created_at, id", provider, provider_ref)
        return [_payment(r) for r in rows]

    async def due_payments(self, now: datetime, limit: int) -> list[PaymentRecord]:
        rows = await self._all(f"SELECT {_PAYMENT_COLS} FROM payments WHERE next_check_at IS NOT NULL "
                               "AND next_check_at <= $1 ORDER BY next_check_at LIMIT $2", now, limit)
        return [_payment(r) for r in rows]

    # --- idempotency keys -----------------------------------------------------------------------------------
    async def claim_idempotency_key(self, claim: IdempotencyRecord) -> IdempotencyRecord:
        """Insert the claim; or take over an in-progress claim with the same fingerprint whose lease ran out (by
        the claim's clock, `created_at`) and another owner; else return what is there. The caller holds the key
        when the returned record's owner is its own."""
        args = (claim.tenant, claim.key, claim.fingerprint, claim.owner, claim.lease_until, claim.created_at,
                claim.expires_at)
        async with self._tx() as conn:
            for _ in range(3):
                row = await conn.fetchrow(
                    f"INSERT INTO idempotency_keys ({_KEY_COLS}) VALUES ($1, $2, $3, 'in_progress', $4, $5, $6, $7, "
                    "NULL, NULL, NULL) ON CONFLICT (tenant, key) DO UPDATE SET owner = excluded.owner, "
                    "lease_until = excluded.lease_until WHERE idempotency_keys.state = 'in_progress' "
                    "AND idempotency_keys.fingerprint = excluded.fingerprint "
                    "AND idempotency_keys.lease_until < excluded.created_at "
                    f"AND idempotency_keys.owner != excluded.owner RETURNING {_KEY_COLS}", *args)
                if row is None:  # there, and not ours to take: what is it? (a later statement sees it committed)
                    row = await conn.fetchrow(f"SELECT {_KEY_COLS} FROM idempotency_keys WHERE tenant = $1 "
                                              "AND key = $2", claim.tenant, claim.key)
                if row is not None:  # None: released or purged in between, so the key is free again: try again
                    return _key(row)
        raise RuntimeError(f"idempotency key {claim.key!r} kept changing hands while being claimed")

    async def get_idempotency_key(self, tenant: str, key: str) -> IdempotencyRecord | None:
        row = await self._one(f"SELECT {_KEY_COLS} FROM idempotency_keys WHERE tenant = $1 AND key = $2", tenant, key)
        return _key(row) if row else None

    async def finish_idempotency_key(self, response: IdempotentResponse) -> None:
        await _finish_key(self._pool, response)  # one statement: nothing written when the claim is lost

    async def release_idempotency_key(self, tenant: str, key: str, owner: str) -> None:
        """Forget an in-progress claim (its request failed and left nothing): the key may be used again."""
        await self._execute("DELETE FROM idempotency_keys WHERE tenant = $1 AND key = $2 AND owner = $3 "
                            "AND state = 'in_progress'", tenant, key, owner)

    async def purge_idempotency_keys(self, now: datetime) -> int:
        return count(await self._execute("DELETE FROM idempotency_keys WHERE expires_at < $1", now))
