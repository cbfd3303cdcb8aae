"""Gateway API rows on nginx (plugins/nginx/gateway.py), live, in both upstream modes.

The world is tests/fixtures/nginx/gateway.yaml: every row kind the model has (conditional rows
sharing a path, splits with weight 0 and an invalid reference, 500 rows, redirects, rewrites,
header filters with hostile values, suffix hosts, an Ingress wildcard and a Gateway suffix on
one name, an HTTPS-only route with its listener certificate, timeouts, mirrors). Every request
below is sent through a real ``polyingress run --backend nginx`` and its answer compared with
:meth:`RouteModel.answer` of the same objects: status, backend, the path and Host the backend
receives, the Location of a redirect, the request and response headers of the row's filters.
Then what ``answer`` does not state: the weights' shares, timeouts (504), mirrors, the listener
certificates, and (Lua mode) endpoint changes without a reload.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import websocket
from livekit import Controller, HelloFleet, Response, metric, needs, wait_until, write_manifests

from polyingress.core import BuildOptions, ObjectStore, RouteModel, build_model
from polyingress.core.sources.manifests import load_objects
from polyingress.plugins.nginx.gateway import GATEWAY_FEATURES
from polyingress.testing.live import WebSocketEcho

pytestmark = [pytest.mark.live, needs("nginx")]

FIXTURE = Path(__file__).parent / "fixtures" / "nginx" / "gateway.yaml"
NS = "gw"
HELLO = {"v1": "127.0.91.1", "v2": "127.0.91.2", "v3": "127.0.91.3"}
SLOW = "127.0.91.4"
RECORDERS = {"rec1": "127.0.91.5", "rec2": "127.0.91.6"}
WS = "127.0.91.7"
# Headers this proxy sets on every proxied request (render.proxy_headers).
PROXY_SET = {"connection", "upgrade", "host", "x-real-ip"} | {
    f"x-forwarded-{n}" for n in ("for", "host", "port", "proto")
}
HOSTILE = 'a $b "q" \\x {;}#\''


def world_objects(port: int) -> list[dict[str, Any]]:
    objects = load_objects(FIXTURE)
    for obj in objects:
        if obj["kind"] == "EndpointSlice":
            obj["ports"][0]["port"] = port
    return objects


def model_of(objects: list[dict[str, Any]]) -> RouteModel:
    store = ObjectStore()
    store.replace_many(upserts=objects, deletes=())
    opts = BuildOptions(features=frozenset(GATEWAY_FEATURES))
    return build_model(store.snapshot(), opts).model


class Recorder:
    """An HTTP server that records what it receives (path and query), answers like a hello
    server, and sleeps a second first when the path holds ``sleep``."""

    def __init__(self, name: str, address: str, port: int) -> None:
        self.name = name
        self.seen: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                recorder.seen.append(self.path)
                if "sleep" in self.path:
                    time.sleep(1.0)
                body = json.dumps({"server_name": recorder.name, "uri": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class GatewayNginx:
    """The fixture's world served by ``polyingress run --backend nginx --nginx-lua MODE``."""

    def __init__(self, mode: str, tmp: Path) -> None:
        self.mode = mode
        self.fleet = HelloFleet([(f"{NS}/{n}", a) for n, a in HELLO.items()])
        port = self.fleet.port
        self.slow = Recorder(f"{NS}/slow", SLOW, port)
        self.recorders = {n: Recorder(f"{NS}/{n}", a, port) for n, a in RECORDERS.items()}
        self.ws = WebSocketEcho(WS, port)
        self.objects = world_objects(port)
        self.model = model_of(self.objects)
        self.manifests = tmp / "manifests"
        write_manifests(self.manifests, "gateway.yaml", self.objects)
        self.controller = Controller(
            "nginx", self.manifests, tmp / "work", extra=["--nginx-lua", mode]
        )
        self.controller.start()

    def send(self, r: Req) -> Response:
        return self.controller.get(
            r.host,
            r.target,
            scheme=r.scheme,
            method=r.method,
            headers=dict(r.headers),
            body=r.body,
        )

    def reloads(self) -> float:
        return metric(self.controller.metrics(), "polyingress_reloads_total")

    def stop(self) -> None:
        self.controller.stop()
        self.fleet.stop()
        self.slow.stop()
        self.ws.stop()
        for r in self.recorders.values():
            r.stop()


