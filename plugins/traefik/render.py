"""RouteModel -> Traefik v3 dynamic configuration (file provider), with the core's exact semantics.

Pure: no disk, no processes. :func:`render` returns the configuration as a dict, its YAML text,
the certificate/key files the text refers to; the text includes the readiness probe router of
its own revision (:func:`probe_config`); ``apply.py`` writes them.

How the core's routing semantics become Traefik routers (Traefik docs, "Routing Configuration >
HTTP > Routing > Rules & Priority", doc.traefik.io/traefik/reference/routing-configuration/
http/routing/rules-and-priority/):

* Every row of a virtual host's table is one router per entry point (a Gateway API row only on
  the entry points of its listeners' schemes: ``web`` for HTTP, ``websecure`` for HTTPS).
  Exact ``/p`` is ``Path(`/p`)``; Prefix ``/foo`` is ``Path(`/foo`) || PathPrefix(`/foo/`)``
  because ``PathPrefix`` is a plain string prefix ("Match `/products` ... but also
  `/products-for-sale`"); Prefix ``/`` is ``PathPrefix(`/`)``. A Gateway API row's conditions
  follow: ``Method(...)``, ``Header(...)`` per header, ``Query(...)`` per parameter (values as
  backtick or Go double-quoted literals, :func:`literal`; rule paths with percent-encodings as
  Traefik's routing path, :func:`routing_path`).
* Host ``a.com`` is ``Host(`a.com`)``. A single-label wildcard ``*.foo.com`` is
  ``HostRegexp(`^[^.]+\\.foo\\.com\\.?$`)``: v3 takes a Go regexp, matched against the
  lowercased host without its port; ``\\.?`` accepts a fully qualified request host
  (``bar.foo.com.``), which ``Host`` also accepts and the core strips. ``Host(`*.foo.com`)``
  is not used: only Traefik v3.7 and later have it. Everything used here works since v3.0. A
  Gateway API wildcard (the model's suffix host ``**.foo.com``: one label or more) is
  ``HostRegexp(`^.+\\.foo\\.com\\.?$`)``.
* Traefik sorts routers by priority, by default the rule's length, and the order of equal
  priorities is unspecified. Every router gets an explicit priority from the model instead
  (:class:`Bands`): a band per host kind (exact > wildcard > suffix, the longer suffix first >
  catch-all), and inside a band Exact above Prefix, longer paths above shorter ones, and the
  rows of one path in the core's precedence. Two routers that can match the same request
  never share a priority.
* A request picks ONE virtual host; in Traefik, a request no router of its host matches falls
  to the next lower band. For a wildcard host, or an exact host that no wildcard host
  matches, that is the catch-all host, whose table is exactly the host-less rows the core
  merged into this host (after the host's own rows, which a merged row never beats): so only
  the host's own rows are rendered, which keeps the router count linear when host-less rules
  meet many hosts. That holds only while the catch-all host has Ingress rows alone and the
  host's own rows are unconditional (:func:`_table`). Otherwise, and for a host below which a
  matching wildcard or suffix host waits, the host gets all its rows plus a lowest-in-band
  "terminator" router, ``Host(...)`` alone, to the default backend or to the 404 route, so
  nothing falls through. Below everything, ``PathPrefix(`/`)`` at the catch-all band's
  terminator priority goes to the default backend when the model has one; otherwise Traefik's
  own 404 applies ("Getting Started > FAQ > 404 Not found": a request no router matches gets
  404).
* What a Gateway API row does besides routing: 500 (a rule without a valid backend) as the
  404 below, with ``rejectStatusCode: 500``; a weighted split is a ``weighted`` service of
  the backends with a weight and a ready endpoint; mirrors a ``mirroring`` service; header set
  and remove and the Host rewrite Traefik's ``headers`` middleware; the rest (header adds,
  redirects, path rewrites, the request timeout and proxy-send-timeout, the 500 share of an
  invalid reference in a split)
  polyingress's filters middleware, a local plugin (``filters.py`` says why).

404 and 503:

* 503, a backend without ready endpoints: its service is ``weighted`` with no child services.
  "FAQ > 503 Service Unavailable": Traefik answers 503 "when a Router has been matched, but
  there are no servers ready to handle the request ... when a service has been explicitly
  configured without servers". The FAQ's own example (``loadBalancer.servers`` empty) is
  rejected by the v3 file-provider schema (``servers`` is required with ``minItems: 1``);
  ``weighted.services`` may be empty, and an empty weighted round robin has no server
  (Traefik source: ``pkg/server/service/loadbalancer/wrr/wrr.go`` answers 503 "no available
  server"). The service keeps the backend's name, so endpoints coming back change only it.
* 404 where Traefik would otherwise pick another host's router: the middleware
  ``polyingress-not-found``, an ``ipAllowList`` whose only source range is
  ``255.255.255.255/32`` (the limited broadcast address, never the source of a TCP connection)
  with ``rejectStatusCode: 404`` ("Middlewares > IPAllowList": refused requests get
  ``rejectStatusCode``; the page's example rejects "with a 404 rather than a 403"; without
  ``ipStrategy`` the remote address is checked, so headers cannot open it). A router needs a
  service, so it names ``polyingress-unavailable`` (the empty weighted service), never reached.

TLS: every virtual host is served on both entry points, ``web`` and ``websecure`` (routers with
``tls: {}``), because the core's routing does not depend on the scheme. Certificates and keys
are files in ``RenderSettings.cert_dir`` listed under ``tls.certificates``; their names carry a
hash of their content, so a renewed certificate changes the configuration text (Traefik reloads
certificate files only when the configuration changes: "FAQ > Why Is My TLS Certificate Not
Reloaded"). ``tls.stores.default.defaultCertificate``, served when no certificate matches the
SNI, is the model's default certificate (an HTTPS listener's without hostname), else the
fallback certificate. Traefik picks a certificate by SNI across all certificates, so a
host whose binding has no valid Secret gets the fallback only when no other certificate covers
it. With ``ssl_redirect`` the host's only ``web`` router is ``Host(...)`` with the
``polyingress-redirect-https`` middleware: ``redirectScheme`` https, permanent, ``port`` unless
443. Traefik itself answers, so a plain-HTTP request never depends on the controller process.
It answers **301 to GET and 308 to every other method, HEAD included** (measured on Traefik
3.7.15; source ``pkg/middlewares/redirect/redirect.go``; the docs only say "permanent", and no
option changes the codes), which is the rule on every backend (the README's semantics table).
The Location keeps the request's host as the client wrote it (its case, a trailing dot) and
drops its port.

Proxied requests carry ``X-Forwarded-Port`` = the entry point's listen port (a ``headers``
middleware): Traefik itself takes the port of the Host header, else 80/443
(``pkg/middlewares/forwardedheaders``), which is not the port the client connected to.

Names: services are the backend names (``<ns>__<svc>__<port>``; ours contain no ``__``);
routers are ``<entrypoint>-<host>-<kind>-<path>`` reduced to ``[A-Za-z0-9.-]``, with ``_``
and a hash of the full key appended only where that reduction collides.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from polyingress.core import (
    BackendProtocol,
    Certificate,
    GlobalSettings,
    HostKind,
    PathType,
    RateLimit,
    Route,
    RouteModel,
    VirtualHost,
    admitted_networks,
    format_duration,
)

from .filters import (
    PLUGIN,
    cors_only_config,
    filter_config,
    filter_name,
    native_headers,
    timeout_ms,
)

__all__ = [
    "DYNAMIC_FILE",
    "MIDDLEWARE_NOT_FOUND",
    "MIDDLEWARE_REDIRECT",
    "PROBE_HOST",
    "PROBE_STATUS",
    "SERVERS_TRANSPORT",
    "SERVICE_UNAVAILABLE",
    "SETTINGS",
    "WEB",
    "WEBSECURE",
    "Bands",
    "RenderSettings",
    "SecretFile",
    "TraefikConfig",
    "dump_yaml",
    "literal",
    "probe_config",
    "quote",
    "render",
    "routing_path",
    "servers_transport",
    "with_probe",
]

DYNAMIC_FILE = "polyingress.yaml"
PROBE_HOST = "polyingress-probe.invalid"
PROBE_STATUS = 202
WEB = "web"
WEBSECURE = "websecure"
SERVICE_UNAVAILABLE = "polyingress-unavailable"
SERVERS_TRANSPORT = "polyingress"
MIDDLEWARE_NOT_FOUND = "polyingress-not-found"
MIDDLEWARE_REDIRECT = "polyingress-redirect-https"
MIDDLEWARE_PROBE = "polyingress-probe"
FORWARDED_PORT = {
    WEB: "polyingress-forwarded-port-web",
    WEBSECURE: "polyingress-forwarded-port-websecure",
}
NEVER_A_CLIENT = "255.255.255.255/32"

# The core rejects longer paths (validate.MAX_PATH_LENGTH); a fixed bound keeps every priority
# stable when a longer path than before appears in the model.
_PATH_BOUND = 2048
_NAME_MAX = 96
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9.-]+")
_QUOTABLE = re.compile(r"^[\x21-\x5f\x61-\x7e]+$")  # printable ASCII without space and backtick
# Plain YAML scalars: a letter first (so never a number, date or sexagesimal), then characters
# without meaning in YAML; minus the words YAML 1.1 or 1.2 read as booleans or null.
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderSettings:
    """What the configuration needs to know beyond the model.

    ``cert_dir`` is the absolute directory of the certificate and key files as Traefik sees it;
    ``http_port``/``https_port`` are the entry points' listen ports (sent as
    ``X-Forwarded-Port``); ``redirect_port`` goes into the HTTPS redirect's Location (default
    ``https_port``; 443 is left out).
    """

    cert_dir: str
    http_port: int = 80
    https_port: int = 443
    redirect_port: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretFile:
    """A certificate or key file, ``name`` relative to ``RenderSettings.cert_dir``."""

    name: str
    data: str
    is_key: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TraefikConfig:
    """The dynamic configuration: the routing (``config``), the files it names, and the probe.

    ``revision`` identifies the routing; ``probe`` is the router that answers ``GET /<revision>``
    with Host ``polyingress-probe.invalid`` by 202 (see :func:`probe_config`). ``text``, the one
    file written, holds both (``document``): Traefik builds a change once, and the probe answers
    exactly when the routing of its revision is loaded.
    """

    config: dict[str, Any]
    text: str
    files: tuple[SecretFile, ...]
    revision: str
    probe: dict[str, Any]

    @property
    def document(self) -> dict[str, Any]:
        """``text`` as a dict: the routing and the probe."""
        return with_probe(self.config, self.probe)


def quote(value: str) -> str:
    """The one way a string from the model reaches a Traefik rule: a backtick literal."""
    if not _QUOTABLE.fullmatch(value):
        raise ValueError(f"{value!r} cannot be placed in a Traefik rule")
    return f"`{value}`"


def _scalar(value: object) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    if not isinstance(value, str):
        raise TypeError(f"cannot write {type(value).__name__} to the Traefik configuration")
    if _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
        return value
    # JSON strings are YAML double-quoted scalars. "{" is written as the YAML escape \x7b:
    # Traefik's file provider runs every file through Go's text/template (with Sprig's
    # functions, env among them: pkg/provider/file/file.go, CreateConfiguration) before it
    # reads the YAML, so a "{{" from a value (a Gateway API header value may hold one) would be
    # executed, or break the whole file. No "{" of a value reaches the text.
    return json.dumps(value).replace("{", "\\x7b")


# A YAML mapping of more keys (routers, services, middlewares of a large model) is written as a
# merge of mappings of half as many keys on average (``dump_yaml`` says why).
MAPPING_CHUNK = 256


def _emit(value: dict[str, Any] | list[Any], indent: int, out: list[str]) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        keys = sorted(value)
        if len(keys) > MAPPING_CHUNK:
            out.append(f"{pad}<<:\n")  # a plain <<, the merge key (a quoted one is a string)
            _emit(_chunks(value, keys), indent, out)
            return
        for key in keys:
            _emit_entry(pad, _scalar(key), value[key], indent, out)
        return
    for item in value:
        if isinstance(item, dict) and item:
            for n, key in enumerate(sorted(item)):
                lead = pad + ("- " if n == 0 else "  ")
                _emit_entry(lead, _scalar(key), item[key], indent + 1, out)
        else:
            out.append(f"{pad}- {_scalar(item)}\n")


def _chunks(value: dict[str, Any], keys: list[str]) -> list[dict[str, Any]]:
    """``value`` (its ``keys`` sorted) as mappings of ~MAPPING_CHUNK / 2 keys on average: each
    key goes to the mapping its CRC-32 picks among a power of two of them, so adding or removing
    one entry changes only its own lines of the text (cut by position, every later mapping's
    first line would move), and the count changes only when the size doubles or halves."""
    count = 1
    while count * (MAPPING_CHUNK // 2) < len(keys):
        count *= 2
    chunks: list[dict[str, Any]] = [{} for _ in range(count)]
    for key in keys:
        chunks[zlib.crc32(key.encode()) % count][key] = value[key]
    return [chunk for chunk in chunks if chunk]


def _emit_entry(lead: str, key: str, value: Any, indent: int, out: list[str]) -> None:
    if isinstance(value, dict) and value:
        out.append(f"{lead}{key}:\n")
        _emit(value, indent + 1, out)
    elif isinstance(value, list) and value:
        out.append(f"{lead}{key}:\n")
        _emit(value, indent, out)
    else:
        out.append(f"{lead}{key}: {_scalar(value)}\n")


def dump_yaml(config: dict[str, Any]) -> str:
    """Block-style YAML, keys sorted, for the dicts/lists/str/int/bool we render.

    Not ``yaml.dump``: PyYAML's representer took 5.4 s (libyaml emitter) for the generated
    10,000-Ingress world (~40,000 routers), this 0.3 s (measured on the dev VM). Strings are
    plain only when no YAML 1.1/1.2 resolver reads them as anything but a string, otherwise
    JSON-quoted, with every "{" escaped (``\x7b``: Traefik reads the file as a Go template
    first, see ``_scalar``); the tests load every output back with PyYAML and compare it to
    the dict.

    A mapping of more than ``MAPPING_CHUNK`` keys (the routers of a large model; services or
    middlewares as well) is written as the merge key ``<<`` whose value is a list of mappings
    of ~MAPPING_CHUNK / 2 keys on average, a key's mapping picked by its hash (``_chunks``: so
    one entry added or removed changes only its own lines): YAML's merge ("Merge Key Language-
    Independent Type for YAML 1.1"), which Traefik's decoder (gopkg.in/yaml.v3, through
    traefik/paerser's ``file.DecodeContent``) and PyYAML read as the one mapping. The reason is
    Traefik's cost: yaml.v3's ``decoder.mapping`` compares every pair of a mapping's keys to
    refuse duplicates, so the 20,003 routers of 10,000 HTTPRoutes took ~2*10^8 string
    comparisons, 5 of the 10.7 CPU seconds Traefik spent on one change (CPU profile of Traefik
    3.7.15 across an edit); in mappings of ~128 keys that part is gone (the merge itself is
    tracked in a hash map). Keys are unique, so the merge order does not matter; a model of at
    most ``MAPPING_CHUNK`` routers, services and middlewares is written exactly as before.
    """
    out: list[str] = []
    _emit(config, 0, out)
    return "".join(out)


# ConfigMap key -> what it sets in Traefik (BackendInfo.settings; the README's table). The
# dynamic configuration's serversTransport (every service uses it): a change needs no restart.
SETTINGS = {
    "proxy-connect-timeout": "serversTransport `forwardingTimeouts.dialTimeout`",
    "proxy-read-timeout": "serversTransport `forwardingTimeouts.responseHeaderTimeout` "
    "(until the response headers)",
    "upstream-keepalive-timeout": "serversTransport `forwardingTimeouts.idleConnTimeout`",
}


def servers_transport(settings: GlobalSettings) -> dict[str, Any]:
    """The one ``serversTransports`` entry: the ConfigMap's timeouts towards the endpoints."""
    return {
        "forwardingTimeouts": {
            "dialTimeout": format_duration(settings.proxy_connect_timeout),
            "responseHeaderTimeout": format_duration(settings.proxy_read_timeout),
            "idleConnTimeout": format_duration(settings.upstream_keepalive_timeout),
        }
    }


