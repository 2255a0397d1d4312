"""stripe-uk payments against a misbehaving ASPSP: every fault ends in a clear, correctly attributed answer or in a
payment whose state is known; nothing is half-stored; a submission whose answer was lost ends, through the
reconciliation worker, in what the bank really did, with exactly one payment at the bank; and the payer's tokens
never reach the logs or the store unsealed."""
from __future__ import annotations

import logging

import pytest

from tests.conftest import DEV, count_rows, sandbox_of, serve, state_of
from tests.payments_flow import UK, authorised, create, keyed, order, payer_decides, wait_for
from tests.reliability.common import assert_problem, write_faults

PISP = r"^/open-banking/v3\.1/pisp"
CONSENTS = PISP + r"/domestic-payment-consents$"
SUBMIT = PISP + r"/domestic-payments$"
STATUS = PISP + r"/domestic-payments/[^/]+$"
SLOW = 1.5  # outlasts the timeout below

FAST = {
    "adapters": {UK: {
        "sandbox_payment_timeline": [0.05, 0.15],
        "timeouts": {"connect": 1.0, "total": 1.0},  # roomy: a loaded CI machine must not time out a setup call
        "retry": {"attempts": 3, "backoff_base": 0.01, "backoff_max": 0.05, "max_retry_after": 2.0,
                  "budget_ratio": 0.2},
        "circuit": {"failure_threshold": 500, "reset_after": 0.5},
    }},
    "payments": {"reconcile_tick_seconds": 0.02, "reconcile_backoff_base_seconds": 0.02,
                 "reconcile_backoff_max_seconds": 0.1},
}


@pytest.fixture
async def gw(aiohttp_client, make_config):  # type: ignore[no-untyped-def]
    return await serve(aiohttp_client, make_config(FAST))


@pytest.mark.parametrize("name", sorted(write_faults(SLOW)))
async def test_consent_creation_faults_store_nothing_and_a_retry_makes_one_consent(gw, name):
    sandbox = sandbox_of(gw, UK)
    fault, (http, code, retryable) = write_faults(SLOW)[name]
    sandbox.faults.add(path=CONSENTS, method="POST", times=None, **fault)
    resp = await gw.post("/v1/payments", json=order(), headers=keyed("faulty"))
    assert_problem(resp.status, await resp.json(), http=http, code=code, source="provider", retryable=retryable)
    assert count_rows(gw, "payments") == 0 and count_rows(gw, "idempotency_keys") == 0
    sandbox.faults.clear()
    made = len(sandbox.payment_consents)  # a slow fault lets the bank act after the gateway gave up
    resp = await gw.post("/v1/payments", json=order(), headers=keyed("faulty"))
    assert resp.status == 201
    assert len(sandbox.payment_consents) == max(made, 1)  # the retry is the same request at the bank


async def test_a_consent_whose_answer_is_lost_once_is_recovered_by_the_retry_of_the_same_key(gw):
    sandbox = sandbox_of(gw, UK)
    sandbox.faults.add("lose_response", path=CONSENTS, method="POST", times=1)
    payment = await create(gw)
    assert len(sandbox.payment_consents) == 1 and payment["consent_ref"] in sandbox.payment_consents


# Submission faults: the fault, and the HTTP status the caller sees first (202: the payment is `unknown`).
SUBMISSION_FAULTS = {
    "5xx": ({"kind": "status", "status": 500}, 202),
    "timeout": ({"kind": "latency", "delay": SLOW}, 202),
    "malformed_json": ({"kind": "malformed_json"}, 202),
    "dropped": ({"kind": "drop_connection"}, 202),
    "lost_after_acting": ({"kind": "lose_response"}, 202),
    "late_after_acting": ({"kind": "late_response", "delay": SLOW}, 202),
    "429": ({"kind": "rate_limit", "retry_after": 1}, 503),
}


