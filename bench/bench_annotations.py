"""Requests per second through each backend: an Ingress with ingress-nginx annotations beside a
plain one, in the same running proxy (issue 16: within 10 % of a plain Ingress).

    python bench/bench_annotations.py                      # nginx, haproxy, traefik
    python bench/bench_annotations.py --backends haproxy --seconds 5 --rounds 5

One `polyingress run` per backend serves four hosts, every Service on one fast upstream (a
separate one-worker nginx, benchkit.start_upstream):

* plain: an Ingress without annotations;
* rewrite+canary+allow: the issue's row, rewrite-target, a 10 % canary (another Service on the
  same upstream) and an allowlist the client is in;
* access: allowlist + denylist, proxy-body-size, limit-rps and limit-connections far above
  what wrk sends (the counting is measured, not a refusal);
* basic-auth: a bcrypt user (cost 4, the lowest) and its password in every request. Not held to
  the 10 %: every request checks a bcrypt hash, on every proxy (as in ingress-nginx).

wrk (2 threads, 50 connections) runs ``--seconds`` against each host in turn, ``--rounds``
times, alternating, on the shared machine; the table shows medians and each row's share of the
plain host's.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from benchkit import endpoint_slice, ingress, service, start_upstream, stop_group, wrk

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


def measure(backend: str, tmp: Path, port: int, seconds: int, rounds: int) -> dict[str, float]:
    manifests = tmp / backend / "manifests"
    write_manifests(manifests, "world.yaml", world(port))
    ctl = Controller(backend, manifests, tmp / backend / "work").start()
    try:
        for row in ROWS:
            extra = dict(h.split(": ", 1) for h in headers(row))
            wait_until(
                lambda r=row, x=extra: (
                    request(ctl.http_port, host(r), "/", headers=x).status == 200
                ),
                timeout=60,
            )
        runs: dict[str, list[float]] = {row: [] for row in ROWS}
        for _ in range(rounds):
            for row in ROWS:
                result = wrk(ctl.http_port, host(row), seconds, headers=headers(row))
                runs[row].append(result.rps)
        return {row: statistics.median(values) for row, values in runs.items()}
    finally:
        ctl.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="nginx,haproxy,traefik")
    parser.add_argument("--seconds", type=int, default=5, help="one wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    port = free_port(UPSTREAM)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-annotations-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o711)  # nginx's workers (nobody, when run as root) read the user file
        upstream = start_upstream(tmp, [UPSTREAM], port)
        try:
            for backend in args.backends.split(","):
                results[backend] = measure(backend, tmp, port, args.seconds, args.rounds)
        finally:
            stop_group(upstream)
    print("| backend | " + " | ".join(ROWS) + " |")
    print("|---|" + "---:|" * len(ROWS))
    failed = []
    for backend, rps in results.items():
        plain = rps["plain"]
        cells = [f"{plain:,.0f}"]
        for row in list(ROWS)[1:]:
            share = rps[row] / plain if plain else 0.0
            cells.append(f"{rps[row]:,.0f} ({share:.0%})")
            if row in TARGETED and share < 0.9:
                failed.append(f"{backend} {row}: {share:.0%} of plain")
        print(f"| {backend} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if failed:
        print("below 90 % of the plain Ingress: " + "; ".join(failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
