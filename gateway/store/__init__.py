"""Persistence. Callers use the `Store` interface only; `open_store(url)` picks the backend from the URL."""
from gateway.store.base import Store
from gateway.store.records import AccountRecord, ConsentRecord, CustomerRecord


def open_store(url: str, *, read_cache_seconds: float = 0.0, event_horizon_seconds: float | None = None,
               pool_min_size: int = 1, pool_max_size: int = 10, schema: str | None = None) -> Store:
    """The store for `url`; `event_horizon_seconds` is how long an event's deliveries are retried.

    `sqlite:///path` gives the embedded SQLite store; `postgresql://…` (or `postgres://…`) the PostgreSQL store,
    with a pool of `pool_min_size` to `pool_max_size` connections, in `schema` when given (created if missing)."""
    store: Store
    if url.startswith("sqlite:"):
        from gateway.store.sqlite import SQLiteStore

        store = SQLiteStore(url)
        if event_horizon_seconds is not None:
            store.event_horizon_seconds = event_horizon_seconds
    elif url.startswith(("postgresql://", "postgres://")):
        from gateway.store.postgres import PostgresStore

        store = PostgresStore(url, pool_min_size=pool_min_size, pool_max_size=pool_max_size, schema=schema)
        if event_horizon_seconds is not None:
            store.event_horizon_seconds = event_horizon_seconds
    else:
        raise ValueError(f"unsupported store URL {url!r} (supported: sqlite:///path, postgresql://…)")
    if read_cache_seconds > 0:
        from gateway.store.cache import CachedStore

        store = CachedStore(store, read_cache_seconds)
    return store


async def store_check(store: Store) -> str:
    """What a readiness probe reports of the store: "ok", or "failing…" (a probe reports, it does not raise)."""
    try:
        return "ok" if await store.ping() else "failing"
    except Exception as exc:
        return f"failing: {type(exc).__name__}"


__all__ = ["AccountRecord", "ConsentRecord", "CustomerRecord", "Store", "open_store", "store_check"]
