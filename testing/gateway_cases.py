"""The Gateway API conformance cases: the upstream tests' manifests and request tables.

Each :class:`GatewayCase` is one test of kubernetes-sigs/gateway-api v1.6.1
(``conformance/tests/<name>.go`` and ``.yaml``), named as upstream, with its manifests (the
upstream YAML, embedded as it is written there: test data under the Apache License 2.0, with
``{GATEWAY_CLASS_NAME}`` standing for our GatewayClass), the requests it makes with what each
must get (upstream's ``http.ExpectedResponse`` tables, as :class:`Expect` rows), the status it
checks (conditions, listeners' attachedRoutes) and the features it needs (upstream's
``Features``; the core ones, Gateway, HTTPRoute and ReferenceGrant, are left out: every case
needs them). A test whose steps change the objects (upstream deletes a ReferenceGrant half way)
is several cases named ``<Test>/<step>``, in order: :attr:`GatewayCase.upstream` is the test.

The base objects (:func:`base_objects`) are upstream's ``conformance/base/manifests.yaml`` in
the form this project runs them: the same namespaces, Gateways, listeners and Service names,
with every Service's endpoints on loopback addresses of one hello-server port (the hello server
answers as upstream's echo server does: see :mod:`polyingress.core.runtime.hello`).

Two differences from upstream are structural:

* upstream gives every Gateway an address of its own; here every HTTP listener is served on
  ``--http-port`` and every HTTPS one on ``--https-port`` (the issue's design). So each case
  runs alone, with only its own routes loaded, as upstream runs each test with only its
  manifests applied; a test that relies on two Gateways having different addresses is adapted
  (a comment on the case says how). A request without a Host in upstream's table is sent with
  the Gateway's address as Host (:data:`GW`), as upstream does (port 80 implied).
* upstream's HTTPS listeners share one certificate (``tls-validity-checks-certificate``, for
  ``*``, ``*.org`` and ``*.wildcard.org``); here each listener with a hostname has a
  certificate of its own, so that a case can see that SNI picked the right one.

The same tables are checked against the core (:meth:`RouteModel.answer` and the computed
status, tests/test_gateway_core.py) and live through every backend
(:mod:`polyingress.testing.gateway_live`).
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from polyingress.core import self_signed

__all__ = [
    "APP",
    "BACKENDS",
    "BACKEND_HEADER_REQUESTS",
    "CASES",
    "CONTROLLER",
    "CORE_FEATURES",
    "GATEWAY_CLASS",
    "GW",
    "HTTPS_HOSTS",
    "INFRA",
    "MIRROR_SHARE_REQUESTS",
    "PROTOCOL_PORTS",
    "WEB",
    "WS_MESSAGES",
    "Expect",
    "GatewayCase",
    "ListenerStatus",
    "base_objects",
    "certificate_sha256",
    "hello_name",
    "manifests",
    "v",
]

INFRA = "gateway-conformance-infra"
WEB = "gateway-conformance-web-backend"
APP = "gateway-conformance-app-backend"
GATEWAY_CLASS = "polyingress"
CONTROLLER = "polyingress.io/controller"
GATEWAY_GROUP = "gateway.networking.k8s.io"

# Upstream's request Host when a test names none: the Gateway's address (its port, 80, left
# out as upstream's client does).
GW = "127.0.0.1"

# The features every case needs (upstream's core features of the GATEWAY-HTTP profile).
CORE_FEATURES = frozenset({"Gateway", "HTTPRoute", "ReferenceGrant"})

# (namespace, Service) -> loopback address of its one endpoint.
BACKENDS: dict[tuple[str, str], str] = {
    (INFRA, "infra-backend-v1"): "127.0.90.1",
    (INFRA, "infra-backend-v2"): "127.0.90.2",
    (INFRA, "infra-backend-v3"): "127.0.90.3",
    (WEB, "web-backend"): "127.0.90.4",
    (APP, "app-backend-v1"): "127.0.90.5",
    (APP, "app-backend-v2"): "127.0.90.6",
}

# The certificate Secrets of ``same-namespace-with-https-listener`` (in INFRA) and the host
# each is made for.
CERTIFICATES: dict[str, str] = {
    "tls-validity-checks-certificate": "example.org",
    "tls-second-example": "second-example.org",
    "tls-wildcard": "*.wildcard.org",
    "tls-fourth-example": "fourth-example.wildcard.org",
}
# HTTPS listener hostnames of ``same-namespace-with-https-listener`` with a certificate each.
HTTPS_HOSTS = tuple(CERTIFICATES.values())


def hello_name(namespace: str, service: str) -> str:
    """The hello server of a Service's endpoint: ``<namespace>/<service>``."""
    return f"{namespace}/{service}"


# The ports of infra-backend-v1 beyond 8080, as upstream's base has them: (name, Service port,
# appProtocol). Their endpoints are the kit's h2c and WebSocket servers
# (:mod:`polyingress.testing.protocols`) on the same address.
PROTOCOL_PORTS = (
    ("second-port", 8081, "kubernetes.io/h2c"),
    ("third-port", 8082, "kubernetes.io/ws"),
)


def _service(
    namespace: str, name: str, port: int, extra: Mapping[str, int] | None = None
) -> list[dict[str, Any]]:
    """A Service of the base and its EndpointSlice; ``extra``: the target port of each of
    :data:`PROTOCOL_PORTS` (infra-backend-v1 only)."""
    ports: list[dict[str, Any]] = [{"name": "http", "port": 8080, "targetPort": port}]
    slice_ports: list[dict[str, Any]] = [{"name": "http", "port": port, "protocol": "TCP"}]
    for pname, number, app in PROTOCOL_PORTS:
        if extra is not None:
            target = extra[pname]
            ports.append({"name": pname, "port": number, "targetPort": target, "appProtocol": app})
            slice_ports.append({"name": pname, "port": target, "protocol": "TCP"})
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": ports},
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
            "ports": slice_ports,
            "endpoints": [
                {"addresses": [BACKENDS[(namespace, name)]], "conditions": {"ready": True}}
            ],
        },
    ]


def _tls_secret(name: str, host: str, namespace: str = INFRA) -> dict[str, Any]:
    cert, key = _certificate(host)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
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


def certificate_sha256(secret: str) -> str:
    """The SHA-256 (hex) of the certificate in one of the base's TLS Secrets: what a client
    sees when the proxy presents it."""
    cert = x509.load_pem_x509_certificate(_certificate(CERTIFICATES[secret])[0].encode())
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


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


def base_objects(
    port: int, controller: str = CONTROLLER, protocol_ports: Mapping[str, int] | None = None
) -> list[dict[str, Any]]:
    """Upstream's base: namespaces, our GatewayClass, the shared Gateways, the backends.
    ``protocol_ports``: where infra-backend-v1's h2c and WebSocket servers listen, by port
    name (:data:`PROTOCOL_PORTS`; default: ``port``, enough for the model)."""
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
                _https(
                    "https-with-hostname-matching-wildcard",
                    "fourth-example.wildcard.org",
                    "tls-fourth-example",
                ),
            ],
        ),
    ]
    objs += [_tls_secret(name, host) for name, host in CERTIFICATES.items()]
    # The suite's certificate in the web backends' namespace (upstream creates it for the tests
    # of cross-namespace certificateRefs).
    objs.append(_tls_secret("certificate", "certificate.invalid", WEB))
    extra = dict(protocol_ports or {pname: port for pname, _n, _a in PROTOCOL_PORTS})
    for ns, name in BACKENDS:
        objs += _service(
            ns, name, port, extra if (ns, name) == (INFRA, "infra-backend-v1") else None
        )
    return objs


# The listeners of the base's Gateways (upstream checks every listener of a Gateway it waits
# for: Accepted, ResolvedRefs and Programmed True).
_LISTENERS: dict[str, tuple[str, ...]] = {
    "same-namespace": ("http",),
    "all-namespaces": ("http",),
    "backend-namespaces": ("http",),
    "same-namespace-with-https-listener": (
        "https",
        "https-with-hostname",
        "https-with-wildcard-hostname",
        "https-with-hostname-matching-wildcard",
    ),
}


@dataclass(frozen=True)
class Expect:
    """One request and what it must get (upstream's ``http.ExpectedResponse``).

    ``backend`` is ``(namespace, Service)`` when the request must reach that Service (HTTP 200
    from its hello server); else ``status`` is what the proxy answers (200 without a backend:
    any backend, as upstream's tests that name none).

    What the backend must receive (upstream's ``ExpectedRequest``): when none of ``path_seen``,
    ``host_seen``, ``headers``, ``absent`` is given, the request as sent (its path and query,
    its Host, its headers: upstream's rule when a test states no expected request); else the
    path ``path_seen`` (default: the path sent), the Host ``host_seen`` (when given), the
    ``headers`` with these values (several values of one header joined by ``,``) and none of
    ``absent``; always the method sent.

    ``backend_response_headers`` are headers the backend sets in its answer (upstream's
    ``BackendSetResponseHeaders``, sent as ``X-Echo-Set-Header``); ``response_headers`` must be
    in the response with these values (joined by ``,``), ``absent_response_headers`` not;
    ``location`` is a redirect's Location (compared as upstream does: scheme, host, port (the
    scheme's well-known one may be written or not) and path); ``mirrored_to`` are the
    Services a copy of the request must reach; ``certificate`` the TLS Secret (of the base)
    whose certificate the proxy must present for the Host as SNI.

    ``protocol`` is how the client talks to the Gateway: ``HTTP/1.1``; ``h2c`` (HTTP/2 in clear
    text with prior knowledge, upstream's H2CPriorKnowledgeProtocol: the backend's answer must
    come over HTTP/2 too, see :mod:`polyingress.testing.protocols`); ``websocket`` (upgrade,
    then a text and a binary message that must come back unchanged: :data:`WS_MESSAGES`).

    ``backend_header``: the request reaches one of the route's backends, which must receive this
    header with its own Service name as value (upstream's HTTPRouteRequestHeaderModifier-
    BackendWeights: each backendRef of a split sets it); checked on
    :data:`BACKEND_HEADER_REQUESTS` requests in a row.

    ``mirror_shares``: (Service, share) — of :data:`MIRROR_SHARE_REQUESTS` requests in a row,
    that share is copied to the Service, within 5 % of it (upstream's
    HTTPRouteRequestPercentageMirror: 500 requests, a tolerance of 5 % of the expected count).
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
    backend_response_headers: tuple[tuple[str, str], ...] = ()
    mirrored_to: tuple[tuple[str, str], ...] = ()
    certificate: str | None = None
    protocol: str = "HTTP/1.1"
    backend_header: str | None = None
    mirror_shares: tuple[tuple[tuple[str, str], float], ...] = ()

    @property
    def as_sent(self) -> bool:
        """Whether the backend must receive the request as sent (no expected request given)."""
        return not (self.path_seen or self.host_seen or self.headers or self.absent)

    @property
    def sent_headers(self) -> tuple[tuple[str, str], ...]:
        """The headers of the request: its own, and the backend's ``X-Echo-Set-Header``."""
        if not self.backend_response_headers:
            return self.request_headers
        echo = ",".join(f"{k}:{val}" for k, val in self.backend_response_headers)
        return (*self.request_headers, ("X-Echo-Set-Header", echo))

    def __str__(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.request_headers)
        return f"{self.method} {self.scheme}://{self.host}{self.path}{extra}"


Status = tuple[str, str, str, str, str, str, str]

# How many requests upstream's HTTPRouteRequestHeaderModifierBackendWeights checks in a row.
BACKEND_HEADER_REQUESTS = 100
MIRROR_SHARE_REQUESTS = 500  # upstream's totalRequests of HTTPRouteRequestPercentageMirror

# What upstream's HTTPRouteBackendProtocolWebSocket sends: a text frame, then a binary one.
WS_MESSAGES: tuple[str | bytes, ...] = ("Websocket Support!", bytes([1, 2, 3, 4, 5, 6, 7]))


@dataclass(frozen=True)
class ListenerStatus:
    """One listener in a Gateway's status, as upstream's GatewayStatusMustHaveListeners
    compares it: ``attached`` routes, the route ``kinds`` in supportedKinds (empty: the list
    must be empty) and ``conditions`` (type, status, reason; an empty reason matches any)."""

    gateway: str
    name: str
    attached: int
    kinds: tuple[str, ...] = ("HTTPRoute",)
    conditions: tuple[tuple[str, str, str], ...] = ()
    namespace: str = INFRA


@dataclass(frozen=True)
class GatewayCase:
    """One upstream conformance test (or one step of it: ``<Test>/<step>``): ``objects`` added
    to the base, ``expects`` checked in order; ``features`` the features it needs beyond the
    core ones (upstream's ``Features``); ``statuses``: expected conditions, as (kind,
    namespace, name, parent or listener name or "", condition type, status, reason; an empty
    reason matches any, as upstream's); ``listeners``: what the listeners of a Gateway's status
    must show (every listener of a Gateway named here is listed, as upstream lists them);
    ``zero_routes``: (namespace, Gateway) with no route attached (upstream's
    GatewayMustHaveZeroRoutes: no listener in its status, or one with attachedRoutes 0);
    ``latest``: (kind, namespace, name) whose every condition has the object's
    metadata.generation as observedGeneration (upstream's ...MustHaveLatestConditions);
    ``endpoints``: (namespace, EndpointSlice, Service of the base) — the slice gets that
    Service's endpoint and the hello servers' port when the case is loaded (upstream's test
    fills such slices with a Deployment's pod addresses); ``weights``: (Service, share) the
    requests of the first expect must be split by (upstream's rule: 500 requests, each share
    within 5 %, a share 0 gets none); ``provisional``: upstream marks the test provisional."""

    name: str
    objects: tuple[dict[str, Any], ...]
    expects: tuple[Expect, ...]
    features: frozenset[str] = frozenset()
    statuses: tuple[Status, ...] = ()
    weights: tuple[tuple[tuple[str, str], float], ...] = field(default=())
    listeners: tuple[ListenerStatus, ...] = ()
    zero_routes: tuple[tuple[str, str], ...] = ()
    latest: tuple[tuple[str, str, str], ...] = ()
    endpoints: tuple[tuple[str, str, tuple[str, str]], ...] = ()
    provisional: bool = False

    @property
    def upstream(self) -> str:
        """The upstream test this case is (a step of)."""
        return self.name.split("/", 1)[0]

    def objects_at(self, port: int) -> list[dict[str, Any]]:
        """The case's objects with the hello servers listening on ``port``: each EndpointSlice
        of ``endpoints`` holds its Service's endpoint on that port."""
        fill = {(ns, name): ref for ns, name, ref in self.endpoints}
        out: list[dict[str, Any]] = []
        for obj in self.objects:
            meta = obj.get("metadata") or {}
            ref = fill.get((meta.get("namespace", ""), meta.get("name", "")))
            if obj.get("kind") == "EndpointSlice" and ref is not None:
                obj = {
                    **obj,
                    "ports": [{**p, "port": port} for p in obj.get("ports") or ()],
                    "endpoints": [{"addresses": [BACKENDS[ref]], "conditions": {"ready": True}}],
                }
            out.append(obj)
        return out

    def __str__(self) -> str:
        return self.name


def manifests(text: str) -> tuple[dict[str, Any], ...]:
    """Objects from YAML text (upstream's manifests, as they are written there, with
    ``{GATEWAY_CLASS_NAME}`` for our GatewayClass and ``{GATEWAY_CONTROLLER_NAME}`` for our
    controller)."""
    text = text.replace("{GATEWAY_CLASS_NAME}", GATEWAY_CLASS)
    text = text.replace("{GATEWAY_CONTROLLER_NAME}", CONTROLLER)
    return tuple(o for o in yaml.safe_load_all(text) if o)


def generation(
    objects: tuple[dict[str, Any], ...],
    gen: int,
    edits: Mapping[str, Callable[[dict[str, Any]], None]] | None = None,
) -> tuple[dict[str, Any], ...]:
    """The objects as the API server holds them after ``gen`` versions of their spec: every
    Gateway API object with ``metadata.generation`` ``gen``; ``edits`` maps an object's name to
    a function changing (a copy of) its spec, as upstream's tests patch it."""
    out: list[dict[str, Any]] = []
    for obj in objects:
        obj = copy.deepcopy(obj)
        if str(obj.get("apiVersion", "")).startswith(GATEWAY_GROUP + "/"):
            obj["metadata"]["generation"] = gen
            edit = (edits or {}).get(obj["metadata"]["name"])
            if edit is not None:
                edit(obj["spec"])
        out.append(obj)
    return tuple(out)


