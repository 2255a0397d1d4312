"""The application's state, held under one typed AppKey (no module globals)."""
from __future__ import annotations

from typing import Any

import attrs
from aiohttp import web

from adapters.base import Adapter
from gateway.api.cursor import CursorCodec
from gateway.config import GatewayConfig
from gateway.connectivity.client import UpstreamFactory
from gateway.errors import NotFound
from gateway.observability import Metrics
from gateway.payments.locks import KeyedLocks
from gateway.store import Store
from gateway.validation.access import Caller, CallerDirectory


@attrs.define
class GatewayState:
    config: GatewayConfig
    store: Store
    metrics: Metrics
    upstreams: UpstreamFactory
    callers: CallerDirectory
    cursors: CursorCodec
    id_key: bytes
    adapters: dict[str, Adapter] = attrs.field(factory=dict)
    sandboxes: dict[str, Any] = attrs.field(factory=dict)
    payment_locks: KeyedLocks = attrs.field(factory=KeyedLocks)
    workers: list[Any] = attrs.field(factory=list)
    reconciler: Any = None
    vault: Any = None  # gateway.vault.Vault when security.encryption_key is set  # gateway.payments.reconcile.Reconciler, once started
    ready: bool = False

    def __attrs_post_init__(self) -> None:
        self.payment_locks.store = self.store  # payment operations hold a lease across replicas too

    def adapter(self, provider: str) -> Adapter:
        try:
            return self.adapters[provider]
        except KeyError:
            raise NotFound(f"no enabled provider {provider!r}") from None


STATE: web.AppKey[GatewayState] = web.AppKey("gateway_state", GatewayState)
# Per-request values the middleware sets and handlers read.
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
CALLER: web.RequestKey[Caller] = web.RequestKey("caller", Caller)
PROVIDER: web.RequestKey[str] = web.RequestKey("provider", str)
