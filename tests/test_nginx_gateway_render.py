"""Gateway API rows in the nginx render (plugins/nginx/gateway.py): golden files, nginx -t
without warnings, hostile values, and a property test: for random tables of conditional rows
(paths, methods, headers, query parameters, listener schemes, redirects, 500 rows, Services
without endpoints) on an exact host, a suffix host, an Ingress wildcard sharing its name with a
suffix host and the catch-all, a simulator of nginx's selection (server, location, maps,
``error_page`` to named locations) answers every request as :meth:`RouteModel.answer` does.

Golden files are regenerated with ``UPDATE_GOLDEN=1 pytest tests/test_nginx_gateway_render.py``.
"""

from __future__ import annotations

import base64
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from livekit import needs
from nginx_oracle import (
    BACKEND_VARIABLE,
    LUA_UPSTREAM,
    NginxServer,
    Stmt,
    _rewrite,
    nginx_servers,
    parse_nginx,
    stmt_answer,
)
from test_nginx_lua import LUA
from test_nginx_render import GOLDEN, OPTS, UPDATE_GOLDEN, nginx_t

from polyingress.core import (
    BuildOptions,
    ObjectStore,
    RouteModel,
    build_model,
    fallback_certificate,
    self_signed,
)
from polyingress.core.sources.manifests import load_objects
from polyingress.plugins.nginx import lua_support
from polyingress.plugins.nginx.gateway import GATEWAY_FEATURES
from polyingress.plugins.nginx.lua_support import detect_lua
from polyingress.plugins.nginx.render import RenderCache, render

FIXTURE = Path(__file__).parent / "fixtures" / "nginx" / "gateway.yaml"
FEATURES = frozenset(GATEWAY_FEATURES)


def build(objects: list[dict[str, Any]]) -> RouteModel:
    store = ObjectStore()
    store.replace_many(upserts=objects, deletes=())
    return build_model(store.snapshot(), BuildOptions(features=FEATURES)).model


def fixture_model() -> RouteModel:
    return build(load_objects(FIXTURE))


# -- golden files ---------------------------------------------------------------------------------

GOLDEN_CASES = {"gateway": OPTS, "lua-gateway": replace(OPTS, lua=LUA)}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_gateway_config(case: str) -> None:
    text = render(fixture_model(), GOLDEN_CASES[case], fallback_certificate()).text
    golden = GOLDEN / f"{case}.conf"
    if UPDATE_GOLDEN:
        golden.write_text(text)
    assert golden.exists(), f"{golden} missing: run with UPDATE_GOLDEN=1"
    assert text == golden.read_text(), f"{case}: rendered config differs from {golden}"


@needs("nginx")
def test_golden_gateway_config_passes_nginx_t_without_warnings(tmp_path: Path) -> None:
    config = render(fixture_model(), OPTS, fallback_certificate())
    result = nginx_t(tmp_path, config, (GOLDEN / "gateway.conf").read_text())
    assert result.returncode == 0, result.stdout
    assert "[warn]" not in result.stdout, result.stdout


@needs("nginx-lua")
def test_golden_lua_gateway_config_passes_nginx_t_without_warnings(tmp_path: Path) -> None:
    support = detect_lua("nginx")
    local = replace(
        LUA,
        modules=support.modules,
        package_dir=str(lua_support.LUA_PACKAGE_DIR),
        channel_socket=str(tmp_path / "channel" / "nginx.sock"),
    )
    (tmp_path / "channel").mkdir(mode=0o700)
    (tmp_path / "conf").mkdir()
    config = render(fixture_model(), replace(OPTS, lua=local), fallback_certificate())
    text = (GOLDEN / "lua-gateway.conf").read_text()
    for old, new in (
        (LUA.package_dir, local.package_dir),
        (LUA.channel_socket, local.channel_socket),
        *zip(LUA.modules, local.modules, strict=True),
    ):
        text = text.replace(old, new)
    result = nginx_t(tmp_path, config, text)
    assert result.returncode == 0, result.stdout
    assert "[warn]" not in result.stdout, result.stdout


