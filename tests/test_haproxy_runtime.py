"""Tests of polyingress.plugins.haproxy.runtime; live ones run a real HAProxy 2.6 in tmp_path."""

from __future__ import annotations

import contextlib
import datetime
import http.client
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from livekit import needs

from polyingress.plugins.haproxy.runtime import (
    AlreadyExists,
    Command,
    CommandRejected,
    Conflict,
    ConnectionFailed,
    MasterClient,
    NotFound,
    PermissionDenied,
    ProcRole,
    ReloadFailed,
    Reply,
    RetryPolicy,
    RuntimeClient,
    ServerAdmin,
    ServerOpState,
    UnsafeArgument,
    UsageError,
    chunk_payload_lines,
    classify_reply,
    map_payload_line,
    parse_map_entries,
    parse_servers_state,
    parse_show_proc,
)
from polyingress.testing.live import free_port

HAPROXY = shutil.which("haproxy")
needs_haproxy = needs("haproxy")


# --------------------------------------------------------------------------- fixtures


class _EchoHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        host, port = self.server.server_address[:2]
        body = f"srv={host!s}:{port}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def body(self) -> str:
        return f"srv={self.addr}"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[Upstream, Upstream]]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []
    for host in ("127.0.0.2", "127.0.0.3"):
        server = ThreadingHTTPServer((host, 0), _EchoHandler)
        server.daemon_threads = True
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        servers.append((server, thread))
    yield (
        Upstream("127.0.0.2", servers[0][0].server_address[1]),
        Upstream("127.0.0.3", servers[1][0].server_address[1]),
    )
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


CONFIG = """\
global
    stats socket {admin} mode 600 level admin expose-fd listeners

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend fe
    bind 127.0.0.1:{port}
    http-request set-var(txn.be) path,map_str({routes})
    use_backend %[var(txn.be)] if {{ var(txn.be) -m found }}
    default_backend be_default

backend be_default
    http-request return status 404

backend be_a
    balance roundrobin

backend be_b
    balance roundrobin
    server s1 {up_b}

backend be_c
    balance roundrobin
    server s1 {up_c}
"""

INITIAL_ROUTES = [("/b", "be_b"), ("/c", "be_c")]


