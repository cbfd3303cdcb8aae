"""Request policies of a route row: what a proxied request must satisfy before it is proxied.

The Gateway API has no vocabulary for these; ingress-nginx's annotations do
(``whitelist-source-range``/``allowlist-source-range``, ``denylist-source-range``, ...), and
:mod:`polyingress.core.pipeline.translate.annotations` translates them onto a
:class:`RoutePolicy` of the rows of the Ingress. :meth:`RouteModel.answer
<polyingress.core.pipeline.model.RouteModel.answer>` states what a request gets: a policy is
checked only on a row that proxies (a redirect or a 500 row answers first, as nginx's
``return`` in the rewrite phase does before its access phase), and before the backend is
chosen (a denied request gets 403 even when the backend has no ready endpoint, as ingress-nginx
answers with its Lua balancer).

A backend serves a policy only when it declares its feature (``polyingress.io/<Name>`` in
``BackendInfo.gateway_features`` beside the Gateway API names, as the annotations' other parts
of the route model: translate/annotations.py ANNOTATION_FEATURES); without it the core answers
the rows 500 and reports the annotation, so that a missing access rule never opens access.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

__all__ = [
    "BASIC_AUTH",
    "BODY_SIZE",
    "HASH_FORMATS",
    "RATE_LIMIT",
    "SOURCE_RANGES",
    "BasicAuth",
    "RateLimit",
    "RoutePolicy",
    "SourceRanges",
    "admitted_networks",
]

# The features a backend declares (BackendInfo.gateway_features) to serve a policy. They are
# polyingress's, not the Gateway API's ("/" in the name): the GatewayClass status and the
# conformance report leave them out. None is optional: without it the rows answer 500.
SOURCE_RANGES = "polyingress.io/SourceRanges"
BODY_SIZE = "polyingress.io/BodySize"
BASIC_AUTH = "polyingress.io/BasicAuth"
RATE_LIMIT = "polyingress.io/RateLimit"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(items: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(i, strict=True) for i in items)


@dataclass(frozen=True, kw_only=True)
class SourceRanges:
    """Which client addresses may be proxied (ingress-nginx's ``deny <cidr>;`` lines, then
    ``allow <cidr>;`` lines and ``deny all;``): an address in ``deny`` is refused; with an
    ``allow`` list, an address outside it is refused too; everyone else passes. Refused: 403.

    ``allow`` and ``deny`` are normalized CIDRs (``10.0.0.0/8``, ``2001:db8::/32``; an address
    is a /32 or /128), IPv4 and IPv6 mixed, sorted, without repeats. The client address is the
    connection's peer (ingress-nginx's default, without ``use-forwarded-headers``)."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for cidr in (*self.allow, *self.deny):
            net = ipaddress.ip_network(cidr, strict=False)
            if str(net) != cidr:
                raise ValueError(f"{cidr!r} is not a normalized CIDR ({net})")

    @cached_property
    def _allow(self) -> tuple[Network, ...]:
        return _networks(self.allow)

    @cached_property
    def _deny(self) -> tuple[Network, ...]:
        return _networks(self.deny)

    def admits(self, client: str) -> bool:
        """Whether a request from address ``client`` is proxied."""
        address = ipaddress.ip_address(client)
        if any(address in net for net in self._deny if net.version == address.version):
            return False
        if not self.allow:
            return True
        return any(address in net for net in self._allow if net.version == address.version)


def _without(
    allowed: list[ipaddress.IPv4Network] | list[ipaddress.IPv6Network],
    denied: list[ipaddress.IPv4Network] | list[ipaddress.IPv6Network],
) -> list[str]:
    """The addresses of ``allowed`` not in ``denied`` (one family), as disjoint CIDRs."""
    pieces: list[Any] = list(ipaddress.collapse_addresses(allowed))  # type: ignore[type-var]
    refused: list[Any] = list(ipaddress.collapse_addresses(denied))  # type: ignore[type-var]
    for bad in refused:
        kept: list[Any] = []
        for piece in pieces:
            if not piece.overlaps(bad):
                kept.append(piece)
            elif not bad.supernet_of(piece):
                kept.extend(piece.address_exclude(bad))
        pieces = kept
    return [str(n) for n in ipaddress.collapse_addresses(pieces)]