# The serversTransport of backends reached over TLS: the endpoint's certificate is not verified
# (ingress-nginx's backend-protocol HTTPS/GRPCS).
INSECURE_TRANSPORT = "polyingress-tls-unverified"
_SCHEMES = {
    BackendProtocol.HTTP: "http",
    BackendProtocol.H2C: "h2c",
    BackendProtocol.GRPC: "h2c",
    BackendProtocol.HTTPS: "https",
    BackendProtocol.GRPCS: "https",
}


def _protocol(protocol: BackendProtocol, transports: dict[str, Any]) -> tuple[str, str]:
    """The server URL scheme of a backend protocol (``h2c``: HTTP/2 in clear text; over
    ``https`` Traefik offers h2 and HTTP/1.1 by ALPN) and its serversTransport."""
    if not protocol.tls:
        return _SCHEMES[protocol], SERVERS_TRANSPORT
    if INSECURE_TRANSPORT not in transports:
        transports[INSECURE_TRANSPORT] = {
            **transports[SERVERS_TRANSPORT],
            "insecureSkipVerify": True,
        }
    return _SCHEMES[protocol], INSECURE_TRANSPORT


def _regex_escape(name: str) -> str:
    # Hosts are [a-z0-9.-] (core validation); '.' is the only regexp metacharacter among them.
    return name.replace(".", "\\.")


