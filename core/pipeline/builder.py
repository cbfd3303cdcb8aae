"""Snapshot of Kubernetes objects -> RouteModel, exactly per the Ingress v1 specification.

Stages, in a fixed order: IngressClass selection -> Ingress validation -> host/path merge with
conflict resolution (oldest Ingress wins) -> catch-all merge -> Service/EndpointSlice resolution
-> TLS Secrets -> ConfigMap settings. Every problem names the object and field.

One :class:`Builder` states these rules once, per host and per object; :func:`build_model` is a
fresh Builder's first build (pure), and a kept Builder updates its model after a change by
running the same per-host and per-object code on what the change touched.
"""

from __future__ import annotations

import bisect
import gc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from polyingress.core.pipeline.annotations import Annotations, parse_annotations
from polyingress.core.pipeline.gateway import GatewayStage
from polyingress.core.pipeline.model import (
    Backend,
    BackendProtocol,
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
from polyingress.core.pipeline.problems import Problem, Severity
from polyingress.core.pipeline.settings import SettingsSupport, parse_settings
from polyingress.core.pipeline.store import KINDS, ObjectKey, Snapshot
from polyingress.core.pipeline.translate.annotations import (
    DENIED,
    CanaryUse,
    Gate,
    IngressPolicy,
    app_root_rows,
    custom_headers_filter,
    error_rows,
    gate,
    gate_problems,
    resolve_auth,
    served_policy,
    translate_annotations,
    uses_regex,
    with_canaries,
)
from polyingress.core.pipeline.translate.ingress import (
    BackendRef,
    ParsedIngress,
    PathRule,
    parse_ingress,
)
from polyingress.core.pipeline.translate.secret import CertificateError, certificate_from_secret
from polyingress.core.pipeline.translate.service import (
    backend_name,
    first_port,
    resolve_backend,
    service_of_slice,
)

__all__ = ["BuildOptions", "BuildResult", "Builder", "build_model"]

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
    # The ports clients reach the proxy on (RunSettings.public_http_port/public_https_port): a
    # redirect an annotation asks for (force-ssl-redirect, app-root) names them, as the HTTPS
    # redirect of an ssl-redirect host does.
    http_port: int = 80
    https_port: int = 443
    # The Gateway API features the selected backend serves (its BackendInfo.features); None:
    # every feature (tools that judge objects without a backend).
    features: frozenset[str] | None = None
    backend: str = ""
    # The lastTransitionTime written into Gateway API conditions (the caller's clock).
    now: str = ""
    # The keys the selected backend applies; None (validate, no backend): not checked.
    settings_support: SettingsSupport | None = None


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
    # The status of every GatewayClass, Gateway and HTTPRoute of ours, as documents
    # {apiVersion, kind, metadata {namespace, name}, status}.
    statuses: tuple[dict[str, Any], ...] = ()

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.WARNING)


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
    keys = {r.match_key for r in own}
    prefixes = [r.path for r in own if r.path_type is PathType.PREFIX and not r.conditional]
    merged = list(own)
    for row in catch_all:
        if row.source.kind != "Ingress":  # host-less HTTPRoute rows are the catch-all's alone
            continue
        if row.match_key in keys:
            continue
        if any(_prefix_covers(p, row.path) for p in prefixes):
            continue
        merged.append(replace(row, from_catch_all=True))
    return merged


def _settings(snapshot: Snapshot, opts: BuildOptions, problems: list[Problem]) -> GlobalSettings:
    if opts.configmap is None:
        return GlobalSettings()
    ns, name = opts.configmap
    ref = ObjectRef(kind="ConfigMap", namespace=ns, name=name)
    cm = snapshot.get("ConfigMap", ns, name)
    if cm is None:
        return GlobalSettings(source=ref)
    settings, issues = parse_settings(cm.get("data") or {}, ref, opts.settings_support)
    problems.extend(
        Problem(
            ref=ref,
            field=f"data[{issue.key!r}]",
            message=issue.message,
            severity=Severity.WARNING,
            reason=issue.reason,
        )
        for issue in issues
    )
    return settings


def build_model(snapshot: Snapshot, opts: BuildOptions | None = None) -> BuildResult:
    """Build the model for a snapshot. Pure: same snapshot and options, same result (a fresh
    :class:`Builder`, so nothing is kept between calls; keep a Builder to reuse work)."""
    return Builder(opts).build(snapshot)


Host = str | None
# The kinds the Gateway API stage reads (a Service or Secret may make a reference valid).
_GATEWAY_INPUTS = frozenset(
    {"GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant", "Namespace", "Service", "Secret"}
)
IngressKey = tuple[str, str]
SecretRef = tuple[str, str]
_ACCEPTED, _REJECTED, _IGNORED = "accepted", "rejected", "ignored"
# Errors an Ingress is served with: its paths answer 500 (a feature the backend lacks) or 503
# (ingress-nginx's denied location; an auth-secret it cannot use).
_SERVED_WITH_ERRORS = frozenset({"UnsupportedValue", DENIED, "InvalidAuthSecret"})
_NONE: frozenset[Any] = frozenset()


@dataclass(slots=True)
class _Ingress:
    """One Ingress as last seen: its translation, kept while the object is the same one (the
    store replaces objects, never mutates them), and its classification."""

    obj: Mapping[str, Any]
    parsed: ParsedIngress | None
    found: Sequence[Problem]  # the translation's problems (it rejects when parsed is None)
    annotations: Annotations | None  # parsed once the Ingress is ours
    annotation_problems: Sequence[Problem] = ()
    policy: IngressPolicy | None = None  # what its annotations mean (set with annotations)
    gate: Gate | None = None  # the policy held against the backend's features
    # The auth-secret the policy read (the object, or None when missing), and the policy
    # before reading it: a new Secret object retranslates only that step.
    auth_secret: Mapping[str, Any] | None = None
    unresolved: IngressPolicy | None = None
    status: str = _IGNORED
    ref: ObjectRef | None = None
    problems: Sequence[Problem] = ()  # what this Ingress reports

    def accepted(self) -> ParsedIngress | None:
        return self.parsed if self.status == _ACCEPTED else None


