"""Change-to-served latency, reloads and requests/s, backend against backend, in one run.

    python bench/bench_changes.py                       # haproxy and nginx, small and 10k worlds
    python bench/bench_changes.py --backends nginx --sizes 10 --changes 60

For each backend and world size: a real `polyingress run` serves a generated world (N Ingresses,
two paths each, 3 endpoints per Service) plus a small probe Ingress. The benchmark then makes
changes to the probe in the manifest directory and measures the time from the file write to the
proxy serving the change (polled through the proxy every 2 ms):
  - endpoint: the probe Service's EndpointSlice points at another backend server
  - path+: a path is added to the probe Ingress
  - ingress-: a second probe Ingress is removed
Reloads are counted from the controller's /metrics. Requests per second are measured with wrk
(2 threads, 50 connections) through 1 route (the probe) and, in the large world, to the last of
10,000 hosts; the upstream is a separate nginx answering 200, so the proxy is what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from livekit import Controller, HelloFleet, free_port, request, write_manifests
from worlds import generated_world

PROBE_HOST = "probe.bench.example.com"
DEBOUNCE_MS = 10  # `run --debounce-ms`: how long the reconciler waits for a burst to settle


def probe_objects(eps: list[str], port: int, paths: list[str], with_second: bool) -> list[Any]:
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "probe", "namespace": "bench"},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "probe-1",
                "namespace": "bench",
                "labels": {"kubernetes.io/service-name": "probe"},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in eps],
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "probe", "namespace": "bench"},
            "spec": {
                "ingressClassName": "polyingress",
                "rules": [
                    {
                        "host": PROBE_HOST,
                        "http": {
                            "paths": [
                                {
                                    "path": p,
                                    "pathType": "Prefix",
                                    "backend": {
                                        "service": {"name": "probe", "port": {"number": 80}}
                                    },
                                }
                                for p in paths
                            ]
                        },
                    }
                ],
            },
        },
    ]
    if with_second:
        second = json.loads(json.dumps(objs[2]))
        second["metadata"]["name"] = "probe-two"
        second["spec"]["rules"][0]["host"] = "two." + PROBE_HOST
        objs.append(second)
    return objs


def reloads(ctl: Controller) -> float:
    total = 0.0
    for line in ctl.metrics().splitlines():
        if line.startswith("polyingress_reloads_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def poll(ctl: Controller, host: str, path: str, ok: Any, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = request(ctl.http_port, host, path, timeout=2)
            if ok(r):
                return time.monotonic()
        except Exception:
            pass
        time.sleep(0.002)
    raise TimeoutError(f"{host}{path} did not change within {timeout}s")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def start_upstream(tmp: Path, address: str, port: int) -> subprocess.Popen[bytes]:
    conf = tmp / "upstream.conf"
    (tmp / "up").mkdir(exist_ok=True)
    conf.write_text(
        f"""worker_processes 1; daemon off; pid up/nginx.pid; error_log up/error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; client_body_temp_path up/b; proxy_temp_path up/p;
  fastcgi_temp_path up/f; uwsgi_temp_path up/u; scgi_temp_path up/s;
  server {{ listen {address}:{port}; keepalive_requests 100000;
    location / {{ return 200 "ok\\n"; }} }} }}