def test_ingress_only_models_render_as_before() -> None:
    """No Gateway API row, no Gateway API line: the Ingress golden files stay as they were
    (checked by test_nginx_render); here, that none of this module's names appears."""
    objects = [o for o in load_objects(FIXTURE) if o["kind"] not in ("HTTPRoute", "Gateway")]
    text = render(build(objects), OPTS, fallback_certificate()).text
    for name in ("polyingress_dollar", "error_page", "@polyingress_", "variables_hash"):
        assert name not in text


# -- hostile values -------------------------------------------------------------------------------

HOSTILE = 'a $b "q" \\x {;}#\' ${x} $1'


def _route(name: str, rule: dict[str, Any], hostnames: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"parentRefs": [{"name": "gw"}], "rules": [rule]}
    if hostnames is not None:
        spec["hostnames"] = hostnames
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": "gw"},
        "spec": spec,
    }


def _statements(stmts: list[Stmt]) -> list[Stmt]:
    out = []
    for s in stmts:
        out.append(s)
        out += _statements(s.block or [])
    return out


def test_hostile_values_stay_literal_tokens(tmp_path: Path) -> None:
    """Every value goes through quote(): nginx's tokenizer reads back exactly the value, with
    each ``$`` as ``${polyingress_dollar}`` where nginx interpolates, and regexes of escaped
    literals only."""
    base = [o for o in load_objects(FIXTURE) if o["kind"] != "HTTPRoute"]
    rule = {
        "matches": [
            {
                "path": {"type": "PathPrefix", "value": "/a$b'c;d"},
                "headers": [{"name": "X-H", "value": HOSTILE}],
            }
        ],
        "filters": [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {
                    "set": [{"name": "X-Set", "value": HOSTILE}],
                    "add": [{"name": "X-Add", "value": HOSTILE}],
                },
            },
            {
                "type": "ResponseHeaderModifier",
                "responseHeaderModifier": {"add": [{"name": "X-R", "value": HOSTILE}]},
            },
            {
                "type": "URLRewrite",
                "urlRewrite": {
                    "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/n$1'(x)"}
                },
            },
        ],
        "backendRefs": [{"name": "v1", "port": 8080}],
    }
    redirect = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/r"}}],
        "filters": [
            {
                "type": "RequestRedirect",
                "requestRedirect": {
                    "path": {"type": "ReplaceFullPath", "replaceFullPath": "/x$host;(y)"}
                },
            }
        ],
    }
    model = build([*base, _route("h", rule, ["h.example"]), _route("r", redirect, ["h.example"])])
    config = render(model, OPTS, fallback_certificate())
    stmts = _statements(parse_nginx(config.text))
    escaped = HOSTILE.replace("$", "${polyingress_dollar}")

    def args(name: str, first: str) -> list[str]:
        found = [s.args for s in stmts if s.name == name and s.args[1].lower() == first.lower()]
        assert found, f"no {name} {first}"
        return found[0]

    assert args("proxy_set_header", "X-Set")[2] == escaped
    assert args("add_header", "X-R")[2] == escaped
    locations = [s for s in stmts if s.name == "location" and s.args[-1] == "/a$b'c;d/"]
    # (the HTTPS server of h.example answers every path alike: one location)
    assert [loc.args[1] for loc in locations] == ["^~"]
    (header_map,) = [s for s in stmts if s.name == "map" and s.args[1] == "$http_x_h"]
    regex = next(e.args[0] for e in header_map.block or [] if e.args[0].startswith("~"))
    assert re.fullmatch(regex[1:], HOSTILE) and not re.fullmatch(regex[1:], HOSTILE + "x")
    returned = {s.args[2] for s in stmts if s.name == "return" and s.args[1] == "302"}
    # (h.example is on the fixture's HTTP listener only)
    assert returned == {"http://$host/x${polyingress_dollar}host;(y)$is_args$args"}
    (rewrite,) = [s.args for s in stmts if s.name == "rewrite" and s.args[1] != "^"]
    matched = re.fullmatch(rewrite[1], "/a$b'c;d/x")
    assert matched is not None and matched.group(1) == "/x"
    assert rewrite[2:] == ["/n${polyingress_dollar}1'(x)$1", "break"]
    if shutil.which("nginx") is not None:
        result = nginx_t(tmp_path, config)
        assert result.returncode == 0, result.stdout
        assert "[warn]" not in result.stdout, result.stdout


