"""What the SQLite store keeps beside consents and accounts: reports, registered applications, and the sealed
secrets providers issue. A mixin of `SQLiteStore` (it uses the store's `_write`, `_one`, `_all` and
`_newest_first`)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from gateway.models import ReportStatus
from gateway.store.records import ApplicationRecord, ReportRecord
from gateway.store.sqlite_schema import dt as _dt, ts as _ts


_REPORT_COLS = ("tenant, id, provider, customer_id, consent_id, type, status, provider_ref, created_at, updated_at, "
                "interval_types, status_reason")


def _report_row(r: ReportRecord) -> tuple[Any, ...]:
    return (r.tenant, r.id, r.provider, r.customer_id, r.consent_id, r.type, r.status.value, r.provider_ref,
            _ts(r.created_at), _ts(r.updated_at), orjson.dumps(list(r.interval_types)).decode(), r.status_reason)


def _report(row: Any) -> ReportRecord:
    return ReportRecord(tenant=row[0], id=row[1], provider=row[2], customer_id=row[3], consent_id=row[4], type=row[5],
                        status=ReportStatus(row[6]), provider_ref=row[7], created_at=_dt(row[8]),
                        updated_at=_dt(row[9]), interval_types=tuple(orjson.loads(row[10])), status_reason=row[11])


_APPLICATION_COLS = "tenant, id, provider, provider_ref, access_model, name, status, created_at, updated_at"


def _application(row: Any) -> ApplicationRecord:
    return ApplicationRecord(tenant=row[0], id=row[1], provider=row[2], provider_ref=row[3], access_model=row[4],
                             name=row[5], status=row[6], created_at=_dt(row[7]), updated_at=_dt(row[8]))


class ReportsApplicationsSecrets:
    _write: Any
    _write_emitting: Any
    _emit: Any
    _one: Any
    _all: Any
    _newest_first: Any

    # --- reports ------------------------------------------------------------------------------------------------
    async def insert_report(self, r: ReportRecord) -> None:
        row = _report_row(r)
        await self._write(lambda db: db.execute(
            f"INSERT INTO reports ({_REPORT_COLS}) VALUES ({','.join('?' * 12)})", row))

    async def get_report(self, tenant: str, report_id: str) -> ReportRecord | None:
        row = self._one(f"SELECT {_REPORT_COLS} FROM reports WHERE tenant = ? AND id = ?", (tenant, report_id))
        return _report(row) if row else None

    async def update_report(self, r: ReportRecord) -> bool:
        """Write the report's state, with the event its completion or failure means, in one transaction."""
        from gateway.store.sqlite import _write_report

        def apply(db: Any) -> tuple[bool, int]:
            exists = db.execute("SELECT 1 FROM reports WHERE tenant = ? AND id = ?", (r.tenant, r.id)).fetchone()
            return exists is not None, self._emit(db, _write_report(db, r)) if exists else 0

        return await self._write_emitting(apply)

    async def list_reports(self, tenant: str, *, customer_id: str | None, limit: int,
                           after: tuple[str, str] | None) -> list[ReportRecord]:
        return [_report(row) for row in self._newest_first("reports", _REPORT_COLS, tenant, customer_id, limit, after)]

    async def find_reports_by_ref(self, provider: str, provider_ref: str) -> list[ReportRecord]:
        rows = self._all(f"SELECT {_REPORT_COLS} FROM reports WHERE provider = ? AND provider_ref = ?",
                         (provider, provider_ref))
        return [_report(row) for row in rows]

    # --- applications -------------------------------------------------------------------------------------------
    async def insert_application(self, r: ApplicationRecord) -> None:
        row = (r.tenant, r.id, r.provider, r.provider_ref, r.access_model, r.name, r.status, _ts(r.created_at),
               _ts(r.updated_at))
        await self._write(lambda db: db.execute(
            f"INSERT INTO applications ({_APPLICATION_COLS}) VALUES (?,?,?,?,?,?,?,?,?)", row))

    async def get_application(self, tenant: str, application_id: str) -> ApplicationRecord | None:
        row = self._one(f"SELECT {_APPLICATION_COLS} FROM applications WHERE tenant = ? AND id = ?",
                        (tenant, application_id))
        return _application(row) if row else None

    async def update_application(self, r: ApplicationRecord) -> None:
        await self._write(lambda db: db.execute(
            "UPDATE applications SET status = ?, updated_at = ? WHERE tenant = ? AND id = ?",
            (r.status, _ts(r.updated_at), r.tenant, r.id)))

    # --- secrets the providers issue (sealed by gateway.vault before they get here) ----------------------------------
    async def put_secret(self, provider: str, name: str, sealed: bytes, updated_at: datetime) -> None:
        await self._write(lambda db: db.execute(
            "INSERT INTO provider_secrets (provider, name, sealed, updated_at) VALUES (?,?,?,?) "
            "ON CONFLICT (provider, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            (provider, name, sealed, _ts(updated_at))))

    async def delete_secret(self, provider: str, name: str) -> None:
        await self._write(lambda db: db.execute("DELETE FROM provider_secrets WHERE provider = ? AND name = ?",
                                                (provider, name)))

    async def get_secret(self, provider: str, name: str) -> bytes | None:
        row = self._one("SELECT sealed FROM provider_secrets WHERE provider = ? AND name = ?", (provider, name))
        return bytes(row[0]) if row else None
