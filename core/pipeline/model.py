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
from functools import cached_property, lru_cache

from polyingress.core.pipeline.policy import RoutePolicy
from polyingress.core.pipeline.requestpath import normalize_request_path
from polyingress.core.pipeline.settings import GlobalSettings

__all__ = [
    "Answer",
    "Backend",
    "BackendProtocol",
    "Certificate",
    "CookieMatch",
    "Cors",
    "Endpoint",
    "GlobalSettings",
    "HeaderFilter",
    "HeaderMatch",
    "HostKind",
    "ObjectRef",
    "Outcome",
    "PathModifier",
    "PathModifierType",
    "PathTable",
    "PathType",
    "QueryMatch",
    "Redirect",
    "Request",
    "Rewrite",
    "Route",
    "RouteModel",
    "RoutePolicy",
    "SessionAffinity",
    "TLSBinding",
    "VirtualHost",
    "WeightedBackend",
    "host_kind",
    "redirect_location",
    "redirect_status",
    "route_canonical",
]


class PathType(StrEnum):
    """How a route's path matches. ImplementationSpecific is translated to PREFIX."""

    EXACT = "Exact"
    PREFIX = "Prefix"


class HostKind(StrEnum):
    """How a virtual host's name matches a request's Host.

    ``EXACT`` ``a.foo.com``; ``WILDCARD`` ``*.foo.com``, the Ingress wildcard: exactly one label
    more (``a.foo.com``, not ``a.b.foo.com``); ``SUFFIX`` ``**.foo.com``, the Gateway API
    wildcard: one label or more (``a.foo.com`` and ``a.b.foo.com``, never ``foo.com``); ``ANY``
    the catch-all."""

    EXACT = "exact"
    WILDCARD = "wildcard"
    SUFFIX = "suffix"
    ANY = "any"


