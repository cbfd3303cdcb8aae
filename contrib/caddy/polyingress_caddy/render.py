"""RouteModel -> Caddy's JSON configuration. Pure: no disk, no processes, no network.

The whole configuration is one JSON document, loaded through the admin API (``POST /load``,
``admin.py``). It holds:

* ``admin``: the admin API on a UNIX socket in the workdir (mode 0200, Caddy's default for
  sockets), never a TCP port; ``persist: false`` (no autosave.json).
* ``apps.http``: two servers, ``polyingress-http`` on ``--http-port`` (HTTP/1.1) and
  ``polyingress-https`` on ``--https-port`` (HTTP/1.1 and HTTP/2 over TLS; no HTTP/3, so no UDP
  port), both with ``automatic_https.disable``: Caddy adds no redirects and manages no
  certificate. The apps ``pki`` (Caddy's local CA) and ACME are never configured.
* ``apps.tls``: the Secrets' certificates and the fallback certificate, inline (``load_pem``),
  each tagged with a digest of its content; OCSP stapling and the storage checks are off. A
  certificate whose key Go's TLS cannot use (:func:`caddy_can_load`: Caddy would refuse the
  whole document for it) is left out, and its hosts get the fallback certificate, as for a
  Secret the core finds invalid; the backend logs a warning naming the Secret.

Every request goes through the same routes, in order (the core's ``RouteModel.answer``):

1. **400** by the request-path rule (``polyingress.core.normalize_request_path``): a target
   that does not start with ``/``, an encoded slash, backslash or NUL (any case) or a raw
   backslash, looked for in the raw request target (``{http.request.orig_uri}``). A ``%`` not
   followed by two hex digits never gets this far: Go's HTTP server answers 400 itself.
2. **Normalization**, only for paths that need it, with Caddy's ``rewrite`` handler on the
   escaped path: hex digits of escapes upper-cased, then each of the 66 unreserved characters
   decoded (one ``path_regexp`` each: ``%41`` -> ``A``); then, for runs of slashes and dot
   segments, Caddy's path cleaning (``uri_substring``, whose every use cleans the path first:
   merges slashes, removes dot segments) after a ``path_regexp`` that appends a ``/`` to a
   path ending in a dot segment (the rule keeps that slash; Go's ``path.Clean`` would drop it).
   The Service receives this path: Caddy forwards the request's escaped path.
3. **Host**: one route per virtual host, exact hosts first, then single-label wildcards (Caddy's
   ``host`` matcher: ``*`` is exactly one label, names compare without case; the name with a
   trailing dot is listed too), then the catch-all; each is terminal and holds the host's whole
   table (the core already merged the host-less rules into it), so a request never falls through
   to another host.
4. On the HTTP server, a host with ``ssl-redirect``: **301** for GET, **308** otherwise
   (``redirect_status``), to ``https://<host>[:<https port>]<normalized path?query>``.
5. **Paths**, in the core's table order (Exact first, then the longer Prefix first): each row
   is a ``vars_regexp`` matcher on the escaped path and query (``{http.request.uri}``), written
   from the rule path with every character but letters, digits and ``/`` escaped, so the
   pattern is literal: Exact ``/p`` is ``^/p(?:\\?|$)``, Prefix ``/p`` is ``^/p(?:[/?]|$)``
   (element-wise), Prefix ``/`` has no matcher. Caddy's ``path`` matcher is not used: it
   compares without case and reads ``*`` as a wildcard. The row's answer is
   ``RouteModel.outcome(route)``: ``reverse_proxy`` to the ready endpoints (round robin), or
   **503** when the backend has none. After the rows, ``RouteModel.outcome(None)``: the default
   backend, or **404**.

Gateway API rows (HTTPRoutes; Ingress rows with annotations) add to a row what the model says:
a method (``method``), headers (``header_regexp`` of the literal value), query parameters
(``vars_regexp`` on the raw query, each a matcher set of its own inside nested ``not``
matchers: Caddy ORs the keys of one ``vars_regexp``), the listener scheme (the row is on that server
only), 500, weighted splits (a round robin along :func:`split_sequence`; an invalid reference's
share goes to the 500 server on ``errors_socket``), header filters (``headers`` handlers, in the
model's order), redirects (``static_response`` with a Location), rewrites (``rewrite``'s
``path_regexp``, the proxy's ``Host``) and timeouts (``response_header_timeout``: 504). A row
Caddy cannot serve as the model says (a header removal whose name Caddy reads as a wildcard)
answers 500 and is listed in ``CaddyConfig.refused``. contrib/caddy/README.md has the table.

Every string that reaches the document comes from the validated model and is JSON-encoded by
``json.dumps``; host names and rule paths are checked again here (:func:`literal`,
:func:`host_names`), and what they become in a matcher is literal; a value in a field Caddy runs
through its replacer has its braces escaped (:func:`caddy_text`).
"""

