"""ingress-nginx annotations -> the route model's rows, and what each backend can serve of them.

The parsed annotations of one Ingress (:mod:`polyingress.core.pipeline.annotations`) become an
:class:`IngressPolicy`: how its rows differ from plain Ingress rows, in the Gateway-API-shaped
vocabulary every backend renders (redirects, rewrites, header filters, weighted splits, header
matches, timeouts), and a :class:`Verdict` per annotation set: **honoured** (the documented
behaviour of ingress-nginx, exactly), **partial** (honoured, with a stated difference) or
**unsupported** (not served; the Ingress is then rejected when serving it without the
annotation would open access or route elsewhere, else served without it with a warning).

A verdict names the Gateway API features (``BackendInfo.gateway_features``) a backend must
serve for it; :func:`gate` holds them against a backend's, so that a backend lacking one never
serves an Ingress differently in silence: its rows answer 500 and the Ingress gets an
``UnsupportedValue`` problem (as an HTTPRoute rule needing an undeclared feature does), or, for a
backend serving no Gateway API rows at all, the Ingress is rejected.

Behaviour is ingress-nginx's (docs/user-guide/nginx-configuration/annotations.md, its
annotation parsers and test/e2e/annotations), read from kubernetes/ingress-nginx; each verdict's
note says where polyingress differs.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from fractions import Fraction
from typing import Any

from polyingress.core.pipeline.annotations import (
    DEFAULT_PREFIX,
    MAX_WEIGHT_TOTAL,
    NGINX_PREFIX,
    REGISTRY,
    Annotations,
    RedirectURL,
    parse_annotations,
    parse_bool,
)
from polyingress.core.pipeline.gateway import BACKEND_TLS
from polyingress.core.pipeline.model import (
    BackendProtocol,
    CookieMatch,
    Cors,
    HeaderFilter,
    HeaderMatch,
    ObjectRef,
    PathModifier,
    PathModifierType,
    PathType,
    Redirect,
    Rewrite,
    Route,
    SessionAffinity,
    WeightedBackend,
)
from polyingress.core.pipeline.policy import (
    BASIC_AUTH,
    BODY_SIZE,
    RATE_LIMIT,
    SOURCE_RANGES,
    BasicAuth,
    RateLimit,
    RoutePolicy,
    SourceRanges,
)
from polyingress.core.pipeline.problems import Problem, Severity
from polyingress.core.pipeline.regexpath import RegexForm
from polyingress.core.pipeline.translate.htpasswd import SecretUsersError, users_of_secret
from polyingress.core.pipeline.translate.ingress import PathRule, parse_ingress

__all__ = [
    "ANNOTATION_FEATURES",
    "ANNOTATION_SUPPORT",
    "CANARY_KEYS",
    "CONNECT_TIMEOUT",
    "COOKIE_MATCHING",
    "HEADER_REGEX",
    "SEND_TIMEOUT",
    "SESSION_AFFINITY",
    "Canary",
    "Gate",
    "IngressPolicy",
    "Support",
    "Verdict",
    "app_root_rows",
    "custom_headers_filter",
    "error_rows",
    "gate",
    "policy_of",
    "served_policy",
    "translate_annotations",
    "uses_regex",
    "with_canaries",
]

_CORE = "HTTPRoute"
_PATH_REWRITE = "HTTPRoutePathRewrite"
_HOST_REWRITE = "HTTPRouteHostRewrite"
_PATH_REDIRECT = "HTTPRoutePathRedirect"
_SCHEME_REDIRECT = "HTTPRouteSchemeRedirect"
_PORT_REDIRECT = "HTTPRoutePortRedirect"
_TIMEOUT = "HTTPRouteBackendTimeout"
_H2C = "HTTPRouteBackendProtocolH2C"
_CORS = "HTTPRouteCORS"
_CORS_NOTE = (
    "served as the Gateway API CORS filter: a preflight is an OPTIONS with an Origin and "
    "Access-Control-Request-Method (ingress-nginx: any OPTIONS from an allowed Origin), answered "
    "204 without a body's headers; Allow-Methods, -Headers and Max-Age go on the preflight only "
    "(ingress-nginx: on every answer); an allowed Origin is echoed, also for cors-allow-origin "
    "* (ingress-nginx answers *); origins compare case-sensitively and *.x matches one label or "
    "more (ingress-nginx: case-insensitively, one label); an origin of another scheme than "
    "http or https is left out"
)
# ingress-nginx's defaults of the cors-* keys (docs/user-guide/nginx-configuration/
# annotations.md, "Enable CORS").
_CORS_DEFAULTS: dict[str, Any] = {
    "cors-allow-origin": ("*",),
    "cors-allow-methods": ("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"),
    "cors-allow-headers": (
        "DNT",
        "Keep-Alive",
        "User-Agent",
        "X-Requested-With",
        "If-Modified-Since",
        "Cache-Control",
        "Content-Type",
        "Range",
        "Authorization",
    ),
    "cors-expose-headers": (),
    "cors-allow-credentials": True,
    "cors-max-age": 1728000,
}
_RESPONSE_HEADERS = "HTTPRouteResponseHeaderModification"
# Route model parts the Gateway API has no feature for, which only annotations use: a backend
# declares them in BackendInfo.gateway_features beside the upstream names (GatewayClass status
# lists only upstream names: core/pipeline/gateway.py).
COOKIE_MATCHING = "polyingress.io/CookieMatching"
# HeaderMatch.regex (canary-by-header-pattern): the Gateway API's RegularExpression header
# match type, which has no feature name of its own there.
HEADER_REGEX = "polyingress.io/HeaderRegexMatching"
CONNECT_TIMEOUT = "polyingress.io/BackendConnectTimeout"
SESSION_AFFINITY = "polyingress.io/SessionAffinity"
SEND_TIMEOUT = "polyingress.io/BackendSendTimeout"
# The request policies' (core/pipeline/policy.py: SOURCE_RANGES, BODY_SIZE, BASIC_AUTH,
# RATE_LIMIT) are named the same way and are never optional: without one the rows answer 500.
ANNOTATION_FEATURES = (
    COOKIE_MATCHING,
    HEADER_REGEX,
    CONNECT_TIMEOUT,
    SESSION_AFFINITY,
    SEND_TIMEOUT,
    SOURCE_RANGES,
    BODY_SIZE,
    BASIC_AUTH,
    RATE_LIMIT,
)
# Features whose absence only loses a refinement: a backend lacking one serves the Ingress
# without it (a warning), not with 500 (the ConfigMap's timeout applies instead; requests are
# balanced over the endpoints, as without affinity).
OPTIONAL_FEATURES = frozenset({CONNECT_TIMEOUT, SESSION_AFFINITY, SEND_TIMEOUT})
_WELL_KNOWN = {"http": 80, "https": 443}
_CODE_FEATURES = {
    303: "HTTPRoute303RedirectStatusCode",
    307: "HTTPRoute307RedirectStatusCode",
    308: "HTTPRoute308RedirectStatusCode",
}


class Support(StrEnum):
    HONOURED = "honoured"
    PARTIAL = "partial"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What polyingress does with one annotation of one Ingress.

    ``note``: the difference from ingress-nginx for ``partial``, why for ``unsupported``, a
    remark (no effect, precedence) for ``honoured``; ``features``: the Gateway API features
    the backend must serve; ``severity`` (unsupported only): ERROR rejects the Ingress,
    WARNING serves it without the annotation."""

    name: str
    key: str
    support: Support
    note: str = ""
    features: frozenset[str] = frozenset()
    severity: Severity = Severity.WARNING


