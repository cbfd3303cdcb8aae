"""A routing oracle: what Traefik v3 does with a request, given a dynamic configuration.

It evaluates the configuration the way Traefik's documentation describes (each matcher cites
its section; "Rules & Priority" is doc.traefik.io/traefik/reference/routing-configuration/http/
routing/rules-and-priority/), so the Traefik backend's routing can be tested without a Traefik
binary. Where the documentation is silent, the docstring names the Traefik source file the
behaviour was read from. Only what polyingress renders is supported; anything else raises
:class:`OracleError` rather than guessing.

Also here: :func:`schema_validator` (the v3 file-provider JSON schema every rendered file must
pass) and :func:`ingress_world`, the generated Kubernetes objects the tests and
``bench/bench_traefik.py`` use for large worlds.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from polyingress.core import Certificate, ObjectRef

__all__ = [
    "FALLBACK",
    "AmbiguousRouting",
    "OracleError",
    "Outcome",
    "Request",
    "ingress_world",
    "merge",
    "parse_rule",
    "route",
    "schema_validator",
]

# A stand-in fallback certificate: render never parses PEM, and golden files need fixed bytes.
FALLBACK = Certificate(
    name="polyingress-fallback",
    source=ObjectRef(kind="Secret", namespace="", name="polyingress-fallback"),
    cert_pem="-----BEGIN CERTIFICATE-----\nfallback\n-----END CERTIFICATE-----\n",
    key_pem="-----BEGIN PRIVATE KEY-----\nfallback\n-----END PRIVATE KEY-----\n",
)

# The Traefik v3 file-provider schema, kept in the repository (tests/data/README.md).
SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "traefik-v3-file-provider.json"


@functools.cache
def schema_validator() -> Any:
    """A validator for the Traefik v3 file-provider schema (the draft its ``$schema`` names)."""
    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


class OracleError(Exception):
    """The configuration uses something the oracle does not model, or is broken."""


class AmbiguousRouting(OracleError):
    """Two matching routers share the highest priority: Traefik's choice is unspecified."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """``path`` is the request target (a query string is allowed); matchers see its path.
    ``headers`` are the request's header lines (the Host header is ``host``)."""

    host: str
    path: str
    entrypoint: str = "web"
    tls: bool | None = None  # default: True on "websecure", False elsewhere
    method: str = "GET"
    client_ip: str = "192.0.2.10"
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def is_tls(self) -> bool:
        return self.entrypoint == "websecure" if self.tls is None else self.tls

    @property
    def routing_path(self) -> str:
        return self.path.split("?", 1)[0]

    @property
    def raw_query(self) -> str:
        return self.path.partition("?")[2]

    def header_values(self, name: str) -> list[str]:
        """Go's ``req.Header[CanonicalHeaderKey(name)]``: every line's value, in order."""
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """``status`` 200 with ``service`` means "proxied to that service's servers", with the
    request headers ``headers`` set by ``headers`` middlewares.

    A ``weighted`` service with children proxies to one of ``split`` ((service, weight)
    pairs); a ``mirroring`` service to its main service, copying to ``mirrors``. The filters
    middleware (polyingress's plugin) may answer ``fail`` (weight, total) of the requests with
    500, and changes what the service gets: ``path`` (the request target), ``host``,
    ``request_headers`` (the request's header lines after its set/add/remove), and the
    response's headers (``response_changes``: (set|add|remove, name, value), in no particular
    order: each name once)."""

    status: int
    service: str | None = None
    router: str | None = None
    location: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    split: tuple[tuple[str, int], ...] = ()
    mirrors: tuple[str, ...] = ()
    fail: tuple[int, int] = (0, 0)
    path: str | None = None
    host: str | None = None
    request_headers: tuple[tuple[str, str], ...] = ()
    response_changes: tuple[tuple[str, str, str], ...] = ()
    read_timeout: str | None = None
    filters: Mapping[str, Any] | None = None


def _canonical_host(host: str) -> str:
    """Request host as the Host matchers see it: port removed, lowercased.

    Rules & Priority > Host and HostRegexp: "These matchers will match the request's host in
    lowercase." Removing the port is not in the docs: Traefik source
    ``pkg/middlewares/requestdecorator/request_decorator.go`` (``parseHost``).
    """
    host = host.strip()
    if host.startswith("["):
        end = host.find("]")
        host = host[1:end] if end > 0 else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.lower()


