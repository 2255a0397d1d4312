"""Consents: create (→ authorisation_url), complete with the redirect result, get, list, revoke."""
from __future__ import annotations

import contextlib
from datetime import date, datetime
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from adapters.base import CreateConsentInput
from gateway import ids
from gateway.api.state import PROVIDER, GatewayState
from gateway.api.common import caller_of, context, state_of
from gateway.api.cursor import newest_first_cursor, newest_first_position
from gateway.api.render import json_response
from gateway.errors import Conflict, ConsentEndedUpstream, NotFound, ValidationFailed
from gateway.models import Consent, ConsentInstitution, ConsentStatus, ConsentTerms
from gateway.models.serialize import to_plain
from gateway.models.time import utcnow
from gateway.routing import adapter_for_resource, pick_adapter
from gateway.store.records import ConsentRecord
from gateway.validation import query as q
from gateway.validation.access import Caller, require_capability, require_scope
from gateway.validation.body import parse_body
from gateway.validation.licence import require_licence
from gateway.validation.requests import CompleteConsentRequest, CreateConsentRequest


def _terms(stored: dict | None) -> ConsentTerms | None:
    if not stored:
        return None
    access_from, access_until = stored.get("access_from"), stored.get("access_until")
    return ConsentTerms(
        purpose=stored.get("purpose"), data_scopes=tuple(stored.get("data_scopes") or ()),
        access_from=datetime.fromisoformat(access_from) if access_from else None,
        access_until=datetime.fromisoformat(access_until) if access_until else None,
        transactions_from=date.fromisoformat(stored["transactions_from"]) if stored.get("transactions_from") else None,
        institutions=tuple(ConsentInstitution(institution_id=i["institution_id"], login_ref=i["login_ref"],
                                              status=i["status"], name=i.get("name"))
                           for i in stored.get("institutions") or ()),
    )


def consent_view(r: ConsentRecord) -> dict:
    return to_plain(Consent(
        id=r.id, provider=r.provider, customer_id=r.customer_id, status=r.status, created_at=r.created_at,
        provider_ref=r.provider_ref, authorisation_url=r.authorisation_url, redirect_uri=r.redirect_uri,
        institution_id=r.institution_id, permissions=r.permissions, authorised_at=r.authorised_at,
        revoked_at=r.revoked_at, expires_at=r.expires_at, status_reason=r.status_reason,
        terms=_terms(r.upstream.get("terms")),
    ))


async def load_consent(request: web.Request, caller: Caller, consent_id: str) -> ConsentRecord:
    state = state_of(request)
    record = await state.store.get_consent(caller.tenant, consent_id)
    if record is None or not caller.may_use(record.provider):
        raise NotFound("no such consent")
    request[PROVIDER] = record.provider
    await settle_expiry(state, record)
    return record


async def settle_expiry(state: GatewayState, record: ConsentRecord) -> None:
    """A consent past its expiry is recorded as expired the first time anyone looks, and what was stored from it
    is deleted (the provider stops serving it at that moment too)."""
    if (record.expires_at is not None and record.expires_at <= utcnow()
            and record.status in (ConsentStatus.AUTHORISED, ConsentStatus.REAUTHENTICATION_REQUIRED)):
        await apply_status(state, record, ConsentStatus.EXPIRED, f"expired at {record.expires_at.isoformat()}")


