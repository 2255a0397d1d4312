"""`gateway serve` as a real process: starts on the local environment, serves, and stops cleanly on SIGTERM."""
from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import DEV, ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp_path: Path, port: int) -> Path:
    text = (ROOT / "config" / "local.toml").read_text()
    text = re.sub(r"sandbox_port = \d+", "sandbox_port = 0", text)
    text = text.replace('url = "sqlite:///var/gateway.db"', f'url = "sqlite:///{tmp_path}/gw.db"')
    text = text.replace('public_url = "http://127.0.0.1:8080"', f'public_url = "http://127.0.0.1:{port}"')
    path = tmp_path / "local.toml"
    path.write_text(text)
    return path


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_starts_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--config", str(_config(tmp_path, port)),
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/readyz")
                if status == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, "the gateway did not become ready"
            time.sleep(0.1)
        assert body == {"status": "ready", "checks": {"store": "ok"}}
        status, providers = _get(f"http://127.0.0.1:{port}/v1/providers", DEV)
        assert status == 200 and {p["id"] for p in providers["data"]} == {"mastercard-us", "mastercard-au", "stripe-uk", "thredd",
                                                                       "ob-connect"}
        assert _get(f"http://127.0.0.1:{port}/v1/providers")[0] == 401
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        out = proc.stdout.read().decode() if proc.stdout else ""
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert any(e.get("event") == "sandbox_started" for e in lines)
        assert any(e.get("event") == "request" and e.get("route") == "/v1/providers" for e in lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_refuses_a_bad_environment_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "config" / "local.toml").read_text().replace('environment = "local"',
                                                                         'environment = "moon"'))
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--config", str(bad)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "environment: must be one of" in out.stderr