def _host_match(vhost: VirtualHost) -> str | None:
    if vhost.host is None:
        return None
    suffix = vhost.wildcard_suffix
    if suffix is None:
        return f"Host({quote(vhost.host)})"
    tail = _regex_escape("." + suffix + ".") + "?$"
    if vhost.kind is HostKind.SUFFIX:
        # The Gateway API wildcard: one label or more before the suffix.
        return f"HostRegexp({quote('^.+' + tail)})"
    return f"HostRegexp({quote('^[^.]+' + tail)})"


def literal(value: str) -> str:
    """Any string as a Traefik rule value: a backtick literal where one can hold it, else a Go
    double-quoted literal ("Rules: values are backticks or escaped double-quotes"; Traefik
    reads them with ``strconv.Unquote``), ``\\`` and ``"`` escaped, every byte outside
    printable ASCII as ``\\xNN``."""
    if _QUOTABLE.fullmatch(value):
        return f"`{value}`"
    out = ['"']
    for char in value:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code <= 0x7E:
            out.append(char)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        else:
            raise ValueError(f"{value!r} cannot be placed in a Traefik rule")
    out.append('"')
    return "".join(out)


# Traefik's routing path (pkg/muxer/http/mux.go, withRoutingPath): the escaped path with every
# percent-encoding decoded except the reserved characters' and "%" itself.
_TRAEFIK_KEEPS_ENCODED = frozenset(
    [
        "3A",
        "2F",
        "3F",
        "23",
        "5B",
        "5D",
        "40",
        "21",
        "24",
        "26",
        "27",
        "28",
        "29",
        "2A",
        "2B",
        "2C",
        "3B",
        "3D",
        "25",
    ]
)
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ENCODED = re.compile(r"%([0-9A-Fa-f]{2})")


