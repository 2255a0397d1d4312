"""What the AU simulator tells the partner on its own: consent notifications, Connect events, report events (their
bodies, signatures and channels), and the platform errors an account answers once an aggregation status code is
injected into it.
"""
from __future__ import annotations

import secrets
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from adapters.mastercard_au.sandbox_data import INSTITUTIONS
from adapters.mastercard_au.sandbox_views import receipt_json
from adapters.mastercard_au.sandbox_webhooks import (
    CONNECT_SCHEDULE, CONSENT_SCHEDULE, REPORT_SCHEDULE, Delivery, consent_request, ok_2xx, ok_200, signed_request,
)
from adapters.mastercard_au.sandbox_world import Arrangement, Link, Receipt, Report

if TYPE_CHECKING:
    from adapters.mastercard_au.sandbox import MastercardAUSandbox

# Aggregation status code -> (HTTP status, message) of the error a data call on the account answers.
ACCOUNT_ERRORS: dict[str, tuple[int, str]] = {
    "103": (400, "Invalid credentials: the end user's sign-in at the institution is no longer valid."),
    "108": (400, "User action required: the end user must sign in at the institution and resolve its prompts."),
    "109": (400, "Security information update required: the end user must update their password and reconsent."),
    "913": (404, "The account is closed at the institution."),
    "914": (404, "The account was not found at the institution."),
    "915": (503, "The connection to the institution is being fixed. Please try again later."),
    "916": (503, "The connection to the institution is being fixed. Please try again later."),
    **{str(code): (400, "The institution is not supported for aggregation.") for code in range(920, 930)},
    "931": (400, "One-time passcode required: the end user must reconnect."),
    "936": (400, "The end user must set their language preference at the institution to English."),
    "3255006": (500, "The account is being aggregated. Please try again later."),
}
_SUMMARIES = {"INSTITUTIONS_ADDED": "added to", "INSTITUTIONS_REVOKED": "revoked from",
              "INSTITUTIONS_EXPIRED": "expired in"}


def iso_millis(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Notifier:
    """Builds and queues the simulator's webhooks on its outbox."""

    def __init__(self, sandbox: MastercardAUSandbox) -> None:
        self.sandbox = sandbox
        self._last_consent: list[tuple[str, Delivery]] = []

    def _scaled(self, schedule: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(at * self.sandbox.retry_scale for at in schedule)

    # --- consent notifications -----------------------------------------------------------------------------------
    def _consent_body(self, event_type: str, receipt: Receipt, arrangements: list[Arrangement]) -> dict[str, Any]:
        world = self.sandbox.world
        if event_type == "CONSENT_CREATED":  # a draft: no institution yet
            summary, consent = "Consent created", receipt_json(world, receipt, status="DRAFT", arrangements=[])
        else:
            names = ", ".join(INSTITUTIONS[a.institution_id].name for a in arrangements)
            summary = f"Institutions {_SUMMARIES[event_type]} the consent: {names}"
            consent = receipt_json(world, receipt)
        details = [{"consentReceiptId": receipt.id, "institutionId": str(a.institution_id),
                    "institutionLoginId": str(a.login_id), "accountIds": list(a.account_ids)} for a in arrangements]
        return {"eventId": str(uuid.uuid4()), "eventType": event_type, "eventContext": "CONSENT",
                "eventTime": iso_millis(world.now()), "customerId": receipt.customer_id,
                "payload": {"changes": {"summary": summary, "details": details}, "consent": consent}}

    def _queue_consent(self, body: dict[str, Any], key: str | None = None) -> list[tuple[str, Delivery]]:
        queued = []
        for subscription in self.sandbox.world.subscriptions.values():
            raw, headers = consent_request(body, key or subscription.signing_key)
            delivery = Delivery("consent", subscription.url, body["eventId"], body["eventType"], raw, headers,
                                self._scaled(CONSENT_SCHEDULE), ok_200)
            channel = "consent:" + subscription.id
            self.sandbox.outbox.queue(channel, delivery)
            queued.append((channel, delivery))
        return queued

    def consent(self, event_type: str, receipt: Receipt, arrangements: list[Arrangement]) -> None:
        """Notify every CONSENT subscription (no event when no institution changed, except CONSENT_CREATED)."""
        if not arrangements and event_type != "CONSENT_CREATED":
            return
        queued = self._queue_consent(self._consent_body(event_type, receipt, arrangements))
        if queued:
            self._last_consent = queued

    def resend_last_consent(self) -> None:
        if not self._last_consent:
            raise RuntimeError("no consent notification was sent yet")
        for channel, delivery in self._last_consent:
            self.sandbox.outbox.queue(channel, delivery)

    def forged_consent(self) -> None:
        active = [r for r in self.sandbox.world.receipts.values() if r.status == "ACTIVE"]
        if not active:
            raise RuntimeError("no active consent receipt to forge a revocation of")
        receipt = max(active, key=lambda r: r.created)
        self._queue_consent(self._consent_body("INSTITUTIONS_REVOKED", receipt, receipt.active()),
                            key=secrets.token_hex(32))

    # --- Connect events --------------------------------------------------------------------------------------------
    def _connect_delivery(self, customer_id: str, webhook: dict[str, Any], event_type: str,
                          payload: dict[str, Any]) -> Delivery:
        body: dict[str, Any] = {"customerId": customer_id, "eventType": event_type,
                                "eventId": f"{int(time.time() * 1000)}-{secrets.token_hex(12)}", "payload": payload}
        if webhook.get("data") is not None and event_type != "ping":
            body["webhookData"] = webhook["data"]
        raw, headers = signed_request(body, self.sandbox.partner_secret, self.sandbox.connect_signature)
        headers = {**(webhook.get("headers") or {}), **headers}
        return Delivery("connect", webhook["url"], body["eventId"], event_type, raw, headers,
                        self._scaled(CONNECT_SCHEDULE), ok_2xx)

    async def ping(self, customer_id: str, webhook: dict[str, Any]) -> bool:
        """The check made when a Connect link is generated: one attempt, a 2xx passes."""
        status = await self.sandbox.outbox.post(self._connect_delivery(customer_id, webhook, "ping", {}))
        return status is not None and ok_2xx(status)

    def connect(self, link: Link, event_type: str, payload: dict[str, Any] | None = None) -> None:
        if link.webhook is not None:
            delivery = self._connect_delivery(link.customer_id, link.webhook, event_type, payload or {})
            self.sandbox.outbox.queue("connect:" + link.id, delivery)

    # --- report events ---------------------------------------------------------------------------------------------
    def report(self, report: Report, event_name: str) -> None:
        if report.callback_url is None:
            return
        body = {"eventName": event_name, "id": report.id, "consumerId": report.consumer_id, "type": report.type,
                "status": report.status, "customerId": int(report.customer_id)}
        raw, headers = signed_request(body, self.sandbox.partner_secret, self.sandbox.connect_signature)
        self.sandbox.outbox.queue("report:" + report.id, Delivery(
            "report", report.callback_url, report.id, event_name, raw, headers, self._scaled(REPORT_SCHEDULE), ok_2xx))
