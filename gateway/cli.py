"""The `gateway` command: serve, check-config, providers."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    check = sub.add_parser("check-config", help="validate environment files; print every problem with its key path")
    check.add_argument("files", nargs="+", type=Path)
    check.set_defaults(func=_check_config)
    prov = sub.add_parser("providers", help="print the capability matrix")
    prov.set_defaults(func=_providers)
    hashing = sub.add_parser("hash-key", help="print the SHA-256 of an API key read from standard input, "
                                              "for a caller's key_sha256")
    hashing.set_defaults(func=_hash_key)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
