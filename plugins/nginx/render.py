"""RouteModel -> nginx.conf for nginx 1.22. Pure: no files, no processes, no clock.

Facts marked "notes §N" were measured on this nginx (docs/notes/nginx-1.22.md).

Every decision is made here, on the model; ``templates/nginx.conf.j2`` only lays out the
prepared lines. Every string that comes from the model reaches the text through :func:`quote`.

Routing, exactly the model's semantics, without regex locations (notes §2):

* Each server gets a location table. Keys: Exact ``/p`` -> ``location = /p``; Prefix ``/p`` ->
  ``location = /p`` and ``location ^~ /p/`` (element-wise: never ``/pq``); Prefix ``/`` and the
  always-present fallback -> ``location /``. Equal keys are merged (nginx refuses duplicates).
* The answer of each key is computed with the model's semantics (:meth:`VirtualHost.match`,
  indexed) on a *representative* path: one that selects that key and no more
  specific one (``/p`` for ``= /p``, ``/p/`` + NUL for ``^~ /p/``, ``/`` + NUL for ``/``; NUL
  cannot occur in a route). Every request nginx sends to a key gets the same answer from the
  model, so nginx answers exactly as the model does (property-tested against a simulator).
* Wildcard hosts: nginx's ``*.foo.com`` spans labels, the Ingress one does not. A wildcard
  server has ``server_name *.foo.com`` plus a guard ``$host !~ "^[^.]+\\.foo\\.com$"`` (notes §6:
  as fast as exact names at 10,000 hosts; regex server_names are scanned linearly). A request
  failing the guard must get what it would get without the wildcard: the catch-all host's
  table, else the default backend, else 404. When that is one ``return`` for every path, the
  guard is a server-level ``if``; otherwise each location gets the fallback answer of its key,
  computed the same way, and the table holds the catch-all's keys too. Exact hosts win over
  wildcards (nginx's own order, notes §3).
* No route: the default backend, else 404. A backend without ready endpoints: ``return 503``
  and no upstream block (notes §7).

TLS: every host server listens on HTTP and HTTPS (HTTPS requests route by Host like HTTP ones).
A TLS host's server carries its certificate; every other server has no SSL context of its own
and answers with the default server's, the fallback certificate. With ``ssl_redirect`` a TLS
host's HTTP side is a separate server redirecting to ``https://`` (the HTTPS port is kept
unless 443): 301 for GET, 308 for every other method, as Traefik's ``redirectScheme`` answers
(:func:`_redirect_locations`). The default server (``server_name ""``) answers unknown Hosts
and unknown SNI with the fallback certificate, by the catch-all's table.

Readiness: a status server on 127.0.0.1 (never on the public listeners) answers
``/-/config-version`` with the digest of the rendered text; after a reload the apply step polls
it until it answers the new digest. The digest, not the model hash, so that two models that
render identically do not force a reload.

Upstreams are rendered in :func:`upstreams` only. Two modes:

* Static (no Lua module, ``--nginx-lua off``, or the fallback after a failed push): one
  ``server`` line per ready endpoint; a backend without one answers ``return 503`` and has no
  upstream. Every endpoint change is a reload.
* Lua (``RenderOptions.lua`` set): every backend in the model gets an upstream holding a
  placeholder ``server 0.0.0.1;``, ``balancer_by_lua_block`` and keepalive; its locations
  ``proxy_pass`` whether it has ready endpoints or not. The balancer
  (``lua/polyingress_balancer.lua``) reads the endpoints from the ``lua_shared_dict`` that the
  controller writes through the endpoint channel (``lua/polyingress_channel.lua``: a server on
  a UNIX socket in the workdir, token rendered here) and sends the requests of a backend
  without endpoints to a local responder that answers 503. The config holds no endpoint
  address, so an endpoint change (also n -> 0 and 0 -> n) leaves it byte-identical: no reload.
  The balancer finds the backend from ``$proxy_host`` (the upstream name), through a ``map``
  because ngx.var cannot read ``$proxy_host`` itself; so locations read exactly as in static mode.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from polyingress.core import (
    Answer,
    Certificate,
    HostKind,
    ObjectRef,
    Outcome,
    PathTable,
    PathType,
    RouteModel,
    VirtualHost,
)

from .settings import NginxSettings, nginx_settings

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = [
    "CHANNEL_PATH",
    "CONFIG_VERSION_PATH",
    "FALLBACK_CRT",
    "FALLBACK_KEY",
    "LUA_DICT",
    "LUA_SEED",
    "STATUS_PATH",
    "KeyPair",
    "LuaRender",
    "NginxConfig",
    "RenderOptions",
    "UnsafeValue",
    "endpoint_state",
    "line_owners",
    "lua_safe",
    "quote",
    "render",
    "upstreams",
    "uri_form",
]

CONFIG_VERSION_PATH = "/-/config-version"
STATUS_PATH = "/-/status"
FALLBACK_CRT = "certs/polyingress-fallback.crt"
FALLBACK_KEY = "certs/polyingress-fallback.key"
# Relative paths: pid, logs and temp paths resolve against -p PREFIX, certificates against the
# directory of the -c file (notes §1), so the text does not depend on where the workdir is.
PID_FILE = "run/nginx.pid"
TEMP_PATHS = (
    ("client_body_temp_path", "tmp/client_body"),
    ("proxy_temp_path", "tmp/proxy"),
    ("fastcgi_temp_path", "tmp/fastcgi"),
    ("uwsgi_temp_path", "tmp/uwsgi"),
    ("scgi_temp_path", "tmp/scgi"),
)
# Lua mode: the shared dictionary, the channel's location, and the state file that a fresh
# dictionary is filled from when nginx starts (relative to the prefix; written 0600 by apply).
LUA_DICT = "polyingress_backends"
LUA_DICT_SIZE = "32m"
LUA_SEED = "channel/endpoints.json"
CHANNEL_PATH = "/endpoints"
_UPSTREAM_VARIABLE = "$polyingress_upstream"
_DIGEST_PLACEHOLDER = "%%polyingress-config-digest%%"
_CONNECTION_VARIABLE = "$polyingress_connection"
_HOST_VARIABLE = "$polyingress_host"


def uri_form(path: str) -> str:
    """A path as nginx holds it in ``$uri`` (percent-escapes decoded), so that a location or a
    rewritten URI means the path as written: nginx decodes a request before it matches, and
    escapes ``$uri`` again when it proxies. Kept as written when decoding would give a control
    character, an invalid UTF-8 sequence or a new '/'."""
    if "%" not in path:
        return path
    try:
        decoded = urllib.parse.unquote(path, errors="strict")
    except UnicodeDecodeError:
        return path
    if decoded.count("/") != path.count("/") or any(
        ord(c) < 0x20 or ord(c) == 0x7F for c in decoded
    ):
        return path
    return decoded


class UnsafeValue(ValueError):
    """A string that must never reach nginx.conf (control characters, or ``$`` where nginx
    would interpolate it)."""


def quote(value: str, *, variables: bool = False) -> str:
    """The one quoting function: every string argument from the model goes through it.

    Double quotes make ``; { } # ' space`` literal; nginx unescapes ``\\"`` and ``\\\\`` (and
    ``\\t \\n \\r``, which cannot arise once every backslash is doubled). Control characters are
    refused outright. ``$`` is refused unless ``variables`` is True, which only the renderer's
    own constants (redirect target, guard regex) use: in ``return``, ``proxy_pass`` and
    ``proxy_set_header`` nginx interpolates ``$name`` (notes §8).
    """
    for ch in value:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise UnsafeValue(f"control character U+{ord(ch):04X} in {value[:60]!r}")
    if not variables and "$" in value:
        raise UnsafeValue(f"'$' in {value[:60]!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True, kw_only=True)
class LuaRender:
    """Lua mode: what the configuration needs to load the balancer and open the channel.

    ``modules`` are the ``load_module`` paths (empty when nginx has the module built in);
    ``package_dir`` holds ``polyingress_*.lua``; ``channel_socket`` is the absolute path of
    the channel's UNIX socket (in a 0700 directory); ``unavailable_port`` the loopback port
    of the server answering 503 (0: chosen when nginx starts); ``token`` is the per-run
    secret the controller sends.
    """

    modules: tuple[str, ...]
    package_dir: str
    channel_socket: str
    unavailable_port: int
    token: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderOptions:
    """Where nginx listens. ``status_port`` 0 means: chosen when nginx starts. ``lua`` None:
    static upstreams."""

    bind: str = "0.0.0.0"
    http_port: int = 8080
    https_port: int = 8443
    # The HTTPS port an ssl-redirect's Location names (RunSettings.public_https_port); None:
    # https_port.
    redirect_https_port: int | None = None
    status_port: int = 10246
    lua: LuaRender | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPair:
    """A certificate and its key as files (paths relative to the directory of nginx.conf).

    Names carry the certificate fingerprint, so a changed Secret is written to new files and
    the running configuration's files never change underneath it.
    """

    name: str
    crt: str
    key: str
    cert_pem: str = field(repr=False)
    key_pem: str = field(repr=False)
    refs: tuple[ObjectRef, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NginxConfig:
    text: str
    digest: str
    key_pairs: tuple[KeyPair, ...]
    settings: NginxSettings
    settings_source: ObjectRef | None
    problems: tuple[str, ...] = ()
    lua: bool = False
    # Basic authentication user files: (name relative to nginx.conf's directory, text).
    auth_files: tuple[tuple[str, str], ...] = field(default=(), repr=False)


# -- location tables ----------------------------------------------------------------------------


class _Kind(IntEnum):
    EXACT = 0
    PREFIX = 1
    ROOT = 2


@dataclass(frozen=True, slots=True)
class _Key:
    path: str
    kind: _Kind

    @property
    def match(self) -> str:
        # '$' is literal in a location (notes §8); Gateway API paths may hold it, and
        # percent-escapes, which nginx matches decoded.
        if self.kind is _Kind.EXACT:
            return f"= {quote(uri_form(self.path), variables=True)}"
        if self.kind is _Kind.PREFIX:
            return f"^~ {quote(uri_form(self.path) + '/', variables=True)}"
        return quote("/")

    def sort_key(self) -> tuple[bool, str, int]:
        return (self.kind is _Kind.ROOT, self.path, self.kind)

    @property
    def representative(self) -> str:
        # A path that selects this key and no more specific one (see the module docstring).
        if self.kind is _Kind.EXACT:
            return self.path
        if self.kind is _Kind.PREFIX:
            return self.path + "/\x00"
        return "/\x00"


_ROOT = _Key("/", _Kind.ROOT)


def _route_keys(vhost: VirtualHost | None) -> dict[_Key, set[ObjectRef]]:
    keys: dict[_Key, set[ObjectRef]] = {}
    if vhost is None:
        return keys
    for route in vhost.routes:
        if route.path_type is PathType.EXACT:
            found = [_Key(route.path, _Kind.EXACT)]
            if route.path.endswith("/") and route.path != "/":
                # nginx answers the path without the slash with its own 301 to this location
                # (notes §2); the twin makes it get the model's answer instead.
                found.append(_Key(route.path[:-1], _Kind.EXACT))
        elif route.path == "/":
            found = [_ROOT]
        else:
            found = [_Key(route.path, _Kind.EXACT), _Key(route.path, _Kind.PREFIX)]
        for key in found:
            keys.setdefault(key, set()).add(route.source)
    return keys


@dataclass(frozen=True, slots=True)
class _Answer:
    directive: str

    @property
    def is_return(self) -> bool:
        return self.directive.startswith("return ")


Table = Callable[[str], _Answer]


def _directive(model: RouteModel, answer: Answer, lua: bool) -> str:
    """The nginx directive of the core's answer. Lua mode: availability is decided per request
    by the balancer, so that endpoints going from n to 0 (or 0 to n) do not change the text."""
    if answer.outcome is Outcome.NOT_FOUND:
        return "return 404;"
    backend = model.backend_index.get(answer.backend) if answer.backend is not None else None
    if backend is None or (answer.outcome is Outcome.UNAVAILABLE and not lua):
        return "return 503;"
    return f"proxy_pass {quote('http://' + backend.name)};"


def _table(model: RouteModel, vhost: VirtualHost | None, lua: bool) -> Table:
    """The model's answer for a path in ``vhost`` (None: no host matched)."""
    table = PathTable(vhost.routes if vhost is not None else ())

    def answer(path: str) -> _Answer:
        return _Answer(_directive(model, model.outcome(table.match(path)), lua))

    return answer