@dataclass(frozen=True, slots=True)
class _CertState:
    cert: Certificate | None
    why: str | None  # why the Secret gives no certificate
    warnings: tuple[Problem, ...]


@dataclass(slots=True)
class _Changes:
    """What one build has to recompute."""

    hosts: set[Host] = field(default_factory=set)  # routing tables
    tls: set[str] = field(default_factory=set)  # TLS bindings
    vhosts: set[Host] = field(default_factory=set)  # virtual hosts (tables, bindings, certs)
    full: bool = False  # on the empty state: everything is new
    default: bool = False
    catch_all: bool = False  # the host-less rows changed
    services: set[tuple[str, str]] = field(default_factory=set)
    backends: set[str] = field(default_factory=set)  # newly used, or maybe no longer used
    # The result's sorted tuples to make again: their mapping was written / its keys changed.
    written: set[str] = field(default_factory=set)
    rekeyed: set[str] = field(default_factory=set)
    secrets: set[SecretRef] = field(default_factory=set)


class Builder:
    """The one statement of the build semantics: snapshot -> :class:`BuildResult`.

    The builder keeps the intermediate state of its last build: per-Ingress translations,
    per-host routing tables with their conflicts, per-host TLS bindings, certificates, backends
    and virtual hosts. ``build(snapshot, changed)`` recomputes only what the changed objects
    can affect; every decision (oldest Ingress wins a path or a host's TLS, the catch-all
    merge, missing backends and Secrets) is made by one method, per host or per object, on
    both paths. The first build is the same code run on an empty state with every object
    changed, which is what :func:`build_model` does.

    ``changed``: the (kind, namespace, name) keys that changed since the previous call, or
    None when unknown: then they are found by comparing the two snapshots' objects by identity.
    """

    def __init__(self, opts: BuildOptions | None = None) -> None:
        self.opts = opts or BuildOptions()
        self.result: BuildResult | None = None
        self.snapshot: Snapshot | None = None
        self.full_builds = 0
        self.incremental_builds = 0
        self._reset()

    # -- public -------------------------------------------------------------------------------

    def build(self, snapshot: Snapshot, changed: Iterable[ObjectKey] | None = None) -> BuildResult:
        """The result for ``snapshot``, updated from the previous build's state."""
        # The build allocates many small immutable objects and creates no cycles: pausing the
        # cyclic GC halves its time at 10,000 Ingresses.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._build(snapshot, changed)
        except BaseException:
            self.result = self.snapshot = None  # the state may be half updated: start afresh
            raise
        finally:
            if enabled:
                gc.enable()

    def _build(self, snapshot: Snapshot, changed: Iterable[ObjectKey] | None) -> BuildResult:
        previous, self.snapshot = self.snapshot, snapshot
        self._allowed: tuple[str, ...] | None = None  # read once per build, when needed
        if self.result is None or previous is None:
            return self._full(snapshot)
        keys = _changed_keys(previous, snapshot) if changed is None else set(changed)
        if any(k[0] == "IngressClass" for k in keys):
            return self._full(snapshot)  # every Ingress may change class
        if not keys:
            return self.result
        self.incremental_builds += 1
        return self._apply(snapshot, keys, _Changes())

    # -- the state ----------------------------------------------------------------------------

    def _reset(self) -> None:
        """The empty state: what the first build starts from."""
        self.ours: set[str] = set()
        self.default_class = False
        self.ings: dict[IngressKey, _Ingress] = {}
        # custom-headers: the Ingresses reading each ConfigMap; basic authentication: the
        # Ingresses reading each Secret (kept by _index, like the rest of the state).
        self.header_configmaps: dict[tuple[str, str], list[IngressKey]] = {}
        self.auth_secrets: dict[SecretRef, list[IngressKey]] = {}
        self.by_status: dict[str, dict[IngressKey, ObjectRef]] = {
            _ACCEPTED: {},
            _REJECTED: {},
            _IGNORED: {},
        }
        self.without_class: dict[IngressKey, ObjectRef] = {}
        self.ing_problems: dict[IngressKey, Sequence[Problem]] = {}
        # Accepted Ingresses by the hosts of their rules / their TLS entries.
        # (Built by the first update: a first build, all that build_model makes, needs none.)
        self.by_host: dict[Host, list[IngressKey]] | None = None
        self.tls_by_host: dict[str, list[IngressKey]] | None = None
        self.with_default: set[IngressKey] = set()
        # Per host: the routing table and the conflicts lost; how many rows use each backend.
        self.tables: dict[Host, dict[tuple[Any, ...], Route]] = {}
        self.host_problems: dict[Host, list[Problem]] = {}
        # Per host: the canary backends its table uses -> (canary Ingress, rule field).
        self.canary_refs: dict[Host, dict[str, tuple[ObjectRef, str]]] = {}
        # server-alias: the accepted Ingresses that set one; the alias hosts served last build.
        self.alias_ings: set[IngressKey] = set()
        self.alias_hosts: set[str] = set()
        self.alias_problems: list[Problem] = []
        self.need: dict[str, int] | None = None  # rows per backend (built by the first update)
        # The backends in use (the rows' and the default's): reference, names by Service.
        self.refs: dict[str, BackendRef] = {}
        self.by_service: dict[tuple[str, str], list[str]] | None = None  # (built likewise)
        self.default_name: str | None = None
        # Per host: the TLS binding (Secret, Ingress, field) and the conflicts lost.
        self.bindings: dict[str, tuple[SecretRef | None, ObjectRef, str]] = {}
        self.tls_problems: dict[str, list[Problem]] = {}
        self.certs: dict[SecretRef, _CertState] = {}
        # The certificate for no or unknown SNI: an HTTPS listener's without hostname (Secret).
        self.default_tls: SecretRef | None = None
        # EndpointSlice names by (namespace, Service), sorted; the Service of each slice.
        self.slices: dict[tuple[str, str], list[str]] = {}
        self.slice_owner: dict[tuple[str, str], str] | None = None  # (built likewise)
        self.default_state: tuple[BackendRef | None, list[Problem]] = (None, [])
        self.backends: dict[str, Backend] = {}
        self.broken: dict[str, str] = {}  # backend name -> its problem
        self.vhosts: dict[Host, VirtualHost] = {}
        opts = self.opts
        self.gateway = GatewayStage(  # the Gateway API stage, kept like the rest
            opts.controller_class, features=opts.features, backend=opts.backend, now=opts.now
        )
        self._order: dict[str, tuple[list[Any], tuple[Any, ...]]] = {}
        self._kept: dict[IngressKey, _Ingress] = {}  # translations a full build may reuse

    def _full(self, snapshot: Snapshot) -> BuildResult:
        """Every object changed, on the empty state (translations of unchanged Ingresses are
        kept: they depend on the object only)."""
        self.full_builds += 1
        kept = self.ings
        self._reset()
        self._kept = kept
        self.ours, self.default_class = _our_classes(snapshot, self.opts)
        # On the empty state every needed backend is resolved and every bound Secret read:
        # only the Ingresses and the EndpointSlice index need the objects named.
        todo = _Changes(full=True, default=True)
        try:
            for key, obj in snapshot.of("Ingress").items():
                self._ingress(key, obj, todo)
            for key, obj in snapshot.of("EndpointSlice").items():
                self._slice(key, obj, todo)
            hosts, tls_hosts = self.gateway.update(snapshot)
            todo.hosts |= hosts
            todo.tls |= tls_hosts
            return self._derive(snapshot, todo)
        finally:
            self._kept = {}

    # -- one build ----------------------------------------------------------------------------

    def _apply(self, snapshot: Snapshot, keys: Iterable[ObjectKey], todo: _Changes) -> BuildResult:
        self._build_indexes()
        keys = list(keys)
        secrets = {(ns, name) for kind, ns, name in keys if kind == "Secret"}
        if secrets:
            # Basic authentication reads Secrets: their Ingresses are translated again.
            seen = set(keys)
            for sref in sorted(secrets):
                for key in list(self.auth_secrets.get(sref, ())):
                    if ("Ingress", *key) not in seen:
                        seen.add(("Ingress", *key))
                        keys.append(("Ingress", *key))
        for kind, ns, name in keys:
            if kind == "Ingress":
                self._ingress((ns, name), snapshot.get(kind, ns, name), todo)
            elif kind == "EndpointSlice":
                self._slice((ns, name), snapshot.get(kind, ns, name), todo)
            elif kind in ("Service", "Endpoints"):
                todo.services.add((ns, name))
            elif kind == "Secret":
                todo.secrets.add((ns, name))
            elif kind == "ConfigMap":
                self._configmap((ns, name), snapshot, todo)
        if any(k[0] in _GATEWAY_INPUTS for k in keys):
            hosts, tls_hosts = self.gateway.update(snapshot, keys)
            todo.hosts |= hosts
            todo.tls |= tls_hosts
        return self._derive(snapshot, todo)

    def _configmap(self, key: tuple[str, str], snapshot: Snapshot, todo: _Changes) -> None:
        """A ConfigMap changed: the Ingresses whose custom-headers read it are judged again
        (all of them when it is --configmap: global-allowed-response-headers)."""
        if key == self.opts.configmap:
            readers = {k for keys in self.header_configmaps.values() for k in keys}
        else:
            readers = set(self.header_configmaps.get(key, ()))
        for ing in sorted(readers):
            self._ingress(ing, snapshot.get("Ingress", *ing), todo)

    def _derive(self, snapshot: Snapshot, todo: _Changes) -> BuildResult:
        """Everything the changed objects touch, per host and per object, then the result."""
        self._route_hosts(todo)
        self._tls_hosts(todo)
        default_tls = self.gateway.default_tls()
        if default_tls != self.default_tls:
            todo.secrets.update(s for s in (self.default_tls, default_tls) if s is not None)
            self.default_tls = default_tls
        self._certificates(snapshot, todo)
        flag = self.opts.default_backend_service
        if todo.default or (flag is not None and flag in todo.services):
            self.default_state = default_backend(
                self._oldest_first(self.with_default), snapshot, self.opts
            )
        self._backends(snapshot, todo)
        todo.vhosts |= todo.hosts | todo.tls
        if todo.catch_all:  # host-less rows are merged into every host
            todo.vhosts.update(self.tables, self.bindings)
        catch_all = sorted(self.tables.get(None, {}).values(), key=Route.sort_key)
        for host in todo.vhosts:
            self._vhost(host, catch_all, todo)
        if self.alias_ings or self.alias_hosts:
            self._aliases(todo)
        return self._assemble(snapshot, todo)

    # -- Ingresses: translation and class -------------------------------------------------------

    def _ingress(self, key: IngressKey, obj: Mapping[str, Any] | None, todo: _Changes) -> None:
        old = self.ings.get(key)
        before = _NONE if todo.full else self._lists_of(key)
        if old is not None:
            self._index(key, old, todo, add=False)
        if obj is None:
            self.ings.pop(key, None)
        else:
            state = self._classify(key, obj, old or self._kept.get(key))
            self.ings[key] = state
            self._index(key, state, todo, add=True)
        if not todo.full:  # (a full build writes them all)
            after = self._lists_of(key)
            todo.written |= before | after
            todo.rekeyed |= before ^ after

    def _lists_of(self, key: IngressKey) -> frozenset[str]:
        """The result's lists (served, rejected, ignored, without_class) that name an Ingress."""
        lists = {"served": _ACCEPTED, "rejected": _REJECTED, "ignored": _IGNORED}
        found = {name for name, status in lists.items() if key in self.by_status[status]}
        if key in self.without_class:
            found.add("without_class")
        return frozenset(found)

    def _classify(self, key: IngressKey, obj: Mapping[str, Any], old: _Ingress | None) -> _Ingress:
        opts = self.opts
        if old is not None and old.obj is obj and not self._auth_changed(old):
            state = _Ingress(
                obj,
                old.parsed,
                old.found,
                old.annotations,
                old.annotation_problems,
                old.policy,
                old.gate,
                old.auth_secret,
                old.unresolved,
            )
        else:
            parsed, found = parse_ingress(obj, regex=uses_regex(obj, opts.annotations_prefix))
            state = _Ingress(obj, parsed, found, None)
        parsed = state.parsed
        if parsed is None:
            state.ref = state.found[0].ref
            mine = invalid_is_ours(obj, self.ours, self.default_class, opts)
            state.status = _REJECTED if mine else _IGNORED
            state.problems = state.found if mine else ()
            return state
        state.ref = parsed.ref
        if not _is_ours(parsed, self.ours, self.default_class, opts):
            return state
        if state.annotations is None:
            meta = obj.get("metadata") or {}
            annotations, found = parse_annotations(
                parsed.ref, meta.get("annotations"), prefix=opts.annotations_prefix
            )
            policy = translate_annotations(
                parsed.ref,
                annotations,
                parsed.rules,
                prefix=opts.annotations_prefix,
                http_port=opts.http_port,
                https_port=opts.https_port,
            )
            passed = gate(policy, opts.features)
            policy = served_policy(policy, passed)
            state.unresolved = policy
            auth_problems: list[Problem] = []
            if policy.auth_ref is not None:
                state.auth_secret = self._auth_secret(policy)
                policy, auth_problems = resolve_auth(policy, state.auth_secret)
            state.annotations, state.policy, state.gate = annotations, policy, passed
            state.annotation_problems = [
                *found,
                *policy.problems(),
                *gate_problems(policy, passed, opts.backend),
                *auth_problems,
            ]
            if policy.canary is not None and (parsed.tls or parsed.default_backend):
                # ingress-nginx builds no server from a canary: its TLS and default backend
                # are not used (only its rules, attached to the main Ingress's).
                state.annotation_problems.append(_canary_own_parts(parsed))
                state.parsed = parsed = replace(parsed, tls=(), default_backend=None)
        state.problems = state.annotation_problems
        if state.policy is not None and state.policy.custom_headers is not None:
            state.policy, headers_problem = self._custom_headers(state.policy)
            if headers_problem is not None:
                state.problems = [*state.problems, headers_problem]
        # (Unusable auth Secret: its paths answer 503, as ingress-nginx's; not rejected.)
        errors = any(
            p.severity is Severity.ERROR and p.reason not in _SERVED_WITH_ERRORS
            for p in state.problems
        )
        state.status = _REJECTED if errors else _ACCEPTED
        return state

    def _custom_headers(self, policy: IngressPolicy) -> tuple[IngressPolicy, Problem | None]:
        """The policy with the response headers of its custom-headers ConfigMap, or denied."""
        assert policy.custom_headers is not None and self.snapshot is not None
        key = next(v.key for v in policy.verdicts if v.name == "custom-headers")
        ns, name = policy.custom_headers
        if self._allowed is None:
            self._allowed = _settings(self.snapshot, self.opts, []).global_allowed_response_headers
        found, problem = custom_headers_filter(
            policy,
            self.snapshot.get("ConfigMap", ns, name),
            self._allowed,
            f"metadata.annotations[{key!r}]",
        )
        return replace(policy, response_headers=found, denied=problem is not None), problem

    def _auth_secret(self, policy: IngressPolicy) -> Mapping[str, Any] | None:
        ref = policy.auth_ref
        if ref is None or self.snapshot is None:
            return None
        return self.snapshot.get("Secret", ref.namespace, ref.name)

    def _auth_changed(self, old: _Ingress) -> bool:
        """Whether the auth-secret an Ingress's translation read is another object now."""
        policy = old.unresolved
        if policy is None or policy.auth_ref is None:
            return False
        return self._auth_secret(policy) is not old.auth_secret

    def _index(self, key: IngressKey, state: _Ingress, todo: _Changes, *, add: bool) -> None:
        """Add (or remove) an Ingress to (from) the indexes; what it touches becomes dirty."""
        assert state.ref is not None
        cm = state.policy.custom_headers if state.policy is not None else None
        if cm is not None:
            _link(self.header_configmaps, {cm}, key, add)
        auth = state.unresolved.auth_ref if state.unresolved is not None else None
        if auth is not None:
            _link(self.auth_secrets, {(auth.namespace, auth.name)}, key, add)
        if add:
            self.by_status[state.status][key] = state.ref
            if state.status == _IGNORED and names_no_class(state.obj):
                self.without_class[key] = state.ref
            if state.problems:
                self.ing_problems[key] = state.problems
        else:
            del self.by_status[state.status][key]
            self.without_class.pop(key, None)
            self.ing_problems.pop(key, None)
        ing = state.accepted()
        if ing is None:
            return
        rule_hosts = {r.host for r in ing.rules}
        tls_hosts = set(_tls_hosts(ing)) if ing.tls else _NONE
        todo.hosts |= rule_hosts
        if tls_hosts:
            todo.tls |= tls_hosts
        todo.default |= ing.default_backend is not None
        if add:
            if ing.default_backend is not None:
                self.with_default.add(key)
        else:
            self.with_default.discard(key)
        if state.policy is not None and state.policy.aliases and state.policy.canary is None:
            if add:
                self.alias_ings.add(key)
            else:
                self.alias_ings.discard(key)
        if self.by_host is not None and self.tls_by_host is not None:
            _link(self.by_host, rule_hosts, key, add)
            _link(self.tls_by_host, tls_hosts, key, add)

    def _build_indexes(self) -> None:
        """The indexes an update needs: the Ingresses naming a host, the backends of a
        Service, the rows using a backend, the Service of an EndpointSlice."""
        if self.by_host is not None:
            return
        self.by_host, self.tls_by_host, self.by_service = {}, {}, {}
        for key, state in self.ings.items():
            ing = state.accepted()
            if ing is not None:
                _link(self.by_host, {r.host for r in ing.rules}, key, True)
                _link(self.tls_by_host, set(_tls_hosts(ing)), key, True)
        for bname, b in self.refs.items():
            self.by_service.setdefault((b.namespace, b.service), []).append(bname)
        self.need = {}
        for table in self.tables.values():
            for route in table.values():
                for bname in (*route.backends, *route.mirrors):
                    self.need[bname] = self.need.get(bname, 0) + 1
        self.slice_owner = {
            (ns, name): svc for (ns, svc), names in self.slices.items() for name in names
        }

    def _oldest_first(self, keys: Iterable[IngressKey]) -> list[ParsedIngress]:
        out = [p for p in (self.ings[k].accepted() for k in keys) if p is not None]
        out.sort(key=lambda p: p.order)  # the oldest wins every conflict
        return out

    def _ingresses_of(
        self, index: Mapping[Any, list[IngressKey]] | None, hosts: set[Any]
    ) -> list[ParsedIngress]:
        """The accepted Ingresses naming any of ``hosts`` in ``index``, oldest first."""
        if index is None or len(hosts) * 2 > len(index):  # most: all, no union
            return self._oldest_first(self.by_status[_ACCEPTED])
        keys: set[IngressKey] = set()
        for h in hosts:
            keys.update(index.get(h, ()))
        return self._oldest_first(keys)

    # -- per host: routing table, TLS binding, virtual host --------------------------------------

    def _route_hosts(self, todo: _Changes) -> None:
        naming: dict[Host, list[ParsedIngress]] = {}
        hosts = todo.hosts
        for ing in self._ingresses_of(self.by_host, hosts):
            for rule in ing.rules:
                if rule.host in hosts:
                    group = naming.setdefault(rule.host, [])
                    if not group or group[-1] is not ing:
                        group.append(ing)
        for host in todo.hosts:
            if self._table(host, naming.get(host, ()), todo) and host is None:
                todo.catch_all = True

    def _table(self, host: Host, ingresses: Iterable[ParsedIngress], todo: _Changes) -> bool:
        """A host's routing table from the rules naming it, oldest Ingress first: the first
        rule for a path and path type wins, later ones are conflicts; an app-root answers /
        before any rule; canaries attach to the rule with their path and path type. True when
        it changed."""
        need = self.need
        before = self.tables.pop(host, {})
        if need is not None:
            for route in before.values():
                for bname in (*route.backends, *route.mirrors):
                    need[bname] -= 1
                    if not need[bname]:
                        del need[bname]
                        todo.backends.add(bname)
        table: dict[tuple[Any, ...], Route] = {}
        problems: list[Problem] = []
        refs: dict[str, BackendRef] = {}
        claimed: dict[tuple[str, PathType], ObjectRef] = {}
        mains: dict[tuple[str, PathType], tuple[list[Route], str]] = {}
        canaries: list[tuple[ParsedIngress, IngressPolicy]] = []
        app_root: IngressPolicy | None = None
        for ing in ingresses:
            state = self.ings[(ing.ref.namespace, ing.ref.name)]
            policy, passed = state.policy, state.gate
            if policy is not None and policy.canary is not None:
                canaries.append((ing, policy))
                continue
            if policy is not None and policy.app_root is not None:
                if app_root is None:
                    app_root = policy
                    for row in app_root_rows(policy, None if passed is None or passed.ok else 500):
                        table[row.match_key] = row
                    claimed[("/", PathType.EXACT)] = ing.ref
                elif policy.app_root != app_root.app_root:
                    problems.append(_app_root_conflict(ing.ref, host, app_root.ref))
            for rule in ing.rules:
                if rule.host != host:
                    continue
                ckey = (rule.path, rule.path_type)
                winner = claimed.get(ckey)
                if winner is not None:
                    problems.append(_path_conflict(ing.ref, rule, winner))
                    continue
                claimed[ckey] = ing.ref
                b = _with_protocol(rule.backend, policy)
                bname = b.name
                refs[bname] = b
                if policy is not None and policy.denied:
                    rows = error_rows(rule, ing.ref, 503)
                elif policy is None or (policy.plain and (passed is None or passed.ok)):
                    rows = [
                        Route(
                            path=rule.path, path_type=rule.path_type, backend=bname, source=ing.ref
                        )
                    ]
                elif passed is not None and not passed.ok:
                    rows = error_rows(rule, ing.ref)
                else:
                    rows = policy.rows(rule, bname)
                mains[ckey] = (rows, bname)
        attached: dict[tuple[str, PathType], list[CanaryUse]] = {}
        canary_refs: dict[str, tuple[ObjectRef, str]] = {}
        for ing, policy in canaries:
            assert policy.canary is not None
            for rule in ing.rules:
                if rule.host != host:
                    continue
                ckey = (rule.path, rule.path_type)
                found = mains.get(ckey)
                # The main Ingress's backend-protocol applies to its canaries (ingress-nginx).
                b = rule.backend
                if found is not None and found[1] in refs:
                    b = replace(b, protocol=refs[found[1]].protocol)
                bname = b.name
                if found is None or found[1] == bname:
                    problems.append(_canary_unattached(ing.ref, rule, found is not None))
                    continue
                refs[bname] = b
                canary_refs.setdefault(bname, (ing.ref, rule.field))
                use = CanaryUse(ref=ing.ref, order=ing.order, canary=policy.canary, backend=bname)
                attached.setdefault(ckey, []).append(use)
        for ckey, (rows, _main) in mains.items():
            canary_uses = attached.get(ckey)
            if canary_uses:
                rows, dropped = with_canaries(rows, canary_uses)
                problems += [_canary_weight_dropped(u.ref, ckey, why) for u, why in dropped]
            for row in rows:
                table.setdefault(row.match_key, row)
        for row in sorted(self.gateway.rows_of(host), key=Route.sort_key):
            # After every Ingress row: on a tie an Ingress rule wins; among HTTPRoute rows the
            # first in precedence (the oldest route, then namespace/name, then rule order).
            mkey = row.match_key
            if mkey in table:
                continue
            table[mkey] = row
        for row in table.values():
            for bname in (*row.backends, *row.mirrors):
                ref = refs.get(bname)
                self._count(bname, ref if ref is not None else self.gateway.ref(bname), todo)
        _put(self.canary_refs, host, canary_refs)
        if problems:
            self.host_problems[host] = problems
        elif self.host_problems:
            self.host_problems.pop(host, None)
        if table:
            self.tables[host] = table
        return before != table

    def _count(self, bname: str, ref: BackendRef, todo: _Changes) -> None:
        """One more row uses backend ``bname``: the first use resolves it."""
        need = self.need
        if need is None:  # a first build: counted when the first update needs it
            if bname not in self.refs:
                self._use(bname, ref)
                todo.backends.add(bname)
            return
        uses = need.get(bname, 0)
        if not uses:
            self._use(bname, ref)
            todo.backends.add(bname)
        need[bname] = uses + 1

    def _winning_rule(self, host: Host, route: Route) -> PathRule:
        """The rule a row came from: the first of its Ingress's rules with its host, path and
        path type (a later one in the same Ingress lost to it)."""
        ing = self.ings[(route.source.namespace, route.source.name)].parsed
        assert ing is not None
        return next(
            r
            for r in ing.rules
            if r.host == host and r.path == route.path and r.path_type is route.path_type
        )

    def _tls_hosts(self, todo: _Changes) -> None:
        naming: dict[str, list[ParsedIngress]] = {}
        for ing in self._ingresses_of(self.tls_by_host, todo.tls):
            for host in _tls_hosts(ing):
                if host in todo.tls:
                    group = naming.setdefault(host, [])
                    if not group or group[-1] is not ing:
                        group.append(ing)
        for host in todo.tls:
            before = self.bindings.get(host)
            self._binding(host, naming.get(host, ()))
            after = self.bindings.get(host)
            if after != before:
                if after is not None and after[0] is not None:
                    todo.secrets.add(after[0])  # may be newly used
                if before is not None and before[0] is not None:
                    todo.secrets.add(before[0])  # may be unused now

    def _binding(self, host: str, ingresses: Iterable[ParsedIngress]) -> None:
        """A host's TLS binding: the oldest Ingress's first TLS entry naming the host; entries
        of other, younger Ingresses are conflicts."""
        binding: tuple[SecretRef | None, ObjectRef, str] | None = None
        problems: list[Problem] = []
        for ing in ingresses:
            ref = ing.ref
            for hosts, secret, tfield in ing.tls:
                if host not in (hosts or ing.hosts):
                    continue
                if binding is None:
                    binding = ((ref.namespace, secret) if secret else None, ref, tfield)
                elif binding[1] != ref:
                    problems.append(_tls_conflict(ref, tfield, host, binding[1]))
        gw = self.gateway.tls_of(host)
        if binding is None and gw is not None:  # an HTTPS listener's (an Ingress's wins)
            binding = (gw.secret, gw.gateway, gw.field)
        _put(self.tls_problems, host, problems)
        if binding is None:
            self.bindings.pop(host, None)
        else:
            self.bindings[host] = binding

    def _vhost(self, host: Host, catch_all: list[Route], todo: _Changes) -> None:
        """A virtual host: its own rows, the catch-all rows it does not shadow, its TLS."""
        if host not in self.tables and host not in self.bindings:
            if self.vhosts.pop(host, None) is not None:
                todo.written.add("vhosts")
                todo.rekeyed.add("vhosts")
            return
        own = list(self.tables.get(host, {}).values())
        rows = own if host is None or not catch_all else _merge_catch_all(own, catch_all)
        rows.sort(key=Route.sort_key)
        tls = None
        if host is not None and host in self.bindings:
            sref, ing_ref, _f = self.bindings[host]
            state = self.certs.get(sref) if sref is not None else None
            redirect = False  # a Gateway redirects only where an HTTPRoute says so
            if ing_ref.kind == "Ingress":
                ing = self.ings[(ing_ref.namespace, ing_ref.name)]
                redirect = (ing.annotations or Annotations()).get("ssl-redirect")
            tls = TLSBinding(
                certificate=state.cert.name if state is not None and state.cert else None,
                source=ing_ref,
                ssl_redirect=redirect,
            )
        routes = tuple(rows)
        cached = self.vhosts.get(host)
        # Keep the previous VirtualHost when nothing in it changed: successive models then
        # share their unchanged parts, which makes comparing and diffing them cheap.
        if cached is None or cached.routes != routes or cached.tls != tls:
            self.vhosts[host] = VirtualHost(host=host, routes=routes, tls=tls)
            todo.written.add("vhosts")
            if cached is None:
                todo.rekeyed.add("vhosts")

    def _aliases(self, todo: _Changes) -> None:
        """ingress-nginx's server-alias: each host of an Ingress setting it is also served
        under the aliases, as that host exactly (its rows and TLS, whichever Ingress or
        HTTPRoute gave them). As in ingress-nginx, a host takes the aliases of the oldest
        Ingress naming it that sets some; an alias that is a host of its own, or that an
        older host took, is ignored (a warning)."""
        taken: dict[str, str] = {}
        given: set[str] = set()  # hosts that took an (older) Ingress's aliases
        problems: list[Problem] = []
        for ing in self._oldest_first(self.alias_ings):
            state = self.ings[(ing.ref.namespace, ing.ref.name)]
            assert state.policy is not None
            for host in dict.fromkeys(r.host for r in ing.rules):
                if host is None or host not in self.vhosts or host in given:
                    continue
                given.add(host)
                for alias in state.policy.aliases:
                    why = None
                    if alias == host:
                        continue
                    if alias in self.tables or alias in self.bindings:
                        why = "it is a host of its own"
                    elif alias in taken:
                        why = f"it is already an alias of {taken[alias]}"
                    if why is not None:
                        problems.append(_alias_ignored(ing.ref, alias, why))
                        continue
                    taken[alias] = host
        for alias in self.alias_hosts - taken.keys():
            real = alias in self.tables or alias in self.bindings
            if not real and self.vhosts.pop(alias, None) is not None:
                todo.written.add("vhosts")
                todo.rekeyed.add("vhosts")
        for alias, host in taken.items():
            target = self.vhosts[host]
            cached = self.vhosts.get(alias)
            if cached is None or cached.routes is not target.routes or cached.tls != target.tls:
                self.vhosts[alias] = VirtualHost(host=alias, routes=target.routes, tls=target.tls)
                todo.written.add("vhosts")
                if cached is None:
                    todo.rekeyed.add("vhosts")
        self.alias_hosts = set(taken)
        self.alias_problems = problems

    # -- per object: certificates, EndpointSlices, backends -------------------------------------

    def _certificates(self, snapshot: Snapshot, todo: _Changes) -> None:
        used = {b[0] for b in self.bindings.values() if b[0] is not None}
        if self.default_tls is not None:
            used.add(self.default_tls)
        for sref in todo.secrets:
            before = self.certs.pop(sref, None)
            if sref not in used:
                continue
            after = self._certificate(snapshot.get("Secret", *sref))
            self.certs[sref] = after
            if before is None or before.cert != after.cert or before.why != after.why:
                todo.vhosts.update(h for h, b in self.bindings.items() if b[0] == sref)

    @staticmethod
    def _certificate(secret: Mapping[str, Any] | None) -> _CertState:
        if secret is None:
            return _CertState(None, "not found", ())
        try:
            cert, warnings = certificate_from_secret(secret)
        except CertificateError as exc:
            return _CertState(None, str(exc), ())
        return _CertState(cert, None, tuple(_certificate_warning(cert, w) for w in warnings))

    def _slice(self, key: tuple[str, str], obj: Mapping[str, Any] | None, todo: _Changes) -> None:
        ns, name = key
        owners = self.slice_owner
        owner = owners.pop(key, None) if owners is not None else None
        if owner is not None:
            todo.services.add((ns, owner))
            _discard(self.slices, (ns, owner), name)
        svc = service_of_slice(obj) if obj is not None else None
        if svc is not None:
            bisect.insort(self.slices.setdefault((ns, svc), []), name)
            if owners is not None:
                owners[key] = svc
            todo.services.add((ns, svc))

    def _use(self, bname: str, b: BackendRef) -> None:
        if bname not in self.refs:
            self.refs[bname] = b
            if self.by_service is not None:
                self.by_service.setdefault((b.namespace, b.service), []).append(bname)

    def _backends(self, snapshot: Snapshot, todo: _Changes) -> None:
        """Resolve the backends newly used or whose Service, EndpointSlices or Endpoints
        changed; forget the ones no longer used."""
        default_ref = self.default_state[0]
        default_name = None
        if default_ref is not None:
            default_name = backend_name(
                default_ref.namespace, default_ref.service, default_ref.port
            )
            self._use(default_name, default_ref)
        if default_name != self.default_name:
            todo.backends.update(n for n in (self.default_name, default_name) if n is not None)
            self.default_name = default_name
        stale: set[str] = set()
        if self.by_service is not None:  # (a first build resolves every backend it uses)
            by_service = self.by_service
            stale = {n for svc in todo.services for n in by_service.get(svc, ())}
        slices = snapshot.of("EndpointSlice")
        for bname in todo.backends | stale:
            b = self.refs[bname]
            if self.need is not None and bname not in self.need and bname != default_name:
                del self.refs[bname]
                if self.by_service is not None:
                    _discard(self.by_service, (b.namespace, b.service), bname)
                if self.backends.pop(bname, None) is not None:
                    todo.written.add("backends")
                    todo.rekeyed.add("backends")
                self.broken.pop(bname, None)
            elif bname in stale or bname not in self.backends:
                todo.written.add("backends")
                if bname not in self.backends:
                    todo.rekeyed.add("backends")
                names = self.slices.get((b.namespace, b.service), ())
                backend = resolve_backend(
                    snapshot,
                    [slices[(b.namespace, n)] for n in names],
                    b.namespace,
                    b.service,
                    b.port,
                    b.port_is_name,
                    b.protocol,
                )
                self.backends[bname] = backend
                if backend.problem is None:
                    self.broken.pop(bname, None)
                else:
                    self.broken[bname] = backend.problem

    # -- the result -----------------------------------------------------------------------------

    def _assemble(self, snapshot: Snapshot, todo: _Changes) -> BuildResult:
        problems: list[Problem] = []
        for found in self.ing_problems.values():
            problems += found
        for found in self.host_problems.values():
            problems += found
        for found in self.tls_problems.values():
            problems += found
        problems += self.alias_problems
        for host, (sref, ing_ref, tfield) in self.bindings.items():
            if sref is not None:
                why = self.certs[sref].why
                if why is not None:
                    problems.append(_tls_problem(ing_ref, tfield, host, sref, why))
        certificates: dict[str, Certificate] = {}
        for state in self.certs.values():
            if state.cert is not None:
                certificates[state.cert.name] = state.cert
                problems += state.warnings
        default_ref, default_problems = self.default_state
        problems += default_problems
        problems += self.gateway.problems()
        broken = self.broken
        if broken:
            for name, table in self.tables.items():
                canary_refs = self.canary_refs.get(name, {})
                seen: set[tuple[ObjectRef, str]] = set()
                for route in table.values():
                    if route.source.kind != "Ingress":
                        continue  # (an HTTPRoute's references are in its status)
                    for bname in route.backends:
                        why = broken.get(bname)
                        if why is None:
                            continue
                        if bname in canary_refs:
                            ref, rfield = canary_refs[bname]
                        else:
                            ref, rfield = route.source, self._winning_rule(name, route).field
                        if (ref, rfield) not in seen:
                            seen.add((ref, rfield))
                            problems.append(_backend_problem(ref, rfield + ".backend", why))
        settings = _settings(snapshot, self.opts, problems)
        default_name = None
        if default_ref is not None:
            default_name = backend_name(
                default_ref.namespace, default_ref.service, default_ref.port
            )
        default_cert = self.certs.get(self.default_tls) if self.default_tls is not None else None
        model = RouteModel(
            vhosts=self._sorted("vhosts", self.vhosts, host_sort_key, todo),
            backends=self._sorted("backends", self.backends, None, todo),  # by name
            certificates=tuple(certificates[n] for n in sorted(certificates)),
            default_certificate=(
                default_cert.cert.name
                if default_cert is not None and default_cert.cert is not None
                else None
            ),
            default_backend=default_name,
            settings=settings,
        )
        problems.sort(key=_problem_key)
        self.result = BuildResult(
            model=model,
            problems=tuple(problems),
            served=self._sorted(
                "served", self.by_status[_ACCEPTED], _ref_key, todo, on_values=True
            ),
            rejected=self._sorted(
                "rejected", self.by_status[_REJECTED], _ref_key, todo, on_values=True
            ),
            ignored=self._sorted(
                "ignored", self.by_status[_IGNORED], _ref_key, todo, on_values=True
            ),
            without_class=self._sorted(
                "without_class", self.without_class, _ref_key, todo, on_values=True
            ),
            statuses=tuple(self.gateway.statuses()),
        )
        return self.result

    def _sorted(
        self,
        name: str,
        mapping: Mapping[Any, Any],
        key: Any,
        todo: _Changes,
        *,
        on_values: bool = False,
    ) -> tuple[Any, ...]:
        """The values of ``mapping`` sorted by ``key`` of their keys (or of themselves): the
        previous tuple when the mapping was not written, sorted again only when its keys
        changed (sorting 10,000 items is not cheap)."""
        cached = self._order.get(name)
        if cached is not None and name not in todo.written:
            return cached[1]
        if cached is None or name in todo.rekeyed:
            by_value = (lambda k: key(mapping[k])) if on_values else key
            ordered = sorted(mapping, key=by_value)
        else:
            ordered = cached[0]
        values = tuple(map(mapping.__getitem__, ordered))
        self._order[name] = (ordered, values)
        return values


