"""Accounts and their data: list, get, balances (cached or live), transactions, payment details, owner, standing
orders."""
from __future__ import annotations

from datetime import timedelta
from typing import Awaitable, TypeVar

from aiohttp import web

from adapters.base import Adapter, TransactionQuery
from gateway.api.state import PROVIDER
from gateway.api.common import caller_of, context, state_of
from gateway.api.consents import apply_status, load_consent, settle_expiry
from gateway.api.render import json_response
from gateway.errors import ConsentEndedUpstream, ConsentNotActive, GatewayError, NotFound, ValidationFailed
from gateway.models import ConsentStatus
from gateway.models.serialize import to_plain, to_plain_list
from gateway.models.time import utcnow
from gateway.routing import adapter_for_resource
from gateway.store.records import AccountRecord, ConsentRecord
from gateway.validation import query as q
from gateway.validation.access import Caller, require_capability, require_scope

MAX_TRANSACTION_WINDOW = timedelta(days=731)
T = TypeVar("T")


def require_active(consent: ConsentRecord, permission: str | None = None) -> None:
    if consent.status is not ConsentStatus.AUTHORISED:
        raise ConsentNotActive(f"consent {consent.id} is {consent.status.value}; account data needs an authorised consent")
    if permission is not None and permission not in consent.permissions:
        raise ConsentNotActive(f"consent {consent.id} does not include the permission {permission!r}")


async def upstream(request: web.Request, consent: ConsentRecord, call: Awaitable[T]) -> T:
    """Await an adapter call; if the provider says the consent is gone, record that (deleting what was stored
    from it) before the error reaches the caller."""
    try:
        return await call
    except ConsentEndedUpstream as exc:
        state = state_of(request)
        fresh = await state.store.get_consent(consent.tenant, consent.id)
        if fresh is not None and not fresh.status.is_final:
            status = await _ended_how(request, fresh) or ConsentStatus(exc.consent_status)
            await apply_status(state, fresh, status, exc.detail)
        raise


async def _ended_how(request: web.Request, consent: ConsentRecord) -> ConsentStatus | None:
    """Whether the provider says the consent was revoked or expired, where it can say (best effort: the refusal
    already proves it ended, so a failure to ask leaves the refusal's own reading)."""
    state = state_of(request)
    adapter = state.adapters.get(consent.provider)
    if adapter is None or "refresh_consent" not in adapter.capabilities:
        return None
    try:
        update = await adapter.refresh_consent(context(request, caller_of(request)), consent, None)
    except GatewayError:
        return None
    return update.status if update.status.is_final else None


async def _account(request: web.Request, caller: Caller, operation: str,
                   permission: str) -> tuple[Adapter, AccountRecord, ConsentRecord]:
    state = state_of(request)
    found = await state.store.get_account(caller.tenant, request.match_info["account_id"])
    if found is None or not caller.may_use(found[0].provider):
        raise NotFound("no such account")
    account, consent = found
    request[PROVIDER] = account.provider
    adapter = adapter_for_resource(state, caller, account.provider)
    require_capability(adapter, operation)
    if consent.expires_at is not None and consent.expires_at <= utcnow():
        fresh = await state.store.get_consent(consent.tenant, consent.id)
        if fresh is not None:
            await settle_expiry(state, fresh)  # records it expired and deletes the account data
        raise ConsentNotActive(f"consent {consent.id} expired at {consent.expires_at.isoformat()}")
    require_active(consent, permission)
    return adapter, account, consent


_LIST_PARAMS = frozenset({"consent_id", "limit", "cursor"})


async def list_accounts(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "ais:read")
    q.reject_unknown(request.query, _LIST_PARAMS)
    consent_id = q.text(request.query, "consent_id", max_len=64)
    if consent_id is None:
        raise ValidationFailed("consent_id is required", errors=[{"location": "query", "field": "consent_id",
                                                                   "message": "required"}])
    limit = q.limit(request.query, default=100, maximum=500)
    consent = await load_consent(request, caller, consent_id)
    adapter = adapter_for_resource(state, caller, consent.provider)
    require_capability(adapter, "list_accounts")
    require_active(consent, "accounts")
    scope = f"accounts:{consent.id}"
    offset = 0
    if "cursor" in request.query:
        offset = int(state.cursors.decode(request.query["cursor"], caller.tenant, scope).get("offset", 0))
    customer = await state.store.get_customer(caller.tenant, consent.customer_id) if consent.customer_id else None
    accounts = await upstream(request, consent, adapter.list_accounts(context(request, caller), consent, customer))
    now = utcnow()
    plain = [to_plain(a) for a in accounts]
    known = {r.id: r.data for r in await state.store.list_accounts(caller.tenant, consent.id)}
    changed = [
        AccountRecord(id=a.id, tenant=caller.tenant, provider=consent.provider, consent_id=consent.id,
                      provider_ref=a.provider_ref, created_at=now, data=p)
        for a, p in zip(accounts, plain) if known.get(a.id) != p
    ]
    if changed:  # listing an unchanged consent writes nothing
        await state.store.upsert_accounts(changed)
    page = plain[offset:offset + limit]
    more = offset + limit < len(plain)
    next_cursor = state.cursors.encode(caller.tenant, scope, {"offset": offset + limit}) if more else None
    return json_response({"data": page, "next_cursor": next_cursor})


