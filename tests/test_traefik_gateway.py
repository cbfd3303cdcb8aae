"""The Traefik backend's Gateway API rows: the documentation oracle (tests/traefik_oracle.py)
routes every request of random worlds as RouteModel.answer says; golden files; hostile values.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from traefik_gateway_worlds import (
    MISSING,
    HTTPRoute,
    Match,
    Request,
    Rule,
    base_objects,
    everything_world,
    header_filter,
    ingress,
    requests,
)
from traefik_gateway_worlds import route_object as _route
from traefik_oracle import FALLBACK, Outcome, schema_validator
from traefik_oracle import Request as OracleRequest
from traefik_oracle import route as oracle_route

from polyingress.core import (
    BASIC_AUTH,
    BODY_SIZE,
    RATE_LIMIT,
    SOURCE_RANGES,
    ObjectStore,
    Route,
    RouteModel,
    build_model,
    format_duration,
)
from polyingress.core.pipeline.gateway import BACKEND_TLS
from polyingress.core.pipeline.translate.annotations import ANNOTATION_FEATURES
from polyingress.plugins.traefik.filters import timeout_ms
from polyingress.plugins.traefik.plugin import GATEWAY_FEATURES
from polyingress.plugins.traefik.render import RenderSettings, literal, render, routing_path

GOLDEN = Path(__file__).parent / "golden" / "traefik"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"
SETTINGS = RenderSettings(cert_dir="/var/lib/polyingress/certs", http_port=8080, https_port=8443)
REDIRECTS = (301, 302, 303, 307, 308)


def build(objects: list[dict[str, Any]]) -> RouteModel:
    store = ObjectStore()
    store.replace_many([*base_objects(), *objects], ())
    return build_model(store.snapshot()).model


def _joined(lines: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Header lines as name (lowercase) -> values joined with ","."""
    out: dict[str, list[str]] = {}
    for name, value in lines:
        out.setdefault(name.lower(), []).append(value)
    return {k: ",".join(v) for k, v in out.items()}


def _untimed(service: str | None) -> str | None:
    """A backend's service name without the copy a row's timeout makes of it."""
    return None if service is None else re.sub(r"-timeout-\d+ms$", "", service)


def expected_split(model: RouteModel, row: Route) -> tuple[dict[str, int], int]:
    """A split's shares as the Traefik backend serves them: the backends with a ready endpoint
    and a weight, and the weight of the invalid references (answered 500)."""
    shares: dict[str, int] = {}
    fail = 0
    for share in row.split:
        if share.weight <= 0:
            continue
        if share.backend is None:
            fail += share.weight
        elif model.backend(share.backend).available:
            shares[share.backend] = shares.get(share.backend, 0) + share.weight
    return shares, fail


def check_request(model: RouteModel, config: dict[str, Any], req: Request) -> None:
    """The oracle's outcome for ``req`` is what RouteModel.answer says."""
    answer = model.answer(
        req.host,
        req.target,
        scheme=req.scheme,
        method=req.method,
        headers=tuple((k.lower(), v) for k, v in req.headers),
    )
    entrypoint = "websecure" if req.scheme == "https" else "web"
    got = oracle_route(
        config,
        OracleRequest(
            host=req.host,
            path=req.target,
            entrypoint=entrypoint,
            method=req.method,
            headers=req.headers,
        ),
    )
    where = f"{req}: answer {answer}, Traefik {got}"
    if answer.status is not None:
        assert got.status == answer.status, where
        if answer.location is not None:
            assert got.location == answer.location, where
        return
    assert got.status == 200, where
    row = answer.route
    split = {_untimed(k): v for k, v in got.split}
    if row is not None and row.split:
        shares, fail = expected_split(model, row)
        if len(shares) == 1:
            assert (_untimed(got.service), split) == (next(iter(shares)), {}), where
        else:
            assert split == shares, where
        assert got.fail == ((fail, fail + sum(shares.values())) if fail else (0, 0)), where
    else:
        assert _untimed(got.service) == answer.backend and not got.split, where
        assert got.fail == (0, 0), where
    # The time Traefik waits for the response headers: the row's timeout, else the ConfigMap's.
    timeout = row.timeout if row is not None else None
    read_ms = timeout_ms(timeout) if timeout else model.settings.proxy_read_timeout
    assert got.read_timeout == format_duration(read_ms), where
    assert got.mirrors == (row.mirrors if row is not None else ()), where
    rewritten = row is not None and row.rewrite is not None and row.rewrite.path is not None
    assert got.path == (answer.path if rewritten else None), where
    host = answer.host
    if row is not None and row.request_headers is not None:
        sent = {k: [v] for k, v in _joined(req.headers).items()}
        want = {k: ",".join(v) for k, v in row.request_headers.apply(sent).items()}
        # A header filter's Host is the request's host (the one header Go keeps apart).
        host = host or dict(row.request_headers.set).get("host")
        want.pop("host", None)
        given = _joined(got.request_headers)
        given.pop("x-forwarded-port")  # Traefik's own, set by the entry point's middleware
        assert given == want, where
    assert got.host == host, where
    want_response = row.response_headers.apply({}) if row and row.response_headers else {}
    assert _response(got.response_changes) == want_response, where