def v(n: int) -> tuple[str, str]:
    """infra-backend-v<n>."""
    return (INFRA, f"infra-backend-v{n}")


def route_condition(
    route: str, gateway: str, ctype: str, status: str, reason: str = "", ns: str = INFRA
) -> Status:
    """An HTTPRoute's condition for its parent ``gateway`` (upstream's
    HTTPRouteMustHaveCondition)."""
    return ("HTTPRoute", ns, route, gateway, ctype, status, reason)


def listeners_ready(gateway: str, *listeners: str, ns: str = INFRA) -> tuple[Status, ...]:
    """Every listener Accepted, ResolvedRefs and Programmed True (any reason), as upstream
    checks for each Gateway it sends requests to."""
    return tuple(
        ("Gateway", ns, gateway, ln, ctype, "True", "")
        for ln in (listeners or _LISTENERS[gateway])
        for ctype in ("Accepted", "ResolvedRefs", "Programmed")
    )


def accepted(
    *routes: str,
    gateway: str = "same-namespace",
    listeners: tuple[str, ...] | None = None,
    ns: str = INFRA,
    resolved: bool = True,
) -> tuple[Status, ...]:
    """Upstream's GatewayAndHTTPRoutesMustBeAccepted (each route Accepted by the Gateway, the
    Gateway's ``listeners`` ready; default: the base Gateway's) and, with ``resolved``,
    HTTPRouteMustHaveResolvedRefsConditionsTrue for each route."""
    out: list[Status] = []
    for route in routes:
        out.append(route_condition(route, gateway, "Accepted", "True", "Accepted", ns))
        if resolved:
            out.append(route_condition(route, gateway, "ResolvedRefs", "True", "ResolvedRefs", ns))
    return (*out, *listeners_ready(gateway, *(listeners or _LISTENERS[gateway])))


# A listener's Accepted and ResolvedRefs True (any reason).
_READY = (("Accepted", "True", ""), ("ResolvedRefs", "True", ""))


# --- core ----------------------------------------------------------------------------------

_EXACT_PATH_MATCHING = GatewayCase(
    "HTTPRouteExactPathMatching",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: exact-matching
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: Exact
        value: /one
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: Exact
        value: /two
    backendRefs:
    - name: infra-backend-v2
      port: 8080
"""
    ),
    (
        Expect(GW, "/one", v(1)),
        Expect(GW, "/two", v(2)),
        Expect(GW, "/", status=404),
        Expect(GW, "/one/example", status=404),
        Expect(GW, "/two/", status=404),
        Expect(GW, "/Two", status=404),
    ),
    statuses=accepted("exact-matching"),
)

_MATCHING = GatewayCase(
    "HTTPRouteMatching",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: matching
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /
    - headers:
      - name: version
        value: one
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /v2
    - headers:
      - name: version
        value: two
    backendRefs:
    - name: infra-backend-v2
      port: 8080
"""
    ),
    (
        Expect(GW, "/", v(1)),
        Expect(GW, "/example", v(1)),
        Expect(GW, "/", v(1), request_headers=(("Version", "one"),)),
        Expect(GW, "/v2", v(2)),
        Expect(GW, "/v2/example", v(2)),
        Expect(GW, "/", v(2), request_headers=(("Version", "two"),)),
        Expect(GW, "/v2/", v(2)),
        Expect(GW, "/v2example", v(1)),
        Expect(GW, "/foo/v2/example", v(1)),
    ),
    statuses=accepted("matching"),
)

_PATH_MATCH_ORDER = GatewayCase(
    "HTTPRoutePathMatchOrder",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: path-matching-order
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: Exact
        value: /match
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: Exact
        value: /match/exact
    backendRefs:
    - name: infra-backend-v2
      port: 8080
  - matches:
    - path:
        type: Exact
        value: /match/exact/one
    backendRefs:
    - name: infra-backend-v3
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /match/
    backendRefs:
    - name: infra-backend-v3
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /match/prefix/
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /match/prefix/one
    backendRefs:
    - name: infra-backend-v2
      port: 8080
"""
    ),
    (
        Expect(GW, "/match/exact/one", v(3)),
        Expect(GW, "/match/exact", v(2)),
        Expect(GW, "/match", v(1)),
        Expect(GW, "/match/prefix/one/any", v(2)),
        Expect(GW, "/match/prefix/any", v(1)),
        Expect(GW, "/match/any", v(3)),
    ),
    statuses=accepted("path-matching-order"),
)

_MATCHING_ACROSS_ROUTES = GatewayCase(
    "HTTPRouteMatchingAcrossRoutes",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: matching-part1
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  hostnames:
  - example.com
  - example.net
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /
    - headers:
      - name: version
        value: one
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: matching-part2
  namespace: gateway-conformance-infra
spec:
  hostnames:
  - example.com
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /v2
    - headers:
      - name: version
        value: two
    backendRefs:
    - name: infra-backend-v2
      port: 8080
"""
    ),
    (
        Expect("example.com", "/", v(1)),
        Expect("example.com", "/example", v(1)),
        Expect("example.net", "/example", v(1)),
        Expect("example.com", "/example", v(1), request_headers=(("Version", "one"),)),
        Expect("example.com", "/v2", v(2)),
        Expect("example.net", "/v2", v(1)),
        Expect("example.com", "/v2/example", v(2)),
        Expect("example.com", "/", v(2), request_headers=(("Version", "two"),)),
    ),
    statuses=accepted("matching-part1", "matching-part2"),
)

# Checked against upstream (the earlier table, written from memory, had requests upstream does
# not make and lacked three it makes).
_HEADER_MATCHING = GatewayCase(
    "HTTPRouteHeaderMatching",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: header-matching
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  # Matches "version: one"
  - matches:
    - headers:
      - name: version
        value: one
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  # Matches "version: two"
  - matches:
    - headers:
      - name: version
        value: two
    backendRefs:
    - name: infra-backend-v2
      port: 8080
  # Matches "version: two" AND "color: orange"
  - matches:
    - headers:
      - name: version
        value: two
      - name: color
        value: orange
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  # Matches "color: blue" OR "color: green"
  - matches:
    - headers:
      - name: color
        value: blue
    - headers:
      - name: color
        value: green
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  # Matches "color: red" OR "color: yellow"
  - matches:
    - headers:
      - name: color
        value: red
    - headers:
      - name: color
        value: yellow
    backendRefs:
    - name: infra-backend-v2
      port: 8080
"""
    ),
    (
        Expect(GW, "/", v(1), request_headers=(("Version", "one"),)),
        Expect(GW, "/", v(2), request_headers=(("Version", "two"),)),
        Expect(GW, "/", v(1), request_headers=(("Version", "two"), ("Color", "orange"))),
        Expect(GW, "/", v(2), request_headers=(("Version", "two"), ("Color", "blue"))),
        Expect(GW, "/", status=404, request_headers=(("Color", "orange"),)),
        Expect(GW, "/", status=404, request_headers=(("Some-Other-Header", "one"),)),
        Expect(GW, "/", v(1), request_headers=(("Color", "blue"),)),
        Expect(GW, "/", v(1), request_headers=(("Color", "green"),)),
        Expect(GW, "/", v(2), request_headers=(("Color", "red"),)),
        Expect(GW, "/", v(2), request_headers=(("Color", "yellow"),)),
        Expect(GW, "/", status=404, request_headers=(("Color", "purple"),)),
    ),
    statuses=accepted("header-matching"),
)

# Upstream sends the requests of its second Gateway (httproute-hostname-intersection-all) to
# that Gateway's own address; here both Gateways share the HTTP port. Their hostnames do not
# overlap (first.com, sub.first.com, second.com, sub.second.com are no listener-1..3 name), so
# every request still has one right answer: the tables are upstream's.
_HOSTNAME_INTERSECTION = GatewayCase(
    "HTTPRouteHostnameIntersection",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: httproute-hostname-intersection
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: listener-1
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: very.specific.com
  - name: listener-2
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: "*.wildcard.io"
  - name: listener-3
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: "*.anotherwildcard.io"
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: httproute-hostname-intersection-all
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: listener-1
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: specific-host-matches-listener-specific-host
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-hostname-intersection
    namespace: gateway-conformance-infra
  hostnames:
  - non.matching.com
  - "*.nonmatchingwildcard.io"
  - very.specific.com  #  matches listener-1's specific host
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /s1
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: specific-host-matches-listener-wildcard-host
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-hostname-intersection
    namespace: gateway-conformance-infra
  hostnames:
  - non.matching.com
  - wildcard.io
  - foo.wildcard.io  #  matches listener-2's wildcard host
  - bar.wildcard.io  #  matches listener-2's wildcard host
  - foo.bar.wildcard.io  #  matches listener-2's wildcard host
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /s2
    backendRefs:
    - name: infra-backend-v2
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: wildcard-host-matches-listener-specific-host
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-hostname-intersection
    namespace: gateway-conformance-infra
  hostnames:
  - non.matching.com
  - "*.specific.com"  # matches listener-1's specific host
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /s3
    backendRefs:
    - name: infra-backend-v3
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: wildcard-host-matches-listener-wildcard-host
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-hostname-intersection
    namespace: gateway-conformance-infra
  hostnames:
  - "*.anotherwildcard.io"  # matches listener-3's wildcard host
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /s4
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: no-intersecting-hosts
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-hostname-intersection
    namespace: gateway-conformance-infra
  hostnames:
  - specific.but.wrong.com
  - wildcard.io
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /s5
    backendRefs:
    - name: infra-backend-v2
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: httproute-hostname-intersection-all
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-hostname-intersection-all
    namespace: gateway-conformance-infra
  hostnames:
  - first.com
  - sub.first.com
  - second.com
  - sub.second.com
  rules:
  - backendRefs:
    - name: infra-backend-v2
      port: 8080
"""
    ),
    (
        # HTTPRoutes that do intersect with listener hostnames
        Expect("very.specific.com", "/s1", v(1)),
        Expect("very.specific.com:1234", "/s1", v(1)),
        Expect("non.matching.com", "/s1", status=404),
        Expect("foo.nonmatchingwildcard.io", "/s1", status=404),
        Expect("foo.wildcard.io", "/s1", status=404),
        Expect("very.specific.com", "/non-matching-prefix", status=404),
        Expect("foo.wildcard.io", "/s2", v(2)),
        Expect("bar.wildcard.io", "/s2", v(2)),
        Expect("foo.bar.wildcard.io", "/s2", v(2)),
        Expect("non.matching.com", "/s2", status=404),
        Expect("wildcard.io", "/s2", status=404),
        Expect("very.specific.com", "/s2", status=404),
        Expect("foo.wildcard.io", "/non-matching-prefix", status=404),
        Expect("very.specific.com", "/s3", v(3)),
        Expect("non.matching.com", "/s3", status=404),
        Expect("foo.specific.com", "/s3", status=404),
        Expect("foo.wildcard.io", "/s3", status=404),
        Expect("very.specific.com", "/non-matching-prefix", status=404),
        Expect("foo.anotherwildcard.io", "/s4", v(1)),
        Expect("bar.anotherwildcard.io", "/s4", v(1)),
        Expect("foo.bar.anotherwildcard.io", "/s4", v(1)),
        Expect("anotherwildcard.io", "/s4", status=404),
        Expect("foo.wildcard.io", "/s4", status=404),
        Expect("very.specific.com", "/s4", status=404),
        Expect("foo.anotherwildcard.io", "/non-matching-prefix", status=404),
        # HTTPRoutes that do not intersect with listener hostnames
        Expect("specific.but.wrong.com", "/s5", status=404),
        Expect("wildcard.io", "/s5", status=404),
        # HTTPRoutes intersects with an unspecified hostname listener
        Expect("first.com", "/", v(2)),
        Expect("sub.first.com", "/", v(2)),
        Expect("second.com", "/", v(2)),
        Expect("sub.second.com", "/", v(2)),
        Expect("third.com", "/", status=404),
        Expect("sub.third.com", "/", status=404),
    ),
    statuses=(
        *accepted(
            "specific-host-matches-listener-specific-host",
            "specific-host-matches-listener-wildcard-host",
            "wildcard-host-matches-listener-specific-host",
            "wildcard-host-matches-listener-wildcard-host",
            gateway="httproute-hostname-intersection",
            listeners=("listener-1", "listener-2", "listener-3"),
        ),
        route_condition(
            "no-intersecting-hosts",
            "httproute-hostname-intersection",
            "Accepted",
            "False",
            "NoMatchingListenerHostname",
        ),
        *accepted(
            "httproute-hostname-intersection-all",
            gateway="httproute-hostname-intersection-all",
            listeners=("listener-1",),
        ),
    ),
    listeners=(
        # specific-host-matches-listener-specific-host and
        # wildcard-host-matches-listener-specific-host
        ListenerStatus("httproute-hostname-intersection", "listener-1", 2, conditions=_READY),
        # specific-host-matches-listener-wildcard-host
        ListenerStatus("httproute-hostname-intersection", "listener-2", 1, conditions=_READY),
        # wildcard-host-matches-listener-wildcard-host
        ListenerStatus("httproute-hostname-intersection", "listener-3", 1, conditions=_READY),
    ),
)

_LISTENER_HOSTNAME_MATCHING = GatewayCase(
    "HTTPRouteListenerHostnameMatching",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: httproute-listener-hostname-matching
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: listener-1
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: bar.com
  - name: listener-2
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: foo.bar.com
  - name: listener-3
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: "*.bar.com"
  - name: listener-4
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: "*.foo.com"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backend-v1
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-listener-hostname-matching
    namespace: gateway-conformance-infra
    sectionName: listener-1
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backend-v2
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-listener-hostname-matching
    namespace: gateway-conformance-infra
    sectionName: listener-2
  rules:
  - backendRefs:
    - name: infra-backend-v2
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backend-v3
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-listener-hostname-matching
    namespace: gateway-conformance-infra
    sectionName: listener-3
  - name: httproute-listener-hostname-matching
    namespace: gateway-conformance-infra
    sectionName: listener-4
  rules:
  - backendRefs:
    - name: infra-backend-v3
      port: 8080
"""
    ),
    (
        Expect("bar.com", "/", v(1)),
        Expect("foo.bar.com", "/", v(2)),
        Expect("baz.bar.com", "/", v(3)),
        Expect("boo.bar.com", "/", v(3)),
        Expect("multiple.prefixes.bar.com", "/", v(3)),
        Expect("multiple.prefixes.foo.com", "/", v(3)),
        Expect("foo.com", "/", status=404),
        Expect("no.matching.host", "/", status=404),
    ),
    statuses=accepted(
        "backend-v1",
        "backend-v2",
        "backend-v3",
        gateway="httproute-listener-hostname-matching",
        listeners=("listener-1", "listener-2", "listener-3", "listener-4"),
    ),
)

_CROSS_NAMESPACE = GatewayCase(
    "HTTPRouteCrossNamespace",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: cross-namespace
  namespace: gateway-conformance-web-backend
spec:
  parentRefs:
  - name: backend-namespaces
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: web-backend
      port: 8080
"""
    ),
    (Expect(GW, "/", (WEB, "web-backend")),),
    statuses=accepted("cross-namespace", gateway="backend-namespaces", ns=WEB),
)

_REFERENCE_GRANT_ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reference-grant
  namespace: gateway-conformance-infra
spec:
  parentRefs:
    - name: same-namespace
  rules:
    - backendRefs:
        - name: web-backend
          namespace: gateway-conformance-web-backend
          port: 8080
"""

# Upstream deletes the ReferenceGrant half way: the second step is the same objects without it
# (run in order, loading it is that deletion).
_REFERENCE_GRANT = (
    GatewayCase(
        "HTTPRouteReferenceGrant",
        manifests(
            """
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Service
      name: web-backend
---"""
            + _REFERENCE_GRANT_ROUTE
        ),
        (Expect(GW, "/", (WEB, "web-backend")),),
        statuses=accepted("reference-grant"),
    ),
    GatewayCase(
        "HTTPRouteReferenceGrant/grant-deleted",
        manifests(_REFERENCE_GRANT_ROUTE),
        (Expect(GW, "/", status=500),),
    ),
)

_PARTIALLY_INVALID_VIA_INVALID_REFERENCE_GRANT = GatewayCase(
    "HTTPRoutePartiallyInvalidViaInvalidReferenceGrant",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: invalid-reference-grant
  namespace: gateway-conformance-app-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Service
      name: app-backend-v1
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: invalid-reference-grant
  namespace: gateway-conformance-infra
spec:
  parentRefs:
    - name: same-namespace
  rules:
    - matches:
        - path:
            type: PathPrefix
            value: "/v2"
      backendRefs:
        - name: app-backend-v2
          namespace: gateway-conformance-app-backend
          port: 8080
    - backendRefs:
        - name: app-backend-v1
          namespace: gateway-conformance-app-backend
          port: 8080
"""
    ),
    (
        Expect(GW, "/v2", status=500),
        Expect(GW, "/", (APP, "app-backend-v1")),
    ),
    statuses=(
        *accepted("invalid-reference-grant", resolved=False),
        route_condition(
            "invalid-reference-grant", "same-namespace", "ResolvedRefs", "False", "RefNotPermitted"
        ),
    ),
)