def host_matcher(domain: str) -> Callable[[Request], bool]:
    """``Host(`domain`)``: Rules & Priority > Host and HostRegexp, "Matches requests host set
    to domain", compared in lowercase. A fully qualified request host (trailing dot) also
    matches: Traefik source ``pkg/muxer/http/matcher.go`` (``host``).
    """
    if "*" in domain:
        raise OracleError(f"Host({domain!r}): wildcards in Host are not modelled")
    expected = domain.lower()

    def match(req: Request) -> bool:
        got = _canonical_host(req.host)
        return got == expected or (got.endswith(".") and got[:-1] == expected)

    return match


def host_regexp_matcher(pattern: str) -> Callable[[Request], bool]:
    """``HostRegexp(`regexp`)``: Rules & Priority > Host and HostRegexp, "Matches requests host
    matching regexp" with "the Go flavored syntax" (Rules: "Matchers that accept a regular
    expression (regexp) use the Go flavored syntax"). Unanchored search like Go's
    ``MatchString``; the patterns we render use only syntax Go and Python share.
    """
    compiled = re.compile(pattern)
    return lambda req: compiled.search(_canonical_host(req.host)) is not None


def path_matcher(path: str) -> Callable[[Request], bool]:
    """``Path(`path`)``: Rules & Priority > Path, PathPrefix, and PathRegexp: "Match
    `/products` but neither `/products/shoes` nor `/products/`" (exact, case-sensitive)."""
    if not path.startswith("/"):
        raise OracleError(f"Path({path!r}) must start with '/'")
    return lambda req: req.routing_path == path


def path_prefix_matcher(prefix: str) -> Callable[[Request], bool]:
    """``PathPrefix(`prefix`)``: Rules & Priority > Path, PathPrefix, and PathRegexp: "Match
    `/products` as well as everything under `/products`, such as `/products/shoes`,
    `/products/` but also `/products-for-sale`" (a plain, case-sensitive string prefix)."""
    if not prefix.startswith("/"):
        raise OracleError(f"PathPrefix({prefix!r}) must start with '/'")
    return lambda req: req.routing_path.startswith(prefix)


def method_matcher(method: str) -> Callable[[Request], bool]:
    """``Method(`method`)``: Rules & Priority > Method, "Matches requests based on the HTTP
    method"; the configured method is upper-cased and compared with the request's as sent
    (Traefik source ``pkg/muxer/http/matcher.go``, ``method``: ``strings.ToUpper``)."""
    expected = method.upper()
    return lambda req: req.method == expected


def header_matcher(name: str, value: str) -> Callable[[Request], bool]:
    """``Header(`key`, `value`)``: Rules & Priority > Header and HeaderRegexp, "Matches requests
    that contain a header named key with the given value" (the docs name ``key`` case-blind;
    the value is compared exactly). Not in the docs, read from ``pkg/muxer/http/matcher.go``
    (``header``: ``slices.Contains(req.Header[key], value)``): any line of a repeated header
    counts."""
    return lambda req: value in req.header_values(name)


def _query_unescape(text: str) -> str | None:
    """Go's ``url.QueryUnescape``: ``+`` is a space, ``%XX`` a byte; a bad escape is an error."""
    out = bytearray()
    i = 0
    raw = text.encode("latin-1", "replace")
    while i < len(raw):
        c = raw[i]
        if c == ord("%"):
            digits = raw[i + 1 : i + 3]
            if len(digits) < 2 or not all(chr(d) in "0123456789abcdefABCDEF" for d in digits):
                return None
            out.append(int(digits, 16))
            i += 3
            continue
        out.append(ord(" ") if c == ord("+") else c)
        i += 1
    return out.decode("latin-1")


def query_values(raw_query: str) -> dict[str, list[str]]:
    """``req.URL.Query()`` as Traefik's routers see it. The entry point lets ``;`` separate
    parameters (``http.AllowQuerySemicolons``, ``pkg/server/server_entrypoint_tcp.go``, as
    ``encodeQuerySemicolons`` is off); Go's ``url.ParseQuery`` splits on ``&``, then ``=``,
    decodes both halves and drops a pair whose escapes are bad."""
    values: dict[str, list[str]] = {}
    for pair in raw_query.replace(";", "&").split("&"):
        if not pair:
            continue
        key, _sep, value = pair.partition("=")
        k, v = _query_unescape(key), _query_unescape(value)
        if k is None or v is None:
            continue
        values.setdefault(k, []).append(v)
    return values