# -- scale: the variables hash -------------------------------------------------------------------


@needs("nginx")
def test_many_conditional_rows_build_every_hash_without_warnings(tmp_path: Path) -> None:
    """1,500 header matches, query matches and methods on 500 hosts: every condition is a map
    variable; nginx -t must not warn about its hashes (notes §6)."""
    base = [o for o in load_objects(FIXTURE) if o["kind"] != "HTTPRoute"]
    routes = []
    for i in range(500):
        rule = {
            "matches": [
                {
                    "path": {"type": "PathPrefix", "value": f"/p{i}"},
                    "headers": [{"name": f"x-header-{i}", "value": f"value-{i}"}],
                },
                {
                    "path": {"type": "PathPrefix", "value": f"/p{i}"},
                    "queryParams": [{"name": f"q{i}", "value": str(i)}],
                },
                {"path": {"type": "PathPrefix", "value": "/"}, "method": "POST"},
            ],
            "backendRefs": [{"name": "v1", "port": 8080}],
        }
        routes.append(_route(f"r{i}", rule, [f"host-{i}.a-rather-long-domain-name.example"]))
    config = render(build([*base, *routes]), OPTS, fallback_certificate())
    result = nginx_t(tmp_path, config)
    assert result.returncode == 0, result.stdout
    assert "[warn]" not in result.stdout, result.stdout


# -- property test: nginx's selection against the core ------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z0-9_]+)")


