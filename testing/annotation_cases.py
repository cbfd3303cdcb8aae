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

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALLOWED_RESPONSE_HEADERS",
    "BLACKHOLE",
    "CASES",
    "NGINX",
    "PROTOCOL_SERVICES",
    "SERVICES",
    "SETTINGS_CONFIGMAP",
    "SINK",
    "STICKY",
    "AnnotationCase",
    "Expect",
    "Sticky",
    "base_objects",
    "hello_name",
    "location",
    "sticky_names",
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


# A Service whose one endpoint never accepts a connection: a listener whose accept queue is
# full (AnnotationWorld), so the kernel drops every further SYN and a connect waits until the
# proxy's connect timeout.
BLACKHOLE = ("blackhole", "127.0.91.9")
# A Service whose one endpoint accepts connections and never reads them (a small receive
# buffer): a request body larger than the buffers stops being sent, until the proxy's send
# timeout.
SINK = ("sink", "127.0.91.13")

# A Service with three endpoints, for session affinity: (Service, its endpoints' addresses).
STICKY = ("sticky", ("127.0.91.10", "127.0.91.11", "127.0.91.12"))


def sticky_names() -> list[tuple[str, str]]:
    """(hello server name, address) of the sticky Service's endpoints."""
    return [(f"{NAMESPACE}/{STICKY[0]}-{i}", a) for i, a in enumerate(STICKY[1])]