MODES = [
    pytest.param("off", id="static"),
    pytest.param("on", id="lua", marks=needs("nginx-lua")),
]


@pytest.fixture(scope="module", params=MODES)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayNginx]:
    w = GatewayNginx(request.param, tmp_path_factory.mktemp(f"gateway-nginx-{request.param}"))
    yield w
    w.stop()


@dataclass(frozen=True)
class Req:
    host: str
    target: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    scheme: str = "http"
    body: bytes | None = field(default=None, compare=False)

    def __str__(self) -> str:
        extra = "".join(f" {k}:{v}" for k, v in self.headers)
        return f"{self.method} {self.scheme}://{self.host}{self.target}{extra}"


def _r(host: str, target: str, *headers: tuple[str, str], **kw: Any) -> Req:
    return Req(host, target, headers=headers, **kw)


TWO = ("Version", "two")
ORANGE = ("Color", "orange")
REQUESTS = [
    # conditional rows of one path: method > headers > plain; query on a deeper prefix;
    # the first value of a repeated parameter counts; names and values are case-sensitive
    _r("match.example", "/exact"),
    _r("match.example", "/exact/x"),
    _r("match.example", "/p"),
    _r("match.example", "/p/x?k=v"),
    _r("match.example", "/p", method="POST"),
    _r("match.example", "/p/x", TWO),
    _r("match.example", "/p/x", TWO, method="POST"),
    _r("match.example", "/p", ("version", "TWO")),
    _r("match.example", "/p", method="DELETE"),
    _r("match.example", "/p/deeper?q=1"),
    _r("match.example", "/p/deeper/x?z=0&q=1"),
    _r("match.example", "/p/deeper?q=2&q=1"),
    _r("match.example", "/p/deeper?xq=1"),
    _r("match.example", "/p/deeper?Q=1"),
    _r("match.example", "/p/deeper?q=1", TWO),
    _r("match.example", "/hdr", ORANGE, TWO),
    _r("match.example", "/hdr", TWO),
    _r("match.example", "/hdr/x", ORANGE),
    _r("match.example", "/hdr"),
    _r("match.example", "/hdr?a=b&e"),
    _r("match.example", "/?a=b&e="),
    _r("match.example", "/?e&a=b"),
    _r("match.example", "/?a=b"),
    _r("match.example", "/?a=B&e="),
    _r("match.example", "/?a=b&a=c&e=1"),
    _r("match.example", "/elsewhere"),
    _r("match.example", "/hostile", ("X-Odd", HOSTILE)),
    _r("match.example", "/hostile", ("X-Odd", "a $b")),
    # splits: a share of an invalid reference (500), weight 0 only (500), no backendRefs
    # (500), a Service without endpoints (503), one of two without endpoints
    _r("split.example", "/"),
    _r("split.example", "/invalid"),
    _r("split.example", "/zero"),
    _r("split.example", "/nobackend/x"),
    _r("split.example", "/empty"),
    _r("split.example", "/halfempty"),
    # redirects, on both listeners
    *(
        Req("redirect.example", target, scheme=scheme)
        for scheme in ("http", "https")
        for target in (
            "/r301/x?y=1",
            "/scheme",
            "/port/a",
            "/full/x?y=1",
            "/prefix",
            "/prefix/a/b?c=d",
            "/prefix/../prefix/a",
            "/toroot",
            "/toroot/x",
            "/s303",
            "/s307/x",
            "/s308/x",
        )
    ),
    _r("redirect.example", "/r301", method="POST"),
    # rewrites
    _r("rewrite.example", "/host/x"),
    _r("rewrite.example", "/full/x?y=1"),
    _r("rewrite.example", "/pre"),
    _r("rewrite.example", "/pre/"),
    _r("rewrite.example", "/pre/x/y?z=1"),
    _r("rewrite.example", "/strip"),
    _r("rewrite.example", "/strip/x"),
    _r("rewrite.example", "/other"),
    _r("rewrite.example", "/"),
    # percent-escapes in route paths and rewrites
    _r("percent.example", "/sp%20ace"),
    _r("percent.example", "/sp%20ace/x"),
    _r("percent.example", "/pct/x?y=1"),
    _r("percent.example", "/pre%20fix/x%20y"),
    _r("percent.example", "/pre%20fix"),
    # header filters
    _r("headers.example", "/x"),
    _r("headers.example", "/x", ("X-Set", "old"), ("X-Add", "first"), ("X-Remove", "gone")),
    # suffix hosts, an exact host beside them, an Ingress wildcard and a Gateway suffix
    _r("b.wild.example", "/x"),
    _r("x.y.wild.example", "/x"),
    _r("b.wild.example", "/m/x", method="PUT"),
    _r("a.wild.example", "/only"),
    _r("a.wild.example", "/x"),
    _r("wild.example", "/x"),
    _r("x.y.wild.example", "/x", scheme="https"),
    _r("a.mix.example", "/"),
    _r("a.mix.example", "/", TWO),
    _r("a.b.mix.example", "/"),
    _r("a.b.mix.example", "/", TWO),
    _r("a.b.mix.example", "/g/x"),
    # an HTTPS-only route, its HTTP side redirecting
    _r("secure.example", "/x?y=1"),
    _r("secure.example", "/x?y=1", scheme="https"),
    # hosts alike but for their backends (Lua mode: one shared block per port, maps of $host)
    *(
        Req(host, target, scheme=scheme)
        for host in ("one.alike.example", "two.alike.example")
        for scheme in ("http", "https")
        for target in ("/", "/api/x")
    ),
    # Ingress and HTTPRoute rows on one host; host-less rows (HTTP listener only)
    _r("mixed.example", "/ingress"),
    _r("mixed.example", "/ingress/x"),
    _r("mixed.example", "/gw/x", TWO),
    _r("mixed.example", "/gw/x"),
    _r("unknown.example", "/catch/x"),
    _r("unknown.example", "/catch/x", scheme="https"),
    _r("unknown.example", "/x"),
]


