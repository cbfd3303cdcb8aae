"""ingress-nginx annotation cases: Ingresses, the requests sent and what each must get.

Each :class:`AnnotationCase` is taken from ingress-nginx's documented behaviour
(docs/user-guide/nginx-configuration/annotations.md, docs/examples) or from its end-to-end tests
(test/e2e/annotations/*.go), named after them in ``source``; polyingress's own extensions (any
number of canaries per path) say so. The same table is checked against the core
(:meth:`RouteModel.answer`, tests/test_annotations_core.py) and live through every backend
(:mod:`polyingress.testing.annotation_live`): same request, same answer.

The backends are hello servers (:data:`SERVICES`: one Service each, one endpoint on a
loopback address, all on one port): a request that must be proxied names the Service whose
hello server must answer it, and what that server must receive (path and query, Host,
headers). A redirect's Location is written with ``{http}`` and ``{https}`` standing for the
port part of the proxy's HTTP and HTTPS ports (``:8080``, or nothing for 80/443).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CASES",
    "NGINX",
    "PROTOCOL_SERVICES",
    "SERVICES",
    "AnnotationCase",
    "Expect",
    "base_objects",
    "hello_name",
    "location",
]

NAMESPACE = "annotations"
CLASS = "polyingress"
CONTROLLER = "polyingress.io/controller"
NGINX = "nginx.ingress.kubernetes.io/"

# Service -> the loopback address of its one endpoint.
SERVICES: dict[str, str] = {
    "echo": "127.0.91.1",
    "canary": "127.0.91.2",
    "canary-two": "127.0.91.3",
    "other": "127.0.91.4",
}


# Services whose one endpoint speaks another protocol than HTTP/1.1 (address, protocol), on the
# hello servers' port: an HTTPS hello server (self-signed) and an h2c-only one
# (:mod:`polyingress.testing.protocols`). Reached only with the right backend-protocol.
PROTOCOL_SERVICES: dict[str, tuple[str, str]] = {
    "secure": ("127.0.91.5", "https"),
    "h2c": ("127.0.91.6", "h2c"),
}


def hello_name(service: str) -> str:
    return f"{NAMESPACE}/{service}"


def location(template: str, http_port: int, https_port: int) -> str:
    """A Location template with the proxy's ports filled in."""
    return template.format(
        http="" if http_port == 80 else f":{http_port}",
        https="" if https_port == 443 else f":{https_port}",
    )


@dataclass(frozen=True)
class Expect:
    """One request and what it must get. ``service``: the Service whose hello server must
    answer (200), receiving ``path_seen`` (default: the target as sent), ``host_seen``
    (default: the Host as sent) and ``headers_seen``; ``absent_seen`` must not reach it.
    Without a service, ``status`` is what the proxy answers by itself, with ``location``
    (a template, see :func:`location`) for a redirect. ``response_headers`` must be in the
    answer with these values (lowercase names), ``absent_response_headers`` not."""

    host: str
    target: str
    service: str | None = None
    status: int = 200
    method: str = "GET"
    scheme: str = "http"
    headers: tuple[tuple[str, str], ...] = ()
    path_seen: str | None = None
    host_seen: str | None = None
    headers_seen: tuple[tuple[str, str], ...] = ()
    absent_seen: tuple[str, ...] = ()
    location: str | None = None
    response_headers: tuple[tuple[str, str], ...] = ()
    absent_response_headers: tuple[str, ...] = ()

    def __str__(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.headers)
        return f"{self.method} {self.scheme}://{self.host}{self.target}{extra}"


@dataclass(frozen=True)
class AnnotationCase:
    """Ingresses (added to :func:`base_objects`) and the requests checked in order;
    ``weights``: (Service, share) the first request's answers must be split by."""

    name: str
    source: str
    ingresses: tuple[dict[str, Any], ...]
    expects: tuple[Expect, ...]
    weights: tuple[tuple[str, float], ...] = field(default=())

    def __str__(self) -> str:
        return self.name