@dataclass(frozen=True, slots=True)
class _Location:
    comments: tuple[str, ...]
    match: str
    directives: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Server:
    comments: tuple[str, ...]
    directives: tuple[str, ...]
    locations: tuple[_Location, ...]


@dataclass(frozen=True, slots=True)
class _Upstream:
    comments: tuple[str, ...]
    name: str
    directives: tuple[str, ...]


def _source_comment(refs: Iterable[ObjectRef]) -> tuple[str, ...]:
    unique = sorted(set(refs))
    if not unique:
        return ()
    return ("# source: " + " ".join(quote(str(r)) for r in unique),)


def _guard_regex(suffix: str) -> str:
    if not re.fullmatch(r"[a-z0-9.-]+", suffix):
        raise UnsafeValue(f"wildcard suffix {suffix!r}")
    return "^[^.]+\\." + suffix.replace(".", "\\.") + "$"


def _guarded(primary: _Answer, fallback: _Answer, regex: str) -> tuple[str, ...]:
    """Directives answering ``primary`` when the guard holds, ``fallback`` otherwise.

    After an ``if`` block nginx still runs the location's later rewrite directives (``return``)
    even when the ``if`` matched, so a ``return`` must sit inside the ``if``: when only the
    primary answer is a ``return``, the condition is inverted.
    """
    if primary.directive == fallback.directive:
        return (primary.directive,)
    if fallback.is_return or not primary.is_return:
        cond = f"$host !~ {quote(regex, variables=True)}"
        return (f"if ({cond}) {{ {fallback.directive} }}", primary.directive)
    cond = f"$host ~ {quote(regex, variables=True)}"
    return (f"if ({cond}) {{ {primary.directive} }}", fallback.directive)


