"""Snapshot of Kubernetes objects -> RouteModel, exactly per the Ingress v1 specification.

Stages, in a fixed order: IngressClass selection -> Ingress validation -> host/path merge with
conflict resolution (oldest Ingress wins) -> catch-all merge -> Service/EndpointSlice resolution
-> TLS Secrets -> ConfigMap settings. Every problem names the object and field.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .annotations import Annotations, parse_annotations
from .model import (
    Backend,
    Certificate,
    GlobalSettings,
    ObjectRef,
    PathType,
    Route,
    RouteModel,
    TLSBinding,
    VirtualHost,
    host_sort_key,
)
from .problems import Problem, Severity
from .store import Snapshot
from .translate.ingress import BackendRef, ParsedIngress, PathRule, parse_ingress
from .translate.secret import CertificateError, certificate_from_secret
from .translate.service import SliceIndex, backend_name, first_port, resolve_backend

__all__ = ["BuildOptions", "BuildResult", "build_model"]

DEFAULT_CONTROLLER_CLASS = "polyingress.io/controller"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildOptions:
    controller_class: str = DEFAULT_CONTROLLER_CLASS
    watch_ingress_without_class: bool = False
    default_backend_service: tuple[str, str] | None = None
    configmap: tuple[str, str] | None = None
    annotations_prefix: str = "polyingress.io"


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildResult:
    """The model plus everything found on the way.

    ``served`` lists the Ingresses of our class that were accepted (possibly with warnings);
    ``rejected`` those refused; ``ignored`` those not of our class. ``without_class`` are the
    ignored ones that name no class at all (neither ``spec.ingressClassName`` nor the
    ``kubernetes.io/ingress.class`` annotation): no IngressClass of ours is the default and
    ``watch_ingress_without_class`` is off, so nobody may serve them.
    """

    model: RouteModel
    problems: tuple[Problem, ...] = ()
    served: tuple[ObjectRef, ...] = ()
    rejected: tuple[ObjectRef, ...] = ()
    ignored: tuple[ObjectRef, ...] = ()
    without_class: tuple[ObjectRef, ...] = ()

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.WARNING)


@dataclass
class _Cache:
    """Per-object translation caches keyed by object identity (the store never mutates)."""

    ingresses: dict[
        tuple[str, str], tuple[Mapping[str, Any], ParsedIngress | None, list[Problem]]
    ] = field(default_factory=dict)
    backends: dict[str, tuple[tuple[Any, ...], Backend]] = field(default_factory=dict)
    routes: dict[int, tuple[Any, Route]] = field(default_factory=dict)
    annotations: dict[tuple[str, str], tuple[Any, str, Annotations, list[Problem]]] = field(
        default_factory=dict
    )
    vhosts: dict[str | None, VirtualHost] = field(default_factory=dict)


_CACHE = _Cache()


def _parse_cached(key: tuple[str, str], obj: Mapping[str, Any]) -> tuple[Any, list[Problem]]:
    hit = _CACHE.ingresses.get(key)
    if hit is not None and hit[0] is obj:
        return hit[1], hit[2]
    parsed, problems = parse_ingress(obj)
    _CACHE.ingresses[key] = (obj, parsed, problems)
    return parsed, problems


def _annotations_cached(
    key: tuple[str, str], obj: Mapping[str, Any], parsed: ParsedIngress, prefix: str
) -> tuple[Annotations, list[Problem]]:
    hit = _CACHE.annotations.get(key)
    if hit is not None and hit[0] is obj and hit[1] == prefix:
        return hit[2], hit[3]
    meta = obj.get("metadata") or {}
    values, problems = parse_annotations(parsed.ref, meta.get("annotations"), prefix=prefix)
    _CACHE.annotations[key] = (obj, prefix, values, list(problems))
    return values, list(problems)


def _prune_cache(live: Mapping[tuple[str, str], Any]) -> None:
    for cache in (_CACHE.ingresses, _CACHE.annotations):
        if len(cache) > len(live) + 64:
            for key in [k for k in cache if k not in live]:
                del cache[key]


def _our_classes(snapshot: Snapshot, opts: BuildOptions) -> tuple[set[str], bool]:
    ours: set[str] = set()
    default = False
    for (_ns, name), obj in snapshot.of("IngressClass").items():
        spec = obj.get("spec") or {}
        if spec.get("controller") != opts.controller_class:
            continue
        ours.add(name)
        ann = (obj.get("metadata") or {}).get("annotations") or {}
        if str(ann.get(DEFAULT_CLASS_ANNOTATION, "")).lower() == "true":
            default = True
    return ours, default


def _is_ours(p: ParsedIngress, ours: set[str], default: bool, opts: BuildOptions) -> bool:
    if p.class_name is not None:
        return p.class_name in ours
    if p.legacy_class is not None:
        return p.legacy_class in ours
    return default or opts.watch_ingress_without_class


def names_no_class(obj: Mapping[str, Any]) -> bool:
    """Neither ``spec.ingressClassName`` nor the legacy annotation, decided on the raw fields
    (so that it holds for an Ingress that failed validation too)."""
    spec = obj.get("spec")
    ann = (obj.get("metadata") or {}).get("annotations")
    cls = spec.get("ingressClassName") if isinstance(spec, Mapping) else None
    legacy = ann.get(LEGACY_CLASS_ANNOTATION) if isinstance(ann, Mapping) else None
    return cls is None and legacy is None


def _prefix_covers(prefix: str, path: str) -> bool:
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def _merge_catch_all(own: list[Route], catch_all: list[Route]) -> list[Route]:
    """Add host-less rows to a host's table with lower precedence than the host's own rows.

    A catch-all row is dropped when the host has a row with the same key, or a Prefix row that
    covers its path: every request the catch-all row could match is then matched by a host row
    first. A kept catch-all row cannot steal a request from a host row (proof in the tests), so
    the merged table keeps the plain rule "Exact first, then longest Prefix".
    """
    keys = {(r.path, r.path_type) for r in own}
    prefixes = [r.path for r in own if r.path_type is PathType.PREFIX]
    merged = list(own)
    for row in catch_all:
        if (row.path, row.path_type) in keys:
            continue
        if any(_prefix_covers(p, row.path) for p in prefixes):
            continue
        merged.append(
            Route(
                path=row.path,
                path_type=row.path_type,
                backend=row.backend,
                source=row.source,
                from_catch_all=True,
            )
        )
    return merged


_SETTING_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def _settings(snapshot: Snapshot, opts: BuildOptions, problems: list[Problem]) -> GlobalSettings:
    if opts.configmap is None:
        return GlobalSettings()
    ns, name = opts.configmap
    ref = ObjectRef(kind="ConfigMap", namespace=ns, name=name)
    cm = snapshot.get("ConfigMap", ns, name)
    if cm is None:
        return GlobalSettings(source=ref)
    values = []
    data = cm.get("data") or {}
    for key in sorted(data):
        value = data[key]
        if not isinstance(key, str) or not _SETTING_KEY.match(key):
            problems.append(
                Problem(
                    ref=ref,
                    field=f"data[{key!r}]",
                    message="key must be lowercase letters, digits and '-'; ignored",
                    severity=Severity.WARNING,
                    reason="InvalidSetting",
                )
            )
            continue
        if (
            not isinstance(value, str)
            or len(value) > 1024
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
        ):
            problems.append(
                Problem(
                    ref=ref,
                    field=f"data[{key!r}]",
                    message="value must be printable text of at most 1024 characters; ignored",
                    severity=Severity.WARNING,
                    reason="InvalidSetting",
                )
            )
            continue
        values.append((key, value))
    return GlobalSettings(values=tuple(values), source=ref)


def build_model(snapshot: Snapshot, opts: BuildOptions | None = None) -> BuildResult:
    """Build the model for a snapshot. Pure: same snapshot and options, same result."""
    # The build allocates hundreds of thousands of small immutable objects and creates no
    # cycles: pausing the cyclic GC halves its time at 10,000 Ingresses.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _build(snapshot, opts or BuildOptions())
    finally:
        if enabled:
            gc.enable()


def _build(snapshot: Snapshot, opts: BuildOptions) -> BuildResult:
    problems: list[Problem] = []
    ours, default_class = _our_classes(snapshot, opts)

    accepted: list[ParsedIngress] = []
    settings_of: dict[ObjectRef, Annotations] = {}
    rejected: list[ObjectRef] = []
    ignored: list[ObjectRef] = []
    without_class: list[ObjectRef] = []
    for key in sorted(snapshot.of("Ingress")):
        obj = snapshot.of("Ingress")[key]
        parsed, found = _parse_cached(key, obj)
        if parsed is None:
            mine = invalid_is_ours(obj, ours, default_class, opts)
            ref = found[0].ref
            if mine:
                problems.extend(found)
                rejected.append(ref)
            else:
                ignored.append(ref)
                if names_no_class(obj):
                    without_class.append(ref)
            continue
        if not _is_ours(parsed, ours, default_class, opts):
            ignored.append(parsed.ref)
            if names_no_class(obj):
                without_class.append(parsed.ref)
            continue
        values, ann_problems = _annotations_cached(key, obj, parsed, opts.annotations_prefix)
        problems.extend(ann_problems)
        if any(p.severity is Severity.ERROR for p in ann_problems):
            rejected.append(parsed.ref)
            continue
        settings_of[parsed.ref] = values
        accepted.append(parsed)

    _prune_cache(snapshot.of("Ingress"))
    accepted.sort(key=lambda p: p.order)  # oldest first: the oldest wins every conflict

    # Host/path merge with conflicts.
    tables: dict[str | None, dict[tuple[str, PathType], Route]] = {}
    winners: dict[tuple[str | None, str, PathType], ObjectRef] = {}
    needed: dict[str, BackendRef] = {}
    users: dict[str, list[tuple[ObjectRef, str]]] = {}
    live_rules: set[int] = set()
    for ing in accepted:
        for rule in ing.rules:
            rkey = (rule.host, rule.path, rule.path_type)
            if rkey in winners:
                problems.append(_path_conflict(ing.ref, rule, winners[rkey]))
                continue
            winners[rkey] = ing.ref
            b = rule.backend
            bname = backend_name(b.namespace, b.service, b.port)
            needed.setdefault(bname, b)
            users.setdefault(bname, []).append((ing.ref, rule.field + ".backend"))
            route_hit = _CACHE.routes.get(id(rule))
            if route_hit is None or route_hit[0] is not rule:
                route_hit = (
                    rule,
                    Route(path=rule.path, path_type=rule.path_type, backend=bname, source=ing.ref),
                )
                _CACHE.routes[id(rule)] = route_hit
            live_rules.add(id(rule))
            tables.setdefault(rule.host, {})[(rule.path, rule.path_type)] = route_hit[1]

    # TLS bindings: host -> (secret ref or None, source). Oldest Ingress wins.
    tls_hosts: dict[str, tuple[tuple[str, str] | None, ObjectRef, str]] = {}
    for ing in accepted:
        for hosts, secret, tfield in ing.tls:
            targets = hosts or tuple(h for h in ing.hosts)
            for host in targets:
                if host in tls_hosts:
                    other = tls_hosts[host]
                    if other[1] != ing.ref:
                        problems.append(_tls_conflict(ing.ref, tfield, host, other[1]))
                    continue
                sref = (ing.ref.namespace, secret) if secret else None
                tls_hosts[host] = (sref, ing.ref, tfield)

    # Certificates.
    certificates: dict[str, Certificate] = {}
    bad_secrets: dict[tuple[str, str], str] = {}
    for host, (sref, ing_ref, tfield) in sorted(tls_hosts.items()):
        if sref is None:
            continue
        if sref in bad_secrets or f"{sref[0]}__{sref[1]}" in certificates:
            if sref in bad_secrets:
                problems.append(_tls_problem(ing_ref, tfield, host, sref, bad_secrets[sref]))
            continue
        secret_obj = snapshot.get("Secret", sref[0], sref[1])
        if secret_obj is None:
            bad_secrets[sref] = "not found"
            problems.append(_tls_problem(ing_ref, tfield, host, sref, "not found"))
            continue
        try:
            cert, cert_warnings = certificate_from_secret(secret_obj)
        except CertificateError as exc:
            bad_secrets[sref] = str(exc)
            problems.append(_tls_problem(ing_ref, tfield, host, sref, str(exc)))
            continue
        problems.extend(_certificate_warning(cert, w) for w in cert_warnings)
        certificates[cert.name] = cert

    # Default backend: the oldest Ingress's spec.defaultBackend, else the flag.
    default_ref, default_problems = default_backend(accepted, snapshot, opts)
    problems += default_problems
    default_name: str | None = None
    if default_ref is not None:
        default_name = backend_name(default_ref.namespace, default_ref.service, default_ref.port)
        needed.setdefault(default_name, default_ref)

    # Backends.
    slices = SliceIndex(snapshot)
    backends: list[Backend] = []
    cache = _CACHE.backends
    for bname in sorted(needed):
        b = needed[bname]
        # Identity of every input object: the store replaces objects, never mutates them.
        inputs = (
            snapshot.get("Service", b.namespace, b.service),
            *slices.by_service.get((b.namespace, b.service), ()),
            snapshot.get("Endpoints", b.namespace, b.service),
        )
        hit = cache.get(bname)
        if (
            hit is not None
            and len(hit[0]) == len(inputs)
            and all(x is y for x, y in zip(hit[0], inputs, strict=True))
        ):
            backends.append(hit[1])
            continue
        backend = resolve_backend(snapshot, slices, b.namespace, b.service, b.port, b.port_is_name)
        cache[bname] = (inputs, backend)
        backends.append(backend)
    for backend in backends:
        if backend.problem is None:
            continue
        for ref, bfield in users.get(backend.name, ()):
            problems.append(
                Problem(
                    ref=ref,
                    field=bfield,
                    message=f"{backend.problem}; requests for this path get 503",
                    severity=Severity.WARNING,
                    reason="BackendNotFound",
                )
            )
    if len(cache) > len(needed) + 64:
        for stale in [k for k in cache if k not in needed]:
            del cache[stale]

    # Virtual hosts.
    catch_all = sorted(tables.get(None, {}).values(), key=Route.sort_key)
    all_hosts: set[str | None] = set(tables) | set(tls_hosts)
    vhosts: list[VirtualHost] = []
    vcache = _CACHE.vhosts
    for vhost_name in sorted(all_hosts, key=host_sort_key):
        own = list(tables.get(vhost_name, {}).values())
        rows = own if vhost_name is None else _merge_catch_all(own, catch_all)
        rows.sort(key=Route.sort_key)
        tls = None
        if vhost_name is not None and vhost_name in tls_hosts:
            tls_sref, ing_ref, _f = tls_hosts[vhost_name]
            cname = f"{tls_sref[0]}__{tls_sref[1]}" if tls_sref is not None else None
            tls = TLSBinding(
                certificate=cname if cname in certificates else None,
                source=ing_ref,
                ssl_redirect=settings_of.get(ing_ref, Annotations()).get("ssl-redirect"),
            )
        routes = tuple(rows)
        cached = vcache.get(vhost_name)
        # Reuse the previous VirtualHost when nothing in it changed: equal models then share
        # their unchanged parts, which makes comparing and diffing them cheap.
        if cached is not None and cached.routes == routes and cached.tls == tls:
            vhosts.append(cached)
        else:
            vhost = VirtualHost(host=vhost_name, routes=routes, tls=tls)
            vcache[vhost_name] = vhost
            vhosts.append(vhost)
    if len(vcache) > len(all_hosts) + 64:
        for gone in [h for h in vcache if h not in all_hosts]:
            del vcache[gone]
    if len(_CACHE.routes) > len(live_rules) + 256:
        for rid in [r for r in _CACHE.routes if r not in live_rules]:
            del _CACHE.routes[rid]

    model = RouteModel(
        vhosts=tuple(vhosts),
        backends=tuple(backends),
        certificates=tuple(certificates[n] for n in sorted(certificates)),
        default_backend=default_name,
        settings=_settings(snapshot, opts, problems),
    )
    problems.sort(key=lambda p: (_ref_key(p.ref), p.field, p.message))
    served = sorted({i.ref for i in accepted}, key=_ref_key)
    return BuildResult(
        model=model,
        problems=tuple(problems),
        served=tuple(served),
        rejected=tuple(sorted(rejected, key=_ref_key)),
        ignored=tuple(sorted(ignored, key=_ref_key)),
        without_class=tuple(sorted(without_class, key=_ref_key)),
    )


def _ref_key(ref: ObjectRef) -> tuple[str, str, str]:
    return (ref.kind, ref.namespace, ref.name)


def default_backend(
    ingresses: list[ParsedIngress], snapshot: Snapshot, opts: BuildOptions
) -> tuple[BackendRef | None, list[Problem]]:
    """The oldest Ingress's spec.defaultBackend (``ingresses`` oldest first), else the
    ``--default-backend-service`` flag's Service; later, different ones get a warning."""
    problems: list[Problem] = []
    default_ref: BackendRef | None = None
    default_from: ObjectRef | None = None
    for ing in ingresses:
        if ing.default_backend is None:
            continue
        if default_ref is None:
            default_ref, default_from = ing.default_backend, ing.ref
        elif ing.default_backend != default_ref:
            problems.append(
                Problem(
                    ref=ing.ref,
                    field="spec.defaultBackend",
                    message=f"the default backend is already set by {default_from} (older); "
                    "ignored",
                    severity=Severity.WARNING,
                    reason="Conflict",
                )
            )
    if default_ref is None and opts.default_backend_service is not None:
        ns, svc = opts.default_backend_service
        fp = first_port(snapshot, ns, svc)
        if fp is None:
            problems.append(
                Problem(
                    ref=ObjectRef(kind="Service", namespace=ns, name=svc),
                    field="--default-backend-service",
                    message="Service not found or has no ports; unmatched requests get 404",
                    severity=Severity.WARNING,
                    reason="ServiceNotFound",
                )
            )
        else:
            default_ref = BackendRef(ns, svc, fp[0], fp[1])
    return default_ref, problems


