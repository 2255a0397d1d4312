"""Payments: create (→ authorisation_url), complete with the redirect result (authorise, then submit), submit,
funds confirmation, get (optionally refreshed upstream), list.

Creation needs an Idempotency-Key (see gateway.api.idempotency); the payment, its first transition and the kept
response are one store write. Submitting is guarded three ways: one operation per payment at a time in this
process, the store's version check across processes, and an upstream idempotency key derived from the payment, so
even a repeat that slipped through reaches the bank as the same request. A submission whose outcome is lost
(timeout, dropped connection, an unreadable answer) leaves the payment `unknown` (answered 202); the
reconciliation worker then asks the bank what happened.
"""
from __future__ import annotations

import structlog
from typing import Callable

from aiohttp import web

from adapters.base import Adapter, PaymentInput, PaymentUpdate
from gateway import ids
from gateway.api.common import caller_of, context, state_of
from gateway.api.consents import parse_redirect_result
from gateway.api.cursor import newest_first_cursor, newest_first_position
from gateway.api.idempotency import CLAIM
from gateway.api.render import json_response
from gateway.api.state import PROVIDER, GatewayState
from gateway.connectivity.fapi import AuthorisationRefused
from gateway.errors import (
    Conflict,
    GatewayError,
    NotFound,
    ProviderBadResponse,
    ProviderTimeout,
    ProviderUnavailable,
    ValidationFailed,
)
from gateway.models.payments import PaymentStatus
from gateway.models.serialize import dumps
from gateway.models.time import utcnow
from gateway.payments import service
from gateway.payments.keys import upstream_key
from gateway.routing import adapter_for_resource, pick_adapter
from gateway.store.records import PaymentRecord
from gateway.validation import query as q
from gateway.validation.access import Caller, require_capability, require_scope
from gateway.validation.body import parse_body
from gateway.validation.licence import require_licence
from gateway.validation.payments import CompletePaymentRequest, CreatePaymentRequest

SCOPE = "pis:write"
log = structlog.get_logger("gateway.payments")


def _order(body: CreatePaymentRequest, end_to_end_id: str) -> dict:
    """The canonical order as stored and shown back."""
    creditor = {"name": body.creditor.name, "account": _plain_account(body.creditor.account)}
    if body.creditor.address is not None:
        address = body.creditor.address
        creditor["address"] = {"lines": list(address.lines), "city": address.city,
                               "postal_code": address.postal_code, "country": address.country}
    order = {"creditor": creditor, "reference": body.reference, "end_to_end_id": end_to_end_id}
    if body.institution_id is not None:
        order["institution_id"] = body.institution_id
    if body.debtor_name is not None:
        order["debtor_name"] = body.debtor_name
    if body.debtor_account is not None:
        order["debtor_account"] = _plain_account(body.debtor_account)
    return order


def _plain_account(account) -> dict:  # type: ignore[no-untyped-def]
    plain = {"scheme": account.scheme}
    for name in ("sort_code", "account_number", "iban", "bic", "wallet_id", "secondary_identification"):
        if getattr(account, name) is not None:
            plain[name] = getattr(account, name)
    return plain


