"""Persistence. Callers use the `Store` interface only; `open_store(url)` picks the backend from the URL."""
from gateway.store.base import Store
from gateway.store.records import AccountRecord, ConsentRecord, CustomerRecord


def open_store(url: str, *, read_cache_seconds: float = 0.0) -> Store:
    store: Store
    if url.startswith("sqlite:"):
        from gateway.store.sqlite import SQLiteStore

        store = SQLiteStore(url)
    else:
        raise ValueError(f"unsupported store URL {url!r} (supported: sqlite:///path)")
    if read_cache_seconds > 0:
        from gateway.store.cache import CachedStore

        store = CachedStore(store, read_cache_seconds)
    return store


__all__ = ["AccountRecord", "ConsentRecord", "CustomerRecord", "Store", "open_store"]