@dataclass
class HAProxy:
    """One HAProxy master-worker in a temp dir, run in the foreground (-W without -D)."""

    root: Path
    upstreams: tuple[Upstream, Upstream]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    @property
    def admin(self) -> str:
        return str(self.root / "admin.sock")

    @property
    def master(self) -> str:
        return str(self.root / "master.sock")

    @property
    def routes(self) -> str:
        return str(self.root / "routes.map")

    @property
    def cfg(self) -> Path:
        return self.root / "haproxy.cfg"

    def write_files(self) -> None:
        up_b, up_c = self.upstreams
        self.cfg.write_text(
            CONFIG.format(
                admin=self.admin, port=self.port, routes=self.routes, up_b=up_b.addr, up_c=up_c.addr
            )
        )
        Path(self.routes).write_text("".join(f"{k} {v}\n" for k, v in INITIAL_ROUTES))

    def start(self) -> None:
        assert HAPROXY is not None
        self.log = (self.root / "haproxy.log").open("wb")
        self.proc = subprocess.Popen(
            [HAPROXY, "-W", "-S", self.master, "-f", str(self.cfg)],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: teardown kills master and workers
        )

    def wait_ready(self) -> None:
        try:
            RuntimeClient(self.admin, retry=RetryPolicy(total=10)).show_info()
        except ConnectionFailed:
            pytest.fail(f"haproxy did not start:\n{self.log_text()}")

    def log_text(self) -> str:
        return (self.root / "haproxy.log").read_text(errors="replace")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            pgid = proc.pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
                proc.wait(timeout=5)
            with contextlib.suppress(ProcessLookupError):  # old workers outliving the master
                os.killpg(pgid, signal.SIGKILL)
        if self.log is not None:
            self.log.close()
            self.log = None

    def get(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()


@pytest.fixture
def haproxy(tmp_path: Path, upstreams: tuple[Upstream, Upstream]) -> Iterator[HAProxy]:
    instance = HAProxy(tmp_path, upstreams)
    instance.write_files()
    instance.start()
    try:
        instance.wait_ready()
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def client(haproxy: HAProxy) -> RuntimeClient:
    return RuntimeClient(haproxy.admin)


def _cli_connections(client: RuntimeClient) -> int:
    """HAProxy's CumConns counts CLI connections too; each call of this adds exactly one."""
    return int(client.show_info()["CumConns"])


# --------------------------------------------------------------------------- unit tests


def test_command_encodes_words_and_payload() -> None:
    assert Command.of("add", "map", "m", "k", "v").encode() == b"add map m k v\n"
    payload = Command.of("add", "map", "m", payload="a b\nc;d\\e\n")
    assert payload.payload == "a b\nc;d\\e"
    assert payload.encode() == b"add map m <<\na b\nc;d\\e\n\n"
    assert str(payload) == "add map m <<"
    assert Command.parse("show  servers state").words == ("show", "servers", "state")


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: Command.of("add", "map", "m", "k", "v\nclear map m"), "newline"),
        (lambda: Command.parse("add map m k v\nclear map m"), "newline"),
        (lambda: Command.of("add", "map", "m", "k", "v\rx"), "carriage return"),
        (lambda: Command.of("add", "map", "m", "k", "v\x00"), "NUL"),
        (lambda: Command.of("add", "map", "m", "k", "a\tb"), "tab"),
        (lambda: Command.of("add", "map", "m", "k", "\x1b[31m"), "control character"),
        (lambda: Command.of("add", "map", "m", "k;clear", "v"), "';'"),
        (lambda: Command.parse("add map m k v;clear map m"), "';'"),
        (lambda: Command.of("add", "map", "m", "k x", "v"), "whitespace"),
        (lambda: Command.of("add", "map", "m", "k\u00a0x", "v"), "whitespace"),
        (lambda: Command.of("add", "map", "m", "k", "a\\;b"), "backslash"),
        (lambda: Command.of("add", "map", "m", "k", "v<<"), "payload marker"),
        (lambda: Command.of("add", "map", "m", "", "v"), "empty"),
        (lambda: Command.of("add", "map", "m", "k", "v" * 16_000), "bytes encoded"),
        (lambda: Command.of("add", "map", "m", payload="k v\n\nclear map m"), "empty or blank"),
        (lambda: Command.of("add", "map", "m", payload="k v\n   \nx y"), "empty or blank"),
        (lambda: Command.of("add", "map", "m", payload="k v\x00"), "NUL"),
        (lambda: Command.of("add", "map", "m", payload="k v\r\nx y"), "carriage return"),
        (lambda: Command.of("add", "map", "m", payload="\n"), "empty"),
        (lambda: Command.of("add", "map", "m", payload="k v\n" * 4_000), "bytes encoded"),
        (lambda: Command.of("prompt"), "session control"),
        (lambda: Command.of("@1", "quit"), "session control"),
        (lambda: Command.of(*["w"] * 65), "at most 64"),
        (lambda: Command.of(), "no words"),
    ],
    ids=[
        "newline",
        "newline-in-string",
        "cr",
        "nul",
        "tab",
        "escape",
        "semicolon",
        "semicolon-in-string",
        "space",
        "nbsp",
        "backslash",
        "payload-marker",
        "empty-word",
        "oversize-line",
        "payload-empty-line",
        "payload-blank-line",
        "payload-nul",
        "payload-cr",
        "payload-empty",
        "payload-oversize",
        "prompt",
        "quit-through-master",
        "too-many-words",
        "no-words",
    ],
)
def test_unsafe_command_is_refused_at_construction(
    build: Callable[[], Command], reason: str
) -> None:
    with pytest.raises(UnsafeArgument, match=reason):
        build()


