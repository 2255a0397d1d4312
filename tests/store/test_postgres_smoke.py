"""The PostgreSQL store's own promises, beyond what the backend-parametrized suite checks: exact round trips of
money, times and documents; migrations racing at start-up; a lease with one holder; the wake-up NOTIFY between
replicas, and LISTEN coming back after its connection drops; catch-up by seq never skipping an event; `ping`
false, not raising, when the database cannot be reached.

Skipped when PostgreSQL at 127.0.0.1:5432 cannot be reached, unless GATEWAY_REQUIRE_POSTGRES=1 (then failed).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from datetime import timedelta
from decimal import Decimal
from typing import AsyncIterator, Awaitable, Callable

import attrs
import pytest

from gateway.events.canonical import EventRecord, SubscriptionRecord
from gateway.ids import new_id
from gateway.models import ConsentStatus, PaymentStatus
from gateway.models.payments import PaymentTransition
from gateway.models.time import utcnow
from gateway.store import open_store
from gateway.store.postgres_schema import MIGRATIONS
from gateway.store.records import AccountRecord, ConsentRecord, PaymentRecord

pytestmark = pytest.mark.postgres

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
TENANT = "smoke-tenant"


async def _admin() -> object:
    import asyncpg  # a dependency; imported here so that its absence is reported like an unreachable server

    return await asyncpg.connect(PG_URL, timeout=5)


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A fresh schema name (the store creates it), dropped afterwards."""
    try:
        conn = await _admin()
    except Exception as exc:
        message = f"PostgreSQL at 127.0.0.1:5432 is not reachable: {type(exc).__name__}: {exc}"
        if os.environ.get("GATEWAY_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{message} (and GATEWAY_REQUIRE_POSTGRES=1 requires it)", pytrace=False)
        pytest.skip(message)
    schema = f"smoke_{secrets.token_hex(6)}"
    try:
        yield schema
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')  # type: ignore[attr-defined]
        await conn.close()  # type: ignore[attr-defined]


@pytest.fixture
async def pg_open(pg_schema: str) -> AsyncIterator[Callable[..., Awaitable]]:
    """Opens PostgreSQL stores (replicas) on the test's schema; all closed afterwards."""
    opened = []

    async def opener(url: str = PG_URL):  # type: ignore[no-untyped-def]
        store = open_store(url, schema=pg_schema, pool_max_size=4)
        await store.open()
        opened.append(store)
        return store

    yield opener
    for store in reversed(opened):
        await store.close()


def _event(subject: str = "con_smoke") -> EventRecord:
    return EventRecord(tenant=TENANT, id=new_id("evt"), type="consent.authorised", created_at=utcnow(),
                       subject_type="consent", subject_id=subject, order_key=subject, data={"n": 1})


