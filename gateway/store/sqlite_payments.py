"""Payments, their transitions and idempotency keys in the SQLite store. A mixin of `SQLiteStore` (it uses the
store's `_write`, `_one` and `_all`).

Every write that matters to money is one transaction: a payment and its first transition and the response kept
under the caller's idempotency key; a payment's new state and its transition (only if nobody wrote it since:
`version`); a key's claim (inserted, or taken over from a request whose process died).
"""
from __future__ import annotations

import sqlite3
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from gateway.events import canonical
from gateway.models import PaymentStatus
from gateway.models.payments import PaymentTransition
from gateway.models.serialize import dumps
from gateway.store.errors import LostIdempotencyClaim
from gateway.store.records import IdempotencyRecord, IdempotentResponse, PaymentRecord
from gateway.store.sqlite_schema import dt as _dt, ts as _ts

__all__ = ["LostIdempotencyClaim", "PaymentsAndKeys"]  # LostIdempotencyClaim re-exported: older imports

_PAYMENT_COLS = ("tenant, id, provider, type, status, amount, currency, request, created_at, updated_at, consent_ref, "
                 "provider_ref, authorisation_url, redirect_uri, upstream_status, status_reason, customer_id, live, "
                 "upstream, next_check_at, check_attempts, version")
_KEY_COLS = ("tenant, key, fingerprint, state, owner, lease_until, created_at, expires_at, status, content_type, "
             "body")


def _payment_row(r: PaymentRecord) -> tuple[Any, ...]:
    return (r.tenant, r.id, r.provider, r.type, r.status.value, str(r.amount), r.currency, dumps(r.request).decode(),
            _ts(r.created_at), _ts(r.updated_at), r.consent_ref, r.provider_ref, r.authorisation_url, r.redirect_uri,
            r.upstream_status, r.status_reason, r.customer_id, int(r.live), dumps(r.upstream).decode(),
            _ts(r.next_check_at), r.check_attempts, r.version)


def _payment(row: Any) -> PaymentRecord:
    return PaymentRecord(
        tenant=row[0], id=row[1], provider=row[2], type=row[3], status=PaymentStatus(row[4]), amount=Decimal(row[5]),
        currency=row[6], request=orjson.loads(row[7]), created_at=_dt(row[8]), updated_at=_dt(row[9]),
        consent_ref=row[10], provider_ref=row[11], authorisation_url=row[12], redirect_uri=row[13],
        upstream_status=row[14], status_reason=row[15], customer_id=row[16], live=bool(row[17]),
        upstream=orjson.loads(row[18]), next_check_at=_dt(row[19]), check_attempts=row[20], version=row[21])


def _key(row: Any) -> IdempotencyRecord:
    return IdempotencyRecord(tenant=row[0], key=row[1], fingerprint=row[2], state=row[3], owner=row[4],
                             lease_until=_dt(row[5]), created_at=_dt(row[6]), expires_at=_dt(row[7]), status=row[8],
                             content_type=row[9], body=bytes(row[10]) if row[10] is not None else None)


def _add_transitions(db: sqlite3.Connection, tenant: str, payment_id: str,
                     transitions: list[PaymentTransition]) -> None:
    if not transitions:
        return
    seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM payment_transitions WHERE tenant = ? AND payment_id = ?",
                     (tenant, payment_id)).fetchone()[0]
    db.executemany(
        "INSERT INTO payment_transitions (tenant, payment_id, seq, status, previous, at, upstream_status, reason) "
        "VALUES (?,?,?,?,?,?,?,?)",
        [(tenant, payment_id, seq + i, t.status.value, t.previous.value if t.previous else None, _ts(t.at),
          t.upstream_status, t.reason) for i, t in enumerate(transitions, start=1)])


def _finish_key(db: sqlite3.Connection, done: IdempotentResponse) -> None:
    updated = db.execute(
        "UPDATE idempotency_keys SET state = 'done', status = ?, content_type = ?, body = ? "
        "WHERE tenant = ? AND key = ? AND owner = ? AND state = 'in_progress'",
        (done.status, done.content_type, done.body, done.tenant, done.key, done.owner)).rowcount
    if updated != 1:
        # Another request took the key over (this one outlived its lease): keep nothing of this one.
        raise LostIdempotencyClaim(done.key)


