"""The read-only dashboard: where every request goes, on a web page and as JSON.

``polyingress run --dashboard`` serves it on its own address (``--dashboard-bind``, loopback by
default, and ``--dashboard-port``). Everything on it comes from the core — the applied
:class:`RouteModel`, the problems of the last build, the controller's apply history and the
backend's :class:`BackendInfo` — so it is the same for every backend, Ingresses and HTTPRoutes
alike. The search answers a URL with :meth:`RouteModel.answer`, the function every backend is
tested against.

On a loopback address it answers only requests whose Host is ``localhost`` or an IP address
(421 otherwise): a web page elsewhere cannot read it through a DNS name rebound to 127.0.0.1.
Read-only (GET and HEAD only), no JavaScript, nothing loaded from elsewhere (a
Content-Security-Policy forbids it), every value HTML-escaped (Jinja2's autoescape). No Secret
data is ever shown: of a certificate, only what its public part says (subject, issuer, names,
expiry, fingerprint); never a PEM, never a key.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jinja2
from cryptography import x509

from polyingress.core.api import BackendInfo, HealthReport
from polyingress.core.pipeline.builder import BuildResult
from polyingress.core.pipeline.model import (
    Answer,
    Backend,
    HeaderFilter,
    ObjectRef,
    Outcome,
    PathModifier,
    Redirect,
    Request,
    Route,
    RouteModel,
    VirtualHost,
)
from polyingress.core.pipeline.requestpath import normalize_request_path
from polyingress.core.runtime.controller import ApplyRecord
from polyingress.core.tls import fallback_certificate

__all__ = [
    "DashboardServer",
    "DashboardState",
    "explain",
    "render_page",
    "view",
]

JSON_PATH = "/dashboard.json"
EXPIRY_WARNING_DAYS = 14


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardState:
    """What the dashboard shows, read from the controller at one moment.

    ``model`` is the model the proxy serves (the last one applied); ``result`` the last build,
    whose problems are shown (it may be a model the proxy refused: ``failing``);
    ``http_port`` and ``https_port`` the ports clients reach (``--https-redirect-port``, else
    ``--https-port``): the HTTPS redirect's Location names the latter."""

    model: RouteModel
    result: BuildResult | None = None
    history: tuple[ApplyRecord, ...] = ()
    info: BackendInfo | None = None
    health: HealthReport | None = None
    last_error: str | None = None
    failing: bool = False
    http_port: int = 80
    https_port: int = 443


# -- the data ---------------------------------------------------------------------------------