_INVALID_NONEXISTENT_BACKEND_REF = GatewayCase(
    "HTTPRouteInvalidNonExistentBackendRef",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: invalid-nonexistent-backend-ref
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    - name: nonexistent
      namespace: gateway-conformance-infra
      port: 8080
"""
    ),
    (Expect(GW, "/", status=500),),
    statuses=(
        *accepted("invalid-nonexistent-backend-ref", resolved=False),
        route_condition(
            "invalid-nonexistent-backend-ref",
            "same-namespace",
            "ResolvedRefs",
            "False",
            "BackendNotFound",
        ),
    ),
)

_INVALID_BACKEND_REF_UNKNOWN_KIND = GatewayCase(
    "HTTPRouteInvalidBackendRefUnknownKind",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: invalid-backend-ref-unknown-kind
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    - group: unknownkind.example.com
      kind: NonExistent
      name: infra-backend-v1
      port: 8080
"""
    ),
    (Expect(GW, "/v2", status=500),),
    statuses=(
        *accepted("invalid-backend-ref-unknown-kind", resolved=False),
        route_condition(
            "invalid-backend-ref-unknown-kind",
            "same-namespace",
            "ResolvedRefs",
            "False",
            "InvalidKind",
        ),
    ),
)

_INVALID_CROSS_NAMESPACE_BACKEND_REF = GatewayCase(
    "HTTPRouteInvalidCrossNamespaceBackendRef",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: invalid-cross-namespace-backend-ref
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    - name: web-backend
      namespace: gateway-conformance-web-backend
      port: 8080
"""
    ),
    (Expect(GW, "/", status=500),),
    statuses=(
        *accepted("invalid-cross-namespace-backend-ref", resolved=False),
        route_condition(
            "invalid-cross-namespace-backend-ref",
            "same-namespace",
            "ResolvedRefs",
            "False",
            "RefNotPermitted",
        ),
    ),
)

# Upstream makes no request in the tests of a route that attaches nowhere (it checks the status:
# not Accepted, the Gateway with 0 routes). The one request here is ours: with nothing
# attached, nothing answers "/" (404).
_INVALID_CROSS_NAMESPACE_PARENT_REF = GatewayCase(
    "HTTPRouteInvalidCrossNamespaceParentRef",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: invalid-cross-namespace-parent-ref
  namespace: gateway-conformance-web-backend
spec:
  parentRefs:
  - name: same-namespace
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: web-backend
      port: 8080
"""
    ),
    (Expect(GW, "/", status=404),),
    statuses=(
        route_condition(
            "invalid-cross-namespace-parent-ref",
            "same-namespace",
            "ResolvedRefs",
            "True",
            "ResolvedRefs",
            ns=WEB,
        ),
        route_condition(
            "invalid-cross-namespace-parent-ref",
            "same-namespace",
            "Accepted",
            "False",
            "NotAllowedByListeners",
            ns=WEB,
        ),
    ),
    zero_routes=((INFRA, "same-namespace"),),
)

_INVALID_PARENT_REF_NOT_MATCHING_LISTENER_PORT = GatewayCase(
    "HTTPRouteInvalidParentRefNotMatchingListenerPort",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: httproute-listener-not-matching-route-port
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
    namespace: gateway-conformance-infra
    # mismatched port here (81 is not an available gateway listener) triggers
    # NoMatchingParent reason
    port: 81
  rules:
  - backendRefs:
    - name: infra-backend-v1
      kind: Service
      port: 8080
"""
    ),
    (Expect(GW, "/", status=404),),  # ours (see HTTPRouteInvalidCrossNamespaceParentRef)
    # Upstream's Features name HTTPRouteDestinationPortMatching for this test.
    features=frozenset({"HTTPRouteDestinationPortMatching"}),
    statuses=(
        route_condition(
            "httproute-listener-not-matching-route-port",
            "same-namespace",
            "ResolvedRefs",
            "True",
            "ResolvedRefs",
        ),
        route_condition(
            "httproute-listener-not-matching-route-port",
            "same-namespace",
            "Accepted",
            "False",
            "NoMatchingParent",
        ),
    ),
    zero_routes=((INFRA, "same-namespace"),),
)

_INVALID_PARENT_REF_NOT_MATCHING_SECTION_NAME = GatewayCase(
    "HTTPRouteInvalidParentRefNotMatchingSectionName",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: httproute-listener-not-matching-section-name
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
    namespace: gateway-conformance-infra
    port: 80
    # mismatched sectionName here (http1 is not an available gateway listener) triggers
    # NoMatchingParent reason
    sectionName: http1
  rules:
  - backendRefs:
    - name: infra-backend-v1
      kind: Service
      port: 8080
"""
    ),
    (Expect(GW, "/", status=404),),  # ours (see HTTPRouteInvalidCrossNamespaceParentRef)
    statuses=(
        route_condition(
            "httproute-listener-not-matching-section-name",
            "same-namespace",
            "Accepted",
            "False",
            "NoMatchingParent",
        ),
    ),
    zero_routes=((INFRA, "same-namespace"),),
)

_INVALID_PARENT_REF_SECTION_NAME_NOT_MATCHING_PORT = GatewayCase(
    "HTTPRouteInvalidParentRefSectionNameNotMatchingPort",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-with-one-not-matching-port-and-section-name-route
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      kinds:
      - kind: HTTPRoute
      namespaces:
        from: All
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: httproute-listener-section-name-not-matching-port
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: gateway-with-one-not-matching-port-and-section-name-route
    namespace: gateway-conformance-infra
    sectionName: http
    # mismatched port value here (81 does not match gateway http listener's port) triggers
    # NoMatchingParent reason
    port: 81
  rules:
  - backendRefs:
    - name: infra-backend-v1
      kind: Service
      port: 8080
"""
    ),
    (Expect(GW, "/", status=404),),  # ours (see HTTPRouteInvalidCrossNamespaceParentRef)
    features=frozenset({"HTTPRouteParentRefPort"}),
    statuses=(
        route_condition(
            "httproute-listener-section-name-not-matching-port",
            "gateway-with-one-not-matching-port-and-section-name-route",
            "Accepted",
            "False",
            "NoMatchingParent",
        ),
    ),
    zero_routes=((INFRA, "gateway-with-one-not-matching-port-and-section-name-route"),),
)

# v1.6.1 names the test of omitted and empty backendRefs HTTPRouteNoBackendRefs.
_NO_BACKEND_REFS = GatewayCase(
    "HTTPRouteNoBackendRefs",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: omitted-backendrefs
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: Exact
        value: /omitted-no-forward
  - matches:
    - path:
        type: Exact
        value: /empty-no-forward
    backendRefs: []
  - matches:
    - path:
        type: PathPrefix
        value: /
    backendRefs:
    - name: infra-backend-v1
      port: 8080
"""
    ),
    (
        Expect(GW, "/forward", v(1)),
        Expect(GW, "/omitted-no-forward", status=500),
        Expect(GW, "/empty-no-forward", status=500),
    ),
    statuses=accepted("omitted-backendrefs"),
)

# Upstream: the first request gets 200 (any backend), then 500 requests are split 70/30/0.
_WEIGHT = GatewayCase(
    "HTTPRouteWeight",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: weighted-backends
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
      weight: 70
    - name: infra-backend-v2
      port: 8080
      weight: 30
    - name: infra-backend-v3
      port: 8080
      weight: 0
"""
    ),
    (Expect(GW, "/", status=200),),
    statuses=accepted("weighted-backends"),
    weights=((v(1), 0.7), (v(2), 0.3), (v(3), 0.0)),
)

_REQUEST_HEADER_MODIFIER = GatewayCase(
    "HTTPRouteRequestHeaderModifier",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: request-header-modifier
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /set
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - name: X-Header-Set
          value: set-overwrites-values
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /add
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        add:
        - name: X-Header-Add
          value: add-appends-values
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /remove
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        remove:
        - X-Header-Remove
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /multiple
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - name: X-Header-Set-1
          value: header-set-1
        - name: X-Header-Set-2
          value: header-set-2
        add:
        - name: X-Header-Add-1
          value: header-add-1
        - name: X-Header-Add-2
          value: header-add-2
        - name: X-Header-Add-3
          value: header-add-3
        remove:
        - X-Header-Remove-1
        - X-Header-Remove-2
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /case-insensitivity
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - name: X-Header-Set
          value: header-set
        add:
        - name: X-Header-Add
          value: header-add
        remove:
        - X-Header-Remove
    backendRefs:
    - name: infra-backend-v1
      port: 8080
"""
    ),
    (
        Expect(
            GW,
            "/set",
            v(1),
            request_headers=(("Some-Other-Header", "val"),),
            headers=(("Some-Other-Header", "val"), ("X-Header-Set", "set-overwrites-values")),
        ),
        Expect(
            GW,
            "/set",
            v(1),
            request_headers=(("Some-Other-Header", "val"), ("X-Header-Set", "some-other-value")),
            headers=(("Some-Other-Header", "val"), ("X-Header-Set", "set-overwrites-values")),
        ),
        Expect(
            GW,
            "/add",
            v(1),
            request_headers=(("Some-Other-Header", "val"),),
            headers=(("Some-Other-Header", "val"), ("X-Header-Add", "add-appends-values")),
        ),
        Expect(
            GW,
            "/add",
            v(1),
            request_headers=(("Some-Other-Header", "val"), ("X-Header-Add", "some-other-value")),
            headers=(
                ("Some-Other-Header", "val"),
                ("X-Header-Add", "some-other-value,add-appends-values"),
            ),
        ),
        Expect(
            GW,
            "/remove",
            v(1),
            request_headers=(("X-Header-Remove", "val"),),
            path_seen="/remove",
            absent=("X-Header-Remove",),
        ),
        Expect(
            GW,
            "/multiple",
            v(1),
            request_headers=(
                ("X-Header-Set-2", "set-val-2"),
                ("X-Header-Add-2", "add-val-2"),
                ("X-Header-Remove-2", "remove-val-2"),
                ("Another-Header", "another-header-val"),
            ),
            headers=(
                ("X-Header-Set-1", "header-set-1"),
                ("X-Header-Set-2", "header-set-2"),
                ("X-Header-Add-1", "header-add-1"),
                ("X-Header-Add-2", "add-val-2,header-add-2"),
                ("X-Header-Add-3", "header-add-3"),
                ("Another-Header", "another-header-val"),
            ),
            absent=("X-Header-Remove-1", "X-Header-Remove-2"),
        ),
        Expect(
            GW,
            "/case-insensitivity",
            v(1),
            request_headers=(
                ("x-header-set", "original-val-set"),
                ("x-header-add", "original-val-add"),
                ("x-header-remove", "original-val-remove"),
                ("Another-Header", "another-header-val"),
            ),
            headers=(
                ("X-Header-Set", "header-set"),
                ("X-Header-Add", "original-val-add,header-add"),
                ("Another-Header", "another-header-val"),
            ),
            absent=("x-header-remove", "X-Header-Remove"),
        ),
    ),
    statuses=accepted("request-header-modifier"),
)

_REDIRECT_HOST_AND_STATUS = GatewayCase(
    "HTTPRouteRedirectHostAndStatus",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: redirect-host-and-status
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /hostname-redirect
    filters:
    - type: RequestRedirect
      requestRedirect:
        hostname: example.org
  - matches:
    - path:
        type: PathPrefix
        value: /host-and-status
    filters:
    - type: RequestRedirect
      requestRedirect:
        statusCode: 301
        hostname: example.org
"""
    ),
    (
        Expect(
            GW,
            "/hostname-redirect",
            status=302,
            location="http://example.org/hostname-redirect",
        ),
        Expect(GW, "/host-and-status", status=301, location="http://example.org/host-and-status"),
    ),
    statuses=accepted("redirect-host-and-status"),
)

# Upstream checks the certificate each answer comes with against its one certificate; here the
# listeners have one each: example.org is served by the hostname-less listener "https" (its
# tls-validity-checks-certificate), second-example.org by "https-with-hostname". For
# unknown-example.org upstream's one certificate (also for *.org) is presented too; here the
# hostname-less listener matches every hostname (the spec), so its certificate is the HTTPS
# port's default certificate: it answers that SNI too (not the proxy's fallback).
_HTTPS_LISTENER = GatewayCase(
    "HTTPRouteHTTPSListener",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: httproute-https-test
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace-with-https-listener
  hostnames:
  - example.org
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: httproute-https-test-no-hostname
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace-with-https-listener
    sectionName: https-with-hostname
  rules:
  - backendRefs:
    - name: infra-backend-v2
      port: 8080
"""
    ),
    (
        Expect(
            "example.org",
            "/",
            v(1),
            scheme="https",
            certificate="tls-validity-checks-certificate",
        ),
        Expect(
            "unknown-example.org",
            "/",
            status=404,
            scheme="https",
            certificate="tls-validity-checks-certificate",
        ),
        Expect("second-example.org", "/", v(2), scheme="https", certificate="tls-second-example"),
    ),
    statuses=accepted(
        "httproute-https-test",
        "httproute-https-test-no-hostname",
        gateway="same-namespace-with-https-listener",
    ),
)

# Upstream's Features name TLSRoute (a listener of the Gateway allows TLSRoutes only): a
# GATEWAY-TLS test, run where TLSRoute is declared. The request is ours (see
# HTTPRouteInvalidCrossNamespaceParentRef).
_DISALLOWED_KIND = GatewayCase(
    "HTTPRouteDisallowedKind",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: tlsroutes-only
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: tls
    port: 443
    protocol: TLS
    tls:
      mode: Passthrough
    allowedRoutes:
      namespaces:
        from: Same
      kinds:
      - kind: TLSRoute
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: disallowed-kind
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: tlsroutes-only
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
"""
    ),
    (Expect(GW, "/", status=404),),
    features=frozenset({"TLSRoute"}),
    statuses=(
        route_condition(
            "disallowed-kind", "tlsroutes-only", "ResolvedRefs", "True", "ResolvedRefs"
        ),
        route_condition(
            "disallowed-kind", "tlsroutes-only", "Accepted", "False", "NotAllowedByListeners"
        ),
    ),
    zero_routes=((INFRA, "tlsroutes-only"),),
)

_SIMPLE_SAME_NAMESPACE = GatewayCase(
    "HTTPRouteSimpleSameNamespace",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: gateway-conformance-infra-test
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
"""
    ),
    (Expect(GW, "/", v(1)),),
    statuses=accepted("gateway-conformance-infra-test"),
)

