"""Change-to-served latency of HTTPRoute edits, backend against backend, small world vs large.

    python bench/bench_httproutes.py            # nginx, haproxy, traefik; 10 and 10,000 routes
    python bench/bench_httproutes.py --backends haproxy --sizes 10 --changes 20

For each backend and size: a real `polyingress run` serves N HTTPRoutes (one hostname each, two
rules, on one Gateway's HTTP listener) plus a probe HTTPRoute. The benchmark edits the probe in
the manifest directory and measures the time from the file write to the proxy serving the edit
(polled through the proxy every 2 ms):
  - path+: a rule with a new path is added to the probe route
  - header: the probe's header-match rule moves to another header value
  - weight: the probe's split between two backends flips from 100/0 to 0/100
Reloads are counted from the controller's /metrics: on HAProxy none of these edits reloads.
Where the time of the applies that reloaded went (the controller's per-apply parts, medians:
render, write, master parse, new workers serve, ...) is printed per row, and for nginx its
memory (PSS of master and workers) after start and after the edits, once the old workers
exited.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from bench_changes import applies, breakdown, nginx_memory, nginx_pss
from benchkit import pct, reloads, served

from polyingress.testing.live import Controller, HelloFleet, write_manifests

KINDS = ("path+", "header", "weight")
PROBE = "probe.routes.example.com"
NS = "bench"


def _service(name: str, address: str, port: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-ep",
                "namespace": NS,
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port}],
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        },
    ]


def _route(name: str, host: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [host], "rules": rules},
    }


def _ref(name: str, weight: int = 1) -> dict[str, Any]:
    return {"name": name, "port": 80, "weight": weight}


def world(size: int, port: int) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "polyingress"},
            "spec": {"controllerName": "polyingress.io/controller"},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": NS},
            "spec": {
                "gatewayClassName": "polyingress",
                "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
            },
        },
        *_service("a", "127.0.4.1", port),
        *_service("b", "127.0.4.2", port),
    ]
    for i in range(size):
        objs.append(
            _route(
                f"r-{i:05d}",
                f"r-{i:05d}.routes.example.com",
                [
                    {"backendRefs": [_ref("a")]},
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                        "backendRefs": [_ref("b")],
                    },
                ],
            )
        )
    return objs


def probe(paths: list[str], header: str, weights: tuple[int, int]) -> list[dict[str, Any]]:
    rules = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/base"}}],
            "backendRefs": [_ref("a", weights[0]), _ref("b", weights[1])],
        },
        {
            "matches": [
                {
                    "path": {"type": "PathPrefix", "value": "/h"},
                    "headers": [{"name": "x-version", "value": header}],
                }
            ],
            "backendRefs": [_ref("b")],
        },
    ]
    rules += [
        {"matches": [{"path": {"type": "PathPrefix", "value": p}}], "backendRefs": [_ref("a")]}
        for p in paths
    ]
    return [_route("probe", PROBE, rules)]


def run_one(backend: str, size: int, changes: int, tmp: Path) -> dict[str, Any]:
    fleet = HelloFleet([("a", "127.0.4.1"), ("b", "127.0.4.2")])
    manifests = tmp / "m"
    write_manifests(manifests, "world.yaml", world(size, fleet.port))
    paths: list[str] = []
    header, weights = "one", (1, 0)
    write_manifests(manifests, "probe.yaml", probe(paths, header, weights))
    ctl = Controller(backend, manifests, tmp / "work", debounce_ms=10)
    t0 = time.monotonic()
    ctl.start(timeout=600)
    start_s = time.monotonic() - t0
    port = ctl.http_port
    latencies: dict[str, list[float]] = {k: [] for k in KINDS}
    memory = [nginx_memory(ctl)[0]] if backend == "nginx" else []
    processes = len(nginx_pss(ctl)) if backend == "nginx" else 0
    log_from = len(ctl.log(tail=None))
    before = reloads(ctl)
    try:
        for i in range(changes):
            kind = KINDS[i % len(KINDS)]
            t = time.monotonic()
            if kind == "path+":
                paths.append(f"/added-{i}")
                write_manifests(manifests, "probe.yaml", probe(paths, header, weights))
                done = served(port, PROBE, f"/added-{i}/x", lambda r: r.status == 200)
            elif kind == "header":
                header = f"v{i}"
                write_manifests(manifests, "probe.yaml", probe(paths, header, weights))
                done = _served_with(port, "/h", {"x-version": header}, "b")
            else:
                weights = (weights[1], weights[0])
                want = "a" if weights[0] else "b"
                write_manifests(manifests, "probe.yaml", probe(paths, header, weights))
                done = served(port, PROBE, "/base", lambda r, w=want: r.server_name == w)
            latencies[kind].append(done - t)
        reload_count = reloads(ctl) - before
        if memory:
            # Once the old workers of the last reloads are gone (one generation, as many nginx
            # processes as after start; at most 60 s).
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if nginx_memory(ctl)[1] <= 1 and len(nginx_pss(ctl)) == processes:
                    break
                time.sleep(0.2)
            memory.append(nginx_memory(ctl)[0])
        log = ctl.log(tail=None)[log_from:]
    finally:
        ctl.stop()
        fleet.stop()
    every = [v for vs in latencies.values() for v in vs]
    return {
        "backend": backend,
        "routes": size,
        "start_s": start_s,
        "changes": len(every),
        "p50_ms": statistics.median(every) * 1000,
        "p99_ms": pct(every, 0.99) * 1000,
        "by_kind_p50_ms": {k: statistics.median(v) * 1000 for k, v in latencies.items() if v},
        "reloads": reload_count,
        "breakdown": breakdown(applies(log), log),
        "memory_mib": [m / 2**20 for m in memory],
    }


def _served_with(port: int, path: str, headers: dict[str, str], want: str) -> float:
    from polyingress.testing.live import request

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if request(port, PROBE, path, headers=headers).server_name == want:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.002)
    raise TimeoutError(f"{path} with {headers} not served by {want}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="nginx,haproxy,traefik")
    ap.add_argument("--sizes", default="10,10000")
    ap.add_argument("--changes", type=int, default=30)
    args = ap.parse_args()
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        for backend in args.backends.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(run_one(backend, size, args.changes, Path(tmp)))
                r = rows[-1]
                print(
                    f"{backend:8} {size:>6} routes: start {r['start_s']:.1f}s, change->served "
                    f"p50 {r['p50_ms']:.0f} ms p99 {r['p99_ms']:.0f} ms, "
                    f"reloads {r['reloads']:.0f}",
                    flush=True,
                )
                parts = r["breakdown"]["parts_p50_ms"]
                if parts:
                    print(
                        "    reloads, p50: "
                        + ", ".join(f"{k} {v:.1f} ms" for k, v in parts.items())
                    )
                if r["memory_mib"]:
                    print(
                        "    nginx PSS after start, after the edits: "
                        + " -> ".join(f"{m:.0f} MiB" for m in r["memory_mib"]),
                        flush=True,
                    )
    print()
    print("| backend | HTTPRoutes | start | change→served p50 | p99 | by kind (p50) | reloads |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        kinds = ", ".join(f"{k} {v:.0f} ms" for k, v in r["by_kind_p50_ms"].items())
        print(
            f"| {r['backend']} | {r['routes']:,} | {r['start_s']:.1f} s | {r['p50_ms']:.0f} ms "
            f"| {r['p99_ms']:.0f} ms | {kinds} | {r['reloads']:.0f}/{r['changes']} |"
        )


if __name__ == "__main__":
    main()