async def create_consent(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "ais:write")
    body = await parse_body(request, CreateConsentRequest, state.config.server.max_body_bytes)
    customer = None
    if body.customer_id is not None:
        customer = await state.store.get_customer(caller.tenant, body.customer_id)
        if customer is None or not caller.may_use(customer.provider):
            raise ValidationFailed("customer_id: no such customer",
                                   errors=[{"location": "body", "field": "customer_id", "message": "no such customer"}])
        if body.provider is not None and body.provider != customer.provider:
            raise ValidationFailed("provider: differs from the customer's provider",
                                   errors=[{"location": "body", "field": "provider",
                                            "message": f"the customer belongs to {customer.provider}"}])
        adapter = adapter_for_resource(state, caller, customer.provider)
    else:
        adapter = pick_adapter(state, caller, provider=body.provider, region=None)
    request[PROVIDER] = adapter.provider_id
    require_capability(adapter, "create_consent")
    previous_ref = None
    if body.previous_consent_id is not None:
        previous = await state.store.get_consent(caller.tenant, body.previous_consent_id)
        if previous is None or previous.provider != adapter.provider_id:
            raise ValidationFailed("previous_consent_id: no such consent with this provider", errors=[
                {"location": "body", "field": "previous_consent_id",
                 "message": f"no consent of yours with {adapter.provider_id} has this id"}])
        previous_ref = previous.provider_ref
    limits = {"expires_at": body.expires_at, "transactions_from": body.transactions_from,
              "transactions_to": body.transactions_to}
    if not adapter.consent_limits and any(v is not None for v in limits.values()):
        raise ValidationFailed("the provider does not record a consent's expiry or transaction window", errors=[
            {"location": "body", "field": name, "message": f"{adapter.provider_id} does not take it"}
            for name, value in limits.items() if value is not None])
    data = CreateConsentInput(redirect_uri=body.redirect_uri, institution_id=body.institution_id,
                              permissions=body.permissions, language=body.language,
                              previous_provider_ref=previous_ref, **limits)
    if "standing_orders" in body.permissions and "list_standing_orders" not in adapter.capabilities:
        raise ValidationFailed("permissions: the provider offers no standing orders", errors=[
            {"location": "body", "field": "permissions", "message": f"{adapter.provider_id} offers no standing orders"}])
    await require_licence(state.config.licence, adapter, "AISP", body.institution_id, context(request, caller))
    adapter.validate_consent(data, customer)
    now = utcnow()
    record = ConsentRecord(
        id=ids.new_id("con"), tenant=caller.tenant, provider=adapter.provider_id,
        customer_id=customer.id if customer else None, status=ConsentStatus.AWAITING_AUTHORISATION,
        created_at=now, updated_at=now, redirect_uri=body.redirect_uri, institution_id=body.institution_id,
        permissions=body.permissions,
    )
    # The upstream call comes first: if it fails, nothing is stored.
    link = await adapter.create_consent(context(request, caller), record, customer, data)
    record.authorisation_url = link.url
    record.provider_ref = link.provider_ref
    record.expires_at = link.expires_at
    await state.store.insert_consent(record)
    return json_response(consent_view(record), status=201)


async def get_consent(request: web.Request) -> web.Response:
    """`?refresh=true` asks the provider for the consent's current state before answering."""
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "ais:read")
    q.reject_unknown(request.query, frozenset({"refresh"}))
    refresh = q.boolean(request.query, "refresh", False)
    record = await load_consent(request, caller, request.match_info["consent_id"])
    if refresh and record.status in (ConsentStatus.AUTHORISED, ConsentStatus.REAUTHENTICATION_REQUIRED):
        adapter = adapter_for_resource(state, caller, record.provider)
        require_capability(adapter, "refresh_consent")
        customer = await state.store.get_customer(caller.tenant, record.customer_id) if record.customer_id else None
        update = await adapter.refresh_consent(context(request, caller), record, customer)
        if update.status is not record.status:
            await apply_status(state, record, update.status, update.reason)
    return json_response(consent_view(record))


async def apply_status(state: GatewayState, record: ConsentRecord, status: ConsentStatus, reason: str | None) -> None:
    """Record a consent state learned upstream; a consent that ended loses everything stored from it."""
    record.set_status(status, reason, utcnow())
    await state.store.forget_accounts(record, ())  # one transaction: the status, the deletion, the event


_LIST_PARAMS = frozenset({"customer_id", "limit", "cursor"})


async def list_consents(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "ais:read")
    q.reject_unknown(request.query, _LIST_PARAMS)
    customer_id = q.text(request.query, "customer_id", max_len=64)
    limit = q.limit(request.query, default=25, maximum=100)
    scope = f"consents:{customer_id}"
    after = newest_first_position(state.cursors, request.query, caller.tenant, scope)
    records = await state.store.list_consents(caller.tenant, customer_id=customer_id, limit=limit + 1, after=after)
    page, more = records[:limit], len(records) > limit
    # The cursor follows what was read, the answer shows what the caller may see: a key limited to some providers
    # pages on through the others' consents instead of stopping at them.
    next_cursor = newest_first_cursor(state.cursors, caller.tenant, scope, page[-1]) if more and page else None
    page = [r for r in page if caller.may_use(r.provider)]
    for record in page:
        await settle_expiry(state, record)
    return json_response({"data": [consent_view(r) for r in page], "next_cursor": next_cursor})


