"""Responses: JSON via orjson, problems as application/problem+json."""
from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.errors import GatewayError
from gateway.models.serialize import dumps


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(data), status=status, content_type="application/json", headers=headers)



def problem_response(error: GatewayError, request_id: str | None) -> web.Response:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="gateway"'
    return web.Response(
        body=orjson.dumps(error.problem(request_id)),
        status=error.status,
        content_type="application/problem+json",
        headers=headers,
    )