class Variables(dict[str, str]):
    """nginx variables of one request, maps evaluated on first use as nginx does."""

    def __init__(
        self,
        http: Stmt,
        request: dict[str, str],
        headers: dict[str, str],
        unready: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(request)
        self.maps = {m.args[2]: m for m in http.children("map")}
        self.headers = headers
        self.unready = unready

    def __missing__(self, name: str) -> str:
        if name.startswith("$http_"):
            wanted = name[len("$http_") :]
            value = next(
                (v for k, v in self.headers.items() if k.lower().replace("-", "_") == wanted), ""
            )
        elif name in self.maps:
            value = self._map(self.maps[name])
        else:
            raise KeyError(name)
        self[name] = value
        return value

    def interpolate(self, text: str) -> str:
        return _VAR.sub(lambda m: self["$" + (m.group(1) or m.group(2))], text)

    def _map(self, m: Stmt) -> str:
        source = self.interpolate(m.args[1])
        default = ""
        for entry in m.block or []:
            key, value = entry.args[0], entry.args[1]
            if key == "default":
                default = value
            elif key.startswith("~"):
                if source and re.search(key[1:], source):
                    return self.interpolate(value)
            elif key == source:
                return self.interpolate(value)
        return self.interpolate(default)


def _rewrite_phase(stmts: list[Stmt], variables: Variables) -> tuple[str | None, str | None]:
    """The oracle's rewrite phase (set, if, return; the proxy_pass an ``if`` lends), ended by
    a ``rewrite ... break`` (taken as matching: the renderer's always do where they stand), as
    nginx ends the rewrite directives there: a ``set`` after it never runs."""
    end = next(
        (i for i, s in enumerate(stmts) if s.name == "rewrite" and s.args[-1] == "break"),
        len(stmts),
    )
    return _rewrite(stmts[:end], variables)


def _proxied(upstream: str, variables: Variables) -> str:
    """The backend a ``proxy_pass`` reaches: Lua mode's one upstream proxies to the backend
    the location named in ``$polyingress_backend``, the balancer answers 503 for one without a
    ready endpoint (``unready``)."""
    if upstream != LUA_UPSTREAM:
        return upstream
    backend = variables[BACKEND_VARIABLE]
    return "503" if backend in variables.unready else backend


def _server(servers: list[NginxServer], port: int, host: str) -> NginxServer:
    candidates = [s for s in servers if port in s.ports]
    exact = [s for s in candidates if host in s.names]
    wildcards = [
        (len(n), i)
        for i, s in enumerate(candidates)
        for n in s.names
        if n.startswith("*.") and host.endswith(n[1:])
    ]
    if exact:
        return exact[0]
    if wildcards:
        return candidates[max(wildcards)[1]]
    return next(s for s in candidates if port in s.default_ports)


def simulate(
    servers: list[NginxServer],
    port: int,
    host: str,
    target: str,
    method: str,
    headers: dict[str, str],
    scheme: str,
    unready: frozenset[str] = frozenset(),
) -> str:
    """What nginx answers: a status, or the upstream a request is proxied to (Lua mode: the
    backend, 503 for the ``unready`` ones)."""
    path, _, args = target.partition("?")
    server = _server(servers, port, host)
    assert server.http is not None
    variables = Variables(
        server.http,
        {
            "$host": host,
            "$request_method": method,
            "$args": args,
            "$uri": path,
            "$request_uri": target,
            "$scheme": scheme,
            "$polyingress_bad_path": "0",
        },
        headers,
        unready,
    )
    rewrites = [s for s in server.stmt.block or [] if s.name in ("set", "if", "return")]
    answer, _lent = _rewrite_phase(rewrites, variables)
    if answer is not None:
        return answer
    locations = [loc for loc in server.locations if not loc.args[1].startswith("@")]
    exact = [loc for loc in locations if loc.args[1:] == ["=", path]]
    if exact:
        location = exact[0]
    else:
        prefixes = [
            loc for loc in locations if loc.args[1] != "=" and path.startswith(loc.args[-1])
        ]
        location = max(prefixes, key=lambda loc: len(loc.args[-1]))
    answer, lent = _rewrite_phase(location.block or [], variables)
    if answer == "418":
        (page,) = location.children("error_page")
        assert page.args[1:3] == ["418", "="], page.args
        name = variables.interpolate(page.args[3])
        (location,) = [loc for loc in server.locations if loc.args[1] == name]
        answer, lent = _rewrite_phase(location.block or [], variables)
    if answer is not None:
        return answer
    if lent is not None:
        return _proxied(lent, variables)
    proxy = stmt_answer(next(s for s in location.block or [] if s.name == "proxy_pass"))
    return _proxied(proxy, variables)


CERT = self_signed("h.example")
PATHS = ["/", "/a", "/a/b", "/b"]
HEADERS = [("Version", "one"), ("Version", "two"), ("Color", "red")]
QUERIES = [("q", "1"), ("q", "2"), ("r", "")]
ACTIONS = ["v1", "v2", "empty", "missing", "redirect", "none"]

rules = st.lists(
    st.fixed_dictionaries(
        {
            "path": st.sampled_from(PATHS),
            "type": st.sampled_from(["Exact", "PathPrefix"]),
            "method": st.sampled_from([None, None, "GET", "POST"]),
            "headers": st.lists(st.sampled_from(HEADERS), max_size=2, unique_by=lambda h: h[0]),
            "query": st.lists(st.sampled_from(QUERIES), max_size=2, unique_by=lambda q: q[0]),
            "action": st.sampled_from(ACTIONS),
            "section": st.sampled_from([None, None, "http", "https"]),
        }
    ),
    max_size=6,
)


_ROW: dict[str, Any] = {
    "path": "/",
    "type": "PathPrefix",
    "method": None,
    "headers": [],
    "query": [],
    "action": "v1",
    "section": None,
}


def _gateway_world(
    tables: dict[str | None, list[dict[str, Any]]], ingress_wildcard: bool, default: bool
) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gw"}},
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "polyingress"},
            "spec": {"controllerName": "polyingress.io/controller"},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "polyingress"},
            "spec": {"controller": "polyingress.io/controller"},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "gw"},
            "spec": {
                "gatewayClassName": "polyingress",
                "listeners": [
                    {"name": "http", "port": 80, "protocol": "HTTP"},
                    {
                        "name": "https",
                        "port": 443,
                        "protocol": "HTTPS",
                        "tls": {"certificateRefs": [{"kind": "Secret", "name": "cert"}]},
                    },
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": "cert", "namespace": "gw"},
            "data": {
                "tls.crt": base64.b64encode(CERT.cert_pem.encode()).decode(),
                "tls.key": base64.b64encode(CERT.key_pem.encode()).decode(),
            },
        },
    ]
    for name, ready in (("v1", True), ("v2", True), ("empty", False)):
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": "gw"},
                "spec": {"ports": [{"name": "http", "port": 8080}]},
            }
        )
        objs.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": name,
                    "namespace": "gw",
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080}],
                "endpoints": [{"addresses": ["10.9.0.1"], "conditions": {"ready": ready}}],
            }
        )
    n = 0
    for host, table in tables.items():
        for rule in table:
            match: dict[str, Any] = {"path": {"type": rule["type"], "value": rule["path"]}}
            if rule["method"]:
                match["method"] = rule["method"]
            if rule["headers"]:
                match["headers"] = [{"name": k, "value": v} for k, v in rule["headers"]]
            if rule["query"]:
                match["queryParams"] = [{"name": k, "value": v} for k, v in rule["query"]]
            spec: dict[str, Any] = {"matches": [match]}
            action = rule["action"]
            if action == "redirect":
                spec["filters"] = [
                    {"type": "RequestRedirect", "requestRedirect": {"statusCode": 301}}
                ]
            elif action != "none":
                spec["backendRefs"] = [{"name": action, "port": 8080}]
            parent: dict[str, Any] = {"name": "gw"}
            if rule["section"]:
                parent["sectionName"] = rule["section"]
            route: dict[str, Any] = {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {
                    "name": f"r{n}",
                    "namespace": "gw",
                    "creationTimestamp": f"2026-01-01T00:00:{n:02d}Z",
                },
                "spec": {"parentRefs": [parent], "rules": [spec]},
            }
            if host is not None:
                route["spec"]["hostnames"] = [host]
            objs.append(route)
            n += 1
    # Two Ingress hosts alike but for their backends: one shared server block in Lua mode.
    ingress_rules: list[dict[str, Any]] = [
        {
            "host": f"i{i}.example",
            "http": {
                "paths": [
                    {
                        "path": "/a",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": name, "port": {"number": 8080}}},
                    }
                ]
            },
        }
        for i, name in ((1, "v2"), (2, "empty"))
    ]
    if ingress_wildcard:
        path = {
            "path": "/a",
            "pathType": "Prefix",
            "backend": {"service": {"name": "v2", "port": {"number": 8080}}},
        }
        ingress_rules.append({"host": "*.m.example", "http": {"paths": [path]}})
    if ingress_rules or default:
        spec = {"ingressClassName": "polyingress", "rules": ingress_rules}
        if default:
            spec["defaultBackend"] = {"service": {"name": "v1", "port": {"number": 8080}}}
        objs.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": "ing", "namespace": "gw"},
                "spec": spec,
            }
        )
    return objs


