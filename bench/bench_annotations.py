"""Requests per second through each backend: an Ingress with ingress-nginx annotations beside a
plain one, in the same running proxy (issue 16: within 10 % of a plain Ingress).

    python bench/bench_annotations.py                      # nginx, haproxy, traefik
    python bench/bench_annotations.py --backends haproxy --seconds 5 --rounds 8
    python bench/bench_annotations.py --backends nginx,haproxy,traefik,caddy

One `polyingress run` per backend serves four hosts, every Service on one fast upstream (a
separate one-worker nginx, benchkit.start_upstream):

* plain: an Ingress without annotations;
* rewrite+canary+allow: the issue's row, rewrite-target, a 10 % canary (another Service on the
  same upstream) and an allowlist the client is in;
* access: allowlist + denylist, proxy-body-size, limit-rps and limit-connections far above
  what wrk sends (the counting is measured, not a refusal);
* basic-auth: a bcrypt user (cost 4, the lowest) and its password in every request. Not held to
  the 10 %: every request checks a bcrypt hash, on every proxy (as in ingress-nginx).

The machine is shared and its load drifts, so an annotated host is never compared with a plain
run made at another time: each round runs, for every annotated row, a *pair* of wrk runs
(2 threads, 50 connections, ``--seconds`` each, the same client and the same running proxy)
back to back, plain then annotated on even rounds and annotated then plain on odd ones (ABBA:
a steady drift cancels out); the pair's ratio is annotated / plain. The table shows, per
backend side by side, the plain host's median requests/s and, per row, the median of the
pairs' ratios with their spread (lowest-highest), and the load average before and after. A row
whose features the backend does not declare (Caddy: no source ranges) is shown as "-".
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from benchkit import endpoint_slice, ingress, service, start_upstream, stop_group, wrk

from polyingress.core.pipeline.translate.annotations import ANNOTATION_SUPPORT
from polyingress.testing.gateway_live import backend_features
from polyingress.testing.live import Controller, free_port, request, wait_until, write_manifests

UPSTREAM = "127.0.0.31"
USER, PASSWORD = "bench", "open sesame"
# bcrypt of PASSWORD at cost 4 (passlib's bcrypt.using(rounds=4).hash, made once).
BCRYPT = "$2y$04$ABePdTwGq2Ow5BWZLO12LeTnPGEdBjwulNqW2nfVWdcnMNqAEc.Pu"
NGINX = "nginx.ingress.kubernetes.io/"
ROWS: dict[str, dict[str, str]] = {
    "plain": {},
    "rewrite+canary+allow": {"rewrite-target": "/", "allowlist-source-range": "127.0.0.0/8"},
    "access": {
        "allowlist-source-range": "127.0.0.0/8",
        "denylist-source-range": "10.0.0.0/8,192.168.0.0/16",
        "proxy-body-size": "1m",
        "limit-rps": "1000000",
        "limit-connections": "65535",
    },
    "basic-auth": {"auth-type": "basic", "auth-secret": "users", "auth-realm": "bench"},
}
TARGETED = ("rewrite+canary+allow", "access")


def host(row: str) -> str:
    return f"{row.replace('+', '-')}.bench.example.com"


def world(port: int) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}},
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "polyingress"},
            "spec": {"controller": "polyingress.io/controller"},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "users", "namespace": "bench"},
            "type": "Opaque",
            "data": {"auth": base64.b64encode(f"{USER}:{BCRYPT}\n".encode()).decode()},
        },
    ]
    for name in ("app", "app-canary"):
        objs += [service(name, target_port=port), endpoint_slice(name, [UPSTREAM], port)]
    for row, keys in ROWS.items():
        ing = ingress(row.replace("+", "-"), host(row), ("/",), service_name="app")
        ing["metadata"]["annotations"] = {NGINX + k: v for k, v in keys.items()}
        objs.append(ing)
    canary = ingress("canary", host("rewrite+canary+allow"), ("/",), service_name="app-canary")
    canary["metadata"]["annotations"] = {NGINX + "canary": "true", NGINX + "canary-weight": "10"}
    objs.append(canary)
    return objs


def headers(row: str) -> tuple[str, ...]:
    if row != "basic-auth":
        return ()
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return (f"Authorization: Basic {token}",)


def served(backend: str, row: str) -> bool:
    """Whether the backend declares every feature the row's annotations need."""
    if row == "plain":
        return True
    declared = backend_features(backend)
    needed = {f for k in ROWS[row] for f in ANNOTATION_SUPPORT[k][1]}
    if row == "rewrite+canary+allow":
        needed |= ANNOTATION_SUPPORT["canary-weight"][1]
    return needed <= declared