def _response(changes: tuple[tuple[str, str, str], ...]) -> dict[str, list[str]]:
    """The response headers the changes leave on a response that had none."""
    out: dict[str, list[str]] = {}
    for op, name, value in sorted(changes, key=lambda c: ("set", "add", "remove").index(c[0])):
        if op == "set":
            out[name] = [value]
        elif op == "add":
            out.setdefault(name, []).append(value)
        else:
            out.pop(name, None)
    return out


def check_world(model: RouteModel) -> dict[str, Any]:
    rendered = render(model, SETTINGS, FALLBACK)
    schema_validator().validate(rendered.config)
    assert yaml.safe_load(rendered.text) == rendered.document
    for req in requests():
        check_request(model, rendered.config, req)
    return rendered.config


# ---------------------------------------------------------------------------------------------
# Random worlds
# ---------------------------------------------------------------------------------------------

HOSTNAMES = ["a.com", "*.a.com", "b.a.com", "*.b.a.com", "c.b.a.com"]
SERVICES = ["s0", "s1", "s2", "down", MISSING]

matches = st.builds(
    Match,
    path=st.sampled_from(["/", "/foo", "/foo/bar"]),
    ptype=st.sampled_from(["Exact", "PathPrefix"]),
    method=st.sampled_from([None, None, "GET", "POST"]),
    headers=st.sampled_from(
        [(), (), (("Version", "one"),), (("version", "two"),), (("Version", "two"), ("Color", "x"))]
    ),
    query=st.sampled_from([(), (), (("q", "1"),), (("q", "1"), ("r", "2"))]),
)
backends = st.one_of(
    st.just(()),
    st.tuples(st.tuples(st.sampled_from(SERVICES), st.just(1))),
    st.lists(st.tuples(st.sampled_from(SERVICES), st.integers(0, 3)), min_size=2, max_size=3).map(
        tuple
    ),
)


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    ms = tuple(draw(st.lists(matches, min_size=1, max_size=3)))
    prefix_only = all(m.ptype == "PathPrefix" for m in ms)
    path_change = st.sampled_from(
        [{"type": "ReplaceFullPath", "replaceFullPath": "/new"}]
        + (
            [
                {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"},
                {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"},
            ]
            if prefix_only
            else []
        )
    )
    if draw(st.integers(0, 4)) == 0:
        redirect: dict[str, Any] = {"statusCode": draw(st.sampled_from(REDIRECTS))}
        for key, values in (
            ("hostname", ["r.org"]),
            ("scheme", ["http", "https"]),
            ("port", [80, 443, 8443]),
        ):
            if draw(st.booleans()):
                redirect[key] = draw(st.sampled_from(values))
        if draw(st.booleans()):
            redirect["path"] = draw(path_change)
        return Rule(ms, (), ({"type": "RequestRedirect", "requestRedirect": redirect},))
    filters: list[dict[str, Any]] = []
    if draw(st.booleans()):
        filters.append(
            draw(
                st.sampled_from(
                    [
                        header_filter(
                            "RequestHeaderModifier",
                            set={"X-Set": "s"},
                            add={"Version": "added"},
                            remove=["Color"],
                        ),
                        header_filter(
                            "RequestHeaderModifier",
                            set={"Version": "", "X.Dot": "d"},
                            remove=["X~"],
                        ),
                        header_filter("RequestHeaderModifier", set={"Host": "h.org"}),
                        header_filter("RequestHeaderModifier", remove=["Version", "Color"]),
                    ]
                )
            )
        )
    if draw(st.booleans()):
        filters.append(
            header_filter(
                "ResponseHeaderModifier",
                set={"X-R": "r", "X-E": ""},
                add={"X-A": "a"},
                remove=["Server"],
            )
        )
    rewrite: dict[str, Any] = {}
    if draw(st.booleans()):
        rewrite["hostname"] = "rewritten.org"
    if draw(st.booleans()):
        rewrite["path"] = draw(path_change)
    if rewrite:
        filters.append({"type": "URLRewrite", "urlRewrite": rewrite})
    if draw(st.integers(0, 4)) == 0:
        filters.append(
            {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "s2", "port": 80}}}
        )
    timeout = draw(st.sampled_from([None, None, None, "1500ms", "2m"]))
    return Rule(ms, draw(backends), tuple(filters), timeout)


