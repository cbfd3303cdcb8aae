"""Per-Ingress settings read from annotations, through a registry of validated keys.

Every annotation is registered with its key (the part after the prefix), a parser that turns
the string into a typed value or raises ``ValueError`` with a sentence, a risk level (as
ingress-nginx's ``parser/validators.go`` grades them) and a one-line doc. Nothing else is
read: there are no snippet or free-text annotations, so no user string reaches proxy
configuration except through a parser.

Keys are read under ``--annotations-prefix`` (default ``polyingress.io``) and, as an alias for
migrations, under ingress-nginx's ``nginx.ingress.kubernetes.io``:

* an unknown key under our prefix is an error (the Ingress is rejected: a typo must not be
  silently ignored);
* an unknown key under the alias is a warning (an ingress-nginx feature we do not have);
* a value the parser refuses, or a key above the allowed risk, is an error;
* a key given under both prefixes takes our prefix's value (a warning when they differ).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from polyingress.core.pipeline.model import ObjectRef
from polyingress.core.pipeline.problems import Problem, Severity
from polyingress.core.pipeline.regexpath import check_common_regex
from polyingress.core.pipeline.validate import check_host

__all__ = [
    "DEFAULT_PREFIX",
    "NGINX_PREFIX",
    "REGISTRY",
    "AnnotationSpec",
    "Annotations",
    "Risk",
    "docs_table",
    "parse_annotations",
    "parse_bool",
    "register",
    "validate_prefix",
]

DEFAULT_PREFIX = "polyingress.io"
NGINX_PREFIX = "nginx.ingress.kubernetes.io"
VALUE_MAX = 1024

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class Risk(IntEnum):
    """How much harm a malicious value could do (ingress-nginx's AnnotationRisk levels)."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnotationSpec:
    name: str
    parse: Callable[[str], Any]
    risk: Risk
    doc: str
    default: Any = None
    nginx_alias: bool = True  # also read under nginx.ingress.kubernetes.io/<name>


REGISTRY: dict[str, AnnotationSpec] = {}


def register(spec: AnnotationSpec) -> AnnotationSpec:
    if not _NAME.fullmatch(spec.name):
        raise ValueError(f"annotation name {spec.name!r} is not a lowercase DNS label")
    if spec.name in REGISTRY:
        raise ValueError(f"annotation {spec.name!r} is already registered")
    REGISTRY[spec.name] = spec
    return spec


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(value: str) -> bool:
    """The spellings Go's strconv.ParseBool accepts, as ingress-nginx does."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean (true or false)")


# -- value parsers: each returns a typed value or raises ValueError with a sentence ----------
#
# They accept what ingress-nginx accepts (its parser/validators.go patterns), narrowed to what
# every backend can state the same way; the translation (translate/annotations.py) decides
# what the accepted values mean on the route model, and what it cannot serve.

_INT = re.compile(r"^[0-9]{1,10}$")
# ingress-nginx's RegexPathWithCapture characters, with '$' only as a capture reference $1-$9.
_REWRITE_TARGET = re.compile(r"^/(?:[-._~A-Za-z0-9/:]|\$[1-9])*$")
_PLAIN_PATH = re.compile(r"^/[-._~A-Za-z0-9/:]*$")
# Header names every proxy keeps as they are (nginx drops names with '_' or '.' by default).
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,254}$")
# ingress-nginx's BasicCharsRegex: what canary-by-header-value and cookie names may hold.
_BASIC = re.compile(r"^[-._~A-Za-z0-9/:]{1,256}$")
_COOKIE_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,256}$")
# A cookie name both an HTTP token and ingress-nginx's basic characters (its canary-by-cookie
# validator): letters, digits and -._~ (no regex or quoting metacharacter but '.').
_CANARY_COOKIE = re.compile(r"^[-._~A-Za-z0-9]{1,256}$")
# ingress-nginx's URLIsValidRegex characters.
_URL_CHARS = re.compile(r"^[-._~A-Za-z0-9/:,?&=]+$")
_URL_PATH = re.compile(r"^/[-._~A-Za-z0-9/:,&=]*$")
_SIZE = re.compile(r"^([0-9]{1,12})([bkmgBKMG]?)$")
_REALM = re.compile(r"^[-._~A-Za-z0-9/: ]{0,256}$")
_METHOD_TOKEN = re.compile(r"^[A-Za-z]{1,32}$")
_CORS_HEADER = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_CORS_EXPOSE = re.compile(r"^(?:\*|[A-Za-z0-9_-]{1,256})$")
_ORIGIN = re.compile(
    r"^(?:\*|[a-z][a-z0-9+.-]*://(?:\*\.)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(?::[0-9]{1,5})?)$"
)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MAX_TIMEOUT = 7 * 24 * 3600
MAX_WEIGHT_TOTAL = 1_000_000  # the Gateway API's bound on a backendRef weight


def parse_int(value: str, low: int = 0, high: int = 2**31 - 1) -> int:
    """A decimal integer (ingress-nginx's ValidateInt: digits only) within [low, high]."""
    if not _INT.fullmatch(value):
        raise ValueError(f"{value!r} is not a whole number")
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"{number} is out of range {low}-{high}")
    return number


def _ranged(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        return parse_int(value, low, high)

    return parse


def parse_seconds(value: str) -> int:
    """ingress-nginx's proxy timeouts: a number of seconds, without a unit."""
    return parse_int(value, 1, MAX_TIMEOUT)


def parse_rewrite_target(value: str) -> str:
    """A path for the backend: '/' and ingress-nginx's path characters; ``$1``-``$9`` refer to
    capture groups of a use-regex path. An empty value means no rewrite (as in ingress-nginx)."""
    if value == "":
        return ""
    if "$" in value and not re.search(r"\$[1-9]", value):
        raise ValueError(f"{value!r}: '$' is only allowed as a capture reference $1-$9")
    if not _REWRITE_TARGET.fullmatch(value):
        raise ValueError(
            f"{value!r} must be a path starting with '/' of letters, digits and -._~/: (and $1-$9)"
        )
    if "//" in value:
        raise ValueError(f"{value!r} must not contain '//'")
    return value


def parse_plain_path(value: str) -> str:
    """A path without variables: '/' and letters, digits, -._~/:."""
    if not _PLAIN_PATH.fullmatch(value):
        raise ValueError(
            f"{value!r} must be a path starting with '/' of letters, digits and -._~/:"
        )
    if "//" in value or any(s in (".", "..") for s in value.split("/")):
        raise ValueError(f"{value!r} must not contain '//', '.' or '..' segments")
    return value


def parse_header_name(value: str) -> str:
    """An HTTP header name every proxy passes as it is; returned lowercase."""
    if not _HEADER_NAME.fullmatch(value):
        hint = (
            " (write '-' for '_': nginx drops headers whose names hold '_')" if "_" in value else ""
        )
        raise ValueError(f"{value!r} is not a header name of letters, digits and '-'{hint}")
    return value.lower()


def parse_basic(value: str) -> str:
    """ingress-nginx's basic characters: letters, digits and -._~/:."""
    if not _BASIC.fullmatch(value):
        raise ValueError(f"{value!r} may only hold letters, digits and -._~/: (1-256 of them)")
    return value


# ingress-nginx's IsValidRegex characters (annotations/parser: alphaNumericChars plus
# regexEnabledChars), what canary-by-header-pattern may hold there.
_REGEX_CHARS = re.compile(r"[-/\w.~:^$\[\](){}*+?|&=\\]{1,1024}", re.ASCII)


def parse_header_pattern(value: str) -> str:
    """canary-by-header-pattern: ingress-nginx's regex characters, and a regular expression
    that means the same on every backend (:func:`check_common_regex`: no look-around, no
    backreferences)."""
    if not _REGEX_CHARS.fullmatch(value):
        raise ValueError(
            f"{value[:80]!r} may only hold letters, digits and -_.~:/^$[](){{}}*+?|&=\\ "
            "(ingress-nginx's regex characters)"
        )
    try:
        return check_common_regex(value)
    except ValueError as exc:
        raise ValueError(f"{exc} (the same on nginx, HAProxy and Traefik)") from None


def parse_cookie_name(value: str) -> str:
    if not _COOKIE_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a cookie name (an HTTP token)")
    return value


def parse_canary_cookie(value: str) -> str:
    """canary-by-cookie: a cookie name of letters, digits and -._~ (ingress-nginx's basic
    characters that a cookie name may hold)."""
    if not _CANARY_COOKIE.fullmatch(value):
        raise ValueError(f"{value!r} is not a cookie name of letters, digits and -._~ (1-256)")
    return value


def parse_cookie_domain(value: str) -> str:
    """A cookie's Domain: a DNS name (a leading '.' allowed, as browsers ignore it)."""
    name = value[1:] if value.startswith(".") else value
    reason = check_host(name.lower())
    if reason is not None or name.startswith("*."):
        raise ValueError(f"{value!r} is not a domain name")
    return value


def parse_hostname(value: str) -> str:
    """A DNS name (no wildcard, no port, no nginx variable)."""
    if "$" in value:
        raise ValueError(f"{value!r}: nginx variables are not supported; give a host name")
    if ":" in value:
        raise ValueError(f"{value!r}: a port is not supported; give a host name")
    reason = check_host(value)
    if reason is not None or value.startswith("*."):
        raise ValueError(reason or f"{value!r} must not be a wildcard")
    return value


def parse_server_alias(value: str) -> tuple[str, ...]:
    """Comma-separated host names (``*.`` wildcards allowed); sorted, without repeats."""
    names: list[str] = []
    for raw in value.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name.startswith("~"):
            raise ValueError(f"{raw.strip()!r}: regular expression server names are not supported")
        reason = check_host(name)
        if reason is not None:
            raise ValueError(reason)
        names.append(name)
    if not names:
        raise ValueError("no host name given")
    return tuple(sorted(set(names)))


@dataclass(frozen=True, slots=True)
class RedirectURL:
    """An absolute http(s) URL of a redirect annotation."""

    scheme: str
    host: str
    port: int | None
    path: str  # "" when the URL has none
    query: str  # "" when none

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        query = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.host}{port}{self.path}{query}"


def parse_redirect_url(value: str) -> RedirectURL:
    """An absolute http or https URL of ingress-nginx's URL characters (-._~/:,?&= letters and
    digits); the host a DNS name or an IPv4 address."""
    if "$" in value:
        raise ValueError(f"{value!r}: nginx variables are not supported")
    if not _URL_CHARS.fullmatch(value):
        raise ValueError(f"{value!r} may only hold letters, digits and -._~/:,?&=")
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f"{value!r} must be an absolute http:// or https:// URL")
    authority, slash, tail = rest.partition("/")
    path = slash + tail
    if "?" in authority:
        authority, _q, query0 = authority.partition("?")
        path, query = "", query0
    else:
        path, _q, query = path.partition("?")
    host, colon, port_text = authority.partition(":")
    port: int | None = None
    if colon:
        port = parse_int(port_text, 1, 65535) if port_text else None
        if port is None:
            raise ValueError(f"{value!r}: empty port")
    host = host.lower()
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        reason = check_host(host)
        if reason is not None or host.startswith("*."):
            raise ValueError(f"{value!r}: {reason or 'the host must not be a wildcard'}") from None
    if path and (not _URL_PATH.fullmatch(path) or "//" in path):
        raise ValueError(f"{value!r}: the path may only hold letters, digits and -._~/:,&=")
    return RedirectURL(scheme=scheme, host=host, port=port, path=path, query=query)