REQUEST_HOSTS = [
    "h.example",
    "g.example",
    "k.example",
    "i1.example",
    "i2.example",
    "a.s.example",
    "a.b.s.example",
    "a.m.example",
    "a.b.m.example",
    "other.example",
]
REQUEST_PATHS = ["/", "/a", "/a/", "/a/b", "/a/bc", "/ab", "/b/x", "/c"]
REQUEST_HEADERS: list[dict[str, str]] = [
    {},
    {"Version": "one"},
    {"Version": "two", "Color": "red"},
    {"Color": "red"},
]
REQUEST_QUERIES = ["", "?q=1", "?q=2&q=1", "?r&q=2"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    exact=rules,
    suffix=rules,
    mix=rules,
    catch_all=rules,
    ingress_wildcard=st.booleans(),
    default=st.booleans(),
    lua=st.booleans(),
)
@example(
    # A row per listener: h and g have an HTTP and an HTTPS block each, both shared.
    exact=[
        {**_ROW, "path": "/a", "action": "v1", "section": "http"},
        {**_ROW, "path": "/a", "action": "v2", "section": "https"},
        {**_ROW, "path": "/b", "action": "v2", "section": "https"},
    ],
    suffix=[],
    mix=[],
    catch_all=[],
    ingress_wildcard=False,
    default=False,
    lua=True,
)
def test_nginx_selection_answers_as_the_core(
    exact: list[dict[str, Any]],
    suffix: list[dict[str, Any]],
    mix: list[dict[str, Any]],
    catch_all: list[dict[str, Any]],
    ingress_wildcard: bool,
    default: bool,
    lua: bool,
) -> None:
    """Both upstream modes; in Lua mode hosts whose blocks differ only in name and backends
    share a server block (the backend from a map of $host): the Ingress hosts beside the Gateway
    API ones, and the Gateway API hosts h, g (h's rows with v1 and v2 swapped) and k (h's rows
    again), on HTTP and on HTTPS (a host's second shared block reads maps of its own)."""
    swap = {"v1": "v2", "v2": "v1"}
    swapped = [{**r, "action": swap.get(r["action"], r["action"])} for r in exact]
    tables = {
        "h.example": exact,
        "g.example": swapped,
        "k.example": exact,
        "*.s.example": suffix,
        "*.m.example": mix,
        None: catch_all,
    }
    model = build(_gateway_world(tables, ingress_wildcard, default))
    text = render(model, replace(OPTS, lua=LUA if lua else None), fallback_certificate()).text
    servers = nginx_servers(text)
    unready = frozenset(b.name for b in model.backends if not b.available)
    # h and k have the same rows: one block on each port in Lua mode, blocks of their own else.
    for server in servers:
        if "h.example" in server.names:
            assert ("k.example" in server.names) is lua, server.names
            if "g.example" in server.names:
                event("a Gateway API block shared by hosts with other backends")
    if "$polyingress_slot_1_" in text:
        event("a host's second shared block reads maps of its own")
    for scheme, port in (("http", OPTS.http_port), ("https", OPTS.https_port)):
        for host in REQUEST_HOSTS:
            for path in REQUEST_PATHS:
                for query in REQUEST_QUERIES:
                    for headers in REQUEST_HEADERS:
                        for method in ("GET", "POST"):
                            target = path + query
                            got = simulate(
                                servers, port, host, target, method, headers, scheme, unready
                            )
                            answer = model.answer(
                                host,
                                target,
                                scheme=scheme,
                                method=method,
                                headers=tuple((k.lower(), v) for k, v in headers.items()),
                            )
                            want = str(answer.status) if answer.status else answer.backend
                            assert got == want, (
                                f"{method} {scheme}://{host}{target} {headers}: nginx {got}, "
                                f"the core {want} ({answer})"
                            )