def base_objects(port: int) -> list[dict[str, Any]]:
    """The IngressClass and the Services with their endpoints on ``port``."""
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": CLASS},
            "spec": {"controller": CONTROLLER},
        },
    ]
    addresses = {**SERVICES, **{n: a for n, (a, _p) in PROTOCOL_SERVICES.items()}}
    for name, address in addresses.items():
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]},
            }
        )
        objs.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-1",
                    "namespace": NAMESPACE,
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": port}],
                "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            }
        )
    return objs


def ingress(
    name: str,
    host: str,
    path: str,
    service: str = "echo",
    *,
    annotations: Mapping[str, str] | None = None,
    path_type: str = "Prefix",
    created: str = "2026-01-01T00:00:00Z",
    more: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """An Ingress with one rule (``more``: further (path, Service) of the same host)."""
    paths = [
        {
            "path": p,
            "pathType": path_type,
            "backend": {"service": {"name": svc, "port": {"number": 80}}},
        }
        for p, svc in ((path, service), *more)
    ]
    meta: dict[str, Any] = {"name": name, "namespace": NAMESPACE, "creationTimestamp": created}
    if annotations:
        meta["annotations"] = {NGINX + k: v for k, v in annotations.items()}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": {"ingressClassName": CLASS, "rules": [{"host": host, "http": {"paths": paths}}]},
    }


def _canary(
    name: str,
    host: str,
    path: str,
    service: str = "canary",
    created: str = "2026-01-02T00:00:00Z",
    **annotations: str,
) -> dict[str, Any]:
    ann = {"canary": "true", **{k.replace("_", "-"): v for k, v in annotations.items()}}
    return ingress(name, host, path, service, annotations=ann, created=created)


_E2E = "test/e2e/annotations/"
_DOCS = "docs/user-guide/nginx-configuration/annotations.md"

# --- rewrite-target, use-regex, x-forwarded-prefix, upstream-vhost ------------------------------

_REWRITE_LOG = AnnotationCase(
    "rewrite-target/whole-path",
    _E2E + 'rewrite.go "should write rewrite logs": rewritten data "/"; nginx\'s rewrite '
    "replaces the whole path and keeps the query",
    (ingress("rewrite", "rewrite.bar.com", "/something", annotations={"rewrite-target": "/"}),),
    (
        Expect("rewrite.bar.com", "/something", "echo", path_seen="/"),
        Expect("rewrite.bar.com", "/something/new?a=1", "echo", path_seen="/?a=1"),
        Expect("rewrite.bar.com", "/other", status=404),
    ),
)

_REWRITE_LONGEST = AnnotationCase(
    "rewrite-target/longest-path",
    _E2E + 'rewrite.go "should use correct longest path match"',
    (
        ingress("kube-lego", "rewrite.bar.com", "/.well-known/acme/challenge"),
        ingress(
            "rewrite-index",
            "rewrite.bar.com",
            "/",
            annotations={"rewrite-target": "/new/backend"},
            created="2026-01-02T00:00:00Z",
        ),
    ),
    (
        Expect("rewrite.bar.com", "/.well-known/acme/challenge", "echo"),
        Expect("rewrite.bar.com", "/anything", "echo", path_seen="/new/backend"),
    ),
)

_REWRITE_SAME = AnnotationCase(
    "rewrite-target/equal-to-path",
    "internal/ingress/controller/template/template.go buildProxyPass: no rewrite when the "
    "target is the rule's path",
    (ingress("same", "same.bar.com", "/", annotations={"rewrite-target": "/"}),),
    (Expect("same.bar.com", "/keep/this", "echo"),),
)

