"""Driving a payment through the canonical API, shared by the payment tests and the contract suite."""
from __future__ import annotations

import asyncio
import secrets
from typing import Any

import aiohttp

from tests.conftest import DEV

UK = "stripe-uk"
REDIRECT = "https://app.example.com/callback"


def order(**changes: Any) -> dict[str, Any]:
    """A valid stripe-uk domestic payment order."""
    body: dict[str, Any] = {
        "provider": UK, "type": "domestic", "amount": {"amount": "25.50", "currency": "GBP"},
        "creditor": {"name": "Acme Supplies Ltd",
                     "account": {"scheme": "uk_sort_code", "sort_code": "04-00-04", "account_number": "12345678"}},
        "reference": "INV2026001", "redirect_uri": REDIRECT,
    }
    body.update(changes)
    return body


def keyed(key: str | None = None, headers: dict[str, str] = DEV) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key or f"key-{secrets.token_hex(8)}"}


async def create(client: Any, body: dict[str, Any] | None = None, key: str | None = None,
                 headers: dict[str, str] = DEV) -> dict[str, Any]:
    resp = await client.post("/v1/payments", json=body or order(), headers=keyed(key, headers))
    payment = await resp.json()
    assert resp.status == 201, payment
    return payment


async def payer_decides(authorisation_url: str, **choice: Any) -> str:
    """The simulated payer at the bank: approve (default) or reject; the redirect URL they come back on."""
    async with aiohttp.ClientSession() as session:
        async with session.post(authorisation_url, json=choice or None, ssl=False) as resp:
            assert resp.status == 200, await resp.text()
            return str((await resp.json())["redirect_to"])


async def complete(client: Any, payment_id: str, redirect: str, *, submit: bool = True,
                   headers: dict[str, str] = DEV) -> aiohttp.ClientResponse:
    return await client.post(f"/v1/payments/{payment_id}/complete",
                             json={"redirect_result": redirect, "submit": submit}, headers=headers)


async def authorised(client: Any, body: dict[str, Any] | None = None) -> dict[str, Any]:
    payment = await create(client, body)
    resp = await complete(client, payment["id"], await payer_decides(payment["authorisation_url"]), submit=False)
    done = await resp.json()
    assert resp.status == 200 and done["status"] == "authorised", done
    return done


async def wait_for(client: Any, payment_id: str, statuses: set[str], *, refresh: bool = False,
                   timeout: float = 10.0) -> dict[str, Any]:
    """Poll until the payment is in one of `statuses` (by the worker alone unless `refresh`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        resp = await client.get(f"/v1/payments/{payment_id}", params={"refresh": "true"} if refresh else None,
                                headers=DEV)
        payment = await resp.json()
        assert resp.status == 200, payment
        if payment["status"] in statuses:
            return payment
        assert asyncio.get_running_loop().time() < deadline, payment
        await asyncio.sleep(0.02)