def parse_redirect_code(value: str) -> int:
    """A 3xx status code (ingress-nginx: 300-308)."""
    return parse_int(value, 300, 308)


_BACKEND_PROTOCOLS = ("HTTP", "HTTPS", "AUTO_HTTP", "GRPC", "GRPCS", "FCGI", "H2C")


def parse_backend_protocol(value: str) -> str:
    upper = value.upper()
    if upper not in _BACKEND_PROTOCOLS:
        raise ValueError(f"{value!r} is not one of {', '.join(_BACKEND_PROTOCOLS)}")
    return upper


def parse_size(value: str) -> int:
    """nginx's size (ingress-nginx's SizeRegex): digits and an optional unit b, k, m or g;
    returned in bytes (0: no limit)."""
    found = _SIZE.fullmatch(value)
    if found is None:
        raise ValueError(f"{value!r} is not a size like 8m, 512k or 1000")
    return int(found.group(1)) * _SIZE_UNITS[found.group(2).lower()]


_CIDR_CHARS = re.compile(r"[0-9A-Fa-f.:]+(?:/[0-9]{1,3})?")


def parse_cidrs(value: str) -> tuple[str, ...]:
    """Comma-separated CIDRs or addresses (an address is a /32 or /128); normalized."""
    out: list[str] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        if not _CIDR_CHARS.fullmatch(item):
            # (Python reads an IPv6 scope "fe80::1%eth0"; Go's net.ParseCIDR, ingress-nginx's,
            # does not, and no proxy compares one)
            raise ValueError(f"{item[:60]!r} is not a CIDR or an IP address")
        try:
            net = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item[:60]!r} is not a CIDR or an IP address") from None
        out.append(str(net))
    if not out:
        raise ValueError("no CIDR given")
    return tuple(dict.fromkeys(out))


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return parse