def _locations(
    keys: dict[_Key, set[ObjectRef]],
    primary: Table,
    fallback: Table | None,
    regex: str | None,
) -> tuple[_Location, ...]:
    out = []
    # Exact and Prefix keys by path, the catch-all ``/`` last (order does not change matching).
    for key in sorted({**keys, _ROOT: keys.get(_ROOT, set())}, key=_Key.sort_key):
        rep = key.representative
        answer = primary(rep)
        if fallback is not None and regex is not None:
            directives = _guarded(answer, fallback(rep), regex)
        else:
            directives = (answer.directive,)
        out.append(_Location(_source_comment(keys.get(key, ())), key.match, directives))
    return tuple(out)


_REDIRECT_VARIABLE = "$polyingress_redirect"


def _redirect(target: str) -> tuple[str, ...]:
    """301 to GET, 308 to every other method (HEAD included). ``return`` takes no variable
    status, and a ``return`` inside an ``if`` that holds ends the rewrite phase."""
    return (
        f"if ($request_method = {quote('GET')}) {{ return 301 {target}; }}",
        f"return 308 {target};",
    )


def _redirect_locations(
    keys: dict[_Key, set[ObjectRef]],
    target: str,
    fallback: Table | None,
    regex: str | None,
) -> tuple[_Location, ...]:
    """The locations of a redirect server: every key redirects, except for Hosts that fail a
    wildcard guard, which get the fallback's answer of the key (see :func:`_guarded`).

    Two conditions (the guard, the method) and no nested ``if``: a fallback ``return`` is an
    inverted guard before the redirect. A proxying fallback cannot sit in an ``if`` (the
    ``return`` after it would still run), so the guard's outcome goes into a variable (the
    method when the guard holds, else empty) that the returning ``if``s test; when the guard
    fails none of them holds and the location's own ``proxy_pass``, the fallback, answers.
    """
    out = []
    var = _REDIRECT_VARIABLE
    for key in sorted({**keys, _ROOT: keys.get(_ROOT, set())}, key=_Key.sort_key):
        directives = _redirect(target)
        if fallback is not None and regex is not None:
            answer = fallback(key.representative)
            guard = quote(regex, variables=True)
            if answer.is_return:
                directives = (f"if ($host !~ {guard}) {{ {answer.directive} }}", *directives)
            else:
                directives = (
                    f"set {var} {quote('')};",
                    f"if ($host ~ {guard}) {{ set {var} $request_method; }}",
                    f"if ({var} = {quote('GET')}) {{ return 301 {target}; }}",
                    f"if ({var} != {quote('')}) {{ return 308 {target}; }}",
                    answer.directive,
                )
        out.append(_Location(_source_comment(keys.get(key, ())), key.match, directives))
    return tuple(out)


