"""POST /v1/customers, GET /v1/customers/{id}."""
from __future__ import annotations

from aiohttp import web

from adapters.base import CreateCustomerInput
from gateway import ids
from gateway.api.state import PROVIDER
from gateway.api.common import caller_of, context, state_of
from gateway.api.render import json_response
from gateway.errors import Conflict, NotFound
from gateway.models.serialize import to_plain
from gateway.models import Customer
from gateway.routing import pick_adapter
from gateway.store.records import CustomerRecord
from gateway.validation.access import require_capability, require_scope
from gateway.validation.body import parse_body
from gateway.validation.requests import CreateCustomerRequest


def customer_view(record: CustomerRecord) -> dict:
    return to_plain(Customer(id=record.id, provider=record.provider, provider_ref=record.provider_ref,
                             type=record.type, external_ref=record.external_ref, created_at=record.created_at))


async def create_customer(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "ais:write")
    body = await parse_body(request, CreateCustomerRequest, state.config.server.max_body_bytes)
    adapter = pick_adapter(state, caller, provider=body.provider, region=body.region)
    request[PROVIDER] = adapter.provider_id
    require_capability(adapter, "create_customer")
    data = CreateCustomerInput(external_ref=body.external_ref, type=body.type, first_name=body.first_name,
                               last_name=body.last_name, email=body.email, phone=body.phone)
    adapter.validate_customer(data)
    existing = await state.store.find_customer(caller.tenant, adapter.provider_id, body.external_ref)
    if existing is not None:
        raise Conflict(f"a customer with external_ref {body.external_ref!r} already exists: {existing.id}")
    created = await adapter.create_customer(context(request, caller), data)
    record = CustomerRecord(id=ids.new_id("cus"), tenant=caller.tenant, provider=adapter.provider_id,
                            provider_ref=created.provider_ref, type=body.type, external_ref=body.external_ref,
                            created_at=created.created_at)
    await state.store.insert_customer(record)
    return json_response(customer_view(record), status=201)


async def get_customer(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "ais:read")
    record = await state.store.get_customer(caller.tenant, request.match_info["customer_id"])
    if record is None or not caller.may_use(record.provider):
        raise NotFound("no such customer")
    return json_response(customer_view(record))