def query_matcher(name: str, value: str) -> Callable[[Request], bool]:
    """``Query(`key`, `value`)``: Rules & Priority > Query and QueryRegexp, "Matches requests
    that contain a query parameter named key with the given value". Not in the docs, read from
    ``pkg/muxer/http/matcher.go`` (``query``): the decoded values (``req.URL.Query()``), any of
    a repeated parameter's."""
    return lambda req: value in query_values(req.raw_query).get(name, [])


_MATCHERS: dict[str, Callable[..., Callable[[Request], bool]]] = {
    "Host": host_matcher,
    "HostRegexp": host_regexp_matcher,
    "Path": path_matcher,
    "PathPrefix": path_prefix_matcher,
    "Method": method_matcher,
    "Header": header_matcher,
    "Query": query_matcher,
}
_ARITY = {"Header": 2, "Query": 2}

_TOKEN = re.compile(
    r"\s*(?:(?P<op>&&|\|\||!|\(|\)|,)|(?P<name>[A-Za-z]+)|`(?P<raw>[^`]*)`"
    r'|"(?P<quoted>(?:[^"\\]|\\.)*)")'
)


def _tokens(rule: str) -> list[tuple[str, str]]:
    """Rules: values are "backticks ` or escaped double-quotes" (Go string literals)."""
    out: list[tuple[str, str]] = []
    pos = 0
    rule = rule.rstrip()
    while pos < len(rule):
        m = _TOKEN.match(rule, pos)
        if m is None or m.end() == pos:
            raise OracleError(f"cannot parse rule {rule!r} at {pos}")
        pos = m.end()
        if m.group("op"):
            out.append(("op", m.group("op")))
        elif m.group("name"):
            out.append(("name", m.group("name")))
        elif m.group("raw") is not None:
            out.append(("value", m.group("raw")))
        else:
            out.append(("value", bytes(m.group("quoted"), "ascii").decode("unicode_escape")))
    return out


Matcher = Callable[[Request], bool]


class _Parser:
    """Rules: "The usual AND (&&) and OR (||) logical operators can be used, with the expected
    precedence rules, as well as parentheses"; "The NOT (!) operator allows you to invert the
    matcher". Precedence: ``!`` > ``&&`` > ``||``."""

    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.tokens = _tokens(rule)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str, value: str | None = None) -> str:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1] != value):
            raise OracleError(f"rule {self.rule!r}: expected {value or kind}, got {tok}")
        self.pos += 1
        return tok[1]

    def parse(self) -> Matcher:
        matcher = self.disjunction()
        if self.peek() is not None:
            raise OracleError(f"rule {self.rule!r}: trailing {self.peek()}")
        return matcher

    def disjunction(self) -> Matcher:
        left = self.conjunction()
        while self.peek() == ("op", "||"):
            self.pos += 1
            right = self.conjunction()
            left = (lambda a, b: lambda req: a(req) or b(req))(left, right)
        return left

    def conjunction(self) -> Matcher:
        left = self.unary()
        while self.peek() == ("op", "&&"):
            self.pos += 1
            right = self.unary()
            left = (lambda a, b: lambda req: a(req) and b(req))(left, right)
        return left

    def unary(self) -> Matcher:
        if self.peek() == ("op", "!"):
            self.pos += 1
            inner = self.unary()
            return lambda req: not inner(req)
        if self.peek() == ("op", "("):
            self.pos += 1
            inner = self.disjunction()
            self.take("op", ")")
            return inner
        name = self.take("name")
        if name not in _MATCHERS:
            raise OracleError(f"rule {self.rule!r}: matcher {name} is not modelled")
        self.take("op", "(")
        args = [self.take("value")]
        while self.peek() == ("op", ","):
            self.pos += 1
            args.append(self.take("value"))
        self.take("op", ")")
        if len(args) != _ARITY.get(name, 1):
            raise OracleError(f"rule {self.rule!r}: {name} takes {_ARITY.get(name, 1)} values")
        return _MATCHERS[name](*args)