@dataclass(frozen=True, slots=True)
class Canary:
    """A canary Ingress's rules: ``weight`` of ``total`` requests, the header that sends a
    request to it (``value`` None: ``pattern``, a regular expression found in the header's
    value, else ``always``/``never``, ingress-nginx's default values) and the cookie that does
    (``always``/``never``)."""

    weight: int = 0
    total: int = 100
    header: str | None = None
    value: str | None = None
    cookie: str | None = None
    pattern: str | None = None


@dataclass(frozen=True, slots=True)
class IngressPolicy:
    """How one Ingress's rows differ from plain Ingress rows (backend-independent)."""

    ref: ObjectRef
    verdicts: tuple[Verdict, ...] = ()
    canary: Canary | None = None
    rewrite_target: str | None = None
    host_rewrite: str | None = None
    forwarded_prefix: str | None = None
    timeout: float | None = None
    connect_timeout: float | None = None
    send_timeout: float | None = None
    affinity: SessionAffinity | None = None
    redirect: Redirect | None = None  # permanent-/temporal-redirect: every path answers it
    force_ssl: bool = False
    app_root: str | None = None
    aliases: tuple[str, ...] = ()
    protocol: BackendProtocol = BackendProtocol.HTTP  # backend-protocol
    cors: Cors | None = None  # enable-cors and the cors-* keys
    # custom-headers: the ConfigMap (namespace, name), and the response headers it gives once
    # the builder has read it (custom_headers_filter); ``denied``: it could not be used, and
    # the Ingress's paths answer 503 (ingress-nginx's denied location).
    custom_headers: tuple[str, str] | None = None
    response_headers: HeaderFilter | None = None
    denied: bool = False
    policy: RoutePolicy | None = None  # what a proxied request must satisfy
    auth_ref: AuthRef | None = None  # basic authentication's Secret (see resolve_auth)
    auth_failure: str | None = None  # why that Secret gives no users: the paths answer 503
    http_port: int = 80
    https_port: int = 443

    @property
    def rejected(self) -> tuple[Verdict, ...]:
        """The unsupported annotations that reject the Ingress."""
        return tuple(
            v
            for v in self.verdicts
            if v.support is Support.UNSUPPORTED and v.severity is Severity.ERROR
        )

    @property
    def features(self) -> frozenset[str]:
        """Every Gateway API feature the Ingress's served annotations need."""
        out: set[str] = set()
        for v in self.verdicts:
            if v.support is not Support.UNSUPPORTED:
                out |= v.features
        return frozenset(out)

    @property
    def plain(self) -> bool:
        """Its rows are plain Ingress rows (a path and a backend)."""
        return (
            self.rewrite_target is None
            and self.host_rewrite is None
            and self.timeout is None
            and self.connect_timeout is None
            and self.send_timeout is None
            and self.affinity is None
            and self.redirect is None
            and not self.force_ssl
            and self.cors is None
            and self.response_headers is None
            and self.policy is None
            and self.auth_ref is None
        )

    def problems(self) -> list[Problem]:
        """The problems of unsupported annotations (what the Ingress loses, or why it is
        rejected)."""
        out = []
        for v in self.verdicts:
            if v.support is not Support.UNSUPPORTED:
                continue
            what = "the Ingress is rejected" if v.severity is Severity.ERROR else "ignored"
            out.append(
                Problem(
                    ref=self.ref,
                    field=f"metadata.annotations[{v.key!r}]",
                    message=f"not supported: {v.note}; {what}",
                    severity=v.severity,
                    reason="UnsupportedAnnotation",
                )
            )
        return out

    def _path_rewrite(self, rule: PathRule) -> PathModifier | None:
        target = self.rewrite_target
        if target is None:
            return None
        regex = rule.regex
        if "$" not in target:
            # ingress-nginx: ``rewrite "(?i)<path>" <target> break``: the whole path is
            # replaced (the query kept); no rewrite when the target is the path itself.
            if target == rule.path or (regex is not None and target == regex.pattern):
                return None
            return PathModifier(type=PathModifierType.FULL, value=target)
        assert regex is not None  # checked by the translation
        return PathModifier(type=PathModifierType.PREFIX, value=_capture_base(target, regex.form))

    def rows(self, rule: PathRule, backend: str) -> list[Route]:
        """The rows of one of the Ingress's rules (not a canary's: see :func:`with_canaries`)."""
        base = Route(
            path=rule.path,
            path_type=rule.path_type,
            backend=backend,
            source=self.ref,
            cors=self.cors,
        )
        if self.plain:
            return [base]
        if self.auth_failure is not None:
            return [replace(base, backend=None, status=503)]
        if self.redirect is not None:
            return [replace(base, backend=None, redirect=self.redirect)]
        modifier = self._path_rewrite(rule)
        rewrite = None
        if modifier is not None or self.host_rewrite is not None:
            rewrite = Rewrite(hostname=self.host_rewrite, path=modifier)
        headers = None
        if self.forwarded_prefix is not None and modifier is not None:
            # ingress-nginx sets X-Forwarded-Prefix only where it rewrites the path.
            headers = HeaderFilter(set=(("x-forwarded-prefix", self.forwarded_prefix),))
        row = replace(
            base,
            rewrite=rewrite,
            request_headers=headers,
            response_headers=self.response_headers,
            timeout=self.timeout,
            connect_timeout=self.connect_timeout,
            send_timeout=self.send_timeout,
            affinity=self.affinity,
            policy=self.policy,
        )
        if not self.force_ssl:
            return [row]
        redirect = Redirect(status=308, scheme="https", port=self.https_port)
        return [
            replace(base, backend=None, schemes=("http",), redirect=redirect),
            replace(row, schemes=("https",)),
        ]


def _capture_base(target: str, form: RegexForm) -> str:
    """The replacement prefix of a rewrite-target using captures (checked by
    :func:`_capture_target`): ``R/$2``, ``R$1$2`` (P(/|$)(.*)) or ``R/$1`` (P/(.*))."""
    for suffix in ("/$2", "$1$2", "/$1"):
        if target.endswith(suffix):
            return target[: -len(suffix)] or "/"
    raise AssertionError(target)


def _capture_target(target: str, forms: set[RegexForm]) -> str | None:
    """Why a rewrite-target with capture references cannot be translated for paths of
    ``forms`` (None: it can: the prefix the path matched is replaced)."""
    for suffix, ok in (
        ("/$2", {RegexForm.SLASH_OR_END}),
        ("$1$2", {RegexForm.SLASH_OR_END}),
        ("/$1", {RegexForm.SUBPATH}),
    ):
        if target.endswith(suffix) and "$" not in target[: -len(suffix)] and forms <= ok:
            return None
    return (
        f"rewrite-target {target!r} with these paths: only R/$2 or R$1$2 with paths "
        "P(/|$)(.*), and R/$1 with paths P/(.*), are translated"
    )


# --- the translation ---------------------------------------------------------------------------

CANARY_KEYS = (
    "canary-weight",
    "canary-weight-total",
    "canary-by-header",
    "canary-by-header-value",
    "canary-by-header-pattern",
    "canary-by-cookie",
)
# Annotations a canary Ingress keeps (ingress-nginx: a canary inherits every other one from its
# main Ingress; load-balance, upstream-hash-by and affinity excepted).
_CANARY_OWN = frozenset({"canary", *CANARY_KEYS, "affinity", "affinity-mode"})
_CORS_KEYS = (
    "cors-allow-origin",
    "cors-allow-methods",
    "cors-allow-headers",
    "cors-expose-headers",
    "cors-allow-credentials",
    "cors-max-age",
)
_SESSION_KEYS = (
    "affinity-mode",
    "session-cookie-name",
    "session-cookie-path",
    "session-cookie-domain",
    "session-cookie-samesite",
    "session-cookie-expires",
    "session-cookie-max-age",
    "session-cookie-secure",
    "session-cookie-change-on-failure",
    "session-cookie-conditional-samesite-none",
)
_AUTH_KEYS = ("auth-secret", "auth-secret-type", "auth-realm")
_LIMIT_KEYS = ("limit-rps", "limit-rpm", "limit-connections", "limit-burst-multiplier")
_ACCESS_KEYS = ("whitelist-source-range", "allowlist-source-range", "denylist-source-range")