def routing_path(path: str) -> str | None:
    """A rule path as Traefik's routers compare it, None when no request can match it.

    The core matches rule paths against the normalized request path
    (``normalize_request_path``), whose escapes are upper-case and never an unreserved
    character, a slash, a backslash or NUL: a rule path escaping those matches nothing. Traefik
    matches against its routing path, where every other escape but the reserved characters'
    is decoded."""
    if "%" not in path:
        return path
    parts: list[str] = []
    pos = 0
    for m in _ENCODED.finditer(path):
        code = m.group(1)
        char = chr(int(code, 16))
        if code != code.upper() or char in _UNRESERVED or code in ("2F", "5C", "00"):
            return None
        parts.append(path[pos : m.start()])
        parts.append("%" + code if code in _TRAEFIK_KEEPS_ENCODED else char)
        pos = m.end()
    parts.append(path[pos:])
    return "".join(parts)


def _path_match(route: Route) -> str | None:
    path = routing_path(route.path)
    if path is None:
        return None
    if route.path_type is PathType.EXACT:
        return f"Path({literal(path)})"
    if path == "/":
        return f"PathPrefix({quote('/')})"
    return f"Path({literal(path)}) || PathPrefix({literal(path + '/')})"


def _conditions(route: Route) -> list[str]:
    """A Gateway API row's conditions beyond the path (the scheme is the entry point's)."""
    out: list[str] = []
    if route.method is not None:
        out.append(f"Method({literal(route.method)})")
    for h in route.headers:
        if h.regex:
            # Go's regexp finds it in the value, as ingress-nginx's ngx.re.match (the regex is
            # in the common subset: core); "." keeps an empty value out (HeaderMatch.accepts).
            out.append(f"HeaderRegexp({literal(h.name)}, {quote('.')})")
            out.append(f"HeaderRegexp({literal(h.name)}, {literal(h.value)})")
        else:
            out.append(f"Header({literal(h.name)}, {literal(h.value)})")
    out.extend(f"Query({literal(q.name)}, {literal(q.value)})" for q in route.query)
    out.extend(
        f"HeaderRegexp({quote('Cookie')}, {literal(cookie_regex(c.name, c.value))})"
        for c in route.cookies
    )
    return out


_COOKIE_TOKEN = re.compile(r"[-._~A-Za-z0-9]+")


def _re2(char: str) -> str:
    return "\\" + char if char in ".-" else char


def cookie_regex(name: str, value: str) -> str:
    """An RE2 expression holding for a Cookie header whose first pair named ``name``
    (case-sensitive) has ``value`` (the core's Request.cookie). RE2 has no look-ahead, so
    "a pair before it is not named ``name``" is spelled out: the pair (blanks dropped) is
    empty, a proper prefix of ``name=``, or leaves ``name=`` at some character. Names and
    values are letters, digits and ``-._~`` (the translation's rule); nothing else is built
    into the expression."""
    for part in (name, value):
        if not _COOKIE_TOKEN.fullmatch(part):
            raise ValueError(f"{part!r} is not a cookie token of letters, digits and -._~")
    want = name + "="
    alternatives = [""]
    for i in range(len(want)):
        head = "".join(_re2(c) for c in want[:i])
        if i:
            alternatives.append(head)
        banned = ";[:blank:]" if i == 0 else ";"
        alternatives.append(f"{head}[^{banned}{_re2(want[i])}][^;]*")
    before = "(?:[[:blank:]]*(?:" + "|".join(alternatives) + ");)*"
    n = "".join(_re2(c) for c in name)
    v = "".join(_re2(c) for c in value)
    return f"^{before}[[:blank:]]*{n}={v}[[:blank:]]*(?:;|$)"


def _and(host: str | None, path: str, conditions: Iterable[str] = ()) -> str:
    parts = [host] if host is not None else []
    parts.append(path)
    parts.extend(conditions)
    if len(parts) > 1 and "||" in path:
        parts[1 if host is not None else 0] = f"({path})"
    return " && ".join(parts)


# In-band offsets (see Bands): terminator 1, Prefix 2 + len, Exact L + 3 + len, redirect
# 2L + 4, with L = the longest path the core accepts.
_BAND = 2 * _PATH_BOUND + 5


@dataclass(frozen=True, slots=True)
class Bands:
    """Router priorities for one model.

    Bands, from the lowest: the catch-all host, the suffix hosts (a band per suffix length, the
    longer above), the single-label wildcards, the exact hosts, then the probe above all. A
    request's most specific host is thus tried first, as the core selects it. Inside a band,
    each slot (terminator, each Prefix and Exact length, the HTTPS redirect) holds ``scale``
    priorities: the rows sharing one path (a Gateway API path with method, header and query
    conditions) take them in the core's precedence order (``Route.sort_key``), the first row the
    highest. ``scale`` is the smallest power of two that holds the most rows of one path, 1 for
    an Ingress-only model, so that an Ingress-only configuration keeps the priorities it always
    had. Two routers that can match the same request never share a priority.
    """

    scale: int
    suffixes: tuple[int, ...]  # the suffix hosts' suffix lengths, ascending

    @classmethod
    def of(cls, model: RouteModel) -> Bands:
        lengths = sorted(
            {len(v.wildcard_suffix or "") for v in model.vhosts if v.kind is HostKind.SUFFIX}
        )
        most = 1
        for vhost in model.vhosts:
            if len(vhost.routes) > 1 and any(r.conditional for r in vhost.routes):
                groups = Counter((r.path, r.path_type) for r in vhost.routes)
                most = max(most, *groups.values())
        return cls(scale=1 << (most - 1).bit_length(), suffixes=tuple(lengths))

    def _band(self, vhost: VirtualHost) -> int:
        kind = vhost.kind
        if kind is HostKind.ANY:
            return 0
        if kind is HostKind.SUFFIX:
            return 1 + self.suffixes.index(len(vhost.wildcard_suffix or ""))
        return len(self.suffixes) + (1 if kind is HostKind.WILDCARD else 2)

    @property
    def probe(self) -> int:
        return (len(self.suffixes) + 3) * _BAND * self.scale + 1

    def priority(
        self, vhost: VirtualHost | None, role: str, route: Route | None = None, rank: int = 0
    ) -> int:
        """``role``: "terminator", "redirect" or "route" (with the row and its rank among the
        rows of its path); ``vhost`` None is the catch-all's band."""
        scale = self.scale
        base = (self._band(vhost) if vhost is not None else 0) * _BAND * scale
        if role == "terminator":
            return base + scale
        if role == "redirect":
            return base + (2 * _PATH_BOUND + 4) * scale
        assert route is not None and 0 <= rank < scale
        length = min(len(route.path), _PATH_BOUND)
        slot = _PATH_BOUND + 3 + length if route.path_type is PathType.EXACT else 2 + length
        return base + slot * scale + (scale - 1 - rank)