def _list(pattern: re.Pattern[str], what: str) -> Callable[[str], tuple[str, ...]]:
    def parse(value: str) -> tuple[str, ...]:
        items = tuple(i.strip() for i in value.split(",") if i.strip())
        if not items:
            raise ValueError(f"no {what} given")
        for item in items:
            if not pattern.fullmatch(item):
                raise ValueError(f"{item[:60]!r} is not a valid {what}")
        return items

    return parse


def parse_namespaced(value: str) -> tuple[str | None, str]:
    """``name`` or ``namespace/name`` of an object."""
    ns, sep, name = value.partition("/")
    if not sep:
        ns, name = "", value
    for part, what in ((ns, "namespace"), (name, "name")):
        if (part or sep) and (not part or not _DNS_SUBDOMAIN.fullmatch(part) or len(part) > 253):
            raise ValueError(f"{value!r}: the {what} is not a DNS subdomain")
    return (ns or None, name)


def parse_realm(value: str) -> str:
    if not _REALM.fullmatch(value):
        raise ValueError(f"{value!r} may only hold letters, digits, spaces and -._~/:")
    return value


def _spec(
    name: str, parse: Callable[[str], Any], risk: Risk, doc: str, default: Any = None
) -> None:
    register(AnnotationSpec(name=name, parse=parse, risk=risk, doc=doc, default=default))