# What polyingress does with each annotation whatever its value (the README's matrix): the
# support, the Gateway API features a backend needs, and the note. Some verdicts depend on the
# value (a 308 redirect code needs HTTPRoute308RedirectStatusCode; an invalid combination is
# refused): :func:`translate_annotations` decides those per Ingress.
ANNOTATION_SUPPORT: dict[str, tuple[Support, frozenset[str], str]] = {
    "ssl-redirect": (
        Support.PARTIAL,
        frozenset(),
        "per host (the Ingress whose TLS entry serves it decides); 301 for GET, 308 for the "
        "other methods (ingress-nginx: 308 for all)",
    ),
    "force-ssl-redirect": (
        Support.PARTIAL,
        frozenset({_CORE, _SCHEME_REDIRECT, "HTTPRoute308RedirectStatusCode"}),
        "308 to https on the HTTPS port; the path keeps a trailing '/' (ingress-nginx drops "
        "it); a TLS host with ssl-redirect answers its own redirect (301/308) first",
    ),
    "rewrite-target": (
        Support.PARTIAL,
        frozenset({_CORE, _PATH_REWRITE}),
        "the backend gets the target as the whole path (with captures: the matched prefix "
        "replaced), the query kept; paths keep Ingress matching (element-wise, "
        "case-sensitive) where ingress-nginx matches every path of the host as a "
        "case-insensitive regular expression prefix",
    ),
    "use-regex": (
        Support.PARTIAL,
        frozenset(),
        "only the path forms P, P(/|$)(.*) and P/(.*) (P literal), matched case-sensitively "
        "and element-wise; other regular expressions reject the Ingress",
    ),
    "app-root": (
        Support.PARTIAL,
        frozenset({_CORE, _PATH_REDIRECT}),
        "302 for /; the query string is kept in the Location (ingress-nginx drops it)",
    ),
    "permanent-redirect": (
        Support.PARTIAL,
        frozenset({_CORE, _SCHEME_REDIRECT, _PATH_REDIRECT}),
        "the request's query string is appended to the Location (ingress-nginx sends the URL "
        "as written); a URL without a path redirects to '/'",
    ),
    "permanent-redirect-code": (
        Support.HONOURED,
        frozenset(),
        "303, 307 and 308 need HTTPRoute303/307/308RedirectStatusCode; 300, 304-306 are refused",
    ),
    "temporal-redirect": (
        Support.PARTIAL,
        frozenset({_CORE, _SCHEME_REDIRECT, _PATH_REDIRECT}),
        "the request's query string is appended to the Location (ingress-nginx sends the URL "
        "as written); a URL without a path redirects to '/'",
    ),
    "temporal-redirect-code": (
        Support.HONOURED,
        frozenset(),
        "303 and 307 need HTTPRoute303/307RedirectStatusCode; above 307 is 302 (as in "
        "ingress-nginx); 300, 304-306 are refused",
    ),
    "canary": (Support.HONOURED, frozenset(), "any number of canaries per path"),
    "canary-weight": (Support.HONOURED, frozenset({_CORE}), ""),
    "canary-weight-total": (Support.HONOURED, frozenset(), ""),
    "canary-by-header": (Support.HONOURED, frozenset({_CORE}), ""),
    "canary-by-header-value": (Support.HONOURED, frozenset({_CORE}), ""),
    "canary-by-header-pattern": (
        Support.HONOURED,
        frozenset({_CORE, HEADER_REGEX}),
        "a search in the header's value, as ingress-nginx's; only regular expressions that mean "
        "the same in PCRE, HAProxy's and Go's (no look-around, backreferences, named groups, "
        "\\b or \\x escapes, POSIX classes): another rejects the canary Ingress, whose "
        "requests then reach the main Ingress, as ingress-nginx's for a pattern it cannot use",
    ),
    "canary-by-cookie": (
        Support.PARTIAL,
        frozenset({_CORE, COOKIE_MATCHING}),
        "the cookie name is matched case-sensitively (ingress-nginx: in any case); the first "
        "cookie of that name counts, as in ingress-nginx",
    ),
    "upstream-vhost": (Support.HONOURED, frozenset({_CORE, _HOST_REWRITE}), ""),
    "x-forwarded-prefix": (
        Support.HONOURED,
        frozenset({_CORE}),
        "set where rewrite-target rewrites the path, as ingress-nginx does",
    ),
    "server-alias": (
        Support.HONOURED,
        frozenset(),
        "an alias that is a host of its own, or another Ingress's alias, is ignored",
    ),
    "proxy-read-timeout": (
        Support.PARTIAL,
        frozenset({_CORE, _TIMEOUT}),
        "the backend must answer within it (504); ingress-nginx bounds each read, so a "
        "response streaming longer than it may be cut on some backends",
    ),
    "proxy-connect-timeout": (
        Support.PARTIAL,
        frozenset({_CORE, CONNECT_TIMEOUT}),
        "an endpoint that does not accept the connection in time: 504, as in ingress-nginx; "
        "HAProxy (a backend section with its own timeout connect: a new value reloads once) "
        "tries up to 4 times (retries 3, each to another endpoint when there is one), so with "
        "one endpoint its 504 comes after 4 times the timeout; a backend without it serves the "
        "Ingress with the ConfigMap's proxy-connect-timeout, with a warning",
    ),
    "proxy-send-timeout": (
        Support.PARTIAL,
        frozenset({_CORE, SEND_TIMEOUT}),
        "a backend that stops reading the request for that long: 504, as in ingress-nginx; "
        "Traefik has no send timeout of its own: polyingress's filters plugin times the "
        "pauses in Traefik's reading of the request body (what the socket buffers take at "
        "once, a whole small body, is not timed, as on nginx: proxy-read-timeout then "
        "applies); HAProxy 2.6 has one server-side inactivity timeout for both directions "
        "(`timeout server` would also cut a slow response) and, measured, closes the "
        "connection without an answer when it expires during an upload: it serves the "
        "Ingress with the ConfigMap's timeouts, with a warning",
    ),
    "proxy-body-size": (
        Support.PARTIAL,
        frozenset({BODY_SIZE}),
        "413 for a body above it (0: no limit) on the Ingress's proxied paths; HAProxy checks "
        "the Content-Length only: a chunked body above it is proxied",
    ),
    "backend-protocol": (
        Support.PARTIAL,
        frozenset({_CORE, BACKEND_TLS}),
        "HTTP, HTTPS (TLS to the endpoint, its certificate not verified, as ingress-nginx) and "
        "H2C are honoured, H2C only where the backend serves HTTPRouteBackendProtocolH2C; GRPC "
        "and GRPCS are proxied as HTTP/2 (an error of the proxy's own is an HTTP status, not a "
        "grpc-status); AUTO_HTTP and FCGI are not served (the Ingress is rejected)",
    ),
    "custom-headers": (
        Support.PARTIAL,
        frozenset({_CORE, _RESPONSE_HEADERS}),
        "set on the responses the backend sends (ingress-nginx: also on the proxy's own "
        "answers, such as a redirect or 503); a ConfigMap of the Ingress's namespace only; "
        "names listed in the ConfigMap key global-allowed-response-headers, as in "
        "ingress-nginx; a missing ConfigMap or a name or value refused: 503 on the Ingress's "
        "paths, as in ingress-nginx",
    ),
    "enable-cors": (Support.PARTIAL, frozenset({_CORS}), _CORS_NOTE),
    "affinity": (
        Support.PARTIAL,
        frozenset({_CORE, SESSION_AFFINITY}),
        "the cookie's value is the proxy's own (ingress-nginx: an endpoint digest): on nginx "
        "and HAProxy a key hashed onto the endpoints (consistent: adding an endpoint moves "
        "about 1/n of the sessions), on Traefik its sticky cookie naming the endpoint; a "
        "canary's own affinity and ingress-nginx's sticky canaries are not served",
    ),
    "auth-type": (
        Support.HONOURED,
        frozenset({BASIC_AUTH}),
        "basic: 401 with WWW-Authenticate without a user's password (after the source "
        "ranges' 403); digest is refused (the Ingress is rejected)",
    ),
    "auth-secret": (
        Support.PARTIAL,
        frozenset({BASIC_AUTH}),
        "only bcrypt and md5-crypt hashes, the ones every backend checks (another hash, a "
        "user named twice or a missing Secret: the paths answer 503, as ingress-nginx answers "
        "for a Secret it cannot use; a Secret of another namespace rejects the Ingress)",
    ),
    "auth-secret-type": (
        Support.HONOURED,
        frozenset({BASIC_AUTH}),
        "auth-file (default: the key auth, htpasswd lines) or auth-map (user: hash)",
    ),
    "auth-realm": (
        Support.PARTIAL,
        frozenset({BASIC_AUTH}),
        'the 401\'s WWW-Authenticate: Basic realm="<realm>", and without the annotation '
        'realm="" (ingress-nginx\'s auth_basic ""); Traefik\'s basicAuth puts its '
        'default realm, "traefik", in place of an empty one',
    ),
    "whitelist-source-range": (
        Support.HONOURED,
        frozenset({SOURCE_RANGES}),
        "others get 403 (the connection's address); allowlist-source-range wins when both are "
        "set (as in ingress-nginx)",
    ),
    "allowlist-source-range": (
        Support.HONOURED,
        frozenset({SOURCE_RANGES}),
        "others get 403 (the connection's address)",
    ),
    "denylist-source-range": (
        Support.HONOURED,
        frozenset({SOURCE_RANGES}),
        "403 (the connection's address); checked before the allowlist (as in ingress-nginx)",
    ),
    "limit-rps": (
        Support.PARTIAL,
        frozenset({RATE_LIMIT}),
        "per client address over the Ingress's paths, 503 above it; nginx and Traefik: a "
        "bucket of limit x burst-multiplier requests refilled at the limit (Traefik answers "
        "429); HAProxy: at most limit x burst-multiplier requests in any second",
    ),
    "limit-rpm": (
        Support.PARTIAL,
        frozenset({RATE_LIMIT}),
        "as limit-rps, per minute (HAProxy: at most limit x burst-multiplier requests in any "
        "minute)",
    ),
    "limit-connections": (
        Support.PARTIAL,
        frozenset({RATE_LIMIT}),
        "concurrent requests per client address over the Ingress's paths, 503 above it "
        "(Traefik answers 429)",
    ),
    "limit-burst-multiplier": (
        Support.HONOURED,
        frozenset({RATE_LIMIT}),
        "no effect without limit-rps or limit-rpm (as in ingress-nginx)",
    ),
    **{k: (Support.HONOURED, frozenset({_CORS}), "") for k in _CORS_KEYS},
    **{k: (Support.HONOURED, frozenset({_CORE, SESSION_AFFINITY}), "") for k in _SESSION_KEYS},
    "affinity-mode": (
        Support.PARTIAL,
        frozenset({_CORE, SESSION_AFFINITY}),
        "nginx and HAProxy move about 1/n of the sessions when an endpoint is added "
        "(balanced) and Traefik none (persistent), whatever the mode",
    ),
    "session-cookie-expires": (
        Support.PARTIAL,
        frozenset({_CORE, SESSION_AFFINITY}),
        "sent as Max-Age (the same lifetime) when session-cookie-max-age is not set, not as "
        "an Expires date",
    ),
    "session-cookie-conditional-samesite-none": (
        Support.PARTIAL,
        frozenset({_CORE, SESSION_AFFINITY}),
        "SameSite=None is sent to every browser (ingress-nginx leaves it out for browsers "
        "known to mishandle it)",
    ),
    "session-cookie-change-on-failure": (
        Support.PARTIAL,
        frozenset({_CORE, SESSION_AFFINITY}),
        "whatever the value, Traefik gives a new cookie when the cookie's endpoint is gone; "
        "nginx and HAProxy keep the cookie (its key then picks another endpoint)",
    ),
}
# Unsupported annotations whose absence would open access or send requests elsewhere: the
# Ingress is rejected (fail closed) instead of served without them.
_REJECT_WHEN_UNSUPPORTED = frozenset(
    {*_ACCESS_KEYS, "auth-type", *_AUTH_KEYS, "backend-protocol", "use-regex", "rewrite-target"}
)