from __future__ import annotations

import hashlib
import json
import math
import string
from dataclasses import dataclass, field
from functools import lru_cache
from http import HTTPStatus
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from polyingress.core import (
    FALLBACK_NAME,
    Answer,
    Certificate,
    HeaderFilter,
    HostKind,
    ObjectRef,
    Outcome,
    PathModifier,
    PathModifierType,
    PathType,
    QueryMatch,
    Route,
    RouteModel,
    VirtualHost,
    redirect_status,
)

__all__ = [
    "ERRORS_SERVER",
    "GATEWAY_FEATURES",
    "HTTPS_SERVER",
    "HTTP_SERVER",
    "KEY_PLACEHOLDER",
    "SPLIT_SLOTS",
    "CaddyConfig",
    "RenderSettings",
    "caddy_can_load",
    "host_names",
    "literal",
    "path_pattern",
    "query_pattern",
    "render",
    "split_sequence",
    "suffix_pattern",
]

HTTP_SERVER = "polyingress-http"
HTTPS_SERVER = "polyingress-https"
ERRORS_SERVER = "polyingress-errors"
# The Gateway API features this backend serves (BackendInfo.gateway_features), each proven
# live: by the kit's Gateway API cases (tests/test_caddy_gateway.py), WebSockets by
# tests/test_caddy_gateway_live.py (Caddy's reverse_proxy passes every upgrade, through
# conditional, filtered, rewritten and split rows alike). Not declared: the mirrors (Caddy has
# no request mirroring), CORS, h2c backends, listener ports in parentRefs, destination port
# matching, backend request header filters and retries.
GATEWAY_FEATURES = (
    "HTTPRoute",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect",
    "HTTPRouteSchemeRedirect",
    "HTTPRoutePathRedirect",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite",
    "HTTPRouteRequestTimeout",
    "HTTPRouteBackendTimeout",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteBackendProtocolWebSocket",
    # canary-by-header-pattern: header_regexp with the regex itself (a search, Go's regexp).
    "polyingress.io/HeaderRegexMatching",
)
# A weighted split is a round robin over a sequence of this many entries at most (the weights
# reduced by their greatest common divisor; larger totals are scaled down, each share then
# within 1/SPLIT_SLOTS of its weight's).
SPLIT_SLOTS = 1000
_WELL_KNOWN = {"http": 80, "https": 443}
KEY_PLACEHOLDER = "<private key: not shown>"

_UNRESERVED = string.ascii_letters + string.digits + "-._~"
_HOST_CHARS = frozenset(string.ascii_lowercase + string.digits + ".-")

# Caddy's own log: warnings and errors; the admin API's "host checking disabled" warning,
# repeated at every load (a UNIX socket has no Host to check), only from the ERROR level.
LOGGING = {
    "logs": {
        "default": {"level": "WARN", "exclude": ["admin"]},
        "admin": {"level": "ERROR", "include": ["admin"]},
    }
}
# Step 1: what the request-path rule refuses, in the raw request target.
BAD_TARGET = r"^(?:[^/]|[^?]*(?:%(?:2[fF]|5[cC]|00)|\\))"
# Step 2: which paths need decoding, which need cleaning (in the escaped path, before any '?').
NEEDS_DECODING = r"^[^?]*%"
NEEDS_CLEANING = r"^[^?]*(?://|/\.\.?(?:[/?]|$))"


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderSettings:
    """What the document needs besides the model.

    ``admin_socket`` and ``storage_dir`` are absolute paths in the workdir; ``errors_socket``
    the UNIX socket of the server answering 500 for the invalid references' share of a weighted
    split (only listened on when a split has such a share); ``bind``,
    ``http_port`` and ``https_port`` are the listen address and ports; ``stream_close_delay``
    (seconds) is how long an upgraded connection (a WebSocket) is kept open after a new
    configuration replaced the one it came through.
    """

    admin_socket: str
    storage_dir: str
    errors_socket: str = ""
    bind: str = "0.0.0.0"
    http_port: int = 80
    https_port: int = 443
    # The HTTPS port redirects name (RunSettings.public_https_port); None: https_port.
    redirect_https_port: int | None = None
    stream_close_delay: float = 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CaddyConfig:
    """The rendered document: ``text`` is what is loaded (compact JSON, private keys included),
    ``shown`` the same for people (indented, keys replaced by a placeholder); ``revision``
    identifies ``text``;
    ``left_out`` are the model's certificates Caddy could not load (their hosts get the
    fallback); ``refused`` the rows Caddy cannot serve as the model says (the source and why),
    rendered as 500."""

    document: dict[str, Any]
    text: str
    revision: str
    left_out: tuple[Certificate, ...] = ()
    refused: tuple[tuple[ObjectRef, str], ...] = field(default=())

    @property
    def shown(self) -> str:
        """The document for people: indented, private keys replaced by a placeholder."""
        tls = self.document["apps"]["tls"]
        pems = [{**p, "key": KEY_PLACEHOLDER} for p in tls["certificates"]["load_pem"]]
        apps = {**self.document["apps"], "tls": {**tls, "certificates": {"load_pem": pems}}}
        return json.dumps({**self.document, "apps": apps}, indent=1, sort_keys=True) + "\n"