def _backend_of(server_name: str | None) -> str | None:
    if server_name is None or "/" not in server_name:
        return None
    ns, svc = server_name.split("/", 1)
    return f"{ns}__{svc}__8080"


def check(model: RouteModel, r: Req, resp: Response) -> str | None:
    """Why ``resp`` is not what RouteModel.answer says (None: it is)."""
    sent = tuple((k.lower(), v) for k, v in r.headers)
    answer = model.answer(r.host, r.target, scheme=r.scheme, method=r.method, headers=sent)
    got = f"got {resp.status} {resp.headers} {resp.body[:300]!r}; the core says {answer}"
    if not answer.proxied:
        if resp.status != answer.status:
            return got
        if answer.location is not None and resp.headers.get("location") != answer.location:
            return f"Location {resp.headers.get('location')!r}, not {answer.location!r}"
        return None
    shares = [w for w in answer.backends if w.weight > 0]
    if resp.status != 200:
        allowed = set()
        if any(w.backend is None for w in shares):
            allowed.add(500)
        if any(w.backend is not None and not model.backend(w.backend).available for w in shares):
            allowed.add(503)
        return None if resp.status in allowed else got
    seen = resp.json()
    if _backend_of(resp.server_name) not in {w.backend for w in shares}:
        return got
    if seen["uri"] != answer.path:
        return f"the backend got {seen['uri']!r}, not {answer.path!r}"
    host = answer.host or r.host
    if seen["host"] != host:
        return f"the backend got Host {seen['host']!r}, not {host!r}"
    route = answer.route
    if route is not None and route.request_headers is not None:
        f = route.request_headers
        expected = f.apply({k: [v] for k, v in sent})
        for name in [n for n, _v in f.set] + [n for n, _v in f.add] + list(f.remove):
            if name in PROXY_SET:
                continue
            want = ",".join(expected[name]) if name in expected else None
            if seen["headers"].get(name) != want:
                return f"the backend got {name}: {seen['headers'].get(name)!r}, not {want!r}"
    if route is not None and route.response_headers is not None:
        f = route.response_headers
        for name, value in [*f.set, *f.add]:
            if resp.headers.get(name) != value:
                return f"response {name}: {resp.headers.get(name)!r}, not {value!r}"
        for name in f.remove:
            if name in resp.headers:
                return f"response header {name} was not removed"
    return None