def _missing_registry() -> None:
    missing = set(REGISTRY) ^ set(ANNOTATION_SUPPORT)
    if missing:
        raise AssertionError(f"annotations without a stated support: {sorted(missing)}")


_missing_registry()


def translate_annotations(
    ref: ObjectRef,
    ann: Annotations,
    rules: Sequence[PathRule],
    *,
    prefix: str = DEFAULT_PREFIX,
    http_port: int = 80,
    https_port: int = 443,
) -> IngressPolicy:
    """The policy of one Ingress from its parsed annotations (pure)."""
    verdicts: list[Verdict] = []
    values = ann.values

    def verdict(
        name: str,
        support: Support | None = None,
        note: str | None = None,
        features: Iterable[str] | None = None,
    ) -> None:
        base_support, base_features, base_note = ANNOTATION_SUPPORT[name]
        chosen = support or base_support
        severity = Severity.WARNING
        if chosen is Support.UNSUPPORTED and name in _REJECT_WHEN_UNSUPPORTED:
            severity = Severity.ERROR
        verdicts.append(
            Verdict(
                name=name,
                key=ann.key(name, prefix),
                support=chosen,
                note=base_note if note is None else note,
                features=frozenset(base_features if features is None else features),
                severity=severity,
            )
        )

    is_canary = bool(values.get("canary"))
    policy: dict[str, object] = {}

    # -- canary ---------------------------------------------------------------------------
    if "canary" in values:
        verdict("canary", note="" if not is_canary else None)
    canary_set = [k for k in CANARY_KEYS if k in values]
    if canary_set and not is_canary:
        for k in canary_set:
            verdict(
                k,
                Support.UNSUPPORTED,
                'configured but the Ingress is not a canary (canary: "true"), as '
                "ingress-nginx refuses it",
                (),
            )
            verdicts[-1] = replace(verdicts[-1], severity=Severity.ERROR)
    elif is_canary:
        weight = values.get("canary-weight", 0)
        total = values.get("canary-weight-total", 100)
        header = values.get("canary-by-header")
        hvalue = values.get("canary-by-header-value")
        bad_weight = weight > total
        for k in canary_set:
            if k == "canary-weight" and bad_weight:
                verdict(
                    k,
                    Support.UNSUPPORTED,
                    f"canary-weight {weight} is more than canary-weight-total {total}",
                    (),
                )
                verdicts[-1] = replace(verdicts[-1], severity=Severity.ERROR)
            elif k == "canary-weight" and weight == 0:
                verdict(k, note="weight 0: the canary gets no request by weight", features=())
            elif k == "canary-by-header-value" and header is None:
                verdict(
                    k, note="no effect without canary-by-header (as in ingress-nginx)", features=()
                )
            elif k == "canary-by-header-pattern" and hvalue is not None:
                verdict(
                    k,
                    Support.HONOURED,
                    "no effect: canary-by-header-value is set (as in ingress-nginx)",
                    (),
                )
            elif k == "canary-by-header-pattern" and header is None:
                verdict(
                    k, note="no effect without canary-by-header (as in ingress-nginx)", features=()
                )
            else:
                verdict(k)
        policy["canary"] = Canary(
            weight=0 if bad_weight else weight,
            total=total,
            header=header,
            value=hvalue if header is not None else None,
            cookie=values.get("canary-by-cookie"),
            pattern=(
                values.get("canary-by-header-pattern")
                if header is not None and hvalue is None
                else None
            ),
        )

    def inherited(name: str) -> bool:
        if is_canary and name not in _CANARY_OWN and name in values:
            verdict(
                name,
                Support.HONOURED,
                "ignored on a canary Ingress: the main Ingress's applies (as in ingress-nginx)",
                (),
            )
            return True
        return False

    # -- redirects --------------------------------------------------------------------------
    for name in ("temporal-redirect", "permanent-redirect"):
        if name not in values or inherited(name):
            continue
        url: RedirectURL = values[name]
        if name == "permanent-redirect" and "temporal-redirect" in values:
            verdict(
                name,
                Support.HONOURED,
                "no effect: temporal-redirect takes precedence (as in ingress-nginx)",
                (),
            )
            continue
        default = 302 if name == "temporal-redirect" else 301
        code = values.get(f"{name}-code", default)
        if name == "temporal-redirect" and code > 307:
            code = 302  # ingress-nginx: a temporal code outside 300-307 is 302
        if url.query:
            verdict(
                name,
                Support.UNSUPPORTED,
                f"a query string in the URL ({url}) is not in the route model",
                (),
            )
            verdicts[-1] = replace(verdicts[-1], severity=Severity.ERROR)
            continue
        if code not in (301, 302, 303, 307, 308):
            verdict(
                name,
                Support.UNSUPPORTED,
                f"status {code} is not a redirect the route model has (301, 302, 303, 307, 308)",
                (),
            )
            verdicts[-1] = replace(verdicts[-1], severity=Severity.ERROR)
            continue
        features = set(ANNOTATION_SUPPORT[name][1])
        if code in _CODE_FEATURES:
            features.add(_CODE_FEATURES[code])
        port = url.port if url.port is not None else _WELL_KNOWN[url.scheme]
        if port != _WELL_KNOWN[url.scheme]:
            features.add(_PORT_REDIRECT)
        verdict(name, features=features)
        policy["redirect"] = Redirect(
            status=code,
            scheme=url.scheme,
            hostname=url.host,
            port=port,
            path=PathModifier(type=PathModifierType.FULL, value=url.path or "/"),
        )
    for name in ("permanent-redirect-code", "temporal-redirect-code"):
        if name in values and not inherited(name):
            of = name.removesuffix("-code")
            if of not in values:
                verdict(name, note=f"no effect without {of} (as in ingress-nginx)")
            elif name == "temporal-redirect-code" and values[name] > 307:
                verdict(
                    name,
                    note="ingress-nginx answers 302 for a temporal code above 307; "
                    "so does polyingress",
                )
            else:
                verdict(name, note="")

    # -- rewrites ---------------------------------------------------------------------------
    regex = bool(values.get("use-regex"))
    if "use-regex" in values and not inherited("use-regex"):
        if regex:
            verdict("use-regex")
        else:
            verdict("use-regex", Support.HONOURED, "")
    target = values.get("rewrite-target")
    if target and not inherited("rewrite-target"):
        forms = {r.regex.form for r in rules if r.regex is not None}
        why = None
        if "$" in target:
            if not regex:
                why = f"rewrite-target {target!r} refers to capture groups without use-regex"
            elif any(r.regex is None for r in rules):
                why = (
                    f"rewrite-target {target!r} refers to capture groups of paths that are "
                    "not regular expressions (pathType ImplementationSpecific)"
                )
            else:
                why = _capture_target(target, forms)
        if why is not None:
            verdict("rewrite-target", Support.UNSUPPORTED, why, ())
        else:
            verdict("rewrite-target")
            policy["rewrite_target"] = target
    if "x-forwarded-prefix" in values and not inherited("x-forwarded-prefix"):
        if "rewrite_target" in policy:
            verdict("x-forwarded-prefix")
            policy["forwarded_prefix"] = values["x-forwarded-prefix"]
        else:
            verdict(
                "x-forwarded-prefix",
                note="no effect without rewrite-target (as in ingress-nginx)",
                features=(),
            )
    if "upstream-vhost" in values and not inherited("upstream-vhost"):
        verdict("upstream-vhost")
        policy["host_rewrite"] = values["upstream-vhost"]
    if "app-root" in values and not inherited("app-root"):
        verdict("app-root")
        policy["app_root"] = values["app-root"]

    # -- HTTPS ------------------------------------------------------------------------------
    if "ssl-redirect" in values and not inherited("ssl-redirect"):
        if values["ssl-redirect"]:
            verdict("ssl-redirect")
        else:
            verdict("ssl-redirect", Support.HONOURED, "")
    if "force-ssl-redirect" in values and not inherited("force-ssl-redirect"):
        if values["force-ssl-redirect"]:
            features = set(ANNOTATION_SUPPORT["force-ssl-redirect"][1])
            if https_port != 443:
                features.add(_PORT_REDIRECT)
            if "redirect" in policy:
                verdict(
                    "force-ssl-redirect",
                    Support.HONOURED,
                    "no effect: the Ingress answers its redirect annotation first "
                    "(as in ingress-nginx)",
                    (),
                )
            else:
                verdict("force-ssl-redirect", features=features)
                policy["force_ssl"] = True
        else:
            verdict("force-ssl-redirect", Support.HONOURED, "")

    # -- hosts, timeouts --------------------------------------------------------------------
    if "server-alias" in values:
        if is_canary:
            inherited("server-alias")
        else:
            verdict("server-alias")
            policy["aliases"] = values["server-alias"]
    if "proxy-read-timeout" in values and not inherited("proxy-read-timeout"):
        verdict("proxy-read-timeout")
        policy["timeout"] = float(values["proxy-read-timeout"])
    if "proxy-connect-timeout" in values and not inherited("proxy-connect-timeout"):
        verdict("proxy-connect-timeout")
        policy["connect_timeout"] = float(values["proxy-connect-timeout"])
    if "proxy-send-timeout" in values and not inherited("proxy-send-timeout"):
        verdict("proxy-send-timeout")
        policy["send_timeout"] = float(values["proxy-send-timeout"])

    # -- not in the route model --------------------------------------------------------------
    if "custom-headers" in values and not inherited("custom-headers"):
        ns, cm = values["custom-headers"]
        if ns is not None and ns != ref.namespace:
            verdict(
                "custom-headers",
                Support.UNSUPPORTED,
                f"the ConfigMap {ns}/{cm} is not in the Ingress's namespace {ref.namespace} "
                "(ingress-nginx: only ConfigMaps of the same namespace are allowed)",
                (),
            )
            verdicts[-1] = replace(verdicts[-1], severity=Severity.ERROR)
        else:
            verdict("custom-headers")
            policy["custom_headers"] = (ref.namespace, cm)
    if "backend-protocol" in values and not inherited("backend-protocol"):
        _backend_protocol(values["backend-protocol"], verdict, policy)
    sources = _source_ranges(values, verdict, inherited)
    max_body: int | None = None
    if "proxy-body-size" in values and not inherited("proxy-body-size"):
        verdict("proxy-body-size")
        max_body = values["proxy-body-size"]
    if sources is not None or max_body is not None:
        policy["policy"] = RoutePolicy(sources=sources, max_body=max_body)
    # -- session affinity ------------------------------------------------------------------
    affinity_keys = [k for k in ("affinity", *_SESSION_KEYS) if k in values]
    if affinity_keys and is_canary:
        for k in affinity_keys:
            verdict(
                k,
                Support.UNSUPPORTED,
                "a canary's own session affinity is not served: its rows take the main Ingress's",
                (),
            )
    elif values.get("affinity") == "cookie":
        for k in affinity_keys:
            verdict(k)
        expires = values.get("session-cookie-expires")
        max_age = values.get("session-cookie-max-age")
        policy["affinity"] = SessionAffinity(
            name=values.get("session-cookie-name", "INGRESSCOOKIE"),
            mode=values.get("affinity-mode", "balanced"),
            path=values.get("session-cookie-path"),
            domain=values.get("session-cookie-domain"),
            samesite=values.get("session-cookie-samesite"),
            conditional_samesite_none=bool(values.get("session-cookie-conditional-samesite-none")),
            expires=expires,
            max_age=max_age if max_age is not None else expires,
            secure=values.get("session-cookie-secure"),
            change_on_failure=bool(values.get("session-cookie-change-on-failure")),
        )
    else:
        for k in affinity_keys:
            verdict(k, Support.HONOURED, "no effect without affinity (as in ingress-nginx)", ())
    for switch, keys in (("enable-cors", _CORS_KEYS),):
        on = bool(values.get(switch))
        if switch in values and not inherited(switch):
            if on:
                verdict(switch)
            else:
                verdict(switch, Support.HONOURED, "")
        for k in keys:
            if k in values and not (k not in _CANARY_OWN and inherited(k)):
                if on:
                    verdict(k)
                else:
                    verdict(
                        k, Support.HONOURED, f"no effect without {switch} (as in ingress-nginx)", ()
                    )
        if switch == "enable-cors" and on and not is_canary:  # a canary's is the main's
            policy["cors"] = _cors_of(values)
    rate = _rate_limit(ref, values, verdict, inherited)
    if rate is not None:
        base = policy.get("policy")
        assert base is None or isinstance(base, RoutePolicy)
        policy["policy"] = replace(base or RoutePolicy(), rate=rate)
    auth = _auth_ref(ref, values, ann, prefix, verdict, inherited)
    if auth is not None:
        policy["auth_ref"] = auth

    verdicts.sort(key=lambda v: v.name)
    return IngressPolicy(
        ref=ref,
        verdicts=tuple(verdicts),
        http_port=http_port,
        https_port=https_port,
        **policy,  # type: ignore[arg-type]
    )


