"""Idempotency keys over real HTTP against the stripe-uk simulator: one upstream effect however many duplicates
arrive and whenever they arrive, the first answer replayed byte for byte, a reused key refused, and a request
cut off between the bank's answer and the gateway's write recovered without a second consent or payment."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from gateway.api.idempotency import fingerprint
from gateway.config import ConfigError
from gateway.models.time import utcnow
from gateway.store.records import IdempotencyRecord
from tests.conftest import DEV, count_rows, sandbox_of, serve, state_of
from tests.payments_flow import UK, create, keyed, order, payer_decides, wait_for

FAST = {"adapters": {UK: {"sandbox_payment_timeline": [0.05, 0.15]}},
        "payments": {"reconcile_tick_seconds": 0.02, "reconcile_backoff_base_seconds": 0.02,
                     "reconcile_backoff_max_seconds": 0.1}}


@pytest.fixture
def gateway_config(make_config):  # type: ignore[no-untyped-def]
    return make_config(FAST)


async def _post(client: Any, body: dict[str, Any], key: str) -> tuple[int, bytes, Any]:
    resp = await client.post("/v1/payments", json=body, headers=keyed(key))
    return resp.status, await resp.read(), resp.headers


async def test_fifty_concurrent_duplicates_make_one_consent_and_one_payment(gateway):
    sandbox = sandbox_of(gateway, UK)
    body = order()
    answers = await asyncio.gather(*(_post(gateway, body, "fifty-at-once") for _ in range(50)))
    assert {status for status, _, _ in answers} == {201}
    assert len({raw for _, raw, _ in answers}) == 1  # the same bytes for everyone
    assert sum(1 for _, _, h in answers if h.get("Idempotent-Replayed") == "true") == 49
    assert len(sandbox.payment_consents) == 1 and count_rows(gateway, "payments") == 1
    listed = await (await gateway.get("/v1/payments", headers=DEV)).json()
    payment_id = listed["data"][0]["id"]
    redirect = await payer_decides(listed["data"][0]["authorisation_url"])

    async def finish(i: int) -> tuple[int, str]:
        headers = {**DEV, "Idempotency-Key": "complete-once"} if i % 2 else DEV
        resp = await gateway.post(f"/v1/payments/{payment_id}/complete", json={"redirect_result": redirect},
                                  headers=headers)
        body = await resp.json()
        return resp.status, body["status"] if resp.status == 200 else body

    results = await asyncio.gather(*(finish(i) for i in range(50)))
    assert {status for status, _ in results} == {200}, results
    assert {s for _, s in results} <= {"submitted", "pending", "completed"}
    assert len(sandbox.payments) == 1  # one payment at the bank
    submissions = [c for c in sandbox.calls.matching() if c.method == "POST" and c.path.endswith("/domestic-payments")]
    assert len(submissions) == 1


async def test_replay_is_byte_for_byte_and_another_body_is_refused(gateway):
    status, first, _ = await _post(gateway, order(), "replay-me")
    assert status == 201
    again_status, again, headers = await _post(gateway, order(), "replay-me")
    assert again_status == 201 and again == first and headers["Idempotent-Replayed"] == "true"
    # the same JSON written differently is the same request
    resp = await gateway.post("/v1/payments", data=b'{"reference":"INV2026001",' + _json_tail(),
                              headers={**keyed("replay-me"), "Content-Type": "application/json"})
    assert resp.status == 201 and await resp.read() == first
    status, raw, _ = await _post(gateway, order(amount={"amount": "25.51", "currency": "GBP"}), "replay-me")
    assert status == 422 and b"idempotency_key_reused" in raw
    assert count_rows(gateway, "payments") == 1 and len(sandbox_of(gateway, UK).payment_consents) == 1


def _json_tail() -> bytes:
    import orjson

    rest = {k: v for k, v in order().items() if k != "reference"}
    return orjson.dumps(rest)[1:]


async def test_a_duplicate_waits_for_the_first_answer(gateway):
    sandbox = sandbox_of(gateway, UK)
    sandbox.faults.add("latency", path="/domestic-payment-consents$", delay=0.4)
    first, second = await asyncio.gather(_post(gateway, order(), "slow-one"), _post(gateway, order(), "slow-one"))
    assert first[0] == second[0] == 201 and first[1] == second[1]
    assert len(sandbox.payment_consents) == 1


async def test_past_the_wait_a_duplicate_gets_409_with_retry_after(aiohttp_client, make_config):
    client = await serve(aiohttp_client, make_config({**FAST, "payments": {**FAST["payments"],
                                                                          "idempotency_wait_seconds": 0.1}}))
    sandbox = sandbox_of(client, UK)
    sandbox.faults.add("latency", path="/domestic-payment-consents$", delay=0.6)
    slow = asyncio.ensure_future(_post(client, order(), "busy"))
    await asyncio.sleep(0.15)
    status, raw, headers = await _post(client, order(), "busy")
    assert status == 409 and b"request_in_progress" in raw and headers["Retry-After"] == "1"
    status, raw, headers = await _post(client, order(amount={"amount": "1.00", "currency": "GBP"}), "busy")
    assert status == 422 and b"idempotency_key_reused" in raw  # another body is refused even while in flight
    assert (await slow)[0] == 201
    status, _, headers = await _post(client, order(), "busy")
    assert status == 201 and headers["Idempotent-Replayed"] == "true"


async def test_a_failed_request_leaves_its_key_free(gateway):
    sandbox = sandbox_of(gateway, UK)
    sandbox.faults.add("status", path="/domestic-payment-consents$", status=400, times=1,
                       body={"Code": "400", "Id": "x", "Message": "refused",
                             "Errors": [{"ErrorCode": "UK.OBIE.Field.Invalid", "Message": "no"}]})
    status, raw, _ = await _post(gateway, order(), "try-again")
    assert status == 502 and count_rows(gateway, "idempotency_keys") == 0 and count_rows(gateway, "payments") == 0
    status, _, headers = await _post(gateway, order(), "try-again")
    assert status == 201 and "Idempotent-Replayed" not in headers


async def test_cancelled_between_the_banks_answer_and_the_write_makes_no_second_consent(gateway):
    """The task dies after the bank created the consent and before the gateway stored it; the caller retries."""
    store, sandbox = state_of(gateway).store, sandbox_of(gateway, UK)
    real_insert = store.insert_payment

    async def cut(*args: Any, **kwargs: Any) -> None:
        store.insert_payment = real_insert  # once
        raise asyncio.CancelledError

    store.insert_payment = cut
    with pytest.raises(aiohttp.ClientError):
        await _post(gateway, order(), "cut-off")
    assert len(sandbox.payment_consents) == 1  # the bank acted
    assert count_rows(gateway, "payments") == 0 and count_rows(gateway, "idempotency_keys") == 0
    status, raw, _ = await _post(gateway, order(), "cut-off")
    assert status == 201
    assert len(sandbox.payment_consents) == 1  # the retry reached the bank as the same request
    payment = await (await gateway.get("/v1/payments", headers=DEV)).json()
    assert payment["data"][0]["consent_ref"] in sandbox.payment_consents


@pytest.mark.parametrize("recovery", ["caller_retries", "worker_alone"])
async def test_cancelled_after_submission_makes_no_second_payment(gateway, recovery):
    """The bank made the payment; the task died before the gateway wrote it down. Either the caller retries the
    submission (the bank answers the original payment to the same key) or the worker finds it."""
    store, sandbox = state_of(gateway).store, sandbox_of(gateway, UK)
    payment = await create(gateway)
    redirect = await payer_decides(payment["authorisation_url"])
    real_update = store.update_payment
    writes = 0

    async def cut(record: Any, transitions: Any, **kwargs: Any) -> bool:
        nonlocal writes
        if record.provider_ref and record.status.value == "submitted":
            store.update_payment = real_update
            raise asyncio.CancelledError
        writes += 1
        return await real_update(record, transitions, **kwargs)

    store.update_payment = cut
    with pytest.raises(aiohttp.ClientError):
        await gateway.post(f"/v1/payments/{payment['id']}/complete", json={"redirect_result": redirect},
                           headers=DEV)
    assert len(sandbox.payments) == 1
    stored = await (await gateway.get(f"/v1/payments/{payment['id']}", headers=DEV)).json()
    assert stored["status"] == "authorised" and stored["provider_ref"] is None
    if recovery == "caller_retries":
        resp = await gateway.post(f"/v1/payments/{payment['id']}/submit", headers=DEV)
        body = await resp.json()
        assert resp.status == 200 and body["status"] in ("submitted", "pending", "completed"), body
    done = await wait_for(gateway, payment["id"], {"completed"})
    assert len(sandbox.payments) == 1 and done["provider_ref"] in sandbox.payments


async def test_an_abandoned_claim_is_taken_over_after_its_lease(gateway):
    store = state_of(gateway).store
    body = order()
    import orjson

    now = utcnow()
    raw = orjson.dumps(body)
    await store.claim_idempotency_key(IdempotencyRecord(
        tenant="dev", key="orphan", fingerprint=fingerprint("POST", "/v1/payments", raw, "dev", state_of(gateway).id_key),
        state="in_progress",
        owner="a-process-that-died", lease_until=now - timedelta(seconds=1), created_at=now - timedelta(seconds=61),
        expires_at=now + timedelta(hours=72)))
    status, _, headers = await _post(gateway, body, "orphan")
    assert status == 201 and "Idempotent-Replayed" not in headers
    assert (await store.get_idempotency_key("dev", "orphan")).state == "done"


async def test_keys_are_purged_after_retention(gateway):
    store = state_of(gateway).store
    await create(gateway, key="old-key")
    assert await store.purge_idempotency_keys(utcnow() + timedelta(hours=71)) == 0
    assert await store.purge_idempotency_keys(utcnow() + timedelta(hours=73)) == 1
    assert await store.get_idempotency_key("dev", "old-key") is None


def test_retention_is_never_under_a_day(make_config):
    with pytest.raises(ConfigError) as caught:
        make_config({"payments": {"idempotency_retention_hours": 12}})
    assert any("idempotency_retention_hours" in p and "24" in p for p in caught.value.problems)


async def test_a_replay_is_only_for_the_api_key_that_sent_the_request(gateway):
    """Another API key of the same tenant (fewer scopes, other providers) gets no replay of a response it could not
    have had: its request with the same key is another request."""
    from tests.conftest import READONLY

    status, _, _ = await _post(gateway, order(), "kept-for-dev")
    assert status == 201
    resp = await gateway.post("/v1/payments", json=order(), headers=keyed("kept-for-dev", headers=READONLY))
    assert resp.status == 422 and (await resp.json())["code"] == "idempotency_key_reused"


async def test_keys_are_accepted_on_other_posts(gateway):
    body = {"provider": UK, "redirect_uri": "https://app.example.com/callback"}
    first = await gateway.post("/v1/consents", json=body, headers=keyed("consent-key"))
    second = await gateway.post("/v1/consents", json=body, headers=keyed("consent-key"))
    assert first.status == second.status == 201 and await first.read() == await second.read()
    assert len(sandbox_of(gateway, UK).consents) == 1
