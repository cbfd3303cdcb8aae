"""HTTPRoute object -> validated rules (or the reasons a rule, or the route, cannot be served).

Only what the object says is checked here (values, shapes, what this project supports); what
depends on other objects (parents, listeners, Services, ReferenceGrants) is the Gateway stage's
(:mod:`polyingress.core.pipeline.gateway`).

Values reach a proxy only through the model, and only in forms every backend can state the same
way: header names are RFC 7230 tokens, header values printable ASCII, query parameter names and
values unreserved URI characters (so no proxy decodes them differently), hostnames DNS names,
paths the characters the Gateway API allows. Anything else is refused with ``UnsupportedValue``
naming the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from polyingress.core.pipeline.model import (
    Cors,
    HeaderFilter,
    HeaderMatch,
    ObjectRef,
    PathModifier,
    PathModifierType,
    PathType,
    QueryMatch,
    Redirect,
    Rewrite,
)
from polyingress.core.pipeline.translate.ingress import normalize_prefix
from polyingress.core.pipeline.validate import check_dns1123_subdomain, check_host

__all__ = [
    "GATEWAY_GROUP",
    "MIRROR_FRACTION",
    "BackendRefSpec",
    "MatchSpec",
    "ParentRefSpec",
    "ParsedHTTPRoute",
    "RuleSpec",
    "parse_duration",
    "parse_httproute",
]

GATEWAY_GROUP = "gateway.networking.k8s.io"

# RFC 7230 token; the Gateway API's own pattern for header names.
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,256}$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e]{0,4096}$")
_QUERY_PART = re.compile(r"^[A-Za-z0-9._~-]{1,256}$")
_QUERY_VALUE = re.compile(r"^[A-Za-z0-9._~-]{0,1024}$")
# The characters the Gateway API allows in an Exact or PathPrefix value.
_PATH = re.compile(r"^/(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})*$")
_DURATION = re.compile(r"^(?:[0-9]{1,5}(?:h|m|s|ms)){1,4}$")
_DURATION_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
_METHOD_NAME = re.compile("^(" + "|".join(sorted(_METHODS)) + ")$")
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# A polyingress capability (not a Gateway API feature): a mirror fraction that is not a whole
# percent (Traefik's mirroring service takes an integer percent only).
MIRROR_FRACTION = "polyingress.io/MirrorFraction"


def parse_duration(value: Any) -> float | None:
    """A Gateway API duration (``1h``, ``500ms``, ``1m30s``) in seconds, or None if invalid."""
    if not isinstance(value, str) or not _DURATION.fullmatch(value):
        return None
    return sum(int(n) * _UNIT[u] for n, u in _DURATION_PART.findall(value))


@dataclass(frozen=True, slots=True)
class ParentRefSpec:
    group: str
    kind: str
    namespace: str
    name: str
    section: str | None
    port: int | None
    raw: Mapping[str, Any]  # echoed into status.parents[].parentRef


@dataclass(frozen=True, slots=True)
class BackendRefSpec:
    group: str
    kind: str
    namespace: str
    name: str
    port: int | None
    weight: int
    field: str
    request_headers: HeaderFilter | None = None  # the backendRef's RequestHeaderModifier
    # A mirror's share of the requests (numerator, denominator), reduced; None: every request.
    fraction: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class MatchSpec:
    path: str
    path_type: PathType
    method: str | None
    headers: tuple[HeaderMatch, ...]
    query: tuple[QueryMatch, ...]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    index: int
    matches: tuple[MatchSpec, ...]
    backends: tuple[BackendRefSpec, ...]
    request_headers: HeaderFilter | None
    response_headers: HeaderFilter | None
    redirect: Redirect | None
    redirect_port_set: bool
    rewrite: Rewrite | None
    mirrors: tuple[BackendRefSpec, ...]
    timeout: float | None
    cors: Cors | None
    # Why the rule cannot be served as written (UnsupportedValue): it then answers 500.
    unsupported: tuple[tuple[str, str], ...]
    features: frozenset[str]  # the Gateway API extended features the rule uses


@dataclass(frozen=True, slots=True)
class ParsedHTTPRoute:
    ref: ObjectRef
    order: tuple[str, str, str]  # (creationTimestamp, namespace, name): the oldest wins ties
    generation: int | None
    parents: tuple[ParentRefSpec, ...]
    hostnames: tuple[str, ...]  # lowercase; ``*.x`` wildcards as written
    rules: tuple[RuleSpec, ...]


class _Invalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Invalid(field, "must be a list")
    return value


def _map(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _Invalid(field, "must be an object")
    return value


def _int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Invalid(field, f"must be an integer from {low} to {high}")
    return value


def _name(value: Any, field: str) -> str:
    reason = check_dns1123_subdomain(value, "name")
    if reason:
        raise _Invalid(field, reason)
    return str(value)


def _parent(ref: Mapping[str, Any], ns: str, field: str) -> ParentRefSpec:
    group = ref.get("group", GATEWAY_GROUP)
    kind = ref.get("kind", "Gateway")
    section = ref.get("sectionName")
    if section is not None:
        section = _name(section, field + ".sectionName")
    port = ref.get("port")
    if port is not None:
        port = _int(port, field + ".port", 1, 65535)
    return ParentRefSpec(
        group=str(group),
        kind=str(kind),
        namespace=_name(ref.get("namespace", ns), field + ".namespace"),
        name=_name(ref.get("name"), field + ".name"),
        section=section,
        port=port,
        raw=ref,
    )


def _backend(ref: Any, ns: str, field: str) -> BackendRefSpec:
    ref = _map(ref, field)
    group = str(ref.get("group", ""))
    kind = str(ref.get("kind", "Service"))
    port = ref.get("port")
    if port is not None:
        port = _int(port, field + ".port", 1, 65535)
    weight = ref.get("weight", 1)
    weight = _int(weight, field + ".weight", 0, 1_000_000)
    return BackendRefSpec(
        group=group,
        kind=kind,
        namespace=_name(ref.get("namespace", ns), field + ".namespace"),
        name=_name(ref.get("name"), field + ".name"),
        port=port,
        weight=weight,
        field=field,
    )


def _path_value(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _PATH.fullmatch(value) or len(value) > 1024:
        raise _Invalid(field, "must be an absolute path of the characters the Gateway API allows")
    parts = value.split("/")
    if "" in parts[1:-1] or "." in parts or ".." in parts or "%2f" in value.lower():
        raise _Invalid(field, "must not contain //, /./, /../ or %2F")
    return value


def _match(m: Any, field: str, unsupported: list[tuple[str, str]]) -> MatchSpec | None:
    m = _map(m, field)
    path = _map(m.get("path"), field + ".path")
    ptype = path.get("type", "PathPrefix")
    value = path.get("value", "/")
    if ptype == "RegularExpression":
        unsupported.append((field + ".path.type", "RegularExpression path matches"))
        return None
    if ptype not in ("Exact", "PathPrefix"):
        raise _Invalid(field + ".path.type", f"unknown path match type {ptype!r}")
    value = _path_value(value, field + ".path.value")
    if ptype == "PathPrefix":
        value = normalize_prefix(value)
    method = m.get("method")
    if method is not None and method not in _METHODS:
        raise _Invalid(field + ".method", f"unknown method {method!r}")
    headers: dict[str, HeaderMatch] = {}
    for j, h in enumerate(_list(m.get("headers"), field + ".headers")):
        hf = f"{field}.headers[{j}]"
        h = _map(h, hf)
        if h.get("type", "Exact") != "Exact":
            unsupported.append((hf + ".type", f"{h.get('type')} header matches"))
            return None
        name, val = h.get("name"), h.get("value")
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise _Invalid(hf + ".name", "must be an HTTP header name")
        if not isinstance(val, str) or not _HEADER_VALUE.fullmatch(val) or not val:
            raise _Invalid(hf + ".value", "must be 1-4096 printable ASCII characters")
        # Names are case-insensitive; the first of equal names counts (the spec).
        headers.setdefault(name.lower(), HeaderMatch(name=name.lower(), value=val))
    query: dict[str, QueryMatch] = {}
    for j, q in enumerate(_list(m.get("queryParams"), field + ".queryParams")):
        qf = f"{field}.queryParams[{j}]"
        q = _map(q, qf)
        if q.get("type", "Exact") != "Exact":
            unsupported.append((qf + ".type", f"{q.get('type')} query parameter matches"))
            return None
        name, val = q.get("name"), q.get("value")
        if not isinstance(name, str) or not _QUERY_PART.fullmatch(name):
            unsupported.append((qf + ".name", "query parameter names other than [A-Za-z0-9._~-]"))
            return None
        if not isinstance(val, str) or not _QUERY_VALUE.fullmatch(val):
            unsupported.append((qf + ".value", "query parameter values other than [A-Za-z0-9._~-]"))
            return None
        query.setdefault(name, QueryMatch(name=name, value=val))
    return MatchSpec(
        path=value,
        path_type=PathType.EXACT if ptype == "Exact" else PathType.PREFIX,
        method=method,
        headers=tuple(sorted(headers.values())),
        query=tuple(sorted(query.values())),
    )


def _header_filter(spec: Any, field: str) -> HeaderFilter:
    spec = _map(spec, field)
    out: dict[str, list[Any]] = {"set": [], "add": [], "remove": []}
    seen: set[str] = set()
    for key in ("set", "add"):
        for j, h in enumerate(_list(spec.get(key), f"{field}.{key}")):
            hf = f"{field}.{key}[{j}]"
            h = _map(h, hf)
            name, val = h.get("name"), h.get("value")
            if not isinstance(name, str) or not _TOKEN.fullmatch(name):
                raise _Invalid(hf + ".name", "must be an HTTP header name")
            if not isinstance(val, str) or not _HEADER_VALUE.fullmatch(val):
                raise _Invalid(hf + ".value", "must be printable ASCII without CR or LF")
            lname = name.lower()
            if lname in seen:
                raise _Invalid(hf + ".name", f"header {name!r} is named twice")
            seen.add(lname)
            out[key].append((lname, val))
    for j, name in enumerate(_list(spec.get("remove"), f"{field}.remove")):
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise _Invalid(f"{field}.remove[{j}]", "must be an HTTP header name")
        if name.lower() in seen:
            raise _Invalid(f"{field}.remove[{j}]", f"header {name!r} is named twice")
        seen.add(name.lower())
        out["remove"].append(name.lower())
    return HeaderFilter(set=tuple(out["set"]), add=tuple(out["add"]), remove=tuple(out["remove"]))


def _path_modifier(spec: Any, field: str, matches: tuple[MatchSpec, ...]) -> PathModifier:
    spec = _map(spec, field)
    ptype = spec.get("type")
    if ptype == "ReplaceFullPath":
        return PathModifier(
            type=PathModifierType.FULL,
            value=_path_value(spec.get("replaceFullPath"), field + ".replaceFullPath"),
        )
    if ptype == "ReplacePrefixMatch":
        if any(m.path_type is not PathType.PREFIX for m in matches):
            raise _Invalid(field, "ReplacePrefixMatch needs PathPrefix matches only")
        return PathModifier(
            type=PathModifierType.PREFIX,
            value=_path_value(spec.get("replacePrefixMatch"), field + ".replacePrefixMatch"),
        )
    raise _Invalid(field + ".type", f"unknown path modifier type {ptype!r}")


# An allowed Origin: scheme://host[:port], the host lowercase, optionally "*." + a suffix.
_ORIGIN = re.compile(
    r"^(https?)://(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
    r"(:[1-9][0-9]{0,4})?$"
)


def _cors_list(value: Any, field: str, check: re.Pattern[str], what: str) -> tuple[str, ...]:
    items = _list(value, field)
    out: list[str] = []
    for j, item in enumerate(items):
        if not isinstance(item, str) or not (item == "*" or check.fullmatch(item)):
            raise _Invalid(f"{field}[{j}]", f"must be {what} or *")
        if item not in out:
            out.append(item)
    if "*" in out and len(out) > 1:
        raise _Invalid(field, "* cannot be given with other values")
    return tuple(out)


def _cors(spec: Any, field: str) -> Cors:
    """The CORS filter (HTTPRouteCORS): every value checked, so that it can be written into
    any proxy's configuration as it is."""
    spec = _map(spec, field)
    origins = _cors_list(spec.get("allowOrigins"), field + ".allowOrigins", _ORIGIN, "an origin")
    if len(origins) > 64:
        raise _Invalid(field + ".allowOrigins", "at most 64 origins")
    for j, origin in enumerate(origins):
        port = origin.rsplit(":", 1)[1] if origin.count(":") == 2 else None
        if port is not None and not 1 <= int(port) <= 65535:
            raise _Invalid(f"{field}.allowOrigins[{j}]", "port must be 1-65535")
    methods = _cors_list(
        spec.get("allowMethods"), field + ".allowMethods", _METHOD_NAME, "an HTTP method"
    )
    headers = _cors_list(spec.get("allowHeaders"), field + ".allowHeaders", _TOKEN, "a header name")
    expose = _cors_list(
        spec.get("exposeHeaders"), field + ".exposeHeaders", _TOKEN, "a header name"
    )
    credentials = spec.get("allowCredentials", False)
    if not isinstance(credentials, bool):
        raise _Invalid(field + ".allowCredentials", "must be true or false")
    max_age = spec.get("maxAge", 5)
    max_age = _int(max_age, field + ".maxAge", 1, 2**31 - 1)
    return Cors(
        allow_origins=origins,
        allow_methods=methods,
        allow_headers=headers,
        expose_headers=expose,
        allow_credentials=credentials,
        max_age=max_age,
    )


