"""RouteModel -> Traefik v3 dynamic configuration (file provider), with the core's exact semantics.

Pure: no disk, no processes. :func:`render` returns the configuration as a dict, its YAML text,
the certificate/key files the text refers to; the text includes the readiness probe router of
its own revision (:func:`probe_config`); ``apply.py`` writes them.

How the core's routing semantics become Traefik routers (Traefik docs, "Routing Configuration >
HTTP > Routing > Rules & Priority", doc.traefik.io/traefik/reference/routing-configuration/
http/routing/rules-and-priority/):

* Every row of a virtual host's table is one router per entry point. Exact ``/p`` is
  ``Path(`/p`)``; Prefix ``/foo`` is ``Path(`/foo`) || PathPrefix(`/foo/`)`` because
  ``PathPrefix`` is a plain string prefix ("Match `/products` ... but also
  `/products-for-sale`"); Prefix ``/`` is ``PathPrefix(`/`)``.
* Host ``a.com`` is ``Host(`a.com`)``. A single-label wildcard ``*.foo.com`` is
  ``HostRegexp(`^[^.]+\\.foo\\.com\\.?$`)``: v3 takes a Go regexp, matched against the
  lowercased host without its port; ``\\.?`` accepts a fully qualified request host
  (``bar.foo.com.``), which ``Host`` also accepts and the core strips. ``Host(`*.foo.com`)``
  is not used: only Traefik v3.7 and later have it. Everything used here works since v3.0.
* Traefik sorts routers by priority, by default the rule's length, and the order of equal
  priorities is unspecified. Every router gets an explicit priority from the model instead
  (see :func:`_priority`): a band per host kind (exact > wildcard > catch-all), and inside a
  band Exact above Prefix, longer paths above shorter ones. Two routers that can match the same
  request never share a priority.
* A request picks ONE virtual host; in Traefik, a request no router of its host matches falls
  to the next lower band. For a wildcard host, or an exact host that no wildcard host
  matches, that is the catch-all host, whose table is exactly the host-less rows the core
  merged into this host (after the host's own rows, which a merged row never beats): so only
  the host's own rows are rendered, which keeps the router count linear when host-less rules
  meet many hosts. An exact host below which a matching wildcard host waits gets all its rows
  plus a lowest-in-band "terminator" router, ``Host(...)`` alone, to the default backend or to
  the 404 route, so nothing falls through to the wildcard. Below everything,
  ``PathPrefix(`/`)`` at priority 1 goes to the default backend when the model has one;
  otherwise Traefik's own 404 applies ("Getting Started > FAQ > 404 Not found": a request no
  router matches gets 404).

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
Reloaded"). The fallback certificate is ``tls.stores.default.defaultCertificate``, served when
no certificate matches the SNI. Traefik picks a certificate by SNI across all certificates, so a
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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from polyingress.core import (
    Certificate,
    GlobalSettings,
    HostKind,
    PathType,
    Route,
    RouteModel,
    VirtualHost,
    format_duration,
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
    "RenderSettings",
    "SecretFile",
    "TraefikConfig",
    "dump_yaml",
    "probe_config",
    "quote",
    "render",
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
    if not _QUOTABLE.match(value):
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
    return json.dumps(value)  # JSON strings are YAML double-quoted scalars


def _emit(value: dict[str, Any] | list[Any], indent: int, out: list[str]) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        for key in sorted(value):
            _emit_entry(pad, _scalar(key), value[key], indent, out)
        return
    for item in value:
        if isinstance(item, dict) and item:
            for n, key in enumerate(sorted(item)):
                lead = pad + ("- " if n == 0 else "  ")
                _emit_entry(lead, _scalar(key), item[key], indent + 1, out)
        else:
            out.append(f"{pad}- {_scalar(item)}\n")


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
    JSON-quoted; the tests load every output back with PyYAML and compare it to the dict.
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


def _regex_escape(name: str) -> str:
    # Hosts are [a-z0-9.-] (core validation); '.' is the only regexp metacharacter among them.
    return name.replace(".", "\\.")


def _host_match(vhost: VirtualHost) -> str | None:
    if vhost.host is None:
        return None
    suffix = vhost.wildcard_suffix
    if suffix is None:
        return f"Host({quote(vhost.host)})"
    return f"HostRegexp({quote('^[^.]+' + _regex_escape('.' + suffix + '.') + '?$')})"


def _path_match(route: Route) -> str:
    if route.path_type is PathType.EXACT:
        return f"Path({quote(route.path)})"
    if route.path == "/":
        return f"PathPrefix({quote('/')})"
    return f"Path({quote(route.path)}) || PathPrefix({quote(route.path + '/')})"


def _and(host: str | None, path: str) -> str:
    if host is None:
        return path
    if "||" in path:
        return f"{host} && ({path})"
    return f"{host} && {path}"


_BAND = 2 * _PATH_BOUND + 5
_KIND_BASE = {HostKind.ANY: 0, HostKind.WILDCARD: _BAND, HostKind.EXACT: 2 * _BAND}


def _priority(kind: HostKind, role: str, route: Route | None = None) -> int:
    """Explicit priority: band by host kind, then redirect > Exact > Prefix > terminator.

    Offsets inside a band: terminator 1, Prefix 2 + len (3 .. L+2), Exact L + 3 + len
    (L+4 .. 2L+3), redirect 2L + 4, with L = the longest path the core accepts. Routers of the
    same band and offset never overlap: different hosts of one kind are disjoint, and two
    different paths of one type and length cannot both match one request. The probe is above
    every band.
    """
    if role == "probe":
        return 3 * _BAND + 1
    base = _KIND_BASE[kind]
    if role == "terminator":
        return base + 1
    if role == "redirect":
        return base + 2 * _PATH_BOUND + 4
    assert route is not None
    length = min(len(route.path), _PATH_BOUND)
    if route.path_type is PathType.EXACT:
        return base + _PATH_BOUND + 3 + length
    return base + 2 + length


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
) -> tuple[tuple[Route, ...], bool]:
    """The rows to render for ``vhost`` and whether it needs a terminator router.

    See the module docstring: own rows only where falling through reaches the catch-all host;
    the merged rows are checked against that host's table, so a model built otherwise than by
    the core (merged rows that are not the catch-all host's) is still rendered exactly.
    """
    if vhost.host is None:
        return vhost.routes, False
    covers_all = any(r.path_type is PathType.PREFIX and r.path == "/" for r in vhost.routes)
    # The host the core would select for these names without this one (RouteModel's rule).
    below = model.fallback_host(vhost)
    shadowed = below is not None and below.host is not None  # a wildcard waits below
    merged = [r for r in vhost.routes if r.from_catch_all]
    if not shadowed and all((r.path, r.path_type, r.backend) in catch_all for r in merged):
        return tuple(r for r in vhost.routes if not r.from_catch_all), False
    return vhost.routes, below is not None and not covers_all


def render(model: RouteModel, settings: RenderSettings, fallback: Certificate) -> TraefikConfig:
    """The dynamic configuration serving ``model``; equal inputs give byte-identical text."""
    default_service = model.default_backend
    routers: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def add(
        entrypoint: str,
        vhost_host: str | None,
        kind: str,
        path: str | None,
        router: dict[str, Any],
    ) -> None:
        router["entryPoints"] = [entrypoint]
        if entrypoint == WEBSECURE:
            router["tls"] = {}
        key = (entrypoint, vhost_host, kind, path)
        routers.append((_router_name_base(entrypoint, vhost_host, kind, path), key, router))

    any_host = model.vhost_index.get(None)
    catch_all = frozenset(
        (r.path, r.path_type, r.backend) for r in (any_host.routes if any_host else ())
    )
    for vhost in model.vhosts:
        host_match = _host_match(vhost)
        redirect = vhost.tls is not None and vhost.tls.ssl_redirect
        rows, terminator = _table(vhost, model, catch_all)
        for entrypoint in (WEB, WEBSECURE):
            if entrypoint == WEB and redirect:
                assert host_match is not None  # TLS bindings always name a host
                add(
                    entrypoint,
                    vhost.host,
                    "redirect",
                    None,
                    {
                        "rule": host_match,
                        "priority": _priority(vhost.kind, "redirect"),
                        "middlewares": [MIDDLEWARE_REDIRECT],
                        "service": SERVICE_UNAVAILABLE,
                    },
                )
                continue
            for route in rows:
                kind = "exact" if route.path_type is PathType.EXACT else "prefix"
                add(
                    entrypoint,
                    vhost.host,
                    kind,
                    route.path,
                    {
                        "rule": _and(host_match, _path_match(route)),
                        "priority": _priority(vhost.kind, "route", route),
                        "middlewares": [FORWARDED_PORT[entrypoint]],
                        "service": route.backend,
                    },
                )
            if terminator:
                assert host_match is not None
                unmatched = [
                    FORWARDED_PORT[entrypoint] if default_service else MIDDLEWARE_NOT_FOUND
                ]
                add(
                    entrypoint,
                    vhost.host,
                    "unmatched",
                    None,
                    {
                        "rule": host_match,
                        "priority": _priority(vhost.kind, "terminator"),
                        "middlewares": unmatched,
                        "service": default_service or SERVICE_UNAVAILABLE,
                    },
                )

    if default_service is not None:
        for entrypoint in (WEB, WEBSECURE):
            add(
                entrypoint,
                None,
                "default-backend",
                None,
                {
                    "rule": f"PathPrefix({quote('/')})",
                    "priority": _priority(HostKind.ANY, "terminator"),
                    "middlewares": [FORWARDED_PORT[entrypoint]],
                    "service": default_service,
                },
            )

    names = _unique_names((base, key) for base, key, _r in routers)
    http_routers = {names[key]: router for _base, key, router in routers}

    services: dict[str, Any] = {SERVICE_UNAVAILABLE: {"weighted": {"services": []}}}
    for backend in model.backends:
        ready = backend.ready_endpoints
        if ready:
            services[backend.name] = {
                "loadBalancer": {
                    "servers": [{"url": f"http://{e.hostport}"} for e in ready],
                    "serversTransport": SERVERS_TRANSPORT,
                }
            }
        else:
            services[backend.name] = {"weighted": {"services": []}}

    redirect_port = settings.redirect_port or settings.https_port
    redirect_scheme: dict[str, Any] = {"scheme": "https", "permanent": True}
    if redirect_port != 443:
        redirect_scheme["port"] = str(redirect_port)
    middlewares: dict[str, Any] = {
        MIDDLEWARE_NOT_FOUND: {
            "ipAllowList": {"sourceRange": [NEVER_A_CLIENT], "rejectStatusCode": 404}
        },
    }
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
    default_entry, fallback_files = _cert_files(fallback, settings)
    files.extend(fallback_files)

    tls: dict[str, Any] = {"stores": {"default": {"defaultCertificate": default_entry}}}
    if certificates:
        tls["certificates"] = certificates

    http: dict[str, Any] = {
        "services": services,
        "middlewares": middlewares,
        "serversTransports": {SERVERS_TRANSPORT: servers_transport(model.settings)},
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
    draft = dump_yaml(with_probe(config, probe_config(placeholder)))
    revision = hashlib.sha256(draft.encode()).hexdigest()[:_REVISION_LENGTH]
    rule = _probe_rule(placeholder)
    if draft.count(rule) == 1:
        text = draft.replace(rule, _probe_rule(revision))
    else:  # pragma: no cover - only if a routing rule quoted the probe's own rule
        text = dump_yaml(with_probe(config, probe_config(revision)))
    return TraefikConfig(
        config=config,
        text=text,
        files=tuple(files),
        revision=revision,
        probe=probe_config(revision),
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


def probe_config(revision: str) -> dict[str, Any]:
    """The probe: one router above every other, answering 202 for this revision only.

    It is part of the one dynamic file (an earlier release wrote it to a second file, written
    after the main one, so Traefik built every change twice): when ``GET /<revision>`` (Host
    ``polyingress-probe.invalid``, a reserved name, RFC 2606) answers 202, the file of that
    revision is loaded. The 202 comes from an ``ipAllowList`` that refuses every client (as for
    the 404), so nothing is proxied; the router names the file's always-empty service.
    """
    return {
        "http": {
            "routers": {
                MIDDLEWARE_PROBE: {
                    "entryPoints": [WEB],
                    "rule": _probe_rule(revision),
                    "priority": _priority(HostKind.ANY, "probe"),
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
