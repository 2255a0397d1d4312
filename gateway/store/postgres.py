"""PostgreSQL store (scale-out: several replicas share one database), over an asyncpg pool.

The same semantics as the SQLite store, method by method. Each method is one statement or one transaction, so a
failure leaves nothing written. A write whose outcome depends on what is stored locks the row first (`SELECT …
FOR UPDATE`) or decides in the statement itself (`UPDATE … WHERE version = $n`, `INSERT … ON CONFLICT`), so two
replicas racing cannot both win a compare-and-set nor both emit the same transition. Reads on the hot path
(account with its consent, consent, customer, a consent's accounts) are one statement each; pooled connections
carry no session state of ours, so they go back to the pool without a reset query (one round trip per read).

Event order for catching up. `events.seq` comes from a sequence, and a sequence hands out numbers when rows are
inserted, not when they become visible: transaction A takes seq 10, B takes 11 and commits first, a reader of
GET /v1/events?cursor=… sees 11, moves its cursor past it, and never sees 10 when A commits. So every transaction
that inserts events first takes one transaction-scoped advisory lock (the events lock), right before its inserts,
and holds it to its commit: events then become visible in seq order, and "everything up to the largest seq I
saw" is a safe cursor. The lock is taken last in the transaction (after the state change is written and its row
locks held, before nothing but the inserts and the commit), so it is held briefly and no transaction waits for a
row lock while holding it: it cannot deadlock. It serialises event writers, which is the price of that promise.

Cross-replica wake-up. A transaction that writes events (or queues a redelivery) also runs `pg_notify` on the
schema's channel (`gateway_events`, or `gateway_events_<hash of the schema>` with `schema`, whose events lock is
its own too), which PostgreSQL delivers only if it commits. Each store LISTENs on one dedicated connection
(reconnecting with backoff when it drops) and calls its `event_listeners` on a notification from another process,
so a delivery worker on another replica sends at once rather than at its next poll. Its own notifications are
skipped: listeners here are called directly after the commit.

Migrations (`postgres_schema.py`) run at `open()` under a session advisory lock: one replica migrates, the others
wait, then find the work done. With `schema`, the store creates it if missing and every connection uses it
(`search_path`), which is how test runs are kept apart in one database.
"""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from datetime import datetime
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import asyncpg
import orjson
import structlog

from gateway.events import canonical
from gateway.events.canonical import EventRecord
from gateway.models import ConsentStatus, CustomerType
from gateway.models.serialize import dumps
from gateway.store.base import Store
from gateway.store.postgres_events import EventsOutbox, count, emit
from gateway.store.postgres_payments import PaymentsAndKeys
from gateway.store.postgres_records import ReportsApplicationsSecrets, write_report
from gateway.store.postgres_schema import Wakeup, migrate, quote_identifier
from gateway.store.records import AccountRecord, ConsentRecord, CustomerRecord, InboundEventRecord, ReportRecord

T = TypeVar("T")
log = structlog.get_logger("gateway.store")

CONSENT_COLS = ("tenant, id, provider, customer_id, status, created_at, updated_at, provider_ref, authorisation_url, "
                "redirect_uri, institution_id, permissions, authorised_at, revoked_at, expires_at, status_reason, "
                "upstream")
_CONSENT_SETS = ", ".join(f"{c.strip()} = ${i}" for i, c in enumerate(CONSENT_COLS.split(",")[2:], start=3))
_CUSTOMER_COLS = "tenant, id, provider, provider_ref, type, external_ref, created_at, category, abn, consumer_ref"
_ACCOUNT_COLS = "tenant, id, provider, consent_id, provider_ref, created_at, data"
_ACCOUNT_WITH_CONSENT = (
    "SELECT " + ", ".join(f"a.{c.strip()}" for c in _ACCOUNT_COLS.split(",")) + ", "
    + ", ".join(f"c.{c.strip()}" for c in CONSENT_COLS.split(","))
    + " FROM accounts a JOIN consents c ON c.tenant = a.tenant AND c.id = a.consent_id "
      "WHERE a.tenant = $1 AND a.id = $2")
# Whether this asyncpg lets the pool skip its reset query on release (0.30 and later).
_POOL_TAKES_RESET = "reset" in inspect.signature(asyncpg.create_pool).parameters


