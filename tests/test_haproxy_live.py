"""Live tests of the HAProxy backend through a real ``polyingress run``: no reloads for routine
changes, a seamless reload when the spare pool runs out, restart after a kill, clean stop."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kube_objects import CLASS
from livekit import (
    Controller,
    EarlyClose,
    HelloFleet,
    Response,
    needs,
    request,
    wait_until,
    write_manifests,
)
from manifests import Objects

from polyingress.plugins.haproxy.runtime import MasterClient, ProcTable

pytestmark = [
    pytest.mark.live,
    needs("haproxy"),
]

NS = "live"
APP = "app.test"
ONE = "one.test"
TWO = "two.test"
POOL = [f"127.0.60.{i}" for i in range(1, 7)]  # svc-a's endpoints rotate among these
ADDRESSES = {
    "svc-a": POOL,
    "svc-b": ["127.0.61.1", "127.0.61.2"],
    "svc-one": ["127.0.62.1"],
    "svc-new": ["127.0.63.1"],
    **{f"svc-x{i}": [f"127.0.64.{i}"] for i in range(1, 5)},
}


# --------------------------------------------------------------------------- manifests

OBJECTS = Objects(NS)
service, ingress, secret = OBJECTS.service, OBJECTS.ingress, OBJECTS.self_signed_secret


# --------------------------------------------------------------------------- harness


class LoadClient(threading.Thread):
    """Sends requests back to back on one keep-alive connection per target; a request closed
    before any response byte is retried once on a new connection (the browser rule); every
    other failure or wrong answer is recorded."""

    def __init__(self, port: int, https_port: int, targets: list[tuple[str, str, str, str]]):
        super().__init__(daemon=True)
        self.port = port
        self.https_port = https_port
        self.targets = targets  # (scheme, host, path, expected service)
        self.stop_event = threading.Event()
        self.sent = 0
        self.retries = 0
        self.failures: list[str] = []
        self._conns: dict[int, http.client.HTTPConnection] = {}

    def _conn(self, index: int) -> http.client.HTTPConnection:
        conn = self._conns.get(index)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            self._conns[index] = conn
        return conn

    def _once(self, index: int, scheme: str, host: str, path: str) -> Response:
        if scheme == "https":  # a new TLS connection each time: every handshake checks SNI
            return request(self.https_port, host, path, scheme="https")
        return request(self.port, host, path, conn=self._conn(index))

    def run(self) -> None:
        while not self.stop_event.is_set():
            for index, (scheme, host, path, expect) in enumerate(self.targets):
                self.sent += 1
                try:
                    try:
                        resp = self._once(index, scheme, host, path)
                    except EarlyClose:
                        self.retries += 1
                        old = self._conns.pop(index, None)
                        if old is not None:
                            old.close()
                        resp = self._once(index, scheme, host, path)
                except Exception as exc:
                    self.failures.append(f"{scheme}://{host}{path}: {type(exc).__name__}: {exc}")
                    old = self._conns.pop(index, None)
                    if old is not None:
                        old.close()
                    continue
                name = resp.server_name or ""
                if resp.status != 200 or name.rsplit("-", 1)[0] != expect:
                    self.failures.append(f"{scheme}://{host}{path}: {resp.status} from {name}")

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)
        for conn in self._conns.values():
            conn.close()


@dataclass
class World:
    tmp: Path
    spare: int
    fleet: HelloFleet = field(init=False)
    manifests: Path = field(init=False)
    controller: Controller = field(init=False)

    def __post_init__(self) -> None:
        endpoints = [
            (f"{svc}-{i + 1}", addr)
            for svc, addrs in ADDRESSES.items()
            for i, addr in enumerate(addrs)
        ]
        self.fleet = HelloFleet(endpoints)
        self.manifests = self.tmp / "manifests"
        self.write("base.yaml", self.base_objects())
        self.write("one.yaml", [secret("one-tls", ONE, ONE)])
        self.controller = Controller(
            "haproxy",
            self.manifests,
            self.tmp / "work",
            extra=["--haproxy-spare-backends", str(self.spare), "--haproxy-drain-timeout", "5"],
        )
        self.controller.start()

    def base_objects(self, a_addresses: list[str] | None = None) -> list[dict[str, Any]]:
        port = self.fleet.port
        return [
            CLASS,
            *service("svc-a", port, a_addresses or POOL[:3]),
            *service("svc-b", port, ADDRESSES["svc-b"]),
            *service("svc-one", port, ADDRESSES["svc-one"]),
            ingress("main", APP, {"/": "svc-a", "/b": "svc-b"}),
            ingress("one", ONE, {"/": "svc-one"}, tls_secret="one-tls"),
        ]

    def write(self, name: str, objects: list[dict[str, Any]]) -> None:
        write_manifests(self.manifests, name, objects)

    def remove(self, name: str) -> None:
        (self.manifests / name).unlink()

    def get(self, host: str, path: str, scheme: str = "http") -> Response:
        return self.controller.get(host, path, scheme=scheme)

    def served_by(self, host: str, path: str, scheme: str = "http") -> str | None:
        resp = self.get(host, path, scheme)
        return resp.server_name if resp.status == 200 else f"HTTP {resp.status}"

    def master(self) -> MasterClient:
        return MasterClient(str(self.controller.workdir / "master.sock"))

    def proc(self) -> ProcTable:
        return self.master().show_proc()

    def metric(self, name: str) -> float:
        total = 0.0
        for line in self.controller.metrics().splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def load(self) -> LoadClient:
        client = LoadClient(
            self.controller.http_port,
            self.controller.https_port,
            [
                ("http", APP, "/", "svc-a"),
                ("http", APP, "/b/x", "svc-b"),
                ("https", ONE, "/", "svc-one"),
            ],
        )
        client.start()
        return client

    def stop(self) -> None:
        self.controller.stop()
        self.fleet.stop_at_once()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path, spare=4)
    try:
        yield w
    finally:
        w.stop()


def _no_haproxy_in(workdir: Path) -> list[int]:
    """haproxy processes (not zombies) whose working directory is ``workdir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            if "(haproxy)" not in stat or stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            if Path(os.readlink(entry / "cwd")).resolve() == workdir.resolve():
                found.append(int(entry.name))
    return found


