"""The backend-agnostic live routing contract: real proxy, real HTTP, real backends.

The same table (routing_cases.py) runs against every installed backend that serves traffic.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from livekit import Controller, HelloFleet, Response, backend_param, wait_until, write_manifests
from routing_cases import (
    _CERTS,
    CASES,
    DEFAULT_CASES,
    TLS_HOST,
    Case,
    all_endpoints,
    default_backend_ingress,
    endpoint_address,
    service_of,
    world,
)

from polyingress.core import redirect_status

BACKENDS = [backend_param(n) for n in ("nginx", "haproxy", "traefik")]

pytestmark = pytest.mark.live


class LiveWorld:
    def __init__(self, backend: str, tmp: Path, extra: Sequence[str] = ()) -> None:
        self.fleet = HelloFleet([(name, addr) for name, addr, _i in all_endpoints()])
        self.manifests = tmp / "manifests"
        write_manifests(self.manifests, "world.yaml", world(self.fleet.port))
        self.controller = Controller(backend, self.manifests, tmp / "work", extra=list(extra))
        self.controller.start()

    def check(self, case: Case) -> None:
        resp = self.controller.get(
            case.host, case.path, scheme=case.scheme, method=case.method, body=case.body
        )
        if isinstance(case.expect, int):
            assert resp.status == case.expect, (
                f"{case.id}: expected HTTP {case.expect}, got {resp.status} from {resp.server_name}"
            )
            if case.expect in (301, 308):
                self.check_redirect(resp, case.host, case.path)
            return
        assert resp.status == 200, f"{case.id}: expected {case.expect}, got HTTP {resp.status}"
        assert resp.server_name is not None
        assert service_of(resp.server_name) == case.expect, case.id
        seen = resp.json()
        assert seen["uri"] == case.path, "path and query must reach the backend unchanged"
        assert seen["method"] == case.method
        if case.scheme == "https" and case.host == TLS_HOST:
            assert resp.peer_cn == TLS_HOST

    def check_redirect(self, resp: Response, host: str, target: str) -> None:
        """Location: https://<host>:<HTTPS port><request target>. The host compares without
        case: Traefik keeps the client's spelling, nginx and HAProxy lowercase it."""
        want = f"https://{host.lower()}:{self.controller.https_port}{target}"
        assert resp.headers.get("location", "").lower() == want.lower(), resp.headers

    def stop(self) -> None:
        self.controller.stop()
        self.fleet.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveWorld]:
    w = LiveWorld(request.param, tmp_path_factory.mktemp(f"live-{request.param}"))
    yield w
    w.stop()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_routes_per_ingress_v1(live: LiveWorld, case: Case) -> None:
    live.check(case)


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_redirect_status_depends_on_the_method_only(live: LiveWorld, method: str) -> None:
    """301 for GET, 308 for every other method, on every backend; the port of the Host header
    is replaced by the HTTPS port, the query is kept."""
    body = None if method in ("GET", "HEAD") else b"field=value"
    host = TLS_HOST.upper() + ":80"
    resp = live.controller.get(host, "/a/b?c=d&e", method=method, body=body)
    assert resp.status == redirect_status(method)
    live.check_redirect(resp, TLS_HOST, "/a/b?c=d&e")


def test_redirect_differences_are_the_documented_ones(live: LiveWorld) -> None:
    """What the proxies cannot do alike (README, semantics table): nginx's Location carries the
    request target as sent, HAProxy's and Traefik's the normalized path (the HTTPS request that
    follows is normalized alike); nginx's request parser refuses a lowercase method with 400,
    HAProxy and Traefik redirect it like any method other than GET."""
    nginx = live.controller.backend == "nginx"
    resp = live.controller.get(TLS_HOST, "/x/../y?q=/../z")
    assert resp.status == 301
    live.check_redirect(resp, TLS_HOST, "/x/../y?q=/../z" if nginx else "/y?q=/../z")
    assert live.controller.get(TLS_HOST, "/x", method="get").status == (400 if nginx else 308)


