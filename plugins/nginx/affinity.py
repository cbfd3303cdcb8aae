"""Cookie session affinity on nginx (ingress-nginx's ``affinity: cookie``), without the
``sticky`` module: the cookie's value is a key that picks the endpoint, always the same one
for the same key while the endpoints do not change.

* A request without the cookie gets the key ``$request_id`` (random, per request): it picks an
  endpoint like any other key, and the response sets the cookie to it (``add_header
  Set-Cookie``, an empty value, not sent, when the request had the cookie).
* A request with the cookie (the first pair of that name, as Request.cookie reads it) uses its
  value as the key.
* Static mode: the row proxies to ``<backend>__affinity``, an upstream with the backend's
  servers and ``hash $polyingress_affinity consistent``. Lua mode: the balancer reads
  ``$polyingress_affinity`` and picks the endpoint by rendezvous hashing of key and endpoint.
  Either way adding an endpoint moves about 1/n of the sessions (ingress-nginx's
  ``balanced``; ``persistent`` is the same here: a documented partial), and a session whose
  endpoint went or failed goes on to another endpoint with its cookie unchanged.

Every value comes from the model, checked by the translation: the name is an HTTP token (in a
regex: escaped; in a value: ``$`` as ``${polyingress_dollar}``), the path a plain path, the
domain a DNS name, the rest numbers and fixed words.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from polyingress.core import Route, RouteModel

__all__ = ["AFFINITY_SUFFIX", "VARIABLE", "affinity_backends", "affinity_lines", "upstream_name"]

AFFINITY_SUFFIX = "__affinity"  # never a backend name: those have two "__" separators
VARIABLE = "$polyingress_affinity"
_SECURE = "$polyingress_affinity_secure"


def upstream_name(backend: str) -> str:
    """Static mode: the upstream hashing the affinity key over ``backend``'s servers."""
    return backend + AFFINITY_SUFFIX


def affinity_backends(model: RouteModel) -> frozenset[str]:
    """The backends that rows with affinity proxy to (static mode renders an upstream each)."""
    return frozenset(
        b for v in model.vhosts for r in v.routes if r.affinity is not None for b in r.backends
    )


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def affinity_lines(
    route: Route,
    add_map: Callable[[str, tuple[str, ...]], None],
    re_escape: Callable[[str], str],
    quote: Callable[[str], str],
    literal: Callable[[str], str],
) -> tuple[str, ...]:
    """The location's lines for a row with affinity; ``add_map(name, lines)`` adds the
    http-level maps they read (named by their content). ``quote`` quotes nginx text holding
    variables; ``literal`` a value holding none."""
    a = route.affinity
    assert a is not None
    name = re_escape(a.name)
    # The cookie's value (the first pair of that name), else "".
    regex = f"~^(?:(?![ \\t]*{name}=)[^;]*;)*[ \\t]*{name}=([^;]*?)[ \\t]*(?:;|$)"
    cookie = f"$polyingress_affc_{_digest(a.name)}"
    add_map(
        cookie[1:],
        (f"map $http_cookie {cookie} {{", '    default "";', f"    {quote(regex)} $1;", "}"),
    )
    key = f"$polyingress_affk_{_digest(a.name)}"
    add_map(
        key[1:],
        (f"map {cookie} {key} {{", f"    default {cookie};", '    "" $request_id;', "}"),
    )
    attributes = [f"Path={a.path if a.path is not None else route.path}"]
    if a.domain is not None:
        attributes.append(f"Domain={a.domain}")
    if a.max_age is not None:
        attributes.append(f"Max-Age={int(a.max_age)}")
    if a.samesite is not None:
        attributes.append(f"SameSite={a.samesite}")
    attributes.append("HttpOnly")
    fixed = literal("; ".join(attributes))[1:-1]  # the text inside its quotes
    cookie_name = literal(a.name)[1:-1]
    if a.secure is None:
        add_map(
            _SECURE[1:],
            (f"map $https {_SECURE} {{", '    default "";', '    on "; Secure";', "}"),
        )
        secure = _SECURE
    else:
        secure = "; Secure" if a.secure else ""
    value = f'"{cookie_name}=$request_id; {fixed}{secure}"'
    header = f"$polyingress_affs_{_digest(a, route.path)}"
    add_map(header[1:], (f"map {cookie} {header} {{", '    default "";', f'    "" {value};', "}"))
    return (f"set {VARIABLE} {key};", f"add_header Set-Cookie {header};")