def test_chunk_payload_lines_respects_byte_limit() -> None:
    lines = [f"/k{i}/ü value {i}" for i in range(5_000)]
    chunks = list(chunk_payload_lines(lines, limit=1_000))
    assert len(chunks) > 1
    assert all(len(chunk.encode()) <= 1_000 for chunk in chunks)
    assert "\n".join(chunks).split("\n") == lines
    assert list(chunk_payload_lines([])) == []


@pytest.mark.parametrize(
    ("lines", "reason"),
    [(["a b", "x" * 101], "chunk limit"), (["a b", ""], "empty"), (["a b\nc d"], "newline")],
    ids=["line-over-limit", "empty-line", "embedded-newline"],
)
def test_chunk_payload_lines_refuses_bad_lines(lines: list[str], reason: str) -> None:
    with pytest.raises(UnsafeArgument, match=reason):
        list(chunk_payload_lines(lines, limit=100))


@pytest.mark.parametrize(
    ("key", "value"),
    [("", "v"), ("a b", "v"), ("k", ""), ("k", " v"), ("k", "v "), ("k", "v\x07")],
    ids=["empty-key", "space-in-key", "empty-value", "leading-space", "trailing-space", "bell"],
)
def test_map_payload_line_refuses_lossy_entries(key: str, value: str) -> None:
    with pytest.raises(UnsafeArgument):
        map_payload_line(key, value)


def test_map_payload_line_keeps_spaces_and_separators_in_value() -> None:
    assert map_payload_line("h.com/a;b\\c/", "be x y") == "h.com/a;b\\c/ be x y"


@pytest.mark.parametrize(
    ("command", "text", "error"),
    [
        ("add map m k v", "", None),
        ("add server be/s 1.2.3.4:80", "New server registered.", None),
        ("del server be/s", "Server deleted.", None),
        ("prepare map m", "New version created: 1", None),
        ("commit ssl cert x.pem", "Committing x.pem.\nSuccess!", None),
        ("set server be/s addr 1.2.3.5", "IP changed from '1.2.3.4' to '1.2.3.5' by 'x'", None),
        ("show map m", "0x55 /k No such backend.\n0x56 /j v", None),
        ("add server be/s 1.2.3.4:80", "No such backend.", NotFound),
        ("show map m", "Unknown map identifier. Please use #<id> or <file>.", NotFound),
        ("@1 del server be/s", "No such server.", NotFound),
        ("set map m k v", "entry not found.", NotFound),
        ("del map m k", "Key not found.", NotFound),
        ("add server b/s a", "Already exists a server with the same name in backend.",
         AlreadyExists),
        ("del server be/s", "Only servers in maintenance mode can be deleted.", Conflict),
        ("del server b/s", "Server still has connections attached to it, cannot remove it.",
         Conflict),
        ("commit map @1 m", "Version number out of range.", Conflict),
        ("commit ssl cert x", "No ongoing transaction! !\nCan't commit x!", Conflict),
        ("add server be/s 1.2.3.4:80 bogus", "unknown keyword 'bogus'.", UsageError),
        ("frob", "Unknown command, but maybe one of the following ones is a better match:",
         UsageError),
        ("set server be/s port 1", "usage: set server <backend>/<server> addr | agent", UsageError),
        ("add map m k", "'add map' expects three parameters (map identifier,", UsageError),
        ("set var x", "This command is restricted to experimental mode only.", PermissionDenied),
        ("enable server be/s", "some new complaint", CommandRejected),
        ("set server be/s state maint", "some new complaint", CommandRejected),
        ("add map m k v", "[err]: something", CommandRejected),
    ],
)  # fmt: skip
def test_classify_reply(command: str, text: str, error: type[CommandRejected] | None) -> None:
    assert classify_reply(Command.parse(command), text) is error
    reply = Reply.of(Command.parse(command), text)
    assert reply.ok is (error is None)
    if error is not None:
        with pytest.raises(error):
            reply.raise_for_error()


