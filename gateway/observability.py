"""Logging and metrics.

Logging: structlog, JSON when stdout is not a terminal, one canonical line per request (see api/middleware.py).
A redaction processor runs last before rendering: it blanks values under secret-looking keys at any depth, and
removes every configured secret value (registered through gateway.secrets) wherever it appears in a string, so a
secret that slips into a message or an upstream body still never reaches the log.

Metrics: prometheus-client, one registry per app (tests build many apps in one process).
"""
from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.secrets import known_secrets

REDACTED = "[REDACTED]"
_SECRET_KEYS = re.compile(
    r"(authorization|password|passwd|secret|token|api[_-]?key|app[_-]?key|signature|cookie|private|credential|"
    r"client_assertion|refresh|session)",
    re.IGNORECASE,
)
# Bearer tokens and similar credentials in free text.
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


class _ValueScrubber:
    """Replaces registered secret values in strings; rebuilds its pattern only when the registry changes."""

    def __init__(self) -> None:
        self._version = -1
        self._pattern: re.Pattern[str] | None = None

    def __call__(self, text: str) -> str:
        version, values = known_secrets()
        if version != self._version:
            self._version = version
            self._pattern = (
                re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))) if values else None
            )
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)


_scrub = _ValueScrubber()


def redact(value: Any, key: str | None = None) -> Any:
    if key is not None and _SECRET_KEYS.search(key) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, str):
        return _scrub(value)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return _scrub(value.decode("utf-8", "replace"))
    return value


def redact_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: redact(v, k if k != "event" else None) for k, v in event_dict.items()}


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )


class Metrics:
    """The gateway's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gateway_requests", "Requests served, by route and status.", ["method", "route", "status"], registry=self.registry
        )
        self.request_seconds = Histogram(
            "gateway_request_seconds", "Request latency by route.", ["route"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.upstream_calls = Counter(
            "gateway_upstream_calls", "Upstream calls by provider, operation and outcome.",
            ["provider", "operation", "outcome"], registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "gateway_upstream_seconds", "Upstream call latency by provider.", ["provider"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.upstream_retries = Counter(
            "gateway_upstream_retries", "Upstream retries by provider and reason.", ["provider", "reason"], registry=self.registry
        )
        self.circuit_state = Gauge(
            "gateway_circuit_state", "Circuit breaker state per upstream (0 closed, 1 half-open, 2 open).",
            ["provider"], registry=self.registry,
        )
        self.token_renewals = Counter(
            "gateway_token_renewals", "Upstream token fetches by provider and outcome.", ["provider", "outcome"],
            registry=self.registry,
        )
