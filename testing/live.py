"""Live-test helpers for any backend: free ports, a fleet of hello backends, a real
``polyingress run`` subprocess, an HTTP(S) client with SNI, /metrics samples, a checked teardown.

The client behaves like browsers and HTTP libraries: it retries an idempotent request once when
the connection was closed before any byte of the response arrived (a proxy worker that exits
during a reload closes idle keep-alive connections); no other failure is forgiven.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import json
import os
import random
import re
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from polyingress.core import BuildOptions, RunSettings, session_members
from polyingress.core.runtime.hello import HelloServer

__all__ = [
    "CONSECUTIVE",
    "WEIGHT_TRIES",
    "AddressEcho",
    "Controller",
    "EarlyClose",
    "HelloFleet",
    "Response",
    "WebSocketEcho",
    "check_split",
    "free_port",
    "get",
    "hold_consistently",
    "metric",
    "processes_in_session",
    "request",
    "run_settings",
    "running",
    "stop_running",
    "wait_until",
    "write_manifests",
]


# Ports handed out by free_port in this process: never handed out twice. Asking the kernel
# for port 0 twice in a row can return the same port (a CI run once started Caddy with
# --http-port equal to --https-port), and a port in the ephemeral range can be taken by any
# outgoing connection's source port between the check and the proxy's bind.
_HANDED_OUT: set[int] = set()
_PORTS_LOCK = threading.Lock()
_ALL_PORTS = (20000, 32767)  # below Linux's default ephemeral range (32768-60999)


def _port_range() -> tuple[int, int]:
    """This process's share of ``_ALL_PORTS``: under pytest-xdist (``PYTEST_XDIST_WORKER``
    gwN of ``PYTEST_XDIST_WORKER_COUNT``) each worker draws from a slice of its own, so two
    workers never hand out the same port; otherwise all of it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or not worker[2:].isdigit() or count < 2:
        return _ALL_PORTS
    low, high = _ALL_PORTS
    size = (high - low + 1) // count
    start = low + int(worker[2:]) % count * size
    return start, start + size - 1


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port free on ``address`` now, below the kernel's ephemeral range, and never
    returned before by this process (so two ports asked for one proxy always differ)."""
    rng = random.SystemRandom()
    span = _port_range()
    with _PORTS_LOCK:
        for _ in range(2000):
            port = rng.randint(*span)
            if port in _HANDED_OUT:
                continue
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            with socket.socket(family) as s:
                try:
                    s.bind((address, port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError(f"no free TCP port on {address} in {span}")


def run_settings(
    backend: str, tmp: Path, build: BuildOptions | None = None, **options: Any
) -> RunSettings:
    """Settings for a backend run in this process: loopback, free ports, the workdir
    ``tmp/work``; ``options`` are the values of the plugin's options (by argparse dest)."""
    return RunSettings(
        backend=backend,
        bind="127.0.0.1",
        http_port=free_port(),
        https_port=free_port(),
        workdir=tmp / "work",
        build=BuildOptions() if build is None else build,
        options=argparse.Namespace(**options),
    )


def wait_until(pred: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = pred()
            if value:
                return value
        except Exception as exc:
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last error: {last_exc!r})")


CONSECUTIVE = 3  # upstream's RequiredConsecutiveSuccesses: an expectation must hold 3 in a row
WEIGHT_TRIES = 10  # upstream's weight.MaxTestRetries


def hold_consistently(holds: Callable[[], tuple[bool, str]], timeout: float = 15.0) -> None:
    """Until ``holds()`` says True CONSECUTIVE times in a row (upstream's eventually consistent
    response), within ``timeout`` seconds; else AssertionError with its last reason."""
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < CONSECUTIVE:
        good, why = holds()
        streak = streak + 1 if good else 0
        if not good:
            if time.monotonic() > deadline:
                raise AssertionError(why)
            time.sleep(0.1)


def check_split(
    send: Callable[[], Response], shares: dict[str, float], what: str, requests: int = 500
) -> None:
    """Upstream's rule for a weighted split: over ``requests`` requests (``send``) each hello
    server's share is within 5 % of its weight's (``shares``: server name -> share) and a share
    of 0 gets none; a try that misses is tried again, up to WEIGHT_TRIES tries."""
    failures: list[str] = []
    for _ in range(WEIGHT_TRIES):
        seen: Counter[str] = Counter()
        for _ in range(requests):
            resp = send()
            assert resp.status == 200, f"{what}: HTTP {resp.status}"
            seen[str(resp.server_name)] += 1
        wrong = [
            f"{name} got {seen[name] / requests:.1%}, its weight says {share:.1%}"
            for name, share in shares.items()
            if (abs(seen[name] / requests - share) > 0.05 if share else seen[name] > 0)
        ]
        wrong += [f"{name} is no backend of the split" for name in seen if name not in shares]
        if not wrong:
            return
        failures.append("; ".join(wrong))
    raise AssertionError(f"{what}: the split missed {WEIGHT_TRIES} times: {failures}")


