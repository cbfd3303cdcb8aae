"""The Gateway API rows in the Caddy document, without Caddy: the patterns mean what the core
means (query parameters as ``RouteModel.answer`` reads them, path rewrites as ``PathModifier``
applies them), splits are shared out by their weights and spread, wildcard hosts are tried
longest suffix first, the 500 server is listened on only when a split needs it. (The kit's
Gateway API cases prove the same live: test_caddy_gateway.py.)"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from typing import Any

import pytest
from polyingress_caddy.render import (
    ERRORS_SERVER,
    HTTP_SERVER,
    HTTPS_SERVER,
    SPLIT_SLOTS,
    RenderSettings,
    caddy_text,
    query_pattern,
    render,
    split_sequence,
)

from polyingress.core import (
    Backend,
    Endpoint,
    HeaderFilter,
    HeaderMatch,
    ObjectRef,
    PathModifier,
    PathModifierType,
    PathType,
    QueryMatch,
    Rewrite,
    Route,
    RouteModel,
    TLSBinding,
    VirtualHost,
    WeightedBackend,
    fallback_certificate,
)

SETTINGS = RenderSettings(
    admin_socket="/w/caddy-admin.sock", storage_dir="/w/caddy-data", errors_socket="/w/500.sock"
)
REF = ObjectRef(kind="HTTPRoute", namespace="ns", name="r")
BACKENDS = (
    Backend(name="a", namespace="ns", service="a", port="80", endpoints=(
        Endpoint(address="10.0.0.1", port=80), Endpoint(address="10.0.0.2", port=80))),
    Backend(name="b", namespace="ns", service="b", port="80", endpoints=(
        Endpoint(address="10.0.0.3", port=80),)),
)  # fmt: skip


def row(path: str = "/", **kw: Any) -> Route:
    kw.setdefault("backend", "a")
    return Route(path=path, path_type=PathType.PREFIX, source=REF, **kw)


def model(*routes: Route, host: str | None = "h.example.com", **kw: Any) -> RouteModel:
    return RouteModel(vhosts=(VirtualHost(host=host, routes=routes, **kw),), backends=BACKENDS)


def document(m: RouteModel) -> dict[str, Any]:
    return render(m, SETTINGS, fallback_certificate()).document


def table(m: RouteModel, server: str = HTTP_SERVER) -> list[dict[str, Any]]:
    """The rows of the model's (one) virtual host."""
    routes = document(m)["apps"]["http"]["servers"][server]["routes"]
    (inner,) = [r["handle"][0]["routes"] for r in routes if r["handle"][0]["handler"] == "subroute"]
    return list(inner)


NAMES = ("q", "qq", "a.b")
VALUES = ("1", "", "x-~_")
PARTS = ("q=1", "q=2", "q", "q=", "qq=1", "qq", "a.b=x-~_", "aXb=x-~_", "=1", "", "q=1=2", "Q=1")


@pytest.mark.parametrize(("name", "value"), list(itertools.product(NAMES, VALUES)))
def test_a_query_pattern_holds_where_the_core_routes(name: str, value: str) -> None:
    """Every query of up to three parts (as Python's re reads the pattern: RE2 reads these
    constructs alike) against the core's answer: the first parameter of the name, its value
    as sent."""
    m = model(row(query=(QueryMatch(name=name, value=value),)))
    pattern = re.compile(query_pattern(QueryMatch(name=name, value=value)))
    for n in range(1, 4):
        for parts in itertools.product(PARTS, repeat=n):
            query = "&".join(parts)
            core = m.answer("h.example.com", "/?" + query).status != 404
            assert (pattern.search(query) is not None) == core, (name, value, query)


def test_a_split_is_a_round_robin_over_a_spread_sequence() -> None:
    assert split_sequence([("a", 70), ("b", 30), ("c", 0)]).count("a") == 7
    seq = split_sequence([("a", 70), ("b", 30)])
    assert len(seq) == 10 and max(len(list(g)) for _k, g in itertools.groupby(seq)) <= 3
    big = split_sequence([("a", 333_333), ("b", 666_667), (None, 1)])
    assert len(big) <= SPLIT_SLOTS
    counts = Counter(big)
    assert abs(counts["a"] / len(big) - 1 / 3) < 1 / SPLIT_SLOTS and counts[None] == 1
    # any 100 consecutive requests of a cycle are within 2 % of the weights
    seq = split_sequence([("a", 37), ("b", 63)]) * 2
    for start in range(100):
        assert abs(seq[start : start + 100].count("a") - 37) <= 2
    assert split_sequence([("a", 0)]) == []


def test_split_upstreams_and_the_500_server_only_when_a_share_is_invalid() -> None:
    split = (WeightedBackend(backend="a", weight=2), WeightedBackend(backend="b", weight=1))
    doc = document(model(row(backend=None, split=split)))
    assert ERRORS_SERVER not in doc["apps"]["http"]["servers"]
    proxy = table(model(row(backend=None, split=split)))[0]["handle"][-1]
    dials = [u["dial"] for u in proxy["upstreams"]]
    assert Counter(dials) == {"10.0.0.1:80": 1, "10.0.0.2:80": 1, "10.0.0.3:80": 1}
    failing = (*split, WeightedBackend(backend=None, weight=3))
    m = model(row(backend=None, split=failing))
    servers = document(m)["apps"]["http"]["servers"]
    assert servers[ERRORS_SERVER]["listen"] == ["unix//w/500.sock"]
    assert servers[ERRORS_SERVER]["routes"][0]["handle"][0]["status_code"] == 500
    dials = [u["dial"] for u in table(m)[0]["handle"][-1]["upstreams"]]
    assert Counter(dials)["unix//w/500.sock"] == 3 and len(dials) == 6


