"""The Gateway API conformance cases: the upstream tests' manifests and request tables.

Each :class:`GatewayCase` is one test of kubernetes-sigs/gateway-api v1.6.1
(``conformance/tests/<name>.go`` and ``.yaml``), named as upstream, with its HTTPRoutes (and
whatever else it adds) and the requests it makes with what each must get. The base objects
(:func:`base_objects`) are upstream's ``conformance/base/manifests.yaml`` in the form this
project runs them: the same namespaces, Gateways, listeners and Service names, with every
Service's endpoints on loopback addresses of one hello-server port.

One difference from upstream is structural: upstream gives every Gateway an address of its own,
here every HTTP listener is served on ``--http-port`` and every HTTPS one on ``--https-port``
(the issue's design). So each case runs alone, with only its own routes loaded, as upstream runs
each test with only its manifests applied.

The same tables are checked against the core (:meth:`RouteModel.answer`, tests/
test_gateway_core.py) and live through every backend (:mod:`polyingress.testing.gateway_live`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import yaml

from polyingress.core import self_signed

INFRA = "gateway-conformance-infra"
WEB = "gateway-conformance-web-backend"
APP = "gateway-conformance-app-backend"
GATEWAY_CLASS = "polyingress"
CONTROLLER = "polyingress.io/controller"

# (namespace, Service) -> loopback address of its one endpoint.
BACKENDS: dict[tuple[str, str], str] = {
    (INFRA, "infra-backend-v1"): "127.0.90.1",
    (INFRA, "infra-backend-v2"): "127.0.90.2",
    (INFRA, "infra-backend-v3"): "127.0.90.3",
    (WEB, "web-backend"): "127.0.90.4",
    (APP, "app-backend-v1"): "127.0.90.5",
    (APP, "app-backend-v2"): "127.0.90.6",
}

# HTTPS listener hostnames of ``same-namespace-with-https-listener`` and their certificates.
HTTPS_HOSTS = ("example.org", "second-example.org", "*.wildcard.org")


def hello_name(namespace: str, service: str) -> str:
    """The hello server of a Service's endpoint: ``<namespace>/<service>``."""
    return f"{namespace}/{service}"


def _service(namespace: str, name: str, port: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": port}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-ep",
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": [BACKENDS[(namespace, name)]], "conditions": {"ready": True}}
            ],
        },
    ]


def _tls_secret(name: str, host: str) -> dict[str, Any]:
    cert, key = _certificate(host)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": INFRA},
        "data": {
            "tls.crt": base64.b64encode(cert.encode()).decode(),
            "tls.key": base64.b64encode(key.encode()).decode(),
        },
    }


_CERTS: dict[str, tuple[str, str]] = {}


def _certificate(host: str) -> tuple[str, str]:
    if host not in _CERTS:
        made = self_signed(host)
        _CERTS[host] = (made.cert_pem, made.key_pem)
    return _CERTS[host]


def _gateway(name: str, listeners: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": INFRA},
        "spec": {"gatewayClassName": GATEWAY_CLASS, "listeners": listeners},
    }


def _https(name: str, hostname: str | None, secret: str) -> dict[str, Any]:
    listener: dict[str, Any] = {
        "name": name,
        "port": 443,
        "protocol": "HTTPS",
        "allowedRoutes": {"namespaces": {"from": "Same"}},
        "tls": {"certificateRefs": [{"group": "", "kind": "Secret", "name": secret}]},
    }
    if hostname is not None:
        listener["hostname"] = hostname
    return listener


def base_objects(port: int, controller: str = CONTROLLER) -> list[dict[str, Any]]:
    """Upstream's base: namespaces, our GatewayClass, the shared Gateways, the backends."""
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"gateway-conformance": label}},
        }
        for ns, label in ((INFRA, "infra"), (WEB, "backend"), (APP, "backend"))
    ]
    objs.append(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": GATEWAY_CLASS},
            "spec": {"controllerName": controller},
        }
    )
    http = {"name": "http", "port": 80, "protocol": "HTTP"}
    objs += [
        _gateway("same-namespace", [{**http, "allowedRoutes": {"namespaces": {"from": "Same"}}}]),
        _gateway("all-namespaces", [{**http, "allowedRoutes": {"namespaces": {"from": "All"}}}]),
        _gateway(
            "backend-namespaces",
            [
                {
                    **http,
                    "allowedRoutes": {
                        "namespaces": {
                            "from": "Selector",
                            "selector": {"matchLabels": {"gateway-conformance": "backend"}},
                        }
                    },
                }
            ],
        ),
        _gateway(
            "same-namespace-with-https-listener",
            [
                _https("https", None, "tls-validity-checks-certificate"),
                _https("https-with-hostname", "second-example.org", "tls-second-example"),
                _https("https-with-wildcard-hostname", "*.wildcard.org", "tls-wildcard"),
            ],
        ),
        _tls_secret("tls-validity-checks-certificate", "example.org"),
        _tls_secret("tls-second-example", "second-example.org"),
        _tls_secret("tls-wildcard", "*.wildcard.org"),
    ]
    for ns, name in BACKENDS:
        objs += _service(ns, name, port)
    return objs


