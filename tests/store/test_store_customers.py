"""Customers through the Store interface, on every backend: stored whole, found by the caller's reference or the
upstream one, the consumer recorded once, and another tenant's customer never seen."""
from __future__ import annotations

from gateway.models import CustomerType
from gateway.store import Store
from tests.store import factories as f


async def test_ping_answers_when_open(store: Store) -> None:
    assert await store.ping() is True


async def test_a_customer_is_read_back_whole(store: Store) -> None:
    record = f.customer(category="business", abn="51824753556", type=CustomerType.ACTIVE)
    await store.insert_customer(record)
    assert await store.get_customer(f.TENANT, record.id) == record
    plain = f.customer()
    await store.insert_customer(plain)
    found = await store.get_customer(f.TENANT, plain.id)
    assert found == plain and found.category == "individual" and found.abn is None and found.consumer_ref is None


async def test_an_unknown_customer_is_none(store: Store) -> None:
    assert await store.get_customer(f.TENANT, "cus_nothing") is None


async def test_another_tenants_customer_does_not_exist_for_the_caller(store: Store) -> None:
    record = f.customer()
    await store.insert_customer(record)
    assert await store.get_customer(f.OTHER, record.id) is None
    assert await store.find_customer(f.OTHER, record.provider, record.external_ref) is None


async def test_find_customer_by_provider_and_external_ref(store: Store) -> None:
    mine = f.customer(external_ref="crm-42")
    elsewhere = f.customer(external_ref="crm-42", provider="mastercard-au")
    await store.insert_customer(mine)
    await store.insert_customer(elsewhere)
    assert await store.find_customer(f.TENANT, f.PROVIDER, "crm-42") == mine
    assert await store.find_customer(f.TENANT, "mastercard-au", "crm-42") == elsewhere
    assert await store.find_customer(f.TENANT, f.PROVIDER, "crm-43") is None
    assert await store.find_customer(f.TENANT, "thredd", "crm-42") is None


async def test_the_same_external_ref_in_two_tenants_are_two_customers(store: Store) -> None:
    a = f.customer(f.TENANT, external_ref="crm-1")
    b = f.customer(f.OTHER, external_ref="crm-1")
    await store.insert_customer(a)
    await store.insert_customer(b)
    assert await store.find_customer(f.TENANT, f.PROVIDER, "crm-1") == a
    assert await store.find_customer(f.OTHER, f.PROVIDER, "crm-1") == b


async def test_find_customers_by_ref_looks_across_tenants(store: Store) -> None:
    a = f.customer(f.TENANT, provider_ref="up-77")
    b = f.customer(f.OTHER, provider_ref="up-77")
    other_ref = f.customer(f.TENANT, provider_ref="up-78")
    other_provider = f.customer(f.TENANT, provider_ref="up-77", provider="mastercard-au")
    for record in (a, b, other_ref, other_provider):
        await store.insert_customer(record)
    found = await store.find_customers_by_ref(f.PROVIDER, "up-77")
    assert sorted(found, key=lambda c: c.tenant) == [a, b]
    assert await store.find_customers_by_ref(f.PROVIDER, "up-79") == []


async def test_set_consumer_ref_only_once(store: Store) -> None:
    record = f.customer()
    await store.insert_customer(record)
    assert await store.set_consumer_ref(f.TENANT, record.id, "consumer-1") is True
    assert (await store.get_customer(f.TENANT, record.id)).consumer_ref == "consumer-1"
    assert await store.set_consumer_ref(f.TENANT, record.id, "consumer-2") is False
    assert (await store.get_customer(f.TENANT, record.id)).consumer_ref == "consumer-1"


async def test_set_consumer_ref_of_another_tenants_customer_changes_nothing(store: Store) -> None:
    record = f.customer()
    await store.insert_customer(record)
    assert await store.set_consumer_ref(f.OTHER, record.id, "consumer-x") is False
    assert await store.set_consumer_ref(f.TENANT, "cus_nothing", "consumer-x") is False
    assert (await store.get_customer(f.TENANT, record.id)).consumer_ref is None