def _slug(text: str) -> str:
    return _UNSAFE_NAME.sub("-", text).strip("-")


def _router_name_base(entrypoint: str, host: str | None, kind: str, path: str | None) -> str:
    host_part = "any" if host is None else host.replace("*", "wildcard")
    parts = [entrypoint, host_part, kind]
    if path is not None:
        parts.append(_slug(path) or "root")
    return _slug("-".join(parts))[:_NAME_MAX]


def _unique_names(keys: Iterable[tuple[str, tuple[Any, ...]]]) -> dict[tuple[Any, ...], str]:
    """Map each router key to its name; a hash suffix only where the reduced names collide."""
    by_base: dict[str, list[tuple[Any, ...]]] = {}
    for base, key in keys:
        by_base.setdefault(base, []).append(key)
    names: dict[tuple[Any, ...], str] = {}
    taken: set[str] = set()
    for base, group in by_base.items():
        if len(group) == 1:
            names[group[0]] = base
            taken.add(base)
    for base, group in by_base.items():
        if len(group) == 1:
            continue
        for key in group:
            digest = hashlib.sha256(repr(key).encode()).hexdigest()
            size = 8
            while f"{base}_{digest[:size]}" in taken:
                size += 4
            names[key] = f"{base}_{digest[:size]}"
            taken.add(names[key])
    return names


def _file_stem(cert: Certificate) -> str:
    digest = hashlib.sha256((cert.cert_pem + "\0" + cert.key_pem).encode()).hexdigest()
    return f"{cert.name}.{digest[:16]}"


def _with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _cert_files(
    cert: Certificate, settings: RenderSettings
) -> tuple[dict[str, str], list[SecretFile]]:
    stem = _file_stem(cert)
    entry = {
        "certFile": f"{settings.cert_dir}/{stem}.crt",
        "keyFile": f"{settings.cert_dir}/{stem}.key",
    }
    files = [
        SecretFile(name=f"{stem}.crt", data=_with_newline(cert.cert_pem), is_key=False),
        SecretFile(name=f"{stem}.key", data=_with_newline(cert.key_pem), is_key=True),
    ]
    return entry, files


def _table(
    vhost: VirtualHost,
    model: RouteModel,
    catch_all: frozenset[tuple[str, PathType, str | None]],
    catch_all_plain: bool,
) -> tuple[tuple[Route, ...], bool]:
    """The rows to render for ``vhost`` and whether it needs a terminator router.

    See the module docstring: own rows only where falling through reaches the catch-all host
    and gets what this host would answer. That holds when the catch-all host has Ingress rows
    only (``catch_all_plain``: a host-less HTTPRoute's rows are the catch-all's alone), this
    host's own rows are all unconditional (a merged row can then never outrank an own row; a
    conditional own row can be outranked by a longer merged path) and the merged rows are the
    catch-all host's (checked, so a model built otherwise than by the core is still rendered
    exactly).
    """
    if vhost.host is None:
        return vhost.routes, False
    covers_all = any(
        r.path_type is PathType.PREFIX and r.path == "/" and not r.conditional for r in vhost.routes
    )
    # The host the core would select for these names without this one (RouteModel's rule).
    below = model.fallback_host(vhost)
    shadowed = below is not None and below.host is not None  # a wildcard or suffix waits below
    merged = [r for r in vhost.routes if r.from_catch_all]
    if (
        not shadowed
        and catch_all_plain
        and not any(r.conditional for r in vhost.routes if not r.from_catch_all)
        and all((r.path, r.path_type, r.backend) in catch_all for r in merged)
    ):
        return tuple(r for r in vhost.routes if not r.from_catch_all), False
    return vhost.routes, below is not None and not covers_all


def _ranks(routes: tuple[Route, ...]) -> list[int]:
    """Each row's rank among the rows of its path (the table is in precedence order)."""
    seen: Counter[tuple[str, PathType]] = Counter()
    ranks = []
    for r in routes:
        ranks.append(seen[(r.path, r.path_type)])
        seen[(r.path, r.path_type)] += 1
    return ranks


def _split_service(
    route: Route, model: RouteModel, services: dict[str, Any]
) -> tuple[str, tuple[int, int]]:
    """The service of a weighted split, and the 500 share (weight, total) of its invalid
    references. Backends without a ready endpoint get no share; none left: 503, as the core
    answers when no backend of the split has one."""
    weights: dict[str, int] = {}
    fail = 0
    for share in route.split:
        if share.weight <= 0:
            continue
        if share.backend is None:
            fail += share.weight
            continue
        found = model.backend_index.get(share.backend)
        if found is not None and found.available:
            weights[share.backend] = weights.get(share.backend, 0) + share.weight
    if not weights:
        return SERVICE_UNAVAILABLE, (0, 0)
    total = fail + sum(weights.values())
    if len(weights) == 1:
        (name,) = weights
        return name, (fail, total)
    children = [{"name": name, "weight": weight} for name, weight in sorted(weights.items())]
    name = _content_name("polyingress-split", children)
    services[name] = {"weighted": {"services": children}}
    return name, (fail, total)


def _content_name(prefix: str, content: object) -> str:
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return f"{prefix}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _status_middleware(status: int, middlewares: dict[str, Any]) -> str:
    """An answer of the proxy's own with ``status`` (as the 404: see the module docstring)."""
    name = MIDDLEWARE_NOT_FOUND if status == 404 else f"polyingress-status-{status}"
    middlewares[name] = {
        "ipAllowList": {"sourceRange": [NEVER_A_CLIENT], "rejectStatusCode": status}
    }
    return name


