"""What changed between two models, precisely enough for a backend to choose runtime vs reload."""

from __future__ import annotations

from dataclasses import dataclass

from .model import PathType, Route, RouteModel, VirtualHost

__all__ = ["ModelDiff", "RouteKey", "diff"]

RouteKey = tuple[str | None, str, PathType]
"""(host, path, path type): identifies a row of a virtual host's routing table."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelDiff:
    """The difference ``new - old``. Every field is sorted, so diffs compare and print stably.

    ``endpoints_changed`` names backends present in both models whose endpoints (or problem)
    differ; ``routes_changed`` are rows whose key exists in both but whose backend or source
    changed; ``tls_changed`` names hosts whose TLS binding changed (added, removed, other cert).
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


def _route_table(vhosts: tuple[VirtualHost, ...]) -> dict[RouteKey, Route]:
    table: dict[RouteKey, Route] = {}
    for vhost in vhosts:
        for route in vhost.routes:
            table[(vhost.host, route.path, route.path_type)] = route
    return table


def diff(old: RouteModel | None, new: RouteModel) -> ModelDiff:
    """Compute ``new - old``; ``old`` None means everything in ``new`` is added."""
    if old is None:
        old = RouteModel()
    if old is new or old == new:
        return ModelDiff()

    ob, nb = old.backend_index, new.backend_index
    endpoints_changed = [
        name
        for name in nb.keys() & ob.keys()
        if nb[name].endpoints != ob[name].endpoints or nb[name].problem != ob[name].problem
    ]

    oh, nh = old.vhost_index, new.vhost_index
    tls_changed = [h for h in nh.keys() & oh.keys() if nh[h].tls != oh[h].tls]
    tls_changed += [h for h in nh.keys() - oh.keys() if nh[h].tls is not None]
    tls_changed += [h for h in oh.keys() - nh.keys() if oh[h].tls is not None]

    ort, nrt = _route_table(old.vhosts), _route_table(new.vhosts)
    routes_changed = [
        k
        for k in nrt.keys() & ort.keys()
        if (nrt[k].backend, nrt[k].source, nrt[k].from_catch_all)
        != (ort[k].backend, ort[k].source, ort[k].from_catch_all)
    ]

    oc, nc = old.certificate_index, new.certificate_index
    certs_changed = [
        n for n in nc.keys() & oc.keys() if nc[n].fingerprint != oc[n].fingerprint or nc[n] != oc[n]
    ]

    return ModelDiff(
        backends_added=tuple(sorted(nb.keys() - ob.keys())),
        backends_removed=tuple(sorted(ob.keys() - nb.keys())),
        endpoints_changed=tuple(sorted(endpoints_changed)),
        vhosts_added=tuple(sorted(nh.keys() - oh.keys(), key=_host_key)),
        vhosts_removed=tuple(sorted(oh.keys() - nh.keys(), key=_host_key)),
        routes_added=tuple(sorted(nrt.keys() - ort.keys(), key=_route_key_sort)),
        routes_removed=tuple(sorted(ort.keys() - nrt.keys(), key=_route_key_sort)),
        routes_changed=tuple(sorted(routes_changed, key=_route_key_sort)),
        tls_changed=tuple(sorted(tls_changed, key=_host_key)),
        certificates_added=tuple(sorted(nc.keys() - oc.keys())),
        certificates_removed=tuple(sorted(oc.keys() - nc.keys())),
        certificates_changed=tuple(sorted(certs_changed)),
        default_backend_changed=old.default_backend != new.default_backend,
        settings_changed=old.settings != new.settings,
    )