@functools.lru_cache(maxsize=1 << 16)
def parse_rule(rule: str) -> Matcher:
    return _Parser(rule).parse()


def _priority(router: Mapping[str, Any]) -> int:
    """Rules & Priority > Priority Calculation: default priority = rule length; "A value of `0`
    for the priority is ignored"; "Negative priority values are supported"."""
    priority = int(router.get("priority", 0) or 0)
    return priority if priority != 0 else len(router["rule"])


def _attached(router: Mapping[str, Any], req: Request) -> bool:
    """Routing > Router: ``entryPoints`` "If not specified, HTTP routers are attached to all
    entry points"; ``tls`` "When specified, the router will only handle HTTPS requests". A
    router without ``tls`` handles only plain HTTP (the schema's router ``tls``: "If you need
    to define the same route for both HTTP and HTTPS requests, you will need to define two
    different routers")."""
    eps = router.get("entryPoints")
    if eps is not None and req.entrypoint not in eps:
        return False
    return ("tls" in router) == req.is_tls


def _ip_allow_list(conf: Mapping[str, Any], req: Request) -> Outcome | None:
    """Middlewares > IPAllowList: ``sourceRange`` "List of allowed IPs (or ranges of allowed IPs
    by using CIDR notation)"; ``rejectStatusCode`` "Defines the HTTP status code used for
    refused requests", default 403; without ``ipStrategy`` the remote address is checked."""
    if "ipStrategy" in conf:
        raise OracleError("ipAllowList.ipStrategy is not modelled")
    ranges = conf.get("sourceRange") or []
    if not ranges:
        raise OracleError("ipAllowList without sourceRange is refused by Traefik")
    client = ipaddress.ip_address(req.client_ip)
    for entry in ranges:
        if client in ipaddress.ip_network(entry, strict=False):
            return None
    return Outcome(status=int(conf.get("rejectStatusCode") or 403))


def _redirect_scheme(conf: Mapping[str, Any], req: Request) -> Outcome | None:
    """Middlewares > RedirectScheme: "redirects the request if the request scheme is different
    from the configured scheme"; ``port`` is the port of the new URL (left out for 443/80).
    Not in the docs, read from ``pkg/middlewares/redirect/redirect.go`` and measured on Traefik
    3.7.15: the status is 301 (permanent) / 302 for GET and 308 / 307 for every other method,
    HEAD and lowercase ``get`` included; the Location's host is the request's Host as the client
    wrote it (case and a trailing dot kept), without its port."""
    scheme = conf["scheme"]
    current = "https" if req.is_tls else "http"
    if scheme == current:
        return None
    port = str(conf.get("port") or "")
    if (scheme == "https" and port == "443") or (scheme == "http" and port == "80"):
        port = ""
    host = req.host.strip()
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    location = f"{scheme}://{host}{':' + port if port else ''}{req.path}"
    if conf.get("permanent"):
        status = 301 if req.method == "GET" else 308
    else:
        status = 302 if req.method == "GET" else 307
    return Outcome(status=status, location=location)


def _headers(conf: Mapping[str, Any], req: Request) -> dict[str, str]:
    """Middlewares > Headers: ``customRequestHeaders`` "lists the Header names and values to
    apply to the request", ``customResponseHeaders`` to the response; "You can remove headers
    by setting their value to an empty string". Not in the docs, read from
    ``pkg/middlewares/headers/header.go`` (``modifyCustomRequestHeaders``): a Host entry sets the
    request's host. Returns the request headers it sets (value "" removes)."""
    extra = set(conf) - {"customRequestHeaders", "customResponseHeaders"}
    if extra:
        raise OracleError(f"headers middleware options {sorted(extra)} are not modelled")
    return dict(conf.get("customRequestHeaders") or {})


_STOPPERS = {"ipAllowList": _ip_allow_list, "redirectScheme": _redirect_scheme}