@pytest.mark.parametrize("name", sorted(SUBMISSION_FAULTS))
async def test_submission_faults_end_in_one_known_payment(gw, name):
    sandbox = sandbox_of(gw, UK)
    fault, first_status = SUBMISSION_FAULTS[name]
    payment = await authorised(gw)
    sandbox.faults.add(path=SUBMIT, method="POST", times=None, **fault)
    resp = await gw.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    body = await resp.json()
    assert resp.status == first_status, body
    if first_status == 202:
        assert body["status"] == "unknown" and "outcome was not learned" in body["status_reason"]
    else:
        assert body["code"] == "provider_rate_limited"  # refused before acting: still authorised
        assert (await (await gw.get(f"/v1/payments/{payment['id']}", headers=DEV)).json())["status"] == "authorised"
    sandbox.faults.clear()
    current = await wait_for(gw, payment["id"], {"authorised", "submitted", "pending", "completed"})
    if current["status"] == "authorised":  # the bank never acted: the worker found the consent unused
        assert not sandbox.payments
        if first_status == 202:
            assert "never took effect" in current["status_reason"]
        resp = await gw.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
        assert resp.status == 200
    done = await wait_for(gw, payment["id"], {"completed"})
    assert len(sandbox.payments) == 1 and done["provider_ref"] in sandbox.payments
    statuses = [h["status"] for h in done["history"]]
    assert statuses[-1] == "completed" and statuses.count("completed") == 1


async def test_status_faults_only_delay_reconciliation(gw):
    sandbox = sandbox_of(gw, UK)
    payment = await authorised(gw)
    sandbox.faults.add("status", path=STATUS, method="GET", status=503, times=None)
    resp = await gw.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
    assert (await resp.json())["status"] == "submitted"
    resp = await gw.get(f"/v1/payments/{payment['id']}", params={"refresh": "true"}, headers=DEV)
    problem = await resp.json()
    assert_problem(resp.status, problem, http=502, code="provider_unavailable", source="provider", retryable=True)
    stored = await (await gw.get(f"/v1/payments/{payment['id']}", headers=DEV)).json()
    assert stored["status"] == "submitted"
    sandbox.faults.clear()
    await wait_for(gw, payment["id"], {"completed"})


async def test_the_horizon_expires_payments_never_authorised(aiohttp_client, make_config):
    client = await serve(aiohttp_client, make_config({**FAST, "payments": {
        **FAST["payments"], "reconcile_horizon_hours": 0.0001}}))  # 0.36 s
    payment = await create(client)
    expired = await wait_for(client, payment["id"], {"expired"})
    assert expired["status_reason"] == "not authorised within the reconciliation horizon"
    row = state_of(client).store.db.execute("SELECT next_check_at FROM payments WHERE id = ?",
                                            (payment["id"],)).fetchone()
    assert row == (None,)  # final: the worker no longer looks at it


async def test_payer_tokens_stay_out_of_logs_and_are_sealed_at_rest(gw, capsys, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    sandbox = sandbox_of(gw, UK)
    payment = await create(gw)
    redirect = await payer_decides(payment["authorisation_url"])
    resp = await gw.post(f"/v1/payments/{payment['id']}/complete", json={"redirect_result": redirect}, headers=DEV)
    assert resp.status == 200
    await wait_for(gw, payment["id"], {"completed"})
    captured = capsys.readouterr()
    out = captured.out + captured.err + caplog.text
    tokens = list(sandbox.world.access_tokens) + list(sandbox.world.refresh_tokens)
    assert tokens
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("gateway.db"))
    assert payment["id"].encode() in on_disk
    for token in tokens:
        assert token not in out, f"a token ({token[:6]}…) leaked into the logs"
        assert token.encode() not in on_disk, f"a token ({token[:6]}…) is in the store unsealed"


async def test_a_payment_stays_with_its_tenant_under_faults(gw):
    from tests.conftest import OTHER

    payment = await create(gw)
    resp = await gw.post(f"/v1/payments/{payment['id']}/submit", headers=OTHER)
    assert resp.status == 404
    resp = await gw.post("/v1/payments", json=order(), headers=keyed("x", headers=OTHER))
    assert resp.status == 201
    mine = await (await gw.get("/v1/payments", headers=DEV)).json()
    assert [p["id"] for p in mine["data"]] == [payment["id"]]
