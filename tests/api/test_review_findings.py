"""Regression tests for defects found in review of payment initiation and the ob-connect adapter: another payment's
authorisation never pays this one, a submission retried into a refusal after an unanswered first attempt is not
taken as never sent, and a check that keeps failing locally is backed off and given up at the horizon."""
from __future__ import annotations

import pytest

from tests.api.test_ob_connect import FAST as OBC_FAST, create_payment, get, uk_order
from tests.conftest import sandbox_of
from tests.payments_flow import complete, payer_decides


@pytest.fixture
def gateway_config(make_config):  # type: ignore[no-untyped-def]
    return make_config(OBC_FAST)


async def test_ob_connect_payment_completed_with_another_payments_redirect_is_not_recorded_as_paid(gateway):
    sandbox = sandbox_of(gateway, "ob-connect")
    small = await create_payment(gateway, uk_order(amount={"amount": "1.00", "currency": "GBP"}))
    large = await create_payment(gateway, uk_order(amount={"amount": "900.00", "currency": "GBP"}))
    redirect_for_small = await payer_decides(small["authorisation_url"])  # the payer approved only the 1.00
    resp = await complete(gateway, large["id"], redirect_for_small)
    body = await resp.json()
    # The hub paid the consent the authorisation belongs to (the 1.00 one); the 900.00 payment was never paid.
    hub_payments = list(sandbox.payments.values())
    assert [p.consent_request_id for p in hub_payments] == [small["consent_ref"]]
    current = await get(gateway, f"/v1/payments/{large['id']}")
    assert current["status"] not in ("submitted", "pending", "completed"), (resp.status, body, current)
    assert current["provider_ref"] is None, current


async def test_a_submission_retried_into_a_refusal_after_a_lost_answer_is_not_taken_as_never_sent(
        aiohttp_client, make_config):
    import asyncio

    from tests.conftest import DEV, serve

    config = make_config({**OBC_FAST, "payments": {**OBC_FAST["payments"], "reconcile_horizon_hours": 0.0003}})
    gateway = await serve(aiohttp_client, config)
    sandbox = sandbox_of(gateway, "ob-connect")
    payment = await create_payment(gateway, uk_order())
    resp = await complete(gateway, payment["id"], await payer_decides(payment["authorisation_url"]), submit=False)
    assert resp.status == 200, await resp.json()
    # The first attempt reaches the hub (which makes the payment) but its answer is lost; the connectivity layer
    # retries the transfer and that retry is rate limited with a long Retry-After.
    sandbox.faults.add("lose_response", path=r"/domestic-credit-transfers$", method="POST")
    sandbox.faults.add("rate_limit", path=r"/domestic-credit-transfers$", method="POST", retry_after=60)
    resp = await gateway.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    answer = await resp.json()
    assert sandbox.payments_created == 1  # the hub made the payment
    await asyncio.sleep(1.5)  # past the reconciliation horizon; the worker runs meanwhile
    current = await get(gateway, f"/v1/payments/{payment['id']}")
    # Money moved at the hub: the gateway must not show the payment as expired (or as merely authorised).
    assert current["status"] not in ("expired", "authorised"), (resp.status, answer, current)


async def test_a_payment_whose_check_keeps_failing_locally_is_backed_off_and_given_up(aiohttp_client, make_config):
    import asyncio

    from gateway.secrets import Secret
    from gateway.vault import Vault
    from tests.conftest import DEV, serve, state_of

    config = make_config({**OBC_FAST, "payments": {**OBC_FAST["payments"], "reconcile_horizon_hours": 0.0003}})
    gateway = await serve(aiohttp_client, config)
    sandbox, state = sandbox_of(gateway, "ob-connect"), state_of(gateway)
    payment = await create_payment(gateway, uk_order())
    resp = await complete(gateway, payment["id"], await payer_decides(payment["authorisation_url"]), submit=False)
    assert resp.status == 200, await resp.json()
    sandbox.faults.add("lose_response", path=r"/domestic-credit-transfers$", method="POST", times=3)
    resp = await gateway.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    assert resp.status == 202 and (await resp.json())["status"] == "unknown"
    # The encryption key changes (a rotation, a misconfigured replica): the sealed authorisation no longer opens.
    adapter = state.adapters["ob-connect"]
    adapter.vault = Vault(state.store, Secret("another-encryption-key-of-at-least-32-characters"))
    calls = 0
    original = adapter.get_payment

    async def counting(ctx, record):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return await original(ctx, record)

    adapter.get_payment = counting
    await asyncio.sleep(2.0)  # past the horizon (about 1.1 s after creation)
    record = await state.store.get_payment("dev", payment["id"])
    # Backed off (base 0.02 s doubling to at most 0.1 s) and given up at the horizon: at most a couple of dozen
    # checks, and none still due.
    assert calls <= 25 and record.next_check_at is None, (calls, record.check_attempts, record.next_check_at)


async def test_stripe_submission_retried_into_a_refusal_after_a_lost_answer_is_not_taken_as_never_sent(
        aiohttp_client, make_config):
    import asyncio

    from tests.api.test_payments import FAST as UK_FAST
    from tests.conftest import DEV, serve
    from tests.payments_flow import UK, authorised

    config = make_config({**UK_FAST, "payments": {**UK_FAST["payments"], "reconcile_horizon_hours": 0.0003}})
    gateway = await serve(aiohttp_client, config)
    sandbox = sandbox_of(gateway, UK)
    payment = await authorised(gateway)
    sandbox.faults.add("lose_response", path=r"/domestic-payments$", method="POST")
    sandbox.faults.add("rate_limit", path=r"/domestic-payments$", method="POST", retry_after=60)
    resp = await gateway.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    answer = await resp.json()
    assert len(sandbox.payments) == 1  # the bank made the payment
    await asyncio.sleep(1.5)
    current = await get(gateway, f"/v1/payments/{payment['id']}")
    assert current["status"] not in ("expired", "authorised"), (resp.status, answer, current)
