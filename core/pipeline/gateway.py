"""Gateway API (GatewayClass, Gateway, HTTPRoute, ReferenceGrant) -> route rows and status.

The stage reads the snapshot and states, exactly as the Gateway API v1 specification does:

* **Ours**: a GatewayClass whose ``spec.controllerName`` is the controller class; a Gateway of
  such a class. Every HTTP listener is served on ``--http-port``, every HTTPS listener (TLS mode
  Terminate) on ``--https-port``, whatever its ``port``; that number is what ``parentRef.port``
  and ``sectionName`` select and what a redirect without a scheme or port keeps.
* **Attachment**: a parentRef names a Gateway (and maybe a listener by ``sectionName``/``port``);
  a listener takes the route when its ``allowedRoutes`` allows the route's namespace
  (Same/All/Selector) and kind, and when their hostnames intersect. The route is served on the
  listeners it attached to, under the intersected hostnames (``*.foo.com`` in the Gateway API
  matches one label or more: the model's suffix host ``**.foo.com``).
* **Rules**: every (rule, match) is one row with the precedence of the spec
  (:meth:`Route.sort_key`); a rule without a valid backendRef answers 500 (the share of an invalid
  backendRef in a split answers 500 too); a cross-namespace backendRef or certificateRef needs a
  ReferenceGrant.
* **Status**: GatewayClass Accepted (and the backend's supportedFeatures), Gateway Accepted and
  Programmed with each listener's attachedRoutes, supportedKinds and conditions, HTTPRoute
  ``status.parents[]`` with Accepted and ResolvedRefs and the spec's reasons.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from polyingress.core.pipeline.model import (
    BackendProtocol,
    ObjectRef,
    PathModifierType,
    Redirect,
    Route,
    WeightedBackend,
)
from polyingress.core.pipeline.problems import Problem, Severity
from polyingress.core.pipeline.store import Snapshot
from polyingress.core.pipeline.translate.httproute import (
    GATEWAY_GROUP,
    BackendRefSpec,
    ParsedHTTPRoute,
    RuleSpec,
    parse_httproute,
)
from polyingress.core.pipeline.translate.ingress import BackendRef
from polyingress.core.pipeline.translate.secret import CertificateError, certificate_from_secret
from polyingress.core.pipeline.translate.service import app_protocol
from polyingress.core.pipeline.validate import check_host

__all__ = [
    "BACKEND_TLS",
    "CORE_FEATURES",
    "CORE_PROVIDED",
    "HTTPROUTE_EXTENDED",
    "GatewayResult",
    "GatewayStage",
    "GatewayTLS",
    "gateway_addresses",
    "served_features",
    "translate_gateways",
    "with_addresses",
]

Host = str | None
CORE_FEATURES = frozenset({"Gateway", "HTTPRoute", "ReferenceGrant"})
# What the core alone decides for a backend serving HTTPRoutes: listeners on port 8080 (every
# listener is served on --http-port/--https-port), named rules (only in the status) and listener
# isolation (the hosts a more specific listener takes). Not HTTPRouteParentRefPort: upstream's
# HTTPRouteListenerPortMatching needs listeners on different ports to answer differently, and
# here every HTTP listener shares one port.
CORE_PROVIDED = frozenset(
    {"GatewayPort8080", "HTTPRouteNamedRouteRule", "GatewayHTTPListenerIsolation"}
)


# The 24 HTTPRoute extended features of Gateway API v1.6.1 (pkg/features/httproute.go; Retry's
# two sub-features aside), in upstream's order: the README matrix and the conformance report
# list them from here.
HTTPROUTE_EXTENDED = (
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect",
    "HTTPRouteSchemeRedirect",
    "HTTPRoutePathRedirect",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteBackendTimeout",
    "HTTPRouteParentRefPort",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteCORS",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteRetry",
)


# A polyingress capability declared among BackendInfo.gateway_features (not a Gateway API
# feature: left out of supportedFeatures): the backend reaches a Backend whose protocol is
# HTTPS or GRPCS over TLS (ingress-nginx's backend-protocol). Without it such an Ingress
# answers 500, never plain HTTP in silence.
BACKEND_TLS = "polyingress.io/BackendProtocolTLS"


def served_features(declared: Iterable[str]) -> frozenset[str]:
    """The Gateway API features served with a backend that declares ``declared``
    (``BackendInfo.gateway_features``): those, plus what the core provides when it serves
    HTTPRoutes at all."""
    features = frozenset(declared)
    return features | CORE_PROVIDED if "HTTPRoute" in features else features


_V1 = f"{GATEWAY_GROUP}/v1"


@dataclass(frozen=True, slots=True)
class GatewayTLS:
    """The certificate an HTTPS listener serves for a host."""

    secret: tuple[str, str] | None  # (namespace, name); None: not resolvable -> fallback
    gateway: ObjectRef
    field: str


@dataclass(slots=True)
class GatewayResult:
    """What one HTTPRoute contributes (or, from :func:`translate_gateways`, all of them)."""

    rows: dict[Host, list[Route]] = field(default_factory=dict)
    tls: dict[str, GatewayTLS] = field(default_factory=dict)
    refs: dict[str, BackendRef] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    # The listeners it attached to: (Gateway namespace, Gateway name, listener name).
    attached: set[tuple[str, str, str]] = field(default_factory=set)
    # Every Service it names, valid or not (a new Service may make a reference valid).
    services: set[tuple[str, str]] = field(default_factory=set)


@dataclass(slots=True)
class _Listener:
    gateway: ObjectRef
    index: int
    name: str
    port: int
    protocol: str  # HTTP | HTTPS | other (not served)
    hostname: str | None
    allowed_from: str
    selector: Mapping[str, Any] | None
    kinds_ok: bool
    kinds: list[dict[str, str]]
    tls_secret: tuple[str, str] | None
    conditions: list[dict[str, Any]]
    attached: int = 0
    gateway_ok: bool = True  # False: the Gateway itself is not accepted

    @property
    def served(self) -> bool:
        return (
            self.gateway_ok
            and self.protocol in ("HTTP", "HTTPS")
            and not any(c["type"] == "Accepted" and c["status"] == "False" for c in self.conditions)
        )

    @property
    def valid(self) -> bool:
        """Accepted and its references resolved: configured as written."""
        return self.served and not any(
            c["type"] == "ResolvedRefs" and c["status"] == "False" for c in self.conditions
        )

    @property
    def scheme(self) -> str:
        return "https" if self.protocol == "HTTPS" else "http"


def _cond(
    ctype: str, ok: bool, reason: str, message: str, generation: int | None, now: str
) -> dict[str, Any]:
    cond: dict[str, Any] = {
        "type": ctype,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def _meta(obj: Mapping[str, Any]) -> tuple[str, str, int | None]:
    meta = obj.get("metadata") or {}
    gen = meta.get("generation")
    return (
        str(meta.get("namespace") or "default"),
        str(meta.get("name") or ""),
        gen if isinstance(gen, int) else None,
    )


def _of_group(obj: Mapping[str, Any]) -> bool:
    return str(obj.get("apiVersion", "")).startswith(GATEWAY_GROUP + "/")


def _labels_match(labels: Mapping[str, str], selector: Mapping[str, Any]) -> bool:
    """A metav1.LabelSelector: matchLabels and matchExpressions (In, NotIn, Exists,
    DoesNotExist)."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, op = expr.get("key"), expr.get("operator")
        values = expr.get("values") or ()
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def _wild(host: str) -> bool:
    return host.startswith("*.")


