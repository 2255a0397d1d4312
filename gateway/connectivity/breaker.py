"""A circuit breaker per upstream: stop calling a provider that keeps failing, probe it again later."""
from __future__ import annotations

import enum
import time
from typing import Callable


class CircuitState(str, enum.Enum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


_GAUGE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures; after `reset_after` seconds lets one probe through.

    A probe that succeeds closes the circuit; one that fails opens it again for another `reset_after`.
    """

    def __init__(self, failure_threshold: int, reset_after: float, *, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[CircuitState], None] | None = None) -> None:
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._clock = clock
        self._on_change = on_change
        self._failures = 0
        self._opened_at = 0.0
        self._state = CircuitState.CLOSED
        self._probe_in_flight = False

    @property
    def state(self) -> CircuitState:
        if self._state is CircuitState.OPEN and self._clock() - self._opened_at >= self.reset_after:
            return CircuitState.HALF_OPEN
        return self._state

    def retry_after(self) -> float:
        return max(0.0, self.reset_after - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            self._set(CircuitState.HALF_OPEN)
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        self._probe_in_flight = False
        if self._state is not CircuitState.CLOSED:
            self._set(CircuitState.CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        was_probe = self._probe_in_flight
        self._probe_in_flight = False
        if was_probe or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            self._set(CircuitState.OPEN)

    def release(self) -> None:
        """A call that ended with neither success nor failure (e.g. cancelled) frees the probe slot."""
        self._probe_in_flight = False

    def _set(self, state: CircuitState) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(state)

    def snapshot(self) -> dict[str, object]:
        state = self.state
        out: dict[str, object] = {"circuit": state.value, "consecutive_failures": self._failures}
        if state is CircuitState.OPEN:
            out["retry_after"] = round(self.retry_after(), 3)
        return out

    @staticmethod
    def gauge_value(state: CircuitState) -> int:
        return _GAUGE[state]
