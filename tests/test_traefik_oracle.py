"""Routing through the rendered Traefik configuration, judged by the documentation oracle."""

from __future__ import annotations

from typing import Any

import pytest
from traefik_oracle import (
    FALLBACK,
    AmbiguousRouting,
    Outcome,
    Request,
    merge,
    parse_rule,
    route,
    schema_validator,
)

from polyingress.core import (
    Backend,
    Endpoint,
    ObjectRef,
    ObjectStore,
    PathType,
    Route,
    RouteModel,
    VirtualHost,
    build_model,
    redirect_status,
)
from polyingress.plugins.traefik.render import RenderSettings, render
from polyingress.testing import cases as routing_cases
from polyingress.testing.cases import Case

HTTPS_PORT = 8443
HTTP_PORT = 8080
SETTINGS = RenderSettings(
    cert_dir="/var/lib/polyingress/certs", http_port=HTTP_PORT, https_port=HTTPS_PORT
)


def _backend(svc: str) -> dict[str, Any]:
    return {"service": {"name": svc, "port": {"number": 80}}}


def _path(path: str, path_type: str, svc: str) -> dict[str, Any]:
    return {"path": path, "pathType": path_type, "backend": _backend(svc)}


def _ingress(name: str, spec: dict[str, Any], minute: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": f"2024-01-01T00:{minute:02d}:00Z",
        },
        "spec": {"ingressClassName": "polyingress", **spec},
    }


def _service(name: str, ready: bool = True) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-abc",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": ready}}],
        },
    ]


def routing_world(default_backend: bool) -> list[dict[str, Any]]:
    """Every routing rule of the case table, built as Kubernetes objects."""
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "polyingress"},
            "spec": {"controller": "polyingress.io/controller"},
        }
    ]
    paths = [
        _path("/exact", "Exact", "svc-exact"),
        _path("/foo", "Prefix", "svc-foo"),
        _path("/foo/bar", "Prefix", "svc-foobar"),
        _path("/foo/exact", "Exact", "svc-exact2"),
        _path("/Case", "Prefix", "svc-case"),
    ]
    objects.append(
        _ingress("exact", {"rules": [{"host": "exact.example.com", "http": {"paths": paths}}]})
    )
    objects.append(
        _ingress(
            "slash",
            {
                "rules": [
                    {
                        "host": "slash.example.com",
                        "http": {"paths": [_path("/app/", "Prefix", "svc-app")]},
                    }
                ]
            },
        )
    )
    objects.append(
        _ingress(
            "wild",
            {
                "rules": [
                    {"host": "*.foo.com", "http": {"paths": [_path("/", "Prefix", "svc-wild")]}}
                ]
            },
        )
    )
    objects.append(
        _ingress(
            "bar",
            {
                "rules": [
                    {
                        "host": "bar.foo.com",
                        "http": {"paths": [_path("/only", "Prefix", "svc-bar")]},
                    }
                ]
            },
        )
    )
    objects.append(
        _ingress(
            "global", {"rules": [{"http": {"paths": [_path("/global", "Prefix", "svc-global")]}}]}
        )
    )
    objects.append(
        _ingress(
            "down",
            {
                "rules": [
                    {
                        "host": "down.example.com",
                        "http": {"paths": [_path("/", "Prefix", "svc-down")]},
                    }
                ]
            },
        )
    )
    objects.append(
        _ingress(
            "tls",
            {
                "tls": [{"hosts": ["tls.example.com"], "secretName": "missing-secret"}],
                "rules": [
                    {
                        "host": "tls.example.com",
                        "http": {"paths": [_path("/", "Prefix", "svc-tls")]},
                    }
                ],
            },
        )
    )
    if default_backend:
        objects.append(_ingress("default", {"defaultBackend": _backend("svc-default")}, minute=1))
    for name in (
        "svc-exact",
        "svc-foo",
        "svc-foobar",
        "svc-exact2",
        "svc-case",
        "svc-app",
        "svc-wild",
        "svc-bar",
        "svc-global",
        "svc-tls",
        "svc-default",
    ):
        objects.extend(_service(name))
    objects.extend(_service("svc-down", ready=False))
    return objects


