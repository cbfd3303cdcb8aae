"""Ingress v1 semantics of the core model, table-driven, asserted on the model (not strings)."""

from __future__ import annotations

import base64
import random
from typing import Any

import pytest
from conftest import build
from kube_objects import CLASS, ingress, path, rule, service, slice_

from polyingress.core import PathType, RouteModel, Severity, self_signed
from polyingress.testing.cases import (
    CASES,
    DEFAULT_CASES,
    Case,
    default_backend_ingress,
    world,
)


def outcome(model: RouteModel, case: Case) -> str | int:
    """What a request gets according to the core's semantics (RouteModel.answer), written as the
    cases write it: the Service's name, or the status the proxy answers."""
    answer = model.answer(case.host, case.path, scheme=case.scheme, method=case.method)
    if answer.status is not None:
        return answer.status
    assert answer.backend is not None
    return model.backend(answer.backend).service


@pytest.mark.parametrize("case", CASES, ids=str)
def test_routing_world_resolves_per_spec(case: Case) -> None:
    assert outcome(build(world(8080)).model, case) == case.expect


@pytest.mark.parametrize("case", DEFAULT_CASES, ids=str)
def test_routing_world_with_default_backend(case: Case) -> None:
    result = build([*world(8080), default_backend_ingress()])
    assert outcome(result.model, case) == case.expect


def _resolve(objs: list[dict[str, Any]], host: str, p: str, **opts: Any) -> str | None:
    model = build([CLASS, *objs], **opts).model
    kind, _route, backend = model.resolve(host, p)
    if kind == "404":
        return None
    assert backend is not None
    return model.backend(backend).service


PATH_TABLE = [
    # (rules as (path, type, service), request path, expected service or None for 404)
    ([("/foo", "Prefix", "a")], "/foo", "a"),
    ([("/foo", "Prefix", "a")], "/foo/", "a"),
    ([("/foo", "Prefix", "a")], "/foo/bar", "a"),
    ([("/foo", "Prefix", "a")], "/foobar", None),
    ([("/foo/", "Prefix", "a")], "/foo", "a"),
    ([("/foo/", "Prefix", "a")], "/foobar", None),
    ([("/", "Prefix", "a")], "/anything/at/all", "a"),
    ([("/foo", "Exact", "a")], "/foo", "a"),
    ([("/foo", "Exact", "a")], "/foo/", None),
    ([("/foo/", "Exact", "a")], "/foo", None),
    ([("/foo", "Prefix", "a"), ("/foo", "Exact", "b")], "/foo", "b"),
    ([("/foo", "Prefix", "a"), ("/foo", "Exact", "b")], "/foo/x", "a"),
    ([("/foo", "Prefix", "a"), ("/foo/bar", "Prefix", "b")], "/foo/bar/x", "b"),
    ([("/foo", "Prefix", "a"), ("/foo/bar", "Prefix", "b")], "/foo/barx", "a"),
    ([("/aaa/bbb", "Prefix", "a")], "/aaa/bbbb", None),
    ([("/Foo", "Prefix", "a")], "/foo", None),
    ([("/", "ImplementationSpecific", "a")], "/x", "a"),
    ([("/foo", "ImplementationSpecific", "a")], "/foobar", None),
]


@pytest.mark.parametrize(
    ("rules", "request_path", "expected"),
    PATH_TABLE,
    ids=[f"{r[0]}->{r[1]}" for r in PATH_TABLE],
)
def test_path_matching(
    rules: list[tuple[str, str, str]], request_path: str, expected: str | None
) -> None:
    ing = ingress("i", rule("h.com", *(path(p, s, t) for p, t, s in rules)))
    assert _resolve([ing], "h.com", request_path) == expected


HOST_TABLE = [
    ("*.foo.com", "bar.foo.com", True),
    ("*.foo.com", "baz.bar.foo.com", False),
    ("*.foo.com", "foo.com", False),
    ("foo.com", "FOO.com", True),
    ("foo.com", "foo.com:8080", True),
    ("foo.com", "foo.com.", True),
    ("foo.com", "bar.com", False),
]


@pytest.mark.parametrize(("host", "request_host", "matches"), HOST_TABLE)
def test_host_matching(host: str, request_host: str, matches: bool) -> None:
    ing = ingress("i", rule(host, path("/", "svc")))
    assert (_resolve([ing], request_host, "/") == "svc") is matches