def _timed(
    name: str,
    ms: int | None,
    services: dict[str, Any],
    transports: dict[str, Any],
    dial_ms: int | None = None,
) -> str:
    """A row's timeouts towards its backends: a copy of the service whose servers use a
    serversTransport waiting ``ms`` for the response headers (the ConfigMap's
    ``proxy-read-timeout`` is every other service's; a route's own timeout may be longer) and
    ``dial_ms`` for the connection (proxy-connect-timeout). The filters middleware bounds the
    whole request by ``ms``."""
    suffix = "".join(
        f"-{what}-{value}ms" for what, value in (("timeout", ms), ("dial", dial_ms)) if value
    )
    conf = services[name]
    if "loadBalancer" in conf:
        # Each backend's own transport (TLS or not), with the row's timeouts.
        own = conf["loadBalancer"].get("serversTransport", SERVERS_TRANSPORT)
        transport = f"{own}{suffix}" if own != SERVERS_TRANSPORT else f"polyingress{suffix}"
        if transport not in transports:
            base = transports[own]
            timeouts = dict(base["forwardingTimeouts"])
            if ms is not None:
                timeouts["responseHeaderTimeout"] = format_duration(ms)
            if dial_ms is not None:
                timeouts["dialTimeout"] = format_duration(dial_ms)
            transports[transport] = {**base, "forwardingTimeouts": timeouts}
        copy = f"{name}{suffix}"
        services[copy] = {"loadBalancer": {**conf["loadBalancer"], "serversTransport": transport}}
        return copy
    children = conf.get("weighted", {}).get("services") or []
    if not children:
        return name  # no server: 503 at once
    timed = [{**c, "name": _timed(c["name"], ms, services, transports, dial_ms)} for c in children]
    copy = f"{name}{suffix}"
    services[copy] = {"weighted": {"services": timed}}
    return copy


def _sticky(
    name: str, route: Route, scheme: str, services: dict[str, Any], cookie: dict[str, Any] | None
) -> str:
    """A copy of the service whose load balancers set a sticky cookie (cookie session
    affinity): ingress-nginx's attributes, HttpOnly, Secure on HTTPS unless the annotation
    says, Path the row's path unless given."""
    affinity = route.affinity
    assert affinity is not None
    if cookie is None:
        secure = affinity.secure if affinity.secure is not None else scheme == "https"
        cookie = {"name": affinity.name, "httpOnly": True, "secure": secure}
        cookie["path"] = affinity.path if affinity.path is not None else route.path
        if affinity.domain is not None:
            cookie["domain"] = affinity.domain
        if affinity.samesite is not None:
            cookie["sameSite"] = affinity.samesite.lower()
        if affinity.max_age is not None:
            cookie["maxAge"] = affinity.max_age
    conf = services[name]
    digest = hashlib.sha256(repr(sorted(cookie.items())).encode()).hexdigest()[:12]
    copy = f"{name}-sticky-{digest}"
    if "loadBalancer" in conf:
        services[copy] = {"loadBalancer": {**conf["loadBalancer"], "sticky": {"cookie": cookie}}}
        return copy
    children = conf.get("weighted", {}).get("services") or []
    if not children:
        return name  # no server: 503 at once
    sticky = [{**c, "name": _sticky(c["name"], route, scheme, services, cookie)} for c in children]
    services[copy] = {"weighted": {"services": sticky}}
    return copy


def _rate(rate: RateLimit, middlewares: dict[str, Any]) -> tuple[str, ...]:
    """Rate limits: ``inFlightReq`` (concurrent requests) and ``rateLimit`` (a token bucket of
    limit x multiplier refilled at the limit, as nginx's ``burst ... nodelay``), per client
    address (their default source: the connection's), named by the Ingress so that its paths
    share the counters. Traefik answers 429 where nginx answers 503 (a documented partial)."""
    chain: list[str] = []
    zone = hashlib.sha256(rate.zone.encode()).hexdigest()[:16]
    if rate.connections is not None:
        name = f"polyingress-inflight-{zone}-{int(rate.connections)}"
        middlewares[name] = {"inFlightReq": {"amount": int(rate.connections)}}
        chain.append(name)
    for limit, period in ((rate.rpm, "1m"), (rate.rps, "1s")):
        if limit is None:
            continue
        name = f"polyingress-rate-{zone}-{int(limit)}-{period}-{rate.burst_multiplier}"
        middlewares[name] = {
            "rateLimit": {"average": int(limit), "period": period, "burst": rate.burst(limit)}
        }
        chain.append(name)
    return tuple(chain)


def _access(route: Route, middlewares: dict[str, Any]) -> tuple[str, ...]:
    """A row's policy: its body size as a ``buffering`` middleware, its source ranges, an
    ``ipAllowList``, then its basic authentication, ``basicAuth``. The source ranges: an
    ``ipAllowList`` (403 by default; without ``ipStrategy`` the
    connection's address is checked) of the networks they admit, the allow list (else every
    address) without the denied networks (:func:`admitted_networks`); none admitted: the
    address no connection comes from."""
    policy = route.policy
    if policy is None:
        return ()
    chain: list[str] = list(_rate(policy.rate, middlewares)) if policy.rate is not None else []
    if policy.max_body:
        # Traefik's buffering: 413 for a body above it, a Content-Length at once, a chunked
        # body once that much has arrived (the backend gets nothing of it).
        conf: dict[str, Any] = {"buffering": {"maxRequestBodyBytes": int(policy.max_body)}}
        name = _content_name("polyingress-body", conf)
        middlewares[name] = conf
        chain.append(name)
    if policy.sources is not None:
        admitted = list(admitted_networks(policy.sources)) or [NEVER_A_CLIENT]
        conf = {"ipAllowList": {"sourceRange": admitted, "rejectStatusCode": 403}}
        name = _content_name("polyingress-sources", conf)
        middlewares[name] = conf
        chain.append(name)
    if policy.auth is not None:
        # basicAuth checks bcrypt and md5-crypt (the core accepts no other hash); its 401
        # says WWW-Authenticate: Basic realm="<realm>". The Authorization header is passed on,
        # as nginx does.
        users = [f"{user}:{digest}" for user, digest in policy.auth.users]
        conf = {"basicAuth": {"users": users, "realm": policy.auth.realm, "removeHeader": False}}
        name = _content_name("polyingress-auth", conf)
        middlewares[name] = conf
        chain.append(name)
    return tuple(chain)


