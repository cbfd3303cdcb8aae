"""The ConfigMaps a ``custom-headers`` annotation names, in Kubernetes mode.

Such a ConfigMap is any ConfigMap of the Ingress's namespace, so no label or field selector can
pick them out: ConfigMaps are listed and watched in every namespace the Ingresses are read from
(all, or ``--watch-namespace``), but the store holds only those some Ingress names (a cluster's
other ConfigMaps — dashboards, scripts, CA bundles — can be large and are dropped as they
arrive; only their names are remembered). ``--configmap`` keeps its own watch and is never
touched here.

Both sides run under one lock, so the store always holds the ConfigMaps its Ingresses name:

* an Ingress written to the store that names a ConfigMap not held yet, which the ConfigMap list
  has seen, has that ConfigMap read first (one ``list`` with the field selector
  ``metadata.name``, the verb the watch already needs) and stored before the Ingress, so no
  build sees the Ingress without its ConfigMap (which would answer 503 meanwhile);
* a ConfigMap event is stored when some Ingress names it, dropped (and removed from the store)
  otherwise;
* a ConfigMap no Ingress names any more leaves the store after the Ingress that named it.

Which Ingresses name a ConfigMap is read from their annotations (``<prefix>/custom-headers``
and ``nginx.ingress.kubernetes.io/custom-headers``, the Ingress's own namespace only — the
builder refuses the others), whatever their class: a few ConfigMaps too many, never one too
few.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from polyingress.core.pipeline.annotations import NGINX_PREFIX, parse_namespaced
from polyingress.core.pipeline.store import ObjectKey, ObjectStore, object_key
from polyingress.core.sources.kubernetes.sinks import StoreSink

__all__ = ["ConfigMapRefs", "named_configmaps"]

log = logging.getLogger("polyingress.kubernetes")

Obj = dict[str, Any]
Name = tuple[str, str]  # namespace, name
# Reads one ConfigMap (namespace, name): the object, or None when there is none; raises on
# an API failure.
Fetch = Callable[[str, str], Obj | None]


def named_configmaps(ingress: Mapping[str, Any], prefix: str) -> frozenset[Name]:
    """The ConfigMaps an Ingress's custom-headers annotations name (own namespace only)."""
    meta = ingress.get("metadata")
    if not isinstance(meta, Mapping):
        return frozenset()
    annotations = meta.get("annotations")
    ns = meta.get("namespace") or "default"
    if not isinstance(annotations, Mapping) or not isinstance(ns, str):
        return frozenset()
    out: set[Name] = set()
    for p in dict.fromkeys((prefix, NGINX_PREFIX)):
        value = annotations.get(f"{p}/custom-headers")
        if not isinstance(value, str):
            continue
        try:
            given_ns, name = parse_namespaced(value.strip())
        except ValueError:
            continue  # the builder reports it
        if given_ns is None or given_ns == ns:
            out.add((ns, name))
    return frozenset(out)


class ConfigMapRefs:
    """The bookkeeping of the module docstring; ``ingresses`` and ``configmaps`` are the sinks
    of the Ingress reflector and of the referenced-ConfigMaps reflector."""

    def __init__(
        self,
        store: ObjectStore,
        fetch: Fetch,
        *,
        prefix: str,
        settings: Name | None = None,
    ) -> None:
        self.store = store
        self.fetch = fetch
        self.prefix = prefix
        self.settings = settings  # --configmap: its own reflector's
        self._lock = threading.RLock()
        self._named: dict[Name, frozenset[Name]] = {}  # Ingress -> the ConfigMaps it names
        self._count: Counter[Name] = Counter()
        self._exists: set[Name] | None = None  # every ConfigMap's name, once listed
        self._held: set[Name] = set()  # in the store, from here
        self.ingresses = _IngressSink(self)
        self.configmaps = _ConfigMapSink(self)

    # -- what is held -------------------------------------------------------------------------

    def wanted(self, name: Name) -> bool:
        return self._count[name] > 0 and name != self.settings

    def held(self) -> frozenset[Name]:
        with self._lock:
            return frozenset(self._held)

    def _names(self, obj: Mapping[str, Any]) -> frozenset[Name]:
        return frozenset(n for n in named_configmaps(obj, self.prefix) if n != self.settings)

    def _rename(self, ingress: Name, names: frozenset[Name]) -> tuple[set[Name], set[Name]]:
        """Record what ``ingress`` names now; returns (newly wanted, no longer wanted)."""
        before = self._named.pop(ingress, frozenset())
        if names:
            self._named[ingress] = names
        gained, lost = set(), set()
        for n in names - before:
            self._count[n] += 1
            if self._count[n] == 1:
                gained.add(n)
        for n in before - names:
            self._count[n] -= 1
            if self._count[n] <= 0:
                del self._count[n]
                lost.add(n)
        return gained, lost

    def _bring(self, names: Iterable[Name]) -> None:
        """Store the ConfigMaps newly named that exist but are not held (read one by one)."""
        for ns, name in sorted(names):
            if (ns, name) in self._held or self._exists is None or (ns, name) not in self._exists:
                continue  # held, or the ConfigMap list (still to come) or watch brings it
            obj = self.fetch(ns, name)
            if obj is None:
                continue
            self.store.upsert(obj)
            self._held.add((ns, name))

    def _drop(self, names: Iterable[Name]) -> None:
        gone = [("ConfigMap", ns, name) for ns, name in sorted(names) if (ns, name) in self._held]
        if gone:
            self.store.replace_many((), gone)
            self._held.difference_update((k[1], k[2]) for k in gone)


