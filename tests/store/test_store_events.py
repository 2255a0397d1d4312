"""Canonical events through the Store interface, on every backend: a status change and its event are written
together or not at all; events are read oldest first by seq, filtered, per tenant; listeners hear of writes."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import attrs
import pytest

from gateway.events import canonical
from gateway.events.canonical import EventRecord
from gateway.models import ConsentStatus, ReportStatus
from gateway.models.payments import PaymentStatus
from gateway.models.time import utcnow
from gateway.store import Store
from tests.store import factories as f

S = PaymentStatus


async def _events(store: Store, tenant: str = f.TENANT, **kw: object) -> list[EventRecord]:
    return await store.list_events(tenant, after_seq=0, limit=1000, **kw)  # type: ignore[arg-type]


# --- consent status changes ---------------------------------------------------------------------------------------
async def test_update_consent_with_a_status_change_writes_one_event(store: Store) -> None:
    con = f.consent(status=ConsentStatus.AWAITING_AUTHORISATION, customer_id="cus_1")
    await store.insert_consent(con)
    assert await _events(store) == []
    con.set_status(ConsentStatus.AUTHORISED, None, utcnow())
    assert await store.update_consent(con) is True
    [event] = await _events(store)
    assert event.type == canonical.CONSENT_AUTHORISED and event.tenant == f.TENANT
    assert (event.subject_type, event.subject_id, event.order_key) == ("consent", con.id, con.id)
    assert event.data["consent"]["status"] == "authorised" and event.data["consent"]["customer_id"] == "cus_1"
    assert event.data["previous_status"] == "awaiting_authorisation"
    assert event.created_at == con.updated_at and event.seq > 0
    assert await store.get_event(f.TENANT, event.id) == event


@pytest.mark.parametrize(("status", "kind"), [
    (ConsentStatus.REVOKED, canonical.CONSENT_REVOKED), (ConsentStatus.EXPIRED, canonical.CONSENT_EXPIRED),
    (ConsentStatus.REJECTED, canonical.CONSENT_REJECTED),
    (ConsentStatus.REAUTHENTICATION_REQUIRED, canonical.CONSENT_REAUTHENTICATION_REQUIRED),
])
async def test_each_consent_status_has_its_event(store: Store, status: ConsentStatus, kind: str) -> None:
    con = f.consent()
    await store.insert_consent(con)
    con.set_status(status, "why", utcnow())
    assert await store.update_consent(con) is True
    assert [(e.type, e.data["previous_status"]) for e in await _events(store)] == [(kind, "authorised")]


async def test_no_status_change_no_event(store: Store) -> None:
    con = f.consent()
    await store.insert_consent(con)
    assert await store.update_consent(attrs.evolve(con, upstream={"x": 1}, updated_at=utcnow())) is True
    assert await store.forget_accounts(attrs.evolve(con, updated_at=utcnow()), ()) == 0
    assert await store.record_inbound_event(f.inbound(), attrs.evolve(con, updated_at=utcnow())) is True
    waiting = f.consent(status=ConsentStatus.REAUTHENTICATION_REQUIRED)
    await store.insert_consent(waiting)
    waiting.set_status(ConsentStatus.AWAITING_AUTHORISATION, None, utcnow())  # a status no event describes
    assert await store.update_consent(waiting) is True
    assert await _events(store) == []


async def test_a_stale_compare_and_set_writes_neither_change_nor_event(store: Store) -> None:
    con = f.consent()
    await store.insert_consent(con)
    seen = con.updated_at
    assert await store.update_consent(attrs.evolve(con, updated_at=seen + timedelta(seconds=1))) is True
    revoked = attrs.evolve(con)
    revoked.set_status(ConsentStatus.REVOKED, "late", seen + timedelta(seconds=2))
    assert await store.update_consent(revoked, expected_updated_at=seen) is False
    assert await store.forget_accounts(revoked, (), expected_updated_at=seen) is None
    assert (await store.get_consent(f.TENANT, con.id)).status is ConsentStatus.AUTHORISED
    assert await _events(store) == []


async def test_forget_accounts_ending_a_consent_writes_one_event(store: Store) -> None:
    con = f.consent()
    await store.insert_consent(con)
    await store.upsert_accounts([f.account(con, "r1")])
    seen = con.updated_at
    con.set_status(ConsentStatus.EXPIRED, "time is up", utcnow())
    assert await store.forget_accounts(con, (), expected_updated_at=seen) == 1
    assert [e.type for e in await _events(store)] == [canonical.CONSENT_EXPIRED]


async def test_forget_accounts_of_a_live_consent_says_which_accounts_went(store: Store) -> None:
    con = f.consent()
    await store.insert_consent(con)
    a1, a2, a3 = f.account(con, "r1"), f.account(con, "r2"), f.account(con, "r3")
    await store.upsert_accounts([a1, a2, a3])
    assert await store.forget_accounts(attrs.evolve(con, updated_at=utcnow()), ("r1", "r3")) == 2
    [event] = await _events(store)
    assert event.type == canonical.ACCOUNTS_REMOVED and event.order_key == con.id
    assert sorted(event.data["account_ids"]) == sorted([a1.id, a3.id])
    assert await store.forget_accounts(attrs.evolve(con, updated_at=utcnow()), ("r1",)) == 0
    assert len(await _events(store)) == 1  # nothing was removed: nothing to say


async def test_forget_accounts_for_a_consent_not_stored_writes_no_event(
        store: Store, backend: str, request: pytest.FixtureRequest) -> None:
    con = f.consent()
    await store.insert_consent(con)
    ghost = f.consent()
    ghost.set_status(ConsentStatus.REVOKED, "never stored", utcnow())
    foreign = attrs.evolve(con, tenant=f.OTHER)
    foreign.set_status(ConsentStatus.REVOKED, "not theirs", utcnow())
    await store.forget_accounts(ghost, ())
    await store.forget_accounts(foreign, ())
    assert await store.get_consent(f.OTHER, con.id) is None
    assert await _events(store) == [] and await _events(store, f.OTHER) == []


async def test_an_inbound_event_for_a_consent_not_stored_writes_no_consent_event(
        store: Store, backend: str, request: pytest.FixtureRequest) -> None:
    con = f.consent()
    await store.insert_consent(con)
    foreign = attrs.evolve(con, tenant=f.OTHER)
    foreign.set_status(ConsentStatus.REVOKED, "not theirs", utcnow())
    assert await store.record_inbound_event(f.inbound(), foreign) is True
    assert (await store.get_consent(f.TENANT, con.id)).status is ConsentStatus.AUTHORISED
    assert await _events(store, f.OTHER) == []


async def test_an_inbound_event_writes_the_events_its_changes_mean(store: Store) -> None:
    con = f.consent(customer_id="cus_1")
    await store.insert_consent(con)
    rep = f.report(con)
    await store.insert_report(rep)
    con.set_status(ConsentStatus.REAUTHENTICATION_REQUIRED, "log in again", utcnow())
    done = attrs.evolve(rep, status=ReportStatus.READY, updated_at=utcnow())
    extra = canonical.connection_error(con, "E1", "the bank is down", True)
    assert await store.record_inbound_event(f.inbound(), con, report=done, events=[extra]) is True
    kinds = [e.type for e in await _events(store)]
    assert sorted(kinds) == sorted([canonical.CONSENT_REAUTHENTICATION_REQUIRED, canonical.REPORT_COMPLETED,
                                    canonical.CONNECTION_ERROR])
    assert (await store.get_event(f.TENANT, extra.id)).data["error"]["provider_code"] == "E1"


async def test_an_inbound_event_ending_the_consent_takes_its_report_along(store: Store) -> None:
    con = f.consent(customer_id="cus_1")
    await store.insert_consent(con)
    rep = f.report(con)
    await store.insert_report(rep)
    con.set_status(ConsentStatus.REVOKED, "revoked at the bank", utcnow())
    done = attrs.evolve(rep, status=ReportStatus.READY, updated_at=utcnow())
    assert await store.record_inbound_event(f.inbound(), con, report=done) is True
    assert await store.get_report(f.TENANT, rep.id) is None  # deleted with what the consent left behind
    assert [e.type for e in await _events(store)] == [canonical.CONSENT_REVOKED]


async def test_a_repeated_inbound_event_writes_no_event(store: Store) -> None:
    con = f.consent()
    await store.insert_consent(con)
    first = f.inbound()
    assert await store.record_inbound_event(first, None) is True
    con.set_status(ConsentStatus.REVOKED, "replay", utcnow())
    assert await store.record_inbound_event(first, con, events=[f.event(subject_id=con.id)]) is False
    assert await _events(store) == []


# --- reports and payments -----------------------------------------------------------------------------------------
async def test_a_finished_report_writes_its_event(store: Store) -> None:
    con = f.consent(customer_id="cus_1")
    await store.insert_consent(con)
    ready, failed, waiting = f.report(con), f.report(con), f.report(con)
    for rep in (ready, failed, waiting):
        await store.insert_report(rep)
    await store.update_report(attrs.evolve(waiting, updated_at=utcnow()))  # still pending
    assert await _events(store) == []
    await store.update_report(attrs.evolve(ready, status=ReportStatus.READY, updated_at=utcnow()))
    await store.update_report(attrs.evolve(failed, status=ReportStatus.FAILED, status_reason="no", updated_at=utcnow()))
    await store.update_report(attrs.evolve(ready, status=ReportStatus.READY, updated_at=utcnow()))  # again: no change
    events = await _events(store)
    assert [(e.type, e.subject_id) for e in events] == [(canonical.REPORT_COMPLETED, ready.id),
                                                         (canonical.REPORT_FAILED, failed.id)]
    assert events[0].subject_type == "report" and events[0].order_key == con.id


async def test_update_payment_writes_one_event_per_transition(store: Store) -> None:
    record = f.payment()
    await store.insert_payment(record, f.move(S.AWAITING_AUTHORISATION))
    assert await _events(store) == []  # creation is no status change
    record.status = S.SUBMITTED
    moves = [f.move(S.AUTHORISED, S.AWAITING_AUTHORISATION), f.move(S.AUTHORISED, S.AUTHORISED),
             f.move(S.SUBMITTED, S.AUTHORISED, upstream_status="Sent")]
    assert await store.update_payment(record, moves) is True
    events = await _events(store)
    assert [e.type for e in events] == [canonical.PAYMENT_STATUS_CHANGED] * 2
    assert [(e.data["previous_status"], e.data["payment"]["status"]) for e in events] == [
        ("awaiting_authorisation", "authorised"), ("authorised", "submitted")]
    assert events[0].seq < events[1].seq and {e.order_key for e in events} == {record.id}
    assert events[1].data["provider_status"] == "Sent" and events[1].data["payment"]["amount"] == "1234.56"
    stale = attrs.evolve(record, version=0, status=S.CANCELLED)
    assert await store.update_payment(stale, [f.move(S.CANCELLED, S.SUBMITTED)]) is False
    assert len(await _events(store)) == 2


# --- reading events -----------------------------------------------------------------------------------------------
async def test_emitted_events_are_listed_oldest_first_by_seq(store: Store) -> None:
    batch = [f.event(type_=t) for t in ("connection.error", "accounts.added", "connection.error")]
    await store.emit_events(batch[:2])
    await store.emit_events(batch[2:])
    events = await _events(store)
    assert [e.id for e in events] == [e.id for e in batch]
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert [attrs.evolve(e, seq=0) for e in events] == [attrs.evolve(e, seq=0) for e in batch]
    after_first = await store.list_events(f.TENANT, after_seq=seqs[0], limit=10)
    assert [e.id for e in after_first] == [e.id for e in batch[1:]]
    assert [e.id for e in await store.list_events(f.TENANT, after_seq=0, limit=2)] == [e.id for e in batch[:2]]
    assert await store.list_events(f.TENANT, after_seq=seqs[-1], limit=10) == []


async def test_list_events_by_type(store: Store) -> None:
    batch = [f.event(type_=t) for t in ("connection.error", "accounts.added", "accounts.removed")]
    await store.emit_events(batch)
    picked = await store.list_events(f.TENANT, after_seq=0, limit=10, types=("accounts.added", "accounts.removed"))
    assert [e.id for e in picked] == [batch[1].id, batch[2].id]
    assert await store.list_events(f.TENANT, after_seq=0, limit=10, types=("report.failed",)) == []


async def test_list_events_by_delivery_status(store: Store) -> None:
    sub = f.subscription()
    await store.insert_subscription(sub)
    batch = [f.event(), f.event()]
    await store.emit_events(batch)
    assert [e.id for e in await _events(store, delivery_status="pending")] == [e.id for e in batch]
    assert await _events(store, delivery_status="failed") == []
    now = utcnow()
    [claimed] = await store.claim_deliveries("w1", now, now + timedelta(seconds=30), 1, per_subscription=5, busy={})
    dead = attrs.evolve(claimed.delivery, status="failed", attempts=1, next_attempt_at=None, last_attempt_at=now,
                        last_status=500, last_error="answered HTTP 500")
    assert await store.finish_delivery(dead, "w1") is True
    assert [e.id for e in await _events(store, delivery_status="failed")] == [batch[0].id]
    assert [e.id for e in await _events(store, delivery_status="pending")] == [batch[1].id]


async def test_events_belong_to_their_tenant(store: Store) -> None:
    mine, theirs = f.event(f.TENANT), f.event(f.OTHER)
    await store.emit_events([mine, theirs])
    assert [e.id for e in await _events(store)] == [mine.id]
    assert [e.id for e in await _events(store, f.OTHER)] == [theirs.id]
    assert await store.get_event(f.OTHER, mine.id) is None
    assert await store.get_event(f.TENANT, "evt_nothing") is None
    assert (await store.get_event(f.TENANT, mine.id)).data == mine.data


async def test_listeners_hear_of_writes_that_emitted_events(store: Store) -> None:
    heard: list[int] = []
    store.event_listeners.append(lambda: heard.append(1))
    con = f.consent()
    await store.insert_consent(con)
    con.set_status(ConsentStatus.REVOKED, "by the customer", utcnow())
    assert await store.update_consent(con) is True
    await _until(lambda: len(heard) >= 1)
    before = len(heard)
    await store.emit_events([f.event()])
    await _until(lambda: len(heard) > before)


async def _until(predicate: object, timeout: float = 2.0) -> None:
    """Listeners are told on the event loop, perhaps a moment after the write returns."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "no listener was told"
        await asyncio.sleep(0.01)
