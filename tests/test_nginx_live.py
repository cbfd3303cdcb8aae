"""The nginx backend live: real nginx, real HTTP, the core's reconciler driving the plugin.

Each test runs nginx in its own prefix on free ports >= 1024 and stops it by pid.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import pytest
from livekit import (
    Controller as RunProcess,
)
from livekit import (
    EarlyClose,
    HelloFleet,
    Response,
    get,
    needs,
    processes_in_session,
    request,
    run_settings,
    wait_until,
    write_manifests,
)
from longlived import Stream
from manifests import Objects
from prometheus_client import REGISTRY

from polyingress.core import BuildOptions, ObjectStore, RunSettings, build_model, group_members
from polyingress.core.runtime.controller import Controller
from polyingress.core.runtime.plugins import plugin_manager
from polyingress.plugins.nginx import plugin
from polyingress.plugins.nginx.apply import NginxBackend

pytestmark = [
    pytest.mark.live,
    needs("nginx"),
]

NS = "live"
CONFIGMAP = ("kube-system", "polyingress")
ADDRESSES = {"a1": "127.0.4.1", "a2": "127.0.4.2", "b1": "127.0.4.3", "b2": "127.0.4.4"}


def service(name: str) -> dict[str, Any]:
    return {
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"ports": [{"name": "http", "port": 80}]},
    }


def slice_(
    svc: str, port: int, ready: list[str], not_ready: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The EndpointSlice of ``svc``: ``ready`` addresses, then ``not_ready`` ones, on ``port``."""
    eps = [{"addresses": [a], "conditions": {"ready": True}} for a in ready]
    eps += [{"addresses": [a], "conditions": {"ready": False}} for a in not_ready]
    return {
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{svc}-1",
            "namespace": NS,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port}],
        "endpoints": eps,
    }


def endpoints(svc: str, port: int, *names: str, not_ready: tuple[str, ...] = ()) -> dict[str, Any]:
    """The EndpointSlice of ``svc``: the hello servers ``names`` (keys of ADDRESSES), ready."""
    return slice_(svc, port, [ADDRESSES[n] for n in names], not_ready)


OBJECTS = Objects(NS, api_version=False)
ingress, secret = OBJECTS.ingress, OBJECTS.self_signed_secret


def configmap(**data: str) -> dict[str, Any]:
    return {
        "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP[1], "namespace": CONFIGMAP[0]},
        "data": {"worker-processes": "2", **data},
    }


def hello_services(port: int) -> list[dict[str, Any]]:
    """The IngressClass, and the Services svc-a (hello servers a1, a2) and svc-b (b1)."""
    return [
        {
            "kind": "IngressClass",
            "metadata": {"name": "polyingress"},
            "spec": {"controller": "polyingress.io/controller"},
        },
        service("svc-a"),
        service("svc-b"),
        endpoints("svc-a", port, "a1", "a2"),
        endpoints("svc-b", port, "b1"),
    ]


def world(port: int) -> list[dict[str, Any]]:
    return [
        *hello_services(port),
        ingress("app", "app.test", {"/x": "svc-a"}),
        ingress("secure", "secure.test", {"/": "svc-a"}, tls_secret="secure-tls"),
        secret("secure-tls", "secure.test", "secure-v1"),
        configmap(),
    ]