# -- the render cache with Gateway API hosts ----------------------------------------------------

# A row nginx cannot serve as the model says (a header name nginx drops): a render problem.
UNDERSCORE = _route(
    "under",
    {
        "matches": [
            {
                "path": {"type": "PathPrefix", "value": "/u"},
                "headers": [{"name": "x_u", "value": "1"}],
            }
        ],
        "backendRefs": [{"name": "v2", "port": 8080}],
    },
    ["p.example"],
)
# Mirrors and a weighted split: http-level splits (static mode) and mirror upstreams.
EXTRAS = _route(
    "extras",
    {
        "matches": [{"path": {"type": "PathPrefix", "value": "/x"}}],
        "filters": [
            {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "v2", "port": 8080}}}
        ],
        "backendRefs": [
            {"name": "v1", "port": 8080, "weight": 3},
            {"name": "v2", "port": 8080, "weight": 1},
        ],
    },
    ["q.example"],
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(
            rules,
            rules,
            rules,
            st.booleans(),
            st.booleans(),
            st.booleans(),
            st.sampled_from([None, "v1", "v2"]),
        ),
        min_size=2,
        max_size=4,
    ),
    lua=st.booleans(),
)
def test_a_render_through_the_cache_is_the_render_without_it(
    steps: list[
        tuple[
            list[dict[str, Any]],
            list[dict[str, Any]],
            list[dict[str, Any]],
            bool,
            bool,
            bool,
            str | None,
        ]
    ],
    lua: bool,
) -> None:
    """Worlds of Gateway API hosts (conditions, redirects, a host whose row is a render
    problem, mirrors and a weighted split), an Ingress wildcard beside a suffix host, Ingress
    hosts alike and the catch-all, a Service losing its ready endpoint (static mode renders
    splits and mirrors by it), changed step by step and rendered through one RenderCache:
    at every step the text and the problems are those of a render without it (the cache puts
    back the http-level maps, splits and problems of the Gateway API hosts it reuses)."""
    opts = replace(OPTS, lua=LUA if lua else None)
    cache = RenderCache()
    fallback = fallback_certificate()
    objects: list[dict[str, Any]] = []
    for exact, suffix, catch_all, wildcard, default, extra, down in steps:
        tables = {"h.example": exact, "*.s.example": suffix, None: catch_all}
        objects = _gateway_world(tables, wildcard, default)
        for obj in objects:
            if obj["kind"] == "EndpointSlice" and obj["metadata"]["name"] == down:
                obj["endpoints"][0]["conditions"]["ready"] = False
        objects += [UNDERSCORE, EXTRAS] if extra else [EXTRAS]
        model = build(objects)
        cached = render(model, opts, fallback, cache)
        plain = render(model, opts, fallback)
        assert cached.text == plain.text
        assert cached.problems == plain.problems
        assert any("x_u" in p for p in plain.problems) == extra
    # Not vacuous: the same world again is rendered from the cache alone.
    misses = cache.misses
    again = render(build(objects), opts, fallback, cache)
    assert again.text == cached.text and again.problems == cached.problems
    assert cache.misses == misses