def _mirror_percents(route: Route) -> list[dict[str, Any]]:
    """The mirrors of a ``mirroring`` service: each with its share as Traefik's integer
    ``percent`` (HTTPRouteRequestPercentageMirror; a share that is no whole percent never
    reaches here: the backend does not declare polyingress.io/MirrorFraction). Traefik counts
    (copied * 100 < seen * percent), so the share is exact in any run of requests."""
    fractions = route.mirror_fractions or tuple((1, 1) for _m in route.mirrors)
    out = []
    for mirror, (n, d) in zip(route.mirrors, fractions, strict=True):
        if (100 * n) % d:
            raise ValueError(f"{route.source}: a mirror share of {n}/{d} is no whole percent")
        out.append({"name": mirror, "percent": 100 * n // d})
    return out


def _row_target(
    route: Route,
    scheme: str,
    model: RouteModel,
    services: dict[str, Any],
    middlewares: dict[str, Any],
    transports: dict[str, Any],
) -> tuple[tuple[str, ...], str, bool]:
    """A row's middlewares (after the entry point's forwarded-port one when the row proxies),
    its service, and whether it proxies, on an entry point of ``scheme``."""
    if route.status is not None:
        return (_status_middleware(route.status, middlewares),), SERVICE_UNAVAILABLE, False
    if route.redirect is not None:
        config = filter_config(route, scheme)
        assert config is not None
        name = filter_name(config)
        middlewares[name] = {"plugin": {PLUGIN: config}}
        return (name,), SERVICE_UNAVAILABLE, False
    fail = (0, 0)
    if route.split:
        service, fail = _split_service(route, model, services)
    else:
        assert route.backend is not None
        service = route.backend
    chain: tuple[str, ...] = _access(route, middlewares)
    cors_first = route.cors is not None and (bool(chain) or service == SERVICE_UNAVAILABLE)
    if cors_first:
        config = cors_only_config(route)
        assert config is not None
        name = filter_name(config)
        middlewares[name] = {"plugin": {PLUGIN: config}}
        chain = (name, *chain)
    if service == SERVICE_UNAVAILABLE:
        return chain, service, True  # 503: nothing is proxied (after the policy's 403)
    if route.timeout is not None or route.connect_timeout is not None:
        service = _timed(
            service,
            None if route.timeout is None else timeout_ms(route.timeout),
            services,
            transports,
            None if route.connect_timeout is None else timeout_ms(route.connect_timeout),
        )
    if route.affinity is not None:
        service = _sticky(service, route, scheme, services, None)
    native = native_headers(route)
    if native is not None:
        name = _content_name("polyingress-headers", native)
        middlewares[name] = {"headers": native}
        chain = (*chain, name)
    config = filter_config(route, scheme, fail, cors=not cors_first)
    if config is not None:
        name = filter_name(config)
        middlewares[name] = {"plugin": {PLUGIN: config}}
        chain = (*chain, name)
    if route.mirrors:
        mirrors = _mirror_percents(route)
        mirroring = {"service": service, "mirrors": mirrors}
        service = _content_name("polyingress-mirror", mirroring)
        services[service] = {"mirroring": mirroring}
    return chain, service, True


def render(model: RouteModel, settings: RenderSettings, fallback: Certificate) -> TraefikConfig:
    """The dynamic configuration serving ``model``; equal inputs give byte-identical text."""
    default_service = model.default_backend
    bands = Bands.of(model)
    routers: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    services: dict[str, Any] = {SERVICE_UNAVAILABLE: {"weighted": {"services": []}}}
    middlewares: dict[str, Any] = {
        MIDDLEWARE_NOT_FOUND: {
            "ipAllowList": {"sourceRange": [NEVER_A_CLIENT], "rejectStatusCode": 404}
        },
    }

    def add(key: tuple[Any, ...], base: str, router: dict[str, Any]) -> None:
        entrypoint = key[0]
        router["entryPoints"] = [entrypoint]
        if entrypoint == WEBSECURE:
            router["tls"] = {}
        routers.append((base, key, router))

    transports: dict[str, Any] = {SERVERS_TRANSPORT: servers_transport(model.settings)}
    for backend in model.backends:
        ready = backend.ready_endpoints
        if ready:
            scheme, transport = _protocol(backend.protocol, transports)
            services[backend.name] = {
                "loadBalancer": {
                    "servers": [{"url": f"{scheme}://{e.hostport}"} for e in ready],
                    "serversTransport": transport,
                }
            }
        else:
            services[backend.name] = {"weighted": {"services": []}}
    # A row's middlewares and service, once for both entry points (its redirect's Location
    # alone depends on the scheme): (id of the row, the scheme or "") -> _row_target's result.
    targets: dict[tuple[int, str], tuple[tuple[str, ...], str, bool]] = {}
    any_host = model.vhost_index.get(None)
    catch_all_rows = any_host.routes if any_host else ()
    catch_all = frozenset((r.path, r.path_type, r.backend) for r in catch_all_rows)
    catch_all_plain = all(r.source.kind == "Ingress" for r in catch_all_rows)
    for vhost in model.vhosts:
        host_match = _host_match(vhost)
        redirect = vhost.tls is not None and vhost.tls.ssl_redirect
        rows, terminator = _table(vhost, model, catch_all, catch_all_plain)
        ranks = _ranks(rows)
        for entrypoint in (WEB, WEBSECURE):
            scheme = "https" if entrypoint == WEBSECURE else "http"
            if entrypoint == WEB and redirect:
                assert host_match is not None  # TLS bindings always name a host
                add(
                    (entrypoint, vhost.host, "redirect", None),
                    _router_name_base(entrypoint, vhost.host, "redirect", None),
                    {
                        "rule": host_match,
                        "priority": bands.priority(vhost, "redirect"),
                        "middlewares": [MIDDLEWARE_REDIRECT],
                        "service": SERVICE_UNAVAILABLE,
                    },
                )
                continue
            for route, rank in zip(rows, ranks, strict=True):
                if scheme not in route.schemes:
                    continue
                path = _path_match(route)
                if path is None:
                    continue  # its path matches no request
                kind = "exact" if route.path_type is PathType.EXACT else "prefix"
                key: tuple[Any, ...] = (entrypoint, vhost.host, kind, route.path)
                if route.conditional:
                    conditions: tuple[Any, ...] = (
                        route.method,
                        route.headers,
                        route.query,
                        route.schemes,
                    )
                    if route.cookies:  # (only then: the other routers keep their names)
                        conditions = (*conditions, route.cookies)
                    key = (*key, conditions)
                per_scheme = route.redirect is not None or route.affinity is not None
                memo = (id(route), scheme if per_scheme else "")
                target = targets.get(memo)
                if target is None:
                    target = _row_target(route, scheme, model, services, middlewares, transports)
                    targets[memo] = target
                extra, service, proxied = target
                chain = [FORWARDED_PORT[entrypoint], *extra] if proxied else list(extra)
                add(
                    key,
                    _router_name_base(entrypoint, vhost.host, kind, route.path),
                    {
                        "rule": _and(host_match, path, _conditions(route)),
                        "priority": bands.priority(vhost, "route", route, rank),
                        "middlewares": chain,
                        "service": service,
                    },
                )
            if terminator:
                assert host_match is not None
                unmatched = [
                    FORWARDED_PORT[entrypoint] if default_service else MIDDLEWARE_NOT_FOUND
                ]
                add(
                    (entrypoint, vhost.host, "unmatched", None),
                    _router_name_base(entrypoint, vhost.host, "unmatched", None),
                    {
                        "rule": host_match,
                        "priority": bands.priority(vhost, "terminator"),
                        "middlewares": unmatched,
                        "service": default_service or SERVICE_UNAVAILABLE,
                    },
                )

    if default_service is not None:
        for entrypoint in (WEB, WEBSECURE):
            add(
                (entrypoint, None, "default-backend", None),
                _router_name_base(entrypoint, None, "default-backend", None),
                {
                    "rule": f"PathPrefix({quote('/')})",
                    "priority": bands.priority(None, "terminator"),
                    "middlewares": [FORWARDED_PORT[entrypoint]],
                    "service": default_service,
                },
            )

    names = _unique_names((base, key) for base, key, _r in routers)
    http_routers = {names[key]: router for _base, key, router in routers}

    redirect_port = settings.redirect_port or settings.https_port
    redirect_scheme: dict[str, Any] = {"scheme": "https", "permanent": True}
    if redirect_port != 443:
        redirect_scheme["port"] = str(redirect_port)
    if any(v.tls is not None and v.tls.ssl_redirect for v in model.vhosts):
        middlewares[MIDDLEWARE_REDIRECT] = {"redirectScheme": redirect_scheme}
    for entrypoint, port in ((WEB, settings.http_port), (WEBSECURE, settings.https_port)):
        headers = {"customRequestHeaders": {"X-Forwarded-Port": str(port)}}
        middlewares[FORWARDED_PORT[entrypoint]] = {"headers": headers}

    files: list[SecretFile] = []
    certificates = []
    for cert in model.certificates:
        entry, cert_files = _cert_files(cert, settings)
        certificates.append(entry)
        files.extend(cert_files)
    # The model's default certificate (an HTTPS listener's without hostname; its files are
    # written above), else the fallback.
    default = model.certificate_index.get(model.default_certificate or "")
    default_entry, fallback_files = _cert_files(default or fallback, settings)
    if default is None:
        files.extend(fallback_files)

    tls: dict[str, Any] = {"stores": {"default": {"defaultCertificate": default_entry}}}
    if certificates:
        tls["certificates"] = certificates

    http: dict[str, Any] = {
        "services": services,
        "middlewares": middlewares,
        "serversTransports": transports,
    }
    if http_routers:
        # Traefik 3.7 rejects the whole file for an empty mapping here ("routers cannot be a
        # standalone element"): a model without routes has no routers of its own (the probe's
        # router is added below).
        http["routers"] = http_routers
    config: dict[str, Any] = {"http": http, "tls": tls}
    # One serialization: the document is dumped with a placeholder revision, whose text is
    # hashed; the placeholder (in the probe's rule only: a hex digest has no "x") is then
    # replaced by that hash. Dumping 10,000 Ingresses twice would take ~0.3 s more per change.
    placeholder = "x" * _REVISION_LENGTH
    draft = dump_yaml(with_probe(config, probe_config(placeholder, bands.probe)))
    revision = hashlib.sha256(draft.encode()).hexdigest()[:_REVISION_LENGTH]
    rule = _probe_rule(placeholder)
    if draft.count(rule) == 1:
        text = draft.replace(rule, _probe_rule(revision))
    else:  # pragma: no cover - only if a routing rule quoted the probe's own rule
        text = dump_yaml(with_probe(config, probe_config(revision, bands.probe)))
    return TraefikConfig(
        config=config,
        text=text,
        files=tuple(files),
        revision=revision,
        probe=probe_config(revision, bands.probe),
    )


_REVISION_LENGTH = 20


def _probe_rule(revision: str) -> str:
    return f"Host({quote(PROBE_HOST)}) && Path({quote('/' + revision)})"


def with_probe(config: dict[str, Any], probe: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the probe's routers and middlewares added (their names are reserved)."""
    http = dict(config.get("http", {}))
    for section, items in probe["http"].items():
        http[section] = {**http.get(section, {}), **items}
    return {**config, "http": http}


def probe_config(revision: str, priority: int | None = None) -> dict[str, Any]:
    """The probe: one router above every other, answering 202 for this revision only.

    It is part of the one dynamic file (an earlier release wrote it to a second file, written
    after the main one, so Traefik built every change twice): when ``GET /<revision>`` (Host
    ``polyingress-probe.invalid``, a reserved name, RFC 2606) answers 202, the file of that
    revision is loaded. The 202 comes from an ``ipAllowList`` that refuses every client (as for
    the 404), so nothing is proxied; the router names the file's always-empty service.
    ``priority`` is above every other router's (``Bands.probe`` of the model; by default an
    Ingress-only model's).
    """
    if priority is None:
        priority = Bands(scale=1, suffixes=()).probe
    return {
        "http": {
            "routers": {
                MIDDLEWARE_PROBE: {
                    "entryPoints": [WEB],
                    "rule": _probe_rule(revision),
                    "priority": priority,
                    "middlewares": [MIDDLEWARE_PROBE],
                    "service": SERVICE_UNAVAILABLE,
                }
            },
            "middlewares": {
                MIDDLEWARE_PROBE: {
                    "ipAllowList": {
                        "sourceRange": [NEVER_A_CLIENT],
                        "rejectStatusCode": PROBE_STATUS,
                    }
                }
            },
        }
    }
