"""A fast fake mastercard-us upstream for the benchmark: fixed, precomputed answers, no validation.

It stands in for the provider so that the benchmark measures the gateway, not a simulator.
"""
from __future__ import annotations

import argparse
import re

from aiohttp import web

from tests.bench import payloads

JSON = "application/json"


def build_app() -> web.Application:
    txns, bal, accts, cons = (payloads.transactions_page(), payloads.balance(), payloads.accounts(),
                              payloads.consents())
    customer = b'{"id": "%s", "username": "bench", "createdDate": 1767225600}' % payloads.CUSTOMER_ID.encode()

    async def handle(request: web.Request) -> web.Response:
        path = request.path
        if path.endswith("/transactions"):
            return web.Response(body=txns, content_type=JSON)
        if path.endswith("/availableBalance") or path.endswith("/availableBalance/live"):
            return web.Response(body=bal, content_type=JSON)
        if re.fullmatch(r"/aggregation/v1/customers/\d+/accounts", path):
            return web.Response(body=accts, content_type=JSON)
        if path == "/aggregation/v2/partners/authentication":
            return web.Response(body=b'{"token": "bench-token"}', content_type=JSON)
        if path.startswith("/aggregation/v2/customers/"):
            return web.Response(body=customer, status=201, content_type=JSON)
        if path.startswith("/connect/v2/generate"):
            return web.Response(body=b'{"link": "http://127.0.0.1/connect/sim/bench"}', content_type=JSON)
        if path == "/data-sharing-consents":
            return web.Response(body=cons, content_type=JSON)
        return web.Response(status=404, body=b'{"code": "404", "message": "not in the benchmark"}', content_type=JSON)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(build_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
