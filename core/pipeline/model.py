"""The normalized route model: what every backend renders, whatever the proxy.

The model is built fresh from a snapshot of Kubernetes objects for every sync and never mutated.
All collections are tuples in a canonical order, so the same objects always give the same model
(and the same ``model_hash``), whatever order they were read in.

Routing semantics (Kubernetes Ingress v1), already resolved by the core:

* A request picks ONE virtual host: the exact host if one matches, else the single-label
  wildcard (``*.foo.com`` matches ``bar.foo.com`` only), else the catch-all (``host is None``).
* Inside the virtual host, ``routes`` is a flat table: an Exact route matches its path only,
  a Prefix route matches its path element-wise (``/foo`` matches ``/foo``, ``/foo/``,
  ``/foo/bar``, never ``/foobar``); an Exact match beats any Prefix match, and a longer Prefix
  beats a shorter one. Host-less Ingress rules are already merged into every host's table with
  lower precedence than the host's own rules, so a backend needs no fall-through logic.
* No match in the table: ``RouteModel.default_backend`` if set, else HTTP 404.
* A route whose backend has no ready endpoints answers HTTP 503.

:meth:`RouteModel.answer` states all of it, with the request-path rule (400) and the HTTPS
redirect (301/308) in front, as one function: what a request gets. Every backend's live tests and
the fuzzing compare the real proxy with it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property

from polyingress.core.pipeline.requestpath import normalize_request_path
from polyingress.core.pipeline.settings import GlobalSettings

__all__ = [
    "Answer",
    "Backend",
    "Certificate",
    "Endpoint",
    "GlobalSettings",
    "HostKind",
    "ObjectRef",
    "Outcome",
    "PathTable",
    "PathType",
    "Route",
    "RouteModel",
    "TLSBinding",
    "VirtualHost",
    "redirect_status",
]


class PathType(StrEnum):
    """How a route's path matches. ImplementationSpecific is translated to PREFIX."""

    EXACT = "Exact"
    PREFIX = "Prefix"


class HostKind(StrEnum):
    EXACT = "exact"
    WILDCARD = "wildcard"
    ANY = "any"


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class ObjectRef:
    """The Kubernetes object a model node came from."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class Endpoint:
    """One endpoint of a backend. Only ``ready`` endpoints may receive new traffic."""

    address: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False

    @property
    def hostport(self) -> str:
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


_NAME_OK = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Backend:
    """A Service port, addressed by its stable ``name`` (``<namespace>__<service>__<port>``).

    ``name`` only contains ``[a-z0-9_-]`` and is safe as an identifier in every proxy's config.
    ``endpoints`` is sorted by (address, port) and holds every endpoint, ready or not; backends
    send traffic to ``ready_endpoints`` only. ``problem`` says why a backend has no endpoints
    when that is an error (Service missing, port unknown).
    """

    name: str
    namespace: str
    service: str
    port: str
    endpoints: tuple[Endpoint, ...] = ()
    problem: str | None = None

    def __post_init__(self) -> None:
        if not _NAME_OK.match(self.name):
            raise ValueError(f"backend name {self.name!r} is not [a-z0-9_-]")

    @property
    def ready_endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.ready)

    @property
    def available(self) -> bool:
        return any(e.ready for e in self.endpoints)


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One row of a virtual host's routing table.

    ``source`` is the Ingress the rule came from (the winner, when several Ingresses declared the
    same host, path and type). ``from_catch_all`` marks rows merged in from host-less rules.
    """

    path: str
    path_type: PathType
    backend: str
    source: ObjectRef
    from_catch_all: bool = False

    def sort_key(self) -> tuple[int, int, str]:
        # Exact before Prefix, longer before shorter, then text: the canonical order.
        return (0 if self.path_type is PathType.EXACT else 1, -len(self.path), self.path)

    def matches(self, path: str) -> bool:
        """Reference semantics of one route (used by tests and by backends that need a check)."""
        if self.path_type is PathType.EXACT:
            return path == self.path
        if self.path == "/":
            return path.startswith("/")
        return path == self.path or path.startswith(self.path + "/")