def test_parse_show_proc_sections() -> None:
    text = (
        "#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
        "100             master          3 [failed: 1]   1d02h03m04s     2.6.12-1+deb12u4\n"
        "# workers\n"
        "200             worker          0               0d00h00m05s     2.6.12-1+deb12u4\n"
        "# old workers\n"
        "150             worker          2               0d00h01m00s     2.6.12-1+deb12u4\n"
        "# programs\n"
        "300             dataplane       0               0d00h00m05s     -              \n"
    )
    table = parse_show_proc(text)
    assert table.master.pid == 100
    assert table.master.reloads == 3
    assert table.master.failed == 1
    assert table.master.uptime == datetime.timedelta(days=1, hours=2, minutes=3, seconds=4)
    assert [w.pid for w in table.workers] == [200]
    assert [w.pid for w in table.old_workers] == [150]
    assert table.worker_pids == {200}
    assert table.programs[0].name == "dataplane"
    assert table.programs[0].role is ProcRole.PROGRAM


def test_parse_servers_state_maps_columns_by_header_name() -> None:
    text = (
        "1\n"
        "# srv_name be_name srv_port srv_addr be_id srv_id srv_op_state srv_admin_state "
        "srv_uweight srv_fqdn extra\n"
        "slot1 be_x 8080 127.0.0.9 7 3 0 5 1 - z\n"
    )
    (state,) = parse_servers_state(text)
    assert (state.backend, state.name, state.address, state.port) == (
        "be_x",
        "slot1",
        "127.0.0.9",
        8080,
    )
    assert state.op_state is ServerOpState.STOPPED
    assert state.admin_state == ServerAdmin.FMAINT | ServerAdmin.CMAINT
    assert state.in_maintenance
    assert state.fqdn is None
    assert state.columns["extra"] == "z"


def test_parse_map_entries_keeps_spaces_in_values() -> None:
    text = "0x5588a831ddc0 /a be_a\n0x5588a831df80 k2 v2 with spaces\n"
    assert parse_map_entries(text) == [("/a", "be_a"), ("k2", "v2 with spaces")]


def test_connect_gives_up_after_retry_budget(tmp_path: Path) -> None:
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(stale))  # exists but nobody listens: ECONNREFUSED
        for path in (str(tmp_path / "missing.sock"), str(stale)):
            client = RuntimeClient(path, retry=RetryPolicy(total=0.3))
            started = time.monotonic()
            with pytest.raises(ConnectionFailed, match=path):
                client.execute("show info")
            assert 0.25 <= time.monotonic() - started < 3


# --------------------------------------------------------------------------- live tests


@pytest.mark.live
@needs_haproxy
def test_single_command(haproxy: HAProxy, client: RuntimeClient) -> None:
    reply = client.execute("show info")
    assert reply.ok and reply.command == Command.of("show", "info")
    info = client.show_info()
    assert info["Name"] == "HAProxy"
    assert info["Version"].startswith("2.")
    got = client.execute(Command.of("get", "map", haproxy.routes, "/b"))
    assert "found=yes" in got.text and 'value="be_b"' in got.text
    assert client.show_map(haproxy.routes) == INITIAL_ROUTES


@pytest.mark.live
@needs_haproxy
def test_batch_of_10000_add_map_commands_on_one_connection(
    haproxy: HAProxy, client: RuntimeClient
) -> None:
    commands = [
        Command.of("add", "map", haproxy.routes, f"/k{i}", f"be_{i % 3}") for i in range(10_000)
    ]
    before = _cli_connections(client)
    started = time.monotonic()
    replies = client.execute_batch(commands, check=True)
    elapsed = time.monotonic() - started
    assert _cli_connections(client) - before == 2  # the batch + this second show info
    assert len(replies) == 10_000
    assert all(reply.ok and reply.text == "" for reply in replies)
    assert [reply.command for reply in replies] == commands
    entries = client.show_map(haproxy.routes)
    assert len(entries) == 10_000 + len(INITIAL_ROUTES)
    assert entries[-1] == ("/k9999", "be_0")
    assert elapsed < 10


