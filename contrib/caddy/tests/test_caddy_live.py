"""What is particular to Caddy, live through the real Caddy (the shared semantics are the
conformance suite's, test_caddy_conformance.py): literal path matchers, certificates by the host
an SNI name selects, the admin API on its UNIX socket only, changes without a restart, a refused
document rolled back, WebSockets through changes (stream_close_delay, measured), a killed Caddy
restarted, a port in use, nothing written outside the workdir."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import socketserver
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from caddykit import CLASS, ingress, require_caddy, service, tls_secret
from polyingress_caddy.plugin import CaddyBackend

from polyingress.core import (
    ApplyError,
    BuildOptions,
    ObjectStore,
    RouteModel,
    RunSettings,
    build_model,
)
from polyingress.testing.cases import model_answer
from polyingress.testing.live import (
    Controller,
    HelloFleet,
    free_port,
    request,
    wait_until,
    write_manifests,
)

pytestmark = pytest.mark.live


def build(objects: list[dict[str, Any]]) -> RouteModel:
    store = ObjectStore()
    store.replace_many(upserts=objects, deletes=())
    return build_model(store.snapshot(), BuildOptions()).model


def caddy_pid(ctl: Controller) -> int:
    return int((ctl.workdir / "caddy.pid").read_text())


def listening(pid: int) -> set[tuple[str, int]]:
    """(protocol, port) of every listening TCP socket and bound UDP socket of process ``pid``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]:
            fields = line.split()
            listens = fields[3] == "0A" if proto.startswith("tcp") else True
            if fields[9] in inodes and listens:
                found.add((proto.rstrip("6"), int(fields[1].rsplit(":", 1)[1], 16)))
    return found


# ---- one world for the routing and TLS checks


@pytest.fixture(scope="module")
def glob_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Controller, Any]]:
    require_caddy()
    tmp = tmp_path_factory.mktemp("caddy-live")
    fleet = HelloFleet([("svc-a-1", "127.0.4.1"), ("svc-star-1", "127.0.4.3")])
    objects = [
        CLASS,
        *service("svc-a", ["127.0.4.1"], fleet.port),
        *service("svc-star", ["127.0.4.3"], fleet.port),
        ingress(
            "glob",
            "glob.example.com",
            [
                ("/", "Prefix", "svc-a"),
                ("/a*b", "Exact", "svc-star"),
                ("/files*", "Prefix", "svc-star"),
            ],
        ),
        # A Secret whose certificate does not name its host: the host gets it all the same.
        ingress(
            "bound",
            "bound.example.com",
            [("/", "Prefix", "svc-a")],
            tls=[(["bound.example.com"], "bound-tls")],
        ),
        tls_secret("bound-tls", "other.name", ("other.name",)),
        # A wildcard certificate that covers plain.example.com, bound to w.example.com only.
        ingress(
            "wtls", "w.example.com", [("/", "Prefix", "svc-a")], tls=[(["w.example.com"], "w-tls")]
        ),
        tls_secret("w-tls", "*.example.com", ("*.example.com",)),
        ingress("plain", "plain.example.com", [("/", "Prefix", "svc-a")]),
    ]
    write_manifests(tmp / "m", "world.yaml", objects)
    ctl = Controller("caddy", tmp / "m", tmp / "work").start()
    yield ctl, build(objects)
    ctl.stop()
    fleet.stop()


@pytest.mark.parametrize(
    ("target", "service"),
    [
        ("/a*b", "svc-star"),
        ("/aXb", "svc-a"),  # a glob's '*' would have matched
        ("/a%2Ab", "svc-a"),  # '*' encoded stays encoded (the request-path rule): not the rule
        ("/A*B", "svc-a"),  # Caddy's path matcher compares without case; ours does not
        ("/files*", "svc-star"),
        ("/files*/x", "svc-star"),
        ("/filesX/x", "svc-a"),
        ("/files*x", "svc-a"),  # element-wise
        ("/FILES*/x", "svc-a"),
    ],
)
def test_a_star_in_a_rule_path_is_literal(
    glob_world: tuple[Controller, RouteModel], target: str, service: str
) -> None:
    ctl, model = glob_world
    assert model_answer(model, "http", "glob.example.com", target) == f"caddy__{service}__80"
    resp = ctl.get("glob.example.com", target)
    assert resp.status == 200 and resp.server_name == f"{service}-1", (target, resp.status)


@pytest.mark.parametrize(
    ("sni", "subject"),
    [
        ("bound.example.com", "other.name"),  # the binding, although it does not cover the name
        ("w.example.com", "*.example.com"),
        ("plain.example.com", "polyingress-fallback.invalid"),  # covered by w-tls, not bound
        ("nobody.example.com", "polyingress-fallback.invalid"),
    ],
)
def test_each_sni_name_gets_the_certificate_of_the_host_it_selects(
    glob_world: tuple[Controller, RouteModel], sni: str, subject: str
) -> None:
    ctl, _model = glob_world
    resp = ctl.get(sni, "/", scheme="https")
    assert resp.peer_cn == subject