async def create_payment(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, SCOPE)
    body = await parse_body(request, CreatePaymentRequest, state.config.server.max_body_bytes)
    adapter = pick_adapter(state, caller, provider=body.provider, region=body.region)
    request[PROVIDER] = adapter.provider_id
    require_capability(adapter, "create_payment")
    await require_licence(state.config.licence, adapter, "PISP", body.institution_id, context(request, caller))
    if body.customer_id is not None:
        customer = await state.store.get_customer(caller.tenant, body.customer_id)
        if customer is None or customer.provider != adapter.provider_id:
            raise ValidationFailed("customer_id: no such customer with this provider", errors=[
                {"location": "body", "field": "customer_id",
                 "message": f"no customer of yours with {adapter.provider_id} has this id"}])
    claim = request[CLAIM]
    # Everything sent upstream is derived from the caller's key, so a retry is byte-for-byte the same request.
    key = upstream_key(state.id_key, caller.tenant, claim.key, "payment")
    end_to_end_id = body.end_to_end_id or f"E2E{key[:adapter.end_to_end_id_max - 3]}"
    data = PaymentInput(
        type=body.type, amount=body.amount.value, currency=body.amount.currency,
        creditor=_creditor(body), reference=body.reference, end_to_end_id=end_to_end_id,
        instruction_id=key[:35], redirect_uri=body.redirect_uri,
        debtor_account=body.debtor_account.to_account() if body.debtor_account else None, idempotency_key=key,
        institution_id=body.institution_id, debtor_name=body.debtor_name)
    service.check_provider_rules(adapter, data)
    now = utcnow()
    record = PaymentRecord(
        id=ids.new_id("pay"), tenant=caller.tenant, provider=adapter.provider_id, type=body.type,
        status=PaymentStatus.AWAITING_AUTHORISATION, amount=data.amount, currency=data.currency,
        request=_order(body, end_to_end_id), created_at=now, updated_at=now, redirect_uri=body.redirect_uri,
        customer_id=body.customer_id, live=bool(getattr(adapter.settings, "live", False)))
    link = await adapter.create_payment(context(request, caller), record, data)
    record.consent_ref = link.consent_ref
    record.authorisation_url = link.url
    record.upstream = dict(link.upstream)
    record.upstream_status = link.upstream.get("consent_status")
    service.schedule(record, state.config.payments, now)
    first = service.first_transition(now, record.upstream_status)
    payload = dumps(service.payment_view(record, [first]))
    await state.store.insert_payment(record, first, response=claim.response(201, payload))
    claim.finished = True
    state.metrics.count(state.metrics.payment_transitions, record.provider, first.status.value)
    return web.Response(body=payload, status=201, content_type="application/json")


def _creditor(body: CreatePaymentRequest):  # type: ignore[no-untyped-def]
    from gateway.models.payments import Creditor

    address = body.creditor.address.to_address() if body.creditor.address is not None else None
    return Creditor(name=body.creditor.name, account=body.creditor.account.to_account(), address=address)


async def load_payment(request: web.Request, caller: Caller) -> tuple[PaymentRecord, Adapter]:
    state = state_of(request)
    record = await state.store.get_payment(caller.tenant, request.match_info["payment_id"])
    if record is None or not caller.may_use(record.provider):
        raise NotFound("no such payment")
    request[PROVIDER] = record.provider
    return record, adapter_for_resource(state, caller, record.provider)


async def _view(state: GatewayState, record: PaymentRecord, status: int | None = None) -> web.Response:
    """The payment; 202 (not 200) while its submission's outcome is `unknown`, whoever asks."""
    if status is None:
        status = 202 if record.status is PaymentStatus.UNKNOWN else 200
    history = await state.store.payment_transitions(record.tenant, record.id)
    return json_response(service.payment_view(record, history), status=status)


async def get_payment(request: web.Request) -> web.Response:
    """`?refresh=true` asks the provider first (as the reconciliation worker would)."""
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, SCOPE)
    q.reject_unknown(request.query, frozenset({"refresh"}))
    refresh = q.boolean(request.query, "refresh", False)
    record, adapter = await load_payment(request, caller)
    if refresh and not record.status.is_final:
        require_capability(adapter, "get_payment")
        async with state.payment_locks.hold(record.id):
            record = await _reload(state, record)
            if not record.status.is_final:
                update = await adapter.get_payment(context(request, caller), record)
                now = utcnow()
                moves = service.apply_update(record, update, now, observed=True)
                service.schedule(record, state.config.payments, now)
                if not await service.save(state.store, state.metrics, record, moves):
                    record = await _reload(state, record)
    return await _view(state, record, 200)


