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
    """``path`` is the request target (a query string is allowed); matchers see its path."""

    host: str
    path: str
    entrypoint: str = "web"
    tls: bool | None = None  # default: True on "websecure", False elsewhere
    method: str = "GET"
    client_ip: str = "192.0.2.10"

    @property
    def is_tls(self) -> bool:
        return self.entrypoint == "websecure" if self.tls is None else self.tls

    @property
    def routing_path(self) -> str:
        return self.path.split("?", 1)[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """``status`` 200 with ``service`` means "proxied to that service's servers", with the
    request headers ``headers`` set by middlewares."""

    status: int
    service: str | None = None
    router: str | None = None
    location: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


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


_MATCHERS: dict[str, Callable[[str], Callable[[Request], bool]]] = {
    "Host": host_matcher,
    "HostRegexp": host_regexp_matcher,
    "Path": path_matcher,
    "PathPrefix": path_prefix_matcher,
}

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
        if len(args) != 1:
            raise OracleError(f"rule {self.rule!r}: {name} takes one value")
        return _MATCHERS[name](args[0])


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
    apply to the request" (set, replacing what the entry point put there)."""
    extra = set(conf) - {"customRequestHeaders"}
    if extra:
        raise OracleError(f"headers middleware options {sorted(extra)} are not modelled")
    return dict(conf["customRequestHeaders"])


_STOPPERS = {"ipAllowList": _ip_allow_list, "redirectScheme": _redirect_scheme}


def _serve(config: Mapping[str, Any], name: str, router: str) -> Outcome:
    """Services. A load balancer with servers proxies (status 200 here). "FAQ > 503 Service
    Unavailable": 503 "when a service has been explicitly configured without servers"; an empty
    ``weighted`` service has no server either (``pkg/server/service/loadbalancer/wrr/wrr.go``:
    503 "no available server")."""
    services = config.get("http", {}).get("services", {})
    if name not in services:
        raise OracleError(f"router {router} names the unknown service {name}")
    service = services[name]
    if "loadBalancer" in service:
        servers = service["loadBalancer"].get("servers") or []
        if not servers:
            return Outcome(status=503, service=name, router=router)
        return Outcome(status=200, service=name, router=router)
    if "weighted" in service:
        if not service["weighted"].get("services"):
            return Outcome(status=503, service=name, router=router)
        raise OracleError(f"service {name}: weighted services with children are not modelled")
    raise OracleError(f"service {name}: kind {sorted(service)} is not modelled")


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
    for mw_name in router.get("middlewares") or []:
        if mw_name not in middlewares:
            raise OracleError(f"router {name} names the unknown middleware {mw_name}")
        conf = middlewares[mw_name]
        (kind,) = conf
        if kind == "headers":
            headers.update(_headers(conf[kind], req))
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