async def get_account(request: web.Request) -> web.Response:
    caller = caller_of(request)
    require_scope(caller, "ais:read")
    _, account, _ = await _account(request, caller, "list_accounts", "accounts")
    return json_response(account.data)


async def get_balances(request: web.Request) -> web.Response:
    caller = caller_of(request)
    require_scope(caller, "ais:read")
    q.reject_unknown(request.query, frozenset({"live"}))
    live = q.boolean(request.query, "live", False)
    adapter, account, consent = await _account(request, caller, "get_live_balances" if live else "get_balances",
                                               "balances")
    ctx = context(request, caller)
    fetch = adapter.get_live_balances if live else adapter.get_balances
    balances = await upstream(request, consent, fetch(ctx, consent, account))
    return json_response({"data": to_plain_list(balances), "next_cursor": None})


_TXN_PARAMS = frozenset({"from", "to", "limit", "cursor", "include_pending", "include_removed"})


async def list_transactions(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "ais:read")
    query = request.query
    q.reject_unknown(query, _TXN_PARAMS)
    to_date = q.iso_date(query, "to") or utcnow().date()
    from_date = q.iso_date(query, "from") or max(q.EARLIEST_DATE, to_date - timedelta(days=90))
    if from_date > to_date:
        raise ValidationFailed("from: must not be after to", errors=[{"location": "query", "field": "from",
                                                                       "message": "must not be after to"}])
    if to_date - from_date > MAX_TRANSACTION_WINDOW:
        raise ValidationFailed("from: the window is at most two years",
                               errors=[{"location": "query", "field": "from", "message": "the window is at most 731 days"}])
    limit = q.limit(query, default=100, maximum=500)
    include_pending = q.boolean(query, "include_pending", True)
    include_removed = q.boolean(query, "include_removed", False)
    adapter, account, consent = await _account(request, caller, "list_transactions", "transactions")
    scope = f"txn:{account.id}:{from_date}:{to_date}:{int(include_pending)}{int(include_removed)}"
    position = state.cursors.decode(query["cursor"], caller.tenant, scope) if "cursor" in query else None
    page = await upstream(request, consent, adapter.list_transactions(
        context(request, caller), consent, account,
        TransactionQuery(from_date=from_date, to_date=to_date, limit=limit, include_pending=include_pending,
                         include_removed=include_removed, position=position),
    ))
    next_cursor = state.cursors.encode(caller.tenant, scope, page.next_position) if page.next_position else None
    return json_response({"data": to_plain_list(page.data), "next_cursor": next_cursor})


async def get_details(request: web.Request) -> web.Response:
    caller = caller_of(request)
    require_scope(caller, "ais:read")
    adapter, account, consent = await _account(request, caller, "get_account_details", "details")
    details = await upstream(request, consent, adapter.get_account_details(context(request, caller), consent, account))
    return json_response(to_plain(details))


async def get_owner(request: web.Request) -> web.Response:
    caller = caller_of(request)
    require_scope(caller, "ais:read")
    adapter, account, consent = await _account(request, caller, "get_account_owner", "owner")
    owner = await upstream(request, consent, adapter.get_account_owner(context(request, caller), consent, account))
    return json_response(to_plain(owner))


async def list_standing_orders(request: web.Request) -> web.Response:
    """The account's standing orders, read-only (the consent needs the `standing_orders` permission)."""
    caller = caller_of(request)
    require_scope(caller, "ais:read")
    q.reject_unknown(request.query, frozenset())
    adapter, account, consent = await _account(request, caller, "list_standing_orders", "standing_orders")
    orders = await upstream(request, consent, adapter.list_standing_orders(context(request, caller), consent, account))
    return json_response({"data": to_plain_list(orders), "next_cursor": None})
