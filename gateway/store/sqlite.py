"""SQLite store (the embedded default): one file under ./var/, WAL mode, schema migrated on open."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from gateway.models import ConsentStatus, CustomerType
from gateway.models.time import UTC
from gateway.store.base import Store
from gateway.store.records import AccountRecord, ConsentRecord, CustomerRecord

# Each entry is one schema version; a new version appends, never edits an old one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE customers (
        tenant TEXT NOT NULL, id TEXT NOT NULL, provider TEXT NOT NULL, provider_ref TEXT NOT NULL,
        type TEXT NOT NULL, external_ref TEXT NOT NULL, created_at TEXT NOT NULL,
        PRIMARY KEY (tenant, id), UNIQUE (tenant, provider, external_ref)
    );
    CREATE TABLE consents (
        tenant TEXT NOT NULL, id TEXT NOT NULL, provider TEXT NOT NULL, customer_id TEXT,
        status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        provider_ref TEXT, authorisation_url TEXT, redirect_uri TEXT, institution_id TEXT,
        permissions TEXT NOT NULL, authorised_at TEXT, revoked_at TEXT, expires_at TEXT, status_reason TEXT,
        upstream TEXT NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE INDEX consents_by_customer ON consents (tenant, customer_id, created_at);
    CREATE INDEX consents_by_time ON consents (tenant, created_at, id);
    CREATE TABLE accounts (
        tenant TEXT NOT NULL, id TEXT NOT NULL, provider TEXT NOT NULL, consent_id TEXT NOT NULL,
        provider_ref TEXT NOT NULL, created_at TEXT NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE INDEX accounts_by_consent ON accounts (tenant, consent_id);
    """,
]


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat()


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _consent_row(r: ConsentRecord) -> tuple[Any, ...]:
    return (
        r.tenant, r.id, r.provider, r.customer_id, r.status.value, _ts(r.created_at), _ts(r.updated_at),
        r.provider_ref, r.authorisation_url, r.redirect_uri, r.institution_id, orjson.dumps(list(r.permissions)).decode(),
        _ts(r.authorised_at), _ts(r.revoked_at), _ts(r.expires_at), r.status_reason, orjson.dumps(r.upstream).decode(),
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


def _account(row: Any) -> AccountRecord:
    return AccountRecord(tenant=row[0], id=row[1], provider=row[2], consent_id=row[3], provider_ref=row[4],
                         created_at=_dt(row[5]), data=orjson.loads(row[6]))


class SQLiteStore(Store):
    def __init__(self, url: str) -> None:
        path = url.removeprefix("sqlite://")
        # sqlite:///var/x.db is relative to the working directory; sqlite:////abs/x.db is absolute; :memory: works too.
        self.path = path[1:] if path.startswith("/") else path
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA foreign_keys=ON")
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self._migrate()

    async def _migrate(self) -> None:
        db = self.db
        await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        async with db.execute("SELECT MAX(version) FROM schema_version") as cur:
            row = await cur.fetchone()
        current = row[0] or 0
        for version, script in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            await db.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(str.strip, script.split(";")):
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def ping(self) -> bool:
        async with self.db.execute("SELECT 1") as cur:
            return (await cur.fetchone()) == (1,)

    # --- customers ----------------------------------------------------------------------------------------------
    async def insert_customer(self, r: CustomerRecord) -> None:
        await self.db.execute(
            "INSERT INTO customers (tenant, id, provider, provider_ref, type, external_ref, created_at) VALUES (?,?,?,?,?,?,?)",
            (r.tenant, r.id, r.provider, r.provider_ref, r.type.value, r.external_ref, _ts(r.created_at)),
        )

    @staticmethod
    def _customer(row: Any) -> CustomerRecord:
        return CustomerRecord(tenant=row[0], id=row[1], provider=row[2], provider_ref=row[3], type=CustomerType(row[4]),
                              external_ref=row[5], created_at=_dt(row[6]))

    async def get_customer(self, tenant: str, customer_id: str) -> CustomerRecord | None:
        async with self.db.execute("SELECT tenant, id, provider, provider_ref, type, external_ref, created_at FROM customers "
                                   "WHERE tenant = ? AND id = ?", (tenant, customer_id)) as cur:
            row = await cur.fetchone()
        return self._customer(row) if row else None

    async def find_customer(self, tenant: str, provider: str, external_ref: str) -> CustomerRecord | None:
        async with self.db.execute("SELECT tenant, id, provider, provider_ref, type, external_ref, created_at FROM customers "
                                   "WHERE tenant = ? AND provider = ? AND external_ref = ?", (tenant, provider, external_ref)) as cur:
            row = await cur.fetchone()
        return self._customer(row) if row else None

    # --- consents -----------------------------------------------------------------------------------------------
    async def insert_consent(self, r: ConsentRecord) -> None:
        await self.db.execute(f"INSERT INTO consents ({_CONSENT_COLS}) VALUES ({','.join('?' * 17)})", _consent_row(r))

    async def get_consent(self, tenant: str, consent_id: str) -> ConsentRecord | None:
        async with self.db.execute(f"SELECT {_CONSENT_COLS} FROM consents WHERE tenant = ? AND id = ?", (tenant, consent_id)) as cur:
            row = await cur.fetchone()
        return _consent(row) if row else None

    async def update_consent(self, r: ConsentRecord, *, expected_updated_at: datetime | None = None) -> bool:
        row = _consent_row(r)
        sets = ", ".join(f"{c.strip()} = ?" for c in _CONSENT_COLS.split(",")[2:])
        sql = f"UPDATE consents SET {sets} WHERE tenant = ? AND id = ?"
        params: tuple[Any, ...] = row[2:] + (r.tenant, r.id)
        if expected_updated_at is not None:
            sql += " AND updated_at = ?"
            params += (_ts(expected_updated_at),)
        async with self.db.execute(sql, params) as cur:
            return cur.rowcount == 1

    async def list_consents(self, tenant: str, *, customer_id: str | None, limit: int,
                            after: tuple[str, str] | None) -> list[ConsentRecord]:
        where, params = ["tenant = ?"], [tenant]
        if customer_id is not None:
            where.append("customer_id = ?")
            params.append(customer_id)
        if after is not None:
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [after[0], after[0], after[1]]
        sql = f"SELECT {_CONSENT_COLS} FROM consents WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT ?"
        async with self.db.execute(sql, (*params, limit)) as cur:
            return [_consent(row) for row in await cur.fetchall()]

    # --- accounts -----------------------------------------------------------------------------------------------
    async def upsert_accounts(self, records: list[AccountRecord]) -> None:
        if not records:
            return
        await self.db.executemany(
            "INSERT INTO accounts (tenant, id, provider, consent_id, provider_ref, created_at, data) VALUES (?,?,?,?,?,?,?) "
            "ON CONFLICT (tenant, id) DO UPDATE SET data = excluded.data",
            [(r.tenant, r.id, r.provider, r.consent_id, r.provider_ref, _ts(r.created_at), orjson.dumps(r.data).decode())
             for r in records],
        )

    async def get_account(self, tenant: str, account_id: str) -> tuple[AccountRecord, ConsentRecord] | None:
        cols = ", ".join(f"c.{c.strip()}" for c in _CONSENT_COLS.split(","))
        sql = (f"SELECT a.tenant, a.id, a.provider, a.consent_id, a.provider_ref, a.created_at, a.data, {cols} "
               "FROM accounts a JOIN consents c ON c.tenant = a.tenant AND c.id = a.consent_id "
               "WHERE a.tenant = ? AND a.id = ?")
        async with self.db.execute(sql, (tenant, account_id)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return _account(row[:7]), _consent(row[7:])

    async def list_accounts(self, tenant: str, consent_id: str) -> list[AccountRecord]:
        async with self.db.execute("SELECT tenant, id, provider, consent_id, provider_ref, created_at, data FROM accounts "
                                   "WHERE tenant = ? AND consent_id = ? ORDER BY id", (tenant, consent_id)) as cur:
            return [_account(row) for row in await cur.fetchall()]

    async def delete_consent_data(self, tenant: str, consent_id: str) -> int:
        async with self.db.execute("DELETE FROM accounts WHERE tenant = ? AND consent_id = ?", (tenant, consent_id)) as cur:
            return cur.rowcount
