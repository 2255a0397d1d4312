"""The validation layer refuses an operation the adapter does not declare: 501, and no upstream call."""
from __future__ import annotations

import pytest

from adapters import base
from adapters.base import Adapter, implemented_operations
from adapters.mastercard_us.adapter import MastercardUSAdapter
from gateway.api.app import create_app
from tests.conftest import serve, DEV, sandbox_of
from tests.flows import authorised_consent, first_account

WITHHELD = ("get_live_balances", "list_transactions", "get_account_owner", "get_account_details")


class LimitedUSAdapter(MastercardUSAdapter):
    """mastercard-us without a few operations, as a provider that lacks them would be."""

    capabilities = MastercardUSAdapter.capabilities - set(WITHHELD)
    get_live_balances = Adapter.get_live_balances
    list_transactions = Adapter.list_transactions
    get_account_owner = Adapter.get_account_owner
    get_account_details = Adapter.get_account_details


def test_limited_adapter_declares_what_it_implements() -> None:
    assert LimitedUSAdapter.capabilities == implemented_operations(LimitedUSAdapter)


def test_a_false_declaration_is_caught() -> None:
    class Liar(LimitedUSAdapter):
        capabilities = MastercardUSAdapter.capabilities

    assert Liar.capabilities != implemented_operations(Liar)


@pytest.fixture
async def limited(aiohttp_client, make_config, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setitem(base.PROVIDERS, "mastercard-us", f"{__name__}:LimitedUSAdapter")
    return await serve(aiohttp_client, make_config())  # the simulator pings the Connect webhook at this address


async def test_undeclared_operations_never_reach_upstream(limited) -> None:  # type: ignore[no-untyped-def]
    consent = await authorised_consent(limited)
    account = await first_account(limited, consent["id"])
    sandbox = sandbox_of(limited, "mastercard-us")
    sandbox.calls.clear()
    for path in (f"/v1/accounts/{account['id']}/balances?live=true", f"/v1/accounts/{account['id']}/transactions",
                 f"/v1/accounts/{account['id']}/owner", f"/v1/accounts/{account['id']}/details"):
        resp = await limited.get(path, headers=DEV)
        problem = await resp.json()
        assert resp.status == 501 and problem["code"] == "unsupported_operation", (path, problem)
        assert "mastercard-us" in problem["detail"]
    assert sandbox.calls.matching() == []
    providers = await (await limited.get("/v1/providers", headers=DEV)).json()
    listed = next(p for p in providers["data"] if p["id"] == "mastercard-us")
    assert not set(WITHHELD) & set(listed["capabilities"])
    # what it does declare still works
    assert (await limited.get(f"/v1/accounts/{account['id']}/balances", headers=DEV)).status == 200