@dataclass(frozen=True, slots=True, kw_only=True)
class Certificate:
    """A TLS certificate and key from a ``kubernetes.io/tls`` Secret, parsed and checked.

    ``name`` is ``<namespace>__<secret>``; ``dns_names`` are the names the certificate covers
    (SANs, else CN); ``fingerprint`` is the SHA-256 of the leaf certificate in hex.
    """

    name: str
    source: ObjectRef
    cert_pem: str = field(repr=False)
    key_pem: str = field(repr=False)
    dns_names: tuple[str, ...] = ()
    not_after: str = ""
    fingerprint: str = ""

    @property
    def pem_bundle(self) -> str:
        """Certificate chain followed by the key, the form HAProxy and others load."""
        cert = self.cert_pem if self.cert_pem.endswith("\n") else self.cert_pem + "\n"
        key = self.key_pem if self.key_pem.endswith("\n") else self.key_pem + "\n"
        return cert + key


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSBinding:
    """TLS for a virtual host. ``certificate`` None means: serve the fallback certificate."""

    certificate: str | None
    source: ObjectRef
    ssl_redirect: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualHost:
    """A host and its flat routing table (see the module docstring for the semantics).

    ``host`` is a lowercase DNS name, ``*.``-prefixed for a single-label wildcard, or None for
    the catch-all. ``routes`` is in canonical order: Exact first, then longer paths first.
    """

    host: str | None
    routes: tuple[Route, ...]
    tls: TLSBinding | None = None

    @property
    def kind(self) -> HostKind:
        if self.host is None:
            return HostKind.ANY
        if self.host.startswith("*."):
            return HostKind.WILDCARD
        return HostKind.EXACT

    @property
    def wildcard_suffix(self) -> str | None:
        """``foo.com`` for ``*.foo.com``; None for other kinds."""
        if self.host is not None and self.host.startswith("*."):
            return self.host[2:]
        return None

    def match(self, path: str) -> Route | None:
        """The route a request path selects (Exact, then the longest element-wise Prefix)."""
        return PathTable(self.routes).match(path)


class PathTable:
    """Routes indexed to match a path in time linear in the path, not in the table: Exact by
    lookup, then the longest Prefix among the path itself and its parts ending before a ``/``
    (element-wise: ``/foo`` covers ``/foo`` and ``/foo/bar``, never ``/foobar``). Build it once
    per virtual host to match many paths (a renderer that enumerates a host's paths)."""

    __slots__ = ("exact", "prefix")

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.exact = {r.path: r for r in routes if r.path_type is PathType.EXACT}
        # canonical order puts the first of equal paths first: keep it
        self.prefix: dict[str, Route] = {}
        for r in routes:
            if r.path_type is not PathType.EXACT:
                self.prefix.setdefault(r.path, r)

    def match(self, path: str) -> Route | None:
        route = self.exact.get(path)
        if route is not None:
            return route
        end = len(path)
        while end > 0:
            route = self.prefix.get(path[:end])
            if route is not None:
                return route
            end = path.rfind("/", 0, end)
        return self.prefix.get("/")


class Outcome(StrEnum):
    """What kind of answer a request gets (:meth:`RouteModel.answer`)."""

    ROUTE = "route"  # a route of the request's virtual host matched; proxied to its backend
    DEFAULT = "default"  # no route matched; proxied to the default backend
    BAD_PATH = "bad-path"  # refused by the request-path rule: 400
    REDIRECT = "redirect"  # plain HTTP to an ssl-redirect host: 301 or 308 to HTTPS
    NOT_FOUND = "not-found"  # no route and no default backend: 404
    UNAVAILABLE = "unavailable"  # the chosen backend has no ready endpoint: 503


def redirect_status(method: str) -> int:
    """The status of the HTTPS redirect of an ssl-redirect host, on every backend: 301 for GET,
    308 for every other method, HEAD included (what Traefik's ``redirectScheme`` answers,
    measured on Traefik 3.7.15; nginx and HAProxy are rendered to answer the same). 308 keeps
    the method and body of a POST or PUT; a GET loses nothing with 301."""
    return 301 if method == "GET" else 308


@dataclass(frozen=True, slots=True)
class Answer:
    """What one request gets. ``status`` is the status the proxy answers by itself (400, 301,
    308, 404, 503), None when the request is proxied; ``backend`` the backend it is proxied to
    (for 503: the backend that has no ready endpoint); ``route`` the matched route, if any;
    ``path`` the request target the backend receives (normalized path and the query as sent),
    None when the request is refused."""

    outcome: Outcome
    status: int | None = None
    backend: str | None = None
    route: Route | None = None
    path: str | None = None

    @property
    def proxied(self) -> bool:
        return self.status is None


def host_sort_key(host: str | None) -> tuple[int, str]:
    # Exact hosts, then wildcards, then the catch-all; alphabetical within a kind.
    if host is None:
        return (2, "")
    if host.startswith("*."):
        return (1, host)
    return (0, host)


