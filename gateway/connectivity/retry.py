"""Retry rules as data: which outcomes are retried, how long to wait, and how many retries the budget allows."""
from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime
from typing import Callable

from gateway.models.time import utcnow

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def backoff_delay(attempt: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng() * min(cap, base * (2 ** attempt))


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as delta-seconds or HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return int(value)  # delta-seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - utcnow()).total_seconds())


class RetryBudget:
    """Caps retries at a fraction of requests, so a failing upstream is not hit with a retry storm.

    Each request deposits `ratio` tokens (bounded by `cap`); each retry spends one. With ratio 0.2 retries stay near
    20% of the traffic once the small initial reserve is used.
    """

    def __init__(self, ratio: float = 0.2, *, reserve: float = 2.0, cap: float = 20.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ratio = ratio
        self.cap = cap
        self._tokens = reserve
        self._clock = clock

    def record_request(self) -> None:
        self._tokens = min(self.cap, self._tokens + self.ratio)

    def try_spend(self) -> bool:
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    @property
    def tokens(self) -> float:
        return self._tokens
