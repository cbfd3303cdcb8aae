"""The nginx backend at 10, 1,000 and 10,000 Ingresses, and requests/s by host kind (issue 4).

    python bench/bench_nginx.py                       # everything, a few minutes
    python bench/bench_nginx.py --sizes 10,1000 --rps-hosts 1000 --wrk-seconds 2
    python bench/bench_nginx.py --json out.json

Worlds are ``worlds.generated_world`` (one host and two Prefix paths per Ingress, one Service and
EndpointSlice each) plus a small probe Ingress; every endpoint is a separate tiny nginx that
answers 200 ("ok <server address>"), listening on 127.0.3.1 and 127.0.3.2.

- render: the core's model build (cold, for scale) and ``polyingress_render`` of the nginx
  plugin, in this process; median of ``--repeat`` runs.
- nginx -t: the exact command the backend runs, on the configuration a real run is serving.
- change -> served: a real ``polyingress run --backend nginx`` (``--nginx-lua off`` when that
  option exists, ``--nginx-lua on`` with ``--lua``) serves the world; the probe manifest is
  rewritten, alternately adding a path and moving the probe's endpoint to the other address,
  and the time from the file write to nginx answering the new state is polled through nginx
  every 2 ms. Each change is a reload (with ``--lua`` the path changes only); the controller's
  own log gives each reload's time from SIGHUP until served.
- memory: RSS and PSS of the master and each worker (``/proc/PID/smaps_rollup``) after start
  and after those reloads, once no old worker is still shutting down.
- requests/s: wrk (2 threads, 50 connections) through three runs that are up at the same time:
  1 host, 10,000 exact hosts (the last one requested) and 10,000 single-label wildcard hosts
  (``x.<last suffix>`` requested). Rounds alternate the order; each round is one wrk run per
  world, and the ratio to 1 host is taken within a round (machines are noisy, ratios hold).
  Each run also records the measured nginx's CPU per request and how much CPU other processes
  used meanwhile: on a shared machine requests/s follow the neighbours, CPU per request less.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

import benchkit as kit

from polyingress.core import BuildOptions, ObjectStore, RunSettings, build_model
from polyingress.plugins.nginx.plugin import render_config
from polyingress.testing.live import Controller, Response, free_port, request, write_manifests

UPSTREAM_A = "127.0.3.1"
UPSTREAM_B = "127.0.3.2"


# -- worlds -------------------------------------------------------------------------------------


def world(n: int, port: int, *, wildcard: bool = False) -> list[dict[str, Any]]:
    """``generated_world`` with every endpoint on the fast upstream (one endpoint per Service)."""
    return kit.upstream_world(n, UPSTREAM_A, port, wildcard=wildcard)


def write_world(directory: Path, objs: list[dict[str, Any]]) -> None:
    """As one JSON ``List`` (PyYAML's pure-Python dumper needs 16 s for 10,000 Ingresses)."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / ".world.json.tmp"
    tmp.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    os.replace(tmp, directory / "world.json")


# -- processes ----------------------------------------------------------------------------------


def lua_flag() -> list[str]:
    """``--nginx-lua off`` if this polyingress has the option (another issue adds it)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "polyingress.core.runtime.cli",
            "run",
            "--backend",
            "nginx",
            "--help",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return ["--nginx-lua", "off"] if "--nginx-lua" in out else []


class Run:
    """A real ``polyingress run --backend nginx`` on a world, in ``tmp/name``."""

    def __init__(self, tmp: Path, name: str, objs: list[dict[str, Any]], extra: list[str]):
        self.manifests = tmp / name / "m"
        write_world(self.manifests, objs)
        self.ctl = Controller("nginx", self.manifests, tmp / name / "work", extra=list(extra))
        self.prefix = self.ctl.workdir.resolve()
        self.start_s = 0.0

    def start(self) -> Run:
        t0 = time.monotonic()
        self.ctl.start(timeout=300)
        self.start_s = time.monotonic() - t0
        return self

    def stop(self) -> None:
        self.ctl.stop()

    def get(self, host: str, path: str) -> Response:
        return request(self.ctl.http_port, host, path, timeout=2)

    def log_offset(self) -> int:
        assert self.ctl.log_path is not None
        return self.ctl.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        assert self.ctl.log_path is not None
        with self.ctl.log_path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")


# -- /proc --------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[0], int(fields[1])


def nginx_processes(prefix: Path) -> tuple[int, list[int]]:
    master = int((prefix / "run" / "nginx.pid").read_text().strip())
    return master, child_pids(master)


def child_pids(parent: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[1] == parent and st[0] not in "ZX":
                out.append(int(entry.name))
    return sorted(out)


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def rss_pss_mb(pid: int) -> tuple[float, float]:
    values = {"Rss:": 0.0, "Pss:": 0.0}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] in values:
            values[parts[0]] = int(parts[1]) / 1024
    return values["Rss:"], values["Pss:"]


def memory(prefix: Path, label: str, workers_expected: int | None = None) -> dict[str, Any]:
    """Master and workers, once no old worker is left (at most 20 s; then whatever runs)."""
    deadline = time.monotonic() + 20
    while True:
        master, workers = nginx_processes(prefix)
        old = [p for p in workers if "shutting down" in _cmdline(p)]
        settled = not old and workers_expected in (None, len(workers))
        if settled or time.monotonic() > deadline:
            try:
                m_rss, m_pss = rss_pss_mb(master)
                w = [rss_pss_mb(p) for p in workers]
                break
            except OSError:  # a worker exited between listing and reading
                pass
        time.sleep(0.05)
    return {
        "state": label,
        "master_rss_mb": m_rss,
        "master_pss_mb": m_pss,
        "workers": len(w),
        "worker_rss_mb": [r for r, _ in w],
        "worker_pss_mb": [p for _, p in w],
        "total_rss_mb": m_rss + sum(r for r, _ in w),
        "total_pss_mb": m_pss + sum(p for _, p in w),
        "old_workers_left": len(old),
    }


# -- measurements -------------------------------------------------------------------------------


def measure_render(n: int, port: int, repeat: int, lua: str = "off") -> dict[str, Any]:
    objs = world(n, port) + kit.probe_objects([UPSTREAM_A], port, ["/base"])
    store = ObjectStore()
    store.replace_many(objs, ())
    t0 = time.perf_counter()
    model = build_model(store.snapshot(), BuildOptions()).model
    build_s = time.perf_counter() - t0
    # Lua off as in the runs (an older plugin ignores the attribute: it has no Lua mode).
    settings = RunSettings(
        backend="nginx",
        bind="127.0.0.1",
        http_port=18080,
        https_port=18443,
        options=argparse.Namespace(nginx_lua=lua),
    )
    times = []
    text = ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        rendered = render_config(settings, model)
        times.append(time.perf_counter() - t0)
        text = dict(rendered.files)["conf/nginx.conf"]
    return {
        "ingresses": n,
        "hosts": len(model.vhosts),
        "build_s": build_s,
        "render_s": statistics.median(times),
        "render_runs_s": times,
        "config_kb": len(text.encode()) / 1024,
        "config_lines": text.count("\n"),
    }


def nginx_t(prefix: Path, repeat: int) -> dict[str, Any]:
    """The backend's own check command, on the configuration being served."""
    cmd = ["nginx", "-t", "-q", "-p", f"{prefix}/", "-e", "stderr", "-c"]
    cmd.append(str(prefix / "conf" / "nginx.conf"))
    times, cpu, output = [], [], ""
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), children_cpu_s()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t0)
        cpu.append(children_cpu_s() - c0)
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{output}")
    return {
        "nginx_t_s": statistics.median(times),
        "nginx_t_runs_s": times,
        "nginx_t_cpu_s": statistics.median(cpu),
        "nginx_t_warnings": [line for line in output.splitlines() if "[warn]" in line],
    }


