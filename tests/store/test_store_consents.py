"""Consents and their accounts through the Store interface, on every backend: stored whole, compare-and-set,
newest-first paging, found by upstream reference, and what a consent leaves behind deleted when it ends or stops
covering an account."""
from __future__ import annotations

from datetime import timedelta, timezone

import attrs

from gateway.models import ConsentStatus, ReportStatus
from gateway.models.time import utcnow
from gateway.store import Store
from tests.store import factories as f


async def _consents(store: Store, *records: object) -> None:
    for record in records:
        await store.insert_consent(record)  # type: ignore[arg-type]


# --- consents -----------------------------------------------------------------------------------------------------
async def test_a_consent_is_read_back_whole(store: Store) -> None:
    now = utcnow()
    record = f.consent(customer_id="cus_1", authorisation_url="https://bank.example/auth?x=1",
                       redirect_uri="https://app.example/back", institution_id="inst-9", authorised_at=now,
                       expires_at=now + timedelta(days=90), status_reason="the bank said yes")
    await store.insert_consent(record)
    found = await store.get_consent(f.TENANT, record.id)
    assert found == record
    assert found.permissions == ("accounts", "transactions") and found.upstream["nested"] == {"n": [1, 2]}
    bare = f.consent(status=ConsentStatus.AWAITING_AUTHORISATION, provider_ref=None, permissions=(), upstream={})
    await store.insert_consent(bare)
    assert await store.get_consent(f.TENANT, bare.id) == bare


async def test_another_tenants_consent_does_not_exist_for_the_caller(store: Store) -> None:
    record = f.consent()
    await store.insert_consent(record)
    assert await store.get_consent(f.OTHER, record.id) is None
    assert await store.get_consent(f.TENANT, "con_nothing") is None


async def test_update_consent_writes_every_field(store: Store) -> None:
    record = f.consent(status=ConsentStatus.AWAITING_AUTHORISATION)
    await store.insert_consent(record)
    changed = attrs.evolve(record, provider_ref="cref-new", institution_id="inst-2", permissions=("accounts",),
                           expires_at=utcnow() + timedelta(days=30), upstream={"token": "sealed"})
    changed.set_status(ConsentStatus.AUTHORISED, "approved", utcnow())
    assert await store.update_consent(changed) is True
    assert await store.get_consent(f.TENANT, record.id) == changed


async def test_update_of_an_unknown_or_foreign_consent_is_false(store: Store) -> None:
    record = f.consent()
    await store.insert_consent(record)
    assert await store.update_consent(f.consent()) is False
    foreign = attrs.evolve(record, tenant=f.OTHER, status=ConsentStatus.REVOKED)
    assert await store.update_consent(foreign) is False
    assert await store.get_consent(f.TENANT, record.id) == record
    assert await store.get_consent(f.OTHER, record.id) is None


async def test_update_consent_compare_and_set(store: Store) -> None:
    record = f.consent()
    await store.insert_consent(record)
    seen = record.updated_at
    first = attrs.evolve(record, status_reason="first", updated_at=seen + timedelta(seconds=1))
    assert await store.update_consent(first, expected_updated_at=seen) is True
    stale = attrs.evolve(record, status_reason="second", updated_at=seen + timedelta(seconds=2))
    assert await store.update_consent(stale, expected_updated_at=seen) is False
    assert await store.get_consent(f.TENANT, record.id) == first
    fresh = attrs.evolve(first, status_reason="third", updated_at=seen + timedelta(seconds=3))
    assert await store.update_consent(fresh, expected_updated_at=first.updated_at) is True
    assert (await store.get_consent(f.TENANT, record.id)).status_reason == "third"


async def test_list_consents_newest_first_in_pages(store: Store) -> None:
    base = utcnow()
    records = [f.consent(created_at=base - timedelta(minutes=i)) for i in range(7)]  # records[0] is the newest
    await _consents(store, *reversed(records), f.consent(f.OTHER))
    first = await store.list_consents(f.TENANT, customer_id=None, limit=3, after=None)
    assert [c.id for c in first] == [c.id for c in records[:3]]
    second = await store.list_consents(f.TENANT, customer_id=None, limit=3, after=f.position(first[-1]))
    assert [c.id for c in second] == [c.id for c in records[3:6]]
    third = await store.list_consents(f.TENANT, customer_id=None, limit=3, after=f.position(second[-1]))
    assert [c.id for c in third] == [records[6].id]
    assert await store.list_consents(f.TENANT, customer_id=None, limit=3, after=f.position(third[-1])) == []
    assert first[0] == records[0]