# backend-protocol value -> (the model's protocol, support, the features it needs, note).
_PROTOCOLS: dict[str, tuple[BackendProtocol, Support, frozenset[str], str]] = {
    "HTTP": (BackendProtocol.HTTP, Support.HONOURED, frozenset(), ""),
    "HTTPS": (
        BackendProtocol.HTTPS,
        Support.HONOURED,
        frozenset({_CORE, BACKEND_TLS}),
        "HTTP/1.1 over TLS; the endpoint's certificate is not verified (as in ingress-nginx)",
    ),
    "H2C": (
        BackendProtocol.H2C,
        Support.HONOURED,
        frozenset({_H2C}),
        "HTTP/2 in clear text with prior knowledge",
    ),
    "GRPC": (
        BackendProtocol.GRPC,
        Support.PARTIAL,
        frozenset({_H2C}),
        "gRPC is proxied as HTTP/2 in clear text; an error of the proxy's own (503, 504) is an "
        "HTTP status, not a grpc-status trailer as ingress-nginx's grpc_pass answers",
    ),
    "GRPCS": (
        BackendProtocol.GRPCS,
        Support.PARTIAL,
        frozenset({_H2C, BACKEND_TLS}),
        "gRPC is proxied as HTTP/2 over TLS (ALPN h2, the certificate not verified); an error "
        "of the proxy's own is an HTTP status, not a grpc-status trailer",
    ),
}