def test_exact_host_beats_wildcard_and_does_not_fall_through() -> None:
    objs = [
        ingress("a", rule("a.foo.com", path("/only", "exact-host"))),
        ingress("b", rule("*.foo.com", path("/", "wild"))),
    ]
    assert _resolve(objs, "a.foo.com", "/only/x") == "exact-host"
    assert _resolve(objs, "a.foo.com", "/other") is None
    assert _resolve(objs, "b.foo.com", "/only") == "wild"


def test_hostless_rules_apply_after_host_rules() -> None:
    objs = [
        ingress("a", rule("h.com", path("/a", "host-a"), path("/x", "host-x", "Exact"))),
        ingress("b", rule(None, path("/a/b", "any-ab"), path("/z", "any-z"), path("/", "any"))),
    ]
    assert _resolve(objs, "h.com", "/a/b/c") == "host-a"  # host rule wins, though shorter
    assert _resolve(objs, "h.com", "/z/1") == "any-z"
    assert _resolve(objs, "h.com", "/x") == "host-x"
    assert _resolve(objs, "h.com", "/x/y") == "any"
    assert _resolve(objs, "other.com", "/a/b/c") == "any-ab"


def test_several_ingresses_for_one_host_merge() -> None:
    objs = [
        ingress("a", rule("h.com", path("/a", "svc-a"))),
        ingress("b", rule("h.com", path("/b", "svc-b")), ns="other"),
    ]
    assert _resolve(objs, "h.com", "/a") == "svc-a"
    assert _resolve(objs, "h.com", "/b") == "svc-b"


@pytest.mark.parametrize("order", ["old-first", "new-first"])
def test_conflict_won_by_oldest_and_loser_warned(order: str) -> None:
    old = ingress("zzz-old", rule("h.com", path("/p", "old")), created="2026-01-01T00:00:00Z")
    new = ingress("aaa-new", rule("h.com", path("/p", "new")), created="2026-02-01T00:00:00Z")
    objs = [old, new] if order == "old-first" else [new, old]
    result = build([CLASS, *objs])
    assert result.model.backend(result.model.resolve("h.com", "/p")[2] or "").service == "old"
    (warning,) = [p for p in result.problems if p.reason == "Conflict"]
    assert warning.ref.name == "aaa-new"
    assert warning.severity is Severity.WARNING
    assert "Ingress default/zzz-old" in warning.message
    assert warning.field == "spec.rules[0].http.paths[0]"


def test_conflict_same_timestamp_decided_by_namespace_then_name() -> None:
    a = ingress("b", rule("h.com", path("/p", "from-ns-a")), ns="a")
    b = ingress("a", rule("h.com", path("/p", "from-ns-b")), ns="b")
    assert _resolve([b, a], "h.com", "/p") == "from-ns-a"


def test_different_path_types_on_same_path_do_not_conflict() -> None:
    objs = [ingress("a", rule("h.com", path("/p", "pre"), path("/p", "ex", "Exact")))]
    assert not [p for p in build([CLASS, *objs]).problems if p.reason != "BackendNotFound"]


def test_default_backend_from_ingress_and_flag() -> None:
    dflt = ingress("d", defaultBackend={"service": {"name": "dflt", "port": {"number": 80}}})
    flag = {"default_backend_service": ("default", "fallback")}
    assert build([CLASS, service("fallback"), dflt], **flag).model.default_backend == (
        "default__dflt__80"
    )
    assert build([CLASS, service("fallback")], **flag).model.default_backend == (
        "default__fallback__http"
    )
    assert build([CLASS]).model.default_backend is None


def test_missing_service_and_no_ready_endpoints_are_unavailable() -> None:
    objs = [
        ingress("i", rule("h.com", path("/missing", "nope"), path("/down", "down"))),
        service("down"),
        slice_("down", [("10.0.0.1", False), ("10.0.0.2", True, True)]),
    ]
    model = build([CLASS, *objs]).model
    missing = model.backend("default__nope__80")
    assert not missing.available and missing.problem == "Service default/nope not found"
    (warning,) = build([CLASS, *objs]).warnings
    assert str(warning) == (
        "Ingress default/i: spec.rules[0].http.paths[0].backend: Service default/nope not "
        "found; requests for this path get 503"
    )
    down = model.backend("default__down__80")
    assert not down.available and len(down.endpoints) == 2
    assert all(not e.ready for e in down.endpoints)