_REGEX_EXAMPLE = AnnotationCase(
    "use-regex/rewrite-capture",
    "docs/examples/rewrite/README.md: /something(/|$)(.*) with rewrite-target /$2",
    (
        ingress(
            "rewrite",
            "rewrite.bar.com",
            "/something(/|$)(.*)",
            path_type="ImplementationSpecific",
            annotations={"use-regex": "true", "rewrite-target": "/$2"},
        ),
    ),
    (
        Expect("rewrite.bar.com", "/something", "echo", path_seen="/"),
        Expect("rewrite.bar.com", "/something/", "echo", path_seen="/"),
        Expect("rewrite.bar.com", "/something/new?x=1", "echo", path_seen="/new?x=1"),
        Expect("rewrite.bar.com", "/somethingelse", status=404),
    ),
)

_REGEX_SUBPATH = AnnotationCase(
    "use-regex/custom-rewrite-parameters",
    _E2E + 'rewrite.go "should allow for custom rewrite parameters" (/foo/bar/(.+) there; '
    "(.*) is the form translated)",
    (
        ingress(
            "regex",
            "rewrite.bar.com",
            "/foo/bar/(.*)",
            path_type="ImplementationSpecific",
            annotations={"use-regex": "true", "rewrite-target": "/new/backend/$1"},
        ),
    ),
    (Expect("rewrite.bar.com", "/foo/bar/bar", "echo", path_seen="/new/backend/bar"),),
)

_FORWARDED_PREFIX = AnnotationCase(
    "x-forwarded-prefix/set",
    _E2E + 'xforwardedprefix.go "should set the X-Forwarded-Prefix to the annotation value"',
    (
        ingress(
            "xfp",
            "xfp.baz.com",
            "/",
            annotations={"x-forwarded-prefix": "/test/value", "rewrite-target": "/foo"},
        ),
    ),
    (
        Expect(
            "xfp.baz.com",
            "/",
            "echo",
            path_seen="/foo",
            headers_seen=(("x-forwarded-prefix", "/test/value"),),
        ),
    ),
)

_FORWARDED_PREFIX_EMPTY = AnnotationCase(
    "x-forwarded-prefix/empty",
    _E2E + 'xforwardedprefix.go "should not add X-Forwarded-Prefix if the annotation value is '
    'empty"',
    (
        ingress(
            "noxfp",
            "noxfp.baz.com",
            "/",
            annotations={"x-forwarded-prefix": "", "rewrite-target": "/foo"},
        ),
    ),
    (Expect("noxfp.baz.com", "/", "echo", path_seen="/foo", absent_seen=("x-forwarded-prefix",)),),
)

_UPSTREAM_VHOST = AnnotationCase(
    "upstream-vhost/host",
    _E2E + 'upstreamvhost.go "set host to upstreamvhost.bar.com"',
    (
        ingress(
            "upstreamvhost",
            "upstreamvhost.foo.com",
            "/",
            annotations={"upstream-vhost": "upstreamvhost.bar.com"},
        ),
    ),
    (Expect("upstreamvhost.foo.com", "/x", "echo", host_seen="upstreamvhost.bar.com"),),
)

# --- redirects -------------------------------------------------------------------------------

_APP_ROOT = AnnotationCase(
    "app-root/redirect",
    _E2E + 'approot.go "should redirect to /foo"',
    (ingress("approot", "approot.bar.com", "/", annotations={"app-root": "/foo"}),),
    (
        Expect("approot.bar.com", "/", status=302, location="http://approot.bar.com{http}/foo"),
        Expect(
            "approot.bar.com",
            "/",
            status=302,
            scheme="https",
            location="https://approot.bar.com{https}/foo",
        ),
        Expect("approot.bar.com", "/foo", "echo"),
    ),
)

