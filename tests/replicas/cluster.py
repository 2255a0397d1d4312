"""Gateway replicas as real `gateway serve` processes on one PostgreSQL schema, and the upstream simulators they
share, run once in the test process.

Each replica embedding its own simulators would give each its own bank: a consent made through one would be
unknown to the simulator another replica calls. So the simulators a test needs are built here from the same parsed
configuration (`create_sandbox`) and started on local ports, the replicas' environment file points those adapters'
`base_url` at them, and every other adapter is disabled. `server.public_url` is the first replica's address: it
stands for the load balancer, so simulators that call back (thredd's webhooks) reach the cluster there.

The schema is the test's own (`Cluster(schema=…)`), created by the replicas' migrations and dropped by `close()`.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import IO, Any, Awaitable, Callable, NoReturn

import aiohttp
import pytest

from adapters.base import load_adapter_class
from gateway.config import parse_config
from tests.conftest import ROOT, unused_port


def listen_port() -> int:
    """A free local port below the kernel's ephemeral range (Linux starts it at 32768), where no outgoing connection
    takes its port: between choosing it and a replica binding it, only another test choosing the same could."""
    for _ in range(100):
        port = random.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    return unused_port()

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"

# Events delivered within a test's patience (fast polls and retries); a request timeout long enough that a busy
# machine does not turn a prompt answer into a retry.
FAST_EVENTS: dict[str, Any] = {
    "allow_http": True, "allow_private_targets": True, "worker_in_serve": True, "poll_interval_seconds": 0.05,
    "retry_base_seconds": 0.05, "retry_max_interval_seconds": 0.2, "retry_horizon_seconds": 60,
    "retention_seconds": 120, "request_timeout_seconds": 5.0, "lease_seconds": 6.0,
    "expiry_check_interval_seconds": 0.5,
}


# --- PostgreSQL ------------------------------------------------------------------------------------------------------
async def postgres_unusable() -> str | None:
    """Why the server cannot be used here, or None."""
    try:
        import asyncpg
    except ImportError:
        return f"PostgreSQL at {PG_HOST}:{PG_PORT} is not usable: asyncpg is not installed"
    try:
        conn = await asyncpg.connect(PG_URL, timeout=5)
        await conn.close()
    except Exception as exc:  # refused, unknown database, auth: all mean "cannot run here"
        return f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable: {type(exc).__name__}: {exc}"
    return None


def cannot_use_postgres(reason: str) -> NoReturn:
    if os.environ.get("GATEWAY_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (and GATEWAY_REQUIRE_POSTGRES=1 requires it)", pytrace=False)
    pytest.skip(f"the replica tests need PostgreSQL: {reason}")


def new_schema() -> str:
    return f"replicas_{secrets.token_hex(6)}"


async def query(schema: str, sql: str, *args: Any) -> list[Any]:
    """Rows of `sql` run in `schema` (its own connection)."""
    import asyncpg

    conn = await asyncpg.connect(PG_URL, timeout=5, server_settings={"search_path": f'"{schema}"'})
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


# --- the environment file --------------------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def dump_toml(data: dict[str, Any], path: tuple[str, ...] = ()) -> str:
    """Enough TOML for an environment file: tables two levels deep (`[adapters.thredd]`), arrays of tables
    (`[[callers]]`), inline tables below that (`timeouts = { … }`)."""
    def is_table(v: Any) -> bool:
        return isinstance(v, dict) and len(path) < 2

    lines = [f"[{'.'.join(path)}]"] if path else []
    lines += [f"{k} = {_toml_value(v)}" for k, v in data.items()
              if not is_table(v) and not (isinstance(v, list) and v and isinstance(v[0], dict))]
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                lines += ["", f"[[{'.'.join((*path, key))}]]", *(f"{k} = {_toml_value(v)}" for k, v in item.items())]
        elif is_table(value):
            lines += ["", dump_toml(value, (*path, key))]
    return "\n".join(lines)


# --- one replica -----------------------------------------------------------------------------------------------------
class Replica:
    """`gateway serve` as a child process on its own port, its output in a file (a pipe nobody reads would block)."""

    def __init__(self, name: str, port: int, config: Path, log_dir: Path) -> None:
        self.name, self.port, self.config = name, port, config
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Replica":
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(self.config), "--port", str(self.port)],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    async def ready(self, http: aiohttp.ClientSession, timeout: float = 30.0) -> None:
        async def up() -> bool:
            assert self.alive(), f"replica {self.name} exited:\n{self.tail()}"
            try:
                async with http.get(f"{self.base}/readyz") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(up, f"replica {self.name} to become ready", timeout)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while (code := self.proc.poll()) is None:
            assert time.monotonic() < deadline, f"replica {self.name} did not exit:\n{self.tail()}"
            await asyncio.sleep(0.02)
        return code

    async def kill(self) -> None:
        """SIGKILL if still running, and reap; safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            await self.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


