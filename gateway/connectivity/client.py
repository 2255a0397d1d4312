"""One pooled HTTP client per upstream, with timeouts, budgeted retries, Retry-After and a circuit breaker.

`request()` returns the upstream's answer whatever its status, after retrying what is safe to retry; the adapter
turns a non-2xx answer into a canonical error through its table. Failures with no answer (timeouts, refused or
dropped connections) and an open circuit are raised here as canonical provider errors.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Mapping

import aiohttp
import orjson
import structlog
from multidict import CIMultiDictProxy

from gateway.config import AdapterConfig
from gateway.connectivity.breaker import CircuitBreaker, CircuitState
from gateway.connectivity.retry import (
    RETRYABLE_STATUSES,
    SAFE_METHODS,
    RetryBudget,
    backoff_delay,
    parse_retry_after,
)
from gateway.errors import CircuitOpen, ProviderBadResponse, ProviderTimeout, ProviderUnavailable
from gateway.observability import Metrics

log = structlog.get_logger("gateway.upstream")


class UpstreamResponse:
    __slots__ = ("status", "headers", "body", "provider", "earlier_attempt_lost")

    def __init__(self, status: int, headers: CIMultiDictProxy[str], body: bytes, provider: str) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.provider = provider
        # An earlier attempt of this request timed out, lost its connection or met a 5xx: the provider may have
        # acted on it, whatever this final answer says (a write retried into a refusal is not "never sent").
        self.earlier_attempt_lost = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise ProviderBadResponse(f"{self.provider} sent a body that is not valid JSON") from exc


class UpstreamClient:
    def __init__(self, name: str, base_url: str, config: AdapterConfig, metrics: Metrics,
                 *, ssl: Any = None) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.config = config
        self.metrics = metrics
        self._ssl = ssl
        self._session: aiohttp.ClientSession | None = None
        self.breaker = CircuitBreaker(
            config.circuit.failure_threshold, config.circuit.reset_after,
            on_change=lambda s: metrics.circuit_state.labels(name).set(CircuitBreaker.gauge_value(s)),
        )
        metrics.circuit_state.labels(name).set(0)
        self.budget = RetryBudget(config.retry.budget_ratio)
        self._timeout = aiohttp.ClientTimeout(total=config.timeouts.total, sock_connect=config.timeouts.connect)

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.config.pool_size, ttl_dns_cache=300, ssl=self._ssl,
                                             keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, json_serialize=lambda o: orjson.dumps(o).decode(),
                raise_for_status=False, auto_decompress=True,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"upstream client {self.name} is not started")
        return self._session

    def health(self) -> dict[str, Any]:
        return {"upstream": self.name, **self.breaker.snapshot()}

    async def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        timeout: float | None = None,
        sign: Callable[[str, str, bytes | None], Mapping[str, str]] | None = None,
    ) -> UpstreamResponse:
        """One upstream call with the adapter's retry, breaker and metrics. `sign(method, url, body)` gives headers
        made afresh for every attempt (a request signature with its own nonce and timestamp, as OAuth 1.0a
        needs: a retry must not replay the first attempt's nonce)."""
        method = method.upper()
        retry_allowed = (method in SAFE_METHODS) if idempotent is None else idempotent
        body = orjson.dumps(json) if json is not None else data
        send_headers = dict(headers or {})
        if json is not None:
            send_headers.setdefault("Content-Type", "application/json")
        url = self.base_url + path
        policy = self.config.retry
        self.budget.record_request()
        attempt = 0
        lost = False  # whether an attempt so far may have reached the provider without its answer reaching us
        while True:
            if not self.breaker.allow():
                self.metrics.observe_upstream(self.name, operation, "circuit_open", None)
                raise CircuitOpen(f"calls to {self.name} are paused after repeated failures; retry later",
                                  retry_after=round(self.breaker.retry_after(), 3))
            started = time.perf_counter()
            failure: Exception | None = None
            response: UpstreamResponse | None = None
            try:
                attempt_headers = {**send_headers, **sign(method, url, body)} if sign is not None else send_headers
                response = await self._send(method, url, params, body, attempt_headers, timeout)
            except asyncio.TimeoutError as exc:
                failure = ProviderTimeout(f"{self.name} did not answer within the configured timeout")
                failure.__cause__ = exc
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                failure = ProviderUnavailable(f"the connection to {self.name} failed ({type(exc).__name__})")
                failure.__cause__ = exc
            except asyncio.CancelledError:
                self.breaker.release()
                raise
            elapsed = time.perf_counter() - started

            if failure is not None:
                self.breaker.record_failure()
                outcome, retry_after = ("timeout" if isinstance(failure, ProviderTimeout) else "connection_error"), None
            else:
                assert response is not None
                if response.status >= 500:
                    self.breaker.record_failure()
                    outcome = "server_error"
                else:
                    self.breaker.record_success()
                    outcome = "ok" if response.status < 400 else ("rate_limited" if response.status == 429 else "client_error")
                retry_after = response.retry_after if response.status == 429 else None
            self.metrics.observe_upstream(self.name, operation, outcome, elapsed)
            log.debug("upstream_call", provider=self.name, operation=operation, method=method, path=path,
                      status=response.status if response else None, outcome=outcome, attempt=attempt,
                      duration_ms=round(elapsed * 1000, 2))

            retryable = failure is not None or (response is not None and response.status in RETRYABLE_STATUSES)
            if retryable and retry_allowed and attempt + 1 < policy.attempts:
                if retry_after is not None and retry_after > policy.max_retry_after:
                    retryable = False  # the provider asked for a longer pause than a caller should wait
                elif self.breaker.state is CircuitState.OPEN or not self.budget.try_spend():
                    retryable = False
                if retryable:
                    delay = retry_after if retry_after is not None else backoff_delay(attempt, policy.backoff_base,
                                                                                       policy.backoff_max)
                    self.metrics.upstream_retries.labels(self.name, outcome).inc()
                    lost = lost or failure is not None or (response is not None and response.status >= 500)
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
            if failure is not None:
                raise failure
            assert response is not None
            response.earlier_attempt_lost = lost
            return response

    async def _send(self, method: str, url: str, params: Mapping[str, Any] | None, body: bytes | None,
                    headers: dict[str, str], timeout: float | None) -> UpstreamResponse:
        kwargs: dict[str, Any] = {"params": params, "data": body, "headers": headers}
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout, sock_connect=self.config.timeouts.connect)
        async with self.session.request(method, url, **kwargs) as resp:
            payload = await resp.read()
            return UpstreamResponse(resp.status, resp.headers, payload, self.name)


class UpstreamFactory:
    """Creates and owns the upstream clients of one app; adapters ask it for theirs."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._clients: dict[str, UpstreamClient] = {}

    def client(self, name: str, base_url: str, config: AdapterConfig, *, ssl: Any = None) -> UpstreamClient:
        if name not in self._clients:
            self._clients[name] = UpstreamClient(name, base_url, config, self.metrics, ssl=ssl)
        return self._clients[name]

    def all(self) -> list[UpstreamClient]:
        return list(self._clients.values())

    async def start(self) -> None:
        for client in self._clients.values():
            await client.start()

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