_GATEWAY_WITH_ATTACHED_ROUTES = GatewayCase(
    "GatewayWithAttachedRoutes",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-with-one-attached-route
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      kinds:
      - kind: HTTPRoute
      namespaces:
        from: Selector
        selector:
          matchLabels:
            # This label is added automatically as of K8s 1.22
            # to all namespaces
            kubernetes.io/metadata.name: gateway-conformance-infra
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-1
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: Gateway
    name: gateway-with-one-attached-route
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-with-two-attached-routes
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    hostname: "foo.example.com"
    allowedRoutes:
      kinds:
      - kind: HTTPRoute
      namespaces:
        from: Selector
        selector:
          matchLabels:
            # This label is added automatically as of K8s 1.22
            # to all namespaces
            kubernetes.io/metadata.name: gateway-conformance-infra
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-2
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: Gateway
    name: gateway-with-two-attached-routes
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-3
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: Gateway
    name: gateway-with-two-attached-routes
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-not-accepted
  namespace: gateway-conformance-infra
spec:
  hostnames:
  # mismatched hostname here (listener hostname is foo.example.com) triggers
  # NoMatchingListenerHostname reason
  - "not-accepted.test.com"
  parentRefs:
  - kind: Gateway
    name: gateway-with-two-attached-routes
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: unresolved-gateway-with-one-attached-unresolved-route
  namespace: gateway-conformance-infra
  annotations:
    gateway-api/skip-this-for-readiness: "true"
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: tls
    port: 443
    protocol: HTTPS
    allowedRoutes:
      kinds:
      - kind: HTTPRoute
      namespaces:
        from: Selector
        selector:
          matchLabels:
            # This label is added automatically as of K8s 1.22
            # to all namespaces
            kubernetes.io/metadata.name: gateway-conformance-infra
    tls:
      certificateRefs:
      - group: ""
        kind: Secret
        name: does-not-exist
      mode: Terminate
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-4
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: Gateway
    name: unresolved-gateway-with-one-attached-unresolved-route
    namespace: gateway-conformance-infra
    sectionName: tls
  rules:
  - backendRefs:
    - name: does-not-exist
      port: 8080
"""
    ),
    (),
    statuses=(
        route_condition(
            "http-route-not-accepted",
            "gateway-with-two-attached-routes",
            "Accepted",
            "False",
            "NoMatchingListenerHostname",
        ),
        route_condition(
            "http-route-4",
            "unresolved-gateway-with-one-attached-unresolved-route",
            "ResolvedRefs",
            "False",
        ),
    ),
    listeners=(
        ListenerStatus("gateway-with-one-attached-route", "http", 1, conditions=_READY),
        ListenerStatus("gateway-with-two-attached-routes", "http", 2, conditions=_READY),
        ListenerStatus(
            "unresolved-gateway-with-one-attached-unresolved-route",
            "tls",
            1,
            conditions=(("Programmed", "False", ""), ("ResolvedRefs", "False", "")),
        ),
    ),
)


_GATEWAY_WITH_ATTACHED_ROUTES_WITH_PORT_8080 = GatewayCase(
    "GatewayWithAttachedRoutesWithPort8080",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-with-two-listeners-and-one-attached-route
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: http-unattached
    port: 8080
    protocol: HTTP
    allowedRoutes:
      kinds:
      - kind: HTTPRoute
      namespaces:
        from: All
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      kinds:
      - kind: HTTPRoute
      namespaces:
        from: All
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-4-port-8080
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: Gateway
    name: gateway-with-two-listeners-and-one-attached-route
    namespace: gateway-conformance-infra
    sectionName: http
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
"""
    ),
    (),
    features=frozenset({"GatewayPort8080"}),
    listeners=(
        ListenerStatus(
            "gateway-with-two-listeners-and-one-attached-route",
            "http-unattached",
            0,
            conditions=_READY,
        ),
        ListenerStatus(
            "gateway-with-two-listeners-and-one-attached-route", "http", 1, conditions=_READY
        ),
    ),
)

