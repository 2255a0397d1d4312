"""Environment files: TOML in, frozen attrs out, every problem reported with its key path.

`${VAR}` anywhere in a string is replaced from the process environment; a missing variable is an error naming it
and the key that used it. A secret field may also be given as `file:/path` (read from that file). Outside the
`local` and `test` environments a secret must come from a variable or a file, never from the file's own text.
"""
from __future__ import annotations

import hashlib
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Mapping

import attrs
import cattrs
from cattrs.errors import ClassValidationError, IterableValidationError

from gateway.secrets import Secret

SCOPES = frozenset({"ais:read", "ais:write", "pis:write", "reports", "webhooks", "admin"})
ENVIRONMENTS = frozenset({"local", "test", "sandbox", "preprod", "production"})
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """Raised with every problem found, each as 'key.path: reason'."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


@attrs.frozen
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = 1_048_576
    shutdown_grace_seconds: float = 10.0


@attrs.frozen
class StoreConfig:
    url: str = "sqlite:///var/gateway.db"
    # How long an account lookup may be served from memory; a write here clears it at once, another replica's
    # write is seen within this time. 0 turns the cache off.
    read_cache_seconds: float = 1.0
    # PostgreSQL only: each process's connection pool (`gateway serve` and every `gateway worker` have their own).
    pool_min_size: int = 1
    pool_max_size: int = 10
    # PostgreSQL only: the schema holding the gateway's tables, created if missing (default: the server's
    # search_path, normally `public`).
    schema: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.pool_min_size < 1:
            raise ValueError("pool_min_size must be at least 1")
        if self.pool_max_size < self.pool_min_size:
            raise ValueError("pool_max_size must be at least pool_min_size")
        if self.schema is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", self.schema):
            raise ValueError("schema must be an SQL identifier: letters, digits and _, not starting with a digit, "
                             "at most 63 characters")


@attrs.frozen
class LoggingConfig:
    format: str = "auto"  # auto | json | console
    level: str = "info"


@attrs.frozen
class SecurityConfig:
    # HMAC key for gateway ids and list cursors. Rotating it changes every derived id.
    id_key: Secret
    # Seals secrets the gateway keeps at rest (provider-issued signing keys, consent tokens) with AES-256-GCM.
    # Any length; a 32-byte key is derived from it. Changing it makes what was sealed unreadable (re-subscribe).
    encryption_key: Secret | None = None


@attrs.frozen
class CallerConfig:
    name: str
    tenant: str
    key_sha256: str
    scopes: tuple[str, ...]
    providers: tuple[str, ...] = ("*",)


@attrs.frozen
class TimeoutConfig:
    connect: float = 3.0
    total: float = 15.0


@attrs.frozen
class RetryConfig:
    attempts: int = 3
    backoff_base: float = 0.1
    backoff_max: float = 2.0
    max_retry_after: float = 5.0
    budget_ratio: float = 0.2


@attrs.frozen
class CircuitConfig:
    failure_threshold: int = 5
    reset_after: float = 30.0


@attrs.frozen
class AdapterConfig:
    provider: str
    enabled: bool = True
    # "embedded" starts the provider's simulator in this process and points the adapter at it.
    base_url: str = "embedded"
    sandbox_port: int = 0
    pool_size: int = 100
    timeouts: TimeoutConfig = TimeoutConfig()
    retry: RetryConfig = RetryConfig()
    circuit: CircuitConfig = CircuitConfig()
    # Provider-specific settings, structured by the adapter's own `settings_type`.
    settings: Any = None

    @property
    def embedded(self) -> bool:
        return self.base_url == "embedded"


def _at_least(minimum: float, why: str):  # type: ignore[no-untyped-def]
    def check(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
        if value < minimum:
            raise ValueError(f"{attribute.name} must be at least {minimum:g} ({why})")
    return check


@attrs.frozen
class PaymentsConfig:
    # How long a caller's Idempotency-Key is kept after its first use (payment APIs promise at least a day).
    idempotency_retention_hours: float = attrs.field(default=72.0, validator=_at_least(24, "keys are kept at least 24 h"))
    # A duplicate that arrives while the first request is still running waits this long for its answer, then gets
    # 409 request_in_progress with Retry-After.
    idempotency_wait_seconds: float = attrs.field(default=10.0, validator=_at_least(0, "seconds"))
    # A claim on a key not finished within this time is treated as abandoned (its process died) and taken over.
    idempotency_lease_seconds: float = attrs.field(default=60.0, validator=_at_least(1, "seconds"))
    # Reconciliation: non-final payments are checked upstream after base, 2×base, 4×base … seconds (capped at
    # max), until final or until `reconcile_horizon_hours` after the payment was created.
    reconcile: bool = True
    reconcile_tick_seconds: float = attrs.field(default=1.0, validator=_at_least(0.01, "seconds"))
    reconcile_backoff_base_seconds: float = attrs.field(default=2.0, validator=_at_least(0.01, "seconds"))
    reconcile_backoff_max_seconds: float = attrs.field(default=300.0, validator=_at_least(0.01, "seconds"))
    reconcile_horizon_hours: float = attrs.field(default=72.0, validator=_at_least(0.0001, "hours"))
    reconcile_concurrency: int = attrs.field(default=8, validator=_at_least(1, "payments checked at once"))


@attrs.frozen
class EventsConfig:
    """Canonical events: the outbox, the delivery worker and the subscriptions product teams register."""
    # Run the delivery worker (and the consent expiry watcher) inside `gateway serve`. Turn off where separate
    # `gateway worker` processes deliver instead.
    worker_in_serve: bool = True
    # `gateway worker` answers /metrics, /healthz and /readyz on this port (on server.host); unset: no port.
    worker_metrics_port: int | None = attrs.field(default=None)
    poll_interval_seconds: float = attrs.field(default=1.0, validator=_at_least(0.01, "seconds"))
    concurrency: int = attrs.field(default=32, validator=_at_least(1, "deliveries at once"))
    # At most this many deliveries to one subscription at once, so one slow subscriber holds few of the slots.
    per_subscription_concurrency: int = attrs.field(default=4, validator=_at_least(1, "deliveries at once"))
    request_timeout_seconds: float = attrs.field(default=10.0, validator=_at_least(0.05, "seconds"))
    # A delivery claimed by a worker that died is picked up by another after this long.
    lease_seconds: float = attrs.field(default=60.0, validator=_at_least(0.5, "seconds"))
    # Retries: after a failed attempt n (1, 2, …) the next comes min(base × 2^(n−1), max) later, jittered by
    # ±jitter of that, until `retry_horizon_seconds` after the event; then the delivery is dead-lettered.
    retry_base_seconds: float = attrs.field(default=5.0, validator=_at_least(0.001, "seconds"))
    retry_max_interval_seconds: float = attrs.field(default=6 * 3600.0, validator=_at_least(0.001, "seconds"))
    retry_horizon_seconds: float = attrs.field(default=3 * 86400.0, validator=_at_least(0.01, "seconds"))
    retry_jitter: float = attrs.field(default=0.2)
    # When a signing secret is rotated, the old one keeps signing alongside the new for this long.
    secret_overlap_seconds: float = attrs.field(default=86400.0, validator=_at_least(0, "seconds"))
    # `consent.expiring` is emitted this long before a consent's expiry.
    consent_expiring_lead_seconds: float = attrs.field(default=7 * 86400.0, validator=_at_least(0, "seconds"))
    expiry_check_interval_seconds: float = attrs.field(default=60.0, validator=_at_least(0.01, "seconds"))
    # Events stay readable at GET /v1/events this long (and at least until their deliveries are finished).
    retention_seconds: float = attrs.field(default=30 * 86400.0, validator=_at_least(1, "seconds"))
    # Subscription URLs: https only, and never a private, loopback or link-local address, unless allowed here
    # (the local environment allows both so a laptop can receive its own events).
    allow_http: bool = False
    allow_private_targets: bool = False

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.retry_jitter < 1:
            raise ValueError("retry_jitter must be at least 0 and below 1")
        if self.worker_metrics_port is not None and not 0 <= self.worker_metrics_port <= 65535:
            raise ValueError("worker_metrics_port must be a TCP port (0 to 65535)")
        if self.lease_seconds <= self.request_timeout_seconds:
            raise ValueError("lease_seconds must be longer than request_timeout_seconds (a delivery still in flight "
                             "would otherwise be claimed and sent again)")
        if self.retention_seconds < self.retry_horizon_seconds:
            raise ValueError("retention_seconds must be at least retry_horizon_seconds (events outlive retries)")
        if self.retry_max_interval_seconds < self.retry_base_seconds:
            raise ValueError("retry_max_interval_seconds must be at least retry_base_seconds")


LICENCE_ROLES = frozenset({"AISP", "PISP"})


@attrs.frozen
class LicenceConfig:
    """What the operator is licensed for: account information (AISP) and/or payment initiation (PISP), and the
    countries where it is authorised or passported (empty: not restricted by country)."""
    roles: tuple[str, ...] = ("AISP", "PISP")
    countries: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        unknown = sorted(set(self.roles) - LICENCE_ROLES)
        if unknown:
            raise ValueError(f"roles: unknown role(s) {', '.join(unknown)} (known: AISP, PISP)")


@attrs.frozen
class GatewayConfig:
    environment: str
    server: ServerConfig
    store: StoreConfig
    logging: LoggingConfig
    security: SecurityConfig
    callers: tuple[CallerConfig, ...]
    adapters: Mapping[str, AdapterConfig]
    regions: Mapping[str, str]
    source: str = "<memory>"
    payments: PaymentsConfig = PaymentsConfig()
    licence: LicenceConfig = LicenceConfig()
    events: EventsConfig = EventsConfig()

    def enabled_adapters(self) -> dict[str, AdapterConfig]:
        return {pid: a for pid, a in self.adapters.items() if a.enabled}


# --- loading ---------------------------------------------------------------------------------------------------------
_COMMON_ADAPTER_KEYS = {f.name for f in attrs.fields(AdapterConfig)} - {"provider", "settings"}


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(Secret, lambda v, _: v if isinstance(v, Secret) else _secret(v))
    return conv


def _secret(value: Any) -> Secret:
    if not isinstance(value, str):
        raise ValueError("a secret must be a string")
    return Secret(value)


def _substitute(node: Any, path: str, problems: list[str], secrets_from: dict[str, str], env: Mapping[str, str]) -> Any:
    """Replace ${VAR} and file: references; remember how each string was sourced (for the secret rule)."""
    if isinstance(node, dict):
        return {k: _substitute(v, f"{path}.{k}" if path else k, problems, secrets_from, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, f"{path}[{i}]", problems, secrets_from, env) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node
    source = "literal"

    def repl(match: re.Match[str]) -> str:
        nonlocal source
        name = match.group(1)
        source = "env"
        if name not in env:
            problems.append(f"{path}: environment variable {name} is not set")
            return ""
        return env[name]

    value = _VAR.sub(repl, node)
    if value.startswith("file:"):
        file_path = Path(value[5:])
        source = "file"
        try:
            value = file_path.read_text().strip()
        except OSError as exc:
            problems.append(f"{path}: cannot read secret file {file_path}: {exc.strerror}")
            value = ""
    secrets_from[path] = source
    return value


def _describe(exc: BaseException, type_: Any) -> str:
    """A validator's own message (it says what is wrong and why); cattrs' wording for everything else."""
    if type(exc) is ValueError and str(exc):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def _format_cattrs(exc: Exception, prefix: str) -> list[str]:
    out = []
    for message in cattrs.transform_error(exc, format_exception=_describe):
        reason, _, where = message.rpartition(" @ ")
        where = where.removeprefix("$").lstrip(".")
        where = re.sub(r"\['([^']*)'\]", r".\1", where)
        key = ".".join(p for p in (prefix, where) if p)
        out.append(f"{key}: {reason}")
    return out


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    text_path = Path(path)
    try:
        raw = tomllib.loads(text_path.read_text())
    except FileNotFoundError:
        raise ConfigError([f"{text_path}: file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{text_path}: not valid TOML: {exc}"]) from None
    return parse_config(raw, source=str(text_path), environ=environ)


def parse_config(raw: dict[str, Any], *, source: str = "<memory>", environ: Mapping[str, str] | None = None) -> GatewayConfig:
    from adapters.base import PROVIDERS, load_adapter_class  # late: adapters import gateway modules

    problems: list[str] = []
    secrets_from: dict[str, str] = {}
    data = _substitute(raw, "", problems, secrets_from, os.environ if environ is None else environ)
    conv = _converter()

    environment = data.get("environment")
    if environment not in ENVIRONMENTS:
        problems.append(f"environment: must be one of {', '.join(sorted(ENVIRONMENTS))}")
        environment = "local"
    known_top = {"environment", "server", "store", "logging", "security", "callers", "adapters", "regions",
                 "payments", "licence", "events"}
    for key in data:
        if key not in known_top:
            problems.append(f"{key}: unknown key")

    def section(name: str, cls: type, default: Any = attrs.NOTHING) -> Any:
        value = data.get(name)
        if value is None:
            if default is attrs.NOTHING:
                problems.append(f"{name}: required section missing")
                return None
            return default
        try:
            return conv.structure(value, cls)
        except (ClassValidationError, IterableValidationError) as exc:
            problems.extend(_format_cattrs(exc, name))
            return None

    server = section("server", ServerConfig, ServerConfig())
    store = section("store", StoreConfig, StoreConfig())
    logging_cfg = section("logging", LoggingConfig, LoggingConfig())
    security = section("security", SecurityConfig)
    payments = section("payments", PaymentsConfig, PaymentsConfig())
    licence = section("licence", LicenceConfig, LicenceConfig())
    events = section("events", EventsConfig, EventsConfig())
    callers: list[CallerConfig] = []
    for i, raw_caller in enumerate(data.get("callers") or []):
        try:
            caller = conv.structure(raw_caller, CallerConfig)
        except (ClassValidationError, IterableValidationError) as exc:
            problems.extend(_format_cattrs(exc, f"callers[{i}]"))
            continue
        if caller.key_sha256 and not re.fullmatch(r"[0-9a-f]{64}", caller.key_sha256):
            problems.append(f"callers[{i}].key_sha256: must be the hex SHA-256 of the API key (64 lower-case hex digits)")
        for scope in caller.scopes:
            if scope not in SCOPES:
                problems.append(f"callers[{i}].scopes: unknown scope {scope!r} (known: {', '.join(sorted(SCOPES))})")
        for provider in caller.providers:
            if provider != "*" and provider not in PROVIDERS:
                problems.append(f"callers[{i}].providers: unknown provider {provider!r}")
        callers.append(caller)
    if not callers:
        problems.append("callers: at least one caller is required")
    if len({c.key_sha256 for c in callers}) != len(callers):
        problems.append("callers: two callers share one key")

    adapters: dict[str, AdapterConfig] = {}
    for provider, raw_adapter in (data.get("adapters") or {}).items():
        prefix = f"adapters.{provider}"
        if provider not in PROVIDERS:
            problems.append(f"{prefix}: unknown provider (known: {', '.join(sorted(PROVIDERS))})")
            continue
        if not isinstance(raw_adapter, dict):
            problems.append(f"{prefix}: must be a table")
            continue
        cls = load_adapter_class(provider)
        common = {k: v for k, v in raw_adapter.items() if k in _COMMON_ADAPTER_KEYS}
        specific = {k: v for k, v in raw_adapter.items() if k not in _COMMON_ADAPTER_KEYS}
        settings = adapter_cfg = None
        try:
            settings = conv.structure(specific, cls.settings_type)
        except (ClassValidationError, IterableValidationError) as exc:
            problems.extend(_format_cattrs(exc, prefix))
        try:
            adapter_cfg = conv.structure({"provider": provider, **common}, AdapterConfig)
        except (ClassValidationError, IterableValidationError) as exc:
            problems.extend(_format_cattrs(exc, prefix))
        if settings is None or adapter_cfg is None:
            continue
        adapter_cfg = attrs.evolve(adapter_cfg, settings=settings)
        if not adapter_cfg.embedded and not adapter_cfg.base_url.startswith(("https://", "http://")):
            problems.append(f"{prefix}.base_url: must be an http(s) URL or \"embedded\"")
        if adapter_cfg.embedded and environment in ("preprod", "production"):
            problems.append(f"{prefix}.base_url: the embedded simulator is not allowed in {environment}")
        adapters[provider] = adapter_cfg

    regions = data.get("regions") or {}
    configured = set((data.get("adapters") or {}))
    for region, provider in regions.items():
        if provider in configured and provider not in adapters:
            continue  # the adapter's own problems are reported above
        if provider not in adapters or not adapters[provider].enabled:
            problems.append(f"regions.{region}: provider {provider!r} is not an enabled adapter")

    if environment not in ("local", "test"):
        for key, how in secrets_from.items():
            if how == "literal" and _is_secret_key(key):
                problems.append(f"{key}: in {environment} a secret must come from ${{VAR}} or file:, not the file itself")

    if environment in ("preprod", "production") and events is not None:
        for key in ("allow_http", "allow_private_targets"):
            if getattr(events, key):
                problems.append(f"events.{key}: not allowed in {environment} (subscribers must be public https "
                                "endpoints, so the gateway cannot be pointed at internal hosts)")

    if problems:
        raise ConfigError(problems)
    return GatewayConfig(
        environment=environment,
        server=server,
        store=store,
        logging=logging_cfg,
        security=security,
        callers=tuple(callers),
        adapters=adapters,
        regions=dict(regions),
        source=source,
        payments=payments,
        licence=licence,
        events=events,
    )


_SECRET_KEY = re.compile(r"(secret|password|id_key|private|signing_key|encryption_key)", re.I)


def _is_secret_key(path: str) -> bool:
    leaf = path.rsplit(".", 1)[-1]
    return bool(_SECRET_KEY.search(leaf))


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