def _process_state(pid: int) -> str:
    """The state letter of /proc/<pid>/stat ("T": stopped by a signal)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_redirect_is_answered_by_the_proxy_without_the_controller(live: LiveWorld) -> None:
    """A plain-HTTP request to an ssl-redirect host never depends on the controller process:
    with the controller stopped (SIGSTOP; the proxy runs in a session of its own and keeps
    running), the proxy alone still answers the redirect."""
    proc = live.controller.proc
    assert proc is not None and proc.poll() is None
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: _process_state(proc.pid) == "T", timeout=5, interval=0.01)
        for method, body in (("GET", None), ("HEAD", None), ("POST", b"x" * 100)):
            resp = live.controller.get(TLS_HOST, "/p?q=1", method=method, body=body, timeout=5)
            assert resp.status == redirect_status(method), method
            live.check_redirect(resp, TLS_HOST, "/p?q=1")
        assert live.controller.get(TLS_HOST, "/x", scheme="https").server_name == "svc-tls-1"
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    wait_until(lambda: live.controller.health("/readyz")[0] == 200)


def test_load_spread_over_all_ready_endpoints(live: LiveWorld) -> None:
    seen = Counter(
        live.controller.get("app.example.com", "/spread/x").server_name for _ in range(30)
    )
    assert set(seen) == {"svc-spread-1", "svc-spread-2", "svc-spread-3"}, seen


def test_unknown_sni_gets_fallback_certificate(live: LiveWorld) -> None:
    resp = live.controller.get("unknown.example.com", "/any", scheme="https")
    assert resp.status == 200
    assert resp.peer_cn == "polyingress-fallback.invalid"


def test_request_headers_reach_backend(live: LiveWorld) -> None:
    resp = live.controller.get("app.example.com", "/foo/x?a=1&b=%2F", method="GET")
    info = resp.json()
    assert info["uri"] == "/foo/x?a=1&b=%2F"
    headers = info["headers"]
    assert headers["host"] == "app.example.com"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "app.example.com"
    assert headers["x-forwarded-port"] == str(live.controller.http_port)


def test_post_body_and_method_pass_through(live: LiveWorld) -> None:
    resp = live.controller.get("app.example.com", "/foo/post", method="POST", body=b"x" * 1000)
    info = resp.json()
    assert info["method"] == "POST"
    assert info["body_length"] == 1000


def test_default_backend_added_at_run_time(live: LiveWorld) -> None:
    path = write_manifests(live.manifests, "default.yaml", [default_backend_ingress()])
    try:
        wait_until(
            lambda: live.controller.get("unknown.example.com", "/").server_name == "svc-default-1",
            timeout=20,
        )
        for case in DEFAULT_CASES:
            live.check(case)
    finally:
        path.unlink()
        wait_until(lambda: live.controller.get("unknown.example.com", "/").status == 404)


def test_manifest_changes_to_ingress_endpoints_and_secret_are_served(live: LiveWorld) -> None:
    """Edit the manifest directory while running: a path, a Service's endpoints, a Secret."""
    port = live.fleet.port
    before = live.controller.get(TLS_HOST, "/", scheme="https").peer_sha256
    saved = dict(_CERTS)
    _CERTS.clear()  # the next tls_secret() makes a new key pair: the Secret is rotated
    objs = world(port)
    for obj in objs:
        name = obj["metadata"]["name"]
        if obj["kind"] == "Ingress" and name == "only":
            obj["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/moved"
        if obj["kind"] == "EndpointSlice" and name == "svc-foo-abc12":
            address = endpoint_address("svc-any", 0)
            obj["endpoints"] = [{"addresses": [address], "conditions": {"ready": True}}]
    _CERTS.clear()
    _CERTS.update(saved)
    try:
        write_manifests(live.manifests, "world.yaml", objs)
        wait_until(lambda: live.controller.get("only.example.com", "/moved").status == 200)
        wait_until(lambda: live.controller.get("only.example.com", "/only").status == 404)
        wait_until(lambda: live.controller.get(TLS_HOST, "/", scheme="https").peer_sha256 != before)
        wait_until(
            lambda: (
                service_of(live.controller.get("app.example.com", "/foo/x").server_name or "")
                == "svc-any"
            )
        )
    finally:
        write_manifests(live.manifests, "world.yaml", world(port))
        wait_until(lambda: live.controller.get("only.example.com", "/only").status == 200)
        wait_until(lambda: live.controller.get(TLS_HOST, "/", scheme="https").peer_sha256 == before)
