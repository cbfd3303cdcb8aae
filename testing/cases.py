"""The backend-agnostic routing cases: one manifest world and what each request must get.

Every backend is held to this table: the core model (``model.resolve``), the nginx, HAProxy
and Traefik live tests (real HTTP through the proxy) and the Traefik oracle. Expected outcomes
are a Service name (the request reached one of its endpoints) or an HTTP status; a 301 or 308
is the HTTPS redirect, whose Location the live tests check too.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from polyingress.core import RouteModel, self_signed

# Service -> number of ready endpoints (0 = the Service exists with only not-ready endpoints).
SERVICES: dict[str, int] = {
    "svc-root": 1,
    "svc-foo": 1,
    "svc-foo-bar": 1,
    "svc-exact": 1,
    "svc-trail": 1,
    "svc-case": 1,
    "svc-wild": 1,
    "svc-any": 1,
    "svc-tls": 1,
    "svc-default": 1,
    "svc-spread": 3,
    "svc-empty": 0,
}
MISSING_SERVICE = "svc-missing"  # referenced by a rule, never created

TLS_HOST = "secure.example.com"
# A wildcard TLS host: its redirect must not catch the hosts its nginx server_name matches but
# the Ingress wildcard does not (two labels deep); those get the catch-all's answer.
TLS_WILDCARD = "*.wsecure.example.com"


def endpoint_address(service: str, index: int) -> str:
    """Each Service gets its own loopback addresses: 127.0.<n>.<index+1>."""
    n = sorted(SERVICES).index(service) + 10
    return f"127.0.{n}.{index + 1}"


def hello_name(service: str, index: int) -> str:
    return f"{service}-{index + 1}"


def all_endpoints() -> list[tuple[str, str, int]]:
    """(hello server name, address, index) for every endpoint to start, ready or not."""
    out = []
    for svc, count in SERVICES.items():
        for i in range(max(count, 1)):
            out.append((hello_name(svc, i), endpoint_address(svc, i), i))
    return out


def _path(path: str, ptype: str, service: str) -> dict[str, Any]:
    return {
        "path": path,
        "pathType": ptype,
        "backend": {"service": {"name": service, "port": {"number": 80}}},
    }


def _ingress(name: str, rules: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": "routing",
            "creationTimestamp": f"2026-01-01T00:00:{len(name):02d}Z",
        },
        "spec": {"ingressClassName": "polyingress", "rules": rules, **spec},
    }


def _rule(host: str | None, *paths: dict[str, Any]) -> dict[str, Any]:
    rule: dict[str, Any] = {"http": {"paths": list(paths)}}
    if host is not None:
        rule["host"] = host
    return rule


def world(port: int) -> list[dict[str, Any]]:
    """The Kubernetes objects of the routing world; endpoints listen on ``port``."""
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "polyingress"},
            "spec": {"controller": "polyingress.io/controller"},
        }
    ]
    for svc, count in sorted(SERVICES.items()):
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": svc, "namespace": "routing"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
            }
        )
        endpoints = [
            {
                "addresses": [endpoint_address(svc, i)],
                "conditions": {"ready": count > 0},
            }
            for i in range(max(count, 1))
        ]
        objs.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{svc}-abc12",
                    "namespace": "routing",
                    "labels": {"kubernetes.io/service-name": svc},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
                "endpoints": endpoints,
            }
        )
    objs += [
        _ingress(
            "main",
            [
                _rule(
                    "app.example.com",
                    _path("/", "Prefix", "svc-root"),
                    _path("/foo", "Prefix", "svc-foo"),
                    _path("/foo/bar", "Prefix", "svc-foo-bar"),
                    _path("/foo", "Exact", "svc-exact"),
                    _path("/trail/", "Prefix", "svc-trail"),
                    _path("/Case", "Exact", "svc-case"),
                    _path("/empty", "Prefix", "svc-empty"),
                    _path("/missing", "Prefix", MISSING_SERVICE),
                    _path("/spread", "Prefix", "svc-spread"),
                )
            ],
        ),
        _ingress(
            "wild",
            [
                _rule(
                    "*.wild.example.com",
                    _path("/", "Prefix", "svc-wild"),
                    _path("/exact", "Exact", "svc-exact"),
                )
            ],
        ),
        _ingress(
            "only",
            [
                _rule(
                    "only.example.com",
                    _path("/only", "Prefix", "svc-foo"),
                    _path("/dir/", "Exact", "svc-exact"),
                )
            ],
        ),
        _ingress("catch-all", [_rule(None, _path("/any", "Prefix", "svc-any"))]),
        _ingress(
            "wild-secure",
            [_rule(TLS_WILDCARD, _path("/", "Prefix", "svc-tls"))],
            tls=[{"hosts": [TLS_WILDCARD], "secretName": "wild-secure-tls"}],
        ),
        tls_secret("wild-secure-tls", TLS_WILDCARD),
        _ingress(
            "secure",
            [_rule(TLS_HOST, _path("/", "Prefix", "svc-tls"))],
            tls=[{"hosts": [TLS_HOST], "secretName": "secure-tls"}],
        ),
        {
            **_ingress(
                "other-class", [_rule("other.example.com", _path("/", "Prefix", "svc-root"))]
            ),
            "spec": {
                "ingressClassName": "someone-else",
                "rules": [_rule("other.example.com", _path("/", "Prefix", "svc-root"))],
            },
        },
        tls_secret("secure-tls", TLS_HOST),
    ]
    return objs


def default_backend_ingress() -> dict[str, Any]:
    """Added in phase 2: an Ingress with only spec.defaultBackend."""
    ing = _ingress("default", [])
    del ing["spec"]["rules"]
    ing["spec"]["defaultBackend"] = {"service": {"name": "svc-default", "port": {"number": 80}}}
    return ing


_CERTS: dict[str, tuple[str, str]] = {}


def tls_secret(name: str, host: str, namespace: str = "routing") -> dict[str, Any]:
    if host not in _CERTS:
        cert = self_signed(host, (host,))
        _CERTS[host] = (cert.cert_pem, cert.key_pem)
    crt, key = _CERTS[host]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
        "data": {
            "tls.crt": base64.b64encode(crt.encode()).decode(),
            "tls.key": base64.b64encode(key.encode()).decode(),
        },
    }


@dataclass(frozen=True)
class Case:
    id: str
    host: str
    path: str
    expect: str | int  # a Service name, or an HTTP status
    scheme: str = "http"
    method: str = "GET"
    body: bytes | None = None

    def __str__(self) -> str:
        return self.id


# Phase 1: no default backend.
CASES: list[Case] = [
    Case("prefix-root", "app.example.com", "/", "svc-root"),
    Case("exact-beats-prefix", "app.example.com", "/foo", "svc-exact"),
    Case("prefix-trailing-slash-request", "app.example.com", "/foo/", "svc-foo"),
    Case("prefix-child", "app.example.com", "/foo/x", "svc-foo"),
    Case("prefix-not-sibling", "app.example.com", "/foobar", "svc-root"),
    Case("longest-prefix", "app.example.com", "/foo/bar", "svc-foo-bar"),
    Case("longest-prefix-deeper", "app.example.com", "/foo/bar/baz", "svc-foo-bar"),
    Case("prefix-segment-not-string", "app.example.com", "/foo/barbaz", "svc-foo"),
    Case("rule-trailing-slash-ignored", "app.example.com", "/trail", "svc-trail"),
    Case("rule-trailing-slash-child", "app.example.com", "/trail/x", "svc-trail"),
    Case("rule-trailing-slash-sibling", "app.example.com", "/trailx", "svc-root"),
    Case("case-sensitive-exact", "app.example.com", "/Case", "svc-case"),
    Case("case-sensitive-other-case", "app.example.com", "/case", "svc-root"),
    Case("case-sensitive-prefix", "app.example.com", "/FOO/x", "svc-root"),
    Case("host-case-insensitive", "APP.Example.COM", "/foo/x", "svc-foo"),
    Case("query-string-ignored", "app.example.com", "/foo?x=1", "svc-exact"),
    Case("no-ready-endpoints-503", "app.example.com", "/empty", 503),
    Case("missing-service-503", "app.example.com", "/missing/x", 503),
    Case("host-rules-before-catch-all", "app.example.com", "/any", "svc-root"),
    Case("wildcard-one-label", "a.wild.example.com", "/", "svc-wild"),
    Case("wildcard-exact-path", "a.wild.example.com", "/exact", "svc-exact"),
    Case("wildcard-not-two-labels", "b.a.wild.example.com", "/", 404),
    Case("wildcard-two-labels-catch-all", "b.a.wild.example.com", "/any", "svc-any"),
    Case("wildcard-not-apex", "wild.example.com", "/", 404),
    Case("host-own-rule", "only.example.com", "/only/x", "svc-foo"),
    Case("host-falls-to-catch-all", "only.example.com", "/any", "svc-any"),
    Case("host-no-match-404", "only.example.com", "/", 404),
    Case("exact-trailing-slash", "only.example.com", "/dir/", "svc-exact"),
    Case("exact-trailing-slash-not-without", "only.example.com", "/dir", 404),
    Case("catch-all-any-host", "unknown.example.com", "/any/x", "svc-any"),
    Case("unknown-host-404", "unknown.example.com", "/", 404),
    Case("other-class-ignored", "other.example.com", "/", 404),
    Case("tls-host-https", TLS_HOST, "/x", "svc-tls", scheme="https"),
    Case("tls-host-http-redirects-get-301", TLS_HOST, "/x?a=1", 301),
    Case("tls-host-http-redirects-head-308", TLS_HOST, "/x", 308, method="HEAD"),
    Case("tls-host-http-redirects-post-308", TLS_HOST, "/f?b=2", 308, method="POST", body=b"x=1"),
    Case("wildcard-tls-http-redirects-get-301", "a.wsecure.example.com", "/x", 301),
    Case("wildcard-tls-http-redirects-post-308", "a.wsecure.example.com", "/", 308, method="POST"),
    Case("wildcard-tls-https", "a.wsecure.example.com", "/x", "svc-tls", scheme="https"),
    Case("wildcard-tls-too-deep-catch-all", "b.a.wsecure.example.com", "/any/x", "svc-any"),
    Case(
        "wildcard-tls-too-deep-catch-all-post",
        "b.a.wsecure.example.com",
        "/any/x",
        "svc-any",
        method="POST",
        body=b"x=1",
    ),
    Case("wildcard-tls-too-deep-404", "b.a.wsecure.example.com", "/", 404),
    Case("https-unknown-host-404", "unknown.example.com", "/", 404, scheme="https"),
    Case("https-catch-all", "unknown.example.com", "/any", "svc-any", scheme="https"),
    Case("https-non-tls-host", "app.example.com", "/foo/bar", "svc-foo-bar", scheme="https"),
]

# The request-path rule (core/pipeline/requestpath.py), before matching: what the Service gets
# is the normalized path (``normalize_request_path``), checked live on every backend.
PATH_CASES: list[Case] = [
    Case("dot-segments-removed", "app.example.com", "/x/../foo/x", "svc-foo"),
    Case("dot-segments-not-a-bypass", "app.example.com", "/foo/../Case", "svc-case"),
    Case("single-dot-removed", "app.example.com", "/foo/./bar/x", "svc-foo-bar"),
    Case("encoded-dot-segments", "app.example.com", "/x/%2e%2E/foo/bar", "svc-foo-bar"),
    Case("encoded-unreserved-decoded", "app.example.com", "/%66oo/x", "svc-foo"),
    Case("encoded-unreserved-exact", "app.example.com", "/%43ase", "svc-case"),
    Case("encoded-tilde-decoded", "app.example.com", "/foo/%7euser", "svc-foo"),
    Case("slashes-merged", "app.example.com", "/foo//bar/x", "svc-foo-bar"),
    Case("leading-slashes-merged", "app.example.com", "//foo/x", "svc-foo"),
    Case("space-stays-encoded", "app.example.com", "/foo/a%20b", "svc-foo"),
    Case("query-not-normalized", "app.example.com", "/foo/x?a=%2F&b=/../c", "svc-foo"),
    Case("encoded-slash-400", "app.example.com", "/foo%2Fbar", 400),
    Case("encoded-slash-lower-400", "app.example.com", "/x/..%2ffoo", 400),
    Case("encoded-backslash-400", "app.example.com", "/foo%5Cbar", 400),
    Case("raw-backslash-400", "app.example.com", "/foo\\bar", 400),
    Case("encoded-nul-400", "app.example.com", "/foo%00", 400),
    Case("bad-escape-400", "app.example.com", "/foo%zz", 400),
    Case("truncated-escape-400", "app.example.com", "/foo%2", 400),
    Case("bad-path-before-redirect", TLS_HOST, "/a%2Fb", 400),
    Case("bad-path-on-https", "app.example.com", "/foo%2Fbar", 400, scheme="https"),
    Case("dot-segments-on-https", "app.example.com", "/x/../foo/bar", "svc-foo-bar", "https"),
    Case("dot-segments-wildcard", "a.wild.example.com", "/x/../exact", "svc-exact"),
]

# Phase 2: after default_backend_ingress() is added.
DEFAULT_CASES: list[Case] = [
    Case("default-unknown-host", "unknown.example.com", "/", "svc-default"),
    Case("default-host-no-match", "only.example.com", "/", "svc-default"),
    Case("default-wildcard-too-deep", "b.a.wild.example.com", "/", "svc-default"),
    Case("default-wildcard-tls-too-deep", "b.a.wsecure.example.com", "/", "svc-default"),
    Case(
        "default-wildcard-tls-too-deep-post",
        "b.a.wsecure.example.com",
        "/",
        "svc-default",
        method="POST",
        body=b"x=1",
    ),
    Case("default-keeps-routes", "app.example.com", "/foobar", "svc-root"),
    Case("default-keeps-503", "app.example.com", "/empty", 503),
    Case("default-https", "unknown.example.com", "/", "svc-default", scheme="https"),
]


def service_of(server_name: str) -> str:
    """hello server name 'svc-foo-1' -> 'svc-foo'."""
    return server_name.rsplit("-", 1)[0]


def model_answer(model: RouteModel, scheme: str, host: str, path: str, method: str = "GET") -> str:
    """The core's answer (:meth:`RouteModel.answer`) as the shared cases write it: the backend's
    name when the request is proxied, else the status the proxy answers ("400", "301", "308",
    "404", "503"). ``path`` is the request target as sent."""
    answer = model.answer(host, path, scheme=scheme, method=method)
    if answer.status is not None:
        return str(answer.status)
    assert answer.backend is not None
    return answer.backend