@pytest.mark.parametrize("r", REQUESTS, ids=str)
def test_every_request_gets_the_core_answer(world: GatewayNginx, r: Req) -> None:
    why = check(world.model, r, world.send(r))
    assert why is None, f"{r}: {why}"


def test_the_requests_cover_every_row_kind(world: GatewayNginx) -> None:
    """The table above reaches every kind of answer (a guard against a fixture that drifts)."""
    kinds: Counter[str] = Counter()
    for r in REQUESTS:
        sent = tuple((k.lower(), v) for k, v in r.headers)
        a = world.model.answer(r.host, r.target, scheme=r.scheme, method=r.method, headers=sent)
        route = a.route
        kinds[str(a.outcome)] += 1
        if route is not None:
            for attr in ("method", "redirect", "rewrite", "request_headers", "response_headers"):
                if getattr(route, attr) is not None:
                    kinds[attr] += 1
            kinds["headers"] += bool(route.headers)
            kinds["query"] += bool(route.query)
            kinds["split"] += bool(route.split)
            kinds["one scheme"] += len(route.schemes) == 1
    for kind in (
        "route",
        "not-found",
        "unavailable",
        "error",
        "route-redirect",
        "method",
        "headers",
        "query",
        "split",
        "redirect",
        "rewrite",
        "request_headers",
        "response_headers",
        "one scheme",
    ):
        assert kinds[kind], f"no request of the table reaches {kind}: {kinds}"


def test_a_header_added_to_one_this_proxy_sets_is_appended(world: GatewayNginx) -> None:
    seen = world.send(_r("headers.example", "/x")).json()
    assert seen["headers"]["x-forwarded-proto"] == "http,extra"


def test_a_post_body_passes_the_dispatch(world: GatewayNginx) -> None:
    """A conditional location reaches its row through an internal redirect: the method and
    the body must survive it."""
    body = b"x" * 4000
    resp = world.send(_r("match.example", "/p/x", TWO, method="POST", body=body))
    assert resp.status == 200 and resp.server_name == f"{NS}/v2", resp.body[:200]
    assert resp.json()["method"] == "POST"
    assert resp.json()["body_length"] == len(body)


def test_weighted_split_shares(world: GatewayNginx) -> None:
    """70/30/0: each share within 5 % of its weight over 500 requests (upstream's rule); in
    Lua mode the smooth weighted round-robin is exact but for one request per worker."""
    # Static mode chooses at random (split_clients over $request_id): 2,000 requests put 5 %
    # at 5 standard deviations, where upstream's 500 leave a 1.5 % chance of failing.
    n = 500 if world.mode == "on" else 2000
    seen: Counter[str | None] = Counter()
    for _ in range(n):
        resp = world.send(_r("split.example", "/"))
        assert resp.status == 200, resp.body
        seen[resp.server_name] += 1
    assert seen[f"{NS}/v3"] == 0
    tolerance = 0.05 if world.mode == "off" else 0.01
    assert abs(seen[f"{NS}/v1"] / n - 0.7) <= tolerance, seen
    assert abs(seen[f"{NS}/v2"] / n - 0.3) <= tolerance, seen


