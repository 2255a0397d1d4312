"""stripe-uk's event subscription (Open Banking v3.1.2 Event Subscription API) and the notifications it brings.

Of the two ways v3.1.2 gives a TPP to say where its events go, the gateway uses `POST /event-subscriptions`
(CallbackUrl, Version, EventTypes), not the Callback URL API (`POST /callback-urls`): a callback URL receives only
`resource-update` events, while a subscription names the event types it wants, `consent-authorization-revoked` among
them, which is what tells the gateway an account holder revoked access in the bank's app.

Subscribing is idempotent: the bank keeps one subscription per TPP (a second POST is a 409), so the gateway reads
`GET /event-subscriptions` first and keeps the subscription when it already says what the gateway wants, changes
it with PUT when it does not (the public URL moved), and creates one only when there is none. The bank holds the
subscription id, so the gateway keeps nothing of it. A client-credentials token with the scopes the gateway is
registered for (`accounts payments`: the subscription covers events of both APIs) authorises these calls; POST and
PUT carry the gateway's detached JWS, and every answer's signature is verified, as for payments.

Receiving: `events.py` verifies and reads each notification; here the bank's keys are found for it (refetched once
when the notification names a kid the gateway has not seen, at most every JWKS_REFRESH_INTERVAL seconds, so forged
kids cannot make the gateway call the bank at will).

A mixin of `StripeUKAdapter` (it uses the adapter's OAuth client, key material, settings and upstream client).
"""
from __future__ import annotations

import time
import uuid
from typing import Any, ClassVar
from urllib.parse import quote

import orjson
import structlog

from adapters.base import InboundEvent
from adapters.stripe_uk import events
from gateway.connectivity import obsign
from gateway.connectivity.client import UpstreamResponse
from gateway.errors import GatewayCredentialsRejected, ProviderBadResponse, Unauthenticated

log = structlog.get_logger("gateway.stripe_uk")

EVENT_SCOPE = "accounts payments"
JWKS_REFRESH_INTERVAL = 10.0  # seconds: the least time between two JWKS fetches an unknown kid may cause