def _ref(ref: ObjectRef) -> dict[str, str]:
    return {"kind": ref.kind, "namespace": ref.namespace, "name": ref.name}


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=4096)
def _certificate_facts(cert_pem: str) -> dict[str, Any]:
    """The public facts of the first certificate of a PEM chain (never the PEM itself)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError as exc:
        return {"error": f"cannot parse the certificate: {exc}"}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = [str(n) for n in san.value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "expires": cert.not_valid_after_utc.timestamp(),
        "san": names,
    }


def _covers(names: list[str] | tuple[str, ...], host: str) -> bool:
    """Whether a certificate with these DNS names is valid for ``host`` (RFC 6125: a ``*``
    stands for exactly one label)."""
    for name in names:
        name = name.lower()
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


def _tls(vhost: VirtualHost, model: RouteModel, now: float) -> dict[str, Any] | None:
    binding = vhost.tls
    if binding is None:
        return None
    cert = None
    if binding.certificate is not None:
        cert = model.certificate_index.get(binding.certificate)
    fallback = cert is None
    shown = cert if cert is not None else fallback_certificate()
    facts = _certificate_facts(shown.cert_pem)
    expires = facts.get("expires")
    names = list(shown.dns_names)
    host = vhost.host
    bare = None if host is None else (host[1:] if host.startswith("**.") else host)
    return {
        "declared_by": _ref(binding.source),
        "secret": None if cert is None else _ref(cert.source),
        "fallback": fallback,
        "ssl_redirect": binding.ssl_redirect,
        "subject": facts.get("subject"),
        "issuer": facts.get("issuer"),
        "not_before": facts.get("not_before"),
        "not_after": facts.get("not_after"),
        "san": facts.get("san", []),
        "dns_names": names,
        "fingerprint_sha256": shown.fingerprint,
        "days_left": None if expires is None else int((expires - now) // 86400),
        "expired": None if expires is None else expires <= now,
        "covers_host": None if bare is None else _covers(names, bare),
        "parse_error": facts.get("error"),
    }


def _path_modifier(m: PathModifier | None) -> dict[str, str] | None:
    return None if m is None else {"type": m.type.value, "value": m.value}


def _redirect(r: Redirect) -> dict[str, Any]:
    return {
        "status": r.status,
        "scheme": r.scheme,
        "hostname": r.hostname,
        "port": r.port,
        "path": _path_modifier(r.path),
    }


def _header_filter(f: HeaderFilter | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {
        "set": [list(kv) for kv in f.set],
        "add": [list(kv) for kv in f.add],
        "remove": list(f.remove),
    }


def _route(r: Route) -> dict[str, Any]:
    if r.split:
        backends = [{"name": w.backend, "weight": w.weight} for w in r.split]
    elif r.backend is not None:
        backends = [{"name": r.backend, "weight": None}]
    else:
        backends = []
    return {
        "path": r.path,
        "path_type": r.path_type.value,
        "method": r.method,
        "headers": [
            {"name": h.name, "value": h.value, **({"regex": True} if h.regex else {})}
            for h in r.headers
        ],
        "query": [{"name": q.name, "value": q.value} for q in r.query],
        "schemes": list(r.schemes),
        "source": _ref(r.source),
        "from_catch_all": r.from_catch_all,
        "backends": backends,
        "status": r.status,
        "redirect": None if r.redirect is None else _redirect(r.redirect),
        "rewrite": None
        if r.rewrite is None
        else {"hostname": r.rewrite.hostname, "path": _path_modifier(r.rewrite.path)},
        "request_headers": _header_filter(r.request_headers),
        "response_headers": _header_filter(r.response_headers),
        "mirrors": list(r.mirrors),
        "timeout_seconds": r.timeout,
    }


def _backend(b: Backend) -> dict[str, Any]:
    return {
        "name": b.name,
        "namespace": b.namespace,
        "service": b.service,
        "port": b.port,
        "problem": b.problem,
        "ready": len(b.ready_endpoints),
        "endpoints": [
            {
                "address": e.address,
                "port": e.port,
                "ready": e.ready,
                "serving": e.serving,
                "terminating": e.terminating,
            }
            for e in b.endpoints
        ],
    }


def _record(r: ApplyRecord) -> dict[str, Any]:
    return {
        "at": _iso(r.at),
        "outcome": r.outcome,
        "change": r.change,
        "total_ms": round(r.total * 1000, 1),
        "queued_ms": round(r.queued * 1000, 1),
        "build_ms": round(r.build * 1000, 1),
        "diff_ms": round(r.diff * 1000, 1),
        "apply_ms": round(r.apply * 1000, 1),
        "backend_parts_ms": [[name, round(s * 1000, 1)] for name, s in r.timings.parts],
        "reloaded": r.reloaded,
        "reasons": list(r.reasons),
        "runtime_changes": r.runtime_changes,
        "detail": r.detail,
        "error": r.error,
    }


def _info(info: BackendInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {
        "name": info.name,
        "version": info.version,
        "description": info.description,
        "features": list(info.features),
        "gateway_features": list(info.gateway_features),
        "settings": dict(sorted(info.settings.items())),
    }


def view(state: DashboardState, *, now: float | None = None) -> dict[str, Any]:
    """Everything the page shows, as plain JSON (the ``/dashboard.json`` document)."""
    now = time.time() if now is None else now
    model = state.model
    problems = () if state.result is None else state.result.problems
    health = state.health
    return {
        "generated_at": _iso(now),
        "backend": _info(state.info),
        "health": None
        if health is None
        else {"live": health.live, "ready": health.ready, "detail": health.detail},
        "failing": state.failing,
        "last_error": state.last_error,
        "ports": {"http": state.http_port, "https": state.https_port},
        "counts": {
            "hosts": len(model.vhosts),
            "routes": sum(len(v.routes) for v in model.vhosts),
            "backends": len(model.backends),
            "errors": sum(1 for p in problems if p.severity.value == "error"),
            "warnings": sum(1 for p in problems if p.severity.value == "warning"),
        },
        "hosts": [
            {
                "host": v.host,
                "kind": v.kind.value,
                "tls": _tls(v, model, now),
                "routes": [_route(r) for r in v.routes],
            }
            for v in model.vhosts
        ],
        "default_backend": model.default_backend,
        "backends": [_backend(b) for b in model.backends],
        "problems": [
            {
                "severity": p.severity.value,
                "reason": p.reason,
                "object": _ref(p.ref),
                "field": p.field,
                "message": p.message,
            }
            for p in problems
        ],
        "applies": [_record(r) for r in reversed(state.history)],
        "settings": {key: value for key, value in model.settings.values},
    }


# -- the search -------------------------------------------------------------------------------

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")


class SearchError(ValueError):
    """The search form holds something that is not a request (said to the user)."""


def _parse_request(
    url: str, method: str, headers_text: str
) -> tuple[str, str, str, str, tuple[tuple[str, str], ...]]:
    """(scheme, host, target, method, headers) of the search form, or SearchError."""
    url = url.strip()
    if not url:
        raise SearchError("type a URL, e.g. https://cafe.example.com/coffee")
    if "://" not in url:
        url = ("http://localhost" if url.startswith("/") else "http://") + url
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise SearchError(f"not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise SearchError(f"the scheme must be http or https, not {parts.scheme!r}")
    if not parts.hostname:
        raise SearchError("the URL names no host")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    method = method.strip() or "GET"
    if not _TOKEN.fullmatch(method):
        raise SearchError(f"not an HTTP method: {method!r}")
    headers: list[tuple[str, str]] = []
    for number, line in enumerate(headers_text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not _TOKEN.fullmatch(name) or not _HEADER_VALUE.fullmatch(value):
            raise SearchError(f"header line {number}: write it as Name: value")
        headers.append((name, value))
    return scheme, parts.netloc.rsplit("@", 1)[-1], target, method, tuple(headers)


def _describe(route: Route) -> str:
    """A row's match in words: ``Prefix /coffee`` plus its conditions."""
    words = [f"{route.path_type.value} {route.path}"]
    if route.method is not None:
        words.append(f"method {route.method}")
    words += [f"header {h.name}{' ~' if h.regex else ':'} {h.value}" for h in route.headers]
    words += [f"query {q.name}={q.value}" for q in route.query]
    if len(route.schemes) < 2:
        words.append(f"{' or '.join(route.schemes)} only")
    return ", ".join(words)


