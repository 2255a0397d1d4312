"""Shared fixtures: the gateway app on the local environment, with its simulators on ephemeral local ports."""
from __future__ import annotations

import errno
import socket
import tomllib
from pathlib import Path
from typing import Any, Callable

import attrs
import pytest
from aiohttp import web_app

from gateway.api.app import create_app
from gateway.api.state import STATE
from gateway.config import GatewayConfig, parse_config

ROOT = Path(__file__).resolve().parent.parent
DEV_KEY = "gw_dev_local_key_do_not_use_in_production"
READONLY_KEY = "gw_readonly_local_key_do_not_use"
OTHER_KEY = "gw_other_tenant_local_key_do_not_use"
DEV = {"Authorization": f"Bearer {DEV_KEY}"}
READONLY = {"Authorization": f"Bearer {READONLY_KEY}"}
OTHER = {"Authorization": f"Bearer {OTHER_KEY}"}


def local_raw_config() -> dict[str, Any]:
    return tomllib.loads((ROOT / "config" / "local.toml").read_text())


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.fixture(autouse=True)
def _let_finished_apps_go() -> Any:
    """aiohttp keeps each application's middleware chain in a module-level cache of 1,024 entries, keyed by the
    application: in a process that starts six applications per test (the gateway and its simulators) that cache
    holds hundreds of finished tests' apps and data alive, and the cyclic garbage collector's full passes over them
    grew to seconds, long enough to time out a provider call. Emptied after each test."""
    yield
    clear = getattr(getattr(web_app, "_cached_build_middleware", None), "cache_clear", None)
    if clear is not None:
        clear()


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., GatewayConfig]:
    """The local environment with its own database and ephemeral simulator ports; `patch` overrides keys."""

    def build(patch: dict[str, Any] | None = None) -> GatewayConfig:
        raw = local_raw_config()
        raw["store"] = {"url": f"sqlite:///{tmp_path}/gateway.db"}
        raw["logging"] = {"format": "json", "level": "info"}
        for adapter in raw["adapters"].values():
            adapter["sandbox_port"] = 0
        # Simulated payments settle in a fraction of a second, not the seconds a person watching `make run` gets.
        raw["adapters"]["stripe-uk"]["sandbox_payment_timeline"] = [0.05, 0.15]
        raw["adapters"]["ob-connect"]["sandbox_payment_timeline"] = [0.05, 0.1, 0.15]
        return parse_config(_merge(raw, patch or {}), source="test")

    return build


@pytest.fixture
def gateway_config(make_config: Callable[..., GatewayConfig]) -> GatewayConfig:
    return make_config()


@pytest.fixture
async def gateway(aiohttp_client: Any, gateway_config: GatewayConfig) -> Any:
    """An aiohttp test client for the gateway on the local environment."""
    return await serve(aiohttp_client, gateway_config)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve(aiohttp_client: Any, config: GatewayConfig) -> Any:
    """The app on a test server whose public URL is its real address, so simulators call back to it (webhook
    URLs given to providers at start, such as consent-notification subscriptions, are built from it)."""
    for attempt in range(5):
        # The port is free when chosen, but another test may take it before the server binds: choose again.
        port = unused_port()
        chosen = attrs.evolve(config, server=attrs.evolve(config.server, public_url=f"http://127.0.0.1:{port}"))
        if attempt and config.store.url.startswith("sqlite:") and config.store.url.endswith(".db"):
            # The failed attempt's app may have registered with its own simulator and stored that client: a
            # fresh store, so the new simulator is not asked about a client it never issued.
            chosen = attrs.evolve(chosen, store=attrs.evolve(config.store,
                                                             url=config.store.url[:-3] + f"-retry{attempt}.db"))
        try:
            return await aiohttp_client(create_app(chosen), server_kwargs={"port": port})
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or attempt == 4:
                raise
    raise AssertionError("unreachable")


def sandbox_of(client: Any, provider: str) -> Any:
    return client.server.app[STATE].sandboxes[provider]


def state_of(client: Any) -> Any:
    return client.server.app[STATE]


def count_rows(client: Any, table: str) -> int:
    """How many rows a store table holds (to prove a failed request stored nothing)."""
    assert table.isidentifier()
    return int(state_of(client).store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