def _host_servers(
    model: RouteModel,
    vhost: VirtualHost,
    opts: RenderOptions,
    http_listen: str,
    https_listen: str,
    key_pairs: dict[str, KeyPair],
    gw: Gateway | None = None,
) -> list[_Server]:
    assert vhost.host is not None
    lua = opts.lua is not None
    # A Gateway API suffix **.b is nginx's own *.b (it spans labels, notes §3).
    name = vhost.host[1:] if vhost.kind is HostKind.SUFFIX else vhost.host
    names = (f"server_name {quote(name)};",)
    own_keys = _route_keys(vhost)
    refs = {r.source for r in vhost.routes}
    if vhost.tls is not None:
        refs.add(vhost.tls.source)

    guard: tuple[str, ...] = ()
    fallback: Table | None = None
    regex: str | None = None
    fallback_keys: dict[_Key, set[ObjectRef]] = {}
    suffix = vhost.wildcard_suffix
    below: VirtualHost | None = None
    tls = vhost.tls
    if suffix is not None and vhost.kind is HostKind.WILDCARD:
        regex = _guard_regex(suffix)
        # A name the guard refuses is not this wildcard's: it gets the host the core selects
        # without it (RouteModel.fallback_host: a suffix host, else the catch-all).
        below = model.fallback_host(vhost)
        fallback_keys = _route_keys(below)
        if tls is None and below is not None and below.host == "**." + suffix:
            tls = below.tls  # one nginx name for both: the suffix host's certificate
        if gw is None or not gw.involves(vhost, below):
            fallback = _table(model, below, lua)
            answers = {fallback(k.representative).directive for k in [*fallback_keys, _ROOT]}
            only = next(iter(answers))
            if len(answers) == 1 and only.startswith("return "):
                cond = f"$host !~ {quote(regex, variables=True)}"
                guard = (f"if ({cond}) {{ {only} }}",)
                fallback, fallback_keys = None, {}

    def merged(keys: dict[_Key, set[ObjectRef]]) -> dict[_Key, set[ObjectRef]]:
        out = {k: set(v) for k, v in fallback_keys.items()}
        for k, v in keys.items():
            out.setdefault(k, set()).update(v)
        return out

    cert: tuple[str, ...] = ()
    if tls is not None and tls.certificate is not None:
        pair = key_pairs[tls.certificate]
        cert = (
            *_source_comment(pair.refs),
            f"ssl_certificate {quote(pair.crt)};",
            *_source_comment(pair.refs),
            f"ssl_certificate_key {quote(pair.key)};",
        )
    host_q = quote(vhost.host)
    if gw is not None and gw.involves(vhost, below):
        return gw.servers(
            (f"# {host_q}", *_source_comment(refs)),
            (f"listen {http_listen};", *names, *PATH_RULE),
            (f"listen {https_listen} ssl;", *names, *cert, *PATH_RULE),
            merged(own_keys),
            vhost,
            below,
            regex,
        )
    table = _table(model, vhost, lua)
    if vhost.tls is not None and vhost.tls.ssl_redirect:
        public = opts.redirect_https_port or opts.https_port
        port = "" if public == 443 else f":{public}"
        target = quote("https://$host" + port + "$request_uri", variables=True)
        return [
            _Server(
                (f"# {host_q}: plain HTTP redirects to HTTPS", *_source_comment(refs)),
                (f"listen {http_listen};", *names, *PATH_RULE, *guard),
                _redirect_locations(merged({}), target, fallback, regex),
            ),
            _Server(
                (f"# {host_q}: HTTPS", *_source_comment(refs)),
                (f"listen {https_listen} ssl;", *names, *cert, *PATH_RULE, *guard),
                _locations(merged(own_keys), table, fallback, regex),
            ),
        ]
    return [
        _Server(
            (f"# {host_q}", *_source_comment(refs)),
            (
                f"listen {http_listen};",
                f"listen {https_listen} ssl;",
                *names,
                *cert,
                *PATH_RULE,
                *guard,
            ),
            _locations(merged(own_keys), table, fallback, regex),
        )
    ]


