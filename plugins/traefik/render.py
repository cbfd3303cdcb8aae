"""RouteModel -> Traefik v3 dynamic configuration (file provider), with the core's exact semantics.

Pure: no disk, no processes. :func:`render` returns the configuration as a dict, its YAML text
and the certificate/key files the text refers to; ``apply.py`` writes them.

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
  is not used: only Traefik releases newer than v3.0 have it.
* Traefik sorts routers by priority, by default the rule's length, and the order of equal
  priorities is unspecified. Every router gets an explicit priority from the model instead
  (see :func:`_priority`): a band per host kind (exact > wildcard > catch-all), and inside a
  band Exact above Prefix, longer paths above shorter ones. Two routers that can match the same
  request never share a priority.
* A request picks ONE virtual host: when an exact host's table has no match, the request must
  not fall through to a wildcard or catch-all host. Such a host (and a wildcard host below
  which a catch-all host exists) gets a lowest-in-band "terminator" router, ``Host(...)``
  alone, to the default backend or to the 404 route. A host whose table has Prefix ``/``
  needs none. Below everything, ``PathPrefix(`/`)`` at priority 1 goes to the default backend
  when the model has one; otherwise Traefik's own 404 applies ("Getting Started > FAQ > 404
  Not found": a request no router matches gets 404).

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
``polyingress-redirect-https`` middleware (``redirectScheme`` https, permanent): Traefik sends
301 for GET and 308 for other methods (source ``pkg/middlewares/redirect/redirect.go``; the
docs only say "permanent").

Names: services are the backend names (``<ns>__<svc>__<port>``; ours contain no ``__``);
routers are ``<entrypoint>-<host>-<kind>-<path>`` reduced to ``[A-Za-z0-9.-]``, with ``_``
and a hash of the full key appended only where that reduction collides.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from polyingress.core import Certificate, HostKind, PathType, Route, RouteModel, VirtualHost

__all__ = [
    "DYNAMIC_FILE",
    "MIDDLEWARE_NOT_FOUND",
    "MIDDLEWARE_REDIRECT",
    "SERVICE_UNAVAILABLE",
    "WEB",
    "WEBSECURE",
    "RenderSettings",
    "SecretFile",
    "TraefikConfig",
    "dump_yaml",
    "quote",
    "render",
]

DYNAMIC_FILE = "polyingress.yaml"
WEB = "web"
WEBSECURE = "websecure"
SERVICE_UNAVAILABLE = "polyingress-unavailable"
MIDDLEWARE_NOT_FOUND = "polyingress-not-found"
MIDDLEWARE_REDIRECT = "polyingress-redirect-https"
NEVER_A_CLIENT = "255.255.255.255/32"

# The core rejects longer paths (validate.MAX_PATH_LENGTH); a fixed bound keeps every priority
# stable when a longer path than before appears in the model.
_PATH_BOUND = 2048
_NAME_MAX = 96
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9.-]+")
_QUOTABLE = re.compile(r"^[\x21-\x5f\x61-\x7e]+$")  # printable ASCII without space and backtick

try:  # libyaml is several times faster; both dumpers give the same text for our documents
    _Dumper: Any = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Dumper = yaml.SafeDumper


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderSettings:
    """Where Traefik finds our files, and what the HTTPS redirect points at.

    ``cert_dir`` is the absolute directory of the certificate and key files as Traefik sees it.
    ``https_port`` goes into the redirect's Location (omitted when 443).
    """

    cert_dir: str
    https_port: int = 443


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretFile:
    """A certificate or key file, ``name`` relative to ``RenderSettings.cert_dir``."""

    name: str
    data: str
    is_key: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TraefikConfig:
    config: dict[str, Any]
    text: str
    files: tuple[SecretFile, ...]


def quote(value: str) -> str:
    """The one way a string from the model reaches a Traefik rule: a backtick literal."""
    if not _QUOTABLE.match(value):
        raise ValueError(f"{value!r} cannot be placed in a Traefik rule")
    return f"`{value}`"


def dump_yaml(config: dict[str, Any]) -> str:
    return str(
        yaml.dump(
            config,
            Dumper=_Dumper,
            sort_keys=True,
            default_flow_style=False,
            allow_unicode=False,
            width=1 << 30,
        )
    )


def _host_match(vhost: VirtualHost) -> str | None:
    if vhost.host is None:
        return None
    suffix = vhost.wildcard_suffix
    if suffix is None:
        return f"Host({quote(vhost.host)})"
    return f"HostRegexp({quote('^[^.]+' + _regex_escape('.' + suffix + '.') + '?$')})"


def _regex_escape(name: str) -> str:
    # Hosts are [a-z0-9.-] (core validation); '.' is the only regexp metacharacter among them.
    return name.replace(".", "\\.")


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
    different paths of one type and length cannot both match one request.
    """
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


def _cert_files(cert: Certificate, settings: RenderSettings) -> tuple[dict[str, str], list[Any]]:
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


def _needs_terminator(vhost: VirtualHost, model: RouteModel) -> bool:
    """True when a lower-priority host could take this host's requests its table misses."""
    if vhost.host is None:
        return False
    if any(r.path_type is PathType.PREFIX and r.path == "/" for r in vhost.routes):
        return False
    index = model.vhost_index
    if None in index:
        return True
    if vhost.kind is HostKind.EXACT and "." in vhost.host:
        return "*." + vhost.host.split(".", 1)[1] in index
    return False


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

    for vhost in model.vhosts:
        host_match = _host_match(vhost)
        redirect = vhost.tls is not None and vhost.tls.ssl_redirect
        terminator = _needs_terminator(vhost, model)
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
            for route in vhost.routes:
                kind = "exact" if route.path_type is PathType.EXACT else "prefix"
                add(
                    entrypoint,
                    vhost.host,
                    kind,
                    route.path,
                    {
                        "rule": _and(host_match, _path_match(route)),
                        "priority": _priority(vhost.kind, "route", route),
                        "service": route.backend,
                    },
                )
            if terminator:
                assert host_match is not None
                router: dict[str, Any] = {
                    "rule": host_match,
                    "priority": _priority(vhost.kind, "terminator"),
                    "service": default_service or SERVICE_UNAVAILABLE,
                }
                if default_service is None:
                    router["middlewares"] = [MIDDLEWARE_NOT_FOUND]
                add(entrypoint, vhost.host, "unmatched", None, router)

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
                "loadBalancer": {"servers": [{"url": f"http://{e.hostport}"} for e in ready]}
            }
        else:
            services[backend.name] = {"weighted": {"services": []}}

    redirect_scheme: dict[str, Any] = {"scheme": "https", "permanent": True}
    if settings.https_port != 443:
        redirect_scheme["port"] = str(settings.https_port)
    middlewares = {
        MIDDLEWARE_NOT_FOUND: {
            "ipAllowList": {"sourceRange": [NEVER_A_CLIENT], "rejectStatusCode": 404}
        },
        MIDDLEWARE_REDIRECT: {"redirectScheme": redirect_scheme},
    }

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

    config: dict[str, Any] = {
        "http": {"routers": http_routers, "services": services, "middlewares": middlewares},
        "tls": tls,
    }
    return TraefikConfig(config=config, text=dump_yaml(config), files=tuple(files))
