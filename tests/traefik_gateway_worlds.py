"""Gateway API worlds for the Traefik backend's tests: Kubernetes objects (a Gateway with an HTTP
and an HTTPS listener, Services, HTTPRoutes, Ingresses) built from short specs, and the
requests to send through them.

A world mixes every kind of row the core makes of an HTTPRoute (method, header and query
conditions; Exact and PathPrefix paths; exact and wildcard (suffix) hostnames; a rule without
backends or with a missing Service: 500; weighted splits with weight 0, a Service without ready
endpoints and an invalid reference; redirects with hostname, scheme, port, path and status;
header filters, rewrites, mirrors, timeouts) with Ingress rows on the same hosts.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NS = "gw"
CONTROLLER = "polyingress.io/controller"
# Services: name -> ready endpoints' last octet (none: no ready endpoint).
SERVICES: dict[str, int | None] = {"s0": 10, "s1": 11, "s2": 12, "down": None}
MISSING = "missing"  # a Service that does not exist: an invalid backend reference


DATA = Path(__file__).parent / "data"


@functools.cache
def _certificate() -> tuple[str, str]:
    """A fixed certificate for *.a.com (tests/data/README.md): golden files need fixed bytes."""
    return (DATA / "gateway-a.com.crt").read_text(), (DATA / "gateway-a.com.key").read_text()


def base_objects(port: int = 8080, address: str = "127.0.91") -> list[dict[str, Any]]:
    """The GatewayClass, the Gateway ``gw`` (listeners ``http`` and ``https``, routes from
    every namespace), its certificate, the IngressClass and the Services (endpoints on
    ``<address>.<octet>:<port>``)."""
    cert, key = _certificate()
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "polyingress"},
            "spec": {"controllerName": CONTROLLER},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": NS},
            "spec": {
                "gatewayClassName": "polyingress",
                "listeners": [
                    {
                        "name": "http",
                        "port": 80,
                        "protocol": "HTTP",
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    },
                    {
                        "name": "https",
                        "port": 443,
                        "protocol": "HTTPS",
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                        "tls": {"certificateRefs": [{"kind": "Secret", "name": "tls"}]},
                    },
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": "tls", "namespace": NS},
            "data": {
                "tls.crt": base64.b64encode(cert.encode()).decode(),
                "tls.key": base64.b64encode(key.encode()).decode(),
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "polyingress"},
            "spec": {"controller": CONTROLLER},
        },
    ]
    for name, octet in SERVICES.items():
        endpoint = {
            "addresses": [f"{address}.{octet if octet is not None else 99}"],
            "conditions": {"ready": octet is not None},
        }
        objects += [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]},
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-x",
                    "namespace": NS,
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": port}],
                "endpoints": [endpoint],
            },
        ]
    return objects


@dataclass(frozen=True)
class Match:
    path: str = "/"
    ptype: str = "PathPrefix"
    method: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    query: tuple[tuple[str, str], ...] = ()

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": {"type": self.ptype, "value": self.path}}
        if self.method is not None:
            out["method"] = self.method
        if self.headers:
            out["headers"] = [{"name": k, "value": v} for k, v in self.headers]
        if self.query:
            out["queryParams"] = [{"name": k, "value": v} for k, v in self.query]
        return out


@dataclass(frozen=True)
class Rule:
    """``backends``: (Service, weight) pairs (``missing``: an invalid reference; none: 500);
    ``filters``: upstream's filter objects as written in an HTTPRoute."""

    matches: tuple[Match, ...] = (Match(),)
    backends: tuple[tuple[str, int], ...] = (("s0", 1),)
    filters: tuple[dict[str, Any], ...] = ()
    timeout: str | None = None

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"matches": [m.spec() for m in self.matches]}
        if self.backends:
            out["backendRefs"] = [
                {"name": svc, "port": 80, "weight": weight} for svc, weight in self.backends
            ]
        if self.filters:
            out["filters"] = list(self.filters)
        if self.timeout is not None:
            out["timeouts"] = {"request": self.timeout}
        return out


@dataclass(frozen=True)
class HTTPRoute:
    name: str
    rules: tuple[Rule, ...]
    hostnames: tuple[str, ...] = ()
    section: str | None = None  # the listener, or both
    second: int = 0  # creationTimestamp's seconds: the older route wins ties

    def object(self) -> dict[str, Any]:
        parent: dict[str, Any] = {"name": "gw", "namespace": NS}
        if self.section is not None:
            parent["sectionName"] = self.section
        spec: dict[str, Any] = {"parentRefs": [parent], "rules": [r.spec() for r in self.rules]}
        if self.hostnames:
            spec["hostnames"] = list(self.hostnames)
        return {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {
                "name": self.name,
                "namespace": NS,
                "creationTimestamp": f"2024-01-01T00:00:{self.second:02d}Z",
            },
            "spec": spec,
        }