async def _reload(state: GatewayState, record: PaymentRecord) -> PaymentRecord:
    fresh = await state.store.get_payment(record.tenant, record.id)
    if fresh is None:  # pragma: no cover - payments are never deleted
        raise NotFound("no such payment")
    return fresh


_LIST_PARAMS = frozenset({"limit", "cursor"})


async def list_payments(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, SCOPE)
    q.reject_unknown(request.query, _LIST_PARAMS)
    limit = q.limit(request.query, default=25, maximum=100)
    after = newest_first_position(state.cursors, request.query, caller.tenant, "payments")
    records = await state.store.list_payments(caller.tenant, limit=limit + 1, after=after)
    page, more = records[:limit], len(records) > limit
    visible = [r for r in page if caller.may_use(r.provider)]
    data = [service.payment_view(r, await state.store.payment_transitions(r.tenant, r.id)) for r in visible]
    next_cursor = newest_first_cursor(state.cursors, caller.tenant, "payments", page[-1]) if more and page else None
    return json_response({"data": data, "next_cursor": next_cursor})


async def complete_payment(request: web.Request) -> web.Response:
    """The payer came back from their bank: record the authorisation, then (unless `submit` is false) submit."""
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, SCOPE)
    body = await parse_body(request, CompletePaymentRequest, state.config.server.max_body_bytes)
    record, adapter = await load_payment(request, caller)
    require_capability(adapter, "authorise_payment")
    result = parse_redirect_result(body.redirect_result)
    async with state.payment_locks.hold(record.id):
        record = await _reload(state, record)
        if record.status is PaymentStatus.AWAITING_AUTHORISATION:
            update = await adapter.authorise_payment(context(request, caller), record, result)
            now = utcnow()
            moves = service.apply_update(record, update, now)
            service.schedule(record, state.config.payments, now)
            if not await service.save(state.store, state.metrics, record, moves):
                raise Conflict("the payment changed while completing; fetch it again")
        elif record.status.is_final and record.status is not PaymentStatus.COMPLETED and not (
                record.status is PaymentStatus.REJECTED and "error" in result):
            # (A payer's refusal the gateway already learned from the bank agrees with it: answered as it stands.)
            raise Conflict(f"the payment is {record.status.value}; it cannot be completed")
        if body.submit and record.status is PaymentStatus.AUTHORISED:
            return await _submit(request, state, caller, adapter, record)
    return await _view(state, record)


async def submit_payment(request: web.Request) -> web.Response:
    """Submit an authorised payment (after `complete` with `submit: false`, or after `unknown` was resolved as
    "never reached the bank"). Submitting what is already submitted answers its current state."""
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, SCOPE)
    record, adapter = await load_payment(request, caller)
    require_capability(adapter, "submit_payment")
    async with state.payment_locks.hold(record.id):
        record = await _reload(state, record)
        if record.status is PaymentStatus.AWAITING_AUTHORISATION:
            raise Conflict("the payment is not authorised yet: the payer must approve it first (complete)")
        if record.status is PaymentStatus.AUTHORISED:
            return await _submit(request, state, caller, adapter, record)
        if record.status in (PaymentStatus.REJECTED, PaymentStatus.CANCELLED, PaymentStatus.EXPIRED):
            raise Conflict(f"the payment is {record.status.value}; it cannot be submitted")
    return await _view(state, record)


# Failures after which the bank may or may not have acted: the payment becomes `unknown`. Any other failure (a
# refusal, a circuit that never let the call out, rate limiting) leaves it authorised: nothing happened.
_OUTCOME_LOST = (ProviderTimeout, ProviderUnavailable, ProviderBadResponse)