# --------------------------------------------------------------------------- tests


def test_routine_changes_never_reload_and_no_request_fails(world: World) -> None:
    before = world.proc()
    workers = before.worker_pids
    client = world.load()
    try:
        wait_until(lambda: client.sent > 20)
        # 50 endpoint changes: svc-a always has 3 of the 6 pool addresses; each change swaps
        # one, and is served when the new endpoint answers and the old one no longer does.
        current = POOL[:3]
        for step in range(50):
            out = current[step % 3]
            new = next(a for a in POOL if a not in current and a != out)
            current = [new if a == out else a for a in current]
            world.write("base.yaml", world.base_objects(current))
            wanted = f"svc-a-{POOL.index(new) + 1}"
            wait_until(lambda w=wanted: any(world.served_by(APP, "/x") == w for _ in range(6)))
            gone = f"svc-a-{POOL.index(out) + 1}"
            assert gone not in {world.served_by(APP, "/x") for _ in range(6)}

        # Ingresses and paths: add an Ingress, add a path to it, remove a path, remove it.
        world.write("extra.yaml", [ingress("extra", "extra.test", {"/x": "svc-b"})])
        wait_until(lambda: world.served_by("extra.test", "/x/1") == "svc-b-1" or None)
        world.write("extra.yaml", [ingress("extra", "extra.test", {"/x": "svc-b", "/y": "svc-a"})])
        wait_until(lambda: (world.served_by("extra.test", "/y") or "").startswith("svc-a"))
        world.write("extra.yaml", [ingress("extra", "extra.test", {"/y": "svc-a"})])
        wait_until(lambda: world.get("extra.test", "/x/1").status == 404)
        world.remove("extra.yaml")
        wait_until(lambda: world.get("extra.test", "/y").status == 404)

        # A new host with a new TLS Secret.
        world.write(
            "two.yaml",
            [secret("two-tls", TWO, TWO), ingress("two", TWO, {"/": "svc-b"}, "two-tls")],
        )
        wait_until(lambda: world.get(TWO, "/", scheme="https").peer_cn == TWO)
        assert (world.served_by(TWO, "/", "https") or "").startswith("svc-b")
        assert (
            world.get(TWO, "/p?q=1")
            .headers["location"]
            .endswith(f"{TWO}:{world.controller.https_port}/p?q=1")
        )

        # The certificate of an existing host is replaced.
        world.write("one.yaml", [secret("one-tls", ONE, "one.test-v2")])
        wait_until(lambda: world.get(ONE, "/", scheme="https").peer_cn == "one.test-v2")

        # A new Service (a spare slot) routed from an existing host.
        world.write(
            "new.yaml",
            [
                *service("svc-new", world.fleet.port, ADDRESSES["svc-new"]),
                ingress("new", APP, {"/new": "svc-new"}),
            ],
        )
        wait_until(lambda: world.served_by(APP, "/new/1") == "svc-new-1")
        # The load went on over the changes (on a loaded machine it may have sent fewer):
        # at least 200 requests, all of them answered, make "no request fails" mean something.
        wait_until(lambda: client.sent > 200, timeout=30)
    finally:
        client.stop()

    assert client.failures == [], client.failures[:10]
    assert client.sent > 200
    after = world.proc()
    assert after.worker_pids == workers, "the HAProxy worker changed: a reload happened"
    assert after.master.reloads == before.master.reloads
    assert world.metric("polyingress_haproxy_reloads_total") == 0
    assert world.metric("polyingress_haproxy_runtime_commands_total") > 100
    assert "reloaded" not in world.controller.log()