# -- upstreams ----------------------------------------------------------------------------------


def upstreams(
    model: RouteModel, settings: NginxSettings, lua: bool = False
) -> tuple[_Upstream, ...]:
    """Static: one upstream per backend with ready endpoints; servers are IPs (notes §7).
    Lua: one upstream per backend, without a single endpoint address (module docstring)."""
    keepalive: list[str] = []
    if settings.upstream_keepalive_connections > 0:
        # After the balancer: keepalive wraps whichever balancer is set before it.
        keepalive = [
            f"keepalive {settings.upstream_keepalive_connections};",
            f"keepalive_timeout {settings.upstream_keepalive_timeout};",
            f"keepalive_requests {settings.upstream_keepalive_requests};",
        ]
    out = []
    for backend in model.backends:
        ref = ObjectRef(kind="Service", namespace=backend.namespace, name=backend.service)
        if lua:
            directives = [
                "server 0.0.0.1;",
                f"balancer_by_lua_block {{ require({_lua_string(_LUA_BALANCER)}).balance() }}",
            ]
        else:
            ready = backend.ready_endpoints
            if not ready:
                continue
            directives = [f"server {quote(e.hostport)};" for e in ready]
        out.append(
            _Upstream(_source_comment([ref]), quote(backend.name), (*directives, *keepalive))
        )
    return tuple(out)


def endpoint_state(
    model: RouteModel, names: Iterable[str] | None = None
) -> dict[str, list[tuple[str, int]]]:
    """Lua mode: what the channel holds for ``names`` (default: every backend), i.e. the ready
    endpoints of each backend in the model's order, as (address, port)."""
    index = model.backend_index
    chosen = model.backends if names is None else [index[n] for n in names if n in index]
    return {b.name: [(e.address, e.port) for e in b.ready_endpoints] for b in chosen}


# -- Lua ----------------------------------------------------------------------------------------

_LUA_BALANCER = "polyingress_balancer"
_LUA_CHANNEL = "polyingress_channel"
_LUA_SAFE = re.compile(r"[A-Za-z0-9_./:@+=,~ -]*")


def lua_safe(value: str) -> bool:
    return _LUA_SAFE.fullmatch(value) is not None


def _lua_string(value: str) -> str:
    """A Lua string literal for the renderer's own values (module names, the token, socket
    paths): only characters that need no escaping in Lua, in nginx's Lua blocks, or in a
    double-quoted nginx argument."""
    if not lua_safe(value):
        raise UnsafeValue(f"{value[:60]!r} cannot be a Lua string here")
    return f'"{value}"'


def _lua_http(lua: LuaRender) -> tuple[str, ...]:
    if ";" in lua.package_dir or "?" in lua.package_dir:
        raise UnsafeValue(f"Lua package directory {lua.package_dir!r} contains ';' or '?'")
    init = (
        f"require({_lua_string(_LUA_CHANNEL)}).init({{ "
        f"token = {_lua_string(lua.token)}, "
        f"seed = {_lua_string(LUA_SEED)}, "
        f"unavailable = {_lua_string(f'127.0.0.1:{lua.unavailable_port}')} }})"
    )
    return (
        f"lua_package_path {quote(lua.package_dir.rstrip('/') + '/?.lua;;')};",
        f"lua_shared_dict {LUA_DICT} {LUA_DICT_SIZE};",
        # The balancer's key: the upstream name from proxy_pass. ngx.var cannot read
        # $proxy_host (it is not in nginx's variable hash); a map can.
        f"map $proxy_host {_UPSTREAM_VARIABLE} {{ default $proxy_host; }}",
        # In the master, before the workers fork (they inherit the loaded modules and the
        # token, and need not read the package directory when running as nobody).
        f"init_by_lua_block {{ {init} }}",
    )