def admitted_networks(ranges: SourceRanges) -> tuple[str, ...]:
    """The networks whose addresses ``ranges`` admits, as one list of disjoint CIDRs (for a
    proxy that has an allow list only, e.g. Traefik's ``ipAllowList``): the allow list (else
    every address) without the denied networks."""
    v4 = [n for n in (*ranges._allow, *ranges._deny) if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in (*ranges._allow, *ranges._deny) if isinstance(n, ipaddress.IPv6Network)]
    allow4 = [n for n in v4 if n in ranges._allow]
    allow6 = [n for n in v6 if n in ranges._allow]
    if not ranges.allow:
        allow4 = [ipaddress.IPv4Network("0.0.0.0/0")]
        allow6 = [ipaddress.IPv6Network("::/0")]
    deny4 = [n for n in v4 if n in ranges._deny]
    deny6 = [n for n in v6 if n in ranges._deny]
    return (*_without(allow4, deny4), *_without(allow6, deny6))


# The password hash formats every backend checks (measured on nginx 1.22 with Debian's
# libxcrypt, HAProxy 2.6 userlists and Traefik 3.7's basicAuth): bcrypt and md5-crypt. Not
# apr1 nor {SHA} (HAProxy), not sha256-/sha512-crypt nor DES crypt (Traefik), not {PLAIN}
# (HAProxy, Traefik). (format name, regular expression of the whole hash)
HASH_FORMATS = (
    ("bcrypt", re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")),
    ("md5-crypt", re.compile(r"\$1\$[./A-Za-z0-9]{1,8}\$[./A-Za-z0-9]{22}")),
)
# User names every backend takes as they are: no ':' (htpasswd), no space or quote (an
# HAProxy userlist word), printable ASCII.
USER_NAME = re.compile(r"[A-Za-z0-9._@+-]{1,128}")


@dataclass(frozen=True, kw_only=True)
class BasicAuth:
    """HTTP basic authentication (ingress-nginx's ``auth-type: basic``): a request without a
    valid ``Authorization: Basic`` of one of ``users`` gets 401 with ``WWW-Authenticate:
    Basic realm="<realm>"``. ``users`` are (name, hash) sorted by name, each name once, each
    hash of :data:`HASH_FORMATS`; ``secret`` names the Secret they came from (``ns/name``).
    The hashes are secret material: never in a repr, a log or the canonical model (its
    ``fingerprint`` stands for them)."""

    realm: str
    users: tuple[tuple[str, str], ...] = field(repr=False)
    secret: str = ""

    def __post_init__(self) -> None:
        names = [u for u, _h in self.users]
        if names != sorted(set(names)):
            raise ValueError("users must be sorted, each name once")
        for user, digest in self.users:
            if not USER_NAME.fullmatch(user):
                raise ValueError(f"user name {user!r} is not [A-Za-z0-9._@+-]")
            if hash_format(digest) is None:
                raise ValueError(f"the hash of user {user!r} is not bcrypt or md5-crypt")
        if any(c in self.realm for c in '"\\') or not self.realm.isprintable():
            raise ValueError("the realm must be printable, without quotes or backslashes")

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the users and their hashes (what changes when they do)."""
        blob = "\n".join(f"{u}:{h}" for u, h in self.users)
        return hashlib.sha256(blob.encode()).hexdigest()

    def challenge(self) -> str:
        """The WWW-Authenticate header of a 401."""
        return f'Basic realm="{self.realm}"'

    def admits(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value holds a user's name and password."""
        if authorization is None:
            return False
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        digest = dict(self.users).get(user)
        return digest is not None and verify_password(password, digest)


def hash_format(digest: str) -> str | None:
    """The name of ``digest``'s format if every backend checks it, else None."""
    for name, pattern in HASH_FORMATS:
        if pattern.fullmatch(digest):
            return name
    return None


def verify_password(password: str, digest: str) -> bool:
    """``password`` against a bcrypt or md5-crypt ``digest`` (libpass/bcrypt, never our own
    hashing)."""
    from passlib.hash import bcrypt, md5_crypt  # type: ignore[import-untyped]

    scheme = md5_crypt if digest.startswith("$1$") else bcrypt
    try:
        return bool(scheme.verify(password, digest))
    except ValueError:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """ingress-nginx's rate limits of one Ingress, per client address, counted over every
    path of the Ingress (``zone``: ``namespace/name``, its counters' name): ``rps`` requests
    per second and ``rpm`` per minute, each with a burst of ``burst_multiplier`` times the
    limit (nginx's ``limit_req ... burst=<limit x multiplier> nodelay``), and ``connections``
    concurrent requests (``limit_conn``). Above a limit: ``status`` (ingress-nginx's
    ``limit-req-status-code``/``limit-conn-status-code``, 503). Each proxy counts its own way
    (the README's matrix notes say how); :meth:`RouteModel.answer` states what a request
    within the limits gets."""

    zone: str
    rps: int | None = None
    rpm: int | None = None
    connections: int | None = None
    burst_multiplier: int = 5
    status: int = 503

    def __post_init__(self) -> None:
        for what, value in (
            ("rps", self.rps),
            ("rpm", self.rpm),
            ("connections", self.connections),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{what} {value} is below 1")
        if self.burst_multiplier < 1:
            raise ValueError(f"burst multiplier {self.burst_multiplier} is below 1")
        if self.rps is None and self.rpm is None and self.connections is None:
            raise ValueError("a rate limit without a limit")

    def burst(self, limit: int) -> int:
        """The burst of a request limit (nginx's ``burst=``)."""
        return limit * self.burst_multiplier


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutePolicy:
    """What a request on a proxying row must satisfy before it is proxied, checked in this
    order (ingress-nginx's: nginx checks the body size when it chooses the location, before
    its access phase, where the address lists come before authentication): ``max_body``, the
    largest request body in bytes (413 above it; 0: no limit, also not the ConfigMap's
    ``proxy-body-size``; None: the backend's default); ``sources``, the client address lists
    (403); ``auth``, basic authentication (401). ``rate`` (rate limits, 503) is counted by
    the proxy, before all of them (nginx's preaccess phase): not decided here."""

    sources: SourceRanges | None = None
    max_body: int | None = None
    auth: BasicAuth | None = None
    rate: RateLimit | None = None

    def __post_init__(self) -> None:
        if self.max_body is not None and self.max_body < 0:
            raise ValueError(f"max_body {self.max_body} is negative")

    @property
    def features(self) -> frozenset[str]:
        """The backend features serving this policy needs."""
        out = set()
        if self.sources is not None:
            out.add(SOURCE_RANGES)
        if self.max_body is not None:
            out.add(BODY_SIZE)
        if self.auth is not None:
            out.add(BASIC_AUTH)
        if self.rate is not None:
            out.add(RATE_LIMIT)
        return frozenset(out)

    def refusal(
        self, client: str, body_size: int | None = None, authorization: str | None = None
    ) -> int | None:
        """The status a request from ``client`` with a body of ``body_size`` bytes (its
        Content-Length; None: no body) and an ``Authorization`` header gets instead of being
        proxied, None when it passes."""
        if self.max_body and body_size is not None and body_size > self.max_body:
            return 413
        if self.sources is not None and not self.sources.admits(client):
            return 403
        if self.auth is not None and not self.auth.admits(authorization):
            return 401
        return None

    def canonical(self) -> dict[str, object]:
        """Plain JSON for the canonical model: the auth's users by fingerprint only."""
        out: dict[str, object] = {}
        if self.sources is not None:
            out["sources"] = {"allow": list(self.sources.allow), "deny": list(self.sources.deny)}
        if self.max_body is not None:
            out["max_body"] = self.max_body
        if self.auth is not None:
            out["auth"] = {
                "realm": self.auth.realm,
                "secret": self.auth.secret,
                "fingerprint": self.auth.fingerprint,
            }
        if self.rate is not None:
            rate = self.rate
            out["rate"] = {
                "zone": rate.zone,
                "rps": rate.rps,
                "rpm": rate.rpm,
                "connections": rate.connections,
                "burst_multiplier": rate.burst_multiplier,
                "status": rate.status,
            }
        return out