class PaymentsAndKeys:
    _write: Any
    _write_emitting: Any
    _emit: Any
    _one: Any
    _all: Any

    # --- payments -------------------------------------------------------------------------------------------
    async def insert_payment(self, record: PaymentRecord, transition: PaymentTransition,
                             response: IdempotentResponse | None = None) -> None:
        row = _payment_row(record)

        def apply(db: sqlite3.Connection) -> None:
            db.execute(f"INSERT INTO payments ({_PAYMENT_COLS}) VALUES ({','.join('?' * 22)})", row)
            _add_transitions(db, record.tenant, record.id, [transition])
            if response is not None:
                _finish_key(db, response)

        await self._write(apply)

    async def update_payment(self, record: PaymentRecord, transitions: list[PaymentTransition], *,
                             response: IdempotentResponse | None = None) -> bool:
        """Write the payment if its stored version is still `record.version` (then bump it); False if not."""
        row = _payment_row(record)
        expected = record.version

        def apply(db: sqlite3.Connection) -> tuple[bool, int]:
            sets = ", ".join(f"{c.strip()} = ?" for c in _PAYMENT_COLS.split(",")[2:-1])
            changed = db.execute(f"UPDATE payments SET {sets}, version = version + 1 "
                                 "WHERE tenant = ? AND id = ? AND version = ?",
                                 row[2:-1] + (record.tenant, record.id, expected)).rowcount == 1
            if not changed:
                return False, 0
            _add_transitions(db, record.tenant, record.id, transitions)
            if response is not None:
                _finish_key(db, response)
            return True, self._emit(db, canonical.payment_moved(record, transitions))

        if await self._write_emitting(apply):
            record.version = expected + 1
            return True
        return False

    async def get_payment(self, tenant: str, payment_id: str) -> PaymentRecord | None:
        row = self._one(f"SELECT {_PAYMENT_COLS} FROM payments WHERE tenant = ? AND id = ?", (tenant, payment_id))
        return _payment(row) if row else None

    async def list_payments(self, tenant: str, *, limit: int, after: tuple[str, str] | None) -> list[PaymentRecord]:
        where, params = "tenant = ?", [tenant]
        if after is not None:
            where += " AND (created_at < ? OR (created_at = ? AND id < ?))"
            params += [after[0], after[0], after[1]]
        rows = self._all(f"SELECT {_PAYMENT_COLS} FROM payments WHERE {where} ORDER BY created_at DESC, id DESC "
                         "LIMIT ?", (*params, limit))
        return [_payment(r) for r in rows]

    async def payment_transitions(self, tenant: str, payment_id: str) -> list[PaymentTransition]:
        rows = self._all("SELECT status, previous, at, upstream_status, reason FROM payment_transitions "
                         "WHERE tenant = ? AND payment_id = ? ORDER BY seq", (tenant, payment_id))
        return [PaymentTransition(status=PaymentStatus(r[0]), previous=PaymentStatus(r[1]) if r[1] else None,
                                  at=_dt(r[2]), upstream_status=r[3], reason=r[4]) for r in rows]

    async def find_payments_by_ref(self, provider: str, provider_ref: str) -> list[PaymentRecord]:
        rows = self._all(f"SELECT {_PAYMENT_COLS} FROM payments WHERE provider = ? AND provider_ref = ?",
                         (provider, provider_ref))
        return [_payment(r) for r in rows]

    async def due_payments(self, now: datetime, limit: int) -> list[PaymentRecord]:
        rows = self._all(f"SELECT {_PAYMENT_COLS} FROM payments WHERE next_check_at IS NOT NULL AND next_check_at <= ? "
                         "ORDER BY next_check_at LIMIT ?", (_ts(now), limit))
        return [_payment(r) for r in rows]

    # --- idempotency keys -----------------------------------------------------------------------------------
    async def claim_idempotency_key(self, claim: IdempotencyRecord) -> IdempotencyRecord:
        """Insert the claim; or take over an in-progress claim whose lease ran out; else return what is there.
        The caller holds the key when the returned record's owner is its own."""
        row = (claim.tenant, claim.key, claim.fingerprint, "in_progress", claim.owner, _ts(claim.lease_until),
               _ts(claim.created_at), _ts(claim.expires_at), None, None, None)

        def apply(db: sqlite3.Connection) -> Any:
            db.execute(f"INSERT INTO idempotency_keys ({_KEY_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                       "ON CONFLICT (tenant, key) DO NOTHING", row)
            db.execute("UPDATE idempotency_keys SET owner = ?, lease_until = ? WHERE tenant = ? AND key = ? "
                       "AND state = 'in_progress' AND fingerprint = ? AND lease_until < ? AND owner != ?",
                       (claim.owner, _ts(claim.lease_until), claim.tenant, claim.key, claim.fingerprint,
                        _ts(claim.created_at), claim.owner))
            return db.execute(f"SELECT {_KEY_COLS} FROM idempotency_keys WHERE tenant = ? AND key = ?",
                              (claim.tenant, claim.key)).fetchone()

        return _key(await self._write(apply))

    async def get_idempotency_key(self, tenant: str, key: str) -> IdempotencyRecord | None:
        row = self._one(f"SELECT {_KEY_COLS} FROM idempotency_keys WHERE tenant = ? AND key = ?", (tenant, key))
        return _key(row) if row else None

    async def finish_idempotency_key(self, response: IdempotentResponse) -> None:
        await self._write(lambda db: _finish_key(db, response))

    async def release_idempotency_key(self, tenant: str, key: str, owner: str) -> None:
        """Forget an in-progress claim (its request failed and left nothing): the key may be used again."""
        await self._write(lambda db: db.execute(
            "DELETE FROM idempotency_keys WHERE tenant = ? AND key = ? AND owner = ? AND state = 'in_progress'",
            (tenant, key, owner)))

    async def purge_idempotency_keys(self, now: datetime) -> int:
        return await self._write(lambda db: db.execute(
            "DELETE FROM idempotency_keys WHERE expires_at < ?", (_ts(now),)).rowcount)
