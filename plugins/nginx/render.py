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
* Lua (``RenderOptions.lua`` set): one upstream for every backend, holding a placeholder
  ``server 0.0.0.1;``, ``balancer_by_lua_block`` and keepalive; a location names its backend
  in ``$polyingress_backend`` (``set``) and proxies to that upstream, whether the backend has
  ready endpoints or not. The balancer (``lua/polyingress_balancer.lua``) reads the endpoints
  from the ``lua_shared_dict`` that the controller writes through the endpoint channel
  (``lua/polyingress_channel.lua``: a server on a UNIX socket in the workdir, token rendered
  here) and sends the requests of a backend without endpoints to a local responder that
  answers 503. The config holds no endpoint address, so an endpoint change (also n -> 0 and
  0 -> n) leaves it byte-identical: no reload. Mirror targets of Gateway API rows keep an
  upstream each whose balancer is handed the backend's name (notes §11).

Size per host (notes §11). With the Lua module loaded, nginx makes an SSL_CTX for every location
configuration it merges, so the text is kept small per host: a location that answers as the
location above it is left out (:func:`_pruned`; both modes), and in Lua mode hosts whose server
blocks differ only in their name and their backends share one block (:func:`_grouped`): a
``server_name`` line per host, and a backend that differs by host read from a map of ``$host``
(``$polyingress_slot_N``). 10,000 such hosts are one block and a map: ``nginx -t`` 0.03 s and
20 MB instead of 8 s and 1.3 GB. Hosts with Gateway API rows (gateway.py's servers) are grouped
alike: their named locations and http-level maps are named by their content. A host's second
block with backends (a Gateway API host's HTTPS server beside its HTTP one) reads maps of a
layer of its own (``$polyingress_slot_1_N``). Wildcard and suffix hosts (their guards read
``$host``), hosts named like a map's own words and hosts of a shape of their own keep a block
each.
:class:`RenderCache` keeps the host blocks of the last render, so a change renders the hosts it
touches.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from polyingress.core import (
    Answer,
    Backend,
    Certificate,
    HostKind,
    ObjectRef,
    Outcome,
    PathTable,
    PathType,
    RouteModel,
    VirtualHost,
)

from .affinity import VARIABLE as AFFINITY_VARIABLE
from .affinity import affinity_backends, upstream_name
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
    "RenderCache",
    "RenderOptions",
    "UnsafeValue",
    "endpoint_state",
    "line_owners",
    "lua_safe",
    "quote",
    "render",
    "ssl_redirect_target",
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
# Lua mode: one upstream for every backend; a location names its backend in a variable that
# the balancer reads (a literal, or for hosts served by one shared server block a map of $host).
LUA_UPSTREAM = "polyingress_lua"
BACKEND_VARIABLE = "$polyingress_backend"
_LUA_PROXY_PASS = f'proxy_pass "http://{LUA_UPSTREAM}";'
# A backend reached over TLS (backend-protocol HTTPS/GRPCS): the same upstream, the balancer
# picks the endpoint, nginx speaks TLS to it (its certificate not verified, as in ingress-nginx).
_LUA_PROXY_PASS_TLS = f'proxy_pass "https://{LUA_UPSTREAM}";'
_LUA_PROXIES = (_LUA_PROXY_PASS, _LUA_PROXY_PASS_TLS)
# Lua mode's idle upstream connections per worker, shared by every backend (ingress-nginx's
# default for its one balancer upstream), unless the ConfigMap sets
# upstream-keepalive-connections.
LUA_KEEPALIVE_DEFAULT = 320
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


_CONTROL = re.compile("[\x00-\x1f\x7f]")


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
    bad = _CONTROL.search(value)
    if bad is not None:
        ch = bad.group()
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

    @property
    def public_https_port(self) -> int:
        """The HTTPS port redirects name: ``redirect_https_port``, else ``https_port``."""
        return self.redirect_https_port or self.https_port


def ssl_redirect_target(https_port: int) -> str:
    """The quoted Location of an HTTP to HTTPS redirect: the request's host and target on
    ``https_port`` (left out when 443)."""
    port = "" if https_port == 443 else f":{https_port}"
    return quote("https://$host" + port + "$request_uri", variables=True)


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

    @property
    def backend_set(self) -> str | None:
        """Lua mode: the ``set`` of the backend a proxied answer names (None otherwise)."""
        for proxy in _LUA_PROXIES:
            if self.directive.endswith(" " + proxy):
                return self.directive[: -len(proxy) - 1]
        return None

    @property
    def lua_proxy(self) -> str:
        """Lua mode: the ``proxy_pass`` of a proxied answer (http or https to the upstream)."""
        return next(p for p in _LUA_PROXIES if self.directive.endswith(" " + p))


Table = Callable[[str], _Answer]


def _directive(model: RouteModel, answer: Answer, lua: bool) -> str:
    """The nginx directive of the core's answer. Lua mode: availability is decided per request
    by the balancer, so that endpoints going from n to 0 (or 0 to n) do not change the text."""
    if answer.outcome is Outcome.NOT_FOUND:
        return "return 404;"
    backend = model.backend_index.get(answer.backend) if answer.backend is not None else None
    if backend is None or (answer.outcome is Outcome.UNAVAILABLE and not lua):
        return "return 503;"
    if lua and not backend.protocol.http2:
        proxy = _LUA_PROXY_PASS_TLS if backend.protocol.tls else _LUA_PROXY_PASS
        return f"set {BACKEND_VARIABLE} {quote(backend.name)}; {proxy}"
    return proxy_pass(backend)


def proxy_pass(backend: Backend, uri: str = "") -> str:
    """``proxy_pass`` to a backend's upstream in its protocol: HTTP/1.1 in clear text or over
    TLS (``https``: the certificate is not verified, nginx's default, as in ingress-nginx).
    nginx 1.22 proxies no HTTP/2 (grpc_pass speaks gRPC only), and the backend does not declare
    HTTPRouteBackendProtocolH2C: such a backend answers 500, never HTTP/1.1 in silence."""
    if backend.protocol.http2:
        return "return 500;"
    scheme = "https" if backend.protocol.tls else "http"
    return f"proxy_pass {quote(f'{scheme}://{backend.name}{uri}', variables=bool(uri))};"


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

    After an ``if`` block nginx still runs the location's later rewrite directives (``return``,
    ``set``) even when the ``if`` matched, so a ``return`` must sit inside the ``if``: when only
    the primary answer is a ``return``, the condition is inverted. In Lua mode two proxied
    answers differ in the backend they ``set``: the primary's is set first, the ``if`` sets
    the fallback's after it (and proxies, as the ``if`` block's configuration is the one used).
    """
    if primary.directive == fallback.directive:
        return (primary.directive,)
    if primary.backend_set and fallback.backend_set:
        cond = f"$host !~ {quote(regex, variables=True)}"
        return (
            primary.backend_set,
            f"if ({cond}) {{ {fallback.backend_set} {fallback.lua_proxy} }}",
            primary.lua_proxy,
        )
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
    out: list[tuple[_Key, tuple[str, ...]]] = []
    # Exact and Prefix keys by path, the catch-all ``/`` last (order does not change matching).
    for key in sorted({**keys, _ROOT: keys.get(_ROOT, set())}, key=_Key.sort_key):
        rep = key.representative
        answer = primary(rep)
        if fallback is not None and regex is not None:
            directives = _guarded(answer, fallback(rep), regex)
        else:
            directives = (answer.directive,)
        out.append((key, directives))
    return _pruned(out, keys)


def _pruned(
    entries: list[tuple[_Key, tuple[str, ...]]], keys: dict[_Key, set[ObjectRef]]
) -> tuple[_Location, ...]:
    """The locations without the redundant ones. A key whose directives are those of the key
    nginx would select without it (the longest Prefix key above it, else ``/``) answers nothing
    of its own: it is left out and its paths fall to that key (transitively: a chain of equal
    keys collapses to its top), so a host whose every path gets one answer is one
    ``location /``. Except ``= P`` while a location named ``P/`` stays, or nginx would answer
    ``P`` with its own 301 to ``P/`` (notes §2). A kept location names the objects of the keys
    it took over."""
    directives = dict(entries)
    by_path = {k.path: k for k in directives if k.kind is _Kind.PREFIX}
    exact_paths = {k.path for k in directives if k.kind is _Kind.EXACT}

    def parent(key: _Key) -> _Key:
        # The longest Prefix key that is a proper ancestor of the representative path.
        path = key.path if key.kind is _Kind.EXACT else key.path + "/"
        end = path.rfind("/", 0, len(path) if key.kind is _Kind.EXACT else len(path) - 1)
        while end > 0:
            found = by_path.get(path[:end])
            if found is not None:
                return found
            end = path.rfind("/", 0, end)
        return _ROOT

    parents = {k: parent(k) for k in directives if k != _ROOT}
    dropped = {k for k, up in parents.items() if directives[k] == directives[up]}
    # Named "P/" and kept (a Prefix P, or an Exact "P/"): its "= P" twin must stay.
    slash_named = {k.path for k in directives if k.kind is _Kind.PREFIX and k not in dropped}
    slash_named |= {
        p[:-1] for p in exact_paths if p.endswith("/") and _Key(p, _Kind.EXACT) not in dropped
    }
    dropped = {k for k in dropped if not (k.kind is _Kind.EXACT and k.path in slash_named)}
    refs: dict[_Key, set[ObjectRef]] = {k: set(keys.get(k, ())) for k in directives}
    for k in sorted(dropped, key=lambda k: -len(k.path)):
        up = parents[k]
        while up in dropped:
            up = parents[up]
        refs[up] |= refs[k]
    return tuple(
        _Location(_source_comment(refs[k]), k.match, d) for k, d in entries if k not in dropped
    )


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
    out: list[tuple[_Key, tuple[str, ...]]] = []
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
        out.append((key, directives))
    return _pruned(out, keys)


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
        target = ssl_redirect_target(opts.public_https_port)
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


# -- hosts served by one server block (Lua mode) ---------------------------------------------------
#
# With the Lua module loaded, nginx 1.22's ngx_http_lua (0.10.23) creates an SSL_CTX for every
# location configuration it merges (every server, location and `if`; ~0.1 ms and ~15 KB each on
# OpenSSL 3.0): 10,000 hosts of one server and three locations each took nginx -t 8 s and 1.3 GB.
# Hosts whose server blocks differ only in their name and their backends therefore share one
# server block: one server_name line per host, and a location's backend is looked up by $host
# (a map per backend position). 10,000 such hosts cost nginx -t 0.02 s and 20 MB.

_SLOT = re.compile(r'set \$polyingress_backend ("[a-z0-9_-]+");')
_SLOT_MARK = "set $polyingress_backend %%slot%%;"
_NAME_MARK = "%%server_name%%"
# Words a map reads as its own parameters, not as a key: such hosts keep a server of their own.
_MAP_WORDS = frozenset({"default", "hostnames", "include", "volatile"})
SLOT_VARIABLE = "$polyingress_slot_"


_Shape = tuple[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]]
# The lines of one item in a server block as the template lays it out (a shared block's
# server_name lines are one item: 10,000 hosts are 30,000 lines).
_NAMES_JOIN = "\n        "


@dataclass(frozen=True, slots=True)
class _Shaped:
    """A host's server block, and what hosts served alike share: the block without its comments,
    its server_name and its backend names (``slots``, in order). ``shape`` None: served alone."""

    server: _Server
    host: str
    shape: _Shape | None
    slots: tuple[str, ...]
    quoted: str = ""  # the host, quoted
    names: str = ""  # its lines in a shared block (comments, server_name), joined


def _shaped(server: _Server, host: str) -> _Shaped:
    """A host's block with what it shares with blocks alike. Hosts with Gateway API rows are
    shaped too: their named locations and http-level maps are named by their content (the
    same rows render the same text), and nothing in their blocks reads the host's name but
    ``server_name`` and the slot maps (wildcard and suffix hosts, whose guards read ``$host``,
    keep a block of their own)."""
    if host in _MAP_WORDS or host.startswith(("*.", "**.")):
        return _Shaped(server, host, None, ())
    quoted = quote(host)
    name_line = f"server_name {quoted};"
    slots: list[str] = []

    def take(m: re.Match[str]) -> str:
        slots.append(m.group(1))
        return _SLOT_MARK

    directives = tuple(_NAME_MARK if d == name_line else d for d in server.directives)
    locations = tuple(
        (loc.match, tuple(_SLOT.sub(take, d) for d in loc.directives)) for loc in server.locations
    )
    names = _NAMES_JOIN.join((*server.comments, name_line))
    return _Shaped(server, host, (directives, locations), tuple(slots), quoted, names)


def _fill(directive: str, slot: Iterator[str]) -> str:
    """``directive`` with each slot mark replaced by the next replacement, in order."""
    head, *rest = directive.split(_SLOT_MARK)
    return head + "".join(next(slot) + part for part in rest)


@dataclass(frozen=True, slots=True)
class _Map:
    comments: tuple[str, ...]
    header: str
    lines: tuple[str, ...]


def _grouped(shaped: list[_Shaped]) -> tuple[list[_Server], list[_Map]]:
    """Servers for the hosts' blocks, one per group of blocks of one shape, and the maps of
    ``$host`` to a backend that the shared blocks read: one per backend position and *layer*.
    A host's first block with backends is in layer 0, its second (a Gateway API host's HTTP and
    HTTPS servers) in layer 1, and so on; groups are of one shape and one layer, so a host is in
    one group per layer and its key is unique in each map."""
    groups: dict[object, list[_Shaped]] = {}
    order: list[object] = []
    layers: dict[str, int] = {}  # a host's blocks with backends so far
    for item in shaped:
        key: object = item
        if item.shape is not None:
            layer = 0
            if item.slots:
                layer = layers.get(item.host, 0)
                layers[item.host] = layer + 1
            key = (item.shape, layer)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(item)
    entries: dict[tuple[int, int], list[str]] = {}
    servers: list[_Server] = []
    for key in order:
        members = groups[key]
        if len(members) == 1:
            servers.append(members[0].server)
            continue
        first = members[0]
        assert first.shape is not None and isinstance(key, tuple)
        layer = key[1]
        directives, locations = first.shape
        replacements = []
        seen: dict[tuple[str, ...], int] = {}  # a position with the same backends reads one map
        for j, backend in enumerate(first.slots):
            values = tuple(m.slots[j] for m in members)
            if all(v == backend for v in values):
                replacements.append(f"set {BACKEND_VARIABLE} {backend};")
                continue
            if values not in seen:
                seen[values] = j
                entries.setdefault((layer, j), []).extend(
                    f"{m.quoted} {v};" for m, v in zip(members, values, strict=True)
                )
            replacements.append(f"set {BACKEND_VARIABLE} {_slot_variable(layer, seen[values])};")
        slot = iter(replacements)
        # One string of lines (the template lays out a line per item: 10,000 hosts are
        # 30,000 lines).
        names = (_NAMES_JOIN.join(m.names for m in members),)
        servers.append(
            _Server(
                (
                    f"# {len(members)} hosts served alike, each named below with its objects"
                    + (f"; backends by $host ({SLOT_VARIABLE}N)." if seen else "."),
                ),
                tuple(x for d in directives for x in (names if d == _NAME_MARK else (d,))),
                tuple(
                    _Location((), match, tuple(_fill(d, slot) for d in ds))
                    for match, ds in locations
                ),
            )
        )
    maps = [
        _Map(
            ()
            if layer or j
            else ("# The backend of each position of the shared server blocks, by host.",),
            f"map $host {_slot_variable(layer, j)}",
            ('default "";', "\n        ".join(lines)),
        )
        for (layer, j), lines in sorted(entries.items())
    ]
    return servers, maps


def _slot_variable(layer: int, position: int) -> str:
    """The map variable of a backend position of the shared blocks of one layer."""
    return f"{SLOT_VARIABLE}{position}" if not layer else f"{SLOT_VARIABLE}{layer}_{position}"


@dataclass(frozen=True, slots=True)
class _CachedHost:
    vhost: VirtualHost
    backends: frozenset[str]  # the backends its blocks name (its fallback host's too)
    below: VirtualHost | None  # a wildcard's fallback host; any fallback of a Gateway API host
    pair: tuple[str, str, tuple[ObjectRef, ...]] | None  # its certificate's files and owners
    parts: tuple[_Shaped, ...]
    # Gateway API hosts: the http-level maps and splits their blocks name, and the problems
    # their rendering reported (gateway.py), put back into a render that reuses the blocks.
    blocks: tuple[tuple[str, tuple[str, ...]], ...] = ()
    problems: tuple[str, ...] = ()
    involved: bool = False  # it has Gateway API rows (its fallback's, for a wildcard)


class RenderCache:
    """The host server blocks of the last render, reused for a host while it and what its
    blocks depend on are unchanged: its routes and TLS, its fallback host (a wildcard's, and
    every fallback of a host with Gateway API rows), its certificate's files, the backends it
    names (routes, weighted splits, mirrors; static: equal Backends, mostly the same objects,
    which the builder keeps while unchanged; Lua: that they exist), the default backend, the
    settings and the listen options. A Gateway API host's entry keeps the http-level maps it
    needs. A change to one host renders that host again, not 10,000. Only the last render's
    hosts are kept."""

    def __init__(self) -> None:
        self._hosts: dict[str, _CachedHost] = {}
        self._backends: dict[str, Backend] = {}
        self._context: object = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._hosts)


def _named_backends(*vhosts: VirtualHost | None) -> set[str]:
    """Every backend the rows of ``vhosts`` name: their own, their splits', their mirrors'."""
    out: set[str] = set()
    for vhost in vhosts:
        if vhost is None:
            continue
        for r in vhost.routes:
            out.update(r.backends)
            out.update(r.mirrors)
    return out


# -- upstreams ----------------------------------------------------------------------------------


def _keepalive(settings: NginxSettings, connections: int) -> tuple[str, ...]:
    if connections <= 0:
        return ()
    # After the balancer: keepalive wraps whichever balancer is set before it.
    return (
        f"keepalive {connections};",
        f"keepalive_timeout {settings.upstream_keepalive_timeout};",
        f"keepalive_requests {settings.upstream_keepalive_requests};",
    )


def _sticky_of(*vhosts: VirtualHost | None) -> Iterator[str]:
    """The backends that the rows of ``vhosts`` with session affinity proxy to."""
    for vhost in vhosts:
        if vhost is not None:
            for r in vhost.routes:
                if r.affinity is not None:
                    yield from r.backends


def _mirrors_of(*vhosts: VirtualHost | None) -> Iterator[str]:
    """The backends that the rows of ``vhosts`` mirror requests to (Gateway API rows)."""
    for vhost in vhosts:
        if vhost is not None:
            for r in vhost.routes:
                yield from r.mirrors


def upstreams(
    model: RouteModel,
    settings: NginxSettings,
    lua: bool = False,
    mirrors: Iterable[str] = (),
    sticky: frozenset[str] | None = None,
) -> tuple[_Upstream, ...]:
    """Static: one upstream per backend with ready endpoints; servers are IPs (notes §7).
    Lua: one upstream for every backend, without a single endpoint address (module docstring):
    the balancer reads the backend's name from ``$polyingress_backend``. 10,000 upstream blocks
    cost nginx ~12 KB each and their parse at every reload; one costs nothing per backend.

    Lua mode's ``mirrors`` (backends that rows mirror requests to) get an upstream each, whose
    balancer is handed the backend's name: a mirror's subrequest shares the variables of the
    request it copies (nginx's subrequests do), so it cannot name its backend in
    ``$polyingress_backend`` without changing the backend of the request itself. Static mode's
    ``sticky`` (backends that rows with session affinity proxy to; None: found in the model) get
    a second upstream each, hashing the affinity key."""
    if lua:
        connections = settings.upstream_keepalive_connections
        if "upstream-keepalive-connections" not in settings.from_configmap:
            connections = LUA_KEEPALIVE_DEFAULT
        comments = (
            "# Lua mode: every backend. The balancer picks an endpoint of the backend named in",
            f"# {BACKEND_VARIABLE}, from the endpoints the controller pushed (idle connections:",
            "# one pool per worker for all backends).",
        )
        directives = (
            "server 0.0.0.1;",
            f"balancer_by_lua_block {{ require({_lua_string(_LUA_BALANCER)}).balance() }}",
        )
        out = [_Upstream(comments, LUA_UPSTREAM, (*directives, *_keepalive(settings, connections)))]
        for name in mirrors:
            backend = model.backend_index[name]
            ref = ObjectRef(kind="Service", namespace=backend.namespace, name=backend.service)
            call = f"require({_lua_string(_LUA_BALANCER)}).balance({_lua_string(name)})"
            out.append(
                _Upstream(
                    (*_source_comment([ref]), "# Mirror copies to this backend."),
                    quote(name),
                    (
                        "server 0.0.0.1;",
                        f"balancer_by_lua_block {{ {call} }}",
                        *_keepalive(settings, settings.upstream_keepalive_connections),
                    ),
                )
            )
        return tuple(out)
    keepalive = _keepalive(settings, settings.upstream_keepalive_connections)
    out = []
    if sticky is None:
        sticky = affinity_backends(model)
    for backend in model.backends:
        ref = ObjectRef(kind="Service", namespace=backend.namespace, name=backend.service)
        ready = backend.ready_endpoints
        if not ready:
            continue
        servers = [f"server {quote(e.hostport)};" for e in ready]
        out.append(_Upstream(_source_comment([ref]), quote(backend.name), (*servers, *keepalive)))
        if backend.name in sticky:
            # Session affinity (affinity.py): the same servers, chosen by the cookie's key.
            hashed = (f"hash {AFFINITY_VARIABLE} consistent;", *servers, *keepalive)
            out.append(
                _Upstream(_source_comment([ref]), quote(upstream_name(backend.name)), hashed)
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
        # The maps of shared server blocks have the host names as keys (Lua mode).
        f"map_hash_bucket_size {bucket};",
        f"map_hash_max_size {max_size};",
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
    if model.default_certificate is not None:
        bindings.setdefault(model.default_certificate, set())
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


def render(
    model: RouteModel,
    opts: RenderOptions,
    fallback: Certificate,
    cache: RenderCache | None = None,
) -> NginxConfig:
    """The nginx.conf for ``model``; same inputs, byte-identical text (with or without a
    ``cache`` of the last render's host blocks, which only saves time)."""
    settings = nginx_settings(model.settings)
    http_listen = _listen_address(opts.bind, opts.http_port)
    https_listen = _listen_address(opts.bind, opts.https_port)
    pairs = _key_pairs(model, fallback)
    catch_all = model.vhost_index.get(None)
    lua = opts.lua is not None
    # The Gateway API renderer serves the hosts with Gateway API rows; its http-level lines
    # are written when the model has such a host or a suffix host (found host by host below:
    # a scan of every row took 100 ms at 10,000 Ingresses, more than the rest of a render).
    gw = _gateway(model, settings, opts)
    gateway_used = gw.involves(catch_all)
    mirrors: set[str] = set(_mirrors_of(catch_all)) if gateway_used else set()
    sticky: set[str] = set(_sticky_of(catch_all)) if gateway_used else set()

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
    # The model's default certificate (an HTTPS listener's without hostname) if it has one.
    default_pair = pairs[model.default_certificate] if model.default_certificate else None
    fallback_cert = (
        f"ssl_certificate {quote(default_pair.crt if default_pair else FALLBACK_CRT)};",
        f"ssl_certificate_key {quote(default_pair.key if default_pair else FALLBACK_KEY)};",
    )
    if gateway_used:
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
    shaped: list[_Shaped] = []
    index = model.backend_index
    default = model.default_backend
    # What every host depends on; and the backends that changed since the cache's render.
    context = (opts, settings, default, default in index if lua else index.get(default or ""))
    hosts: dict[str, _CachedHost] = {}
    changed: set[str] = set()
    if cache is not None and context == cache._context:
        last = cache._backends
        hosts = cache._hosts
        if lua:
            changed = set(index.keys() ^ last.keys())
        else:
            # Mostly identities: the builder keeps an unchanged Backend the same object.
            changed = {n for n, b in index.items() if (o := last.get(n)) is not b and o != b}
            changed.update(last.keys() - index.keys())
    fresh: dict[str, _CachedHost] = {}
    flat = not any(h is not None and h.startswith("*") for h in model.vhost_index)
    for vhost in model.vhosts:
        host = vhost.host
        if host is None:
            continue
        if host.startswith("**."):
            gateway_used = True  # a suffix host (HTTPRoute)
            if gw.shadowed(vhost):
                continue
        names.append(host)
        below = model.fallback_host(vhost) if host.startswith("*.") else None
        entry = hosts.get(host)
        if entry is not None and not (entry.vhost is vhost or entry.vhost == vhost):
            entry = None
        if entry is not None and entry.involved and below is None:
            # (an exact host's is the catch-all when no wildcard or suffix host exists)
            below = catch_all if flat else model.fallback_host(vhost)
        pair = None
        if vhost.tls is not None and vhost.tls.certificate is not None:
            found = pairs[vhost.tls.certificate]
            pair = (found.crt, found.key, found.refs)
        if (
            entry is not None
            and (entry.below is below or entry.below == below)
            and entry.pair == pair
            and entry.backends.isdisjoint(changed)
        ):
            # Same host, same fallback: its Gateway API rows, if any, are as they were.
            gw.replay(entry.blocks, entry.problems)
            if cache is not None:
                cache.hits += 1
        else:
            involved = gw.involves(vhost, below)
            if involved and below is None:
                # gateway.py's servers read the host the names would fall to (_redundant).
                below = model.fallback_host(vhost)
            gw.record()
            built = _host_servers(model, vhost, opts, http_listen, https_listen, pairs, gw)
            blocks, problems = gw.recorded()
            entry = _CachedHost(
                vhost,
                frozenset(_named_backends(vhost, below)),
                below,
                pair,
                tuple(_shaped(server, host) for server in built),
                blocks,
                problems,
                involved,
            )
            if cache is not None:
                cache.misses += 1
        if entry.involved:
            gateway_used = True
            mirrors.update(_mirrors_of(vhost, below))
            sticky.update(_sticky_of(vhost, below))
        fresh[host] = entry
        shaped.extend(entry.parts)
    if cache is not None:
        cache._hosts, cache._backends, cache._context = fresh, index, context
    maps: list[_Map] = []
    if lua:
        grouped, maps = _grouped(shaped)
        servers += grouped
    else:
        servers += [item.server for item in shaped]
    servers.append(_status_server(opts))
    if opts.lua is not None:
        servers += _lua_servers(opts.lua)

    text = _template().render(
        main=_main(settings, opts.lua),
        events=(f"worker_connections {settings.max_worker_connections};",),
        http=(*_http(settings, names, opts.lua), *(gw.http() if gateway_used else ())),
        maps=maps,
        upstreams=upstreams(
            model,
            settings,
            lua=lua,
            mirrors=sorted(mirrors & model.backend_index.keys()),
            sticky=frozenset(sticky),
        ),
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
        problems=tuple(gw.problems),
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


def _gateway(model: RouteModel, settings: NginxSettings, opts: RenderOptions) -> Gateway:
    """The Gateway API renderer (gateway.py) of one render."""
    from .gateway import Gateway

    return Gateway(
        model,
        settings,
        opts.lua is not None,
        opts.public_https_port,
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