def test_an_invalid_references_share_answers_500(world: GatewayNginx) -> None:
    n = 200 if world.mode == "on" else 1000
    statuses: Counter[int] = Counter()
    for _ in range(n):
        statuses[world.send(_r("split.example", "/invalid")).status] += 1
    assert set(statuses) == {200, 500}, statuses
    assert abs(statuses[500] / n - 0.5) <= (0.08 if world.mode == "off" else 0.01), statuses


def test_timeouts_answer_504(world: GatewayNginx) -> None:
    for path in ("/request/sleep", "/backend/sleep"):
        started = time.monotonic()
        resp = world.send(_r("timeouts.example", path))
        assert resp.status == 504, (path, resp.status, resp.body[:200])
        assert time.monotonic() - started < 0.9
    assert world.send(_r("timeouts.example", "/request/fast")).status == 200
    assert world.send(_r("timeouts.example", "/none/sleep")).status == 200


def test_mirrors_get_a_copy(world: GatewayNginx) -> None:
    rec1, rec2 = world.recorders["rec1"], world.recorders["rec2"]
    resp = world.send(_r("mirror.example", "/m/x?y=1"))
    assert resp.server_name == f"{NS}/v1"
    wait_until(lambda: "/m/x?y=1" in rec1.seen and "/m/x?y=1" in rec2.seen, timeout=5)
    resp = world.send(_r("mirror.example", "/one/z"))
    assert resp.server_name == f"{NS}/v2"
    wait_until(lambda: "/one/z" in rec1.seen, timeout=5)
    time.sleep(0.2)
    assert "/one/z" not in rec2.seen


def test_listener_certificates_by_sni(world: GatewayNginx) -> None:
    for host, cn in (
        ("secure.example", "secure.example"),
        ("b.wild.example", "*.wild.example"),
        ("x.y.wild.example", "*.wild.example"),
    ):
        resp = world.send(_r(host, "/x", scheme="https"))
        assert resp.peer_cn == cn, (host, resp.peer_cn)


def test_lua_endpoint_changes_do_not_reload(world: GatewayNginx, tmp_path: Path) -> None:
    if world.mode != "on":
        pytest.skip("static upstreams reload on endpoint changes")
    before = world.reloads()
    objects = world_objects(world.fleet.port)
    for obj in objects:
        if obj["kind"] == "EndpointSlice" and obj["metadata"]["name"] == "v2-ep":
            obj["endpoints"][0]["conditions"]["ready"] = False
    applied = world.controller.applied()
    write_manifests(world.manifests, "gateway.yaml", objects)
    world.controller.wait_applied(applied)
    try:
        model = model_of(objects)
        for r in (_r("split.example", "/halfempty"), _r("match.example", "/p", method="POST")):
            for _ in range(6):
                why = check(model, r, world.send(r))
                assert why is None, f"{r}: {why}"
        assert world.reloads() == before
    finally:
        applied = world.controller.applied()
        write_manifests(world.manifests, "gateway.yaml", world.objects)
        world.controller.wait_applied(applied)
    assert world.reloads() == before


def _websocket(world: GatewayNginx, path: str, **headers: str) -> websocket.WebSocket:
    return websocket.create_connection(
        f"ws://127.0.0.1:{world.controller.http_port}{path}",
        host="ws.example",
        header=[f"{k.replace('_', '-')}: {v}" for k, v in headers.items()],
        timeout=5,
    )


