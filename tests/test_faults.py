"""Faults: whatever breaks, the controller stays up, keeps serving the last good state of
everything the fault does not touch, recovers by itself, and says what happened (a log line
and a metric on ``/metrics``).

Every test runs a real ``polyingress run`` (``livekit.Controller``) on nginx, HAProxy,
Traefik (managed: the binary the venv installs) and Caddy (the third-party backend in
contrib/caddy), with hello backends on loopback addresses,
breaks one thing and watches real HTTP(S) traffic.
What the user sees, per fault:

* the proxy is killed (SIGKILL): the supervisor restarts it within seconds, serving the current
  model (``supervisor: ...`` in the log, ``polyingress_supervisor_repairs_total``);
* the proxy is stopped (SIGSTOP) for seconds: traffic stalls with it, the controller answers
  ``/healthz`` all along; the change made meanwhile is served once the proxy runs again (the
  slow apply is in ``polyingress_apply_duration_seconds``);
* the generated configuration in the workdir is deleted or corrupted: the running proxy keeps
  its configuration in memory, so traffic is unaffected; the damaged file is never read back,
  every start, restart and reload writes it from the model first;
* a manifest file is replaced by a half-written one: its last good objects are kept (a warning
  names the file), the next good version is applied;
* a TLS Secret is broken (key not matching, garbage base64) or expired: that host is served
  with the fallback certificate (the expired certificate is served as it is), with a warning
  naming the Ingress, the Secret and why, and ``polyingress_problems{severity="warning"}``;
* an EndpointSlice with 10,000 endpoints: served, within a minute, spread over the endpoints;
* 1,000 Ingress changes in a second: coalesced into a few applies, the last one served.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_objects import CLASS
from livekit import (
    AddressEcho,
    Controller,
    HelloFleet,
    Response,
    backend_param,
    metric,
    processes_in_session,
    stop_running,
    wait_until,
    write_manifests,
)
from manifests import Objects, b64, cert_data

from polyingress.core import self_signed

NS = "faults"
APP = "app.test"
SECURE = "secure.test"
LATE = "late.test"
FALLBACK_CN = "polyingress-fallback.invalid"
ADDRESSES = {"svc-a": ["127.0.70.1", "127.0.70.2"], "svc-b": ["127.0.71.1"]}
BACKENDS = [backend_param(name) for name in ("nginx", "haproxy", "traefik", "caddy")]
# The generated files each backend's proxy reads at (re)start: the configuration, and for
# HAProxy the routes map (plugins/nginx/apply.py, plugins/haproxy/render.py); Traefik's watched
# directory (plugins/traefik/apply.py); Caddy reads its bootstrap file at start and gets the
# configuration through its admin API, private/caddy.json is the copy of what it runs, compact
# (contrib/caddy/polyingress_caddy/process.py).
GENERATED = {
    "nginx": ["conf/nginx.conf"],
    "haproxy": ["haproxy.cfg", "maps/routes.map"],
    "traefik": ["dynamic/polyingress.yaml"],
    "caddy": ["private/caddy.json"],
}
# The other generated file damage() corrupts.
OTHER = {
    "nginx": "conf/certs/polyingress-fallback.key",
    "haproxy": "maps/routes.map",
    "traefik": "certs/polyingress-fallback.*.key",
    "caddy": "caddy-bootstrap.json",
}
# A line each file holds once late.test is served.
SERVING_LATE = {
    "conf/nginx.conf": 'server_name "late.test";',
    "haproxy.cfg": "frontend https from polyingress",
    "maps/routes.map": "@late.test late.test",
    "dynamic/polyingress.yaml": 'rule: "Host(`late.test`) && PathPrefix(`/`)"',
    "private/caddy.json": '"late.test."',
}
PID_FILE = {"nginx": "run/nginx.pid", "haproxy": "haproxy.pid", "caddy": "caddy.pid"}
EXTRA = {"nginx": [], "haproxy": ["--haproxy-drain-timeout", "2"], "traefik": [], "caddy": []}

pytestmark = pytest.mark.live


# -- objects ---------------------------------------------------------------------------------------


OBJECTS = Objects(NS)
service, ingress, tls_secret = OBJECTS.service, OBJECTS.ingress, OBJECTS.tls_secret


def mismatched_data(host: str) -> dict[str, str]:
    cert = self_signed(host, (host,))
    other = self_signed("other", ("other.test",))
    return {"tls.crt": b64(cert.cert_pem), "tls.key": b64(other.key_pem)}


GARBAGE = {"tls.crt": "!!not-base64!!", "tls.key": "%%%"}


# -- the world -------------------------------------------------------------------------------------


class World:
    """A running controller with app.test (svc-a, /b on svc-b) and secure.test (TLS, svc-b)."""

    def __init__(self, backend: str, tmp: Path) -> None:
        self.backend = backend
        self.fleet = HelloFleet(
            [(f"{svc}-{i + 1}", a) for svc, addrs in ADDRESSES.items() for i, a in enumerate(addrs)]
        )
        self.manifests = tmp / "manifests"
        self.workdir = tmp / "work"
        self.write("base.yaml", self.base())
        self.write(
            "secure.yaml",
            [
                tls_secret("secure-tls", cert_data(SECURE, SECURE)),
                ingress("secure", SECURE, {"/": "svc-b"}, "secure-tls"),
            ],
        )
        self.controller = Controller(backend, self.manifests, self.workdir, extra=EXTRA[backend])
        self.controller.start()

    def base(self, **more_paths: str) -> list[dict[str, Any]]:
        objects = [CLASS]
        for svc, addresses in ADDRESSES.items():
            objects += service(svc, self.fleet.port, addresses)
        objects.append(ingress("app", APP, {"/": "svc-a", "/b": "svc-b", **more_paths}))
        return objects

    def write(self, name: str, objects: list[dict[str, Any]]) -> Path:
        return write_manifests(self.manifests, name, objects)

    def get(self, host: str, path: str, scheme: str = "http") -> Response:
        return self.controller.get(host, path, scheme=scheme)

    def served(self, host: str, path: str, scheme: str = "http") -> str:
        """The Service that answered, or "HTTP <status>"."""
        resp = self.get(host, path, scheme)
        name = resp.server_name
        if resp.status == 200 and name:
            return name.rsplit("-", 1)[0]
        return f"HTTP {resp.status}"

    def wait_served(self, host: str, path: str, want: str, scheme: str = "http", **kw: Any) -> None:
        def check() -> bool:
            with contextlib.suppress(OSError):
                return self.served(host, path, scheme) == want
            return False

        wait_until(check, **kw)

    def applied(self) -> float:
        return self.metric("polyingress_syncs_total", result="applied")

    def change(
        self, name: str, objects: list[dict[str, Any]], host: str, path: str, want: str
    ) -> None:
        """Write a manifest; wait until the controller applied it and it is served (served
        alone is not enough: nginx serves a new configuration before its apply returns)."""
        applied = self.applied()
        self.write(name, objects)
        wait_until(lambda: self.applied() > applied, timeout=30)
        self.wait_served(host, path, want, timeout=30)

    def assert_unaffected(self) -> None:
        assert self.served(APP, "/") == "svc-a"
        assert self.served(APP, "/b/x") == "svc-b"
        resp = self.get(SECURE, "/", scheme="https")
        assert resp.status == 200 and resp.peer_cn == SECURE, (resp.status, resp.peer_cn)
        assert self.get(SECURE, "/").status == 301  # the HTTPS redirect of a GET

    def master_pid(self) -> int:
        """The proxy's master process (Traefik writes no pid file: the controller's child)."""
        if self.backend != "traefik":
            return int((self.workdir / PID_FILE[self.backend]).read_text())
        assert self.controller.proc is not None
        parent = str(self.controller.proc.pid)
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, IndexError):
                if not entry.name.isdigit():
                    continue
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                comm = (entry / "comm").read_text().strip()
                if fields[1] == parent and fields[0] != "Z" and comm == "traefik":
                    return int(entry.name)
        raise AssertionError("no running traefik under the controller")

    def metrics(self) -> str:
        return self.controller.metrics()

    def metric(self, name: str, **labels: str) -> float:
        return metric(self.metrics(), name, **labels)

    def assert_controller_up(self) -> None:
        assert self.controller.proc is not None and self.controller.proc.poll() is None
        assert self.controller.health("/healthz")[0] == 200

    def sessions(self) -> set[int]:
        """Sessions of the controller and of its descendants (HAProxy has one of its own)."""
        assert self.controller.proc is not None
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if entry.name.isdigit():
                    parents[int(entry.name)] = int(
                        (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                    )
        found = {self.controller.proc.pid}
        while True:
            new = {pid for pid, ppid in parents.items() if ppid in found} - found
            if not new:
                break
            found |= new
        sessions = set()
        for pid in found:
            with contextlib.suppress(OSError):
                sessions.add(os.getsid(pid))
        return sessions

    def stop(self) -> None:
        stop_running(self.controller, self.fleet, self.sessions())


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    w = World(request.param, tmp_path)
    try:
        yield w
    finally:
        w.stop()


class Watcher(threading.Thread):
    """Requests to hosts the fault must not affect, back to back; records every failure."""

    def __init__(self, world: World) -> None:
        super().__init__(daemon=True)
        self.world = world
        self.stop_event = threading.Event()
        self.sent = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop_event.is_set():
            for host, path, want in ((APP, "/", "svc-a"), (APP, "/b", "svc-b")):
                self.sent += 1
                try:
                    got = self.world.served(host, path)
                except Exception as exc:
                    got = f"{type(exc).__name__}: {exc}"
                if got != want:
                    self.failures.append(f"{host}{path}: {got}")

    def __enter__(self) -> Watcher:
        self.start()
        wait_until(lambda: self.sent > 4)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.join(timeout=15)


# -- the proxy process -----------------------------------------------------------------------------


def test_killed_proxy_is_restarted_serving_the_current_state(world: World) -> None:
    world.change("late.yaml", [ingress("late", LATE, {"/": "svc-b"})], LATE, "/", "svc-b")
    master = world.master_pid()
    os.kill(master, signal.SIGKILL)

    wait_until(lambda: world.master_pid() != master, timeout=30)
    world.wait_served(LATE, "/", "svc-b", timeout=30)
    world.assert_unaffected()
    world.assert_controller_up()
    # Whoever noticed first restarted it and said so: the supervisor (a repair, counted), or an
    # apply that found the proxy dead (a reload with its reason).
    # The line is written once the restart returned, which may be after the proxy serves.
    restarted = re.compile(r"supervisor: |reloaded the proxy: .*(not running|restart)")
    wait_until(lambda: restarted.search(world.controller.log()), timeout=10)
    if "supervisor: " in world.controller.log():
        assert world.metric("polyingress_supervisor_repairs_total") >= 1


def test_stopped_proxy_keeps_the_controller_up_and_recovers_after_sigcont(world: World) -> None:
    group = os.getpgid(world.master_pid())
    assert group != os.getpgid(0)
    os.killpg(group, signal.SIGSTOP)
    try:
        world.write("late.yaml", [ingress("late", LATE, {"/": "svc-b"})])
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            world.assert_controller_up()
            time.sleep(0.5)
    finally:
        os.killpg(group, signal.SIGCONT)
    world.wait_served(LATE, "/", "svc-b", timeout=60)
    world.assert_unaffected()
    world.assert_controller_up()
    # The stalled apply is on record: one apply took longer than 2.5 s.
    text = world.metrics()
    slow = metric(text, "polyingress_apply_duration_seconds_count") - metric(
        text, "polyingress_apply_duration_seconds_bucket", le="2.5"
    )
    assert slow >= 1, text
    assert re.search(r"applying: .*vhosts_added=1", world.controller.log())


@pytest.mark.parametrize("world", BACKENDS, indirect=True)
def test_proxy_killed_during_an_apply_ends_serving_the_new_state(world: World) -> None:
    """The proxy dies while an apply waits for it: the new state must still be served."""
    master = world.master_pid()
    group = os.getpgid(master)
    applying = world.controller.log(tail=None).count("applying: ")
    os.killpg(group, signal.SIGSTOP)  # the apply blocks on the stopped proxy
    try:
        world.write("late.yaml", [ingress("late", LATE, {"/": "svc-b"})])
        wait_until(lambda: world.controller.log(tail=None).count("applying: ") > applying)
        time.sleep(0.5)
        os.kill(master, signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGCONT)
    wait_until(lambda: world.master_pid() != master, timeout=15)
    world.wait_served(LATE, "/", "svc-b", timeout=6)
    world.assert_unaffected()
    world.assert_controller_up()


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_killed_controller_leaves_nothing_a_new_run_cannot_replace(world: World) -> None:
    """The controller is SIGKILLed (no chance to stop its proxy) and started again on the same
    workdir and ports, as a restarted container would be: the new run ends what the old one
    left behind (Traefik and HAProxy run in sessions of their own and outlive it) and serves
    the current manifests with a proxy of its own."""
    old = world.controller
    assert old.proc is not None
    left = {pid for sid in world.sessions() for pid in processes_in_session(sid)} - {old.proc.pid}
    assert left, "the proxy is seen"
    try:
        os.kill(old.proc.pid, signal.SIGKILL)
        old.proc.wait(timeout=10)
        world.write("late.yaml", [ingress("late", LATE, {"/": "svc-b"})])
        world.controller = Controller(
            world.backend,
            world.manifests,
            world.workdir,
            extra=EXTRA[world.backend],
            http_port=old.http_port,
            https_port=old.https_port,
        )
        world.controller.start()
        survivors = [pid for pid in left if running(pid)]
    finally:
        for pid in left:  # whatever the outcome, nothing of the old run outlives the test
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert survivors == [], f"processes of the killed run still running: {survivors}"
    assert world.served(LATE, "/") == "svc-b"
    world.assert_unaffected()
    world.assert_controller_up()


# -- generated files -------------------------------------------------------------------------------


def other_file(world: World) -> Path:
    (path,) = world.workdir.glob(OTHER[world.backend])
    return path


def damage(world: World, *, delete: bool = True) -> dict[str, str]:
    """Delete the configuration (or, ``delete=False``, corrupt it), corrupt the other generated
    file (HAProxy: the routes map; nginx and Traefik: the fallback key). Returns what each
    damaged file held.

    Traefik differs by design: its file provider reads the watched directory on every change
    (nginx and HAProxy read their files only at a start or reload), so it reads the damage at
    once. It keeps its last good configuration while the file is unreadable, but a deleted file
    is an empty directory to it: it serves 404 until the supervisor's next round rewrites the
    file (within a second). So the test that asserts no request fails corrupts Traefik's
    configuration instead of deleting it."""
    conf = world.workdir / GENERATED[world.backend][0]
    other = other_file(world)
    before = {str(conf): conf.read_text(), str(other): other.read_text()}
    other.write_text("garbage { ;\n")
    if delete:
        conf.unlink()
    else:
        # At once, as an editor or a bad tool would save it: written in place, Traefik could
        # read the file truncated and empty (a valid, empty configuration) in between.
        staged = world.workdir / "damaged.tmp"
        staged.write_text("garbage { ;\n")
        os.replace(staged, conf)
    return before


def test_damaged_generated_files_are_never_used_and_rewritten_from_the_model(
    world: World,
) -> None:
    damaged = damage(world, delete=world.backend != "traefik")
    with Watcher(world) as watcher:
        time.sleep(1.5)  # supervisor rounds: nothing reads the damaged files back
        world.change("late.yaml", [ingress("late", LATE, {"/": "svc-b"})], LATE, "/", "svc-b")
    assert watcher.failures == [], watcher.failures[:5]

    master = world.master_pid()
    os.kill(master, signal.SIGKILL)  # a restart must not read the damaged files
    wait_until(lambda: world.master_pid() != master, timeout=30)
    world.wait_served(LATE, "/", "svc-b", timeout=30)
    world.assert_unaffected()
    for name in GENERATED[world.backend]:
        text = (world.workdir / name).read_text()
        lines = {line.strip() for line in text.splitlines()}
        # Caddy's copy is one line of compact JSON: its marker is a JSON string in it.
        assert SERVING_LATE[name] in (text if name.endswith(".json") else lines), name
    for path in damaged:
        assert "garbage" not in Path(path).read_text(), path
    assert "supervisor: " in world.controller.log()
    assert world.metric("polyingress_supervisor_repairs_total") >= 1


def test_damaged_generated_files_are_noticed_and_rewritten_by_the_supervisor(
    world: World,
) -> None:
    damaged = damage(world)

    def repaired() -> bool:
        return all(Path(p).exists() and Path(p).read_text() == t for p, t in damaged.items())

    wait_until(repaired, timeout=3)
    # The supervisor says so once its hook returned, which may be after the files are back.
    wait_until(lambda: "supervisor: " in world.controller.log(), timeout=5)
    assert world.metric("polyingress_supervisor_repairs_total") >= 1


def test_a_damaged_file_alone_is_rewritten_and_changes_are_served(world: World) -> None:
    """Only the other generated file is corrupted (the configuration left intact): it is
    rewritten too, and the next change is served."""
    other = other_file(world)
    good = other.read_text()
    with Watcher(world) as watcher:
        other.write_text("garbage { ;\n")
        wait_until(lambda: other.read_text() == good, timeout=3)
        world.change("late.yaml", [ingress("late", LATE, {"/": "svc-b"})], LATE, "/", "svc-b")
    assert watcher.failures == [], watcher.failures[:5]
    world.assert_unaffected()
    assert "supervisor: " in world.controller.log()


# -- manifests -------------------------------------------------------------------------------------


def half_written(text: str, loads: Any) -> str:
    """The longest prefix of at most half of ``text`` that does not parse."""
    for end in range(len(text) // 2, 0, -1):
        try:
            list(loads(text[:end]))
        except (yaml.YAMLError, ValueError):
            return text[:end]
    raise AssertionError("no unparseable prefix")


def replace_with(path: Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.partial"
    tmp.write_text(text)
    os.replace(tmp, path)


def test_half_written_manifest_keeps_the_last_good_objects(world: World) -> None:
    late = world.manifests / "late.json"
    late_text = json.dumps({"kind": "List", "items": [ingress("late", LATE, {"/": "svc-b"})]})
    replace_with(late, late_text)
    world.wait_served(LATE, "/", "svc-b")
    base = world.manifests / "base.yaml"
    with Watcher(world) as watcher:
        replace_with(base, half_written(base.read_text(), yaml.safe_load_all))
        replace_with(late, half_written(late_text, lambda t: [json.loads(t)]))
        wait_until(lambda: world.controller.log(tail=None).count("keeping the objects") >= 2)
        time.sleep(1)  # more reconciler rounds: nothing is withdrawn
        assert world.served(LATE, "/") == "svc-b"
        world.assert_unaffected()
    assert watcher.failures == [], watcher.failures[:5]
    log = world.controller.log()
    assert re.search(r"base\.yaml: not valid YAML: .*; keeping the objects it yielded", log, re.S)
    assert re.search(r"late\.json: not valid JSON: .*; keeping the objects it yielded", log)

    # The next complete version is applied.
    world.write("base.yaml", world.base(**{"/c": "svc-b"}))
    world.wait_served(APP, "/c", "svc-b")
    world.assert_unaffected()
    world.assert_controller_up()


@pytest.mark.parametrize("world", BACKENDS[:1], indirect=True)
def test_half_written_manifest_shows_in_a_metric(world: World) -> None:
    base = world.manifests / "base.yaml"
    good = base.read_text()
    replace_with(base, half_written(good, yaml.safe_load_all))
    wait_until(lambda: "keeping the objects" in world.controller.log())
    assert world.metric("polyingress_manifest_files_invalid") == 1
    replace_with(base, good)
    wait_until(lambda: world.metric("polyingress_manifest_files_invalid") == 0)


# -- TLS Secrets -----------------------------------------------------------------------------------


def test_broken_tls_secrets_fall_back_and_leave_other_hosts_alone(world: World) -> None:
    warnings = world.metric("polyingress_problems", severity="warning")
    broken = {
        "mismatch.test": mismatched_data("mismatch.test"),
        "expired.test": cert_data("expired.test", "expired.test", days=-10),
        "garbage.test": GARBAGE,
    }
    objects = []
    for host, data in broken.items():
        name = host.split(".")[0]
        objects += [
            tls_secret(f"{name}-tls", data),
            ingress(name, host, {"/": "svc-b"}, f"{name}-tls"),
        ]
    with Watcher(world) as watcher:
        world.write("tls.yaml", objects)
        for host in broken:
            world.wait_served(host, "/", "svc-b", scheme="https")
        cns = {host: world.get(host, "/", scheme="https").peer_cn for host in broken}
        assert cns == {
            "mismatch.test": FALLBACK_CN,
            "expired.test": "expired.test",
            "garbage.test": FALLBACK_CN,
        }
        for host in broken:
            assert world.get(host, "/x").status == 301  # the HTTPS redirect of a GET
        world.assert_unaffected()
    assert watcher.failures == [], watcher.failures[:5]
    log = world.controller.log()
    assert re.search(
        r"Ingress faults/mismatch: spec\.tls\[0\]\.secretName: Secret faults/mismatch-tls for "
        r"host mismatch\.test: tls\.key does not match the certificate in tls\.crt; the host is "
        r"served with the fallback certificate",
        log,
    )
    assert re.search(r"Secret faults/expired-tls: data\[tls\.crt\]: certificate expired at", log)
    assert re.search(r"Secret faults/garbage-tls for host garbage\.test: .*not valid base64", log)
    assert world.metric("polyingress_problems", severity="warning") >= warnings + 3

    # A good Secret broken, then fixed: only its host changes, and comes back by itself.
    world.write(
        "secure.yaml",
        [
            tls_secret("secure-tls", GARBAGE),
            ingress("secure", SECURE, {"/": "svc-b"}, "secure-tls"),
        ],
    )
    wait_until(lambda: world.get(SECURE, "/", scheme="https").peer_cn == FALLBACK_CN)
    assert world.served(SECURE, "/", "https") == "svc-b"
    assert world.get("expired.test", "/", scheme="https").peer_cn == "expired.test"
    world.write(
        "secure.yaml",
        [
            tls_secret("secure-tls", cert_data(SECURE, SECURE)),
            ingress("secure", SECURE, {"/": "svc-b"}, "secure-tls"),
        ],
    )
    wait_until(lambda: world.get(SECURE, "/", scheme="https").peer_cn == SECURE)
    world.assert_unaffected()
    log = world.controller.log()
    assert "PRIVATE KEY" not in log and "CERTIFICATE-----" not in log
    assert not any(value in log for data in broken.values() for value in data.values())


# -- scale -----------------------------------------------------------------------------------------


def test_endpoint_slice_with_10000_endpoints_is_served(world: World) -> None:
    server = AddressEcho()
    try:
        addresses = [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(10_000)]
        big = service("svc-big", server.port, addresses)
        with Watcher(world) as watcher:
            applied = world.applied()
            started = time.monotonic()
            world.write("big.yaml", [*big, ingress("big", "big.test", {"/": "svc-big"})])
            wait_until(lambda: world.applied() > applied, timeout=120, interval=0.1)
            elapsed = time.monotonic() - started
            answers = [world.get("big.test", "/") for _ in range(40)]
        assert watcher.failures == [], watcher.failures[:5]
        assert all(a.status == 200 for a in answers), [(a.status, a.body[:80]) for a in answers]
        reached = {a.body.decode() for a in answers}
        assert reached <= set(addresses) and len(reached) >= 10, reached
        assert elapsed < 60, f"10,000 endpoints took {elapsed:.1f}s to be served"
        world.assert_unaffected()

        # And back to two endpoints: the 9,998 others are retired.
        world.write(
            "big.yaml",
            [
                *service("svc-big", server.port, addresses[:2]),
                ingress("big", "big.test", {"/": "svc-big"}),
            ],
        )

        def shrunk() -> bool:
            return {world.get("big.test", "/").body.decode() for _ in range(12)} <= set(
                addresses[:2]
            )

        wait_until(shrunk, timeout=60)
        world.assert_unaffected()
        world.assert_controller_up()
        assert re.search(r"applying: .*endpoints_changed=1", world.controller.log())
    finally:
        server.stop()


def test_thousand_ingress_changes_in_a_second_are_coalesced(world: World) -> None:
    applied = world.metric("polyingress_syncs_total", result="applied")
    with Watcher(world) as watcher:
        started = time.monotonic()
        for i in range(1000):
            world.write("churn.yaml", [ingress("churn", "churn.test", {f"/v{i}": "svc-b"})])
        writing = time.monotonic() - started

        def final() -> bool:
            served = all(world.served("churn.test", "/v999") == "svc-b" for _ in range(5))
            return served and world.get("churn.test", "/v998").status == 404

        wait_until(final, timeout=60)
        world.assert_unaffected()
    assert watcher.failures == [], watcher.failures[:5]
    time.sleep(0.5)
    applies = world.metric("polyingress_syncs_total", result="applied") - applied
    assert 1 <= applies <= 50, f"{applies} applies for 1,000 changes written in {writing:.1f}s"
    world.assert_controller_up()