def invalid_is_ours(
    obj: Mapping[str, Any], ours: set[str], default_class: bool, opts: BuildOptions
) -> bool:
    """Class of an Ingress that failed validation, decided on its raw fields, so that an
    Ingress of another class is ignored completely, even when it is invalid."""
    spec = obj.get("spec") or {}
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    cls = spec.get("ingressClassName") if isinstance(spec, Mapping) else None
    legacy = ann.get(LEGACY_CLASS_ANNOTATION) if isinstance(ann, Mapping) else None
    if cls is not None:
        return cls in ours
    if legacy is not None:
        return legacy in ours
    return default_class or opts.watch_ingress_without_class


def _path_conflict(ref: ObjectRef, rule: PathRule, winner: ObjectRef) -> Problem:
    """An Ingress rule losing its host, path and path type to an older Ingress."""
    what = "host-less rule" if rule.host is None else f"host {rule.host}"
    return Problem(
        ref=ref,
        field=rule.field,
        message=(
            f"{what} path {rule.path} ({rule.path_type.value}) is already "
            f"served by {winner} (older); this path is ignored"
        ),
        severity=Severity.WARNING,
        reason="Conflict",
    )


def _tls_conflict(ref: ObjectRef, tfield: str, host: str, winner: ObjectRef) -> Problem:
    return Problem(
        ref=ref,
        field=tfield,
        message=(
            f"TLS for host {host} is already set by {winner} "
            "(older); this entry is ignored for that host"
        ),
        severity=Severity.WARNING,
        reason="Conflict",
    )


def _certificate_warning(cert: Certificate, warning: str) -> Problem:
    return Problem(
        ref=cert.source,
        field="data[tls.crt]",
        message=warning,
        severity=Severity.WARNING,
        reason="CertificateExpired",
    )


def _tls_problem(
    ref: ObjectRef, tfield: str, host: str, sref: tuple[str, str], why: str
) -> Problem:
    return Problem(
        ref=ref,
        field=f"{tfield}.secretName",
        message=(
            f"Secret {sref[0]}/{sref[1]} for host {host}: {why}; "
            "the host is served with the fallback certificate"
        ),
        severity=Severity.WARNING,
        reason="InvalidSecret",
    )
