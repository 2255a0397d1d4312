"""The `gateway` command: serve, worker, check-config, providers, subscribe-notifications, onboard, certificates,
hash-key, receive-events."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "config/local.toml"


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from gateway.api.app import create_app
    from gateway.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is optional on platforms without it
        pass
    host = args.host or config.server.host
    port = args.port or config.server.port
    web.run_app(create_app(config), host=host, port=port, access_log=None, print=None,
                shutdown_timeout=config.server.shutdown_grace_seconds)
    return 0


def _worker(args: argparse.Namespace) -> int:
    """The event workers alone (webhook deliveries, consent expiry), beside gateway replicas that serve HTTP."""
    import asyncio

    from gateway.config import ConfigError, load_config
    from gateway.events.worker import run_worker
    from gateway.observability import configure_logging

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(config.logging.format, config.logging.level)
    try:
        asyncio.run(run_worker(config, metrics_port=args.metrics_port))
    except OSError as exc:  # the metrics port is taken, say
        print(f"gateway worker: cannot listen on the metrics port: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _receive_events(args: argparse.Namespace) -> int:
    from gateway.events.receiver import run

    run(args.port, args.secret_file)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, load_config

    failed = False
    for path in args.files:
        try:
            config = load_config(path)
        except ConfigError as exc:
            failed = True
            print(f"{path}: {len(exc.problems)} problem(s)")
            for problem in exc.problems:
                print(f"  {problem}")
            continue
        enabled = ", ".join(sorted(config.enabled_adapters())) or "none"
        print(f"{path}: ok (environment {config.environment}; adapters: {enabled})")
    return 1 if failed else 0


def _providers(args: argparse.Namespace) -> int:
    from adapters.base import OPERATIONS, PROVIDERS, load_adapter_class

    classes = [load_adapter_class(pid) for pid in sorted(PROVIDERS)]
    width = max(len(op) for op in OPERATIONS)
    header = " " * width + "  " + "  ".join(c.provider_id for c in classes)
    print(header)
    for op in OPERATIONS:
        cells = "  ".join(("yes" if op in c.capabilities else "-").center(len(c.provider_id)) for c in classes)
        print(f"{op.ljust(width)}  {cells}")
    print()
    for c in classes:
        print(f"{c.provider_id}: regions {', '.join(sorted(c.regions))}")
    return 0


def _subscribe_notifications(args: argparse.Namespace) -> int:
    """Subscribe (or re-point) a provider's consent notifications outside a running gateway, e.g. after rotating
    server.public_url or when the subscription at start failed."""
    found = _adapter_outside_server(args, "the gateway subscribes when it starts")
    if found is None:
        return 2
    if not hasattr(found[1], "subscribe_notifications"):
        print(f"{args.provider} has no consent notifications", file=sys.stderr)
        return 2
    code, outcome = _with_adapter(found, lambda adapter: adapter.subscribe_notifications())
    if code == 0:
        print(f"{args.provider}: consent notifications {outcome}")
    return code


def _adapter_outside_server(args: argparse.Namespace, what: str) -> tuple | None:  # type: ignore[type-arg]
    """(config, adapter class, adapter config) for a command acting on one provider outside a running gateway."""
    from adapters.base import load_adapter_class
    from gateway.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    adapter_config = config.enabled_adapters().get(args.provider)
    if adapter_config is None:
        print(f"{args.provider} is not enabled in {args.config}", file=sys.stderr)
        return None
    if adapter_config.embedded:
        print(f"{args.provider} runs on its embedded simulator here: {what}", file=sys.stderr)
        return None
    return config, load_adapter_class(args.provider), adapter_config


def _with_adapter(found: tuple, action: Any) -> tuple[int, Any]:  # type: ignore[type-arg]
    """Build the adapter with its store, vault and upstream session, run `action(adapter)`, close everything.
    (exit code, result); errors are printed."""
    import asyncio

    from gateway.connectivity.client import UpstreamFactory
    from gateway.errors import GatewayError
    from gateway.observability import Metrics
    from gateway.store import open_store
    from gateway.vault import Vault

    config, cls, adapter_config = found
    if config.security.encryption_key is None:
        print("security.encryption_key is required: what the provider issues is kept sealed", file=sys.stderr)
        return 2, None

    async def run() -> Any:
        store = open_store(config.store.url, event_horizon_seconds=config.events.retry_horizon_seconds,
                           pool_min_size=config.store.pool_min_size, pool_max_size=config.store.pool_max_size,
                           schema=config.store.schema)
        upstreams = UpstreamFactory(Metrics())
        await store.open()
        try:
            adapter = cls(adapter_config, upstreams, store, base_url=adapter_config.base_url,
                          vault=Vault(store, config.security.encryption_key), public_url=config.server.public_url)
            await upstreams.start()
            return await action(adapter)
        finally:
            await upstreams.close()
            await store.close()

    try:
        return 0, asyncio.run(run())
    except (GatewayError, LookupError) as exc:
        print(f"{adapter_config.provider}: {exc}", file=sys.stderr)
        return 1, None


def _onboard(args: argparse.Namespace) -> int:
    """Dynamic Client Registration with a provider (idempotent), or --show / --delete the registration."""
    import orjson

    found = _adapter_outside_server(
        args, "the gateway registers when it starts, and POST /v1/providers/<provider>/registration re-runs it")
    if found is None:
        return 2
    if "register_client" not in found[1].capabilities:
        print(f"{args.provider} has no client registration", file=sys.stderr)
        return 2

    async def act(adapter: Any) -> object:
        if args.delete:
            await adapter.delete_registration(None)
            return {"deleted": True}
        if args.show:
            return {"registration": await adapter.get_registration(None)}
        outcome, registration = await adapter.register_client(None)
        return {"outcome": outcome, "registration": registration}

    code, result = _with_adapter(found, act)
    if code == 0:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return code


def _certificates(args: argparse.Namespace) -> int:
    """Subjects and expiry of every certificate the environment names; exit 1 when one expires within 30 days."""
    from adapters.base import load_adapter_class
    from gateway.certificates.keys import KeyMaterialError, describe_certificate
    from gateway.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    warned = False
    for provider, adapter_config in sorted(config.enabled_adapters().items()):
        cls = load_adapter_class(provider)
        paths = getattr(cls, "certificate_paths", None)
        if paths is None:
            continue
        for label, path in paths(adapter_config.settings):
            try:
                info = describe_certificate(path)
            except KeyMaterialError as exc:
                print(f"{provider} {label}: {exc}")
                warned = True
                continue
            note = f"  WARNING: {info.warning}" if info.warning else ""
            warned = warned or info.warning is not None
            print(f"{provider} {label}: {info.subject}\n    issuer {info.issuer}; expires "
                  f"{info.not_after.isoformat()} ({info.days_left} days){note}")
    return 1 if warned else 0


def _hash_key(args: argparse.Namespace) -> int:
    from gateway.config import hash_api_key

    key = sys.stdin.readline().strip()
    if len(key) < 24:
        print("give the API key on standard input (at least 24 characters)", file=sys.stderr)
        return 2
    print(hash_api_key(key))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="The multi-region open-banking gateway.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway HTTP API")
    serve.add_argument("--config", default=DEFAULT_CONFIG, help=f"environment file (default {DEFAULT_CONFIG})")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.set_defaults(func=_serve)
    worker = sub.add_parser("worker", help="run only the event workers (webhook deliveries, consent expiry)")
    worker.add_argument("--config", default=DEFAULT_CONFIG, help=f"environment file (default {DEFAULT_CONFIG})")
    worker.add_argument("--metrics-port", type=int, default=None,
                        help="answer /metrics, /healthz and /readyz on this port (overrides events.worker_metrics_port)")
    worker.set_defaults(func=_worker)
    receiver = sub.add_parser("receive-events", help="a local webhook endpoint that prints deliveries and checks "
                                                     "their signatures (for trying subscriptions)")
    receiver.add_argument("--port", type=int, default=9000)
    receiver.add_argument("--secret-file", type=Path, help="file holding the subscription's whsec_ secret")
    receiver.set_defaults(func=_receive_events)
    check = sub.add_parser("check-config", help="validate environment files; print every problem with its key path")
    check.add_argument("files", nargs="+", type=Path)
    check.set_defaults(func=_check_config)
    prov = sub.add_parser("providers", help="print the capability matrix")
    prov.set_defaults(func=_providers)
    notify = sub.add_parser("subscribe-notifications",
                            help="subscribe to a provider's consent notifications and keep the signing key sealed")
    notify.add_argument("provider")
    notify.add_argument("--config", default=DEFAULT_CONFIG, help=f"environment file (default {DEFAULT_CONFIG})")
    notify.set_defaults(func=_subscribe_notifications)
    onboard = sub.add_parser("onboard", help="register the gateway with a provider (Dynamic Client Registration)")
    onboard.add_argument("provider")
    onboard.add_argument("--config", default=DEFAULT_CONFIG, help=f"environment file (default {DEFAULT_CONFIG})")
    onboard.add_argument("--show", action="store_true", help="read the registration back from the provider")
    onboard.add_argument("--delete", action="store_true", help="delete the registration at the provider")
    onboard.set_defaults(func=_onboard)
    certs = sub.add_parser("certificates", help="certificate subjects and expiry dates (warns 30 days ahead)")
    certs.add_argument("--config", default=DEFAULT_CONFIG, help=f"environment file (default {DEFAULT_CONFIG})")
    certs.set_defaults(func=_certificates)
    hashing = sub.add_parser("hash-key", help="print the SHA-256 of an API key read from standard input, "
                                              "for a caller's key_sha256")
    hashing.set_defaults(func=_hash_key)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
