"""Where a reflector (source.py) puts what it lists and watches: the object store, as is
(StoreSink), one object by name (NamedSink, ``--configmap``), or only the Secrets the model
reads (SecretSink). configmaps.py adds the sinks of the custom-headers ConfigMaps."""

from __future__ import annotations

from typing import Any

from polyingress.core.pipeline.store import ObjectKey, ObjectStore, object_key

__all__ = ["SECRET_TYPES", "TLS_SECRET_TYPE", "NamedSink", "SecretSink", "StoreSink"]

Obj = dict[str, Any]

TLS_SECRET_TYPE = "kubernetes.io/tls"
# The Secrets the model reads: TLS certificates, and Opaque ones (auth-secret's htpasswd files
# and maps). Other types (service-account tokens, registry credentials, Helm releases, often
# large) are listed and watched with the rest but never stored.
SECRET_TYPES = frozenset({TLS_SECRET_TYPE, "Opaque"})


class StoreSink:
    """Where a reflector puts what it reads: the store, as is."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def replace(self, kind: str, items: list[Obj], namespace: str | None) -> None:
        self.store.replace_kind(kind, items, namespace=namespace)

    def upsert(self, obj: Obj) -> None:
        self.store.upsert(obj)

    def delete(self, key: ObjectKey) -> None:
        self.store.delete(key)


class NamedSink(StoreSink):
    """The sink of a reflector that reads one object by name (``--configmap``): a relist
    replaces that object only, never the other objects of its kind and namespace."""

    def __init__(self, store: ObjectStore, key: ObjectKey) -> None:
        super().__init__(store)
        self.key = key

    def replace(self, kind: str, items: list[Obj], namespace: str | None) -> None:
        mine = [o for o in items if object_key(o) == self.key]
        self.store.replace_many(mine, () if mine else [self.key])


class SecretSink(StoreSink):
    """The Secret reflector's sink: only the types the model reads (SECRET_TYPES) are stored;
    a Secret's type cannot change, so one of another type is never in the store. No type is
    Opaque, as the API server defaults it."""

    def replace(self, kind: str, items: list[dict[str, Any]], namespace: str | None) -> None:
        super().replace(kind, [o for o in items if _secret_type(o) in SECRET_TYPES], namespace)

    def upsert(self, obj: dict[str, Any]) -> None:
        if _secret_type(obj) in SECRET_TYPES:
            super().upsert(obj)


def _secret_type(obj: dict[str, Any]) -> Any:
    return obj.get("type") or "Opaque"