def _backend_protocol(value: str, verdict: Callable[..., None], policy: dict[str, object]) -> None:
    """backend-protocol: how the proxy talks to the Ingress's backends."""
    found = _PROTOCOLS.get(value)
    if found is None:
        verdict(
            "backend-protocol",
            Support.UNSUPPORTED,
            f"{value}: AUTO_HTTP and FCGI backends are not served",
            (),
        )
        return
    protocol, support, features, note = found
    verdict("backend-protocol", support, note, features)
    if protocol is not BackendProtocol.HTTP:
        policy["protocol"] = protocol


def _cors_of(values: Mapping[str, Any]) -> Cors:
    """enable-cors and the cors-* keys (ingress-nginx's defaults for those not given) as the
    route model's CORS filter."""
    got = {k: values.get(k, default) for k, default in _CORS_DEFAULTS.items()}
    origins: list[str] = []
    for origin in got["cors-allow-origin"]:
        scheme, sep, rest = str(origin).partition("://")
        if origin == "*":
            origins = ["*"]
            break
        if sep and scheme.lower() in ("http", "https"):
            origins.append(f"{scheme.lower()}://{rest.lower()}")

    def wildcard(items: tuple[str, ...]) -> tuple[str, ...]:
        return ("*",) if "*" in items else tuple(dict.fromkeys(items))

    return Cors(
        allow_origins=tuple(dict.fromkeys(origins)),
        allow_methods=tuple(dict.fromkeys(m.upper() for m in got["cors-allow-methods"])),
        allow_headers=wildcard(got["cors-allow-headers"]),
        expose_headers=wildcard(got["cors-expose-headers"]),
        allow_credentials=bool(got["cors-allow-credentials"]),
        max_age=int(got["cors-max-age"]),
    )


# ingress-nginx's custom-headers rules (internal/ingress/annotations/customheaders): a name of
# letters, digits, '-' and '_'; a value of printable ASCII (its list is every printable
# character), at most VALUE_MAX long here.
_CUSTOM_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}")
_CUSTOM_VALUE = re.compile(r"[\x20-\x7e]{1,1024}")


def custom_headers_filter(
    policy: IngressPolicy,
    configmap: Mapping[str, Any] | None,
    allowed: Sequence[str],
    key_field: str,
) -> tuple[HeaderFilter | None, Problem | None]:
    """The response headers of a custom-headers ConfigMap (``data``: name -> value, each set,
    replacing what the backend sent: more_set_headers), or why it cannot be used: missing, a
    name or value ingress-nginx refuses, or a name not in ``allowed`` (the ConfigMap key
    global-allowed-response-headers, compared as written, as ingress-nginx does)."""
    assert policy.custom_headers is not None
    ns, name = policy.custom_headers

    def denied(why: str) -> tuple[None, Problem]:
        return None, Problem(
            ref=policy.ref,
            field=key_field,
            message=f"{why}; the Ingress's paths answer 503 (as in ingress-nginx)",
            severity=Severity.ERROR,
            reason=DENIED,
        )

    if configmap is None:
        return denied(f"ConfigMap {ns}/{name} not found")
    data = configmap.get("data") or {}
    if not isinstance(data, Mapping) or not data:
        return denied(f"ConfigMap {ns}/{name} has no data")
    headers: list[tuple[str, str]] = []
    for header in sorted(data, key=str):
        value = data[header]
        if not isinstance(header, str) or not _CUSTOM_NAME.fullmatch(header):
            return denied(f"ConfigMap {ns}/{name}: {str(header)[:60]!r} is not a header name")
        if not isinstance(value, str) or not _CUSTOM_VALUE.fullmatch(value):
            return denied(f"ConfigMap {ns}/{name}: the value of {header} is not printable text")
        if header not in allowed:
            return denied(
                f"ConfigMap {ns}/{name}: header {header} is not allowed: list it in the "
                "ConfigMap key global-allowed-response-headers"
            )
        headers.append((header.lower(), value))
    return HeaderFilter(set=tuple(headers)), None