Pairs = dict[str, list[tuple[float, float]]]


def measure(backend: str, tmp: Path, port: int, seconds: int, rounds: int) -> Pairs:
    """(plain, annotated) requests/s of each pair, per annotated row the backend serves."""
    manifests = tmp / backend / "manifests"
    write_manifests(manifests, "world.yaml", world(port))
    ctl = Controller(backend, manifests, tmp / backend / "work").start()
    rows = [row for row in ROWS if row != "plain" and served(backend, row)]
    try:
        for row in ("plain", *rows):
            extra = dict(h.split(": ", 1) for h in headers(row))
            wait_until(
                lambda r=row, x=extra: (
                    request(ctl.http_port, host(r), "/", headers=x).status == 200
                ),
                timeout=60,
            )

        def rps(row: str) -> float:
            return wrk(ctl.http_port, host(row), seconds, headers=headers(row)).rps

        pairs: Pairs = {row: [] for row in rows}
        if not rows:  # nothing annotated served: the plain host's requests/s alone
            pairs["plain"] = [(rps("plain"),) * 2 for _ in range(rounds)]
        for i in range(rounds):
            for row in rows:
                if i % 2 == 0:
                    plain = rps("plain")
                    annotated = rps(row)
                else:
                    annotated = rps(row)
                    plain = rps("plain")
                pairs[row].append((plain, annotated))
        return pairs
    finally:
        ctl.stop()


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="nginx,haproxy,traefik")
    parser.add_argument("--seconds", type=int, default=3, help="one wrk run (default 3)")
    parser.add_argument("--rounds", type=int, default=6, help="pairs per row (default 6)")
    parser.add_argument("--json", type=Path, help="also write the pairs here")
    args = parser.parse_args(argv)
    port = free_port(UPSTREAM)
    results: dict[str, Pairs] = {}
    before = _load()
    with tempfile.TemporaryDirectory(prefix="bench-annotations-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o711)  # nginx's workers (nobody, when run as root) read the user file
        upstream = start_upstream(tmp, [UPSTREAM], port)
        try:
            for backend in args.backends.split(","):
                results[backend] = measure(backend, tmp, port, args.seconds, args.rounds)
        finally:
            stop_group(upstream)
    after = _load()
    backends = list(results)
    print(
        f"load average (1/5/15 min) {before} before, {after} after; {args.rounds} pairs of "
        f"{args.seconds} s wrk runs per row, ABBA"
    )
    print()
    print("| | " + " | ".join(backends) + " |")
    print("|---|" + "---:|" * len(backends))
    plain_cells = []
    for backend in backends:
        plains = [p for pairs in results[backend].values() for p, _a in pairs]
        plain_cells.append(f"{statistics.median(plains):,.0f} req/s" if plains else "-")
    print("| plain Ingress | " + " | ".join(plain_cells) + " |")
    failed = []
    for row in list(ROWS)[1:]:
        cells = []
        for backend in backends:
            pairs = results[backend].get(row)
            if not pairs:
                cells.append("-")
                continue
            ratios = sorted(a / p for p, a in pairs if p)
            median = statistics.median(ratios)
            cells.append(f"{median:.0%} ({ratios[0]:.0%}-{ratios[-1]:.0%})")
            if row in TARGETED and median < 0.9:
                failed.append(f"{backend} {row}: {median:.0%} of plain")
        print(f"| {row} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if failed:
        print("below 90 % of the plain Ingress (median of the pairs): " + "; ".join(failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