def _why_not(route: Route, request: Request) -> str:
    if request.scheme not in route.schemes:
        return f"served on {' and '.join(route.schemes)} only"
    if route.method is not None and request.method != route.method:
        return f"needs method {route.method}"
    for h in route.headers:
        if not h.accepts(request.header(h.name)):
            what = f"a value matching {h.value}" if h.regex else h.value
            return f"needs header {h.name}: {what}"
    for q in route.query:
        if request.query_param(q.name) != q.value:
            return f"needs query parameter {q.name}={q.value}"
    return ""


def _service(model: RouteModel, name: str | None) -> dict[str, Any] | None:
    if name is None:
        return None
    b = model.backend_index.get(name)
    if b is None:
        return {"name": name, "service": None, "ready": 0, "endpoints": 0}
    return {
        "name": name,
        "service": f"{b.namespace}/{b.service}:{b.port}",
        "ready": len(b.ready_endpoints),
        "endpoints": len(b.endpoints),
        "problem": b.problem,
    }


def _host_label(vhost: VirtualHost) -> str:
    return "the catch-all (rules without a host)" if vhost.host is None else vhost.host


def explain(
    model: RouteModel,
    url: str,
    method: str = "GET",
    headers_text: str = "",
    *,
    https_port: int = 443,
) -> dict[str, Any]:
    """What a request to ``url`` gets and why: :meth:`RouteModel.answer`, explained step by
    step (the virtual host chosen, the rows that match the path and why the winner won). A
    form that holds no request gives ``{"error": ...}``."""
    try:
        scheme, host, target, method, headers = _parse_request(url, method, headers_text)
    except SearchError as exc:
        return {"error": str(exc)}
    answer: Answer = model.answer(host, target, scheme=scheme, method=method, headers=headers)
    request = {
        "scheme": scheme,
        "host": host,
        "target": target,
        "method": method,
        "headers": [list(h) for h in headers],
    }
    why: list[str] = []
    out: dict[str, Any] = {
        "request": request,
        "outcome": answer.outcome.value,
        "status": answer.status,
        "route": None if answer.route is None else _route(answer.route),
        "backends": [
            {**(_service(model, w.backend) or {}), "weight": w.weight}
            for w in (answer.route.split if answer.route is not None and answer.route.split else ())
        ]
        or ([] if answer.backend is None else [_service(model, answer.backend)]),
        "path": answer.path,
        "host_rewritten": answer.host,
        "location": answer.location,
        "why": why,
        "candidates": [],
    }
    normalized = normalize_request_path(target)
    if normalized is None:
        why.append(
            "the request path holds an encoded slash, backslash or NUL, a raw backslash or a "
            "bad % escape: refused with 400 before anything else, on every backend"
        )
        out["summary"] = "400 Bad Request"
        return out
    path, _, query = normalized.partition("?")
    if normalized != target:
        why.append(f"the request target is normalized to {normalized} before matching")
    vhost = model.select_vhost(host)
    bare = host.lower().rsplit(":", 1)[0] if not host.startswith("[") else host.lower()
    bare = bare.rstrip(".")
    if vhost is None:
        why.append(f"no virtual host serves {bare} (no exact host, wildcard or catch-all)")
    else:
        kind = vhost.kind.value
        why.append(f"the Host {bare} selects the virtual host {_host_label(vhost)} ({kind})")
    if answer.outcome is Outcome.REDIRECT:
        assert vhost is not None and vhost.tls is not None
        port = "" if https_port == 443 else f":{https_port}"
        out["location"] = f"https://{bare}{port}{normalized}"
        why.append(
            f"the host has TLS ({vhost.tls.source}) with ssl-redirect: plain HTTP is redirected "
            "to HTTPS, 301 for GET and 308 for every other method, by the proxy alone"
        )
        out["summary"] = f"{answer.status} redirect to {out['location']}"
        return out
    if vhost is not None:
        req = Request(scheme=scheme, method=method, headers=headers, query=query)
        candidates = [r for r in vhost.routes if r.matches(path)]
        for r in candidates[:20]:
            reason = _why_not(r, req)
            out["candidates"].append(
                {
                    "match": _describe(r),
                    "source": _ref(r.source),
                    "won": r is answer.route,
                    "not_matched": reason,
                }
            )
    route = answer.route
    if route is not None:
        where = (
            " (a host-less Ingress rule, merged into every host)" if route.from_catch_all else ""
        )
        why.append(
            f"the rule {_describe(route)} of {route.source} wins{where}: Exact before Prefix, "
            "the longest prefix, then a method, more headers, more query parameters, the "
            "oldest object"
        )
    elif answer.outcome is Outcome.DEFAULT:
        why.append("no rule of the host matches the path: the default backend answers")
    elif answer.outcome is Outcome.NOT_FOUND:
        why.append("no rule matches and there is no default backend: 404")
    if answer.outcome is Outcome.UNAVAILABLE:
        names = [w.backend for w in route.split] if route is not None and route.split else []
        names = [n for n in names if n is not None] or [answer.backend]
        for name in names:
            svc = _service(model, name)
            if svc is not None:
                problem = f" ({svc['problem']})" if svc.get("problem") else ""
                why.append(
                    f"{svc['service'] or name} has {svc['ready']} of {svc['endpoints']} "
                    f"endpoints ready{problem}: 503"
                )
        out["summary"] = "503 Service Unavailable"
    elif answer.outcome is Outcome.ERROR:
        why.append(
            "the rule has no valid backend (or uses what this backend does not serve): it "
            "answers 500; the problems below name the object and field"
        )
        out["summary"] = f"{answer.status} (the rule's own answer)"
    elif answer.outcome is Outcome.ROUTE_REDIRECT:
        why.append(f"the rule redirects: {answer.status} to {answer.location}")
        out["summary"] = f"{answer.status} redirect to {answer.location}"
    elif answer.outcome is Outcome.NOT_FOUND:
        out["summary"] = "404 Not Found"
    else:
        services = [b for b in out["backends"] if b]
        targets = ", ".join(
            str(b["service"]) + (f" (weight {b['weight']})" if "weight" in b else "")
            for b in services
        )
        ready = "; ".join(
            f"{b['service']}: {b['ready']} of {b['endpoints']} ready" for b in services
        )
        why.append(f"proxied to {targets} ({ready}); the Service receives {answer.path}")
        if answer.host is not None:
            why.append(f"the Host header is rewritten to {answer.host}")
        out["summary"] = f"proxied to {targets}"
    return out