def _serve(config: Mapping[str, Any], name: str, router: str) -> Outcome:
    """Services. A load balancer with servers proxies (status 200 here). "FAQ > 503 Service
    Unavailable": 503 "when a service has been explicitly configured without servers"; an empty
    ``weighted`` service has no server either (``pkg/server/service/loadbalancer/wrr/wrr.go``:
    503 "no available server"). Services > Weighted Round Robin: a ``weighted`` service with
    children "load balance[s] the requests between multiple services based on weights"
    (``split``). Services > Mirroring: a ``mirroring`` service sends each request to its
    ``service`` and copies it to each mirror with ``percent`` of the requests (only 100 is
    modelled)."""
    services = config.get("http", {}).get("services", {})
    if name not in services:
        raise OracleError(f"router {router} names the unknown service {name}")
    service = services[name]
    if "loadBalancer" in service:
        servers = service["loadBalancer"].get("servers") or []
        if not servers:
            return Outcome(status=503, service=name, router=router)
        return Outcome(
            status=200,
            service=name,
            router=router,
            read_timeout=_read_timeout(config, service["loadBalancer"]),
        )
    if "weighted" in service:
        children = service["weighted"].get("services") or []
        if not children:
            return Outcome(status=503, service=name, router=router)
        split = []
        timeouts = set()
        for child in children:
            served = _serve(config, child["name"], router)
            if served.split or served.mirrors or served.status != 200:
                raise OracleError(f"service {name}: only proxying children are modelled")
            split.append((child["name"], int(child["weight"])))
            timeouts.add(served.read_timeout)
        (timeout,) = timeouts  # one read timeout for a split: the row's
        return Outcome(
            status=200, service=name, router=router, split=tuple(split), read_timeout=timeout
        )
    if "mirroring" in service:
        conf = service["mirroring"]
        mirrors = []
        for mirror in conf.get("mirrors") or []:
            if mirror.get("percent") != 100 or mirror["name"] not in services:
                raise OracleError(f"service {name}: mirror {mirror} is not modelled")
            mirrors.append(mirror["name"])
        main = _serve(config, conf["service"], router)
        return Outcome(
            status=main.status,
            service=main.service,
            router=router,
            split=main.split,
            mirrors=tuple(mirrors),
            read_timeout=main.read_timeout,
        )
    raise OracleError(f"service {name}: kind {sorted(service)} is not modelled")


def _read_timeout(config: Mapping[str, Any], balancer: Mapping[str, Any]) -> str | None:
    """Services > ServersTransport: a load balancer's ``serversTransport`` names an entry of
    ``http.serversTransports``; its ``forwardingTimeouts.responseHeaderTimeout`` is "the amount
    of time to wait for a server's response headers" (then 504, Traefik source
    ``pkg/proxy/httputil/proxy.go``: a timeout error)."""
    name = balancer.get("serversTransport")
    if name is None:
        return None
    transports = config.get("http", {}).get("serversTransports", {})
    if name not in transports:
        raise OracleError(f"serversTransport {name} is not defined")
    return transports[name].get("forwardingTimeouts", {}).get("responseHeaderTimeout")


# ---------------------------------------------------------------------------------------------
# polyingress's filters middleware (a local plugin: plugins/traefik/middleware/filters.go)
# ---------------------------------------------------------------------------------------------


def _bare_host(host: str) -> str:
    """filters.go ``bareHost``: lowercase, trailing dots dropped, then the port."""
    host = host.lower().rstrip(".")
    if ":" in host and not host.startswith("["):
        host = host[: host.rindex(":")]
    return host


def _change_path(change: Mapping[str, Any], path: str) -> str:
    """filters.go ``changePath``: the whole path, or the matched prefix replaced."""
    if change["kind"] == "full":
        return str(change["value"])
    prefix = str(change["prefix"]).rstrip("/")
    rest = path[len(prefix) :] if prefix and path.startswith(prefix) else path
    base = str(change["value"]).rstrip("/")
    if rest in ("", "/"):
        return (base + rest) or "/"
    return base + rest


_FILTER_KEYS = frozenset(
    {
        "redirect",
        "requestHeaders",
        "responseHeaders",
        "rewrite",
        "failWeight",
        "failTotal",
        "timeoutMs",
    }
)


