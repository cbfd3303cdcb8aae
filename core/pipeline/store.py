"""The object store every source writes into, and the snapshot the builder reads.

Objects are kept as plain dicts in the Kubernetes API's JSON form (camelCase keys), keyed by
(kind, namespace, name). Sources replace whole objects; the store never mutates one in place,
so the builder may cache per-object translations by identity.

A kind is read from its own API group only (``API_GROUPS``): Istio's ``networking.istio.io``
Gateway or Knative's ``serving.knative.dev`` Service share a kind name with ours and are not
taken. The Gateway API kinds must name their apiVersion (one of ``GATEWAY_API_VERSIONS``, the
versions the standard-channel CRDs serve); the older kinds may leave it out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "API_GROUPS",
    "CLUSTER_SCOPED",
    "GATEWAY_API_VERSIONS",
    "GATEWAY_GROUP",
    "GATEWAY_KINDS",
    "GATEWAY_V1",
    "KINDS",
    "ObjectKey",
    "ObjectStore",
    "Snapshot",
    "accepts",
    "api_group",
    "object_key",
]

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_V1 = f"{GATEWAY_GROUP}/v1"
# The Gateway API kinds read (standard channel). Sources store them as GATEWAY_V1: the CRDs
# convert between their versions without changing a field ("None" strategy), so an object
# written as v1beta1 reads back as v1 with the same content.
GATEWAY_KINDS = ("GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant")
GATEWAY_API_VERSIONS = frozenset({GATEWAY_V1, f"{GATEWAY_GROUP}/v1beta1"})

KINDS = (
    "Ingress",
    "IngressClass",
    "Service",
    "EndpointSlice",
    "Endpoints",
    "Secret",
    "ConfigMap",
    *GATEWAY_KINDS,
    # Namespaces are read for their labels only (HTTPRoute allowedRoutes ``from: Selector``).
    "Namespace",
)
CLUSTER_SCOPED = frozenset({"IngressClass", "Namespace", "GatewayClass"})

# kind -> the API groups it is read from ("" is the core group, apiVersion "v1").
API_GROUPS: Mapping[str, frozenset[str]] = {
    "Ingress": frozenset({"networking.k8s.io", "extensions"}),
    "IngressClass": frozenset({"networking.k8s.io"}),
    "Service": frozenset({""}),
    "EndpointSlice": frozenset({"discovery.k8s.io"}),
    "Endpoints": frozenset({""}),
    "Secret": frozenset({""}),
    "ConfigMap": frozenset({""}),
    "Namespace": frozenset({""}),
    **{kind: frozenset({GATEWAY_GROUP}) for kind in GATEWAY_KINDS},
}
_NEEDS_API_VERSION = frozenset(GATEWAY_KINDS)

ObjectKey = tuple[str, str, str]
Obj = Mapping[str, Any]


def api_group(api_version: str) -> str:
    """The group of an apiVersion: ``networking.k8s.io/v1`` -> ``networking.k8s.io``,
    ``v1`` -> ``""`` (the core group)."""
    return api_version.rpartition("/")[0]


def accepts(kind: object, api_version: object) -> bool:
    """``kind`` is one we read and ``api_version`` is of its group (see the module docstring)."""
    if kind not in KINDS:
        return False
    if kind in _NEEDS_API_VERSION:
        return api_version in GATEWAY_API_VERSIONS
    if api_version is None:
        return True
    return isinstance(api_version, str) and api_group(api_version) in API_GROUPS[str(kind)]


def object_key(obj: Obj) -> ObjectKey | None:
    """(kind, namespace, name) of an object, or None when it is not a kind we read (also a
    kind of the same name from another API group)."""
    kind = obj.get("kind")
    if not isinstance(kind, str) or not accepts(kind, obj.get("apiVersion")):
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
