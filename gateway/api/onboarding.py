"""The gateway's registration as an OAuth client of a provider (Dynamic Client Registration), admin only.

POST registers idempotently (an existing registration for the same software statement is kept, or updated when
the wanted metadata changed), GET reads it back from the provider, DELETE removes it there and here. Also the
gateway's public signing keys, for providers that verify what it signs.
"""
from __future__ import annotations

from aiohttp import web

from gateway.api.common import caller_of, context, state_of
from gateway.api.render import json_response
from gateway.api.state import PROVIDER
from gateway.certificates.keys import jwks
from gateway.routing import pick_adapter
from gateway.validation.access import require_capability, require_scope


_NEVER_SHOWN = frozenset({"client_secret", "registration_access_token"})


def _shown(registration: dict) -> dict:
    """The registration without any secret a provider may have returned in it (kept sealed in the vault)."""
    return {k: v for k, v in registration.items() if k not in _NEVER_SHOWN}


def _adapter(request: web.Request):  # type: ignore[no-untyped-def]
    state, caller = state_of(request), caller_of(request)
    require_scope(caller, "admin")
    adapter = pick_adapter(state, caller, provider=request.match_info["provider"], region=None)
    request[PROVIDER] = adapter.provider_id
    require_capability(adapter, "register_client")
    return adapter, context(request, caller)


async def register(request: web.Request) -> web.Response:
    adapter, ctx = _adapter(request)
    outcome, registration = await adapter.register_client(ctx)
    return json_response({"provider": adapter.provider_id, "outcome": outcome, "registration": _shown(registration)},
                         status=201 if outcome == "created" else 200)


async def get_registration(request: web.Request) -> web.Response:
    adapter, ctx = _adapter(request)
    registration = await adapter.get_registration(ctx)
    return json_response({"provider": adapter.provider_id, "outcome": "kept", "registration": _shown(registration)})


async def delete_registration(request: web.Request) -> web.Response:
    adapter, ctx = _adapter(request)
    await adapter.delete_registration(ctx)
    return web.Response(status=204)


async def public_keys(request: web.Request) -> web.Response:
    """The public halves of every key the gateway signs with (no authentication: they are public)."""
    keys, seen = [], set()
    for adapter in state_of(request).adapters.values():
        for key in adapter.signing_keys():
            if key.kid not in seen:
                seen.add(key.kid)
                keys.append(key)
    return json_response(jwks(keys), headers={"Cache-Control": "public, max-age=300"})
