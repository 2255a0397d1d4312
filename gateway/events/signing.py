"""Subscription signing secrets and Standard Webhooks signatures.

A secret is `whsec_` + base64 of 32 random bytes, shown to the product team once (when the subscription is made
or the secret rotated) and kept sealed by the vault. After a rotation the previous secret keeps signing beside the
new one until its overlap ends: `webhook-signature` then carries one `v1,<sig>` per secret, space-separated, as the
Standard Webhooks convention specifies, so a receiver holding either secret verifies the delivery.
Signing is the `standardwebhooks` library's.
"""
from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook

from gateway.models.time import utcnow
from gateway.vault import Vault

_VAULT_SCOPE = "webhook-subscriptions"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _name(tenant: str, subscription_id: str) -> str:
    return f"{tenant}/{subscription_id}"


def seal_secrets(vault: Vault, tenant: str, subscription_id: str, entries: list[dict[str, Any]]) -> bytes:
    """`entries`: [{"secret": "whsec_…", "expires_at": iso or None}], the newest first."""
    return vault.seal(_VAULT_SCOPE, _name(tenant, subscription_id), orjson.dumps(entries).decode())


def open_secrets(vault: Vault, tenant: str, subscription_id: str, sealed: bytes) -> list[dict[str, Any]]:
    return orjson.loads(vault.open(_VAULT_SCOPE, _name(tenant, subscription_id), sealed))


def active(entries: list[dict[str, Any]], now: datetime | None = None) -> list[str]:
    """The secrets that sign now: the current one and any previous one still inside its overlap."""
    moment = now or utcnow()
    return [e["secret"] for e in entries
            if e.get("expires_at") is None or datetime.fromisoformat(e["expires_at"]) > moment]


def rotate(entries: list[dict[str, Any]], new: str, overlap_until: datetime) -> list[dict[str, Any]]:
    """The new secret first; the current one signs until `overlap_until`; older ones past their end are dropped."""
    now = utcnow()
    kept = [{"secret": new, "expires_at": None}]
    for entry in entries:
        ends = entry.get("expires_at")
        if ends is None:
            kept.append({"secret": entry["secret"], "expires_at": overlap_until.isoformat()})
        elif datetime.fromisoformat(ends) > now:
            kept.append(entry)
    return kept


def headers(msg_id: str, timestamp: datetime, body: bytes, signing: list[str]) -> dict[str, str]:
    """The Standard Webhooks headers for one delivery attempt of `body` (exact bytes sent)."""
    text = body.decode()
    signatures = " ".join(Webhook(secret).sign(msg_id, timestamp, text) for secret in signing)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
    }