_PERMANENT = AnnotationCase(
    "permanent-redirect/301",
    _DOCS + " Permanent Redirect; " + _E2E + "redirect.go",
    (
        ingress(
            "redirect",
            "redirect.bar.com",
            "/",
            annotations={"permanent-redirect": "http://redirect.example.com/new"},
        ),
    ),
    (
        Expect("redirect.bar.com", "/x", status=301, location="http://redirect.example.com/new"),
        Expect(
            "redirect.bar.com",
            "/x",
            status=301,
            method="POST",
            location="http://redirect.example.com/new",
        ),
    ),
)

_PERMANENT_CODE = AnnotationCase(
    "permanent-redirect-code/308",
    _DOCS + " Permanent Redirect Code; " + _E2E + "redirect.go",
    (
        ingress(
            "redirect",
            "redirect.bar.com",
            "/",
            annotations={
                "permanent-redirect": "https://www.example.com",
                "permanent-redirect-code": "308",
            },
        ),
    ),
    (Expect("redirect.bar.com", "/a", status=308, location="https://www.example.com/"),),
)

_TEMPORAL = AnnotationCase(
    "temporal-redirect/302-and-307",
    _DOCS + " Temporal Redirect (Code)",
    (
        ingress(
            "t302",
            "t302.bar.com",
            "/",
            annotations={"temporal-redirect": "https://www.example.com:8443/login"},
        ),
        ingress(
            "t307",
            "t307.bar.com",
            "/",
            annotations={
                "temporal-redirect": "http://www.example.com/",
                "temporal-redirect-code": "307",
            },
        ),
    ),
    (
        Expect("t302.bar.com", "/", status=302, location="https://www.example.com:8443/login"),
        Expect("t307.bar.com", "/", status=307, method="PUT", location="http://www.example.com/"),
    ),
)

_FORCE_SSL = AnnotationCase(
    "force-ssl-redirect/308",
    _E2E + 'forcesslredirect.go "should redirect to https" (ingress-nginx drops the trailing '
    "slash of / in its Location; here the path is kept)",
    (
        ingress(
            "forcesslredirect",
            "forcesslredirect.bar.com",
            "/",
            annotations={"force-ssl-redirect": "true"},
        ),
    ),
    (
        Expect(
            "forcesslredirect.bar.com",
            "/",
            status=308,
            location="https://forcesslredirect.bar.com{https}/",
        ),
        Expect(
            "forcesslredirect.bar.com",
            "/a?b=c",
            status=308,
            method="POST",
            location="https://forcesslredirect.bar.com{https}/a?b=c",
        ),
        Expect("forcesslredirect.bar.com", "/a", "echo", scheme="https"),
    ),
)

# --- canaries ----------------------------------------------------------------------------------

_CANARY_MAIN = ingress("main", "canary.foo.com", "/", "echo")

_CANARY_HEADER = AnnotationCase(
    "canary-by-header/always-never",
    _E2E + 'canary.go "when canaried by header with no value"',
    (_CANARY_MAIN, _canary("canary", "canary.foo.com", "/", canary_by_header="CanaryByHeader")),
    (
        Expect("canary.foo.com", "/", "canary", headers=(("CanaryByHeader", "always"),)),
        Expect("canary.foo.com", "/", "echo", headers=(("CanaryByHeader", "never"),)),
        Expect("canary.foo.com", "/", "echo", headers=(("CanaryByHeader", "badheadervalue"),)),
        Expect("canary.foo.com", "/", "echo"),
    ),
)

_CANARY_HEADER_VALUE = AnnotationCase(
    "canary-by-header-value/match",
    _E2E + 'canary.go "when canaried by header with value"',
    (
        _CANARY_MAIN,
        _canary(
            "canary",
            "canary.foo.com",
            "/",
            canary_by_header="CanaryByHeader",
            canary_by_header_value="DoCanary",
        ),
    ),
    (
        Expect("canary.foo.com", "/", "canary", headers=(("CanaryByHeader", "DoCanary"),)),
        Expect("canary.foo.com", "/", "echo", headers=(("CanaryByHeader", "always"),)),
        Expect("canary.foo.com", "/", "echo", headers=(("CanaryByHeader", "never"),)),
        Expect("canary.foo.com", "/", "echo", headers=(("CanaryByHeader", "otherheadervalue"),)),
    ),
)

