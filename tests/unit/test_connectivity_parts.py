"""Circuit breaker, retry budget, backoff, Retry-After and the token broker, on their own."""
from __future__ import annotations

import asyncio

import pytest

from gateway.connectivity.breaker import CircuitBreaker, CircuitState
from gateway.connectivity.retry import RetryBudget, backoff_delay, parse_retry_after
from gateway.connectivity.tokens import TokenBroker
from gateway.errors import GatewayCredentialsRejected, ProviderUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_half_opens_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, 10.0, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN and not breaker.allow()
    clock.now += 10
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow()          # one probe
    assert not breaker.allow()      # and only one
    breaker.record_failure()        # the probe failed: open again
    assert breaker.state is CircuitState.OPEN
    clock.now += 10
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED and breaker.allow()


def test_breaker_success_resets_failure_count() -> None:
    breaker = CircuitBreaker(2, 5.0, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED


def test_retry_budget_caps_retries_near_the_ratio() -> None:
    budget = RetryBudget(0.2, reserve=2.0)
    retries = 0
    for _ in range(1000):
        budget.record_request()
        if budget.try_spend():
            retries += 1
    assert retries <= 0.2 * 1000 + 2


def test_backoff_is_jittered_and_capped() -> None:
    assert backoff_delay(0, 0.1, 2.0, rng=lambda: 1.0) == pytest.approx(0.1)
    assert backoff_delay(10, 0.1, 2.0, rng=lambda: 1.0) == pytest.approx(2.0)
    assert backoff_delay(3, 0.1, 2.0, rng=lambda: 0.0) == 0.0


def test_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: retry now


async def test_token_broker_single_flight_and_renewal() -> None:
    clock = Clock()
    fetches = 0

    async def fetch() -> str:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0.01)
        return f"token-{fetches}"

    broker = TokenBroker("t", fetch, renew_after=5400, clock=clock)
    tokens = await asyncio.gather(*(broker.get() for _ in range(50)))
    assert fetches == 1 and {t.value for t in tokens} == {"token-1"}
    # fifty callers see the token refused at once: one renewal
    renewed = await asyncio.gather(*(broker.renew(tokens[0]) for _ in range(50)))
    assert fetches == 2 and {t.value for t in renewed} == {"token-2"}
    clock.now += 5399
    assert (await broker.get()).value == "token-2"
    clock.now += 2  # past 90 minutes: renewed before the upstream expiry
    assert (await broker.get()).value == "token-3"


async def test_token_broker_latches_credentials_failure() -> None:
    attempts = 0

    async def fetch() -> str:
        nonlocal attempts
        attempts += 1
        raise GatewayCredentialsRejected("bad partner secret")

    broker = TokenBroker("t", fetch, renew_after=60)
    for _ in range(5):
        with pytest.raises(GatewayCredentialsRejected):
            await broker.get()
    assert attempts == 1  # never asked again with refused credentials
    assert broker.latched_error is not None


async def test_token_broker_retries_after_transient_failure() -> None:
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ProviderUnavailable("down")
        return "ok"

    broker = TokenBroker("t", fetch, renew_after=60)
    with pytest.raises(ProviderUnavailable):
        await broker.get()
    assert (await broker.get()).value == "ok"
