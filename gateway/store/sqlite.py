"""SQLite store (the embedded default): one file under ./var/, WAL mode, schema migrated on open.

Writes run on one dedicated thread with their own connection, each operation whole (statements and commit in
one call), so concurrent requests never interleave half-finished statements and a failure leaves nothing behind.
Reads are point lookups on indexed keys: they run on the event loop's thread through a second, read-only
connection. In WAL mode a reader never waits for the writer, and a lookup costs tens of microseconds, far less
than a hop to a thread and back; this is what keeps the hot path (resolve account and consent) cheap.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar
import orjson

from gateway.models import ConsentStatus, CustomerType, ReportStatus
from gateway.models.serialize import dumps
from gateway.store.base import Store
from gateway.events import canonical
from gateway.events.canonical import EventRecord
from gateway.store.sqlite_events import EventsOutbox, emit
from gateway.store.sqlite_payments import PaymentsAndKeys
from gateway.store.sqlite_records import ReportsApplicationsSecrets
from gateway.store.sqlite_schema import MIGRATIONS, dt as _dt, ts as _ts
from gateway.store.records import (
    AccountRecord, ConsentRecord, CustomerRecord, InboundEventRecord, ReportRecord,
)

T = TypeVar("T")

def _consent_row(r: ConsentRecord) -> tuple[Any, ...]:
    return (
        r.tenant, r.id, r.provider, r.customer_id, r.status.value, _ts(r.created_at), _ts(r.updated_at),
        r.provider_ref, r.authorisation_url, r.redirect_uri, r.institution_id, orjson.dumps(list(r.permissions)).decode(),
        _ts(r.authorised_at), _ts(r.revoked_at), _ts(r.expires_at), r.status_reason, dumps(r.upstream).decode(),
    )


_CONSENT_COLS = ("tenant, id, provider, customer_id, status, created_at, updated_at, provider_ref, authorisation_url, "
                 "redirect_uri, institution_id, permissions, authorised_at, revoked_at, expires_at, status_reason, upstream")


def _consent(row: Any) -> ConsentRecord:
    return ConsentRecord(
        tenant=row[0], id=row[1], provider=row[2], customer_id=row[3], status=ConsentStatus(row[4]),
        created_at=_dt(row[5]), updated_at=_dt(row[6]), provider_ref=row[7], authorisation_url=row[8],
        redirect_uri=row[9], institution_id=row[10], permissions=tuple(orjson.loads(row[11])),
        authorised_at=_dt(row[12]), revoked_at=_dt(row[13]), expires_at=_dt(row[14]), status_reason=row[15],
        upstream=orjson.loads(row[16]),
    )


def _forget(db: sqlite3.Connection, tenant: str, consent_id: str, final: bool,
            account_refs: tuple[str, ...]) -> int:
    """Delete what a consent left behind: everything when it ended, else the accounts it no longer covers."""
    if final:
        removed = db.execute("DELETE FROM accounts WHERE tenant = ? AND consent_id = ?", (tenant, consent_id)).rowcount
        return removed + db.execute("DELETE FROM reports WHERE tenant = ? AND consent_id = ?",
                                    (tenant, consent_id)).rowcount
    removed = 0
    for ref in account_refs:
        removed += db.execute("DELETE FROM accounts WHERE tenant = ? AND consent_id = ? AND provider_ref = ?",
                              (tenant, consent_id, ref)).rowcount
    return removed


def _write_report(db: sqlite3.Connection, report: ReportRecord) -> list[EventRecord]:
    """Write a report's new state; the events it means."""
    row = db.execute("SELECT status FROM reports WHERE tenant = ? AND id = ?", (report.tenant, report.id)).fetchone()
    if row is None:
        return []
    db.execute("UPDATE reports SET status = ?, updated_at = ?, status_reason = ? WHERE tenant = ? AND id = ?",
               (report.status.value, _ts(report.updated_at), report.status_reason, report.tenant, report.id))
    return canonical.report_changed(report, ReportStatus(row[0]))


def _account(row: Any) -> AccountRecord:
    return AccountRecord(tenant=row[0], id=row[1], provider=row[2], consent_id=row[3], provider_ref=row[4],
                         created_at=_dt(row[5]), data=orjson.loads(row[6]))


def _consent_status(db: sqlite3.Connection, tenant: str, consent_id: str) -> ConsentStatus | None:
    row = db.execute("SELECT status FROM consents WHERE tenant = ? AND id = ?", (tenant, consent_id)).fetchone()
    return ConsentStatus(row[0]) if row else None


