"""What every handler module of the Finicity simulator shares: the app key of the simulator, the error it raises,
JSON answers, and finding a customer."""
from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from adapters.mastercard_us.sandbox_world import Customer, World

SANDBOX: web.AppKey[Any] = web.AppKey("mastercard_us_sandbox")


class FinicityError(Exception):
    """An upstream error answer: HTTP status, the upstream's code and message, and any further body fields."""

    def __init__(self, http_status: int, code: str, message: str, /, **fields: Any) -> None:
        super().__init__(f"{http_status} {code} {message}")
        self.http_status, self.code, self.message, self.fields = http_status, code, message, fields


def invalid_field(message: str) -> FinicityError:
    return FinicityError(400, "10010", message, status="400", user_message="One or more of the fields could not be "
                         "validated. Please ensure you have entered the correct data.")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def world_of(request: web.Request) -> World:
    return request.app[SANDBOX].world


def customer_of(world: World, customer_id: str) -> Customer:
    customer = world.customers.get(customer_id)
    if customer is None:
        raise FinicityError(404, "10002", "Customer ID was not found.", status="404",
                            title="Customer ID was not found.", user_message="Customer ID was not found.")
    return customer
