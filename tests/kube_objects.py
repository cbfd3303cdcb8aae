"""Small constructors of Kubernetes objects (API JSON dicts) for table-driven tests."""

from __future__ import annotations

from typing import Any

CLASS = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "IngressClass",
    "metadata": {"name": "polyingress"},
    "spec": {"controller": "polyingress.io/controller"},
}


def path(p: str | None, service: str = "svc", ptype: str = "Prefix", port: Any = 80) -> dict:
    port_ref = {"number": port} if isinstance(port, int) else {"name": port}
    out: dict[str, Any] = {
        "pathType": ptype,
        "backend": {"service": {"name": service, "port": port_ref}},
    }
    if p is not None:
        out["path"] = p
    return out


def ingress(
    name: str,
    *rules: dict[str, Any],
    ns: str = "default",
    created: str = "2026-01-01T00:00:00Z",
    cls: str | None = "polyingress",
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    s: dict[str, Any] = {**spec}
    if rules:
        s["rules"] = list(rules)
    if cls is not None:
        s["ingressClassName"] = cls
    meta: dict[str, Any] = {"name": name, "namespace": ns, "creationTimestamp": created}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": s}


def rule(host: str | None, *paths: dict[str, Any]) -> dict[str, Any]:
    r: dict[str, Any] = {"http": {"paths": list(paths)}}
    if host is not None:
        r["host"] = host
    return r


def service(
    name: str, ports: list[dict[str, Any]] | None = None, ns: str = "default", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": ports or [{"name": "http", "port": 80, "targetPort": 8080}], **spec},
    }


def slice_(
    service_name: str,
    endpoints: list[tuple[str, bool]] | list[tuple[str, bool, bool]],
    ports: list[dict[str, Any]] | None = None,
    ns: str = "default",
    name: str | None = None,
) -> dict[str, Any]:
    eps = []
    for ep in endpoints:
        cond: dict[str, Any] = {"ready": ep[1]}
        if len(ep) > 2:
            cond["terminating"] = ep[2]
        eps.append({"addresses": [ep[0]], "conditions": cond})
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name or f"{service_name}-x1",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "ports": ports if ports is not None else [{"name": "http", "port": 8080}],
        "endpoints": eps,
    }