@dataclass(frozen=True, kw_only=True)
class RouteModel:
    """Everything a backend needs to serve: hosts, backends, certificates, the default backend.

    Build it with :func:`polyingress.core.build_model`; compare two with
    :func:`polyingress.core.pipeline.diff`. ``backends`` and ``certificates`` are sorted by name;
    ``vhosts`` are exact hosts, then wildcards, then the catch-all (if any).
    """

    vhosts: tuple[VirtualHost, ...] = ()
    backends: tuple[Backend, ...] = ()
    certificates: tuple[Certificate, ...] = ()
    default_backend: str | None = None
    settings: GlobalSettings = field(default_factory=GlobalSettings)

    @cached_property
    def backend_index(self) -> dict[str, Backend]:
        return {b.name: b for b in self.backends}

    @cached_property
    def certificate_index(self) -> dict[str, Certificate]:
        return {c.name: c for c in self.certificates}

    @cached_property
    def vhost_index(self) -> dict[str | None, VirtualHost]:
        return {v.host: v for v in self.vhosts}

    def backend(self, name: str) -> Backend:
        return self.backend_index[name]

    def certificate(self, name: str) -> Certificate:
        return self.certificate_index[name]

    def select_vhost(self, host: str) -> VirtualHost | None:
        """The virtual host a request Host selects: the exact host, else the single-label
        wildcard, else the catch-all."""
        host = host.lower().rstrip(".")
        if ":" in host and not host.startswith("["):
            host = host.rsplit(":", 1)[0]
        exact = self.vhost_index.get(host)
        return exact if exact is not None else self._below(host)

    def fallback_host(self, vhost: VirtualHost) -> VirtualHost | None:
        """The virtual host the names of ``vhost`` would select if it did not exist: for an
        exact host its wildcard, else the catch-all; for a wildcard the catch-all; for the
        catch-all none. A proxy that matches hosts by priority must keep requests that
        ``vhost`` does not route from falling through to it (the spec: the most specific host
        answers alone)."""
        if vhost.host is None:
            return None
        if vhost.kind is HostKind.WILDCARD:
            return self.vhost_index.get(None)
        return self._below(vhost.host)

    def _below(self, name: str) -> VirtualHost | None:
        index = self.vhost_index
        if "." in name:
            wildcard = index.get("*." + name.split(".", 1)[1])
            if wildcard is not None:
                return wildcard
        return index.get(None)

    def outcome(self, route: Route | None) -> Answer:
        """What a request gets once its virtual host chose ``route`` (None: no route matched):
        the route's backend, else the default backend, else 404; a chosen backend without a
        ready endpoint answers 503. The answer's ``path`` is left to the caller."""
        if route is not None:
            outcome, backend = Outcome.ROUTE, route.backend
        elif self.default_backend is not None:
            outcome, backend = Outcome.DEFAULT, self.default_backend
        else:
            return Answer(Outcome.NOT_FOUND, status=404)
        found = self.backend_index.get(backend)
        if found is None or not found.available:
            return Answer(Outcome.UNAVAILABLE, status=503, backend=backend, route=route)
        return Answer(outcome, backend=backend, route=route)

    def answer(
        self, host: str, target: str, *, scheme: str = "http", method: str = "GET"
    ) -> Answer:
        """What a request gets, the whole semantics in one place, in the order a proxy applies
        them: the request-path rule (400), the HTTPS redirect of an ssl-redirect host for plain
        HTTP (301/308), the route of the selected virtual host, else the default backend, else
        404; a chosen backend without a ready endpoint answers 503. ``target`` is the request
        target as sent (path and query)."""
        normalized = normalize_request_path(target)
        if normalized is None:
            return Answer(Outcome.BAD_PATH, status=400)
        path = normalized.partition("?")[0]
        vhost = self.select_vhost(host)
        tls = vhost.tls if vhost is not None else None
        if scheme == "http" and tls is not None and tls.ssl_redirect:
            return Answer(Outcome.REDIRECT, status=redirect_status(method), path=normalized)
        answer = self.outcome(vhost.match(path) if vhost is not None else None)
        return answer if answer.status is not None else replace(answer, path=normalized)

    def resolve(self, host: str, path: str) -> tuple[str, Route | None, str | None]:
        """The backend a request path is routed to, whether or not it has a ready endpoint:
        ("route", route, backend), ("default", None, backend) or ("404", None, None)."""
        vhost = self.select_vhost(host)
        route = vhost.match(path) if vhost is not None else None
        backend = self.outcome(route).backend
        if backend is None:
            return ("404", None, None)
        return ("route" if route is not None else "default", route, backend)

    def to_canonical(self) -> dict[str, object]:
        """A plain-JSON form of the model (certificates by fingerprint, never key material)."""

        def ref(r: ObjectRef | None) -> list[str] | None:
            return None if r is None else [r.kind, r.namespace, r.name]

        return {
            "vhosts": [
                [
                    v.host,
                    None
                    if v.tls is None
                    else [v.tls.certificate, ref(v.tls.source), v.tls.ssl_redirect],
                    [
                        [r.path, r.path_type.value, r.backend, ref(r.source), r.from_catch_all]
                        for r in v.routes
                    ],
                ]
                for v in self.vhosts
            ],
            "backends": [
                [
                    b.name,
                    b.namespace,
                    b.service,
                    b.port,
                    b.problem,
                    [[e.address, e.port, e.ready, e.serving, e.terminating] for e in b.endpoints],
                ]
                for b in self.backends
            ],
            "certificates": [
                [c.name, ref(c.source), c.fingerprint, list(c.dns_names), c.not_after]
                for c in self.certificates
            ],
            "default_backend": self.default_backend,
            "settings": [list(kv) for kv in self.settings.values],
        }

    @cached_property
    def model_hash(self) -> str:
        """sha256 of the canonical JSON form: equal models have equal hashes."""
        blob = json.dumps(self.to_canonical(), separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()
