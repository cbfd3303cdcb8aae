"""Gateway API rows in nginx 1.22: conditions, splits, redirects, rewrites, header filters,
mirrors and timeouts, exactly as :meth:`RouteModel.answer` states them.

nginx chooses a location by the path only. A row of the model may also require a method,
headers, query parameters or a listener scheme, and several rows may share one path; the first
whose conditions hold wins, else the next shorter path's rows, else the default. This module
renders the servers of every virtual host that has such rows (``render.py`` calls
:meth:`Gateway.servers`; hosts with Ingress-style rows only keep ``render.py``'s own servers).

How a request finds its row, without Lua (so the same in both upstream modes):

* Each host gets two servers, one per listener port: the scheme is then known while rendering,
  and a row served on one scheme only is simply absent from the other server.
* The location table is ``render.py``'s (``= /p``, ``^~ /p/``, ``/``), and every request nginx
  sends to one location has the same ordered list of candidate rows: the rows of the
  location's *representative* path, in the core's precedence (:class:`PathTable` order), cut
  after the first row without conditions, then the default (default backend, else 404).
* Each condition is a ``map`` to ``1``/``0`` (http level, named by a hash of what it tests, so
  equal conditions are one map): the method (``$request_method``), a header (``$http_<name>``,
  an anchored case-sensitive regex), a cookie (``$http_cookie``, :func:`cookie_regex`), a
  query parameter (``$args``: the *first* parameter of
  that name has that value, as :meth:`Request.query_param`), the wildcard guard (``$host``,
  single label). A location with conditional candidates gets one more ``map``: the
  concatenated condition bits -> the named location of the first candidate that holds (regex
  entries, tried in order), ``default`` the last candidate. The location dispatches with
  ``error_page 418 = $selection; return 418;`` (an internal redirect to a named location keeps
  the method, the URI and the body).
* A location whose first candidate has no condition answers it inline.

What a row does (one named location per distinct action in a server):

* Proxy: ``proxy_pass`` to the backend's upstream (static mode: ``return 503`` without a ready
  endpoint; Lua mode: the balancer decides per request, so the text never depends on
  endpoints). Request header filters are ``proxy_set_header`` lines, repeated in full with
  render.py's defaults (a location that sets one inherits none); ``add`` appends to the
  client's value (``value`` when absent, ``client,value`` else, through a ``map``); ``remove``
  is an empty value. A host rewrite sets ``Host``. A path rewrite is ``rewrite ... break`` on
  the normalized ``$uri`` (ReplaceFullPath: the value; ReplacePrefixMatch: the core's rule,
  ``PathModifier.apply``). Response filters: ``proxy_hide_header`` + ``add_header ...
  always``. Mirrors: ``mirror`` to an internal location proxying ``$request_uri`` to the
  mirror's upstream (static mode: none without a ready endpoint). A mirror's share (n of every
  d requests, HTTPRouteRequestPercentageMirror): Lua mode, a location of its own per row and
  mirror whose ``rewrite_by_lua`` (polyingress_mirror.lua, a counter in a shared dictionary)
  ends the copies not chosen with 204 before the upstream is contacted; static mode counts
  nothing, and the row answers 500. Timeouts: connect, send,
  read and ``proxy_next_upstream_timeout`` (nginx answers 504).
* Weighted split: static mode, ``split_clients`` over ``$request_id`` (random, per request)
  naming the share's named location; Lua mode, ``polyingress_split.lua`` (smooth weighted
  round-robin per worker: exact shares, and 503 when no weighted backend has a ready
  endpoint, read from the balancer's dictionary). Weight 0 gets nothing; the share of an
  invalid reference answers 500.
* 500 rows: ``return 500``. RequestRedirect: ``return <status> "<Location>"``, the Location as
  :func:`redirect_location` builds it (scheme, host, port, path, query); the path is nginx's
  normalized ``$uri``, refused with 400 when it holds a character that is not a URI path
  character once decoded (it would reach the Location raw: CR/LF injection).
* Plain HTTP to an ``ssl_redirect`` host: render.py's 301/308 to HTTPS.

Every string from the model goes through :func:`render.quote`; where nginx interpolates
variables (``return``, ``add_header``, ``proxy_set_header``, ``rewrite``, ``map`` values) a
``$`` is written as ``${polyingress_dollar}`` (a ``geo`` variable whose value is ``$``).
Regexes are built from escaped literals only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from polyingress.core import (
    BasicAuth,
    Cors,
    HostKind,
    ObjectRef,
    PathTable,
    Route,
    RouteModel,
    VirtualHost,
    WeightedBackend,
)

from .affinity import affinity_lines, upstream_name
from .render import (
    _ROOT,
    _Answer,
    _directive,
    _Key,
    _Location,
    _lua_string,
    _redirect,
    _Server,
    _source_comment,
    proxy_pass,
    quote,
    ssl_redirect_target,
    uri_form,
)
from .settings import NginxSettings

__all__ = [
    "GATEWAY_FEATURES",
    "Gateway",
    "gateway_row",
    "involves",
    "shadowed",
    "used",
]

# The Gateway API features this backend serves, in both upstream modes but mirror shares
# (conditions are maps, splits split_clients or Lua, the rest plain directives).
GATEWAY_FEATURES = (
    "HTTPRoute",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect",
    "HTTPRouteSchemeRedirect",
    "HTTPRoutePathRedirect",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    # Mirror shares, percent or any fraction: Lua mode counts n of every d requests per row
    # and mirror (polyingress_mirror.lua); static mode cannot, and a row with a share answers
    # 500 there (the declaration is per backend, not per upstream mode).
    "HTTPRouteRequestPercentageMirror",
    "polyingress.io/MirrorFraction",
    "HTTPRouteRequestTimeout",
    "HTTPRouteBackendTimeout",
    # Upgrades pass every proxying location (render.py's Connection/Upgrade, repeated where a
    # row sets request headers; tested live through a conditional row and a filtered one).
    "HTTPRouteBackendProtocolWebSocket",
    # A backendRef's RequestHeaderModifier: the row's filter then its own, in the location of
    # its share of a split (or of the row, for one backend).
    "HTTPRouteBackendRequestHeaderModification",
    # The CORS filter: maps of the Origin, a preflight answered 204 before the row's own
    # directives, the allowed Origin's headers added (always) where the row answers.
    "HTTPRouteCORS",
    # backend-protocol HTTPS/GRPCS: TLS to the endpoints (polyingress capability, core BACKEND_TLS)
    "polyingress.io/BackendProtocolTLS",
    # Annotation rows: canary-by-cookie (a map on $http_cookie, like a header match),
    # proxy-connect-timeout and proxy-send-timeout (proxy_connect_timeout, proxy_send_timeout
    # in the row's location) and
    "polyingress.io/CookieMatching",
    "polyingress.io/BackendConnectTimeout",
    "polyingress.io/BackendSendTimeout",
    # canary-by-header-pattern: the regex in a map of $http_<name>, as the exact values.
    "polyingress.io/HeaderRegexMatching",
    # affinity: cookie (affinity.py: the cookie's value picks the endpoint, by a consistent
    # hash upstream in static mode, by the Lua balancer's rendezvous hashing in Lua mode).
    "polyingress.io/SessionAffinity",
    # polyingress's request policies (core/pipeline/policy.py): allow/deny lines per row.
    "polyingress.io/SourceRanges",
    "polyingress.io/BodySize",
    "polyingress.io/BasicAuth",
    "polyingress.io/RateLimit",
    # (GatewayPort8080, HTTPRouteParentRefPort, HTTPRouteNamedRouteRule and
    # GatewayHTTPListenerIsolation are the core's, for every backend serving HTTPRoute:
    # core/pipeline/gateway.py CORE_PROVIDED; they pass live on nginx.)
)

_PREFIX = "polyingress_"
_CORS_PREFLIGHT = "polyingress_cors_preflight"
# The CORS headers of an answer that the CORS filter replaces (Cors.response_headers).
_CORS_RESPONSE = (
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-expose-headers",
)
_DOLLAR = "${polyingress_dollar}"
_QMARK = "${polyingress_qmark}"
_URI_OK = "polyingress_uri_ok"
_WELL_KNOWN = {"http": 80, "https": 443}
_LUA_SPLIT = "polyingress_split"
# Mirror shares (Lua mode): the module, and the shared dictionary of its counters (one per row
# and mirror; rendered only when a row has a share, so other configurations keep their text).
_MIRROR_DICT = "polyingress_mirror"
_MIRROR_SIZE = "1m"
_FULL = "ReplaceFullPath"  # PathModifierType.FULL
# A header nginx keeps: ignore_invalid_headers (on by default) drops request headers whose
# names have other characters (underscores_in_headers is off), before any variable sees them.
_NGINX_HEADER = re.compile(r"[a-z0-9-]+")
# Characters a decoded path may hold and still be written into a Location as it is.
_PATH_SAFE = "A-Za-z0-9\\-._~!$&'()*+,;=:@/"


# A 503 answered after the access phase (``return`` answers in the rewrite phase, before it):
# ``try_files`` runs after access, finds no such file and answers its code. For a row with a
# policy, a refused client gets 403 before the 503 of a backend without a ready endpoint.
_UNAVAILABLE_AFTER_ACCESS = "try_files /.polyingress-no-endpoint =503;"


def access_lines(route: Route) -> tuple[str, ...]:
    """A row's source ranges as ingress-nginx renders them (ngx_http_access_module, first
    match wins): ``deny`` each denied network, then ``allow`` each allowed one and ``deny
    all`` when there is an allow list. The networks are the core's normalized CIDRs."""
    policy = route.policy
    if policy is None or policy.sources is None:
        return ()
    sources = policy.sources
    lines = [f"deny {quote(cidr)};" for cidr in sources.deny]
    if sources.allow:
        lines += [f"allow {quote(cidr)};" for cidr in sources.allow]
        lines.append("deny all;")
    return tuple(lines)