def test_a_split_or_mirror_backend_losing_its_endpoints_renders_its_host_again() -> None:
    """Static mode renders a weighted split and a mirror by their backends' ready endpoints
    (503 without any, no copy to a mirror without one): the cached host depends on them."""
    cache = RenderCache()
    fallback = fallback_certificate()
    texts = []
    for down in (None, "v2", "v1", None):
        objects = [*_gateway_world({}, False, False), EXTRAS]
        for obj in objects:
            if obj["kind"] == "EndpointSlice" and obj["metadata"]["name"] == down:
                obj["endpoints"][0]["conditions"]["ready"] = False
        model = build(objects)
        text = render(model, OPTS, fallback, cache).text
        assert text == render(model, OPTS, fallback).text
        texts.append(text)
    assert texts[0] == texts[3] and len(set(texts)) == 3


PRINTABLE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
PATH_CHARS = "-ABZabz09/._~!$&'()*+,;=:@"
gateway_paths = st.lists(
    st.text(alphabet=PATH_CHARS.replace("/", ""), min_size=1, max_size=8).filter(
        lambda part: part not in (".", "..")  # dot segments: refused by the core
    ),
    min_size=1,
    max_size=3,
).map(lambda parts: "/" + "/".join(parts))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=PRINTABLE.filter(bool), value=PRINTABLE, path=gateway_paths)
def test_any_allowed_value_is_read_back_exactly(header: str, value: str, path: str) -> None:
    """Header match values and filter values of any printable ASCII, paths of any character
    the core allows: nginx's tokenizer reads back the value (``$`` as ``${polyingress_dollar}``
    where nginx interpolates), the match regex holds for the value and nothing longer, the
    location is the path."""
    base = [o for o in load_objects(FIXTURE) if o["kind"] != "HTTPRoute"]
    rule = {
        "matches": [
            {
                "path": {"type": "PathPrefix", "value": path},
                "headers": [{"name": "X-M", "value": header}],
            }
        ],
        "filters": [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"set": [{"name": "X-Set", "value": value}]},
            },
            {
                "type": "ResponseHeaderModifier",
                "responseHeaderModifier": {"add": [{"name": "X-R", "value": value}]},
            },
        ],
        "backendRefs": [{"name": "v1", "port": 8080}],
    }
    model = build([*base, _route("h", rule, ["h.example"])])
    assert any(r.request_headers for v in model.vhosts for r in v.routes), "rule not served"
    stmts = _statements(parse_nginx(render(model, OPTS, fallback_certificate()).text))
    escaped = value.replace("$", "${polyingress_dollar}")
    assert [s.args[2] for s in stmts if s.args[:2] == ["proxy_set_header", "x-set"]] == [escaped]
    assert [s.args[2] for s in stmts if s.args[:2] == ["add_header", "x-r"]] == [escaped]
    (header_map,) = [s for s in stmts if s.name == "map" and s.args[1] == "$http_x_m"]
    regex = next(e.args[0] for e in header_map.block or [] if e.args[0].startswith("~"))
    assert re.search(regex[1:], header) and not re.search(regex[1:], header + "x")
    locations = {s.args[-1] for s in stmts if s.name == "location"}
    assert path in locations and path + "/" in locations