def _mirror_fraction(spec: Mapping[str, Any], field: str) -> tuple[int, int] | None:
    """A RequestMirror's ``percent`` or ``fraction`` as a reduced (numerator, denominator);
    None when every request is mirrored (neither given, or all of them)."""
    percent, fraction = spec.get("percent"), spec.get("fraction")
    if percent is not None and fraction is not None:
        raise _Invalid(field, "percent and fraction cannot both be set")
    if percent is not None:
        numerator, denominator = _int(percent, field + ".percent", 0, 100), 100
    elif fraction is not None:
        fraction = _map(fraction, field + ".fraction")
        denominator = _int(
            fraction.get("denominator", 100), field + ".fraction.denominator", 1, 2**31 - 1
        )
        numerator = _int(fraction.get("numerator"), field + ".fraction.numerator", 0, denominator)
    else:
        return None
    if numerator == denominator:
        return None
    divisor = math.gcd(numerator, denominator)
    return numerator // divisor, denominator // divisor


def _hostname(value: Any, field: str) -> str:
    reason = check_host(value)
    if reason:
        raise _Invalid(field, reason)
    return str(value).lower()


def _backend_filters(
    ref: BackendRefSpec, raw: Any, unsupported: list[tuple[str, str]], features: set[str]
) -> BackendRefSpec:
    """A backendRef's filters: RequestHeaderModifier (HTTPRouteBackendRequestHeaderModification,
    applied after the rule's to the requests this backend gets); any other type is not
    served."""
    filters = _list(
        raw.get("filters") if isinstance(raw, Mapping) else None, ref.field + ".filters"
    )
    request_headers: HeaderFilter | None = None
    for j, f in enumerate(filters):
        ff = f"{ref.field}.filters[{j}]"
        f = _map(f, ff)
        ftype = f.get("type")
        if ftype == "RequestHeaderModifier":
            if request_headers is not None:
                raise _Invalid(ff + ".type", f"{ftype} appears twice")
            request_headers = _header_filter(f.get("requestHeaderModifier"), ff)
            features.add("HTTPRouteBackendRequestHeaderModification")
        else:
            unsupported.append((ff + ".type", f"the {ftype} filter on a backendRef"))
    if request_headers is None:
        return ref
    return replace(ref, request_headers=request_headers)