def _model(default_backend: bool) -> RouteModel:
    store = ObjectStore()
    store.replace_many(routing_world(default_backend), ())
    return build_model(store.snapshot()).model


WORLDS = {flag: _model(flag) for flag in (False, True)}
CONFIGS = {flag: render(model, SETTINGS, FALLBACK).config for flag, model in WORLDS.items()}

NOT_FOUND = "404"  # with the default backend: svc-default instead
R = "https://tls.example.com:8443"

# (id, entrypoint, host, path, expected): a service short name, "404", "503" or a redirect.
CASES: list[tuple[str, str, str, str, str]] = [
    ("exact-path", "web", "exact.example.com", "/exact", "svc-exact"),
    ("exact-path-not-its-subpath", "web", "exact.example.com", "/exact/", NOT_FOUND),
    ("exact-path-not-trailing-slash-less", "web", "exact.example.com", "/exac", NOT_FOUND),
    ("prefix-matches-itself", "web", "exact.example.com", "/foo", "svc-foo"),
    ("prefix-matches-with-slash", "web", "exact.example.com", "/foo/", "svc-foo"),
    ("prefix-matches-subpath", "web", "exact.example.com", "/foo/x/y", "svc-foo"),
    ("prefix-does-not-match-sibling-segment", "web", "exact.example.com", "/foobar", NOT_FOUND),
    ("longest-prefix-wins", "web", "exact.example.com", "/foo/bar/baz", "svc-foobar"),
    ("longer-prefix-element-wise-only", "web", "exact.example.com", "/foo/barbaz", "svc-foo"),
    ("exact-beats-prefix", "web", "exact.example.com", "/foo/exact", "svc-exact2"),
    ("exact-does-not-cover-below", "web", "exact.example.com", "/foo/exact/x", "svc-foo"),
    ("trailing-slash-in-prefix-ignored", "web", "slash.example.com", "/app", "svc-app"),
    ("trailing-slash-prefix-subpath", "web", "slash.example.com", "/app/x", "svc-app"),
    ("trailing-slash-prefix-not-sibling", "web", "slash.example.com", "/apps", NOT_FOUND),
    ("path-is-case-sensitive", "web", "exact.example.com", "/case", NOT_FOUND),
    ("path-case-exact", "web", "exact.example.com", "/Case/x", "svc-case"),
    ("host-is-case-insensitive", "web", "EXACT.Example.COM", "/exact", "svc-exact"),
    ("host-port-ignored", "web", "exact.example.com:8080", "/exact", "svc-exact"),
    ("host-trailing-dot", "web", "exact.example.com.", "/exact", "svc-exact"),
    ("wildcard-one-label", "web", "baz.foo.com", "/x", "svc-wild"),
    ("wildcard-trailing-dot", "web", "baz.foo.com.", "/x", "svc-wild"),
    ("wildcard-not-two-labels", "web", "a.baz.foo.com", "/x", NOT_FOUND),
    ("wildcard-not-apex", "web", "foo.com", "/x", NOT_FOUND),
    ("wildcard-not-suffix-lookalike", "web", "bazfoo.com", "/x", NOT_FOUND),
    ("exact-host-beats-wildcard", "web", "bar.foo.com", "/only/x", "svc-bar"),
    ("exact-host-does-not-fall-to-wildcard", "web", "bar.foo.com", "/x", NOT_FOUND),
    ("host-less-rule-any-host", "web", "unknown.org", "/global/a", "svc-global"),
    ("host-less-rule-merged-into-host", "web", "exact.example.com", "/global", "svc-global"),
    ("host-less-rule-shadowed-by-host-root", "web", "baz.foo.com", "/global", "svc-wild"),
    (
        "host-less-rule-merged-into-exact-below-wildcard",
        "web",
        "bar.foo.com",
        "/global",
        "svc-global",
    ),
    ("unknown-host-unknown-path", "web", "unknown.org", "/nothing", NOT_FOUND),
    ("no-ready-endpoints-503", "web", "down.example.com", "/x", "503"),
    ("tls-host-redirects-http", "web", "tls.example.com", "/a/b", f"redirect 301 {R}/a/b"),
    ("tls-host-redirects-unmatched-too", "web", "tls.example.com:80", "/", f"redirect 301 {R}/"),
    (
        "tls-host-redirect-keeps-query-and-host-spelling",
        "web",
        "TLS.example.com.",
        "/a?b=c",
        "redirect 301 https://TLS.example.com.:8443/a?b=c",
    ),
    ("tls-host-served-on-https", "websecure", "tls.example.com", "/a", "svc-tls"),
    ("plain-host-served-on-https", "websecure", "exact.example.com", "/foo/x", "svc-foo"),
    ("https-wildcard", "websecure", "q.foo.com", "/", "svc-wild"),
    ("https-exact-does-not-fall-to-wildcard", "websecure", "bar.foo.com", "/x", NOT_FOUND),
    ("https-unknown-host", "websecure", "unknown.org", "/nothing", NOT_FOUND),
]


