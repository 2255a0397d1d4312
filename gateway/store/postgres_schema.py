"""The PostgreSQL store's schema, as the migrations that build it, and how they are applied.

The tables mirror the SQLite store's (`sqlite_schema.py`) with PostgreSQL types: `timestamptz` for times, `numeric`
for money, `bytea` for sealed bytes, `text[]` for lists of names, `json` for documents and a `bigserial` for the
events' `seq`. Documents are `json`, not `jsonb`: nothing queries inside them, and `json` gives back the exact text
written (key order, `1e20` stays a float, `\\u0000` is allowed), as SQLite does. Ids compare and sort by bytes
(`COLLATE "C"`), like SQLite, whatever the database's collation: paging by (created_at, id) depends on it.

Replicas start together: `migrate` holds a session advisory lock while it looks and applies, so one of them
migrates and the others wait, then find the work done.
"""
from __future__ import annotations

import hashlib
import re

import asyncpg
import attrs

# Advisory lock keys (one 64-bit space per database; these two are ours). Fixed, so every replica takes the same.
MIGRATION_LOCK = 0x6761_7465_7761_7901  # "gatewa" "y" 1: schema migrations, one replica at a time
EVENTS_LOCK = 0x6761_7465_7761_7902  # held from a transaction's first event insert to its commit (see postgres.py)
CHANNEL = "gateway_events"  # NOTIFY channel: "events were written", the payload names the writing process


@attrs.frozen
class Wakeup:
    """The NOTIFY channel and the events lock of one schema, and the name this process signs its NOTIFYs with.
    Deployments sharing a database in different schemas neither wake nor wait for each other."""
    channel: str
    events_lock: int
    writer: str

    @classmethod
    def of(cls, schema: str | None, writer: str) -> Wakeup:
        if schema is None:
            return cls(CHANNEL, EVENTS_LOCK, writer)
        digest = hashlib.sha256(schema.encode()).digest()  # a channel name is at most 63 bytes; a schema may be too
        return cls(f"{CHANNEL}_{digest[:8].hex()}", int.from_bytes(digest[8:16], "big", signed=True), writer)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

