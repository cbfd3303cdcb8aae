"""Incremental model updates: the cost of a change grows with the change, not with the world.

:func:`polyingress.core.build_model` is the reference: it builds a model from a whole snapshot.
:class:`IncrementalBuilder` keeps the intermediate state of the last build (per-Ingress parse
results, per-host routing tables and conflicts, TLS bindings, backends, certificates) and, given
the keys that changed since, recomputes only what those keys can affect: the hosts the changed
Ingresses named before and after, the backends of changed Services and EndpointSlices, the
certificates of changed Secrets. A change to an IngressClass or the ConfigMap, or to host-less
rules (which are merged into every host), falls back to a full build. A property test checks
that both paths give equal models and problems for random change sequences.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from polyingress.core.annotations import Annotations
from polyingress.core.builder import (
    BuildOptions,
    BuildResult,
    _annotations_cached,
    _certificate_warning,
    _is_ours,
    _merge_catch_all,
    _our_classes,
    _parse_cached,
    _path_conflict,
    _ref_key,
    _settings,
    _tls_conflict,
    _tls_problem,
    build_model,
    default_backend,
    invalid_is_ours,
    names_no_class,
)
from polyingress.core.model import (
    Backend,
    Certificate,
    ObjectRef,
    PathType,
    Route,
    RouteModel,
    TLSBinding,
    VirtualHost,
    host_sort_key,
)
from polyingress.core.problems import Problem, Severity
from polyingress.core.store import ObjectKey, Snapshot
from polyingress.core.translate.ingress import BackendRef, ParsedIngress
from polyingress.core.translate.secret import CertificateError, certificate_from_secret
from polyingress.core.translate.service import (
    SERVICE_NAME_LABEL,
    SliceIndex,
    backend_name,
    resolve_backend,
)

__all__ = ["IncrementalBuilder"]

Host = str | None
SecretRef = tuple[str, str]


@dataclass(slots=True)
class _Ingress:
    obj: Mapping[str, Any]
    parsed: ParsedIngress | None
    status: str  # "accepted" | "rejected" | "ignored"
    problems: list[Problem]
    annotations: Annotations | None


@dataclass(slots=True)
class _CertState:
    secret: Mapping[str, Any] | None
    cert: Certificate | None
    why: str | None
    warnings: list[Problem]


class _SliceLookup:
    def __init__(self, slices: dict[tuple[str, str], dict[str, Mapping[str, Any]]]) -> None:
        self._slices = slices

    def get(self, key: tuple[str, str], default: Any = None) -> list[Mapping[str, Any]] | None:
        group = self._slices.get(key)
        return list(group.values()) if group else default


class _SliceView(SliceIndex):
    """A SliceIndex over incrementally maintained slices (no full scan per build)."""

    def __init__(self, slices: dict[tuple[str, str], dict[str, Mapping[str, Any]]]) -> None:
        self.by_service = _SliceLookup(slices)  # type: ignore[assignment]


class IncrementalBuilder:
    """Builds models from successive snapshots, reusing everything the changes cannot affect.

    ``build(snapshot, changed)``: ``changed`` is the set of (kind, namespace, name) keys that
    changed since the previous call, or None when unknown (then a full build is made).
    """

    def __init__(self, opts: BuildOptions | None = None) -> None:
        self.opts = opts or BuildOptions()
        self.result: BuildResult | None = None
        self.full_builds = 0
        self.incremental_builds = 0

    # -- public -------------------------------------------------------------------------------

    def build(self, snapshot: Snapshot, changed: Iterable[ObjectKey] | None) -> BuildResult:
        enabled = gc.isenabled()
        gc.disable()
        try:
            keys = None if changed is None else set(changed)
            if (
                self.result is None
                or keys is None
                or any(k[0] in ("IngressClass", "ConfigMap") for k in keys)
            ):
                return self._full(snapshot)
            if not keys:
                return self.result
            result = self._incremental(snapshot, keys)
            if result is None:
                return self._full(snapshot)
            self.incremental_builds += 1
            return result
        finally:
            if enabled:
                gc.enable()

    # -- full build: the reference result plus the state the incremental path needs ---------

    def _full(self, snapshot: Snapshot) -> BuildResult:
        self.full_builds += 1
        self.result = build_model(snapshot, self.opts)
        self._index(snapshot)
        return self.result

    def _index(self, snapshot: Snapshot) -> None:
        opts = self.opts
        self.ours, self.default_class = _our_classes(snapshot, opts)
        self.ings: dict[tuple[str, str], _Ingress] = {}
        self.by_host: dict[Host, set[tuple[str, str]]] = {}
        self.tls_by_host: dict[str, set[tuple[str, str]]] = {}
        self.with_default: set[tuple[str, str]] = set()
        self.by_status: dict[str, dict[tuple[str, str], ObjectRef]] = {
            "accepted": {},
            "rejected": {},
            "ignored": {},
        }
        self.without_class: dict[tuple[str, str], ObjectRef] = {}
        self.ing_problems: dict[tuple[str, str], list[Problem]] = {}
        for key, obj in snapshot.of("Ingress").items():
            self._set_ingress(key, obj)
        self.tables: dict[Host, dict[tuple[str, PathType], Route]] = {}
        self.host_problems: dict[Host, list[Problem]] = {}
        self.host_users: dict[Host, list[tuple[str, BackendRef, ObjectRef, str]]] = {}
        self.need: Counter[str] = Counter()
        self.refs: dict[str, BackendRef] = {}
        for host in list(self.by_host):
            self._table(host)
        self.tls_hosts: dict[str, tuple[SecretRef | None, ObjectRef, str]] = {}
        self.tls_problems: dict[str, list[Problem]] = {}
        for host in list(self.tls_by_host):
            self._tls(host)
        self.certs: dict[SecretRef, _CertState] = {}
        for sref in {s for s, _r, _f in self.tls_hosts.values() if s is not None}:
            self._cert(snapshot, sref)
        self.slices: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
        self.slice_owner: dict[tuple[str, str], tuple[str, str]] = {}
        for (ns, name), obj in snapshot.of("EndpointSlice").items():
            svc = ((obj.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
            if isinstance(svc, str):
                self.slices.setdefault((ns, svc), {})[name] = obj
                self.slice_owner[(ns, name)] = (ns, svc)
        self._order_cache: dict[str, tuple[set[Any], list[Any]]] = {}
        model = self.result.model if self.result else RouteModel()
        self.backends: dict[str, Backend] = {b.name: b for b in model.backends}
        self.vhosts: dict[Host, VirtualHost] = {v.host: v for v in model.vhosts}
        self.default_state = self._default(snapshot)

    # -- per-Ingress classification -----------------------------------------------------------

    def _classify(self, key: tuple[str, str], obj: Mapping[str, Any]) -> _Ingress:
        opts = self.opts
        parsed, found = _parse_cached(key, obj)
        if parsed is None:
            mine = invalid_is_ours(obj, self.ours, self.default_class, opts)
            status = "rejected" if mine else "ignored"
            return _Ingress(obj, None, status, list(found) if mine else [], None)
        if not _is_ours(parsed, self.ours, self.default_class, opts):
            return _Ingress(obj, parsed, "ignored", [], None)
        values, ann_problems = _annotations_cached(key, obj, parsed, opts.annotations_prefix)
        if any(p.severity is Severity.ERROR for p in ann_problems):
            return _Ingress(obj, parsed, "rejected", list(ann_problems), None)
        return _Ingress(obj, parsed, "accepted", list(ann_problems), values)

    def _hosts_of(self, state: _Ingress | None) -> tuple[set[Host], set[str], bool]:
        if state is None or state.status != "accepted" or state.parsed is None:
            return set(), set(), False
        p = state.parsed
        rule_hosts: set[Host] = {r.host for r in p.rules}
        tls: set[str] = set()
        for hosts, _secret, _f in p.tls:
            tls.update(hosts or p.hosts)
        return rule_hosts, tls, p.default_backend is not None

    def _set_ingress(self, key: tuple[str, str], obj: Mapping[str, Any] | None) -> None:
        for bucket in self.by_status.values():
            bucket.pop(key, None)
        self.without_class.pop(key, None)
        self.ing_problems.pop(key, None)
        old = self.ings.get(key)
        rh, th, d = self._hosts_of(old)
        for h in rh:
            self.by_host.get(h, set()).discard(key)
        for h in th:
            self.tls_by_host.get(h, set()).discard(key)
        if d:
            self.with_default.discard(key)
        if obj is None:
            self.ings.pop(key, None)
            return
        state = self._classify(key, obj)
        self.ings[key] = state
        ref = ObjectRef(kind="Ingress", namespace=key[0], name=key[1])
        if state.status == "accepted" and state.parsed is not None:
            ref = state.parsed.ref
        elif state.status == "rejected" and state.problems:
            ref = state.problems[0].ref
        self.by_status[state.status][key] = ref
        if state.status == "ignored" and names_no_class(obj):
            self.without_class[key] = ref
        if state.problems:
            self.ing_problems[key] = state.problems
        rh, th, d = self._hosts_of(state)
        for h in rh:
            self.by_host.setdefault(h, set()).add(key)
        for h in th:
            self.tls_by_host.setdefault(h, set()).add(key)
        if d:
            self.with_default.add(key)

    def _sorted_ingresses(self, keys: Iterable[tuple[str, str]]) -> list[ParsedIngress]:
        out = [self.ings[k].parsed for k in keys]
        parsed = [p for p in out if p is not None]
        parsed.sort(key=lambda p: p.order)
        return parsed

    # -- per-host tables and TLS --------------------------------------------------------------

    def _table(self, host: Host) -> None:
        for bname, _b, _r, _f in self.host_users.pop(host, []):
            self.need[bname] -= 1
            if self.need[bname] <= 0:
                del self.need[bname]
        table: dict[tuple[str, PathType], Route] = {}
        winners: dict[tuple[str, PathType], ObjectRef] = {}
        problems: list[Problem] = []
        users: list[tuple[str, BackendRef, ObjectRef, str]] = []
        for ing in self._sorted_ingresses(self.by_host.get(host, ())):
            for rule in ing.rules:
                if rule.host != host:
                    continue
                rkey = (rule.path, rule.path_type)
                if rkey in winners:
                    problems.append(_path_conflict(ing.ref, rule, winners[rkey]))
                    continue
                winners[rkey] = ing.ref
                b = rule.backend
                bname = backend_name(b.namespace, b.service, b.port)
                users.append((bname, b, ing.ref, rule.field + ".backend"))
                table[rkey] = Route(
                    path=rule.path, path_type=rule.path_type, backend=bname, source=ing.ref
                )
        for bname, b, _r, _f in users:
            self.need[bname] += 1
            self.refs.setdefault(bname, b)
        if table:
            self.tables[host] = table
        else:
            self.tables.pop(host, None)
        if not self.by_host.get(host):
            self.by_host.pop(host, None)
        self.host_problems[host] = problems
        self.host_users[host] = users

    def _tls(self, host: str) -> None:
        binding: tuple[SecretRef | None, ObjectRef, str] | None = None
        problems: list[Problem] = []
        for ing in self._sorted_ingresses(self.tls_by_host.get(host, ())):
            for hosts, secret, tfield in ing.tls:
                if host not in (hosts or ing.hosts):
                    continue
                if binding is not None:
                    if binding[1] != ing.ref:
                        problems.append(_tls_conflict(ing.ref, tfield, host, binding[1]))
                    continue
                sref = (ing.ref.namespace, secret) if secret else None
                binding = (sref, ing.ref, tfield)
        if binding is None:
            self.tls_hosts.pop(host, None)
        else:
            self.tls_hosts[host] = binding
        if not self.tls_by_host.get(host):
            self.tls_by_host.pop(host, None)
        self.tls_problems[host] = problems

    def _cert(self, snapshot: Snapshot, sref: SecretRef) -> None:
        secret = snapshot.get("Secret", sref[0], sref[1])
        if secret is None:
            self.certs[sref] = _CertState(None, None, "not found", [])
            return
        try:
            cert, warns = certificate_from_secret(secret)
        except CertificateError as exc:
            self.certs[sref] = _CertState(secret, None, str(exc), [])
            return
        problems = [_certificate_warning(cert, w) for w in warns]
        self.certs[sref] = _CertState(secret, cert, None, problems)

    # -- default backend ----------------------------------------------------------------------

    def _default(self, snapshot: Snapshot) -> tuple[BackendRef | None, list[Problem]]:
        return default_backend(self._sorted_ingresses(self.with_default), snapshot, self.opts)

    # -- the incremental path -----------------------------------------------------------------

    def _incremental(self, snapshot: Snapshot, keys: set[ObjectKey]) -> BuildResult | None:
        assert self.result is not None
        dirty_hosts: set[Host] = set()
        dirty_tls: set[str] = set()
        default_dirty = False
        for kind, ns, name in keys:
            if kind != "Ingress":
                continue
            key = (ns, name)
            old_rh, old_th, old_d = self._hosts_of(self.ings.get(key))
            self._set_ingress(key, snapshot.get("Ingress", ns, name))
            new_rh, new_th, new_d = self._hosts_of(self.ings.get(key))
            dirty_hosts |= old_rh | new_rh
            dirty_tls |= old_th | new_th
            default_dirty |= old_d or new_d
        if None in dirty_hosts:
            return None  # host-less rules are merged into every host: rebuild everything

        for host in dirty_hosts:
            self._table(host)
        old_bindings = {h: self.tls_hosts.get(h) for h in dirty_tls}
        for host in dirty_tls:
            self._tls(host)

        # Secrets: changed ones, and ones newly referenced.
        changed_secrets = {(ns, n) for k, ns, n in keys if k == "Secret"}
        used = {s for s, _r, _f in self.tls_hosts.values() if s is not None}
        for sref in used:
            if sref in changed_secrets or sref not in self.certs:
                before = self.certs.get(sref)
                self._cert(snapshot, sref)
                after = self.certs[sref]
                if before is None or before.cert != after.cert or before.why != after.why:
                    dirty_tls |= {h for h, b in self.tls_hosts.items() if b[0] == sref}
        for sref in [s for s in self.certs if s not in used]:
            del self.certs[sref]
        dirty_tls |= {h for h, b in old_bindings.items() if self.tls_hosts.get(h) != b}

        # Default backend.
        flag = self.opts.default_backend_service
        if flag is not None and ("Service", flag[0], flag[1]) in keys:
            default_dirty = True
        if default_dirty:
            self.default_state = self._default(snapshot)
        default_ref, default_problems = self.default_state
        default_name = None
        if default_ref is not None:
            default_name = backend_name(
                default_ref.namespace, default_ref.service, default_ref.port
            )

        # EndpointSlices index, then backends of changed Services/slices/Endpoints.
        touched_services: set[tuple[str, str]] = set()
        for kind, ns, name in keys:
            if kind == "EndpointSlice":
                owner = self.slice_owner.pop((ns, name), None)
                if owner is not None:
                    group = self.slices.get(owner, {})
                    group.pop(name, None)
                    touched_services.add(owner)
                    if not group:
                        self.slices.pop(owner, None)
                obj = snapshot.get("EndpointSlice", ns, name)
                if obj is not None:
                    labels = (obj.get("metadata") or {}).get("labels") or {}
                    svc = labels.get(SERVICE_NAME_LABEL)
                    if isinstance(svc, str):
                        self.slices.setdefault((ns, svc), {})[name] = obj
                        self.slice_owner[(ns, name)] = (ns, svc)
                        touched_services.add((ns, svc))
            elif kind in ("Service", "Endpoints"):
                touched_services.add((ns, name))

        needed = set(self.need)
        if default_ref is not None and default_name is not None:
            needed.add(default_name)
            self.refs.setdefault(default_name, default_ref)
        view = _SliceView(self.slices)
        for bname in needed:
            b = self.refs[bname]
            if bname not in self.backends or (b.namespace, b.service) in touched_services:
                self.backends[bname] = resolve_backend(
                    snapshot, view, b.namespace, b.service, b.port, b.port_is_name
                )
        for bname in [n for n in self.backends if n not in needed]:
            del self.backends[bname]
        for bname in [n for n in self.refs if n not in needed]:
            del self.refs[bname]

        # Virtual hosts that can have changed.
        catch_all = sorted(self.tables.get(None, {}).values(), key=Route.sort_key)
        for host in dirty_hosts | dirty_tls:
            self._vhost(host, catch_all)

        return self._assemble(snapshot, default_name, default_problems)

    def _vhost(self, host: Host, catch_all: list[Route]) -> None:
        if host not in self.tables and host not in self.tls_hosts:
            self.vhosts.pop(host, None)
            return
        own = list(self.tables.get(host, {}).values())
        rows = own if host is None else _merge_catch_all(own, catch_all)
        rows.sort(key=Route.sort_key)
        tls = None
        if host is not None and host in self.tls_hosts:
            sref, ing_ref, _f = self.tls_hosts[host]
            state = self.certs.get(sref) if sref is not None else None
            cname = None
            if state is not None and state.cert is not None:
                cname = state.cert.name
            ing = self.ings.get((ing_ref.namespace, ing_ref.name))
            ann = ing.annotations if ing is not None and ing.annotations else Annotations()
            tls = TLSBinding(
                certificate=cname, source=ing_ref, ssl_redirect=ann.get("ssl-redirect")
            )
        routes = tuple(rows)
        cached = self.vhosts.get(host)
        if cached is None or cached.routes != routes or cached.tls != tls:
            self.vhosts[host] = VirtualHost(host=host, routes=routes, tls=tls)

    def _sorted_once(self, name: str, mapping: Mapping[Any, Any], key: Any) -> tuple[Any, ...]:
        """The values of ``mapping`` sorted by ``key(value)``; re-sorted only when the set of
        keys changed (comparing key sets is cheap, sorting 10,000 items is not)."""
        cached = self._order_cache.get(name)
        if cached is not None and cached[0] == mapping.keys():
            return tuple(mapping[k] for k in cached[1])
        ordered = sorted(mapping) if key is None else sorted(mapping, key=lambda k: key(mapping[k]))
        self._order_cache[name] = (set(mapping), ordered)
        return tuple(mapping[k] for k in ordered)

    def _assemble(
        self, snapshot: Snapshot, default_name: str | None, default_problems: list[Problem]
    ) -> BuildResult:
        assert self.result is not None
        problems: list[Problem] = []
        for plist in self.ing_problems.values():
            problems += plist
        for plist in self.host_problems.values():
            if plist:
                problems += plist
        for tlist in self.tls_problems.values():
            if tlist:
                problems += tlist
        certificates: dict[str, Certificate] = {}
        for host, (sref, ing_ref, tfield) in self.tls_hosts.items():
            if sref is None:
                continue
            state = self.certs[sref]
            if state.why is not None:
                problems.append(_tls_problem(ing_ref, tfield, host, sref, state.why))
        for state in self.certs.values():
            if state.cert is not None:
                certificates[state.cert.name] = state.cert
                problems += state.warnings
        problems += default_problems
        broken = {n for n, b in self.backends.items() if b.problem is not None}
        if broken:
            for users in self.host_users.values():
                for bname, _b, ref, bfield in users:
                    if bname in broken:
                        problems.append(
                            Problem(
                                ref=ref,
                                field=bfield,
                                message=(
                                    f"{self.backends[bname].problem}; "
                                    "requests for this path get 503"
                                ),
                                severity=Severity.WARNING,
                                reason="BackendNotFound",
                            )
                        )
        settings = _settings(snapshot, self.opts, problems)
        model = RouteModel(
            vhosts=self._sorted_once("vhosts", self.vhosts, lambda v: host_sort_key(v.host)),
            backends=self._sorted_once("backends", self.backends, None),
            certificates=tuple(certificates[n] for n in sorted(certificates)),
            default_backend=default_name,
            settings=settings,
        )
        problems.sort(key=lambda p: (_ref_key(p.ref), p.field, p.message))
        self.result = BuildResult(
            model=model,
            problems=tuple(problems),
            served=self._sorted_once("served", self.by_status["accepted"], _ref_key),
            rejected=self._sorted_once("rejected", self.by_status["rejected"], _ref_key),
            ignored=self._sorted_once("ignored", self.by_status["ignored"], _ref_key),
            without_class=self._sorted_once("without_class", self.without_class, _ref_key),
        )
        return self.result