# The apply line of a reload: its parts from SIGHUP until the new workers serve (the master's
# parse, the new workers' start) and until no old worker accepts.
_RELOAD = re.compile(
    r"applied .* \(.*master parse ([\d.]+) ms, new workers serve ([\d.]+) ms, "
    r"old workers stop accepting ([\d.]+) ms"
)


def measure_changes(run: Run, port: int, changes: int) -> dict[str, Any]:
    """Alternately add a path and move the endpoint; file write -> nginx answers the new state."""
    paths = ["/base"]
    address = UPSTREAM_A
    lat: dict[str, list[float]] = {"path+": [], "endpoint": []}
    offset = run.log_offset()
    proxy = run.ctl.http_port
    for i in range(changes):
        if i % 2 == 0:
            new = f"/added-{i}"
            paths.append(new)
            t = time.monotonic()
            write_manifests(run.manifests, "probe.yaml", kit.probe_objects([address], port, paths))
            done = kit.served(proxy, kit.PROBE_HOST, new + "/x", _ok200, 120)
            lat["path+"].append(done - t)
        else:
            address = UPSTREAM_B if address == UPSTREAM_A else UPSTREAM_A
            want = f"ok {address}\n".encode()
            t = time.monotonic()
            write_manifests(run.manifests, "probe.yaml", kit.probe_objects([address], port, paths))
            done = kit.served(proxy, kit.PROBE_HOST, "/base", lambda r, w=want: r.body == w, 120)
            lat["endpoint"].append(done - t)
    time.sleep(0.2)  # the controller logs the reload right after nginx serves it
    reloads = _RELOAD.findall(run.log_since(offset))
    every = lat["path+"] + lat["endpoint"]
    return {
        "changes": len(every),
        "served_p50_s": statistics.median(every),
        "served_max_s": max(every),
        "by_kind_p50_s": {k: statistics.median(v) for k, v in lat.items() if v},
        "reloads": len(reloads),
        "hup_to_served_p50_s": statistics.median(sum(map(float, r)) for r in reloads) / 1000
        if reloads
        else None,
    }