def test_caddy_listens_on_the_two_ports_only_and_its_admin_api_on_a_private_socket(
    glob_world: tuple[Controller, RouteModel],
) -> None:
    ctl, _model = glob_world
    assert listening(caddy_pid(ctl)) == {("tcp", ctl.http_port), ("tcp", ctl.https_port)}
    sock = ctl.workdir / "caddy-admin.sock"
    mode = sock.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) & 0o077 == 0
    assert sock.stat().st_uid == os.getuid()


# ---- changes


def test_endpoint_and_path_changes_are_served_by_the_same_caddy(tmp_path: Path) -> None:
    require_caddy()
    fleet = HelloFleet([("one", "127.0.4.11"), ("two", "127.0.4.12")])

    def objects(address: str, path: str) -> list[dict[str, Any]]:
        return [
            CLASS,
            *service("svc", [address], fleet.port),
            ingress("i", "c.example.com", [(path, "Prefix", "svc")]),
        ]

    write_manifests(tmp_path / "m", "w.yaml", objects("127.0.4.11", "/a"))
    ctl = Controller("caddy", tmp_path / "m", tmp_path / "work").start()
    try:
        pid = caddy_pid(ctl)
        assert ctl.get("c.example.com", "/a").server_name == "one"
        write_manifests(tmp_path / "m", "w.yaml", objects("127.0.4.12", "/a"))
        wait_until(lambda: ctl.get("c.example.com", "/a").server_name == "two")
        write_manifests(tmp_path / "m", "w.yaml", objects("127.0.4.12", "/b"))
        wait_until(lambda: ctl.get("c.example.com", "/b").server_name == "two")
        assert ctl.get("c.example.com", "/a").status == 404
        assert caddy_pid(ctl) == pid and ctl.proc is not None and ctl.proc.poll() is None
        assert os.path.exists(f"/proc/{pid}")
    finally:
        ctl.stop()
        fleet.stop()


def test_a_refused_document_is_an_apply_error_and_caddy_keeps_the_previous_one(
    tmp_path: Path,
) -> None:
    """Caddy checks a whole document before it replaces the running one: a document it refuses
    (here an unknown handler, which the renderer never writes) leaves the old one serving."""
    require_caddy()
    fleet = HelloFleet([("one", "127.0.4.21")])
    objects = [
        CLASS,
        *service("svc", ["127.0.4.21"], fleet.port),
        ingress("i", "r.example.com", [("/", "Prefix", "svc")]),
    ]
    settings = RunSettings(
        backend="caddy",
        bind="127.0.0.1",
        http_port=free_port(),
        https_port=free_port(),
        workdir=tmp_path / "work",
        options=argparse.Namespace(),
    )
    backend = CaddyBackend(settings)
    try:
        backend.start(build(objects))
        assert backend.process is not None
        good = backend.running
        assert good is not None
        broken = good.text.replace('"handler":"reverse_proxy"', '"handler":"no_such_handler"')
        assert broken != good.text
        with pytest.raises(ApplyError, match="no_such_handler"):
            backend.process.admin.load(broken, timeout=10)
        assert request(settings.http_port, "r.example.com", "/").server_name == "one"
        assert "no_such_handler" not in json.dumps(backend.process.admin.config())
    finally:
        backend.stop()
        fleet.stop()
    assert backend.process is not None and backend.process.managed.proc is None


def test_a_killed_caddy_is_restarted_and_serves_the_current_state(tmp_path: Path) -> None:
    require_caddy()
    fleet = HelloFleet([("one", "127.0.4.31")])
    write_manifests(
        tmp_path / "m",
        "w.yaml",
        [
            CLASS,
            *service("svc", ["127.0.4.31"], fleet.port),
            ingress("i", "k.example.com", [("/", "Prefix", "svc")]),
        ],
    )
    ctl = Controller("caddy", tmp_path / "m", tmp_path / "work").start()
    try:
        pid = caddy_pid(ctl)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: caddy_pid(ctl) != pid, timeout=20)
        wait_until(lambda: ctl.get("k.example.com", "/").server_name == "one", timeout=20)
        assert "caddy exited with code -9; restarted" in ctl.log()
    finally:
        ctl.stop()
        fleet.stop()


def test_a_port_in_use_ends_the_run_with_caddys_reason(tmp_path: Path) -> None:
    require_caddy()
    write_manifests(tmp_path / "m", "w.yaml", [CLASS])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [
                sys.executable, "-m", "polyingress.core.runtime.cli", "run", "--backend", "caddy",
                "--manifests", str(tmp_path / "m"), "--bind", "127.0.0.1",
                "--http-port", str(port), "--https-port", str(free_port()),
                "--health-port", str(free_port()), "--workdir", str(tmp_path / "work"),
            ],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert out.returncode != 0
    assert "address already in use" in out.stderr
    assert not (tmp_path / "work" / "caddy.pid").exists()  # Caddy was stopped


