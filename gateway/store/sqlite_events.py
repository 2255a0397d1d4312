"""The outbox in the SQLite store: canonical events, webhook subscriptions and deliveries. A mixin of `SQLiteStore`.

`emit(db, events)` runs inside the transaction of the state change an event describes: it appends the events
(their `seq` orders them for catching up) and, for each enabled subscription of the event's tenant that wants the
type, a pending delivery. Delivery workers claim pending deliveries with a lease (`claimed_by`, `claimed_until`):
a worker that dies leaves its claims to expire, and another takes them. A subscription that asked for ordering
gets a consent's or payment's events one after another: a delivery waits while an earlier one with the same
order key is still pending.
"""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any, Callable

import orjson

from gateway.events.canonical import Claimed, DeliveryBacklog, DeliveryRecord, EventRecord, SubscriptionRecord
from gateway.models.serialize import dumps
from gateway.store.sqlite_schema import dt as _dt, ts as _ts

_SUB_COLS = ("tenant, id, url, event_types, ordered, status, created_at, updated_at, secrets, description, "
             "disabled_reason")
_EVENT_COLS = "tenant, id, type, created_at, subject_type, subject_id, order_key, data, seq"
_DELIVERY_COLS = ("tenant, subscription_id, event_seq, event_id, status, attempts, next_attempt_at, horizon_at, "
                  "last_attempt_at, last_status, last_error, delivered_at")


def _sub_row(r: SubscriptionRecord) -> tuple[Any, ...]:
    return (r.tenant, r.id, r.url, orjson.dumps(list(r.event_types)).decode(), int(r.ordered), r.status,
            _ts(r.created_at), _ts(r.updated_at), r.secrets, r.description, r.disabled_reason)


def _sub(row: Any) -> SubscriptionRecord:
    return SubscriptionRecord(tenant=row[0], id=row[1], url=row[2], event_types=tuple(orjson.loads(row[3])),
                              ordered=bool(row[4]), status=row[5], created_at=_dt(row[6]), updated_at=_dt(row[7]),
                              secrets=bytes(row[8]), description=row[9], disabled_reason=row[10])


def _event(row: Any) -> EventRecord:
    return EventRecord(tenant=row[0], id=row[1], type=row[2], created_at=_dt(row[3]), subject_type=row[4],
                       subject_id=row[5], order_key=row[6], data=orjson.loads(row[7]), seq=row[8])


def _delivery(row: Any) -> DeliveryRecord:
    return DeliveryRecord(tenant=row[0], subscription_id=row[1], event_seq=row[2], event_id=row[3], status=row[4],
                          attempts=row[5], next_attempt_at=_dt(row[6]), horizon_at=_dt(row[7]),
                          last_attempt_at=_dt(row[8]), last_status=row[9], last_error=row[10],
                          delivered_at=_dt(row[11]))


def emit(db: sqlite3.Connection, events: list[EventRecord], horizon_seconds: float) -> int:
    """Append `events` and their deliveries, inside the caller's transaction. Returns how many were written."""
    for event in events:
        cur = db.execute(
            "INSERT INTO events (tenant, id, type, created_at, subject_type, subject_id, order_key, data) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (event.tenant, event.id, event.type, _ts(event.created_at), event.subject_type, event.subject_id,
             event.order_key, dumps(event.data).decode()))
        event.seq = int(cur.lastrowid or 0)
        subs = db.execute("SELECT id, event_types FROM webhook_subscriptions WHERE tenant = ? AND status = 'enabled'",
                          (event.tenant,)).fetchall()
        wanted = [sid for sid, types in subs if event.type in (kinds := orjson.loads(types)) or "*" in kinds]
        horizon = _ts(event.created_at + timedelta(seconds=horizon_seconds))
        db.executemany(
            "INSERT INTO deliveries (tenant, subscription_id, event_seq, event_id, order_key, status, attempts, "
            "next_attempt_at, horizon_at) VALUES (?,?,?,?,?,'pending',0,?,?)",
            [(event.tenant, sid, event.seq, event.id, event.order_key, _ts(event.created_at), horizon)
             for sid in wanted])
    return len(events)