def auth_file(auth: BasicAuth) -> tuple[str, str]:
    """(name relative to nginx.conf's directory, text) of a user file: named by its content,
    so a changed Secret is a new file and the running configuration's never changes."""
    blob = f"{auth.realm}\n{auth.fingerprint}"
    name = f"auth/{hashlib.sha256(blob.encode()).hexdigest()[:20]}.htpasswd"
    return name, "".join(f"{user}:{digest}\n" for user, digest in auth.users)


def auth_lines(route: Route) -> tuple[str, ...]:
    """A row's basic authentication: ``auth_basic`` with the realm (nginx answers 401 with
    WWW-Authenticate: Basic realm="<realm>") and the user file (see :func:`auth_file`)."""
    policy = route.policy
    if policy is None or policy.auth is None:
        return ()
    name, _text = auth_file(policy.auth)
    return (
        f"auth_basic {literal(policy.auth.realm)};",
        f"auth_basic_user_file {quote(name)};",
    )


def body_lines(route: Route) -> tuple[str, ...]:
    """A row's request body limit: ``client_max_body_size`` (413 above it; 0: no limit)."""
    policy = route.policy
    if policy is None or policy.max_body is None:
        return ()
    return (f"client_max_body_size {int(policy.max_body)};",)


def _location_body(choices: list[_Choice]) -> tuple[str, ...]:
    """The body limit of a location that dispatches to named locations: nginx compares a
    request's Content-Length with the limit of the location its URI selects, before the
    dispatch (a named location's own limit checks only the chunked bodies it reads). The rows'
    limit when every row with one agrees (the rows of one Ingress and its canaries do)."""
    limits = {c.body for c in choices if c.body}
    return next(iter(limits)) if len(limits) == 1 else ()


