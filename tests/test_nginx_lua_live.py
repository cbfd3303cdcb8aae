"""The nginx backend through a real ``polyingress run``, in both upstream modes.

- The routing contract (``routing_cases.py`` and every test of ``test_live_routing.py``) with
  ``--nginx-lua off`` (static upstreams, a reload per change) and ``--nginx-lua on`` (the Lua
  balancer); ``test_live_routing.py`` itself runs the default mode (auto).
- 50 endpoint changes (scale up, scale down, replace every pod) under load, with the Lua
  balancer: nginx never reloads, every change is served as soon as it is applied, the client
  sees no failed request and never an endpoint removed by a change applied before it asked.

"Applied" is what the channel reads back: the test reads nginx's endpoint state through the
channel (token from the 0600 config, as the controller does) until it holds the new endpoint
set; from then on every request goes to the new set, because the balancer reads the shared
dictionary on every request.
"""

from __future__ import annotations

import http.client
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from livekit import (
    Controller,
    EarlyClose,
    HelloFleet,
    needs,
    request,
    wait_until,
    write_manifests,
)

from polyingress.plugins.nginx.channel import EndpointChannel
from polyingress.testing import conformance
from polyingress.testing.cases import (
    CASES,
    DEFAULT_CASES,
    Case,
    default_backend_ingress,
)

pytestmark = [
    pytest.mark.live,
    needs("nginx"),
]

MODES = [
    pytest.param("off", id="static"),
    pytest.param(
        "on",
        id="lua",
        marks=needs("nginx-lua"),
    ),
]


class ModeWorld(conformance.LiveWorld):
    """test_live_routing's world, served by nginx in the given upstream mode."""

    def __init__(self, mode: str, tmp: Path) -> None:
        self.mode = mode
        super().__init__("nginx", tmp, extra=["--nginx-lua", mode])


@pytest.fixture(scope="module", params=MODES)
def mode_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModeWorld]:
    w = ModeWorld(request.param, tmp_path_factory.mktemp(f"nginx-lua-{request.param}"))
    yield w
    w.stop()


def test_runs_in_the_mode_asked_for_and_says_so_once(mode_world: ModeWorld) -> None:
    status, detail = mode_world.controller.health("/readyz")
    assert status == 200, f"{detail}\n{mode_world.controller.log(tail=4000)}"
    conf = (mode_world.controller.workdir / "conf" / "nginx.conf").read_text()
    log = mode_world.controller.log(tail=None)
    if mode_world.mode == "on":
        assert "(Lua balancer)" in detail
        assert "balancer_by_lua_block" in conf
        assert log.count("nginx: Lua balancer on:") == 1
    else:
        assert "(static upstreams)" in detail
        assert "lua" not in conf
        assert log.count("Lua balancer off (--nginx-lua off); static upstreams") == 1


@pytest.mark.parametrize("case", CASES, ids=str)
def test_routes_per_ingress_v1(mode_world: ModeWorld, case: Case) -> None:
    mode_world.check(case)


def test_load_spread_over_all_ready_endpoints(mode_world: ModeWorld) -> None:
    conformance.test_load_spread_over_all_ready_endpoints(mode_world)


def test_unknown_sni_gets_fallback_certificate(mode_world: ModeWorld) -> None:
    conformance.test_unknown_sni_gets_fallback_certificate(mode_world)


def test_request_headers_reach_backend(mode_world: ModeWorld) -> None:
    conformance.test_request_headers_reach_backend(mode_world)


def test_post_body_and_method_pass_through(mode_world: ModeWorld) -> None:
    conformance.test_post_body_and_method_pass_through(mode_world)


def test_default_backend_added_at_run_time(mode_world: ModeWorld) -> None:
    """test_live_routing's test, but the cases are checked once the controller reports the
    reload: until then old workers still accept connections with the old config (nginx starts
    the new workers 100 ms before it stops the old ones, nginx notes §5), so the first answer from
    the new config does not mean that every answer comes from it."""
    ctl = mode_world.controller
    before = _applies(ctl.metrics())
    path = write_manifests(mode_world.manifests, "default.yaml", [default_backend_ingress()])
    try:
        wait_until(lambda: _applies(ctl.metrics()) > before, timeout=20)
        for case in DEFAULT_CASES:
            mode_world.check(case)
    finally:
        path.unlink()
        wait_until(lambda: _applies(ctl.metrics()) > before + 1, timeout=20)
        assert ctl.get("unknown.example.com", "/").status == 404


