"""Reports, registered applications, provider secrets and inbound provider events through the Store interface, on
every backend. An inbound event is kept once per (provider, event id): the second delivery writes nothing."""
from __future__ import annotations

from datetime import timedelta

import attrs

from gateway.models import ConsentStatus, ReportStatus
from gateway.models.time import utcnow
from gateway.store import Store
from tests.store import factories as f


# --- reports ------------------------------------------------------------------------------------------------------
async def test_a_report_is_read_back_whole(store: Store) -> None:
    con = f.consent(customer_id="cus_1")
    await store.insert_consent(con)
    rep = f.report(con, interval_types=("monthly", "yearly"), status_reason=None)
    await store.insert_report(rep)
    assert await store.get_report(f.TENANT, rep.id) == rep
    assert await store.get_report(f.OTHER, rep.id) is None
    assert await store.get_report(f.TENANT, "rep_nothing") is None


async def test_update_report_writes_its_state(store: Store) -> None:
    con = f.consent(customer_id="cus_1")
    await store.insert_consent(con)
    rep = f.report(con)
    await store.insert_report(rep)
    done = attrs.evolve(rep, status=ReportStatus.FAILED, status_reason="no data", updated_at=utcnow())
    assert await store.update_report(done) is True
    assert await store.get_report(f.TENANT, rep.id) == done
    assert await store.update_report(f.report(con)) is False  # never inserted
    assert await store.update_report(attrs.evolve(done, tenant=f.OTHER, status=ReportStatus.READY)) is False
    assert (await store.get_report(f.TENANT, rep.id)).status is ReportStatus.FAILED


async def test_list_reports_newest_first_by_customer_and_paged(store: Store) -> None:
    con = f.consent(customer_id="cus_1")
    await store.insert_consent(con)
    base = utcnow()
    mine = [f.report(con, customer_id="cus_1", created_at=base - timedelta(minutes=i)) for i in range(5)]
    theirs = f.report(con, customer_id="cus_2", created_at=base - timedelta(seconds=30))
    for rep in (*reversed(mine), theirs):
        await store.insert_report(rep)
    everything = await store.list_reports(f.TENANT, customer_id=None, limit=10, after=None)
    assert [r.id for r in everything] == [mine[0].id, theirs.id, *[r.id for r in mine[1:]]]
    first = await store.list_reports(f.TENANT, customer_id="cus_1", limit=2, after=None)
    assert [r.id for r in first] == [mine[0].id, mine[1].id]
    rest = await store.list_reports(f.TENANT, customer_id="cus_1", limit=10, after=f.position(first[-1]))
    assert [r.id for r in rest] == [r.id for r in mine[2:]]
    assert await store.list_reports(f.OTHER, customer_id=None, limit=10, after=None) == []


async def test_find_reports_by_ref_looks_across_tenants(store: Store) -> None:
    a, b = f.consent(f.TENANT, customer_id="cus_1"), f.consent(f.OTHER, customer_id="cus_1")
    await store.insert_consent(a)
    await store.insert_consent(b)
    ra, rb = f.report(a, provider_ref="rr-1"), f.report(b, provider_ref="rr-1")
    for rep in (ra, rb, f.report(a, provider_ref="rr-2")):
        await store.insert_report(rep)
    found = await store.find_reports_by_ref(f.PROVIDER, "rr-1")
    assert sorted(found, key=lambda r: r.tenant) == [ra, rb]
    assert await store.find_reports_by_ref("thredd", "rr-1") == []


# --- applications -------------------------------------------------------------------------------------------------
async def test_applications_are_stored_and_their_status_updated(store: Store) -> None:
    app = f.application()
    await store.insert_application(app)
    assert await store.get_application(f.TENANT, app.id) == app
    assert await store.get_application(f.OTHER, app.id) is None
    approved = attrs.evolve(app, status="active", updated_at=app.updated_at + timedelta(minutes=1))
    await store.update_application(approved)
    assert await store.get_application(f.TENANT, app.id) == approved
    await store.update_application(attrs.evolve(approved, tenant=f.OTHER, status="revoked"))
    assert (await store.get_application(f.TENANT, app.id)).status == "active"


# --- provider secrets ---------------------------------------------------------------------------------------------
async def test_secrets_are_put_replaced_and_deleted(store: Store) -> None:
    sealed = bytes(range(256))  # any bytes, not text
    await store.put_secret("mastercard-us", "webhook-key", sealed, utcnow())
    assert await store.get_secret("mastercard-us", "webhook-key") == sealed
    assert await store.get_secret("mastercard-au", "webhook-key") is None
    assert await store.get_secret("mastercard-us", "other") is None
    await store.put_secret("mastercard-us", "webhook-key", b"\x01second", utcnow())
    assert await store.get_secret("mastercard-us", "webhook-key") == b"\x01second"
    await store.put_secret("mastercard-au", "webhook-key", b"au", utcnow())
    await store.delete_secret("mastercard-us", "webhook-key")
    assert await store.get_secret("mastercard-us", "webhook-key") is None
    assert await store.get_secret("mastercard-au", "webhook-key") == b"au"
    await store.delete_secret("mastercard-us", "webhook-key")  # deleting what is gone is fine