async def complete_consent(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "ais:write")
    body = await parse_body(request, CompleteConsentRequest, state.config.server.max_body_bytes)
    record = await load_consent(request, caller, request.match_info["consent_id"])
    adapter = adapter_for_resource(state, caller, record.provider)
    require_capability(adapter, "complete_consent")
    if record.status is ConsentStatus.AUTHORISED:
        return json_response(consent_view(record))  # completing twice is harmless
    if record.status not in (ConsentStatus.AWAITING_AUTHORISATION, ConsentStatus.REAUTHENTICATION_REQUIRED):
        raise Conflict(f"the consent is {record.status.value}; it cannot be completed")
    customer = await state.store.get_customer(caller.tenant, record.customer_id) if record.customer_id else None
    result = parse_redirect_result(body.redirect_result)
    update = await adapter.complete_consent(context(request, caller), record, customer, result)
    before = record.updated_at
    record.set_status(update.status, update.reason, utcnow())
    record.provider_ref = update.provider_ref or record.provider_ref
    record.expires_at = update.expires_at or record.expires_at
    record.upstream = {**record.upstream, **update.upstream}
    if not await state.store.update_consent(record, expected_updated_at=before):
        # The provider's webhook may have completed it meanwhile: that is the same outcome, not a conflict.
        current = await state.store.get_consent(caller.tenant, record.id)
        if current is not None and current.status is record.status is ConsentStatus.AUTHORISED:
            return json_response(consent_view(current))
        raise Conflict("the consent changed while completing; fetch it again")
    return json_response(consent_view(record))


def parse_redirect_result(text: str) -> dict[str, str]:
    """The parameters of a redirect URL, from its query and its fragment (or of a bare query string)."""
    try:
        if "://" in text:
            parts = urlsplit(text)
            query = "&".join(p for p in (parts.query, parts.fragment) if p)  # hybrid flows answer in the fragment
        else:
            query = text.lstrip("?#")
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=50)
    except ValueError as exc:
        raise ValidationFailed("redirect_result: not a redirect URL or query string", errors=[
            {"location": "body", "field": "redirect_result", "message": f"cannot be read ({exc})"}]) from None
    return dict(pairs)


async def revoke_consent(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "ais:write")
    record = await load_consent(request, caller, request.match_info["consent_id"])
    adapter = adapter_for_resource(state, caller, record.provider)
    require_capability(adapter, "revoke_consent")
    if record.status.is_final:
        return json_response(consent_view(record))  # already ended (revoked, expired, rejected): it stays as it ended
    customer = await state.store.get_customer(caller.tenant, record.customer_id) if record.customer_id else None
    if record.status in (ConsentStatus.AUTHORISED, ConsentStatus.REAUTHENTICATION_REQUIRED):
        # A provider that no longer knows the consent has ended it already: it is ended here all the same.
        with contextlib.suppress(ConsentEndedUpstream):
            await adapter.revoke_consent(context(request, caller), record, customer)
    await apply_status(state, record, ConsentStatus.REVOKED, "revoked by the caller")
    return json_response(consent_view(record))


async def revoke_institution_login(request: web.Request) -> web.Response:
    """End one institution's arrangement under a consent (CDR): what was stored from its accounts is deleted, and
    the consent ends with its last institution."""
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "ais:write")
    record = await load_consent(request, caller, request.match_info["consent_id"])
    adapter = adapter_for_resource(state, caller, record.provider)
    require_capability(adapter, "revoke_institution_login")
    if record.status is not ConsentStatus.AUTHORISED:
        raise Conflict(f"the consent is {record.status.value}; only an authorised consent has institutions to revoke")
    update = await adapter.revoke_institution_login(context(request, caller), record,
                                                    request.match_info["login_ref"])
    before = set(record.upstream.get("account_refs") or ())
    record.upstream = {**record.upstream, **update.upstream}
    if update.status is not ConsentStatus.AUTHORISED:
        record.set_status(update.status, "its last institution was revoked by the caller", utcnow())
    else:
        record.updated_at = utcnow()
    gone = tuple(sorted(before - set(record.upstream.get("account_refs") or ())))
    await state.store.forget_accounts(record, gone)
    return json_response(consent_view(record))


async def get_raw_consent(request: web.Request) -> web.Response:
    """The consent exactly as the provider holds it, for audit (answered as the provider sent it, under `raw`)."""
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "ais:read")
    q.reject_unknown(request.query, frozenset())
    record = await load_consent(request, caller, request.match_info["consent_id"])
    adapter = adapter_for_resource(state, caller, record.provider)
    require_capability(adapter, "get_raw_consent")
    if record.provider_ref is None:
        raise Conflict("the consent was never created at the provider")
    raw = await adapter.get_raw_consent(context(request, caller), record)
    return json_response({"consent_id": record.id, "provider": record.provider, "provider_ref": record.provider_ref,
                          "retrieved_at": utcnow(), "raw": raw})
