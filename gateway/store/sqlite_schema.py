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
    """
    CREATE TABLE payments (
        tenant TEXT NOT NULL, id TEXT NOT NULL, provider TEXT NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,
        amount TEXT NOT NULL, currency TEXT NOT NULL, request TEXT NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, consent_ref TEXT, provider_ref TEXT,
        authorisation_url TEXT, redirect_uri TEXT, upstream_status TEXT, status_reason TEXT, customer_id TEXT,
        live INTEGER NOT NULL, upstream TEXT NOT NULL, next_check_at TEXT, check_attempts INTEGER NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE INDEX payments_by_time ON payments (tenant, created_at, id);
    CREATE INDEX payments_due ON payments (next_check_at) WHERE next_check_at IS NOT NULL;
    CREATE TABLE payment_transitions (
        tenant TEXT NOT NULL, payment_id TEXT NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL,
        previous TEXT, at TEXT NOT NULL, upstream_status TEXT, reason TEXT,
        PRIMARY KEY (tenant, payment_id, seq)
    );
    CREATE TABLE idempotency_keys (
        tenant TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, state TEXT NOT NULL,
        owner TEXT NOT NULL, lease_until TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL,
        status INTEGER, content_type TEXT, body BLOB,
        PRIMARY KEY (tenant, key)
    );
    CREATE INDEX idempotency_by_expiry ON idempotency_keys (expires_at);
    """,
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
        created_at TEXT NOT NULL, subject_type TEXT NOT NULL, subject_id TEXT NOT NULL, order_key TEXT NOT NULL,
        data TEXT NOT NULL,
        UNIQUE (tenant, id)
    );
    CREATE INDEX events_by_tenant ON events (tenant, seq);
    CREATE TABLE webhook_subscriptions (
        tenant TEXT NOT NULL, id TEXT NOT NULL, url TEXT NOT NULL, event_types TEXT NOT NULL,
        ordered INTEGER NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        secrets BLOB NOT NULL, description TEXT, disabled_reason TEXT,
        PRIMARY KEY (tenant, id)
    );
    CREATE INDEX subscriptions_by_time ON webhook_subscriptions (tenant, created_at, id);
    CREATE TABLE deliveries (
        tenant TEXT NOT NULL, subscription_id TEXT NOT NULL, event_seq INTEGER NOT NULL, event_id TEXT NOT NULL,
        order_key TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt_at TEXT,
        horizon_at TEXT NOT NULL, last_attempt_at TEXT, last_status INTEGER, last_error TEXT, delivered_at TEXT,
        claimed_by TEXT, claimed_until TEXT,
        PRIMARY KEY (tenant, subscription_id, event_seq)
    );
    CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
    CREATE INDEX deliveries_in_order ON deliveries (tenant, subscription_id, order_key, event_seq)
        WHERE status = 'pending';
    CREATE INDEX deliveries_by_event ON deliveries (tenant, event_seq);
    CREATE INDEX deliveries_failed ON deliveries (tenant, event_seq) WHERE status = 'failed';
    CREATE TABLE consent_notices (
        tenant TEXT NOT NULL, consent_id TEXT NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (tenant, consent_id, kind)
    );
    CREATE INDEX consents_by_expiry ON consents (expires_at) WHERE expires_at IS NOT NULL;
    CREATE INDEX payments_by_ref ON payments (provider, provider_ref);
    """,
    """
    CREATE TABLE leases (
        name TEXT NOT NULL PRIMARY KEY, owner TEXT NOT NULL, until TEXT NOT NULL
    );
    """,
]


def ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat()


def dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