def _lua_servers(lua: LuaRender) -> list[_Server]:
    handle = f"content_by_lua_block {{ require({_lua_string(_LUA_CHANNEL)}).handle() }}"
    return [
        _Server(
            (
                "# Endpoint channel: the controller writes endpoints into the shared dictionary.",
                "# UNIX socket in a 0700 directory of the workdir, per-run token; never on TCP.",
            ),
            (
                f"listen {quote('unix:' + lua.channel_socket)};",
                "access_log off;",
                "client_max_body_size 64m;",
                "client_body_buffer_size 64m;",
            ),
            (
                _Location((), f"= {quote(CHANNEL_PATH)}", (handle,)),
                _Location((), quote("/"), ("return 404;",)),
            ),
        ),
        _Server(
            (
                "# Backends without a ready endpoint: the balancer sends their requests here",
                "# (loopback TCP: workers running as nobody may not reach the workdir).",
            ),
            (f"listen {quote(f'127.0.0.1:{lua.unavailable_port}')};", "access_log off;"),
            (_Location((), quote("/"), ("return 503;",)),),
        ),
    ]


# -- global directives --------------------------------------------------------------------------


def _onoff(flag: bool) -> str:
    return "on" if flag else "off"


def _main(s: NginxSettings, lua: LuaRender | None) -> tuple[str, ...]:
    # Debian's order: the Lua module needs NDK loaded first.
    modules = lua.modules if lua is not None else ()
    return (
        *(f"load_module {quote(path)};" for path in modules),
        "daemon off;",
        "master_process on;",
        f"worker_processes {s.worker_processes};",
        f"worker_shutdown_timeout {s.worker_shutdown_timeout};",
        "pcre_jit on;",
        f"pid {quote(PID_FILE)};",
        f"error_log stderr {s.error_log_level};",
    )


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def server_names_hash(names: Iterable[str]) -> tuple[int, int]:
    """(bucket_size, max_size) for ``server_names_hash_*``, from the names (notes §6).

    nginx stores a name in ``8 + align(len + 2, 8)`` bytes and needs one more pointer per bucket
    (src/core/ngx_hash.c); a bucket that holds at least 8 of the longest names lets nginx's
    size search succeed quickly, and a max_size of 4x the names keeps it warning-free.
    """
    unique = set(names)
    longest = max((len(n) for n in unique), default=0)
    element = 8 + _align(longest + 2, 8)
    bucket = 128
    while bucket < 8 * element + 8:
        bucket *= 2
    return bucket, max(512, 4 * len(unique))


def proxy_headers(s: NginxSettings) -> tuple[tuple[str, str], ...]:
    """The request headers every proxied request gets (``proxy_set_header`` name, value). A
    location that sets one inherits none of them: the Gateway rows repeat them."""
    xff = "$proxy_add_x_forwarded_for" if s.compute_full_forwarded_for else "$remote_addr"
    return (
        ("Connection", _CONNECTION_VARIABLE),
        ("Upgrade", "$http_upgrade"),
        ("Host", _HOST_VARIABLE),
        ("X-Real-IP", "$remote_addr"),
        ("X-Forwarded-For", xff),
        ("X-Forwarded-Host", "$host"),
        ("X-Forwarded-Port", "$server_port"),
        ("X-Forwarded-Proto", "$scheme"),
    )


