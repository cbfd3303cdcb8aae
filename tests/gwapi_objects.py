"""Small constructors of Gateway API objects (API JSON dicts) and Namespaces, for source tests."""

from __future__ import annotations

from typing import Any

GROUP = "gateway.networking.k8s.io"
V1 = f"{GROUP}/v1"
CONTROLLER = "polyingress.io/controller"


def gateway_class(
    name: str = "polyingress", controller: str = CONTROLLER, api_version: str = V1
) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": "GatewayClass",
        "metadata": {"name": name},
        "spec": {"controllerName": controller},
    }


def gateway(
    name: str = "gw",
    ns: str = "default",
    cls: str = "polyingress",
    listeners: list[dict[str, Any]] | None = None,
    api_version: str = V1,
) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "gatewayClassName": cls,
            "listeners": listeners
            or [{"name": "http", "protocol": "HTTP", "port": 80, "hostname": "*.example.com"}],
        },
    }


def http_route(
    name: str,
    host: str,
    service: str = "web",
    ns: str = "default",
    parent: tuple[str, str] = ("default", "gw"),
    api_version: str = V1,
) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "parentRefs": [{"namespace": parent[0], "name": parent[1]}],
            "hostnames": [host],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": service, "port": 80}],
                }
            ],
        },
    }


def reference_grant(
    name: str = "allow-routes",
    ns: str = "backends",
    from_ns: str = "default",
    api_version: str = f"{GROUP}/v1beta1",
) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": "ReferenceGrant",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "from": [{"group": GROUP, "kind": "HTTPRoute", "namespace": from_ns}],
            "to": [{"group": "", "kind": "Service"}],
        },
    }


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def istio_gateway(name: str = "gw", ns: str = "default") -> dict[str, Any]:
    """A Gateway of another API group (Istio's): same kind name, not ours."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": []},
    }
