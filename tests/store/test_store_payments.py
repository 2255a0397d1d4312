"""Payments through the Store interface, on every backend: the payment, its first transition and the idempotent
response in one transaction; a write only on the version it read; transitions oldest first; due checks most
overdue first; newest-first paging."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import attrs
import pytest

from gateway.models.payments import PaymentStatus
from gateway.models.time import utcnow
from gateway.store import Store
from gateway.store.sqlite_payments import LostIdempotencyClaim
from tests.store import factories as f

S = PaymentStatus


async def _insert(store: Store, *payments: object) -> None:
    for p in payments:
        await store.insert_payment(p, f.move(p.status))  # type: ignore[arg-type, attr-defined]


async def test_a_payment_is_read_back_whole_with_its_first_transition(store: Store) -> None:
    record = f.payment(amount=Decimal("0.01"), customer_id="cus_1", live=True, provider_ref="py_1",
                       authorisation_url="https://bank.example/a", redirect_uri="https://app.example/r",
                       upstream_status="AwaitingAuthorisation", next_check_at=utcnow() + timedelta(minutes=1),
                       check_attempts=2)
    first = f.move(S.AWAITING_AUTHORISATION, upstream_status="AwaitingAuthorisation", reason="created")
    await store.insert_payment(record, first)
    found = await store.get_payment(f.TENANT, record.id)
    assert found == record and found.version == 0
    assert isinstance(found.amount, Decimal) and found.amount == Decimal("0.01")
    assert await store.payment_transitions(f.TENANT, record.id) == [first]


async def test_amounts_keep_every_digit(store: Store) -> None:
    for text in ("1234567890123.45", "0.10", "99999999.99", "7"):
        record = f.payment(amount=Decimal(text))
        await _insert(store, record)
        assert str((await store.get_payment(f.TENANT, record.id)).amount.normalize()) == str(
            Decimal(text).normalize())


async def test_another_tenants_payment_does_not_exist_for_the_caller(store: Store) -> None:
    record = f.payment()
    await _insert(store, record)
    assert await store.get_payment(f.OTHER, record.id) is None
    assert await store.payment_transitions(f.OTHER, record.id) == []
    assert await store.get_payment(f.TENANT, "pay_nothing") is None
    assert await store.update_payment(attrs.evolve(record, tenant=f.OTHER, status=S.CANCELLED), []) is False
    assert (await store.get_payment(f.TENANT, record.id)).status is S.AWAITING_AUTHORISATION


async def test_insert_payment_keeps_the_response_under_the_key(store: Store) -> None:
    claim = await store.claim_idempotency_key(f.key_claim("k-1", "req-1"))
    record = f.payment()
    await store.insert_payment(record, f.move(record.status), f.answer("k-1", "req-1", body=b'{"id": "x"}'))
    kept = await store.get_idempotency_key(f.TENANT, "k-1")
    assert kept.state == "done" and kept.status == 201 and kept.body == b'{"id": "x"}'
    assert kept.content_type == "application/json" and kept.owner == claim.owner
    assert await store.get_payment(f.TENANT, record.id) == record


async def test_insert_payment_with_a_lost_claim_writes_nothing(store: Store) -> None:
    now = utcnow()
    await store.claim_idempotency_key(f.key_claim("k-1", "req-1", lease=-1, now=now - timedelta(seconds=5)))
    taken = await store.claim_idempotency_key(f.key_claim("k-1", "req-2", now=now))
    assert taken.owner == "req-2"
    record = f.payment()
    with pytest.raises(LostIdempotencyClaim):
        await store.insert_payment(record, f.move(record.status), f.answer("k-1", "req-1"))
    assert await store.get_payment(f.TENANT, record.id) is None
    assert await store.payment_transitions(f.TENANT, record.id) == []
    assert await store.list_payments(f.TENANT, limit=10, after=None) == []
    kept = await store.get_idempotency_key(f.TENANT, "k-1")
    assert kept.state == "in_progress" and kept.owner == "req-2"


async def test_update_payment_on_the_version_read_bumps_it(store: Store) -> None:
    record = f.payment()
    await _insert(store, record)
    record.status, record.upstream_status, record.updated_at = S.AUTHORISED, "Authorised", utcnow()
    record.upstream = {"nonce": "n-2"}
    record.next_check_at, record.check_attempts = utcnow() + timedelta(minutes=5), 1
    assert await store.update_payment(record, [f.move(S.AUTHORISED, S.AWAITING_AUTHORISATION)]) is True
    assert record.version == 1
    stored = await store.get_payment(f.TENANT, record.id)
    assert stored == record and stored.version == 1
    record.status = S.SUBMITTED
    assert await store.update_payment(record, [f.move(S.SUBMITTED, S.AUTHORISED)]) is True
    assert record.version == 2 and (await store.get_payment(f.TENANT, record.id)).version == 2


async def test_a_stale_update_payment_writes_nothing(store: Store) -> None:
    record = f.payment()
    await _insert(store, record)
    stale = attrs.evolve(record)
    record.status = S.AUTHORISED
    assert await store.update_payment(record, [f.move(S.AUTHORISED, S.AWAITING_AUTHORISATION)]) is True
    stale.status, stale.status_reason = S.CANCELLED, "cancelled by the caller"
    assert await store.update_payment(stale, [f.move(S.CANCELLED, S.AWAITING_AUTHORISATION)]) is False
    assert stale.version == 0
    stored = await store.get_payment(f.TENANT, record.id)
    assert stored.status is S.AUTHORISED and stored.version == 1 and stored.status_reason is None
    assert [t.status for t in await store.payment_transitions(f.TENANT, record.id)] == [
        S.AWAITING_AUTHORISATION, S.AUTHORISED]


async def test_update_payment_keeps_the_response_under_the_key(store: Store) -> None:
    record = f.payment()
    await _insert(store, record)
    await store.claim_idempotency_key(f.key_claim("cancel-1", "req-9"))
    record.status = S.CANCELLED
    assert await store.update_payment(record, [f.move(S.CANCELLED, S.AWAITING_AUTHORISATION)],
                                      response=f.answer("cancel-1", "req-9", status=200, body=b"{}")) is True
    kept = await store.get_idempotency_key(f.TENANT, "cancel-1")
    assert kept.state == "done" and kept.status == 200 and kept.body == b"{}"


async def test_update_payment_with_a_lost_claim_writes_nothing(store: Store) -> None:
    record = f.payment()
    await _insert(store, record)
    await store.claim_idempotency_key(f.key_claim("cancel-1", "req-other"))
    changed = attrs.evolve(record, status=S.CANCELLED)
    with pytest.raises(LostIdempotencyClaim):
        await store.update_payment(changed, [f.move(S.CANCELLED, S.AWAITING_AUTHORISATION)],
                                   response=f.answer("cancel-1", "req-9"))
    stored = await store.get_payment(f.TENANT, record.id)
    assert stored.status is S.AWAITING_AUTHORISATION and stored.version == 0
    assert len(await store.payment_transitions(f.TENANT, record.id)) == 1
    assert await store.list_events(f.TENANT, after_seq=0, limit=10) == []


async def test_payment_transitions_oldest_first(store: Store) -> None:
    record = f.payment()
    base = utcnow()
    moves = [f.move(S.AWAITING_AUTHORISATION, at=base),
             f.move(S.AUTHORISED, S.AWAITING_AUTHORISATION, at=base + timedelta(seconds=1), upstream_status="A"),
             f.move(S.SUBMITTED, S.AUTHORISED, at=base + timedelta(seconds=2), reason="sent"),
             f.move(S.PENDING, S.SUBMITTED, at=base + timedelta(seconds=2)),
             f.move(S.COMPLETED, S.PENDING, at=base + timedelta(seconds=3), upstream_status="Settled")]
    await store.insert_payment(record, moves[0])
    assert await store.update_payment(record, moves[1:3]) is True
    assert await store.update_payment(record, []) is True  # no transition: the payment alone
    assert await store.update_payment(record, moves[3:]) is True
    assert await store.payment_transitions(f.TENANT, record.id) == moves
    assert record.version == 3


async def test_due_payments_most_overdue_first_across_tenants(store: Store) -> None:
    now = utcnow()
    late = f.payment(f.OTHER, next_check_at=now - timedelta(minutes=10))
    due = f.payment(next_check_at=now - timedelta(minutes=1))
    exactly = f.payment(next_check_at=now)
    future = f.payment(next_check_at=now + timedelta(minutes=1))
    never = f.payment(next_check_at=None)
    await _insert(store, due, future, never, late, exactly)
    assert [p.id for p in await store.due_payments(now, 10)] == [late.id, due.id, exactly.id]
    assert [p.id for p in await store.due_payments(now, 2)] == [late.id, due.id]
    assert await store.due_payments(now - timedelta(hours=1), 10) == []
    due.next_check_at = None
    assert await store.update_payment(due, []) is True
    assert [p.id for p in await store.due_payments(now, 10)] == [late.id, exactly.id]


async def test_find_payments_by_ref_looks_across_tenants(store: Store) -> None:
    a, b = f.payment(f.TENANT, provider_ref="py_shared"), f.payment(f.OTHER, provider_ref="py_shared")
    await _insert(store, a, b, f.payment(provider_ref="py_other"), f.payment(provider_ref=None))
    found = await store.find_payments_by_ref("stripe-uk", "py_shared")
    assert sorted(found, key=lambda p: p.tenant) == [a, b]
    assert await store.find_payments_by_ref("thredd", "py_shared") == []


async def test_list_payments_newest_first_in_pages(store: Store) -> None:
    base = utcnow()
    records = [f.payment(created_at=base - timedelta(minutes=i)) for i in range(5)]
    tied = [f.payment(created_at=base - timedelta(minutes=9), id=f"pay_tie_{i}") for i in range(2)]
    await _insert(store, *reversed(records), *tied, f.payment(f.OTHER))
    first = await store.list_payments(f.TENANT, limit=4, after=None)
    assert [p.id for p in first] == [p.id for p in records[:4]]
    rest = await store.list_payments(f.TENANT, limit=4, after=f.position(first[-1]))
    assert [p.id for p in rest] == [records[4].id, "pay_tie_1", "pay_tie_0"]
    assert await store.list_payments(f.TENANT, limit=4, after=f.position(rest[1])) == [
        await store.get_payment(f.TENANT, "pay_tie_0")]
    assert len(await store.list_payments(f.OTHER, limit=10, after=None)) == 1
