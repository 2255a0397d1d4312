"""Canonical flows the tests share: drive the gateway over HTTP the way a product team would."""
from __future__ import annotations

import secrets
from typing import Any

import aiohttp

from tests.conftest import DEV


async def create_customer(client: Any, provider: str, headers: dict[str, str] = DEV, **extra: Any) -> dict[str, Any]:
    body = {"provider": provider, "external_ref": f"user{secrets.token_hex(5)}", "type": "testing", **extra}
    resp = await client.post("/v1/customers", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def create_consent(client: Any, customer_id: str, headers: dict[str, str] = DEV, **extra: Any) -> dict[str, Any]:
    body = {"customer_id": customer_id, "redirect_uri": "https://app.example.com/callback", **extra}
    resp = await client.post("/v1/consents", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def play_end_user(authorisation_url: str, **choice: Any) -> str:
    """The simulated end user and bank: approve (or reject) at the provider; returns the redirect URL. (A browser
    stands for the end user: it does not check the simulated bank's local test certificate.)"""
    async with aiohttp.ClientSession() as session:
        async with session.post(authorisation_url, json=choice or None, ssl=False) as resp:
            assert resp.status == 200, await resp.text()
            return (await resp.json())["redirect_to"]


async def authorised_consent(client: Any, provider: str = "mastercard-us", headers: dict[str, str] = DEV,
                             **choice: Any) -> dict[str, Any]:
    """Customer → consent → end user approves → complete. Returns the authorised consent."""
    customer = await create_customer(client, provider, headers)
    consent = await create_consent(client, customer["id"], headers)
    redirect = await play_end_user(consent["authorisation_url"], **choice)
    resp = await client.post(f"/v1/consents/{consent['id']}/complete", json={"redirect_result": redirect},
                             headers=headers)
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    assert done["status"] == "authorised", done
    return done


async def first_account(client: Any, consent_id: str, headers: dict[str, str] = DEV,
                        account_type: str | None = None) -> dict[str, Any]:
    resp = await client.get("/v1/accounts", params={"consent_id": consent_id}, headers=headers)
    assert resp.status == 200, await resp.text()
    accounts = (await resp.json())["data"]
    assert accounts
    if account_type is not None:
        accounts = [a for a in accounts if a["type"] == account_type]
    return accounts[0]