def running(pid: int) -> bool:
    """Exists and is not a zombie (orphans are reaped by whatever PID 1 is, if at all)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@dataclass
class Live:
    store: ObjectStore
    controller: Controller
    settings: RunSettings
    fleet: HelloFleet

    @classmethod
    def start(
        cls, tmp_path: Path, objects: Callable[[int], list[dict[str, Any]]], **options: Any
    ) -> Self:
        """Hello servers on ADDRESSES, and the core's reconciler driving the nginx plugin in this
        process, from a store holding ``objects(port of the hello servers)``; ``options`` are
        the nginx plugin's."""
        fleet = HelloFleet(list(ADDRESSES.items()))
        settings = run_settings("nginx", tmp_path, BuildOptions(configmap=CONFIGMAP), **options)
        store = ObjectStore()
        store.replace_many(upserts=objects(fleet.port), deletes=())
        controller = Controller(
            settings,
            plugin_manager(("nginx", plugin.hooks)),
            store,
            debounce=0.005,
            supervise_interval=0.1,
        )
        controller.start()
        return cls(store, controller, settings, fleet)

    @contextlib.contextmanager
    def serving(self) -> Iterator[Self]:
        """Yield, then stop the controller and the hello servers and assert that no nginx
        process is left (of the master at the start, nor of the current one)."""
        master = self.backend.process.pid if self.backend.process else None
        try:
            yield self
        finally:
            process = self.backend.process
            self.controller.stop()
            self.fleet.stop()
            for pid in {master, process.pid if process else None} - {None}:
                assert pid is not None
                assert group_members(pid) == [], "nginx processes left behind"

    @property
    def backend(self) -> NginxBackend:
        backend: NginxBackend = self.controller.backend
        return backend

    def change(self, *objects: dict[str, Any], refused: bool = False) -> str:
        """Upsert objects; wait until the reconciler applied the new model (or refused it)."""
        self.store.replace_many(upserts=objects, deletes=())
        target = build_model(self.store.snapshot(), self.settings.build).model.model_hash

        def settled() -> bool:
            good, built = self.controller.last_good, self.controller.last_result
            if not refused:
                return good is not None and good.model_hash == target
            return (
                self.controller.status().failing
                and built is not None
                and built.model.model_hash == target
            )

        wait_until(settled, timeout=20, interval=0.005)
        return target

    def get(self, host: str, path: str, scheme: str = "http") -> Response:
        port = self.settings.https_port if scheme == "https" else self.settings.http_port
        return get(port, host, path, scheme=scheme)

    def served_by(self, host: str, path: str, n: int = 20) -> Counter[str | None]:
        return Counter(self.get(host, path).server_name for _ in range(n))


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    state = Live.start(
        tmp_path,
        world,
        nginx_binary="nginx",
        nginx_status_port=0,
        nginx_reload_timeout=20.0,
        nginx_stop_timeout=10.0,
    )
    with state.serving():
        yield state


def test_changes_are_served_as_soon_as_apply_returns(live: Live) -> None:
    assert set(live.served_by("app.test", "/x/1")) == {"a1", "a2"}
    live.change(ingress("app", "app.test", {"/x": "svc-b"}))
    assert live.served_by("app.test", "/x/1") == Counter({"b1": 20})

    live.change(endpoints("svc-b", live.fleet.port, "b2"))
    assert live.served_by("app.test", "/x/1") == Counter({"b2": 20})

    certs = live.settings.workdir / "conf" / "certs"
    old = {p.name for p in certs.iterdir()}
    assert live.get("secure.test", "/", scheme="https").peer_cn == "secure-v1"
    live.change(secret("secure-tls", "secure.test", "secure-v2"))
    for _ in range(10):
        assert live.get("secure.test", "/", scheme="https").peer_cn == "secure-v2"
    new = {p.name for p in certs.iterdir()}
    assert (
        len(new) == 4 and not (old - {"polyingress-fallback.crt", "polyingress-fallback.key"}) & new
    )
    for path in certs.iterdir():
        assert (path.stat().st_mode & 0o777) == (0o600 if path.suffix == ".key" else 0o644)


def test_identical_render_does_not_reload(live: Live) -> None:
    backend = live.backend
    assert backend.process is not None
    reloads, workers = backend.reloads, backend.process.workers()
    live.change(endpoints("svc-a", live.fleet.port, "a1", "a2", not_ready=("127.0.4.99",)))
    assert backend.reloads == reloads
    assert backend.process.workers() == workers
    live.change(ingress("app", "app.test", {"/x": "svc-a", "/y": "svc-b"}))
    assert backend.reloads == reloads + 1


