"""GET /v1/providers (capability matrix and upstream health) and GET /v1/institutions."""
from __future__ import annotations

from aiohttp import web

from adapters.base import OPERATIONS, InstitutionQuery
from gateway.api.state import PROVIDER
from gateway.api.common import caller_of, context, state_of
from gateway.api.render import json_response
from gateway.models.serialize import to_plain
from gateway.routing import pick_adapter
from gateway.validation import query as q
from gateway.validation.access import require_capability, require_scope


async def list_providers(request: web.Request) -> web.Response:
    state = state_of(request)
    caller = caller_of(request)
    data = []
    for pid, adapter in sorted(state.adapters.items()):
        if not caller.may_use(pid):
            continue
        data.append({
            "id": pid,
            "regions": sorted(adapter.regions),
            "capabilities": [op for op in OPERATIONS if op in adapter.capabilities],
            "health": adapter.health(),
        })
    return json_response({"data": data, "next_cursor": None})


_INSTITUTION_PARAMS = frozenset({"provider", "region", "search", "country", "limit", "cursor"})


async def list_institutions(request: web.Request) -> web.Response:
    state, caller = state_of(request), caller_of(request)
    query = request.query
    q.reject_unknown(query, _INSTITUTION_PARAMS)
    require_scope(caller, "ais:read")
    adapter = pick_adapter(state, caller, provider=q.text(query, "provider", max_len=40),
                           region=q.text(query, "region", max_len=8), location="query")
    require_capability(adapter, "list_institutions")
    request[PROVIDER] = adapter.provider_id
    search = q.text(query, "search")
    country = q.text(query, "country", max_len=2)
    limit = q.limit(query, default=25, maximum=100)
    scope = f"institutions:{adapter.provider_id}:{search}:{country}"
    position = None
    if "cursor" in query:
        position = state.cursors.decode(query["cursor"], caller.tenant, scope)
    page = await adapter.list_institutions(
        context(request, caller), InstitutionQuery(search=search, country=country, limit=limit, position=position)
    )
    next_cursor = state.cursors.encode(caller.tenant, scope, page.next_position) if page.next_position else None
    return json_response({"data": [to_plain(i) for i in page.data], "next_cursor": next_cursor})