_CANARY_NO_MAIN = AnnotationCase(
    "canary/no-main-ingress",
    _E2E + 'canary.go "should return 404 status for requests to the canary if no matching '
    'ingress is found"',
    (_canary("canary", "canary.foo.com", "/", canary_by_header="CanaryByHeader"),),
    (Expect("canary.foo.com", "/", status=404, headers=(("CanaryByHeader", "always"),)),),
)

_CANARY_WEIGHT_0 = AnnotationCase(
    "canary-weight/0",
    _E2E + 'canary.go "should route requests only to mainline if canary weight is 0"',
    (_CANARY_MAIN, _canary("canary", "canary.foo.com", "/", canary_weight="0")),
    (Expect("canary.foo.com", "/", "echo"),),
)

_CANARY_WEIGHT_100 = AnnotationCase(
    "canary-weight/100",
    _E2E + 'canary.go "should route requests only to canary if canary weight is 100"',
    (_CANARY_MAIN, _canary("canary", "canary.foo.com", "/", canary_weight="100")),
    (Expect("canary.foo.com", "/", "canary"),),
)

_CANARY_WEIGHT_TOTAL = AnnotationCase(
    "canary-weight-total/equal",
    _E2E + 'canary.go "should route requests only to canary if canary weight is equal to '
    'canary weight total"',
    (
        _CANARY_MAIN,
        _canary(
            "canary",
            "canary.foo.com",
            "/",
            canary_weight="1000",
            canary_weight_total="1000",
        ),
    ),
    (Expect("canary.foo.com", "/", "canary"),),
)

_CANARY_WEIGHT_50 = AnnotationCase(
    "canary-weight-total/half",
    _E2E + 'canary.go "should route requests split between mainline and canary if canary '
    'weight is 100 and weight total is 200"',
    (
        _CANARY_MAIN,
        _canary("canary", "canary.foo.com", "/", canary_weight="100", canary_weight_total="200"),
    ),
    (Expect("canary.foo.com", "/", None, status=200),),
    weights=(("echo", 0.5), ("canary", 0.5)),
)

_CANARY_HEADER_OVER_WEIGHT = AnnotationCase(
    "canary-by-header/before-weight",
    _DOCS + " Canary: precedence canary-by-header -> canary-by-cookie -> canary-weight",
    (
        _CANARY_MAIN,
        _canary(
            "canary",
            "canary.foo.com",
            "/",
            canary_by_header="CanaryByHeader",
            canary_weight="100",
        ),
    ),
    (
        Expect("canary.foo.com", "/", "echo", headers=(("CanaryByHeader", "never"),)),
        Expect("canary.foo.com", "/", "canary"),
    ),
)

_TWO_CANARIES = AnnotationCase(
    "canary/two-canaries",
    "polyingress's extension: any number of canaries per path (ingress-nginx serves one); "
    "header rows in age order, weights added up",
    (
        _CANARY_MAIN,
        _canary(
            "canary",
            "canary.foo.com",
            "/",
            canary_by_header="X-Canary",
            canary_by_header_value="one",
            canary_weight="25",
        ),
        _canary(
            "canary-two",
            "canary.foo.com",
            "/",
            "canary-two",
            created="2026-01-03T00:00:00Z",
            canary_by_header="X-Canary-Two",
            canary_weight="25",
        ),
    ),
    (
        Expect("canary.foo.com", "/", None, status=200),
        Expect("canary.foo.com", "/", "canary", headers=(("X-Canary", "one"),)),
        Expect("canary.foo.com", "/", "canary-two", headers=(("X-Canary-Two", "always"),)),
    ),
    weights=(("echo", 0.5), ("canary", 0.25), ("canary-two", 0.25)),
)