def test_broken_candidate_keeps_previous_config_and_is_not_retried(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    backend = live.backend
    running = backend.running
    assert running is not None
    checks = backend.checks
    # proxy-buffer-size passes its validator; nginx's own rule on proxy_buffers refuses 64k.
    with caplog.at_level(logging.ERROR, logger="polyingress.controller"):
        bad = live.change(configmap(**{"proxy-buffer-size": "64k"}), refused=True)
    assert live.controller.status().failing
    assert live.controller.last_good is not None and live.controller.last_good.model_hash != bad
    assert "proxy_busy_buffers_size" in (live.controller.last_error or "")
    assert "refused the new configuration (ConfigMap kube-system/polyingress)" in caplog.text
    assert backend.checks == checks + 1
    conf = live.settings.workdir / "conf"
    assert (conf / "nginx.conf").read_text() == running.text
    assert "proxy_buffer_size 64k;" in (conf / "nginx.conf.rejected").read_text()
    assert backend.running is running
    assert set(live.served_by("app.test", "/x")) == {"a1", "a2"}

    # Store changes that leave the model as it is must not retry the refused model.
    other = ingress("other", "other.test", {"/": "svc-a"})
    other["spec"]["ingressClassName"] = "someone-else"
    live.store.replace_many(upserts=[other], deletes=())
    time.sleep(0.5)  # several reconciler and supervisor rounds
    assert backend.checks == checks + 1
    assert live.controller.status().failing

    live.change(configmap(**{"proxy-buffer-size": "8k"}))
    assert not live.controller.status().failing
    assert backend.running is not None and "proxy_buffer_size 8k;" in backend.running.text
    assert set(live.served_by("app.test", "/x")) == {"a1", "a2"}


def test_killed_master_is_restarted_and_serves_the_current_state(live: Live) -> None:
    live.change(ingress("app", "app.test", {"/x": "svc-b"}))
    backend = live.backend
    assert backend.process is not None and backend.process.pid is not None
    master = backend.process.pid
    orphans = backend.process.workers()
    os.kill(master, signal.SIGKILL)
    wait_until(lambda: backend.restarts == 1 and backend.health().ready, timeout=15)
    assert backend.process.pid != master
    assert not any(running(pid) for pid in orphans), "orphaned workers survive"
    assert live.served_by("app.test", "/x") == Counter({"b1": 20})
    assert live.controller.health().ready


def _client(live: Live, stop: threading.Event, results: list[str]) -> None:
    """Keep-alive client: one retry, on a new connection, only when the connection closed
    before any byte of the response arrived (what browsers and HTTP libraries do)."""
    port = live.settings.http_port

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=5)

    conn = connect()
    while not stop.is_set():
        try:
            try:
                resp = request(port, "app.test", "/x/load", conn=conn)
            except EarlyClose:
                conn.close()
                conn = connect()
                resp = request(port, "app.test", "/x/load", conn=conn)
                results.append("retried")
            results.append("ok" if resp.status == 200 and resp.server_name else f"{resp.status}")
        except Exception as exc:
            results.append(f"failed: {exc!r}")
            conn.close()
            conn = connect()
    conn.close()


def test_twenty_reloads_under_load_lose_no_request(live: Live) -> None:
    backend = live.backend
    reloads = backend.reloads
    stop = threading.Event()
    results: list[list[str]] = [[], []]
    clients = [threading.Thread(target=_client, args=(live, stop, r), daemon=True) for r in results]
    for c in clients:
        c.start()
    try:
        for i in range(20):
            live.change(ingress("app", "app.test", {"/x": "svc-a", f"/reload-{i}": "svc-b"}))
    finally:
        stop.set()
        for c in clients:
            c.join(timeout=10)
    outcomes = Counter(r for rs in results for r in rs)
    assert backend.reloads == reloads + 20
    failures = {k: v for k, v in outcomes.items() if k not in ("ok", "retried")}
    assert failures == {}, outcomes
    assert outcomes["ok"] > 200, outcomes


