"""mastercard-au webhooks: who may send them, and reading what the report channel says. No I/O.

Consent notifications are signed with the subscription's signing key (`Event-Signature`, HMAC-SHA256 of the raw
body, hex); Connect and report webhooks with the partner secret (`X-Signature`). Comparisons are constant-time.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from adapters.base import InboundEvent
from adapters.mastercard_au import translate as au
from gateway.errors import MalformedRequest, Unauthenticated
from gateway.secrets import Secret


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


def verify_partner_signature(partner_secret: Secret, headers: Any, body: bytes) -> None:
    """X-Signature is HMAC-SHA256 keyed with the partner secret. The provider's published sample hashes the
    re-serialised JSON (JSON.stringify of the parsed body), not the bytes on the wire; the raw bytes are checked
    first and the compact re-serialisation second, so either way a forged body fails. (A re-serialisation can differ
    from the provider's in corner cases, e.g. 1.0 where JSON.stringify writes 1; the raw check covers a provider
    that signs what it sends.)"""
    given = str(headers.get("X-Signature", "")).strip().lower()
    if not given:
        raise Unauthenticated("the webhook carries no X-Signature")
    key = partner_secret.reveal().encode()
    if hmac.compare_digest(given, hmac.new(key, body, hashlib.sha256).hexdigest()):
        return
    try:
        compact = orjson.dumps(orjson.loads(body))
    except orjson.JSONDecodeError:
        compact = b""
    if compact and hmac.compare_digest(given, hmac.new(key, compact, hashlib.sha256).hexdigest()):
        return
    raise Unauthenticated("the webhook's X-Signature does not match its body")


def json_body(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedRequest("the webhook body is not JSON") from None


def connect_event_id(body: dict[str, Any], event_type: str) -> str:
    """The Connect event's id; `ping` has none, so it is named by its content (a replay is still a duplicate)."""
    raw_id = body.get("eventId")
    return str(raw_id) if raw_id else f"{event_type}:{hashlib.sha256(orjson.dumps(body)).hexdigest()[:32]}"


def report_event(body: Any) -> InboundEvent:
    if not isinstance(body, dict) or not body.get("id") or not body.get("eventName"):
        raise MalformedRequest("a report webhook needs id and eventName")
    name = str(body["eventName"])
    status = au.report_status(body.get("status")) or au.report_status(name)
    return InboundEvent(event_id=f"report:{body['id']}:{name}", type=name, provider_ref=str(body.get("customerId", "")),
                        payload=body, ref_kind="customer", report_ref=str(body["id"]), report_status=status)