# Each entry is one schema version; a new version appends, never edits an old one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE customers (
        tenant TEXT NOT NULL, id TEXT COLLATE "C" NOT NULL, provider TEXT NOT NULL, provider_ref TEXT NOT NULL,
        type TEXT NOT NULL, external_ref TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL,
        category TEXT NOT NULL DEFAULT 'individual', abn TEXT, consumer_ref TEXT,
        PRIMARY KEY (tenant, id), UNIQUE (tenant, provider, external_ref)
    );
    CREATE INDEX customers_by_ref ON customers (provider, provider_ref);

    CREATE TABLE consents (
        tenant TEXT NOT NULL, id TEXT COLLATE "C" NOT NULL, provider TEXT NOT NULL, customer_id TEXT,
        status TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
        provider_ref TEXT, authorisation_url TEXT, redirect_uri TEXT, institution_id TEXT,
        permissions TEXT[] NOT NULL, authorised_at TIMESTAMPTZ, revoked_at TIMESTAMPTZ, expires_at TIMESTAMPTZ,
        status_reason TEXT, upstream JSON NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE INDEX consents_by_customer ON consents (tenant, customer_id, created_at, id);
    CREATE INDEX consents_by_time ON consents (tenant, created_at, id);
    CREATE INDEX consents_by_ref ON consents (provider, provider_ref);
    CREATE INDEX consents_by_expiry ON consents (expires_at) WHERE expires_at IS NOT NULL;

    CREATE TABLE accounts (
        tenant TEXT NOT NULL, id TEXT COLLATE "C" NOT NULL, provider TEXT NOT NULL, consent_id TEXT NOT NULL,
        provider_ref TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL, data JSON NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE INDEX accounts_by_consent ON accounts (tenant, consent_id, id);

    -- n: arrival order, the tiebreak SQLite's rowid gives between events received at the same instant
    CREATE TABLE inbound_events (
        provider TEXT NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL, received_at TIMESTAMPTZ NOT NULL,
        tenant TEXT, consent_id TEXT, payload JSON NOT NULL, n BIGSERIAL NOT NULL,
        PRIMARY KEY (provider, event_id)
    );
    CREATE INDEX inbound_events_by_time ON inbound_events (provider, received_at, n);

    CREATE TABLE reports (
        tenant TEXT NOT NULL, id TEXT COLLATE "C" NOT NULL, provider TEXT NOT NULL, customer_id TEXT NOT NULL,
        consent_id TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL, provider_ref TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, interval_types TEXT[] NOT NULL,
        status_reason TEXT,
        PRIMARY KEY (tenant, id)
    );
    CREATE INDEX reports_by_customer ON reports (tenant, customer_id, created_at, id);
    CREATE INDEX reports_by_time ON reports (tenant, created_at, id);
    CREATE INDEX reports_by_consent ON reports (tenant, consent_id);
    CREATE INDEX reports_by_ref ON reports (provider, provider_ref);

    CREATE TABLE applications (
        tenant TEXT NOT NULL, id TEXT COLLATE "C" NOT NULL, provider TEXT NOT NULL, provider_ref TEXT NOT NULL,
        access_model TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE TABLE provider_secrets (
        provider TEXT NOT NULL, name TEXT NOT NULL, sealed BYTEA NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (provider, name)
    );

    CREATE TABLE payments (
        tenant TEXT NOT NULL, id TEXT COLLATE "C" NOT NULL, provider TEXT NOT NULL, type TEXT NOT NULL,
        status TEXT NOT NULL, amount NUMERIC NOT NULL, currency TEXT NOT NULL, request JSON NOT NULL,
        created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, consent_ref TEXT, provider_ref TEXT,
        authorisation_url TEXT, redirect_uri TEXT, upstream_status TEXT, status_reason TEXT, customer_id TEXT,
        live BOOLEAN NOT NULL, upstream JSON NOT NULL, next_check_at TIMESTAMPTZ, check_attempts INTEGER NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE INDEX payments_by_time ON payments (tenant, created_at, id);
    CREATE INDEX payments_due ON payments (next_check_at) WHERE next_check_at IS NOT NULL;
    CREATE INDEX payments_by_ref ON payments (provider, provider_ref);
    CREATE TABLE payment_transitions (
        tenant TEXT NOT NULL, payment_id TEXT NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL,
        previous TEXT, at TIMESTAMPTZ NOT NULL, upstream_status TEXT, reason TEXT,
        PRIMARY KEY (tenant, payment_id, seq)
    );
    CREATE TABLE idempotency_keys (
        tenant TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, state TEXT NOT NULL,
        owner TEXT NOT NULL, lease_until TIMESTAMPTZ NOT NULL, created_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL, status INTEGER, content_type TEXT, body BYTEA,
        PRIMARY KEY (tenant, key)
    );
    CREATE INDEX idempotency_by_expiry ON idempotency_keys (expires_at);

    CREATE TABLE events (
        seq BIGSERIAL PRIMARY KEY, tenant TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL, subject_type TEXT NOT NULL, subject_id TEXT NOT NULL,
        order_key TEXT NOT NULL, data JSON NOT NULL,
        UNIQUE (tenant, id)
    );
    CREATE INDEX events_by_tenant ON events (tenant, seq);
    CREATE INDEX events_by_time ON events (created_at);
    CREATE TABLE webhook_subscriptions (
        tenant TEXT NOT NULL, id TEXT COLLATE "C" NOT NULL, url TEXT NOT NULL, event_types TEXT[] NOT NULL,
        ordered BOOLEAN NOT NULL, status TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL, secrets BYTEA NOT NULL, description TEXT, disabled_reason TEXT,
        PRIMARY KEY (tenant, id)
    );
    CREATE INDEX subscriptions_by_time ON webhook_subscriptions (tenant, created_at, id);
    CREATE TABLE deliveries (
        tenant TEXT NOT NULL, subscription_id TEXT COLLATE "C" NOT NULL, event_seq BIGINT NOT NULL,
        event_id TEXT NOT NULL, order_key TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
        next_attempt_at TIMESTAMPTZ, horizon_at TIMESTAMPTZ NOT NULL, last_attempt_at TIMESTAMPTZ,
        last_status INTEGER, last_error TEXT, delivered_at TIMESTAMPTZ, claimed_by TEXT, claimed_until TIMESTAMPTZ,
        PRIMARY KEY (tenant, subscription_id, event_seq)
    );
    CREATE INDEX deliveries_due ON deliveries (next_attempt_at, event_seq) WHERE status = 'pending';
    CREATE INDEX deliveries_in_order ON deliveries (tenant, subscription_id, order_key, event_seq)
        WHERE status = 'pending';
    CREATE INDEX deliveries_by_event ON deliveries (tenant, event_seq);
    CREATE INDEX deliveries_by_seq ON deliveries (event_seq);
    CREATE INDEX deliveries_failed ON deliveries (tenant, event_seq) WHERE status = 'failed';
    CREATE INDEX deliveries_claimed ON deliveries (claimed_by) WHERE claimed_by IS NOT NULL;

    -- kind: 'expiring@<expiry as ISO 8601>', as in SQLite; expires_at: that expiry, compared as a time
    CREATE TABLE consent_notices (
        tenant TEXT NOT NULL, consent_id TEXT NOT NULL, kind TEXT NOT NULL, expires_at TIMESTAMPTZ,
        at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (tenant, consent_id, kind)
    );
    """,
    """
    CREATE TABLE leases (
        name TEXT NOT NULL PRIMARY KEY, owner TEXT NOT NULL, until TIMESTAMPTZ NOT NULL
    );
    """,
]


def quote_identifier(name: str) -> str:
    """`name` quoted for SQL, after checking it is a plain identifier (letters, digits, _; at most 63)."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not an SQL identifier: {name!r} (letters, digits and _, not starting with a digit)")
    return f'"{name}"'


async def migrate(conn: asyncpg.Connection, schema: str | None) -> int:
    """Create `schema` if given and missing, then apply the migrations not yet applied, each in its own
    transaction, under the migration lock. Returns the schema version now."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        if schema is not None:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                           "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        current = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        if current > len(MIGRATIONS):
            raise RuntimeError(f"the database's schema is version {current}, newer than this code knows "
                               f"({len(MIGRATIONS)}): run the newer gateway, or a database of this version")
        for version, script in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            async with conn.transaction():
                await conn.execute(script)
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
            current = version
        return int(current)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