def gateway_row(route: Route) -> bool:
    """True when a row needs more than an Ingress row (a path and one backend)."""
    return bool(
        route.conditional
        or route.split
        or route.status is not None
        or route.redirect is not None
        or route.rewrite is not None
        or route.request_headers is not None
        or route.response_headers is not None
        or route.mirrors
        or route.timeout is not None
        or route.cors is not None
        or route.connect_timeout is not None
        or route.send_timeout is not None
        or route.affinity is not None
        or route.policy is not None
    )


def involves(*vhosts: VirtualHost | None) -> bool:
    """True when one of ``vhosts`` has a Gateway API row (its servers are this module's)."""
    return any(v is not None and any(gateway_row(r) for r in v.routes) for v in vhosts)


def used(model: RouteModel) -> bool:
    """True when the model has Gateway API rows or suffix hosts."""
    return any(v.kind is HostKind.SUFFIX or involves(v) for v in model.vhosts)


def shadowed(model: RouteModel, vhost: VirtualHost) -> bool:
    """A suffix host ``**.b`` beside an Ingress wildcard ``*.b``: one nginx name. The wildcard's
    server serves both, the suffix host as the fallback of its single-label guard
    (RouteModel.fallback_host)."""
    suffix = vhost.wildcard_suffix
    return (
        vhost.kind is HostKind.SUFFIX
        and suffix is not None
        and ("*." + suffix) in model.vhost_index
    )


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def _re_escape(value: str) -> str:
    """A PCRE literal: every character but ASCII letters and digits backslash-escaped (a
    backslash before a non-alphanumeric character is always that character)."""
    return "".join(c if c.isascii() and c.isalnum() else "\\" + c for c in value)


def cookie_regex(name: str, value: str) -> str:
    """A PCRE holding for a Cookie header whose first pair named ``name`` (case-sensitive)
    has ``value`` (Request.cookie): every pair before it does not start with ``name=``.
    ``$cookie_<name>`` would match the name in any case."""
    n, v = _re_escape(name), _re_escape(value)
    return f"^(?:(?![ \\t]*{n}=)[^;]*;)*[ \\t]*{n}={v}[ \\t]*(?:;|$)"


def literal(value: str) -> str:
    """A quoted argument of a directive that interpolates variables, holding ``value`` as it
    is: ``$`` becomes ``${polyingress_dollar}``."""
    return quote(value.replace("$", _DOLLAR), variables=True)


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass(frozen=True, slots=True, order=True)
class _Cond:
    """A condition variable (``1``/``0``, a map) and the value a candidate needs."""

    var: str
    want: str = "1"