def _expected(expected: str, default_backend: bool) -> Outcome:
    if expected == NOT_FOUND:
        if default_backend:
            return Outcome(status=200, service="default__svc-default__80")
        return Outcome(status=404)
    if expected == "503":
        return Outcome(status=503, service="default__svc-down__80")
    if expected.startswith("redirect "):
        _word, status, location = expected.split(" ")
        return Outcome(status=int(status), location=location)
    return Outcome(status=200, service=f"default__{expected}__80")


def _core_expectation(model: RouteModel, entrypoint: str, host: str, path: str) -> Outcome:
    """What the core's reference semantics say, in oracle terms."""
    vhost = model.select_vhost(host)
    if entrypoint == "web" and vhost is not None and vhost.tls and vhost.tls.ssl_redirect:
        # Traefik keeps the host as written, without its port (traefik_oracle._redirect_scheme).
        target = f"https://{host.split(':')[0]}:{HTTPS_PORT}{path}"
        return Outcome(status=redirect_status("GET"), location=target)
    _kind, _route, backend = model.resolve(host, path)
    if backend is None:
        return Outcome(status=404)
    if not model.backend(backend).available:
        return Outcome(status=503, service=backend)
    return Outcome(status=200, service=backend)


def _strip(outcome: Outcome) -> Outcome:
    return Outcome(status=outcome.status, service=outcome.service, location=outcome.location)


@pytest.mark.parametrize("default_backend", [False, True], ids=["no-default", "default-backend"])
@pytest.mark.parametrize(
    ("entrypoint", "host", "path", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_routing_case(
    default_backend: bool, entrypoint: str, host: str, path: str, expected: str
) -> None:
    want = _expected(expected, default_backend)
    model = WORLDS[default_backend]
    assert _core_expectation(model, entrypoint, host, path) == want, (
        "case table disagrees with core"
    )
    got = route(CONFIGS[default_backend], Request(host=host, path=path, entrypoint=entrypoint))
    assert _strip(got) == want


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "get"])
def test_redirect_is_301_for_get_and_308_for_every_other_method(method: str) -> None:
    req = Request(host="tls.example.com", path="/form", method=method)
    got = route(CONFIGS[False], req)
    assert (got.status, got.location) == (redirect_status(method), f"{R}/form")


def test_redirect_is_traefiks_own_redirect_scheme() -> None:
    """No service of the controller's: the ``web`` router has the redirectScheme middleware
    and names the always-empty service, so Traefik alone answers."""
    routers = CONFIGS[False]["http"]["routers"]
    (name,) = [n for n, r in routers.items() if r["rule"] == "Host(`tls.example.com`)"]
    assert routers[name]["entryPoints"] == ["web"]
    assert routers[name]["middlewares"] == ["polyingress-redirect-https"]
    assert routers[name]["service"] == "polyingress-unavailable"
    assert CONFIGS[False]["http"]["services"]["polyingress-unavailable"] == {
        "weighted": {"services": []}
    }
    assert CONFIGS[False]["http"]["middlewares"]["polyingress-redirect-https"] == {
        "redirectScheme": {"scheme": "https", "permanent": True, "port": str(HTTPS_PORT)}
    }


def test_redirect_to_port_443_has_no_port() -> None:
    config = render(WORLDS[False], RenderSettings(cert_dir="/c", https_port=443), FALLBACK).config
    got = route(config, Request(host="tls.example.com:80", path="/x"))
    assert (got.status, got.location) == (301, "https://tls.example.com/x")


