"""Fixtures of the replica tests: PostgreSQL or a skip (a failure with GATEWAY_REQUIRE_POSTGRES=1), an HTTP
session, and the test's cluster, always torn down: replicas killed, simulators stopped, schema dropped."""
from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
import pytest

from tests.replicas.cluster import Cluster, cannot_use_postgres, new_schema, postgres_unusable


@pytest.fixture(autouse=True)
async def postgres() -> None:
    if (reason := await postgres_unusable()) is not None:
        cannot_use_postgres(reason)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def make_cluster(tmp_path: Path) -> AsyncIterator[Callable[..., Cluster]]:
    """Builds the test's cluster (`Cluster` keywords), on a schema of its own."""
    made: list[Cluster] = []

    def build(**kw: Any) -> Cluster:
        cluster = Cluster(tmp_path, new_schema(), **kw)
        made.append(cluster)
        return cluster

    try:
        yield build
    finally:
        for cluster in made:
            await cluster.close()