SERVICE_PORT_TABLE = [
    # service ports, slice ports, ingress port ref, expected endpoint port (None = no eps)
    (
        [{"name": "http", "port": 80, "targetPort": 8080}],
        [{"name": "http", "port": 8080}],
        80,
        8080,
    ),
    (
        [{"name": "http", "port": 80, "targetPort": "web"}],
        [{"name": "http", "port": 9000}],
        "http",
        9000,
    ),
    ([{"port": 80, "targetPort": 7000}], [{"port": 7000}], 80, 7000),
    (
        [{"name": "a", "port": 80, "targetPort": 1}, {"name": "b", "port": 81, "targetPort": 2}],
        [{"name": "a", "port": 1001}, {"name": "b", "port": 1002}],
        81,
        1002,
    ),
    ([{"name": "http", "port": 80}], [{"name": "http", "port": 8080}], 81, None),
    ([{"name": "http", "port": 80}], [{"name": "http", "port": 8080}], "grpc", None),
]


@pytest.mark.parametrize(
    ("svc_ports", "slice_ports", "ref", "expected"),
    SERVICE_PORT_TABLE,
    ids=["number", "name", "unnamed", "second-port", "unknown-number", "unknown-name"],
)
def test_service_port_resolution(
    svc_ports: list[dict[str, Any]],
    slice_ports: list[dict[str, Any]],
    ref: int | str,
    expected: int | None,
) -> None:
    objs = [
        ingress("i", rule("h.com", path("/", "s", port=ref))),
        service("s", svc_ports),
        slice_("s", [("10.1.1.1", True)], ports=slice_ports),
    ]
    (backend,) = build([CLASS, *objs]).model.backends
    if expected is None:
        assert not backend.endpoints and backend.problem
    else:
        assert [(e.address, e.port) for e in backend.endpoints] == [("10.1.1.1", expected)]


def test_legacy_endpoints_used_only_without_slices() -> None:
    legacy = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "s", "namespace": "default"},
        "subsets": [
            {
                "addresses": [{"ip": "10.2.0.1"}],
                "notReadyAddresses": [{"ip": "10.2.0.2"}],
                "ports": [{"name": "http", "port": 8080}],
            }
        ],
    }
    base = [CLASS, ingress("i", rule("h.com", path("/", "s"))), service("s"), legacy]
    (b,) = build(base).model.backends
    assert [(e.address, e.ready) for e in b.endpoints] == [("10.2.0.1", True), ("10.2.0.2", False)]
    (b,) = build([*base, slice_("s", [("10.3.0.1", True)])]).model.backends
    assert [e.address for e in b.endpoints] == ["10.3.0.1"]


def test_endpoints_merged_across_slices_and_sorted() -> None:
    objs = [
        ingress("i", rule("h.com", path("/", "s"))),
        service("s"),
        slice_("s", [("10.0.0.9", True), ("10.0.0.1", True)], name="s-1"),
        slice_("s", [("10.0.0.5", True), ("not-an-ip", True)], name="s-2"),
    ]
    (b,) = build([CLASS, *objs]).model.backends
    assert [e.address for e in b.ready_endpoints] == ["10.0.0.1", "10.0.0.5", "10.0.0.9"]


# -- IngressClass -----------------------------------------------------------------------------

CLASS_TABLE = [
    ({"cls": "polyingress"}, {}, True),
    ({"cls": "other"}, {}, False),
    ({"cls": None}, {}, False),
    ({"cls": None}, {"watch_ingress_without_class": True}, True),
    ({"cls": None, "annotations": {"kubernetes.io/ingress.class": "polyingress"}}, {}, True),
    ({"cls": None, "annotations": {"kubernetes.io/ingress.class": "nginx"}}, {}, False),
    ({"cls": "polyingress"}, {"controller_class": "example.com/other"}, False),
]