def _changed_keys(before: Snapshot, after: Snapshot) -> set[ObjectKey]:
    """The keys whose object is not the same one in both snapshots."""
    keys: set[ObjectKey] = set()
    for kind in KINDS:
        old, new = before.of(kind), after.of(kind)
        if old is new:
            continue
        keys.update((kind, *k) for k, obj in new.items() if old.get(k) is not obj)
        keys.update((kind, *k) for k in old if k not in new)
    return keys


def _put(mapping: dict[Any, Any], key: Any, value: Any) -> None:
    """Set ``mapping[key]`` to a non-empty value, or remove the key (empty values are not
    kept: 10,000 hosts without conflicts keep no 10,000 empty lists)."""
    if value:
        mapping[key] = value
    else:
        mapping.pop(key, None)


def _link(index: dict[Any, list[Any]], hosts: Iterable[Any], member: Any, add: bool) -> None:
    for host in hosts:
        if add:
            index.setdefault(host, []).append(member)
        else:
            _discard(index, host, member)


def _discard(index: dict[Any, list[Any]], key: Any, member: Any) -> None:
    group = index.get(key)
    if group is not None:
        group.remove(member)
        if not group:
            del index[key]


def _tls_hosts(ing: ParsedIngress) -> Iterable[str]:
    return (h for hosts, _s, _f in ing.tls for h in (hosts or ing.hosts))


