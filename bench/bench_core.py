"""Model build time and peak memory for generated worlds (issue: core framework).

cold build: ``build_model`` (pure: a fresh Builder); warm build: the same snapshot again through
a kept Builder that is not told what changed (it compares the objects by identity); 1 slice /
1 ingress: the incremental update the controller makes after one EndpointSlice / one Ingress
changed; build peak: traced peak memory of a cold build. Times are medians of --repeat runs
(the machine is shared: one run is noisy).

python bench/bench_core.py            # 10, 1,000 and 10,000 Ingresses
python bench/bench_core.py --json out.json --repeat 5
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from worlds import generated_world

from polyingress.core import Builder, BuildOptions, ObjectStore, build_model, diff
from polyingress.core.pipeline.store import object_key


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(n: int, repeat: int = 5) -> dict[str, float]:
    objs = generated_world(n)
    store = ObjectStore()
    store.replace_many(objs, ())
    snap = store.snapshot()
    gc.collect()
    rss_before = rss_mb()
    t0 = time.perf_counter()
    result = build_model(snap, BuildOptions())
    colds = [time.perf_counter() - t0]
    rss_after = rss_mb()
    assert len(result.model.vhosts) == n and not result.errors
    colds += [timed(lambda: build_model(snap, BuildOptions())) for _ in range(repeat - 1)]
    cold = statistics.median(colds)
    # A rebuild of the same objects by a kept Builder that is not told what changed (a resync).
    kept = Builder(BuildOptions())
    kept.build(snap)
    warms = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        again = kept.build(store.snapshot())
        warms.append(time.perf_counter() - t0)
    warm = statistics.median(warms)
    t0 = time.perf_counter()
    assert diff(result.model, again.model).empty
    diff_s = time.perf_counter() - t0
    # Incremental update after one EndpointSlice change and one Ingress change (the controller's
    # path): the cost must grow with the change, not with the world.
    inc = Builder()
    inc.build(store.snapshot(), None)
    slices = [o for o in objs if o["kind"] == "EndpointSlice"]
    ingresses = [o for o in objs if o["kind"] == "Ingress"]
    incremental: list[list[float]] = [[], []]
    for i in range(repeat):
        slice_obj = copy.deepcopy(slices[i % len(slices)])
        slice_obj["endpoints"][0]["addresses"] = [f"10.250.0.{i + 1}"]
        ing = copy.deepcopy(ingresses[i % len(ingresses)])
        ing["spec"]["rules"][0]["http"]["paths"][0]["path"] = f"/changed-{i}"
        for times, obj in zip(incremental, (slice_obj, ing), strict=True):
            store.upsert(obj)
            t0 = time.perf_counter()
            inc.build(store.snapshot(), {object_key(obj)})
            times.append(time.perf_counter() - t0)
    # Peak memory of a cold build, traced separately (tracing slows the build).
    del kept, inc, again
    gc.collect()
    tracemalloc.start()
    build_model(snap, BuildOptions())
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "ingresses": n,
        "routes": sum(len(v.routes) for v in result.model.vhosts),
        "endpoints": sum(len(b.endpoints) for b in result.model.backends),
        "cold_build_s": cold,
        "warm_build_s": warm,
        "diff_s": diff_s,
        "incremental_endpoint_s": statistics.median(incremental[0]),
        "incremental_ingress_s": statistics.median(incremental[1]),
        "build_peak_mb": peak / 1e6,
        "rss_growth_mb": rss_after - rss_before,
        "process_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,1000,10000")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rows = [measure(int(n), args.repeat) for n in args.sizes.split(",")]
    print(
        f"model build on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}"
    )
    print(
        f"{'ingresses':>10} {'routes':>7} {'endpoints':>9} {'cold build':>11} "
        f"{'warm build':>11} {'1 slice':>8} {'1 ingress':>9} {'build peak':>11} "
        f"{'process RSS':>12}"
    )
    for r in rows:
        print(
            f"{r['ingresses']:>10,} {r['routes']:>7,} {r['endpoints']:>9,} "
            f"{r['cold_build_s']:>10.3f}s {r['warm_build_s']:>10.3f}s "
            f"{r['incremental_endpoint_s']:>7.3f}s {r['incremental_ingress_s']:>8.3f}s "
            f"{r['build_peak_mb']:>9.1f}MB {r['process_maxrss_mb']:>10.1f}MB"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
