"""mastercard-au webhooks: who may send them. No I/O.

Consent notifications are signed with the subscription's signing key (`Event-Signature`, HMAC-SHA256 of the raw
body, hex). Connect and report webhooks are signed with the partner secret (`X-Signature`), as on the US platform:
their verification and reading are shared, in `adapters.mastercard.webhooks`. Comparisons are constant-time.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Any

from adapters.mastercard.webhooks import connect_event_id, json_body, report_event, verify_partner_signature
from gateway.errors import MalformedRequest, Unauthenticated
from gateway.secrets import Secret

__all__ = ["check_notification_headers", "connect_event_id", "json_body", "report_event",
           "verify_consent_notification", "verify_partner_signature"]


def _header(headers: Any, name: str) -> str:
    return str(headers.get(name, "")).strip().strip('"')


def verify_consent_notification(key: Secret, headers: Any, body: bytes) -> None:
    if _header(headers, "Event-Context") != "CONSENT":
        raise MalformedRequest("not a consent notification: Event-Context must be CONSENT")
    given = _header(headers, "Event-Signature").lower()
    expected = hmac.new(key.reveal().encode(), body, hashlib.sha256).hexdigest()
    if not given or not hmac.compare_digest(given, expected):
        raise Unauthenticated("the consent notification's Event-Signature does not match its body")


def check_notification_headers(headers: Any, event_id: str, event_type: str) -> None:
    if _header(headers, "Event-Id") != event_id or _header(headers, "Event-Type") != event_type:
        raise MalformedRequest("the Event-Id and Event-Type headers disagree with the notification body")