# --- the cluster -----------------------------------------------------------------------------------------------------
class Cluster:
    """Replicas named a, b, c … over one schema, with the simulators of `providers` (stripe-uk, thredd) running
    here. `events` and `server` override keys of those tables of config/local.toml."""

    def __init__(self, tmp_path: Path, schema: str, *, replicas: int = 3, providers: tuple[str, ...] = (),
                 events: dict[str, Any] | None = None, server: dict[str, Any] | None = None) -> None:
        self.tmp_path, self.schema, self.providers = tmp_path, schema, providers
        self.names = [chr(ord("a") + i) for i in range(replicas)]
        self.ports = {name: listen_port() for name in self.names}
        self.public_url = f"http://127.0.0.1:{self.ports['a']}"
        self.events = {**FAST_EVENTS, **(events or {})}
        self.server = server or {}
        self.sandboxes: dict[str, Any] = {}
        self.replicas: dict[str, Replica] = {}
        self.config_path = tmp_path / "replica.toml"

    def raw_config(self) -> dict[str, Any]:
        raw = tomllib.loads((ROOT / "config" / "local.toml").read_text())
        raw["server"] = {**raw["server"], "public_url": self.public_url, "shutdown_grace_seconds": 5.0,
                         **self.server}
        raw["store"] = {"url": PG_URL, "schema": self.schema, "pool_min_size": 1, "pool_max_size": 5}
        raw["logging"] = {"format": "json", "level": "info"}
        raw["events"] = dict(self.events)
        for provider, adapter in raw["adapters"].items():
            adapter["sandbox_port"] = 0
            adapter["enabled"] = provider in self.providers
        uk = raw["adapters"]["stripe-uk"]
        uk["local_material"] = str(ROOT / uk["local_material"])  # the same material here and in every replica
        uk["subscribe_events"] = False  # nothing here needs the bank's notifications
        uk["sandbox_payment_timeline"] = [0.05, 0.15]
        raw["regions"] = {region: p for region, p in raw["regions"].items() if p in self.providers}
        return raw

    async def start_simulators(self) -> None:
        """Each needed simulator once, here; then the replicas' environment file pointing at them."""
        raw = self.raw_config()
        parsed = parse_config(raw, source="replicas")
        for provider in self.providers:
            sandbox = load_adapter_class(provider).create_sandbox(parsed.adapters[provider])
            base_url = await sandbox.start("127.0.0.1", 0)
            if hasattr(sandbox, "webhook_url"):  # it calls back: to the cluster's public address
                sandbox.webhook_url = f"{self.public_url}/webhooks/{provider}"
            self.sandboxes[provider] = sandbox
            raw["adapters"][provider]["base_url"] = base_url
        self.config_path.write_text(dump_toml(raw) + "\n")

    def replica(self, name: str) -> Replica:
        if name not in self.replicas:
            self.replicas[name] = Replica(name, self.ports[name], self.config_path, self.tmp_path)
        return self.replicas[name]

    async def start(self, http: aiohttp.ClientSession, *, together: bool | None = None) -> list[Replica]:
        """Every replica, ready. `together` (the default) starts them at the same moment; otherwise the first starts
        alone and is ready before the others start."""
        if together is None:
            together = True  # replicas register with the bank one at a time under a lease
        if not self.sandboxes and self.providers:
            await self.start_simulators()
        elif not self.config_path.exists():
            self.config_path.write_text(dump_toml(self.raw_config()) + "\n")
        first, *rest = [self.replica(n) for n in self.names]
        if together:
            for replica in (first, *rest):
                replica.start()
        else:
            await first.start().ready(http)
            for replica in rest:
                replica.start()
        await asyncio.gather(*(r.ready(http) for r in (first, *rest)))
        return [first, *rest]

    def __getitem__(self, name: str) -> Replica:
        return self.replicas[name]

    async def close(self) -> None:
        """Kill every replica still running, stop the simulators, drop the schema: each step even if one fails."""
        try:
            for replica in self.replicas.values():
                await replica.kill()
        finally:
            try:
                for sandbox in self.sandboxes.values():
                    await sandbox.stop()
            finally:
                await drop_schema(self.schema)

    def owner_of(self, peer_port: int) -> str | None:
        """The replica whose process holds the client end of a local TCP connection from `peer_port` (Linux)."""
        pids = {r.pid: name for name, r in self.replicas.items() if r.alive()}
        return socket_owner(peer_port, pids)


def socket_owner(peer_port: int, pids: dict[int, str]) -> str | None:
    """Which of `pids` (pid → name) holds the TCP socket whose local port is `peer_port`: its inode is found in
    /proc/net/tcp, then among the processes' open descriptors."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == peer_port:
                inodes.add(fields[9])
    for pid, name in pids.items():
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return name
    return None


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.05)