def _intersect(listener: str | None, route: str) -> str | None:
    """The hostname requests must have to match both a listener's and a route's hostname (the
    Gateway API's wildcard ``*.x`` matching one label or more), or None if none can."""
    if listener is None:
        return route
    if not _wild(route):
        if not _wild(listener):
            return route if route == listener else None
        return route if route.endswith(listener[1:]) else None
    if not _wild(listener):
        return listener if listener.endswith(route[1:]) else None
    if listener == route or route.endswith(listener[1:]):
        return route
    if listener.endswith(route[1:]):
        return listener
    return None


def _specificity(hostname: str | None) -> tuple[int, int]:
    """How specific a listener's hostname is when a request matches several listeners: an
    exact name, then the longer wildcard, then none."""
    if hostname is None:
        return (0, 0)
    return (1, len(hostname)) if _wild(hostname) else (2, len(hostname))


def _covers(listener: str, host: str) -> bool:
    """Whether every request name of ``host`` (a name or a ``*.x`` wildcard) matches the
    listener hostname."""
    if not _wild(listener):
        return host == listener
    return host.endswith(listener[1:]) and host != listener[2:]


def _isolated(host: str | None, listener: _Listener, others: Sequence[_Listener]) -> bool:
    """Listener isolation (the spec): the requests for ``host`` go to the most specific listener
    of the Gateway (same protocol) matching them, so a route attached through ``listener`` does
    not serve them when a more specific listener matches them all."""
    if host is None:
        return False
    rank = _specificity(listener.hostname)
    return any(
        other is not listener
        and other.served
        and other.protocol == listener.protocol
        and other.hostname is not None
        and _specificity(other.hostname) > rank
        and _covers(other.hostname, host)
        for other in others
    )


def _model_host(host: str | None) -> Host:
    """A Gateway API hostname as a model host: ``*.x`` becomes the suffix host ``**.x``."""
    if host is None:
        return None
    return "*" + host if _wild(host) else host


def _granted(
    snapshot: Snapshot,
    from_kind: str,
    from_group: str,
    from_ns: str,
    to_kind: str,
    to_group: str,
    to_ns: str,
    to_name: str,
) -> bool:
    """Whether a ReferenceGrant in ``to_ns`` lets ``from_kind`` objects in ``from_ns`` refer
    to the object."""
    for (ns, _name), grant in snapshot.of("ReferenceGrant").items():
        if ns != to_ns or not _of_group(grant):
            continue
        spec = grant.get("spec") or {}
        froms = spec.get("from") or ()
        tos = spec.get("to") or ()
        if not any(
            isinstance(f, Mapping)
            and f.get("group", "") == from_group
            and f.get("kind") == from_kind
            and f.get("namespace") == from_ns
            for f in froms
        ):
            continue
        if any(
            isinstance(t, Mapping)
            and t.get("group", "") == to_group
            and t.get("kind") == to_kind
            and t.get("name") in (None, to_name)
            for t in tos
        ):
            return True
    return False


def _ours(snapshot: Snapshot, controller: str) -> dict[str, Mapping[str, Any]]:
    return {
        name: obj
        for (_ns, name), obj in snapshot.of("GatewayClass").items()
        if _of_group(obj) and (obj.get("spec") or {}).get("controllerName") == controller
    }


