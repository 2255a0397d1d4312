"""What the PostgreSQL store keeps beside consents and accounts: reports, registered applications, the sealed
secrets providers issue, and leases (one holder at a time across replicas). A mixin of `PostgresStore`, with the
semantics of the SQLite one (`sqlite_records.py`; leases: `sqlite_events.py`)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Awaitable, Callable

import asyncpg

from gateway.events import canonical
from gateway.events.canonical import EventRecord
from gateway.models import ReportStatus
from gateway.store.records import ApplicationRecord, ReportRecord

_REPORT_COLS = ("tenant, id, provider, customer_id, consent_id, type, status, provider_ref, created_at, updated_at, "
                "interval_types, status_reason")
_APPLICATION_COLS = "tenant, id, provider, provider_ref, access_model, name, status, created_at, updated_at"


def _report(row: Any) -> ReportRecord:
    return ReportRecord(tenant=row[0], id=row[1], provider=row[2], customer_id=row[3], consent_id=row[4], type=row[5],
                        status=ReportStatus(row[6]), provider_ref=row[7], created_at=row[8], updated_at=row[9],
                        interval_types=tuple(row[10]), status_reason=row[11])


def _application(row: Any) -> ApplicationRecord:
    return ApplicationRecord(tenant=row[0], id=row[1], provider=row[2], provider_ref=row[3], access_model=row[4],
                             name=row[5], status=row[6], created_at=row[7], updated_at=row[8])


async def write_report(conn: asyncpg.Connection, report: ReportRecord) -> list[EventRecord] | None:
    """Write a report's new state, its row locked first so the status it moves from is the one replaced; the events
    that move means. None when there is no such report."""
    before = await conn.fetchval("SELECT status FROM reports WHERE tenant = $1 AND id = $2 FOR UPDATE",
                                 report.tenant, report.id)
    if before is None:
        return None
    await conn.execute("UPDATE reports SET status = $1, updated_at = $2, status_reason = $3 WHERE tenant = $4 "
                       "AND id = $5", report.status.value, report.updated_at, report.status_reason, report.tenant,
                       report.id)
    return canonical.report_changed(report, ReportStatus(before))


class ReportsApplicationsSecrets:
    _tx: Any
    _execute: Callable[..., Awaitable[str]]
    _write_emitting: Any
    _emit: Callable[[asyncpg.Connection, list[EventRecord]], Awaitable[int]]
    _one: Callable[..., Awaitable[Any]]
    _all: Callable[..., Awaitable[list[Any]]]
    _newest_first: Any

    # --- reports ------------------------------------------------------------------------------------------------
    async def insert_report(self, r: ReportRecord) -> None:
        await self._execute(
            f"INSERT INTO reports ({_REPORT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            r.tenant, r.id, r.provider, r.customer_id, r.consent_id, r.type, r.status.value, r.provider_ref,
            r.created_at, r.updated_at, list(r.interval_types), r.status_reason)

    async def get_report(self, tenant: str, report_id: str) -> ReportRecord | None:
        row = await self._one(f"SELECT {_REPORT_COLS} FROM reports WHERE tenant = $1 AND id = $2", tenant, report_id)
        return _report(row) if row else None

    async def update_report(self, r: ReportRecord) -> bool:
        """Write the report's state, with the event its completion or failure means, in one transaction."""
        async def apply(conn: asyncpg.Connection) -> tuple[bool, int]:
            events = await write_report(conn, r)
            if events is None:
                return False, 0
            return True, await self._emit(conn, events)

        return bool(await self._write_emitting(apply))

    async def list_reports(self, tenant: str, *, customer_id: str | None, limit: int,
                           after: tuple[str, str] | None) -> list[ReportRecord]:
        rows = await self._newest_first("reports", _REPORT_COLS, tenant, customer_id, limit, after)
        return [_report(row) for row in rows]

    async def find_reports_by_ref(self, provider: str, provider_ref: str) -> list[ReportRecord]:
        rows = await self._all(f"SELECT {_REPORT_COLS} FROM reports WHERE provider = $1 AND provider_ref = $2 "
                               "ORDER BY created_at, id", provider, provider_ref)
        return [_report(row) for row in rows]

    # --- applications -------------------------------------------------------------------------------------------
    async def insert_application(self, r: ApplicationRecord) -> None:
        await self._execute(f"INSERT INTO applications ({_APPLICATION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                            "$8, $9)", r.tenant, r.id, r.provider, r.provider_ref, r.access_model, r.name,
                            r.status, r.created_at, r.updated_at)

    async def get_application(self, tenant: str, application_id: str) -> ApplicationRecord | None:
        row = await self._one(f"SELECT {_APPLICATION_COLS} FROM applications WHERE tenant = $1 AND id = $2",
                              tenant, application_id)
        return _application(row) if row else None

    async def update_application(self, r: ApplicationRecord) -> None:
        await self._execute("UPDATE applications SET status = $1, updated_at = $2 WHERE tenant = $3 AND id = $4",
                            r.status, r.updated_at, r.tenant, r.id)

    # --- secrets the providers issue (sealed by gateway.vault before they get here) ----------------------------------
    async def put_secret(self, provider: str, name: str, sealed: bytes, updated_at: datetime) -> None:
        await self._execute(
            "INSERT INTO provider_secrets (provider, name, sealed, updated_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (provider, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            provider, name, sealed, updated_at)

    async def delete_secret(self, provider: str, name: str) -> None:
        await self._execute("DELETE FROM provider_secrets WHERE provider = $1 AND name = $2", provider, name)

    async def get_secret(self, provider: str, name: str) -> bytes | None:
        row = await self._one("SELECT sealed FROM provider_secrets WHERE provider = $1 AND name = $2", provider, name)
        return bytes(row[0]) if row else None

    # --- leases: one holder at a time across processes and replicas ---------------------------------------------
    async def try_lease(self, name: str, owner: str, until: datetime, now: datetime) -> bool:
        """Take the lease `name` for `owner` until `until` if nobody holds it (or its holder's time ran out, or
        `owner` holds it already: then it is extended). True when `owner` holds it now. One statement: the
        conflict's WHERE is evaluated on the latest row under its lock, so two takers cannot both win."""
        row = await self._one(
            "INSERT INTO leases (name, owner, until) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET "
            "owner = excluded.owner, until = excluded.until WHERE leases.until <= $4 OR leases.owner = $2 "
            "RETURNING owner", name, owner, until, now)
        return row is not None and row[0] == owner

    async def release_lease(self, name: str, owner: str) -> None:
        await self._execute("DELETE FROM leases WHERE name = $1 AND owner = $2", name, owner)
