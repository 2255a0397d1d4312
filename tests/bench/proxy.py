"""The reference: a bare aiohttp pass-through proxy (no auth, no parsing) to the same upstream.

It does the least any Python gateway must do per request (accept, forward over a pooled connection, relay the
body), so the gateway's throughput and latency are reported as a ratio of it.
"""
from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web

SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)


def build_app(upstream: str) -> web.Application:
    async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        yield
        await app[SESSION].close()

    async def forward(request: web.Request) -> web.Response:
        async with request.app[SESSION].request(request.method, upstream + request.path_qs,
                                                headers={"Finicity-App-Key": "k", "Finicity-App-Token": "t"}) as resp:
            body = await resp.read()
            return web.Response(body=body, status=resp.status, content_type=resp.content_type)

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(build_app(args.upstream.rstrip("/")), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