def test_the_log_still_says_the_mode_once_after_reloads(mode_world: ModeWorld) -> None:
    log = mode_world.controller.log(tail=None)
    assert "nginx reloaded" in log, "the default-backend test reloads"
    needle = "Lua balancer on:" if mode_world.mode == "on" else "Lua balancer off"
    assert log.count(needle) == 1


# -- 50 endpoint changes under load, Lua balancer ------------------------------------------------

NS, SVC, HOST = "churn", "web", "churn.test"
BACKEND = f"{NS}__{SVC}__80"


def churn_objects(port: int, addresses: list[str]) -> list[dict[str, Any]]:
    backend = {"service": {"name": SVC, "port": {"number": 80}}}
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "polyingress"},
            "spec": {"controller": "polyingress.io/controller"},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SVC, "namespace": NS},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": SVC, "namespace": NS},
            "spec": {
                "ingressClassName": "polyingress",
                "rules": [
                    {
                        "host": HOST,
                        "http": {
                            "paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]
                        },
                    }
                ],
            },
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{SVC}-1",
                "namespace": NS,
                "labels": {"kubernetes.io/service-name": SVC},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
        },
    ]


@dataclass
class Change:
    kind: str
    addresses: frozenset[str]
    written: float = 0.0
    applied: float = 0.0


@dataclass
class Sample:
    started: float
    ended: float
    outcome: str  # "ok" or why not
    address: str | None
    retried: bool


def _client(port: int, stop: threading.Event, samples: list[Sample]) -> None:
    """Keep-alive client with the browser rule (livekit.get): one retry on a new connection,
    only when the connection closed before any response byte."""

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    conn = connect()
    while not stop.is_set():
        started = time.monotonic()
        retried = False
        try:
            try:
                resp = request(port, HOST, "/load", conn=conn)
            except EarlyClose:
                conn.close()
                conn = connect()
                retried = True
                resp = request(port, HOST, "/load", conn=conn)
            address = None
            if resp.status == 200 and resp.server_name is not None:
                address = resp.json()["server_address"].rsplit(":", 1)[0]
            outcome = "ok" if address is not None else f"HTTP {resp.status}"
        except Exception as exc:
            outcome, address = f"failed: {exc!r}", None
            conn.close()
            conn = connect()
        samples.append(Sample(started, time.monotonic(), outcome, address, retried))
    conn.close()


def _next_set(i: int, current: list[str], fresh: Iterator[str]) -> tuple[str, list[str]]:
    """Scale up, up, down, replace every pod, down: sizes stay within 1-5."""
    step = i % 5
    if step in (0, 1) and len(current) < 5:
        return "scale-up", [*current, next(fresh)]
    if step in (2, 4) and len(current) > 1:
        return "scale-down", current[1:]
    if step == 3:
        return "replace-all", [next(fresh) for _ in range(max(2, len(current)))]
    return "scale-up", [*current, next(fresh)]


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return sorted(out)


def _applies(metrics: str) -> float:
    """Models applied (one per apply, whatever it took)."""
    for line in metrics.splitlines():
        if line.startswith('polyingress_syncs_total{result="applied"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _reloads(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("polyingress_reloads_total{")
    )


