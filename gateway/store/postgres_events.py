"""The outbox in the PostgreSQL store: canonical events, webhook subscriptions and deliveries. A mixin of
`PostgresStore`, with the semantics of the SQLite one (`sqlite_events.py`).

`emit(conn, events)` runs inside the transaction of the state change the events describe. It first takes the
events lock (see `postgres.py` for why), then appends each event (its `seq` from the `bigserial`) with, for each
enabled subscription of the event's tenant that wants the type, a pending delivery, and queues a NOTIFY that
PostgreSQL sends only if the transaction commits.

Several replicas claim from one outbox: `claim_deliveries` locks the rows it takes with `FOR UPDATE OF d SKIP
LOCKED`, so two workers claiming at once take different deliveries without waiting for each other, and a delivery
claimed and committed while another worker's query ran is checked again against its new `claimed_until` before
that worker can take it. `finish_delivery` writes only while the worker still holds the claim.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable

import asyncpg
import orjson

from gateway.events.canonical import Claimed, DeliveryBacklog, DeliveryRecord, EventRecord, SubscriptionRecord
from gateway.models.serialize import dumps
from gateway.models.time import UTC
from gateway.store.postgres_schema import Wakeup

_SUB_COLS = ("tenant, id, url, event_types, ordered, status, created_at, updated_at, secrets, description, "
             "disabled_reason")
_EVENT_COLS = "tenant, id, type, created_at, subject_type, subject_id, order_key, data, seq"
_DELIVERY_COLS = ("tenant, subscription_id, event_seq, event_id, status, attempts, next_attempt_at, horizon_at, "
                  "last_attempt_at, last_status, last_error, delivered_at")

# One statement per event: the event, then its deliveries to the subscriptions that want it (the fan-out is done
# by the database, in the same snapshot). A data-modifying WITH always runs to completion.
_INSERT_EVENT = (
    "WITH e AS (INSERT INTO events (tenant, id, type, created_at, subject_type, subject_id, order_key, data) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq), "
    "d AS (INSERT INTO deliveries (tenant, subscription_id, event_seq, event_id, order_key, status, attempts, "
    "next_attempt_at, horizon_at) SELECT $1, s.id, e.seq, $2, $7, 'pending', 0, $4, $9 "
    "FROM e, webhook_subscriptions s WHERE s.tenant = $1 AND s.status = 'enabled' "
    "AND ($3 = ANY (s.event_types) OR '*' = ANY (s.event_types))) "
    "SELECT seq FROM e")


def count(status: str) -> int:
    """Rows a command touched, from its status tag ("UPDATE 3", "INSERT 0 1", "DELETE 2")."""
    return int(status.rsplit(" ", 1)[-1])


def sub_args(r: SubscriptionRecord) -> tuple[Any, ...]:
    return (r.tenant, r.id, r.url, list(r.event_types), r.ordered, r.status, r.created_at, r.updated_at, r.secrets,
            r.description, r.disabled_reason)


def sub(row: Any) -> SubscriptionRecord:
    return SubscriptionRecord(tenant=row[0], id=row[1], url=row[2], event_types=tuple(row[3]), ordered=row[4],
                              status=row[5], created_at=row[6], updated_at=row[7], secrets=bytes(row[8]),
                              description=row[9], disabled_reason=row[10])


def event(row: Any) -> EventRecord:
    return EventRecord(tenant=row[0], id=row[1], type=row[2], created_at=row[3], subject_type=row[4],
                       subject_id=row[5], order_key=row[6], data=orjson.loads(row[7]), seq=row[8])


def delivery(row: Any) -> DeliveryRecord:
    return DeliveryRecord(tenant=row[0], subscription_id=row[1], event_seq=row[2], event_id=row[3], status=row[4],
                          attempts=row[5], next_attempt_at=row[6], horizon_at=row[7], last_attempt_at=row[8],
                          last_status=row[9], last_error=row[10], delivered_at=row[11])


async def announce(conn: asyncpg.Connection, wakeup: Wakeup, *, lock: bool) -> None:
    """Queue the cross-replica wake-up (sent at commit, dropped on rollback); with `lock`, take the events lock."""
    if lock:
        await conn.execute("SELECT pg_advisory_xact_lock($1), pg_notify($2, $3)", wakeup.events_lock,
                           wakeup.channel, wakeup.writer)
    else:
        await conn.execute("SELECT pg_notify($1, $2)", wakeup.channel, wakeup.writer)


async def emit(conn: asyncpg.Connection, events: list[EventRecord], horizon_seconds: float, wakeup: Wakeup) -> int:
    """Append `events` and their deliveries inside the caller's transaction (set each one's `seq`). Returns how
    many were written. Call it last in the transaction: the events lock is held from here to the commit."""
    if not events:
        return 0
    await announce(conn, wakeup, lock=True)
    for e in events:
        horizon = e.created_at + timedelta(seconds=horizon_seconds)
        e.seq = int(await conn.fetchval(_INSERT_EVENT, e.tenant, e.id, e.type, e.created_at, e.subject_type,
                                        e.subject_id, e.order_key, dumps(e.data).decode(), horizon))
    return len(events)


class EventsOutbox:
    _tx: Any
    _execute: Callable[..., Awaitable[str]]
    _one: Callable[..., Awaitable[Any]]
    _all: Callable[..., Awaitable[list[Any]]]
    _newest_first: Any
    _emit: Callable[[asyncpg.Connection, list[EventRecord]], Awaitable[int]]
    _wakeup: Wakeup
    event_horizon_seconds: float
    _events_emitted: Callable[[], None]

    # --- events ---------------------------------------------------------------------------------------------
    async def emit_events(self, events: list[EventRecord]) -> None:
        """Events that record no state change of their own (the change was written before)."""
        if events:
            async with self._tx() as conn:
                await self._emit(conn, events)
        self._events_emitted()

    async def list_events(self, tenant: str, *, after_seq: int, limit: int, types: tuple[str, ...] = (),
                          delivery_status: str | None = None) -> list[EventRecord]:
        """Oldest first, after `after_seq`; with `delivery_status`, only events with a delivery in that state."""
        where, params = ["e.tenant = $1", "e.seq > $2"], [tenant, after_seq]
        if types:
            params.append(list(types))
            where.append(f"e.type = ANY (${len(params)}::text[])")
        if delivery_status is not None:
            params.append(delivery_status)
            where.append("EXISTS (SELECT 1 FROM deliveries d WHERE d.tenant = e.tenant AND d.event_seq = e.seq "
                         f"AND d.status = ${len(params)})")
        params.append(limit)
        cols = ", ".join(f"e.{c.strip()}" for c in _EVENT_COLS.split(","))
        rows = await self._all(f"SELECT {cols} FROM events e WHERE {' AND '.join(where)} ORDER BY e.seq "
                               f"LIMIT ${len(params)}", *params)
        return [event(r) for r in rows]

    async def get_event(self, tenant: str, event_id: str) -> EventRecord | None:
        row = await self._one(f"SELECT {_EVENT_COLS} FROM events WHERE tenant = $1 AND id = $2", tenant, event_id)
        return event(row) if row else None

    async def event_deliveries(self, tenant: str, seqs: list[int]) -> dict[int, list[DeliveryRecord]]:
        out: dict[int, list[DeliveryRecord]] = {seq: [] for seq in seqs}
        if not seqs:
            return out
        rows = await self._all(f"SELECT {_DELIVERY_COLS} FROM deliveries WHERE tenant = $1 AND "
                               "event_seq = ANY ($2::bigint[]) ORDER BY event_seq, subscription_id", tenant, seqs)
        for row in rows:
            out[row[2]].append(delivery(row))
        return out

    # --- subscriptions --------------------------------------------------------------------------------------
    async def insert_subscription(self, record: SubscriptionRecord) -> None:
        await self._execute(f"INSERT INTO webhook_subscriptions ({_SUB_COLS}) VALUES "
                            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)", *sub_args(record))

    async def get_subscription(self, tenant: str, subscription_id: str) -> SubscriptionRecord | None:
        row = await self._one(f"SELECT {_SUB_COLS} FROM webhook_subscriptions WHERE tenant = $1 AND id = $2",
                              tenant, subscription_id)
        return sub(row) if row else None

    async def list_subscriptions(self, tenant: str, *, limit: int,
                                 after: tuple[str, str] | None) -> list[SubscriptionRecord]:
        rows = await self._newest_first("webhook_subscriptions", _SUB_COLS, tenant, None, limit, after)
        return [sub(r) for r in rows]

    async def update_subscription(self, record: SubscriptionRecord, *, expected_updated_at: datetime) -> bool:
        """Write the subscription if nobody changed it since `expected_updated_at`."""
        args = sub_args(record)
        sets = ", ".join(f"{c.strip()} = ${i}" for i, c in enumerate(_SUB_COLS.split(",")[2:], start=3))
        return count(await self._execute(
            f"UPDATE webhook_subscriptions SET {sets} WHERE tenant = $1 AND id = $2 AND updated_at = $12",
            *args, expected_updated_at)) == 1

    async def delete_subscription(self, tenant: str, subscription_id: str) -> bool:
        async with self._tx() as conn:
            await conn.execute("DELETE FROM deliveries WHERE tenant = $1 AND subscription_id = $2",
                               tenant, subscription_id)
            return count(await conn.execute("DELETE FROM webhook_subscriptions WHERE tenant = $1 AND id = $2",
                                            tenant, subscription_id)) == 1

    # --- deliveries -----------------------------------------------------------------------------------------
    async def claim_deliveries(self, owner: str, now: datetime, lease_until: datetime, limit: int, *,
                               per_subscription: int, busy: dict[str, int]) -> list[Claimed]:
        """Claim up to `limit` due deliveries for `owner`, the most overdue first, at most `per_subscription` in
        flight per subscription (`busy` says how many each already has in flight here). Rows another worker is
        claiming are skipped, not waited for.

        Only rows this claim takes are locked: a row locked and left (SQLite's way, looking at `limit`×4 rows and
        taking `limit`) would be skipped by every concurrent claim until this one commits, so they would come back
        short while deliveries wait. So the query asks for what is still wanted, leaving out subscriptions at their
        cap (here and within this claim); a row it returns for a subscription that just reached its cap is the only
        kind left unused, and that subscription is then left out, so this ends within a few rounds."""
        cols = ", ".join(f"d.{c.strip()}" for c in _DELIVERY_COLS.split(","))
        ecols = ", ".join(f"e.{c.strip()}" for c in _EVENT_COLS.split(","))
        # Subscriptions at their cap are left out of the query: otherwise a backlog of theirs, due earlier than
        # everything else, fills the rows looked at and starves every other subscription.
        sql = (
            f"SELECT {cols}, {ecols}, s.url, s.secrets FROM deliveries d "
            "JOIN webhook_subscriptions s ON s.tenant = d.tenant AND s.id = d.subscription_id "
            "JOIN events e ON e.seq = d.event_seq AND e.tenant = d.tenant "
            "WHERE d.status = 'pending' AND d.next_attempt_at <= $1 "
            "AND (d.claimed_until IS NULL OR d.claimed_until <= $1) AND s.status = 'enabled' "
            "AND (NOT s.ordered OR NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.tenant = d.tenant "
            "AND p.subscription_id = d.subscription_id AND p.order_key = d.order_key AND p.event_seq < d.event_seq "
            "AND p.status = 'pending')) "
            "AND NOT (d.subscription_id = ANY ($2::text[])) "
            "AND NOT EXISTS (SELECT 1 FROM unnest($3::text[], $4::text[], $5::bigint[]) AS t (tenant, sid, seq) "
            "WHERE t.tenant = d.tenant AND t.sid = d.subscription_id AND t.seq = d.event_seq) "
            "ORDER BY d.next_attempt_at, d.event_seq LIMIT $6 FOR UPDATE OF d SKIP LOCKED")
        taken: list[Claimed] = []
        counts = dict(busy)
        async with self._tx() as conn:
            while len(taken) < limit:
                wanted = limit - len(taken)
                capped = sorted(s for s, n in counts.items() if n >= per_subscription)
                rows = await conn.fetch(sql, now, capped, [c.delivery.tenant for c in taken],
                                        [c.delivery.subscription_id for c in taken],
                                        [c.delivery.event_seq for c in taken], wanted)
                for row in rows:
                    sid = row[1]
                    if counts.get(sid, 0) >= per_subscription:
                        continue
                    counts[sid] = counts.get(sid, 0) + 1
                    taken.append(Claimed(delivery=delivery(row[:12]), event=event(row[12:21]), url=row[21],
                                         secrets=bytes(row[22])))
                if len(rows) < wanted:
                    break  # nothing more is due (or free to take)
            if taken:
                await conn.execute(
                    "UPDATE deliveries d SET claimed_by = $1, claimed_until = $2 "
                    "FROM unnest($3::text[], $4::text[], $5::bigint[]) AS c (tenant, subscription_id, event_seq) "
                    "WHERE d.tenant = c.tenant AND d.subscription_id = c.subscription_id "
                    "AND d.event_seq = c.event_seq",
                    owner, lease_until, [c.delivery.tenant for c in taken],
                    [c.delivery.subscription_id for c in taken], [c.delivery.event_seq for c in taken])
        taken.sort(key=lambda c: (c.delivery.next_attempt_at, c.delivery.event_seq))
        return taken

    async def finish_delivery(self, delivery: DeliveryRecord, owner: str, *,
                              disable_reason: str | None = None) -> bool:
        """Record an attempt's outcome (the delivery as the worker left it) and free the claim, only while `owner`
        still holds it; with `disable_reason`, also disable the subscription. False when the claim was lost."""
        d = delivery
        async with self._tx() as conn:
            done = count(await conn.execute(
                "UPDATE deliveries SET status = $1, attempts = $2, next_attempt_at = $3, last_attempt_at = $4, "
                "last_status = $5, last_error = $6, delivered_at = $7, claimed_by = NULL, claimed_until = NULL "
                "WHERE tenant = $8 AND subscription_id = $9 AND event_seq = $10 AND claimed_by = $11 "
                "AND status = 'pending'",
                d.status, d.attempts, d.next_attempt_at, d.last_attempt_at, d.last_status, d.last_error,
                d.delivered_at, d.tenant, d.subscription_id, d.event_seq, owner)) == 1
            if done and disable_reason is not None:
                await conn.execute(
                    "UPDATE webhook_subscriptions SET status = 'disabled', disabled_reason = $1, updated_at = $2 "
                    "WHERE tenant = $3 AND id = $4 AND status = 'enabled'",
                    disable_reason, d.last_attempt_at, d.tenant, d.subscription_id)
        return done

    async def release_deliveries(self, owner: str) -> int:
        """Give back every claim `owner` holds (a worker shutting down): others may take them at once."""
        return count(await self._execute("UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL "
                                         "WHERE claimed_by = $1 AND status = 'pending'", owner))

    async def redeliver(self, tenant: str, event: EventRecord, subscription_ids: list[str], now: datetime,
                        horizon_at: datetime) -> int:
        """Queue `event` again for each subscription (dead-lettered or delivered alike; one it never had is
        added). Returns how many deliveries were queued. Only `tenant`'s own event, to `tenant`'s own
        subscriptions: never one tenant's event to another's endpoint."""
        sids = list(dict.fromkeys(subscription_ids))  # once each: a second mention would find it pending anyway
        if not sids:
            return 0
        async with self._tx() as conn:
            queued = count(await conn.execute(
                "INSERT INTO deliveries (tenant, subscription_id, event_seq, event_id, order_key, status, attempts, "
                "next_attempt_at, horizon_at) SELECT $1, s.id, e.seq, e.id, e.order_key, 'pending', 0, $4, $5 "
                "FROM unnest($2::text[]) WITH ORDINALITY AS u (sid, n) "
                "JOIN webhook_subscriptions s ON s.tenant = $1 AND s.id = u.sid "
                "JOIN events e ON e.tenant = $1 AND e.seq = $3 ORDER BY u.n "
                "ON CONFLICT (tenant, subscription_id, event_seq) DO UPDATE SET status = 'pending', attempts = 0, "
                "next_attempt_at = excluded.next_attempt_at, horizon_at = excluded.horizon_at, "
                "delivered_at = NULL, claimed_by = NULL, claimed_until = NULL WHERE deliveries.status != 'pending'",
                tenant, sids, event.seq, now, horizon_at))
            if queued:
                await announce(conn, self._wakeup, lock=False)  # no new event: the order of seq is not at stake
        if queued:
            self._events_emitted()
        return queued

    async def purge_events(self, before: datetime) -> int:
        """Delete events older than `before` whose deliveries are all finished (delivered or dead-lettered)."""
        # One statement, one snapshot: the deliveries and the events deleted are of the same events.
        row = await self._one(
            "WITH old AS (SELECT seq FROM events WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM deliveries "
            "d WHERE d.tenant = events.tenant AND d.event_seq = events.seq AND d.status = 'pending')), "
            "gone AS (DELETE FROM deliveries WHERE event_seq IN (SELECT seq FROM old)), "
            "dropped AS (DELETE FROM events WHERE seq IN (SELECT seq FROM old) RETURNING 1) "
            "SELECT count(*) FROM dropped", before)
        return int(row[0])

    async def delivery_backlog(self, now: datetime) -> DeliveryBacklog:
        row = await self._one(
            "SELECT (SELECT count(*) FROM deliveries WHERE status = 'pending'), count(*), min(next_attempt_at), "
            "(SELECT count(*) FROM deliveries WHERE status = 'failed') "
            "FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $1", now)
        return DeliveryBacklog(pending=int(row[0]), due=int(row[1]), oldest_due_at=row[2], failed=int(row[3]))

    # --- consent expiry -------------------------------------------------------------------------------------
    async def consents_expiring(self, until: datetime, limit: int) -> list[Any]:
        """Authorised consents whose expiry is before `until` and that were not yet announced as expiring."""
        from gateway.store.postgres import CONSENT_COLS, consent

        cols = ", ".join(f"c.{c.strip()}" for c in CONSENT_COLS.split(","))
        rows = await self._all(
            f"SELECT {cols} FROM consents c WHERE c.expires_at IS NOT NULL AND c.expires_at <= $1 "
            "AND c.status IN ('authorised', 'reauthentication_required') AND NOT EXISTS (SELECT 1 FROM "
            "consent_notices n WHERE n.tenant = c.tenant AND n.consent_id = c.id AND n.kind LIKE 'expiring@%' "
            "AND n.expires_at = c.expires_at) "
            "ORDER BY c.expires_at LIMIT $2", until, limit)
        return [consent(r) for r in rows]

    async def consents_past_expiry(self, now: datetime, limit: int) -> list[Any]:
        from gateway.store.postgres import CONSENT_COLS, consent

        rows = await self._all(f"SELECT {CONSENT_COLS} FROM consents WHERE expires_at IS NOT NULL AND expires_at <= $1 "
                               "AND status IN ('authorised', 'reauthentication_required') ORDER BY expires_at "
                               "LIMIT $2", now, limit)
        return [consent(r) for r in rows]

    async def announce_expiring(self, tenant: str, consent_id: str, expires_at: datetime, event: EventRecord) -> bool:
        """Record that the consent was announced as expiring, with the event, once per expiry time (a consent
        whose expiry is moved later is announced again before its new expiry)."""
        kind = f"expiring@{expires_at.astimezone(UTC).isoformat()}"  # the SQLite store's key, so both read alike
        async with self._tx() as conn:
            fresh = count(await conn.execute(
                "INSERT INTO consent_notices (tenant, consent_id, kind, expires_at, at) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT DO NOTHING", tenant, consent_id, kind, expires_at, event.created_at)) == 1
            if fresh:
                await self._emit(conn, [event])
        if fresh:
            self._events_emitted()
        return fresh