@pytest.mark.live
@needs_haproxy
def test_batch_replies_stay_aligned_after_unterminated_errors(
    haproxy: HAProxy, client: RuntimeClient
) -> None:
    """2.6 prints `No such backend.` etc. without the usual empty line (see module docstring)."""
    replies = client.execute_batch(
        [
            "add server be_nope/x 127.0.0.1:1",
            "del server be_b/nope",
            "del server be_b/s1",
            "show servers state be_b",
            Command.of("add", "map", haproxy.routes, "/z", "be_c"),
            Command.of("get", "map", haproxy.routes, "/z"),
        ]
    )
    assert [(r.text, r.error) for r in replies[:3]] == [
        ("No such backend.", NotFound),
        ("No such server.", NotFound),
        ("Only servers in maintenance mode can be deleted.", Conflict),
    ]
    assert [s.name for s in parse_servers_state(replies[3].text)] == ["s1"]
    assert replies[4].ok and replies[4].text == ""
    assert 'value="be_c"' in replies[5].text


@pytest.mark.live
@needs_haproxy
def test_payload_bulk_load_is_chunked(haproxy: HAProxy, client: RuntimeClient) -> None:
    entries = [(f"/bulk/{i:05d}", "be_b") for i in range(3_000)]
    entries += [("/spaces", "value with spaces"), ("/a;b\\c", "be_c")]
    chunks = client.add_map_payload(haproxy.routes, entries)
    assert chunks >= 4
    assert client.show_map(haproxy.routes) == INITIAL_ROUTES + entries
    status, body = haproxy.get("/bulk/02999")
    assert (status, body) == (200, haproxy.upstreams[0].body)
    assert haproxy.get("/a;b\\c") == (200, haproxy.upstreams[1].body)


@pytest.mark.live
@needs_haproxy
def test_prepare_commit_replaces_map_atomically(haproxy: HAProxy, client: RuntimeClient) -> None:
    up_b, up_c = haproxy.upstreams
    new = [("/c", "be_b"), ("/new", "be_c")] + [(f"/n{i}", "be_b") for i in range(2_000)]
    version = client.prepare_map(haproxy.routes)
    assert version == 1
    assert client.add_map_payload(haproxy.routes, new, version) > 1
    # Pending version is invisible to traffic until commit.
    assert client.show_map(haproxy.routes) == INITIAL_ROUTES
    assert client.show_map(haproxy.routes, version=version) == new
    assert haproxy.get("/b") == (200, up_b.body)
    assert haproxy.get("/new")[0] == 404
    client.commit_map(haproxy.routes, version)
    assert client.show_map(haproxy.routes) == new
    assert haproxy.get("/b")[0] == 404
    assert haproxy.get("/new") == (200, up_c.body)
    assert haproxy.get("/c") == (200, up_b.body)
    with pytest.raises(Conflict, match="Version number out of range"):
        client.commit_map(haproxy.routes, version)
    assert client.replace_map(haproxy.routes, [("/b", "be_b")]) == 2
    assert client.show_map(haproxy.routes) == [("/b", "be_b")]


