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

Every string that reaches the document comes from the validated model and is JSON-encoded by
``json.dumps``; host names and rule paths are checked again here (:func:`literal`,
:func:`host_names`), and what they become in a matcher is literal.
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from polyingress.core import (
    FALLBACK_NAME,
    Answer,
    Certificate,
    PathType,
    Route,
    RouteModel,
    VirtualHost,
    redirect_status,
)

__all__ = [
    "HTTPS_SERVER",
    "HTTP_SERVER",
    "KEY_PLACEHOLDER",
    "CaddyConfig",
    "RenderSettings",
    "caddy_can_load",
    "host_names",
    "literal",
    "path_pattern",
    "render",
]

HTTP_SERVER = "polyingress-http"
HTTPS_SERVER = "polyingress-https"
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

    ``admin_socket`` and ``storage_dir`` are absolute paths in the workdir; ``bind``,
    ``http_port`` and ``https_port`` are the listen address and ports; ``stream_close_delay``
    (seconds) is how long an upgraded connection (a WebSocket) is kept open after a new
    configuration replaced the one it came through.
    """

    admin_socket: str
    storage_dir: str
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
    fallback)."""

    document: dict[str, Any]
    text: str
    revision: str
    left_out: tuple[Certificate, ...] = ()

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


class _Renderer:
    def __init__(self, model: RouteModel, settings: RenderSettings) -> None:
        self.model = model
        self.settings = settings
        self.usable = {c.name: c for c in model.certificates if caddy_can_load(c)}

    def proxy(self, backend: str, port: int) -> dict[str, Any]:
        ready = self.model.backend(backend).ready_endpoints
        return {
            "handler": "reverse_proxy",
            "upstreams": [{"dial": e.hostport} for e in ready],
            "load_balancing": {"selection_policy": {"policy": "round_robin"}},
            # Named, so that Caddy loads it as a module and closes its idle upstream connections
            # when a new configuration replaces this one; its default transport is never
            # cleaned up, and every load left one keep-alive connection per upstream open for
            # two minutes (measured: a descriptor per load).
            "transport": {"protocol": "http"},
            # Caddy sets X-Forwarded-For, -Proto and -Host itself (replacing a client's own).
            "headers": {"request": {"set": {"X-Forwarded-Port": [str(port)]}}},
            "stream_close_delay": _duration(self.settings.stream_close_delay),
        }

    def answer(self, answer: Answer, port: int) -> dict[str, Any]:
        if answer.status is not None:
            return _status(answer.status)
        assert answer.backend is not None
        return self.proxy(answer.backend, port)

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

    def table(self, vhost: VirtualHost, port: int) -> list[dict[str, Any]]:
        routes: list[dict[str, Any]] = []
        # The core's order (stable: the first of equal paths stays first, as in PathTable).
        for route in sorted(vhost.routes, key=Route.sort_key):
            if not _ingress_row(route):
                # The core hands Gateway API rows only to a backend that declares "HTTPRoute";
                # this one declares no Gateway feature.
                raise ValueError(
                    f"{route.source}: a Gateway API row; the caddy backend serves Ingresses"
                )
            handle = [self.answer(self.model.outcome(route), port)]
            pattern = path_pattern(route)
            if pattern is None:
                routes.append({"handle": handle, "terminal": True})
                return routes  # Prefix "/" matches every path: nothing after it is reached
            routes.append(
                {
                    "match": [_regexp("{http.request.uri}", pattern)],
                    "handle": handle,
                    "terminal": True,
                }
            )
        routes.append({"handle": [self.answer(self.model.outcome(None), port)], "terminal": True})
        return routes

    def server_routes(self, scheme: str) -> list[dict[str, Any]]:
        port = self.settings.http_port if scheme == "http" else self.settings.https_port
        routes = list(REQUEST_PATH_ROUTES)
        for vhost in self.model.vhosts:
            redirect = scheme == "http" and vhost.tls is not None and vhost.tls.ssl_redirect
            inner = self.redirect() if redirect else self.table(vhost, port)
            route: dict[str, Any] = {
                "handle": [{"handler": "subroute", "routes": inner}],
                "terminal": True,
            }
            if vhost.host is not None:
                route["match"] = [{"host": host_names(vhost)}]
            routes.append(route)
        if None not in self.model.vhost_index:
            routes.append({"handle": [self.answer(self.model.outcome(None), port)]})
        return routes

    def connection_policies(self, fallback: Certificate) -> list[dict[str, Any]]:
        """The certificate each SNI name gets: that of the virtual host the name selects (the
        core's ``select_vhost``), else the fallback. By content tag: a policy's certificate is
        chosen even where it does not cover the name, as on the other backends."""
        policies = []
        for vhost in self.model.vhosts:
            if vhost.host is None:
                continue
            cert = None
            if vhost.tls is not None and vhost.tls.certificate is not None:
                cert = self.usable.get(vhost.tls.certificate)
            policies.append(
                {
                    "match": {"sni": [vhost.host]},
                    "certificate_selection": {"any_tag": [_tag(cert or fallback)]},
                }
            )
        policies.append({"certificate_selection": {"any_tag": [_tag(fallback)]}})
        return policies


def _ingress_row(route: Route) -> bool:
    """A row an Ingress makes: a path, its type and one backend, nothing else."""
    return (
        route.backend is not None
        and not route.conditional
        and not route.split
        and route.status is None
        and route.redirect is None
        and route.rewrite is None
        and route.request_headers is None
        and route.response_headers is None
        and not route.mirrors
        and route.timeout is None
    )


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
    )