@pytest.mark.parametrize(("ing_kw", "opts", "served"), CLASS_TABLE)
def test_ingress_class_selection(
    ing_kw: dict[str, Any], opts: dict[str, Any], served: bool
) -> None:
    result = build([CLASS, ingress("i", rule("h.com", path("/", "s")), **ing_kw)], **opts)
    assert bool(result.served) is served
    assert bool(result.ignored) is not served
    assert bool(result.model.vhosts) is served


def test_default_ingress_class_annotation() -> None:
    default_class = {
        **CLASS,
        "metadata": {
            "name": "polyingress",
            "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
        },
    }
    result = build([default_class, ingress("i", rule("h.com", path("/", "s")), cls=None)])
    assert result.served


def test_invalid_ingress_of_other_class_is_ignored_silently() -> None:
    bad = ingress("i", rule("BAD HOST", path("/", "s")), cls="other")
    result = build([CLASS, bad])
    assert not result.problems and result.ignored


# -- validation -------------------------------------------------------------------------------

INVALID_TABLE = [
    ("host-uppercase", rule("Foo.com", path("/", "s")), "spec.rules[0].host"),
    ("host-space", rule("a b.com", path("/", "s")), "spec.rules[0].host"),
    ("host-ip", rule("10.0.0.1", path("/", "s")), "spec.rules[0].host"),
    ("host-double-wildcard", rule("*.*.foo.com", path("/", "s")), "spec.rules[0].host"),
    ("host-inner-wildcard", rule("a.*.foo.com", path("/", "s")), "spec.rules[0].host"),
    ("host-semicolon", rule("a.com;x", path("/", "s")), "spec.rules[0].host"),
    ("host-long-label", rule("a" * 64 + ".com", path("/", "s")), "spec.rules[0].host"),
    ("path-relative", rule("h.com", path("foo", "s")), "spec.rules[0].http.paths[0].path"),
    ("path-double-slash", rule("h.com", path("/a//b", "s")), "spec.rules[0].http.paths[0].path"),
    ("path-dotdot", rule("h.com", path("/a/../b", "s")), "spec.rules[0].http.paths[0].path"),
    ("path-dot", rule("h.com", path("/a/./b", "s")), "spec.rules[0].http.paths[0].path"),
    ("path-encoded-slash", rule("h.com", path("/a%2Fb", "s")), "spec.rules[0].http.paths[0].path"),
    ("path-space", rule("h.com", path("/a b", "s")), "spec.rules[0].http.paths[0].path"),
    ("path-quote", rule("h.com", path('/a"b', "s")), "spec.rules[0].http.paths[0].path"),
    ("path-brace", rule("h.com", path("/a{b}", "s")), "spec.rules[0].http.paths[0].path"),
    ("path-semicolon", rule("h.com", path("/a;b", "s")), "spec.rules[0].http.paths[0].path"),
    ("path-newline", rule("h.com", path("/a\nb", "s")), "spec.rules[0].http.paths[0].path"),
    ("path-backslash", rule("h.com", path("/a\\b", "s")), "spec.rules[0].http.paths[0].path"),
    ("path-dollar", rule("h.com", path("/a$b", "s")), "spec.rules[0].http.paths[0].path"),
    ("path-hash", rule("h.com", path("/a#b", "s")), "spec.rules[0].http.paths[0].path"),
    ("path-type", rule("h.com", path("/", "s", "Regex")), "spec.rules[0].http.paths[0].pathType"),
    (
        "port-range",
        rule("h.com", path("/", "s", port=70000)),
        "spec.rules[0].http.paths[0].backend.service.port.number",
    ),
    (
        "port-zero",
        rule("h.com", path("/", "s", port=0)),
        "spec.rules[0].http.paths[0].backend.service.port.number",
    ),
    (
        "port-name",
        rule("h.com", path("/", "s", port="Bad_Name")),
        "spec.rules[0].http.paths[0].backend.service.port.name",
    ),
    (
        "service-name",
        rule("h.com", path("/", "Bad.Svc")),
        "spec.rules[0].http.paths[0].backend.service.name",
    ),
]


