"""The nginx backend's Lua balancer against static upstreams (issue 5), in one run.

    python bench/bench_nginx_lua.py                    # 60 changes, 5 s wrk rounds, 3 rounds
    python bench/bench_nginx_lua.py --changes 100 --hosts 1000 --json out.json

Two controllers run side by side, the nginx plugin driven by the core's reconciler in this
process (the same code as ``polyingress run``, without a file watcher: its latency is the
same for both modes), one with ``--nginx-lua on``, one with ``--nginx-lua off``. Each serves
``--hosts`` generated Ingresses plus two probe hosts:

- change -> served: the probe Service's endpoint moves to the next of three hello servers
  (127.0.5.1-3); time from the store update (what a Kubernetes watch event does) to the
  first request through nginx answered by the new endpoint, polled every 1 ms on fresh
  connections. Lua: a push through the endpoint channel; static: a reload. The next change
  waits until the apply returned (during a reload, old workers still answer with the
  previous endpoint, which must never be the next target: hence three servers).
- requests/s: wrk -t2 -c50 through each nginx to a host whose Service has two endpoints on a
  separate tiny nginx answering 200 (so that the proxy is what is measured); rounds alternate
  the order of the two modes and the ratio is taken within a round (a shared machine is
  noisy; ratios hold better). Also nginx's CPU time per request (utime + stime of the
  workers over the wrk run), which does not depend on what else the machine runs.
- requests/s under churn: the same wrk run while the probe's endpoint changes every 200 ms,
  with the errors wrk saw (a reload closes idle keep-alive connections, nginx notes §5).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from benchkit import (
    PROBE_HOST,
    endpoint_slice,
    ingress,
    pct,
    service,
    start_upstream,
    stop_group,
    upstream_world,
    wrk,
)

from polyingress.core import ObjectStore, RunSettings
from polyingress.core.runtime.controller import Controller
from polyingress.core.runtime.plugins import plugin_manager
from polyingress.plugins.nginx import plugin
from polyingress.plugins.nginx.apply import NginxBackend
from polyingress.testing.live import HelloFleet, free_port, request

FAST_HOST = "fast.bench.example.com"
HELLO = {"probe-a": "127.0.5.1", "probe-b": "127.0.5.2", "probe-c": "127.0.5.3"}
ORDER = ("probe-a", "probe-b", "probe-c")
FAST = ("127.0.5.11", "127.0.5.12")


@dataclass
class Side:
    mode: str
    store: ObjectStore
    controller: Controller
    http_port: int
    latencies: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    churn: dict[str, float] = field(default_factory=dict)
    reloads: int = 0
    rss_mb: float = 0.0

    @property
    def backend(self) -> NginxBackend:
        backend: NginxBackend = self.controller.backend
        return backend


def start_side(mode: str, tmp: Path, world: list[dict[str, Any]], hello_port: int) -> Side:
    import argparse as _argparse

    settings = RunSettings(
        backend="nginx",
        bind="127.0.0.1",
        http_port=free_port(),
        https_port=free_port(),
        workdir=tmp / f"work-{mode}",
        options=_argparse.Namespace(nginx_lua=mode, nginx_reload_timeout=60.0),
    )
    store = ObjectStore()
    store.replace_many(upserts=world, deletes=())
    store.replace_many(
        upserts=[endpoint_slice("probe", (HELLO["probe-a"],), hello_port)], deletes=()
    )
    controller = Controller(
        settings, plugin_manager(("nginx", plugin.hooks)), store, debounce=0.001
    )
    controller.start()
    side = Side(mode, store, controller, settings.http_port)
    want = "Lua balancer" if mode == "on" else "static upstreams"
    detail = controller.health().detail
    if want not in detail:
        raise RuntimeError(f"--nginx-lua {mode}: nginx runs with {detail}")
    return side


def applied(side: Side, address: str) -> bool:
    good = side.controller.last_good
    if good is None:
        return False
    backend = good.backend_index.get("bench__probe__80")
    return backend is not None and [e.address for e in backend.endpoints] == [address]


def measure_changes(side: Side, changes: int, hello_port: int) -> None:
    reloads = side.backend.reloads
    for i in range(changes):
        current = ORDER[(i + 1) % len(ORDER)]
        started = time.monotonic()
        side.store.replace_many(
            upserts=[endpoint_slice("probe", (HELLO[current],), hello_port)], deletes=()
        )
        deadline = started + 30
        while True:
            try:
                if request(side.http_port, PROBE_HOST, "/", timeout=2).server_name == current:
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{side.mode}: the change was not served within 30 s")
            time.sleep(0.001)
        side.latencies.append(time.monotonic() - started)
        while not applied(side, HELLO[current]):
            time.sleep(0.001)
        time.sleep(0.02)
    side.reloads = side.backend.reloads - reloads


def worker_ticks(side: Side) -> int:
    process = side.backend.process
    assert process is not None
    total = 0
    for pid in process.workers():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def rss_mb(side: Side) -> float:
    """RSS of the master and its workers (shared pages counted in each)."""
    process = side.backend.process
    assert process is not None and process.pid is not None
    total = 0
    for pid in [process.pid, *process.workers()]:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def measure_rps(side: Side, seconds: int) -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    before = worker_ticks(side)
    result = wrk(side.http_port, FAST_HOST, seconds, allow_non2xx=True)
    used = (worker_ticks(side) - before) / ticks
    if result.errors or result.non2xx:
        raise RuntimeError(f"{side.mode}: wrk saw errors: {result}")
    side.rps.append(result.rps)
    side.cpu_us.append(used / max(result.requests, 1) * 1e6)


def measure_churn(side: Side, seconds: int, hello_port: int) -> None:
    stop = threading.Event()
    reloads = side.backend.reloads
    changes = 0

    def churn() -> None:
        nonlocal changes
        while not stop.wait(0.2):
            current = ORDER[(changes + 1) % len(ORDER)]
            side.store.replace_many(
                upserts=[endpoint_slice("probe", (HELLO[current],), hello_port)], deletes=()
            )
            changes += 1

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        result = wrk(side.http_port, FAST_HOST, seconds, allow_non2xx=True)
    finally:
        stop.set()
        thread.join()
    side.churn = {
        "rps": result.rps,
        "changes": float(changes),
        "reloads": float(side.backend.reloads - reloads),
        "errors": float(result.errors + result.non2xx),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=60)
    ap.add_argument("--hosts", type=int, default=100, help="generated Ingresses besides probes")
    ap.add_argument("--wrk-seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if shutil.which("nginx") is None or shutil.which("wrk") is None:
        sys.exit("needs nginx and wrk")

    hello = HelloFleet(list(HELLO.items()))
    up_port = free_port(FAST[0])
    with tempfile.TemporaryDirectory(prefix="bench-nginx-lua-") as tmp_name:
        tmp = Path(tmp_name)
        upstream = start_upstream(tmp, FAST, up_port)
        world = upstream_world(args.hosts, FAST[0], up_port)  # every Service on the upstream
        world += [
            service("probe"),
            ingress("probe", PROBE_HOST),
            service("fast"),
            endpoint_slice("fast", FAST, up_port),
            ingress("fast", FAST_HOST),
        ]
        sides: list[Side] = []
        try:
            for mode in ("on", "off"):
                sides.append(start_side(mode, tmp, world, hello.port))
            for side in sides:
                measure_changes(side, args.changes, hello.port)
                print(f"  {side.mode}: changes measured", file=sys.stderr)
            for r in range(args.rounds):
                for side in sides if r % 2 == 0 else sides[::-1]:
                    measure_rps(side, args.wrk_seconds)
            for side in sides:
                side.rss_mb = rss_mb(side)
            for side in sides:
                measure_churn(side, args.wrk_seconds, hello.port)
        finally:
            for side in sides:
                side.controller.stop()
            stop_group(upstream)
            hello.stop()

    lua, static = sides
    ratios = [a / b for a, b in zip(lua.rps, static.rps, strict=True) if b]
    rows: list[dict[str, Any]] = []
    for side in sides:
        rows.append(
            {
                "mode": "Lua balancer" if side.mode == "on" else "static (reloads)",
                "changes": len(side.latencies),
                "reloads": side.reloads,
                "p50_ms": statistics.median(side.latencies) * 1000,
                "p99_ms": pct(side.latencies, 0.99) * 1000,
                "max_ms": max(side.latencies) * 1000,
                "rps_median": statistics.median(side.rps),
                "rps_rounds": side.rps,
                "cpu_us_per_request": statistics.median(side.cpu_us),
                "cpu_us_rounds": side.cpu_us,
                "rss_mb": side.rss_mb,
                "churn": side.churn,
            }
        )
    header = (
        f"{'mode':<17} {'changes':>7} {'reloads':>7} {'p50':>8} {'p99':>8} {'max':>8} "
        f"{'req/s':>9} {'cpu/req':>8} {'RSS':>7} {'req/s churn':>12} {'churn errors':>12}"
    )
    print(f"{args.hosts + 2} hosts; change -> served; wrk -t2 -c50 -d{args.wrk_seconds}s")
    print(header)
    for row in rows:
        churn = row["churn"]
        print(
            f"{row['mode']:<17} {row['changes']:>7} {row['reloads']:>7} "
            f"{row['p50_ms']:>6.1f}ms {row['p99_ms']:>6.1f}ms {row['max_ms']:>6.1f}ms "
            f"{row['rps_median']:>9,.0f} {row['cpu_us_per_request']:>6.1f}us "
            f"{row['rss_mb']:>5.0f}MB "
            f"{churn['rps']:>12,.0f} {churn['errors']:>12.0f}"
        )
    cpu_ratio = rows[0]["cpu_us_per_request"] / rows[1]["cpu_us_per_request"]
    print(
        f"Lua/static req/s per round: {', '.join(f'{r:.3f}' for r in ratios)} "
        f"(median {statistics.median(ratios):.3f}); CPU per request Lua/static: {cpu_ratio:.3f}"
    )
    if args.json:
        machine = {"cpus": os.cpu_count(), "platform": platform.platform()}
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