"""
    )
    proc = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(conf)], start_new_session=True)
    time.sleep(0.3)
    return proc


def wrk(port: int, host: str, path: str, seconds: int) -> float:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c50",
            f"-d{seconds}s",
            "-H",
            f"Host: {host}",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"wrk saw {non2xx.group(1)} non-2xx answers:\n{out}")
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(m.group(1)) if m else 0.0


def run_one(backend: str, size: int, changes: int, tmp: Path, wrk_seconds: int) -> dict[str, Any]:
    fleet = HelloFleet([("probe-a", "127.0.2.1"), ("probe-b", "127.0.2.2")])
    up_port = free_port("127.0.3.1")
    upstream = start_upstream(tmp, "127.0.3.1", up_port)
    manifests = tmp / "m"
    world = generated_world(size, port=up_port) if size else generated_world(0)
    for obj in world:  # every generated Service points at the fast upstream
        if obj["kind"] == "EndpointSlice":
            obj["endpoints"] = [{"addresses": ["127.0.3.1"], "conditions": {"ready": True}}]
    write_manifests(manifests, "world.yaml", world)
    paths = ["/base"]  # no "/" rule: a new path is visible as 404 -> 200
    write_manifests(manifests, "probe.yaml", probe_objects(["127.0.2.1"], fleet.port, paths, True))
    ctl = Controller(backend, manifests, tmp / "work", debounce_ms=DEBOUNCE_MS)
    t0 = time.monotonic()
    ctl.start(timeout=300)
    start_s = time.monotonic() - t0
    lat: dict[str, list[float]] = {"endpoint": [], "path+": [], "ingress-": []}
    reloads_before = reloads(ctl)
    current = "127.0.2.1"
    try:
        for i in range(changes):
            kind = ("endpoint", "path+", "ingress-")[i % 3]
            if kind == "endpoint":
                current = "127.0.2.2" if current == "127.0.2.1" else "127.0.2.1"
                want = "probe-a" if current == "127.0.2.1" else "probe-b"
                t = time.monotonic()
                write_manifests(
                    manifests, "probe.yaml", probe_objects([current], fleet.port, paths, True)
                )
                done = poll(ctl, PROBE_HOST, "/base", lambda r, w=want: r.server_name == w)
            elif kind == "path+":
                new = f"/added-{i}"
                paths.append(new)
                t = time.monotonic()
                write_manifests(
                    manifests, "probe.yaml", probe_objects([current], fleet.port, paths, True)
                )
                done = poll(ctl, PROBE_HOST, new + "/x", lambda r: r.status == 200)
            else:
                t = time.monotonic()
                write_manifests(
                    manifests, "probe.yaml", probe_objects([current], fleet.port, paths, False)
                )
                done = poll(ctl, "two." + PROBE_HOST, "/base", lambda r: r.status == 404)
                lat[kind].append(done - t)
                write_manifests(
                    manifests, "probe.yaml", probe_objects([current], fleet.port, paths, True)
                )
                poll(ctl, "two." + PROBE_HOST, "/base", lambda r: r.status == 200)
                continue
            lat[kind].append(done - t)
        reload_count = reloads(ctl) - reloads_before
        rps_1 = rps_last = 0.0
        if wrk_seconds and shutil.which("wrk"):
            # Same upstream, same path shape: one route vs the last of `size` hosts.
            write_manifests(
                manifests, "probe.yaml", probe_objects(["127.0.3.1"], up_port, ["/base"], True)
            )
            poll(ctl, PROBE_HOST, "/base", lambda r: r.status == 200 and r.server_name is None)
            last = f"app-{size - 1:05d}.ns-{(size - 1) // 100:04d}.apps.example.com"
            # Alternate the two targets twice and keep each one's best run: the machine is
            # shared and noisy, and the first run after a burst of changes is always slower.
            ones, lasts = [], []
            for _round in range(2):
                ones.append(wrk(ctl.http_port, PROBE_HOST, "/base", wrk_seconds))
                if size:
                    lasts.append(wrk(ctl.http_port, last, "/base", wrk_seconds))
            rps_1 = max(ones)
            rps_last = max(lasts) if lasts else 0.0
    finally:
        ctl.stop()
        fleet.stop()
        os.killpg(upstream.pid, signal.SIGTERM)
        upstream.wait()
    all_lat = [x for v in lat.values() for x in v]
    return {
        "backend": backend,
        "ingresses": size,
        "start_s": start_s,
        "changes": len(all_lat),
        "p50_ms": statistics.median(all_lat) * 1000,
        "p99_ms": pct(all_lat, 0.99) * 1000,
        "by_kind_p50_ms": {k: statistics.median(v) * 1000 for k, v in lat.items() if v},
        "reloads": reload_count,
        "rps_1_route": rps_1,
        "rps_last_of_n": rps_last,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="haproxy,nginx")
    ap.add_argument("--sizes", default="10,10000")
    ap.add_argument("--changes", type=int, default=102)
    ap.add_argument("--wrk-seconds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        for backend in args.backends.split(","):
            with tempfile.TemporaryDirectory(prefix=f"bench-{backend}-") as tmp:
                rows.append(run_one(backend, size, args.changes, Path(tmp), args.wrk_seconds))
                r = rows[-1]
                print(f"  done: {backend} {size} p99={r['p99_ms']:.1f}ms", file=sys.stderr)
    print(
        f"{'backend':<8} {'ingresses':>9} {'start':>7} {'changes':>7} {'p50':>8} {'p99':>8} "
        f"{'endpoint':>9} {'path+':>8} {'ingress-':>9} {'reloads':>7} {'rps 1 route':>12} "
        f"{'rps last of N':>14}"
    )
    for r in rows:
        k = r["by_kind_p50_ms"]
        print(
            f"{r['backend']:<8} {r['ingresses']:>9,} {r['start_s']:>6.1f}s {r['changes']:>7} "
            f"{r['p50_ms']:>6.1f}ms {r['p99_ms']:>6.1f}ms {k.get('endpoint', 0):>7.1f}ms "
            f"{k.get('path+', 0):>6.1f}ms {k.get('ingress-', 0):>7.1f}ms {r['reloads']:>7.0f} "
            f"{r['rps_1_route']:>12,.0f} {r['rps_last_of_n']:>14,.0f}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
