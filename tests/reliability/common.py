"""What the provider fault suites share: how a problem is checked, what a consent left behind, which write faults."""
from __future__ import annotations

from typing import Any

from tests.conftest import state_of


def assert_problem(status: int, problem: dict, *, http: int, code: str, source: str, retryable: bool) -> None:
    got = (status, problem.get("code"), problem.get("source"), problem.get("retryable"))
    assert got == (http, code, source, retryable), problem


def stored_from(client: Any, consent_id: str) -> int:
    """Rows the gateway keeps from a consent: its accounts and its reports."""
    db = state_of(client).store.db
    return sum(int(db.execute(f"SELECT COUNT(*) FROM {table} WHERE consent_id = ?", (consent_id,)).fetchone()[0])
               for table in ("accounts", "reports"))


def write_faults(slow: float) -> dict[str, tuple[dict[str, Any], tuple[int, str, bool]]]:
    """Faults on a POST: fault kwargs -> (HTTP status, canonical code, retryable). `slow` outlasts the timeout."""
    return {
        "5xx": ({"kind": "status", "status": 503}, (502, "provider_unavailable", True)),
        "timeout": ({"kind": "latency", "delay": slow}, (504, "provider_timeout", True)),
        "429": ({"kind": "rate_limit", "retry_after": 1}, (503, "provider_rate_limited", True)),
        "malformed_json": ({"kind": "malformed_json"}, (502, "provider_bad_response", False)),
        "dropped": ({"kind": "drop_connection"}, (502, "provider_unavailable", True)),
    }
