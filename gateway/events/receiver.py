"""`gateway receive-events`: a webhook endpoint for trying subscriptions on a laptop.

It answers 204 to every POST and prints one line per delivery: the event type and id, the resource it is about,
and whether the Standard Webhooks signature verifies with the secret in `--secret-file` (read again for every
delivery, so the receiver can start before the subscription that creates the secret). It is what a product
team's endpoint must do at the least: verify, then de-duplicate on `webhook-id`.
"""
from __future__ import annotations

from pathlib import Path

import orjson
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def _verdict(secret_file: Path | None, body: bytes, headers: dict[str, str]) -> str:
    if secret_file is None or not secret_file.exists():
        return "signature not checked (no secret yet)"
    secret = secret_file.read_text().strip()
    try:
        Webhook(secret).verify(body, headers)
    except (WebhookVerificationError, ValueError):
        return "signature BAD"
    return "signature ok"


def build_app(secret_file: Path | None) -> web.Application:
    seen: set[str] = set()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            event = orjson.loads(body)
            data = event.get("data") or {}
            subject = next((f"{k} {v.get('id')} {v.get('status')}" for k, v in data.items()
                            if isinstance(v, dict) and "id" in v), "")
            what = f"{event.get('type')} {event.get('id')} {subject}".strip()
        except (orjson.JSONDecodeError, AttributeError):
            what = "unreadable body"
        repeat = " (again: same webhook-id)" if headers.get("webhook-id") in seen else ""
        seen.add(headers.get("webhook-id", ""))
        print(f"{what}: {_verdict(secret_file, body, headers)}{repeat}", flush=True)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    return app


def run(port: int, secret_file: Path | None) -> None:
    print(f"receiving events on http://127.0.0.1:{port}/ (Ctrl-C to stop)", flush=True)
    web.run_app(build_app(secret_file), host="127.0.0.1", port=port, print=None, access_log=None)