def _ok200(r: Response) -> bool:
    return r.status == 200


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pids: list[int]) -> float:
    """utime + stime of live processes, in seconds."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / _TICK


def busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / _TICK


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk_accounted(run: Run, host: str, seconds: int, upstream: list[int]) -> dict[str, Any]:
    """One wrk run, plus where the machine's CPU went meanwhile: the measured nginx (master and
    workers), and what neither it, the upstream nor wrk used ("others": the noise)."""
    master, workers = nginx_processes(run.prefix)
    nginx_pids = [master, *workers]
    n0, u0, w0, b0 = cpu_s(nginx_pids), cpu_s(upstream), children_cpu_s(), busy_s()
    t0 = time.monotonic()
    result = kit.wrk(run.ctl.http_port, host, seconds)
    wall = time.monotonic() - t0
    nginx = cpu_s(nginx_pids) - n0
    ours = nginx + cpu_s(upstream) - u0 + children_cpu_s() - w0
    requests = result.rps * seconds
    return {
        "rps": result.rps,
        "latency_ms": result.latency_ms,
        "socket_errors": result.socket_errors,
        "nginx_cpu_s": nginx,
        "nginx_cpu_us_per_request": nginx / requests * 1e6 if requests else None,
        "other_cores": max(0.0, busy_s() - b0 - ours) / wall,
    }


def measure_rps(
    runs: dict[str, tuple[Run, str]], rounds: int, seconds: int, upstream: list[int]
) -> dict[str, list[dict[str, Any]]]:
    names = list(runs)
    for name in names:  # warm-up: upstream keepalive connections, caches
        run, host = runs[name]
        kit.wrk(run.ctl.http_port, host, 1)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            run, host = runs[name]
            got = wrk_accounted(run, host, seconds, upstream)
            results[name].append({"round": r + 1, **got})
            print(
                f"  rps {name} round {r + 1}: {got['rps']:,.0f} "
                f"({got['nginx_cpu_us_per_request']:.1f} us/request, others "
                f"{got['other_cores']:.2f} cores)",
                file=sys.stderr,
            )
    return results


# -- tables -------------------------------------------------------------------------------------


def print_render(rows: list[dict[str, Any]]) -> None:
    print("\nrender and check (render = the plugin's render_config here, median; nginx -t =")
    print("the backend's check command on the served config, median of 3; its CPU: user+sys)")
    print(
        f"{'ingresses':>10} {'hosts':>7} {'config':>9} {'model build':>12} {'render':>8} "
        f"{'nginx -t':>9} {'-t CPU':>7} {'-t warnings':>12}"
    )
    for r in rows:
        w = len(r["nginx_t_warnings"])
        print(
            f"{r['ingresses']:>10,} {r['hosts']:>7,} {r['config_kb']:>7,.0f}KB "
            f"{r['build_s']:>11.2f}s {r['render_s']:>7.2f}s {r['nginx_t_s']:>8.2f}s "
            f"{r['nginx_t_cpu_s']:>6.2f}s {w:>12}"
        )


def print_changes(rows: list[dict[str, Any]]) -> None:
    print(
        "\nchange -> served (file write until nginx answers the new state; a reload per change,"
        "\nper path change in Lua mode;"
        "\nHUP..served: swap + SIGHUP until new workers serve and old ones stopped accepting,"
        "\nfrom the controller's log; start: process start until /readyz)"
    )
    print(
        f"{'ingresses':>10} {'start':>7} {'changes':>8} {'p50':>7} {'max':>7} {'path+':>7} "
        f"{'endpoint':>9} {'reloads':>8} {'HUP..served':>12}"
    )
    for r in rows:
        c = r["changes_result"]
        k = c["by_kind_p50_s"]

        def s(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}s"

        print(
            f"{r['ingresses']:>10,} {r['start_s']:>6.1f}s {c['changes']:>8} "
            f"{s(c['served_p50_s']):>7} {s(c['served_max_s']):>7} {s(k.get('path+')):>7} "
            f"{s(k.get('endpoint')):>9} {c['reloads']:>8} {s(c['hup_to_served_p50_s']):>12}"
        )


def print_memory(rows: list[dict[str, Any]]) -> None:
    print("\nnginx memory (MB, /proc/PID/smaps_rollup; workers: each, RSS/PSS)")
    print(
        f"{'ingresses':>10}  {'state':<17} {'master RSS/PSS':>15}  {'workers RSS/PSS':<24} "
        f"{'total PSS':>10}"
    )
    for r in rows:
        for m in r["memory"]:
            workers = " ".join(
                f"{a:.0f}/{b:.0f}"
                for a, b in zip(m["worker_rss_mb"], m["worker_pss_mb"], strict=True)
            )
            print(
                f"{r['ingresses']:>10,}  {m['state']:<17} "
                f"{m['master_rss_mb']:>7.0f}/{m['master_pss_mb']:<7.0f}  {workers:<24} "
                f"{m['total_pss_mb']:>10.0f}"
            )


def ratios_to_first(runs: dict[str, list[dict[str, Any]]], key: str) -> dict[str, list[float]]:
    """Per world, its figure divided by the first world's in the same round."""
    base = next(iter(runs.values()))
    return {
        name: [v[key] / b[key] for v, b in zip(vals, base, strict=True)]
        for name, vals in runs.items()
    }