def test_redirect_port_setting_names_the_location_port() -> None:
    settings = RenderSettings(cert_dir="/c", https_port=8443, redirect_port=443)
    config = render(WORLDS[False], settings, FALLBACK).config
    got = route(config, Request(host="tls.example.com", path="/x", method="POST"))
    assert (got.status, got.location) == (308, "https://tls.example.com/x")


def test_404_terminator_cannot_be_opened_from_any_client() -> None:
    for ip in ("127.0.0.1", "10.1.2.3", "::1", "0.0.0.0"):
        got = route(CONFIGS[False], Request(host="bar.foo.com", path="/x", client_ip=ip))
        assert got.status == 404


def test_proxied_requests_carry_the_entry_point_port() -> None:
    for entrypoint, port in (("web", HTTP_PORT), ("websecure", HTTPS_PORT)):
        got = route(CONFIGS[True], Request(host="x.org", path="/", entrypoint=entrypoint))
        assert got.service == "default__svc-default__80"
        assert got.headers == (("X-Forwarded-Port", str(port)),)


def test_probe_answers_only_its_revision() -> None:
    rendered = render(WORLDS[False], SETTINGS, FALLBACK)
    config = merge(rendered.config, rendered.probe)
    probe = Request(host="polyingress-probe.invalid", path=f"/{rendered.revision}")
    assert route(config, probe).status == 202
    assert route(config, Request(host="polyingress-probe.invalid", path="/old")).status == 404
    assert route(rendered.config, probe).status == 404


# ---------------------------------------------------------------------------------------------
# The shared backend-agnostic table (tests/routing_cases.py)
# ---------------------------------------------------------------------------------------------


def _shared_config(with_default: bool) -> tuple[RouteModel, dict[str, Any]]:
    objects = routing_cases.world(port=8080)
    if with_default:
        objects.append(routing_cases.default_backend_ingress())
    store = ObjectStore()
    store.replace_many(objects, ())
    model = build_model(store.snapshot()).model
    return model, render(model, SETTINGS, FALLBACK).config


SHARED = {flag: _shared_config(flag) for flag in (False, True)}
SHARED_CASES = [(False, c) for c in routing_cases.CASES] + [
    (True, c) for c in routing_cases.DEFAULT_CASES
]


@pytest.mark.parametrize(
    ("with_default", "case"),
    SHARED_CASES,
    ids=[("default-" if d else "") + c.id for d, c in SHARED_CASES],
)
def test_shared_routing_case(with_default: bool, case: Case) -> None:
    _model, config = SHARED[with_default]
    entrypoint = "websecure" if case.scheme == "https" else "web"
    req = Request(host=case.host, path=case.path, entrypoint=entrypoint, method=case.method)
    got = route(config, req)
    if case.expect in (301, 308):
        assert got.status == case.expect
        assert got.location == f"https://{case.host}:{HTTPS_PORT}{case.path}"
    elif isinstance(case.expect, int):
        assert got.status == case.expect
    else:
        assert (got.status, got.service) == (200, f"routing__{case.expect}__80")


# ---------------------------------------------------------------------------------------------
# The oracle itself
# ---------------------------------------------------------------------------------------------


def _req(host: str = "a.com", path: str = "/", **kw: Any) -> Request:
    return Request(host=host, path=path, **kw)


