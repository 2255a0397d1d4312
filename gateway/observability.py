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

import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.secrets import known_secrets, secrets_version

REDACTED = "[REDACTED]"
_SECRET_KEYS = re.compile(
    r"(authorization|password|passwd|secret|token|api[_-]?key|app[_-]?key|signature|cookie|private|credential|"
    r"client_assertion|refresh|session)",
    re.IGNORECASE,
)
# Bearer tokens and similar credentials in free text.
_BEARER = re.compile(r"\b((?i:bearer|basic))\s+[A-Za-z0-9._~+/=-]+")


class _ValueScrubber:
    """Removes registered secret values and bearer credentials from text with one compiled pattern.

    The pattern is rebuilt only when the secret registry changes; a string with nothing to hide costs one search.
    """

    def __init__(self) -> None:
        self._version = -1
        self._pattern: re.Pattern[str] = _BEARER

    def _refresh(self) -> None:
        version, values = known_secrets()
        alternatives = [re.escape(v) for v in sorted(values, key=len, reverse=True)]
        alternatives.append(_BEARER.pattern)
        self._pattern = re.compile("|".join(alternatives))
        self._version = version

    def __call__(self, text: str) -> str:
        if secrets_version() != self._version:
            self._refresh()
        if self._pattern.search(text) is None:
            return text
        return self._pattern.sub(_replacement, text)


def _replacement(match: re.Match[str]) -> str:
    word = match.group(1)
    return f"{word} {REDACTED}" if word else REDACTED


_scrub = _ValueScrubber()
_key_verdicts: dict[str, bool] = {}


def _secret_key(key: str) -> bool:
    verdict = _key_verdicts.get(key)
    if verdict is None:
        verdict = _key_verdicts[key] = bool(_SECRET_KEYS.search(key))
        if len(_key_verdicts) > 10_000:  # keys come from code, but never let the cache grow without bound
            _key_verdicts.clear()
    return verdict


def redact(value: Any, key: str | None = None) -> Any:
    if key is not None and _secret_key(key) and value not in (None, "", [], {}):
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
    out = {}
    for key, value in event_dict.items():
        if type(value) is int or type(value) is float or value is None:
            out[key] = value  # numbers carry no secrets; skip the work on the hot path
        else:
            out[key] = redact(value, key if key != "event" else None)
    return out


class _StdoutLogger:
    """Writes rendered bytes to whatever sys.stdout is at the time (so test capture and redirection work)."""

    def __init__(self, *_args: Any) -> None:
        pass

    def msg(self, message: bytes) -> None:
        out = sys.stdout
        buffer = getattr(out, "buffer", None)
        if buffer is not None:
            buffer.write(message + b"\n")
            buffer.flush()
        else:
            out.write(message.decode() + "\n")
            out.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    renderer: Any
    factory: Any
    if use_json:
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory = _StdoutLogger
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        factory = structlog.PrintLoggerFactory()
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
        logger_factory=factory,
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
