"""Service port -> Backend with endpoints, from EndpointSlices (or legacy Endpoints)."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from polyingress.core.pipeline.model import Backend, BackendProtocol, Endpoint
from polyingress.core.pipeline.store import Snapshot

__all__ = [
    "SERVICE_NAME_LABEL",
    "app_protocol",
    "backend_name",
    "resolve_backend",
    "service_of_slice",
]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def backend_name(
    namespace: str, service: str, port: str, protocol: BackendProtocol = BackendProtocol.HTTP
) -> str:
    # Kubernetes names never contain '_', so '__' separators cannot collide. Interned: every
    # row of a backend and the backend itself share one string. A protocol other than HTTP
    # makes another backend of the same Service port.
    if protocol is not BackendProtocol.HTTP:
        return sys.intern(f"{namespace}__{service}__{port}__{protocol.value}")
    return sys.intern(f"{namespace}__{service}__{port}")


def app_protocol(snapshot: Snapshot, namespace: str, service: str, port: str) -> str | None:
    """The ``appProtocol`` of a Service port given by number (None: not set, or no such
    Service or port)."""
    svc = snapshot.get("Service", namespace, service)
    if svc is None:
        return None
    sp = _find_service_port(svc, port, False)
    value = sp.get("appProtocol") if isinstance(sp, Mapping) else None
    return value if isinstance(value, str) else None


@lru_cache(maxsize=1 << 17)
def canonical_ip(address: str) -> str | None:
    """The canonical text of an IP literal, or None (hostnames are never accepted, nor IPv6
    zone ids: ``fe80::1%eth0`` names an interface of the node, not a pod address, and the text
    after ``%`` is free-form)."""
    if "%" in address:
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _find_service_port(service: Mapping[str, Any], port: str, by_name: bool) -> Any:
    for sp in (service.get("spec") or {}).get("ports") or []:
        if not isinstance(sp, Mapping):
            continue
        if by_name and sp.get("name") == port:
            return sp
        if not by_name and str(sp.get("port")) == port:
            return sp
    return None


def _endpoints_from_slices(
    slices: Sequence[Mapping[str, Any]], service_port: Mapping[str, Any]
) -> list[Endpoint]:
    wanted = service_port.get("name") or ""
    target = service_port.get("targetPort")
    out: dict[tuple[str, int], Endpoint] = {}
    for sl in slices:
        if sl.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            continue
        port_no: int | None = None
        for p in sl.get("ports") or []:
            if isinstance(p, Mapping) and (p.get("name") or "") == wanted:
                port_no = p.get("port")
                break
        if port_no is None and isinstance(target, int) and not sl.get("ports"):
            port_no = target
        if not isinstance(port_no, int) or not 1 <= port_no <= 65535:
            continue
        for ep in sl.get("endpoints") or []:
            if not isinstance(ep, Mapping):
                continue
            addrs = ep.get("addresses") or []
            addr = canonical_ip(addrs[0]) if addrs and isinstance(addrs[0], str) else None
            if addr is None:
                continue
            cond = ep.get("conditions") or {}
            ready = cond.get("ready")
            ready = True if ready is None else bool(ready)
            serving = cond.get("serving")
            serving = ready if serving is None else bool(serving)
            terminating = bool(cond.get("terminating") or False)
            key = (addr, port_no)
            prev = out.get(key)
            if prev is None or (ready and not prev.ready):
                out[key] = Endpoint(
                    address=addr,
                    port=port_no,
                    ready=ready and not terminating,
                    serving=serving,
                    terminating=terminating,
                )
    return list(out.values())


def _endpoints_from_legacy(
    endpoints: Mapping[str, Any], service_port: Mapping[str, Any]
) -> list[Endpoint]:
    wanted = service_port.get("name") or ""
    out: dict[tuple[str, int], Endpoint] = {}
    for subset in endpoints.get("subsets") or []:
        if not isinstance(subset, Mapping):
            continue
        port_no = None
        for p in subset.get("ports") or []:
            if isinstance(p, Mapping) and (p.get("name") or "") == wanted:
                port_no = p.get("port")
        if not isinstance(port_no, int) or not 1 <= port_no <= 65535:
            continue
        for field, ready in (("addresses", True), ("notReadyAddresses", False)):
            for a in subset.get(field) or []:
                ip = a.get("ip") if isinstance(a, Mapping) else None
                addr = canonical_ip(ip) if isinstance(ip, str) else None
                if addr is not None:
                    out.setdefault(
                        (addr, port_no),
                        Endpoint(address=addr, port=port_no, ready=ready, serving=ready),
                    )
    return list(out.values())


def service_of_slice(obj: Mapping[str, Any]) -> str | None:
    """The Service an EndpointSlice belongs to (its ``kubernetes.io/service-name`` label)."""
    svc = ((obj.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
    return svc if isinstance(svc, str) else None


def resolve_backend(
    snapshot: Snapshot,
    slices: Sequence[Mapping[str, Any]],
    namespace: str,
    service: str,
    port: str,
    by_name: bool,
    protocol: BackendProtocol = BackendProtocol.HTTP,
) -> Backend:
    """Service port by number or name -> targetPort -> EndpointSlice ports -> endpoints.

    ``slices`` are the Service's EndpointSlices (sorted by name: the result must not depend on
    the order the store happened to receive them in)."""
    name = backend_name(namespace, service, port, protocol)

    def broken(why: str) -> Backend:
        return Backend(
            name=name,
            namespace=namespace,
            service=service,
            port=port,
            problem=f"Service {namespace}/{service} {why}",
            protocol=protocol,
        )

    svc = snapshot.get("Service", namespace, service)
    if svc is None:
        return broken("not found")
    if (svc.get("spec") or {}).get("type") == "ExternalName":
        return broken("is ExternalName, which is not supported")
    sp = _find_service_port(svc, port, by_name)
    if sp is None:
        return broken(f"has no port {port}")
    if slices:
        eps = _endpoints_from_slices(slices, sp)
    else:
        legacy = snapshot.get("Endpoints", namespace, service)
        eps = _endpoints_from_legacy(legacy, sp) if legacy is not None else []
    eps.sort()
    return Backend(
        name=name,
        namespace=namespace,
        service=service,
        port=port,
        endpoints=tuple(eps),
        protocol=protocol,
    )


def first_port(snapshot: Snapshot, namespace: str, service: str) -> tuple[str, bool] | None:
    """The first port of a Service as (port, by_name), for ``--default-backend-service``."""
    svc = snapshot.get("Service", namespace, service)
    if svc is None:
        return None
    ports = (svc.get("spec") or {}).get("ports") or []
    if not ports or not isinstance(ports[0], Mapping):
        return None
    if ports[0].get("name"):
        return (str(ports[0]["name"]), True)
    return (str(ports[0].get("port")), False)