def _listeners(
    snapshot: Snapshot, gw: Mapping[str, Any], ref: ObjectRef, gen: int | None, now: str
) -> list[_Listener]:
    out: list[_Listener] = []
    names: set[str] = set()
    for i, raw in enumerate((gw.get("spec") or {}).get("listeners") or ()):
        if not isinstance(raw, Mapping):
            continue
        name = str(raw.get("name") or f"listener-{i}")
        protocol = str(raw.get("protocol") or "")
        port = raw.get("port")
        hostname = raw.get("hostname")
        conds: list[dict[str, Any]] = []
        ok = True
        if protocol not in ("HTTP", "HTTPS"):
            conds.append(
                _cond(
                    "Accepted",
                    False,
                    "UnsupportedProtocol",
                    f"protocol {protocol!r} is not served (HTTP and HTTPS are)",
                    gen,
                    now,
                )
            )
            ok = False
        if hostname is not None and (check_host(hostname) or name in names):
            hostname = None
            conds.append(_cond("Accepted", False, "Invalid", "invalid hostname", gen, now))
            ok = False
        names.add(name)
        allowed = raw.get("allowedRoutes") or {}
        ns_spec = allowed.get("namespaces") or {}
        allowed_from = str(ns_spec.get("from") or "Same")
        selector = ns_spec.get("selector") if allowed_from == "Selector" else None
        kinds_ok = True
        kinds: list[dict[str, str]] = []
        wanted = allowed.get("kinds")
        if protocol not in ("HTTP", "HTTPS"):
            pass  # no route kind is supported on a listener of a protocol not served
        elif wanted:
            for k in wanted:
                group = k.get("group", GATEWAY_GROUP) if isinstance(k, Mapping) else None
                kind = k.get("kind") if isinstance(k, Mapping) else None
                if group == GATEWAY_GROUP and kind == "HTTPRoute":
                    kinds.append({"group": GATEWAY_GROUP, "kind": "HTTPRoute"})
                else:
                    kinds_ok = False
        else:
            kinds.append({"group": GATEWAY_GROUP, "kind": "HTTPRoute"})
        tls_secret: tuple[str, str] | None = None
        refs_ok, refs_reason, refs_msg = True, "ResolvedRefs", "references resolved"
        if not kinds_ok:
            refs_ok, refs_reason = False, "InvalidRouteKinds"
            refs_msg = "only HTTPRoute (gateway.networking.k8s.io) routes are supported"
        if protocol == "HTTPS" and ok:
            tls = raw.get("tls") or {}
            mode = tls.get("mode", "Terminate")
            certs = tls.get("certificateRefs") or ()
            if mode != "Terminate":
                conds.append(
                    _cond(
                        "Accepted", False, "UnsupportedValue", "only TLS mode Terminate", gen, now
                    )
                )
                ok = False
            elif not certs:
                refs_ok, refs_reason = False, "InvalidCertificateRef"
                refs_msg = "an HTTPS listener needs a certificateRef"
            else:
                c = certs[0] if isinstance(certs[0], Mapping) else {}
                cns = str(c.get("namespace") or ref.namespace)
                cname = str(c.get("name") or "")
                if c.get("group", "") != "" or c.get("kind", "Secret") != "Secret":
                    refs_ok, refs_reason = False, "InvalidCertificateRef"
                    refs_msg = "certificateRefs must name Secrets"
                elif cns != ref.namespace and not _granted(
                    snapshot, "Gateway", GATEWAY_GROUP, ref.namespace, "Secret", "", cns, cname
                ):
                    refs_ok, refs_reason = False, "RefNotPermitted"
                    refs_msg = f"no ReferenceGrant in {cns} allows this Gateway the Secret"
                elif (secret := snapshot.get("Secret", cns, cname)) is None:
                    refs_ok, refs_reason = False, "InvalidCertificateRef"
                    refs_msg = f"Secret {cns}/{cname} not found"
                elif (bad := _certificate_problem(secret)) is not None:
                    refs_ok, refs_reason = False, "InvalidCertificateRef"
                    refs_msg = f"Secret {cns}/{cname}: {bad}"
                else:
                    tls_secret = (cns, cname)
        if ok:
            conds.append(_cond("Accepted", True, "Accepted", "listener accepted", gen, now))
        conds.append(_cond("ResolvedRefs", refs_ok, refs_reason, refs_msg, gen, now))
        conds.append(_cond("Conflicted", False, "NoConflicts", "no conflicts", gen, now))
        conds.append(
            _cond(
                "Programmed",
                ok and refs_ok,
                "Programmed" if ok and refs_ok else "Invalid",
                "listener served" if ok and refs_ok else "listener not served",
                gen,
                now,
            )
        )
        out.append(
            _Listener(
                gateway=ref,
                index=i,
                name=name,
                port=port if isinstance(port, int) else 0,
                protocol=protocol,
                hostname=str(hostname).lower() if hostname is not None else None,
                allowed_from=allowed_from,
                selector=selector if isinstance(selector, Mapping) else None,
                kinds_ok=kinds_ok,
                kinds=kinds,
                tls_secret=tls_secret if refs_ok else None,
                conditions=conds,
            )
        )
    return out


def _certificate_problem(secret: Mapping[str, Any]) -> str | None:
    """Why a Secret holds no certificate and key a listener can serve, or None."""
    try:
        certificate_from_secret(secret)
    except CertificateError as exc:
        return str(exc)
    return None


def _gateway_problem(gw: Mapping[str, Any]) -> tuple[str, str] | None:
    """Why a Gateway of ours cannot be accepted, whatever its listeners: (reason, message)."""
    infrastructure = (gw.get("spec") or {}).get("infrastructure") or {}
    ref = infrastructure.get("parametersRef") if isinstance(infrastructure, Mapping) else None
    if ref is not None:
        kind = ref.get("kind") if isinstance(ref, Mapping) else None
        return (
            "InvalidParameters",
            f"spec.infrastructure.parametersRef: no parameters are supported ({kind})",
        )
    return None


