"""Render-and-write time of the Traefik backend for 10, 1,000 and 10,000 Ingresses.

    python bench/bench_traefik.py [--json results.json] [--repeat N]

The worlds are ``tests/traefik_oracle.ingress_world`` (one host and two paths per Ingress,
every 50th a wildcard, every 100th host-less, every 25th with TLS). "render" is
``render.render`` (model -> dict -> YAML text), "write" the first ``apply.write_config`` into
an empty workdir (certificates, then the configuration, fsynced and renamed), "unchanged" a
second render and write of the same model (the write is skipped after one read). The model
build is the core's, shown for scale. Times are medians of ``--repeat`` runs (one run for 10,000).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from traefik_oracle import ingress_world  # noqa: E402

from polyingress.core import ObjectStore, RouteModel, build_model, self_signed  # noqa: E402
from polyingress.plugins.traefik.apply import Layout, write_config  # noqa: E402
from polyingress.plugins.traefik.render import RenderSettings, render  # noqa: E402

SIZES = (10, 1_000, 10_000)


def _model(count: int, secret: dict[str, str]) -> tuple[RouteModel, float]:
    store = ObjectStore()
    store.replace_many(ingress_world(count, tls_secret=secret), ())
    start = time.perf_counter()
    model = build_model(store.snapshot()).model
    return model, time.perf_counter() - start


def _measure(count: int, repeat: int, secret: dict[str, str]) -> dict[str, Any]:
    fallback = self_signed("polyingress-fallback.invalid")
    builds, renders, writes, unchanged = [], [], [], []
    rendered = None
    model = None
    for _ in range(repeat):
        model, build_s = _model(count, secret)
        builds.append(build_s)
        with tempfile.TemporaryDirectory() as tmp:
            layout = Layout(Path(tmp) / "work")
            settings = RenderSettings(cert_dir=str(layout.cert_dir), http_port=80, https_port=443)
            start = time.perf_counter()
            rendered = render(model, settings, fallback)
            renders.append(time.perf_counter() - start)
            start = time.perf_counter()
            write_config(layout, rendered)
            writes.append(time.perf_counter() - start)
            start = time.perf_counter()
            write_config(layout, render(model, settings, fallback))
            unchanged.append(time.perf_counter() - start)
    assert rendered is not None and model is not None
    return {
        "ingresses": count,
        "vhosts": len(model.vhosts),
        "routers": len(rendered.config["http"]["routers"]),
        "config_bytes": len(rendered.text.encode()),
        "build_s": statistics.median(builds),
        "render_s": statistics.median(renders),
        "write_s": statistics.median(writes),
        "render_and_write_s": statistics.median(
            r + w for r, w in zip(renders, writes, strict=True)
        ),
        "unchanged_s": statistics.median(unchanged),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cert = self_signed("bench.example.com", ("*.example.com",))
    secret = {
        "tls.crt": base64.b64encode(cert.cert_pem.encode()).decode(),
        "tls.key": base64.b64encode(cert.key_pem.encode()).decode(),
    }
    rows = [_measure(n, 1 if n >= 10_000 else args.repeat, secret) for n in SIZES]
    print(
        f"{'ingresses':>9} {'vhosts':>7} {'routers':>8} {'config':>9} {'build':>8} "
        f"{'render':>8} {'write':>8} {'render+write':>13} {'unchanged':>10}"
    )
    for r in rows:
        print(
            f"{r['ingresses']:>9,} {r['vhosts']:>7,} {r['routers']:>8,} "
            f"{r['config_bytes'] / 1e6:>7.2f}MB {r['build_s']:>7.3f}s {r['render_s']:>7.3f}s "
            f"{r['write_s']:>7.3f}s {r['render_and_write_s']:>12.3f}s {r['unchanged_s']:>9.3f}s"
        )
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"max RSS {rss_mib:.0f} MiB; {platform.python_implementation()} {platform.python_version()}"
    )
    if args.json is not None:
        machine = {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        }
        args.json.write_text(
            json.dumps({"results": rows, "max_rss_mib": rss_mib, "machine": machine}, indent=2)
        )


if __name__ == "__main__":
    main()