def test_run_restarts_a_killed_master_and_sigterm_leaves_no_process(tmp_path: Path) -> None:
    """End to end through ``polyingress run`` and a manifest directory."""
    fleet = HelloFleet(list(ADDRESSES.items()))
    manifests = tmp_path / "manifests"
    objects = [o for o in world(fleet.port) if o["kind"] != "ConfigMap"]
    write_manifests(manifests, "world.yaml", objects)
    run = RunProcess("nginx", manifests, tmp_path / "work")
    try:
        run.start()
        assert run.get("app.test", "/x").server_name in {"a1", "a2"}
        pid_file = tmp_path / "work" / "run" / "nginx.pid"
        master = int(pid_file.read_text())
        os.kill(master, signal.SIGKILL)

        def restarted() -> bool:
            return int(pid_file.read_text()) != master and run.health("/readyz")[0] == 200

        wait_until(restarted, timeout=20)
        assert run.get("app.test", "/x").server_name in {"a1", "a2"}
        assert "restarted, serving config" in run.log()

        objects = [
            o for o in objects if o["kind"] != "EndpointSlice" or o["metadata"]["name"] != "svc-a-1"
        ]
        write_manifests(manifests, "world.yaml", [*objects, endpoints("svc-a", fleet.port, "b2")])
        wait_until(lambda: run.get("app.test", "/x").server_name == "b2", timeout=20)
    finally:
        assert run.proc is not None
        sid = run.proc.pid
        run.stop()
        fleet.stop()
    assert processes_in_session(sid) == []
    assert "received SIGTERM" in run.log()
    with contextlib.suppress(FileNotFoundError):
        assert not running(int(pid_file.read_text()))


def test_a_master_left_by_an_earlier_run_is_stopped_at_start(tmp_path: Path) -> None:
    """A controller that crashed (SIGKILL) leaves nginx running; the next start on the same
    workdir stops that master (found through the pid file in the prefix) before starting."""
    fleet = HelloFleet(list(ADDRESSES.items()))
    settings = run_settings("nginx", tmp_path, nginx_stop_timeout=5.0)
    store = ObjectStore()
    store.replace_many(upserts=world(fleet.port), deletes=())
    model = build_model(store.snapshot(), settings.build).model
    crashed = plugin.hooks.polyingress_create_backend(settings=settings)
    successor = plugin.hooks.polyingress_create_backend(settings=settings)
    try:
        crashed.start(model)
        assert crashed.process is not None and crashed.process.pid is not None
        stale = crashed.process.pid
        successor.start(model)
        assert not running(stale)
        assert group_members(stale) == []
        assert successor.process is not None and successor.process.pid != stale
        assert get(settings.http_port, "app.test", "/x").server_name in {"a1", "a2"}
    finally:
        successor.stop()
        crashed.stop()
        fleet.stop()


def test_reloads_with_streams_open_keep_generations_and_memory_bounded(tmp_path: Path) -> None:
    """Old workers do not pile up: 20 reloads, each while a stream (a long-lived response) is
    open through nginx, so that every reload leaves a generation of old workers holding one;
    with worker-shutdown-timeout 2s from the ConfigMap they all end, the metrics say one
    generation again, and nginx's memory (PSS of master and workers) is back near its start."""
    timeout = 2.0

    def objects(port: int) -> list[dict[str, Any]]:
        return [*world(port)[:-1], configmap(**{"worker-shutdown-timeout": f"{timeout:.0f}s"})]

    state = Live.start(tmp_path, objects, nginx_reload_timeout=20.0)
    streams: list[Stream] = []
    with state.serving():
        backend = state.backend
        assert backend.running is not None
        assert f"worker_shutdown_timeout {timeout:.0f}s;" in backend.running.text
        assert backend.worker_generations() == 1
        started = backend.memory_bytes()
        assert started > 0
        most, peak = 1, started
        for i in range(20):
            stream = Stream(state.settings.http_port, "app.test", "/x/stream").open()
            streams.append(stream)
            state.change(ingress("app", "app.test", {"/x": "svc-a", f"/p{i}": "svc-b"}))
            most = max(most, backend.worker_generations())
            peak = max(peak, backend.memory_bytes())
        assert backend.reloads >= 20
        # Not vacuous: the open streams kept old generations alive.
        assert most >= 3, most
        wait_until(lambda: backend.worker_generations() == 1, timeout=timeout + 15)
        assert REGISTRY.get_sample_value("polyingress_nginx_worker_generations") == 1
        # Every stream but the one the current workers serve was cut by the timeout.
        assert all(s.ended is not None and not s.complete for s in streams[:-1])
        memory = backend.memory_bytes()
        assert REGISTRY.get_sample_value("polyingress_nginx_memory_bytes") > 0
        mib = f"{memory >> 20} MiB, {started >> 20} at start, {peak >> 20} at most"
        # Back near the start (the workers of this generation have served requests since, a
        # few MiB on this small world), far below what the old generations held.
        assert memory <= 2 * started and memory * 2 <= peak, mib
    for stream in streams:
        stream.close()
