"""Inbound provider webhooks: verified on the raw bytes, de-duplicated by event id, recorded with their effect.

POST /webhooks/<provider>. The adapter verifies the sender and reads the event; the gateway finds the consent it
names and, in one store transaction, keeps the event and the consent's new state. A replayed event id changes
nothing and is acknowledged (providers retry until they get a 2xx). A forged one is refused and changes nothing.
"""
from __future__ import annotations

from aiohttp import web

from gateway.api.common import state_of
from gateway.api.render import json_response
from gateway.api.state import PROVIDER
from gateway.errors import NotFound
from gateway.models import ConsentStatus
from gateway.models.time import utcnow
from gateway.store.records import ConsentRecord, InboundEventRecord
from gateway.validation.body import read_raw

# Which consent states an event may move a consent out of, by the state it announces.
_MAY_BECOME: dict[ConsentStatus, frozenset[ConsentStatus]] = {
    ConsentStatus.AUTHORISED: frozenset({ConsentStatus.AWAITING_AUTHORISATION, ConsentStatus.REAUTHENTICATION_REQUIRED}),
    ConsentStatus.REAUTHENTICATION_REQUIRED: frozenset({ConsentStatus.AWAITING_AUTHORISATION, ConsentStatus.AUTHORISED}),
    ConsentStatus.REJECTED: frozenset({ConsentStatus.AWAITING_AUTHORISATION}),
    ConsentStatus.REVOKED: frozenset({ConsentStatus.AUTHORISED, ConsentStatus.REAUTHENTICATION_REQUIRED,
                                      ConsentStatus.AWAITING_AUTHORISATION}),
    ConsentStatus.EXPIRED: frozenset({ConsentStatus.AUTHORISED, ConsentStatus.REAUTHENTICATION_REQUIRED}),
}


def _transition(consent: ConsentRecord, status: ConsentStatus, reason: str | None) -> ConsentRecord | None:
    if consent.status is status or consent.status not in _MAY_BECOME.get(status, frozenset()):
        return None
    consent.set_status(status, reason, utcnow())
    return consent


async def receive(request: web.Request) -> web.Response:
    state = state_of(request)
    provider = request.match_info["provider"]
    adapter = state.adapters.get(provider)
    if adapter is None or not adapter.receives_webhooks:
        raise NotFound(f"no webhook endpoint for {provider!r}")
    request[PROVIDER] = provider
    body = await read_raw(request, state.config.server.max_body_bytes)
    adapter.verify_webhook(request.headers, body)
    event = adapter.parse_webhook(request.headers, body)
    consents = await state.store.find_consents_by_ref(provider, event.provider_ref)
    consent = consents[0] if consents else None
    changed = None
    if consent is not None and event.consent_status is not None:
        changed = _transition(consent, event.consent_status, event.reason)
    record = InboundEventRecord(
        provider=provider, event_id=event.event_id, type=event.type, received_at=utcnow(), payload=event.payload,
        tenant=consent.tenant if consent else None, consent_id=consent.id if consent else None,
    )
    fresh = await state.store.record_inbound_event(record, changed)
    return json_response({"received": True, "duplicate": not fresh})