def test_gateway_wildcards_are_tried_longest_suffix_first_by_host_and_by_sni() -> None:
    tls = TLSBinding(certificate=None, source=REF, ssl_redirect=False)
    hosts = ("**.example.com", "**.zz.example.com", "*.zz.example.com", "a.zz.example.com")
    m = RouteModel(
        vhosts=tuple(VirtualHost(host=h, routes=(row(),), tls=tls) for h in hosts),
        backends=BACKENDS,
    )
    doc = document(m)
    routes = doc["apps"]["http"]["servers"][HTTPS_SERVER]["routes"][3:7]  # after the path rule
    keys = [json.dumps(r["match"], sort_keys=True) for r in routes]
    assert "a.zz.example.com" in keys[0] and "*.zz.example.com" in keys[1]
    assert "zz\\\\.example" in keys[2] and "zz" not in keys[3]
    pattern = routes[2]["match"][0]["vars_regexp"]["{http.request.host}"]["pattern"]
    assert re.search(pattern, "A.B.ZZ.example.com.") and not re.search(pattern, "zz.example.com")
    policies = doc["apps"]["http"]["servers"][HTTPS_SERVER]["tls_connection_policies"]
    assert [list(p.get("match", {})) for p in policies] == [
        ["sni"], ["sni"], ["sni_regexp"], ["sni_regexp"], []
    ]  # fmt: skip
    assert "zz" in policies[2]["match"]["sni_regexp"]["pattern"]


@pytest.mark.parametrize(
    ("route_path", "kind", "value"),
    [
        ("/foo", PathModifierType.PREFIX, "/bar"),
        ("/foo/", PathModifierType.PREFIX, "/bar/"),
        ("/foo", PathModifierType.PREFIX, "/"),
        ("/", PathModifierType.PREFIX, "/bar"),
        ("/", PathModifierType.PREFIX, "/"),
        ("/foo", PathModifierType.FULL, "/a$1b"),
    ],
)
def test_a_path_rewrite_is_what_the_model_applies(
    route_path: str, kind: PathModifierType, value: str
) -> None:
    """The rewrite handler's find/replace (Go's ReplaceAllString: '$$' is '$'; Caddy's
    replacer: '\\{' is '{') gives PathModifier.apply's path."""
    modifier = PathModifier(type=kind, value=value)
    r = row(route_path, rewrite=Rewrite(path=modifier))
    handlers = table(model(r))[0]["handle"]
    (op,) = handlers[0]["path_regexp"]
    replace = op["replace"].replace("$$", "$").replace("\\{", "{").replace("\\}", "}")
    for path in ("/foo", "/foo/", "/foo/x/y", "/", "/x"):
        if not r.matches(path):
            continue
        got = re.sub(op["find"], lambda _m: replace, path, count=1)
        assert got == modifier.apply(path, r), (route_path, value, path)


def test_every_value_is_literal_to_caddys_replacer_and_regexps() -> None:
    value = "{env.HOME} \\{x} $1 *"
    r = row(
        headers=(HeaderMatch(name="x-a", value=value),),
        request_headers=HeaderFilter(set=(("x-s", value),), add=(("x-s", "2"),), remove=("x-r",)),
        response_headers=HeaderFilter(add=(("x-o", value),)),
        rewrite=Rewrite(hostname="h2.example.com"),
    )
    entry = table(model(r))[0]
    pattern = entry["match"][0]["header_regexp"]["x-a"]["pattern"]
    assert re.fullmatch(pattern, value) and not re.fullmatch(pattern, "/home \\{x} $1 *")
    kinds = [
        (h["handler"], sorted(h.get("request", h.get("response", {})))) for h in entry["handle"]
    ]
    assert kinds == [
        ("headers", ["add", "deferred"]),
        ("headers", ["set"]),
        ("headers", ["add", "delete"]),
        ("reverse_proxy", []),
    ]
    assert entry["handle"][1]["request"]["set"]["x-s"] == [caddy_text(value)]
    assert caddy_text(value) == "\\{env.HOME\\} \\\\{x\\} $1 *"
    assert entry["handle"][3]["headers"]["request"]["set"]["Host"] == ["h2.example.com"]


def test_a_removal_of_a_wildcard_name_answers_500_and_is_reported() -> None:
    r = row("/w", request_headers=HeaderFilter(remove=("*",)))
    config = render(model(r, row()), SETTINGS, fallback_certificate())
    assert config.refused == ((REF, "removing header '*' (Caddy reads '*' as a wildcard)"),)
    assert table(model(r, row()))[0]["handle"] == [
        {
            "handler": "static_response",
            "status_code": 500,
            "headers": {"Content-Type": ["text/plain; charset=utf-8"]},
            "body": "500 Internal Server Error\n",
        }
    ]


def test_rows_of_one_scheme_are_served_on_that_server_only() -> None:
    m = model(row("/s", schemes=("https",)), row("/", method="POST"), host=None)
    servers = document(m)["apps"]["http"]["servers"]
    plain = json.dumps(servers[HTTP_SERVER]["routes"])
    secure = json.dumps(servers[HTTPS_SERVER]["routes"])
    assert "^/s(?:[/?]|$)" not in plain.replace("\\\\", "\\")
    assert "^/s(?:[/?]|$)" in secure.replace("\\\\", "\\")
    assert '"method": ["POST"]' in plain