async def _submit(request: web.Request, state: GatewayState, caller: Caller, adapter: Adapter,
                  record: PaymentRecord) -> web.Response:
    require_capability(adapter, "submit_payment")
    now = utcnow()
    # Mark the attempt first: if this process dies during the call, the worker knows to ask the bank.
    record.upstream = {**record.upstream, "submission_started_at": now.isoformat()}
    record.updated_at = now
    if not await state.store.update_payment(record, []):
        raise Conflict("the payment changed while submitting; fetch it again")
    try:
        update = await adapter.submit_payment(context(request, caller), record)
    except AuthorisationRefused:
        # The bank did not accept the authorisation it was given (checked only now, at hubs): nothing was paid.
        # Forget it, so the payer's genuine redirect can still complete the payment.
        def refused(rec: PaymentRecord) -> list:
            rec.upstream = _unmarked(rec.upstream)
            moved = service.apply_update(rec, PaymentUpdate(
                status=PaymentStatus.AWAITING_AUTHORISATION, upstream={"authorization": None, "tokens": None},
                reason="the bank refused the authorisation given; complete the payment with the payer's redirect"),
                utcnow()) if rec.status is PaymentStatus.AUTHORISED else []
            service.schedule(rec, state.config.payments, utcnow())
            return moved

        await _save_or_settle(state, record, refused)
        raise
    except GatewayError as exc:
        if not isinstance(exc, _OUTCOME_LOST):
            # Refused, rate limited or never sent (every attempt answered, none lost): nothing happened at the
            # bank. The attempt's mark goes, so the worker never takes this payment for one whose answer was lost.
            def unmark(rec: PaymentRecord) -> list:
                rec.upstream = _unmarked(rec.upstream)
                rec.updated_at = utcnow()
                return []

            await _save_or_settle(state, record, unmark)
            raise
        update = PaymentUpdate(status=PaymentStatus.UNKNOWN,
                               reason=f"the submission's outcome was not learned ({exc.code}); the gateway is "
                                      f"asking {adapter.provider_id}")
    except Exception:
        # Anything else (a defect here, a local fault) after the call may have gone out: the outcome is unknown,
        # and the worker asks the bank.
        log.exception("submission_failed_unexpectedly", payment_id=record.id, provider=adapter.provider_id)
        update = PaymentUpdate(status=PaymentStatus.UNKNOWN,
                               reason="the submission failed inside the gateway; its outcome is being asked of "
                                      f"{adapter.provider_id}")
    now = utcnow()
    moves = service.apply_update(record, update, now)
    record.check_attempts = 0
    service.schedule(record, state.config.payments, now)
    if record.status is PaymentStatus.UNKNOWN:
        record.next_check_at = now  # ask at once
    if not await service.save(state.store, state.metrics, record, moves):
        # Another replica's worker learned the outcome first: the payment as it now stands is the answer.
        record = await _reload(state, record)
    return await _view(state, record)


def _unmarked(upstream: dict) -> dict:
    return {k: v for k, v in upstream.items() if k != "submission_started_at"}


async def _save_or_settle(state: GatewayState, record: PaymentRecord,
                          change: Callable[[PaymentRecord], list]) -> None:
    """Apply `change` (a refused submission's consequences) and write it; if another replica wrote the payment
    meanwhile, apply it once more to that version: the attempt mark must not outlive a submission that did
    nothing at the bank."""
    moves = change(record)
    if await service.save(state.store, state.metrics, record, moves):
        return
    fresh = await _reload(state, record)
    await service.save(state.store, state.metrics, fresh, change(fresh))


async def funds_confirmation(request: web.Request) -> web.Response:
    caller = caller_of(request)
    require_scope(caller, SCOPE)
    q.reject_unknown(request.query, frozenset())
    record, adapter = await load_payment(request, caller)
    require_capability(adapter, "confirm_funds")
    if record.status is not PaymentStatus.AUTHORISED:
        raise Conflict(f"funds can be confirmed between authorisation and submission; the payment is "
                       f"{record.status.value} (complete it with submit: false first)")
    available = await adapter.confirm_funds(context(request, caller), record)
    return json_response({"payment_id": record.id, "funds_available": available, "checked_at": utcnow()})