# --- inbound events -----------------------------------------------------------------------------------------------
async def test_an_inbound_event_is_kept_once(store: Store) -> None:
    first = f.inbound(tenant=f.TENANT, consent_id="con_1")
    assert await store.record_inbound_event(first, None) is True
    again = attrs.evolve(first, type="somethingElse", payload={"replayed": True}, received_at=utcnow())
    assert await store.record_inbound_event(again, None) is False
    assert await store.list_inbound_events(f.PROVIDER) == [first]
    elsewhere = attrs.evolve(first, provider="mastercard-au")  # the id is the provider's: another provider's is new
    assert await store.record_inbound_event(elsewhere, None) is True
    assert await store.list_inbound_events("mastercard-au") == [elsewhere]


async def test_list_inbound_events_oldest_first_with_a_limit(store: Store) -> None:
    base = utcnow()
    events = [f.inbound(received_at=base - timedelta(minutes=5 - i)) for i in range(5)]
    for event in reversed(events):
        await store.record_inbound_event(event, None)
    assert await store.list_inbound_events(f.PROVIDER) == events
    assert await store.list_inbound_events(f.PROVIDER, limit=2) == events[:2]
    assert await store.list_inbound_events("thredd") == []


async def test_an_inbound_event_writes_the_consent_and_report_with_it(store: Store) -> None:
    con = f.consent(customer_id="cus_1")
    await store.insert_consent(con)
    await store.upsert_accounts([f.account(con, "r1")])
    rep = f.report(con)
    await store.insert_report(rep)
    done = attrs.evolve(rep, status=ReportStatus.READY, updated_at=utcnow())
    live = attrs.evolve(con, upstream={"seen": "webhook"}, updated_at=utcnow())
    assert await store.record_inbound_event(f.inbound(tenant=f.TENANT, consent_id=con.id), live, report=done)
    assert await store.get_consent(f.TENANT, con.id) == live
    assert await store.get_report(f.TENANT, rep.id) == done
    assert len(await store.list_accounts(f.TENANT, con.id)) == 1


async def test_an_inbound_event_ending_a_consent_deletes_what_it_left(store: Store) -> None:
    con = f.consent()
    await store.insert_consent(con)
    await store.upsert_accounts([f.account(con, "r1"), f.account(con, "r2")])
    rep = f.report(con)
    await store.insert_report(rep)
    con.set_status(ConsentStatus.REVOKED, "revoked at the bank", utcnow())
    assert await store.record_inbound_event(f.inbound(), con) is True
    assert (await store.get_consent(f.TENANT, con.id)).status is ConsentStatus.REVOKED
    assert await store.list_accounts(f.TENANT, con.id) == []
    assert await store.get_report(f.TENANT, rep.id) is None


async def test_an_inbound_event_forgets_the_named_accounts_of_a_live_consent(store: Store) -> None:
    con = f.consent()
    await store.insert_consent(con)
    a1, a2 = f.account(con, "r1"), f.account(con, "r2")
    await store.upsert_accounts([a1, a2])
    assert await store.record_inbound_event(f.inbound(), con, forget_account_refs=("r2",)) is True
    assert await store.list_accounts(f.TENANT, con.id) == [a1]
    assert (await store.get_consent(f.TENANT, con.id)).status is ConsentStatus.AUTHORISED


async def test_a_repeated_inbound_event_writes_nothing(store: Store) -> None:
    con = f.consent()
    await store.insert_consent(con)
    await store.upsert_accounts([f.account(con, "r1")])
    rep = f.report(con)
    await store.insert_report(rep)
    event = f.inbound()
    assert await store.record_inbound_event(event, None) is True
    ended = attrs.evolve(con)
    ended.set_status(ConsentStatus.REVOKED, "replayed", utcnow())
    done = attrs.evolve(rep, status=ReportStatus.READY, updated_at=utcnow())
    replay = attrs.evolve(event, payload={"second": True})
    assert await store.record_inbound_event(replay, ended, report=done, forget_account_refs=("r1",),
                                            events=[f.event(subject_id=con.id)]) is False
    assert await store.get_consent(f.TENANT, con.id) == con
    assert await store.get_report(f.TENANT, rep.id) == rep
    assert len(await store.list_accounts(f.TENANT, con.id)) == 1
    assert await store.list_inbound_events(f.PROVIDER) == [event]
    assert await store.list_events(f.TENANT, after_seq=0, limit=10) == []
