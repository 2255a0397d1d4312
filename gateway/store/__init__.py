"""Persistence. Callers use the `Store` interface only; `open_store(url)` picks the backend from the URL."""
from gateway.store.base import Store
from gateway.store.records import AccountRecord, ConsentRecord, CustomerRecord


def open_store(url: str) -> Store:
    if url.startswith("sqlite:"):
        from gateway.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    raise ValueError(f"unsupported store URL {url!r} (supported: sqlite:///path)")


__all__ = ["AccountRecord", "ConsentRecord", "CustomerRecord", "Store", "open_store"]