_spec(
    "ssl-redirect",
    parse_bool,
    Risk.LOW,
    "Redirect HTTP to HTTPS (301 for GET, 308 otherwise) on the hosts that have TLS; default true.",
    default=True,
)
_spec(
    "force-ssl-redirect",
    parse_bool,
    Risk.MEDIUM,
    "Redirect HTTP to HTTPS (308) on this Ingress's paths even without TLS.",
    default=False,
)
_spec("rewrite-target", parse_rewrite_target, Risk.MEDIUM, "The path the backend receives.")
_spec("use-regex", parse_bool, Risk.LOW, "Paths are regular expressions.", default=False)
_spec("app-root", parse_plain_path, Risk.MEDIUM, "Redirect (302) requests for / to this path.")
_spec("permanent-redirect", parse_redirect_url, Risk.MEDIUM, "Answer with a redirect (301) to URL.")
_spec(
    "permanent-redirect-code",
    parse_redirect_code,
    Risk.LOW,
    "Status of permanent-redirect (default 301).",
)
_spec("temporal-redirect", parse_redirect_url, Risk.MEDIUM, "Answer with a redirect (302) to URL.")
_spec(
    "temporal-redirect-code",
    parse_redirect_code,
    Risk.LOW,
    "Status of temporal-redirect (default 302).",
)
_spec(
    "canary",
    parse_bool,
    Risk.LOW,
    "This Ingress is a canary of the Ingress with its host and path.",
    default=False,
)
_spec(
    "canary-weight",
    _ranged(0, MAX_WEIGHT_TOTAL),
    Risk.LOW,
    "Requests to the canary: weight of canary-weight-total.",
)
_spec(
    "canary-weight-total",
    _ranged(1, MAX_WEIGHT_TOTAL),
    Risk.LOW,
    "The total canary-weight is out of (default 100).",
    default=100,
)
_spec(
    "canary-by-header",
    parse_header_name,
    Risk.LOW,
    "Header that sends a request to the canary (always/never).",
)
_spec(
    "canary-by-header-value",
    parse_basic,
    Risk.LOW,
    "The canary-by-header value that sends a request to the canary.",
)
_spec(
    "canary-by-header-pattern",
    parse_header_pattern,
    Risk.MEDIUM,
    "A regular expression for the canary-by-header value.",
)
_spec(
    "canary-by-cookie",
    parse_canary_cookie,
    Risk.LOW,
    "Cookie that sends a request to the canary (always/never).",
)
_spec("upstream-vhost", parse_hostname, Risk.LOW, "The Host header the backend receives.")
_spec(
    "x-forwarded-prefix",
    parse_plain_path,
    Risk.LOW,
    "X-Forwarded-Prefix sent to the backend (with rewrite-target).",
)
_spec(
    "server-alias",
    parse_server_alias,
    Risk.HIGH,
    "More host names served exactly as this Ingress's hosts.",
)
_spec(
    "custom-headers",
    parse_namespaced,
    Risk.MEDIUM,
    "A ConfigMap (namespace/name) of response headers.",
)
_spec("proxy-connect-timeout", parse_seconds, Risk.LOW, "Seconds to connect to the backend.")
_spec("proxy-send-timeout", parse_seconds, Risk.LOW, "Seconds between two writes to the backend.")
_spec("proxy-read-timeout", parse_seconds, Risk.LOW, "Seconds between two reads from the backend.")
_spec("proxy-body-size", parse_size, Risk.LOW, "The largest request body (413 beyond).")
_spec(
    "backend-protocol",
    parse_backend_protocol,
    Risk.LOW,
    "How the backend is spoken to.",
    default="HTTP",
)
_spec("whitelist-source-range", parse_cidrs, Risk.MEDIUM, "Client addresses allowed (others 403).")
_spec("allowlist-source-range", parse_cidrs, Risk.MEDIUM, "Client addresses allowed (others 403).")
_spec("denylist-source-range", parse_cidrs, Risk.MEDIUM, "Client addresses refused (403).")
_spec(
    "enable-cors",
    parse_bool,
    Risk.LOW,
    "Answer CORS preflights and add CORS headers.",
    default=False,
)
_spec("cors-allow-origin", _list(_ORIGIN, "origin"), Risk.MEDIUM, "Allowed origins.")
_spec("cors-allow-methods", _list(_METHOD_TOKEN, "method"), Risk.LOW, "Allowed methods.")
_spec(
    "cors-allow-headers", _list(_CORS_HEADER, "header name"), Risk.LOW, "Allowed request headers."
)
_spec(
    "cors-expose-headers", _list(_CORS_EXPOSE, "header name"), Risk.LOW, "Exposed response headers."
)
_spec("cors-allow-credentials", parse_bool, Risk.LOW, "Access-Control-Allow-Credentials.")
_spec("cors-max-age", _ranged(0, 2**31 - 1), Risk.LOW, "Access-Control-Max-Age.")
_spec("affinity", _choice("cookie"), Risk.LOW, "Session affinity by cookie.")
_spec("affinity-mode", _choice("balanced", "persistent"), Risk.LOW, "Affinity stickiness.")
_spec("session-cookie-name", parse_canary_cookie, Risk.LOW, "Affinity cookie name.")
_spec("session-cookie-path", parse_plain_path, Risk.LOW, "Affinity cookie Path.")
_spec("session-cookie-domain", parse_cookie_domain, Risk.LOW, "Affinity cookie Domain.")
_spec(
    "session-cookie-samesite",
    _choice("None", "Lax", "Strict"),
    Risk.LOW,
    "Affinity cookie SameSite.",
)
_spec(
    "session-cookie-expires", _ranged(0, 2**31 - 1), Risk.LOW, "Affinity cookie Expires (seconds)."
)
_spec(
    "session-cookie-max-age", _ranged(0, 2**31 - 1), Risk.LOW, "Affinity cookie Max-Age (seconds)."
)
_spec("session-cookie-secure", parse_bool, Risk.LOW, "Affinity cookie Secure.")
_spec(
    "session-cookie-change-on-failure", parse_bool, Risk.LOW, "New affinity cookie after a failure."
)
_spec(
    "session-cookie-conditional-samesite-none",
    parse_bool,
    Risk.LOW,
    "SameSite=None for compatible browsers only.",
)
_spec("limit-rps", _ranged(1, 2**31 - 1), Risk.LOW, "Requests per second per client address.")
_spec("limit-rpm", _ranged(1, 2**31 - 1), Risk.LOW, "Requests per minute per client address.")
_spec(
    "limit-connections",
    _ranged(1, 65535),  # nginx's limit_conn refuses 65536 and more
    Risk.LOW,
    "Concurrent connections per client address.",
)
_spec(
    "limit-burst-multiplier", _ranged(1, 2**31 - 1), Risk.LOW, "Burst of limit-rps/rpm (default 5)."
)
_spec("auth-type", _choice("basic", "digest"), Risk.LOW, "HTTP authentication.")
_spec("auth-secret", parse_namespaced, Risk.MEDIUM, "Secret with the users (htpasswd).")
_spec("auth-secret-type", _choice("auth-file", "auth-map"), Risk.LOW, "Form of auth-secret.")
_spec("auth-realm", parse_realm, Risk.MEDIUM, "Authentication realm.")


