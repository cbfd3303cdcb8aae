"""Builders of the Kubernetes objects (API JSON dicts) the live tests write or put in a store.

Every builder of ``Objects`` puts its object in the namespace the ``Objects`` was made for; a
test module binds the builders it uses once, e.g.::

    OBJECTS = Objects("faults")
    service, ingress, tls_secret = OBJECTS.service, OBJECTS.ingress, OBJECTS.tls_secret

(``kube_objects`` has the constructors of the table-driven unit tests, and ``CLASS``.)
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from polyingress.core import self_signed


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def cert_data(common_name: str, host: str, days: int = 365) -> dict[str, str]:
    """The data of a TLS Secret: a new self-signed certificate for ``host``, and its key."""
    cert = self_signed(common_name, (host,), days=days)
    return {"tls.crt": b64(cert.cert_pem), "tls.key": b64(cert.key_pem)}


@dataclass(frozen=True)
class Objects:
    """The builders, for objects in ``namespace``. ``api_version=False`` leaves ``apiVersion``
    out (test_nginx_live's objects have none: the store and the manifest source go by kind)."""

    namespace: str = "live"
    api_version: bool = True

    def _head(self, api_version: str, kind: str) -> dict[str, str]:
        if self.api_version:
            return {"apiVersion": api_version, "kind": kind}
        return {"kind": kind}

    def service(self, name: str, port: int, addresses: list[str]) -> list[dict[str, Any]]:
        """A Service (port 80) and its EndpointSlice: ``addresses``, ready, on ``port``."""
        return [
            {
                **self._head("v1", "Service"),
                "metadata": {"name": name, "namespace": self.namespace},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]},
            },
            {
                **self._head("discovery.k8s.io/v1", "EndpointSlice"),
                "metadata": {
                    "name": f"{name}-s1",
                    "namespace": self.namespace,
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
                "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
            },
        ]

    def ingress(
        self, name: str, host: str, paths: dict[str, str], tls_secret: str | None = None
    ) -> dict[str, Any]:
        """An Ingress of class polyingress: one rule for ``host``, a Prefix path per entry of
        ``paths`` (path: Service, port 80); TLS with the Secret ``tls_secret`` if given."""
        spec: dict[str, Any] = {
            "ingressClassName": "polyingress",
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": path,
                                "pathType": "Prefix",
                                "backend": {"service": {"name": svc, "port": {"number": 80}}},
                            }
                            for path, svc in sorted(paths.items())
                        ]
                    },
                }
            ],
        }
        if tls_secret is not None:
            spec["tls"] = [{"hosts": [host], "secretName": tls_secret}]
        return {
            **self._head("networking.k8s.io/v1", "Ingress"),
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }

    def tls_secret(self, name: str, data: dict[str, str]) -> dict[str, Any]:
        """A Secret of type kubernetes.io/tls holding ``data`` as it is."""
        return {
            **self._head("v1", "Secret"),
            "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": self.namespace},
            "data": data,
        }

    def self_signed_secret(self, name: str, host: str, common_name: str) -> dict[str, Any]:
        """A TLS Secret with a new self-signed certificate for ``host`` named ``common_name``."""
        return self.tls_secret(name, cert_data(common_name, host))
