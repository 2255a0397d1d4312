"""Applications registered with a provider (CDR onboarding, admin only): register, check status, institutions.

The fields a registration needs depend on the partner's CDR access model (`gateway.onboarding.applications`); they
are checked here, every problem named, before the provider is called.
"""
from __future__ import annotations

import attrs
from aiohttp import web

from adapters.base import RegisterApplicationInput
from gateway.api.common import caller_of, context, state_of
from gateway.api.render import json_response
from gateway.api.state import PROVIDER
from gateway.errors import NotFound
from gateway.models import Application
from gateway.models.serialize import to_plain
from gateway.models.time import utcnow
from gateway.onboarding.applications import check_registration
from gateway.routing import adapter_for_resource, pick_adapter
from gateway.store.records import ApplicationRecord
from gateway.validation.access import Caller, require_capability, require_scope
from gateway.validation.body import parse_body
from gateway.validation.requests import RegisterApplicationRequest


def application_view(r: ApplicationRecord) -> dict:
    return to_plain(Application(id=r.id, provider=r.provider, provider_ref=r.provider_ref,
                                access_model=r.access_model, name=r.name, status=r.status, created_at=r.created_at,
                                updated_at=r.updated_at))


async def register_application(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "admin")
    body = await parse_body(request, RegisterApplicationRequest, state.config.server.max_body_bytes)
    adapter = pick_adapter(state, caller, provider=body.provider, region=None)
    request[PROVIDER] = adapter.provider_id
    require_capability(adapter, "register_application")
    fields = {k: v for k, v in attrs.asdict(body).items() if k not in ("provider", "access_model")}
    checked = check_registration(body.access_model, fields, configured_model=adapter.settings.access_model)
    record = await adapter.register_application(context(request, caller),
                                                RegisterApplicationInput(access_model=body.access_model,
                                                                         fields=checked))
    await state.store.insert_application(record)
    return json_response(application_view(record), status=201)


async def _load(request: web.Request, caller: Caller) -> ApplicationRecord:
    record = await state_of(request).store.get_application(caller.tenant, request.match_info["application_id"])
    if record is None or not caller.may_use(record.provider):
        raise NotFound("no such application")
    request[PROVIDER] = record.provider
    return record


async def get_application(request: web.Request) -> web.Response:
    """Asks the provider for the registration's status (Pending until Mastercard and the ACCC approve it)."""
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "admin")
    record = await _load(request, caller)
    adapter = adapter_for_resource(state, caller, record.provider)
    require_capability(adapter, "get_application")
    status = await adapter.get_application(context(request, caller), record)
    if status != record.status:
        record.status, record.updated_at = status, utcnow()
        await state.store.update_application(record)
    return json_response(application_view(record))


async def list_application_institutions(request: web.Request) -> web.Response:
    """Where the application is registered with each institution (data holders must know it before sharing)."""
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "admin")
    record = await _load(request, caller)
    adapter = adapter_for_resource(state, caller, record.provider)
    require_capability(adapter, "list_application_institutions")
    rows = await adapter.list_application_institutions(context(request, caller), record)
    return json_response({"data": rows, "next_cursor": None})