def test_websockets_pass_conditional_and_filtered_rows(world: GatewayNginx) -> None:
    """HTTPRouteBackendProtocolWebSocket: the upgrade passes the error_page dispatch of a
    conditional row and a row that repeats the proxy_set_header defaults (Connection and
    Upgrade among them); the named rules (HTTPRouteNamedRouteRule) route as unnamed ones."""
    ws = _websocket(world, "/chat?x=1", X_Room="one")
    try:
        ws.send("hello")
        assert ws.recv() == "/chat?x=1 - hello"
        ws.send("again")
        assert ws.recv() == "/chat?x=1 - again"
    finally:
        ws.close()
    ws = _websocket(world, "/filtered/x")
    try:
        ws.send("hi")
        assert ws.recv() == "/filtered/x yes hi"
    finally:
        ws.close()
    # the third, unconditional rule: a plain HTTP backend, no upgrade
    with pytest.raises(websocket.WebSocketBadStatusException):
        _websocket(world, "/chat")
    assert world.send(_r("ws.example", "/chat")).server_name == f"{NS}/v1"


def test_a_rule_edit_with_an_endpoint_change_is_served(world: GatewayNginx) -> None:
    """A Gateway API rule edit (a header filter's value) applied together with an endpoint
    change: not 'endpoints only' (Lua mode would keep the running text)."""
    objects = world_objects(world.fleet.port)
    for obj in objects:
        if obj["kind"] == "HTTPRoute" and obj["metadata"]["name"] == "headers":
            obj["spec"]["rules"][0]["filters"][0]["requestHeaderModifier"]["set"][0]["value"] = (
                "edited"
            )
        if obj["kind"] == "EndpointSlice" and obj["metadata"]["name"] == "v1-ep":
            obj["endpoints"][0]["conditions"]["ready"] = False
    applied = world.controller.applied()
    write_manifests(world.manifests, "gateway.yaml", objects)
    world.controller.wait_applied(applied)
    try:
        seen = world.send(_r("headers.example", "/x")).json()
        assert seen["headers"]["x-set"] == "edited"
        assert world.send(_r("match.example", "/exact")).status == 503
    finally:
        applied = world.controller.applied()
        write_manifests(world.manifests, "gateway.yaml", world.objects)
        world.controller.wait_applied(applied)


def _share_route() -> dict[str, Any]:
    """A row mirroring to rec2 one request of every three and to rec1 half of them."""
    mirror = [
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"name": "rec2", "port": 8080},
                "fraction": {"numerator": 1, "denominator": 3},
            },
        },
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": "rec1", "port": 8080}, "percent": 50},
        },
    ]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": "mirror-share",
            "namespace": NS,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "hostnames": ["share.example"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/share"}}],
                    "filters": mirror,
                    "backendRefs": [{"name": "v1", "port": 8080}],
                }
            ],
        },
    }


def test_mirror_shares_copy_exactly_n_of_every_d_requests(world: GatewayNginx) -> None:
    """HTTPRouteRequestPercentageMirror: Lua mode copies exactly n of every d requests of the
    row, the first one included, whichever worker serves them (one counter per row and mirror,
    in a shared dictionary); static mode cannot count, and the row answers 500."""
    objects = [*world_objects(world.fleet.port), _share_route()]
    applied = world.controller.applied()
    write_manifests(world.manifests, "gateway.yaml", objects)
    world.controller.wait_applied(applied)
    rec1, rec2 = world.recorders["rec1"], world.recorders["rec2"]
    try:
        if world.mode != "on":
            assert world.send(_r("share.example", "/share?i=0")).status == 500
            return
        targets = [f"/share?i={i}" for i in range(1, 13)]
        for target in targets:
            resp = world.send(_r("share.example", target))
            assert resp.server_name == f"{NS}/v1", (target, resp.status)
        want2 = {f"/share?i={i}" for i in (1, 4, 7, 10)}
        want1 = {f"/share?i={i}" for i in (1, 3, 5, 7, 9, 11)}
        wait_until(lambda: want2 <= set(rec2.seen) and want1 <= set(rec1.seen), timeout=5)
        time.sleep(0.3)  # copies not chosen would arrive by now
        assert {p for p in rec2.seen if p.startswith("/share")} == want2
        assert {p for p in rec1.seen if p.startswith("/share")} == want1
    finally:
        applied = world.controller.applied()
        write_manifests(world.manifests, "gateway.yaml", world.objects)
        world.controller.wait_applied(applied)