@dataclass(frozen=True, slots=True)
class _Action:
    """What a location does: ``inline``, its directives when a location answers it alone;
    ``target``, the value ``error_page`` dispatches to (a named location, or a variable naming
    one); ``own``, the named location ``target`` names (if it is one); ``deps``, the named
    locations the action reaches itself (a split's shares); ``extra``, other locations it
    needs (mirror subrequest targets)."""

    inline: tuple[str, ...]
    target: str
    own: tuple[tuple[str, tuple[str, ...]], ...] = ()
    deps: tuple[tuple[str, tuple[str, ...]], ...] = ()
    extra: tuple[_Location, ...] = ()

    def reached(self, inline: bool) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The named locations a server needs for this action, answered inline or not."""
        return self.deps if inline else (*self.own, *self.deps)


@dataclass(frozen=True, slots=True)
class _Choice:
    conds: frozenset[_Cond]
    action: _Action
    body: tuple[str, ...] = ()  # the row's client_max_body_size line (see locations)


def _simple(
    directives: tuple[str, ...],
    deps: tuple[tuple[str, tuple[str, ...]], ...] = (),
    extra: tuple[_Location, ...] = (),
) -> _Action:
    name = "@" + _PREFIX + _digest(directives)
    return _Action(directives, name, ((name, directives),), deps, extra)


@dataclass
class Gateway:
    """The Gateway API part of one render: http-level maps, and the servers of the hosts with
    Gateway API rows. ``problems`` are what nginx cannot do as the model says (logged).
    ``proxy_headers`` are render.py's ``proxy_set_header`` defaults as (name, nginx text)."""

    model: RouteModel
    settings: NginxSettings
    lua: bool
    https_port: int
    proxy_headers: tuple[tuple[str, str], ...]
    http_blocks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    _tables: dict[str | None, PathTable] = field(default_factory=dict)
    # Between record() and recorded(): the http blocks named, and where the problems started.
    _named: set[str] | None = None
    _problems_from: int = 0

    def involves(self, *vhosts: VirtualHost | None) -> bool:
        return involves(*vhosts)

    def shadowed(self, vhost: VirtualHost) -> bool:
        return shadowed(self.model, vhost)

    # -- what one host needs (render.py's RenderCache) -----------------------------------------

    def record(self) -> None:
        """Start noting the http blocks that the servers rendered next name, and their
        problems."""
        self._named = set()
        self._problems_from = len(self.problems)

    def recorded(self) -> tuple[tuple[tuple[str, tuple[str, ...]], ...], tuple[str, ...]]:
        """The http blocks (name, lines) and the problems since :meth:`record`."""
        named = self._named or set()
        self._named = None
        blocks = tuple((name, self.http_blocks[name]) for name in sorted(named))
        return blocks, tuple(self.problems[self._problems_from :])

    def replay(
        self, blocks: tuple[tuple[str, tuple[str, ...]], ...], problems: tuple[str, ...]
    ) -> None:
        """What :meth:`recorded` gave for servers that are reused instead of rendered again."""
        for name, lines in blocks:
            self.http_blocks.setdefault(name, lines)
        self.problems.extend(problems)

    def _block(self, name: str, lines: tuple[str, ...]) -> None:
        self.http_blocks.setdefault(name, lines)
        if self._named is not None:
            self._named.add(name)

    # -- http level -----------------------------------------------------------------------------

    def http(self) -> tuple[str, ...]:
        """The http-level lines: ``$polyingress_dollar``, the Location path check, and every
        map and split this render made, by name."""
        regex = quote(f"~^[{_PATH_SAFE}]*$", variables=True)
        # Every map is a variable: nginx's default variables hash (1024 x 64 bytes) warns
        # from a few dozen names of this length on (notes §6); nginx's own are about 150.
        lines = [
            "variables_hash_bucket_size 128;",
            f"variables_hash_max_size {max(1024, 4 * (len(self.http_blocks) + 512))};",
            'geo $polyingress_dollar { default "$"; }',
            'geo $polyingress_qmark { default "?"; }',
            f"map $uri ${_URI_OK} {{ default 0; {regex} 1; }}",
        ]
        for name in sorted(self.http_blocks):
            lines += self.http_blocks[name]
        return tuple(lines)

    def _map(self, kind: str, source: str, entries: list[tuple[str, str]], default: str) -> str:
        """A map of ``source`` with ``entries`` (key, value), all nginx text, named by its
        content; returns the variable's name."""
        var = _PREFIX + kind + "_" + _digest(source, entries, default)
        if var not in self.http_blocks or self._named is not None:
            self._block(
                var,
                (
                    f"map {source} ${var} {{",
                    f"    default {default};",
                    *(f"    {k} {v};" for k, v in entries),
                    "}",
                ),
            )
        return var

    def _flag(self, source: str, regex: str) -> _Cond:
        return _Cond(self._map("c", source, [(quote("~" + regex, variables=True), "1")], "0"))

    # -- conditions -----------------------------------------------------------------------------

    def _conds(self, route: Route) -> frozenset[_Cond] | None:
        """The conditions of a row beyond its path and scheme; None when nginx never sees a
        request meeting them."""
        conds: set[_Cond] = set()
        if route.method is not None:
            conds.add(self._flag("$request_method", f"^{_re_escape(route.method)}$"))
        for h in route.headers:
            if not _NGINX_HEADER.fullmatch(h.name):
                self.problems.append(
                    f"{route.source}: nginx drops request headers named {h.name!r} "
                    "(ignore_invalid_headers): the match on it never holds"
                )
                return None
            variable = "$http_" + h.name.replace("-", "_")
            if h.regex:
                # A search, as ingress-nginx's ngx.re.match; an empty (or missing) header never
                # matches (HeaderMatch.accepts). The regex is in the common subset (core).
                conds.add(self._flag(variable, "."))
                conds.add(self._flag(variable, h.value))
            else:
                conds.add(self._flag(variable, f"^{_re_escape(h.value)}$"))
        for c in route.cookies:
            conds.add(self._flag("$http_cookie", cookie_regex(c.name, c.value)))
        for q in route.query:
            name, value = _re_escape(q.name), _re_escape(q.value)
            tail = f"={value}(?:&|$)" if q.value else "=?(?:&|$)"
            # The first parameter of that name has that value (Request.query_param).
            conds.add(self._flag("$args", f"^(?:(?!{name}(?:[=&]|$))[^&]*&)*{name}{tail}"))
        return frozenset(conds)

    # -- actions --------------------------------------------------------------------------------

    def _available(self, backend: str) -> bool:
        found = self.model.backend_index.get(backend)
        return found is not None and found.available

    def _headers(self, route: Route, share: WeightedBackend | None = None) -> tuple[str, ...]:
        """All proxy_set_header lines when the row changes a request header: render.py's
        defaults, then the host rewrite, then the filter (set, add, remove): the row's, then
        the split ``share``'s own (a backendRef's RequestHeaderModifier)."""
        f = route.request_headers if share is None else share.headers(route.request_headers)
        host = route.rewrite.hostname if route.rewrite is not None else None
        if f is None and host is None:
            return ()
        # name -> (name as written, value as nginx text inside quotes)
        out = {n.lower(): (n, v) for n, v in self.proxy_headers}
        if host is not None:
            out["host"] = ("Host", host)
        if f is not None:
            for name, value in f.set:
                out[name] = (name, value.replace("$", _DOLLAR))
            for name, value in f.add:
                text = value.replace("$", _DOLLAR)
                if name in out:
                    # A header this proxy sets: append to what it sends.
                    out[name] = (name, out[name][1] + "," + text)
                elif not _NGINX_HEADER.fullmatch(name):
                    # nginx drops such a header from requests: there is nothing to append to.
                    out[name] = (name, text)
                else:
                    client = "$http_" + name.replace("-", "_")
                    default = quote(client + "," + text, variables=True)
                    # (a regex never matches an empty value in a map: the empty key does)
                    var = self._map("a", client, [('""', quote(text, variables=True))], default)
                    out[name] = (name, "$" + var)
            for name in f.remove:
                out[name] = (name, "")
        return tuple(
            f"proxy_set_header {quote(n)} {quote(v, variables=True)};" for n, v in out.values()
        )

    # -- CORS (core Cors: a preflight answered 204; an allowed Origin's headers on the rest) ---

    def _cors_vars(self, cors: Cors) -> dict[str, str]:
        """Variables holding each CORS header's value for this request ("" when the Origin is
        not allowed, or the header has no value: add_header leaves an empty one out)."""
        origin = self._map(
            "co",
            "$http_origin",
            [(quote("~" + cors.origin_regex, variables=True), "$http_origin")],
            '""',
        )

        def gated(kind: str, value: str) -> str:
            # The value, only when the Origin is allowed.
            return "$" + self._map(kind, "$" + origin, [('""', '""')], value)

        out = {"access-control-allow-origin": "$" + origin}
        if cors.allow_credentials:
            out["access-control-allow-credentials"] = gated("cc", '"true"')
        if cors.expose is not None:
            out["access-control-expose-headers"] = gated("ce", quote(cors.expose))
        if cors.allow_methods == ("*",):
            out["access-control-allow-methods"] = gated("cm", "$http_access_control_request_method")
        elif cors.allow_methods:
            out["access-control-allow-methods"] = gated("cm", quote(", ".join(cors.allow_methods)))
        if cors.allow_headers == ("*",):
            out["access-control-allow-headers"] = gated(
                "ch", "$http_access_control_request_headers"
            )
        elif cors.allow_headers:
            out["access-control-allow-headers"] = gated("ch", quote(", ".join(cors.allow_headers)))
        out["access-control-max-age"] = gated("ca", quote(str(cors.max_age)))
        return out

    def _cors_response(self, route: Route) -> tuple[str, ...]:
        """An allowed Origin's headers on every answer of the row (replacing the backend's)."""
        if route.cors is None:
            return ()
        found = self._cors_vars(route.cors)
        lines: list[str] = []
        for name in _CORS_RESPONSE:
            lines.append(f"proxy_hide_header {quote(name)};")
            if name in found:
                lines.append(
                    f"add_header {quote(name)} {quote(found[name], variables=True)} always;"
                )
        return tuple(lines)

    def _cors_preflight(self, route: Route) -> tuple[str, ...]:
        """The preflight (OPTIONS with Origin and Access-Control-Request-Method): 204 with the
        CORS headers when the Origin is allowed, without when it is not."""
        if route.cors is None:
            return ()
        # A CORS preflight: OPTIONS with an Access-Control-Request-Method.
        # Noted for the render cache, as every http block.
        self._block(
            _CORS_PREFLIGHT,
            (
                f'map "$request_method:$http_access_control_request_method" ${_CORS_PREFLIGHT} '
                '{ default 0; "~^OPTIONS:." 1; }',
            ),
        )
        found = self._cors_vars(route.cors)
        headers = [
            f"    add_header {quote(n)} {quote(v, variables=True)} always;"
            for n, v in found.items()
        ]
        return (f"if (${_CORS_PREFLIGHT}) {{", *headers, "    return 204;", "}")

    def _response(self, route: Route) -> tuple[str, ...]:
        f = route.response_headers
        if f is None:
            return self._cors_response(route)
        lines: list[str] = list(self._cors_response(route))
        for name, value in f.set:
            lines.append(f"proxy_hide_header {quote(name)};")
            lines.append(f"add_header {quote(name)} {literal(value)} always;")
        for name, value in f.add:
            lines.append(f"add_header {quote(name)} {literal(value)} always;")
        for name in f.remove:
            lines.append(f"proxy_hide_header {quote(name)};")
        return tuple(lines)

    def _mirrors(self, route: Route) -> tuple[tuple[str, ...], tuple[_Location, ...]]:
        lines: list[str] = []
        extra: list[_Location] = []
        shares = route.mirror_fractions or tuple((1, 1) for _m in route.mirrors)
        for index, (name, (n, d)) in enumerate(zip(route.mirrors, shares, strict=True)):
            backend = self.model.backend_index.get(name)
            if backend is None or (not self.lua and not backend.available):
                continue  # static mode: no upstream to send the copy to
            if n == 0:
                continue  # a share of nothing: no copy
            # A path no route can have (route paths hold no space): only the subrequest gets it.
            uri = f"/.polyingress mirror/{backend.name}"
            # A copy is sent even when the client closes first (nginx aborts a subrequest's
            # upstream with its client otherwise: copies were lost under load).
            directives: tuple[str, ...] = (
                "internal;",
                "proxy_ignore_client_abort on;",
                proxy_pass(backend, "$request_uri"),
            )
            if n < d:
                # Lua mode only (static rows with a share answer 500, _proxy): n of every d
                # requests of the row, counted per row and mirror (polyingress_mirror.lua).
                key = _digest(route, index)
                uri += f" {key}"
                self._block(_MIRROR_DICT, (f"lua_shared_dict {_MIRROR_DICT} {_MIRROR_SIZE};",))
                call = f"require({_lua_string(_MIRROR_DICT)}).sample({_lua_string(key)}, {n}, {d})"
                directives = ("internal;", f"rewrite_by_lua_block {{ {call} }}", *directives[1:])
            lines.append(f"mirror {quote(uri)};")
            extra.append(_Location((), f"= {quote(uri)}", directives))
        return tuple(lines), tuple(extra)

    def _policy(self, route: Route) -> tuple[str, ...]:
        """A row's policy: rate limits, body size, source ranges, basic authentication."""
        return (*self._rate(route), *body_lines(route), *access_lines(route), *auth_lines(route))

    def _rate(self, route: Route) -> tuple[str, ...]:
        """ingress-nginx's rate limits (its template's limit_conn/limit_req lines): one zone
        per Ingress and limit, keyed by the client address, named by a hash of both (so a
        changed limit is a new zone); ``nodelay`` with a burst of limit x multiplier."""
        rate = route.policy.rate if route.policy is not None else None
        if rate is None:
            return ()
        lines: list[str] = []
        if rate.connections is not None:
            zone = _PREFIX + "conn_" + _digest(rate.zone, "conn")
            self._block(zone, (f"limit_conn_zone $binary_remote_addr zone={zone}:5m;",))
            lines += [
                f"limit_conn {zone} {int(rate.connections)};",
                f"limit_conn_status {rate.status};",
            ]
        for limit, unit in ((rate.rpm, "m"), (rate.rps, "s")):
            if limit is None:
                continue
            zone = _PREFIX + f"r{unit}_" + _digest(rate.zone, unit, limit)
            self._block(
                zone,
                (f"limit_req_zone $binary_remote_addr zone={zone}:5m rate={int(limit)}r/{unit};",),
            )
            lines.append(f"limit_req zone={zone} burst={rate.burst(limit)} nodelay;")
        if rate.rps is not None or rate.rpm is not None:
            lines.append(f"limit_req_status {rate.status};")
        return tuple(lines)

    def _unserved_share(self, route: Route) -> bool:
        """Static mode cannot count a mirror's share (HTTPRouteRequestPercentageMirror needs
        Lua): such a row answers 500 rather than copy every request or none."""
        return not self.lua and any(0 < n < d for n, d in route.mirror_fractions)

    @staticmethod
    def _timeouts(route: Route) -> tuple[str, ...]:
        lines: list[str] = []
        if route.connect_timeout is not None:
            lines.append(f"proxy_connect_timeout {_ms(route.connect_timeout)};")
        if route.send_timeout is not None:
            lines.append(f"proxy_send_timeout {_ms(route.send_timeout)};")
        if route.timeout is None:
            return tuple(lines)
        t = _ms(route.timeout)
        if route.connect_timeout is None:
            lines.append(f"proxy_connect_timeout {t};")
        if route.send_timeout is None:
            lines.append(f"proxy_send_timeout {t};")
        return (
            *lines,
            f"proxy_read_timeout {t};",
            f"proxy_next_upstream_timeout {t};",
        )

    @staticmethod
    def _rewrite(route: Route, flag: str) -> tuple[str, ...]:
        """``rewrite`` lines making ``$uri`` the path PathModifier.apply gives: the route's
        URLRewrite (``flag`` break, before proxying) or its RequestRedirect (no flag: the
        ``return`` that follows sends it)."""
        if flag:
            modifier = route.rewrite.path if route.rewrite is not None else None
        else:
            modifier = route.redirect.path if route.redirect is not None else None
        if modifier is None:
            return ()
        end = f" {flag};" if flag else ";"
        # Proxied: the URI nginx escapes again when it sends it; a Location: as written. A
        # literal '?' would start the arguments: it comes from a variable.
        value = modifier.value.replace("$", _DOLLAR)
        if flag:
            value = uri_form(modifier.value).replace("$", _DOLLAR).replace("?", _QMARK)
        if modifier.type == _FULL:
            return (f"rewrite ^ {quote(value, variables=True)}{end}",)
        prefix = _re_escape(uri_form(route.path).rstrip("/"))
        base = value.rstrip("/")
        rest = quote(f"(?s)^{prefix}(.*)$", variables=True)
        if base:
            return (f"rewrite {rest} {quote(base + '$1', variables=True)}{end}",)
        # Nothing replaces the prefix: the rest of the path, or "/" when nothing is left.
        whole = quote("^" + prefix + "\\z", variables=True)
        return (
            f"rewrite {whole} {quote('/')}{end}",
            f"rewrite {rest} {quote('$1', variables=True)}{end}",
        )

    def _proxy(self, route: Route, backend: str, share: WeightedBackend | None = None) -> _Action:
        # The core's answer for this backend (503 in static mode without a ready endpoint).
        answer = self.model.outcome(
            Route(path=route.path, path_type=route.path_type, backend=backend, source=route.source)
        )
        if self._unserved_share(route):
            return self._status(route, 500)
        mirrors, extra = self._mirrors(route)
        final = _directive(self.model, answer, self.lua)
        access = self._policy(route)
        if access and final == "return 503;":
            final = _UNAVAILABLE_AFTER_ACCESS
        # Lua mode names the backend with `set`, a rewrite-module directive: it must come
        # before a `rewrite ... break`, which ends them (so must the affinity key's `set`).
        named = _Answer(final).backend_set
        proxy = _Answer(final).lua_proxy if named is not None else final
        head: tuple[str, ...] = (named,) if named is not None else ()
        sticky: tuple[str, ...] = ()
        if route.affinity is not None and proxy.startswith("proxy_pass"):
            sticky = self._affinity(route)
            head += tuple(line for line in sticky if line.startswith("set "))
            sticky = tuple(line for line in sticky if not line.startswith("set "))
            if not self.lua:  # the upstream hashing the key (render.py upstreams)
                found = self.model.backend_index[backend]
                scheme = "https" if found.protocol.tls else "http"
                proxy = f"proxy_pass {quote(f'{scheme}://{upstream_name(backend)}')};"
        directives = (
            *head,
            *access,
            *self._rewrite(route, "break"),
            *self._headers(route, share),
            *self._response(route),
            *sticky,
            *mirrors,
            *self._timeouts(route),
            proxy,
        )
        return _simple(directives, extra=extra)

    def _affinity(self, route: Route) -> tuple[str, ...]:
        def add_map(name: str, lines: tuple[str, ...]) -> None:
            self._block(name, lines)  # noted for the render cache, as every http block

        return affinity_lines(
            route, add_map, _re_escape, lambda t: quote(t, variables=True), literal
        )

    def _status(self, route: Route, status: int) -> _Action:
        return _simple((*self._response(route), f"return {status};"))

    def _redirect(self, route: Route, scheme: str) -> _Action:
        """RequestRedirect: the Location of redirect_location, with nginx's normalized path."""
        redirect = route.redirect
        assert redirect is not None
        new_scheme = redirect.scheme or scheme
        authority = redirect.hostname or "$host"
        if redirect.port is not None and _WELL_KNOWN.get(new_scheme) != redirect.port:
            authority += f":{redirect.port}"
        check: tuple[str, ...] = ()
        rewrite: tuple[str, ...] = ()
        if redirect.path is not None and redirect.path.type == _FULL:
            path = redirect.path.value.replace("$", _DOLLAR)
        else:
            path = "$uri"
            # A decoded path with other characters would reach the Location raw.
            check = (f'if (${_URI_OK} = "0") {{ return 400; }}',)
            rewrite = self._rewrite(route, "")
        location = quote(f"{new_scheme}://{authority}{path}$is_args$args", variables=True)
        return _simple(
            (*check, *self._response(route), *rewrite, f"return {redirect.status} {location};")
        )

    def _split(self, route: Route) -> _Action:
        live = [w for w in route.split if w.weight > 0]
        shares = [(w, self._proxy(route, w.backend, w) if w.backend else None) for w in live]
        deps: list[tuple[str, tuple[str, ...]]] = []
        extra: list[_Location] = []
        for _w, share in shares:
            if share is not None:
                deps += share.reached(inline=False)
                extra += share.extra
        if self.lua:
            # Smooth weighted round-robin per worker; 503 when no weighted backend has a ready
            # endpoint, 500 for an invalid reference's share (polyingress_split.lua).
            targets = ", ".join(
                "{ "
                + (_lua_string(share.target) if share is not None else "false")
                + f", {w.weight}, "
                + (_lua_string(w.backend) if w.backend is not None else "false")
                + " }"
                for w, share in shares
            )
            call = f"require({_lua_string(_LUA_SPLIT)}).pick({_lua_string(_digest(targets))}"
            pick = (f"rewrite_by_lua_block {{ {call}, {{ {targets} }}) }}",)
            return _simple(pick, tuple(deps), tuple(extra))
        if not any(w.backend is not None and self._available(w.backend) for w in live):
            access = self._policy(route)
            last = _UNAVAILABLE_AFTER_ACCESS if access else "return 503;"
            return _simple((*access, *self._response(route), last))
        error = self._status(route, 500)
        if any(share is None for _w, share in shares):
            deps += error.own
        total = sum(w.weight for w in live)
        entries: list[str] = []
        done = before = 0
        for i, (w, share) in enumerate(shares):
            target = quote((share or error).target)
            if i == len(shares) - 1:
                entries.append(f"    * {target};")
                break
            done += w.weight
            upto = round(10000 * done / total)  # hundredths of a percent
            if upto > before:
                entries.append(
                    f"    {(upto - before) // 100}.{(upto - before) % 100:02d}% {target};"
                )
            before = upto
        var = _PREFIX + "w_" + _digest(entries)
        self._block(var, (f'split_clients "$request_id" ${var} {{', *entries, "}"))
        inline = (f"error_page 418 = ${var};", "return 418;")
        return _Action(inline, "$" + var, (), tuple(deps), tuple(extra))

    def _row(self, route: Route, scheme: str) -> _Action:
        action = self._row_action(route, scheme)
        preflight = self._cors_preflight(route)
        if not preflight:
            return action
        # Before anything else of the row (a rewrite's break, a split's dispatch).
        reached = action.deps if action.target.startswith("@") else action.reached(False)
        return _simple((*preflight, *action.inline), reached, action.extra)

    def _row_action(self, route: Route, scheme: str) -> _Action:
        if route.status is not None:
            return self._status(route, route.status)
        if route.split:
            if not any(w.weight > 0 for w in route.split):
                return self._status(route, 500)
            return self._split(route)
        if route.backend is None:
            return self._redirect(route, scheme)
        return self._proxy(route, route.backend)

    def _default(self) -> _Action:
        return _simple((_directive(self.model, self.model.outcome(None), self.lua),))

    def _ssl_redirect(self) -> _Action:
        return _simple(_redirect(ssl_redirect_target(self.https_port)))

    # -- choices --------------------------------------------------------------------------------

    def _table(self, vhost: VirtualHost) -> PathTable:
        table = self._tables.get(vhost.host)
        if table is None:
            table = self._tables[vhost.host] = PathTable(vhost.routes)
        return table

    def _choices(self, vhost: VirtualHost | None, path: str, scheme: str) -> list[_Choice]:
        """The candidates of ``path`` in ``vhost`` on ``scheme``, in the core's order
        (PathTable.match), up to the first without conditions, then the default."""
        tls = vhost.tls if vhost is not None else None
        if scheme == "http" and tls is not None and tls.ssl_redirect:
            return [_Choice(frozenset(), self._ssl_redirect())]
        out: list[_Choice] = []
        if vhost is not None:
            for route in _candidates(self._table(vhost), path):
                if scheme not in route.schemes:
                    continue
                conds = self._conds(route)
                if conds is None:
                    continue
                out.append(_Choice(conds, self._row(route, scheme), body_lines(route)))
                if not conds:
                    return out
        out.append(_Choice(frozenset(), self._default()))
        return out

    def _dispatch(self, choices: list[_Choice]) -> tuple[str, ...]:
        """The directives of a location: its first choice inline when it has no condition,
        else ``error_page`` through a map of the condition bits to the first choice that
        holds."""
        variables = sorted({c.var for choice in choices for c in choice.conds})
        source = quote("".join("${" + v + "}" for v in variables), variables=True)
        entries: list[tuple[str, str]] = []
        for choice in choices[:-1]:
            wants = {c.var: c.want for c in choice.conds}
            bits = "".join(wants.get(v, ".") for v in variables)
            pattern = quote(f"~^{bits}$", variables=True)
            if pattern not in {p for p, _t in entries}:
                entries.append((pattern, _target(choice.action.target)))
        var = self._map("s", source, entries, _target(choices[-1].action.target))
        return (f"error_page 418 = ${var};", "return 418;")

    def locations(
        self,
        keys: dict[_Key, set[ObjectRef]],
        vhost: VirtualHost | None,
        scheme: str,
        below: VirtualHost | None = None,
        guard: str | None = None,
    ) -> tuple[_Location, ...]:
        """The locations of one server: render.py's ``keys``, each answering its candidates;
        with a ``guard`` regex (an Ingress wildcard's single label) ``vhost``'s candidates
        hold only when ``$host`` matches it, the others get ``below``'s."""
        guard_cond = self._flag("$host", guard) if guard is not None else None
        out: list[_Location] = []
        named: dict[str, tuple[str, ...]] = {}
        extra: dict[str, _Location] = {}
        for key in sorted({**keys, _ROOT: keys.get(_ROOT, set())}, key=_Key.sort_key):
            rep = key.representative
            choices = self._choices(vhost, rep, scheme)
            if guard_cond is not None:
                guarded = [_Choice(c.conds | {guard_cond}, c.action, c.body) for c in choices]
                choices = guarded + self._choices(below, rep, scheme)
            if not choices[0].conds:
                directives = choices[0].action.inline
                used = [(choices[0].action, True)]
            else:
                directives = (*_location_body(choices), *self._dispatch(choices))
                used = [(c.action, False) for c in choices]
            for action, inline in used:
                named.update(action.reached(inline))
                extra.update((loc.match, loc) for loc in action.extra)
            out.append(_Location(_source_comment(keys.get(key, ())), key.match, directives))
        if not named and not extra and len({loc.directives for loc in out}) == 1:
            # Every path answers alike (e.g. the HTTPS side of a host routed on HTTP only).
            refs = {ref for found in keys.values() for ref in found}
            return (_Location(_source_comment(refs), out[-1].match, out[-1].directives),)
        out += [extra[m] for m in sorted(extra)]
        out += [_Location((), name, named[name]) for name in sorted(named)]
        return tuple(out)

    def servers(
        self,
        comments: tuple[str, ...],
        http_head: tuple[str, ...],
        https_head: tuple[str, ...],
        keys: dict[_Key, set[ObjectRef]],
        vhost: VirtualHost | None,
        below: VirtualHost | None = None,
        guard: str | None = None,
    ) -> list[_Server]:
        """A host with Gateway API rows: one server for plain HTTP, one for HTTPS; a side that
        would only answer what the default server answers there is left out (a host routed
        on HTTP only needs no HTTPS server: at 10,000 routes, half the server blocks)."""
        out = []
        for scheme, head in (("http", http_head), ("https", https_head)):
            locations = self.locations(keys, vhost, scheme, below, guard)
            if (
                vhost is not None
                and vhost.host is not None
                and self._redundant(vhost, scheme, locations)
            ):
                continue
            out.append(_Server((*comments, f"# {scheme.upper()}"), head, locations))
        return out

    def _redundant(self, vhost: VirtualHost, scheme: str, locations: tuple[_Location, ...]) -> bool:
        """Whether the default server would answer every request of ``vhost`` on ``scheme``
        as these locations do: they answer everything with the default action, nothing else
        the host's names could select is there (no wildcard or suffix host below it), no
        certificate of its own to present, and the catch-all has no row on that scheme."""
        if len(locations) != 1 or locations[0].directives != self._default().inline:
            return False
        if scheme == "https" and vhost.tls is not None:
            return False
        below = self.model.fallback_host(vhost)
        if below is not None and below.host is not None:
            return False
        catch_all = self.model.vhost_index.get(None)
        if catch_all is None:
            return True
        if catch_all.tls is not None and catch_all.tls.ssl_redirect and scheme == "http":
            return False
        return not any(scheme in r.schemes for r in catch_all.routes)


def _target(target: str) -> str:
    return target if target.startswith("$") else quote(target)


def _candidates(table: PathTable, path: str) -> list[Route]:
    """Every row of ``path`` in the order PathTable.match tries them."""
    found: list[Route] = list(table.exact.get(path, ()))
    end = len(path)
    while end > 0:
        found += table.prefix.get(path[:end], ())
        end = path.rfind("/", 0, end)
    found += table.prefix.get("/", ())
    seen: set[int] = set()
    out: list[Route] = []
    for r in found:
        if id(r) not in seen:
            seen.add(id(r))
            out.append(r)
    return out
