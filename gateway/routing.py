"""Routing: choose the adapter by explicit provider, by the resource's own provider, or by region default."""
from __future__ import annotations

from adapters.base import Adapter
from gateway.api.state import GatewayState
from gateway.errors import ValidationFailed
from gateway.validation.access import Caller, require_provider


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", errors=[{"location": "body", "field": field, "message": message}])


def pick_adapter(state: GatewayState, caller: Caller, *, provider: str | None, region: str | None,
                 location: str = "body") -> Adapter:
    if provider is not None:
        if provider not in state.adapters:
            err = _invalid("provider", f"{provider!r} is not an enabled provider "
                                       f"(enabled: {', '.join(sorted(state.adapters))})")
            err.errors[0]["location"] = location
            raise err
    elif region is not None:
        provider = state.config.regions.get(region.upper())
        if provider is None:
            err = _invalid("region", f"no default provider for region {region!r} "
                                     f"(configured: {', '.join(sorted(state.config.regions)) or 'none'})")
            err.errors[0]["location"] = location
            raise err
    else:
        err = _invalid("provider", "give a provider or a region")
        err.errors[0]["location"] = location
        raise err
    require_provider(caller, provider)
    return state.adapters[provider]


def adapter_for_resource(state: GatewayState, caller: Caller, provider: str) -> Adapter:
    """The adapter of a stored resource: the caller must still be allowed to use its provider."""
    require_provider(caller, provider)
    return state.adapter(provider)