def _allows(snapshot: Snapshot, listener: _Listener, route_ns: str) -> bool:
    if not listener.kinds_ok and not listener.kinds:
        return False
    if listener.allowed_from == "All":
        return True
    if listener.allowed_from == "Same":
        return route_ns == listener.gateway.namespace
    if listener.allowed_from == "Selector" and listener.selector is not None:
        ns_obj = snapshot.get("Namespace", "", route_ns) or {}
        labels = (ns_obj.get("metadata") or {}).get("labels") or {}
        labels = {**labels, "kubernetes.io/metadata.name": route_ns}
        return bool(_labels_match(labels, listener.selector))
    return False


@dataclass(slots=True)
class _Backends:
    """A rule's backendRefs resolved: the split, and the first reason one is invalid."""

    split: list[WeightedBackend]
    reason: str | None = None
    message: str = ""


# A Service port's appProtocol -> the protocol the proxy talks to it and the feature that needs
# (GEP-1911). WebSocket is HTTP/1.1 with the upgrade passed through, as on every HTTP backend.
_APP_PROTOCOLS: dict[str | None, tuple[BackendProtocol, str | None]] = {
    None: (BackendProtocol.HTTP, None),
    "http": (BackendProtocol.HTTP, None),
    "kubernetes.io/h2c": (BackendProtocol.H2C, "HTTPRouteBackendProtocolH2C"),
    "kubernetes.io/ws": (BackendProtocol.HTTP, "HTTPRouteBackendProtocolWebSocket"),
}


def _protocol_of(
    snapshot: Snapshot, b: BackendRefSpec, features: frozenset[str] | None
) -> tuple[BackendProtocol | None, tuple[str, str] | None]:
    """The protocol of a backendRef's Service port (its appProtocol), or None with why the
    reference is invalid: an appProtocol the backend does not serve (UnsupportedProtocol)."""
    app = app_protocol(snapshot, b.namespace, b.name, str(b.port))
    found = _APP_PROTOCOLS.get(app)
    needs = found[1] if found is not None else None
    if found is None or (features is not None and needs is not None and needs not in features):
        return None, (
            "UnsupportedProtocol",
            f"{b.field}: Service {b.namespace}/{b.name} port {b.port}: appProtocol {app!r} "
            "is not served",
        )
    return found[0], None


def _resolve_backends(
    snapshot: Snapshot,
    route: ParsedHTTPRoute,
    refs: Sequence[BackendRefSpec],
    used: dict[str, BackendRef],
    features: frozenset[str] | None = None,
) -> _Backends:
    out = _Backends(split=[])
    for b in refs:
        name: str | None = None
        why: tuple[str, str] | None = None
        if b.group != "" or b.kind != "Service":
            why = ("InvalidKind", f"{b.field}: kind {b.group or 'core'}/{b.kind} is not supported")
        elif b.port is None:
            why = ("UnsupportedValue", f"{b.field}.port: a Service backendRef needs a port")
        elif b.namespace != route.ref.namespace and not _granted(
            snapshot,
            "HTTPRoute",
            GATEWAY_GROUP,
            route.ref.namespace,
            "Service",
            "",
            b.namespace,
            b.name,
        ):
            why = (
                "RefNotPermitted",
                f"{b.field}: no ReferenceGrant in {b.namespace} allows this route the Service",
            )
        elif snapshot.get("Service", b.namespace, b.name) is None:
            why = ("BackendNotFound", f"{b.field}: Service {b.namespace}/{b.name} not found")
        else:
            protocol, why = _protocol_of(snapshot, b, features)
            if protocol is not None:
                ref = BackendRef(b.namespace, b.name, str(b.port), False, protocol)
                name = ref.name
                used.setdefault(name, ref)
        if why is not None and out.reason is None:
            out.reason, out.message = why
        out.split.append(
            WeightedBackend(backend=name, weight=b.weight, request_headers=b.request_headers)
        )
    return out


def _rows(
    route: ParsedHTTPRoute,
    rule: RuleSpec,
    backends: _Backends,
    mirrors: tuple[tuple[str, tuple[int, int] | None], ...],
    host: Host,
    listeners: Sequence[_Listener],
    unsupported: bool,
) -> list[Route]:
    """The rows of one rule on one host: one per match, and per scheme when a redirect keeps
    the listener's port (it differs between an HTTP and an HTTPS listener)."""
    groups: list[tuple[tuple[str, ...], int | None]] = []
    schemes = tuple(sorted({ln.scheme for ln in listeners}))
    redirect = rule.redirect
    if redirect is not None and not rule.redirect_port_set:
        # No port given: the scheme's well-known one when the redirect sets a scheme, else the
        # port of the listener the request came in on.
        if redirect.scheme is not None:
            groups.append((schemes, {"http": 80, "https": 443}[redirect.scheme]))
        else:
            by_scheme: dict[str, int] = {}
            for ln in listeners:
                by_scheme.setdefault(ln.scheme, ln.port)
            groups.extend(((s,), p) for s, p in sorted(by_scheme.items()))
    else:
        groups.append((schemes, redirect.port if redirect is not None else None))
    status: int | None = None
    split: tuple[WeightedBackend, ...] = ()
    backend: str | None = None
    request_headers = rule.request_headers
    if unsupported:
        status = 500
    elif redirect is None:
        live = [w for w in backends.split if w.weight > 0]
        if not backends.split or not live:
            status = 500  # no backendRefs, or all with weight 0: nothing to send to
        elif len(live) == 1 and live[0].backend is not None and len(backends.split) == 1:
            # One backend: its own header filter is the row's, after the rule's.
            backend = live[0].backend
            request_headers = live[0].headers(request_headers)
        elif all(w.backend is None for w in live):
            status = 500
        else:
            split = tuple(backends.split)
    rows: list[Route] = []
    for j, m in enumerate(rule.matches):
        for group_schemes, port in groups:
            rows.append(
                Route(
                    path=m.path,
                    path_type=m.path_type,
                    backend=backend,
                    source=route.ref,
                    method=m.method,
                    headers=m.headers,
                    query=m.query,
                    schemes=group_schemes,
                    split=split,
                    status=status,
                    redirect=(
                        Redirect(
                            status=redirect.status,
                            scheme=redirect.scheme,
                            hostname=redirect.hostname,
                            port=port,
                            path=redirect.path,
                        )
                        if redirect is not None and status is None
                        else None
                    ),
                    rewrite=rule.rewrite if status is None else None,
                    request_headers=request_headers if status is None else None,
                    response_headers=rule.response_headers if status is None else None,
                    mirrors=tuple(m for m, _f in mirrors) if status is None else (),
                    mirror_fractions=(
                        tuple(f or (1, 1) for _m, f in mirrors)
                        if status is None and any(f is not None for _m, f in mirrors)
                        else ()
                    ),
                    timeout=rule.timeout if status is None else None,
                    cors=rule.cors if status is None else None,
                    order=(*route.order, rule.index, j),
                )
            )
    return rows