class EventsClient:
    provider_id: str
    settings: Any
    material: Any
    upstream: Any
    events_problem: str | None
    _aspsp_jwks: dict[str, Any] | None
    _jwks_fetched_at: float

    # Also used, from OAuthClient, PaymentsClient and Adapter:
    _client_id: Any
    _client_credentials: Any
    _jwks: Any
    _fail: Any
    _verify_signature: Any
    _jws_issuer: Any
    discovery: Any
    webhook_url: Any

    webhook_channels: ClassVar[frozenset[str]] = frozenset({""})
    webhook_ack_status: ClassVar[int] = 202  # OB Event Notification API: the TPP answers 202 Accepted

    # --- the subscription ----------------------------------------------------------------------------------------
    def _wanted(self, url: str) -> dict[str, Any]:
        return {"CallbackUrl": url, "Version": self.settings.event_version,
                "EventTypes": list(self.settings.event_types)}

    async def subscribe_events(self) -> tuple[str, dict[str, Any]]:
        """Make sure the bank sends its event notifications to this gateway: ("kept" | "updated" | "created",
        the subscription as the bank holds it)."""
        url = self.webhook_url()
        if url is None:
            raise LookupError("server.public_url is not configured: the bank has nowhere to send event notifications")
        wanted = self._wanted(url)
        token = await self._client_credentials(EVENT_SCOPE)
        for _ in range(2):
            current = await self._subscriptions(token)
            if current:
                found = next((s for s in current if s.get("CallbackUrl") == url), current[0])
                if _same(found, wanted):
                    return "kept", found
                sub_id = str(found["EventSubscriptionId"])
                response = await self._events_call("PUT", f"/event-subscriptions/{quote(sub_id, safe='')}", token,
                                                   body={"Data": {"EventSubscriptionId": sub_id, **wanted}},
                                                   operation="change_event_subscription")
                return "updated", await self._subscription_answer(response)
            response = await self._events_call("POST", "/event-subscriptions", token, body={"Data": wanted},
                                               operation="create_event_subscription")
            if response.status != 409:  # 409: another replica subscribed meanwhile; read it and reconcile
                return "created", await self._subscription_answer(response)
        raise ProviderBadResponse(f"{self.provider_id} refuses a new event subscription (409) but lists none")

    async def _subscriptions(self, token: str) -> list[dict[str, Any]]:
        response = await self._events_call("GET", "/event-subscriptions", token, operation="list_event_subscriptions")
        body = await self._signed_json(response)
        found = (body.get("Data") or {}).get("EventSubscription") if isinstance(body, dict) else None
        if not isinstance(found, list) or not all(isinstance(s, dict) and s.get("EventSubscriptionId")
                                                  for s in found):
            raise ProviderBadResponse(f"{self.provider_id} listed event subscriptions in an unknown shape")
        return found

    async def _subscription_answer(self, response: UpstreamResponse) -> dict[str, Any]:
        body = await self._signed_json(response)
        data = body.get("Data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not data.get("EventSubscriptionId"):
            raise ProviderBadResponse(f"{self.provider_id} answered without an EventSubscriptionId")
        return data

    async def _signed_json(self, response: UpstreamResponse) -> Any:
        if not response.ok:
            raise self._fail(response)
        await self._verify_signature(response)
        return response.json()

    async def _events_call(self, method: str, path: str, token: str, *, operation: str,
                           body: dict[str, Any] | None = None) -> UpstreamResponse:
        headers = {"x-fapi-interaction-id": str(uuid.uuid4()), "Accept": "application/json",
                   "Authorization": f"Bearer {token}"}
        raw = None
        if body is not None:
            raw = orjson.dumps(body)
            headers["Content-Type"] = "application/json"
            headers["x-jws-signature"] = obsign.sign_detached(self.material.signing, raw, issuer=self._jws_issuer,
                                                              trust_anchor=self.settings.jws_trust_anchor)
        # A repeated POST cannot make a second subscription (the bank answers 409), so every call may be retried.
        return await self.upstream.request(method, self.settings.events_path + path, operation=operation, data=raw,
                                           headers=headers, idempotent=True)

    # --- notifications -------------------------------------------------------------------------------------------
    async def receive_webhook(self, channel: str, headers: Any, body: bytes) -> InboundEvent:
        token = events.read_token(headers.get("Content-Type"), body)
        kid = events.key_id(events.header_of(token))
        issuer = (await self.discovery())["issuer"]
        try:
            client_id = await self._client_id()
        except GatewayCredentialsRejected:
            raise Unauthenticated(f"event notification refused: the gateway is not registered with "
                                  f"{self.provider_id}, so it cannot tell whether it is the audience") from None
        claims = events.verify(token, await self._event_keys(kid), issuer=issuer, audience=client_id,
                               now=time.time(), max_age=self.settings.event_max_age)
        event = events.inbound(claims)
        log.info("event_notification_verified", provider=self.provider_id, event_id=event.event_id, type=event.type,
                 payment_ref=event.payment_ref, consent_ref=event.provider_ref or None)
        return event

    async def _event_keys(self, kid: str) -> dict[str, Any]:
        """The bank's JWKS, refetched once when it lacks `kid` (a key rotated in since it was read)."""
        first = self._aspsp_jwks is None
        jwks = await self._jwks()
        if first:
            self._jwks_fetched_at = time.monotonic()
        if kid not in events.key_ids(jwks) and time.monotonic() - self._jwks_fetched_at >= JWKS_REFRESH_INTERVAL:
            self._jwks_fetched_at = time.monotonic()
            jwks = await self._jwks(refresh=True)
        return jwks


def _same(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return (found.get("CallbackUrl") == wanted["CallbackUrl"] and found.get("Version") == wanted["Version"]
            and sorted(found.get("EventTypes") or ()) == sorted(wanted["EventTypes"]))