def _name(obj: Mapping[str, Any]) -> Name | None:
    key = object_key(obj)
    return None if key is None else (key[1], key[2])


class _IngressSink(StoreSink):
    def __init__(self, refs: ConfigMapRefs) -> None:
        super().__init__(refs.store)
        self.refs = refs

    def replace(self, kind: str, items: list[Obj], namespace: str | None) -> None:
        refs = self.refs
        with refs._lock:
            listed = {n: refs._names(o) for o in items if (n := _name(o)) is not None}
            gained: set[Name] = set()
            lost: set[Name] = set()
            for ing in [i for i in refs._named if namespace is None or i[0] == namespace]:
                if ing not in listed:
                    lost |= refs._rename(ing, frozenset())[1]
            for ing, names in listed.items():
                g, lo = refs._rename(ing, names)
                gained |= g
                lost |= lo
            refs._bring(gained)
            self.store.replace_kind(kind, items, namespace=namespace)
            refs._drop(n for n in lost if not refs.wanted(n))

    def upsert(self, obj: Obj) -> None:
        refs = self.refs
        name = _name(obj)
        with refs._lock:
            gained, lost = refs._rename(name, refs._names(obj)) if name else (set(), set())
            refs._bring(gained)
            self.store.upsert(obj)
            refs._drop(lost)

    def delete(self, key: ObjectKey) -> None:
        refs = self.refs
        with refs._lock:
            _gained, lost = refs._rename((key[1], key[2]), frozenset())
            self.store.delete(key)
            refs._drop(lost)


class _ConfigMapSink(StoreSink):
    def __init__(self, refs: ConfigMapRefs) -> None:
        super().__init__(refs.store)
        self.refs = refs

    def replace(self, kind: str, items: list[Obj], namespace: str | None) -> None:
        refs = self.refs
        with refs._lock:
            names = {n: o for o in items if (n := _name(o)) is not None}
            outside = {n for n in refs._exists or () if namespace is not None and n[0] != namespace}
            refs._exists = outside | set(names)
            keep = [o for n, o in names.items() if refs.wanted(n)]
            stale = [
                ("ConfigMap", *n)
                for n in refs._held
                if (namespace is None or n[0] == namespace)
                and (not refs.wanted(n) or n not in names)
            ]
            self.store.replace_many(keep, stale)
            refs._held = {n for n in refs._held if ("ConfigMap", *n) not in stale} | {
                n for n in names if refs.wanted(n)
            }

    def upsert(self, obj: Obj) -> None:
        refs = self.refs
        name = _name(obj)
        if name is None:
            return
        with refs._lock:
            if refs._exists is not None:
                refs._exists.add(name)
            if refs.wanted(name):
                self.store.upsert(obj)
                refs._held.add(name)
            else:
                refs._drop([name])

    def delete(self, key: ObjectKey) -> None:
        refs = self.refs
        with refs._lock:
            name = (key[1], key[2])
            if refs._exists is not None:
                refs._exists.discard(name)
            refs._drop([name])