DENIED = "AnnotationDenied"
"""The reason of a problem whose Ingress is served with its paths answering 503."""


def _rate_limit(
    ref: ObjectRef,
    values: Mapping[str, Any],
    verdict: Callable[..., None],
    inherited: Callable[[str], bool],
) -> RateLimit | None:
    """ingress-nginx's ``ratelimit`` parser: the limits of the Ingress, one zone per Ingress."""
    found = {k: values[k] for k in _LIMIT_KEYS if k in values and not inherited(k)}
    if not found:
        return None
    for k in found:
        if k == "limit-burst-multiplier" and "limit-rps" not in found and "limit-rpm" not in found:
            verdict(k, Support.HONOURED, "no effect without limit-rps or limit-rpm", ())
        else:
            verdict(k)
    if not {"limit-rps", "limit-rpm", "limit-connections"} & set(found):
        return None
    return RateLimit(
        zone=f"{ref.namespace}/{ref.name}",
        rps=found.get("limit-rps"),
        rpm=found.get("limit-rpm"),
        connections=found.get("limit-connections"),
        burst_multiplier=found.get("limit-burst-multiplier", 5),
    )


@dataclass(frozen=True, slots=True)
class AuthRef:
    """The Secret an Ingress's basic authentication reads (resolved by the builder into the
    rows' :class:`BasicAuth`): its namespace and name, whether it is an ``auth-map``, the
    realm, and the annotation key that names it (for problems)."""

    namespace: str
    name: str
    auth_map: bool
    realm: str
    key: str


def _auth_ref(
    ref: ObjectRef,
    values: Mapping[str, Any],
    ann: Annotations,
    prefix: str,
    verdict: Callable[..., None],
    inherited: Callable[[str], bool],
) -> AuthRef | None:
    """ingress-nginx's ``auth`` parser: ``auth-type`` basic (digest refused) with the Secret
    ``auth-secret`` of the Ingress's namespace (ingress-nginx refuses other namespaces by
    default), ``auth-secret-type`` and ``auth-realm`` (default empty)."""
    kind = values.get("auth-type")
    if kind is None or inherited("auth-type"):
        for k in _AUTH_KEYS:
            if k in values and not inherited(k):
                verdict(
                    k, Support.HONOURED, "no effect without auth-type (as in ingress-nginx)", ()
                )
        return None
    if kind == "digest":
        verdict("auth-type", Support.UNSUPPORTED, "digest authentication is not served", ())
        return None
    secret = values.get("auth-secret")
    if secret is None:
        verdict(
            "auth-type",
            Support.UNSUPPORTED,
            "basic without auth-secret: no user can be checked",
            (),
        )
        return None
    namespace, name = secret
    if namespace is not None and namespace != ref.namespace:
        verdict(
            "auth-secret",
            Support.UNSUPPORTED,
            "a Secret of another namespace (ingress-nginx refuses it by default)",
            (),
        )
        return None
    for k in ("auth-type", *_AUTH_KEYS):
        if k in values:
            verdict(k)
    return AuthRef(
        namespace=ref.namespace,
        name=name,
        auth_map=values.get("auth-secret-type") == "auth-map",
        realm=values.get("auth-realm", ""),
        key=ann.key("auth-secret", prefix),
    )


def _cidr_order(cidr: str) -> tuple[int, int, int]:
    net = ipaddress.ip_network(cidr)
    return (net.version, int(net.network_address), net.prefixlen)


def _source_ranges(
    values: Mapping[str, Any],
    verdict: Callable[..., None],
    inherited: Callable[[str], bool],
) -> SourceRanges | None:
    """ingress-nginx's ``ipallowlist`` (``allowlist-source-range``, its alias
    ``whitelist-source-range`` when it is not set) and ``ipdenylist`` parsers."""
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    for name in _ACCESS_KEYS:
        if name not in values or inherited(name):
            continue
        if name == "whitelist-source-range" and "allowlist-source-range" in values:
            verdict(
                name,
                Support.HONOURED,
                "no effect: allowlist-source-range is set (as in ingress-nginx)",
                (),
            )
            continue
        verdict(name)
        cidrs = tuple(sorted(set(values[name]), key=_cidr_order))
        if name == "denylist-source-range":
            deny = cidrs
        else:
            allow = cidrs
    if not allow and not deny:
        return None
    return SourceRanges(allow=allow, deny=deny)


def resolve_auth(
    policy: IngressPolicy, secret: Mapping[str, Any] | None
) -> tuple[IngressPolicy, list[Problem]]:
    """The policy with its basic authentication's users read from ``secret`` (the Secret
    ``policy.auth_ref`` names, None when missing): the rows check them; a Secret that gives no
    users makes the paths answer 503, as ingress-nginx answers, with an error naming it."""
    ref = policy.auth_ref
    if ref is None:
        return policy, []
    where = f"Secret {ref.namespace}/{ref.name}"
    try:
        if secret is None:
            raise SecretUsersError("not found")
        users = users_of_secret(secret, auth_map=ref.auth_map)
        auth = BasicAuth(realm=ref.realm, users=users, secret=f"{ref.namespace}/{ref.name}")
    except (SecretUsersError, ValueError) as exc:
        problem = Problem(
            ref=policy.ref,
            field=f"metadata.annotations[{ref.key!r}]",
            message=f"{where} {exc}; the paths answer 503",
            severity=Severity.ERROR,
            reason="InvalidAuthSecret",
        )
        return replace(policy, auth_failure=str(exc)), [problem]
    base = policy.policy or RoutePolicy()
    return replace(policy, policy=replace(base, auth=auth)), []


def uses_regex(obj: Mapping[str, Any], prefix: str) -> bool:
    """Whether an Ingress sets use-regex (our prefix first, then ingress-nginx's; a value that
    is not a boolean is reported by the annotation parser and counts as false here)."""
    ann = (obj.get("metadata") or {}).get("annotations")
    if not isinstance(ann, Mapping):
        return False
    for ns in (prefix, NGINX_PREFIX):
        value = ann.get(f"{ns}/use-regex")
        if isinstance(value, str):
            try:
                return parse_bool(value)
            except ValueError:
                return False
    return False


def policy_of(
    obj: Mapping[str, Any],
    *,
    prefix: str = DEFAULT_PREFIX,
    http_port: int = 80,
    https_port: int = 443,
) -> tuple[IngressPolicy | None, list[Problem]]:
    """One Ingress object's policy and the problems of its fields and annotations (None when
    the object itself is invalid), as the builder judges it, whatever its class."""
    parsed, problems = parse_ingress(obj, regex=uses_regex(obj, prefix))
    if parsed is None:
        return None, problems
    meta = obj.get("metadata") or {}
    ann, found = parse_annotations(parsed.ref, meta.get("annotations"), prefix=prefix)
    policy = translate_annotations(
        parsed.ref, ann, parsed.rules, prefix=prefix, http_port=http_port, https_port=https_port
    )
    return policy, [*found, *policy.problems()]


# --- what a backend serves -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gate:
    """A policy held against a backend's features: ``missing`` the features each served
    annotation needs and the backend lacks; ``core`` whether the backend serves Gateway API
    rows at all (without, an Ingress needing any is rejected instead of answering 500)."""

    missing: Mapping[str, frozenset[str]] = field(default_factory=dict)
    core: bool = True
    # Optional features (OPTIONAL_FEATURES) the backend lacks, per key: served without them.
    optional: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.missing