def validate_prefix(prefix: str) -> str:
    """``--annotations-prefix``: a DNS subdomain such as ``polyingress.io``."""
    if len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix):
        raise ValueError(f"annotations prefix {prefix!r} must be a lowercase DNS subdomain")
    return prefix


@dataclass(frozen=True, slots=True)
class Annotations:
    """The parsed values set on one Ingress; ``get`` falls back to the registry default."""

    values: Mapping[str, Any] = field(default_factory=dict)
    # The key each value was read from (``<prefix>/<name>``), to name it in problems.
    keys: Mapping[str, str] = field(default_factory=dict)

    def key(self, name: str, prefix: str = DEFAULT_PREFIX) -> str:
        return self.keys.get(name, f"{prefix}/{name}")

    def has(self, name: str) -> bool:
        """Whether the Ingress sets the annotation (under either prefix)."""
        return name in self.values

    def get(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        return REGISTRY[name].default


def _problem(ref: ObjectRef, key: str, message: str, severity: Severity, reason: str) -> Problem:
    return Problem(
        ref=ref,
        field=f"metadata.annotations[{key!r}]",
        message=message,
        severity=severity,
        reason=reason,
    )


def parse_annotations(
    ref: ObjectRef,
    annotations: Mapping[str, Any] | None,
    *,
    prefix: str = DEFAULT_PREFIX,
    max_risk: Risk = Risk.HIGH,
    registry: Mapping[str, AnnotationSpec] | None = None,
) -> tuple[Annotations, list[Problem]]:
    """Parse and validate the annotations of one object. Pure; problems name the key."""
    reg = REGISTRY if registry is None else registry
    problems: list[Problem] = []
    primary: dict[str, tuple[str, Any]] = {}
    aliased: dict[str, tuple[str, Any]] = {}
    for key in sorted(annotations or {}):
        value = (annotations or {})[key]
        ns, sep, name = key.partition("/")
        if not sep:
            continue
        if ns == prefix:
            target, is_primary = primary, True
        elif ns == NGINX_PREFIX:
            target, is_primary = aliased, False
        else:
            continue
        spec = reg.get(name)
        if spec is None or (not is_primary and not spec.nginx_alias):
            if is_primary:
                close = difflib.get_close_matches(name, list(reg), n=1)
                hint = f"; did you mean {prefix}/{close[0]}?" if close else ""
                problems.append(
                    _problem(
                        ref,
                        key,
                        f"unknown annotation{hint}",
                        Severity.ERROR,
                        "UnknownAnnotation",
                    )
                )
            else:
                problems.append(
                    _problem(
                        ref,
                        key,
                        "ingress-nginx annotation not supported by polyingress; ignored",
                        Severity.WARNING,
                        "UnsupportedAnnotation",
                    )
                )
            continue
        if spec.risk > max_risk:
            problems.append(
                _problem(
                    ref,
                    key,
                    f"risk {spec.risk.name.lower()} is above the allowed {max_risk.name.lower()}",
                    Severity.ERROR,
                    "AnnotationRisk",
                )
            )
            continue
        if value == "":
            # ingress-nginx reads an empty value as no value (the annotation has no effect).
            problems.append(
                _problem(ref, key, "empty value; ignored", Severity.WARNING, "EmptyAnnotation")
            )
            continue
        if not isinstance(value, str) or len(value) > VALUE_MAX:
            problems.append(
                _problem(
                    ref,
                    key,
                    f"value must be a string of at most {VALUE_MAX} characters",
                    Severity.ERROR,
                    "InvalidAnnotation",
                )
            )
            continue
        try:
            parsed = spec.parse(value)
        except ValueError as exc:
            problems.append(_problem(ref, key, str(exc), Severity.ERROR, "InvalidAnnotation"))
            continue
        target[name] = (key, parsed)
    values = {name: parsed for name, (_key, parsed) in aliased.items()}
    keys = {name: key for name, (key, _parsed) in aliased.items()}
    for name, (key, parsed) in primary.items():
        if name in aliased and aliased[name][1] != parsed:
            problems.append(
                _problem(
                    ref,
                    aliased[name][0],
                    f"differs from {key}; {key} is used",
                    Severity.WARNING,
                    "ConflictingAnnotation",
                )
            )
        values[name] = parsed
        keys[name] = key
    return Annotations(values=values, keys=keys), problems


def docs_table(prefix: str = DEFAULT_PREFIX) -> str:
    """The registry as a Markdown table (README)."""
    lines = ["| annotation | risk | default | meaning |", "| --- | --- | --- | --- |"]
    for name in sorted(REGISTRY):
        spec = REGISTRY[name]
        default = "" if spec.default is None else str(spec.default).lower()
        lines.append(f"| `{prefix}/{name}` | {spec.risk.name.lower()} | {default} | {spec.doc} |")
    return "\n".join(lines) + "\n"
