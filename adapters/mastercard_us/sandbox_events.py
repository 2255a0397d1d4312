"""What the Finicity simulator tells the partner on its own: Connect events (to the `webhook` of a Connect link) and
report events (to a report's `callbackUrl`), built, signed and queued on the simulator's outbox.

Connect events: `{customerId, eventType, eventId, payload, webhookData?}` (`ping` is just `{eventType, payload}`),
with the link's `webhookHeaders` added to the request's headers; retried at 12 ms, 72 ms, 432 ms, 2.6 s, 15.6 s, 93.3 s.
Report events: `{eventName, id, consumerId, type, status, customerId}`; retried three times (10 s, 60 s, 5 min).
Both schedules are multiplied by the simulator's `retry_scale`; both are signed with `X-Signature` keyed with the
partner secret (see `adapters.mastercard.sandbox_webhooks`). A link's events, and a report's, go out in order.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING, Any

from adapters.mastercard.sandbox_webhooks import CONNECT_SCHEDULE, REPORT_SCHEDULE, Delivery, ok_2xx, signed_request
from adapters.mastercard_us.sandbox_world import ConnectLink, Report

if TYPE_CHECKING:
    from adapters.mastercard_us.sandbox import MastercardUSSandbox


class Notifier:
    def __init__(self, sandbox: MastercardUSSandbox) -> None:
        self.sandbox = sandbox
        self.last_connect: Delivery | None = None  # the last Connect event queued, to send again

    def _scaled(self, schedule: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(at * self.sandbox.retry_scale for at in schedule)

    def _connect_delivery(self, customer_id: str, webhook: dict[str, Any], event_type: str,
                          payload: dict[str, Any]) -> Delivery:
        if event_type == "ping":  # as documented: no customer, no id, no webhookData
            body: dict[str, Any] = {"eventType": "ping", "payload": {}}
        else:
            body = {"customerId": customer_id, "eventType": event_type,
                    "eventId": f"{int(time.time() * 1000)}-{secrets.token_hex(12)}", "payload": payload}
            if webhook.get("data") is not None:
                body["webhookData"] = webhook["data"]
        raw, headers = signed_request(body, self.sandbox.partner_secret, self.sandbox.connect_signature)
        headers = {**{str(k): str(v) for k, v in (webhook.get("headers") or {}).items()}, **headers}
        return Delivery("connect", webhook["url"], body.get("eventId", "ping"), event_type, raw, headers,
                        self._scaled(CONNECT_SCHEDULE), ok_2xx)

    async def ping(self, customer_id: str, webhook: dict[str, Any]) -> bool:
        """The check made when a Connect link is generated: one attempt, a 2xx passes."""
        status = await self.sandbox.outbox.post(self._connect_delivery(customer_id, webhook, "ping", {}))
        return status is not None and ok_2xx(status)

    def connect(self, link: ConnectLink, event_type: str,
                payload: dict[str, Any] | None = None) -> asyncio.Future[None] | None:
        """Queue a Connect event of the link's session (nothing when the link has no webhook); the future is done
        after its first delivery attempt."""
        if link.webhook is None:
            return None
        delivery = self._connect_delivery(link.customer_id, link.webhook, event_type, payload or {})
        self.last_connect = delivery
        return self.sandbox.outbox.queue("connect:" + link.id, delivery)

    def resend_last_connect(self) -> None:
        """The last Connect event again: the same bytes, eventId and signature (as a retry of the platform's)."""
        if self.last_connect is None:
            raise RuntimeError("no Connect event was sent yet")
        self.sandbox.outbox.queue("connect:resend", self.last_connect)

    def report(self, report: Report, event_name: str) -> None:
        """Queue a report event (nothing when the report was asked for without a callbackUrl)."""
        if report.callback_url is None:
            return
        body = {"eventName": event_name, "id": report.id, "consumerId": report.consumer_id, "type": report.type,
                "status": report.status, "customerId": int(report.customer_id)}
        raw, headers = signed_request(body, self.sandbox.partner_secret, self.sandbox.connect_signature)
        self.sandbox.outbox.queue("report:" + report.id, Delivery(
            "report", report.callback_url, report.id, event_name, raw, headers, self._scaled(REPORT_SCHEDULE), ok_2xx))