# Upstream sends each Gateway's requests to that Gateway's own address, so "/" reaches
# infra-backend-v2 through same-namespace and infra-backend-v3 through all-namespaces. Here both
# Gateways share the HTTP port: the shared route is checked as upstream does (it reaches
# infra-backend-v1 whichever Gateway took the request: there is one address), each route's
# acceptance by its Gateway as upstream does, and "/" with the rule the spec has for two
# routes matching the same request (the oldest, then the first by namespace/name:
# all-namespaces-dedicated-route): what a shared address can show of the dedicated routes.
_MULTIPLE_GATEWAYS = GatewayCase(
    "HTTPRouteMultipleGateways",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: multiple-gateways-shared-route
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  - name: all-namespaces
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /shared
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: same-namespace-dedicated-route
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /
    backendRefs:
    - name: infra-backend-v2
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: all-namespaces-dedicated-route
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: all-namespaces
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /
    backendRefs:
    - name: infra-backend-v3
      port: 8080
"""
    ),
    (
        Expect(GW, "/shared", v(1)),
        Expect(GW, "/", v(3)),  # adapted: see above
    ),
    statuses=(
        *accepted(
            "multiple-gateways-shared-route",
            "same-namespace-dedicated-route",
            gateway="same-namespace",
            resolved=False,
        ),
        *accepted(
            "multiple-gateways-shared-route",
            "all-namespaces-dedicated-route",
            gateway="all-namespaces",
            resolved=False,
        ),
    ),
)

_INVALID_REFERENCE_GRANT = GatewayCase(
    "HTTPRouteInvalidReferenceGrant",
    manifests(
        """
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-namespace
  namespace: gateway-conformance-infra
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Service
      name: web-backend
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-from-group
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: not-the-group-youre-looking-for
      kind: HTTPRoute
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Service
      name: web-backend
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-from-kind
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: Gateway
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Service
      name: web-backend
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-from-namespace
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      namespace: not-the-namespace-youre-looking-for
  to:
    - group: ""
      kind: Service
      name: web-backend
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-to-group
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      namespace: gateway-conformance-infra
  to:
    - group: not-the-group-youre-looking-for
      kind: Service
      name: web-backend
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-to-kind
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Secret
      name: web-backend
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-to-name
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Secret
      name: not-the-service-youre-looking-for
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reference-grant
  namespace: gateway-conformance-infra
spec:
  parentRefs:
    - name: same-namespace
  rules:
    - backendRefs:
        - name: web-backend
          namespace: gateway-conformance-web-backend
          port: 8080
"""
    ),
    (Expect(GW, "/", status=500),),
    statuses=(
        *accepted("reference-grant", resolved=False),
        route_condition(
            "reference-grant", "same-namespace", "ResolvedRefs", "False", "RefNotPermitted"
        ),
    ),
)

_SERVICE_TYPES_OBJECTS = manifests(
    """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: service-types
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches: [{path: {type: Exact, value: /manual-endpointslices}}]
    backendRefs: [{name: manual-endpointslices, port: 8080}]
  - matches: [{path: {type: Exact, value: /headless}}]
    backendRefs: [{name: headless, port: 8080}]
  - matches: [{path: {type: Exact, value: /headless-manual-endpointslices}}]
    backendRefs: [{name: headless-manual-endpointslices, port: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: manual-endpointslices
  namespace: gateway-conformance-infra
spec:
  ports:
  - name: first-port
    protocol: TCP
    port: 8080
    targetPort: 3000
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: manual-endpointslices-ip4
  namespace: gateway-conformance-infra
  labels:
    kubernetes.io/service-name: manual-endpointslices
addressType: IPv4
ports:
- name: first-port
  port: 3000
  protocol: TCP
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: manual-endpointslices-ip6
  namespace: gateway-conformance-infra
  labels:
    kubernetes.io/service-name: manual-endpointslices
addressType: IPv6
ports:
- name: first-port
  port: 3000
  protocol: TCP
---
apiVersion: v1
kind: Service
metadata:
  name: headless
  namespace: gateway-conformance-infra
spec:
  clusterIP: None
  selector:
    app: infra-backend-v1
  ports:
  - name: first-port
    protocol: TCP
    port: 8080
    targetPort: 3000
---
apiVersion: v1
kind: Service
metadata:
  name: headless-manual-endpointslices
  namespace: gateway-conformance-infra
spec:
  clusterIP: None
  ports:
  - name: first-port
    protocol: TCP
    port: 8080
    targetPort: 3000
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: headless-manual-endpointslices-ip4
  namespace: gateway-conformance-infra
  labels:
    kubernetes.io/service-name: headless-manual-endpointslices
addressType: IPv4
ports:
- name: first-port
  port: 3000
  protocol: TCP
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: headless-manual-endpointslices-ip6
  namespace: gateway-conformance-infra
  labels:
    kubernetes.io/service-name: headless-manual-endpointslices
addressType: IPv6
ports:
- name: first-port
  port: 3000
  protocol: TCP
"""
)

# Upstream fills the manual EndpointSlices with infra-backend-v1's pod addresses (IPv4 and
# IPv6; here: its hello server's IPv4 loopback address, no IPv6 one, so the -ip6 slices stay
# empty as upstream leaves a family without pods), and the cluster's EndpointSlice controller
# makes the slice of the "headless" Service from its selector; without a cluster, that slice is
# written here (headless-managed).
_SERVICE_TYPES = GatewayCase(
    "HTTPRouteServiceTypes",
    (
        *_SERVICE_TYPES_OBJECTS,
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "headless-managed",
                "namespace": INFRA,
                "labels": {"kubernetes.io/service-name": "headless"},
            },
            "addressType": "IPv4",
            "ports": [{"name": "first-port", "port": 3000, "protocol": "TCP"}],
        },
    ),
    (
        Expect(GW, "/manual-endpointslices", v(1)),
        Expect(GW, "/headless-manual-endpointslices", v(1)),
        Expect(GW, "/headless", v(1)),
    ),
    statuses=accepted("service-types"),
    endpoints=(
        (INFRA, "manual-endpointslices-ip4", v(1)),
        (INFRA, "headless-manual-endpointslices-ip4", v(1)),
        (INFRA, "headless-managed", v(1)),
    ),
)

_OBSERVED_GENERATION_ROUTE = manifests(
    """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: observed-generation-bump
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
"""
)


def _backend_v2(spec: dict[str, Any]) -> None:
    spec["rules"][0]["backendRefs"][0]["name"] = "infra-backend-v2"


# Upstream patches the route (its backend becomes infra-backend-v2): the second step is the
# route after that patch, the API server's generation 2.
_ROUTE_OBSERVED_GENERATION_BUMP = (
    GatewayCase(
        "HTTPRouteObservedGenerationBump",
        generation(_OBSERVED_GENERATION_ROUTE, 1),
        (),
        latest=(("HTTPRoute", INFRA, "observed-generation-bump"),),
    ),
    GatewayCase(
        "HTTPRouteObservedGenerationBump/patched",
        generation(_OBSERVED_GENERATION_ROUTE, 2, {"observed-generation-bump": _backend_v2}),
        (),
        statuses=(
            route_condition("observed-generation-bump", "same-namespace", "Accepted", "True"),
            route_condition(
                "observed-generation-bump", "same-namespace", "ResolvedRefs", "True", "ResolvedRefs"
            ),
        ),
        latest=(("HTTPRoute", INFRA, "observed-generation-bump"),),
    ),
)

_GATEWAY_OBSERVED_GENERATION = manifests(
    """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-observed-generation-bump
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: http
      hostname: "bar.com"
      port: 80
      protocol: HTTP
      allowedRoutes:
        namespaces:
          from: All
"""
)


def _add_alternate(spec: dict[str, Any]) -> None:
    spec["listeners"].append(
        {
            "name": "alternate",
            "hostname": "foo.com",
            "port": 80,
            "protocol": "HTTP",
            "allowedRoutes": {"namespaces": {"from": "All"}},
        }
    )


_GATEWAY_OBSERVED_GENERATION_BUMP = (
    GatewayCase(
        "GatewayObservedGenerationBump",
        generation(_GATEWAY_OBSERVED_GENERATION, 1),
        (),
        latest=(("Gateway", INFRA, "gateway-observed-generation-bump"),),
    ),
    GatewayCase(
        "GatewayObservedGenerationBump/patched",
        generation(
            _GATEWAY_OBSERVED_GENERATION, 2, {"gateway-observed-generation-bump": _add_alternate}
        ),
        (),
        latest=(("Gateway", INFRA, "gateway-observed-generation-bump"),),
    ),
)

_GATEWAY_CLASS_OBSERVED_GENERATION = manifests(
    """
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: gatewayclass-observed-generation-bump
spec:
  controllerName: "{GATEWAY_CONTROLLER_NAME}"
  description: "old"
"""
)


def _description_new(spec: dict[str, Any]) -> None:
    spec["description"] = "new"


_GWC_ACCEPTED: tuple[Status, ...] = (
    ("GatewayClass", "", "gatewayclass-observed-generation-bump", "", "Accepted", "", ""),
)
_GATEWAY_CLASS_OBSERVED_GENERATION_BUMP = (
    GatewayCase(
        "GatewayClassObservedGenerationBump",
        generation(_GATEWAY_CLASS_OBSERVED_GENERATION, 1),
        (),
        statuses=_GWC_ACCEPTED,
        latest=(("GatewayClass", "", "gatewayclass-observed-generation-bump"),),
    ),
    GatewayCase(
        "GatewayClassObservedGenerationBump/patched",
        generation(
            _GATEWAY_CLASS_OBSERVED_GENERATION,
            2,
            {"gatewayclass-observed-generation-bump": _description_new},
        ),
        (),
        statuses=_GWC_ACCEPTED,
        latest=(("GatewayClass", "", "gatewayclass-observed-generation-bump"),),
    ),
)

_MODIFY_LISTENERS = manifests(
    """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-add-listener
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    hostname: "secure.test.com"
    allowedRoutes:
      namespaces:
        from: All
    tls:
      certificateRefs:
      - group: ""
        kind: Secret
        name: tls-validity-checks-certificate
        namespace: gateway-conformance-infra
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-1
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: Gateway
    name: gateway-add-listener
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-remove-listener
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    hostname: "secure.test.com"
    allowedRoutes:
      namespaces:
        from: All
    tls:
      certificateRefs:
      - group: ""
        kind: Secret
        name: tls-validity-checks-certificate
        namespace: gateway-conformance-infra
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: All
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-2
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: Gateway
    name: gateway-remove-listener
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
"""
)


def _add_http(spec: dict[str, Any]) -> None:
    spec["listeners"].append(
        {
            "name": "http",
            "port": 80,
            "protocol": "HTTP",
            "hostname": "data.test.com",
            "allowedRoutes": {"namespaces": {"from": "All"}},
        }
    )


def _remove_https(spec: dict[str, Any]) -> None:
    spec["listeners"] = [ln for ln in spec["listeners"] if ln["name"] == "http"]


_MODIFY_LATEST = (
    ("Gateway", INFRA, "gateway-add-listener"),
    ("Gateway", INFRA, "gateway-remove-listener"),
)
_ADDED = generation(_MODIFY_LISTENERS, 2, {"gateway-add-listener": _add_http})

# Upstream patches one Gateway (a listener added), then the other (a listener removed): three
# steps, the objects before and after each patch.
_GATEWAY_MODIFY_LISTENERS = (
    GatewayCase(
        "GatewayModifyListeners",
        generation(_MODIFY_LISTENERS, 1),
        (),
        latest=_MODIFY_LATEST,
    ),
    GatewayCase(
        "GatewayModifyListeners/listener-added",
        _ADDED,
        (),
        listeners=(
            ListenerStatus("gateway-add-listener", "https", 1, conditions=_READY),
            ListenerStatus("gateway-add-listener", "http", 1, conditions=_READY),
        ),
        latest=_MODIFY_LATEST[:1],
    ),
    GatewayCase(
        "GatewayModifyListeners/listener-removed",
        generation(_ADDED, 2, {"gateway-remove-listener": _remove_https}),
        (),
        listeners=(ListenerStatus("gateway-remove-listener", "http", 1, conditions=_READY),),
        latest=_MODIFY_LATEST,
    ),
)

_GATEWAY_INVALID_ROUTE_KIND = GatewayCase(
    "GatewayInvalidRouteKind",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-only-invalid-route-kind
  namespace: gateway-conformance-infra
  annotations:
    gateway-api/skip-this-for-readiness: "true"
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: http
      port: 80
      protocol: HTTP
      allowedRoutes:
        namespaces:
          from: All
        kinds:
          - kind: InvalidRoute
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-supported-and-invalid-route-kind
  namespace: gateway-conformance-infra
  annotations:
    gateway-api/skip-this-for-readiness: "true"
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: http
      port: 80
      protocol: HTTP
      allowedRoutes:
        namespaces:
          from: All
        kinds:
          - kind: InvalidRoute
          - kind: HTTPRoute
"""
    ),
    (),
    listeners=(
        ListenerStatus(
            "gateway-only-invalid-route-kind",
            "http",
            0,
            kinds=(),
            conditions=(("ResolvedRefs", "False", "InvalidRouteKinds"),),
        ),
        ListenerStatus(
            "gateway-supported-and-invalid-route-kind",
            "http",
            0,
            conditions=(("ResolvedRefs", "False", "InvalidRouteKinds"),),
        ),
    ),
)

_GATEWAY_LISTENER_UNSUPPORTED_PROTOCOL = GatewayCase(
    "GatewayListenerUnsupportedProtocol",
    generation(
        manifests(
            """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-only-unsupported-protocols
  namespace: gateway-conformance-infra
  annotations:
    gateway-api/skip-this-for-readiness: "true"
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: invalid
      port: 1111
      protocol: INVALID
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-supported-and-unsupported-protocols
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: http
      port: 80
      protocol: HTTP
    - name: invalid
      port: 1111
      protocol: INVALID
"""
        ),
        1,
    ),
    (),
    statuses=(
        (
            "Gateway",
            INFRA,
            "gateway-only-unsupported-protocols",
            "",
            "Accepted",
            "False",
            "ListenersNotValid",
        ),
        (
            "Gateway",
            INFRA,
            "gateway-supported-and-unsupported-protocols",
            "",
            "Accepted",
            "True",
            "ListenersNotValid",
        ),
    ),
    listeners=(
        ListenerStatus(
            "gateway-only-unsupported-protocols",
            "invalid",
            0,
            kinds=(),
            conditions=(("Accepted", "False", "UnsupportedProtocol"),),
        ),
        ListenerStatus(
            "gateway-supported-and-unsupported-protocols",
            "http",
            0,
            conditions=(("Accepted", "True", "Accepted"),),
        ),
        ListenerStatus(
            "gateway-supported-and-unsupported-protocols",
            "invalid",
            0,
            kinds=(),
            conditions=(("Accepted", "False", "UnsupportedProtocol"),),
        ),
    ),
    latest=(
        ("Gateway", INFRA, "gateway-only-unsupported-protocols"),
        ("Gateway", INFRA, "gateway-supported-and-unsupported-protocols"),
    ),
)

_GATEWAY_INVALID_TLS_CONFIGURATION = GatewayCase(
    "GatewayInvalidTLSConfiguration",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-certificate-nonexistent-secret
  namespace: gateway-conformance-infra
  annotations:
    gateway-api/skip-this-for-readiness: "true"
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: https
      port: 443
      protocol: HTTPS
      allowedRoutes:
        namespaces:
          from: All
      tls:
        certificateRefs:
          - group: ""
            kind: Secret
            name: nonexistent-certificate
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-certificate-unsupported-group
  namespace: gateway-conformance-infra
  annotations:
    gateway-api/skip-this-for-readiness: "true"
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: https
      port: 443
      protocol: HTTPS
      allowedRoutes:
        namespaces:
          from: All
      tls:
        certificateRefs:
          - group: wrong.group.company.io
            kind: Secret
            name: tls-validity-checks-certificate
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-certificate-unsupported-kind
  namespace: gateway-conformance-infra
  annotations:
    gateway-api/skip-this-for-readiness: "true"
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: https
      port: 443
      protocol: HTTPS
      allowedRoutes:
        namespaces:
          from: All
      tls:
        certificateRefs:
          - group: ""
            kind: WrongKind
            name: tls-validity-checks-certificate
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-certificate-malformed-secret
  namespace: gateway-conformance-infra
  annotations:
    gateway-api/skip-this-for-readiness: "true"
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: https
      port: 443
      protocol: HTTPS
      allowedRoutes:
        namespaces:
          from: All
      tls:
        certificateRefs:
          - group: ""
            kind: Secret
            name: malformed-certificate
---
apiVersion: v1
kind: Secret
metadata:
  name: malformed-certificate
  namespace: gateway-conformance-infra
data:
  # this certificate is invalid because contains an invalid pem (base64 of "Hello world"),
  # and the certificate and the key are identical
  tls.crt: SGVsbG8gd29ybGQK
  tls.key: SGVsbG8gd29ybGQK
type: kubernetes.io/tls
"""
    ),
    (),
    listeners=tuple(
        ListenerStatus(
            gw, "https", 0, conditions=(("ResolvedRefs", "False", "InvalidCertificateRef"),)
        )
        for gw in (
            "gateway-certificate-nonexistent-secret",
            "gateway-certificate-unsupported-group",
            "gateway-certificate-unsupported-kind",
            "gateway-certificate-malformed-secret",
        )
    ),
)

_GATEWAY_INVALID_PARAMETERS_REF = GatewayCase(
    "GatewayInvalidParametersRef",
    generation(
        manifests(
            """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-invalid-parameters-ref
  namespace: gateway-conformance-infra
  annotations:
    gateway-api/skip-this-for-readiness: "true"
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: http
      port: 80
      protocol: HTTP
  infrastructure:
    parametersRef:
      group: invalid.io
      kind: InvalidParameters
      name: invalid
"""
        ),
        1,
    ),
    (),
    statuses=(
        (
            "Gateway",
            INFRA,
            "gateway-invalid-parameters-ref",
            "",
            "Accepted",
            "False",
            "InvalidParameters",
        ),
    ),
    latest=(("Gateway", INFRA, "gateway-invalid-parameters-ref"),),
)

_SECRET_REF_GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: {name}
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{{GATEWAY_CLASS_NAME}}"
  listeners:
    - name: https
      port: 443
      protocol: HTTPS
      allowedRoutes:
        namespaces:
          from: All
      tls:
        certificateRefs:
          - group: ""
            kind: Secret
            name: certificate
            namespace: gateway-conformance-web-backend
"""

_REF_NOT_PERMITTED = (("ResolvedRefs", "False", "RefNotPermitted"),)
_PROGRAMMED = (("Programmed", "True", "Programmed"), ("ResolvedRefs", "True", ""))

_GATEWAY_SECRET_INVALID_REFERENCE_GRANT = GatewayCase(
    "GatewaySecretInvalidReferenceGrant",
    manifests(
        _SECRET_REF_GATEWAY.format(name="gateway-secret-invalid-reference-grant")
        + """
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-namespace
  namespace: gateway-conformance-app-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: Gateway
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Secret
      name: certificate
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-from-group
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: not-the-group-youre-looking-for
      kind: Gateway
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Secret
      name: certificate
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-from-kind
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Secret
      name: certificate
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-from-namespace
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: Gateway
      namespace: not-the-namespace-youre-looking-for
  to:
    - group: ""
      kind: Secret
      name: certificate
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-to-group
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: Gateway
      namespace: gateway-conformance-infra
  to:
    - group: not-the-group-youre-looking-for
      kind: Secret
      name: not-the-certificate-youre-looking-for
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-to-kind
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: Gateway
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Service
      name: certificate
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-to-name
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: Gateway
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Secret
      name: not-the-certificate-youre-looking-for
"""
    ),
    (),
    listeners=(
        ListenerStatus(
            "gateway-secret-invalid-reference-grant", "https", 0, conditions=_REF_NOT_PERMITTED
        ),
    ),
)

_GATEWAY_SECRET_MISSING_REFERENCE_GRANT = GatewayCase(
    "GatewaySecretMissingReferenceGrant",
    manifests(_SECRET_REF_GATEWAY.format(name="gateway-secret-missing-reference-grant")),
    (),
    listeners=(
        ListenerStatus(
            "gateway-secret-missing-reference-grant", "https", 0, conditions=_REF_NOT_PERMITTED
        ),
    ),
)

_GATEWAY_SECRET_REFERENCE_GRANT_ALL_IN_NAMESPACE = GatewayCase(
    "GatewaySecretReferenceGrantAllInNamespace",
    manifests(
        _SECRET_REF_GATEWAY.format(name="gateway-secret-reference-grant-all-in-namespace")
        + """
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-all-in-namespace
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: Gateway
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Secret
"""
    ),
    (),
    listeners=(
        ListenerStatus(
            "gateway-secret-reference-grant-all-in-namespace", "https", 0, conditions=_PROGRAMMED
        ),
    ),
)

_GATEWAY_SECRET_REFERENCE_GRANT_SPECIFIC = GatewayCase(
    "GatewaySecretReferenceGrantSpecific",
    manifests(
        _SECRET_REF_GATEWAY.format(name="gateway-secret-reference-grant-specific")
        + """
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-specific
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: Gateway
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Secret
      name: certificate
"""
    ),
    (),
    listeners=(
        ListenerStatus(
            "gateway-secret-reference-grant-specific", "https", 0, conditions=_PROGRAMMED
        ),
    ),
)


# --- extended ------------------------------------------------------------------------------

_QUERY_PARAM_MATCHING = GatewayCase(
    "HTTPRouteQueryParamMatching",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: query-param-matching
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - queryParams:
      - name: animal
        value: whale
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - queryParams:
      - name: animal
        value: dolphin
    backendRefs:
    - name: infra-backend-v2
      port: 8080
  - matches:
    - queryParams:
      - name: animal
        value: dolphin
      - name: color
        value: blue
    - queryParams:
      - name: ANIMAL
        value: Whale
    backendRefs:
    - name: infra-backend-v3
      port: 8080

  # Combinations with core match types.
  - matches:
    - path:
        type: PathPrefix
        value: /path1
      queryParams:
      - name: animal
        value: whale
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - headers:
      - name: version
        value: one
      queryParams:
      - name: animal
        value: whale
    backendRefs:
    - name: infra-backend-v2
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /path2
      headers:
      - name: version
        value: two
      queryParams:
      - name: animal
        value: whale
    backendRefs:
    - name: infra-backend-v3
      port: 8080

  # Match of the form (cond1 AND cond2) OR (cond3 AND cond4 AND cond5)
  - matches:
    - path:
        type: PathPrefix
        value: /path3
      queryParams:
      - name: animal
        value: shark
    - path:
        type: PathPrefix
        value: /path4
      headers:
      - name: version
        value: three
      queryParams:
      - name: animal
        value: kraken
    backendRefs:
    - name: infra-backend-v1
      port: 8080

  # Matches for checking precedence.
  - matches:
    - path:
        type: PathPrefix
        value: /path5
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - queryParams:
      - name: animal
        value: hydra
    backendRefs:
    - name: infra-backend-v2
      port: 8080
  - matches:
    - headers:
      - name: version
        value: four
    backendRefs:
    - name: infra-backend-v3
      port: 8080
"""
    ),
    (
        Expect(GW, "/?animal=whale", v(1)),
        Expect(GW, "/?animal=dolphin", v(2)),
        Expect(GW, "/?animal=dolphin&color=blue", v(3)),
        Expect(GW, "/?ANIMAL=Whale", v(3)),
        Expect(GW, "/?animal=whale&otherparam=irrelevant", v(1)),
        Expect(GW, "/?animal=dolphin&color=yellow", v(2)),
        Expect(GW, "/?color=blue", status=404),
        Expect(GW, "/?animal=dog", status=404),
        Expect(GW, "/?animal=whaledolphin", status=404),
        Expect(GW, "/", status=404),
        Expect(GW, "/path1?animal=whale", v(1)),
        Expect(GW, "/?animal=whale", v(2), request_headers=(("version", "one"),)),
        Expect(GW, "/path2?animal=whale", v(3), request_headers=(("version", "two"),)),
        Expect(GW, "/path3?animal=shark", v(1)),
        Expect(GW, "/path4?animal=kraken", v(1), request_headers=(("version", "three"),)),
        Expect(GW, "/?animal=shark", status=404),
        Expect(GW, "/path4?animal=kraken", status=404),
        Expect(GW, "/path5?animal=hydra", v(1)),
        Expect(GW, "/?animal=hydra", v(3), request_headers=(("version", "four"),)),
    ),
    features=frozenset({"HTTPRouteQueryParamMatching"}),
    statuses=accepted("query-param-matching"),
)

_METHOD_MATCHING = GatewayCase(
    "HTTPRouteMethodMatching",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: method-matching
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - method: POST
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - method: GET
    backendRefs:
    - name: infra-backend-v2
      port: 8080

  # Combinations with core match types.
  - matches:
    - path:
        type: PathPrefix
        value: /path1
      method: GET
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - headers:
      - name: version
        value: one
      method: PUT
    backendRefs:
    - name: infra-backend-v2
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /path2
      headers:
      - name: version
        value: two
      method: POST
    backendRefs:
    - name: infra-backend-v3
      port: 8080

  # Match of the form (cond1 AND cond2) OR (cond3 AND cond4 AND cond5)
  - matches:
    - path:
        type: PathPrefix
        value: /path3
      method: PATCH
    - path:
        type: PathPrefix
        value: /path4
      headers:
      - name: version
        value: three
      method: DELETE
    backendRefs:
    - name: infra-backend-v1
      port: 8080

  # Matches for checking precedence.
  - matches:
    - path:
        type: PathPrefix
        value: /path5
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - method: PATCH
    backendRefs:
    - name: infra-backend-v2
      port: 8080
  - matches:
    - headers:
      - name: version
        value: four
    backendRefs:
    - name: infra-backend-v3
      port: 8080
"""
    ),
    (
        Expect(GW, "/", v(1), method="POST"),
        Expect(GW, "/", v(2), method="GET"),
        Expect(GW, "/", status=404, method="HEAD"),
        Expect(GW, "/path1", v(1), method="GET"),
        Expect(GW, "/", v(2), method="PUT", request_headers=(("version", "one"),)),
        Expect(GW, "/path2", v(3), method="POST", request_headers=(("version", "two"),)),
        Expect(GW, "/path3", v(1), method="PATCH"),
        Expect(GW, "/path4", v(1), method="DELETE", request_headers=(("version", "three"),)),
        Expect(GW, "/", status=404, method="PUT"),
        Expect(GW, "/path4", status=404, method="DELETE"),
        Expect(GW, "/path5", v(1), method="PATCH"),
        Expect(GW, "/", v(2), method="PATCH", request_headers=(("version", "four"),)),
    ),
    features=frozenset({"HTTPRouteMethodMatching"}),
    statuses=accepted("method-matching"),
)

_RESPONSE_HEADER_MODIFIER = GatewayCase(
    "HTTPRouteResponseHeaderModifier",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: response-header-modifier
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /set
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set:
        - name: X-Header-Set
          value: set-overwrites-values
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /add
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        add:
        - name: X-Header-Add
          value: add-appends-values
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /remove
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        remove:
        - X-Header-Remove
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /multiple
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set:
        - name: X-Header-Set-1
          value: header-set-1
        - name: X-Header-Set-2
          value: header-set-2
        add:
        - name: X-Header-Add-1
          value: header-add-1
        - name: X-Header-Add-2
          value: header-add-2
        - name: X-Header-Add-3
          value: header-add-3
        remove:
        - X-Header-Remove-1
        - X-Header-Remove-2
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /case-insensitivity
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set:
        - name: X-Header-Set
          value: header-set
        add:
        - name: X-Header-Add
          value: header-add
        - name: x-lowercase-add
          value: lowercase-add
        - name: x-Mixedcase-ADD-1
          value: mixedcase-add-1
        - name: X-mixeDcase-add-2
          value: mixedcase-add-2
        - name: X-UPPERCASE-ADD
          value: uppercase-add
        remove:
        - X-Header-Remove
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /response-and-request-header-modifiers
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set:
        - name: X-Header-Set-1
          value: header-set-1
        - name: X-Header-Set-2
          value: header-set-2
        add:
        - name: X-Header-Add-1
          value: header-add-1
        - name: X-Header-Add-2
          value: header-add-2
        remove:
        - X-Header-Remove-1
        - X-Header-Remove-2
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - name: X-Header-Set
          value: set-overwrites-values
        add:
        - name: X-Header-Add
          value: header-val-1
        - name: X-Header-Add-Append
          value: header-val-2
        remove:
        - X-Header-Remove
    backendRefs:
    - name: infra-backend-v1
      port: 8080
"""
    ),
    (
        Expect(
            GW,
            "/set",
            v(1),
            backend_response_headers=(("Some-Other-Header", "val"),),
            response_headers=(
                ("Some-Other-Header", "val"),
                ("X-Header-Set", "set-overwrites-values"),
            ),
        ),
        Expect(
            GW,
            "/set",
            v(1),
            backend_response_headers=(
                ("Some-Other-Header", "val"),
                ("X-Header-Set", "some-other-value"),
            ),
            response_headers=(
                ("Some-Other-Header", "val"),
                ("X-Header-Set", "set-overwrites-values"),
            ),
        ),
        Expect(
            GW,
            "/add",
            v(1),
            backend_response_headers=(("Some-Other-Header", "val"),),
            response_headers=(("Some-Other-Header", "val"), ("X-Header-Add", "add-appends-values")),
        ),
        Expect(
            GW,
            "/add",
            v(1),
            backend_response_headers=(
                ("Some-Other-Header", "val"),
                ("X-Header-Add", "some-other-value"),
            ),
            response_headers=(
                ("Some-Other-Header", "val"),
                ("X-Header-Add", "some-other-value,add-appends-values"),
            ),
        ),
        Expect(
            GW,
            "/remove",
            v(1),
            backend_response_headers=(("X-Header-Remove", "val"),),
            absent_response_headers=("X-Header-Remove",),
        ),
        Expect(
            GW,
            "/multiple",
            v(1),
            backend_response_headers=(
                ("X-Header-Set-2", "set-val-2"),
                ("X-Header-Add-2", "add-val-2"),
                ("X-Header-Remove-2", "remove-val-2"),
                ("Another-Header", "another-header-val"),
                ("X-Header-Remove-1", "val"),
            ),
            response_headers=(
                ("X-Header-Set-1", "header-set-1"),
                ("X-Header-Set-2", "header-set-2"),
                ("X-Header-Add-1", "header-add-1"),
                ("X-Header-Add-2", "add-val-2,header-add-2"),
                ("X-Header-Add-3", "header-add-3"),
                ("Another-Header", "another-header-val"),
            ),
            absent_response_headers=("X-Header-Remove-1", "X-Header-Remove-2"),
        ),
        Expect(
            GW,
            "/case-insensitivity",
            v(1),
            backend_response_headers=(
                ("x-header-set", "original-val-set"),
                ("x-header-add", "original-val-add"),
                ("x-header-remove", "original-val-remove"),
                ("Another-Header", "another-header-val"),
            ),
            response_headers=(
                ("X-Header-Set", "header-set"),
                ("X-Header-Add", "original-val-add,header-add"),
                ("X-Lowercase-Add", "lowercase-add"),
                ("X-Mixedcase-Add-1", "mixedcase-add-1"),
                ("X-Mixedcase-Add-2", "mixedcase-add-2"),
                ("X-Uppercase-Add", "uppercase-add"),
                ("Another-Header", "another-header-val"),
            ),
            absent_response_headers=("x-header-remove", "X-Header-Remove"),
        ),
        Expect(
            GW,
            "/response-and-request-header-modifiers",
            v(1),
            request_headers=(
                ("X-Header-Remove", "remove-val"),
                ("X-Header-Add-Append", "append-val-1"),
                ("X-Header-Echo", "echo"),
            ),
            backend_response_headers=(
                ("X-Header-Set-2", "set-val-2"),
                ("X-Header-Add-2", "add-val-2"),
                ("X-Header-Remove-2", "remove-val-2"),
                ("Another-Header", "another-header-val"),
                ("X-Header-Remove-1", "remove-val-1"),
                ("X-Header-Echo", "echo"),
            ),
            path_seen="/response-and-request-header-modifiers",
            headers=(
                ("X-Header-Add", "header-val-1"),
                ("X-Header-Set", "set-overwrites-values"),
                ("X-Header-Add-Append", "append-val-1,header-val-2"),
                ("X-Header-Echo", "echo"),
            ),
            absent=("X-Header-Remove",),
            response_headers=(
                ("X-Header-Set-1", "header-set-1"),
                ("X-Header-Set-2", "header-set-2"),
                ("X-Header-Add-1", "header-add-1"),
                ("X-Header-Add-2", "add-val-2,header-add-2"),
                ("Another-Header", "another-header-val"),
                ("X-Header-Echo", "echo"),
            ),
            absent_response_headers=("X-Header-Remove-1", "X-Header-Remove-2"),
        ),
    ),
    features=frozenset({"HTTPRouteResponseHeaderModification"}),
    statuses=accepted("response-header-modifier"),
)

_REDIRECT_PORT = GatewayCase(
    "HTTPRouteRedirectPort",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: redirect-port
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /port
    filters:
    - type: RequestRedirect
      requestRedirect:
        port: 8083
  - matches:
    - path:
        type: PathPrefix
        value: /port-and-host
    filters:
    - type: RequestRedirect
      requestRedirect:
        hostname: example.org
        port: 8083
  - matches:
    - path:
        type: PathPrefix
        value: /port-and-status
    filters:
    - type: RequestRedirect
      requestRedirect:
        port: 8083
        statusCode: 301
  - matches:
    - path:
        type: PathPrefix
        value: /port-and-host-and-status
    filters:
    - type: RequestRedirect
      requestRedirect:
        port: 8083
        hostname: example.org
        statusCode: 302
"""
    ),
    (
        Expect(GW, "/port", status=302, location=f"http://{GW}:8083/port"),
        Expect(GW, "/port-and-host", status=302, location="http://example.org:8083/port-and-host"),
        Expect(GW, "/port-and-status", status=301, location=f"http://{GW}:8083/port-and-status"),
        Expect(
            GW,
            "/port-and-host-and-status",
            status=302,
            location="http://example.org:8083/port-and-host-and-status",
        ),
    ),
    features=frozenset({"HTTPRoutePortRedirect"}),
    statuses=accepted("redirect-port"),
)