def literal(text: str) -> str:
    """``text`` as an RE2 pattern that matches exactly ``text``: letters, digits and ``/`` as
    they are, every other (ASCII punctuation) character escaped. Anything else is refused: the
    core's validation lets no other character into a rule path."""
    out = []
    for ch in text:
        if ch.isascii() and (ch.isalnum() or ch == "/"):
            out.append(ch)
        elif ch in string.punctuation:
            out.append("\\" + ch)
        else:
            raise ValueError(f"{text!r} cannot be placed in a Caddy matcher")
    return "".join(out)


def path_pattern(route: Route) -> str | None:
    """The ``vars_regexp`` pattern on ``{http.request.uri}`` (escaped path and query) that
    matches what the core's ``Route.matches`` matches; None for Prefix ``/`` (every path)."""
    if route.path_type is PathType.EXACT:
        return f"^{literal(route.path)}(?:\\?|$)"
    if route.path == "/":
        return None
    return f"^{literal(route.path)}(?:[/?]|$)"


def host_names(vhost: VirtualHost) -> list[str]:
    """The ``host`` matcher's names for a virtual host: the name and the name with a trailing
    dot (a fully qualified Host header selects the same host)."""
    assert vhost.host is not None
    name = vhost.host
    bare = name[2:] if name.startswith("*.") else name
    if not bare or not set(bare) <= _HOST_CHARS or "{" in name or "}" in name:
        raise ValueError(f"host {name!r} cannot be placed in a Caddy matcher")
    return [name, name + "."]


def value_literal(text: str) -> str:
    """A header value (printable ASCII, the core's validation) as an RE2 pattern matching
    exactly it: :func:`literal`, with spaces kept as they are."""
    return "".join(" " if ch == " " else literal(ch) for ch in text)


def _not_equal(name: str) -> str:
    """An RE2 pattern matching every query key (``[^&=]*``) except ``name``: a proper prefix
    of it, or a key that leaves it at some character, or one that goes on after it."""
    pattern = "[^&=]+"  # after the whole name: anything more
    for ch in reversed(name):
        char = literal(ch)
        pattern = f"(?:|[^&={char}][^&=]*|{char}{pattern})"
    return pattern


def query_pattern(query: QueryMatch) -> str:
    """The ``vars_regexp`` pattern on the raw query (``{http.request.uri.query}``) that holds
    when the first parameter named ``query.name`` has exactly ``query.value``, as the core's
    ``Request.query_param`` reads a query (split at ``&``, the name before the first ``=``):
    every parameter before it has another name. (Caddy's ``query`` matcher decodes escapes
    and takes any of the values, so it is not used.)"""
    others = f"{_not_equal(query.name)}(?:=[^&]*)?"
    value = f"={literal(query.value)}" if query.value else "=?"
    return f"^(?:{others}&)*{literal(query.name)}{value}(?:&|$)"


def suffix_pattern(vhost: VirtualHost) -> str:
    """The pattern a Gateway API wildcard host (``**.foo.com``: one label or more before
    ``foo.com``) matches a Host (without its port; a trailing dot too) or an SNI name with,
    without case."""
    suffix = vhost.wildcard_suffix
    assert suffix is not None and vhost.kind is HostKind.SUFFIX
    if not suffix or not set(suffix) <= _HOST_CHARS:
        raise ValueError(f"host {vhost.host!r} cannot be placed in a Caddy matcher")
    return f"(?i)^.+\\.{literal(suffix)}\\.?$"