def write_manifests(directory: Path, name: str, objects: list[dict[str, Any]]) -> Path:
    """Write objects as one multi-document YAML file, atomically (rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    tmp = directory / f".{name}.tmp"
    tmp.write_text(yaml.safe_dump_all(objects, sort_keys=True))
    os.replace(tmp, path)
    return path


class HelloFleet:
    """Hello servers on many loopback addresses, all on one port."""

    def __init__(self, endpoints: list[tuple[str, str]], port: int | None = None) -> None:
        self.port = port or free_port("127.0.0.1")
        self.servers: dict[str, HelloServer] = {}
        for name, address in endpoints:
            self.add(name, address)

    def add(self, name: str, address: str) -> HelloServer:
        server = HelloServer(name, address, self.port).start()
        self.servers[name] = server
        return server

    def remove(self, name: str) -> None:
        self.servers.pop(name).stop()

    def stop(self) -> None:
        for s in self.servers.values():
            s.stop()
        self.servers.clear()

    def stop_at_once(self, wait: bool = True) -> None:
        """Stop every hello server at once (each one's shutdown waits up to half a second);
        ``wait=False`` does not wait for them to be stopped."""
        threads = [threading.Thread(target=s.stop, daemon=not wait) for s in self.servers.values()]
        for thread in threads:
            thread.start()
        if wait:
            for thread in threads:
                thread.join(timeout=10)
        self.servers.clear()


class AddressEcho:
    """One HTTP server on every local address of one port, answering with the address the
    client connected to (body and ``X-Echo-Address``): it stands in for endpoints anywhere in
    127.0.0.0/8, so each backend of a world can get a loopback address of its own."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = self.connection.getsockname()[0].encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Echo-Address", body.decode())  # HEAD answers have no body
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                return

        self.port = free_port()
        self.server = ThreadingHTTPServer(("0.0.0.0", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    peer_cn: str | None = None
    retried: bool = False
    peer_sha256: str | None = None
    # Every header line as received, in order (``headers`` keeps one value per name).
    header_lines: tuple[tuple[str, str], ...] = ()

    def json(self) -> Any:
        return json.loads(self.body)

    def header_values(self, name: str) -> list[str]:
        """Every value of a response header (case-insensitive), in the order received."""
        return [v for k, v in self.header_lines if k.lower() == name.lower()]

    @property
    def server_name(self) -> str | None:
        try:
            return str(self.json()["server_name"])
        except (ValueError, KeyError, TypeError):
            return None


class EarlyClose(Exception):
    """The connection closed before any response byte: safe to retry an idempotent request."""


def _cn(der: bytes | None) -> str | None:
    if not der:
        return None
    cert = x509.load_der_x509_certificate(der)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else None


def request(
    port: int,
    host: str,
    path: str,
    *,
    scheme: str = "http",
    method: str = "GET",
    address: str = "127.0.0.1",
    sni: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 5.0,
    conn: http.client.HTTPConnection | None = None,
    source: str | None = None,
    chunked: bool = False,
) -> Response:
    """One request on a fresh connection (or ``conn``); JSON answers from hello servers.
    ``source``: the local address the connection comes from (any of 127.0.0.0/8 reaches a
    proxy on 127.0.0.1: a test sends requests from several client addresses); ``chunked``:
    the body is sent with chunked transfer encoding, without a Content-Length."""
    own = conn is None
    bound = (source, 0) if source is not None else None
    if conn is None:
        if scheme == "https":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            conn = _SNIConnection(
                address, port, timeout=timeout, context=ctx, sni=sni or host, source_address=bound
            )
        else:
            conn = http.client.HTTPConnection(address, port, timeout=timeout, source_address=bound)
    hdrs = {"Host": host, "Accept": "application/json", **(headers or {})}
    try:
        peer = digest = None
        try:
            try:
                if chunked and body is not None:
                    conn.request(method, path, body=iter([body]), headers=hdrs, encode_chunked=True)
                else:
                    conn.request(method, path, body=body, headers=hdrs)
            except (ConnectionResetError, BrokenPipeError):
                # A proxy may answer a request body it refuses (413) before reading it, and
                # close: what it answered is read as a browser reads it, else EarlyClose.
                if body is None:
                    raise
            # The certificate before the response: getresponse() drops the socket of a
            # response with "Connection: close" (a proxy's worker that is shutting down).
            if isinstance(conn, http.client.HTTPSConnection) and conn.sock is not None:
                der = conn.sock.getpeercert(binary_form=True)
                peer = _cn(der)
                digest = hashlib.sha256(der).hexdigest() if der else None
            resp = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            raise EarlyClose(str(exc)) from exc
        data = resp.read()
        lines = tuple(resp.getheaders())
        headers = {k.lower(): v for k, v in lines}
        return Response(resp.status, headers, data, peer, peer_sha256=digest, header_lines=lines)
    finally:
        if own:
            conn.close()


class _SNIConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, sni: str, **kw: Any) -> None:
        super().__init__(host, port, **kw)
        self._sni = sni

    def connect(self) -> None:
        source = self.source_address  # type: ignore[attr-defined]
        sock = socket.create_connection((self.host, self.port), self.timeout, source)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._sni)  # type: ignore[attr-defined]


