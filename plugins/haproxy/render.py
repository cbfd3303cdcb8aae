"""RouteModel -> HAProxy 2.6 configuration, routes map and crt-list. Pure: no disk, no processes.

Measured facts behind every choice are in docs/notes/haproxy-2.6.md ("the notes").

Routing is data, not configuration. One map file, ``maps/routes.map``, is read by ``map_str``
(exact lookups) and ``map_beg`` (longest prefix through a prefix tree, notes §4). Both lookups
share the file's single pattern reference, so ``prepare map``/``commit map`` swaps everything a
request can see at once. Keys (``<vk>`` is the vhost key: the host, ``*.suffix``, or ``*`` for
the catch-all)::

    @<vk>          -> <vk>     the virtual host exists (exact and wildcard hosts)
    =<vk><path>    -> <slot>   Exact route
    ^<vk><path>/   -> <slot>   Prefix route; the core already dropped the trailing ``/``
    r<vk>          -> 1        plain HTTP requests to this vhost are redirected to https
                               (301 for GET, 308 for every other method)
    default        -> <slot>   the default backend
    suffixes       -> 1        some vhost is a suffix wildcard ``**.<suffix>``
    ~<vk>#<id>|... -> <rank>:<row>   a group of Gateway API rows (rows.py); a path key's value
    x<vk>#<id>...  -> ...            a row's record (rows.py)

A path key's value is a slot, or (Gateway API rows with conditions or more than a backend) a
group ``~<vk>#<id>``: rows.py explains the interpreter that reads groups and records.

The frontend picks ONE virtual host first (``@host``, else ``@*.<all labels but the first>``
(notes §5), else the longest ``@**.<last labels>`` (at least one label more), else ``*``),
then looks up ``=<vk><path>``, then ``^<vk><path>/``: ``/foo``, ``/foo/`` and ``/foo/x`` hit
``^h/foo/`` while ``/foobar`` does not (element-wise), and the tree returns the longest prefix.
The vhost is fixed before the table lookup, so a host whose rows do not match never falls
through to the wildcard or catch-all table (the caveat of notes §4) and no terminal entries are
needed. No match: ``default``, else the 404 backend. A value naming a backend with no servers
(or all in maintenance) gets HAProxy's 503 (notes §3).

A row whose only policy is client address lists has a slot of its own (rows.sources_name)
whose source map ``sources/<slot>.map`` (network -> 1 refused / 0 admitted) its section
consults; every other slot's map is empty.

Backends cannot be created at run time (notes §8), so every Service gets a neutral *slot*
backend (``slot_0001``...) and the config declares spare slots; a new Service takes a spare slot
by having its name written into the map. Servers are dynamic (``add server``/``del server``,
notes §2); the config carries every ready endpoint as a real ``server`` line, because nothing
set at run time survives a reload (notes §2, §3).

TLS: the crt-list's first line is the fallback certificate (the default for no or unknown SNI,
notes §6); each certificate of the model follows with the hosts bound to it as SNI filters.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import jinja2

from polyingress.core import (
    Backend,
    BackendProtocol,
    Certificate,
    GlobalSettings,
    HostKind,
    RouteModel,
    VirtualHost,
    format_duration,
)

from .rows import (
    FLAG_BITS,
    SPLIT_PREFIX,
    Shapes,
    connect_ms,
    is_hop,
    slot_base,
    source_lists,
    sources_id,
    split_members,
    split_weights,
    table_entries,
)

__all__ = [
    "ADMIN_SOCKET",
    "CONFIG_FILE",
    "CRT_LIST",
    "DEFAULT_KEY",
    "FALLBACK_PEM",
    "MASTER_SOCKET",
    "MIRROR_LUA",
    "NOT_FOUND_BACKEND",
    "ROUTES_MAP",
    "SETTINGS",
    "SOURCES_DIR",
    "SUFFIXES_KEY",
    "CrtEntry",
    "RenderSettings",
    "Rendered",
    "Server",
    "SlotTable",
    "Tuning",
    "cert_file",
    "crt_entries",
    "map_entries",
    "member_socket",
    "mirror_lua",
    "pem_bundle",
    "quote",
    "render",
    "render_config",
    "render_crt_list",
    "render_map",
    "servers_of",
    "slot_name",
    "slot_number",
    "slot_servers",
    "slot_sources",
    "source_file",
    "source_files",
    "source_text",
    "tuning_of",
    "vhost_entries",
    "vhost_key",
]

log = logging.getLogger(__name__)

CONFIG_FILE = "haproxy.cfg"
MIRROR_LUA = "mirror.lua"  # the request-mirror action (lua/mirror.lua), loaded by lua-load
MIRROR_SOCKET = "mirror.sock"  # the internal frontend the copies go through (mirror.lua)
# The internal frontend of splits whose members change requests differently (rows.hop_members).
MEMBER_SOCKET_PREFIX = "member-"
MEMBER_HEADER = "x-polyingress-row"
ROUTES_MAP = "maps/routes.map"
# Each slot's client address verdicts (rows.sources_name, rows.source_verdicts):
# sources/<slot>.map, ``<network> 1`` refused / ``0`` admitted; empty for a slot whose owner
# has no source lists of its own (nobody refused).
SOURCES_DIR = "sources"
CRT_LIST = "certs/crt-list.txt"
FALLBACK_PEM = "certs/polyingress-fallback.pem"
ADMIN_SOCKET = "admin.sock"
MASTER_SOCKET = "master.sock"
NOT_FOUND_BACKEND = "polyingress_404"
# The stick tables of the rate limits (see haproxy.cfg.j2).
RATE_TABLES = {
    "rps": "polyingress_rate_rps",
    "rpm": "polyingress_rate_rpm",
    "conn": "polyingress_rate_conn",
}
DEFAULT_KEY = "default"
SUFFIXES_KEY = "suffixes"  # present when some host is a suffix wildcard (**.foo.com)
CATCH_ALL_KEY = "*"
REDIRECT_VALUE = "1"

_SLOT_PREFIX = "slot_"
# Everything that reaches haproxy.cfg, a map or a crt-list as a bare word: no whitespace, no
# quote, no backslash, no '#', no '$' (environment expansion), no ';' (CLI separator).
_WORD = re.compile(r"^[A-Za-z0-9._:/@*\[\]%(),=+!&~-]+$")


def quote(value: str, what: str) -> str:
    """The single gate for model strings going into HAProxy text: returns ``value`` unchanged
    when it is one safe word, raises ValueError otherwise. We never escape: a string that
    needs escaping is refused (the core's validation makes that impossible for valid input)."""
    if not isinstance(value, str) or not _WORD.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not safe in HAProxy configuration")
    return value


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Tuning:
    """The ConfigMap's settings HAProxy applies, in its syntax (the core parsed and validated
    them: ``GlobalSettings``). Changing one needs a reload: they are global or ``defaults``
    directives. ``maxconn`` None leaves HAProxy's own (from the file-descriptor limit)."""

    timeout_connect: str
    timeout_server: str
    timeout_client: str
    timeout_http_request: str
    timeout_http_keep_alive: str
    hard_stop_after: str
    maxconn: int | None


def tuning_of(settings: GlobalSettings) -> Tuning:
    return Tuning(
        timeout_connect=format_duration(settings.proxy_connect_timeout),
        timeout_server=format_duration(settings.proxy_read_timeout),
        timeout_client=format_duration(settings.client_body_timeout),
        timeout_http_request=format_duration(settings.client_header_timeout),
        timeout_http_keep_alive=format_duration(settings.keep_alive),
        hard_stop_after=format_duration(settings.worker_shutdown_timeout),
        maxconn=settings.max_worker_connections,
    )


# ConfigMap key -> what it sets in haproxy.cfg (BackendInfo.settings; the README's table).
SETTINGS = {
    "max-worker-connections": "global `maxconn` (default: HAProxy's, from the file limit)",
    "worker-shutdown-timeout": "global `hard-stop-after` (old workers after a reload)",
    "keep-alive": "`timeout http-keep-alive`",
    "client-header-timeout": "`timeout http-request`",
    "client-body-timeout": "`timeout client` (client inactivity)",
    "proxy-connect-timeout": "`timeout connect`, `timeout queue`",
    "proxy-read-timeout": "`timeout server` (server inactivity)",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderSettings:
    bind: str = "0.0.0.0"
    http_port: int = 8080
    https_port: int = 8443
    # The HTTPS port redirects name (RunSettings.public_https_port); None: https_port.
    redirect_https_port: int | None = None
    spare_backends: int = 64

    def bind_address(self, port: int) -> str:
        address = ipaddress.ip_address(self.bind)  # ValueError for anything but an IP
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"{host}:{int(port)}"

    def https_location(self) -> str:
        public = self.redirect_https_port or self.https_port
        port = "" if public == 443 else f":{int(public)}"
        return f"https://%[var(txn.host)]{port}%[pathq]"


# --------------------------------------------------------------------------- slots


def slot_name(number: int) -> str:
    return f"{_SLOT_PREFIX}{number:04d}"


def slot_number(name: str) -> int:
    return int(name.removeprefix(_SLOT_PREFIX))


@dataclass(frozen=True, slots=True)
class SlotTable:
    """Which slot backend serves which model backend, and the spare slots, lowest first."""

    assigned: Mapping[str, str] = field(default_factory=dict)
    free: tuple[str, ...] = ()

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(sorted((*self.assigned.values(), *self.free), key=slot_number))

    def owner(self) -> dict[str, str]:
        return {slot: name for name, slot in self.assigned.items()}

    @classmethod
    def plan(
        cls, backends: Iterable[str], spare: int, previous: SlotTable | None = None
    ) -> SlotTable:
        """Slots for ``backends``: keep previous assignments, fill the lowest free slots, then
        grow the pool so that at least ``spare`` slots are free (for a configuration file)."""
        previous = previous or cls()
        wanted = sorted(set(backends))
        assigned = {name: previous.assigned[name] for name in wanted if name in previous.assigned}
        taken = set(assigned.values())
        free = [s for s in previous.slots if s not in taken]
        next_number = max((slot_number(s) for s in previous.slots), default=0) + 1
        for name in wanted:
            if name in assigned:
                continue
            if free:
                assigned[name] = free.pop(0)
            else:
                assigned[name] = slot_name(next_number)
                next_number += 1
        while len(free) < spare:
            free.append(slot_name(next_number))
            next_number += 1
        return cls(assigned=dict(sorted(assigned.items())), free=tuple(free))


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True, slots=True, order=True)
class Server:
    name: str
    address: str  # ip:port, IPv6 in brackets
    weight: int = 1  # HAProxy's default; a split's servers carry their backend's share
    # How HAProxy talks to it (server keywords, fixed words: protocol_options); a protocol is
    # part of the name, so a server never changes protocol in place (no Runtime API for it).
    options: tuple[str, ...] = ()

    @property
    def host_port(self) -> tuple[str, int]:
        if self.address.startswith("unix@"):
            return "-", 0  # what `show servers state` says of a UNIX socket's address
        host, _, port = self.address.rpartition(":")
        return host.strip("[]"), int(port)


# The server keywords of each backend protocol and the prefix of its servers' names. TLS to the
# endpoint is not verified (ingress-nginx's backend-protocol HTTPS/GRPCS); HTTP/2 is ``proto
# h2`` in clear text (prior knowledge) and ALPN h2 over TLS.
_PROTOCOL_SERVERS: dict[BackendProtocol, tuple[str, tuple[str, ...]]] = {
    BackendProtocol.HTTP: ("", ()),
    BackendProtocol.H2C: ("h2c_", ("proto", "h2")),
    BackendProtocol.GRPC: ("h2c_", ("proto", "h2")),
    BackendProtocol.HTTPS: ("tls_", ("ssl", "verify", "none")),
    BackendProtocol.GRPCS: ("h2s_", ("ssl", "verify", "none", "alpn", "h2")),
}


def protocol_options(protocol: BackendProtocol) -> tuple[str, tuple[str, ...]]:
    """The server name prefix and the server keywords of a backend protocol."""
    return _PROTOCOL_SERVERS[protocol]


class _NameCache:
    """Results per backend name, valid while the builder hands us the same Backend object (it
    reuses one while its inputs are unchanged), so an endpoint change recomputes one backend,
    not 10,000. One entry per name: a changed Backend replaces its predecessor, so the cache
    never holds more than the backends of the world (plus those removed since the last trim)."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[Backend, tuple[Server, ...]]] = {}

    def get(self, backend: Backend) -> tuple[Server, ...] | None:
        hit = self._items.get(backend.name)
        return hit[1] if hit is not None and hit[0] is backend else None

    def put(self, backend: Backend, value: tuple[Server, ...]) -> None:
        if len(self._items) > 200_000:
            self._items.clear()
        self._items[backend.name] = (backend, value)


_SERVERS = _NameCache()
_BLOCKS: dict[str, tuple[Backend | None, str, str | None]] = {}


def slot_servers(owner: str, backends: Mapping[str, Backend]) -> tuple[Server, ...]:
    """The servers of the slot serving ``owner``: a backend's ready endpoints, or a split's
    (each backend's endpoints, named ``m<i>_<ip>_<port>``, weighted so that each backend gets
    its share: rows.split_weights); a connect-timeout or source-list owner's: its base
    owner's (rows.slot_base)."""
    owner = slot_base(owner)
    if not owner.startswith(SPLIT_PREFIX):
        backend = backends.get(owner)
        return servers_of(backend) if backend is not None else ()
    members = split_members(owner)
    if is_hop(owner):
        return _member_servers(members, backends)
    found = [(i, backends.get(name), weight) for i, (name, weight) in enumerate(members)]
    counted = [
        (name, weight, len(servers_of(b)) if b is not None else 0)
        for (name, weight), (_i, b, _w) in zip(members, found, strict=True)
    ]
    weights = split_weights(counted)
    servers: list[Server] = []
    for i, backend, _weight in found:
        if backend is None or backend.name not in weights:
            continue
        per_server = weights[backend.name]
        servers += [
            Server(name=f"m{i}_{s.name}", address=s.address, weight=per_server, options=s.options)
            for s in servers_of(backend)
        ]
    return tuple(sorted(servers))


def member_socket(index: int) -> str:
    """The socket of split member ``index`` (rows.hop_members), relative to the workdir."""
    return f"{MEMBER_SOCKET_PREFIX}{int(index)}.sock"


def _member_servers(
    members: tuple[tuple[str, int], ...], backends: Mapping[str, Backend]
) -> tuple[Server, ...]:
    """The servers of a split through member sockets (rows.hop_members): each member's ready
    endpoints, named ``m<i>_<ip>_<port>`` and weighted as in any split, at member socket i."""
    found = [backends.get(name) for name, _weight in members]
    counted = [
        (str(i), weight, len(servers_of(b)) if b is not None else 0)
        for i, ((_name, weight), b) in enumerate(zip(members, found, strict=True))
    ]
    weights = split_weights(counted)
    servers: list[Server] = []
    for i, backend in enumerate(found):
        if backend is None or str(i) not in weights:
            continue
        address = "unix@" + member_socket(i)
        servers += [
            Server(name=f"m{i}_{s.name}", address=address, weight=weights[str(i)])
            for s in servers_of(backend)
        ]
    return tuple(sorted(servers))


def servers_of(backend: Backend) -> tuple[Server, ...]:
    """One server per distinct ready endpoint, named ``<ip>_<port>`` (stable across changes).

    Addresses are canonical IPs (the core's EndpointSlice translation checks them)."""
    cached = _SERVERS.get(backend)
    if cached is not None:
        return cached
    servers: dict[str, Server] = {}
    prefix, options = protocol_options(backend.protocol)
    for endpoint in backend.ready_endpoints:
        port = int(endpoint.port)
        if not 0 < port < 65536:
            continue
        ip = quote(endpoint.address, "endpoint address")
        address = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        name = f"{prefix}{ip}_{port}"
        servers[name] = Server(name=name, address=address, options=options)
    result = tuple(sorted(servers.values()))
    _SERVERS.put(backend, result)
    return result


# --------------------------------------------------------------------------- maps


def vhost_key(host: str | None) -> str:
    return CATCH_ALL_KEY if host is None else quote(host, "host")


def vhost_entries(
    vhost: VirtualHost, assigned: Mapping[str, str], shapes: Shapes
) -> dict[str, str]:
    """The routes-map entries of one virtual host (its group: ``@vk``, ``rvk``, ``=vk…``,
    ``^vk…`` and the Gateway API rows' ``~vk…`` groups and ``xvk…`` records, rows.py).
    ``shapes``: what the configuration evaluates (the same for every host of a map)."""
    vk = vhost_key(vhost.host)
    entries: dict[str, str] = {}
    if vhost.host is not None:
        entries[f"@{vk}"] = vk
        if vhost.tls is not None and vhost.tls.ssl_redirect:
            entries[f"r{vk}"] = REDIRECT_VALUE
    entries.update(table_entries(vhost, vk, assigned, shapes))
    return entries


def map_entries(
    model: RouteModel, assigned: Mapping[str, str], shapes: Shapes | None = None
) -> dict[str, str]:
    """The routes map for ``model``: key -> value (see the module docstring), sorted by key."""
    if shapes is None:
        shapes = Shapes.of(model)
    entries: dict[str, str] = {}
    if model.default_backend is not None:
        entries[DEFAULT_KEY] = assigned[model.default_backend]
    if any(v.kind is HostKind.SUFFIX for v in model.vhosts):
        entries[SUFFIXES_KEY] = REDIRECT_VALUE
    for vhost in model.vhosts:
        entries.update(vhost_entries(vhost, assigned, shapes))
    return dict(sorted(entries.items()))


def render_map(entries: Mapping[str, str]) -> str:
    lines = ["# polyingress routes map (keys: see the comment at the top of render.py)"]
    lines += [f"{key} {value}" for key, value in entries.items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- TLS


def cert_file(name: str) -> str:
    """The crt-list/store name of a certificate: the PEM file relative to the workdir."""
    return f"certs/{quote(name, 'certificate name')}.pem"


@dataclass(frozen=True, slots=True, order=True)
class CrtEntry:
    """One crt-list line: a certificate and the SNI names it is served for."""

    cert: str
    filters: tuple[str, ...]

    @property
    def line(self) -> str:
        return " ".join((self.cert, *self.filters))


def _sni_filters(model: RouteModel, vhost: VirtualHost, cert: Certificate | None) -> list[str]:
    """The SNI names a host's certificate is served for. HAProxy's SNI filters know exact names
    and one-label wildcards (notes §6). A suffix host ``**.foo.com`` (one label or more) gets
    ``*.foo.com`` and every name its certificate covers below ``foo.com`` (``*.a.foo.com``,
    ``b.a.foo.com``): a name no filter lists gets the fallback certificate, which a client
    cannot tell from this one, as this one does not cover it either. A wildcard filter another
    host owns (``*.foo.com`` of an Ingress wildcard, a longer suffix) is left to that host."""
    assert vhost.host is not None
    if vhost.kind is not HostKind.SUFFIX:
        return [quote(vhost.host, "host")]
    suffix = vhost.wildcard_suffix or ""
    names = {"*." + suffix}
    if cert is not None:
        names |= {
            n.lower()
            for n in cert.dns_names
            if n.lower().endswith("." + suffix) and _WORD.fullmatch(n) and "**" not in n
        }
    # The host a name selects in the model; for ``*.x`` the host its names select (the model
    # finds an Ingress wildcard ``*.x`` by its exact name, else the longest suffix of x).
    return [quote(n, "host") for n in sorted(names) if model.select_vhost(n) is vhost]


def _bound_hosts(model: RouteModel) -> dict[str, list[str]]:
    hosts: dict[str, list[str]] = {}
    for vhost in model.vhosts:
        if vhost.tls is None or vhost.tls.certificate is None or vhost.host is None:
            continue
        cert = model.certificate_index.get(vhost.tls.certificate)
        hosts.setdefault(vhost.tls.certificate, []).extend(_sni_filters(model, vhost, cert))
    return hosts


def crt_entries(model: RouteModel) -> tuple[CrtEntry, ...]:
    """Certificates bound to at least one host, each with its hosts as SNI filters.

    A host whose binding has no valid certificate gets no line: it is served the fallback, the
    first line. An unbound certificate is not listed (it would match by its SANs).
    """
    hosts = _bound_hosts(model)
    return tuple(
        CrtEntry(cert=cert_file(name), filters=tuple(sorted(set(hosts[name]))))
        for name in sorted(hosts)
        if name in model.certificate_index and hosts[name]
    )


def render_crt_list(entries: Iterable[CrtEntry]) -> str:
    lines = [FALLBACK_PEM, *(entry.line for entry in entries)]
    return "\n".join(lines) + "\n"


def pem_bundle(cert: Certificate) -> str:
    """Certificate chain then key, without blank lines (a blank line ends a CLI payload)."""
    return "\n".join(line for line in cert.pem_bundle.splitlines() if line.strip()) + "\n"


# --------------------------------------------------------------------------- config


@cache
def mirror_lua() -> str:
    """The text of the workdir's mirror.lua (the package's lua/mirror.lua)."""
    return (resources.files("polyingress.plugins.haproxy") / "lua" / "mirror.lua").read_text()


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("polyingress.plugins.haproxy", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


def source_file(slot: str) -> str:
    """The map file of a slot's client address verdicts, relative to the workdir."""
    return f"{SOURCES_DIR}/{quote(slot, 'slot')}.map"


def source_text(verdicts: Iterable[tuple[str, str]]) -> str:
    """A source map file's text: ``<network> <0|1>`` a line (empty: nobody refused)."""
    return "".join(f"{quote(n, 'network')} {quote(v, 'verdict')}\n" for n, v in verdicts)


def slot_sources(
    owner: str | None, lists: Mapping[str, tuple[tuple[str, str], ...]]
) -> tuple[tuple[str, str], ...]:
    """The verdicts of the slot of ``owner`` (rows.sources_name; none for the others)."""
    ident = sources_id(owner) if owner is not None else None
    return lists[ident] if ident is not None else ()


def source_files(model: RouteModel, slots: SlotTable) -> dict[str, str]:
    """The source map file of every slot (spares included): file -> text."""
    lists = source_lists(model)
    owner = slots.owner()
    return {
        source_file(slot): source_text(slot_sources(owner.get(slot), lists)) for slot in slots.slots
    }


def _backend_block(slot: str, owner: str | None, index: Mapping[str, Backend]) -> str:
    connect = connect_ms(owner) if owner is not None else None
    lists = sources_id(owner) if owner is not None else None
    backend = index.get(owner) if owner is not None else None
    split = owner is not None and (
        owner.startswith(SPLIT_PREFIX) or connect is not None or lists is not None
    )
    cached = _BLOCKS.get(slot)
    if cached is not None and cached[0] is backend and not split and cached[2] == owner:
        return cached[1]
    servers: tuple[Server, ...] = ()
    if owner is None:
        comment = "spare"
    elif lists is not None:
        servers = slot_servers(owner, index)
        comment = f"{quote(owner, 'owner')}: its own source lists ({len(servers)} servers)"
    elif connect is not None:
        servers = slot_servers(owner, index)
        comment = f"{quote(owner, 'owner')}: its own connect timeout ({len(servers)} servers)"
    elif split:
        servers = slot_servers(owner, index)
        comment = f"weighted split {quote(owner, 'split')} ({len(servers)} servers)"
    else:
        if backend is None:
            comment = f"{quote(owner, 'backend name')} (not in the model)"
        else:
            ready = len(backend.ready_endpoints)
            comment = f"{quote(backend.name, 'backend name')} ({ready} ready of "
            comment += f"{len(backend.endpoints)} endpoints)"
            servers = servers_of(backend)
    text = (
        _environment()
        .get_template("backend.cfg.j2")
        .render(
            name=slot,
            comment=comment,
            servers=servers,
            connect_ms=connect,
            source_file=source_file(slot),
        )
    )
    if len(_BLOCKS) > 200_000:
        _BLOCKS.clear()
    _BLOCKS[slot] = (backend, text, owner)
    return text


REDIRECT_CODES = (301, 302, 303, 307, 308)


def _gateway(shapes: Shapes, scheme: str) -> dict[str, object]:
    """What the frontend of ``scheme`` evaluates for Gateway API rows (rows.py)."""
    return {
        "fetches": shapes.value_lines(),
        "signatures": shapes.signature_formats(scheme),
        "segments": range(1, shapes.segments + 1),
        "redirect_codes": REDIRECT_CODES,
        "request_filters": shapes.request_filter_names(),
        "response_filters": shapes.response_filter_names(),
        "cors": shapes.cors_regexes(),
        "affinity": shapes.affinity_lines(),
        "source_masks": shapes.source_mask_bits(),
        "source_words": shapes.source_words(),
        "flag": FLAG_BITS,
        "userlists": shapes.userlists(),
    }


def render_config(
    model: RouteModel,
    slots: SlotTable,
    settings: RenderSettings,
    tuning: Tuning,
    shapes: Shapes | None = None,
) -> str:
    """haproxy.cfg for ``model`` with ``slots``: every ready endpoint is a ``server`` line.
    ``shapes``: the names and bounds the Gateway API rows need (default: the model's)."""
    if shapes is None:
        shapes = Shapes.of(model)
    owner = slots.owner()
    index = model.backend_index
    blocks = []
    for slot in slots.slots:
        name = owner.get(slot)
        blocks.append(_backend_block(slot, name, index))
    global_extra = [f"maxconn {tuning.maxconn}"] if tuning.maxconn else []
    return (
        _environment()
        .get_template("haproxy.cfg.j2")
        .render(
            admin_socket=ADMIN_SOCKET,
            routes_map=ROUTES_MAP,
            crt_list=CRT_LIST,
            not_found_backend=NOT_FOUND_BACKEND,
            http_bind=settings.bind_address(settings.http_port),
            https_bind=settings.bind_address(settings.https_port),
            https_location=settings.https_location(),
            tuning=tuning,
            global_extra=global_extra,
            backends="".join(blocks),
            suffixes_key=SUFFIXES_KEY,
            mirror_lua=MIRROR_LUA,
            mirror_socket=MIRROR_SOCKET,
            member_sockets=[(i, member_socket(i)) for i in range(shapes.members)],
            member_header=MEMBER_HEADER,
            member_filters=shapes.request_filter_names(),
            suffix_labels=range(shapes.suffix_labels, 0, -1),
            userlists=shapes.userlists(),
            rate_tables=RATE_TABLES,
            gateway_http=_gateway(shapes, "http"),
            gateway_https=_gateway(shapes, "https"),
        )
    )


# --------------------------------------------------------------------------- everything


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendered:
    """Everything HAProxy reads from the workdir for one model."""

    config: str
    routes: Mapping[str, str]
    crt_list: tuple[CrtEntry, ...]
    pems: Mapping[str, str]  # relative file -> PEM bundle (model certificates only)
    slots: SlotTable
    tuning: Tuning
    shapes: Shapes
    sources: Mapping[str, str] = field(default_factory=dict)  # file -> text (source_files)

    @property
    def map_text(self) -> str:
        return render_map(self.routes)

    @property
    def crt_list_text(self) -> str:
        return render_crt_list(self.crt_list)

    @property
    def digest(self) -> str:
        lists = "".join(f"{name}\n{text}" for name, text in sorted(self.sources.items()))
        blob = "\0".join((self.config, self.map_text, self.crt_list_text, lists))
        return hashlib.sha256(blob.encode()).hexdigest()


def render(
    model: RouteModel, settings: RenderSettings, slots: SlotTable, shapes: Shapes | None = None
) -> Rendered:
    """Everything for ``model`` with a given slot table (see :meth:`SlotTable.plan`, whose
    owners are :func:`rows.wanted_names`) and configuration shapes (default: the model's)."""
    if shapes is None:
        shapes = Shapes.of(model)
    tuning = tuning_of(model.settings)
    entries = crt_entries(model)
    listed = {entry.cert for entry in entries}
    return Rendered(
        config=render_config(model, slots, settings, tuning, shapes),
        routes=map_entries(model, slots.assigned, shapes),
        crt_list=entries,
        pems={
            cert_file(c.name): pem_bundle(c)
            for c in model.certificates
            if cert_file(c.name) in listed
        },
        slots=slots,
        tuning=tuning,
        shapes=shapes,
        sources=source_files(model, slots),
    )