@st.composite
def httproutes(draw: st.DrawFn, i: int) -> HTTPRoute:
    return HTTPRoute(
        name=f"route{i}",
        rules=tuple(draw(st.lists(rules(), min_size=1, max_size=3))),
        hostnames=tuple(draw(st.lists(st.sampled_from(HOSTNAMES), max_size=2, unique=True))),
        section=draw(st.sampled_from([None, "http", "https"])),
        second=draw(st.integers(0, 3)),
    )


@st.composite
def worlds(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 4))
    objects = [draw(httproutes(i)).object() for i in range(count)]
    for i in range(draw(st.integers(0, 2))):
        host = draw(st.sampled_from(["a.com", "*.a.com", "b.a.com", None]))
        paths = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["/", "/foo", "/foo/bar"]),
                    st.sampled_from(["Prefix", "Exact"]),
                    st.sampled_from(["s0", "s1", "down"]),
                ),
                min_size=1,
                max_size=3,
                unique_by=lambda p: (p[0], p[1]),
            )
        )
        objects.append(ingress(f"ing{i}", host, paths, second=draw(st.integers(0, 3))))
    return objects


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=worlds())
def test_oracle_routes_random_gateway_worlds_as_the_core_answers(
    objects: list[dict[str, Any]],
) -> None:
    check_world(build(objects))


# ---------------------------------------------------------------------------------------------
# Chosen worlds: precedence, hosts, shadowing
# ---------------------------------------------------------------------------------------------


def test_everything_world_routes_as_the_core_answers() -> None:
    check_world(build(everything_world()))


def test_golden_gateway(validator: Any = None) -> None:
    rendered = render(build(everything_world()), SETTINGS, FALLBACK)
    path = GOLDEN / "gateway-everything.yaml"
    if UPDATE_GOLDEN:
        path.write_text(rendered.text)
    assert path.exists(), f"{path} is missing; run UPDATE_GOLDEN=1 pytest {__file__}"
    assert rendered.text == path.read_text(), f"differs from {path}"


def test_conditional_rows_of_one_path_keep_the_core_precedence() -> None:
    """More headers before fewer, a method before none, then the older route; every router of
    one path its own priority, in that order."""
    model = build(
        [
            _route(
                "old",
                Rule((Match("/", headers=(("Version", "one"),)),), (("s0", 1),)),
                hostnames=("a.com",),
                second=0,
            ),
            _route(
                "young",
                Rule((Match("/", headers=(("Color", "x"),)),), (("s1", 1),)),
                Rule((Match("/", headers=(("Color", "x"), ("Version", "one"))),), (("s2", 1),)),
                Rule((Match("/", method="GET"),), (("down", 1),)),
                hostnames=("a.com",),
                second=1,
            ),
        ]
    )
    config = check_world(model)
    routers = [r for r in config["http"]["routers"].values() if r["entryPoints"] == ["web"]]
    by_priority = sorted(routers, key=lambda r: -r["priority"])
    assert [r["service"].split("__")[1] for r in by_priority[:4]] == ["down", "s2", "s0", "s1"]
    assert len({r["priority"] for r in routers}) == len(routers)


def test_suffix_hosts_match_one_label_or_more_and_the_longer_suffix_first() -> None:
    model = build(
        [
            _route("short", Rule((Match("/"),), (("s0", 1),)), hostnames=("*.a.com",)),
            _route("long", Rule((Match("/x"),), (("s1", 1),)), hostnames=("*.b.a.com",)),
        ]
    )
    config = check_world(model)
    for host, service in (
        ("c.b.a.com", None),  # **.b.a.com alone answers: 404 for /
        ("d.c.b.a.com", None),
        ("b.a.com", "s0"),
        ("x.y.a.com", "s0"),
        ("a.com", None),
    ):
        got = oracle_route(config, OracleRequest(host=host, path="/"))
        assert got.service == (f"gw__{service}__80" if service else None), host
    got = oracle_route(config, OracleRequest(host="d.c.b.a.com", path="/x"))
    assert got.service == "gw__s1__80"


def test_host_less_httproute_rows_do_not_answer_for_named_hosts() -> None:
    """The catch-all host's HTTPRoute rows are its own: an Ingress host that does not match
    must not fall through to them (Traefik would, by priority, without a terminator)."""
    model = build(
        [
            _route("anyhost", Rule((Match("/"),), (("s2", 1),))),
            ingress("ing", "a.com", [("/only", "Prefix", "s0")]),
        ]
    )
    config = check_world(model)
    assert oracle_route(config, OracleRequest(host="a.com", path="/x")).status == 404
    assert oracle_route(config, OracleRequest(host="z.org", path="/x")).service == "gw__s2__80"