@lru_cache(maxsize=1024)
def _compiled(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


def host_kind(host: str | None) -> HostKind:
    if host is None:
        return HostKind.ANY
    if host.startswith("**."):
        return HostKind.SUFFIX
    if host.startswith("*."):
        return HostKind.WILDCARD
    return HostKind.EXACT


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


class BackendProtocol(StrEnum):
    """How the proxy talks to a backend's endpoints.

    ``HTTP``: HTTP/1.1 in clear text, WebSocket upgrades passed through (a Service port with
    ``appProtocol: kubernetes.io/ws`` is such a backend); ``H2C``: HTTP/2 in clear text with
    prior knowledge (``appProtocol: kubernetes.io/h2c``, the ``backend-protocol: H2C``
    annotation); ``HTTPS``: HTTP/1.1 over TLS, the endpoint's certificate not verified (the
    ``backend-protocol: HTTPS`` annotation, as ingress-nginx does); ``GRPC``/``GRPCS``: gRPC
    over HTTP/2 in clear text / over TLS (unverified): the proxy talks HTTP/2 to the endpoint
    as for ``H2C`` / ``HTTPS`` with ALPN h2."""

    HTTP = "http"
    H2C = "h2c"
    HTTPS = "https"
    GRPC = "grpc"
    GRPCS = "grpcs"

    @property
    def tls(self) -> bool:
        """TLS to the endpoint (never verified)."""
        return self in (BackendProtocol.HTTPS, BackendProtocol.GRPCS)

    @property
    def http2(self) -> bool:
        """HTTP/2 to the endpoint (prior knowledge in clear text, ALPN h2 over TLS)."""
        return self in (BackendProtocol.H2C, BackendProtocol.GRPC, BackendProtocol.GRPCS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Backend:
    """A Service port, addressed by its stable ``name`` (``<namespace>__<service>__<port>``).

    ``name`` only contains ``[a-z0-9_-]`` and is safe as an identifier in every proxy's config.
    ``endpoints`` is sorted by (address, port) and holds every endpoint, ready or not; backends
    send traffic to ``ready_endpoints`` only. ``problem`` says why a backend has no endpoints
    when that is an error (Service missing, port unknown). ``protocol`` is how the proxy talks
    to the endpoints (:class:`BackendProtocol`); a Service port reached with another protocol
    than HTTP is a backend of its own, named ``<namespace>__<service>__<port>__<protocol>``.
    """

    name: str
    namespace: str
    service: str
    port: str
    endpoints: tuple[Endpoint, ...] = ()
    problem: str | None = None
    protocol: BackendProtocol = BackendProtocol.HTTP

    def __post_init__(self) -> None:
        if not _NAME_OK.fullmatch(self.name):
            raise ValueError(f"backend name {self.name!r} is not [a-z0-9_-]")

    @property
    def ready_endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.ready)

    @property
    def available(self) -> bool:
        return any(e.ready for e in self.endpoints)


@dataclass(frozen=True, slots=True, kw_only=True, order=True, repr=False)
class HeaderMatch:
    """The request must carry header ``name`` (lowercase; names match case-insensitively) with
    exactly ``value`` (case-sensitive), or, with ``regex`` (the Gateway API's HeaderMatch type
    RegularExpression; annotation rows only: canary-by-header-pattern), a value in which the
    regular expression ``value`` is found (a search, case-sensitive, as ingress-nginx's
    ``ngx.re.match``; anchors are written ``^...$``). Such a ``value`` is in the subset of PCRE,
    HAProxy's regexes and RE2 that means the same in all three (regexpath.check_common_regex),
    so Python's ``re`` states it too. The first header of that name counts; an empty value
    is no value for a regular expression (nginx's ``$http_<name>`` cannot tell it from a
    missing header)."""

    name: str
    value: str
    regex: bool = False

    def __repr__(self) -> str:
        # (without ``regex`` when False: the repr of an exact match is what it always was,
        # which renderers hash into names)
        extra = ", regex=True" if self.regex else ""
        return f"HeaderMatch(name={self.name!r}, value={self.value!r}{extra})"

    def accepts(self, found: str | None) -> bool:
        if found is None:
            return False
        if self.regex:
            return found != "" and _compiled(self.value).search(found) is not None
        return found == self.value


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class CookieMatch:
    """The request's cookie ``name`` (case-sensitive) must have exactly ``value``. The first
    pair of that name in the Cookie header counts (what ingress-nginx's ``$cookie_<name>``
    reads); pairs are split on ``;``, surrounding spaces and tabs dropped, and a pair without
    ``=`` is no cookie (:meth:`Request.cookie`). Names and values are cookie tokens (RFC 6265:
    no space, ``;``, ``,``, quote or backslash), checked by the translation."""

    name: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionAffinity:
    """Cookie session affinity (ingress-nginx's ``affinity: cookie``): a client that got the
    cookie ``name`` from a row keeps reaching the same endpoint of the row's backend while it
    sends the cookie back and that endpoint is ready; a request without it is balanced as any
    other and gets the cookie. ``mode``: ``balanced`` (scaling up may move some sessions) or
    ``persistent`` (never moved while the endpoint is ready). The cookie is HttpOnly, with
    ``path`` (None: the row's path), ``domain``, ``samesite`` (``None``/``Lax``/``Strict``),
    ``max_age`` and ``expires`` (seconds), ``secure`` (None: on HTTPS requests only);
    ``change_on_failure``: a request whose endpoint failed gets a new cookie. Names and values
    are checked by the translation (cookie tokens, plain paths, host names)."""

    name: str = "INGRESSCOOKIE"
    mode: str = "balanced"
    path: str | None = None
    domain: str | None = None
    samesite: str | None = None
    conditional_samesite_none: bool = False
    expires: int | None = None
    max_age: int | None = None
    secure: bool | None = None
    change_on_failure: bool = False


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class QueryMatch:
    """The request's query must carry parameter ``name`` (case-sensitive) with exactly
    ``value``; when the name repeats, its first value counts."""

    name: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class HeaderFilter:
    """Header changes, applied in this order: ``set`` (replace or add), ``add`` (append a value),
    ``remove``. Names are lowercase; values are checked printable ASCII without CR/LF."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def then(self, after: HeaderFilter | None) -> HeaderFilter:
        """One filter with the effect of this one followed by ``after`` (a backendRef's filter
        after its rule's), each name in one list only: a value added to a value set or added
        before is appended to it with ``,`` (one header line holding both, as a proxy joins
        them), an added header that was removed before is set."""
        if after is None:
            return self
        ops: dict[str, tuple[str, str]] = {}
        for name, value in self.set:
            ops[name] = ("set", value)
        for name, value in self.add:
            ops[name] = ("add", value)
        for name in self.remove:
            ops[name] = ("remove", "")
        for name, value in after.set:
            ops[name] = ("set", value)
        for name, value in after.add:
            kind, prev = ops.get(name, ("", ""))
            if kind in ("set", "add"):
                ops[name] = (kind, f"{prev},{value}")
            else:
                ops[name] = ("set" if kind == "remove" else "add", value)
        for name in after.remove:
            ops[name] = ("remove", "")
        return HeaderFilter(
            set=tuple((n, v) for n, (k, v) in ops.items() if k == "set"),
            add=tuple((n, v) for n, (k, v) in ops.items() if k == "add"),
            remove=tuple(n for n, (k, _v) in ops.items() if k == "remove"),
        )

    def apply(self, headers: dict[str, list[str]]) -> dict[str, list[str]]:
        """The header multimap after the changes (the reference semantics the tests compare
        every proxy with)."""
        out = {k: list(v) for k, v in headers.items()}
        for name, value in self.set:
            out[name] = [value]
        for name, value in self.add:
            out.setdefault(name, []).append(value)
        for name in self.remove:
            out.pop(name, None)
        return out


@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class WeightedBackend:
    """One backend of a traffic split: it gets ``weight`` / (sum of weights) of the requests;
    weight 0 gets none. ``backend`` None is the share of an invalid backend reference: those
    requests are answered 500 (Gateway API). ``request_headers``: the backendRef's own
    RequestHeaderModifier, applied after the row's to the requests this backend gets."""

    backend: str | None
    weight: int
    request_headers: HeaderFilter | None = None

    def headers(self, row: HeaderFilter | None) -> HeaderFilter | None:
        """The request header changes this share gets: the row's, then its own."""
        if self.request_headers is None:
            return row
        return (row or HeaderFilter()).then(self.request_headers)


_HOST_LABELS = "[a-z0-9.-]+"  # what the ``*`` of an allowed origin stands for
_DEFAULT_PORTS = {"http": "80", "https": "443"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Cors:
    """The Gateway API CORS filter (HTTPRouteCORS), as every backend answers it.

    ``allow_origins``: ``*`` (any Origin), or ``scheme://host[:port]`` with scheme http or
    https, host lowercase, optionally ``*.`` + a suffix (one label or more to the left); without
    a port the scheme's default port may be written or not. ``allow_methods`` and
    ``allow_headers`` may be ``("*",)``; ``expose_headers`` too.

    A **preflight** (OPTIONS with ``Origin`` and ``Access-Control-Request-Method``) is answered
    by the proxy with 204, never proxied: with the CORS headers of :meth:`preflight_headers`
    when the Origin is allowed, with none when it is not. Any other request is proxied (or
    answered) as the row says; when it carries an allowed Origin, the answer gets
    :meth:`response_headers`, which replace the backend's own ``Access-Control-Allow-Origin``,
    ``-Allow-Credentials`` and ``-Expose-Headers``. The allowed Origin is always echoed (never
    ``*``: allowed by the specification in every case, required with credentials); a wildcard
    method or header list echoes the request's ``Access-Control-Request-Method`` /
    ``-Headers``; a wildcard expose list is ``*``, or left out with credentials."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age: int = 5

    @property
    def origin_regex(self) -> str:
        """An anchored regular expression of the allowed Origins, in the subset of PCRE, RE2
        and HAProxy's regexes that means the same in all three (no look-around, no
        backreferences); ``(?!)`` never matches."""
        parts: list[str] = []
        for origin in self.allow_origins:
            if origin == "*":
                return "^.+$"
            scheme, _, rest = origin.partition("://")
            host, colon, port = rest.partition(":")
            # Hosts are [a-z0-9.-] (validated): the dot is the one character to escape.
            if host.startswith("*."):
                host_re = _HOST_LABELS + host[1:].replace(".", "\\.")
            else:
                host_re = host.replace(".", "\\.")
            port_re = ":" + port if colon else f"(:{_DEFAULT_PORTS[scheme]})?"
            parts.append(f"{scheme}://{host_re}{port_re}")
        if not parts:
            return "(?!)"
        return "^(" + "|".join(parts) + ")$"

    def allows(self, origin: str | None) -> bool:
        return origin is not None and re.fullmatch(self.origin_regex, origin) is not None

    def _methods(self, requested: str | None) -> str | None:
        if self.allow_methods == ("*",):
            return requested or None
        return ", ".join(self.allow_methods) or None

    def _headers(self, requested: str | None) -> str | None:
        if self.allow_headers == ("*",):
            return requested or None
        return ", ".join(self.allow_headers) or None

    @property
    def expose(self) -> str | None:
        """The Access-Control-Expose-Headers value (None: left out)."""
        if self.expose_headers == ("*",):
            return None if self.allow_credentials else "*"
        return ", ".join(self.expose_headers) or None

    def response_headers(self, origin: str) -> tuple[tuple[str, str], ...]:
        """What an answer to a request with the allowed ``origin`` carries."""
        out = [("access-control-allow-origin", origin)]
        if self.allow_credentials:
            out.append(("access-control-allow-credentials", "true"))
        expose = self.expose
        if expose is not None:
            out.append(("access-control-expose-headers", expose))
        return tuple(out)

    def preflight_headers(
        self, origin: str, method: str | None, headers: str | None
    ) -> tuple[tuple[str, str], ...]:
        """The proxy's 204 to a preflight from the allowed ``origin`` (``method``,
        ``headers``: its Access-Control-Request-Method and -Headers)."""
        out = list(self.response_headers(origin))
        allow_methods = self._methods(method)
        if allow_methods is not None:
            out.append(("access-control-allow-methods", allow_methods))
        allow_headers = self._headers(headers)
        if allow_headers is not None:
            out.append(("access-control-allow-headers", allow_headers))
        out.append(("access-control-max-age", str(self.max_age)))
        return tuple(out)


class PathModifierType(StrEnum):
    FULL = "ReplaceFullPath"
    PREFIX = "ReplacePrefixMatch"


@dataclass(frozen=True, slots=True, kw_only=True)
class PathModifier:
    """A path change of a redirect or rewrite: the whole path, or the matched prefix."""

    type: PathModifierType
    value: str

    def apply(self, path: str, route: Route) -> str:
        if self.type is PathModifierType.FULL:
            return self.value
        # ReplacePrefixMatch: the matched prefix (element-wise) is replaced; "/" joins what is
        # left without doubling or dropping the slash.
        prefix = route.path.rstrip("/")
        rest = path[len(prefix) :] if prefix else path
        base = self.value.rstrip("/")
        if not rest or rest == "/":
            return (base + rest) or "/"
        return base + rest


@dataclass(frozen=True, slots=True, kw_only=True)
class Redirect:
    """Answer with a redirect instead of proxying. None keeps the request's own part (the port:
    dropped when it is the new scheme's well-known one)."""

    status: int = 302
    scheme: str | None = None
    hostname: str | None = None
    port: int | None = None
    path: PathModifier | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Rewrite:
    """Change the request before it is proxied: the Host header, the path."""

    hostname: str | None = None
    path: PathModifier | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One row of a virtual host's routing table.

    ``source`` is the Ingress or HTTPRoute the rule came from (the winner, when several declared
    the same match). ``from_catch_all`` marks rows merged in from host-less Ingress rules.

    An Ingress row is a path, a path type and a backend. A Gateway API row may also require a
    method, headers and query parameters (all must match), be served on one listener scheme
    only (``schemes``), split its requests between weighted backends (``split``; ``backend`` is
    then None), answer by itself (``status``, e.g. 500 for a rule without a valid backend;
    ``redirect``), change the request (``rewrite``, ``request_headers``) and the response
    (``response_headers``), and copy requests to ``mirrors`` (``mirror_fractions``: a
    mirror's share, n/d — of every d requests of the row in a row, n are copied, counted from
    the proxy's start; HTTPRouteRequestPercentageMirror). ``timeout`` (seconds): the
    backend must answer within it, else 504; ``connect_timeout`` (seconds, annotation rows:
    proxy-connect-timeout): an endpoint must accept the connection within it, else the proxy
    answers by itself (504; HAProxy 503) instead of waiting for the ConfigMap's
    proxy-connect-timeout; ``send_timeout`` (seconds, proxy-send-timeout): the longest pause
    between two writes of the request to the endpoint (one that stops reading it: 504);
    ``affinity``: cookie session affinity to the row's endpoints
    (annotation rows). ``order`` breaks the ties the match leaves: (creation timestamp,
    namespace, name, rule index, match index).
    """

    path: str
    path_type: PathType
    backend: str | None
    source: ObjectRef
    from_catch_all: bool = False
    method: str | None = None
    headers: tuple[HeaderMatch, ...] = ()
    query: tuple[QueryMatch, ...] = ()
    cookies: tuple[CookieMatch, ...] = ()
    schemes: tuple[str, ...] = ("http", "https")
    split: tuple[WeightedBackend, ...] = ()
    status: int | None = None
    redirect: Redirect | None = None
    rewrite: Rewrite | None = None
    request_headers: HeaderFilter | None = None
    response_headers: HeaderFilter | None = None
    mirrors: tuple[str, ...] = ()
    # The share of the requests each mirror gets, (numerator, denominator) in the order of
    # ``mirrors``; empty: every request goes to every mirror.
    mirror_fractions: tuple[tuple[int, int], ...] = ()
    timeout: float | None = None
    cors: Cors | None = None
    connect_timeout: float | None = None
    send_timeout: float | None = None
    affinity: SessionAffinity | None = None
    policy: RoutePolicy | None = None
    order: tuple[str, str, str, int, int] = ("", "", "", 0, 0)

    def sort_key(
        self,
    ) -> tuple[int, int, str, int, int, int, int, tuple[str, str, str, int, int]]:
        # The precedence of the Gateway API (Ingress rows are the case without conditions):
        # Exact before Prefix, longer before shorter, then a method match, more headers, more
        # query parameters, then the oldest source, its namespace/name and rule order. Cookie
        # matches (annotation rows only: canary-by-cookie) come after header matches, as
        # ingress-nginx's canary precedence (header, then cookie, then weight) says.
        return (
            0 if self.path_type is PathType.EXACT else 1,
            -len(self.path),
            self.path,
            0 if self.method is not None else 1,
            -len(self.headers),
            -len(self.query),
            -len(self.cookies),
            self.order,
        )

    @property
    def conditional(self) -> bool:
        """True when the row requires more than its path (a method, headers, query, a scheme)."""
        return bool(
            self.method is not None
            or self.headers
            or self.query
            or self.cookies
            or len(self.schemes) < 2
        )

    @property
    def match_key(self) -> tuple[object, ...]:
        """Rows with equal keys match the same requests: the first in precedence wins."""
        return (
            self.path,
            self.path_type,
            self.method,
            tuple(sorted(self.headers)),
            tuple(sorted(self.query)),
            self.schemes,
            tuple(sorted(self.cookies)),
        )

    @property
    def backends(self) -> tuple[str, ...]:
        """Every backend the row may proxy to (its split's, or its one), mirrors excluded."""
        if self.split:
            return tuple(w.backend for w in self.split if w.backend is not None)
        return () if self.backend is None else (self.backend,)

    def matches(self, path: str) -> bool:
        """Reference semantics of one route's path (used by tests and by backends that need a
        check)."""
        if self.path_type is PathType.EXACT:
            return path == self.path
        if self.path == "/":
            return path.startswith("/")
        return path == self.path or path.startswith(self.path + "/")

    def accepts(self, request: Request) -> bool:
        """The conditions beyond the path: scheme, method, headers, query parameters, cookies."""
        if request.scheme not in self.schemes:
            return False
        if self.method is not None and request.method != self.method:
            return False
        for h in self.headers:
            if not h.accepts(request.header(h.name)):
                return False
        for c in self.cookies:
            if request.cookie(c.name) != c.value:
                return False
        return all(request.query_param(q.name) == q.value for q in self.query)


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of a request the routing looks at."""

    scheme: str = "http"
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    query: str = ""

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def cookie(self, name: str) -> str | None:
        """The value of the first cookie ``name`` (case-sensitive) of the Cookie header (one
        line, as RFC 6265 §5.4 has user agents send): pairs split on ``;``, spaces and tabs
        around a pair dropped, pairs without ``=`` skipped."""
        header = self.header("cookie")
        if header is None:
            return None
        for part in header.split(";"):
            key, eq, value = part.strip(" \t").partition("=")
            if eq and key == name:
                return value
        return None

    def query_param(self, name: str) -> str | None:
        for part in self.query.split("&"):
            key, _, value = part.partition("=")
            if key == name:
                return value
        return None


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
        return host_kind(self.host)

    @property
    def wildcard_suffix(self) -> str | None:
        """``foo.com`` for ``*.foo.com`` and ``**.foo.com``; None for other kinds."""
        if self.host is not None and self.host.startswith("*"):
            return self.host.lstrip("*")[1:]
        return None

    def match(self, path: str, request: Request | None = None) -> Route | None:
        """The route a request selects (Exact, then the longest element-wise Prefix; among the
        rows of one path, the first whose conditions the request meets)."""
        return PathTable(self.routes).match(path, request)


_PLAIN = Request()


class PathTable:
    """Routes indexed to match a path in time linear in the path, not in the table: Exact by
    lookup, then the longest Prefix among the path itself and its parts ending before a ``/``
    (element-wise: ``/foo`` covers ``/foo`` and ``/foo/bar``, never ``/foobar``). Rows of one
    path keep their precedence order; the first whose conditions hold wins, else the next
    shorter path is tried. Build it once per virtual host to match many paths."""

    __slots__ = ("exact", "prefix")

    def __init__(self, routes: tuple[Route, ...]) -> None:
        # canonical order puts the first of equal paths first: keep it
        self.exact: dict[str, list[Route]] = {}
        self.prefix: dict[str, list[Route]] = {}
        for r in routes:
            table = self.exact if r.path_type is PathType.EXACT else self.prefix
            table.setdefault(r.path, []).append(r)

    @staticmethod
    def _first(rows: list[Route] | None, request: Request) -> Route | None:
        if rows:
            for row in rows:
                if row.accepts(request):
                    return row
        return None

    def match(self, path: str, request: Request | None = None) -> Route | None:
        request = request or _PLAIN
        route = self._first(self.exact.get(path), request)
        if route is not None:
            return route
        end = len(path)
        while end > 0:
            route = self._first(self.prefix.get(path[:end]), request)
            if route is not None:
                return route
            end = path.rfind("/", 0, end)
        return self._first(self.prefix.get("/"), request)


class Outcome(StrEnum):
    """What kind of answer a request gets (:meth:`RouteModel.answer`)."""

    ROUTE = "route"  # a route of the request's virtual host matched; proxied to its backend
    DEFAULT = "default"  # no route matched; proxied to the default backend
    BAD_PATH = "bad-path"  # refused by the request-path rule: 400
    REDIRECT = "redirect"  # plain HTTP to an ssl-redirect host: 301 or 308 to HTTPS
    NOT_FOUND = "not-found"  # no route and no default backend: 404
    UNAVAILABLE = "unavailable"  # the chosen backend has no ready endpoint: 503
    ERROR = "error"  # the route has no valid backend (Gateway API): 500
    REFUSED = "refused"  # the route's policy refuses the request (413, 403, 401)
    ROUTE_REDIRECT = "route-redirect"  # the route answers with a redirect (RequestRedirect)
    CORS_PREFLIGHT = "cors-preflight"  # a CORS preflight the route's CORS filter answers: 204


def redirect_status(method: str) -> int:
    """The status of the HTTPS redirect of an ssl-redirect host, on every backend: 301 for GET,
    308 for every other method, HEAD included (what Traefik's ``redirectScheme`` answers,
    measured on Traefik 3.7.15; nginx and HAProxy are rendered to answer the same). 308 keeps
    the method and body of a POST or PUT; a GET loses nothing with 301."""
    return 301 if method == "GET" else 308


@dataclass(frozen=True, slots=True)
class Answer:
    """What one request gets. ``status`` is the status the proxy answers by itself (400, 301,
    302, 303, 307, 308, 404, 500, 503), None when the request is proxied; ``backend`` the backend
    it is proxied to (for 503: the backend that has no ready endpoint; None for a weighted
    split: see ``backends``); ``route`` the matched route, if any; ``path`` the request target
    the backend receives (normalized path, rewritten if the route says so, and the query as
    sent), None when the request is refused; ``host`` the Host the backend receives when the
    route rewrites it; ``location`` the Location of a redirect the route answers; ``cors`` the
    CORS response headers (lowercase names) of the route's CORS filter: those of the proxy's
    own 204 to a preflight, else those the answer carries (:class:`Cors`)."""

    outcome: Outcome
    status: int | None = None
    backend: str | None = None
    route: Route | None = None
    path: str | None = None
    host: str | None = None
    location: str | None = None
    cors: tuple[tuple[str, str], ...] = ()

    @property
    def proxied(self) -> bool:
        return self.status is None

    @property
    def backends(self) -> tuple[WeightedBackend, ...]:
        """The backends a proxied request may reach with their weights (one, or a split)."""
        if self.route is not None and self.route.split and self.outcome is Outcome.ROUTE:
            return self.route.split
        return () if self.backend is None else (WeightedBackend(backend=self.backend, weight=1),)


_WELL_KNOWN = {"http": 80, "https": 443}
# The outcomes of a route that proxies (or would, with a ready endpoint): its policy applies.
_PROXYING = frozenset({Outcome.ROUTE, Outcome.UNAVAILABLE})


def redirect_location(
    redirect: Redirect, route: Route, *, scheme: str, host: str, path: str, query: str
) -> str:
    """The Location of a route's redirect (Gateway API RequestRedirect): each part the redirect
    does not set is the request's; the port is left out when it is the scheme's well-known
    one."""
    new_scheme = redirect.scheme or scheme
    hostname = redirect.hostname or host
    new_path = redirect.path.apply(path, route) if redirect.path is not None else path
    port = redirect.port
    authority = hostname
    if port is not None and _WELL_KNOWN.get(new_scheme) != port:
        authority = f"{hostname}:{port}"
    target = new_path + ("?" + query if query else "")
    return f"{new_scheme}://{authority}{target}"


def route_canonical(r: Route, source: list[str] | None) -> list[object]:
    """A route as plain JSON: an Ingress row as before; a Gateway API row adds what it has."""
    row: list[object] = [r.path, r.path_type.value, r.backend, source, r.from_catch_all]
    extra = {
        "method": r.method,
        "headers": [[h.name, h.value, *(["regex"] if h.regex else [])] for h in r.headers],
        "query": [[q.name, q.value] for q in r.query],
        "cookies": [[c.name, c.value] for c in r.cookies],
        "schemes": list(r.schemes) if r.schemes != ("http", "https") else [],
        "split": [
            [w.backend, w.weight, *([_plain(w.request_headers)] if w.request_headers else [])]
            for w in r.split
        ],
        "status": r.status,
        "redirect": None if r.redirect is None else _plain(r.redirect),
        "rewrite": None if r.rewrite is None else _plain(r.rewrite),
        "request_headers": None if r.request_headers is None else _plain(r.request_headers),
        "response_headers": None if r.response_headers is None else _plain(r.response_headers),
        "mirrors": list(r.mirrors),
        "mirror_fractions": [list(f) for f in r.mirror_fractions],
        "timeout": r.timeout,
        "cors": None if r.cors is None else _plain(r.cors),
        "connect_timeout": r.connect_timeout,
        "send_timeout": r.send_timeout,
        "affinity": None if r.affinity is None else _plain(r.affinity),
        "policy": None if r.policy is None else r.policy.canonical(),
        "order": list(r.order) if r.order != ("", "", "", 0, 0) else [],
    }
    kept = {k: v for k, v in extra.items() if v not in (None, [])}
    if kept:
        row.append(kept)
    return row


def _plain(value: object) -> object:
    if isinstance(value, StrEnum):
        return value.value
    if hasattr(value, "__dataclass_fields__"):
        return {
            name: _plain(getattr(value, name))
            for name in value.__dataclass_fields__
            if getattr(value, name) is not None
        }
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def host_sort_key(host: str | None) -> tuple[int, str]:
    # Exact hosts, then wildcards (Ingress), then suffixes (Gateway API), then the catch-all;
    # alphabetical within a kind.
    if host is None:
        return (3, "")
    if host[0] != "*":
        return (0, host)
    return (2 if host[1] == "*" else 1, host)


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
    # The certificate (a name in ``certificates``) a TLS handshake with no SNI, or an SNI no
    # host's binding claims, gets: an HTTPS listener's without hostname. None: the fallback.
    default_certificate: str | None = None
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
        """The virtual host a request Host selects, the most specific that matches: the exact
        host, else the single-label wildcard (Ingress), else the longest suffix wildcard
        (Gateway API), else the catch-all."""
        host = host.lower()
        if ":" in host and not host.startswith("["):
            host = host.rsplit(":", 1)[0]
        host = host.rstrip(".")  # after the port: "r.com.:8080" is r.com
        exact = self.vhost_index.get(host)
        return exact if exact is not None else self._below(host)

    def certificate_for(self, server_name: str) -> str | None:
        """The certificate (a name in ``certificates``) a TLS handshake with this SNI gets: that
        of the host it selects, if bound to a valid one, else the default certificate; None:
        the fallback certificate."""
        vhost = self.select_vhost(server_name)
        tls = vhost.tls if vhost is not None else None
        if tls is not None and tls.certificate is not None:
            return tls.certificate
        return self.default_certificate

    def fallback_host(self, vhost: VirtualHost) -> VirtualHost | None:
        """The virtual host the names of ``vhost`` would select if it did not exist: for an
        exact host the most specific wildcard or suffix below it, else the catch-all; for a
        wildcard or suffix the next shorter suffix, else the catch-all; for the catch-all none.
        A proxy that matches hosts by priority must keep requests that ``vhost`` does not route
        from falling through to it (the spec: the most specific host answers alone)."""
        if vhost.host is None:
            return None
        kind = vhost.kind
        if kind is HostKind.EXACT:
            return self._below(vhost.host)
        suffix = vhost.wildcard_suffix or ""
        # The names of *.foo.com and **.foo.com are x.foo.com: below them, **.foo.com (for a
        # single-label wildcard) and the suffixes of foo.com.
        if kind is HostKind.WILDCARD:
            same = self.vhost_index.get("**." + suffix)
            if same is not None:
                return same
        return self._suffixes(suffix)

    def _below(self, name: str) -> VirtualHost | None:
        index = self.vhost_index
        if "." not in name:
            return index.get(None)
        parent = name.split(".", 1)[1]
        wildcard = index.get("*." + parent)
        if wildcard is not None:
            return wildcard
        return self._suffixes(name)

    def _suffixes(self, name: str) -> VirtualHost | None:
        """The longest suffix wildcard ``**.s`` with ``s`` a proper suffix of ``name`` (or
        ``name`` itself when it is a wildcard's suffix), else the catch-all."""
        index = self.vhost_index
        if self._has_suffix_hosts:
            rest = name
            while "." in rest:
                rest = rest.split(".", 1)[1]
                found = index.get("**." + rest)
                if found is not None:
                    return found
        return index.get(None)

    @cached_property
    def _has_suffix_hosts(self) -> bool:
        return any(v.kind is HostKind.SUFFIX for v in self.vhosts)

    def outcome(self, route: Route | None) -> Answer:
        """What a request gets once its virtual host chose ``route`` (None: no route matched):
        the route's own answer (500, a redirect) or its backend(s), else the default backend,
        else 404; a chosen backend without a ready endpoint answers 503 (a split: when none of
        its weighted backends has one). The answer's ``path`` is left to the caller."""
        if route is not None:
            if route.status is not None:
                return Answer(Outcome.ERROR, status=route.status, route=route)
            if route.split:
                live = [w for w in route.split if w.weight > 0]
                if not live:
                    return Answer(Outcome.ERROR, status=500, route=route)
                if not any(w.backend is not None and self._available(w.backend) for w in live):
                    return Answer(Outcome.UNAVAILABLE, status=503, route=route)
                return Answer(Outcome.ROUTE, route=route)
            outcome, backend = Outcome.ROUTE, route.backend
        elif self.default_backend is not None:
            outcome, backend = Outcome.DEFAULT, self.default_backend
        else:
            return Answer(Outcome.NOT_FOUND, status=404)
        if backend is None:  # a redirect row: the caller answers it
            return Answer(Outcome.ROUTE_REDIRECT, route=route)
        if not self._available(backend):
            return Answer(Outcome.UNAVAILABLE, status=503, backend=backend, route=route)
        return Answer(outcome, backend=backend, route=route)

    def _available(self, backend: str) -> bool:
        found = self.backend_index.get(backend)
        return found is not None and found.available

    def split_shares(self, route: Route) -> tuple[tuple[tuple[str, int], ...], int]:
        """How a proxy shares out the requests of ``route``'s weighted split: (backend, weight)
        of each backend with a weight and a ready endpoint, in the split's order (a backend named
        twice gets the sum), and the weight answered 500 (the invalid references' share). A
        backend without a ready endpoint gets no share: the others take its requests (when none
        is left, :meth:`outcome` answers 503). For a row without a split: its one backend, if
        available."""
        if not route.split:
            if route.backend is not None and self._available(route.backend):
                return ((route.backend, 1),), 0
            return (), 0
        weights: dict[str, int] = {}
        failing = 0
        for share in route.split:
            if share.weight <= 0:
                continue
            if share.backend is None:
                failing += share.weight
            elif self._available(share.backend):
                weights[share.backend] = weights.get(share.backend, 0) + share.weight
        return tuple(weights.items()), failing

    def answer(
        self,
        host: str,
        target: str,
        *,
        scheme: str = "http",
        method: str = "GET",
        headers: tuple[tuple[str, str], ...] = (),
        client: str = "127.0.0.1",
        body_size: int | None = None,
    ) -> Answer:
        """What a request gets, the whole semantics in one place, in the order a proxy applies
        them: the request-path rule (400), the HTTPS redirect of an ssl-redirect host for plain
        HTTP (301/308), the route of the selected virtual host (its conditions: scheme, method,
        headers, query), else the default backend, else 404; the route's own answer (500, a
        redirect with its Location); a proxying route's policy (413 for a body above its size,
        then 403 for a ``client`` address its source ranges refuse, then 401 without valid
        basic credentials in the ``authorization`` header), before a chosen backend
        without a ready endpoint answers 503; a CORS row answers a preflight 204 before all of
        the route's own answers and policy, and gives an allowed Origin its headers.
        ``target`` is the request target as sent (path and query); ``host`` the Host header;
        ``client`` the address the request comes from; ``body_size`` its Content-Length (None:
        no body)."""
        normalized = normalize_request_path(target)
        if normalized is None:
            return Answer(Outcome.BAD_PATH, status=400)
        path, _, query = normalized.partition("?")
        vhost = self.select_vhost(host)
        tls = vhost.tls if vhost is not None else None
        if scheme == "http" and tls is not None and tls.ssl_redirect:
            return Answer(Outcome.REDIRECT, status=redirect_status(method), path=normalized)
        request = Request(scheme=scheme, method=method, headers=headers, query=query)
        route = vhost.match(path, request) if vhost is not None else None
        answer = self._answer(route, request, host, normalized, client, body_size)
        if route is not None and route.cors is not None:
            return self._cors(route, request, answer)
        return answer

    @staticmethod
    def _cors(route: Route, request: Request, answer: Answer) -> Answer:
        """A CORS row: a preflight is the proxy's 204; an allowed Origin gets its headers."""
        cors = route.cors
        assert cors is not None
        origin = request.header("origin")
        wanted = request.header("access-control-request-method")
        allowed = cors.allows(origin)
        if request.method == "OPTIONS" and origin is not None and wanted is not None:
            found: tuple[tuple[str, str], ...] = ()
            if allowed and origin is not None:
                asked = request.header("access-control-request-headers")
                found = cors.preflight_headers(origin, wanted, asked)
            return Answer(Outcome.CORS_PREFLIGHT, status=204, route=route, cors=found)
        if allowed and origin is not None and answer.outcome is not Outcome.BAD_PATH:
            return replace(answer, cors=cors.response_headers(origin))
        return answer

    def _answer(
        self,
        route: Route | None,
        request: Request,
        host: str,
        normalized: str,
        client: str,
        body_size: int | None,
    ) -> Answer:
        """The answer once the row is chosen (``route``; None: none matched) to the request
        for ``normalized`` (its normalized path and query) from ``client`` with a body of
        ``body_size`` bytes."""
        scheme = request.scheme
        path, _, query = normalized.partition("?")
        answer = self.outcome(route)
        bare_host = host.lower()
        if ":" in bare_host and not bare_host.startswith("["):
            bare_host = bare_host.rsplit(":", 1)[0]
        bare_host = bare_host.rstrip(".")
        if answer.outcome is Outcome.ROUTE_REDIRECT and route is not None:
            redirect = route.redirect
            assert redirect is not None
            location = redirect_location(
                redirect, route, scheme=scheme, host=bare_host, path=path, query=query
            )
            return replace(answer, status=redirect.status, location=location)
        if route is not None and route.policy is not None and answer.outcome in _PROXYING:
            authorization = request.header("authorization")
            refused = route.policy.refusal(client, body_size, authorization)
            if refused is not None:
                return Answer(Outcome.REFUSED, status=refused, route=route)
        if answer.status is not None:
            return answer
        if route is not None and route.rewrite is not None:
            rewrite = route.rewrite
            if rewrite.path is not None:
                path = rewrite.path.apply(path, route)
                normalized = path + ("?" + query if query else "")
            if rewrite.hostname is not None:
                answer = replace(answer, host=rewrite.hostname)
        return replace(answer, path=normalized)

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
                    [route_canonical(r, ref(r.source)) for r in v.routes],
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
                    *([b.protocol.value] if b.protocol is not BackendProtocol.HTTP else []),
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