def _rule(rule: Any, i: int, ns: str) -> RuleSpec:
    field = f"spec.rules[{i}]"
    rule = _map(rule, field)
    unsupported: list[tuple[str, str]] = []
    features: set[str] = set()
    raw_matches = _list(rule.get("matches"), field + ".matches") or [{}]
    matches: list[MatchSpec] = []
    for j, m in enumerate(raw_matches):
        parsed = _match(m, f"{field}.matches[{j}]", unsupported)
        if parsed is not None:
            matches.append(parsed)
            if parsed.method is not None:
                features.add("HTTPRouteMethodMatching")
            if parsed.query:
                features.add("HTTPRouteQueryParamMatching")
    request_headers = response_headers = None
    redirect: Redirect | None = None
    redirect_port_set = False
    rewrite: Rewrite | None = None
    cors: Cors | None = None
    mirrors: list[BackendRefSpec] = []
    seen_types: set[str] = set()
    for j, f in enumerate(_list(rule.get("filters"), field + ".filters")):
        ff = f"{field}.filters[{j}]"
        f = _map(f, ff)
        ftype = f.get("type")
        if ftype in seen_types and ftype != "RequestMirror":
            raise _Invalid(ff + ".type", f"{ftype} appears twice")
        seen_types.add(str(ftype))
        if ftype == "RequestHeaderModifier":
            request_headers = _header_filter(f.get("requestHeaderModifier"), ff)
        elif ftype == "ResponseHeaderModifier":
            response_headers = _header_filter(f.get("responseHeaderModifier"), ff)
            features.add("HTTPRouteResponseHeaderModification")
        elif ftype == "RequestRedirect":
            spec = _map(f.get("requestRedirect"), ff + ".requestRedirect")
            scheme = spec.get("scheme")
            if scheme is not None and scheme not in ("http", "https"):
                raise _Invalid(ff + ".requestRedirect.scheme", "must be http or https")
            code = spec.get("statusCode", 302)
            if code not in _REDIRECT_CODES:
                raise _Invalid(ff + ".requestRedirect.statusCode", "must be 301/302/303/307/308")
            if code in (303, 307, 308):
                features.add(f"HTTPRoute{code}RedirectStatusCode")
            port = spec.get("port")
            if port is not None:
                port = _int(port, ff + ".requestRedirect.port", 1, 65535)
                features.add("HTTPRoutePortRedirect")
            hostname = spec.get("hostname")
            if hostname is not None:
                hostname = _hostname(hostname, ff + ".requestRedirect.hostname")
                if hostname.startswith("*."):
                    raise _Invalid(ff + ".requestRedirect.hostname", "must not be a wildcard")
            path = None
            if spec.get("path") is not None:
                path = _path_modifier(
                    spec.get("path"), ff + ".requestRedirect.path", tuple(matches)
                )
                features.add("HTTPRoutePathRedirect")
            if scheme is not None:
                features.add("HTTPRouteSchemeRedirect")
            redirect = Redirect(status=code, scheme=scheme, hostname=hostname, port=port, path=path)
            redirect_port_set = port is not None
        elif ftype == "URLRewrite":
            spec = _map(f.get("urlRewrite"), ff + ".urlRewrite")
            hostname = spec.get("hostname")
            if hostname is not None:
                hostname = _hostname(hostname, ff + ".urlRewrite.hostname")
                if hostname.startswith("*."):
                    raise _Invalid(ff + ".urlRewrite.hostname", "must not be a wildcard")
                features.add("HTTPRouteHostRewrite")
            path = None
            if spec.get("path") is not None:
                path = _path_modifier(spec.get("path"), ff + ".urlRewrite.path", tuple(matches))
                features.add("HTTPRoutePathRewrite")
            rewrite = Rewrite(hostname=hostname, path=path)
        elif ftype == "RequestMirror":
            spec = _map(f.get("requestMirror"), ff + ".requestMirror")
            mirror = _backend(spec.get("backendRef"), ns, ff + ".requestMirror.backendRef")
            fraction = _mirror_fraction(spec, ff + ".requestMirror")
            if fraction is not None:
                features.add("HTTPRouteRequestPercentageMirror")
                if (100 * fraction[0]) % fraction[1]:
                    features.add(MIRROR_FRACTION)
                mirror = replace(mirror, fraction=fraction)
            mirrors.append(mirror)
            features.add("HTTPRouteRequestMirror")
            if len(mirrors) > 1:
                features.add("HTTPRouteRequestMultipleMirrors")
        elif ftype == "CORS":
            cors = _cors(f.get("cors"), ff + ".cors")
            features.add("HTTPRouteCORS")
        elif ftype == "ExtensionRef":
            unsupported.append((ff + ".type", f"the {ftype} filter"))
        else:
            raise _Invalid(ff + ".type", f"unknown filter type {ftype!r}")
    if redirect is not None and rewrite is not None:
        raise _Invalid(field + ".filters", "RequestRedirect and URLRewrite cannot be combined")
    backends = tuple(
        _backend_filters(_backend(b, ns, f"{field}.backendRefs[{j}]"), b, unsupported, features)
        for j, b in enumerate(_list(rule.get("backendRefs"), field + ".backendRefs"))
    )
    if redirect is not None and backends:
        raise _Invalid(field, "a rule with a RequestRedirect must not have backendRefs")
    timeout: float | None = None
    timeouts = _map(rule.get("timeouts"), field + ".timeouts")
    if timeouts.get("request") is not None:
        timeout = parse_duration(timeouts.get("request"))
        if timeout is None:
            raise _Invalid(field + ".timeouts.request", "must be a duration like 10s or 500ms")
        features.add("HTTPRouteRequestTimeout")
    if timeouts.get("backendRequest") is not None:
        backend_timeout = parse_duration(timeouts.get("backendRequest"))
        if backend_timeout is None:
            raise _Invalid(field + ".timeouts.backendRequest", "must be a duration like 10s")
        features.add("HTTPRouteBackendTimeout")
        # The time the proxy waits for the backend: the shorter of the two bounds.
        timeout = backend_timeout if timeout is None else min(timeout, backend_timeout)
    if timeout == 0:
        timeout = None  # 0 disables the timeout (the spec)
    return RuleSpec(
        index=i,
        matches=tuple(matches),
        backends=backends,
        request_headers=request_headers,
        response_headers=response_headers,
        redirect=redirect,
        redirect_port_set=redirect_port_set,
        rewrite=rewrite,
        mirrors=tuple(mirrors),
        timeout=timeout,
        cors=cors,
        unsupported=tuple(unsupported),
        features=frozenset(features),
    )