def _filters(
    conf: Mapping[str, Any], req: Request, headers: list[tuple[str, str]]
) -> tuple[Outcome | None, dict[str, Any]]:
    """filters.go ``ServeHTTP``: a redirect answers; otherwise the share ``failWeight`` of
    ``failTotal`` answers 500 (kept as ``fail``, it is random), the request headers are set,
    appended to (joined with ",") and removed, the Host and the path rewritten."""
    unknown = set(conf) - _FILTER_KEYS
    if unknown:
        raise OracleError(f"filters options {sorted(unknown)} are not modelled")
    path, sep, query = req.path.partition("?")
    if "redirect" in conf:
        r = conf["redirect"]
        host = r.get("hostname") or _bare_host(req.host)
        new_path = _change_path(r["path"], path) if "path" in r else path
        target = new_path + ("?" + query if query else "")
        location = f"{r['scheme']}://{host}{r.get('portSuffix', '')}{target}"
        return Outcome(status=int(r["status"]), location=location), {}
    changes: dict[str, Any] = {
        "fail": (int(conf.get("failWeight", 0)), int(conf.get("failTotal", 0)))
    }
    request = conf.get("requestHeaders") or {}
    for item in request.get("set", []):
        if item["name"] == "host":
            changes["host"] = item["value"]
            continue
        headers[:] = [(k, v) for k, v in headers if k.lower() != item["name"]]
        headers.append((item["name"], item["value"]))
    for item in request.get("add", []):
        old = [v for k, v in headers if k.lower() == item["name"]]
        headers[:] = [(k, v) for k, v in headers if k.lower() != item["name"]]
        headers.append((item["name"], ",".join([*old, item["value"]])))
    for name in request.get("remove", []):
        headers[:] = [(k, v) for k, v in headers if k.lower() != name]
    rewrite = conf.get("rewrite") or {}
    if "hostname" in rewrite:
        changes["host"] = rewrite["hostname"]
    if "path" in rewrite:
        changes["path"] = _change_path(rewrite["path"], path) + sep + query
    return None, changes


def route(config: Mapping[str, Any], req: Request) -> Outcome:
    """The outcome of ``req``: the matching router of highest priority, its middlewares in
    order (the schema's router ``middlewares``: "applied in the same order as their
    declaration"), then its service. No matching router: 404 ("FAQ > 404 Not found")."""
    routers = config.get("http", {}).get("routers", {})
    matching: list[tuple[int, str, Mapping[str, Any]]] = []
    for name, router in routers.items():
        if "@" in name:
            raise OracleError(f"router name {name!r}: '@' is not allowed")
        if _attached(router, req) and parse_rule(router["rule"])(req):
            matching.append((_priority(router), name, router))
    if not matching:
        return Outcome(status=404)
    matching.sort(key=lambda item: -item[0])
    if len(matching) > 1 and matching[0][0] == matching[1][0]:
        raise AmbiguousRouting(
            f"{req}: routers {matching[0][1]} and {matching[1][1]} both match with priority "
            f"{matching[0][0]}"
        )
    _prio, name, router = matching[0]
    middlewares = config.get("http", {}).get("middlewares", {})
    headers: dict[str, str] = {}
    lines = list(req.headers)
    changes: dict[str, Any] = {}
    response: list[tuple[str, str, str]] = []
    filters: Mapping[str, Any] | None = None
    for mw_name in router.get("middlewares") or []:
        if mw_name not in middlewares:
            raise OracleError(f"router {name} names the unknown middleware {mw_name}")
        conf = middlewares[mw_name]
        (kind,) = conf
        if kind == "headers":
            for header, value in _headers(conf[kind], req).items():
                headers[header] = value
                lines[:] = [(k, v) for k, v in lines if k.lower() != header.lower()]
                if header.lower() == "host" and value:
                    changes["host"] = value
                elif value:
                    lines.append((header, value))
            for header, value in (conf[kind].get("customResponseHeaders") or {}).items():
                response.append(
                    ("remove", header.lower(), "") if not value else ("set", header.lower(), value)
                )
            continue
        if kind == "plugin":
            (plugin,) = conf[kind]
            if plugin != "polyingress" or filters is not None:
                raise OracleError(f"middleware {mw_name}: plugin {plugin} is not modelled")
            filters = conf[kind][plugin]
            answered, found = _filters(filters, req, lines)
            changes.update(found)
            for op in ("set", "add"):
                for item in (filters.get("responseHeaders") or {}).get(op, []):
                    response.append((op, item["name"], item["value"]))
            for name_ in (filters.get("responseHeaders") or {}).get("remove", []):
                response.append(("remove", name_, ""))
            if answered is not None:
                return Outcome(
                    status=answered.status, router=name, location=answered.location, filters=filters
                )
            continue
        if kind not in _STOPPERS:
            raise OracleError(f"middleware {mw_name}: kind {kind} is not modelled")
        stopped = _STOPPERS[kind](conf[kind], req)
        if stopped is not None:
            return Outcome(status=stopped.status, router=name, location=stopped.location)
    served = _serve(config, router["service"], name)
    return Outcome(
        status=served.status,
        service=served.service,
        router=name,
        headers=tuple(sorted(headers.items())),
        split=served.split,
        mirrors=served.mirrors,
        fail=changes.get("fail", (0, 0)),
        path=changes.get("path"),
        host=changes.get("host"),
        request_headers=tuple(lines),
        response_changes=tuple(response),
        read_timeout=served.read_timeout,
        filters=filters,
    )