@pytest.mark.live
@needs_haproxy
def test_dynamic_server_round_trip_with_real_traffic(
    haproxy: HAProxy, client: RuntimeClient
) -> None:
    up_b, up_c = haproxy.upstreams
    client.execute(Command.of("add", "map", haproxy.routes, "/dyn", "be_a"))
    assert haproxy.get("/dyn")[0] == 503  # be_a has no server

    assert client.add_server("be_a", "web1", up_b.addr).text == "New server registered."
    (state,) = client.show_servers_state("be_a")
    assert (state.name, state.address, state.port) == ("web1", up_b.host, up_b.port)
    assert state.in_maintenance and state.op_state is ServerOpState.STOPPED
    assert haproxy.get("/dyn")[0] == 503  # dynamic servers start in maintenance

    client.enable_server("be_a", "web1")
    (state,) = client.show_servers_state("be_a")
    assert state.op_state is ServerOpState.RUNNING and state.admin_state == ServerAdmin.NONE
    assert haproxy.get("/dyn") == (200, up_b.body)
    rows = {(r["pxname"], r["svname"]): r for r in client.show_stat()}
    assert rows[("be_a", "web1")]["status"] == "no check"  # HAProxy notes §2: no check

    message = client.set_server_addr("be_a", "web1", up_c.host, up_c.port)
    assert message.startswith(f"IP changed from '{up_b.host}' to '{up_c.host}'")
    assert haproxy.get("/dyn") == (200, up_c.body)

    with pytest.raises(Conflict, match="maintenance"):
        client.del_server("be_a", "web1")
    client.set_server_state("be_a", "web1", "maint")
    assert haproxy.get("/dyn")[0] == 503
    assert client.del_server("be_a", "web1").text == "Server deleted."
    assert client.show_servers_state("be_a") == []
    with pytest.raises(UnsafeArgument, match="enable_server"):
        client.add_server("be_a", "web2", up_b.addr, "enabled")


@pytest.mark.live
@needs_haproxy
@pytest.mark.parametrize(
    ("line", "error", "phrase"),
    [
        ("add server be_nope/x 127.0.0.1:1", NotFound, "No such backend."),
        ("add map /no/such.map k v", NotFound, "Unknown map identifier"),
        ("add server be_b/s1 127.0.0.1:1", AlreadyExists, "Already exists a server"),
        ("del server be_b/s1", Conflict, "Only servers in maintenance mode"),
        ("set map {routes} /missing be_b", NotFound, "entry not found."),
        ("del map {routes} /missing", NotFound, "Key not found."),
        ("commit map @5 {routes}", Conflict, "Version number out of range."),
        ("add server be_a/x 127.0.0.1:1 bogus", UsageError, "unknown keyword 'bogus'"),
        ("add server be_a/x 127.0.0.1:1 cookie c", UsageError, "not accepted for dynamic"),
        ("frobnicate now", UsageError, "Unknown command"),
        ("add map {routes} onlykey", UsageError, "'add map' expects three parameters"),
        ("show servers state be_nope", NotFound, "Can't find backend."),
        ("set var proc.x str(v)", PermissionDenied, "restricted to experimental mode"),
    ],
    ids=[
        "no-such-backend",
        "unknown-map",
        "duplicate-server",
        "del-server-not-in-maint",
        "set-map-missing-key",
        "del-map-missing-key",
        "commit-bad-version",
        "unknown-keyword",
        "cookie-refused",
        "unknown-command",
        "add-map-usage",
        "servers-state-unknown-backend",
        "experimental-mode",
    ],
)
def test_typed_errors(
    haproxy: HAProxy,
    client: RuntimeClient,
    line: str,
    error: type[CommandRejected],
    phrase: str,
) -> None:
    command = Command.parse(line.format(routes=haproxy.routes))
    with pytest.raises(error) as caught:
        client.execute(command)
    assert phrase in caught.value.reply
    assert caught.value.command == command
    reply = client.execute(command, check=False)
    assert not reply.ok and reply.error is error


@pytest.mark.live
@needs_haproxy
@pytest.mark.parametrize(
    "unsafe",
    [
        "add map {routes} /x be_b\nclear map {routes}",
        "add map {routes} /x be_b;clear map {routes}",
        "add map {routes} /x be\x00b",
        "add map {routes} /x be_b\r",
        "add map {routes} /x\\ y be_b",
        "add map {routes} /x " + "b" * 16_000,
    ],
    ids=["newline", "semicolon", "nul", "cr", "backslash", "oversize"],
)
def test_unsafe_batch_sends_nothing(haproxy: HAProxy, client: RuntimeClient, unsafe: str) -> None:
    routes = haproxy.routes
    before = _cli_connections(client)
    with pytest.raises(UnsafeArgument):
        client.execute_batch(
            [Command.of("add", "map", routes, "/pre", "be_b"), unsafe.format(routes=routes)]
        )
    with pytest.raises(UnsafeArgument):
        client.execute(Command.of("add", "map", routes, payload="/p be_b\n\nclear map " + routes))
    assert _cli_connections(client) - before == 1  # only the second show info connected
    assert client.show_map(routes) == INITIAL_ROUTES


