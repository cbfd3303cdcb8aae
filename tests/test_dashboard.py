"""The read-only dashboard (core/runtime/dashboard.py), in this process: what the page and its
JSON show for a world of Ingresses and HTTPRoutes, the search (RouteModel.answer explained),
that no Secret data ever appears, escaping, the server's read-only rules, and the controller's
apply history it shows. tests/test_dashboard_live.py loads it in a real browser per backend."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from html.parser import HTMLParser
from typing import Any

import pytest
from gwapi_objects import V1, gateway, gateway_class
from kube_objects import CLASS, ingress, path, rule, service, slice_
from livekit import free_port, wait_until
from manifests import cert_data

from polyingress.core import (
    ApplyError,
    ApplyResult,
    BuildOptions,
    BuildResult,
    HealthReport,
    ModelDiff,
    ObjectStore,
    RouteModel,
    RunSettings,
    build_model,
    hookimpl,
)
from polyingress.core.api import BackendInfo
from polyingress.core.runtime.controller import Controller
from polyingress.core.runtime.dashboard import (
    DashboardServer,
    DashboardState,
    explain,
    render_page,
    view,
)
from polyingress.core.runtime.plugins import plugin_manager

CAFE = "cafe.example.com"
SECRET = cert_data(CAFE, CAFE)


def httproute() -> dict[str, Any]:
    return {
        "apiVersion": V1,
        "kind": "HTTPRoute",
        "metadata": {"name": "api", "namespace": "default"},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "hostnames": ["api.example.com"],
            "rules": [
                {
                    "matches": [
                        {
                            "path": {"type": "PathPrefix", "value": "/v1"},
                            "method": "POST",
                            "headers": [{"name": "x-env", "value": "canary"}],
                        },
                        {
                            "path": {"type": "PathPrefix", "value": "/v1"},
                            "queryParams": [{"name": "beta", "value": "on"}],
                        },
                    ],
                    "backendRefs": [{"name": "api-canary", "port": 80}],
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": "api-svc", "port": 80}],
                },
            ],
        },
    }


def world() -> list[dict[str, Any]]:
    return [
        CLASS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": "cafe-secret", "namespace": "default"},
            "data": SECRET,
        },
        ingress(
            "cafe",
            rule(CAFE, path("/tea", "tea-svc"), path("/coffee", "coffee-svc")),
            tls=[{"hosts": [CAFE], "secretName": "cafe-secret"}],
        ),
        ingress("broken", rule("broken.example.com", path("<script>alert(1)</script>", "x"))),
        ingress("empty", rule("empty.example.com", path("/", "nowhere"))),
        ingress(
            "nocert",
            rule("nocert.example.com", path("/", "coffee-svc")),
            tls=[{"hosts": ["nocert.example.com"], "secretName": "missing"}],
        ),
        service("coffee-svc"),
        slice_("coffee-svc", [("10.0.0.11", True), ("10.0.0.12", True)]),
        service("tea-svc"),
        slice_("tea-svc", [("10.0.0.21", True), ("10.0.0.22", False)]),
        service("api-svc"),
        slice_("api-svc", [("10.0.1.1", True)]),
        service("api-canary"),
        slice_("api-canary", [("10.0.1.2", True)]),
        gateway_class(),
        gateway(listeners=[{"name": "http", "protocol": "HTTP", "port": 80}]),
        httproute(),
    ]


def build() -> BuildResult:
    store = ObjectStore()
    store.replace_many(upserts=world(), deletes=())
    return build_model(store.snapshot(), BuildOptions(https_port=8443))


INFO = BackendInfo(
    name="testproxy",
    version="1.0",
    description="a proxy of the tests",
    features=("reload <fast>",),
    gateway_features=("HTTPRoute", "HTTPRouteMethodMatching"),
    settings={"proxy-read-timeout": "`read_timeout`"},
)


def state(result: BuildResult | None = None) -> DashboardState:
    result = result or build()
    return DashboardState(
        model=result.model,
        result=result,
        info=INFO,
        health=HealthReport(live=True, ready=True, detail="serving"),
        http_port=8080,
        https_port=8443,
    )


class _Text(HTMLParser):
    """The text a user sees (no tags, no <style>), blocks on their own lines."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "title"):
            self._skip += 1
        if tag in ("tr", "p", "li", "h2", "h3", "table", "ul"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._skip -= 1
        if tag in ("td", "th"):
            self.parts.append(" | ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(" " + " ".join(data.split()) + " ")


def seen(html: str) -> str:
    """The page's visible text, whitespace collapsed within lines."""
    parser = _Text()
    parser.feed(html)
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)


# -- what the page shows -----------------------------------------------------------------------


def test_page_shows_hosts_paths_backends_endpoints_tls_and_problems() -> None:
    text = seen(render_page(view(state())))
    lines = text.splitlines()
    assert "cafe.example.com exact" in lines, text
    coffee = next(line for line in lines if line.startswith("Prefix /coffee"))
    assert "Ingress default/cafe | default/coffee-svc:80" in coffee, coffee
    assert "10.0.0.11:8080 ready" in text and "10.0.0.12:8080 ready" in text
    assert "10.0.0.22:8080 not ready" in text
    assert "TLS: CN=cafe.example.com, from Secret default/cafe-secret" in text
    assert "HTTP redirects to HTTPS" in text
    # A missing Secret: the fallback certificate, and the problem naming object and field.
    assert "TLS: fallback certificate (CN=polyingress-fallback.invalid" in text
    problem = next(line for line in lines if "Ingress default/broken" in line)
    assert problem.startswith("error | Ingress default/broken | spec.rules[0].http.paths[0].path")
    assert "must be absolute" in problem
    assert any("Ingress default/empty" in line and "BackendNotFound" in line for line in lines)
    # The backend and its capabilities, the counts.
    assert "testproxy 1.0 — a proxy of the tests" in text
    assert "HTTPRouteMethodMatching" in text and "proxy-read-timeout" in text
    assert "1 errors, 2 warnings" in text


def test_httproutes_show_their_source_and_matches() -> None:
    text = seen(render_page(view(state())))
    rows = [line for line in text.splitlines() if "HTTPRoute default/api" in line]
    assert len(rows) == 3, text
    assert any(
        "Prefix /v1 method POST header x-env: canary http only | HTTPRoute default/api | "
        "default/api-canary:80" in r
        for r in rows
    ), rows
    assert any("Prefix /v1 query beta=on http only | HTTPRoute default/api" in r for r in rows)
    # The Gateway's one listener is HTTP: its rows are served on http only.
    assert any(
        r.startswith("Prefix / http only | HTTPRoute default/api | default/api-svc:80")
        for r in rows
    )


def test_the_json_is_the_data_of_the_page() -> None:
    result = build()
    data = view(state(result))
    again = json.loads(json.dumps(data))
    assert again == data
    model = result.model
    assert [h["host"] for h in data["hosts"]] == [v.host for v in model.vhosts]
    assert sum(len(h["routes"]) for h in data["hosts"]) == sum(len(v.routes) for v in model.vhosts)
    cafe = next(h for h in data["hosts"] if h["host"] == CAFE)
    assert cafe["tls"]["fallback"] is False and cafe["tls"]["covers_host"] is True
    assert cafe["tls"]["subject"] == f"CN={CAFE}" and 360 <= cafe["tls"]["days_left"] <= 365
    tea = next(b for b in data["backends"] if b["service"] == "tea-svc")
    assert (tea["ready"], len(tea["endpoints"])) == (1, 2)
    assert {(p["object"]["name"], p["severity"]) for p in data["problems"]} >= {
        ("broken", "error"),
        ("empty", "warning"),
        ("nocert", "warning"),
    }
    assert data["backend"]["gateway_features"] == list(INFO.gateway_features)


def test_no_secret_data_ever_appears_in_the_page_or_the_json() -> None:
    st = state()
    key_pem = base64.b64decode(SECRET["tls.key"]).decode()
    cert_pem = base64.b64decode(SECRET["tls.crt"]).decode()
    body_lines = [
        line
        for pem in (key_pem, cert_pem)
        for line in pem.splitlines()
        if line and not line.startswith("-----")
    ]
    search = explain(st.model, f"https://{CAFE}/coffee")
    outputs = {
        "html": render_page(view(st), search),
        "json": json.dumps({**view(st), "search": search}),
    }
    for what, text in outputs.items():
        assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text, what
        assert SECRET["tls.key"] not in text and SECRET["tls.crt"] not in text, what
        leaked = [line for line in body_lines if line in text]
        assert leaked == [], f"{what} shows Secret data: {leaked[:2]}"
    # ... while it does show the certificate's public facts.
    assert f"CN={CAFE}" in outputs["html"]


def test_every_value_is_escaped() -> None:
    html = render_page(view(state()), explain(build().model, "http://x/<b>", headers_text=""))
    assert "<script>" not in html
    assert "&#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39;" in html
    assert "reload &lt;fast&gt;" in html


# -- the search --------------------------------------------------------------------------------

SEARCHES = [
    # url, method, headers, status, the answer in words
    (f"https://{CAFE}/coffee", "GET", "", None, "proxied to default/coffee-svc:80"),
    (f"https://{CAFE}/tea/cup", "GET", "", None, "proxied to default/tea-svc:80"),
    (f"{CAFE}/tea", "GET", "", 301, f"301 redirect to https://{CAFE}:8443/tea"),
    (f"http://{CAFE}/tea?x=1", "POST", "", 308, f"308 redirect to https://{CAFE}:8443/tea?x=1"),
    (f"https://{CAFE}/milk", "GET", "", 404, "404 Not Found"),
    ("http://empty.example.com/", "GET", "", 503, "503 Service Unavailable"),
    (f"https://{CAFE}/a%2Fb", "GET", "", 400, "400 Bad Request"),
    ("http://api.example.com/v1/x", "POST", "X-Env: canary", None, "default/api-canary:80"),
    ("http://api.example.com/v1/x?beta=on", "GET", "", None, "default/api-canary:80"),
    ("http://api.example.com/v1/x", "POST", "", None, "default/api-svc:80"),
    ("http://nobody.example.com/", "GET", "", 404, "404 Not Found"),
]


@pytest.mark.parametrize(("url", "method", "headers", "status", "summary"), SEARCHES)
def test_search_is_routemodel_answer_explained(
    url: str, method: str, headers: str, status: int | None, summary: str
) -> None:
    model = build().model
    got = explain(model, url, method, headers, https_port=8443)
    assert "error" not in got, got
    req = got["request"]
    want = model.answer(
        req["host"],
        req["target"],
        scheme=req["scheme"],
        method=req["method"],
        headers=tuple((k, v) for k, v in req["headers"]),
    )
    assert (
        (got["outcome"], got["status"])
        == (want.outcome.value, want.status)
        == (
            got["outcome"],
            status,
        )
    )
    assert summary in got["summary"], got
    assert got["why"], got


def test_search_says_why_the_winner_won() -> None:
    model = build().model
    got = explain(model, "http://api.example.com/v1/x", "GET", "")
    text = seen(render_page(view(state()), got, {"url": "http://api.example.com/v1/x"}))
    assert "the Host api.example.com selects the virtual host api.example.com (exact)" in text
    assert (
        "Prefix /v1, method POST, header x-env: canary, http only | HTTPRoute default/api | "
        "needs method POST" in text
    )
    assert (
        "Prefix /v1, query beta=on, http only | HTTPRoute default/api | "
        "needs query parameter beta=on" in text
    )
    assert "Prefix /, http only | HTTPRoute default/api | wins" in text


@pytest.mark.parametrize(
    ("url", "method", "headers", "error"),
    [
        ("", "GET", "", "type a URL"),
        ("ftp://cafe.example.com/", "GET", "", "scheme must be http or https"),
        ("http://cafe.example.com:99999/", "GET", "", "not a URL"),
        (f"https://{CAFE}/", "GE T", "", "not an HTTP method"),
        (f"https://{CAFE}/", "GET", "no colon here", "header line 1"),
    ],
)
def test_search_refuses_what_is_no_request(url: str, method: str, headers: str, error: str) -> None:
    got = explain(build().model, url, method, headers)
    assert error in got["error"], got
    assert error in seen(render_page(view(state()), got))


# -- the server --------------------------------------------------------------------------------


def _fetch(
    url: str, method: str = "GET", host: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_the_server_is_read_only_and_loads_nothing_from_elsewhere() -> None:
    st = state()
    server = DashboardServer("127.0.0.1", free_port(), lambda: st)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        status, headers, body = _fetch(base + "/")
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in headers["content-security-policy"]
        assert b"<script" not in body and b"http://" not in body.split(b"<form")[0]
        status, headers, body = _fetch(base + "/dashboard.json?url=https://cafe.example.com/coffee")
        doc = json.loads(body)
        assert status == 200 and headers["content-type"] == "application/json"
        assert doc["search"]["summary"] == "proxied to default/coffee-svc:80"
        assert {k: v for k, v in doc.items() if k not in ("search", "generated_at")} == {
            k: v for k, v in view(st).items() if k != "generated_at"
        }
        status, _h, body = _fetch(base + "/?url=https%3A%2F%2Fcafe.example.com%2Fcoffee")
        assert "→ proxied to default/coffee-svc:80" in seen(body.decode())
        for method in ("POST", "PUT", "DELETE"):
            status, headers, _b = _fetch(base + "/", method)
            assert (status, headers["allow"]) == (405, "GET, HEAD"), method
        assert _fetch(base + "/metrics")[0] == 404
        status, _h, body = _fetch(base + "/", "HEAD")
        assert (status, body) == (200, b"")
        # On loopback, a page elsewhere cannot read it through a rebound DNS name.
        for host, want in (
            ("evil.example:80", 421),
            ("127.0.0.1.nip.io", 421),
            (f"localhost:{server.port}", 200),
            (f"[::1]:{server.port}", 200),
            ("10.1.2.3", 200),
        ):
            assert _fetch(base + "/dashboard.json", host=host)[0] == want, host
    finally:
        server.stop()


def test_bound_elsewhere_every_host_may_read_it() -> None:
    st = state()
    server = DashboardServer("0.0.0.0", free_port(), lambda: st)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/dashboard.json"
        assert _fetch(url, host="dashboard.example.com")[0] == 200
    finally:
        server.stop()


# -- the apply history -------------------------------------------------------------------------


class Recording:
    """An in-process backend: reloads on route changes, refuses the host 'refused.com'."""

    def __init__(self) -> None:
        self.applied: list[RouteModel] = []

    @hookimpl
    def polyingress_create_backend(self, settings: RunSettings) -> Recording:
        return self

    @hookimpl
    def polyingress_start(self, backend: Any, model: RouteModel) -> ApplyResult:
        self.applied.append(model)
        return ApplyResult(reloaded=True, reasons=("start",))  # type: ignore[arg-type]

    @hookimpl
    def polyingress_apply(
        self, backend: Any, model: RouteModel, previous: RouteModel, diff: ModelDiff
    ) -> ApplyResult:
        if any(v.host == "refused.com" for v in model.vhosts):
            raise ApplyError("host refused")
        self.applied.append(model)
        if diff.endpoints_only:
            return ApplyResult(runtime_changes=1)
        return ApplyResult(reloaded=True, reasons=("routes_changed",), detail="a path")  # type: ignore[arg-type]

    @hookimpl
    def polyingress_health(self, backend: Any) -> HealthReport:
        return HealthReport(live=True, ready=bool(self.applied))


def test_the_apply_history_says_what_was_applied_how_fast_and_whether_it_reloaded() -> None:
    backend = Recording()
    store = ObjectStore()
    base = [CLASS, service("s"), slice_("s", [("10.0.0.1", True)])]
    store.replace_many(upserts=[*base, ingress("i", rule("h.com", path("/", "s")))], deletes=())
    controller = Controller(
        RunSettings(backend="test"), plugin_manager(("test", backend)), store, debounce=0.01
    )
    controller.start()
    try:
        store.upsert(slice_("s", [("10.0.0.2", True)]))
        wait_until(lambda: len(controller.history()) == 2)
        store.upsert(ingress("i", rule("h.com", path("/", "s"), path("/b", "s"))))
        wait_until(lambda: len(controller.history()) == 3)
        store.upsert(ingress("r", rule("refused.com", path("/", "s"))))
        wait_until(lambda: len(controller.history()) == 4)
    finally:
        controller.stop()
    records = view(
        DashboardState(model=controller.last_good or RouteModel(), history=controller.history())
    )["applies"]
    newest_first = [(r["outcome"], r["reloaded"], r["reasons"]) for r in records]
    assert newest_first == [
        ("rejected", False, []),
        ("applied", True, ["routes_changed"]),
        ("applied", False, []),
        ("started", True, ["start"]),
    ]
    assert records[0]["error"] == "unknown object: host refused"
    assert records[2]["runtime_changes"] == 1 and "endpoints_changed" in records[2]["change"]
    assert records[1]["detail"] == "a path"
    for r in records:
        # Each figure is rounded to 0.1 ms on its own: the parts may add up to 0.15 ms more.
        assert r["total_ms"] + 0.15 >= r["build_ms"] + r["apply_ms"] > 0, r
    text = seen(render_page(view(DashboardState(model=RouteModel(), history=controller.history()))))
    assert "rejected | routes_added=1" in text.replace("vhosts_added=1, ", ""), text
    assert "yes: routes_changed" in text and "no (1 run-time changes)" in text
