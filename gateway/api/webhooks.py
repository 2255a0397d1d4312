"""Inbound provider webhooks: verified on the raw bytes, de-duplicated by event id, recorded with their effect.

POST /webhooks/<provider>[/<channel>]. The adapter verifies the sender and reads the event; the gateway finds the
consent (and report) it names and, in one store transaction, keeps the event with the consent's new state, the
deletion of what the consent no longer covers, and the report's new state. A replayed event id changes
nothing and is acknowledged (providers retry until they get a 2xx). A forged one is refused and changes nothing.
"""
from __future__ import annotations

from aiohttp import web

from gateway.api.common import state_of
from gateway.api.render import json_response
from adapters.base import InboundEvent
from gateway.api.state import PROVIDER, GatewayState
from gateway.errors import NotFound
from gateway.events import canonical
from gateway.events.canonical import EventRecord
from gateway.ids import IdMinter
from gateway.models import ConsentStatus, ReportStatus
from gateway.models.time import utcnow
from gateway.store.records import ConsentRecord, InboundEventRecord, ReportRecord
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
    channel = request.match_info.get("channel", "")
    adapter = state.adapters.get(provider)
    if adapter is None or channel not in adapter.webhook_channels:
        raise NotFound(f"no webhook endpoint for {provider!r}" + (f" channel {channel!r}" if channel else ""))
    request[PROVIDER] = provider
    body = await read_raw(request, state.config.server.max_body_bytes)
    event = await adapter.receive_webhook(channel, request.headers, body)
    consent = await _consent_named(state, provider, event)
    changed = None
    # An event naming the customer changes only the consent awaiting the end user; about a live consent it is
    # announced (accounts added, a connection error) but never re-points it to another receipt.
    if consent is not None and (event.ref_kind != "customer"
                                or consent.status is ConsentStatus.AWAITING_AUTHORISATION):
        changed = _apply(consent, event)
    report = await _report_named(state, provider, event)
    tenant = consent.tenant if consent else report.tenant if report else None
    record = InboundEventRecord(
        provider=provider, event_id=event.event_id, type=event.type, received_at=utcnow(), payload=event.payload,
        tenant=tenant, consent_id=consent.id if consent else None,
    )
    forget = event.forget_account_refs if changed is not None else ()
    fresh = await state.store.record_inbound_event(record, changed, forget_account_refs=forget, report=report,
                                                   events=_announced(state, consent, event))
    if fresh and event.payment_ref:
        await _check_payments(state, provider, event.payment_ref)
    response = json_response({"received": True, "duplicate": not fresh}, status=adapter.webhook_ack_status)
    interaction = request.headers.get("x-fapi-interaction-id")
    if interaction and len(interaction) <= 100 and interaction.isprintable():
        response.headers["x-fapi-interaction-id"] = interaction  # FAPI: echoed to the sender
    return response


def _announced(state: GatewayState, consent: ConsentRecord | None, event: InboundEvent) -> list[EventRecord]:
    """Canonical events the webhook carries beyond a state change (those the store derives from the change)."""
    if consent is None:
        return []
    out = []
    if event.accounts_added:
        minter = IdMinter(state.id_key, consent.tenant, consent.id)
        out.append(canonical.accounts_added(consent, sorted(minter.account(ref)
                                                            for ref in event.added_account_refs)))
    if event.connection_error is not None:
        problem = event.connection_error
        out.append(canonical.connection_error(consent, problem.code, problem.message, problem.retryable))
    return out


async def _check_payments(state: GatewayState, provider: str, payment_ref: str) -> None:
    """The provider says a payment changed: read its status now (the reconciler records the transition and its
    event). A payment already final, or unknown here, needs nothing."""
    for payment in await state.store.find_payments_by_ref(provider, payment_ref):
        if not payment.status.is_final and state.reconciler is not None:
            state.reconciler.check_soon(payment)


async def _consent_named(state: GatewayState, provider: str, event: InboundEvent) -> ConsentRecord | None:
    if not event.provider_ref:
        return None
    if event.ref_kind == "customer":
        # The event names the upstream customer: it is about that customer's newest consent still awaiting the
        # end user (or, for events about an authorised consent, the newest one).
        latest = None
        for customer in await state.store.find_customers_by_ref(provider, event.provider_ref):
            found = await state.store.list_consents(customer.tenant, customer_id=customer.id, limit=20, after=None)
            waiting = [c for c in found if c.status is ConsentStatus.AWAITING_AUTHORISATION]
            if waiting:
                return waiting[0]
            live = [c for c in found if c.status in (ConsentStatus.AUTHORISED, ConsentStatus.REAUTHENTICATION_REQUIRED)]
            latest = latest or (live[0] if live else None)
        # None waits for the end user: the event is about the newest live consent (its redirect result may have
        # been completed before the provider's webhook arrived, or the end user connected more accounts later).
        return latest
    consents = await state.store.find_consents_by_ref(provider, event.provider_ref)
    return consents[0] if consents else None


def _apply(consent: ConsentRecord, event: InboundEvent) -> ConsentRecord | None:
    """The consent as the event leaves it, or None when the event changes nothing about it."""
    update = event.consent_update
    if update is None:
        if event.consent_status is None:
            return consent if event.forget_account_refs else None
        return _transition(consent, event.consent_status, event.reason) or (
            consent if event.forget_account_refs else None)
    if update.status is not consent.status:
        if _transition(consent, update.status, update.reason) is None:
            return None
    else:
        consent.updated_at = utcnow()
    consent.provider_ref = update.provider_ref or consent.provider_ref
    consent.expires_at = update.expires_at or consent.expires_at
    consent.upstream = {**consent.upstream, **update.upstream}
    return consent


async def _report_named(state: GatewayState, provider: str, event: InboundEvent) -> ReportRecord | None:
    if event.report_ref is None or event.report_status is None:
        return None
    for report in await state.store.find_reports_by_ref(provider, event.report_ref):
        if report.status.is_final or report.status is event.report_status:
            return None  # a late "inProgress" never undoes "done"
        report.status, report.updated_at = event.report_status, utcnow()
        report.status_reason = "the provider could not generate the report" \
            if event.report_status is ReportStatus.FAILED else None
        return report
    return None