def _consent_args(r: ConsentRecord) -> tuple[Any, ...]:
    return (r.tenant, r.id, r.provider, r.customer_id, r.status.value, r.created_at, r.updated_at, r.provider_ref,
            r.authorisation_url, r.redirect_uri, r.institution_id, list(r.permissions), r.authorised_at,
            r.revoked_at, r.expires_at, r.status_reason, dumps(r.upstream).decode())


def consent(row: Any) -> ConsentRecord:
    return ConsentRecord(
        tenant=row[0], id=row[1], provider=row[2], customer_id=row[3], status=ConsentStatus(row[4]),
        created_at=row[5], updated_at=row[6], provider_ref=row[7], authorisation_url=row[8], redirect_uri=row[9],
        institution_id=row[10], permissions=tuple(row[11]), authorised_at=row[12], revoked_at=row[13],
        expires_at=row[14], status_reason=row[15], upstream=orjson.loads(row[16]))


def _account(row: Any) -> AccountRecord:
    return AccountRecord(tenant=row[0], id=row[1], provider=row[2], consent_id=row[3], provider_ref=row[4],
                         created_at=row[5], data=orjson.loads(row[6]))


def _customer(row: Any) -> CustomerRecord:
    return CustomerRecord(tenant=row[0], id=row[1], provider=row[2], provider_ref=row[3], type=CustomerType(row[4]),
                          external_ref=row[5], created_at=row[6], category=row[7], abn=row[8], consumer_ref=row[9])


