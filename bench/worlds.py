"""Generated worlds of Kubernetes objects for the benchmarks (plain API-JSON dicts)."""

from __future__ import annotations

from typing import Any


def generated_world(
    n: int, *, endpoints: int = 3, paths: int = 2, wildcard: bool = False, port: int = 8080
) -> list[dict[str, Any]]:
    """``n`` Ingresses (one host each, ``paths`` paths), ``n`` Services and EndpointSlices."""
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "polyingress"},
            "spec": {"controller": "polyingress.io/controller"},
        }
    ]
    for i in range(n):
        ns = f"ns-{i // 100:04d}"
        svc = f"app-{i:05d}"
        host = f"app-{i:05d}.{ns}.apps.example.com"
        if wildcard:
            host = "*." + host
        objs.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {
                    "name": svc,
                    "namespace": ns,
                    "creationTimestamp": "2026-01-01T00:00:00Z",
                },
                "spec": {
                    "ingressClassName": "polyingress",
                    "rules": [
                        {
                            "host": host,
                            "http": {
                                "paths": [
                                    {
                                        "path": "/" if p == 0 else f"/api/v{p}",
                                        "pathType": "Prefix",
                                        "backend": {
                                            "service": {"name": svc, "port": {"number": 80}}
                                        },
                                    }
                                    for p in range(paths)
                                ]
                            },
                        }
                    ],
                },
            }
        )
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": svc, "namespace": ns},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]},
            }
        )
        objs.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{svc}-abcde",
                    "namespace": ns,
                    "labels": {"kubernetes.io/service-name": svc},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": port}],
                "endpoints": [
                    {
                        "addresses": [f"10.{(i >> 8) & 255}.{i & 255}.{e + 1}"],
                        "conditions": {"ready": True},
                    }
                    for e in range(endpoints)
                ],
            }
        )
    return objs