# -- the page ---------------------------------------------------------------------------------


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_TEMPLATE = _ENV.get_template("dashboard.html.j2")


def render_page(
    data: Mapping[str, Any],
    search: Mapping[str, Any] | None = None,
    query: Mapping[str, str] | None = None,
) -> str:
    """The HTML page of :func:`view`'s data (and a search's :func:`explain`)."""
    return _TEMPLATE.render(
        **data,
        search=search,
        query={"url": "", "method": "", "headers": "", **(query or {})},
        backends_by_name={b["name"]: b for b in data["backends"]},
        json_path=JSON_PATH,
        expiry_warning=EXPIRY_WARNING_DAYS,
    )


# -- the server -------------------------------------------------------------------------------

_SECURITY_HEADERS = (
    # No script, no frame, nothing from elsewhere: the page is one document and its inline
    # stylesheet; the form may only be sent here.
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


def host_allowed(host: str | None, loopback: bool) -> bool:
    """Whether a request with this Host header may read a dashboard bound to a loopback
    address (``loopback``): ``localhost`` or an IP address, never another name (DNS
    rebinding). Bound elsewhere, every Host may."""
    if not loopback or host is None:
        return True
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    name = name.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class DashboardServer:
    """Serves the page on ``/`` and its data on ``/dashboard.json``, from ``state()`` at each
    request. GET and HEAD only; on a loopback address, only to a Host that is ``localhost`` or
    an IP address (:func:`host_allowed`)."""

    def __init__(self, bind: str, port: int, state: Callable[[], DashboardState]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "polyingress-dashboard"
            sys_version = ""

            def do_GET(self) -> None:
                self._answer(body=True)

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def _refuse(self) -> None:
                self._send(405, b"read-only: GET and HEAD only\n", "text/plain", True, allow=True)

            do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

            def _answer(self, body: bool) -> None:
                if not host_allowed(self.headers.get("Host"), outer.loopback):
                    text = (
                        "this dashboard listens on a loopback address and answers only "
                        "http://localhost or an IP address (--dashboard-bind serves others)\n"
                    )
                    self._send(421, text.encode(), "text/plain", body)
                    return
                path, _, raw = self.path.partition("?")
                if path not in ("/", JSON_PATH):
                    self._send(404, b"not found\n", "text/plain", body)
                    return
                params = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                try:
                    content, ctype = outer.page(path, params)
                except Exception as exc:  # the page must never take the controller down
                    text = f"the dashboard failed: {type(exc).__name__}: {exc}\n"
                    self._send(500, text.encode(), "text/plain", body)
                    return
                self._send(200, content, ctype, body)

            def _send(
                self, status: int, data: bytes, ctype: str, body: bool, allow: bool = False
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for name, value in _SECURITY_HEADERS:
                    self.send_header(name, value)
                if allow:
                    self.send_header("Allow", "GET, HEAD")
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in bind else socket.AF_INET
            daemon_threads = True

        self.state = state
        self.loopback = ipaddress.ip_address(bind).is_loopback
        self.server = Server((bind, port), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="dashboard", daemon=True
        )

    def page(self, path: str, params: Mapping[str, str]) -> tuple[bytes, str]:
        """The body and content type of ``path`` with the query ``params``."""
        state = self.state()
        data = view(state)
        search = None
        if params.get("url", "").strip():
            search = explain(
                state.model,
                params["url"],
                params.get("method", "GET"),
                params.get("headers", ""),
                https_port=state.https_port,
            )
        if path == JSON_PATH:
            doc = {**data, "search": search} if search is not None else data
            return json.dumps(doc, indent=1).encode(), "application/json"
        query = {k: params.get(k, "") for k in ("url", "method", "headers")}
        return render_page(data, search, query).encode(), "text/html; charset=utf-8"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