def parse_httproute(obj: Mapping[str, Any]) -> tuple[ParsedHTTPRoute | None, str, str]:
    """Validate an HTTPRoute: the parsed route, or None with the field and the reason."""
    meta = obj.get("metadata") or {}
    ns = str(meta.get("namespace") or "default")
    name = str(meta.get("name") or "")
    ref = ObjectRef(kind="HTTPRoute", namespace=ns, name=name)
    try:
        _name(name, "metadata.name")
        spec = _map(obj.get("spec"), "spec")
        parents = tuple(
            _parent(_map(p, f"spec.parentRefs[{i}]"), ns, f"spec.parentRefs[{i}]")
            for i, p in enumerate(_list(spec.get("parentRefs"), "spec.parentRefs"))
        )
        hostnames = tuple(
            _hostname(h, f"spec.hostnames[{i}]")
            for i, h in enumerate(_list(spec.get("hostnames"), "spec.hostnames"))
        )
        raw_rules = _list(spec.get("rules"), "spec.rules") or [{}]
        rules = tuple(_rule(r, i, ns) for i, r in enumerate(raw_rules))
    except _Invalid as exc:
        return None, exc.field, exc.message
    generation = meta.get("generation")
    return (
        ParsedHTTPRoute(
            ref=ref,
            order=(str(meta.get("creationTimestamp") or ""), ns, name),
            generation=generation if isinstance(generation, int) else None,
            parents=parents,
            hostnames=hostnames,
            rules=rules,
        ),
        "",
        "",
    )