async def test_list_consents_breaks_ties_on_created_at_by_id(store: Store) -> None:
    at = utcnow()
    records = [f.consent(created_at=at, id=f"con_tie_{i}") for i in range(4)]
    await _consents(store, *records)
    seen = []
    after = None
    while page := await store.list_consents(f.TENANT, customer_id=None, limit=1, after=after):
        seen.append(page[0].id)
        after = f.position(page[0])
    assert seen == ["con_tie_3", "con_tie_2", "con_tie_1", "con_tie_0"]


async def test_times_in_any_utc_offset_are_the_same_instants(store: Store) -> None:
    base = utcnow()
    sydney, new_york = timezone(timedelta(hours=10)), timezone(timedelta(hours=-5))
    middle = f.consent(created_at=(base - timedelta(minutes=1)).astimezone(sydney))
    newest = f.consent(created_at=base)
    oldest = f.consent(created_at=(base - timedelta(minutes=2)).astimezone(new_york))
    await _consents(store, middle, newest, oldest)
    listed = await store.list_consents(f.TENANT, customer_id=None, limit=10, after=None)
    assert [c.id for c in listed] == [newest.id, middle.id, oldest.id]
    assert listed[1].created_at == middle.created_at  # the same instant, whatever offset it is read back in
    assert [c.id for c in await store.list_consents(f.TENANT, customer_id=None, limit=10,
                                                     after=f.position(middle))] == [oldest.id]
    changed = attrs.evolve(middle, status_reason="seen from New York", updated_at=utcnow())
    assert await store.update_consent(changed, expected_updated_at=middle.updated_at.astimezone(new_york)) is True


async def test_list_consents_of_one_customer(store: Store) -> None:
    base = utcnow()
    mine = [f.consent(customer_id="cus_a", created_at=base - timedelta(seconds=i)) for i in range(3)]
    theirs = f.consent(customer_id="cus_b")
    await _consents(store, *mine, theirs, f.consent(f.OTHER, customer_id="cus_a"))
    listed = await store.list_consents(f.TENANT, customer_id="cus_a", limit=10, after=None)
    assert [c.id for c in listed] == [c.id for c in mine]
    page = await store.list_consents(f.TENANT, customer_id="cus_a", limit=10, after=f.position(mine[0]))
    assert [c.id for c in page] == [c.id for c in mine[1:]]
    assert [c.id for c in await store.list_consents(f.TENANT, customer_id="cus_b", limit=10, after=None)] == [
        theirs.id]
    assert await store.list_consents(f.OTHER, customer_id="cus_b", limit=10, after=None) == []


async def test_find_consents_by_ref_looks_across_tenants_newest_first(store: Store) -> None:
    older = f.consent(f.TENANT, provider_ref="shared-ref", created_at=utcnow() - timedelta(hours=1))
    newer = f.consent(f.OTHER, provider_ref="shared-ref")
    await _consents(store, older, newer, f.consent(provider_ref="other-ref"),
                    f.consent(provider_ref="shared-ref", provider="thredd"))
    assert [c.id for c in await store.find_consents_by_ref(f.PROVIDER, "shared-ref")] == [newer.id, older.id]
    assert await store.find_consents_by_ref(f.PROVIDER, "nothing") == []


# --- accounts -----------------------------------------------------------------------------------------------------
async def test_accounts_are_upserted_and_listed_per_consent(store: Store) -> None:
    con, other = f.consent(), f.consent()
    await _consents(store, con, other)
    a1, a2 = f.account(con, "ref-1", id="acc_1"), f.account(con, "ref-2", id="acc_2")
    await store.upsert_accounts([a2, a1, f.account(other, "ref-9")])
    assert await store.list_accounts(f.TENANT, con.id) == [a1, a2]
    await store.upsert_accounts([attrs.evolve(a1, data={"name": "renamed"})])
    listed = await store.list_accounts(f.TENANT, con.id)
    assert [a.data for a in listed] == [{"name": "renamed"}, a2.data]
    assert listed[0].created_at == a1.created_at and listed[0].provider_ref == "ref-1"
    await store.upsert_accounts([])
    assert len(await store.list_accounts(f.TENANT, con.id)) == 2
    assert await store.list_accounts(f.OTHER, con.id) == []


async def test_get_account_gives_the_account_with_its_consent(store: Store) -> None:
    con = f.consent()
    await store.insert_consent(con)
    acc = f.account(con, "ref-1")
    await store.upsert_accounts([acc])
    assert await store.get_account(f.TENANT, acc.id) == (acc, con)
    changed = attrs.evolve(con, status=ConsentStatus.REAUTHENTICATION_REQUIRED, status_reason="log in again")
    await store.update_consent(changed)
    assert (await store.get_account(f.TENANT, acc.id))[1] == changed  # the consent as it is now
    assert await store.get_account(f.OTHER, acc.id) is None
    assert await store.get_account(f.TENANT, "acc_nothing") is None