# --- hosts, timeouts -------------------------------------------------------------------------

_ALIAS = AnnotationCase(
    "server-alias/two-hosts",
    _E2E + "alias.go \"should return status code 200 for host 'foo' and 'bar'\"",
    (ingress("alias", "foo", "/", annotations={"server-alias": "bar"}),),
    (
        Expect("foo", "/", "echo"),
        Expect("bar", "/", "echo"),
        Expect("baz", "/", status=404),
    ),
)

_ALIAS_TWO_INGRESSES = AnnotationCase(
    "server-alias/two-ingresses",
    _E2E + 'alias.go "should return status code 200 for hosts defined in two ingresses, '
    'different path with one alias"',
    (
        ingress("app-a", "foo", "/app-a"),
        ingress(
            "app-b",
            "foo",
            "/app-b",
            annotations={"server-alias": "bar"},
            created="2026-01-02T00:00:00Z",
        ),
    ),
    (Expect("foo", "/app-a", "echo"), Expect("bar", "/app-a", "echo")),
)

_READ_TIMEOUT = AnnotationCase(
    "proxy-read-timeout/504",
    _DOCS + " Custom timeouts (unitless seconds); nginx answers 504 when the backend does not "
    "answer in time",
    (ingress("timeout", "timeout.bar.com", "/", annotations={"proxy-read-timeout": "1"}),),
    (
        Expect("timeout.bar.com", "/slow?delay=3s", status=504),
        Expect("timeout.bar.com", "/fast?delay=100ms", "echo"),
    ),
)

# --- backend-protocol ------------------------------------------------------------------------

_BACKEND_HTTPS = AnnotationCase(
    "backend-protocol/HTTPS",
    _E2E
    + 'backendprotocol.go "should set backend protocol to https:// and use proxy_pass"; '
    + _DOCS
    + " (HTTPS: TLS to the endpoint; ingress-nginx does not verify its certificate)",
    (ingress("https", "https.bar.com", "/", "secure", annotations={"backend-protocol": "HTTPS"}),),
    (Expect("https.bar.com", "/tls?a=1", "secure"),),
)

_BACKEND_H2C = AnnotationCase(
    "backend-protocol/H2C",
    _E2E + 'backendprotocol.go "should set backend protocol to h2c"; the endpoint speaks '
    "HTTP/2 only, so only a proxy talking h2c reaches it",
    (ingress("h2c", "h2c.bar.com", "/", "h2c", annotations={"backend-protocol": "H2C"}),),
    (Expect("h2c.bar.com", "/h2?a=1", "h2c"),),
)

# --- enable-cors -----------------------------------------------------------------------------

_CORS_DEFAULT_METHODS = "GET, PUT, POST, DELETE, PATCH, OPTIONS"
_CORS_DEFAULT_HEADERS = (
    "DNT, Keep-Alive, User-Agent, X-Requested-With, If-Modified-Since, Cache-Control, "
    "Content-Type, Range, Authorization"
)


def _preflight(origin: str) -> tuple[tuple[str, str], ...]:
    return (("Origin", origin), ("Access-Control-Request-Method", "GET"))


_CORS_DEFAULTS = AnnotationCase(
    "enable-cors/defaults",
    _E2E + 'cors.go "should enable cors" (the default methods, headers, credentials and '
    "max-age); partial: the Origin is echoed where ingress-nginx answers *, a preflight is 204",
    (ingress("cors", "cors.foo.com", "/", annotations={"enable-cors": "true"}),),
    (
        Expect(
            "cors.foo.com",
            "/",
            status=204,
            method="OPTIONS",
            headers=_preflight("https://origin.example"),
            response_headers=(
                ("access-control-allow-origin", "https://origin.example"),
                ("access-control-allow-methods", _CORS_DEFAULT_METHODS),
                ("access-control-allow-headers", _CORS_DEFAULT_HEADERS),
                ("access-control-allow-credentials", "true"),
                ("access-control-max-age", "1728000"),
            ),
        ),
        Expect(
            "cors.foo.com",
            "/x",
            "echo",
            headers=(("Origin", "https://origin.example"),),
            response_headers=(
                ("access-control-allow-origin", "https://origin.example"),
                ("access-control-allow-credentials", "true"),
            ),
        ),
        Expect(
            "cors.foo.com", "/x", "echo", absent_response_headers=("access-control-allow-origin",)
        ),
    ),
)