_REDIRECT_SCHEME = GatewayCase(
    "HTTPRouteRedirectScheme",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: redirect-scheme
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /scheme
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: "https"
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-and-host
    filters:
    - type: RequestRedirect
      requestRedirect:
        hostname: example.org
        scheme: "https"
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-and-status
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: "https"
        statusCode: 301
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-and-host-and-status
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: "https"
        statusCode: 302
        hostname: example.org
"""
    ),
    (
        Expect(GW, "/scheme", status=302, location=f"https://{GW}/scheme"),
        Expect(GW, "/scheme-and-host", status=302, location="https://example.org/scheme-and-host"),
        Expect(GW, "/scheme-and-status", status=301, location=f"https://{GW}/scheme-and-status"),
        Expect(
            GW,
            "/scheme-and-host-and-status",
            status=302,
            location="https://example.org/scheme-and-host-and-status",
        ),
    ),
    features=frozenset({"HTTPRouteSchemeRedirect"}),
    statuses=accepted("redirect-scheme"),
)

_PORT_AND_SCHEME_GATEWAY_8080 = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: same-namespace-with-http-listener-on-8080
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: http
    port: 8080
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
"""
_PORT_AND_SCHEME_ROUTE_80 = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-for-listener-on-port-80
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-nil-and-port-nil
    filters:
    - type: RequestRedirect
      requestRedirect:
        hostname: example.org
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-nil-and-port-80
    filters:
    - type: RequestRedirect
      requestRedirect:
        port: 80
        hostname: example.org
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-nil-and-port-8080
    filters:
    - type: RequestRedirect
      requestRedirect:
        port: 8080
        hostname: example.org
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-https-and-port-nil
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: "https"
        hostname: example.org
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-https-and-port-443
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: "https"
        port: 443
        hostname: example.org
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-https-and-port-8443
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: "https"
        port: 8443
        hostname: example.org
"""
_PORT_AND_SCHEME_ROUTE_8080 = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-for-listener-on-port-8080
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace-with-http-listener-on-8080
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-nil-and-port-nil
    filters:
    - type: RequestRedirect
      requestRedirect:
        hostname: example.org
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-nil-and-port-80
    filters:
    - type: RequestRedirect
      requestRedirect:
        port: 80
        hostname: example.org
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-https-and-port-nil
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: "https"
        hostname: example.org
"""
_PORT_AND_SCHEME_ROUTE_443 = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-for-listener-on-port-443
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace-with-https-listener
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-nil-and-port-nil
    filters:
    - type: RequestRedirect
      requestRedirect:
        hostname: example.org
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-nil-and-port-443
    filters:
    - type: RequestRedirect
      requestRedirect:
        port: 443
        hostname: example.org
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-nil-and-port-8443
    filters:
    - type: RequestRedirect
      requestRedirect:
        port: 8443
        hostname: example.org
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-http-and-port-nil
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: "http"
        hostname: example.org
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-http-and-port-80
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: "http"
        port: 80
        hostname: example.org
  - matches:
    - path:
        type: PathPrefix
        value: /scheme-http-and-port-8080
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: "http"
        port: 8080
        hostname: example.org
"""


def _redirect(path: str, location: str, scheme: str = "http", host: str = GW) -> Expect:
    return Expect(host, path, status=302, scheme=scheme, location=location)


_PORT_AND_SCHEME_FEATURES = frozenset({"HTTPRoutePortRedirect", "GatewayPort8080"})
_PORT_AND_SCHEME_STATUSES = (
    *accepted("http-route-for-listener-on-port-443", gateway="same-namespace-with-https-listener"),
)

# Upstream sends the requests of its listeners on port 80 and 8080 to two Gateway addresses;
# here both are the one HTTP port, and the routes of the two match the same paths. So the test
# is two steps: the route of the listener on 80 with the route of the HTTPS listener, then the
# route of the listener on 8080 (the objects of upstream's manifest without the other HTTP
# route); each step's requests are upstream's for those listeners. The HTTPS requests check the
# Location only (the certificate upstream checks is its one certificate for any name, see
# HTTPRouteHTTPSListener).
_REDIRECT_PORT_AND_SCHEME = (
    GatewayCase(
        "HTTPRouteRedirectPortAndScheme/listeners-on-80-and-443",
        manifests(
            _PORT_AND_SCHEME_GATEWAY_8080
            + "---"
            + _PORT_AND_SCHEME_ROUTE_80
            + "---"
            + _PORT_AND_SCHEME_ROUTE_443
        ),
        (
            # http-listener-on-80
            _redirect("/scheme-nil-and-port-nil", "http://example.org/scheme-nil-and-port-nil"),
            _redirect("/scheme-nil-and-port-80", "http://example.org/scheme-nil-and-port-80"),
            _redirect(
                "/scheme-nil-and-port-8080", "http://example.org:8080/scheme-nil-and-port-8080"
            ),
            _redirect(
                "/scheme-https-and-port-nil", "https://example.org/scheme-https-and-port-nil"
            ),
            _redirect(
                "/scheme-https-and-port-443", "https://example.org/scheme-https-and-port-443"
            ),
            _redirect(
                "/scheme-https-and-port-8443",
                "https://example.org:8443/scheme-https-and-port-8443",
            ),
            # https-listener-on-443
            _redirect(
                "/scheme-nil-and-port-nil",
                "https://example.org/scheme-nil-and-port-nil",
                "https",
                "example.org",
            ),
            _redirect(
                "/scheme-nil-and-port-443",
                "https://example.org/scheme-nil-and-port-443",
                "https",
                "example.org",
            ),
            _redirect(
                "/scheme-nil-and-port-8443",
                "https://example.org:8443/scheme-nil-and-port-8443",
                "https",
                "example.org",
            ),
            _redirect(
                "/scheme-http-and-port-nil",
                "http://example.org/scheme-http-and-port-nil",
                "https",
                "example.org",
            ),
            _redirect(
                "/scheme-http-and-port-80",
                "http://example.org/scheme-http-and-port-80",
                "https",
                "example.org",
            ),
            _redirect(
                "/scheme-http-and-port-8080",
                "http://example.org:8080/scheme-http-and-port-8080",
                "https",
                "example.org",
            ),
        ),
        features=_PORT_AND_SCHEME_FEATURES,
        statuses=(*accepted("http-route-for-listener-on-port-80"), *_PORT_AND_SCHEME_STATUSES),
    ),
    GatewayCase(
        "HTTPRouteRedirectPortAndScheme/listener-on-8080",
        manifests(
            _PORT_AND_SCHEME_GATEWAY_8080
            + "---"
            + _PORT_AND_SCHEME_ROUTE_8080
            + "---"
            + _PORT_AND_SCHEME_ROUTE_443
        ),
        (
            _redirect(
                "/scheme-nil-and-port-nil", "http://example.org:8080/scheme-nil-and-port-nil"
            ),
            _redirect("/scheme-nil-and-port-80", "http://example.org/scheme-nil-and-port-80"),
            _redirect(
                "/scheme-https-and-port-nil", "https://example.org/scheme-https-and-port-nil"
            ),
        ),
        features=_PORT_AND_SCHEME_FEATURES,
        statuses=(
            *accepted(
                "http-route-for-listener-on-port-8080",
                gateway="same-namespace-with-http-listener-on-8080",
                listeners=("http",),
            ),
            *_PORT_AND_SCHEME_STATUSES,
        ),
    ),
)

_REDIRECT_PATH = GatewayCase(
    "HTTPRouteRedirectPath",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: redirect-path
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /original-prefix
    filters:
    - type: RequestRedirect
      requestRedirect:
        path:
          type: ReplacePrefixMatch
          replacePrefixMatch: /replacement-prefix
  - matches:
    - path:
        type: PathPrefix
        value: /full
    filters:
    - type: RequestRedirect
      requestRedirect:
        path:
          type: ReplaceFullPath
          replaceFullPath: /full-path-replacement
  - matches:
    - path:
        type: PathPrefix
        value: /path-and-host
    filters:
    - type: RequestRedirect
      requestRedirect:
        hostname: example.org
        path:
          type: ReplacePrefixMatch
          replacePrefixMatch: /replacement-prefix
  - matches:
    - path:
        type: PathPrefix
        value: /path-and-status
    filters:
    - type: RequestRedirect
      requestRedirect:
        path:
          type: ReplacePrefixMatch
          replacePrefixMatch: /replacement-prefix
        statusCode: 301
  - matches:
    - path:
        type: PathPrefix
        value: /full-path-and-host
    filters:
    - type: RequestRedirect
      requestRedirect:
        hostname: example.org
        path:
          type: ReplaceFullPath
          replaceFullPath: /replacement-full
  - matches:
    - path:
        type: PathPrefix
        value: /full-path-and-status
    filters:
    - type: RequestRedirect
      requestRedirect:
        path:
          type: ReplaceFullPath
          replaceFullPath: /replacement-full
        statusCode: 301
"""
    ),
    (
        _redirect("/original-prefix/lemon", f"http://{GW}/replacement-prefix/lemon"),
        _redirect("/full/path/original", f"http://{GW}/full-path-replacement"),
        _redirect("/path-and-host", "http://example.org/replacement-prefix"),
        Expect(GW, "/path-and-status", status=301, location=f"http://{GW}/replacement-prefix"),
        _redirect("/full-path-and-host", "http://example.org/replacement-full"),
        Expect(GW, "/full-path-and-status", status=301, location=f"http://{GW}/replacement-full"),
    ),
    features=frozenset({"HTTPRoutePathRedirect"}),
    statuses=accepted("redirect-path"),
)


def _redirect_code(code: int, name: str, path: str, method: str) -> GatewayCase:
    """HTTPRoute303Redirect, 307, 308: one rule redirecting with that status (provisional)."""
    return GatewayCase(
        f"HTTPRoute{code}Redirect",
        manifests(
            f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {name}
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: {path}
    filters:
    - type: RequestRedirect
      requestRedirect:
        statusCode: {code}
"""
        ),
        (Expect(GW, path, status=code, method=method, location=f"http://{GW}{path}"),),
        features=frozenset({f"HTTPRoute{code}RedirectStatusCode"}),
        statuses=accepted(name),
        provisional=True,
    )


_REWRITE_HOST = GatewayCase(
    "HTTPRouteRewriteHost",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: rewrite-host
  namespace: gateway-conformance-infra
spec:
  hostnames:
    - "rewrite.example"
  parentRefs:
    - name: same-namespace
  rules:
    - matches:
        - path:
            type: PathPrefix
            value: /one
      filters:
        - type: URLRewrite
          urlRewrite:
            hostname: one.example.org
      backendRefs:
        - name: infra-backend-v1
          port: 8080
    - filters:
        - type: URLRewrite
          urlRewrite:
            hostname: example.org
      backendRefs:
        - name: infra-backend-v2
          port: 8080
    - matches:
        - path:
            type: PathPrefix
            value: /rewrite-host-and-modify-headers
      filters:
        - type: URLRewrite
          urlRewrite:
            hostname: test.example.org
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set:
              - name: X-Header-Set
                value: set-overwrites-values
            add:
              - name: X-Header-Add
                value: header-val-1
              - name: X-Header-Add-Append
                value: header-val-2
            remove:
              - X-Header-Remove
      backendRefs:
        - name: infra-backend-v2
          port: 8080
"""
    ),
    (
        Expect("rewrite.example", "/one", v(1), path_seen="/one", host_seen="one.example.org"),
        Expect("rewrite.example", "/two", v(2), path_seen="/two", host_seen="example.org"),
        Expect(
            "rewrite.example",
            "/rewrite-host-and-modify-headers",
            v(2),
            request_headers=(
                ("X-Header-Remove", "remove-val"),
                ("X-Header-Add-Append", "append-val-1"),
            ),
            path_seen="/rewrite-host-and-modify-headers",
            host_seen="test.example.org",
            headers=(
                ("X-Header-Add", "header-val-1"),
                ("X-Header-Add-Append", "append-val-1,header-val-2"),
                ("X-Header-Set", "set-overwrites-values"),
            ),
            absent=("X-Header-Remove",),
        ),
    ),
    features=frozenset({"HTTPRouteHostRewrite"}),
    statuses=accepted("rewrite-host"),
)

_MODIFIED_HEADERS = (
    ("X-Header-Add", "header-val-1"),
    ("X-Header-Add-Append", "append-val-1,header-val-2"),
    ("X-Header-Set", "set-overwrites-values"),
)

