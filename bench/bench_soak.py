"""Soak: the controller's memory over 10,000 change cycles, per backend.

    python bench/bench_soak.py                           # nginx, haproxy, traefik; 10,000 cycles
    python bench/bench_soak.py --backends haproxy --cycles 2000 --json soak.json

Each backend runs in a child process of its own (so one backend's memory is not counted in
another's), and drives the real plugin IN-PROCESS: a ``Controller`` over an ``ObjectStore``,
with the backend loaded through ``polyingress.core.runtime.plugins.load_backend`` and
``plugin_manager``, exactly as ``polyingress run`` does, minus the manifest directory. Going
through files would add watchfiles' debounce to every cycle: 10,000 cycles per backend would
not fit in ten minutes. The proxy is real (nginx, HAProxy); Traefik runs in external mode (no
binary: the backend writes its dynamic configuration and certificate files, nothing reads
them).

A cycle is one store change and waits until the controller applied it (``on_applied``). The
world is 50 Ingresses/Services with 2 endpoints each plus one TLS host; per 20 cycles:

* 1 certificate rotation of the TLS host (a pool of 16 certificates, so that the controller's
  certificate cache does not grow by design),
* 1 path added to or removed from the TLS host's Ingress,
* 18 endpoint changes of one of the 50 Services (a rotating set of 2 of 4 addresses).

Every nginx reload waits until the old workers stopped accepting (about 0.2 s here): with one
reloading change in 10 cycles, 10,000 nginx cycles take about 4 minutes.

Reported per backend: RSS of the controller (this child process, after ``gc.collect()``) when
the first model is served, after a warm-up of 500 cycles (caches filled), and after all
cycles; the growth from the warm-up to the end is what must stay flat. Also the proxy's RSS
(master and workers), the reloads and the wall time. Output: a table, and JSON with
``--json`` (with the machine: CPUs, Python, kernel).
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from worlds import generated_world

from polyingress.core import BuildOptions, ObjectStore, RunSettings, self_signed
from polyingress.core.runtime.controller import Controller
from polyingress.core.runtime.plugins import load_backend, plugin_manager

NS = "ns-0000"  # the namespace of app-00000 in worlds.generated_world
HOST = "soak.example.com"
SERVICES = 50
WARMUP = 500
CERT_POOL = 16


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return sorted(found)


def proxy_rss_kib() -> int:
    total = 0
    for pid in descendants(os.getpid()):
        try:
            total += rss_kib(pid)
        except OSError:
            continue
    return total


def measure() -> int:
    gc.collect()
    return rss_kib()


def tls_objects(cert: tuple[str, str], paths: list[str]) -> list[dict[str, Any]]:
    crt, key = cert
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": "soak-tls", "namespace": NS},
            "data": {
                "tls.crt": base64.b64encode(crt.encode()).decode(),
                "tls.key": base64.b64encode(key.encode()).decode(),
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "soak", "namespace": NS},
            "spec": {
                "ingressClassName": "polyingress",
                "tls": [{"hosts": [HOST], "secretName": "soak-tls"}],
                "rules": [
                    {
                        "host": HOST,
                        "http": {
                            "paths": [
                                {
                                    "path": p,
                                    "pathType": "Prefix",
                                    "backend": {
                                        "service": {"name": "app-00000", "port": {"number": 80}}
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


def endpoint_slice(world: list[dict[str, Any]], index: int, step: int) -> dict[str, Any]:
    """The EndpointSlice of Service ``index`` with 2 of 4 addresses, rotating with ``step``."""
    name = f"app-{index:05d}"
    original = next(
        o
        for o in world
        if o["kind"] == "EndpointSlice"
        and o["metadata"]["labels"]["kubernetes.io/service-name"] == name
    )
    addresses = [f"10.{200 + index // 250}.{index % 250}.{n}" for n in (1, 2, 3, 4)]
    chosen = [addresses[step % 4], addresses[(step + 1) % 4]]
    return {
        **original,
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in chosen],
    }


def backend_options(pm: Any) -> argparse.Namespace:
    """The backend's own options at their defaults, as `polyingress run` would parse them."""
    parser = argparse.ArgumentParser()
    pm.hook.polyingress_add_options(parser=parser)
    return parser.parse_args([])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def soak(backend: str, cycles: int) -> dict[str, Any]:
    _plugin, obj = load_backend(backend)
    pm = plugin_manager((backend, obj))
    workdir = Path(tempfile.mkdtemp(prefix=f"soak-{backend}-"))
    settings = RunSettings(
        backend=backend,
        bind="127.0.0.1",
        http_port=free_port(),
        https_port=free_port(),
        workdir=workdir,
        build=BuildOptions(),
        options=backend_options(pm),
    )
    certs = []
    for n in range(CERT_POOL):
        cert = self_signed(f"soak-{n}", (HOST,))
        certs.append((cert.cert_pem, cert.key_pem))
    world = generated_world(SERVICES, endpoints=2)
    store = ObjectStore()
    store.replace_many(upserts=[*world, *tls_objects(certs[0], ["/"])], deletes=())
    controller = Controller(settings, pm, store, debounce=0.001, supervise_interval=1.0)
    applied = threading.Event()
    reloads = 0

    def on_applied(_model: Any, result: Any) -> None:
        nonlocal reloads
        reloads += int(result.reloaded)
        applied.set()

    controller.on_applied(on_applied)
    controller.start()
    rss_start = measure()
    started = time.monotonic()
    rss_warm = rss_start
    proxy_warm = proxy_rss_kib()
    try:
        for i in range(1, cycles + 1):
            kind = i % 20
            if kind == 0:
                change = tls_objects(certs[(i // 20) % CERT_POOL], ["/"])[:1]
            elif kind == 10:
                paths = ["/", "/extra"] if (i // 20) % 2 == 0 else ["/"]
                change = tls_objects(certs[(i // 20) % CERT_POOL], paths)[1:]
            else:
                change = [endpoint_slice(world, i % SERVICES, i // SERVICES)]
            applied.clear()
            if not store.replace_many(upserts=change, deletes=()):
                raise RuntimeError(f"cycle {i} changed nothing")
            if not applied.wait(timeout=60):
                raise RuntimeError(f"cycle {i} was not applied: {controller.last_error}")
            if i == WARMUP:
                rss_warm = measure()
                proxy_warm = proxy_rss_kib()
        seconds = time.monotonic() - started
        rss_end = measure()
        proxy_end = proxy_rss_kib()
    finally:
        controller.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "backend": backend,
        "cycles": cycles,
        "seconds": round(seconds, 1),
        "reloads": reloads,
        "rss_start_kib": rss_start,
        "rss_warm_kib": rss_warm,
        "rss_end_kib": rss_end,
        "growth_after_warmup_kib": rss_end - rss_warm,
        "proxy_rss_warm_kib": proxy_warm,
        "proxy_rss_end_kib": proxy_end,
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| backend | cycles | time (s) | reloads | RSS start (MiB) | RSS after 500 | "
        "RSS after all (MiB) | growth after warm-up (MiB) | proxy RSS 500 -> end (MiB) |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['backend']} | failed: {r['error']} |")
            continue
        lines.append(
            f"| {r['backend']} | {r['cycles']} | {r['seconds']} | {r['reloads']} | "
            f"{r['rss_start_kib'] / 1024:.1f} | {r['rss_warm_kib'] / 1024:.1f} | "
            f"{r['rss_end_kib'] / 1024:.1f} | {r['growth_after_warmup_kib'] / 1024:+.1f} | "
            f"{r['proxy_rss_warm_kib'] / 1024:.1f} -> {r['proxy_rss_end_kib'] / 1024:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="nginx,haproxy,traefik")
    ap.add_argument("--cycles", type=int, default=10_000)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # child mode: soak one backend, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(soak(args.one, args.cycles)))
        return
    rows = []
    for backend in args.backends.split(","):
        done = subprocess.run(
            [sys.executable, __file__, "--one", backend, "--cycles", str(args.cycles)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            rows.append({"backend": backend, "error": done.stderr.strip().splitlines()[-1:]})
        else:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    if args.json:
        machine = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        }
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