def get(port: int, host: str, path: str, **kw: Any) -> Response:
    """GET with the browser rule: one retry only when closed before any response byte."""
    try:
        return request(port, host, path, **kw)
    except EarlyClose:
        resp = request(port, host, path, **kw)
        resp.retried = True
        return resp


@dataclass
class Controller:
    """A real `polyingress run` subprocess (Kubernetes mode without ``manifests``: give
    ``--kubeconfig`` in ``extra``)."""

    backend: str
    manifests: Path | None
    workdir: Path
    extra: list[str] = field(default_factory=list)
    debounce_ms: int = 20
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self, timeout: float = 60.0) -> Controller:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir.parent / f"{self.workdir.name}.log"
        cmd = [
            sys.executable,
            "-m",
            "polyingress.core.runtime.cli",
            "run",
            "--backend",
            self.backend,
            *(["--manifests", str(self.manifests)] if self.manifests is not None else []),
            "--bind",
            "127.0.0.1",
            "--http-port",
            str(self.http_port),
            "--https-port",
            str(self.https_port),
            "--workdir",
            str(self.workdir),
            "--health-port",
            str(self.health_port),
            "--debounce-ms",
            str(self.debounce_ms),
            *self.extra,
        ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        try:
            wait_until(lambda: self.health("/readyz")[0] == 200, timeout=timeout, interval=0.05)
        except AssertionError:
            self.stop()
            raise AssertionError(f"controller did not become ready:\n{self.log()}") from None
        return self

    def health(self, path: str) -> tuple[int, str]:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"controller exited with {self.proc.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}{path}", timeout=2
            ) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def metrics(self) -> str:
        return self.health("/metrics")[1]

    def applied(self) -> float:
        """How many models the controller has applied (start included), from /metrics."""
        for line in self.metrics().splitlines():
            if line.startswith('polyingress_syncs_total{result="applied"}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def wait_applied(self, before: float, timeout: float = 20.0) -> None:
        """Wait until a model newer than ``before`` applies were counted has been applied: the
        backend reports an apply only once the proxy serves it."""
        wait_until(lambda: self.applied() > before, timeout=timeout)

    def log(self, tail: int | None = 20000) -> str:
        """The controller's log: its last ``tail`` characters (short enough for an assertion
        message), or all of it (``tail=None``) for a test that counts lines."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")
        return text if tail is None else text[-tail:]

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        # Nothing of ours may survive: kill the whole session if anything is left (proxies run
        # in process groups of their own, inside the controller's session).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in processes_in_session(self.proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return self.proc.returncode

    def get(self, host: str, path: str, scheme: str = "http", **kw: Any) -> Response:
        port = self.https_port if scheme == "https" else self.http_port
        return get(port, host, path, scheme=scheme, **kw)


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``, in /metrics ``text``."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{.*\})?\s+(\S+)$", line)
        if m is None or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def stop_running(controller: Controller, fleet: HelloFleet, sessions: set[int]) -> None:
    """Tear down a controller that must still be running and its hello fleet: assert that the
    controller has not exited, stop it and the fleet (not waiting for the hello servers), then
    assert that nothing is left in ``sessions`` (those of its process tree, taken before)."""
    proc = controller.proc
    assert proc is not None
    try:
        assert proc.poll() is None, f"the controller exited:\n{controller.log()}"
    finally:
        controller.stop()
        fleet.stop_at_once(wait=False)
    for sid in sessions:
        assert processes_in_session(sid) == [], "processes left behind"


def processes_in_session(sid: int) -> list[int]:
    """PIDs whose session id is ``sid`` (to prove nothing was left behind)."""
    return session_members(sid)


@contextlib.contextmanager
def running(controller: Controller) -> Iterator[Controller]:
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


class WebSocketEcho:
    """A WebSocket server (RFC 6455) on ``address:port``: the handshake, then every text frame
    echoed back as ``<path> <X-Filtered header or -> <message>``, with the request path and
    the X-Filtered header the upgrade request reached it with (what the proxy sent on)."""

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, address: str, port: int) -> None:
        echo = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = self.connection.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if ":" in line)
                }
                if headers.get("upgrade", "").lower() != "websocket":
                    self.connection.sendall(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
                    )
                    return
                accept = base64.b64encode(
                    hashlib.sha1((headers["sec-websocket-key"] + echo.GUID).encode()).digest()
                ).decode()
                self.connection.sendall(
                    (
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                    ).encode()
                )
                while True:
                    message = echo.read_frame(self.rfile)
                    if message is None:
                        return
                    reply = f"{path} {headers.get('x-filtered', '-')} {message}".encode()
                    self.connection.sendall(bytes([0x81, len(reply)]) + reply)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server((address, port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def read_frame(rfile: Any) -> str | None:
        """One masked client frame (short text frames only); None on close or EOF."""
        head = rfile.read(2)
        if len(head) < 2 or head[0] & 0x0F == 0x8:
            return None
        length = head[1] & 0x7F
        assert length < 126, "short frames only"
        mask = rfile.read(4)
        data = rfile.read(length)
        return bytes(b ^ mask[i % 4] for i, b in enumerate(data)).decode()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