_REWRITE_PATH = GatewayCase(
    "HTTPRouteRewritePath",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: rewrite-path
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /prefix/one
    filters:
    - type: URLRewrite
      urlRewrite:
        path:
          type: ReplacePrefixMatch
          replacePrefixMatch: /one
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /strip-prefix
    filters:
    - type: URLRewrite
      urlRewrite:
        path:
          type: ReplacePrefixMatch
          replacePrefixMatch: /
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /full/one
    filters:
    - type: URLRewrite
      urlRewrite:
        path:
          type: ReplaceFullPath
          replaceFullPath: /one
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /full/rewrite-path-and-modify-headers
    filters:
    - type: URLRewrite
      urlRewrite:
        path:
          type: ReplaceFullPath
          replaceFullPath: /test
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - name: X-Header-Set
          value: set-overwrites-values
        add:
        - name: X-Header-Add
          value: header-val-1
        - name: X-Header-Add-Append
          value: header-val-2
        remove:
        - X-Header-Remove
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /prefix/rewrite-path-and-modify-headers
    filters:
    - type: URLRewrite
      urlRewrite:
        path:
          type: ReplacePrefixMatch
          replacePrefixMatch: /prefix
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - name: X-Header-Set
          value: set-overwrites-values
        add:
        - name: X-Header-Add
          value: header-val-1
        - name: X-Header-Add-Append
          value: header-val-2
        remove:
        - X-Header-Remove
    backendRefs:
    - name: infra-backend-v1
      port: 8080
"""
    ),
    (
        Expect(GW, "/prefix/one/two", v(1), path_seen="/one/two"),
        Expect(GW, "/strip-prefix/three", v(1), path_seen="/three"),
        Expect(GW, "/strip-prefix", v(1), path_seen="/"),
        Expect(GW, "/full/one/two", v(1), path_seen="/one"),
        Expect(
            GW,
            "/full/rewrite-path-and-modify-headers/test",
            v(1),
            request_headers=(
                ("X-Header-Remove", "remove-val"),
                ("X-Header-Add-Append", "append-val-1"),
                ("X-Header-Set", "set-val"),
            ),
            path_seen="/test",
            headers=_MODIFIED_HEADERS,
            absent=("X-Header-Remove",),
        ),
        Expect(
            GW,
            "/prefix/rewrite-path-and-modify-headers/one",
            v(1),
            request_headers=(
                ("X-Header-Remove", "remove-val"),
                ("X-Header-Add-Append", "append-val-1"),
                ("X-Header-Set", "set-val"),
            ),
            path_seen="/prefix/one",
            headers=_MODIFIED_HEADERS,
            absent=("X-Header-Remove",),
        ),
    ),
    features=frozenset({"HTTPRoutePathRewrite"}),
    statuses=accepted("rewrite-path"),
)

# Upstream finds the mirrored request in the mirror backend's log by a unique query parameter
# it adds to the request; the live check does the same with the hello server's request log.
_REQUEST_MIRROR = GatewayCase(
    "HTTPRouteRequestMirror",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: request-mirror
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /mirror
    filters:
    - type: RequestMirror
      requestMirror:
        backendRef:
          name: infra-backend-v2
          namespace: gateway-conformance-infra
          port: 8080
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      namespace: gateway-conformance-infra
  - matches:
    - path:
        type: PathPrefix
        value: /mirror-and-modify-headers
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - name: X-Header-Set
          value: set-overwrites-values
        add:
        - name: X-Header-Add
          value: header-val-1
        - name: X-Header-Add-Append
          value: header-val-2
        remove:
        - X-Header-Remove
    - type: RequestMirror
      requestMirror:
        backendRef:
          name: infra-backend-v2
          namespace: gateway-conformance-infra
          port: 8080
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      namespace: gateway-conformance-infra
"""
    ),
    (
        Expect(GW, "/mirror", v(1), path_seen="/mirror", mirrored_to=(v(2),)),
        Expect(
            GW,
            "/mirror-and-modify-headers",
            v(1),
            request_headers=(
                ("X-Header-Remove", "remove-val"),
                ("X-Header-Add-Append", "append-val-1"),
            ),
            path_seen="/mirror-and-modify-headers",
            headers=_MODIFIED_HEADERS,
            absent=("X-Header-Remove",),
            mirrored_to=(v(2),),
        ),
    ),
    features=frozenset({"HTTPRouteRequestMirror"}),
    # Upstream waits for the route to be Accepted only (no ResolvedRefs check).
    statuses=accepted("request-mirror", resolved=False),
)

_REQUEST_MULTIPLE_MIRRORS = GatewayCase(
    "HTTPRouteRequestMultipleMirrors",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: request-multiple-mirrors
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /multi-mirror
    filters:
    - type: RequestMirror
      requestMirror:
        backendRef:
          name: infra-backend-v2
          namespace: gateway-conformance-infra
          port: 8080
    - type: RequestMirror
      requestMirror:
        backendRef:
          name: infra-backend-v3
          namespace: gateway-conformance-infra
          port: 8080
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      namespace: gateway-conformance-infra
  - matches:
    - path:
        type: PathPrefix
        value: /multi-mirror-and-modify-request-headers
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - name: X-Header-Set
          value: set-overwrites-values
        add:
        - name: X-Header-Add
          value: header-val-1
        - name: X-Header-Add-Append
          value: header-val-2
        remove:
        - X-Header-Remove
    - type: RequestMirror
      requestMirror:
        backendRef:
          name: infra-backend-v2
          namespace: gateway-conformance-infra
          port: 8080
    - type: RequestMirror
      requestMirror:
        backendRef:
          name: infra-backend-v3
          namespace: gateway-conformance-infra
          port: 8080
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      namespace: gateway-conformance-infra
"""
    ),
    (
        Expect(GW, "/multi-mirror", v(1), path_seen="/multi-mirror", mirrored_to=(v(2), v(3))),
        Expect(
            GW,
            "/multi-mirror-and-modify-request-headers",
            v(1),
            request_headers=(
                ("X-Header-Remove", "remove-val"),
                ("X-Header-Add-Append", "append-val-1"),
            ),
            path_seen="/multi-mirror-and-modify-request-headers",
            headers=_MODIFIED_HEADERS,
            absent=("X-Header-Remove",),
            mirrored_to=(v(2), v(3)),
        ),
    ),
    features=frozenset({"HTTPRouteRequestMirror", "HTTPRouteRequestMultipleMirrors"}),
    statuses=accepted("request-multiple-mirrors", resolved=False),
)


def _timeout_case(name: str, route: str, field_name: str, prefix: str, feature: str) -> GatewayCase:
    """HTTPRouteTimeoutRequest / HTTPRouteTimeoutBackendRequest: a 500 ms timeout, and 0s (none);
    the hello backend waits ``?delay=1s``. Upstream names no backend for the answers of 200;
    the route has one, infra-backend-v1."""
    return GatewayCase(
        name,
        manifests(
            f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {route}
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /{prefix}
    backendRefs:
    - name: infra-backend-v1
      port: 8080
    timeouts:
      {field_name}: 500ms
  - matches:
    - path:
        type: PathPrefix
        value: /disable-{prefix}
    backendRefs:
    - name: infra-backend-v1
      port: 8080
    timeouts:
      {field_name}: "0s"
"""
        ),
        (
            Expect(GW, f"/{prefix}", v(1)),
            Expect(GW, f"/{prefix}?delay=1s", status=504),
            Expect(GW, f"/disable-{prefix}?delay=1s", v(1)),
        ),
        features=frozenset({feature}),
        statuses=accepted(route),
    )


_NAMED_RULE = GatewayCase(
    "HTTPRouteNamedRule",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-named-rules
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - name: named-rule
    matches:
    - path:
        type: PathPrefix
        value: /named
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /unnamed
    backendRefs:
    - name: infra-backend-v2
      port: 8080
"""
    ),
    # Upstream names no backend for these answers of 200; each rule has one.
    (Expect(GW, "/named", v(1)), Expect(GW, "/unnamed", v(2))),
    features=frozenset({"HTTPRouteNamedRouteRule"}),
    statuses=accepted("http-named-rules"),
    provisional=True,
)


_BACKEND_PROTOCOL_H2C = GatewayCase(
    "HTTPRouteBackendProtocolH2C",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backend-protocol-h2c
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    # This points to a Service with the following ServicePort
    # - protocol: TCP
    #   appProtocol: kubernetes.io/h2c
    #   port: 8081
    #   targetPort: 3001
    - name: infra-backend-v1
      port: 8081
"""
    ),
    # The h2c backend speaks HTTP/2 only: a proxy talking HTTP/1.1 to it gets no answer (502).
    (Expect(GW, "/", v(1), protocol="h2c"),),
    features=frozenset({"HTTPRouteBackendProtocolH2C"}),
    statuses=accepted("backend-protocol-h2c"),
)

_BACKEND_PROTOCOL_WEBSOCKET = GatewayCase(
    "HTTPRouteBackendProtocolWebSocket",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backend-protocol-ws
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    # This points to a Service with the following ServicePort
    # - name: third-port
    #   appProtocol: kubernetes.io/ws
    #   protocol: TCP
    #   port: 8082
    #   targetPort: 3000
    - name: infra-backend-v1
      port: 8082
"""
    ),
    # Upstream checks the echo only; here the connection must also reach infra-backend-v1's
    # WebSocket server (its count of connections grows).
    (Expect(GW, "/ws", v(1), protocol="websocket"),),
    features=frozenset({"HTTPRouteBackendProtocolWebSocket"}),
    statuses=accepted("backend-protocol-ws"),
)


_BACKEND_REQUEST_HEADER_MODIFIER = GatewayCase(
    "HTTPRouteBackendRequestHeaderModifier",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: request-header-modifier
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /set
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set:
          - name: X-Header-Set
            value: set-overwrites-values
  - matches:
    - path:
        type: PathPrefix
        value: /add
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          add:
          - name: X-Header-Add
            value: add-appends-values
  - matches:
    - path:
        type: PathPrefix
        value: /remove
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          remove:
          - X-Header-Remove
  - matches:
    - path:
        type: PathPrefix
        value: /multiple
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set:
          - name: X-Header-Set-1
            value: header-set-1
          - name: X-Header-Set-2
            value: header-set-2
          add:
          - name: X-Header-Add-1
            value: header-add-1
          - name: X-Header-Add-2
            value: header-add-2
          - name: X-Header-Add-3
            value: header-add-3
          remove:
          - X-Header-Remove-1
          - X-Header-Remove-2
  - matches:
    - path:
        type: PathPrefix
        value: /case-insensitivity
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set:
          - name: X-Header-Set
            value: header-set
          add:
          - name: X-Header-Add
            value: header-add
          remove:
          - X-Header-Remove
"""
    ),
    # Upstream runs HTTPRouteRequestHeaderModifier's table on these manifests.
    _REQUEST_HEADER_MODIFIER.expects,
    features=frozenset({"HTTPRouteBackendRequestHeaderModification"}),
    statuses=accepted("request-header-modifier"),
)

_REQUEST_HEADER_MODIFIER_BACKEND_WEIGHTS = GatewayCase(
    "HTTPRouteRequestHeaderModifierBackendWeights",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: request-header-modifier-backend-weights
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
      weight: 10
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set:
          - name: Backend
            value: infra-backend-v1
    - name: infra-backend-v2
      port: 8080
      weight: 10
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set:
          - name: Backend
            value: infra-backend-v2
"""
    ),
    (Expect(GW, "/", backend_header="Backend"),),
    features=frozenset({"HTTPRouteBackendRequestHeaderModification"}),
    statuses=accepted("request-header-modifier-backend-weights"),
)

# Not upstream's: its case splits 1:1, so a proxy that picked the member before its load
# balancing (or balanced members, not their shares) would pass it. Here the shares are 3:1:0
# (within 5 % over 500 requests, as HTTPRouteWeight) and each request must still carry the
# header of the backend that got it.
_REQUEST_HEADER_MODIFIER_BACKEND_UNEVEN_WEIGHTS = GatewayCase(
    "HTTPRouteRequestHeaderModifierBackendWeights/uneven-weights",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: request-header-modifier-backend-weights
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
      weight: 30
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set:
          - name: Backend
            value: infra-backend-v1
    - name: infra-backend-v2
      port: 8080
      weight: 10
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set:
          - name: Backend
            value: infra-backend-v2
    - name: infra-backend-v3
      port: 8080
      weight: 0
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier:
          set:
          - name: Backend
            value: infra-backend-v1
"""
    ),
    (Expect(GW, "/", backend_header="Backend"),),
    features=frozenset({"HTTPRouteBackendRequestHeaderModification"}),
    statuses=accepted("request-header-modifier-backend-weights"),
    weights=((v(1), 0.75), (v(2), 0.25), (v(3), 0.0)),
)


