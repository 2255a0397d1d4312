"""The SQLite store's schema, as the migrations that build it."""
from __future__ import annotations

from datetime import datetime

from gateway.models.time import UTC

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
    """
    CREATE TABLE inbound_events (
        provider TEXT NOT NULL, event_id TEXT NOT NULL, type TEXT NOT NULL, received_at TEXT NOT NULL,
        tenant TEXT, consent_id TEXT, payload TEXT NOT NULL,
        PRIMARY KEY (provider, event_id)
    );
    CREATE INDEX consents_by_ref ON consents (provider, provider_ref);
    """,
    """
    ALTER TABLE customers ADD COLUMN category TEXT NOT NULL DEFAULT 'individual';
    ALTER TABLE customers ADD COLUMN abn TEXT;
    ALTER TABLE customers ADD COLUMN consumer_ref TEXT;
    CREATE INDEX customers_by_ref ON customers (provider, provider_ref);
    CREATE TABLE reports (
        tenant TEXT NOT NULL, id TEXT NOT NULL, provider TEXT NOT NULL, customer_id TEXT NOT NULL,
        consent_id TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL, provider_ref TEXT NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, interval_types TEXT NOT NULL, status_reason TEXT,
        PRIMARY KEY (tenant, id)
    );
    CREATE INDEX reports_by_customer ON reports (tenant, customer_id, created_at, id);
    CREATE INDEX reports_by_consent ON reports (tenant, consent_id);
    CREATE INDEX reports_by_ref ON reports (provider, provider_ref);
    CREATE TABLE applications (
        tenant TEXT NOT NULL, id TEXT NOT NULL, provider TEXT NOT NULL, provider_ref TEXT NOT NULL,
        access_model TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE TABLE provider_secrets (
        provider TEXT NOT NULL, name TEXT NOT NULL, sealed BLOB NOT NULL, updated_at TEXT NOT NULL,
        PRIMARY KEY (provider, name)
    );
    """,
]


def ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat()


def dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
