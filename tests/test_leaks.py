"""Resources over time, for every backend (nginx, HAProxy, Traefik): no file descriptor or
process leaks over change cycles, generated files removed with the objects they came from,
private keys and control sockets never accessible to other users, and nothing listening but
the loopback health port and the proxy's own listeners.

Each test runs a real ``polyingress run`` (``livekit.Controller``) with its real proxy: Traefik
is managed (the binary the venv installs, started and supervised by the backend), and every
change is checked through HTTPS once applied.
"""

from __future__ import annotations

import os
import re
import stat
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_objects import CLASS
from livekit import (
    Controller,
    HelloFleet,
    backend_param,
    metric,
    processes_in_session,
    stop_running,
    wait_until,
    write_manifests,
)
from manifests import Objects

NS = "leaks"
HOST = "cycle.test"
GONE = "gone.test"
ADDRESSES = ["127.0.72.1", "127.0.72.2", "127.0.72.3"]
BACKENDS = [backend_param(name) for name in ("nginx", "haproxy", "traefik")]
CYCLES = 25
# Traefik applies a changed file at most every providersThrottleDuration (2 s by default): each
# of its cycles (two applies) takes about 4 s, so it runs fewer; 8 cycles still expose a leak of
# one descriptor per cycle beyond the test's slack of 4.
CYCLES_OF = {"traefik": 8}

pytestmark = pytest.mark.live


OBJECTS = Objects(NS)
service, ingress, secret = OBJECTS.service, OBJECTS.ingress, OBJECTS.self_signed_secret


def tls_host(name: str, host: str, path: str, common_name: str) -> list[dict[str, Any]]:
    """A TLS Secret and an Ingress serving ``path`` of ``host`` from the Service "svc"."""
    return [
        secret(f"{name}-tls", host, common_name),
        ingress(name, host, {path: "svc"}, tls_secret=f"{name}-tls"),
    ]


class Run:
    def __init__(self, backend: str, tmp: Path) -> None:
        self.backend = backend
        self.fleet = HelloFleet([(f"svc-{i + 1}", a) for i, a in enumerate(ADDRESSES)])
        self.manifests = tmp / "manifests"
        self.workdir = tmp / "work"
        write_manifests(
            self.manifests, "svc.yaml", [CLASS, *service("svc", self.fleet.port, ADDRESSES)]
        )
        write_manifests(self.manifests, "cycle.yaml", tls_host("cycle", HOST, "/p0", "cycle-0"))
        self.controller = Controller(backend, self.manifests, self.workdir)
        self.controller.start()

    @property
    def pid(self) -> int:
        assert self.controller.proc is not None
        return self.controller.proc.pid

    def applied(self) -> float:
        return metric(self.controller.metrics(), "polyingress_syncs_total", result="applied")

    def change(self, name: str, objects: list[dict[str, Any]], path: str | None) -> None:
        """Write a manifest; wait until it is applied (and, with a proxy, ``path`` served)."""
        applied = self.applied()
        if objects:
            write_manifests(self.manifests, name, objects)
        else:
            (self.manifests / name).unlink()
        wait_until(lambda: self.applied() > applied, timeout=30)
        if path is not None:
            wait_until(lambda: self.controller.get(HOST, path, scheme="https").status == 200)

    def cycle(self, i: int) -> None:
        """One change cycle: a new certificate, a new path, other endpoints."""
        self.change("cycle.yaml", tls_host("cycle", HOST, f"/p{i}", f"cycle-{i}"), f"/p{i}")
        eps = ADDRESSES[: 1 + i % len(ADDRESSES)]
        self.change("svc.yaml", [CLASS, *service("svc", self.fleet.port, eps)], None)

    def key_files(self) -> list[Path]:
        """Every file in the workdir holding a private key."""
        out = []
        for path in self.workdir.rglob("*"):
            if path.is_file() and not path.is_symlink() and b"PRIVATE KEY" in path.read_bytes():
                out.append(path)
        return sorted(out)

    def stop(self) -> None:
        stop_running(self.controller, self.fleet, sessions_of(tracked(self, set())))


@pytest.fixture(params=BACKENDS)
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Run]:
    r = Run(request.param, tmp_path)
    try:
        yield r
    finally:
        r.stop()


# -- descriptors and processes ---------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, str, int] | None:
    """(comm, state, ppid) of a process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return raw[raw.find("(") + 1 : raw.rfind(")")], fields[0], int(fields[1])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def tracked(run: Run, sessions: set[int]) -> set[int]:
    """The controller's descendants (HAProxy runs in a session of its own), and every live
    process of the sessions in ``sessions`` (where orphans of a dead parent would stay)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _stat(int(entry.name))
            if info is not None and info[1] not in "ZX":
                parents[int(entry.name)] = info[2]
    found = {run.pid}
    grew = True
    while grew:
        new = {pid for pid, ppid in parents.items() if ppid in found} - found
        found |= new
        grew = bool(new)
    for sid in sessions:
        found |= set(processes_in_session(sid))
    return found


