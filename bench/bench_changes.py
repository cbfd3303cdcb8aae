"""Change-to-served latency, reloads and requests/s, backend against backend, in one run.

    python bench/bench_changes.py                       # haproxy and nginx, small and 10k worlds
    python bench/bench_changes.py --backends nginx --sizes 10 --changes 60
    python bench/bench_changes.py --backends nginx,haproxy,traefik,caddy --sizes 10

Any installed backend can be named (caddy: the third-party backend in contrib/caddy).

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
import base64
import contextlib
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from benchkit import (
    PROBE_HOST,
    endpoint_slice,
    ingress,
    last_host,
    pct,
    probe_objects,
    reloads,
    served,
    service,
    start_upstream,
    stop_group,
    upstream_world,
    wrk,
)
from longlived import Stream

from polyingress.core import Certificate
from polyingress.core.tls import self_signed
from polyingress.testing.live import Controller, HelloFleet, free_port, metric, write_manifests

DEBOUNCE_MS = 10  # `run --debounce-ms`: how long the reconciler waits for a burst to settle
KINDS = ("endpoint", "path+", "ingress-", "tls+")
STREAM_HOST = "stream.bench.example.com"
CHURN_HOST = "churn.bench.example.com"
MEMORY_HOST = "memory.bench.example.com"


@dataclass
class Change:
    """One change: its kind, when the file was written and when the proxy served it (wall
    clock, to match the controller's log), and the controller's apply lines in between."""

    kind: str
    written: float
    served: float
    applies: list[Apply] = field(default_factory=list)

    @property
    def latency(self) -> float:
        return self.served - self.written


@dataclass(frozen=True)
class Apply:
    """One "applied ... in X ms: queued, build, diff, apply (parts)" line of the controller."""

    ended: float  # wall clock
    total_ms: float
    queued_ms: float
    build_ms: float
    diff_ms: float
    apply_ms: float
    parts: str

    @property
    def noticed(self) -> float:
        return self.ended - self.total_ms / 1000


_APPLIED = re.compile(
    r"^(\S+ \S+) INFO polyingress\.controller: applied .* in ([\d.]+) ms: queued ([\d.]+) ms, "
    r"build ([\d.]+) ms, diff ([\d.]+) ms, apply ([\d.]+) ms(?: \((.*)\))?$"
)


# The core's runtime lane: an endpoint change pushed while an apply ran.
_PUSHED = re.compile(
    r"^(\S+ \S+) INFO polyingress\.controller: pushed during an apply .* in ([\d.]+) ms: "
    r"queued ([\d.]+) ms, build ([\d.]+) ms, diff ([\d.]+) ms, push ([\d.]+) ms(?: \((.*)\))?$"
)


def applies(log: str) -> list[Apply]:
    """The applies and the runtime lane's pushes (their parts marked "lane") in ``log``."""
    found = []
    for line in log.splitlines():
        m = _APPLIED.match(line)
        lane = m is None
        if lane:
            m = _PUSHED.match(line)
        if m:
            ended = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            parts = ("lane: " if lane else "") + (m[7] or "")
            found.append(Apply(ended, *(float(m[i]) for i in range(2, 7)), parts))
    return found


def part_times(parts: str) -> dict[str, float]:
    """``render 80.9 ms, write 8.3 ms`` -> {"render": 80.9, "write": 8.3} (ms)."""
    out: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in parts.split(", "))):
        name, _, value = item.rpartition(" ")[0].rpartition(" ")
        out[name] = out.get(name, 0.0) + float(value)
    return out


_OLD_EXIT = re.compile(r"nginx: the old workers of reload \d+ exited ([\d.]+) s after it")
_RELOAD_PARTS = ("master parse", "reload until served", "reload")


def breakdown(found: list[Apply], log: str) -> dict[str, Any]:
    """Where the time of the applies that reloaded went: the median of each part (ms) over
    them, the apply's own total, and (nginx) how long old workers lived after their reload."""
    reloads = [a for a in found if any(k in part_times(a.parts) for k in _RELOAD_PARTS)]
    out: dict[str, Any] = {"reload_applies": len(reloads), "parts_p50_ms": {}}
    names: dict[str, list[float]] = {}
    for a in reloads:
        for name, ms in part_times(a.parts).items():
            names.setdefault(name, []).append(ms)
    for name, values in names.items():
        out["parts_p50_ms"][name] = statistics.median(values)
    if reloads:
        out["parts_p50_ms"]["apply (total)"] = statistics.median(a.apply_ms for a in reloads)
        out["parts_p50_ms"]["build"] = statistics.median(a.build_ms for a in reloads)
    exits = [float(x) for x in _OLD_EXIT.findall(log)]
    if exits:
        out["old_workers_exit_p50_s"] = statistics.median(exits)
        out["old_workers_exit_max_s"] = max(exits)
    return out