_CORS_ORIGINS = AnnotationCase(
    "enable-cors/origins",
    _E2E + 'cors.go "should allow - single origin for multiple cors values", "should not '
    'allow - single origin for multiple cors values", "should allow correct origin but not '
    'others - cors allow origin annotations contain trailing comma", wildcard origins; '
    "cors-allow-methods, -headers, -expose-headers, -credentials, -max-age",
    (
        ingress(
            "cors",
            "cors.foo.com",
            "/",
            annotations={
                "enable-cors": "true",
                "cors-allow-origin": "https://origin.cors.com:8080, https://*.wild.cors.com,",
                "cors-allow-methods": "PUT, GET",
                "cors-allow-headers": "X-Custom",
                "cors-expose-headers": "X-Exposed, X-Other",
                "cors-allow-credentials": "false",
                "cors-max-age": "600",
            },
        ),
    ),
    (
        Expect(
            "cors.foo.com",
            "/",
            status=204,
            method="OPTIONS",
            headers=_preflight("https://origin.cors.com:8080"),
            response_headers=(
                ("access-control-allow-origin", "https://origin.cors.com:8080"),
                ("access-control-allow-methods", "PUT, GET"),
                ("access-control-allow-headers", "X-Custom"),
                ("access-control-expose-headers", "X-Exposed, X-Other"),
                ("access-control-max-age", "600"),
            ),
            absent_response_headers=("access-control-allow-credentials",),
        ),
        Expect(
            "cors.foo.com",
            "/",
            status=204,
            method="OPTIONS",
            headers=_preflight("https://origin.cors.com"),
            absent_response_headers=("access-control-allow-origin",),
        ),
        Expect(
            "cors.foo.com",
            "/a",
            "echo",
            headers=(("Origin", "https://a.wild.cors.com"),),
            response_headers=(
                ("access-control-allow-origin", "https://a.wild.cors.com"),
                ("access-control-expose-headers", "X-Exposed, X-Other"),
            ),
        ),
        Expect(
            "cors.foo.com",
            "/a",
            "echo",
            headers=(("Origin", "https://wild.cors.com"),),
            absent_response_headers=("access-control-allow-origin",),
        ),
    ),
)

CASES: list[AnnotationCase] = [
    _REWRITE_LOG,
    _REWRITE_LONGEST,
    _REWRITE_SAME,
    _REGEX_EXAMPLE,
    _REGEX_SUBPATH,
    _FORWARDED_PREFIX,
    _FORWARDED_PREFIX_EMPTY,
    _UPSTREAM_VHOST,
    _APP_ROOT,
    _PERMANENT,
    _PERMANENT_CODE,
    _TEMPORAL,
    _FORCE_SSL,
    _CANARY_HEADER,
    _CANARY_HEADER_VALUE,
    _CANARY_NO_MAIN,
    _CANARY_WEIGHT_0,
    _CANARY_WEIGHT_100,
    _CANARY_WEIGHT_TOTAL,
    _CANARY_WEIGHT_50,
    _CANARY_HEADER_OVER_WEIGHT,
    _TWO_CANARIES,
    _ALIAS,
    _ALIAS_TWO_INGRESSES,
    _READ_TIMEOUT,
    _BACKEND_HTTPS,
    _BACKEND_H2C,
    _CORS_DEFAULTS,
    _CORS_ORIGINS,
]
