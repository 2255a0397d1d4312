"""Logging and metrics.

Logging: structlog, JSON when stdout is not a terminal, one canonical line per request (see api/middleware.py).
Redaction happens twice, cheaply: before rendering, values under secret-looking keys are blanked at any depth;
after rendering, the whole line is searched once for every registered secret value (gateway.secrets) and for
bearer credentials, so a secret that slips into a message or an upstream body still never reaches the log.

Metrics: prometheus-client, one registry per app (tests build many apps in one process); the label children the
hot path uses are looked up once and kept.
"""
from __future__ import annotations

import logging
import math
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
    r"client_assertion|refresh|session|birth)",
    re.IGNORECASE,
)
# A person's SSN is blanked like a credential: `ssn` as a word of the key (`ssn`, `consumer_ssn`, `consumerSsn`,
# `SSN`), never inside another word (`classname`).
_SSN_KEY = re.compile(r"(?:^|[_-])(?i:ssn)(?:$|[_-])|Ssn|SSN")
# Bearer tokens and similar credentials in free text.
_BEARER = r"\b((?i:bearer|basic))\s+[A-Za-z0-9._~+/=-]+"


class _Scrubber:
    """Removes registered secret values and bearer credentials from text.

    Secret values are plain substrings (each also as JSON escapes it, since the scrub runs over rendered JSON lines
    too), found and replaced without regular expressions, so a newly registered secret costs nothing to learn.
    Bearer credentials are one fixed pattern. Text with nothing to hide costs a few substring tests.
    """

    def __init__(self) -> None:
        self._version = -1
        self._text = re.compile(_BEARER)
        self._bytes = re.compile(_BEARER.encode())
        self._forms: tuple[str, ...] = ()
        self._literals: tuple[bytes, ...] = ()

    def _refresh(self) -> None:
        version, values = known_secrets()
        forms: set[str] = set()
        for value in values:
            forms.add(value)
            forms.add(orjson.dumps(value).decode()[1:-1])
        ordered = sorted(forms, key=len, reverse=True)  # a secret inside a longer one goes with the longer one
        self._forms = tuple(ordered)
        self._literals = tuple(f.encode() for f in ordered)
        self._version = version

    def text(self, value: str) -> str:
        if secrets_version() != self._version:
            self._refresh()
        for form in self._forms:
            if form in value:
                value = value.replace(form, REDACTED)
        if self._text.search(value) is None:
            return value
        return self._text.sub(lambda m: f"{m.group(1)} {REDACTED}", value)

    def line(self, value: bytes) -> bytes:
        if secrets_version() != self._version:
            self._refresh()
        for literal in self._literals:
            if literal in value:
                value = value.replace(literal, REDACTED.encode())
        lowered = value.lower()
        if b"bearer" not in lowered and b"basic" not in lowered:
            return value
        return self._bytes.sub(lambda m: m.group(1) + b" " + REDACTED.encode(), value)


_scrub = _Scrubber()
_key_verdicts: dict[str, bool] = {}


def _secret_key(key: str) -> bool:
    verdict = _key_verdicts.get(key)
    if verdict is None:
        verdict = bool(_SECRET_KEYS.search(key) or _SSN_KEY.search(key))
        if len(_key_verdicts) < 10_000:  # keys come from code; never let the cache grow without bound
            _key_verdicts[key] = verdict
    return verdict


def _blank_secret_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if _secret_key(str(k)) and v not in (None, "", [], {}) else _blank_secret_keys(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_blank_secret_keys(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return value


def redact(value: Any, key: str | None = None) -> Any:
    """Blank secret-keyed values and scrub secret values from strings (for anything shown outside the logs)."""
    if key is not None and _secret_key(key) and value not in (None, "", [], {}):
        return REDACTED
    value = _blank_secret_keys(value)
    if isinstance(value, str):
        return _scrub.text(value)
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def redact_keys_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Before rendering: blank what sits under a secret-looking key (numbers and short words pass untouched)."""
    out = {}
    for key, value in event_dict.items():
        if type(value) is str or type(value) is int or type(value) is float or value is None:
            out[key] = REDACTED if value and key != "event" and _secret_key(key) else value
        else:
            out[key] = REDACTED if _secret_key(key) and value else _blank_secret_keys(value)
    return out


def scrub_line_processor(_logger: Any, _name: str, line: bytes | str) -> bytes | str:
    """After rendering: one search over the whole line for secret values and bearer credentials."""
    return _scrub.line(line) if isinstance(line, bytes) else _scrub.text(line)


class _StdoutLogger:
    """Writes rendered lines to whatever sys.stdout is at the time (so test capture and redirection work)."""

    def __init__(self, *_args: Any) -> None:
        pass

    def msg(self, message: bytes | str) -> None:
        out = sys.stdout
        buffer = getattr(out, "buffer", None)
        if buffer is not None and isinstance(message, bytes):
            buffer.write(message + b"\n")
            buffer.flush()
        else:
            out.write((message.decode() if isinstance(message, bytes) else message) + "\n")
            out.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    renderer: Any = (structlog.processors.JSONRenderer(serializer=orjson.dumps) if use_json
                     else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_keys_processor,
            renderer,
            scrub_line_processor,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=_StdoutLogger,
        cache_logger_on_first_use=True,
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
        self.payment_transitions = Counter(
            "gateway_payment_transitions", "Payment status changes recorded, by provider and new status.",
            ["provider", "status"], registry=self.registry,
        )
        self.idempotency = Counter(
            "gateway_idempotency_keys", "Requests with an Idempotency-Key, by outcome "
            "(claimed, replayed, waited, reused, in_progress, released).", ["outcome"], registry=self.registry,
        )
        self.reconcile_checks = Counter(
            "gateway_reconcile_checks", "Payments checked upstream by the reconciliation worker, by outcome.",
            ["provider", "outcome"], registry=self.registry,
        )
        self.event_deliveries = Counter(
            "gateway_event_deliveries", "Webhook delivery attempts to subscribers, by outcome "
            "(delivered, retry, dead, gone).", ["outcome"], registry=self.registry,
        )
        self.deliveries_pending = Gauge(
            "gateway_event_deliveries_pending", "Webhook deliveries not yet sent, over every tenant (read at scrape).",
            registry=self.registry)
        self.deliveries_due = Gauge(
            "gateway_event_deliveries_due", "Pending webhook deliveries due now (being sent, or waiting for a worker).",
            registry=self.registry)
        self.delivery_lag = Gauge(
            "gateway_event_delivery_lag_seconds", "How long the longest-waiting due delivery has been due (0 when "
            "none is): the workers keep up while this stays near the poll interval.", registry=self.registry)
        self.deliveries_failed = Gauge(
            "gateway_event_deliveries_failed", "Dead-lettered webhook deliveries (GET /v1/events?status=failed).",
            registry=self.registry)
        self.backlog_read_at = -math.inf  # when the gauges above were last read from the store (monotonic)
        self.events_emitted = Counter(
            "gateway_events_emitted", "Canonical events announced by the consent expiry watcher, by type.",
            ["type"], registry=self.registry,
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, labels: tuple[str, ...]) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def count(self, metric: Any, *labels: str) -> None:
        self._child(metric, labels).inc()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._child(self.requests, (method, route, str(status))).inc()
        self._child(self.request_seconds, (route,)).observe(seconds)

    def observe_upstream(self, provider: str, operation: str, outcome: str, seconds: float | None) -> None:
        self._child(self.upstream_calls, (provider, operation, outcome)).inc()
        if seconds is not None:
            self._child(self.upstream_seconds, (provider,)).observe(seconds)
