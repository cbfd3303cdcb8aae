"""The conformance suite: the shared routing cases, live, through any backend.

Run it against an installed backend, outside any repository::

    pytest -p polyingress.testing --polyingress-backend NAME [--polyingress-run-arg=--flag=value]

It starts hello backends on 127.0.0.x, writes the routing world (``polyingress.testing.cases``)
to a manifest directory, runs ``polyingress run --backend NAME`` on free loopback ports and
checks, over real HTTP and HTTPS, that every request gets what the Kubernetes Ingress v1
semantics say (``RouteModel.answer``): the route, the redirect, 404, 503, the fallback
certificate, the forwarded headers, changes of the manifests while running. The built-in
nginx, HAProxy and Traefik backends pass it in polyingress's own test suite.

Each test takes the ``live_world`` fixture (one :class:`LiveWorld` per module and backend);
``polyingress_backend`` names the backend (override it to run several, as polyingress's own
tests do).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from polyingress.core import normalize_request_path, redirect_status
from polyingress.testing.cases import (
    _CERTS,
    CASES,
    DEFAULT_CASES,
    PATH_CASES,
    TLS_HOST,
    Case,
    all_endpoints,
    default_backend_ingress,
    endpoint_address,
    service_of,
    world,
)
from polyingress.testing.live import (
    Controller,
    HelloFleet,
    Response,
    hold_consistently,
    wait_until,
    write_manifests,
)

# ``from polyingress.testing.conformance import *`` collects the whole suite into a test module.
__all__ = [
    "LiveWorld",
    "test_default_backend_added_at_run_time",
    "test_load_spread_over_all_ready_endpoints",
    "test_manifest_changes_to_ingress_endpoints_and_secret_are_served",
    "test_post_body_and_method_pass_through",
    "test_redirect_names_the_https_port_clients_reach",
    "test_redirect_status_depends_on_the_method_only",
    "test_request_headers_reach_backend",
    "test_request_path_rule",
    "test_routes_per_ingress_v1",
    "test_unknown_sni_gets_fallback_certificate",
]

pytestmark = pytest.mark.live


class LiveWorld:
    def __init__(self, backend: str, tmp: Path, extra: Sequence[str] = ()) -> None:
        self.fleet = HelloFleet([(name, addr) for name, addr, _i in all_endpoints()])
        self.manifests = tmp / "manifests"
        write_manifests(self.manifests, "world.yaml", world(self.fleet.port))
        self.controller = Controller(backend, self.manifests, tmp / "work", extra=list(extra))
        self.controller.start()

    def get(self, host: str, path: str, scheme: str = "http", **kw: object) -> Response:
        """A request through the proxy (see :func:`polyingress.testing.live.request`)."""
        return self.controller.get(host, path, scheme=scheme, **kw)

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
        assert seen["uri"] == normalize_request_path(case.path), (
            f"{case.id}: the backend receives the normalized path and the query unchanged"
        )
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


@pytest.mark.parametrize("case", CASES, ids=str)
def test_routes_per_ingress_v1(live_world: LiveWorld, case: Case) -> None:
    live_world.check(case)


@pytest.mark.parametrize("case", PATH_CASES, ids=str)
def test_request_path_rule(live_world: LiveWorld, case: Case) -> None:
    """400 for an encoded slash, backslash or NUL; dot segments and unreserved escapes resolved
    before matching; the Service receives the normalized path."""
    live_world.check(case)


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_redirect_status_depends_on_the_method_only(live_world: LiveWorld, method: str) -> None:
    """301 for GET, 308 for every other method, on every backend; the port of the Host header
    is replaced by the HTTPS port, the query is kept."""
    body = None if method in ("GET", "HEAD") else b"field=value"
    host = TLS_HOST.upper() + ":80"
    resp = live_world.get(host, "/a/b?c=d&e", method=method, body=body)
    assert resp.status == redirect_status(method)
    live_world.check_redirect(resp, TLS_HOST, "/a/b?c=d&e")


def test_redirect_names_the_https_port_clients_reach(
    polyingress_backend: str, polyingress_run_args: list[str], tmp_path: Path
) -> None:
    """Behind a Service that maps 443 to ``--https-port``, ``--https-redirect-port 443`` makes
    an ssl-redirect host's Location name port 443 (left out of the URL) while the proxy still
    listens on ``--https-port``."""
    extra = [*polyingress_run_args, "--https-redirect-port", "443", "--http-redirect-port", "80"]
    world_ = LiveWorld(polyingress_backend, tmp_path, extra=extra)
    try:
        resp = world_.get(TLS_HOST, "/p?q=1")
        assert resp.status == 301
        assert resp.headers.get("location", "").lower() == f"https://{TLS_HOST}/p?q=1"
        assert world_.get(TLS_HOST, "/p", scheme="https").peer_cn == TLS_HOST
    finally:
        world_.stop()


def test_load_spread_over_all_ready_endpoints(live_world: LiveWorld) -> None:
    seen = Counter(live_world.get("app.example.com", "/spread/x").server_name for _ in range(30))
    assert set(seen) == {"svc-spread-1", "svc-spread-2", "svc-spread-3"}, seen


def test_unknown_sni_gets_fallback_certificate(live_world: LiveWorld) -> None:
    resp = live_world.get("unknown.example.com", "/any", scheme="https")
    assert resp.status == 200
    assert resp.peer_cn == "polyingress-fallback.invalid"


def test_request_headers_reach_backend(live_world: LiveWorld) -> None:
    resp = live_world.get("app.example.com", "/foo/x?a=1&b=%2F", method="GET")
    info = resp.json()
    assert info["uri"] == "/foo/x?a=1&b=%2F"
    headers = info["headers"]
    assert headers["host"] == "app.example.com"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "app.example.com"
    assert headers["x-forwarded-port"] == str(live_world.controller.http_port)


def test_post_body_and_method_pass_through(live_world: LiveWorld) -> None:
    resp = live_world.get("app.example.com", "/foo/post", method="POST", body=b"x" * 1000)
    info = resp.json()
    assert info["method"] == "POST"
    assert info["body_length"] == 1000


def test_default_backend_added_at_run_time(live_world: LiveWorld) -> None:
    path = write_manifests(live_world.manifests, "default.yaml", [default_backend_ingress()])
    try:
        # Held several times in a row: while nginx reloads, its old workers may still accept a
        # connection after a new one answered.
        def served() -> tuple[bool, str]:
            name = live_world.get("unknown.example.com", "/").server_name
            return name == "svc-default-1", f"unknown.example.com answered by {name}"

        hold_consistently(served, timeout=20)
        for case in DEFAULT_CASES:
            live_world.check(case)
    finally:
        path.unlink()
        wait_until(lambda: live_world.get("unknown.example.com", "/").status == 404)


def test_manifest_changes_to_ingress_endpoints_and_secret_are_served(live_world: LiveWorld) -> None:
    """Edit the manifest directory while running: a path, a Service's endpoints, a Secret."""
    port = live_world.fleet.port
    before = live_world.get(TLS_HOST, "/", scheme="https").peer_sha256
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
        write_manifests(live_world.manifests, "world.yaml", objs)
        wait_until(lambda: live_world.get("only.example.com", "/moved").status == 200)
        wait_until(lambda: live_world.get("only.example.com", "/only").status == 404)
        wait_until(lambda: live_world.get(TLS_HOST, "/", scheme="https").peer_sha256 != before)
        wait_until(
            lambda: (
                service_of(live_world.get("app.example.com", "/foo/x").server_name or "")
                == "svc-any"
            )
        )
    finally:
        write_manifests(live_world.manifests, "world.yaml", world(port))
        wait_until(lambda: live_world.get("only.example.com", "/only").status == 200)
        wait_until(lambda: live_world.get(TLS_HOST, "/", scheme="https").peer_sha256 == before)
