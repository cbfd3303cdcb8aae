"""The object store every source writes into, and the snapshot the builder reads.

Objects are kept as plain dicts in the Kubernetes API's JSON form (camelCase keys), keyed by
(kind, namespace, name). Sources replace whole objects; the store never mutates one in place,
so the builder may cache per-object translations by identity.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["KINDS", "ObjectKey", "ObjectStore", "Snapshot"]

KINDS = (
    "Ingress",
    "IngressClass",
    "Service",
    "EndpointSlice",
    "Endpoints",
    "Secret",
    "ConfigMap",
    "GatewayClass",
    "Gateway",
    "HTTPRoute",
    "ReferenceGrant",
    "Namespace",
)
CLUSTER_SCOPED = frozenset({"IngressClass", "GatewayClass", "Namespace"})

ObjectKey = tuple[str, str, str]
Obj = Mapping[str, Any]


def object_key(obj: Obj) -> ObjectKey | None:
    """(kind, namespace, name) of an object, or None when it is not a kind we read."""
    kind = obj.get("kind")
    if kind not in KINDS:
        return None
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        return None
    ns = "" if kind in CLUSTER_SCOPED else (meta.get("namespace") or "default")
    return (kind, ns, name)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable view of the store at one instant: kind -> {(namespace, name): object}."""

    objects: Mapping[str, Mapping[tuple[str, str], Obj]]
    generation: int

    def of(self, kind: str) -> Mapping[tuple[str, str], Obj]:
        return self.objects.get(kind, {})

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.objects.get(kind, {}).get((namespace, name))


class ObjectStore:
    """Thread-safe store. Every change bumps ``generation`` and calls the change callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {k: {} for k in KINDS}
        self._generation = 0
        self._listeners: list[Any] = []

    def subscribe(self, callback: Any) -> None:
        """``callback(keys)`` is called (outside the lock) after every change."""
        self._listeners.append(callback)

    @property
    def generation(self) -> int:
        return self._generation

    def upsert(self, obj: Obj) -> bool:
        return self.replace_many(upserts=[obj], deletes=())

    def delete(self, key: ObjectKey) -> bool:
        return self.replace_many(upserts=(), deletes=[key])

    def replace_many(self, upserts: Iterable[Obj], deletes: Iterable[ObjectKey]) -> bool:
        """Apply a batch atomically; returns True when anything changed."""
        changed: list[ObjectKey] = []
        with self._lock:
            for key in deletes:
                if self._objects[key[0]].pop((key[1], key[2]), None) is not None:
                    changed.append(key)
            for obj in upserts:
                okey = object_key(obj)
                if okey is None:
                    continue
                bucket = self._objects[okey[0]]
                if bucket.get((okey[1], okey[2])) != obj:
                    bucket[(okey[1], okey[2])] = obj
                    changed.append(okey)
            if changed:
                self._generation += 1
        if changed:
            for callback in list(self._listeners):
                callback(changed)
        return bool(changed)

    def replace_kind(self, kind: str, objects: Iterable[Obj], namespace: str | None = None) -> bool:
        """Make the store's objects of ``kind`` (in ``namespace``, or all) exactly ``objects``."""
        new = {}
        for obj in objects:
            okey = object_key(obj)
            if okey is not None and okey[0] == kind:
                new[(okey[1], okey[2])] = obj
        with self._lock:
            current = self._objects[kind]
            stale = [
                (kind, ns, name)
                for (ns, name) in current
                if (namespace is None or ns == namespace) and (ns, name) not in new
            ]
        return self.replace_many(upserts=new.values(), deletes=stale)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                objects={k: dict(v) for k, v in self._objects.items()},
                generation=self._generation,
            )

    def keys(self, kind: str) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._objects[kind])