# Upstream's manifests; its requests: each path, then 500 requests whose copies are counted in
# the mirror's log (here: the hello server's requests). Upstream's third request names
# /percent-mirror-and-modify-headers, a path its manifest does not have (it falls to
# /percent-mirror); the path of the manifest is used here.
_REQUEST_PERCENTAGE_MIRROR = GatewayCase(
    "HTTPRouteRequestPercentageMirror",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: request-percentage-mirror
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /percent-mirror
    filters:
    - type: RequestMirror
      requestMirror:
        backendRef:
          name: infra-backend-v2
          namespace: gateway-conformance-infra
          port: 8080
        percent: 20
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      namespace: gateway-conformance-infra
  - matches:
    - path:
        type: PathPrefix
        value: /percent-mirror-fraction
    filters:
    - type: RequestMirror
      requestMirror:
        backendRef:
          name: infra-backend-v2
          namespace: gateway-conformance-infra
          port: 8080
        fraction:
          numerator: 25
          denominator: 50
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      namespace: gateway-conformance-infra
  - matches:
    - path:
        type: PathPrefix
        value: /percent-multi-mirror-and-modify-headers
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - name: X-Header-Set
          value: set-overwrites-values
        add:
        - name: X-Header-Add
          value: header-val-1
        - name: X-Header-Add-Append
          value: header-val-2
        remove:
        - X-Header-Remove
    - type: RequestMirror
      requestMirror:
        backendRef:
          name: infra-backend-v2
          namespace: gateway-conformance-infra
          port: 8080
        percent: 35
    - type: RequestMirror
      requestMirror:
        backendRef:
          name: infra-backend-v3
          namespace: gateway-conformance-infra
          port: 8080
        percent: 50
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      namespace: gateway-conformance-infra
"""
    ),
    (
        Expect(GW, "/percent-mirror", v(1), mirror_shares=((v(2), 0.2),)),
        Expect(GW, "/percent-mirror-fraction", v(1), mirror_shares=((v(2), 0.5),)),
        Expect(
            GW,
            "/percent-multi-mirror-and-modify-headers",
            v(1),
            request_headers=(
                ("X-Header-Remove", "remove-val"),
                ("X-Header-Add-Append", "append-val-1"),
            ),
            headers=(
                ("X-Header-Add", "header-val-1"),
                ("X-Header-Add-Append", "append-val-1,header-val-2"),
                ("X-Header-Set", "set-overwrites-values"),
            ),
            absent=("X-Header-Remove",),
            mirror_shares=((v(2), 0.35), (v(3), 0.5)),
        ),
    ),
    # Upstream's features (its third rule has two mirrors: HTTPRouteRequestMultipleMirrors,
    # which every backend declaring this one declares too).
    features=frozenset({"HTTPRouteRequestPercentageMirror"}),
    statuses=accepted("request-percentage-mirror"),
    provisional=True,
)


def _cors_allowed(origin: str) -> tuple[tuple[str, str], ...]:
    """The preflight answer of cors-multiple-origins-methods-headers for an allowed Origin."""
    return (
        ("access-control-allow-origin", origin),
        ("access-control-allow-methods", "GET, OPTIONS"),
        ("access-control-allow-headers", "x-header-1, x-header-2"),
        ("access-control-expose-headers", "x-header-3, x-header-4"),
        ("access-control-max-age", "3600"),
        ("access-control-allow-credentials", "true"),
    )


def _cors_request(origin: str, *more: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return (("Origin", origin), *more)


_ACRM_GET = ("access-control-request-method", "GET")
_ACRH = ("access-control-request-headers", "x-header-1, x-header-2")

# Upstream allows several answers where the specification does (200 or 204 to a preflight,
# "*" or the echoed Origin, method and headers with allowCredentials false, 403 to a preflight
# from an Origin not allowed); here every backend gives the one the core states (Cors): 204,
# the Origin, method and headers echoed, the lists joined by ", " (upstream ignores the
# whitespace).
_CORS = GatewayCase(
    "HTTPRouteCORS",
    manifests(
        """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: cors-multiple-origins-methods-headers
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - filters:
    - type: CORS
      cors:
        allowOrigins:
        - "https://www.foo.com"
        - "https://*.bar.com"
        allowMethods:
        - GET
        - OPTIONS
        allowHeaders:
        - "x-header-1"
        - "x-header-2"
        exposeHeaders:
        - "x-header-3"
        - "x-header-4"
        allowCredentials: true
        maxAge: 3600
    matches:
    - path:
        type: PathPrefix
        value: /cors-1
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: cors-wildcard-methods
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - filters:
    - type: CORS
      cors:
        allowOrigins:
        - "https://www.foo.com"
        allowMethods: ["*"]
    matches:
    - path:
        type: PathPrefix
        value: /cors-2
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: cors-wildcard-origin
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - filters:
    - type: CORS
      cors:
        allowOrigins:
        - "*"
        allowMethods: ["PUT"]
        allowCredentials: false
    matches:
    - path:
        type: PathPrefix
        value: /cors-wildcard-origin
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: cors-wildcard-methods-headers
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - filters:
    - type: CORS
      cors:
        allowOrigins:
        - "*"
        allowMethods: ["*"]
        allowHeaders: ["*"]
        allowCredentials: true
    matches:
    - path:
        type: PathPrefix
        value: /cors-wildcard-methods-headers
    backendRefs:
    - name: infra-backend-v1
      port: 8080
  - filters:
    - type: CORS
      cors:
        allowOrigins:
        - "*"
        allowMethods: ["*"]
        allowHeaders: ["*"]
        allowCredentials: false
    matches:
    - path:
        type: PathPrefix
        value: /cors-wildcard-methods-headers-unauth
    backendRefs:
    - name: infra-backend-v1
      port: 8080
"""
    ),
    (
        # preflights from an exact, a wildcard and a deeper wildcard origin
        *(
            Expect(
                GW,
                "/cors-1",
                status=204,
                method="OPTIONS",
                request_headers=_cors_request(origin, _ACRM_GET, _ACRH),
                response_headers=_cors_allowed(origin),
            )
            for origin in ("https://www.foo.com", "https://www.bar.com", "https://xpto.www.bar.com")
        ),
        # a preflight from an origin not allowed: 204 without CORS headers
        Expect(
            GW,
            "/cors-1",
            status=204,
            method="OPTIONS",
            request_headers=_cors_request("https://foobar.com", _ACRM_GET),
            absent_response_headers=("access-control-allow-origin",),
        ),
        # simple requests: proxied, the allowed Origin echoed
        *(
            Expect(
                GW,
                "/cors-1",
                v(1),
                request_headers=_cors_request(origin, _ACRM_GET, _ACRH),
                response_headers=(("access-control-allow-origin", origin),),
            )
            for origin in ("https://www.foo.com", "https://www.bar.com")
        ),
        Expect(
            GW,
            "/cors-1",
            v(1),
            request_headers=_cors_request("https://foobar.com", _ACRM_GET),
            absent_response_headers=("access-control-allow-origin",),
        ),
        # allowMethods "*": the requested method echoed; no credentials
        Expect(
            GW,
            "/cors-2",
            status=204,
            method="OPTIONS",
            request_headers=_cors_request(
                "https://www.foo.com", ("access-control-request-method", "POST")
            ),
            response_headers=(
                ("access-control-allow-methods", "POST"),
                ("access-control-allow-origin", "https://www.foo.com"),
            ),
            absent_response_headers=("access-control-allow-credentials",),
        ),
        # allowOrigins "*": the Origin echoed (with a port too)
        *(
            Expect(
                GW,
                "/cors-wildcard-origin",
                status=204,
                method="OPTIONS",
                request_headers=_cors_request(origin, ("access-control-request-method", "PUT")),
                response_headers=(
                    ("access-control-allow-origin", origin),
                    ("access-control-allow-methods", "PUT"),
                ),
                absent_response_headers=("access-control-allow-credentials",),
            )
            for origin in ("https://foobar.com", "https://foobar.com:12345")
        ),
        *(
            Expect(
                GW,
                "/cors-wildcard-origin",
                v(1),
                method="PUT",
                request_headers=_cors_request(origin),
                response_headers=(("access-control-allow-origin", origin),),
                absent_response_headers=("access-control-allow-credentials",),
            )
            for origin in ("https://foobar.com:12345", "https://foobar.com")
        ),
        # wildcard methods and headers: echoed, with and without credentials
        Expect(
            GW,
            "/cors-wildcard-methods-headers",
            status=204,
            method="OPTIONS",
            request_headers=_cors_request(
                "https://other.foo.com", ("access-control-request-method", "PUT"), _ACRH
            ),
            response_headers=(
                ("access-control-allow-origin", "https://other.foo.com"),
                ("access-control-allow-methods", "PUT"),
                ("access-control-allow-headers", "x-header-1, x-header-2"),
                ("access-control-allow-credentials", "true"),
            ),
        ),
        Expect(
            GW,
            "/cors-wildcard-methods-headers-unauth",
            status=204,
            method="OPTIONS",
            request_headers=_cors_request(
                "https://other.foo.com", ("access-control-request-method", "PUT"), _ACRH
            ),
            response_headers=(
                ("access-control-allow-origin", "https://other.foo.com"),
                ("access-control-allow-methods", "PUT"),
                ("access-control-allow-headers", "x-header-1, x-header-2"),
            ),
            absent_response_headers=("access-control-allow-credentials",),
        ),
        Expect(
            GW,
            "/cors-wildcard-methods-headers",
            v(1),
            request_headers=_cors_request("https://other.foo.com"),
            response_headers=(
                ("access-control-allow-origin", "https://other.foo.com"),
                ("access-control-allow-credentials", "true"),
            ),
        ),
        Expect(
            GW,
            "/cors-wildcard-methods-headers-unauth",
            v(1),
            request_headers=_cors_request("https://other.foo.com"),
            response_headers=(("access-control-allow-origin", "https://other.foo.com"),),
            absent_response_headers=("access-control-allow-credentials",),
        ),
    ),
    features=frozenset({"HTTPRouteCORS"}),
    statuses=(
        *accepted("cors-multiple-origins-methods-headers", "cors-wildcard-methods"),
        *accepted("cors-wildcard-origin", "cors-wildcard-methods-headers"),
    ),
)


def _isolation_expects() -> tuple[Expect, ...]:
    """Upstream's table: each host reaches only the routes of its most specific listener."""
    served = {
        "bar.com": "/empty-hostname",
        "bar.example.com": "/wildcard-example-com",
        "bar.foo.example.com": "/wildcard-foo-example-com",
        "abc.foo.example.com": "/abc-foo-example-com",
    }
    paths = (
        "/empty-hostname",
        "/wildcard-example-com",
        "/wildcard-foo-example-com",
        "/abc-foo-example-com",
    )
    return tuple(
        Expect(host, path, v(1)) if served[host] == path else Expect(host, path, status=404)
        for host in served
        for path in paths
    )


# Upstream sends the requests of its two Gateways to their own addresses; here they share the
# HTTP port, so the test is two steps, one Gateway (one of upstream's two manifests) each, with
# upstream's one table of requests.
_ISOLATION_ROUTES = (
    "attaches-to-empty-hostname",
    "attaches-to-wildcard-example-com",
    "attaches-to-wildcard-foo-example-com",
    "attaches-to-abc-foo-example-com",
)
_ISOLATION_LISTENERS = (
    "empty-hostname",
    "wildcard-example-com",
    "wildcard-foo-example-com",
    "abc-foo-example-com",
)
_HTTP_LISTENER_ISOLATION = (
    GatewayCase(
        "GatewayHTTPListenerIsolation",
        manifests(
            """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: http-listener-isolation
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: empty-hostname
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: All
  - name: wildcard-example-com
    port: 80
    protocol: HTTP
    hostname: "*.example.com"
    allowedRoutes:
      namespaces:
        from: All
  - name: wildcard-foo-example-com
    port: 80
    protocol: HTTP
    hostname: "*.foo.example.com"
    allowedRoutes:
      namespaces:
        from: All
  - name: abc-foo-example-com
    port: 80
    protocol: HTTP
    hostname: "abc.foo.example.com"
    allowedRoutes:
      namespaces:
        from: All
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: attaches-to-empty-hostname
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: http-listener-isolation
    namespace: gateway-conformance-infra
    sectionName: empty-hostname
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /empty-hostname
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: attaches-to-wildcard-example-com
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: http-listener-isolation
    namespace: gateway-conformance-infra
    sectionName: wildcard-example-com
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /wildcard-example-com
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: attaches-to-wildcard-foo-example-com
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: http-listener-isolation
    namespace: gateway-conformance-infra
    sectionName: wildcard-foo-example-com
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /wildcard-foo-example-com
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: attaches-to-abc-foo-example-com
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: http-listener-isolation
    namespace: gateway-conformance-infra
    sectionName: abc-foo-example-com
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /abc-foo-example-com
    backendRefs:
    - name: infra-backend-v1
      port: 8080
"""
        ),
        _isolation_expects(),
        features=frozenset({"GatewayHTTPListenerIsolation"}),
        statuses=accepted(
            *_ISOLATION_ROUTES, gateway="http-listener-isolation", listeners=_ISOLATION_LISTENERS
        ),
    ),
    GatewayCase(
        "GatewayHTTPListenerIsolation/with-hostname-intersection",
        manifests(
            """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: http-listener-isolation-with-hostname-intersection
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: empty-hostname
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: All
  - name: wildcard-example-com
    port: 80
    protocol: HTTP
    hostname: "*.example.com"
    allowedRoutes:
      namespaces:
        from: All
  - name: wildcard-foo-example-com
    port: 80
    protocol: HTTP
    hostname: "*.foo.example.com"
    allowedRoutes:
      namespaces:
        from: All
  - name: abc-foo-example-com
    port: 80
    protocol: HTTP
    hostname: "abc.foo.example.com"
    allowedRoutes:
      namespaces:
        from: All
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: attaches-to-empty-hostname-with-hostname-intersection
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: http-listener-isolation-with-hostname-intersection
    namespace: gateway-conformance-infra
    sectionName: empty-hostname
  hostnames:
  - "bar.com"
  - "*.example.com" # request matching is prevented by the isolation wildcard-example-com listener
  # request matching is prevented by the isolation wildcard-foo-example-com listener
  - "*.foo.example.com"
  # request matching is prevented by the isolation of abc-foo-example-com listener
  - "abc.foo.example.com"
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /empty-hostname
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: attaches-to-wildcard-example-com-with-hostname-intersection
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: http-listener-isolation-with-hostname-intersection
    namespace: gateway-conformance-infra
    sectionName: wildcard-example-com
  hostnames:
  - "bar.com" # doesn't match wildcard-example-com listener
  - "*.example.com"
  # request matching is prevented by the isolation of wildcard-foo-example-com listener
  - "*.foo.example.com"
  # request matching is prevented by the isolation of abc-foo-example-com listener
  - "abc.foo.example.com"
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /wildcard-example-com
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: attaches-to-wildcard-foo-example-com-with-hostname-intersection
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: http-listener-isolation-with-hostname-intersection
    namespace: gateway-conformance-infra
    sectionName: wildcard-foo-example-com
  hostnames:
  - "bar.com" # doesn't match wildcard-foo-example-com listener
  # this becomes *.foo.example.com, as the hostname cannot be less specific than *.foo.example.com
  # of the listener
  - "*.example.com"
  - "*.foo.example.com"
  # request matching is prevented by the isolation abc-foo-example-com listener
  - "abc.foo.example.com"
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /wildcard-foo-example-com
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: attaches-to-abc-foo-example-com-with-hostname-intersection
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: http-listener-isolation-with-hostname-intersection
    namespace: gateway-conformance-infra
    sectionName: abc-foo-example-com
  hostnames:
  - "bar.com" # doesn't match abc-foo-example-com listener
  # becomes abc.foo.example.com as it cannot be less specific than abc.foo.example.com of the
  # listener
  - "*.example.com"
  # becomes abc.foo.example.com as it cannot be less specific than abc.foo.example.com of the
  # listener
  - "*.foo.example.com"
  - "abc.foo.example.com"
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /abc-foo-example-com
    backendRefs:
    - name: infra-backend-v1
      port: 8080
"""
        ),
        _isolation_expects(),
        features=frozenset({"GatewayHTTPListenerIsolation"}),
        statuses=accepted(
            *(f"{r}-with-hostname-intersection" for r in _ISOLATION_ROUTES),
            gateway="http-listener-isolation-with-hostname-intersection",
            listeners=_ISOLATION_LISTENERS,
        ),
    ),
)

CASES: list[GatewayCase] = [
    # core
    _EXACT_PATH_MATCHING,
    _MATCHING,
    _PATH_MATCH_ORDER,
    _MATCHING_ACROSS_ROUTES,
    _HEADER_MATCHING,
    _HOSTNAME_INTERSECTION,
    _LISTENER_HOSTNAME_MATCHING,
    _CROSS_NAMESPACE,
    *_REFERENCE_GRANT,
    _PARTIALLY_INVALID_VIA_INVALID_REFERENCE_GRANT,
    _INVALID_NONEXISTENT_BACKEND_REF,
    _INVALID_BACKEND_REF_UNKNOWN_KIND,
    _INVALID_CROSS_NAMESPACE_BACKEND_REF,
    _INVALID_CROSS_NAMESPACE_PARENT_REF,
    _INVALID_PARENT_REF_NOT_MATCHING_SECTION_NAME,
    _NO_BACKEND_REFS,
    _WEIGHT,
    _REQUEST_HEADER_MODIFIER,
    _REDIRECT_HOST_AND_STATUS,
    _HTTPS_LISTENER,
    _SIMPLE_SAME_NAMESPACE,
    _GATEWAY_WITH_ATTACHED_ROUTES,
    _MULTIPLE_GATEWAYS,
    _INVALID_REFERENCE_GRANT,
    _SERVICE_TYPES,
    *_ROUTE_OBSERVED_GENERATION_BUMP,
    *_GATEWAY_OBSERVED_GENERATION_BUMP,
    *_GATEWAY_CLASS_OBSERVED_GENERATION_BUMP,
    *_GATEWAY_MODIFY_LISTENERS,
    _GATEWAY_INVALID_ROUTE_KIND,
    _GATEWAY_LISTENER_UNSUPPORTED_PROTOCOL,
    _GATEWAY_INVALID_TLS_CONFIGURATION,
    _GATEWAY_INVALID_PARAMETERS_REF,
    _GATEWAY_SECRET_INVALID_REFERENCE_GRANT,
    _GATEWAY_SECRET_MISSING_REFERENCE_GRANT,
    _GATEWAY_SECRET_REFERENCE_GRANT_ALL_IN_NAMESPACE,
    _GATEWAY_SECRET_REFERENCE_GRANT_SPECIFIC,
    # extended
    _INVALID_PARENT_REF_NOT_MATCHING_LISTENER_PORT,
    _INVALID_PARENT_REF_SECTION_NAME_NOT_MATCHING_PORT,
    _GATEWAY_WITH_ATTACHED_ROUTES_WITH_PORT_8080,
    _QUERY_PARAM_MATCHING,
    _METHOD_MATCHING,
    _RESPONSE_HEADER_MODIFIER,
    _REDIRECT_PORT,
    _REDIRECT_SCHEME,
    *_REDIRECT_PORT_AND_SCHEME,
    _REDIRECT_PATH,
    _redirect_code(303, "303-redirect", "/see-other", "POST"),
    _redirect_code(307, "307-redirect", "/temporary", "GET"),
    _redirect_code(308, "308-redirect", "/permanent", "GET"),
    _REWRITE_HOST,
    _REWRITE_PATH,
    _REQUEST_MIRROR,
    _REQUEST_MULTIPLE_MIRRORS,
    _REQUEST_PERCENTAGE_MIRROR,
    _timeout_case(
        "HTTPRouteTimeoutRequest",
        "request-timeout",
        "request",
        "request-timeout",
        "HTTPRouteRequestTimeout",
    ),
    _timeout_case(
        "HTTPRouteTimeoutBackendRequest",
        "backend-request-timeout",
        "backendRequest",
        "backend-timeout",
        "HTTPRouteBackendTimeout",
    ),
    _NAMED_RULE,
    _BACKEND_PROTOCOL_H2C,
    _BACKEND_PROTOCOL_WEBSOCKET,
    _BACKEND_REQUEST_HEADER_MODIFIER,
    _REQUEST_HEADER_MODIFIER_BACKEND_WEIGHTS,
    _REQUEST_HEADER_MODIFIER_BACKEND_UNEVEN_WEIGHTS,
    _CORS,
    *_HTTP_LISTENER_ISOLATION,
    # outside the GATEWAY-HTTP profile (upstream runs it where TLSRoute is declared)
    _DISALLOWED_KIND,
]
