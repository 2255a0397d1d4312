"""Customers: create, get; their consumer (for reports) and the consent dashboard link."""
from __future__ import annotations

from aiohttp import web

from adapters.base import CreateConsumerInput, CreateCustomerInput
from gateway import ids
from gateway.api.state import PROVIDER
from gateway.api.common import caller_of, context, state_of
from gateway.api.render import json_response
from gateway.errors import Conflict, NotFound
from gateway.models.serialize import to_plain
from gateway.models import Customer, CustomerCategory
from gateway.routing import adapter_for_resource, pick_adapter
from gateway.store.records import CustomerRecord
from gateway.validation.access import Caller, require_capability, require_scope
from gateway.validation.body import parse_body
from gateway.validation.requests import CreateConsumerRequest, CreateCustomerRequest, DashboardRequest


def customer_view(record: CustomerRecord) -> dict:
    return to_plain(Customer(id=record.id, provider=record.provider, provider_ref=record.provider_ref,
                             type=record.type, external_ref=record.external_ref, created_at=record.created_at,
                             category=CustomerCategory(record.category), abn=record.abn,
                             consumer_ref=record.consumer_ref))


async def load_customer(request: web.Request, caller: Caller) -> CustomerRecord:
    state = state_of(request)
    record = await state.store.get_customer(caller.tenant, request.match_info["customer_id"])
    if record is None or not caller.may_use(record.provider):
        raise NotFound("no such customer")
    request[PROVIDER] = record.provider
    return record


async def create_customer(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "ais:write")
    body = await parse_body(request, CreateCustomerRequest, state.config.server.max_body_bytes)
    adapter = pick_adapter(state, caller, provider=body.provider, region=body.region)
    request[PROVIDER] = adapter.provider_id
    require_capability(adapter, "create_customer")
    data = CreateCustomerInput(external_ref=body.external_ref, type=body.type, first_name=body.first_name,
                               last_name=body.last_name, email=body.email, phone=body.phone,
                               category=body.category.value, abn=body.abn)
    adapter.validate_customer(data)
    existing = await state.store.find_customer(caller.tenant, adapter.provider_id, body.external_ref)
    if existing is not None:
        raise Conflict(f"a customer with external_ref {body.external_ref!r} already exists: {existing.id}")
    created = await adapter.create_customer(context(request, caller), data)
    record = CustomerRecord(id=ids.new_id("cus"), tenant=caller.tenant, provider=adapter.provider_id,
                            provider_ref=created.provider_ref, type=body.type, external_ref=body.external_ref,
                            created_at=created.created_at, category=body.category.value, abn=body.abn)
    await state.store.insert_customer(record)
    return json_response(customer_view(record), status=201)


async def get_customer(request: web.Request) -> web.Response:
    caller = caller_of(request)
    require_scope(caller, "ais:read")
    return json_response(customer_view(await load_customer(request, caller)))


async def create_consumer(request: web.Request) -> web.Response:
    """The person the customer's reports are about: one per customer, and the provider never deletes it."""
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "reports")
    body = await parse_body(request, CreateConsumerRequest, state.config.server.max_body_bytes)
    record = await load_customer(request, caller)
    adapter = adapter_for_resource(state, caller, record.provider)
    require_capability(adapter, "create_consumer")
    if record.consumer_ref is not None:
        raise Conflict(f"customer {record.id} already has a consumer ({record.consumer_ref}); a customer has one")
    consumer_ref = await adapter.create_consumer(context(request, caller), record, CreateConsumerInput(
        first_name=body.first_name, last_name=body.last_name, email=body.email, phone=body.phone,
        birth_date=body.birth_date, ssn=body.ssn, address=body.address.to_address() if body.address else None))
    if not await state.store.set_consumer_ref(caller.tenant, record.id, consumer_ref):
        raise Conflict(f"customer {record.id} got a consumer from a concurrent request")
    record.consumer_ref = consumer_ref
    return json_response(customer_view(record), status=201)


async def consent_dashboard(request: web.Request) -> web.Response:
    """A provider page where the end user reviews and revokes their consents (a CDR obligation in AU)."""
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "ais:write")
    body = await parse_body(request, DashboardRequest, state.config.server.max_body_bytes)
    record = await load_customer(request, caller)
    adapter = adapter_for_resource(state, caller, record.provider)
    require_capability(adapter, "consent_dashboard")
    link = await adapter.consent_dashboard(context(request, caller), record, body.redirect_uri)
    return json_response({"customer_id": record.id, "url": link.url, "expires_at": to_plain(link)["expires_at"]},
                         status=201)