def _account_ids(db: sqlite3.Connection, tenant: str, consent_id: str, refs: tuple[str, ...]) -> list[str]:
    if not refs:
        return []
    rows = db.execute(f"SELECT id FROM accounts WHERE tenant = ? AND consent_id = ? AND provider_ref IN "
                      f"({','.join('?' * len(refs))}) ORDER BY id", (tenant, consent_id, *refs)).fetchall()
    return [r[0] for r in rows]


class SQLiteStore(EventsOutbox, PaymentsAndKeys, ReportsApplicationsSecrets, Store):
    # How long after an event its deliveries keep being retried (set from events.retry_horizon_seconds).
    event_horizon_seconds: float = 3 * 86400.0

    def __init__(self, url: str) -> None:
        path = url.removeprefix("sqlite://")
        # sqlite:///var/x.db is relative to the working directory; sqlite:////abs/x.db is absolute.
        self.path = path[1:] if path.startswith("/") else path
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.event_listeners: list[Callable[[], None]] = []  # told (on the loop) when events were written here

    # --- plumbing -------------------------------------------------------------------------------------------------
    def _connect(self, *, read_only: bool) -> sqlite3.Connection:
        if self.path == ":memory:":
            raise ValueError("the SQLite store needs a file (readers and the writer share it)")
        target = f"file:{self.path}?mode=ro" if read_only else self.path
        conn = sqlite3.connect(target, uri=read_only, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
        if not read_only:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in one transaction on the writer thread."""
        if self._executor is None or self._writer is None:
            raise RuntimeError("store is not open")
        conn = self._writer

        def run() -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            if isinstance(result, sqlite3.Cursor):
                # A cursor must die on this thread: finalising it on the loop's thread races the writer.
                result.close()
                return None  # type: ignore[return-value]
            return result

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    def _events_emitted(self) -> None:
        for listener in self.event_listeners:
            listener()

    def _emit(self, db: sqlite3.Connection, events: list[EventRecord]) -> int:
        return emit(db, events, self.event_horizon_seconds) if events else 0

    async def _write_emitting(self, fn: Callable[[sqlite3.Connection], tuple[T, int]]) -> T:
        """Like `_write` for a write that may emit events (`fn` returns its result and how many it emitted)."""
        result, emitted = await self._write(fn)
        if emitted:
            self._events_emitted()
        return result

    @property
    def db(self) -> sqlite3.Connection:
        """The read connection (tests use it to look at what is stored)."""
        if self._reader is None:
            raise RuntimeError("store is not open")
        return self._reader

    def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        return self.db.execute(sql, params).fetchone()

    def _all(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return self.db.execute(sql, params).fetchall()

    async def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._writer = await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: self._connect(read_only=False))
        await asyncio.get_running_loop().run_in_executor(self._executor, self._migrate)
        self._reader = self._connect(read_only=True)

    def _migrate(self) -> None:
        assert self._writer is not None
        db = self._writer
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        for version, script in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._executor is not None:
            writer, executor = self._writer, self._executor
            if writer is not None:
                await asyncio.get_running_loop().run_in_executor(executor, writer.close)
            executor.shutdown(wait=True)
            self._executor = None
            self._writer = None

    def _newest_first(self, table: str, cols: str, tenant: str, customer_id: str | None, limit: int,
                      after: tuple[str, str] | None) -> list[Any]:
        """A tenant's rows of `table`, newest first, optionally one customer's, after a (created_at, id) position."""
        where, params = ["tenant = ?"], [tenant]
        if customer_id is not None:
            where.append("customer_id = ?")
            params.append(customer_id)
        if after is not None:
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [after[0], after[0], after[1]]
        sql = f"SELECT {cols} FROM {table} WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT ?"
        return self._all(sql, (*params, limit))

    async def ping(self) -> bool:
        return self._one("SELECT 1", ()) == (1,)

    # --- customers ----------------------------------------------------------------------------------------------
    _CUSTOMER_COLS = "tenant, id, provider, provider_ref, type, external_ref, created_at, category, abn, consumer_ref"

    async def insert_customer(self, r: CustomerRecord) -> None:
        row = (r.tenant, r.id, r.provider, r.provider_ref, r.type.value, r.external_ref, _ts(r.created_at),
               r.category, r.abn, r.consumer_ref)
        await self._write(lambda db: db.execute(
            f"INSERT INTO customers ({self._CUSTOMER_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)", row))

    async def set_consumer_ref(self, tenant: str, customer_id: str, consumer_ref: str) -> bool:
        return await self._write(lambda db: db.execute(
            "UPDATE customers SET consumer_ref = ? WHERE tenant = ? AND id = ? AND consumer_ref IS NULL",
            (consumer_ref, tenant, customer_id)).rowcount == 1)

    @staticmethod
    def _customer(row: Any) -> CustomerRecord:
        return CustomerRecord(tenant=row[0], id=row[1], provider=row[2], provider_ref=row[3], type=CustomerType(row[4]),
                              external_ref=row[5], created_at=_dt(row[6]), category=row[7], abn=row[8],
                              consumer_ref=row[9])

    async def get_customer(self, tenant: str, customer_id: str) -> CustomerRecord | None:
        row = self._one(f"SELECT {self._CUSTOMER_COLS} FROM customers WHERE tenant = ? AND id = ?",
                        (tenant, customer_id))
        return self._customer(row) if row else None

    async def find_customer(self, tenant: str, provider: str, external_ref: str) -> CustomerRecord | None:
        row = self._one(f"SELECT {self._CUSTOMER_COLS} FROM customers WHERE tenant = ? AND provider = ? "
                        "AND external_ref = ?", (tenant, provider, external_ref))
        return self._customer(row) if row else None

    async def find_customers_by_ref(self, provider: str, provider_ref: str) -> list[CustomerRecord]:
        rows = self._all(f"SELECT {self._CUSTOMER_COLS} FROM customers WHERE provider = ? AND provider_ref = ?",
                         (provider, provider_ref))
        return [self._customer(row) for row in rows]

    # --- consents -----------------------------------------------------------------------------------------------
    async def insert_consent(self, r: ConsentRecord) -> None:
        row = _consent_row(r)
        await self._write(lambda db: db.execute(
            f"INSERT INTO consents ({_CONSENT_COLS}) VALUES ({','.join('?' * 17)})", row))

    async def get_consent(self, tenant: str, consent_id: str) -> ConsentRecord | None:
        row = self._one(f"SELECT {_CONSENT_COLS} FROM consents WHERE tenant = ? AND id = ?", (tenant, consent_id))
        return _consent(row) if row else None

    async def update_consent(self, r: ConsentRecord, *, expected_updated_at: datetime | None = None) -> bool:
        row = _consent_row(r)
        sets = ", ".join(f"{c.strip()} = ?" for c in _CONSENT_COLS.split(",")[2:])
        sql = f"UPDATE consents SET {sets} WHERE tenant = ? AND id = ?"
        params: tuple[Any, ...] = row[2:] + (r.tenant, r.id)
        if expected_updated_at is not None:
            sql += " AND updated_at = ?"
            params += (_ts(expected_updated_at),)

        def apply(db: sqlite3.Connection) -> tuple[bool, int]:
            before = _consent_status(db, r.tenant, r.id)
            if db.execute(sql, params).rowcount != 1:
                return False, 0
            return True, self._emit(db, canonical.consent_changed(r, before))

        return await self._write_emitting(apply)

    async def list_consents(self, tenant: str, *, customer_id: str | None, limit: int,
                            after: tuple[str, str] | None) -> list[ConsentRecord]:
        return [_consent(row) for row in self._newest_first("consents", _CONSENT_COLS, tenant, customer_id, limit,
                                                            after)]

    # --- accounts -----------------------------------------------------------------------------------------------
    async def upsert_accounts(self, records: list[AccountRecord]) -> None:
        if not records:
            return
        rows = [(r.tenant, r.id, r.provider, r.consent_id, r.provider_ref, _ts(r.created_at),
                 dumps(r.data).decode()) for r in records]
        await self._write(lambda db: db.executemany(
            "INSERT INTO accounts (tenant, id, provider, consent_id, provider_ref, created_at, data) VALUES (?,?,?,?,?,?,?) "
            "ON CONFLICT (tenant, id) DO UPDATE SET data = excluded.data", rows))

    _ACCOUNT_WITH_CONSENT = (
        "SELECT a.tenant, a.id, a.provider, a.consent_id, a.provider_ref, a.created_at, a.data, "
        + ", ".join(f"c.{c.strip()}" for c in _CONSENT_COLS.split(","))
        + " FROM accounts a JOIN consents c ON c.tenant = a.tenant AND c.id = a.consent_id "
          "WHERE a.tenant = ? AND a.id = ?"
    )

    async def get_account(self, tenant: str, account_id: str) -> tuple[AccountRecord, ConsentRecord] | None:
        row = self._one(self._ACCOUNT_WITH_CONSENT, (tenant, account_id))
        if row is None:
            return None
        return _account(row[:7]), _consent(row[7:])

    async def list_accounts(self, tenant: str, consent_id: str) -> list[AccountRecord]:
        rows = self._all("SELECT tenant, id, provider, consent_id, provider_ref, created_at, data FROM accounts "
                         "WHERE tenant = ? AND consent_id = ? ORDER BY id", (tenant, consent_id))
        return [_account(row) for row in rows]

    async def delete_consent_data(self, tenant: str, consent_id: str) -> int:
        return await self._write(lambda db: _forget(db, tenant, consent_id, True, ()))

    async def forget_accounts(self, consent: ConsentRecord, account_refs: tuple[str, ...], *,
                              expected_updated_at: datetime | None = None) -> int | None:
        consent_row = _consent_row(consent)

        def apply(db: sqlite3.Connection) -> tuple[int | None, int]:
            if expected_updated_at is not None and db.execute(
                    "SELECT 1 FROM consents WHERE tenant = ? AND id = ? AND updated_at = ?",
                    (consent.tenant, consent.id, _ts(expected_updated_at))).fetchone() is None:
                return None, 0
            return self._change_consent(db, consent, consent_row, account_refs, [])

        return await self._write_emitting(apply)

    def _change_consent(self, db: sqlite3.Connection, consent: ConsentRecord, consent_row: tuple[Any, ...],
                        account_refs: tuple[str, ...], extra: list[EventRecord]) -> tuple[int, int]:
        """Write the consent, delete what it no longer covers, and emit what that means. (rows removed, events)"""
        before = _consent_status(db, consent.tenant, consent.id)
        if before is None:
            return 0, 0  # no such consent of this tenant: nothing written, so nothing to announce
        sets = ", ".join(f"{c.strip()} = ?" for c in _CONSENT_COLS.split(",")[2:])
        db.execute(f"UPDATE consents SET {sets} WHERE tenant = ? AND id = ?",
                   consent_row[2:] + (consent.tenant, consent.id))
        gone = [] if consent.status.is_final else _account_ids(db, consent.tenant, consent.id, account_refs)
        removed = _forget(db, consent.tenant, consent.id, consent.status.is_final, account_refs)
        events = canonical.consent_changed(consent, before)
        if gone:
            events.append(canonical.accounts_removed(consent, gone))
        return removed, self._emit(db, events + extra)

    # --- inbound provider events ---------------------------------------------------------------------------------
    async def find_consents_by_ref(self, provider: str, provider_ref: str) -> list[ConsentRecord]:
        rows = self._all(f"SELECT {_CONSENT_COLS} FROM consents WHERE provider = ? AND provider_ref = ? "
                         "ORDER BY created_at DESC", (provider, provider_ref))
        return [_consent(row) for row in rows]

    async def record_inbound_event(self, event: InboundEventRecord, consent: ConsentRecord | None, *,
                                   forget_account_refs: tuple[str, ...] = (),
                                   report: ReportRecord | None = None,
                                   events: list[EventRecord] | None = None) -> bool:
        row = (event.provider, event.event_id, event.type, _ts(event.received_at), event.tenant, event.consent_id,
               dumps(event.payload).decode())
        consent_row = _consent_row(consent) if consent is not None else None

        def apply(db: sqlite3.Connection) -> tuple[bool, int]:
            inserted = db.execute(
                "INSERT INTO inbound_events (provider, event_id, type, received_at, tenant, consent_id, payload) "
                "VALUES (?,?,?,?,?,?,?) ON CONFLICT (provider, event_id) DO NOTHING", row).rowcount == 1
            if not inserted:
                return False, 0
            emitted = 0
            if consent is not None and consent_row is not None:
                emitted += self._change_consent(db, consent, consent_row, forget_account_refs, [])[1]
            if report is not None:
                emitted += self._emit(db, _write_report(db, report))
            return True, emitted + self._emit(db, list(events or ()))

        return await self._write_emitting(apply)

    async def list_inbound_events(self, provider: str, *, limit: int = 100) -> list[InboundEventRecord]:
        rows = self._all("SELECT provider, event_id, type, received_at, tenant, consent_id, payload FROM inbound_events "
                         "WHERE provider = ? ORDER BY received_at, rowid LIMIT ?", (provider, limit))
        return [InboundEventRecord(provider=r[0], event_id=r[1], type=r[2], received_at=_dt(r[3]), tenant=r[4],
                                   consent_id=r[5], payload=orjson.loads(r[6])) for r in rows]
