"""Webhook subscriptions and the event log (scope `webhooks`).

- `/v1/webhook-subscriptions`: a product team registers an endpoint and the event types it wants. The signing
  secret is answered once, when the subscription is made or its secret rotated; the gateway keeps it sealed.
- `/v1/events`: every canonical event of the tenant, oldest first, by cursor or after a known event id, so a team
  that prefers polling (or missed deliveries) catches up; `?status=failed` is the dead-letter list, and
  `POST /v1/events/{id}/redeliver` queues an event again.
A tenant sees and receives only its own subscriptions and events.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from gateway.api.common import caller_of, state_of
from gateway.api.cursor import newest_first_cursor, newest_first_position
from gateway.api.render import json_response
from gateway.api.state import GatewayState
from gateway.errors import Conflict, GatewayFault, NotFound, ValidationFailed
from gateway.events import signing
from gateway.events.canonical import EVENT_TYPES, DeliveryRecord, EventRecord, SubscriptionRecord, iso
from gateway.events.targets import TargetRefused, check_target
from gateway.ids import new_id
from gateway.models.time import utcnow
from gateway.validation import query as q
from gateway.validation.access import Caller, require_scope
from gateway.validation.body import field_error, parse_body, read_json
from gateway.validation.events import (
    CreateSubscriptionRequest, RedeliverRequest, RotateSecretRequest, update_request,
)
from gateway.vault import Vault


def _vault(state: GatewayState) -> Vault:
    if state.vault is None:
        raise GatewayFault("webhook subscriptions need security.encryption_key: their signing secrets are kept "
                           "sealed")
    return state.vault


def subscription_view(record: SubscriptionRecord, entries: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": record.id, "url": record.url, "event_types": list(record.event_types), "ordered": record.ordered,
        "status": record.status, "disabled_reason": record.disabled_reason, "description": record.description,
        "created_at": iso(record.created_at), "updated_at": iso(record.updated_at),
    }
    if entries is not None:
        now = utcnow()
        previous = [e["expires_at"] for e in entries if e.get("expires_at") is not None
                    and signing.active([e], now)]
        view["previous_secret_expires_at"] = previous[0].replace("+00:00", "Z") if previous else None
    return view


async def _checked_url(state: GatewayState, url: str) -> None:
    try:
        await check_target(url, allow_http=state.config.events.allow_http,
                           allow_private=state.config.events.allow_private_targets)
    except TargetRefused as exc:
        raise ValidationFailed.of([field_error("url", str(exc))]) from None


async def _load(state: GatewayState, caller: Caller, subscription_id: str) -> SubscriptionRecord:
    record = await state.store.get_subscription(caller.tenant, subscription_id)
    if record is None:
        raise NotFound("no such webhook subscription")
    return record


def _entries(state: GatewayState, record: SubscriptionRecord) -> list[dict[str, Any]]:
    return signing.open_secrets(_vault(state), record.tenant, record.id, record.secrets)


# --- subscriptions ------------------------------------------------------------------------------------------------
async def create_subscription(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "webhooks")
    body = await parse_body(request, CreateSubscriptionRequest, state.config.server.max_body_bytes)
    await _checked_url(state, body.url)
    vault, now, sub_id, secret = _vault(state), utcnow(), new_id("sub"), signing.new_secret()
    entries = [{"secret": secret, "expires_at": None}]
    record = SubscriptionRecord(
        tenant=caller.tenant, id=sub_id, url=body.url, event_types=body.event_types, ordered=body.ordered,
        status="enabled", created_at=now, updated_at=now, description=body.description,
        secrets=signing.seal_secrets(vault, caller.tenant, sub_id, entries))
    await state.store.insert_subscription(record)
    view = subscription_view(record, entries)
    view["secret"] = secret  # shown this once
    return json_response(view, status=201)


async def list_subscriptions(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "webhooks")
    q.reject_unknown(request.query, frozenset({"limit", "cursor"}))
    limit = q.limit(request.query, default=25, maximum=100)
    after = newest_first_position(state.cursors, request.query, caller.tenant, "webhook-subscriptions")
    records = await state.store.list_subscriptions(caller.tenant, limit=limit + 1, after=after)
    page, more = records[:limit], len(records) > limit
    cursor = newest_first_cursor(state.cursors, caller.tenant, "webhook-subscriptions", page[-1]) \
        if more and page else None
    return json_response({"data": [subscription_view(r) for r in page], "next_cursor": cursor})


async def get_subscription(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "webhooks")
    record = await _load(state, caller, request.match_info["subscription_id"])
    return json_response(subscription_view(record, _entries(state, record)))


async def update_subscription(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "webhooks")
    body, named = update_request(await read_json(request, state.config.server.max_body_bytes))
    record = await _load(state, caller, request.match_info["subscription_id"])
    before = record.updated_at
    if body.url is not None:
        await _checked_url(state, body.url)
        record.url = body.url
    if body.event_types is not None:
        record.event_types = body.event_types
    if "description" in named:
        record.description = body.description
    if body.ordered is not None:
        record.ordered = body.ordered
    if body.enabled is not None:
        record.status = "enabled" if body.enabled else "disabled"
        record.disabled_reason = None if body.enabled else "disabled by the caller"
    record.updated_at = utcnow()
    if not await state.store.update_subscription(record, expected_updated_at=before):
        raise Conflict("the subscription changed meanwhile (or was disabled by a 410 answer); fetch it again")
    return json_response(subscription_view(record, _entries(state, record)))


async def delete_subscription(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "webhooks")
    if not await state.store.delete_subscription(caller.tenant, request.match_info["subscription_id"]):
        raise NotFound("no such webhook subscription")
    return web.Response(status=204)


async def rotate_secret(request: web.Request) -> web.Response:
    """A new signing secret, answered once; the current one keeps signing beside it for the overlap."""
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "webhooks")
    body = await parse_body(request, RotateSecretRequest, state.config.server.max_body_bytes) \
        if request.can_read_body else RotateSecretRequest()
    record = await _load(state, caller, request.match_info["subscription_id"])
    before, now = record.updated_at, utcnow()
    overlap = body.overlap_seconds if body.overlap_seconds is not None else state.config.events.secret_overlap_seconds
    secret = signing.new_secret()
    entries = signing.rotate(_entries(state, record), secret, now + timedelta(seconds=overlap))
    if overlap == 0:
        entries = entries[:1]
    record.secrets = signing.seal_secrets(_vault(state), record.tenant, record.id, entries)
    record.updated_at = now
    if not await state.store.update_subscription(record, expected_updated_at=before):
        raise Conflict("the subscription changed meanwhile; rotate again")
    view = subscription_view(record, entries)
    view["secret"] = secret
    return json_response(view)


# --- events -------------------------------------------------------------------------------------------------------
_EVENT_PARAMS = frozenset({"limit", "cursor", "after", "type", "status"})
_STATUSES = ("failed", "pending", "delivered")


def delivery_view(d: DeliveryRecord) -> dict[str, Any]:
    return {"subscription_id": d.subscription_id, "status": d.status, "attempts": d.attempts,
            "last_attempt_at": iso(d.last_attempt_at), "last_status": d.last_status, "last_error": d.last_error,
            "next_attempt_at": iso(d.next_attempt_at), "delivered_at": iso(d.delivered_at)}


def event_view(event: EventRecord, deliveries: list[DeliveryRecord]) -> dict[str, Any]:
    return {**event.body(), "deliveries": [delivery_view(d) for d in deliveries]}


async def list_events(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "webhooks")
    query = request.query
    q.reject_unknown(query, _EVENT_PARAMS)
    limit = q.limit(query, default=50, maximum=200)
    types = tuple(sorted(set(query.getall("type", []))))
    unknown = [t for t in types if t not in EVENT_TYPES]
    status = query.get("status")
    errors = [field_error("type", f"unknown event type {t!r}", "query") for t in unknown]
    if status is not None and status not in _STATUSES:
        errors.append(field_error("status", f"must be one of {', '.join(_STATUSES)}", "query"))
    if "cursor" in query and "after" in query:
        errors.append(field_error("after", "give either cursor or after, not both", "query"))
    if errors:
        raise ValidationFailed.of(errors)
    scope = f"events:{','.join(types)}:{status or ''}"
    after_seq = 0
    if "cursor" in query:
        after_seq = int(state.cursors.decode(query["cursor"], caller.tenant, scope)["seq"])
    elif "after" in query:
        known = await state.store.get_event(caller.tenant, query["after"])
        if known is None:
            raise ValidationFailed.of([field_error("after", "no such event (it may be past its retention)",
                                                   "query")])
        after_seq = known.seq
    events = await state.store.list_events(caller.tenant, after_seq=after_seq, limit=limit + 1, types=types,
                                           delivery_status=status)
    page, more = events[:limit], len(events) > limit
    deliveries = await state.store.event_deliveries(caller.tenant, [e.seq for e in page])
    # The cursor always continues after the last event shown: a caller polling for new events keeps it (or the
    # last event's id for `after`, which does not expire) and asks again later.
    last = page[-1].seq if page else after_seq
    cursor = state.cursors.encode(caller.tenant, scope, {"seq": last})
    return json_response({"data": [event_view(e, deliveries[e.seq]) for e in page], "next_cursor": cursor,
                          "has_more": more})


async def get_event(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "webhooks")
    event = await state.store.get_event(caller.tenant, request.match_info["event_id"])
    if event is None:
        raise NotFound("no such event")
    deliveries = await state.store.event_deliveries(caller.tenant, [event.seq])
    return json_response(event_view(event, deliveries[event.seq]))


async def redeliver_event(request: web.Request) -> web.Response:
    """Queue the event again: to one subscription, or to every subscription whose delivery of it failed."""
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "webhooks")
    body = await parse_body(request, RedeliverRequest, state.config.server.max_body_bytes) \
        if request.can_read_body else RedeliverRequest()
    event = await state.store.get_event(caller.tenant, request.match_info["event_id"])
    if event is None:
        raise NotFound("no such event")
    deliveries = (await state.store.event_deliveries(caller.tenant, [event.seq]))[event.seq]
    if body.subscription_id is not None:
        sub = await state.store.get_subscription(caller.tenant, body.subscription_id)
        if sub is None:
            raise ValidationFailed.of([field_error("subscription_id", "no such webhook subscription")])
        if sub.status != "enabled":
            raise Conflict(f"the subscription is disabled ({sub.disabled_reason}); enable it first with PATCH")
        targets = [sub.id]
    else:
        targets = [d.subscription_id for d in deliveries if d.status == "failed"]
        if not targets:
            raise Conflict("no delivery of this event failed; name a subscription_id to send it again anyway")
        for sid in targets:
            sub = await state.store.get_subscription(caller.tenant, sid)
            if sub is not None and sub.status != "enabled":
                raise Conflict(f"subscription {sid} is disabled ({sub.disabled_reason}); enable it first")
    now = utcnow()
    queued = await state.store.redeliver(caller.tenant, event, targets, now,
                                         now + timedelta(seconds=state.config.events.retry_horizon_seconds))
    deliveries = (await state.store.event_deliveries(caller.tenant, [event.seq]))[event.seq]
    return json_response({**event_view(event, deliveries), "queued": queued}, status=202)