def _http(s: NginxSettings, names: Iterable[str], lua: LuaRender | None) -> tuple[str, ...]:
    bucket, max_size = server_names_hash(names)
    logging: tuple[str, ...]
    if s.enable_access_log:
        logging = (
            f"log_format polyingress {quote(s.log_format_upstream, variables=True)};",
            'access_log "logs/access.log" polyingress;',
        )
    else:
        logging = ("access_log off;",)
    return (
        "default_type application/octet-stream;",
        f"server_tokens {_onoff(s.server_tokens)};",
        *logging,
        *(f"{name} {quote(path)};" for name, path in TEMP_PATHS),
        f"server_names_hash_bucket_size {bucket};",
        f"server_names_hash_max_size {max_size};",
        f"keepalive_timeout {s.keep_alive};",
        f"keepalive_requests {s.keep_alive_requests};",
        f"client_header_timeout {s.client_header_timeout};",
        f"client_body_timeout {s.client_body_timeout};",
        f"large_client_header_buffers {s.large_client_header_buffers};",
        f"client_max_body_size {s.proxy_body_size};",
        # Keep-alive to upstreams needs HTTP/1.1 and an empty Connection header (notes §7);
        # the map keeps WebSocket upgrades working and sends no Connection header otherwise.
        f'map $http_upgrade {_CONNECTION_VARIABLE} {{ default "upgrade"; "" ""; }}',
        # The Host as the client sent it (with its port, as HAProxy and Traefik forward it);
        # nginx's own name for it when there is none (HTTP/1.0).
        f'map $http_host {_HOST_VARIABLE} {{ default $http_host; "" $host; }}',
        # The request-path rule (polyingress.core.pipeline.requestpath): one regex for all servers.
        f"map $request_uri {_BAD_PATH_VARIABLE} {{ default 0; {quote(_BAD_PATH_REGEX)} 1; }}",
        "proxy_http_version 1.1;",
        *(f"proxy_set_header {name} {value};" for name, value in proxy_headers(s)),
        "proxy_redirect off;",
        f"proxy_connect_timeout {s.proxy_connect_timeout};",
        f"proxy_read_timeout {s.proxy_read_timeout};",
        f"proxy_send_timeout {s.proxy_send_timeout};",
        f"proxy_buffering {_onoff(s.proxy_buffering)};",
        *((f"proxy_buffer_size {s.proxy_buffer_size};",) if s.proxy_buffer_size else ()),
        f"proxy_next_upstream {' '.join(s.proxy_next_upstream)};",
        f"proxy_next_upstream_tries {s.proxy_next_upstream_tries};",
        f"ssl_protocols {' '.join(s.ssl_protocols)};",
        *((f"ssl_ciphers {quote(s.ssl_ciphers)};",) if s.ssl_ciphers else ()),
        "ssl_session_cache shared:polyingress_ssl:10m;",
        "ssl_session_timeout 10m;",
        *(_lua_http(lua) if lua is not None else ()),
    )


# nginx already decodes, merges slashes and removes dot segments before matching ($uri), and
# answers 400 to a bad %-escape, %00 or a '..' above the root. It must also refuse an encoded
# slash or backslash (it would decode %2F into a separator) and a raw backslash, and forward
# the normalized path: ``rewrite`` makes nginx send $uri, re-escaped, instead of the raw
# request line (proxy_pass without a URI part sends the raw one, notes §2).
_BAD_PATH_VARIABLE = "$polyingress_bad_path"
_BAD_PATH_REGEX = "~^[^?]*(?:%2[fF]|%5[cC]|\\\\)"
PATH_RULE = (f"if ({_BAD_PATH_VARIABLE}) {{ return 400; }}", "rewrite ^ $uri;")


def _listen_address(bind: str, port: int) -> str:
    try:
        ip = ipaddress.ip_address(bind)
    except ValueError:
        raise UnsafeValue(f"bind address {bind!r} is not an IP address") from None
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    return quote(f"{host}:{port}")


def _status_server(opts: RenderOptions) -> _Server:
    comments = ["# Internal status server: config version marker and stub_status, loopback only."]
    if opts.status_port == 0:
        comments.append("# Port 0: the nginx backend picks a free port when it starts.")
    version = f"return 200 {quote(_DIGEST_PLACEHOLDER)};"
    return _Server(
        tuple(comments),
        (f"listen {quote(f'127.0.0.1:{opts.status_port}')};", "access_log off;"),
        (
            _Location((), f"= {quote(CONFIG_VERSION_PATH)}", ("default_type text/plain;", version)),
            _Location((), f"= {quote(STATUS_PATH)}", ("stub_status;",)),
            _Location((), quote("/"), ("return 404;",)),
        ),
    )


def _key_pairs(model: RouteModel, fallback: Certificate) -> dict[str, KeyPair]:
    bindings: dict[str, set[ObjectRef]] = {}
    for vhost in model.vhosts:
        if vhost.tls is not None and vhost.tls.certificate is not None:
            bindings.setdefault(vhost.tls.certificate, set()).add(vhost.tls.source)
    pairs = {
        fallback.name: KeyPair(
            name=fallback.name,
            crt=FALLBACK_CRT,
            key=FALLBACK_KEY,
            cert_pem=fallback.cert_pem,
            key_pem=fallback.key_pem,
        )
    }
    for name in sorted(bindings):
        cert = model.certificate(name)
        stem = f"certs/{cert.name}-{cert.fingerprint[:16]}"
        pairs[name] = KeyPair(
            name=cert.name,
            crt=stem + ".crt",
            key=stem + ".key",
            cert_pem=cert.cert_pem,
            key_pem=cert.key_pem,
            refs=tuple(sorted({cert.source, *bindings[name]})),
        )
    return pairs


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template("nginx.conf.j2")