@pytest.mark.live
@needs_haproxy
def test_client_retries_until_socket_appears(
    tmp_path: Path, upstreams: tuple[Upstream, Upstream]
) -> None:
    instance = HAProxy(tmp_path, upstreams)
    instance.write_files()
    starter = threading.Timer(0.8, instance.start)
    try:
        started = time.monotonic()
        starter.start()
        info = RuntimeClient(instance.admin, retry=RetryPolicy(total=8)).show_info()
        assert info["Name"] == "HAProxy"
        assert time.monotonic() - started >= 0.7
    finally:
        starter.join()
        instance.stop()


@pytest.mark.live
@needs_haproxy
def test_master_show_proc_worker_command_and_reload(haproxy: HAProxy) -> None:
    master = MasterClient(haproxy.master)
    table = master.show_proc()
    assert haproxy.proc is not None and table.master.pid == haproxy.proc.pid
    assert table.master.reloads == 0 and table.master.failed == 0
    assert table.master.version.startswith("2.")
    (worker,) = table.workers
    assert worker.role is ProcRole.WORKER
    info = master.worker_command("show info").text
    assert f"Pid: {worker.pid}\n" in info
    master.worker_command(
        Command.of("add", "map", haproxy.routes, payload="/m be_c\n/n value with spaces")
    )
    assert RuntimeClient(haproxy.admin).show_map(haproxy.routes)[-2:] == [
        ("/m", "be_c"),
        ("/n", "value with spaces"),
    ]
    with pytest.raises(NotFound, match="No such backend"):
        master.worker_command("add server be_nope/x 127.0.0.1:1")

    new_pids = master.reload()
    assert new_pids and worker.pid not in new_pids
    after = master.show_proc()
    assert after.master.reloads == 1 and after.master.failed == 0
    assert after.worker_pids == set(new_pids)
    assert f"Pid: {new_pids[0]}\n" in master.worker_command("show info").text
    assert haproxy.get("/b") == (200, haproxy.upstreams[0].body)


@pytest.mark.live
@needs_haproxy
def test_failed_reload_is_detected(haproxy: HAProxy) -> None:
    master = MasterClient(haproxy.master)
    before = master.show_proc()
    haproxy.cfg.write_text("global\n    this_is_not_a_keyword\n")
    with pytest.raises(ReloadFailed, match="failed counter 0 -> 1"):
        master.reload(timeout=5)
    after = master.show_proc()
    assert after.master.failed == 1
    assert after.worker_pids == before.worker_pids  # the old worker keeps serving
    assert haproxy.get("/c") == (200, haproxy.upstreams[1].body)


def _self_signed_pem(common_name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return (cert.public_bytes(serialization.Encoding.PEM) + key_pem).decode()


@pytest.mark.live
@needs_haproxy
def test_ssl_cert_payload_transaction(client: RuntimeClient) -> None:
    name = "/virtual/app.example.pem"
    assert "New empty certificate store" in client.execute(f"new ssl cert {name}").text
    reply = client.execute(Command.of("set", "ssl", "cert", name, payload=_self_signed_pem("app")))
    assert "Transaction created" in reply.text
    assert "Success!" in client.execute(f"commit ssl cert {name}").text
    assert name in client.show_ssl_certs()
    with pytest.raises(Conflict, match="No ongoing transaction"):
        client.execute(f"commit ssl cert {name}")