async def _forget(conn: asyncpg.Connection, tenant: str, consent_id: str, final: bool,
                  account_refs: tuple[str, ...]) -> tuple[int, list[str]]:
    """Delete what a consent left behind: everything when it ended, else the accounts it no longer covers.
    (rows removed, ids of the accounts removed when not final)"""
    if final:
        removed = await conn.fetchval(
            "WITH a AS (DELETE FROM accounts WHERE tenant = $1 AND consent_id = $2 RETURNING 1), "
            "r AS (DELETE FROM reports WHERE tenant = $1 AND consent_id = $2 RETURNING 1) "
            "SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM r)", tenant, consent_id)
        return int(removed), []
    if not account_refs:
        return 0, []
    rows = await conn.fetch("DELETE FROM accounts WHERE tenant = $1 AND consent_id = $2 AND provider_ref = ANY ($3) "
                            "RETURNING id", tenant, consent_id, list(account_refs))
    return len(rows), sorted(r[0] for r in rows)


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Pool reset on release: asyncpg has already rolled back any transaction left open; nothing of ours needs
    undoing (no SET, no LISTEN, no session lock on pooled connections), so no reset query is sent."""


class PostgresStore(EventsOutbox, PaymentsAndKeys, ReportsApplicationsSecrets, Store):
    # How long after an event its deliveries keep being retried (set from events.retry_horizon_seconds).
    event_horizon_seconds: float = 3 * 86400.0
    ping_timeout_seconds: float = 2.0

    def __init__(self, url: str, *, pool_min_size: int = 1, pool_max_size: int = 10, schema: str | None = None,
                 listen: bool = True) -> None:
        if pool_min_size < 1 or pool_max_size < pool_min_size:
            raise ValueError(f"pool sizes must be 1 ≤ min ≤ max (got min {pool_min_size}, max {pool_max_size})")
        self.url = url
        self.schema = schema
        self._search_path = quote_identifier(schema) if schema is not None else None
        self.pool_min_size, self.pool_max_size = pool_min_size, pool_max_size
        self.listen = listen
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._listen_task: asyncio.Task[None] | None = None
        # The schema's channel and events lock; the writer id names this process's NOTIFYs, so it skips its own.
        self._wakeup = Wakeup.of(schema, uuid.uuid4().hex)
        self.event_listeners: list[Callable[[], None]] = []  # told (on the loop) when events were written

    # --- plumbing -------------------------------------------------------------------------------------------------
    def _connect_kwargs(self) -> dict[str, Any]:
        return {"server_settings": {"search_path": self._search_path}} if self._search_path else {}

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[asyncpg.Connection]:
        """One transaction on one pooled connection: committed when the block ends, rolled back if it raises."""
        async with self._require_pool().acquire() as conn, conn.transaction():
            yield conn

    async def _one(self, sql: str, *args: Any) -> Any:
        return await self._require_pool().fetchrow(sql, *args)

    async def _all(self, sql: str, *args: Any) -> list[Any]:
        return list(await self._require_pool().fetch(sql, *args))

    async def _execute(self, sql: str, *args: Any) -> str:
        """One statement on its own (atomic by itself); its status tag."""
        return str(await self._require_pool().execute(sql, *args))

    def _events_emitted(self) -> None:
        for listener in list(self.event_listeners):
            listener()

    async def _emit(self, conn: asyncpg.Connection, events: list[EventRecord]) -> int:
        return await emit(conn, events, self.event_horizon_seconds, self._wakeup)

    async def _write_emitting(self, fn: Callable[[asyncpg.Connection], Awaitable[tuple[T, int]]]) -> T:
        """Run `fn` in one transaction (it returns its result and how many events it emitted); after the commit,
        tell this process's listeners if it emitted any."""
        async with self._tx() as conn:
            result, emitted = await fn(conn)
        if emitted:
            self._events_emitted()
        return result

    async def _newest_first(self, table: str, cols: str, tenant: str, customer_id: str | None, limit: int,
                            after: tuple[str, str] | None) -> list[Any]:
        """A tenant's rows of `table`, newest first, optionally one customer's, after a (created_at, id) position."""
        where, params = ["tenant = $1"], [tenant]
        if customer_id is not None:
            params.append(customer_id)
            where.append(f"customer_id = ${len(params)}")
        if after is not None:
            params += [datetime.fromisoformat(after[0]), after[1]]
            where.append(f"(created_at, id) < (${len(params) - 1}, ${len(params)})")
        params.append(limit)
        return await self._all(f"SELECT {cols} FROM {table} WHERE {' AND '.join(where)} "
                               f"ORDER BY created_at DESC, id DESC LIMIT ${len(params)}", *params)

    # --- life cycle -----------------------------------------------------------------------------------------------
    async def open(self) -> None:
        conn = await asyncpg.connect(self.url, **self._connect_kwargs())
        try:
            await migrate(conn, self.schema)
        finally:
            await conn.close()
        options: dict[str, Any] = {"min_size": self.pool_min_size, "max_size": self.pool_max_size,
                                   **self._connect_kwargs()}
        if _POOL_TAKES_RESET:
            options["reset"] = _keep_session
        self._pool = await asyncpg.create_pool(self.url, **options)
        if self.listen:
            lost = await self._start_listening()
            self._listen_task = asyncio.create_task(self._keep_listening(lost), name="store-listen")

    async def _start_listening(self) -> asyncio.Event:
        """LISTEN on a connection of its own; the event returned is set when that connection is lost."""
        conn = await asyncpg.connect(self.url, **self._connect_kwargs())
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.add_listener(self._wakeup.channel, self._notified)
        except BaseException:
            conn.terminate()
            raise
        self._listener = conn
        return lost

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload != self._wakeup.writer:
            self._events_emitted()

    async def _keep_listening(self, lost: asyncio.Event) -> None:
        """Listen again, with backoff, whenever the listening connection is lost."""
        while True:
            await lost.wait()
            if self._listener is not None:
                self._listener.terminate()
                self._listener = None
            delay = 0.5
            while True:
                await asyncio.sleep(delay)
                try:
                    lost = await self._start_listening()
                    break
                except Exception as exc:  # the database is away: keep trying, less often
                    log.warning("store_listen_failed", error=str(exc) or type(exc).__name__, retry_in=delay)
                    delay = min(delay * 2, 30.0)
            self._events_emitted()  # notifications sent while nobody listened are lost: look now

    async def close(self) -> None:
        task, self._listen_task = self._listen_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                await asyncio.wait_for(listener.close(), 5.0)
            except Exception:
                listener.terminate()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 10.0)
            except Exception:
                pool.terminate()

    async def ping(self) -> bool:
        if self._pool is None:
            return False
        try:
            async with asyncio.timeout(self.ping_timeout_seconds):
                return bool(await self._pool.fetchval("SELECT 1") == 1)
        except Exception:  # unreachable, refused, timed out, pool closing: not ready
            return False

    # --- customers ----------------------------------------------------------------------------------------------
    async def insert_customer(self, r: CustomerRecord) -> None:
        await self._execute(f"INSERT INTO customers ({_CUSTOMER_COLS}) VALUES "
                            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", r.tenant, r.id, r.provider, r.provider_ref,
                            r.type.value, r.external_ref, r.created_at, r.category, r.abn, r.consumer_ref)

    async def set_consumer_ref(self, tenant: str, customer_id: str, consumer_ref: str) -> bool:
        return count(await self._execute(
            "UPDATE customers SET consumer_ref = $1 WHERE tenant = $2 AND id = $3 AND consumer_ref IS NULL",
            consumer_ref, tenant, customer_id)) == 1

    async def get_customer(self, tenant: str, customer_id: str) -> CustomerRecord | None:
        row = await self._one(f"SELECT {_CUSTOMER_COLS} FROM customers WHERE tenant = $1 AND id = $2",
                              tenant, customer_id)
        return _customer(row) if row else None

    async def find_customer(self, tenant: str, provider: str, external_ref: str) -> CustomerRecord | None:
        row = await self._one(f"SELECT {_CUSTOMER_COLS} FROM customers WHERE tenant = $1 AND provider = $2 "
                              "AND external_ref = $3", tenant, provider, external_ref)
        return _customer(row) if row else None

    async def find_customers_by_ref(self, provider: str, provider_ref: str) -> list[CustomerRecord]:
        rows = await self._all(f"SELECT {_CUSTOMER_COLS} FROM customers WHERE provider = $1 AND provider_ref = $2 "
                               "ORDER BY created_at, id", provider, provider_ref)
        return [_customer(row) for row in rows]

    # --- consents -----------------------------------------------------------------------------------------------
    async def insert_consent(self, r: ConsentRecord) -> None:
        await self._execute(f"INSERT INTO consents ({CONSENT_COLS}) VALUES "
                            f"({', '.join(f'${i}' for i in range(1, 18))})", *_consent_args(r))

    async def get_consent(self, tenant: str, consent_id: str) -> ConsentRecord | None:
        row = await self._one(f"SELECT {CONSENT_COLS} FROM consents WHERE tenant = $1 AND id = $2", tenant, consent_id)
        return consent(row) if row else None

    async def update_consent(self, r: ConsentRecord, *, expected_updated_at: datetime | None = None) -> bool:
        args = _consent_args(r)
        sql = f"UPDATE consents SET {_CONSENT_SETS} WHERE tenant = $1 AND id = $2"
        if expected_updated_at is not None:
            sql += " AND updated_at = $18"
            args += (expected_updated_at,)

        async def apply(conn: asyncpg.Connection) -> tuple[bool, int]:
            before = await conn.fetchval("SELECT status FROM consents WHERE tenant = $1 AND id = $2 FOR UPDATE",
                                         r.tenant, r.id)
            if before is None or count(await conn.execute(sql, *args)) != 1:
                return False, 0
            return True, await self._emit(conn, canonical.consent_changed(r, ConsentStatus(before)))

        return bool(await self._write_emitting(apply))

    async def list_consents(self, tenant: str, *, customer_id: str | None, limit: int,
                            after: tuple[str, str] | None) -> list[ConsentRecord]:
        rows = await self._newest_first("consents", CONSENT_COLS, tenant, customer_id, limit, after)
        return [consent(row) for row in rows]

    # --- accounts -----------------------------------------------------------------------------------------------
    async def upsert_accounts(self, records: list[AccountRecord]) -> None:
        if not records:
            return
        rows = [(r.tenant, r.id, r.provider, r.consent_id, r.provider_ref, r.created_at, dumps(r.data).decode())
                for r in records]
        async with self._tx() as conn:
            await conn.executemany(
                f"INSERT INTO accounts ({_ACCOUNT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "ON CONFLICT (tenant, id) DO UPDATE SET data = excluded.data", rows)

    async def get_account(self, tenant: str, account_id: str) -> tuple[AccountRecord, ConsentRecord] | None:
        row = await self._one(_ACCOUNT_WITH_CONSENT, tenant, account_id)
        if row is None:
            return None
        return _account(row[:7]), consent(row[7:])

    async def list_accounts(self, tenant: str, consent_id: str) -> list[AccountRecord]:
        rows = await self._all(f"SELECT {_ACCOUNT_COLS} FROM accounts WHERE tenant = $1 AND consent_id = $2 "
                               "ORDER BY id", tenant, consent_id)
        return [_account(row) for row in rows]

    async def delete_consent_data(self, tenant: str, consent_id: str) -> int:
        async with self._tx() as conn:
            return (await _forget(conn, tenant, consent_id, True, ()))[0]

    async def forget_accounts(self, consent: ConsentRecord, account_refs: tuple[str, ...], *,
                              expected_updated_at: datetime | None = None) -> int | None:
        async def apply(conn: asyncpg.Connection) -> tuple[int | None, int]:
            row = await conn.fetchrow("SELECT status, updated_at = $3 FROM consents WHERE tenant = $1 AND id = $2 "
                                      "FOR UPDATE", consent.tenant, consent.id, expected_updated_at)
            if expected_updated_at is not None and (row is None or not row[1]):
                return None, 0
            removed, events = await self._change_consent(conn, consent, row[0] if row else None, account_refs)
            return removed, await self._emit(conn, events)

        return await self._write_emitting(apply)

    async def _change_consent(self, conn: asyncpg.Connection, consent: ConsentRecord, before: str | None,
                              account_refs: tuple[str, ...]) -> tuple[int, list[EventRecord]]:
        """Write the consent (its row locked by the caller, `before` its status then) and delete what it no longer
        covers. (rows removed, the events that means)"""
        if before is None:
            return 0, []  # no such consent of this tenant: nothing written, so nothing to announce
        await conn.execute(f"UPDATE consents SET {_CONSENT_SETS} WHERE tenant = $1 AND id = $2",
                           *_consent_args(consent))
        final = consent.status.is_final
        removed, gone = await _forget(conn, consent.tenant, consent.id, final, account_refs)
        events = canonical.consent_changed(consent, ConsentStatus(before))
        if gone:
            events.append(canonical.accounts_removed(consent, gone))
        return removed, events

    # --- inbound provider events ---------------------------------------------------------------------------------
    async def find_consents_by_ref(self, provider: str, provider_ref: str) -> list[ConsentRecord]:
        rows = await self._all(f"SELECT {CONSENT_COLS} FROM consents WHERE provider = $1 AND provider_ref = $2 "
                               "ORDER BY created_at DESC", provider, provider_ref)
        return [consent(row) for row in rows]

    async def record_inbound_event(self, event: InboundEventRecord, consent: ConsentRecord | None, *,
                                   forget_account_refs: tuple[str, ...] = (),
                                   report: ReportRecord | None = None,
                                   events: list[EventRecord] | None = None) -> bool:
        async def apply(conn: asyncpg.Connection) -> tuple[bool, int]:
            inserted = count(await conn.execute(
                "INSERT INTO inbound_events (provider, event_id, type, received_at, tenant, consent_id, payload) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (provider, event_id) DO NOTHING",
                event.provider, event.event_id, event.type, event.received_at, event.tenant, event.consent_id,
                dumps(event.payload).decode())) == 1
            if not inserted:
                return False, 0
            out: list[EventRecord] = []
            if consent is not None:
                before = await conn.fetchval("SELECT status FROM consents WHERE tenant = $1 AND id = $2 FOR UPDATE",
                                             consent.tenant, consent.id)
                out += (await self._change_consent(conn, consent, before, forget_account_refs))[1]
            if report is not None:
                out += await write_report(conn, report) or []
            return True, await self._emit(conn, out + list(events or ()))

        return bool(await self._write_emitting(apply))

    async def list_inbound_events(self, provider: str, *, limit: int = 100) -> list[InboundEventRecord]:
        rows = await self._all("SELECT provider, event_id, type, received_at, tenant, consent_id, payload "
                               "FROM inbound_events WHERE provider = $1 ORDER BY received_at, n LIMIT $2",
                               provider, limit)
        return [InboundEventRecord(provider=r[0], event_id=r[1], type=r[2], received_at=r[3], tenant=r[4],
                                   consent_id=r[5], payload=orjson.loads(r[6])) for r in rows]