class GatewayStage:
    """The Gateway API stage, kept between builds: each HTTPRoute's contribution is computed
    on its own and recomputed only when it, a Service it names, or the context (GatewayClasses,
    Gateways and their listeners, ReferenceGrants, Namespaces) changed, so the cost of a change
    grows with the change, not with the number of routes.

    ``features``: the Gateway API features the selected backend serves (None: all); a rule
    using another answers 500 and its route is not Accepted (UnsupportedValue).
    """

    def __init__(
        self,
        controller: str,
        *,
        features: frozenset[str] | None = None,
        backend: str = "",
        now: str = "",
    ) -> None:
        self.controller = controller
        self.features = features
        self.backend = backend
        self.now = now
        self.classes: dict[str, Mapping[str, Any]] = {}
        self.listeners: dict[tuple[str, str], list[_Listener]] = {}
        self.gateways: dict[tuple[str, str], int | None] = {}
        # Gateways of ours that cannot be accepted: (reason, message).
        self.gateway_problems: dict[tuple[str, str], tuple[str, str]] = {}
        self._signature: object = None
        self.routes: dict[tuple[str, str], GatewayResult] = {}
        self._by_service: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._rows: dict[Host, dict[tuple[str, str], list[Route]]] = {}
        self._tls: dict[str, dict[tuple[str, str], GatewayTLS]] = {}
        self._refs: dict[str, tuple[BackendRef, int]] = {}
        self._attached: Counter[tuple[str, str, str]] = Counter()
        self._order: list[tuple[str, str]] | None = None  # sorted(self.routes), kept

    # -- the update ---------------------------------------------------------------------------

    def update(
        self, snapshot: Snapshot, keys: Iterable[tuple[str, str, str]] | None = None
    ) -> tuple[set[Host], set[str]]:
        """Bring the stage up to ``snapshot``; ``keys`` the changed objects (None: all).
        Returns the hosts whose rows changed and the hosts whose TLS changed."""
        changed = None if keys is None else set(keys)
        todo: set[tuple[str, str]] = set()
        if changed is None or any(k[0] in _CONTEXT for k in changed):
            self._context(snapshot)
            signature = self._context_signature()
            every = changed is None or any(k[0] in ("ReferenceGrant", "Namespace") for k in changed)
            if every or signature != self._signature:
                todo.update(self.routes, snapshot.of("HTTPRoute"))
            self._signature = signature
        if changed is not None:
            for kind, ns, name in changed:
                if kind == "HTTPRoute":
                    todo.add((ns, name))
                elif kind == "Service":
                    todo.update(self._by_service.get((ns, name), ()))
        hosts: set[Host] = set()
        tls_hosts: set[str] = set()
        for key in todo:
            old = self.routes.pop(key, None)
            if old is not None:
                self._account(key, old, hosts, tls_hosts, add=False)
            obj = snapshot.get("HTTPRoute", *key)
            if obj is None or not _of_group(obj):
                if old is not None:
                    self._order = None
                continue
            if old is None:
                self._order = None
            res = GatewayResult()
            if self.features is not None and "HTTPRoute" not in self.features:
                _not_served(obj, self.listeners, self.backend, self.controller, self.now, res)
            else:
                _route(
                    snapshot,
                    obj,
                    self.listeners,
                    self.features,
                    self.backend,
                    self.controller,
                    self.now,
                    res,
                )
            self.routes[key] = res
            self._account(key, res, hosts, tls_hosts, add=True)
        return hosts, tls_hosts

    def _context(self, snapshot: Snapshot) -> None:
        self.classes = _ours(snapshot, self.controller)
        self.listeners, self.gateways, self.gateway_problems = {}, {}, {}
        for (ns, name), gw in sorted(snapshot.of("Gateway").items()):
            spec = gw.get("spec") or {}
            if not _of_group(gw) or spec.get("gatewayClassName") not in self.classes:
                continue
            _ns, _n, gen = _meta(gw)
            ref = ObjectRef(kind="Gateway", namespace=ns, name=name)
            listeners = _listeners(snapshot, gw, ref, gen, self.now)
            problem = _gateway_problem(gw)
            if problem is not None:
                self.gateway_problems[(ns, name)] = problem
                for ln in listeners:
                    ln.gateway_ok = False
            self.listeners[(ns, name)] = listeners
            self.gateways[(ns, name)] = gen

    def _context_signature(self) -> object:
        """What a route's translation reads of the context."""
        return tuple(
            (
                key,
                tuple(
                    (
                        ln.name,
                        ln.port,
                        ln.protocol,
                        ln.hostname,
                        ln.allowed_from,
                        repr(ln.selector),
                        ln.kinds_ok,
                        ln.tls_secret,
                        ln.served,
                    )
                    for ln in lst
                ),
            )
            for key, lst in sorted(self.listeners.items())
        )

    def _account(
        self,
        key: tuple[str, str],
        res: GatewayResult,
        hosts: set[Host],
        tls_hosts: set[str],
        *,
        add: bool,
    ) -> None:
        for host, rows in res.rows.items():
            hosts.add(host)
            if add:
                self._rows.setdefault(host, {})[key] = rows
            else:
                _drop(self._rows, host, key)
        for tls_host, tls in res.tls.items():
            tls_hosts.add(tls_host)
            if add:
                self._tls.setdefault(tls_host, {})[key] = tls
            else:
                _drop(self._tls, tls_host, key)
        for bname, ref in res.refs.items():
            _ref, uses = self._refs.get(bname, (ref, 0))
            uses += 1 if add else -1
            if uses:
                self._refs[bname] = (ref, uses)
            else:
                del self._refs[bname]
        for svc in res.services:
            if add:
                self._by_service.setdefault(svc, set()).add(key)
            else:
                _drop(self._by_service, svc, key)
        for listener in res.attached:
            self._attached[listener] += 1 if add else -1

    # -- what the builder reads ---------------------------------------------------------------

    def rows_of(self, host: Host) -> list[Route]:
        return [row for rows in self._rows.get(host, {}).values() for row in rows]

    def hosts(self) -> set[Host]:
        return set(self._rows)

    def default_tls(self) -> tuple[str, str] | None:
        """The Secret whose certificate answers TLS handshakes with no or an unknown SNI: that
        of the first HTTPS listener without hostname (the spec: it matches every hostname),
        by Gateway namespace/name then listener order, whose certificate reference resolves;
        None: the fallback certificate."""
        for _key, listeners in sorted(self.listeners.items()):
            for ln in listeners:
                if ln.served and ln.scheme == "https" and ln.hostname is None and ln.tls_secret:
                    return ln.tls_secret
        return None

    def tls_of(self, host: str) -> GatewayTLS | None:
        """The certificate of the HTTPS listener serving ``host`` (of the first route, by
        namespace/name, that attached the host to an HTTPS listener)."""
        found = self._tls.get(host)
        return found[min(found)] if found else None

    def ref(self, bname: str) -> BackendRef:
        return self._refs[bname][0]

    def _sorted_routes(self) -> list[tuple[str, str]]:
        if self._order is None:
            self._order = sorted(self.routes)
        return self._order

    def problems(self) -> list[Problem]:
        routes = self.routes
        return [p for key in self._sorted_routes() for p in routes[key].problems]

    def statuses(self) -> list[dict[str, Any]]:
        """The status documents: GatewayClasses, Gateways, then HTTPRoutes, each sorted."""
        now = self.now
        docs: list[dict[str, Any]] = []
        # Upstream names only: a polyingress capability (BACKEND_TLS, the annotations'
        # "polyingress.io/..." features) has a "/" in its name.
        supported = sorted(
            f
            for f in (self.features or frozenset()) - {"Gateway", "ReferenceGrant"}
            if "/" not in f
        )
        for name, obj in sorted(self.classes.items()):
            _ns, _n, gen = _meta(obj)
            status: dict[str, Any] = {
                "conditions": [
                    _cond("Accepted", True, "Accepted", "handled by polyingress", gen, now),
                    _cond(
                        "SupportedVersion", True, "SupportedVersion", "Gateway API v1.6", gen, now
                    ),
                ]
            }
            if self.features is not None:
                status["supportedFeatures"] = [{"name": f} for f in supported]
            docs.append(_doc("GatewayClass", "", name, status))
        for (ns, name), gen in self.gateways.items():
            lst = self.listeners[(ns, name)]
            problem = self.gateway_problems.get((ns, name))
            docs.append(_gateway_doc(ns, name, gen, lst, self._attached, now, problem))
        routes = self.routes
        for key in self._sorted_routes():
            docs.extend(routes[key].statuses)
        return docs