def test_exhausted_spare_pool_reloads_seamlessly_and_keeps_every_route(world: World) -> None:
    before = world.proc()
    client = world.load()
    try:
        wait_until(lambda: client.sent > 20)
        # 3 Services are routed, 4 spare slots: 4 new ones fit, the 5th needs a reload.
        fits = [f"svc-x{i}" for i in range(1, 5)]
        objects = [CLASS]
        for name in fits:
            objects += service(name, world.fleet.port, ADDRESSES[name])
        objects.append(ingress("x", "x.test", {f"/{n}": n for n in fits}))
        world.write("x.yaml", objects)
        wait_until(lambda: world.served_by("x.test", "/svc-x4") == "svc-x4-1")
        assert world.proc().worker_pids == before.worker_pids
        wait_until(lambda: world.metric("polyingress_haproxy_spare_backends") == 0)

        world.write(
            "new.yaml",
            [
                *service("svc-new", world.fleet.port, ADDRESSES["svc-new"]),
                ingress("new", APP, {"/new": "svc-new"}),
            ],
        )
        wait_until(lambda: world.served_by(APP, "/new") == "svc-new-1")
        time.sleep(0.3)
    finally:
        client.stop()
    assert client.failures == [], client.failures[:10]
    after = world.proc()
    assert after.master.reloads == before.master.reloads + 1
    assert after.worker_pids != before.worker_pids
    reason = 'polyingress_haproxy_reloads_total{reason="runtime_capacity"}'
    assert world.metric(reason) == 1
    assert world.metric('polyingress_reloads_total{reason="runtime_capacity"}') == 1
    assert world.metric("polyingress_haproxy_spare_backends") >= 4
    for name in ("svc-x1", "svc-x2", "svc-x3", "svc-x4"):
        assert world.served_by("x.test", f"/{name}") == f"{name}-1"
    assert world.served_by(APP, "/b") in {"svc-b-1", "svc-b-2"}
    assert world.get(ONE, "/", scheme="https").peer_cn == ONE


@pytest.mark.parametrize("victim", ["master", "worker"])
def test_killed_haproxy_is_restarted_with_the_current_state(world: World, victim: str) -> None:
    # State that exists only because of run-time changes: a new Service, host and certificate.
    world.write(
        "two.yaml",
        [
            secret("two-tls", TWO, TWO),
            *service("svc-new", world.fleet.port, ADDRESSES["svc-new"]),
            ingress("two", TWO, {"/": "svc-new"}, "two-tls"),
        ],
    )
    wait_until(lambda: world.get(TWO, "/", scheme="https").peer_cn == TWO)
    table = world.proc()
    pid = table.master.pid if victim == "master" else next(iter(table.worker_pids))
    os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        with contextlib.suppress(Exception):
            return world.proc().master.pid != table.master.pid
        return False

    wait_until(restarted, timeout=20)
    wait_until(lambda: world.served_by(TWO, "/x", "https") == "svc-new-1", timeout=10)
    assert world.get(TWO, "/", scheme="https").peer_cn == TWO
    assert world.served_by(APP, "/") in {"svc-a-1", "svc-a-2", "svc-a-3"}
    assert re.search(r"haproxy exited with code .*; restarted", world.controller.log())
    assert world.metric("polyingress_haproxy_restarts_total") >= 1


def test_stopping_run_leaves_no_haproxy_process(tmp_path: Path) -> None:
    w = World(tmp_path, spare=2)
    workdir = w.controller.workdir
    try:
        pids = {w.proc().master.pid, *w.proc().worker_pids}
        assert set(_no_haproxy_in(workdir)) == pids
    finally:
        w.stop()
    assert w.controller.proc is not None and w.controller.proc.returncode == 0
    assert _no_haproxy_in(workdir) == []
