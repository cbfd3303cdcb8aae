"""What changed between two models, precisely enough for a backend to choose runtime vs reload."""

from __future__ import annotations

import gc
from dataclasses import dataclass

from polyingress.core.pipeline.model import PathType, Route, RouteModel, VirtualHost

__all__ = ["ModelDiff", "RouteKey", "diff", "endpoints_changed"]

RouteKey = tuple[str | None, str, PathType]
"""(host, path, path type): identifies a row of a virtual host's routing table."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelDiff:
    """The difference ``new - old``. Every field is sorted, so diffs compare and print stably.

    ``endpoints_changed`` names backends present in both models whose endpoints (or problem)
    differ; ``routes_changed`` are row keys present in both whose rows differ in anything (an
    Ingress row's backend or source; any field of the Gateway API rows of that path);
    ``tls_changed`` names hosts whose TLS binding changed (added, removed, other cert);
    ``default_certificate_changed``: another certificate answers no or unknown SNI.
    """

    backends_added: tuple[str, ...] = ()
    backends_removed: tuple[str, ...] = ()
    endpoints_changed: tuple[str, ...] = ()
    vhosts_added: tuple[str | None, ...] = ()
    vhosts_removed: tuple[str | None, ...] = ()
    routes_added: tuple[RouteKey, ...] = ()
    routes_removed: tuple[RouteKey, ...] = ()
    routes_changed: tuple[RouteKey, ...] = ()
    tls_changed: tuple[str | None, ...] = ()
    certificates_added: tuple[str, ...] = ()
    certificates_removed: tuple[str, ...] = ()
    certificates_changed: tuple[str, ...] = ()
    default_certificate_changed: bool = False
    default_backend_changed: bool = False
    settings_changed: bool = False

    @property
    def empty(self) -> bool:
        return not any(getattr(self, f) for f in self.__dataclass_fields__)

    @property
    def endpoints_only(self) -> bool:
        """True when nothing but the endpoints of existing backends changed."""
        return bool(self.endpoints_changed) and all(
            not getattr(self, f) for f in self.__dataclass_fields__ if f != "endpoints_changed"
        )

    @property
    def routing_changed(self) -> bool:
        return bool(
            self.vhosts_added
            or self.vhosts_removed
            or self.routes_added
            or self.routes_removed
            or self.routes_changed
            or self.default_backend_changed
        )

    def summary(self) -> str:
        parts = []
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, tuple) and value:
                parts.append(f"{name}={len(value)}")
            elif value is True:
                parts.append(name)
        return ", ".join(parts) if parts else "no change"


def _host_key(host: str | None) -> tuple[int, str]:
    return (1, "") if host is None else (0, host)


def _route_key_sort(key: RouteKey) -> tuple[tuple[int, str], str, str]:
    return (_host_key(key[0]), key[1], key[2].value)


def _rows(vhost: VirtualHost) -> dict[tuple[str, PathType], tuple[Route, ...]]:
    """A host's rows by (path, type): one Ingress row, or the Gateway API rows of that path
    (other conditions), in precedence order."""
    rows: dict[tuple[str, PathType], list[Route]] = {}
    for r in vhost.routes:
        rows.setdefault((r.path, r.path_type), []).append(r)
    return {key: tuple(found) for key, found in rows.items()}


def diff(old: RouteModel | None, new: RouteModel) -> ModelDiff:
    """Compute ``new - old``; ``old`` None means everything in ``new`` is added.

    Unchanged parts of consecutive models are shared objects (the builder reuses them), so
    the cost grows with the change, not with the world.
    """
    if old is None:
        old = RouteModel()
    if old is new:
        return ModelDiff()
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _diff(old, new)
    finally:
        if enabled:
            gc.enable()


def endpoints_changed(old: RouteModel, new: RouteModel) -> tuple[str, ...]:
    """The backends both models have whose endpoints (or problem) differ, sorted: the
    ``endpoints_changed`` of ``diff(old, new)`` alone, in time linear in the backends (unchanged
    ones are shared objects), for a caller that needs nothing else."""
    ob, nb = old.backend_index, new.backend_index
    return tuple(
        sorted(
            name
            for name, b in nb.items()
            if (o := ob.get(name)) is not None
            and o is not b
            and (b.endpoints != o.endpoints or b.problem != o.problem)
        )
    )


def _diff(old: RouteModel, new: RouteModel) -> ModelDiff:
    ob, nb = old.backend_index, new.backend_index
    changed_endpoints = endpoints_changed(old, new)

    oh, nh = old.vhost_index, new.vhost_index
    tls_changed: list[str | None] = []
    routes_added: list[RouteKey] = []
    routes_removed: list[RouteKey] = []
    routes_changed: list[RouteKey] = []
    for host, nv in nh.items():
        ov = oh.get(host)
        if ov is nv:
            continue
        if ov is None:
            if nv.tls is not None:
                tls_changed.append(host)
            routes_added += [(host, r.path, r.path_type) for r in nv.routes]
            continue
        if nv.tls != ov.tls:
            tls_changed.append(host)
        if nv.routes == ov.routes:
            continue
        orows, nrows = _rows(ov), _rows(nv)
        for key, rows in nrows.items():
            before = orows.get(key)
            if before is None:
                routes_added.append((host, *key))
            elif rows != before:
                # Whatever changed in the rows: the backend or source of an Ingress row, or
                # a Gateway API row's conditions, split, filters, redirect or rewrite.
                routes_changed.append((host, *key))
        routes_removed += [(host, *key) for key in orows if key not in nrows]
    for host, ov in oh.items():
        if host not in nh:
            if ov.tls is not None:
                tls_changed.append(host)
            routes_removed += [(host, r.path, r.path_type) for r in ov.routes]

    oc, nc = old.certificate_index, new.certificate_index
    certs_changed = [n for n, c in nc.items() if (prev := oc.get(n)) is not None and prev != c]

    return ModelDiff(
        backends_added=tuple(sorted(nb.keys() - ob.keys())),
        backends_removed=tuple(sorted(ob.keys() - nb.keys())),
        endpoints_changed=changed_endpoints,
        vhosts_added=tuple(sorted(nh.keys() - oh.keys(), key=_host_key)),
        vhosts_removed=tuple(sorted(oh.keys() - nh.keys(), key=_host_key)),
        routes_added=tuple(sorted(routes_added, key=_route_key_sort)),
        routes_removed=tuple(sorted(routes_removed, key=_route_key_sort)),
        routes_changed=tuple(sorted(routes_changed, key=_route_key_sort)),
        tls_changed=tuple(sorted(tls_changed, key=_host_key)),
        certificates_added=tuple(sorted(nc.keys() - oc.keys())),
        certificates_removed=tuple(sorted(oc.keys() - nc.keys())),
        certificates_changed=tuple(sorted(certs_changed)),
        default_certificate_changed=old.default_certificate != new.default_certificate,
        default_backend_changed=old.default_backend != new.default_backend,
        settings_changed=old.settings != new.settings,
    )