_CONTEXT = frozenset({"GatewayClass", "Gateway", "ReferenceGrant", "Namespace", "Secret"})


def gateway_addresses(values: Iterable[str]) -> list[dict[str, str]]:
    """``status.addresses`` of a Gateway served at ``values`` (the addresses the controller
    publishes, as for an Ingress's ``status.loadBalancer``): ``IPAddress`` for an IP (in its
    canonical form), ``Hostname`` otherwise; duplicates dropped; IPs first, then by value: the
    order of an Ingress's ``status.loadBalancer.ingress`` (``kubernetes.status.lb_entries``), so
    the order the addresses are given in changes nothing, on every path that publishes them."""
    entries: set[tuple[str, str]] = set()
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        try:
            entries.add(("IPAddress", str(ipaddress.ip_address(value))))
        except ValueError:
            entries.add(("Hostname", value.lower()))
    ordered = sorted(entries, key=lambda e: (e[0] != "IPAddress", e[1]))
    return [{"type": kind, "value": value} for kind, value in ordered]


def with_addresses(
    documents: Iterable[Mapping[str, Any]], addresses: Sequence[Mapping[str, str]]
) -> list[dict[str, Any]]:
    """The status documents with every Gateway's ``status.addresses`` set to ``addresses``
    (omitted when there are none: the spec's "not yet known"); other kinds unchanged."""
    out: list[dict[str, Any]] = []
    for doc in documents:
        if doc.get("kind") != "Gateway":
            out.append(dict(doc))
            continue
        status = {k: v for k, v in doc["status"].items() if k != "addresses"}
        if addresses:
            status = {"addresses": [dict(a) for a in addresses], **status}
        out.append({**doc, "status": status})
    return out