def test_caddy_writes_nothing_outside_the_workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_caddy()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    write_manifests(tmp_path / "m", "w.yaml", [CLASS])
    ctl = Controller("caddy", tmp_path / "m", tmp_path / "work").start()
    pid = caddy_pid(ctl)
    ctl.stop()
    assert list(home.iterdir()) == []
    assert not os.path.exists(f"/proc/{pid}")
    config = ctl.workdir / "private" / "caddy.json"
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


# ---- WebSockets (upgraded connections) through changes


class _UpgradeEcho(socketserver.ThreadingTCPServer):
    """Answers any request with 101 Switching Protocols, then echoes each line: an upgraded
    connection as Caddy sees a WebSocket."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: str) -> None:
        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while self.rfile.readline() not in (b"\r\n", b""):
                    pass
                self.wfile.write(
                    b"HTTP/1.1 101 Switching Protocols\r\n"
                    b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                )
                while line := self.rfile.readline():
                    self.wfile.write(line)

        super().__init__((address, 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Tunnel:
    def __init__(self, port: int, host: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(
            f"GET /chat HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n\r\n".encode()
        )
        self.reader = self.sock.makefile("rb")
        status = self.reader.readline()
        assert status.startswith(b"HTTP/1.1 101"), status
        while self.reader.readline() not in (b"\r\n", b""):
            pass

    def echoes(self, text: str) -> bool:
        try:
            self.sock.sendall(text.encode() + b"\n")
            return self.reader.readline() == text.encode() + b"\n"
        except OSError:
            return False

    def closed_at(self, timeout: float) -> float | None:
        """When the proxy closed the tunnel (it sends a WebSocket close frame first), within
        ``timeout`` seconds; None if it stayed open."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(1024):
                pass
        except TimeoutError:
            return None
        except OSError:
            pass
        return time.monotonic()

    def close(self) -> None:
        self.sock.close()


def _ws_run(tmp_path: Path, delay: float | None) -> tuple[Controller, _UpgradeEcho, Any]:
    require_caddy()
    echo = _UpgradeEcho("127.0.4.41")

    def objects(i: int) -> list[dict[str, Any]]:
        return [
            CLASS,
            *service("ws", ["127.0.4.41"], echo.port),
            ingress("ws", "ws.example.com", [("/", "Prefix", "ws")]),
            ingress("other", "other.example.com", [(f"/p{i}", "Prefix", "ws")]),
        ]

    write_manifests(tmp_path / "m", "w.yaml", objects(0))
    extra = [] if delay is None else ["--caddy-stream-close-delay", str(delay)]
    ctl = Controller("caddy", tmp_path / "m", tmp_path / "work", extra=extra).start()

    def change(i: int) -> None:
        before = ctl.applied()
        write_manifests(tmp_path / "m", "w.yaml", objects(i))
        ctl.wait_applied(before)

    return ctl, echo, change


CHANGES = 10


def test_a_websocket_lives_through_routine_changes(tmp_path: Path) -> None:
    """The default --caddy-stream-close-delay (an hour): every change replaces Caddy's
    configuration, and the upgraded connection opened before them still echoes after them."""
    ctl, echo, change = _ws_run(tmp_path, None)
    try:
        tunnel = _Tunnel(ctl.http_port, "ws.example.com")
        assert tunnel.echoes("before")
        for i in range(1, CHANGES + 1):
            change(i)
            assert tunnel.echoes(f"after change {i}")
        assert tunnel.closed_at(1.0) is None
        tunnel.close()
    finally:
        ctl.stop()
        echo.stop()


@pytest.mark.parametrize("delay", [0.0, 2.0])
def test_a_websocket_is_closed_stream_close_delay_after_the_first_change(
    tmp_path: Path, delay: float
) -> None:
    """Measured: the upgraded connection is closed (a WebSocket close frame, then the
    connection) ``delay`` seconds after the change that replaced the configuration."""
    ctl, echo, change = _ws_run(tmp_path, delay)
    try:
        tunnel = _Tunnel(ctl.http_port, "ws.example.com")
        assert tunnel.echoes("before")
        change(1)
        applied = time.monotonic()
        closed = tunnel.closed_at(delay + 5.0)
        assert closed is not None, "still open"
        assert delay - 0.1 <= closed - applied <= delay + 1.5, closed - applied
        tunnel.close()
    finally:
        ctl.stop()
        echo.stop()


def test_polyingress_plugins_lists_caddy_with_its_versions() -> None:
    binary = require_caddy()
    out = subprocess.run(
        [sys.executable, "-m", "polyingress.core.runtime.cli", "plugins"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("caddy\t"))
    line, features = lines[at], lines[at + 1]
    _name, version, distribution, description = line.split("\t")
    assert (version, distribution) == (metadata.version("polyingress-caddy"), "polyingress-caddy")
    caddy = subprocess.run([binary, "version"], capture_output=True, text=True).stdout.split()[0]
    assert description.startswith(f"Caddy {caddy} ") and caddy.startswith("v2.11.")
    listed = re.search(r"binary: (\S+)", features)
    assert listed is not None and os.path.realpath(listed.group(1)) == os.path.realpath(binary)