@pytest.mark.parametrize(
    ("rule", "request_", "expected"),
    [
        ("Path(`/a`) || Path(`/b`) && Host(`x.com`)", _req(path="/a"), True),
        ("(Path(`/a`) || Path(`/b`)) && Host(`x.com`)", _req(path="/a"), False),
        ("!Path(`/a`)", _req(path="/a"), False),
        ("!Path(`/a`) && PathPrefix(`/`)", _req(path="/b"), True),
        ('Host("a.com") && Path("/")', _req(), True),
        ("PathPrefix(`/foo`)", _req(path="/foobar"), True),
        ("Path(`/foo`)", _req(path="/foo/"), False),
        ("Host(`a.com`)", _req(host="A.COM:443"), True),
        ("HostRegexp(`^[^.]+\\.a\\.com$`)", _req(host="x.a.com"), True),
        ("HostRegexp(`^[^.]+\\.a\\.com$`)", _req(host="y.x.a.com"), False),
    ],
    ids=[
        "and-binds-tighter-than-or",
        "parentheses-group",
        "not",
        "not-and",
        "double-quoted-values",
        "pathprefix-is-plain-string-prefix",
        "path-is-exact",
        "host-lowercase-and-port",
        "hostregexp-one-label",
        "hostregexp-not-two-labels",
    ],
)
def test_oracle_rule_semantics(rule: str, request_: Request, expected: bool) -> None:
    assert parse_rule(rule)(request_) is expected


def _lb(name: str) -> dict[str, Any]:
    return {name: {"loadBalancer": {"servers": [{"url": "http://10.0.0.1:80"}]}}}


def test_oracle_default_priority_is_rule_length() -> None:
    config = {
        "http": {
            "routers": {
                "short": {"rule": "PathPrefix(`/`)", "service": "a"},
                "long": {"rule": "PathPrefix(`/`) && Host(`a.com`)", "service": "b"},
            },
            "services": {**_lb("a"), **_lb("b")},
        }
    }
    assert route(config, _req()).service == "b"
    config["http"]["routers"]["short"]["priority"] = 1000
    assert route(config, _req()).service == "a"


def test_oracle_zero_priority_means_rule_length() -> None:
    config = {
        "http": {
            "routers": {
                "zero": {"rule": "PathPrefix(`/`) && Host(`a.com`)", "service": "a", "priority": 0},
                "one": {"rule": "PathPrefix(`/`)", "service": "b", "priority": 1},
            },
            "services": {**_lb("a"), **_lb("b")},
        }
    }
    assert route(config, _req()).service == "a"


def test_oracle_rejects_equal_priority_overlap() -> None:
    config = {
        "http": {
            "routers": {
                "x": {"rule": "PathPrefix(`/a`)", "service": "a"},
                "y": {"rule": "PathPrefix(`/b`)", "service": "a"},
                "z": {"rule": "PathPrefix(`/`) ", "service": "a", "priority": 15},
            },
            "services": _lb("a"),
        }
    }
    assert route(config, _req(path="/c")).service == "a"
    config["http"]["routers"]["y"]["rule"] = "PathPrefix(`/`)"
    config["http"]["routers"]["y"]["priority"] = 15
    with pytest.raises(AmbiguousRouting):
        route(config, _req(path="/c"))


def test_oracle_entry_points_and_tls() -> None:
    config = {
        "http": {
            "routers": {
                "plain": {"rule": "PathPrefix(`/`)", "service": "a", "entryPoints": ["web"]},
                "secure": {"rule": "PathPrefix(`/`)", "service": "b", "tls": {}},
            },
            "services": {**_lb("a"), **_lb("b")},
        }
    }
    assert route(config, _req(entrypoint="web")).service == "a"
    assert route(config, _req(entrypoint="websecure")).service == "b"
    assert route(config, _req(entrypoint="other")).status == 404
    assert route(config, _req(entrypoint="other", tls=True)).service == "b"


def test_oracle_empty_services_answer_503() -> None:
    model = RouteModel(
        vhosts=(
            VirtualHost(
                host="a.com",
                routes=(
                    Route(
                        path="/",
                        path_type=PathType.PREFIX,
                        backend="ns__svc__80",
                        source=ObjectRef(kind="Ingress", namespace="ns", name="i"),
                    ),
                ),
            ),
        ),
        backends=(
            Backend(
                name="ns__svc__80",
                namespace="ns",
                service="svc",
                port="80",
                endpoints=(Endpoint(address="10.0.0.1", port=80, ready=False),),
            ),
        ),
    )
    got = route(render(model, SETTINGS, FALLBACK).config, _req(path="/x"))
    assert (got.status, got.service) == (503, "ns__svc__80")


def test_rendered_worlds_pass_the_schema() -> None:
    validator = schema_validator()
    for config in [*CONFIGS.values(), *(config for _model, config in SHARED.values())]:
        validator.validate(config)