def caddy_text(text: str) -> str:
    """A literal for a field Caddy runs through its replacer (header values, Location, a
    rewrite's replacement): braces escaped, so that nothing in it is read as a placeholder."""
    return text.replace("{", "\\{").replace("}", "\\}")


def _replacement(text: str) -> str:
    """A literal replacement of Go's ``Regexp.ReplaceAllString`` (``$`` expands), through
    Caddy's replacer."""
    return caddy_text(text.replace("$", "$$"))


def split_sequence(weights: list[tuple[str | None, int]]) -> list[str | None]:
    """The order a round robin walks to give each key its weight's share: the weights reduced
    by their greatest common divisor (scaled down to :data:`SPLIT_SLOTS` entries when more,
    never to 0), spread by the smooth weighted round robin (each key's turns as evenly apart
    as the weights allow), so that any run of consecutive requests is shared out close to the
    weights, not in blocks."""
    live = [(key, w) for key, w in weights if w > 0]
    if not live:
        return []
    divisor = math.gcd(*(w for _k, w in live))
    reduced = [(key, w // divisor) for key, w in live]
    total = sum(w for _k, w in reduced)
    if total > SPLIT_SLOTS:
        reduced = [(key, max(1, w * SPLIT_SLOTS // total)) for key, w in reduced]
        total = sum(w for _k, w in reduced)
    current = [0] * len(reduced)
    out: list[str | None] = []
    for _ in range(total):
        for i, (_key, w) in enumerate(reduced):
            current[i] += w
        best = max(range(len(reduced)), key=lambda i: (current[i], -i))
        current[best] -= total
        out.append(reduced[best][0])
    return out


def _listen(bind: str, port: int) -> str:
    return f"[{bind}]:{port}" if ":" in bind else f"{bind}:{port}"


def _status(code: int) -> dict[str, Any]:
    return {
        "handler": "static_response",
        "status_code": code,
        "headers": {"Content-Type": ["text/plain; charset=utf-8"]},
        "body": f"{code} {HTTPStatus(code).phrase}\n",
    }


def _regexp(placeholder: str, pattern: str) -> dict[str, Any]:
    return {"vars_regexp": {placeholder: {"pattern": pattern}}}


# What Go's crypto/tls accepts as a certificate's key (tls.X509KeyPair); RSA below 1024 bits is
# refused since Go 1.24. cryptography, which the core parses Secrets with, also reads Ed448,
# DSA and other curves: such a Secret is valid to the core and would make Caddy refuse the
# whole document ("PEM pair N: tls: failed to parse private key").
_EC_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_RSA_MIN_BITS = 1024


def caddy_can_load(cert: Certificate) -> bool:
    """Whether Caddy (Go's crypto/tls) can use the certificate's private key."""
    return _key_usable(cert.key_pem)


@lru_cache(maxsize=4096)
def _key_usable(key_pem: str) -> bool:
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        return False
    if isinstance(key, rsa.RSAPrivateKey):
        return key.key_size >= _RSA_MIN_BITS
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return isinstance(key.curve, _EC_CURVES)
    return isinstance(key, ed25519.Ed25519PrivateKey)


class _Unservable(Exception):
    """A row Caddy cannot serve as the model says (rendered as 500, reported)."""


class _Renderer:
    def __init__(self, model: RouteModel, settings: RenderSettings) -> None:
        self.model = model
        self.settings = settings
        self.usable = {c.name: c for c in model.certificates if caddy_can_load(c)}
        self.errors_server = False  # a split sends a share to the 500 server
        self.refused: dict[tuple[ObjectRef, str], None] = {}

    def proxy(
        self,
        upstreams: list[str],
        port: int,
        *,
        timeout: float | None = None,
        host: str | None = None,
    ) -> dict[str, Any]:
        request_headers = {"X-Forwarded-Port": [str(port)]}
        if host is not None:
            request_headers["Host"] = [caddy_text(host)]
        # Named, so that Caddy loads it as a module and closes its idle upstream connections
        # when a new configuration replaces this one; its default transport is never
        # cleaned up, and every load left one keep-alive connection per upstream open for
        # two minutes (measured: a descriptor per load).
        transport: dict[str, Any] = {"protocol": "http"}
        if timeout is not None:
            # Until the response headers; Caddy answers 504 when it runs out.
            transport["response_header_timeout"] = _duration(max(timeout, 0.001))  # 0: none
        return {
            "handler": "reverse_proxy",
            "upstreams": [{"dial": dial} for dial in upstreams],
            "load_balancing": {"selection_policy": {"policy": "round_robin"}},
            "transport": transport,
            # Caddy sets X-Forwarded-For, -Proto and -Host itself (replacing a client's own).
            "headers": {"request": {"set": request_headers}},
            "stream_close_delay": _duration(self.settings.stream_close_delay),
        }

    def endpoints(self, backend: str) -> list[str]:
        return [e.hostport for e in self.model.backend(backend).ready_endpoints]

    def answer(self, answer: Answer, port: int) -> dict[str, Any]:
        if answer.status is not None:
            return _status(answer.status)
        assert answer.backend is not None
        return self.proxy(self.endpoints(answer.backend), port)

    def split_upstreams(self, route: Route) -> list[str]:
        """The round robin's upstreams of a row: its backend's ready endpoints, or for a
        weighted split each backend's endpoints in turn along :func:`split_sequence`, the 500
        server's socket standing for the invalid references' share."""
        shares, failing = self.model.split_shares(route)
        if not failing and len(shares) == 1:
            return self.endpoints(shares[0][0])
        weights: list[tuple[str | None, int]] = [*shares, (None, failing)]
        turns: dict[str, int] = {}
        upstreams = []
        for key in split_sequence(weights):
            if key is None:
                if not self.settings.errors_socket:
                    raise ValueError("a split answers 500 in part, and no errors socket is set")
                self.errors_server = True
                upstreams.append("unix/" + self.settings.errors_socket)
                continue
            ready = self.endpoints(key)
            turn = turns.get(key, 0)
            turns[key] = turn + 1
            upstreams.append(ready[turn % len(ready)])
        return upstreams

    def redirect(self) -> list[dict[str, Any]]:
        port = self.settings.redirect_https_port or self.settings.https_port
        location = "https://{http.request.host}" + ("" if port == 443 else f":{port}")
        location += "{http.request.uri}"

        def to(status: int) -> dict[str, Any]:
            return {
                "handler": "static_response",
                "status_code": status,
                "headers": {"Location": [location]},
            }

        get = redirect_status("GET")
        other = redirect_status("POST")
        return [
            {"match": [{"method": ["GET"]}], "handle": [to(get)], "terminal": True},
            {"handle": [to(other)], "terminal": True},
        ]

    # ---- one row of a table

    def row_match(self, route: Route) -> dict[str, Any] | None:
        """The row's matcher set (every condition must hold: Caddy ANDs the matchers of a
        set); {} matches every request; None: the row matches no request."""
        match: dict[str, Any] = {}
        pattern = path_pattern(route)
        if pattern is not None:
            match["vars_regexp"] = {"{http.request.uri}": {"pattern": pattern}}
        if route.method is not None:
            match["method"] = [route.method]
        if route.headers:
            # Caddy's header matcher reads '*' as a wildcard: a regexp of the literal value
            # (any of the header's values; names without case).
            fields: dict[str, dict[str, str]] = {}
            nonempty: list[str] = []
            for h in route.headers:
                want = {"pattern": h.value if h.regex else f"^{value_literal(h.value)}$"}
                if fields.setdefault(h.name, want) != want:
                    return None  # one header with two values (or patterns): never
                if h.regex:  # a regex never matches an empty value (HeaderMatch.accepts)
                    nonempty.append(h.name)
            match["header_regexp"] = fields
            if nonempty:
                match["not"] = [
                    {"not": [{"vars_regexp": {f"{{http.request.header.{n}}}": {"pattern": "."}}}]}
                    for n in nonempty
                ]
        if route.query:
            # The keys of one vars_regexp are ORed by Caddy, so each parameter is its own
            # matcher set, and "not" of "not"s ANDs them: no set of the outer "not" matches
            # when every parameter's pattern matches.
            match["not"] = [
                *match.get("not", []),
                *(
                    {"not": [{"vars_regexp": {"{http.request.uri.query}": {"pattern": p}}}]}
                    for p in sorted({query_pattern(q) for q in route.query})
                ),
            ]
        return match

    def row(self, route: Route, vhost: VirtualHost, scheme: str, port: int) -> list[Any]:
        """The handlers of a row: the core's ``outcome(route)`` (500, 503, a redirect, a
        proxied request with its rewrites and header filters)."""
        try:
            return self._row(route, vhost, scheme, port)
        except _Unservable as exc:
            self.refused[(route.source, str(exc))] = None
            return [_status(500)]

    def _row(self, route: Route, vhost: VirtualHost, scheme: str, port: int) -> list[Any]:
        if route.mirrors:
            raise _Unservable("a request mirror (Caddy cannot copy requests)")
        answer = self.model.outcome(route)
        handlers: list[Any] = []
        if route.response_headers is not None:
            handlers += _response_headers(route.response_headers)
        if answer.outcome is Outcome.ROUTE_REDIRECT:
            return handlers + self.route_redirect(route, vhost, scheme)
        if answer.status is not None:
            return [_status(answer.status)]
        rewrite = route.rewrite
        if rewrite is not None and rewrite.path is not None:
            handlers.append(_rewrite_path(route, rewrite.path))
        if route.request_headers is not None:
            handlers += _request_headers(route.request_headers)
        host = rewrite.hostname if rewrite is not None else None
        handlers.append(
            self.proxy(self.split_upstreams(route), port, timeout=route.timeout, host=host)
        )
        return handlers

    def route_redirect(self, route: Route, vhost: VirtualHost, scheme: str) -> list[Any]:
        """A RequestRedirect: the Location of ``polyingress.core``'s ``redirect_location``,
        with the request's parts from Caddy's placeholders: the host (as sent: an exact virtual
        host's own name), the normalized (and here rewritten) path and the query."""
        redirect = route.redirect
        assert redirect is not None
        handlers: list[Any] = []
        if redirect.path is not None:
            handlers.append(_rewrite_path(route, redirect.path))
        new_scheme = redirect.scheme or scheme
        if redirect.hostname is not None:
            host = caddy_text(redirect.hostname)
        elif vhost.kind is HostKind.EXACT and vhost.host is not None:
            host = caddy_text(vhost.host)
        else:
            host = "{http.request.host}"
        if redirect.port is not None and _WELL_KNOWN.get(new_scheme) != redirect.port:
            host += f":{redirect.port}"
        handlers.append(
            {
                "handler": "static_response",
                "status_code": redirect.status,
                "headers": {"Location": [f"{caddy_text(new_scheme)}://{host}{{http.request.uri}}"]},
            }
        )
        return handlers

    def table(self, vhost: VirtualHost, scheme: str, port: int) -> list[dict[str, Any]]:
        routes: list[dict[str, Any]] = []
        # The core's order (stable: the first of equal paths stays first, as in PathTable):
        # the first row whose path and conditions match answers.
        for route in sorted(vhost.routes, key=Route.sort_key):
            if scheme not in route.schemes:
                continue
            match = self.row_match(route)
            if match is None:
                continue
            entry: dict[str, Any] = {"handle": self.row(route, vhost, scheme, port)}
            entry["terminal"] = True
            if not match:
                routes.append(entry)
                return routes  # it matches every request: nothing after it is reached
            entry["match"] = [match]
            routes.append(entry)
        routes.append({"handle": [self.answer(self.model.outcome(None), port)], "terminal": True})
        return routes

    def vhosts(self) -> list[VirtualHost]:
        """The virtual hosts in the order Caddy tries them: exact, single-label wildcards, the
        Gateway API wildcards (the longest suffix first: the most specific answers), the
        catch-all."""
        rank = {HostKind.EXACT: 0, HostKind.WILDCARD: 1, HostKind.SUFFIX: 2, HostKind.ANY: 3}

        def key(v: VirtualHost) -> tuple[int, int]:
            return (rank[v.kind], -len(v.host or "") if v.kind is HostKind.SUFFIX else 0)

        return sorted(self.model.vhosts, key=key)

    def server_routes(self, scheme: str) -> list[dict[str, Any]]:
        port = self.settings.http_port if scheme == "http" else self.settings.https_port
        routes = list(REQUEST_PATH_ROUTES)
        for vhost in self.vhosts():
            redirect = scheme == "http" and vhost.tls is not None and vhost.tls.ssl_redirect
            inner = self.redirect() if redirect else self.table(vhost, scheme, port)
            route: dict[str, Any] = {
                "handle": [{"handler": "subroute", "routes": inner}],
                "terminal": True,
            }
            if vhost.kind is HostKind.SUFFIX:
                pattern = suffix_pattern(vhost)
                route["match"] = [{"vars_regexp": {"{http.request.host}": {"pattern": pattern}}}]
            elif vhost.host is not None:
                route["match"] = [{"host": host_names(vhost)}]
            routes.append(route)
        if None not in self.model.vhost_index:
            routes.append({"handle": [self.answer(self.model.outcome(None), port)]})
        return routes

    def connection_policies(self, fallback: Certificate) -> list[dict[str, Any]]:
        """The certificate each SNI name gets: that of the virtual host the name selects (the
        core's ``select_vhost``), else the model's default certificate (an HTTPS listener's
        without hostname: ``RouteModel.certificate_for``), else the fallback. By content tag: a
        policy's certificate is chosen even where it does not cover the name, as on the other
        backends."""
        default = self.usable.get(self.model.default_certificate or "") or fallback
        policies = []
        for vhost in self.vhosts():
            if vhost.host is None:
                continue
            cert = None
            if vhost.tls is not None and vhost.tls.certificate is not None:
                cert = self.usable.get(vhost.tls.certificate)
            if vhost.kind is HostKind.SUFFIX:
                match: dict[str, Any] = {"sni_regexp": {"pattern": suffix_pattern(vhost)}}
            else:
                match = {"sni": [vhost.host]}
            policies.append(
                {"match": match, "certificate_selection": {"any_tag": [_tag(cert or default)]}}
            )
        policies.append({"certificate_selection": {"any_tag": [_tag(default)]}})
        return policies


def _request_headers(headers: HeaderFilter) -> list[dict[str, Any]]:
    """RequestHeaderModifier: set, then add, then remove (the model's order; one Caddy
    ``headers`` handler adds before it sets, so set is a handler of its own)."""
    out: list[dict[str, Any]] = []
    if headers.set:
        out.append({"handler": "headers", "request": _header_ops(headers, set_only=True)})
    if headers.add or headers.remove:
        out.append({"handler": "headers", "request": _header_ops(headers, set_only=False)})
    return out


def _response_headers(headers: HeaderFilter) -> list[dict[str, Any]]:
    """ResponseHeaderModifier, deferred until the response's headers are written. Deferred
    handlers apply from the innermost (the last) out, so the "add and remove" handler comes
    first and the "set" one after it: set, then add, then remove."""
    out: list[dict[str, Any]] = []
    if headers.add or headers.remove:
        ops = _header_ops(headers, set_only=False)
        out.append({"handler": "headers", "response": {**ops, "deferred": True}})
    if headers.set:
        ops = _header_ops(headers, set_only=True)
        out.append({"handler": "headers", "response": {**ops, "deferred": True}})
    return out


def _header_ops(headers: HeaderFilter, *, set_only: bool) -> dict[str, Any]:
    ops: dict[str, Any] = {}
    if set_only:
        values: dict[str, list[str]] = {}
        for name, value in headers.set:
            values[name] = [caddy_text(value)]  # the last set of a name wins
        ops["set"] = values
        return ops
    if headers.add:
        added: dict[str, list[str]] = {}
        for name, value in headers.add:
            added.setdefault(name, []).append(caddy_text(value))
        ops["add"] = added
    if headers.remove:
        for name in headers.remove:
            if name.startswith("*") or name.endswith("*"):
                # Caddy reads a leading or trailing '*' in a name to delete as a wildcard
                raise _Unservable(f"removing header {name!r} (Caddy reads '*' as a wildcard)")
        ops["delete"] = sorted(set(headers.remove))
    return ops


def _rewrite_path(route: Route, modifier: PathModifier) -> dict[str, Any]:
    """The path of ``modifier.apply(path, route)``, on the escaped (normalized) path:
    ReplaceFullPath replaces it all; ReplacePrefixMatch the route's prefix (a value of "/"
    takes the slash after the prefix with it, so that nothing is doubled)."""
    if modifier.type is PathModifierType.FULL:
        find, replace = "^.*$", modifier.value
    else:
        prefix = literal(route.path.rstrip("/"))
        base = modifier.value.rstrip("/")
        find, replace = (f"^{prefix}", base) if base else (f"^{prefix}/?", "/")
    return {"handler": "rewrite", "path_regexp": [{"find": find, "replace": _replacement(replace)}]}


def _request_path_routes() -> list[dict[str, Any]]:
    """Steps 1 and 2 of the module docstring: 400, then the normalization."""
    upper = []
    for digit in "abcdef":
        upper.append({"find": f"%{digit}", "replace": f"%{digit.upper()}"})
    for digit in "abcdef":
        # "${1}" written with Caddy's escaped braces, so its replacer leaves it to Go's regexp
        upper.append({"find": f"(%[0-9A-F]){digit}", "replace": f"$\\{{1\\}}{digit.upper()}"})
    decode = [{"find": f"%{ord(ch):02X}", "replace": ch} for ch in _UNRESERVED]
    return [
        {
            "match": [_regexp("{http.request.orig_uri}", BAD_TARGET)],
            "handle": [_status(400)],
            "terminal": True,
        },
        {
            "match": [_regexp("{http.request.uri}", NEEDS_DECODING)],
            "handle": [{"handler": "rewrite", "path_regexp": upper + decode}],
        },
        {
            "match": [_regexp("{http.request.uri}", NEEDS_CLEANING)],
            "handle": [
                {"handler": "rewrite", "path_regexp": [{"find": r"/\.\.?$", "replace": "$0/"}]},
                # A substring that never occurs (Go refuses control characters in a request
                # target): the replacement does nothing, the cleaning before it is the point.
                {"handler": "rewrite", "uri_substring": [{"find": "\x00", "replace": "\x00"}]},
            ],
        },
    ]


REQUEST_PATH_ROUTES = tuple(_request_path_routes())  # the same in every document


def _duration(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms"


def _tag(cert: Certificate) -> str:
    """A tag naming the certificate's content: Caddy's certificate cache outlives a
    configuration and keeps the tags a certificate ever had, so a name-based tag could stay on
    a certificate a Secret no longer holds. The fallback certificate, made once per process
    (Caddy's cache lives no longer), is tagged by its name."""
    if cert.name == FALLBACK_NAME:
        return FALLBACK_NAME
    digest = hashlib.sha256((cert.cert_pem + "\0" + cert.key_pem).encode()).hexdigest()
    return f"polyingress-{digest[:32]}"


def _certificates(certificates: list[Certificate], fallback: Certificate) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for cert in (*certificates, fallback):
        tag = _tag(cert)
        if tag not in seen:
            seen[tag] = {
                "certificate": cert.cert_pem,
                "key": cert.key_pem,
                "tags": [tag],
            }
    return list(seen.values())


def render(model: RouteModel, settings: RenderSettings, fallback: Certificate) -> CaddyConfig:
    """The document serving ``model``; equal inputs give byte-identical text."""
    r = _Renderer(model, settings)
    usable = list(r.usable.values())
    servers = {
        HTTP_SERVER: {
            "listen": [_listen(settings.bind, settings.http_port)],
            "protocols": ["h1"],
            "automatic_https": {"disable": True},
            "routes": r.server_routes("http"),
        },
        HTTPS_SERVER: {
            "listen": [_listen(settings.bind, settings.https_port)],
            "protocols": ["h1", "h2"],
            "automatic_https": {"disable": True},
            "tls_connection_policies": r.connection_policies(fallback),
            "routes": r.server_routes("https"),
        },
    }
    if r.errors_server:
        # The invalid references' share of a weighted split is proxied here: a server on a
        # UNIX socket in the workdir (mode 0200, Caddy's default), answering 500.
        servers[ERRORS_SERVER] = {
            "listen": ["unix/" + settings.errors_socket],
            "protocols": ["h1"],
            "automatic_https": {"disable": True},
            "routes": [{"handle": [_status(500)]}],
        }

    loaded = {
        "admin": {
            "listen": "unix/" + settings.admin_socket,
            "config": {"persist": False},
        },
        "logging": LOGGING,
        "storage": {"module": "file_system", "root": settings.storage_dir},
        "apps": {
            "http": {
                "http_port": settings.http_port,
                "https_port": settings.https_port,
                "servers": servers,
            },
            "tls": {
                "certificates": {"load_pem": _certificates(usable, fallback)},
                "disable_ocsp_stapling": True,
                "disable_storage_check": True,
                "disable_storage_clean": True,
            },
        },
    }

    # Compact: json's C encoder (an indented dump runs in Python, ~10x slower).
    text = json.dumps(loaded, sort_keys=True, separators=(",", ":")) + "\n"
    return CaddyConfig(
        document=loaded,
        text=text,
        revision=hashlib.sha256(text.encode()).hexdigest()[:16],
        left_out=tuple(c for c in model.certificates if c.name not in r.usable),
        refused=tuple(r.refused),
    )