def _drop(index: dict[Any, Any], outer: Any, key: Any) -> None:
    inner = index.get(outer)
    if inner is not None:
        inner.discard(key) if isinstance(inner, set) else inner.pop(key, None)
        if not inner:
            del index[outer]


def _gateway_doc(
    ns: str,
    name: str,
    gen: int | None,
    lst: list[_Listener],
    attached: Mapping[tuple[str, str, str], int],
    now: str,
    problem: tuple[str, str] | None = None,
) -> dict[str, Any]:
    any_ok = any(ln.served for ln in lst)
    if problem is not None:
        accepted = _cond("Accepted", False, problem[0], problem[1], gen, now)
    elif any_ok and all(ln.valid for ln in lst):
        accepted = _cond("Accepted", True, "Accepted", "Gateway accepted", gen, now)
    else:
        # The spec's reason when a listener is not valid (unsupported, or a reference that does
        # not resolve), whether the Gateway is accepted (some listener is served) or not.
        message = "some listeners are not valid" if any_ok else "no listener can be served"
        accepted = _cond("Accepted", any_ok, "ListenersNotValid", message, gen, now)
    return _doc(
        "Gateway",
        ns,
        name,
        {
            "conditions": [
                accepted,
                _cond(
                    "Programmed",
                    any_ok,
                    "Programmed" if any_ok else "Invalid",
                    "served on the HTTP and HTTPS ports" if any_ok else "not served",
                    gen,
                    now,
                ),
            ],
            "listeners": [
                {
                    "name": ln.name,
                    "supportedKinds": ln.kinds,
                    "attachedRoutes": attached.get((ns, name, ln.name), 0),
                    "conditions": ln.conditions,
                }
                for ln in lst
            ],
        },
    )


def translate_gateways(
    snapshot: Snapshot,
    controller: str,
    *,
    features: frozenset[str] | None = None,
    backend: str = "",
    now: str = "",
) -> GatewayStage:
    """A fresh stage brought up to ``snapshot`` (what a first build does)."""
    stage = GatewayStage(controller, features=features, backend=backend, now=now)
    stage.update(snapshot)
    return stage


def _not_served(
    obj: Mapping[str, Any],
    listeners: Mapping[tuple[str, str], list[_Listener]],
    backend: str,
    controller: str,
    now: str,
    result: GatewayResult,
) -> None:
    """The status of an HTTPRoute of ours when the backend serves no HTTPRoute at all."""
    ns, name, gen = _meta(obj)
    parents = []
    why = f"the {backend} backend does not serve HTTPRoutes"
    for p in ((obj.get("spec") or {}).get("parentRefs")) or ():
        if isinstance(p, Mapping) and (str(p.get("namespace") or ns), p.get("name")) in listeners:
            conds = [_cond("Accepted", False, "UnsupportedValue", why, gen, now)]
            parents.append(_parent_status(p, conds, controller))
    if parents:
        ref = ObjectRef(kind="HTTPRoute", namespace=ns, name=name)
        result.problems.append(Problem(ref=ref, field="", message=why, reason="UnsupportedValue"))
        result.statuses.append(_doc("HTTPRoute", ns, name, {"parents": parents}))


