"""ingress-nginx annotations in the builder: what a backend lacking a feature gets, which
annotations reject an Ingress, canary and alias merge rules, problems naming the key."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from polyingress.core import BuildOptions, HeaderMatch, ObjectStore, build_model
from polyingress.core.pipeline.model import Outcome, PathType
from polyingress.core.pipeline.problems import Severity
from polyingress.core.pipeline.translate.annotations import (
    ANNOTATION_SUPPORT,
    HEADER_REGEX,
    Support,
    policy_of,
)
from polyingress.testing.annotation_cases import NAMESPACE, base_objects, ingress

ALL_GATEWAY = frozenset(
    {
        "HTTPRoute",
        "HTTPRoutePathRewrite",
        "HTTPRouteHostRewrite",
        "HTTPRoutePathRedirect",
        "HTTPRouteSchemeRedirect",
        "HTTPRoutePortRedirect",
        "HTTPRoute303RedirectStatusCode",
        "HTTPRoute307RedirectStatusCode",
        "HTTPRoute308RedirectStatusCode",
        "HTTPRouteBackendTimeout",
    }
)


def build(*ingresses: dict[str, Any], **opts: Any) -> Any:
    store = ObjectStore()
    store.replace_many([*base_objects(8080), *ingresses], ())
    return build_model(store.snapshot(), BuildOptions(**opts))


def problems(result: Any) -> list[tuple[str, str, str, str]]:
    return [
        (p.severity.value, p.reason, p.ref.name, f"{p.field}: {p.message}") for p in result.problems
    ]


def ref_names(refs: Any) -> list[str]:
    return [r.name for r in refs]


def test_backend_without_the_feature_answers_500_and_says_why() -> None:
    ing = ingress("rw", "a.example.com", "/api", annotations={"rewrite-target": "/"})
    plain = ingress("plain", "a.example.com", "/web", created="2026-01-02T00:00:00Z")
    result = build(ing, plain, features=frozenset({"HTTPRoute"}), backend="tiny")
    model = result.model
    answer = model.answer("a.example.com", "/api/x")
    assert (answer.outcome, answer.status) == (Outcome.ERROR, 500)
    assert model.answer("a.example.com", "/web").proxied  # the other Ingress is untouched
    assert ref_names(result.served) == ["plain", "rw"]
    assert problems(result) == [
        (
            "error",
            "UnsupportedValue",
            "rw",
            "metadata.annotations['nginx.ingress.kubernetes.io/rewrite-target']: needs "
            "HTTPRoutePathRewrite, not served by the tiny backend; its paths answer 500",
        )
    ]


def test_backend_serving_no_gateway_rows_rejects_the_ingress() -> None:
    ing = ingress("rw", "a.example.com", "/api", annotations={"upstream-vhost": "b.example.com"})
    result = build(ing, features=frozenset(), backend="old")
    assert ref_names(result.rejected) == ["rw"]
    assert result.model.answer("a.example.com", "/api").status == 404
    (p,) = result.problems
    assert (p.severity, p.reason) == (Severity.ERROR, "UnsupportedAnnotation")
    assert "HTTPRoute, HTTPRouteHostRewrite, not served by the old backend" in p.message


def test_plain_annotations_need_nothing_of_a_backend() -> None:
    """ssl-redirect, server-alias, use-regex false, a canary weight 0: plain rows."""
    main = ingress("main", "a.example.com", "/", annotations={"server-alias": "b.example.com"})
    canary = ingress(
        "canary",
        "a.example.com",
        "/",
        "canary",
        annotations={"canary": "true", "canary-weight": "0"},
        created="2026-01-02T00:00:00Z",
    )
    result = build(main, canary, features=frozenset(), backend="old")
    assert not result.problems
    assert result.model.answer("b.example.com", "/x").backend == f"{NAMESPACE}__echo__80"


def test_canary_the_backend_cannot_serve_is_rejected_alone() -> None:
    main = ingress("main", "a.example.com", "/")
    canary = ingress(
        "canary",
        "a.example.com",
        "/",
        "canary",
        annotations={"canary": "true", "canary-weight": "50"},
        created="2026-01-02T00:00:00Z",
    )
    result = build(main, canary, features=frozenset(), backend="old")
    assert ref_names(result.rejected) == ["canary"]
    assert result.model.answer("a.example.com", "/").backend == f"{NAMESPACE}__echo__80"


@pytest.mark.parametrize(
    ("annotations", "severity", "served"),
    [
        ({"auth-type": "digest", "auth-secret": "users"}, "error", False),
        ({"backend-protocol": "FCGI"}, "error", False),
    ],
    ids=[
        "digest",
        "fcgi",
    ],
)
def test_unsupported_annotations_fail_closed_where_ignoring_opens_access(
    annotations: dict[str, str], severity: str, served: bool
) -> None:
    """Access control and the backend protocol reject the Ingress (served without them it
    would open access or speak the wrong protocol); the others are served without, warned."""
    result = build(ingress("web", "a.example.com", "/", annotations=annotations))
    assert ref_names(result.served) == (["web"] if served else [])
    found = [p for p in result.problems if p.reason == "UnsupportedAnnotation"]
    assert found and {p.severity.value for p in found} == {severity}
    assert all(
        p.field.startswith("metadata.annotations['nginx.ingress.kubernetes.io/") for p in found
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("rewrite-target", "/a b", "must be a path"),
        ("rewrite-target", "/$host", "'$' is only allowed as a capture reference"),
        ("app-root", "http://x/", "must be a path"),
        ("permanent-redirect", "ftp://x.example.com/", "absolute http:// or https:// URL"),
        ("permanent-redirect", "https://x.example.com$request_uri", "nginx variables"),
        ("permanent-redirect-code", "404", "out of range 300-308"),
        ("canary-weight", "-1", "not a whole number"),
        ("canary-by-header", "X_Canary", "write '-' for '_'"),
        ("canary-by-header-value", "a b", "may only hold"),
        ("upstream-vhost", "$host", "nginx variables"),
        ("upstream-vhost", "a.example.com:8080", "a port"),
        ("server-alias", "~^www\\d+\\.example\\.com$", "regular expression server names"),
        ("proxy-read-timeout", "60s", "not a whole number"),
        ("proxy-body-size", "8mb", "not a size"),
        ("whitelist-source-range", "10.0.0.0/33", "not a CIDR"),
        ("allowlist-source-range", "10.0.0.0/8,fe80::1%eth0", "not a CIDR"),
        ("denylist-source-range", "::%'", "not a CIDR"),
        ("force-ssl-redirect", "yes", "not a boolean"),
        ("x-forwarded-prefix", "/$1", "must be a path"),
        ("backend-protocol", "SMTP", "is not one of"),
        ("cors-allow-origin", "javascript:alert(1)", "not a valid origin"),
        ("canary-by-header-pattern", "^(?=a)", "look-ahead"),
        ("canary-by-header-pattern", "(a)\\1", "a backreference"),
        ("canary-by-header-pattern", "(?i)a", "a group flag"),
        ("canary-by-header-pattern", "a\\bc", "the escape '\\b'"),
        ("canary-by-header-pattern", "a++", "a possessive"),
        ("canary-by-header-pattern", "[[:alpha:]]", "POSIX classes"),
        ("canary-by-header-pattern", "a{1001}", "at most 1000"),
        ("canary-by-header-pattern", "(a", "an unclosed '('"),
        ("canary-by-header-pattern", "a b", "ingress-nginx's regex characters"),
        ("canary-by-header-pattern", 'a"b', "ingress-nginx's regex characters"),
    ],
)
def test_a_bad_value_rejects_that_ingress_alone_naming_the_key(
    key: str, value: str, message: str
) -> None:
    bad = ingress("bad", "a.example.com", "/bad", annotations={key: value})
    good = ingress("good", "a.example.com", "/good", created="2026-01-02T00:00:00Z")
    result = build(bad, good)
    assert ref_names(result.rejected) == ["bad"] and ref_names(result.served) == ["good"]
    (p,) = [p for p in result.problems if p.ref.name == "bad"]
    assert p.field == f"metadata.annotations['nginx.ingress.kubernetes.io/{key}']"
    assert message in p.message and p.severity is Severity.ERROR
    assert result.model.answer("a.example.com", "/good").proxied
    assert result.model.answer("a.example.com", "/bad").status == 404


def test_our_prefix_wins_over_the_alias_and_says_so() -> None:
    ing = ingress("web", "a.example.com", "/", annotations={"rewrite-target": "/nginx"})
    ing["metadata"]["annotations"]["polyingress.io/rewrite-target"] = "/ours"
    result = build(ing)
    assert result.model.answer("a.example.com", "/x").path == "/ours"
    (p,) = result.problems
    assert (p.severity, p.reason) == (Severity.WARNING, "ConflictingAnnotation")
    assert "polyingress.io/rewrite-target is used" in p.message


def test_custom_annotations_prefix() -> None:
    ing = ingress("web", "a.example.com", "/")
    ing["metadata"]["annotations"] = {"corp.example/app-root": "/start"}
    result = build(ing, annotations_prefix="corp.example", http_port=8080)
    assert result.model.answer("a.example.com", "/").location == "http://a.example.com:8080/start"


@pytest.mark.parametrize(
    ("path", "construct"),
    [
        ("/foo.+", "a repetition ('+')"),
        ("/foo/bar/[a-z]{3}", "a character class ('[')"),
        ("/(api|web)/(.*)", "a group ('(')"),
        ("/a(?=b)", "a group ('(')"),
        ("/x\\d", "an escape ('\\\\')"),
    ],
)
def test_use_regex_refuses_other_regular_expressions_naming_the_construct(
    path: str, construct: str
) -> None:
    ing = ingress(
        "re",
        "a.example.com",
        path,
        path_type="ImplementationSpecific",
        annotations={"use-regex": "true"},
    )
    result = build(ing)
    assert ref_names(result.rejected) == ["re"]
    (p,) = result.problems
    assert p.field == "spec.rules[0].http.paths[0].path"
    assert construct in p.message


def test_capture_references_need_use_regex() -> None:
    ing = ingress("rw", "a.example.com", "/foo", annotations={"rewrite-target": "/$1"})
    result = build(ing)
    assert ref_names(result.rejected) == ["rw"]
    assert "capture groups without use-regex" in result.problems[0].message


def test_use_regex_literal_paths_are_prefixes() -> None:
    ing = ingress(
        "re",
        "a.example.com",
        "/api",
        path_type="ImplementationSpecific",
        annotations={"use-regex": "true"},
    )
    model = build(ing).model
    assert model.answer("a.example.com", "/api/v1").proxied
    assert model.answer("a.example.com", "/apiv1").status == 404


def test_canary_merge_rules() -> None:
    """Attached by host, path and path type; not to a rule of another type, not with the main's
    own Service; a canary's other annotations are the main's (ingress-nginx's rules)."""
    main = ingress("main", "a.example.com", "/", annotations={"rewrite-target": "/main"})
    canary = ingress(
        "canary",
        "a.example.com",
        "/",
        "canary",
        annotations={"canary": "true", "canary-weight": "100", "rewrite-target": "/own"},
        created="2026-01-02T00:00:00Z",
    )
    exact = ingress(
        "exact",
        "a.example.com",
        "/",
        "other",
        path_type="Exact",
        annotations={"canary": "true", "canary-weight": "100"},
        created="2026-01-03T00:00:00Z",
    )
    same = ingress(
        "same",
        "a.example.com",
        "/",
        "echo",
        annotations={"canary": "true", "canary-by-header": "X-Same"},
        created="2026-01-04T00:00:00Z",
    )
    result = build(main, canary, exact, same)
    answer = result.model.answer("a.example.com", "/x")
    assert answer.backend == f"{NAMESPACE}__canary__80"
    assert answer.path == "/main"  # the main Ingress's rewrite, not the canary's
    assert result.model.answer("a.example.com", "/").backend == f"{NAMESPACE}__canary__80"
    reasons = sorted((p.ref.name, p.reason) for p in result.problems)
    assert reasons == [("exact", "CanaryNotAttached"), ("same", "CanaryNotAttached")]


def test_canary_weights_above_all_requests_leave_the_youngest_out() -> None:
    main = ingress("main", "a.example.com", "/")
    one = ingress(
        "one",
        "a.example.com",
        "/",
        "canary",
        annotations={"canary": "true", "canary-weight": "70"},
        created="2026-01-02T00:00:00Z",
    )
    two = ingress(
        "two",
        "a.example.com",
        "/",
        "canary-two",
        annotations={"canary": "true", "canary-weight": "50"},
        created="2026-01-03T00:00:00Z",
    )
    result = build(main, one, two)
    split = {w.backend: w.weight for w in result.model.answer("a.example.com", "/").backends}
    assert split == {f"{NAMESPACE}__echo__80": 3, f"{NAMESPACE}__canary__80": 7}
    (p,) = result.problems
    assert (p.ref.name, p.reason) == ("two", "Conflict")


def test_canary_annotations_without_canary_are_refused() -> None:
    result = build(ingress("web", "a.example.com", "/", annotations={"canary-weight": "10"}))
    assert ref_names(result.rejected) == ["web"]
    assert "not a canary" in result.problems[0].message


def test_app_root_answers_root_before_any_rule_of_its_host() -> None:
    root = ingress("root", "a.example.com", "/", annotations={"app-root": "/app"})
    exact = ingress(
        "exact", "a.example.com", "/", "other", path_type="Exact", created="2026-01-02T00:00:00Z"
    )
    result = build(root, exact, http_port=8080, https_port=8443)
    model = result.model
    assert model.answer("a.example.com", "/").location == "http://a.example.com:8080/app"
    assert model.answer("a.example.com", "/", scheme="https").location == (
        "https://a.example.com:8443/app"
    )
    assert model.answer("a.example.com", "/app").backend == f"{NAMESPACE}__echo__80"
    (p,) = result.problems
    assert (p.ref.name, p.reason) == ("exact", "Conflict")


def test_server_alias_that_is_a_host_of_its_own_is_ignored() -> None:
    aliased = ingress("a", "a.example.com", "/", annotations={"server-alias": "b.example.com"})
    own = ingress("b", "b.example.com", "/", "other", created="2026-01-02T00:00:00Z")
    result = build(aliased, own)
    assert result.model.answer("b.example.com", "/").backend == f"{NAMESPACE}__other__80"
    (p,) = result.problems
    assert "server-alias b.example.com ignored: it is a host of its own" in p.message


def test_server_alias_serves_the_host_with_its_tls() -> None:
    aliased = ingress("a", "a.example.com", "/", annotations={"server-alias": "*.b.example.com"})
    aliased["spec"]["tls"] = [{"hosts": ["a.example.com"]}]
    model = build(aliased).model
    vhost = model.select_vhost("x.b.example.com")
    assert vhost is not None and vhost.host == "*.b.example.com"
    assert vhost.tls is not None and vhost.tls.ssl_redirect
    assert model.answer("x.b.example.com", "/").status == 301  # the host's HTTPS redirect


def test_host_less_rows_keep_their_annotations_when_merged_into_a_host() -> None:
    catch_all = ingress("all", "a.example.com", "/api", annotations={"rewrite-target": "/v2"})
    del catch_all["spec"]["rules"][0]["host"]
    other = ingress("other", "b.example.com", "/web", created="2026-01-02T00:00:00Z")
    model = build(catch_all, other).model
    assert model.answer("b.example.com", "/api/x").path == "/v2"


def test_every_registered_annotation_has_a_stated_support() -> None:
    from polyingress.core.pipeline.annotations import REGISTRY

    assert set(REGISTRY) == set(ANNOTATION_SUPPORT)


def test_verdicts_name_the_features_of_the_value() -> None:
    ing = ingress(
        "r",
        "a.example.com",
        "/",
        annotations={
            "temporal-redirect": "https://b.example.com:8443/x",
            "temporal-redirect-code": "307",
        },
    )
    policy, found = policy_of(ing)
    assert policy is not None and not found
    (v, code) = policy.verdicts
    assert v.support is Support.PARTIAL and "query string" in v.note
    assert v.features == {
        "HTTPRoute",
        "HTTPRouteSchemeRedirect",
        "HTTPRoutePathRedirect",
        "HTTPRoutePortRedirect",
        "HTTPRoute307RedirectStatusCode",
    }
    assert code.support is Support.HONOURED


def test_everything_served_with_every_feature() -> None:
    ing = ingress(
        "all",
        "a.example.com",
        "/",
        annotations={
            "rewrite-target": "/x",
            "upstream-vhost": "b.example.com",
            "force-ssl-redirect": "true",
            "proxy-read-timeout": "30",
            "x-forwarded-prefix": "/p",
        },
    )
    result = build(ing, features=ALL_GATEWAY, https_port=8443)
    assert not result.problems
    https = result.model.answer("a.example.com", "/q", scheme="https")
    assert (https.path, https.host) == ("/x", "b.example.com")
    assert https.route is not None and https.route.timeout == 30.0
    assert result.model.answer("a.example.com", "/q").location == "https://a.example.com:8443/q"


def test_an_annotation_edit_is_a_change_to_apply() -> None:
    """A canary weight or a header edited on the same host and path changes the model's diff
    (the controller applies only what the diff names)."""
    from polyingress.core import diff

    main = ingress("main", "a.example.com", "/")

    def canary(**ann: str) -> dict[str, Any]:
        return ingress(
            "canary",
            "a.example.com",
            "/",
            "canary",
            annotations={"canary": "true", **ann},
            created="2026-01-02T00:00:00Z",
        )

    steps = [
        canary(**{"canary-weight": "10"}),
        canary(**{"canary-weight": "20"}),
        canary(**{"canary-weight": "20", "canary-by-header": "X-A"}),
        canary(**{"canary-weight": "20", "canary-by-header": "X-B"}),
    ]
    models = [build(main, c).model for c in steps]
    for before, after in itertools.pairwise(models):
        change = diff(before, after)
        assert ("a.example.com", "/", PathType.PREFIX) in change.routes_changed, change


def test_a_canary_brings_no_tls_and_no_default_backend() -> None:
    """ingress-nginx builds no server from a canary Ingress: an older canary's TLS entry and
    default backend do not take the host's certificate or the default backend."""
    main = ingress("main", "a.example.com", "/", created="2026-01-02T00:00:00Z")
    canary = ingress("canary", "a.example.com", "/", "canary", annotations={"canary": "true"})
    canary["spec"]["tls"] = [{"hosts": ["a.example.com"], "secretName": "canary-tls"}]
    canary["spec"]["defaultBackend"] = {"service": {"name": "canary", "port": {"number": 80}}}
    result = build(main, canary)
    assert result.model.default_backend is None
    vhost = result.model.select_vhost("a.example.com")
    assert vhost is not None and vhost.tls is None
    assert result.model.answer("a.example.com", "/").backend == f"{NAMESPACE}__echo__80"
    (p,) = result.problems
    assert p.field == "spec.tls" and "spec.tls and spec.defaultBackend of a canary" in p.message


def test_redirects_name_the_ports_clients_reach() -> None:
    """``run --http-redirect-port 80 --https-redirect-port 443`` behind a Service mapping 80/443
    to the listen ports: app-root and force-ssl-redirect name the public ports (left out of the
    URL), though the proxy listens on 8080/8443."""
    from polyingress.core.runtime.cli import _build_options, build_parser

    argv = ["run", "--backend", "nginx", "--manifests", "m", "--http-port", "8080"]
    argv += ["--https-port", "8443", "--http-redirect-port", "80", "--https-redirect-port", "443"]
    parser, _pm = build_parser(argv)
    opts = _build_options(parser.parse_args(argv))
    assert (opts.http_port, opts.https_port) == (80, 443)
    root = ingress("root", "a.example.com", "/", annotations={"app-root": "/app"})
    force = ingress("force", "b.example.com", "/", annotations={"force-ssl-redirect": "true"})
    model = build(
        root, force, http_port=opts.http_port, https_port=opts.https_port, features=ALL_GATEWAY
    ).model
    assert model.answer("a.example.com", "/").location == "http://a.example.com/app"
    assert model.answer("a.example.com", "/", scheme="https").location == (
        "https://a.example.com/app"
    )
    assert model.answer("b.example.com", "/x?y=1").location == "https://b.example.com/x?y=1"
    # Without them: the listen ports.
    argv = argv[: argv.index("--http-redirect-port")]
    parser, _pm = build_parser(argv)
    opts = _build_options(parser.parse_args(argv))
    assert (opts.http_port, opts.https_port) == (8080, 8443)


def test_a_header_pattern_is_a_regex_row_searched_in_the_first_non_empty_value() -> None:
    """canary-by-header-pattern: one regex HeaderMatch row to the canary (no always/never), a
    search as ingress-nginx's ngx.re.match; without canary-by-header it has no effect, with
    canary-by-header-value the value wins."""
    main = ingress("main", "a.example.com", "/")
    canary = ingress(
        "canary",
        "a.example.com",
        "/",
        "canary",
        annotations={
            "canary": "true",
            "canary-by-header": "X-Canary",
            "canary-by-header-pattern": "^v[0-9]+",
        },
        created="2026-01-02T00:00:00Z",
    )
    result = build(main, canary)
    assert ref_names(result.served) == ["canary", "main"]
    rows = [r for v in result.model.vhosts for r in v.routes if r.headers]
    assert [h for r in rows for h in r.headers] == [
        HeaderMatch(name="x-canary", value="^v[0-9]+", regex=True)
    ]
    canary_backend = f"{NAMESPACE}__canary__80"

    def reached(*headers: tuple[str, str]) -> str | None:
        return result.model.answer("a.example.com", "/", headers=headers).backend

    assert reached(("x-canary", "v12-beta")) == canary_backend
    assert reached(("x-canary", "V12")) != canary_backend
    assert reached(("x-canary", "always")) != canary_backend
    assert reached(("x-canary", "")) != canary_backend
    assert reached(("x-canary", "x"), ("x-canary", "v1")) != canary_backend  # the first counts
    plain = ingress(
        "canary",
        "a.example.com",
        "/",
        "canary",
        annotations={"canary": "true", "canary-by-header-pattern": "^v"},
        created="2026-01-02T00:00:00Z",
    )
    assert not [r for v in build(main, plain).model.vhosts for r in v.routes if r.headers]


def test_a_header_regex_needs_the_backends_feature() -> None:
    """A backend not declaring polyingress.io/HeaderRegexMatching rejects the canary Ingress
    (its requests reach the main Ingress), never matching the pattern as a plain value."""
    main = ingress("main", "a.example.com", "/")
    canary = ingress(
        "canary",
        "a.example.com",
        "/",
        "canary",
        annotations={
            "canary": "true",
            "canary-by-header": "X-Canary",
            "canary-by-header-pattern": "^v",
        },
        created="2026-01-02T00:00:00Z",
    )
    result = build(main, canary, features=frozenset({"HTTPRoute"}), backend="old")
    assert ref_names(result.rejected) == ["canary"]
    assert any(HEADER_REGEX in p.message for p in result.problems)
    answer = result.model.answer("a.example.com", "/", headers=(("x-canary", "v1"),))
    assert answer.backend == f"{NAMESPACE}__echo__80"
