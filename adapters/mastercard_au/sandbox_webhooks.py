"""Outgoing webhooks of the AU simulator: consent notifications here; Connect and report events, the outbox and its
retry schedules are the platform's, shared with the US simulator (`adapters.mastercard.sandbox_webhooks`).

- Consent notifications: the compact JSON body, `Event-Signature` = hex HMAC-SHA256 of those exact bytes keyed
  with the subscription's signing key, plus `Event-Id`, `Event-Type`, `Event-Context: CONSENT`. Only a 200 counts
  as delivered. Retries: 6 s, 48 s, 5 min, 34 min, 3 h 42 min, 24 h (times the simulator's `retry_scale`).
"""
from __future__ import annotations

from typing import Any

import orjson

from adapters.mastercard.sandbox_webhooks import (
    CONNECT_SCHEDULE, REPORT_SCHEDULE, SIGNATURE_MODES, Delivery, hmac_hex, ok_2xx, ok_200, signed_request,
)
from adapters.mastercard.sandbox_webhooks import Outbox as PlatformOutbox

__all__ = ["CONNECT_SCHEDULE", "CONSENT_SCHEDULE", "REPORT_SCHEDULE", "SIGNATURE_MODES", "Delivery", "Outbox",
           "consent_request", "hmac_hex", "ok_2xx", "ok_200", "signed_request"]

CONSENT_SCHEDULE = (6.0, 48.0, 300.0, 34 * 60.0, 3 * 3600 + 42 * 60.0, 24 * 3600.0)


def consent_request(body: dict[str, Any], signing_key: str) -> tuple[bytes, dict[str, str]]:
    """The bytes and headers of a consent notification."""
    raw = orjson.dumps(body)
    return raw, {"Content-Type": "application/json", "Event-Signature": hmac_hex(signing_key, raw),
                 "Event-Id": body["eventId"], "Event-Type": body["eventType"], "Event-Context": "CONSENT"}


class Outbox(PlatformOutbox):
    """The platform outbox, named for the AU simulator's log lines."""

    def __init__(self, deliveries: list[dict[str, Any]], *, timeout: float = 5.0) -> None:
        super().__init__(deliveries, timeout=timeout, name="mastercard-au")