async def _soon(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    for _ in range(int(seconds / 0.02)):
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


async def test_records_come_back_exactly(pg_open: Callable[..., Awaitable]) -> None:
    store = await pg_open()
    assert await store.ping() is True
    now = utcnow()
    consent = ConsentRecord(id="con_1", tenant=TENANT, provider="p", customer_id=None,
                            status=ConsentStatus.AWAITING_AUTHORISATION, created_at=now, updated_at=now,
                            permissions=("accounts", "balances"),
                            upstream={"z": 1, "a": [1e20, 0.1, "\u00e9"], "nested": {"b": None}})
    await store.insert_consent(consent)
    await store.upsert_accounts([AccountRecord(id="acc_1", tenant=TENANT, provider="p", consent_id="con_1",
                                               provider_ref="9", created_at=now, data={"mask": "1234"})])
    account, seen_under = await store.get_account(TENANT, "acc_1")
    assert seen_under == consent and list(seen_under.upstream) == ["z", "a", "nested"]  # key order kept
    assert isinstance(seen_under.upstream["a"][0], float)  # 1e20 stays a float (jsonb would make it an int)
    assert account.created_at == now and account.created_at.utcoffset() == timedelta(0)
    assert await store.get_account("another-tenant", "acc_1") is None

    for amount in ("-12.50", "0.000001", "123456789012345678.99"):
        payment = PaymentRecord(id=new_id("pay"), tenant=TENANT, provider="p", type="domestic",
                                status=PaymentStatus.AWAITING_AUTHORISATION, amount=Decimal(amount),
                                currency="GBP", request={"reference": "x"}, created_at=now, updated_at=now)
        await store.insert_payment(payment, PaymentTransition(status=payment.status, previous=None, at=now))
        got = await store.get_payment(TENANT, payment.id)
        assert got == payment and str(got.amount) == amount

    sealed = bytes(range(256))
    await store.put_secret("p", "signing", sealed, now)
    assert await store.get_secret("p", "signing") == sealed

    moved = attrs.evolve(consent)
    moved.set_status(ConsentStatus.AUTHORISED, None, utcnow())
    assert await store.update_consent(moved, expected_updated_at=now) is True
    assert await store.update_consent(moved, expected_updated_at=now) is False  # lost the compare-and-set
    [event] = await store.list_events(TENANT, after_seq=0, limit=10)
    assert event.type == "consent.authorised" and event.created_at == moved.updated_at


async def test_replicas_starting_together_migrate_once(pg_open: Callable[..., Awaitable], pg_schema: str) -> None:
    stores = await asyncio.gather(*(pg_open() for _ in range(3)))
    assert all([await s.ping() for s in stores])
    conn = await _admin()
    try:
        versions = await conn.fetch(f'SELECT version FROM "{pg_schema}".schema_version')  # type: ignore[attr-defined]
    finally:
        await conn.close()  # type: ignore[attr-defined]
    assert [r[0] for r in versions] == list(range(1, len(MIGRATIONS) + 1))  # each applied once


async def test_a_lease_has_one_holder_across_replicas(pg_open: Callable[..., Awaitable]) -> None:
    a, b = await pg_open(), await pg_open()
    now = utcnow()
    wins = await asyncio.gather(*(store.try_lease("renew:con_1", f"o{n}", now + timedelta(seconds=30), now)
                                  for n, store in enumerate((a, b, a, b))))
    assert sum(wins) == 1
    holder = f"o{wins.index(True)}"
    assert await b.try_lease("renew:con_1", holder, now + timedelta(seconds=60), now) is True  # extended
    assert await a.try_lease("renew:con_1", "late", now + timedelta(seconds=30), now + timedelta(seconds=59)) is False
    assert await a.try_lease("renew:con_1", "late", now + timedelta(seconds=90), now + timedelta(seconds=61)) is True
    await b.release_lease("renew:con_1", holder)  # not the holder any more: changes nothing
    assert await b.try_lease("renew:con_1", "other", now + timedelta(seconds=30), now) is False
    await b.release_lease("renew:con_1", "late")
    assert await b.try_lease("renew:con_1", "other", now + timedelta(seconds=30), now) is True


async def test_another_replica_is_woken_and_keeps_listening(pg_open: Callable[..., Awaitable]) -> None:
    a, b = await pg_open(), await pg_open()
    told = {"a": 0, "b": 0}
    a.event_listeners.append(lambda: told.__setitem__("a", told["a"] + 1))
    b.event_listeners.append(lambda: told.__setitem__("b", told["b"] + 1))
    await a.emit_events([_event()])
    assert told["a"] == 1  # here: at once, after the commit
    assert await _soon(lambda: told["b"] >= 1), "the other replica was not woken by NOTIFY"
    await asyncio.sleep(0.2)
    assert told["a"] == 1  # its own NOTIFY does not wake it a second time

    conn = await _admin()  # cut b's LISTEN connection: it listens again and looks once (it may have missed some)
    try:
        pid = b._listener.get_server_pid()  # type: ignore[attr-defined]
        await conn.execute("SELECT pg_terminate_backend($1)", pid)  # type: ignore[attr-defined]
    finally:
        await conn.close()  # type: ignore[attr-defined]
    assert await _soon(lambda: b._listener is not None and b._listener.get_server_pid() != pid)  # type: ignore
    before = told["b"]
    await a.emit_events([_event()])
    assert await _soon(lambda: told["b"] > before), "the other replica stopped listening after a reconnect"


async def test_deployments_in_other_schemas_neither_wake_nor_wait_for_each_other(
        pg_open: Callable[..., Awaitable]) -> None:
    from gateway.store.postgres import PostgresStore

    here = await pg_open()
    elsewhere = PostgresStore(PG_URL, schema=f"smoke_{secrets.token_hex(6)}", pool_max_size=2)
    await elsewhere.open()
    try:
        told = {"here": 0}
        here.event_listeners.append(lambda: told.__setitem__("here", told["here"] + 1))
        await elsewhere.emit_events([_event()])
        await asyncio.sleep(0.3)
        assert told["here"] == 0  # another schema's NOTIFY is on another channel
        assert here._wakeup.channel != elsewhere._wakeup.channel  # type: ignore[attr-defined]
        assert here._wakeup.events_lock != elsewhere._wakeup.events_lock  # type: ignore[attr-defined]
        async with elsewhere._tx() as conn:  # it holds its events lock to its commit...
            await conn.execute("SELECT pg_advisory_xact_lock($1)", elsewhere._wakeup.events_lock)
            await asyncio.wait_for(here.emit_events([_event()]), 5.0)  # ...and this schema's writers go on
    finally:
        conn = await _admin()
        try:
            await elsewhere.close()
            await conn.execute(f'DROP SCHEMA IF EXISTS "{elsewhere.schema}" CASCADE')  # type: ignore[attr-defined]
        finally:
            await conn.close()  # type: ignore[attr-defined]


async def test_catching_up_by_seq_never_skips_an_event(pg_open: Callable[..., Awaitable]) -> None:
    a, b = await pg_open(), await pg_open()
    now = utcnow()
    await a.insert_subscription(SubscriptionRecord(tenant=TENANT, id="sub_1", url="https://example.com/h",
                                                   event_types=("*",), ordered=True, status="enabled",
                                                   created_at=now, updated_at=now, secrets=b"sealed"))
    written: list[str] = []
    done = asyncio.Event()

    async def writer(store, n: int) -> None:  # type: ignore[no-untyped-def]
        for _ in range(n):
            events = [_event(f"con_{secrets.token_hex(2)}") for _ in range(2)]
            await store.emit_events(events)
            written.extend(e.id for e in events)

    async def reader() -> list[str]:
        seen: list[str] = []
        cursor = 0
        while True:
            finished = done.is_set()
            page = await b.list_events(TENANT, after_seq=cursor, limit=50)
            seen += [e.id for e in page]
            cursor = page[-1].seq if page else cursor
            if finished and not page:
                return seen
            await asyncio.sleep(0)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(store, 15) for store in (a, b, a, b)))
    done.set()
    seen = await reading
    assert len(seen) == len(set(seen)) == len(written) == 120
    assert set(seen) == set(written)
    seqs = [e.seq for e in await a.list_events(TENANT, after_seq=0, limit=500)]
    assert seqs == sorted(seqs)


async def test_ping_says_false_when_the_database_is_gone(pg_open: Callable[..., Awaitable]) -> None:
    proxy = _Proxy()
    port = await proxy.start()
    store = await pg_open(f"postgresql://postgres@127.0.0.1:{port}/test")
    store.ping_timeout_seconds = 1.0
    assert await store.ping() is True
    await proxy.stop()  # every connection cut, and no new one accepted
    assert await store.ping() is False
    assert await store.ping() is False
    await store.close()  # closes without the database
    assert await store.ping() is False


class _Proxy:
    """A TCP pass-through to PostgreSQL that can be cut."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5432)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()
