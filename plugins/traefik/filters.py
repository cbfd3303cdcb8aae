"""The Gateway API filters Traefik's file provider cannot state exactly, as a local plugin.

Traefik 3.7's file provider offers no middleware for five things ``RouteModel.answer`` says
(measured on 3.7.15 and read in its source, ``pkg/middlewares``):

* appending a header value (RequestHeaderModifier and ResponseHeaderModifier ``add``): the
  ``headers`` middleware only sets (``customRequestHeaders``: ``Header.Set``) or removes;
* a redirect with the route's status for every method: ``redirectRegex``/``redirectScheme``
  answer 301/302 to GET but 308/307 to every other method, have no 303 nor a 307/308 for GET,
  and do nothing when the new URL equals the request's (``pkg/middlewares/redirect/
  redirect.go``); nor can they lowercase the host of the Location;
* answering 500 for the share of an invalid backend reference in a weighted split: a
  ``weighted`` service only has services as children, and no service answers 500;
* the path rewrites without ``replacePath``'s ``X-Replaced-Path`` request header;
* a send timeout (proxy-send-timeout, nginx's ``proxy_send_timeout``: the endpoint stops
  taking the request): ``serversTransport`` ``forwardingTimeouts`` has dial, responseHeader,
  idleConn, readIdle and ping timeouts only. The plugin watches the request body as Traefik's
  transport reads it (``sendTimeoutMs``): a pause of the transport longer than the timeout
  (it cannot write what it read) cancels the request with the cause
  ``context.DeadlineExceeded``, which Traefik answers 504 (measured on 3.7.15: Go's transport
  returns the cause; a plain cancel is answered 499). A Read waiting for a slow client stops
  the clock, and the watch ends with the body: the part of it the socket buffers take once
  read (a whole small body) is not timed, and an endpoint that stops reading it is left to
  proxy-read-timeout, as on nginx.

Traefik's own Gateway API middlewares (``requestHeaderModifier``, ``requestRedirect``,
``URLRewrite``) exist but are closed to the file provider (``file:"-"`` in
``pkg/config/dynamic/middlewares.go``). So polyingress ships one small middleware of its own,
``middleware/filters.go``, which Traefik runs as a *local plugin* (Yaegi, no download: static
configuration ``experimental.localPlugins``, source in ``<workdir>/plugins-local/src/``). Each
route row with such filters gets one instance (named by a hash of its configuration, so equal
filters share one). It decides nothing: every value comes from the model, and the Go code is
the core's reference semantics (``HeaderFilter.apply``, ``PathModifier.apply``,
``redirect_location``) written again for the request on its way through.

What stays with Traefik's own parts: the routing (routers and priorities), the answers 404, 500
and 503 (``ipAllowList`` with ``rejectStatusCode``, the empty ``weighted`` service), weighted
splits (``weighted``), mirrors (``mirroring``) and the HTTPS redirect of Ingress hosts
(``redirectScheme``).
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from typing import Any

from polyingress.core import Cors, Route

__all__ = [
    "MODULE",
    "PLUGIN",
    "PLUGINS_DIR",
    "WELL_KNOWN_PORTS",
    "cors_config",
    "cors_only_config",
    "filter_config",
    "filter_name",
    "native_headers",
    "plugin_files",
    "redirect_config",
    "timeout_ms",
]

PLUGIN = "polyingress"  # the plugin's name in the static and the dynamic configuration
MODULE = "polyingress/filters"  # its Go import path below plugins-local/src
PLUGINS_DIR = "plugins-local"  # Traefik's fixed local-plugin directory, relative to its cwd
WELL_KNOWN_PORTS = {"http": 80, "https": 443}

_MANIFEST = """\
displayName: polyingress filters
type: middleware
import: polyingress/filters
summary: Gateway API filters exactly as the polyingress route model states them
testData: {}
"""


def plugin_files() -> tuple[tuple[str, str], ...]:
    """The plugin's files, relative to Traefik's working directory: its manifest and source."""
    base = f"{PLUGINS_DIR}/src/{MODULE}"
    source = resources.files("polyingress.plugins.traefik").joinpath("middleware/filters.go")
    return (
        (f"{base}/.traefik.yml", _MANIFEST),
        (f"{base}/filters.go", source.read_text()),
    )


def _changes(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in pairs]


# Header names Traefik's headers middleware takes as map keys without surprise (the file
# provider's decoder and Go's canonical form); others go to the plugin, which takes lists.
_SIMPLE_NAME = re.compile(r"^[a-z0-9-]+$")


def _native(route: Route, response: bool) -> bool:
    """Whether the ``headers`` middleware may state this side's set and remove (the plugin
    then does only the adds): never when the request side names the Host (a rewrite of the
    host must follow its changes, and Traefik's map has one Host)."""
    changes = route.response_headers if response else route.request_headers
    if changes is None:
        return False
    if response:
        return True
    names = [name for name, _value in (*changes.set, *changes.add)]
    return "host" not in names and "host" not in changes.remove


def _set_natively(name: str, value: str) -> bool:
    # customRequestHeaders deletes a header whose value is empty: an empty set is the plugin's.
    return bool(value) and _SIMPLE_NAME.fullmatch(name) is not None


def native_headers(route: Route) -> dict[str, Any] | None:
    """The ``headers`` middleware configuration for what Traefik states exactly of a row's
    header changes: set (``Header.Set``) and remove (an empty value: ``Header.Del``), request
    and response, and the rewrite of the Host (``customRequestHeaders`` Host sets the request's
    host). Each name appears once in a filter (the core refuses repeats), so these and the
    plugin's adds commute. None when nothing is left to it."""
    out: dict[str, Any] = {}
    for response, key in ((False, "customRequestHeaders"), (True, "customResponseHeaders")):
        changes = route.response_headers if response else route.request_headers
        if changes is None or not _native(route, response):
            continue
        mapping = {n: v for n, v in changes.set if _set_natively(n, v)}
        mapping.update({n: "" for n in changes.remove if _SIMPLE_NAME.fullmatch(n)})
        if mapping:
            out[key] = mapping
    rewrite = route.rewrite
    if rewrite is not None and rewrite.hostname is not None and _host_natively(route):
        out.setdefault("customRequestHeaders", {})["Host"] = rewrite.hostname
    return out or None


def _host_natively(route: Route) -> bool:
    return route.request_headers is None or _native(route, response=False)


def _header_filter(route: Route, response: bool) -> dict[str, Any] | None:
    """The plugin's part of a row's header changes: what ``native_headers`` leaves."""
    changes = route.response_headers if response else route.request_headers
    if changes is None:
        return None
    native = _native(route, response)
    out: dict[str, Any] = {}
    sets = [(n, v) for n, v in changes.set if not (native and _set_natively(n, v))]
    if sets:
        out["set"] = _changes(tuple(sets))
    if changes.add:
        out["add"] = _changes(changes.add)
    removes = [n for n in changes.remove if not (native and _SIMPLE_NAME.fullmatch(n))]
    if removes:
        out["remove"] = removes
    return out or None


def _path_change(route: Route, rewrite: bool) -> dict[str, str] | None:
    holder = route.rewrite if rewrite else route.redirect
    modifier = holder.path if holder is not None else None
    if modifier is None:
        return None
    if modifier.type == "ReplaceFullPath":
        return {"kind": "full", "value": modifier.value}
    return {"kind": "prefix", "value": modifier.value, "prefix": route.path}


def redirect_config(route: Route, scheme: str) -> dict[str, Any]:
    """A redirect row's answer on an entry point of ``scheme`` (redirect_location's parts)."""
    redirect = route.redirect
    assert redirect is not None
    new_scheme = redirect.scheme or scheme
    out: dict[str, Any] = {"status": redirect.status, "scheme": new_scheme}
    if redirect.hostname is not None:
        out["hostname"] = redirect.hostname
    if redirect.port is not None and WELL_KNOWN_PORTS.get(new_scheme) != redirect.port:
        out["portSuffix"] = f":{redirect.port}"
    path = _path_change(route, rewrite=False)
    if path is not None:
        out["path"] = path
    return out


def filter_config(
    route: Route, scheme: str, fail: tuple[int, int] = (0, 0), *, cors: bool = True
) -> dict[str, Any] | None:
    """The plugin configuration a row needs on an entry point of ``scheme``, None if none.

    ``fail`` is (weight, total): that share of the requests answers 500 (an invalid backend
    reference's share of a split). ``cors=False`` leaves the row's CORS filter out (it is then
    a middleware of its own, ahead of the row's policy: :func:`cors_only_config`)."""
    config: dict[str, Any] = {}
    if route.redirect is not None:
        config["redirect"] = redirect_config(route, scheme)
    request = _header_filter(route, response=False)
    if request is not None:
        config["requestHeaders"] = request
    response = _header_filter(route, response=True)
    if response is not None:
        config["responseHeaders"] = response
    if route.rewrite is not None:
        rewrite: dict[str, Any] = {}
        if route.rewrite.hostname is not None and not _host_natively(route):
            rewrite["hostname"] = route.rewrite.hostname
        path = _path_change(route, rewrite=True)
        if path is not None:
            rewrite["path"] = path
        if rewrite:
            config["rewrite"] = rewrite
    if fail[0]:
        config["failWeight"], config["failTotal"] = fail
    if route.timeout is not None:
        config["timeoutMs"] = timeout_ms(route.timeout)
    if route.send_timeout is not None:
        config["sendTimeoutMs"] = timeout_ms(route.send_timeout)
    if cors and route.cors is not None:
        config["cors"] = cors_config(route.cors)
    return config or None


def cors_only_config(route: Route) -> dict[str, Any] | None:
    """The plugin configuration of a row's CORS filter alone (None without one): placed before
    the row's policy, a preflight is answered 204 before the policy's 413/403/401 and an allowed
    Origin's headers go on those answers too, as RouteModel.answer says."""
    return None if route.cors is None else {"cors": cors_config(route.cors)}


def cors_config(cors: Cors) -> dict[str, Any]:
    """The plugin's CORS part (the core's Cors, every value validated by the core)."""
    out: dict[str, Any] = {"originRegex": cors.origin_regex, "maxAge": str(cors.max_age)}
    for key, echo, values in (
        ("allowMethods", "echoMethod", cors.allow_methods),
        ("allowHeaders", "echoHeaders", cors.allow_headers),
    ):
        if values == ("*",):
            out[echo] = True
        elif values:
            out[key] = ", ".join(values)
    if cors.expose is not None:
        out["expose"] = cors.expose
    if cors.allow_credentials:
        out["credentials"] = True
    return out


def timeout_ms(seconds: float) -> int:
    """A route's timeout in whole milliseconds (at least one)."""
    return max(1, round(seconds * 1000))


def filter_name(config: dict[str, Any]) -> str:
    """The middleware's name: a hash of its configuration (equal filters share one;
    ``filter_config`` builds equal configurations in the same key order, so ``repr`` is a
    canonical form, and 3x faster than a sorted JSON dump)."""
    return f"polyingress-filters-{hashlib.sha256(repr(config).encode()).hexdigest()[:16]}"
