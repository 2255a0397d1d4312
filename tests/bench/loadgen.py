"""Load generation: wrk when it is installed (apt-get install wrk), else a Python fallback.

The fallback (aiohttp in its own process) is slower than wrk and shares the two cores with what it measures, so
its absolute numbers are lower; the gateway/reference ratios it reports remain comparable because both targets
are driven the same way. Install wrk for the numbers the budget is judged on.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_WRK_SCRIPT = """
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors": %d, "non_2xx": %d}\\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run(url: str, *, connections: int, duration: float, auth: str | None) -> dict[str, Any]:
    if have_wrk():
        return _wrk(url, connections=connections, duration=duration, auth=auth)
    return _python(url, connections=connections, duration=duration, auth=auth)


def _summarise(requests: int, seconds: float, p50_us: float, p99_us: float, errors: int) -> dict[str, Any]:
    return {"rps": requests / seconds if seconds else 0.0, "p50_ms": p50_us / 1000, "p99_ms": p99_us / 1000,
            "requests": requests, "errors": errors}


def _wrk(url: str, *, connections: int, duration: float, auth: str | None) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT)
    env = {"BENCH_AUTH": auth or "", "PATH": "/usr/bin:/bin:/usr/local/bin"}
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--timeout", "5s", "-s", script.name, url]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=duration + 30)
    Path(script.name).unlink(missing_ok=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    data = json.loads(line[6:])
    return _summarise(data["requests"], data["duration_us"] / 1e6, data["p50_us"], data["p99_us"],
                      data["errors"] + data["non_2xx"])


def _python(url: str, *, connections: int, duration: float, auth: str | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "tests.bench.loadgen", url, str(connections), str(duration), auth or ""]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    return json.loads(out.stdout.strip().splitlines()[-1])


async def _python_main(url: str, connections: int, duration: float, auth: str) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": auth} if auth else {}
    deadline = time.perf_counter() + duration

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                async with session.get(url, headers=headers) as resp:
                    await resp.read()
                    if resp.status >= 400:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e6 if latencies else 0.0  # noqa: E731
    return _summarise(len(latencies), elapsed, pick(0.5), pick(0.99), errors)


if __name__ == "__main__":
    target, conns, secs, auth_header = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    print(json.dumps(asyncio.run(_python_main(target, conns, secs, auth_header))))