def _alike(i: int, extra: str | None = None) -> dict[str, Any]:
    """An HTTPRoute of the HTTP listener only (Gateway API rows): ``/`` and ``/api`` to
    v1 and v2, swapped for odd ``i``; ``extra`` adds a path of its own."""
    a, b = ("v1", "v2") if i % 2 == 0 else ("v2", "v1")
    rules: list[dict[str, Any]] = [
        {"backendRefs": [{"name": a, "port": 8080}]},
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
            "backendRefs": [{"name": b, "port": 8080}],
        },
    ]
    if extra is not None:
        rules.append(
            {
                "matches": [{"path": {"type": "PathPrefix", "value": extra}}],
                "backendRefs": [{"name": "v2", "port": 8080}],
            }
        )
    route = _route(f"alike-{i}", rules[0], [f"r{i}.alike.example"])
    route["spec"]["rules"] = rules
    route["spec"]["parentRefs"] = [{"name": "gw", "sectionName": "http"}]
    return route


def test_hosts_with_gateway_api_rows_alike_share_one_block_in_lua_mode() -> None:
    """30 hosts whose HTTPRoutes differ only in their backends: one server block in Lua mode
    (a block each with static upstreams), each host's backends from maps of $host; an edit of
    one host, rendered through the cache, gives that host a block of its own and leaves the
    others shared, as a render without the cache does."""
    cache = RenderCache()
    fallback = fallback_certificate()
    lua = replace(OPTS, lua=LUA)
    hosts = [f"r{i}.alike.example" for i in range(30)]

    def blocks(text: str) -> list[list[str]]:
        servers = nginx_servers(text)
        return sorted(
            sorted(set(hosts) & set(s.names)) for s in servers if set(hosts) & set(s.names)
        )

    before = build([*_gateway_world({}, False, False), *(_alike(i) for i in range(30))])
    text = render(before, lua, fallback, cache).text
    assert blocks(text) == [sorted(hosts)]
    assert blocks(render(before, OPTS, fallback).text) == sorted([h] for h in hosts)
    servers = nginx_servers(text)
    for i, host in enumerate(hosts):
        for path, want in (("/", "v1"), ("/api/x", "v2"), ("/apix", "v1")):
            if i % 2:
                want = {"v1": "v2", "v2": "v1"}[want]
            got = simulate(servers, OPTS.http_port, host, path, "GET", {}, "http")
            assert got == f"gw__{want}__8080", (host, path, got)

    edited = build(
        [
            *_gateway_world({}, False, False),
            *(_alike(i, "/new" if i == 7 else None) for i in range(30)),
        ]
    )
    text = render(edited, lua, fallback, cache).text
    assert text == render(edited, lua, fallback).text
    assert blocks(text) == [
        sorted(h for h in hosts if h != "r7.alike.example"),
        ["r7.alike.example"],
    ]
    got = simulate(
        nginx_servers(text), OPTS.http_port, "r7.alike.example", "/new/x", "GET", {}, "http"
    )
    assert got == "gw__v2__8080"