def attribute(changes: list[Change], log: str) -> None:
    """Give each change the applies that noticed a change between its write and its being
    served (log times have millisecond resolution)."""
    found = applies(log)
    for change in changes:
        change.applies = [
            a for a in found if change.written - 0.003 <= a.noticed <= change.served + 0.003
        ]


def where(change: Change) -> str:
    """Where the time of one change went: the source (file event, parse, store), the queue
    (debounce), build, diff, the backend's parts, and the last step to being served."""
    if not change.applies:
        return "no apply logged in its window"
    first, last = change.applies[0], change.applies[-1]
    parts = [f"source {max(0.0, first.noticed - change.written) * 1000:.1f}"]
    for a in change.applies:
        parts.append(
            f"queued {a.queued_ms:.1f}, build {a.build_ms:.1f}, diff {a.diff_ms:.1f}, "
            f"apply {a.apply_ms:.1f}" + (f" [{a.parts}]" if a.parts else "")
        )
    # Negative: the proxy served the change before the apply returned (e.g. while it read
    # back or waited for its own probe).
    parts.append(f"until served {(change.served - last.ended) * 1000:+.1f}")
    more = f" ({len(change.applies)} applies)" if len(change.applies) > 1 else ""
    return ", ".join(parts) + " ms" + more


def tls_objects(name: str, cert: Certificate, port: int) -> list[dict[str, Any]]:
    """A new Ingress with a TLS host of its own (``name.PROBE_HOST``, its Secret) to the probe
    Service."""
    host = f"{name}.{PROBE_HOST}"
    obj = ingress(name, host, ["/"], service_name="probe")
    obj["spec"]["tls"] = [{"hosts": [host], "secretName": name}]
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "bench"},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(cert.cert_pem.encode()).decode(),
            "tls.key": base64.b64encode(cert.key_pem.encode()).decode(),
        },
    }
    return [secret, obj]


def long_lived(
    ctl: Controller, manifests: Path, fleet_port: int, changes: int, current: str
) -> tuple[str, float]:
    """Hold a stream (hello ``?stream``) through the proxy while ``changes`` routine changes
    (endpoints of the probe Service, paths of the probe Ingress) are applied, then watch it
    until 13 s after the first change (past nginx's worker_shutdown_timeout of 10 s). Returns
    ("kept" or "cut", seconds it lasted)."""
    stream = Stream(ctl.http_port, STREAM_HOST).open()
    paths = ["/base"]
    first = time.monotonic()
    try:
        for i in range(changes):
            if i % 2 == 0:
                current = "127.0.2.2" if current == "127.0.2.1" else "127.0.2.1"
                want = "probe-a" if current == "127.0.2.1" else "probe-b"
                write_manifests(
                    manifests, "probe.yaml", probe_objects([current], fleet_port, paths, True)
                )
                served(ctl.http_port, PROBE_HOST, "/base", lambda r, w=want: r.server_name == w)
            else:
                paths.append(f"/ll-{i}")
                write_manifests(
                    manifests, "probe.yaml", probe_objects([current], fleet_port, paths, True)
                )
                served(ctl.http_port, PROBE_HOST, paths[-1] + "/x", lambda r: r.status == 200)
        while time.monotonic() < first + 13 and stream.ended is None:
            time.sleep(0.1)
        return ("kept" if stream.alive else "cut"), stream.lasted
    finally:
        stream.close()


