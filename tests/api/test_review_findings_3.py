"""Regression tests for the third review's findings (stripe-uk payment initiation): a debtor wallet that is no Stripe
account and a reference of one repeated ASCII character are refused before the bank is called, as 422s naming the
field; funds confirmation answers only documented statuses."""
from __future__ import annotations

import pytest

from tests.conftest import DEV, sandbox_of
from tests.payments_flow import UK, authorised, keyed, order


@pytest.fixture
def gateway_config(make_config):  # type: ignore[no-untyped-def]
    return make_config({"adapters": {UK: {"sandbox_payment_timeline": [0.05, 0.15]}}})


def _consent_posts(gateway) -> list:  # type: ignore[no-untyped-def]
    return [c for c in sandbox_of(gateway, UK).calls.matching() if c.method == "POST"]


async def test_debtor_wallet_that_is_no_stripe_account_is_a_422_before_any_call(gateway):
    sandbox_of(gateway, UK).calls.clear()
    body = order(debtor_account={"scheme": "wallet", "wallet_id": "not_a_stripe_acct"})
    resp = await gateway.post("/v1/payments", json=body, headers=keyed())
    problem = await resp.json()
    assert resp.status == 422, problem
    assert any(e["field"] == "debtor_account.wallet_id" for e in problem.get("errors", [])), problem
    assert not _consent_posts(gateway)


async def test_reference_repeating_one_ascii_character_beside_a_non_ascii_letter_is_a_422(gateway):
    sandbox_of(gateway, UK).calls.clear()
    resp = await gateway.post("/v1/payments", json=order(reference="111111\u00e9"), headers=keyed())
    problem = await resp.json()
    assert resp.status == 422, problem
    assert any(e["field"] == "reference" for e in problem.get("errors", [])), problem
    assert not _consent_posts(gateway)


async def test_funds_confirmation_statuses_are_documented(gateway):
    import yaml
    from pathlib import Path

    payment = await authorised(gateway)
    resp = await gateway.get(f"/v1/payments/{payment['id']}/funds-confirmation?unexpected=1", headers=DEV)
    spec = yaml.safe_load((Path(__file__).parents[2] / "gateway/api/openapi.yaml").read_text())
    documented = spec["paths"]["/v1/payments/{payment_id}/funds-confirmation"]["get"]["responses"]
    assert str(resp.status) in documented, resp.status
