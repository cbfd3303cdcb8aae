"""``polyingress demo cafe``: the Kubernetes Ingress tutorial's cafe example, end to end."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

from polyingress.core.runtime.hello import HelloServer

__all__ = ["CAFE_BACKENDS", "run_demo"]

# (name, address, port): must match the EndpointSlices in examples/cafe/cafe.yaml.
CAFE_BACKENDS = (
    ("coffee-1", "127.0.0.11", 18081),
    ("coffee-2", "127.0.0.12", 18081),
    ("tea-1", "127.0.0.21", 18081),
    ("tea-2", "127.0.0.22", 18081),
    ("tea-3", "127.0.0.23", 18081),
)


def _find_cafe() -> Path | None:
    here = Path(__file__).resolve()
    for base in (Path.cwd(), *here.parents):
        candidate = base / "examples" / "cafe"
        if (candidate / "cafe-ingress.yaml").is_file():
            return candidate
    return None


def run_demo(args: argparse.Namespace) -> int:
    from polyingress.core.runtime.cli import CommandError, main

    manifests = _find_cafe()
    if manifests is None:
        raise CommandError("demo: examples/cafe not found (run it from the repository)", code=1)
    servers: list[HelloServer] = []
    try:
        for n, a, p in CAFE_BACKENDS:
            servers.append(HelloServer(n, a, p).start())
    except OSError as exc:
        for s in servers:
            s.stop()
        raise CommandError(
            f"demo: cannot start the cafe backend {n} on {a}:{p}: {exc.strerror or exc}", code=1
        ) from None
    port, sport = args.http_port, args.https_port
    dashboard = (
        f"\nDashboard (where every request goes): http://127.0.0.1:{args.dashboard_port}/\n"
        if args.dashboard
        else ""
    )
    print(
        f"""
cafe demo: {len(servers)} hello backends started (coffee x2, tea x3), backend {args.backend}
Try, in another terminal:

  curl --resolve cafe.example.com:{sport}:127.0.0.1 https://cafe.example.com:{sport}/coffee --insecure
  curl --resolve cafe.example.com:{sport}:127.0.0.1 https://cafe.example.com:{sport}/tea --insecure
  curl -i --resolve cafe.example.com:{port}:127.0.0.1 http://cafe.example.com:{port}/tea  # 301
  curl -i http://127.0.0.1:{port}/  # 404

Edit {manifests} while it runs: changes are applied live. Ctrl-C stops everything.
{dashboard}""",
        flush=True,
    )
    if args.exit_after:
        timer = threading.Timer(args.exit_after, lambda: os.kill(os.getpid(), signal.SIGTERM))
        timer.daemon = True
        timer.start()
    try:
        return main(
            [
                "run",
                "--backend",
                args.backend,
                "--manifests",
                str(manifests),
                "--bind",
                "127.0.0.1",
                "--http-port",
                str(port),
                "--https-port",
                str(sport),
                "--workdir",
                str(args.workdir),
                "--health-port",
                str(args.health_port),
                *(
                    ["--dashboard", "--dashboard-port", str(args.dashboard_port)]
                    if args.dashboard
                    else []
                ),
            ]
        )
    finally:
        for s in servers:
            s.stop()