def under_reloads(
    ctl: Controller,
    manifests: Path,
    fleet_port: int,
    current: str,
    paths: list[str],
    count: int,
) -> tuple[list[Change], float, str]:
    """``count`` endpoint changes of the probe while the paths of another Ingress change all the
    time (each change written as soon as the last one is served: on nginx, a reload after a
    reload). A random pause of up to 0.2 s before each endpoint change lands it anywhere in a
    reload. Returns the latencies, the reloads meanwhile, and the probe's current address."""
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            paths = [f"/churn-{j}" for j in range(max(0, i - 3), i + 1)]
            write_manifests(
                manifests, "churn.yaml", [ingress("churn", CHURN_HOST, paths, "streamer")]
            )
            with contextlib.suppress(TimeoutError):
                served(ctl.http_port, CHURN_HOST, paths[-1] + "/x", lambda r: r.status == 200)

    thread = threading.Thread(target=churn, name="churn", daemon=True)
    thread.start()
    rng = random.Random(18)
    changes: list[Change] = []
    try:
        time.sleep(1.0)  # the churn is under way
        before = reloads(ctl)
        for _ in range(count):
            time.sleep(rng.uniform(0, 0.2))
            current = "127.0.2.2" if current == "127.0.2.1" else "127.0.2.1"
            want = "probe-a" if current == "127.0.2.1" else "probe-b"
            t = time.time()
            write_manifests(
                manifests, "probe.yaml", probe_objects([current], fleet_port, paths, True)
            )
            served(ctl.http_port, PROBE_HOST, "/base", lambda r, w=want: r.server_name == w)
            changes.append(Change("endpoint", t, time.time()))
        during = reloads(ctl) - before
    finally:
        stop.set()
        thread.join(timeout=180)
    return changes, during, current


