"""Every store test runs once per backend, each on a database of its own: a fresh SQLite file, or a fresh schema
on the PostgreSQL server at 127.0.0.1:5432 (dropped afterwards, so runs never collide).

PostgreSQL params skip when the server cannot be reached or `open_store` does not take postgresql URLs yet;
with GATEWAY_REQUIRE_POSTGRES=1 (CI with a server) they fail instead.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import AsyncIterator, NoReturn

import pytest

from gateway.store import Store, open_store

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
HORIZON_SECONDS = 3600.0  # how long an event's deliveries are retried, in every store opened here
BACKENDS = ("sqlite", "postgres")

_probe: dict[str, str | None] = {}  # "reason": why PostgreSQL cannot be used (None: it can), asked once a session


def _cannot_use_postgres(message: str) -> NoReturn:
    if os.environ.get("GATEWAY_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{message} (and GATEWAY_REQUIRE_POSTGRES=1 requires it)", pytrace=False)
    pytest.skip(message)


async def _postgres_unreachable() -> str | None:
    """Why the server cannot be used, or None; asked once per session."""
    if "reason" not in _probe:
        try:
            import asyncpg
        except ImportError:
            _probe["reason"] = f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable: asyncpg is not installed"
        else:
            try:
                conn = await asyncpg.connect(PG_URL, timeout=5)
                await conn.close()
                _probe["reason"] = None
            except Exception as exc:  # refused, unknown database, auth: all mean "cannot run here"
                _probe["reason"] = f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable: {type(exc).__name__}: {exc}"
    return _probe["reason"]


async def _drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


class Replicas:
    """Opens stores of one backend on one database: each `open()` is another replica over the same data."""

    def __init__(self, backend: str, tmp_path: Path) -> None:
        self.backend = backend
        self.sqlite_url = f"sqlite:///{tmp_path}/s.db"
        self.schema = f"t_{secrets.token_hex(6)}"
        self.opened: list[Store] = []
        self._schema_used = False

    async def open(self) -> Store:
        if self.backend == "sqlite":
            store = open_store(self.sqlite_url, event_horizon_seconds=HORIZON_SECONDS)
        else:
            if (reason := await _postgres_unreachable()) is not None:
                _cannot_use_postgres(reason)
            try:
                store = open_store(PG_URL, schema=self.schema,  # type: ignore[call-arg]
                                   event_horizon_seconds=HORIZON_SECONDS)
            except (ValueError, TypeError) as exc:
                if isinstance(exc, ValueError) and "unsupported store URL" not in str(exc):
                    raise
                _cannot_use_postgres(f"the PostgreSQL store has not landed: open_store refuses a postgresql URL "
                                     f"({type(exc).__name__}: {exc})")
            self._schema_used = True
        await store.open()
        self.opened.append(store)
        return store

    async def close(self) -> None:
        try:
            for store in reversed(self.opened):
                await store.close()
        finally:
            self.opened.clear()
            if self._schema_used:
                await _drop_schema(self.schema)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def replicas(backend: str, tmp_path: Path) -> AsyncIterator[Replicas]:
    opener = Replicas(backend, tmp_path)
    try:
        yield opener
    finally:
        await opener.close()


@pytest.fixture
async def store(replicas: Replicas) -> Store:
    """One open store on a database of its own."""
    return await replicas.open()


@pytest.fixture
async def two_stores(replicas: Replicas) -> tuple[Store, Store]:
    """Two open stores on the same database (two replicas of the gateway)."""
    first = await replicas.open()
    return first, await replicas.open()