# The --configmap of the annotation worlds: global settings the annotations read
# (global-allowed-response-headers: the names custom-headers may set).
SETTINGS_CONFIGMAP = (NAMESPACE, "polyingress-settings")
ALLOWED_RESPONSE_HEADERS = ("My-Custom-Header", "My-Custom-Header-Dollar", "X-Frame-Options")


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
    answer with these values (lowercase names), ``absent_response_headers`` not. ``source``:
    the client address the request comes from (a loopback address: the proxies listen on
    127.0.0.1); ``body_size``: the request carries a body of that many bytes (with its
    Content-Length unless ``chunked``)."""

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
    within: float | None = None  # the answer must come sooner (seconds) ...
    ends_by: str = "connect_timeout"  # ... ended by this timeout of the route
    source: str = "127.0.0.1"
    body_size: int | None = None  # a body of that many bytes is sent
    chunked: bool = False  # the body without a Content-Length
    challenge: str | None = None  # the WWW-Authenticate of a 401

    def __str__(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.headers)
        origin = f" from {self.source}" if self.source != "127.0.0.1" else ""
        body = f" body={self.body_size}" if self.body_size is not None else ""
        return f"{self.method} {self.scheme}://{self.host}{self.target}{extra}{origin}{body}"


@dataclass(frozen=True)
class Sticky:
    """Session affinity through ``host`` + ``target`` (the sticky Service): a request without
    the cookie ``cookie`` gets it, with ``attributes`` (``Name=value`` or a flag, compared
    without case) and none of ``absent``; ``requests`` requests sending it back reach one
    endpoint; as many without it reach more than one."""

    host: str
    target: str
    cookie: str
    attributes: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    scheme: str = "http"
    requests: int = 20


@dataclass(frozen=True)
class AnnotationCase:
    """Ingresses (and the objects they read, added to :func:`base_objects`, with ``objects``,
    e.g. Secrets) and the requests checked in order; ``weights``: (Service, share) the first
    request's answers must be split by; ``errors``: a text each of the build's errors must
    hold, one per error (none by default)."""

    name: str
    source: str
    ingresses: tuple[dict[str, Any], ...]
    expects: tuple[Expect, ...]
    weights: tuple[tuple[str, float], ...] = field(default=())
    objects: tuple[dict[str, Any], ...] = field(default=())
    errors: tuple[str, ...] = field(default=())
    sticky: tuple[Sticky, ...] = field(default=())

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
    objs.append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": SETTINGS_CONFIGMAP[1], "namespace": NAMESPACE},
            "data": {
                "global-allowed-response-headers": ",".join(ALLOWED_RESPONSE_HEADERS),
                # Longer than any case waits: a proxy-connect-timeout or -send-timeout case
                # must end sooner; bodies of the send-timeout case are accepted.
                "proxy-connect-timeout": "60s",
                "proxy-send-timeout": "60s",
                "proxy-body-size": "32m",
            },
        }
    )
    for name, addresses in (
        *((n, (a,)) for n, a in SERVICES.items()),
        *((n, (a,)) for n, (a, _p) in PROTOCOL_SERVICES.items()),
        (BLACKHOLE[0], (BLACKHOLE[1],)),
        (SINK[0], (SINK[1],)),
        STICKY,
    ):
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
                "endpoints": [
                    {"addresses": [address], "conditions": {"ready": True}} for address in addresses
                ],
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


def _cookie(value: str) -> tuple[tuple[str, str], ...]:
    return (("Cookie", value),)


_CANARY_COOKIE = AnnotationCase(
    "canary-by-cookie/always-never",
    _E2E + 'canary.go "when canaried by cookie respects always and never values"; the cookie '
    "among others; the name matched case-sensitively (ingress-nginx: in any case)",
    (_CANARY_MAIN, _canary("canary", "canary.foo.com", "/", canary_by_cookie="Canary-By-Cookie")),
    (
        Expect("canary.foo.com", "/", "canary", headers=_cookie("Canary-By-Cookie=always")),
        Expect("canary.foo.com", "/", "echo", headers=_cookie("Canary-By-Cookie=never")),
        Expect("canary.foo.com", "/", "echo", headers=_cookie("Canary-By-Cookie=badcookievalue")),
        Expect("canary.foo.com", "/", "echo"),
        Expect(
            "canary.foo.com", "/x", "canary", headers=_cookie("a=1; Canary-By-Cookie=always; b=2")
        ),
        Expect(
            "canary.foo.com",
            "/",
            "echo",
            headers=_cookie("Canary-By-Cookie=never; Canary-By-Cookie=always"),
        ),
        Expect("canary.foo.com", "/", "echo", headers=_cookie("canary-by-cookie=always")),
        Expect("canary.foo.com", "/", "echo", headers=_cookie("XCanary-By-Cookie=always")),
    ),
)


def _hdr(value: str) -> tuple[tuple[str, str], ...]:
    return (("CanaryByHeader", value),)


_CANARY_PATTERN = AnnotationCase(
    "canary-by-header-pattern/match",
    _E2E + 'canary.go "when canaried by header with value and pattern" (the pattern alone); '
    "balancer.lua: ngx.re.match finds the pattern anywhere in the value, and a value it is not "
    "found in (always, never included) goes on to the cookie and the weights",
    (
        _CANARY_MAIN,
        _canary(
            "canary",
            "canary.foo.com",
            "/",
            canary_by_header="CanaryByHeader",
            canary_by_header_pattern="^Do[A-Z][a-z]+y$",
        ),
        _canary(
            "search",
            "canary.foo.com",
            "/search",
            "canary-two",
            canary_by_header="CanaryByHeader",
            canary_by_header_pattern="stag(ing)?|lab",
        ),
        ingress("search-main", "canary.foo.com", "/search", "echo"),
    ),
    (
        Expect("canary.foo.com", "/", "canary", headers=_hdr("DoCanary")),
        Expect("canary.foo.com", "/x?y=1", "canary", headers=_hdr("DoDummy")),
        Expect("canary.foo.com", "/", "echo", headers=_hdr("Docanary")),
        Expect("canary.foo.com", "/", "echo", headers=_hdr("always")),
        Expect("canary.foo.com", "/", "echo", headers=_hdr("xDoCanary")),
        Expect("canary.foo.com", "/", "echo"),
        Expect("canary.foo.com", "/search", "canary-two", headers=_hdr("pre-staging-2")),
        Expect("canary.foo.com", "/search/a", "canary-two", headers=_hdr("lab")),
        Expect("canary.foo.com", "/search", "echo", headers=_hdr("STAGING")),
        Expect("canary.foo.com", "/search", "echo", headers=_hdr("never")),
    ),
)

_CANARY_PATTERN_COOKIE = AnnotationCase(
    "canary-by-header-pattern/then-cookie",
    "balancer.lua: a value the pattern is not found in goes on to canary-by-cookie; "
    + _DOCS
    + " Canary: precedence canary-by-header -> canary-by-cookie -> canary-weight",
    (
        ingress("search-main", "canary.foo.com", "/search", "echo"),
        _canary(
            "search",
            "canary.foo.com",
            "/search",
            "canary-two",
            canary_by_header="CanaryByHeader",
            canary_by_header_pattern="stag(ing)?|lab",
            canary_by_cookie="CanaryByCookie",
        ),
    ),
    (
        Expect(
            "canary.foo.com",
            "/search",
            "canary-two",
            headers=(*_hdr("never"), *_cookie("CanaryByCookie=always")),
        ),
        # The header's pattern before the cookie's never (precedence header -> cookie).
        Expect(
            "canary.foo.com",
            "/search",
            "canary-two",
            headers=(*_hdr("lab"), *_cookie("CanaryByCookie=never")),
        ),
    ),
)

_CANARY_PATTERN_VALUE = AnnotationCase(
    "canary-by-header-pattern/value-wins",
    _E2E + 'canary.go "when canaried by header with value and pattern": with '
    "canary-by-header-value set the pattern has no effect",
    (
        _CANARY_MAIN,
        _canary(
            "canary",
            "canary.foo.com",
            "/",
            canary_by_header="CanaryByHeader",
            canary_by_header_value="DoCanary",
            canary_by_header_pattern="^Do[A-Z][a-z]+y$",
        ),
    ),
    (
        Expect("canary.foo.com", "/", "echo", headers=_hdr("DoCananry")),
        Expect("canary.foo.com", "/", "echo", headers=_hdr("DoDummy")),
        Expect("canary.foo.com", "/", "canary", headers=_hdr("DoCanary")),
    ),
)

_CANARY_PATTERN_REFUSED = AnnotationCase(
    "canary-by-header-pattern/refused-regex",
    _E2E + 'canary.go "should routes to mainline upstream when the given Regex causes error" '
    "(the canary Ingress is rejected naming the key, so the main Ingress answers); a "
    "look-ahead, which RE2 lacks, likewise",
    (
        _CANARY_MAIN,
        _canary(
            "canary",
            "canary.foo.com",
            "/",
            canary_by_header="CanaryByHeader",
            canary_by_header_pattern="[][**da?$&*",
            canary_by_cookie="CanaryByCookie",
        ),
        _canary(
            "lookahead",
            "canary.foo.com",
            "/",
            created="2026-01-03T00:00:00Z",
            canary_by_header="CanaryByHeader",
            canary_by_header_pattern="^(?=Do)",
        ),
    ),
    (
        Expect(
            "canary.foo.com",
            "/",
            "echo",
            headers=(*_hdr("DoCanary"), *_cookie("CanaryByCookie=always")),
        ),
        Expect("canary.foo.com", "/", "echo", headers=_hdr("DoCanary")),
    ),
    errors=("canary-by-header-pattern", "canary-by-header-pattern"),
)

_CANARY_HEADER_VALUE_COOKIE = AnnotationCase(
    "canary-by-cookie/after-header-value",
    _E2E + 'canary.go "when canaried by header with value and cookie should route requests '
    'to the correct upstream"',
    (
        _CANARY_MAIN,
        _canary(
            "canary",
            "canary.foo.com",
            "/",
            canary_by_header="CanaryByHeader",
            canary_by_header_value="DoCanary",
            canary_by_cookie="CanaryByCookie",
        ),
    ),
    (
        Expect(
            "canary.foo.com",
            "/",
            "canary",
            headers=(("CanaryByHeader", "otherheadervalue"), ("Cookie", "CanaryByCookie=always")),
        ),
        Expect("canary.foo.com", "/", "canary", headers=(("CanaryByHeader", "DoCanary"),)),
        Expect(
            "canary.foo.com",
            "/",
            "canary",
            headers=(("CanaryByHeader", "DoCanary"), ("Cookie", "CanaryByCookie=never")),
        ),
        Expect("canary.foo.com", "/", "echo", headers=_cookie("CanaryByCookie=never")),
    ),
)

_CANARY_PRECEDENCE = AnnotationCase(
    "canary-by-cookie/header-cookie-weight",
    _DOCS + " Canary: precedence canary-by-header -> canary-by-cookie -> canary-weight "
    "(rootfs/etc/nginx/lua/balancer.lua: a header 'never' ends the choice)",
    (
        _CANARY_MAIN,
        _canary(
            "canary",
            "canary.foo.com",
            "/",
            canary_by_header="CanaryByHeader",
            canary_by_cookie="CanaryByCookie",
            canary_weight="100",
        ),
    ),
    (
        Expect(
            "canary.foo.com",
            "/",
            "echo",
            headers=(("CanaryByHeader", "never"), ("Cookie", "CanaryByCookie=always")),
        ),
        Expect(
            "canary.foo.com",
            "/",
            "canary",
            headers=(("CanaryByHeader", "always"), ("Cookie", "CanaryByCookie=never")),
        ),
        Expect("canary.foo.com", "/", "echo", headers=_cookie("CanaryByCookie=never")),
        Expect("canary.foo.com", "/", "canary", headers=_cookie("CanaryByCookie=other")),
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

# --- custom-headers --------------------------------------------------------------------------


def _configmap(name: str, data: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": dict(data),
    }


_CUSTOM = {"custom-headers": f"{NAMESPACE}/custom-headers"}

_CUSTOM_HEADERS = AnnotationCase(
    "custom-headers/set",
    _E2E + "customheaders.go \"should set 'more_set_headers 'My-Custom-Header' '42';' when "
    'custom-headers are set" (names listed in global-allowed-response-headers); the value '
    "$remote_addr is sent as written; a name the backend sends too is replaced",
    (
        _configmap(
            "custom-headers",
            {
                "My-Custom-Header": "42",
                "My-Custom-Header-Dollar": "$remote_addr",
                "X-Frame-Options": "DENY",
            },
        ),
        ingress("custom", "custom-headers", "/", annotations=_CUSTOM),
    ),
    (
        Expect(
            "custom-headers",
            "/",
            "echo",
            response_headers=(
                ("My-Custom-Header", "42"),
                ("My-Custom-Header-Dollar", "$remote_addr"),
                ("X-Frame-Options", "DENY"),
            ),
        ),
        Expect(
            "custom-headers",
            "/x",
            "echo",
            headers=(("X-Echo-Set-Header", "X-Frame-Options:SAMEORIGIN"),),
            response_headers=(("X-Frame-Options", "DENY"),),
        ),
    ),
)

_CUSTOM_HEADERS_MISSING = AnnotationCase(
    "custom-headers/missing-configmap",
    _E2E + 'customheaders.go "should return status code 503 when custom-headers is configured '
    'with an invalid secret"',
    (ingress("custom", "custom-headers", "/", annotations=_CUSTOM),),
    (Expect("custom-headers", "/", status=503),),
    errors=("ConfigMap annotations/custom-headers not found",),
)

_CUSTOM_HEADERS_NOT_ALLOWED = AnnotationCase(
    "custom-headers/not-allowed",
    "internal/ingress/annotations/customheaders/main.go: a header not listed in "
    "global-allowed-response-headers denies the location (503)",
    (
        _configmap("custom-headers", {"My-Custom-Header": "42", "Not-Listed": "1"}),
        ingress("custom", "custom-headers", "/", annotations=_CUSTOM),
        ingress("plain", "plain.custom-headers", "/"),
    ),
    (
        Expect("custom-headers", "/", status=503),
        Expect("plain.custom-headers", "/", "echo"),
    ),
    errors=("header Not-Listed is not allowed",),
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

_SEND_TIMEOUT = AnnotationCase(
    "proxy-send-timeout/504",
    _DOCS + " Custom timeouts (unitless seconds): nginx's proxy_send_timeout answers 504 when "
    "the backend stops reading the request for that long (the ConfigMap's is 60s here)",
    (
        ingress("send", "send.bar.com", "/", SINK[0], annotations={"proxy-send-timeout": "1"}),
        ingress("fine", "send-fine.bar.com", "/", annotations={"proxy-send-timeout": "1"}),
    ),
    (
        Expect(
            "send.bar.com",
            "/",
            status=504,
            method="POST",
            within=15.0,
            ends_by="send_timeout",
            body_size=24 << 20,
        ),
        Expect("send-fine.bar.com", "/x", "echo", method="POST", body_size=1 << 20),
    ),
)

_CONNECT_TIMEOUT = AnnotationCase(
    "proxy-connect-timeout/504",
    _DOCS + " Custom timeouts (unitless seconds): nginx's proxy_connect_timeout answers 504 "
    "when no endpoint accepts the connection in time (the ConfigMap's is 60s here)",
    (
        ingress(
            "connect",
            "connect.bar.com",
            "/",
            BLACKHOLE[0],
            annotations={"proxy-connect-timeout": "1"},
        ),
        ingress("fine", "connect-fine.bar.com", "/", annotations={"proxy-connect-timeout": "1"}),
    ),
    (
        Expect("connect.bar.com", "/", status=504, within=15.0),
        Expect("connect-fine.bar.com", "/x", "echo"),
    ),
)

# --- session affinity ------------------------------------------------------------------------

_AFFINITY = AnnotationCase(
    "affinity/sticky-cookie",
    _E2E + 'affinity.go "should set sticky cookie SERVERID"; the brief\'s rule: with the cookie '
    "20 requests reach one of 3 endpoints, without it they spread",
    (
        ingress(
            "sticky",
            "sticky.foo.com",
            "/",
            STICKY[0],
            annotations={"affinity": "cookie", "session-cookie-name": "SERVERID"},
        ),
    ),
    (),
    sticky=(
        Sticky(
            "sticky.foo.com",
            "/",
            "SERVERID",
            attributes=("Path=/", "HttpOnly"),
            absent=("Secure", "Domain", "Max-Age"),
        ),
        Sticky("sticky.foo.com", "/x", "SERVERID", attributes=("Secure",), scheme="https"),
    ),
)

_AFFINITY_ATTRIBUTES = AnnotationCase(
    "affinity/cookie-attributes",
    _E2E + 'affinity.go "should set the path to /something on the generated cookie", "should '
    'set cookie with expires" (Max-Age), "should set cookie with domain", "should set secure '
    'in cookie with provided true annotation on http"; docs: SameSite',
    (
        ingress(
            "sticky",
            "attributes.foo.com",
            "/something",
            STICKY[0],
            annotations={
                "affinity": "cookie",
                "affinity-mode": "persistent",
                "session-cookie-name": "ExpiresCookie",
                "session-cookie-expires": "172800",
                "session-cookie-max-age": "259200",
                "session-cookie-domain": "foo.bar",
                "session-cookie-samesite": "Strict",
                "session-cookie-secure": "true",
            },
        ),
        ingress(
            "plain",
            "attributes.foo.com",
            "/other",
            STICKY[0],
            created="2026-01-02T00:00:00Z",
        ),
    ),
    (Expect("attributes.foo.com", "/other", None, status=200),),
    sticky=(
        Sticky(
            "attributes.foo.com",
            "/something/x",
            "ExpiresCookie",
            attributes=(
                "Path=/something",
                "Max-Age=259200",
                "Domain=foo.bar",
                "SameSite=Strict",
                "Secure",
                "HttpOnly",
            ),
        ),
    ),
)

# --- access: client address lists -----------------------------------------------------------
# The client binds its connection to an address of 127.0.0.0/8 (every one of them reaches a
# proxy listening on 127.0.0.1): 127.0.92.x and 127.0.93.x stand for two client networks.

_INSIDE, _OUTSIDE = "127.0.92.5", "127.0.93.5"

_ALLOWLIST = AnnotationCase(
    "allowlist-source-range/403-for-others",
    _E2E
    + 'ipallowlist.go "should set valid ip allowlist range" (allow lines, then deny all); '
    + _DOCS
    + " Allowlist source range",
    (
        ingress(
            "allowlist",
            "allowlist.foo.com",
            "/",
            annotations={"allowlist-source-range": "127.0.92.0/24, ::1"},
        ),
    ),
    (
        Expect("allowlist.foo.com", "/", "echo", source=_INSIDE),
        Expect("allowlist.foo.com", "/a?b=c", "echo", source="127.0.92.250"),
        Expect("allowlist.foo.com", "/", status=403, source=_OUTSIDE),
        Expect("allowlist.foo.com", "/x", status=403, method="POST", source=_OUTSIDE),
        Expect("allowlist.foo.com", "/x", status=403, scheme="https", source=_OUTSIDE),
        Expect("allowlist.foo.com", "/x", "echo", scheme="https", source=_INSIDE),
        Expect("allowlist.foo.com", "/", status=403),  # from 127.0.0.1
    ),
)

_CORS_BEFORE_POLICY = AnnotationCase(
    "enable-cors/preflight-before-allowlist",
    "polyingress: a CORS row answers a preflight 204 before the row's policy (as an nginx "
    "location answers its OPTIONS before its allow/deny), and an allowed Origin gets its headers "
    "also on the policy's 403 (RouteModel.answer)",
    (
        ingress(
            "corsallow",
            "corsallow.foo.com",
            "/",
            annotations={
                "enable-cors": "true",
                "cors-allow-origin": "https://origin.example",
                "allowlist-source-range": "127.0.92.0/24",
            },
        ),
    ),
    (
        Expect(
            "corsallow.foo.com",
            "/",
            status=204,
            method="OPTIONS",
            headers=_preflight("https://origin.example"),
            response_headers=(("access-control-allow-origin", "https://origin.example"),),
            source=_OUTSIDE,
        ),
        Expect(
            "corsallow.foo.com",
            "/x",
            status=403,
            headers=(("Origin", "https://origin.example"),),
            response_headers=(("access-control-allow-origin", "https://origin.example"),),
            source=_OUTSIDE,
        ),
        Expect("corsallow.foo.com", "/x", status=403, source=_OUTSIDE),
        Expect(
            "corsallow.foo.com",
            "/x",
            "echo",
            headers=(("Origin", "https://origin.example"),),
            response_headers=(("access-control-allow-origin", "https://origin.example"),),
            source=_INSIDE,
        ),
    ),
)

_WHITELIST = AnnotationCase(
    "whitelist-source-range/old-name",
    "internal/ingress/annotations/ipallowlist/main.go: whitelist-source-range is an alias of "
    "allowlist-source-range, which wins when both are set",
    (
        ingress(
            "whitelist",
            "whitelist.foo.com",
            "/",
            annotations={"whitelist-source-range": "127.0.93.0/24"},
        ),
        ingress(
            "both",
            "both.foo.com",
            "/",
            annotations={
                "whitelist-source-range": "127.0.93.0/24",
                "allowlist-source-range": "127.0.92.0/24",
            },
        ),
    ),
    (
        Expect("whitelist.foo.com", "/", "echo", source=_OUTSIDE),
        Expect("whitelist.foo.com", "/", status=403, source=_INSIDE),
        Expect("both.foo.com", "/", "echo", source=_INSIDE),
        Expect("both.foo.com", "/", status=403, source=_OUTSIDE),
    ),
)

_DENYLIST = AnnotationCase(
    "denylist-source-range/403-for-listed",
    _E2E
    + 'ipdenylist.go "should set valid ip denylist range" (deny lines, no deny all); '
    + _DOCS
    + " Denylist source range",
    (
        ingress(
            "denylist",
            "denylist.foo.com",
            "/",
            annotations={"denylist-source-range": "127.0.93.0/24,127.0.92.7"},
        ),
    ),
    (
        Expect("denylist.foo.com", "/", status=403, source=_OUTSIDE),
        Expect("denylist.foo.com", "/", status=403, source="127.0.92.7"),
        Expect("denylist.foo.com", "/", "echo", source="127.0.92.8"),
        Expect("denylist.foo.com", "/", "echo"),
    ),
)

_DENY_BEFORE_ALLOW = AnnotationCase(
    "denylist-source-range/before-allowlist",
    "rootfs/etc/nginx/template/nginx.tmpl: a location's deny lines come before its allow lines "
    "and deny all",
    (
        ingress(
            "acl",
            "acl.foo.com",
            "/",
            annotations={
                "allowlist-source-range": "127.0.92.0/24",
                "denylist-source-range": "127.0.92.128/25",
            },
        ),
    ),
    (
        Expect("acl.foo.com", "/", "echo", source=_INSIDE),
        Expect("acl.foo.com", "/", status=403, source="127.0.92.200"),
        Expect("acl.foo.com", "/", status=403, source=_OUTSIDE),
    ),
)

_ACL_OWN_PATHS = AnnotationCase(
    "allowlist-source-range/own-paths-only",
    "ingress-nginx applies an Ingress's location annotations to its own paths: another Ingress "
    "of the same host stays open, and a canary's traffic gets the main Ingress's list",
    (
        ingress(
            "admin",
            "acl.foo.com",
            "/admin",
            annotations={"allowlist-source-range": "127.0.92.0/24"},
        ),
        ingress("site", "acl.foo.com", "/", created="2026-01-02T00:00:00Z"),
        _canary("admin-canary", "acl.foo.com", "/admin", canary_by_header="X-Canary"),
    ),
    (
        Expect("acl.foo.com", "/admin/x", "echo", source=_INSIDE),
        Expect("acl.foo.com", "/admin/x", status=403, source=_OUTSIDE),
        Expect("acl.foo.com", "/public", "echo", source=_OUTSIDE),
        Expect(
            "acl.foo.com", "/admin", "canary", headers=(("X-Canary", "always"),), source=_INSIDE
        ),
        Expect(
            "acl.foo.com", "/admin", status=403, headers=(("X-Canary", "always"),), source=_OUTSIDE
        ),
    ),
)

_ACL_SPLIT = AnnotationCase(
    "allowlist-source-range/weighted-canary",
    "a weighted canary's requests get the main Ingress's list too",
    (
        ingress(
            "main", "split.foo.com", "/", annotations={"allowlist-source-range": "127.0.92.0/24"}
        ),
        _canary("canary", "split.foo.com", "/", canary_weight="50"),
    ),
    (
        Expect("split.foo.com", "/", None, source=_INSIDE),
        Expect("split.foo.com", "/", status=403, source=_OUTSIDE),
    ),
)

_ACL_BEFORE_503 = AnnotationCase(
    "allowlist-source-range/403-before-503",
    "rootfs/etc/nginx/template/nginx.tmpl: the access lines are checked before the Lua "
    "balancer picks an endpoint, so a refused client gets 403 whether or not the Service has one",
    (
        ingress(
            "gone",
            "gone.foo.com",
            "/",
            "no-such-service",
            annotations={"allowlist-source-range": "127.0.92.0/24"},
        ),
    ),
    (
        Expect("gone.foo.com", "/", status=503, source=_INSIDE),
        Expect("gone.foo.com", "/", status=403, source=_OUTSIDE),
    ),
)

# --- request body size ------------------------------------------------------------------------

_BODY_SIZE = AnnotationCase(
    "proxy-body-size/413-above-it",
    _DOCS + " Custom max body size (nginx's client_max_body_size: 413 above it; k, m units)",
    (
        ingress("small", "body.foo.com", "/", annotations={"proxy-body-size": "1k"}),
        ingress("mega", "mega.foo.com", "/", annotations={"proxy-body-size": "1m"}),
    ),
    (
        Expect("body.foo.com", "/", "echo", method="POST", body_size=1024),
        Expect("body.foo.com", "/", status=413, method="POST", body_size=1025),
        Expect("body.foo.com", "/x", status=413, method="PUT", body_size=100_000),
        Expect("body.foo.com", "/x", "echo"),
        Expect("mega.foo.com", "/", "echo", method="POST", body_size=1 << 20),
        Expect("mega.foo.com", "/", status=413, method="POST", body_size=(1 << 20) + 1),
    ),
)

_BODY_SIZE_UNLIMITED = AnnotationCase(
    "proxy-body-size/0-unlimited",
    "nginx's client_max_body_size 0: no limit (above ingress-nginx's default of 1m)",
    (ingress("any", "any.foo.com", "/", annotations={"proxy-body-size": "0"}),),
    (Expect("any.foo.com", "/", "echo", method="POST", body_size=3 << 20),),
)

_BODY_BEFORE_SOURCES = AnnotationCase(
    "proxy-body-size/before-source-ranges",
    "nginx checks the body size when it selects the location, before the access phase",
    (
        ingress(
            "both",
            "both.foo.com",
            "/",
            annotations={"proxy-body-size": "10", "allowlist-source-range": "127.0.92.0/24"},
        ),
    ),
    (
        Expect("both.foo.com", "/", status=413, method="POST", body_size=11, source=_OUTSIDE),
        Expect("both.foo.com", "/", status=403, method="POST", body_size=10, source=_OUTSIDE),
        Expect("both.foo.com", "/", "echo", method="POST", body_size=10, source=_INSIDE),
    ),
)

# --- basic authentication -----------------------------------------------------------------

# Users foo (bcrypt) and bar (md5-crypt), password "open sesame"; baz (bcrypt of "bar").
_BCRYPT = "$2y$04$ABePdTwGq2Ow5BWZLO12LeTnPGEdBjwulNqW2nfVWdcnMNqAEc.Pu"
_MD5_CRYPT = "$1$jxFc39BW$IjVCeU1/bC99sGYDmd4Ec0"
_BCRYPT_BAR = "$2b$04$15qi/36.3jb6RWOBSWWTduF4NHU5jKCDaBdk2zFPtniyTBFPiCJwW"
_APR1 = "$apr1$ferEWR2m$5k.IdJ67zbNbMJ/6gD4Kb0"


def basic(user: str, password: str) -> tuple[str, str]:
    """An Authorization header with basic credentials."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return ("Authorization", f"Basic {token}")