@needs("nginx-lua")
def test_fifty_endpoint_changes_under_load_never_reload_nor_reach_removed_pods(
    tmp_path: Path,
) -> None:
    fleet = HelloFleet([])
    addresses = (f"127.0.{70 + n // 250}.{n % 250 + 1}" for n in range(10_000))
    current = [next(addresses), next(addresses)]
    for address in current:
        fleet.add(address, address)
    manifests = tmp_path / "manifests"
    write_manifests(manifests, "world.yaml", churn_objects(fleet.port, current))
    ctl = Controller(
        "nginx", manifests, tmp_path / "work", extra=["--nginx-lua", "on", "--debounce-ms", "10"]
    )
    ctl.start()
    stoppers = ThreadPoolExecutor(max_workers=4)  # HelloServer.stop waits for its poll loop
    stop = threading.Event()
    samples: list[list[Sample]] = [[], []]
    clients = [
        threading.Thread(target=_client, args=(ctl.http_port, stop, s), daemon=True)
        for s in samples
    ]
    try:
        work = ctl.workdir
        m = re.search(r'token = "([0-9a-f]{32})"', (work / "conf" / "nginx.conf").read_text())
        assert m is not None, "the token is in the config"
        channel = EndpointChannel(work / "channel" / "nginx.sock", m.group(1))
        master = int((work / "run" / "nginx.pid").read_text())
        workers = _children(master)
        reloads = _reloads(ctl.metrics())

        def state() -> frozenset[str]:
            endpoints = channel.read([BACKEND])[1].get(BACKEND) or []
            return frozenset(a for a, _port in endpoints)

        wait_until(lambda: state() == frozenset(current), timeout=10)
        initial = frozenset(current)
        for c in clients:
            c.start()
        wait_until(lambda: all(len(s) > 5 for s in samples), timeout=10)

        changes: list[Change] = []
        removed: list[tuple[int, list[str]]] = []
        for i in range(50):
            kind, new = _next_set(i, current, addresses)
            for address in set(new) - set(current):
                fleet.add(address, address)
            change = Change(kind, frozenset(new))
            change.written = time.monotonic()
            write_manifests(manifests, "world.yaml", churn_objects(fleet.port, new))
            deadline = change.written + 10
            while state() != change.addresses:
                assert time.monotonic() < deadline, f"change {i} ({kind}) not applied in 10 s"
                time.sleep(0.001)
            change.applied = time.monotonic()
            changes.append(change)
            # Served: the next requests go to the new set only.
            for _ in range(3):
                resp = ctl.get(HOST, "/probe")
                assert resp.status == 200, f"change {i}: HTTP {resp.status}"
                got = resp.json()["server_address"].rsplit(":", 1)[0]
                assert got in change.addresses, f"change {i} ({kind}): probe reached {got}"
            removed.append((i, sorted(set(current) - set(new))))
            current = new
            # Pods go away two changes after they left the Service (terminating pods drain).
            while removed and removed[0][0] <= i - 2:
                for address in removed.pop(0)[1]:
                    if address not in current:
                        server = fleet.servers.pop(address)
                        stoppers.submit(server.stop)
            time.sleep(0.02)
        time.sleep(0.2)
        # nginx never reloaded: the same master, the same workers, no reload counted.
        assert int((work / "run" / "nginx.pid").read_text()) == master
        assert _children(master) == workers
        assert _reloads(ctl.metrics()) == reloads
    finally:
        stop.set()
        for c in clients:
            c.join(timeout=10)
        stoppers.shutdown(wait=True)
        ctl.stop()
        fleet.stop()

    log = ctl.log(tail=None)
    assert "nginx reloaded" not in log
    assert log.count("pushed and read back") >= 51  # the start, then every change

    # Zero failed requests, and every request went to an endpoint it was allowed to reach.
    flat = sorted((s for ss in samples for s in ss), key=lambda s: s.started)
    outcomes = Counter(s.outcome for s in flat)
    assert set(outcomes) == {"ok"}, outcomes
    assert len(flat) > 500, len(flat)
    violations = []
    for s in flat:
        before = [c for c in changes if c.applied <= s.started]
        allowed = set(before[-1].addresses if before else initial)
        # A change written before the request ended may already have been applied for it.
        allowed |= {a for c in changes[len(before) :] if c.written < s.ended for a in c.addresses}
        if s.address not in allowed:
            violations.append((s, len(before)))
    assert violations == [], (
        f"{len(violations)} requests reached removed endpoints: {violations[:3]}"
    )

    latencies = sorted(c.applied - c.written for c in changes)
    assert Counter(c.kind for c in changes).keys() == {"scale-up", "scale-down", "replace-all"}
    assert max(latencies) < 2.0, latencies
    print(
        f"\n50 endpoint changes: {len(flat)} requests, 0 failed, 0 reloads, workers {workers}; "
        f"write -> applied p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms"
    )