def merge(*configs: Mapping[str, Any]) -> dict[str, Any]:
    """The files of one provider directory, as Traefik merges them (names must not repeat)."""
    out: dict[str, Any] = {"http": {"routers": {}, "services": {}, "middlewares": {}}}
    for config in configs:
        for section, items in config.get("http", {}).items():
            out["http"].setdefault(section, {})
            clash = out["http"][section].keys() & items.keys()
            if clash:
                raise OracleError(f"http.{section} {sorted(clash)} defined in two files")
            out["http"][section].update(items)
    return out


# ---------------------------------------------------------------------------------------------
# Generated worlds
# ---------------------------------------------------------------------------------------------


def ingress_world(count: int, tls_secret: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """``count`` Ingresses with their Services and EndpointSlices, deterministic.

    Ingress ``i``: host ``h<i>.example.com`` (every 50th a wildcard ``*.w<i>.example.com``,
    every 100th host-less), a Prefix ``/api/v<i % 7>`` and an Exact ``/healthz`` to Service
    ``svc<i>`` in namespace ``ns<i % 20>``; every 10th Service has no ready endpoint. With
    ``tls_secret`` (``{"tls.crt": b64, "tls.key": b64}``) every 25th Ingress has TLS.
    """
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "polyingress"},
            "spec": {"controller": "polyingress.io/controller"},
        }
    ]
    secrets: set[str] = set()
    for i in range(count):
        ns = f"ns{i % 20}"
        svc = f"svc{i}"
        if i % 100 == 99:
            host = None
        elif i % 50 == 49:
            host = f"*.w{i}.example.com"
        else:
            host = f"h{i}.example.com"
        backend = {"service": {"name": svc, "port": {"number": 80}}}
        rule: dict[str, Any] = {
            "http": {
                "paths": [
                    {"path": f"/api/v{i % 7}", "pathType": "Prefix", "backend": backend},
                    {"path": "/healthz", "pathType": "Exact", "backend": backend},
                ]
            }
        }
        if host is not None:
            rule["host"] = host
        spec: dict[str, Any] = {"ingressClassName": "polyingress", "rules": [rule]}
        if tls_secret is not None and host is not None and i % 25 == 0:
            spec["tls"] = [{"hosts": [host], "secretName": "tls"}]
            secrets.add(ns)
        objects.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {
                    "name": f"ing{i}",
                    "namespace": ns,
                    "creationTimestamp": f"2024-01-01T00:00:{i % 60:02d}Z",
                },
                "spec": spec,
            }
        )
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": svc, "namespace": ns},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
            }
        )
        ready = i % 10 != 9
        objects.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{svc}-x",
                    "namespace": ns,
                    "labels": {"kubernetes.io/service-name": svc},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080}],
                "endpoints": [
                    {
                        "addresses": [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"],
                        "conditions": {"ready": ready},
                    },
                    {
                        "addresses": [f"10.200.{i // 256 % 256}.{i % 256}"],
                        "conditions": {"ready": ready},
                    },
                ],
            }
        )
    for ns in sorted(secrets):
        assert tls_secret is not None
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/tls",
                "metadata": {"name": "tls", "namespace": ns},
                "data": dict(tls_secret),
            }
        )
    return objects