def _problem_key(p: Problem) -> tuple[Any, ...]:
    return (_ref_key(p.ref), p.field, p.message, p.severity, p.reason)


def _backend_problem(ref: ObjectRef, bfield: str, why: str) -> Problem:
    return Problem(
        ref=ref,
        field=bfield,
        message=f"{why}; requests for this path get 503",
        severity=Severity.WARNING,
        reason="BackendNotFound",
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


def _app_root_conflict(ref: ObjectRef, host: Host, winner: ObjectRef) -> Problem:
    what = "host-less rules" if host is None else f"host {host}"
    return Problem(
        ref=ref,
        field="metadata.annotations",
        message=f"app-root for {what} is already set by {winner} (older); this one is ignored",
        severity=Severity.WARNING,
        reason="Conflict",
    )


def _canary_unattached(ref: ObjectRef, rule: PathRule, same_backend: bool) -> Problem:
    what = "host-less rule" if rule.host is None else f"host {rule.host}"
    why = (
        "its Service is the main Ingress's own"
        if same_backend
        else "no Ingress that is not a canary has this host, path and path type"
    )
    return Problem(
        ref=ref,
        field=rule.field,
        message=(
            f"canary {what} path {rule.path} ({rule.path_type.value}): {why}; this path is "
            "not served (as in ingress-nginx)"
        ),
        severity=Severity.WARNING,
        reason="CanaryNotAttached",
    )


def _canary_own_parts(ing: ParsedIngress) -> Problem:
    parts = [
        n for n, v in (("spec.tls", ing.tls), ("spec.defaultBackend", ing.default_backend)) if v
    ]
    return Problem(
        ref=ing.ref,
        field=parts[0],
        message=f"{' and '.join(parts)} of a canary Ingress are not used (as in ingress-nginx)",
        severity=Severity.WARNING,
        reason="CanaryNotAttached",
    )


def _canary_weight_dropped(ref: ObjectRef, ckey: tuple[str, PathType], why: str) -> Problem:
    return Problem(
        ref=ref,
        field="metadata.annotations",
        message=f"canary-weight for path {ckey[0]} ({ckey[1].value}) ignored: {why}",
        severity=Severity.WARNING,
        reason="Conflict",
    )


def _alias_ignored(ref: ObjectRef, alias: str, why: str) -> Problem:
    return Problem(
        ref=ref,
        field="metadata.annotations",
        message=f"server-alias {alias} ignored: {why} (as in ingress-nginx)",
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


def _with_protocol(ref: BackendRef, policy: IngressPolicy | None) -> BackendRef:
    """An Ingress rule's backend with the protocol its annotations ask for (backend-protocol)."""
    if policy is None or policy.protocol is BackendProtocol.HTTP:
        return ref
    return replace(ref, protocol=policy.protocol)