def inventory(run: Run, sessions: set[int]) -> Counter[str]:
    """Processes by role, and descriptors per role ("fds:<role>"). Old nginx workers still
    shutting down after a reload count as "retiring"."""
    roles: Counter[str] = Counter()
    for pid in tracked(run, sessions):
        info = _stat(pid)
        if info is None:
            continue
        comm, _state, ppid = info
        if pid == run.pid:
            role = "controller"
        elif "shutting down" in _cmdline(pid):
            role = "retiring"
        elif ppid == run.pid:
            role = f"{comm} (child)"
        else:
            role = f"{comm} (grandchild)"
        roles[role] += 1
        roles[f"fds:{role}"] += _fds(pid)
    return roles


def sessions_of(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            out.add(os.getsid(pid))
        except OSError:
            continue
    return out


def zombies_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _stat(int(entry.name))
            if info is not None and info[1] == "Z" and info[2] == pid:
                found.append(int(entry.name))
    return found


def test_no_fd_or_process_leak_over_change_cycles(run: Run) -> None:
    for i in range(1, 4):  # warm up: every code path has run once
        run.cycle(i)
    sessions = sessions_of(tracked(run, set()))
    wait_until(lambda: inventory(run, sessions)["retiring"] == 0, timeout=20)
    before = inventory(run, sessions)
    assert before[f"{run.backend} (child)"] == 1, before  # the proxy is seen
    for i in range(4, 4 + CYCLES_OF.get(run.backend, CYCLES)):
        run.cycle(i)
    sessions |= sessions_of(tracked(run, set()))

    def settled() -> bool:
        now = inventory(run, sessions)
        return now["retiring"] == 0 and all(
            now[role] == count for role, count in before.items() if not role.startswith("fds:")
        )

    wait_until(settled, timeout=30)
    after = inventory(run, sessions)
    roles = {r for r in before if not r.startswith("fds:")}
    assert {r for r in after if not r.startswith("fds:")} == roles, (before, after)
    for role in roles:
        # A few descriptors of slack: a health request or a socket being closed right now.
        assert after[f"fds:{role}"] <= before[f"fds:{role}"] + 4, (role, before, after)
    assert zombies_of(run.pid) == [], "children exited but were never waited for"


# -- generated files -------------------------------------------------------------------------------


def test_generated_files_are_removed_with_their_objects(run: Run) -> None:
    def files_of(secret: str) -> set[str]:
        return {
            p.name
            for p in run.workdir.rglob("*")
            if p.is_file() and f"{NS}__{secret}" in p.name and "crt-list" not in p.name
        }

    run.change("gone.yaml", tls_host("gone", GONE, "/", "gone-1"), None)
    first = files_of("gone-tls")
    assert first, sorted(str(p) for p in run.workdir.rglob("*"))

    run.change("gone.yaml", tls_host("gone", GONE, "/", "gone-2"), None)
    second = files_of("gone-tls")
    if run.backend != "haproxy":  # HAProxy names the file by Secret, not by content
        assert second and not second & first, (first, second)
    assert len(second) == len(first)

    run.change("gone.yaml", [], None)
    assert files_of("gone-tls") == set()
    assert files_of("cycle-tls"), "the other host's files went too"
    leftovers = [
        p for p in run.workdir.rglob("*") if re.search(r"\.(tmp|partial|next|new)$", p.name)
    ]
    assert leftovers == []


# -- private keys and control channels -------------------------------------------------------------


def test_key_files_and_sockets_are_never_accessible_to_other_users(run: Run) -> None:
    run.change("gone.yaml", tls_host("gone", GONE, "/", "gone-1"), None)
    keys = run.key_files()
    # The fallback key and the two hosts' keys at least, every one private to the controller.
    assert len(keys) >= 3, keys
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, (path, oct(path.stat().st_mode))
        assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0, path.parent
        assert path.suffix in (".key", ".pem"), f"a private key in {path}"
    sockets = [p for p in run.workdir.rglob("*") if p.is_socket()]
    if run.backend == "haproxy":
        assert {p.name for p in sockets} >= {"admin.sock", "master.sock"}
    for path in sockets:
        private = stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
        private_dir = stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
        assert private or private_dir, (path, oct(path.stat().st_mode))
    log = run.controller.log()
    assert "PRIVATE KEY" not in log


def test_key_files_are_private_before_their_first_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every backend writes keys with core.files.write_atomic(mode=0o600): the mode is set on
    the new file before anything is written into it, and the file appears by rename."""
    from polyingress.core import write_atomic

    modes: list[int] = []
    real_fdopen = os.fdopen

    def fdopen(fd: int, *args: Any, **kw: Any) -> Any:
        modes.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_fdopen(fd, *args, **kw)

    monkeypatch.setattr(os, "fdopen", fdopen)
    key = tmp_path / "certs" / "a.key"
    assert write_atomic(key, "-----BEGIN PRIVATE KEY-----\n", mode=0o600)
    assert write_atomic(key, "-----BEGIN PRIVATE KEY-----\nrotated\n", mode=0o600)
    assert modes == [0o600, 0o600]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert [p.name for p in key.parent.iterdir()] == ["a.key"]


def _listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of the TCP sockets ``pid`` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    found = set()
    for table, size in (("tcp", 4), ("tcp6", 16)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address, port = local.split(":")
            raw = bytes.fromhex(address)
            if size == 4:
                text = ".".join(str(b) for b in raw[::-1])
            else:
                words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
                text = ":".join(b"".join(words).hex()[i : i + 4] for i in range(0, 32, 4))
            found.add((text, int(port, 16)))
    return found


def test_controller_listens_only_on_its_loopback_health_port(run: Run) -> None:
    controller = run.controller
    assert _listening(run.pid) == {("127.0.0.1", controller.health_port)}
    proxies = tracked(run, set()) - {run.pid}
    assert proxies
    public = {("127.0.0.1", controller.http_port), ("127.0.0.1", controller.https_port)}
    for pid in proxies:
        for address, port in _listening(pid):
            # The proxy listens where it was told to; anything else is loopback only (nginx's
            # status server).
            assert (address, port) in public or address == "127.0.0.1", (pid, address, port)
    for path in ("/healthz", "/readyz", "/metrics"):
        status, body = controller.health(path)
        assert status == 200
        assert "PRIVATE KEY" not in body and "CERTIFICATE" not in body


# -- memory of the rendering path ---------------------------------------------------------------


def _render_function(backend: str) -> Any:
    from polyingress.core import fallback_certificate

    if backend == "nginx":
        from polyingress.plugins.nginx import render as nginx

        options = nginx.RenderOptions(bind="127.0.0.1")
        return lambda model: nginx.render(model, options, fallback_certificate())
    if backend == "haproxy":
        from polyingress.plugins.haproxy import render as haproxy

        settings = haproxy.RenderSettings(bind="127.0.0.1")

        def render_haproxy(model: Any) -> Any:
            slots = haproxy.SlotTable.plan((b.name for b in model.backends), 4)
            return haproxy.render(model, settings, slots)

        return render_haproxy
    from polyingress.plugins.traefik import render as traefik

    settings_t = traefik.RenderSettings(cert_dir="/certs")
    return lambda model: traefik.render(model, settings_t, fallback_certificate())


@pytest.mark.parametrize(
    "backend",
    [
        "nginx",
        "haproxy",
        "traefik",
    ],
)
def test_rendering_a_stream_of_changed_models_retains_no_memory(backend: str) -> None:
    """The controller renders a new model at every change: what a render caches must be
    bounded by the size of the model, not by the number of changes."""
    import gc
    import tracemalloc

    from polyingress.core import BuildOptions, ObjectStore, build_model

    render = _render_function(backend)
    store = ObjectStore()
    world: list[dict[str, Any]] = [CLASS]
    for n in range(5):
        world += [
            {**o, "metadata": {**o["metadata"], "name": f"svc{n}" + o["metadata"]["name"][3:]}}
            for o in service("svc", 8080, ["10.0.0.1"])
        ]
        world[-1]["metadata"]["labels"] = {"kubernetes.io/service-name": f"svc{n}"}
    world += tls_host("cycle", HOST, "/", "cycle")
    world[-1]["spec"]["rules"][0]["http"]["paths"] += [
        {
            "path": f"/s{n}",
            "pathType": "Prefix",
            "backend": {"service": {"name": f"svc{n}", "port": {"number": 80}}},
        }
        for n in range(5)
    ]
    store.replace_many(upserts=world, deletes=())
    slices = [o for o in world if o["kind"] == "EndpointSlice"]

    def change(i: int) -> None:
        base = slices[i % len(slices)]
        eps = [f"10.0.{i % 7}.{k}" for k in range(1, 1 + i % 3 + 1)]
        store.replace_many(
            upserts=[
                {
                    **base,
                    "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in eps],
                }
            ],
            deletes=(),
        )
        render(build_model(store.snapshot(), BuildOptions()).model)

    for i in range(300):  # warm up: every cache that is bounded by the model is full
        change(i)
    # Two windows of 1,000 changes: what a render retains grows in both; a one-time event
    # (a dict of the interpreter's own, allocated before tracing began, resized in a window:
    # the new table counts, the old one's release does not) shows in one window only.
    tracemalloc.start()
    grown = []
    try:
        for start in (300, 1300):
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            for i in range(start, start + 1000):
                change(i)
            gc.collect()
            grown.append(tracemalloc.get_traced_memory()[0] - before)
    finally:
        tracemalloc.stop()
    least = min(grown)
    assert least < 256 * 1024, f"{least / 1024:.0f} KiB retained over 1,000 changes ({grown})"