def secret(name: str, **data: str) -> dict[str, Any]:
    """An Opaque Secret of the case namespace (values base64-encoded)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


_AUTH = {"auth-type": "basic", "auth-secret": "basic-auth", "auth-realm": "test auth"}
_REALM = 'Basic realm="test auth"'

_AUTH_BASIC = AnnotationCase(
    "auth-type/basic",
    _E2E + 'auth.go "should return status code 401 when authentication is configured but '
    'Authorization header is not configured", "... with invalid credentials", "should return '
    'status code 200 when authentication is configured and Authorization header is sent"',
    (ingress("auth", "auth.foo.com", "/", annotations=_AUTH),),
    (
        Expect("auth.foo.com", "/", status=401, challenge=_REALM),
        Expect("auth.foo.com", "/", status=401, headers=(basic("foo", "wrong"),)),
        Expect("auth.foo.com", "/", status=401, headers=(basic("nobody", "open sesame"),)),
        Expect("auth.foo.com", "/", status=401, headers=(("Authorization", "Bearer x"),)),
        Expect("auth.foo.com", "/a?b=c", "echo", headers=(basic("foo", "open sesame"),)),
        Expect("auth.foo.com", "/", "echo", headers=(basic("bar", "open sesame"),)),
        Expect("auth.foo.com", "/", "echo", scheme="https", headers=(basic("foo", "open sesame"),)),
        Expect("auth.foo.com", "/", status=401, scheme="https", challenge=_REALM),
    ),
    objects=(secret("basic-auth", auth=f"# users\nfoo:{_BCRYPT}\nbar:{_MD5_CRYPT}\n"),),
)

_AUTH_MAP = AnnotationCase(
    "auth-secret-type/auth-map",
    _E2E + 'auth.go "should return status code 200 when authentication is configured with a '
    'map and Authorization header is sent"',
    (
        ingress(
            "auth",
            "auth.foo.com",
            "/",
            annotations={**_AUTH, "auth-secret-type": "auth-map", "auth-realm": "map"},
        ),
    ),
    (
        Expect("auth.foo.com", "/", "echo", headers=(basic("baz", "bar"),)),
        Expect("auth.foo.com", "/", status=401, challenge='Basic realm="map"'),
    ),
    objects=(secret("basic-auth", baz=_BCRYPT_BAR),),
)

_AUTH_MISSING = AnnotationCase(
    "auth-secret/missing-503",
    _E2E + 'auth.go "should return status code 503 when authentication is configured with an '
    'invalid secret"',
    (ingress("auth", "auth.foo.com", "/", annotations={**_AUTH, "auth-secret": "something"}),),
    (
        Expect("auth.foo.com", "/", status=503),
        Expect("auth.foo.com", "/", status=503, headers=(basic("foo", "open sesame"),)),
    ),
    errors=("Secret annotations/something not found; the paths answer 503",),
)

_AUTH_FORMAT = AnnotationCase(
    "auth-secret/hash-no-backend-checks-503",
    "polyingress: an apr1 hash (HAProxy cannot check it) makes the Secret unusable, as "
    "ingress-nginx treats a Secret it cannot use",
    (ingress("auth", "auth.foo.com", "/", annotations=_AUTH),),
    (Expect("auth.foo.com", "/", status=503, headers=(basic("foo", "s3cret"),)),),
    objects=(secret("basic-auth", auth=f"foo:{_APR1}\n"),),
    errors=("the password hash is apr1",),
)

_AUTH_AFTER_SOURCES = AnnotationCase(
    "auth-type/after-source-ranges",
    "rootfs/etc/nginx/template/nginx.tmpl: the allow/deny lines and auth_basic are both access "
    "checks; nginx's access module comes first (403, then 401)",
    (
        ingress(
            "auth",
            "auth.foo.com",
            "/",
            annotations={**_AUTH, "allowlist-source-range": "127.0.92.0/24"},
        ),
    ),
    (
        Expect("auth.foo.com", "/", status=403, source=_OUTSIDE),
        Expect(
            "auth.foo.com", "/", status=403, source=_OUTSIDE, headers=(basic("foo", "open sesame"),)
        ),
        Expect("auth.foo.com", "/", status=401, source=_INSIDE, challenge=_REALM),
        Expect("auth.foo.com", "/", "echo", source=_INSIDE, headers=(basic("foo", "open sesame"),)),
    ),
    objects=(secret("basic-auth", auth=f"foo:{_BCRYPT}\n"),),
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
    _CANARY_COOKIE,
    _CANARY_HEADER_VALUE_COOKIE,
    _CANARY_PATTERN,
    _CANARY_PATTERN_COOKIE,
    _CANARY_PATTERN_VALUE,
    _CANARY_PATTERN_REFUSED,
    _CANARY_PRECEDENCE,
    _TWO_CANARIES,
    _CUSTOM_HEADERS,
    _CUSTOM_HEADERS_MISSING,
    _CUSTOM_HEADERS_NOT_ALLOWED,
    _ALIAS,
    _ALIAS_TWO_INGRESSES,
    _READ_TIMEOUT,
    _BACKEND_HTTPS,
    _BACKEND_H2C,
    _CORS_DEFAULTS,
    _CORS_ORIGINS,
    _CONNECT_TIMEOUT,
    _SEND_TIMEOUT,
    _AFFINITY,
    _AFFINITY_ATTRIBUTES,
    _ALLOWLIST,
    _CORS_BEFORE_POLICY,
    _WHITELIST,
    _DENYLIST,
    _DENY_BEFORE_ALLOW,
    _ACL_OWN_PATHS,
    _ACL_SPLIT,
    _ACL_BEFORE_503,
    _BODY_SIZE,
    _BODY_SIZE_UNLIMITED,
    _BODY_BEFORE_SOURCES,
    _AUTH_BASIC,
    _AUTH_MAP,
    _AUTH_MISSING,
    _AUTH_FORMAT,
    _AUTH_AFTER_SOURCES,
]