def gate(policy: IngressPolicy, features: frozenset[str] | None) -> Gate:
    if features is None:
        return Gate()
    missing: dict[str, frozenset[str]] = {}
    optional: dict[str, frozenset[str]] = {}
    for v in policy.verdicts:
        lacking = v.features - features if v.support is not Support.UNSUPPORTED else frozenset()
        if lacking and lacking <= OPTIONAL_FEATURES:
            optional[v.key] = frozenset(lacking)
        elif lacking:
            missing[v.key] = frozenset(lacking)
    return Gate(missing=missing, core=_CORE in features, optional=optional)


def served_policy(policy: IngressPolicy, g: Gate) -> IngressPolicy:
    """The policy as a backend lacking the optional features ``g`` names serves it."""
    lacking = frozenset().union(*g.optional.values()) if g.optional else frozenset()
    if CONNECT_TIMEOUT in lacking:
        policy = replace(policy, connect_timeout=None)
    if SESSION_AFFINITY in lacking:
        policy = replace(policy, affinity=None)
    if SEND_TIMEOUT in lacking:
        policy = replace(policy, send_timeout=None)
    return policy


def gate_problems(policy: IngressPolicy, g: Gate, backend: str) -> list[Problem]:
    """What the Ingress loses on this backend: its rows answer 500 (UnsupportedValue), or it is
    rejected when the backend serves no Gateway API rows (or it is a canary)."""
    out = [
        Problem(
            ref=policy.ref,
            field=f"metadata.annotations[{key!r}]",
            message=f"needs {', '.join(sorted(features))}, not served by the "
            f"{backend or 'selected'} backend; ignored (the ConfigMap's setting applies)",
            severity=Severity.WARNING,
            reason="UnsupportedAnnotation",
        )
        for key, features in sorted(g.optional.items())
    ]
    reject = not g.core or policy.canary is not None
    for key, features in sorted(g.missing.items()):
        names = ", ".join(sorted(features))
        what = "the Ingress is rejected" if reject else "its paths answer 500"
        out.append(
            Problem(
                ref=policy.ref,
                field=f"metadata.annotations[{key!r}]",
                message=f"needs {names}, not served by the {backend or 'selected'} backend; {what}",
                severity=Severity.ERROR,
                reason="UnsupportedAnnotation" if reject else "UnsupportedValue",
            )
        )
    return out


def error_rows(rule: PathRule, ref: ObjectRef, status: int = 500) -> list[Route]:
    """The row of a rule whose annotations its backend cannot serve (500), or that
    ingress-nginx denies (503)."""
    return [
        Route(path=rule.path, path_type=rule.path_type, backend=None, source=ref, status=status)
    ]


def app_root_rows(policy: IngressPolicy, status: int | None = None) -> list[Route]:
    """ingress-nginx's app-root (``if ($uri = /) { return 302 $scheme://$http_host<root>; }``):
    an Exact / row per scheme, redirecting to the root on the port the request came in on."""
    assert policy.app_root is not None
    path = PathModifier(type=PathModifierType.FULL, value=policy.app_root)
    rows = []
    for scheme, port in (("http", policy.http_port), ("https", policy.https_port)):
        rows.append(
            Route(
                path="/",
                path_type=PathType.EXACT,
                backend=None,
                source=policy.ref,
                schemes=(scheme,),
                status=status,
                redirect=None if status is not None else Redirect(status=302, path=path, port=port),
            )
        )
    return rows


# --- canaries ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CanaryUse:
    """One canary Ingress's rule attached to a main row: its backend and rules."""

    ref: ObjectRef
    order: tuple[str, str, str]
    canary: Canary
    backend: str


def _shares(
    canaries: Sequence[CanaryUse],
) -> tuple[dict[int, Fraction], list[tuple[CanaryUse, str]]]:
    """Each canary's share of the requests by weight (index -> fraction), oldest first; a
    canary whose weight would take the sum above all requests, or whose share cannot be
    stated in weights up to 1,000,000 beside the others, is left out (with why)."""
    shares: dict[int, Fraction] = {}
    dropped: list[tuple[CanaryUse, str]] = []
    for i, use in enumerate(canaries):
        if use.canary.weight <= 0:
            continue
        share = Fraction(use.canary.weight, use.canary.total)
        trial = {**shares, i: share}
        if sum(trial.values()) > 1:
            dropped.append(
                (use, "the canary weights of this path add up to more than all requests")
            )
            continue
        if math.lcm(*(f.denominator for f in trial.values())) > MAX_WEIGHT_TOTAL:
            dropped.append((use, "the canary weights of this path cannot be combined exactly"))
            continue
        shares[i] = share
    return shares, dropped


def _split(
    main: str, canaries: Sequence[CanaryUse], shares: Mapping[int, Fraction]
) -> tuple[str | None, tuple[WeightedBackend, ...]]:
    """(backend, ()) for one destination, (None, split) for several."""
    live = {i: s for i, s in shares.items() if s > 0}
    rest = 1 - sum(live.values(), Fraction(0))
    parts = [(main, rest)] if rest > 0 else []
    parts += [(canaries[i].backend, s) for i, s in sorted(live.items())]
    if len(parts) == 1:
        return parts[0][0], ()
    denominator = math.lcm(*(s.denominator for _b, s in parts))
    return None, tuple(WeightedBackend(backend=b, weight=int(s * denominator)) for b, s in parts)


def with_canaries(
    rows: Sequence[Route], canaries: Sequence[CanaryUse]
) -> tuple[list[Route], list[tuple[CanaryUse, str]]]:
    """A main rule's rows with its canaries attached (oldest canary first), ingress-nginx's
    order of precedence: ``canary-by-header`` (``always``, or the value) sends a request to
    that canary and ``never`` keeps it from that canary; then ``canary-by-cookie`` likewise
    (``always``/``never``); then the weights split what is left.
    With several canaries, their header rows come in age order (every ``always``/value row
    before any ``never`` row) and the weights add up. Rows that do not proxy (a redirect, a
    500) take no canary. Returns the rows and the canaries whose weight was left out."""
    shares, dropped = _shares(canaries)
    out: list[Route] = []
    for row in rows:
        if row.backend is None or row.redirect is not None or row.status is not None:
            out.append(row)
            continue
        main = row.backend
        backend, split = _split(main, canaries, shares)
        out.append(replace(row, backend=backend, split=split))
        for i, use in enumerate(canaries):
            c = use.canary
            created, ns, name = use.order
            matches: list[tuple[str, str, HeaderMatch | CookieMatch]] = []
            if c.header is not None and c.pattern is not None:
                # No always/never with a pattern: a value it is not found in goes on to the
                # cookie and the weights (ingress-nginx's balancer).
                matches.append(("0", "", HeaderMatch(name=c.header, value=c.pattern, regex=True)))
            elif c.header is not None:
                values = (("0", c.value),) if c.value is not None else _ALWAYS_NEVER
                matches += [(r, v, HeaderMatch(name=c.header, value=v)) for r, v in values]
            if c.cookie is not None:
                # After every header row (Route.sort_key: more headers first), as
                # ingress-nginx's precedence header -> cookie -> weight says.
                matches += [(r, v, CookieMatch(name=c.cookie, value=v)) for r, v in _ALWAYS_NEVER]
            for rank, value, match in matches:
                if value == "never":
                    others = {j: s for j, s in shares.items() if j != i}
                    b, sp = _split(main, canaries, others)
                    target = replace(row, backend=b, split=sp)
                else:
                    target = replace(row, backend=use.backend, split=(), source=use.ref)
                condition: dict[str, Any] = (
                    {"headers": (match,)}
                    if isinstance(match, HeaderMatch)
                    else {"cookies": (match,)}
                )
                out.append(replace(target, order=(rank + created, ns, name, i, 0), **condition))
    return out, dropped


_ALWAYS_NEVER = (("0", "always"), ("1", "never"))