def test_a_conditional_row_is_not_outranked_by_a_merged_catch_all_row() -> None:
    """host a.com: a header row on / ; the catch-all Ingress has /global. The core's table:
    /global (longer) first. So the merged row must be rendered in the host's band."""
    model = build(
        [
            _route(
                "hdr",
                Rule((Match("/", headers=(("Version", "one"),)),), (("s0", 1),)),
                hostnames=("a.com",),
            ),
            ingress("catch-all", None, [("/global", "Prefix", "s1")]),
        ]
    )
    check_world(model)
    got = oracle_route(
        render(model, SETTINGS, FALLBACK).config,
        OracleRequest(host="a.com", path="/global/x", headers=(("Version", "one"),)),
    )
    assert got.service == "gw__s1__80"


# ---------------------------------------------------------------------------------------------
# Values: quoted and escaped, never interpreted
# ---------------------------------------------------------------------------------------------

HOSTILE = [
    "a`) || PathPrefix(`/",
    'x") || Host("evil.com',
    "back\\slash",
    "sp ace",
    "&& ! ( ) ,",
    "{{ .Values }} ${X} #c",
    '{{ env "HOME" }}',
    "{{{",
    "'quoted'",
    "- yes",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_header_value_matches_itself_only(value: str) -> None:
    model = build(
        [
            _route(
                "hostile",
                Rule(
                    (Match("/", headers=(("X-Token", value),)),),
                    (("s0", 1),),
                    (
                        header_filter(
                            "RequestHeaderModifier", set={"X-Echo": value}, add={"X-Add": value}
                        ),
                    ),
                ),
                hostnames=("a.com",),
            )
        ]
    )
    rendered = render(model, SETTINGS, FALLBACK)
    schema_validator().validate(rendered.config)
    assert yaml.safe_load(rendered.text) == rendered.document
    # Traefik runs the file through Go's text/template before reading it: a "{" of a value is
    # the YAML escape \x7b, so the only braces in the text are the empty mappings.
    assert rendered.text.replace("{}", "").count("{") == 0
    config = rendered.config

    def get(token: str | None) -> Outcome:
        headers = (("X-Token", token),) if token is not None else ()
        return oracle_route(config, OracleRequest(host="a.com", path="/", headers=headers))

    assert get(value).service == "gw__s0__80"
    assert _joined(get(value).request_headers)["x-echo"] == value
    for other in (None, value + "x", value[:-1], "evil.com", "a"):
        assert get(other).status == 404, other
    for host in ("evil.com", "b.com"):
        assert oracle_route(config, OracleRequest(host=host, path="/")).status == 404


def test_literal_is_a_go_string_literal() -> None:
    assert literal("/a.b") == "`/a.b`"
    assert literal("a`b") == '"a`b"'
    assert literal('a"b\\c d') == '"a\\"b\\\\c d"'
    assert literal("\x01\xff") == '"\\x01\\xff"'
    with pytest.raises(ValueError):
        literal("é€")


@pytest.mark.parametrize(
    ("path", "routing"),
    [
        ("/a", "/a"),
        ("/a%20b", "/a b"),
        ("/a%3Bb", "/a%3Bb"),
        ("/a%3bb", None),  # the core's requests only carry upper-case escapes
        ("/%61", None),  # an unreserved character: decoded before matching
        ("/a%22", '/a"'),
    ],
)
def test_rule_paths_are_traefiks_routing_paths(path: str, routing: str | None) -> None:
    assert routing_path(path) == routing


def test_declared_features_are_the_gateway_api_names() -> None:
    """Gateway API names and polyingress's own (a "/" in the name): capabilities and the
    annotations' parts of the route model, the request policies (core/pipeline/policy.py)
    among them."""
    assert GATEWAY_FEATURES[0] == "HTTPRoute"
    assert len(set(GATEWAY_FEATURES)) == len(GATEWAY_FEATURES)
    # Gateway API names, the polyingress capabilities (core BACKEND_TLS) and the annotations'
    # own parts of the route model (polyingress.io/<Name>)
    assert all(
        f.startswith("HTTPRoute") or f in ANNOTATION_FEATURES or f == BACKEND_TLS
        for f in GATEWAY_FEATURES
    )
    assert {SOURCE_RANGES, BODY_SIZE, BASIC_AUTH, RATE_LIMIT} <= set(GATEWAY_FEATURES)
