"""Operational routes: liveness, readiness, metrics, the OpenAPI contract and its docs page."""
from __future__ import annotations

import functools
import html
from pathlib import Path

import orjson
import yaml
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.api.common import state_of
from gateway.api.render import json_response
from gateway.events.worker import observe_backlog
from gateway.store import store_check

OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")


@functools.lru_cache(maxsize=1)
def openapi_document() -> dict:
    return yaml.safe_load(OPENAPI_PATH.read_text())


@functools.lru_cache(maxsize=1)
def _openapi_bytes() -> bytes:
    return orjson.dumps(openapi_document())


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = state_of(request)
    checks = {"store": await store_check(state.store)}
    ready = state.ready and all(v == "ok" for v in checks.values())
    return json_response({"status": "ready" if ready else "not_ready", "checks": checks}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    state = state_of(request)
    await observe_backlog(state.store, state.metrics)
    body = generate_latest(state.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_openapi_bytes(), content_type="application/json")


_DOCS = """<!doctype html>
<html><head><meta charset="utf-8"><title>Open-banking gateway API</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
code{background:#f3f3f3;padding:0 .2em}h2{border-bottom:1px solid #ddd}</style></head>
<body><h1>Open-banking gateway API</h1><p>The machine-readable contract is at <a href="/openapi.json">/openapi.json</a>.</p>
%s</body></html>"""


async def docs(request: web.Request) -> web.Response:
    spec = openapi_document()
    parts = [f"<p>{html.escape(spec['info'].get('description', ''))}</p>"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method in ("get", "post", "put", "patch", "delete"):
                parts.append(f"<h2><code>{method.upper()} {html.escape(path)}</code></h2>"
                             f"<p>{html.escape(op.get('summary', ''))}</p><p>{html.escape(op.get('description', ''))}</p>")
    return web.Response(text=_DOCS % "\n".join(parts), content_type="text/html")