def nginx_pss(ctl: Controller) -> list[float]:
    """PSS (MiB) of nginx's master, then of each of its workers, from /proc."""
    master = int((ctl.workdir / "run" / "nginx.pid").read_text())
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    out = []
    for pid in [master, *map(int, children)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    out.append(int(line.split()[1]) / 1024)
    return out


def nginx_memory(ctl: Controller) -> tuple[float, float]:
    """(PSS of nginx's master and workers in bytes, worker generations) from /metrics."""
    text = ctl.metrics()
    return (
        metric(text, "polyingress_nginx_memory_bytes"),
        metric(text, "polyingress_nginx_worker_generations"),
    )


def memory_after_reloads(
    ctl: Controller, manifests: Path, count: int, processes: int
) -> dict[str, Any]:
    """``count`` path changes of an Ingress of its own (a reload each on nginx), then, once no
    reload is under way and the old workers are gone (one generation, ``processes`` nginx
    processes as after start), nginx's memory."""
    last, since = reloads(ctl), time.monotonic()
    while time.monotonic() - since < 1.0:  # earlier changes settled: no reload under way
        time.sleep(0.1)
        now = reloads(ctl)
        if now != last:
            last, since = now, time.monotonic()
    started = reloads(ctl)
    for i in range(count):
        write_manifests(
            manifests, "memory.yaml", [ingress("memory", MEMORY_HOST, [f"/m{i}"], "streamer")]
        )
        served(ctl.http_port, MEMORY_HOST, f"/m{i}/x", lambda r: r.status == 200)
    deadline = time.monotonic() + 60
    most = 1.0
    while True:
        # Served before the apply returned: wait for it too (it retires the old workers).
        memory, generations = nginx_memory(ctl)
        pss = nginx_pss(ctl)
        most = max(most, generations)
        done = reloads(ctl) - started >= count
        if (done and generations <= 1 and len(pss) == processes) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return {
        "reloads": reloads(ctl) - started,
        "pss_mib": pss,
        "memory_bytes": memory,
        "generations": generations,
        "generations_seen": most,
    }


def run_one(
    backend: str,
    size: int,
    changes: int,
    tmp: Path,
    wrk_seconds: int,
    logs: Path | None = None,
    long_changes: int = 20,
    under: int = 20,
    memory_reloads: int = 20,
) -> dict[str, Any]:
    fleet = HelloFleet(
        [("probe-a", "127.0.2.1"), ("probe-b", "127.0.2.2"), ("streamer", "127.0.2.3")]
    )
    up_port = free_port("127.0.3.1")
    upstream = start_upstream(tmp, ["127.0.3.1"], up_port)
    manifests = tmp / "m"
    world = upstream_world(size, "127.0.3.1", up_port)  # every Service on the fast upstream
    write_manifests(manifests, "world.yaml", world)
    paths = ["/base"]  # no "/" rule: a new path is visible as 404 -> 200
    write_manifests(manifests, "probe.yaml", probe_objects(["127.0.2.1"], fleet.port, paths, True))
    stream_objs = [
        service("streamer", target_port=fleet.port),
        endpoint_slice("streamer", ["127.0.2.3"], fleet.port),
        ingress("streamer", STREAM_HOST),
    ]
    write_manifests(manifests, "stream.yaml", stream_objs)
    certs = [self_signed(f"tls-{i}.{PROBE_HOST}") for i in range(changes)]
    ctl = Controller(backend, manifests, tmp / "work", debounce_ms=DEBOUNCE_MS)
    t0 = time.monotonic()
    ctl.start(timeout=300)
    start_s = time.monotonic() - t0
    proxy = ctl.http_port
    memory_start = nginx_memory(ctl)[0] if backend == "nginx" else 0.0
    pss_start = nginx_pss(ctl) if backend == "nginx" else []
    under_changes: list[Change] = []
    under_count = 0.0
    memory: dict[str, Any] = {}
    if memory_reloads and backend == "nginx":
        # First, so that nothing but the reloads comes between the two readings: traffic fills
        # nginx's shared zones (the endpoint dictionary, the TLS session cache) up to their
        # sizes, whatever the reloads do.
        memory = memory_after_reloads(ctl, manifests, memory_reloads, len(pss_start))
    done: list[Change] = []
    reloads_before = reloads(ctl)
    current = "127.0.2.1"
    kept, lasted = "", 0.0
    try:
        for i in range(changes):
            kind = KINDS[i % len(KINDS)]
            t = time.time()
            if kind == "endpoint":
                current = "127.0.2.2" if current == "127.0.2.1" else "127.0.2.1"
                want = "probe-a" if current == "127.0.2.1" else "probe-b"
                write_manifests(
                    manifests, "probe.yaml", probe_objects([current], fleet.port, paths, True)
                )
                served(proxy, PROBE_HOST, "/base", lambda r, w=want: r.server_name == w)
            elif kind == "path+":
                new = f"/added-{i}"
                paths.append(new)
                write_manifests(
                    manifests, "probe.yaml", probe_objects([current], fleet.port, paths, True)
                )
                served(proxy, PROBE_HOST, new + "/x", lambda r: r.status == 200)
            elif kind == "tls+":
                name = f"tls-{i}"
                write_manifests(manifests, f"{name}.yaml", tls_objects(name, certs[i], fleet.port))
                host = f"{name}.{PROBE_HOST}"
                served(
                    ctl.https_port,
                    host,
                    "/",
                    lambda r, h=host: r.status == 200 and r.peer_cn == h,
                    scheme="https",
                )
            else:
                write_manifests(
                    manifests, "probe.yaml", probe_objects([current], fleet.port, paths, False)
                )
                served(proxy, "two." + PROBE_HOST, "/base", lambda r: r.status == 404)
                done.append(Change(kind, t, time.time()))
                write_manifests(
                    manifests, "probe.yaml", probe_objects([current], fleet.port, paths, True)
                )
                served(proxy, "two." + PROBE_HOST, "/base", lambda r: r.status == 200)
                continue
            done.append(Change(kind, t, time.time()))
        reload_count = reloads(ctl) - reloads_before
        if under:
            under_changes, under_count, current = under_reloads(
                ctl, manifests, fleet.port, current, paths, under
            )
        if long_changes:
            kept, lasted = long_lived(ctl, manifests, fleet.port, long_changes, current)
        if memory:
            # And after every phase (the traffic, all reloads), once old workers are gone.
            memory["end"] = memory_after_reloads(ctl, manifests, 0, len(pss_start))
            memory["end"]["run_reloads"] = reloads(ctl) - reloads_before
        rps_1 = rps_last = 0.0
        if wrk_seconds and shutil.which("wrk"):
            # Same upstream, same path shape: one route vs the last of `size` hosts.
            write_manifests(
                manifests, "probe.yaml", probe_objects(["127.0.3.1"], up_port, ["/base"], True)
            )
            served(proxy, PROBE_HOST, "/base", lambda r: r.status == 200 and r.server_name is None)
            last = last_host(size)
            # Alternate the two targets twice and keep each one's best run: the machine is
            # shared and noisy, and the first run after a burst of changes is always slower.
            ones, lasts = [], []
            for _round in range(2):
                ones.append(wrk(proxy, PROBE_HOST, wrk_seconds, "/base").rps)
                if size:
                    lasts.append(wrk(proxy, last, wrk_seconds, "/base").rps)
            rps_1 = max(ones)
            rps_last = max(lasts) if lasts else 0.0
    finally:
        ctl.stop()
        fleet.stop()
        stop_group(upstream)
        log = ctl.log_path.read_text(errors="replace") if ctl.log_path else ""
        if logs is not None and log:
            logs.mkdir(parents=True, exist_ok=True)
            (logs / f"{backend}-{size}.log").write_text(log)
    attribute(done, log)
    attribute(under_changes, log)
    under_lat = [c.latency for c in under_changes]
    under_slowest = sorted(under_changes, key=lambda c: c.latency, reverse=True)[:3]
    where_time = breakdown(applies(log), log)
    all_lat = [c.latency for c in done]
    by_kind = {k: [c.latency for c in done if c.kind == k] for k in KINDS}
    slowest = sorted(done, key=lambda c: c.latency, reverse=True)[:5]
    return {
        "backend": backend,
        "ingresses": size,
        "start_s": start_s,
        "changes": len(all_lat),
        "p50_ms": statistics.median(all_lat) * 1000,
        "p99_ms": pct(all_lat, 0.99) * 1000,
        "by_kind_p50_ms": {k: statistics.median(v) * 1000 for k, v in by_kind.items() if v},
        "reloads": reload_count,
        "rps_1_route": rps_1,
        "rps_last_of_n": rps_last,
        "long_lived": f"{kept} {lasted:.0f}s / {long_changes}" if kept else "",
        "under_reloads": {
            "changes": len(under_lat),
            "reloads": under_count,
            "p50_ms": statistics.median(under_lat) * 1000 if under_lat else None,
            "p99_ms": pct(under_lat, 0.99) * 1000 if under_lat else None,
            "max_ms": max(under_lat) * 1000 if under_lat else None,
            "slowest": [{"ms": c.latency * 1000, "where": where(c)} for c in under_slowest],
        },
        "memory": {"start_bytes": memory_start, "start_pss_mib": pss_start, **memory},
        "slowest": [{"kind": c.kind, "ms": c.latency * 1000, "where": where(c)} for c in slowest],
        "breakdown": where_time,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--backends",
        default="haproxy,nginx,traefik",
        help="installed backends, comma-separated (e.g. nginx,haproxy,traefik,caddy)",
    )
    ap.add_argument("--sizes", default="10,10000")
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument(
        "--changes-at",
        default="",
        help="fewer changes for some backend and size, e.g. nginx:10000:12 (nginx reloads "
        "10,000 Ingresses in 10-40 s)",
    )
    ap.add_argument(
        "--long-changes",
        type=int,
        default=20,
        help="routine changes applied while a stream is held open (0: no long-lived column)",
    )
    ap.add_argument(
        "--under-reloads",
        type=int,
        default=20,
        help="endpoint changes measured while another Ingress's paths change all the time "
        "(0: none)",
    )
    ap.add_argument(
        "--under-reloads-at",
        default="",
        help="another count for some backend and size, e.g. traefik:10000:0",
    )
    ap.add_argument(
        "--memory-reloads",
        type=int,
        default=20,
        help="nginx: reloads after which its memory is compared with its memory after start "
        "(0: none)",
    )
    ap.add_argument("--wrk-seconds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--logs", type=Path, help="copy each controller's log into this directory")
    args = ap.parse_args()
    fewer = {}
    for item in filter(None, args.changes_at.split(",")):
        b, n, c = item.split(":")
        fewer[(b, int(n))] = int(c)
    under_at = {}
    for item in filter(None, args.under_reloads_at.split(",")):
        b, n, c = item.split(":")
        under_at[(b, int(n))] = int(c)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=sys.stderr)
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        for backend in args.backends.split(","):
            changes = fewer.get((backend, size), args.changes)
            long_changes = min(args.long_changes, changes)
            with tempfile.TemporaryDirectory(prefix=f"bench-{backend}-") as tmp:
                rows.append(
                    run_one(
                        backend,
                        size,
                        changes,
                        Path(tmp),
                        args.wrk_seconds,
                        args.logs,
                        long_changes,
                        under_at.get((backend, size), args.under_reloads),
                        args.memory_reloads,
                    )
                )
                rows[-1]["load_after"] = os.getloadavg()
                r = rows[-1]
                print(f"  done: {backend} {size} p99={r['p99_ms']:.1f}ms", file=sys.stderr)
    print(
        f"{'backend':<8} {'ingresses':>9} {'start':>7} {'changes':>7} {'p50':>8} {'p99':>8} "
        f"{'endpoint':>9} {'path+':>8} {'ingress-':>9} {'tls+':>8} {'reloads':>7} "
        f"{'rps 1 route':>12} {'rps last of N':>14}  long-lived (changes)"
    )
    for r in rows:
        k = r["by_kind_p50_ms"]
        print(
            f"{r['backend']:<8} {r['ingresses']:>9,} {r['start_s']:>6.1f}s {r['changes']:>7} "
            f"{r['p50_ms']:>6.1f}ms {r['p99_ms']:>6.1f}ms {k.get('endpoint', 0):>7.1f}ms "
            f"{k.get('path+', 0):>6.1f}ms {k.get('ingress-', 0):>7.1f}ms "
            f"{k.get('tls+', 0):>6.1f}ms {r['reloads']:>7.0f} "
            f"{r['rps_1_route']:>12,.0f} {r['rps_last_of_n']:>14,.0f}  {r['long_lived']}"
        )
    under_rows = [r for r in rows if r["under_reloads"]["changes"]]
    if under_rows:
        print("\nendpoint changes while another Ingress's paths change all the time:")
        for r in under_rows:
            u = r["under_reloads"]
            print(
                f"  {r['backend']:<8} {r['ingresses']:>6,}: {u['changes']} changes, p50 "
                f"{u['p50_ms']:.1f} ms, p99 {u['p99_ms']:.1f} ms, max {u['max_ms']:.1f} ms; "
                f"{u['reloads']:.0f} reloads meanwhile"
            )
            for c in u["slowest"]:
                print(f"    {c['ms']:>8.1f}: {c['where']}")
    memory_rows = [r for r in rows if r["memory"].get("reloads")]
    if memory_rows:
        print("\nnginx memory (PSS of master and workers, from /metrics):")
        for r in memory_rows:
            m = r["memory"]
            ratio = m["memory_bytes"] / m["start_bytes"] if m["start_bytes"] else 0.0
            print(
                f"  {r['ingresses']:>6,} Ingresses: {m['start_bytes'] / 2**20:.0f} MiB after "
                f"start, {m['memory_bytes'] / 2**20:.0f} MiB after {m['reloads']:.0f} more "
                f"reloads ({ratio:.2f}x; generations at the end {m['generations']:.0f}, most "
                f"seen {m['generations_seen']:.0f})"
            )
            print(
                "    master, workers (MiB): "
                + " ".join(f"{x:.0f}" for x in m["start_pss_mib"])
                + " -> "
                + " ".join(f"{x:.0f}" for x in m["pss_mib"])
            )
            if "end" in m:
                e = m["end"]
                print(
                    f"    at the end of the run ({e['run_reloads']:.0f} reloads and the traffic "
                    f"since): {e['memory_bytes'] / 2**20:.0f} MiB "
                    f"({e['memory_bytes'] / m['start_bytes']:.2f}x), master, workers "
                    + " ".join(f"{x:.0f}" for x in e["pss_mib"])
                )
    for r in rows:
        print(
            f"\nload average after {r['backend']} at {r['ingresses']:,}: "
            + " ".join(f"{x:.2f}" for x in r["load_after"])
        )
    for r in rows:
        b = r["breakdown"]
        if not b["reload_applies"]:
            continue
        parts = ", ".join(f"{name} {ms:.1f}" for name, ms in b["parts_p50_ms"].items())
        print(
            f"\nwhere a reload's time goes, {r['backend']} at {r['ingresses']:,} Ingresses "
            f"(median of {b['reload_applies']} applies that reloaded, ms): {parts}"
        )
        if "old_workers_exit_p50_s" in b:
            print(
                f"  old workers exited {b['old_workers_exit_p50_s']:.1f} s after their reload "
                f"(median; max {b['old_workers_exit_max_s']:.1f} s)"
            )
    for r in rows:
        print(f"\nslowest changes, {r['backend']} at {r['ingresses']:,} Ingresses (ms):")
        for c in r["slowest"]:
            print(f"  {c['kind']:<9} {c['ms']:>8.1f}: {c['where']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
