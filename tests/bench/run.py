"""`make bench` and `make soak`: the gateway measured against a bare pass-through proxy, in the same run.

Three processes: a fast fake mastercard-us upstream, the reference proxy, and the gateway (local environment,
mastercard-us pointed at the fake upstream; auth, validation, translation, logging and metrics all on). For each
endpoint the reference and the gateway are driven alternately, several rounds, and medians are reported.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.request
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

from tests.bench import loadgen, payloads

ROOT = Path(__file__).resolve().parents[2]
DEV_KEY = "gw_dev_local_key_do_not_use_in_production"
AUTH = f"Bearer {DEV_KEY}"
BUDGET = {"throughput_transactions_50": 0.5, "throughput_balance": 0.8, "added_p50_ms": 0.5, "added_p99_ms": 2.0,
          "translation_per_core": 200_000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def call(method: str, url: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": AUTH, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def toml_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def gateway_config(tmp: Path, upstream: str, store_url: str | None = None) -> Path:
    text = (ROOT / "config" / "local.toml").read_text()
    text = text.replace('base_url = "embedded"          # the simulator, started in-process', f'base_url = "{upstream}"')
    store = f'url = "{store_url}"\nschema = "bench_{os.getpid()}"' if store_url else f'url = "sqlite:///{tmp}/bench.db"'
    text = text.replace('url = "sqlite:///var/gateway.db"', store)
    text = text.replace('format = "auto"', 'format = "json"')
    path = tmp / "bench.toml"
    path.write_text(text)
    assert tomllib.loads(text)["adapters"]["mastercard-us"]["base_url"] == upstream
    return path


class RssSampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.time(), self.rss_kb()))
            except OSError:
                return
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()

    @property
    def peak_mb(self) -> float:
        return max((kb for _, kb in self.samples), default=0) / 1024


def translation_throughput(seconds: float = 3.0) -> dict[str, float]:
    """Upstream bytes in, canonical JSON bytes out, in this process on one core.

    Counted against the CPU time this process used (time.process_time), which is what "per core" means: time the
    virtual machine spends running something else is not charged to the translation. Wall-clock rate is kept too.
    """
    from adapters.mastercard import translate
    from adapters.mastercard.region import US
    from gateway.ids import IdMinter
    from gateway.models.serialize import dumps, to_plain_list

    body = payloads.transactions_page(50)
    ids = IdMinter(b"k" * 32, "tenant", "con_bench")  # one consent; transaction ids are tagged per account
    count = 0
    wall, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        page = translate.transactions(orjson.loads(body), region=US, account_id="acc_x", ids=ids,
                                      include_pending=True, include_removed=False)
        dumps({"data": to_plain_list(page.items), "next_cursor": None})
        count += len(page.items)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"transactions_per_second": count / cpu, "transactions_per_wall_second": count / wall}


def start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT, env=env)


def setup(gw: str) -> str:
    customer = call("POST", f"{gw}/v1/customers", {"provider": "mastercard-us", "external_ref": f"bench{time.time_ns()}"})
    consent = call("POST", f"{gw}/v1/consents", {"customer_id": customer["id"],
                                                 "redirect_uri": "https://app.example.com/cb"})
    done = call("POST", f"{gw}/v1/consents/{consent['id']}/complete", {"redirect_result": "code=200&reason=done"})
    assert done["status"] == "authorised", done
    accounts = call("GET", f"{gw}/v1/accounts?consent_id={consent['id']}")["data"]
    return next(a["id"] for a in accounts if a["type"] == "checking")


def endpoints(gw: str, ref: str, account: str) -> dict[str, tuple[str, str]]:
    c, a = payloads.CUSTOMER_ID, payloads.ACCOUNT_ID
    today = date.today()
    frm = today - timedelta(days=90)
    epoch_from = int(time.mktime(frm.timetuple()))
    epoch_to = int(time.mktime(today.timetuple())) + 86399
    return {
        "transactions_50": (
            f"{ref}/aggregation/v4/customers/{c}/accounts/{a}/transactions?fromDate={epoch_from}&toDate={epoch_to}"
            f"&start=1&limit=50&sort=desc&includePending=true",
            f"{gw}/v1/accounts/{account}/transactions?from={frm}&to={today}&limit=50"),
        "balance": (f"{ref}/aggregation/v1/customers/{c}/accounts/{a}/availableBalance",
                    f"{gw}/v1/accounts/{account}/balances"),
        "accounts": (f"{ref}/aggregation/v1/customers/{c}/accounts", None),
    }


def measure(urls: dict[str, tuple[str, str | None]], *, duration: float, rounds: int,
            gw_accounts_url: str) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, (ref_url, gw_url) in urls.items():
        gw_url = gw_url or gw_accounts_url
        for url, auth in ((ref_url, None), (gw_url, AUTH)):  # warm-up
            loadgen.run(url, connections=8, duration=2, auth=auth)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {"reference": {"tput": [], "lat": []},
                                                            "gateway": {"tput": [], "lat": []}}
        for r in range(rounds):
            order = [("reference", ref_url, None), ("gateway", gw_url, AUTH)]
            if r % 2:
                order.reverse()  # alternate to cancel drift
            for label, url, auth in order:
                runs[label]["tput"].append(loadgen.run(url, connections=64, duration=duration, auth=auth))
                runs[label]["lat"].append(loadgen.run(url, connections=1, duration=duration, auth=auth))
        summary: dict[str, Any] = {}
        for label, data in runs.items():
            summary[label] = {
                "rps": statistics.median(x["rps"] for x in data["tput"]),
                "p50_ms": statistics.median(x["p50_ms"] for x in data["lat"]),
                "p99_ms": statistics.median(x["p99_ms"] for x in data["lat"]),
                "rps_64_p99_ms": statistics.median(x["p99_ms"] for x in data["tput"]),
                "errors": sum(x["errors"] for x in data["tput"] + data["lat"]),
            }
        g, ref = summary["gateway"], summary["reference"]
        summary["throughput_ratio"] = g["rps"] / ref["rps"] if ref["rps"] else 0.0
        summary["added_p50_ms"] = g["p50_ms"] - ref["p50_ms"]
        summary["added_p99_ms"] = g["p99_ms"] - ref["p99_ms"]
        results[name] = summary
    return results


def soak(gw_urls: list[str], seconds: float, sampler: RssSampler) -> dict[str, Any]:
    chunk = 15.0
    started = time.time()
    errors = 0
    requests = 0
    i = 0
    timeline = []
    while time.time() - started < seconds:
        out = loadgen.run(gw_urls[i % len(gw_urls)], connections=16, duration=min(chunk, seconds), auth=AUTH)
        errors += out["errors"]
        requests += out["requests"]
        timeline.append({"t": round(time.time() - started), "rss_mb": round(sampler.rss_kb() / 1024, 1),
                         "rps": round(out["rps"])})
        print(f"  soak t={timeline[-1]['t']:>4}s rss={timeline[-1]['rss_mb']:>7.1f} MB rps={timeline[-1]['rps']}",
              flush=True)
        i += 1
    warm = [p["rss_mb"] for p in timeline if p["t"] >= min(60, seconds / 3)]
    growth = (warm[-1] - warm[0]) if len(warm) >= 2 else 0.0
    return {"seconds": seconds, "requests": requests, "errors": errors, "timeline": timeline,
            "rss_after_warmup_mb": warm[0] if warm else None, "rss_end_mb": warm[-1] if warm else None,
            "growth_after_warmup_mb": round(growth, 1)}


def print_table(results: dict[str, Any], translation: dict[str, float], peak_mb: float, tool: str) -> list[str]:
    lines = [f"load generator: {tool}; one gateway process; reference = bare aiohttp pass-through proxy", "",
             f"{'endpoint':<17}{'target':<11}{'req/s @64':>11}{'p50 @1':>10}{'p99 @1':>10}{'errors':>8}",
             "-" * 67]
    for name, s in results.items():
        for label in ("reference", "gateway"):
            x = s[label]
            lines.append(f"{name:<17}{label:<11}{x['rps']:>11.0f}{x['p50_ms']:>8.3f}ms{x['p99_ms']:>8.3f}ms"
                         f"{x['errors']:>8}")
        lines.append(f"{'':<17}{'ratio':<11}{s['throughput_ratio']:>11.2f}{s['added_p50_ms']:>+8.3f}ms"
                     f"{s['added_p99_ms']:>+8.3f}ms")
    lines += ["", f"translation only: {translation['transactions_per_second']:,.0f} transactions per CPU-second "
                  f"({translation['transactions_per_wall_second']:,.0f}/s by the wall clock)",
              f"gateway peak RSS: {peak_mb:.1f} MB", ""]
    checks = [
        ("throughput on the 50-transaction page >= 0.5 of reference",
         results["transactions_50"]["throughput_ratio"] >= BUDGET["throughput_transactions_50"]),
        ("throughput on the balance call >= 0.8 of reference",
         results["balance"]["throughput_ratio"] >= BUDGET["throughput_balance"]),
        ("added p50 <= 0.5 ms (every endpoint, one connection)",
         all(s["added_p50_ms"] <= BUDGET["added_p50_ms"] for s in results.values())),
        ("added p99 <= 2 ms (every endpoint, one connection)",
         all(s["added_p99_ms"] <= BUDGET["added_p99_ms"] for s in results.values())),
        ("translation >= 200,000 transactions/s per core",
         translation["transactions_per_second"] >= BUDGET["translation_per_core"]),
        ("zero errors", all(s[t]["errors"] == 0 for s in results.values() for t in ("reference", "gateway"))),
    ]
    lines += [f"{'PASS' if ok else 'FAIL'}  {what}" for what, ok in checks]
    print("\n".join(lines), flush=True)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating reference/gateway rounds")
    parser.add_argument("--soak", type=float, default=0.0, help="run the soak for this many seconds instead")
    parser.add_argument("--out", default="bench-results", help="folder for the JSON results")
    parser.add_argument("--store-url", help="a postgresql:// URL to measure the gateway on PostgreSQL (a schema "
                                            "bench_<pid> is created and dropped) instead of SQLite")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    up_port, ref_port, gw_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    py = sys.executable
    procs = [start([py, "-m", "tests.bench.fake_upstream", "--port", str(up_port)], tmp / "upstream.log"),
             start([py, "-m", "tests.bench.proxy", "--port", str(ref_port), "--upstream", upstream], tmp / "proxy.log")]
    gw_proc = start([py, "-m", "gateway.cli", "serve", "--config", str(gateway_config(tmp, upstream, args.store_url)),
                     "--port", str(gw_port)], tmp / "gateway.log")
    procs.append(gw_proc)
    gw, ref = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{ref_port}"
    sampler = RssSampler(gw_proc.pid)
    try:
        wait_http(f"{gw}/healthz")
        wait_http(f"{ref}/aggregation/v1/customers/1/accounts")
        account = setup(gw)
        sampler.start()
        urls = endpoints(gw, ref, account)
        consent_url = f"{gw}/v1/accounts?consent_id="  # filled below
        consent_id = call("GET", f"{gw}/v1/accounts/{account}")["consent_id"]
        gw_accounts_url = consent_url + consent_id
        out_dir = ROOT / args.out
        out_dir.mkdir(exist_ok=True)
        tool = "wrk" if loadgen.have_wrk() else "python fallback (install wrk for accurate numbers)"
        if args.soak:
            print(f"soak: {args.soak:.0f} s against the gateway ({tool})", flush=True)
            gw_urls = [u[1] for u in urls.values() if u[1]] + [gw_accounts_url]
            report = soak(gw_urls, args.soak, sampler)
            print(f"soak done: {report['requests']} requests, {report['errors']} errors, RSS after warm-up "
                  f"{report['rss_after_warmup_mb']} MB → end {report['rss_end_mb']} MB "
                  f"(growth {report['growth_after_warmup_mb']} MB)")
            (out_dir / "soak.json").write_text(json.dumps(report, indent=2))
            return 0 if report["errors"] == 0 else 1
        print(f"benchmark: {args.rounds} rounds x {args.duration:.0f} s per run ({tool})", flush=True)
        results = measure(urls, duration=args.duration, rounds=args.rounds, gw_accounts_url=gw_accounts_url)
        translation = translation_throughput()
        lines = print_table(results, translation, sampler.peak_mb, tool)
        (out_dir / "bench.json").write_text(json.dumps({
            "results": results, "translation": translation, "gateway_peak_rss_mb": sampler.peak_mb,
            "load_generator": tool, "budget": BUDGET, "table": lines}, indent=2))
        print(f"\nwritten: {out_dir / 'bench.json'}")
        return 0
    finally:
        sampler.stop()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if args.store_url:
            drop_schema(args.store_url, f"bench_{os.getpid()}")


def drop_schema(url: str, schema: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


if __name__ == "__main__":
    sys.exit(main())