@pytest.mark.parametrize(
    ("rule_obj", "field"),
    [(r, f) for _i, r, f in INVALID_TABLE],
    ids=[i for i, _r, _f in INVALID_TABLE],
)
def test_invalid_ingress_rejected_alone_naming_object_and_field(
    rule_obj: dict[str, Any], field: str
) -> None:
    good = ingress("good", rule("good.com", path("/", "s")))
    bad = ingress("bad", rule_obj, ns="team")
    result = build([CLASS, good, bad])
    assert [r.name for r in result.rejected] == ["bad"]
    assert [v.host for v in result.model.vhosts] == ["good.com"]
    (problem,) = result.errors
    assert problem.field == field
    assert str(problem).startswith(f"Ingress team/bad: {field}: ")


def test_trailing_slash_prefix_is_normalized_in_model() -> None:
    result = build([CLASS, ingress("i", rule("h.com", path("/a/", "s")))])
    (route,) = result.model.vhosts[0].routes
    assert (route.path, route.path_type) == ("/a", PathType.PREFIX)


# -- TLS --------------------------------------------------------------------------------------


def tls_secret(name: str, crt: str, key: str, stype: str = "kubernetes.io/tls") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": stype,
        "metadata": {"name": name, "namespace": "default"},
        "data": {
            "tls.crt": base64.b64encode(crt.encode()).decode(),
            "tls.key": base64.b64encode(key.encode()).decode(),
        },
    }


def _tls_ingress() -> dict[str, Any]:
    return ingress(
        "i",
        rule("h.com", path("/", "s")),
        tls=[{"hosts": ["h.com"], "secretName": "cert"}],
    )


def test_tls_secret_parsed_and_bound_to_host() -> None:
    c = self_signed("h.com", ("h.com",))
    result = build([CLASS, _tls_ingress(), tls_secret("cert", c.cert_pem, c.key_pem)])
    (cert,) = result.model.certificates
    assert cert.dns_names == ("h.com",) and cert.fingerprint == c.fingerprint
    assert result.model.vhosts[0].tls is not None
    assert result.model.vhosts[0].tls.certificate == "default__cert"
    assert [p.reason for p in result.problems] == ["BackendNotFound"]


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        (None, "not found"),
        ("mismatch", "does not match"),
        ("garbage", "not valid base64"),
        ("opaque", "expected 'kubernetes.io/tls'"),
        ("not-pem", "not a PEM certificate"),
    ],
)
def test_bad_tls_secret_falls_back_with_warning(secret: str | None, why: str) -> None:
    a, b = self_signed("h.com"), self_signed("other")
    objs: list[dict[str, Any]] = [CLASS, _tls_ingress()]
    if secret == "mismatch":
        objs.append(tls_secret("cert", a.cert_pem, b.key_pem))
    elif secret == "garbage":
        s = tls_secret("cert", a.cert_pem, a.key_pem)
        s["data"]["tls.crt"] = "!!!not base64!!!"
        objs.append(s)
    elif secret == "opaque":
        objs.append(tls_secret("cert", a.cert_pem, a.key_pem, stype="Opaque"))
    elif secret == "not-pem":
        objs.append(tls_secret("cert", "hello", a.key_pem))
    result = build(objs)
    assert result.served and not result.model.certificates
    vhost = result.model.vhosts[0]
    assert vhost.tls is not None and vhost.tls.certificate is None  # fallback certificate
    (problem,) = [p for p in result.warnings if p.reason == "InvalidSecret"]
    assert why in problem.message
    assert problem.field == "spec.tls[0].secretName"


def test_expired_certificate_is_served_with_warning() -> None:
    c = self_signed("h.com", days=-1)
    result = build([CLASS, _tls_ingress(), tls_secret("cert", c.cert_pem, c.key_pem)])
    assert result.model.certificates
    assert [p.reason for p in result.warnings if p.reason != "BackendNotFound"] == [
        "CertificateExpired"
    ]


# -- determinism ------------------------------------------------------------------------------


def test_same_objects_in_any_order_give_the_same_model() -> None:
    objs = [*world(8080), default_backend_ingress()]
    first = build(objs).model
    for seed in range(5):
        shuffled = list(objs)
        random.Random(seed).shuffle(shuffled)
        again = build(shuffled).model
        assert again == first
        assert again.model_hash == first.model_hash


def test_model_is_immutable_and_hashable() -> None:
    model = build(world(8080)).model
    with pytest.raises(AttributeError):
        model.vhosts = ()  # type: ignore[misc]
    assert hash(model) == hash(build(world(8080)).model)