async def test_delete_consent_data_removes_accounts_and_reports_of_that_consent_only(store: Store) -> None:
    con, kept = f.consent(customer_id="cus_1"), f.consent(customer_id="cus_1")
    await _consents(store, con, kept)
    await store.upsert_accounts([f.account(con, "r1"), f.account(con, "r2"), f.account(kept, "r3")])
    gone_report, kept_report = f.report(con), f.report(kept)
    await store.insert_report(gone_report)
    await store.insert_report(kept_report)
    assert await store.delete_consent_data(f.OTHER, con.id) == 0
    assert await store.delete_consent_data(f.TENANT, con.id) == 3
    assert await store.list_accounts(f.TENANT, con.id) == []
    assert await store.get_report(f.TENANT, gone_report.id) is None
    assert len(await store.list_accounts(f.TENANT, kept.id)) == 1
    assert await store.get_report(f.TENANT, kept_report.id) == kept_report
    assert await store.get_consent(f.TENANT, con.id) == con  # the consent itself stays
    assert await store.delete_consent_data(f.TENANT, con.id) == 0


async def test_forget_accounts_of_an_ended_consent_deletes_everything(store: Store) -> None:
    con, kept = f.consent(), f.consent()
    await _consents(store, con, kept)
    accounts = [f.account(con, "r1"), f.account(con, "r2")]
    await store.upsert_accounts([*accounts, f.account(kept, "r1")])
    rep = f.report(con, status=ReportStatus.READY)
    await store.insert_report(rep)
    con.set_status(ConsentStatus.REVOKED, "by the customer", utcnow())
    assert await store.forget_accounts(con, ("r1",)) == 3  # ended: every account and report, not only r1
    assert await store.get_consent(f.TENANT, con.id) == con
    assert await store.list_accounts(f.TENANT, con.id) == []
    assert await store.get_account(f.TENANT, accounts[1].id) is None
    assert await store.get_report(f.TENANT, rep.id) is None
    assert len(await store.list_accounts(f.TENANT, kept.id)) == 1


async def test_forget_accounts_of_a_live_consent_deletes_only_the_named_accounts(store: Store) -> None:
    con = f.consent()
    await store.insert_consent(con)
    a1, a2, a3 = f.account(con, "r1"), f.account(con, "r2"), f.account(con, "r3")
    await store.upsert_accounts([a1, a2, a3])
    rep = f.report(con)
    await store.insert_report(rep)
    con.upstream = {"account_refs": ["r2"]}
    con.updated_at = utcnow()
    assert await store.forget_accounts(con, ("r1", "r3", "r-unknown")) == 2
    assert await store.list_accounts(f.TENANT, con.id) == [a2]
    assert await store.get_report(f.TENANT, rep.id) == rep
    assert await store.get_consent(f.TENANT, con.id) == con
    assert await store.forget_accounts(con, ()) == 0
    assert await store.list_accounts(f.TENANT, con.id) == [a2]


async def test_forget_accounts_compare_and_set(store: Store) -> None:
    con = f.consent()
    await store.insert_consent(con)
    acc = f.account(con, "r1")
    await store.upsert_accounts([acc])
    seen = con.updated_at
    meanwhile = attrs.evolve(con, status_reason="changed elsewhere", updated_at=seen + timedelta(seconds=1))
    assert await store.update_consent(meanwhile) is True
    ended = attrs.evolve(con)
    ended.set_status(ConsentStatus.EXPIRED, "time is up", seen + timedelta(seconds=2))
    assert await store.forget_accounts(ended, (), expected_updated_at=seen) is None
    assert await store.get_consent(f.TENANT, con.id) == meanwhile
    assert await store.list_accounts(f.TENANT, con.id) == [acc]
    assert await store.forget_accounts(ended, (), expected_updated_at=meanwhile.updated_at) == 1
    assert (await store.get_consent(f.TENANT, con.id)).status is ConsentStatus.EXPIRED
    assert await store.list_accounts(f.TENANT, con.id) == []


async def test_forget_accounts_compare_and_set_on_another_tenant_writes_nothing(store: Store) -> None:
    con = f.consent()
    await store.insert_consent(con)
    await store.upsert_accounts([f.account(con, "r1")])
    foreign = attrs.evolve(con, tenant=f.OTHER, status=ConsentStatus.REVOKED)
    assert await store.forget_accounts(foreign, (), expected_updated_at=con.updated_at) is None
    assert await store.get_consent(f.TENANT, con.id) == con
    assert len(await store.list_accounts(f.TENANT, con.id)) == 1