def render(model: RouteModel, opts: RenderOptions, fallback: Certificate) -> NginxConfig:
    """The nginx.conf for ``model``; same inputs, byte-identical text."""
    settings = nginx_settings(model.settings)
    http_listen = _listen_address(opts.bind, opts.http_port)
    https_listen = _listen_address(opts.bind, opts.https_port)
    pairs = _key_pairs(model, fallback)
    catch_all = model.vhost_index.get(None)
    lua = opts.lua is not None
    gw = _gateway(model, settings, opts)

    default_listens = (
        f"listen {http_listen} default_server;",
        f"listen {https_listen} ssl{' http2' if settings.use_http2 else ''} default_server;",
    )
    default_comments = (
        "# Default server: unknown Hosts, unknown SNI (fallback certificate), and the",
        "# host-less rules (catch-all).",
    )
    # Here only, not at http level: a server that inherits a certificate gets its own SSL
    # context (measured: nginx -t of 10,000 hosts took 6 s instead of 0.3 s). Hosts without a
    # certificate of their own keep this server's context, i.e. the fallback certificate,
    # after SNI selected them.
    fallback_cert = (
        f"ssl_certificate {quote(FALLBACK_CRT)};",
        f"ssl_certificate_key {quote(FALLBACK_KEY)};",
    )
    if gw is not None and gw.involves(catch_all):
        servers = gw.servers(
            default_comments,
            (default_listens[0], 'server_name "";', *PATH_RULE),
            (default_listens[1], 'server_name "";', *fallback_cert, *PATH_RULE),
            _route_keys(catch_all),
            catch_all,
        )
    else:
        servers = [
            _Server(
                default_comments,
                (*default_listens, 'server_name "";', *fallback_cert, *PATH_RULE),
                _locations(_route_keys(catch_all), _table(model, catch_all, lua), None, None),
            )
        ]
    names: list[str] = []
    for vhost in model.vhosts:
        if vhost.host is None or (gw is not None and gw.shadowed(vhost)):
            continue
        names.append(vhost.host)
        servers += _host_servers(model, vhost, opts, http_listen, https_listen, pairs, gw)
    servers.append(_status_server(opts))
    if opts.lua is not None:
        servers += _lua_servers(opts.lua)

    text = _template().render(
        main=_main(settings, opts.lua),
        events=(f"worker_connections {settings.max_worker_connections};",),
        http=(*_http(settings, names, opts.lua), *(gw.http() if gw is not None else ())),
        upstreams=upstreams(model, settings, lua=opts.lua is not None),
        servers=servers,
    )
    if text.count(_DIGEST_PLACEHOLDER) != 1:
        raise UnsafeValue("the config digest placeholder occurs in the model")
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    return NginxConfig(
        text=text.replace(_DIGEST_PLACEHOLDER, digest),
        digest=digest,
        key_pairs=tuple(pairs[n] for n in sorted(pairs)),
        settings=settings,
        settings_source=model.settings.source,
        problems=tuple(gw.problems) if gw is not None else (),
        lua=opts.lua is not None,
        auth_files=_auth_files(model),
    )


def _auth_files(model: RouteModel) -> tuple[tuple[str, str], ...]:
    from .gateway import auth_file  # (gateway.py imports this module)

    files = {
        auth_file(r.policy.auth)
        for v in model.vhosts
        for r in v.routes
        if r.policy is not None and r.policy.auth is not None
    }
    return tuple(sorted(files))


def _gateway(model: RouteModel, settings: NginxSettings, opts: RenderOptions) -> Gateway | None:
    """The Gateway API renderer (gateway.py), when the model has Gateway API rows or hosts."""
    from .gateway import Gateway, used

    if not used(model):
        return None
    return Gateway(
        model,
        settings,
        opts.lua is not None,
        opts.redirect_https_port or opts.https_port,
        proxy_headers(settings),
    )


# -- attribution of nginx errors ------------------------------------------------------------------

_SOURCE_LINE = re.compile(r"^\s*# source: (.*)$")
_REF = re.compile(r'"([A-Za-z]+) ([^"/]*)/([^"]*)"')


def line_owners(text: str) -> list[tuple[ObjectRef, ...]]:
    """For each line (index = line number - 1), the objects it was rendered from.

    A ``# source:`` comment owns the next statement (a directive, or a block and everything in
    it that has no owner of its own). Relies on the renderer's layout: one statement per line,
    a block opens at the end of its line and closes on a line of its own.
    """
    owners: list[tuple[ObjectRef, ...]] = []
    stack: list[tuple[ObjectRef, ...]] = [()]
    pending: tuple[ObjectRef, ...] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        m = _SOURCE_LINE.match(line)
        if m is not None:
            pending = tuple(
                ObjectRef(kind=k, namespace=ns, name=n) for k, ns, n in _REF.findall(m.group(1))
            )
            owners.append(pending)
            continue
        if not stripped or stripped.startswith("#"):
            owners.append(stack[-1])
            continue
        own = pending if pending is not None else stack[-1]
        pending = None
        if stripped == "}":
            own = stack.pop() if len(stack) > 1 else stack[-1]
        elif stripped.endswith("{"):
            stack.append(own)
        owners.append(own)
    return owners