def print_rps(rps: dict[str, Any], seconds: int) -> None:
    runs = rps["runs"]
    names = list(runs)
    rounds = len(runs[names[0]])
    rps_ratio = ratios_to_first(runs, "rps")
    cpu_ratio = ratios_to_first(runs, "nginx_cpu_us_per_request")
    print(
        f"\nrequests/s through nginx (wrk -t2 -c50, {seconds} s per run; rounds alternate the "
        'order;\nupstream: a separate nginx answering 200; "vs 1 host": median of the '
        "within-round ratios;\nnginx CPU: master + workers, /proc utime+stime per request; "
        "others: CPU other processes\nused meanwhile, in cores)"
    )
    width = [max(len(n), 9) for n in names]

    def row(label: str, cells: list[str], tail: str = "") -> None:
        body = " ".join(f"{c:>{w}}" for c, w in zip(cells, width, strict=True))
        print(f"{label:<20} {body}  {tail}".rstrip())

    row("", names, "others (cores)")
    for r in range(rounds):
        order = "->" if r % 2 == 0 else "<-"
        row(
            f"round {r + 1:>2} {order}",
            [f"{runs[n][r]['rps']:,.0f}" for n in names],
            " ".join(f"{runs[n][r]['other_cores']:.2f}" for n in names),
        )
    row("median", [f"{statistics.median(v['rps'] for v in runs[n]):,.0f}" for n in names])
    row("vs 1 host", [f"{statistics.median(rps_ratio[n]):.0%}" for n in names])
    row(
        "latency (median)",
        [f"{statistics.median(v['latency_ms'] or 0 for v in runs[n]):.2f}ms" for n in names],
    )
    row(
        "nginx CPU/request",
        [
            f"{statistics.median(v['nginx_cpu_us_per_request'] for v in runs[n]):.1f}us"
            for n in names
        ],
    )
    row("vs 1 host", [f"{statistics.median(cpu_ratio[n]):.0%}" for n in names])
    others = statistics.mean(v["other_cores"] for vals in runs.values() for v in vals)
    if others > 0.25:
        print(
            f"  note: other processes used {others:.2f} cores on average during the runs; "
            "requests/s\n  then swing with them, nginx CPU per request is the steadier figure"
        )
    for name in names:
        print(f"  {name}: Host {rps['hosts'][name]}")
    for line in rps["checks"]:
        print(line)


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--sizes", default="10,1000,10000", help="Ingress counts (comma-separated)")
    ap.add_argument("--changes", type=int, default=6, help="changes per size (reloads)")
    ap.add_argument("--repeat", type=int, default=3, help="render runs per size")
    ap.add_argument("--rps-hosts", type=int, default=10_000, help="hosts of the rps worlds")
    ap.add_argument("--rounds", type=int, default=10, help="wrk rounds (alternating order)")
    ap.add_argument("--wrk-seconds", type=int, default=3)
    ap.add_argument(
        "--lua",
        action="store_true",
        help="the default mode where the Lua module is installed (--nginx-lua on): endpoint "
        "changes are pushed, not reloaded; without it, static upstreams (--nginx-lua off)",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    extra = ["--nginx-lua", "on"] if args.lua else lua_flag()
    started = time.monotonic()
    if args.lua:
        mode = "Lua balancer (--nginx-lua on)"
    else:
        mode = "plain (--nginx-lua off)" if extra else "plain (no --nginx-lua option)"
    out: dict[str, Any] = {
        "machine": {
            "arch": platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "nginx": subprocess.run(
                ["nginx", "-v"], capture_output=True, text=True, check=False
            ).stderr.strip(),
            "load_before": os.getloadavg(),
        },
        "mode": mode,
        "sizes": [],
    }
    print(f"nginx backend, {mode}; {platform.machine()}, {os.cpu_count()} cores", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp_name:
        tmp = Path(tmp_name)
        # Run as root, nginx workers are "nobody" and need to reach the prefix's tmp/.
        tmp.chmod(0o755)
        port = free_port(UPSTREAM_A)
        upstream = kit.start_upstream(tmp, [UPSTREAM_A, UPSTREAM_B], port, "ok $server_addr\n")
        active: list[Run] = []
        try:
            rows = []
            for n in sizes:
                row = measure_render(
                    n, port, args.repeat if n < 10_000 else 1, "on" if args.lua else "off"
                )
                print(f"  render {n}: {row['render_s']:.2f}s", file=sys.stderr)
                run = Run(tmp, f"size-{n}", world(n, port), extra)
                write_manifests(
                    run.manifests, "probe.yaml", kit.probe_objects([UPSTREAM_A], port, ["/base"])
                )
                active.append(run.start())
                row["start_s"] = run.start_s
                row["memory"] = [memory(run.prefix, "after start")]
                row.update(nginx_t(run.prefix, 3))
                row["changes_result"] = measure_changes(run, port, args.changes)
                reloads = row["changes_result"]["reloads"]
                after = memory(run.prefix, f"after {reloads} reloads", row["memory"][0]["workers"])
                row["memory"].append(after)
                run.stop()
                active.remove(run)
                rows.append(row)
                print(f"  size {n} done at {time.monotonic() - started:.0f}s", file=sys.stderr)
            out["sizes"] = rows

            if args.rounds and args.rps_hosts and shutil.which("wrk"):
                n = args.rps_hosts
                suffix = kit.last_host(n)
                specs = {
                    "1 host": (world(1, port), kit.last_host(1)),
                    f"{n:,} exact hosts": (world(n, port), suffix),
                    f"{n:,} wildcard hosts": (world(n, port, wildcard=True), "x." + suffix),
                }
                runs: dict[str, tuple[Run, str]] = {}
                for i, (name, (objs, host)) in enumerate(specs.items()):
                    run = Run(tmp, f"rps-{i}", objs, extra)
                    active.append(run.start())
                    runs[name] = (run, host)
                checks = []
                wild = runs[f"{n:,} wildcard hosts"][0]
                for host, want in (
                    ("x." + suffix, 200),
                    ("a.b." + suffix, 404),
                    (suffix, 404),
                ):
                    got = wild.get(host, "/").status
                    checks.append(f"  wildcard check: {host} -> {got} (want {want})")
                    if got != want:
                        raise RuntimeError(checks[-1])
                for name, (run, host) in runs.items():
                    if run.get(host, "/").status != 200:
                        raise RuntimeError(f"{name}: {host} does not answer 200")
                upstream_pids = [upstream.pid, *child_pids(upstream.pid)]
                rps_runs = measure_rps(runs, args.rounds, args.wrk_seconds, upstream_pids)
                out["rps"] = {
                    "runs": rps_runs,
                    "hosts": {name: host for name, (_run, host) in runs.items()},
                    "checks": checks,
                }
                wild_name = f"{n:,} wildcard hosts"
                for key, what in (("rps", "requests/s"), ("nginx_cpu_us_per_request", "CPU/req")):
                    ratios = ratios_to_first(rps_runs, key)[wild_name]
                    med = statistics.median(ratios)
                    verdict = "within" if abs(1 - med) <= 0.10 else "NOT within"
                    checks.append(
                        f"  {wild_name} vs 1 host, {what}: {med:.0%}, {verdict} 10%\n"
                        f"    (rounds: {' '.join(f'{x:.0%}' for x in ratios)})"
                    )
                    out["rps"][f"wildcard_vs_1_host_{key}"] = med
        finally:
            for run in active:
                run.stop()
            kit.stop_group(upstream)
    out["seconds"] = time.monotonic() - started
    out["machine"]["load_after"] = os.getloadavg()
    nginx_v = out["machine"]["nginx"].removeprefix("nginx version: ")
    print(f"nginx backend, {mode}; {platform.machine()}, {os.cpu_count()} cores, {nginx_v}")
    if out["sizes"]:
        print_render(out["sizes"])
        print_changes(out["sizes"])
        print_memory(out["sizes"])
    if "rps" in out:
        print_rps(out["rps"], args.wrk_seconds)
    print(f"\n({out['seconds']:.0f} s in all)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