def _doc(kind: str, ns: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    meta = {"name": name} if not ns else {"namespace": ns, "name": name}
    return {"apiVersion": _V1, "kind": kind, "metadata": meta, "status": status}


def _route(
    snapshot: Snapshot,
    obj: Mapping[str, Any],
    listeners: Mapping[tuple[str, str], list[_Listener]],
    features: frozenset[str] | None,
    backend: str,
    controller: str,
    now: str,
    result: GatewayResult,
) -> None:
    ns, name, gen = _meta(obj)
    ref = ObjectRef(kind="HTTPRoute", namespace=ns, name=name)
    parsed, bad_field, why = parse_httproute(obj)
    raw_parents = ((obj.get("spec") or {}).get("parentRefs")) or ()
    # The parents that are ours (a Gateway of our class), in order.
    ours: list[tuple[Mapping[str, Any], tuple[str, str]]] = []
    for p in raw_parents:
        if not isinstance(p, Mapping):
            continue
        if p.get("group", GATEWAY_GROUP) != GATEWAY_GROUP or p.get("kind", "Gateway") != "Gateway":
            continue
        key = (str(p.get("namespace") or ns), str(p.get("name") or ""))
        if key in listeners:
            ours.append((p, key))
    if not ours:
        return
    parents_status: list[dict[str, Any]] = []
    if parsed is None:
        message = f"{bad_field}: {why}"
        result.problems.append(Problem(ref=ref, field=bad_field, message=why))
        for p, _key in ours:
            parents_status.append(
                _parent_status(
                    p,
                    controller=controller,
                    conditions=[
                        _cond("Accepted", False, "UnsupportedValue", message, gen, now),
                        _cond("ResolvedRefs", True, "ResolvedRefs", "not resolved", gen, now),
                    ],
                )
            )
        result.statuses.append(_doc("HTTPRoute", ns, name, {"parents": parents_status}))
        return
    # Backends once per rule (they do not depend on the parent).
    for rule in parsed.rules:
        for b in (*rule.backends, *rule.mirrors):
            result.services.add((b.namespace, b.name))
    used: dict[str, BackendRef] = {}
    resolved = [
        _resolve_backends(snapshot, parsed, rule.backends, used, features) for rule in parsed.rules
    ]
    mirrors = [
        tuple(
            (w.backend, spec.fraction)
            for spec, w in zip(
                rule.mirrors,
                _resolve_backends(snapshot, parsed, rule.mirrors, used, features).split,
                strict=True,
            )
            if w.backend is not None and (spec.fraction is None or spec.fraction[0] > 0)
        )
        for rule in parsed.rules
    ]
    refs_reason = next((r.reason for r in resolved if r.reason is not None), None)
    refs_message = next((r.message for r in resolved if r.reason is not None), "")
    lacking: list[tuple[str, str]] = []  # (field, what): rules this backend cannot serve
    for rule in parsed.rules:
        f = f"spec.rules[{rule.index}]"
        lacking.extend(rule.unsupported)
        if features is not None:
            missing = sorted(rule.features - features)
            if missing:
                lacking.append((f, f"{', '.join(missing)} (not served by the {backend} backend)"))
    for rule_field, what in lacking:
        result.problems.append(
            Problem(
                ref=ref,
                field=rule_field,
                message=f"not supported: {what}; the rule answers 500",
                reason="UnsupportedValue",
            )
        )
    if refs_reason is not None:
        result.problems.append(
            Problem(
                ref=ref,
                field="spec.rules",
                message=refs_message + "; its share of requests answers 500",
                severity=Severity.WARNING,
                reason=refs_reason,
            )
        )
    unsupported_rules = {
        rule.index
        for rule in parsed.rules
        if rule.unsupported or (features is not None and rule.features - features)
    }
    served_any = False
    for p, key in ours:
        section = p.get("sectionName")
        port = p.get("port")
        candidates = [
            ln
            for ln in listeners[key]
            if (section is None or ln.name == section) and (port is None or ln.port == port)
        ]
        if not candidates:
            conds = [
                _cond(
                    "Accepted",
                    False,
                    "NoMatchingParent",
                    "no listener of the Gateway has this sectionName/port",
                    gen,
                    now,
                )
            ]
        else:
            allowed = [
                ln for ln in candidates if ln.served and _allows(snapshot, ln, parsed.ref.namespace)
            ]
            by_host: dict[Host, list[_Listener]] = {}
            matched: list[_Listener] = []  # the listeners the route attaches to
            for ln in allowed:
                names: Iterable[str | None] = parsed.hostnames or (None,)
                for h in names:
                    hit = ln.hostname if h is None else _intersect(ln.hostname, h)
                    if hit is not None or (h is None and ln.hostname is None):
                        if ln not in matched:
                            matched.append(ln)
                        if not _isolated(hit, ln, listeners[key]):
                            by_host.setdefault(_model_host(hit), []).append(ln)
            if not allowed:
                conds = [
                    _cond(
                        "Accepted",
                        False,
                        "NotAllowedByListeners",
                        "no listener allows routes of this namespace or kind",
                        gen,
                        now,
                    )
                ]
            elif not matched:
                conds = [
                    _cond(
                        "Accepted",
                        False,
                        "NoMatchingListenerHostname",
                        "no hostname of the route matches a listener's",
                        gen,
                        now,
                    )
                ]
            else:
                served_any = True
                for ln in matched:
                    result.attached.add((ln.gateway.namespace, ln.gateway.name, ln.name))
                for host, lns in by_host.items():
                    for rule, backends, mir in zip(parsed.rules, resolved, mirrors, strict=True):
                        result.rows.setdefault(host, []).extend(
                            _rows(
                                parsed,
                                rule,
                                backends,
                                mir,
                                host,
                                lns,
                                rule.index in unsupported_rules,
                            )
                        )
                    for ln in lns:
                        if ln.scheme == "https" and host is not None:
                            result.tls.setdefault(
                                host,
                                GatewayTLS(
                                    secret=ln.tls_secret,
                                    gateway=ln.gateway,
                                    field=f"spec.listeners[{ln.index}].tls",
                                ),
                            )
                if lacking:
                    conds = [
                        _cond(
                            "Accepted",
                            False,
                            "UnsupportedValue",
                            "; ".join(f"{f}: {w}" for f, w in lacking),
                            gen,
                            now,
                        )
                    ]
                else:
                    conds = [_cond("Accepted", True, "Accepted", "route attached", gen, now)]
        conds.append(
            _cond(
                "ResolvedRefs",
                refs_reason is None,
                refs_reason or "ResolvedRefs",
                refs_message or "references resolved",
                gen,
                now,
            )
        )
        parents_status.append(_parent_status(p, conds, controller))
    if served_any:
        result.refs.update(used)
    result.statuses.append(_doc("HTTPRoute", ns, name, {"parents": parents_status}))


def _parent_status(
    ref: Mapping[str, Any], conditions: list[dict[str, Any]], controller: str
) -> dict[str, Any]:
    # The parentRef as the API server holds it: group and kind defaulted (the CRD's defaults),
    # so that a client matching status.parents to spec.parentRefs finds it.
    parent = {"group": GATEWAY_GROUP, "kind": "Gateway", **ref}
    return {"parentRef": parent, "controllerName": controller, "conditions": conditions}


def redirect_uses_prefix(route: Route) -> bool:
    """Whether a row's redirect or rewrite replaces the matched prefix (renderers need the
    matched prefix then)."""
    for mod in (
        route.redirect.path if route.redirect is not None else None,
        route.rewrite.path if route.rewrite is not None else None,
    ):
        if mod is not None and mod.type is PathModifierType.PREFIX:
            return True
    return False
