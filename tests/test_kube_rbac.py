"""The RBAC in deploy/ against every API call the controller makes.

Each kube test's emulator checks at teardown that the calls of that test are allowed (see
``running_emulator``); here the whole session's calls are checked again, and a scenario that
exercises every feature shows that nothing granted goes unused.
"""

from __future__ import annotations

import datetime

from gwapi_objects import Statuses, gateway, gateway_class, http_route, namespace, reference_grant
from kube_emulator import (
    ALL_CALLS,
    DEPLOY,
    OVERLAYS,
    ApiError,
    Call,
    KubeEmulator,
    allows,
    configmap,
    deployed_grants,
    forbidden_calls,
    grants_of,
    kustomize_build,
    replicas,
    running_emulator,
)
from kube_objects import CLASS, ingress, path, rule, service, slice_
from livekit import wait_until


def conflict_once_per_status(kube: KubeEmulator) -> None:
    """The first status write of each Gateway API kind meets a 409 Conflict (someone else
    wrote the object meanwhile), so the writer reads the object again."""
    seen: set[str] = set()

    def fault(call: Call) -> ApiError | None:
        gateway_status = call.group == "gateway.networking.k8s.io" and call.verb == "update"
        if gateway_status and call.resource not in seen:
            seen.add(call.resource)
            return ApiError(409, "Conflict", "the object has been modified")
        return None

    kube.api.faults.append(fault)


def full_scenario(kube: KubeEmulator) -> list[Call]:
    """Two replicas as deploy/ runs them: ConfigMap, NodePort publish-service, status,
    Events with a series, leader handover; Gateway API objects with their status written
    (through a conflict each)."""
    kube.put(CLASS)
    kube.put(namespace("default"))
    kube.put(gateway_class())
    kube.put(gateway("gw"))
    kube.put(http_route("route", "route.example.com", service="web"))
    kube.put(reference_grant())
    conflict_once_per_status(kube)
    kube.put(configmap({"proxy-body-size": "8m"}))
    kube.put(service("polyingress", ns="polyingress", type="NodePort"))
    kube.put(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-a"},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.10"}]},
        }
    )
    kube.put(service("web"))
    kube.put(slice_("web", [("10.0.0.1", True)]))
    kube.put(ingress("web", rule("web.example.com", path("/", "web"))))
    bad = ingress("bad", rule("bad.example.com", path("nope", "web")))
    kube.put(bad)
    with replicas(
        kube,
        "a",
        "b",
        configmap=("polyingress", "polyingress"),
        publish_service=("polyingress", "polyingress"),
        gateway_statuses=Statuses(),
    ) as (a, b):
        assert a.leading
        wait_until(
            lambda: ((kube.get("Ingress", "default", "web") or {}).get("status") or {}).get(
                "loadBalancer"
            )
        )
        wait_until(lambda: any(e["reason"] == "Rejected" for e in kube.list("Event")))
        for kind, ns, name in (
            ("GatewayClass", "", "polyingress"),
            ("Gateway", "default", "gw"),
            ("HTTPRoute", "default", "route"),
        ):
            wait_until(
                lambda kind=kind, ns=ns, name=name: (
                    "lastTransitionTime" in str((kube.get(kind, ns, name) or {}).get("status"))
                )
            )
        # The same rejection again (annotations changed, same problem): a series update.
        kube.put({**bad, "metadata": {**bad["metadata"], "annotations": {"touched": "1"}}})
        wait_until(
            lambda: any((e.get("series") or {}).get("count") == 2 for e in kube.list("Event"))
        )
        a.stop()  # releases the lease
        wait_until(lambda: b.leading)
    return kube.calls()


def test_every_call_in_this_session_is_allowed() -> None:
    with running_emulator() as kube:
        full_scenario(kube)
    assert ALL_CALLS, "no calls recorded"
    assert forbidden_calls(list(ALL_CALLS)) == []


def test_the_rbac_grants_nothing_the_code_does_not_use() -> None:
    with running_emulator() as kube:
        calls = full_scenario(kube)
    grants = deployed_grants()
    assert forbidden_calls(calls, grants) == []
    unused = [g for g in grants if not any(allows(g, c) for c in calls + list(ALL_CALLS))]
    assert unused == []
    verbs = {(c.verb, c.resource) for c in calls}
    assert ("update", "leases") in verbs and ("patch", "events") in verbs
    for plural in ("gatewayclasses", "gateways", "httproutes"):
        assert ("update", f"{plural}/status") in verbs and ("get", plural) in verbs
    kinds = (
        "gatewayclasses",
        "gateways",
        "httproutes",
        "referencegrants",
        "namespaces",
        "configmaps",
    )
    for plural in kinds:
        assert ("list", plural) in verbs and ("watch", plural) in verbs


def test_every_overlay_grants_the_same() -> None:
    sa = ("polyingress", "polyingress")
    reference = sorted(map(repr, deployed_grants()))
    for overlay in OVERLAYS:
        got = grants_of(kustomize_build(DEPLOY / "overlays" / overlay), sa)
        assert sorted(map(repr, got)) == reference


def test_a_call_outside_the_grants_is_caught() -> None:
    now = datetime.datetime.now(datetime.UTC).isoformat()
    sneaky = [
        Call("get", "", "secrets", "default", "cafe-tls", f"polyingress/x {now}"),
        Call("update", "coordination.k8s.io", "leases", "polyingress", "other-lease", ""),
        Call("get", "", "services", "polyingress", "", ""),  # no name: not authorized
        Call("get", "", "configmaps", "default", "team", ""),  # configmaps: list/watch only
    ]
    assert forbidden_calls(sneaky) == sorted(sneaky)