def ingress(
    name: str, host: str | None, paths: Sequence[tuple[str, str, str]], second: int = 0
) -> dict[str, Any]:
    """An Ingress of ``(path, pathType, Service)`` rows on ``host``."""
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": path,
                    "pathType": ptype,
                    "backend": {"service": {"name": svc, "port": {"number": 80}}},
                }
                for path, ptype, svc in paths
            ]
        }
    }
    if host is not None:
        rule["host"] = host
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": NS,
            "creationTimestamp": f"2024-01-01T00:00:{second:02d}Z",
        },
        "spec": {"ingressClassName": "polyingress", "rules": [rule]},
    }


def header_filter(kind: str, **changes: Any) -> dict[str, Any]:
    """A RequestHeaderModifier or ResponseHeaderModifier filter: ``set``/``add`` as dicts,
    ``remove`` as a list."""
    spec: dict[str, Any] = {}
    for op in ("set", "add"):
        if op in changes:
            spec[op] = [{"name": k, "value": v} for k, v in changes[op].items()]
    if "remove" in changes:
        spec["remove"] = list(changes["remove"])
    key = kind[0].lower() + kind[1:]
    return {"type": kind, key: spec}


def route_object(
    name: str, *rules: Rule, hostnames: tuple[str, ...] = (), **kw: Any
) -> dict[str, Any]:
    """An HTTPRoute object of these rules."""
    return HTTPRoute(name, rules, hostnames, **kw).object()


def everything_world() -> list[dict[str, Any]]:
    """One of each row kind (the golden file's world)."""
    hdr = header_filter
    return [
        route_object(
            "conditions",
            Rule((Match("/", "PathPrefix", headers=(("Version", "one"),)),), (("s0", 1),)),
            Rule((Match("/", "PathPrefix", headers=(("Version", "two"), ("Color", "x"))),)),
            Rule((Match("/foo", "PathPrefix", method="POST", query=(("q", "1"),)),), (("s1", 1),)),
            Rule((Match("/foo", "Exact"),), (("s2", 1),)),
            hostnames=("a.com",),
        ),
        route_object(
            "suffix",
            Rule((Match("/"),), (("s0", 3), ("s1", 1), ("s2", 0), (MISSING, 1))),
            Rule((Match("/none"),), ()),
            Rule((Match("/down"),), (("down", 1),)),
            hostnames=("*.a.com",),
        ),
        route_object(
            "filters",
            Rule(
                (Match("/redirect"),),
                (),
                (
                    {
                        "type": "RequestRedirect",
                        "requestRedirect": {
                            "statusCode": 303,
                            "hostname": "r.org",
                            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"},
                        },
                    },
                ),
            ),
            Rule(
                (Match("/rewrite"),),
                (("s1", 1),),
                (
                    hdr("RequestHeaderModifier", set={"X-Set": "s"}, add={"X-Add": "a"}),
                    hdr("ResponseHeaderModifier", remove=["Server"]),
                    {
                        "type": "URLRewrite",
                        "urlRewrite": {
                            "hostname": "rewritten.org",
                            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"},
                        },
                    },
                    {
                        "type": "RequestMirror",
                        "requestMirror": {"backendRef": {"name": "s2", "port": 80}},
                    },
                ),
                timeout="1500ms",
            ),
            hostnames=("b.a.com",),
            section="https",
        ),
        route_object("anyhost", Rule((Match("/any"),), (("s2", 1),))),
        ingress("ing", "a.com", [("/ingress", "Prefix", "s0")]),
        ingress("catch-all", None, [("/global", "Prefix", "s1")]),
    ]


@dataclass(frozen=True)
class Request:
    """A request: ``scheme`` picks the listener (http or https)."""

    host: str
    target: str
    scheme: str = "http"
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = field(default=())


REQUEST_HOSTS = (
    "a.com",
    "A.com:80",
    "b.a.com",
    "x.a.com",
    "c.b.a.com",
    "d.c.b.a.com",
    "y.b.a.com",
    "z.org",
)
REQUEST_TARGETS = (
    "/",
    "/foo",
    "/foo/",
    "/foo/bar",
    "/foo/bar/x",
    "/foobar",
    "/x?q=1",
    "/foo?q=1&r=2",
    "/foo/bar?r=2&q=0",
)
REQUEST_HEADERS: tuple[tuple[tuple[str, str], ...], ...] = (
    (),
    (("Version", "one"),),
    (("version", "two"), ("Color", "x")),
)


def requests() -> Iterator[Request]:
    """Every combination of the request hosts, targets, methods, headers and schemes."""
    for host in REQUEST_HOSTS:
        for target in REQUEST_TARGETS:
            for method in ("GET", "POST", "HEAD"):
                for headers in REQUEST_HEADERS:
                    for scheme in ("http", "https"):
                        yield Request(host, target, scheme, method, headers)