@dataclass(frozen=True)
class Expect:
    """One request and what it must get.

    ``backend`` is ``(namespace, Service)`` when the request must reach that Service (HTTP 200
    from its hello server); else ``status`` is what the proxy answers. ``path``/``host`` are what
    the backend must receive when set (a rewrite); ``headers`` must reach the backend with these
    values, ``absent`` must not; ``response_headers`` / ``absent_response_headers`` likewise
    for the response; ``location`` is a redirect's Location.
    """

    host: str
    path: str
    backend: tuple[str, str] | None = None
    status: int = 200
    method: str = "GET"
    scheme: str = "http"
    request_headers: tuple[tuple[str, str], ...] = ()
    path_seen: str | None = None
    host_seen: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    absent: tuple[str, ...] = ()
    response_headers: tuple[tuple[str, str], ...] = ()
    absent_response_headers: tuple[str, ...] = ()
    location: str | None = None

    def __str__(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.request_headers)
        return f"{self.method} {self.scheme}://{self.host}{self.path}{extra}"


@dataclass(frozen=True)
class GatewayCase:
    """One upstream conformance test: ``objects`` added to the base, ``expects`` checked in
    order; ``features`` the extended features it needs (empty: core); ``statuses``: expected
    conditions, as (kind, namespace, name, parent or listener name or "", condition type,
    status, reason)."""

    name: str
    objects: tuple[dict[str, Any], ...]
    expects: tuple[Expect, ...]
    features: frozenset[str] = frozenset()
    statuses: tuple[tuple[str, str, str, str, str, str, str], ...] = ()
    weights: tuple[tuple[tuple[str, str], float], ...] = field(default=())

    def __str__(self) -> str:
        return self.name


def manifests(text: str) -> tuple[dict[str, Any], ...]:
    """Objects from YAML text (upstream's manifests, as they are written there)."""
    return tuple(o for o in yaml.safe_load_all(text) if o)


def v(n: int) -> tuple[str, str]:
    """infra-backend-v<n>."""
    return (INFRA, f"infra-backend-v{n}")


CASES: list[GatewayCase] = [
    GatewayCase(
        "HTTPRoutePathMatchOrder",
        manifests(
            f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: path-matching-order
  namespace: {INFRA}
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches: [{{path: {{type: Exact, value: /match}}}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
  - matches: [{{path: {{type: Exact, value: /match/exact}}}}]
    backendRefs: [{{name: infra-backend-v2, port: 8080}}]
  - matches: [{{path: {{type: Exact, value: /match/exact/one}}}}]
    backendRefs: [{{name: infra-backend-v3, port: 8080}}]
  - matches: [{{path: {{type: PathPrefix, value: /match/}}}}]
    backendRefs: [{{name: infra-backend-v3, port: 8080}}]
  - matches: [{{path: {{type: PathPrefix, value: /match/prefix/}}}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
  - matches: [{{path: {{type: PathPrefix, value: /match/prefix/one}}}}]
    backendRefs: [{{name: infra-backend-v2, port: 8080}}]
"""
        ),
        (
            Expect("example.com", "/match/exact/one", v(3)),
            Expect("example.com", "/match/exact", v(2)),
            Expect("example.com", "/match", v(1)),
            Expect("example.com", "/match/prefix/one/any", v(2)),
            Expect("example.com", "/match/prefix/any", v(1)),
            Expect("example.com", "/match/any", v(3)),
        ),
        statuses=(
            (
                "HTTPRoute",
                INFRA,
                "path-matching-order",
                "same-namespace",
                "Accepted",
                "True",
                "Accepted",
            ),
            (
                "HTTPRoute",
                INFRA,
                "path-matching-order",
                "same-namespace",
                "ResolvedRefs",
                "True",
                "ResolvedRefs",
            ),
        ),
    ),
    GatewayCase(
        "HTTPRouteHeaderMatching",
        manifests(
            f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: header-matching
  namespace: {INFRA}
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - headers: [{{name: Version, value: one}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
  - matches:
    - headers: [{{name: Version, value: two}}]
    backendRefs: [{{name: infra-backend-v2, port: 8080}}]
  - matches:
    - headers: [{{name: Version, value: two}}, {{name: Color, value: orange}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
  - matches:
    - headers: [{{name: Color, value: blue}}]
    - headers: [{{name: Color, value: green}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
  - matches:
    - headers: [{{name: Color, value: red}}]
    - headers: [{{name: Color, value: yellow}}]
    backendRefs: [{{name: infra-backend-v2, port: 8080}}]
"""
        ),
        (
            Expect("example.com", "/", v(1), request_headers=(("Version", "one"),)),
            Expect("example.com", "/", v(2), request_headers=(("Version", "two"),)),
            Expect(
                "example.com",
                "/",
                v(1),
                request_headers=(("Version", "two"), ("Color", "orange")),
            ),
            Expect("example.com", "/", v(1), request_headers=(("Color", "blue"),)),
            Expect("example.com", "/", v(1), request_headers=(("Color", "green"),)),
            Expect("example.com", "/", v(2), request_headers=(("Color", "red"),)),
            Expect("example.com", "/", v(2), request_headers=(("Color", "yellow"),)),
            Expect("example.com", "/", status=404, request_headers=(("Version", "three"),)),
            Expect("example.com", "/", status=404, request_headers=(("Color", "purple"),)),
            Expect("example.com", "/", status=404),
        ),
    ),
]
