"""Small constructors of Gateway API objects (API JSON dicts) and Namespaces, for source tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from polyingress.core.pipeline.store import Snapshot

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


# -- a stand-in for the status computation ------------------------------------------------------


def cond(
    ctype: str, status: str = "True", reason: str = "", message: str = "", gen: int = 1
) -> dict[str, Any]:
    return {
        "type": ctype,
        "status": status,
        "reason": reason or ctype,
        "message": message,
        "observedGeneration": gen,
    }


@dataclass
class Statuses:
    """A hand-written stand-in for the status computation: every GatewayClass of ours
    Accepted, every Gateway Accepted/Programmed with its listeners, every HTTPRoute (or those
    in ``routes``) Accepted by its first parent."""

    message: str = "all good"
    status: str = "True"
    transition_time: str | None = None  # given with every condition, if set
    routes: set[str] | None = None
    snapshots: list[int] = field(default_factory=list)

    def conditions(self, gen: int, *types: str) -> list[dict[str, Any]]:
        out = [cond(t, self.status, message=self.message, gen=gen) for t in types]
        if self.transition_time is not None:
            for c in out:
                c["lastTransitionTime"] = self.transition_time
        return out

    def __call__(self, snapshot: Snapshot) -> list[dict[str, Any]]:
        self.snapshots.append(snapshot.generation)
        docs: list[dict[str, Any]] = []
        for (_ns, name), obj in sorted(snapshot.of("GatewayClass").items()):
            docs.append(
                {
                    "apiVersion": V1,
                    "kind": "GatewayClass",
                    "metadata": {"name": name},
                    "status": {"conditions": self.conditions(gen(obj), "Accepted")},
                }
            )
        for (ns, name), obj in sorted(snapshot.of("Gateway").items()):
            listeners = [
                {
                    "name": lst["name"],
                    "attachedRoutes": 1,
                    "supportedKinds": [{"kind": "HTTPRoute"}],  # group: the CRD's default
                    "conditions": self.conditions(gen(obj), "Accepted", "Programmed"),
                }
                for lst in obj["spec"]["listeners"]
            ]
            docs.append(
                {
                    "apiVersion": V1,
                    "kind": "Gateway",
                    "metadata": {"namespace": ns, "name": name},
                    "status": {
                        "conditions": self.conditions(gen(obj), "Accepted", "Programmed"),
                        "listeners": listeners,
                    },
                }
            )
        for (ns, name), obj in sorted(snapshot.of("HTTPRoute").items()):
            if self.routes is not None and name not in self.routes:
                continue
            ref = obj["spec"]["parentRefs"][0]
            parent = {
                # group and kind left out: the CRD's defaults
                "parentRef": {"namespace": ref.get("namespace", ns), "name": ref["name"]},
                "controllerName": CONTROLLER,
                "conditions": self.conditions(gen(obj), "Accepted", "ResolvedRefs"),
            }
            docs.append(
                {
                    "apiVersion": V1,
                    "kind": "HTTPRoute",
                    "metadata": {"namespace": ns, "name": name},
                    "status": {"parents": [parent]},
                }
            )
        return docs


def gen(obj: Mapping[str, Any]) -> int:
    return int(obj["metadata"].get("generation") or 1)