class EventsOutbox:
    _write: Any
    _one: Any
    _all: Any
    _newest_first: Any
    event_horizon_seconds: float
    _events_emitted: Callable[[], None]

    # --- events ---------------------------------------------------------------------------------------------
    async def emit_events(self, events: list[EventRecord]) -> None:
        """Events that record no state change of their own (the change was written before)."""
        await self._write(lambda db: emit(db, events, self.event_horizon_seconds))
        self._events_emitted()

    async def list_events(self, tenant: str, *, after_seq: int, limit: int, types: tuple[str, ...] = (),
                          delivery_status: str | None = None) -> list[EventRecord]:
        """Oldest first, after `after_seq`; with `delivery_status`, only events with a delivery in that state."""
        where, params = ["e.tenant = ?", "e.seq > ?"], [tenant, after_seq]
        if types:
            where.append(f"e.type IN ({','.join('?' * len(types))})")
            params += list(types)
        if delivery_status is not None:
            where.append("EXISTS (SELECT 1 FROM deliveries d WHERE d.tenant = e.tenant AND d.event_seq = e.seq "
                         "AND d.status = ?)")
            params.append(delivery_status)
        cols = ", ".join(f"e.{c.strip()}" for c in _EVENT_COLS.split(","))
        rows = self._all(f"SELECT {cols} FROM events e WHERE {' AND '.join(where)} ORDER BY e.seq LIMIT ?",
                         (*params, limit))
        return [_event(r) for r in rows]

    async def get_event(self, tenant: str, event_id: str) -> EventRecord | None:
        row = self._one(f"SELECT {_EVENT_COLS} FROM events WHERE tenant = ? AND id = ?", (tenant, event_id))
        return _event(row) if row else None

    async def event_deliveries(self, tenant: str, seqs: list[int]) -> dict[int, list[DeliveryRecord]]:
        out: dict[int, list[DeliveryRecord]] = {seq: [] for seq in seqs}
        if not seqs:
            return out
        rows = self._all(f"SELECT {_DELIVERY_COLS} FROM deliveries WHERE tenant = ? AND event_seq IN "
                         f"({','.join('?' * len(seqs))}) ORDER BY event_seq, subscription_id", (tenant, *seqs))
        for row in rows:
            out[row[2]].append(_delivery(row))
        return out

    # --- subscriptions --------------------------------------------------------------------------------------
    async def insert_subscription(self, record: SubscriptionRecord) -> None:
        row = _sub_row(record)
        await self._write(lambda db: db.execute(
            f"INSERT INTO webhook_subscriptions ({_SUB_COLS}) VALUES ({','.join('?' * 11)})", row))

    async def get_subscription(self, tenant: str, subscription_id: str) -> SubscriptionRecord | None:
        row = self._one(f"SELECT {_SUB_COLS} FROM webhook_subscriptions WHERE tenant = ? AND id = ?",
                        (tenant, subscription_id))
        return _sub(row) if row else None

    async def list_subscriptions(self, tenant: str, *, limit: int,
                                 after: tuple[str, str] | None) -> list[SubscriptionRecord]:
        return [_sub(r) for r in self._newest_first("webhook_subscriptions", _SUB_COLS, tenant, None, limit, after)]

    async def update_subscription(self, record: SubscriptionRecord, *, expected_updated_at: datetime) -> bool:
        """Write the subscription if nobody changed it since `expected_updated_at`."""
        row = _sub_row(record)
        sets = ", ".join(f"{c.strip()} = ?" for c in _SUB_COLS.split(",")[2:])
        return await self._write(lambda db: db.execute(
            f"UPDATE webhook_subscriptions SET {sets} WHERE tenant = ? AND id = ? AND updated_at = ?",
            row[2:] + (record.tenant, record.id, _ts(expected_updated_at))).rowcount == 1)

    async def delete_subscription(self, tenant: str, subscription_id: str) -> bool:
        def apply(db: sqlite3.Connection) -> bool:
            db.execute("DELETE FROM deliveries WHERE tenant = ? AND subscription_id = ?", (tenant, subscription_id))
            return db.execute("DELETE FROM webhook_subscriptions WHERE tenant = ? AND id = ?",
                              (tenant, subscription_id)).rowcount == 1
        return await self._write(apply)

    # --- deliveries -----------------------------------------------------------------------------------------
    async def claim_deliveries(self, owner: str, now: datetime, lease_until: datetime, limit: int, *,
                               per_subscription: int, busy: dict[str, int]) -> list[Claimed]:
        """Claim up to `limit` due deliveries for `owner`, at most `per_subscription` in flight per subscription
        (`busy` says how many each already has in flight here)."""
        cols = ", ".join(f"d.{c.strip()}" for c in _DELIVERY_COLS.split(","))
        ecols = ", ".join(f"e.{c.strip()}" for c in _EVENT_COLS.split(","))
        # Subscriptions already at their cap here are left out of the query: otherwise a backlog of theirs, due
        # earlier than everything else, fills the rows looked at and starves every other subscription.
        capped = sorted(sub for sub, n in busy.items() if n >= per_subscription)
        not_capped = f"AND d.subscription_id NOT IN ({','.join('?' * len(capped))}) " if capped else ""
        sql = (
            f"SELECT {cols}, {ecols}, s.url, s.secrets FROM deliveries d "
            "JOIN webhook_subscriptions s ON s.tenant = d.tenant AND s.id = d.subscription_id "
            "JOIN events e ON e.seq = d.event_seq AND e.tenant = d.tenant "
            "WHERE d.status = 'pending' AND d.next_attempt_at <= ? "
            "AND (d.claimed_until IS NULL OR d.claimed_until <= ?) AND s.status = 'enabled' "
            "AND (s.ordered = 0 OR NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.tenant = d.tenant "
            "AND p.subscription_id = d.subscription_id AND p.order_key = d.order_key AND p.event_seq < d.event_seq "
            "AND p.status = 'pending')) "
            f"{not_capped}"
            "ORDER BY d.next_attempt_at, d.event_seq LIMIT ?")

        def apply(db: sqlite3.Connection) -> list[Claimed]:
            rows = db.execute(sql, (_ts(now), _ts(now), *capped, limit * 4)).fetchall()
            taken: list[Claimed] = []
            counts = dict(busy)
            for row in rows:
                if len(taken) >= limit:
                    break
                sub = row[1]
                if counts.get(sub, 0) >= per_subscription:
                    continue
                counts[sub] = counts.get(sub, 0) + 1
                taken.append(Claimed(delivery=_delivery(row[:12]), event=_event(row[12:21]), url=row[21],
                                     secrets=bytes(row[22])))
            db.executemany(
                "UPDATE deliveries SET claimed_by = ?, claimed_until = ? WHERE tenant = ? AND subscription_id = ? "
                "AND event_seq = ?",
                [(owner, _ts(lease_until), c.delivery.tenant, c.delivery.subscription_id, c.delivery.event_seq)
                 for c in taken])
            return taken

        return await self._write(apply)

    async def finish_delivery(self, delivery: DeliveryRecord, owner: str, *,
                              disable_reason: str | None = None) -> bool:
        """Record an attempt's outcome (the delivery as the worker left it) and free the claim, only while `owner`
        still holds it; with `disable_reason`, also disable the subscription. False when the claim was lost."""
        def apply(db: sqlite3.Connection) -> bool:
            done = db.execute(
                "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_attempt_at = ?, "
                "last_status = ?, last_error = ?, delivered_at = ?, claimed_by = NULL, claimed_until = NULL "
                "WHERE tenant = ? AND subscription_id = ? AND event_seq = ? AND claimed_by = ? AND status = 'pending'",
                (delivery.status, delivery.attempts, _ts(delivery.next_attempt_at), _ts(delivery.last_attempt_at),
                 delivery.last_status, delivery.last_error, _ts(delivery.delivered_at), delivery.tenant,
                 delivery.subscription_id, delivery.event_seq, owner)).rowcount == 1
            if done and disable_reason is not None:
                db.execute("UPDATE webhook_subscriptions SET status = 'disabled', disabled_reason = ?, updated_at = ? "
                           "WHERE tenant = ? AND id = ? AND status = 'enabled'",
                           (disable_reason, _ts(delivery.last_attempt_at), delivery.tenant,
                            delivery.subscription_id))
            return done

        return await self._write(apply)

    async def release_deliveries(self, owner: str) -> int:
        """Give back every claim `owner` holds (a worker shutting down): others may take them at once."""
        return await self._write(lambda db: db.execute(
            "UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = ? AND status = 'pending'",
            (owner,)).rowcount)

    async def redeliver(self, tenant: str, event: EventRecord, subscription_ids: list[str], now: datetime,
                        horizon_at: datetime) -> int:
        """Queue `event` again for each subscription (dead-lettered or delivered alike; one it never had is
        added). Returns how many deliveries were queued."""
        def apply(db: sqlite3.Connection) -> int:
            queued = 0
            if db.execute("SELECT 1 FROM events WHERE seq = ? AND tenant = ?", (event.seq, tenant)).fetchone() is None:
                return 0  # never one tenant's event to another's endpoint
            for sid in subscription_ids:
                if db.execute("SELECT 1 FROM webhook_subscriptions WHERE tenant = ? AND id = ?",
                              (tenant, sid)).fetchone() is None:
                    continue
                queued += db.execute(
                    "INSERT INTO deliveries (tenant, subscription_id, event_seq, event_id, order_key, status, "
                    "attempts, next_attempt_at, horizon_at) VALUES (?,?,?,?,?,'pending',0,?,?) "
                    "ON CONFLICT (tenant, subscription_id, event_seq) DO UPDATE SET status = 'pending', attempts = 0, "
                    "next_attempt_at = excluded.next_attempt_at, horizon_at = excluded.horizon_at, "
                    "delivered_at = NULL, claimed_by = NULL, claimed_until = NULL WHERE deliveries.status != 'pending'",
                    (tenant, sid, event.seq, event.id, event.order_key, _ts(now), _ts(horizon_at))).rowcount
            return queued

        queued = await self._write(apply)
        if queued:
            self._events_emitted()
        return queued

    async def purge_events(self, before: datetime) -> int:
        """Delete events older than `before` whose deliveries are all finished (delivered or dead-lettered)."""
        def apply(db: sqlite3.Connection) -> int:
            old = "SELECT seq FROM events WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM deliveries d " \
                  "WHERE d.tenant = events.tenant AND d.event_seq = events.seq AND d.status = 'pending')"
            db.execute(f"DELETE FROM deliveries WHERE event_seq IN ({old})", (_ts(before),))
            return db.execute(f"DELETE FROM events WHERE seq IN ({old})", (_ts(before),)).rowcount
        return await self._write(apply)

    async def delivery_backlog(self, now: datetime) -> DeliveryBacklog:
        at = _ts(now)
        row = self._one("SELECT (SELECT count(*) FROM deliveries WHERE status = 'pending'), "
                        "count(*), min(next_attempt_at), "
                        "(SELECT count(*) FROM deliveries WHERE status = 'failed') "
                        "FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?", (at,))
        assert row is not None
        return DeliveryBacklog(pending=row[0], due=row[1], oldest_due_at=_dt(row[2]), failed=row[3])

    # --- consent expiry -------------------------------------------------------------------------------------
    async def consents_expiring(self, until: datetime, limit: int) -> list[Any]:
        """Authorised consents whose expiry is before `until` and that were not yet announced as expiring."""
        from gateway.store.sqlite import _CONSENT_COLS, _consent

        cols = ", ".join(f"c.{c.strip()}" for c in _CONSENT_COLS.split(","))
        rows = self._all(
            f"SELECT {cols} FROM consents c WHERE c.expires_at IS NOT NULL AND c.expires_at <= ? "
            "AND c.status IN ('authorised', 'reauthentication_required') AND NOT EXISTS (SELECT 1 FROM "
            "consent_notices n WHERE n.tenant = c.tenant AND n.consent_id = c.id "
            "AND n.kind = 'expiring@' || c.expires_at) "
            "ORDER BY c.expires_at LIMIT ?", (_ts(until), limit))
        return [_consent(r) for r in rows]

    async def consents_past_expiry(self, now: datetime, limit: int) -> list[Any]:
        from gateway.store.sqlite import _CONSENT_COLS, _consent

        rows = self._all(f"SELECT {_CONSENT_COLS} FROM consents WHERE expires_at IS NOT NULL AND expires_at <= ? "
                         "AND status IN ('authorised', 'reauthentication_required') ORDER BY expires_at LIMIT ?",
                         (_ts(now), limit))
        return [_consent(r) for r in rows]

    async def announce_expiring(self, tenant: str, consent_id: str, expires_at: datetime, event: EventRecord) -> bool:
        """Record that the consent was announced as expiring, with the event, once per expiry time (a consent
        whose expiry is moved later is announced again before its new expiry)."""
        kind = f"expiring@{_ts(expires_at)}"  # as consents_expiring compares it with the stored expires_at

        def apply(db: sqlite3.Connection) -> bool:
            fresh = db.execute("INSERT INTO consent_notices (tenant, consent_id, kind, at) VALUES (?,?,?,?) "
                               "ON CONFLICT DO NOTHING", (tenant, consent_id, kind, _ts(event.created_at))).rowcount == 1
            if fresh:
                emit(db, [event], self.event_horizon_seconds)
            return fresh

        fresh = await self._write(apply)
        if fresh:
            self._events_emitted()
        return fresh

    # --- leases: one holder at a time across processes --------------------------------------------------------
    async def try_lease(self, name: str, owner: str, until: datetime, now: datetime) -> bool:
        """Take the lease `name` for `owner` until `until` if nobody holds it (or its holder's time ran out, or
        `owner` holds it already: then it is extended). True when `owner` holds it now."""
        def apply(db: sqlite3.Connection) -> bool:
            db.execute("INSERT INTO leases (name, owner, until) VALUES (?,?,?) ON CONFLICT (name) DO UPDATE SET "
                       "owner = excluded.owner, until = excluded.until WHERE leases.until <= ? OR leases.owner = ?",
                       (name, owner, _ts(until), _ts(now), owner))
            row = db.execute("SELECT owner FROM leases WHERE name = ?", (name,)).fetchone()
            return row is not None and row[0] == owner
        return await self._write(apply)

    async def release_lease(self, name: str, owner: str) -> None:
        await self._write(lambda db: db.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner)))
