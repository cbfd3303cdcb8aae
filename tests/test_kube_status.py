"""Ingress status: written for served Ingresses only when it differs, cleared when they leave."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kube_emulator import Call, KubeEmulator, replicas
from kube_objects import CLASS, ingress, path, rule, service, slice_
from livekit import wait_until

from polyingress.core.sources.kubernetes.status import lb_entries


def lb(kube: KubeEmulator, name: str, ns: str = "default") -> Any:
    obj = kube.get("Ingress", ns, name) or {}
    return ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress")


def status_writes(kube: KubeEmulator) -> list[Call]:
    return [c for c in kube.calls() if c.resource == "ingresses/status"]


def objects(kube: KubeEmulator) -> None:
    kube.put(CLASS)
    kube.put(service("web"))
    kube.put(slice_("web", [("10.0.0.1", True)]))
    kube.put(ingress("web", rule("web.example.com", path("/", "web"))))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            ["10.0.0.2", "lb.example.com", "10.0.0.1"],
            [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"hostname": "lb.example.com"}],
        ),
        (["2001:db8::1", "2001:db8::1"], [{"ip": "2001:db8::1"}]),
        ([], []),
    ],
    ids=["ips-sorted-before-hostnames", "duplicates-dropped", "empty"],
)
def test_lb_entries(given: list[str], expected: list[dict[str, str]]) -> None:
    assert lb_entries(given) == expected


def test_publish_status_address_is_written_once_and_cleared_when_leaving_the_class(
    kube: KubeEmulator,
) -> None:
    objects(kube)
    kube.put(ingress("other", rule("other.example.com", path("/", "web")), cls="someone-else"))
    with replicas(kube, publish_status_address=("203.0.113.7", "lb.example.com")) as (_rep,):
        wait_until(lambda: lb(kube, "web") is not None)
        assert lb(kube, "web") == [{"ip": "203.0.113.7"}, {"hostname": "lb.example.com"}]
        assert lb(kube, "other") is None  # not ours: never touched
        # Unrelated changes rebuild the model but never rewrite an unchanged status.
        for i in range(3):
            kube.put(slice_("web", [(f"10.0.0.{i + 2}", True)]))
        time.sleep(0.8)  # > status_resync
        assert len(status_writes(kube)) == 1

        # The Ingress moves to another class: the addresses we wrote are cleared.
        kube.put(ingress("web", rule("web.example.com", path("/", "web")), cls="someone-else"))
        wait_until(lambda: lb(kube, "web") is None)
        assert len(status_writes(kube)) == 2
        # And back: written again.
        kube.put(ingress("web", rule("web.example.com", path("/", "web"))))
        wait_until(lambda: lb(kube, "web") is not None)


def test_publish_service_load_balancer_addresses(kube: KubeEmulator) -> None:
    objects(kube)
    kube.put(
        {
            **service("polyingress", ns="polyingress", type="LoadBalancer"),
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.20"}]}},
        }
    )
    with replicas(kube, publish_service=("polyingress", "polyingress")) as (_rep,):
        wait_until(lambda: lb(kube, "web") == [{"ip": "198.51.100.20"}])
        # The load balancer gets another address: the status follows (publish_refresh).
        svc = kube.get("Service", "polyingress", "polyingress")
        assert svc is not None
        svc["status"] = {"loadBalancer": {"ingress": [{"hostname": "lb.cloud.example"}]}}
        kube.put(svc)
        wait_until(lambda: lb(kube, "web") == [{"hostname": "lb.cloud.example"}])
    gets = [c for c in kube.calls() if c.verb == "get" and c.resource == "services"]
    assert gets and all((c.namespace, c.name) == ("polyingress", "polyingress") for c in gets)


def test_publish_service_node_port_uses_node_addresses(kube: KubeEmulator) -> None:
    objects(kube)
    kube.put(service("polyingress", ns="polyingress", type="NodePort"))
    for name, addrs in (
        ("node-a", [("InternalIP", "192.168.0.10"), ("ExternalIP", "203.0.113.10")]),
        ("node-b", [("InternalIP", "192.168.0.11")]),
    ):
        kube.put(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name},
                "status": {"addresses": [{"type": t, "address": a} for t, a in addrs]},
            }
        )
    with replicas(kube, publish_service=("polyingress", "polyingress")) as (_rep,):
        wait_until(lambda: lb(kube, "web") == [{"ip": "192.168.0.11"}, {"ip": "203.0.113.10"}])
    assert any(c.verb == "list" and c.resource == "nodes" for c in kube.calls())


def test_update_status_false_writes_nothing(kube: KubeEmulator) -> None:
    objects(kube)
    with replicas(kube, publish_status_address=("203.0.113.7",), update_status=False) as (rep,):
        assert rep.runtime.status is None
        time.sleep(0.3)
    assert status_writes(kube) == []
