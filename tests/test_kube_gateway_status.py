"""Gateway API status: the writer puts the status documents it is given on the status
subresources (leader only, only when changed, lastTransitionTime kept, other controllers'
route parents kept), against the kmock emulator serving the vendored CRDs."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from gwapi_objects import (
    CONTROLLER,
    Statuses,
    cond,
    gateway,
    gateway_class,
    http_route,
    namespace,
)
from kube_emulator import GATEWAY_CRDS, ApiError, Call, KubeEmulator, replicas
from kube_objects import service
from livekit import wait_until

from polyingress.core.sources.kubernetes.gateway_status import (
    STATUS_DEFAULTS,
    desired_status,
    with_status_defaults,
)
from polyingress.testing.live import write_manifests

OTHER = "example.com/other-controller"
T0 = "2026-01-01T00:00:00Z"
NOW = "2026-06-01T12:00:00Z"


def status_of(kube: KubeEmulator, kind: str, name: str, ns: str = "default") -> Any:
    return (kube.get(kind, ns, name) or {}).get("status")


def status_writes(kube: KubeEmulator, identity: str | None = None) -> list[Call]:
    return [
        c
        for c in kube.calls()
        if c.resource.endswith("/status")
        and c.group == "gateway.networking.k8s.io"
        and (identity is None or c.user_agent.endswith(f"({identity})"))
    ]


def world(kube: KubeEmulator) -> None:
    kube.put(namespace("default"))
    kube.put(gateway_class())
    kube.put(gateway_class("theirs", controller=OTHER))
    kube.put(gateway("gw"))
    kube.put(gateway("their-gw", cls="theirs"))
    kube.put(http_route("web", "web.example.com"))


_WORLD = [
    ("Namespace", "", "default"),
    ("GatewayClass", "", "polyingress"),
    ("GatewayClass", "", "theirs"),
    ("Gateway", "default", "gw"),
    ("Gateway", "default", "their-gw"),
    ("HTTPRoute", "default", "web"),
]


def _spec_only(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object as a manifest has it: no status, no server-set metadata."""
    meta = obj["metadata"]
    keep = {k: meta[k] for k in ("name", "namespace", "labels") if k in meta}
    return {k: v for k, v in obj.items() if k != "status"} | {"metadata": keep}


def accepted(kube: KubeEmulator, kind: str, name: str, ns: str = "default") -> Any:
    status = status_of(kube, kind, name, ns) or {}
    conditions = status.get("conditions") or []
    if kind == "HTTPRoute":
        ours = [p for p in status.get("parents") or [] if p["controllerName"] == CONTROLLER]
        conditions = ours[0]["conditions"] if ours else []
    return next((c for c in conditions if c["type"] == "Accepted"), None)


# -- the rules, without a cluster ----------------------------------------------------------------


def test_status_defaults_are_the_crds() -> None:
    """The writer fills in exactly the defaults the vendored CRDs' status schemas declare."""

    def walk(schema: Mapping[str, Any], path: str) -> Iterator[tuple[str, Any]]:
        if "default" in schema and path:
            yield path, schema["default"]
        for name, sub in (schema.get("properties") or {}).items():
            yield from walk(sub, f"{path}.{name}" if path else name)
        if "items" in schema:
            yield from walk(schema["items"], f"{path}[]")

    for plural, crd in GATEWAY_CRDS.items():
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            props = version["schema"]["openAPIV3Schema"]["properties"]
            found = sorted(walk(props["status"], "")) if "status" in props else []
            assert found == sorted(STATUS_DEFAULTS.get(kind, ())), (plural, version["name"])


def test_a_condition_keeps_its_transition_time_while_its_status_is_the_same() -> None:
    old = {"conditions": [{**cond("Accepted", message="old"), "lastTransitionTime": T0}]}
    # Message, reason, observedGeneration change; status does not: no transition.
    same = {"conditions": [cond("Accepted", reason="Other", message="new", gen=2)]}
    got = desired_status("GatewayClass", old, same, CONTROLLER, NOW)
    assert got["conditions"] == [
        {**cond("Accepted", reason="Other", message="new", gen=2), "lastTransitionTime": T0}
    ]
    # Status changes: the time of the transition (now, or the one the document gives).
    flipped = {"conditions": [cond("Accepted", "False")]}
    got = desired_status("GatewayClass", old, flipped, CONTROLLER, NOW)
    assert got["conditions"][0]["lastTransitionTime"] == NOW
    given = {
        "conditions": [{**cond("Accepted", "False"), "lastTransitionTime": "2026-05-05T00:00:00Z"}]
    }
    got = desired_status("GatewayClass", old, given, CONTROLLER, NOW)
    assert got["conditions"][0]["lastTransitionTime"] == "2026-05-05T00:00:00Z"
    # The CRD's Pending default is a status too: Unknown -> True is a transition.
    pending = with_status_defaults("GatewayClass", {})
    got = desired_status(
        "GatewayClass", pending, {"conditions": [cond("Accepted")]}, CONTROLLER, NOW
    )
    assert got["conditions"][0]["lastTransitionTime"] == NOW


def test_listener_and_parent_conditions_are_matched_by_listener_and_parent() -> None:
    old_gw = {
        "conditions": [{**cond("Accepted"), "lastTransitionTime": T0}],
        "listeners": [
            {"name": "a", "conditions": [{**cond("Programmed"), "lastTransitionTime": T0}]},
            {
                "name": "b",
                "conditions": [{**cond("Programmed", "False"), "lastTransitionTime": T0}],
            },
        ],
    }
    new_gw = {
        "conditions": [cond("Accepted")],
        "listeners": [
            {"name": "b", "supportedKinds": [], "conditions": [cond("Programmed")]},
            {"name": "a", "supportedKinds": [], "conditions": [cond("Programmed")]},
        ],
    }
    got = desired_status("Gateway", old_gw, new_gw, CONTROLLER, NOW)
    times = {lst["name"]: lst["conditions"][0]["lastTransitionTime"] for lst in got["listeners"]}
    assert times == {"a": T0, "b": NOW}
    assert got["conditions"][0]["lastTransitionTime"] == T0


def test_other_controllers_route_parents_are_kept_and_ours_replaced() -> None:
    theirs = {
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "x"},
        "controllerName": OTHER,
        "conditions": [{**cond("Accepted", "False"), "lastTransitionTime": T0}],
    }
    old_ours = {
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"},
        "controllerName": CONTROLLER,
        "conditions": [{**cond("Accepted"), "lastTransitionTime": T0}],
    }
    current = {"parents": [theirs, old_ours]}
    wanted = {
        "parents": [
            {
                "parentRef": {"name": "gw"},
                "controllerName": CONTROLLER,
                "conditions": [cond("Accepted", message="still")],
            },
            {
                "parentRef": {"name": "gw2", "sectionName": "http"},
                "controllerName": CONTROLLER,
                "conditions": [cond("Accepted")],
            },
        ]
    }
    got = desired_status("HTTPRoute", current, wanted, CONTROLLER, NOW)
    assert got["parents"][0] == theirs
    assert [p["parentRef"] for p in got["parents"][1:]] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"},
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "gw2",
            "sectionName": "http",
        },
    ]
    assert got["parents"][1]["conditions"][0]["lastTransitionTime"] == T0  # matched, same status
    assert got["parents"][2]["conditions"][0]["lastTransitionTime"] == NOW
    # Written and read back, it is what the computation asks for: no second write.
    assert desired_status("HTTPRoute", got, wanted, CONTROLLER, "2027-01-01T00:00:00Z") == got
    # None of ours any more: only theirs stays.
    assert desired_status("HTTPRoute", got, {"parents": []}, CONTROLLER, NOW) == {
        "parents": [theirs]
    }


# -- against the API server ----------------------------------------------------------------------


def test_statuses_are_written_to_the_status_subresource_once(kube: KubeEmulator) -> None:
    world(kube)
    statuses = Statuses()
    with replicas(kube, gateway_statuses=statuses) as (rep,):
        assert rep.leading
        wait_until(lambda: accepted(kube, "HTTPRoute", "web") is not None)
        wait_until(lambda: accepted(kube, "Gateway", "gw") is not None)
        wait_until(lambda: accepted(kube, "GatewayClass", "polyingress", "") is not None)
        writes = status_writes(kube)
        assert sorted((c.verb, c.resource, c.namespace, c.name) for c in writes) == [
            ("update", "gatewayclasses/status", "", "polyingress"),
            ("update", "gateways/status", "default", "gw"),
            ("update", "httproutes/status", "default", "web"),
        ]
        # Not ours: the other controller's class and its Gateway are never written.
        assert status_of(kube, "GatewayClass", "theirs", "")["conditions"][0]["reason"] == "Pending"
        assert status_of(kube, "Gateway", "their-gw")["conditions"][0]["reason"] == "Pending"
        route = status_of(kube, "HTTPRoute", "web")
        assert route["parents"][0]["parentRef"] == {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "namespace": "default",
            "name": "gw",
        }
        gw = status_of(kube, "Gateway", "gw")
        assert gw["listeners"][0]["supportedKinds"] == [
            {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}
        ]
        assert all(c["lastTransitionTime"] for c in gw["conditions"])
        # Builds go on (other objects change, the resync passes): nothing is written again,
        # though the API server stored the status with its defaults filled in.
        before = len(statuses.snapshots)
        for i in range(3):
            kube.put(service(f"extra-{i}"))
        time.sleep(1.2)  # > status_resync (0.5 s)
        assert len(statuses.snapshots) > before
        assert len(status_writes(kube)) == 3


def test_transition_times_are_kept_until_the_status_changes(kube: KubeEmulator) -> None:
    world(kube)
    statuses = Statuses()
    with replicas(kube, gateway_statuses=statuses) as (_rep,):
        wait_until(lambda: accepted(kube, "HTTPRoute", "web") is not None)
        first = accepted(kube, "HTTPRoute", "web")
        assert first["lastTransitionTime"] not in ("", None, "1970-01-01T00:00:00Z")
        gw_first = accepted(kube, "Gateway", "gw")
        writes = len(status_writes(kube))

        # The message changes (and the document even names another time): written, and
        # the time of the last transition stays.
        statuses.message = "still good"
        statuses.transition_time = "2031-01-01T00:00:00Z"
        kube.put(service("nudge"))  # a build
        wait_until(lambda: accepted(kube, "HTTPRoute", "web")["message"] == "still good")
        assert (
            accepted(kube, "HTTPRoute", "web")["lastTransitionTime"] == first["lastTransitionTime"]
        )
        wait_until(lambda: accepted(kube, "Gateway", "gw")["message"] == "still good")
        assert (
            accepted(kube, "Gateway", "gw")["lastTransitionTime"] == gw_first["lastTransitionTime"]
        )
        assert len(status_writes(kube)) == writes + 3

        # The status changes: a transition, at the time the document gives.
        statuses.status = "False"
        kube.put(service("nudge", ports=[{"port": 81}]))
        wait_until(lambda: accepted(kube, "HTTPRoute", "web")["status"] == "False")
        assert accepted(kube, "HTTPRoute", "web")["lastTransitionTime"] == "2031-01-01T00:00:00Z"

        # A spec change: the route's generation moves, observedGeneration follows.
        route = kube.get("HTTPRoute", "default", "web")
        assert route is not None
        route["spec"]["hostnames"] = ["www.example.com"]
        kube.put(route)
        wait_until(lambda: accepted(kube, "HTTPRoute", "web")["observedGeneration"] == 2)
        assert accepted(kube, "HTTPRoute", "web")["lastTransitionTime"] == "2031-01-01T00:00:00Z"


def test_other_controllers_parents_are_kept_and_ours_leave_with_the_route(
    kube: KubeEmulator,
) -> None:
    world(kube)
    theirs = {
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "their-gw"},
        "controllerName": OTHER,
        "conditions": [{**cond("Accepted", message="theirs"), "lastTransitionTime": T0}],
    }
    route = http_route("web", "web.example.com")
    route["status"] = {"parents": [theirs]}
    kube.put(route)
    statuses = Statuses()
    with replicas(kube, gateway_statuses=statuses) as (_rep,):
        wait_until(lambda: accepted(kube, "HTTPRoute", "web") is not None)
        parents = status_of(kube, "HTTPRoute", "web")["parents"]
        assert parents[0] == theirs and len(parents) == 2

        # The route is no longer ours to report: our entry goes, theirs stays.
        statuses.routes = set()
        kube.put(service("nudge"))
        wait_until(lambda: accepted(kube, "HTTPRoute", "web") is None)
        assert status_of(kube, "HTTPRoute", "web")["parents"] == [theirs]


def test_only_the_leader_writes(kube: KubeEmulator) -> None:
    world(kube)
    a_statuses, b_statuses = Statuses(), Statuses()
    with replicas(kube, "a", "b", gateway_statuses=a_statuses) as (a, b):
        # b computes too (same function), but is not the leader.
        assert b.runtime.gateway_status is not None
        b.runtime.gateway_status.statuses = b_statuses
        assert a.leading and not b.leading
        wait_until(lambda: accepted(kube, "HTTPRoute", "web") is not None)
        b_statuses.message = "b would say this"
        kube.put(service("nudge"))
        time.sleep(1.0)
        assert status_writes(kube, "b") == []
        assert len(status_writes(kube, "a")) == 3
        assert accepted(kube, "HTTPRoute", "web")["message"] == "all good"

        a.stop()  # releases the lease: b takes over and writes what it computes
        wait_until(lambda: b.leading)
        wait_until(lambda: accepted(kube, "HTTPRoute", "web")["message"] == "b would say this")
        assert len(status_writes(kube, "b")) == 3


def test_a_conflict_is_answered_by_reading_the_object_again(kube: KubeEmulator) -> None:
    world(kube)
    conflicts: list[Call] = []

    def conflict_once(call: Call) -> ApiError | None:
        if call.verb == "update" and call.resource == "httproutes/status" and not conflicts:
            conflicts.append(call)
            # Another writer got there first: its status is stored, our resourceVersion stale.
            obj = kube.api.state[("httproutes", "default", "web")]
            obj["status"] = {"parents": [{**copy.deepcopy(theirs), "controllerName": OTHER}]}
            kube.api.rv += 1
            obj["metadata"]["resourceVersion"] = str(kube.api.rv)
            kube.api.log.append((kube.api.rv, "httproutes", "MODIFIED", obj))  # watched
            return ApiError(409, "Conflict", "the object has been modified")
        return None

    theirs = {
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "x"},
        "conditions": [{**cond("Accepted"), "lastTransitionTime": T0}],
    }
    kube.api.faults.append(conflict_once)
    with replicas(kube, gateway_statuses=Statuses()) as (_rep,):
        wait_until(lambda: accepted(kube, "HTTPRoute", "web") is not None)
        parents = status_of(kube, "HTTPRoute", "web")["parents"]
        # The status written after the conflict kept what the other writer had put there.
        assert [p["controllerName"] for p in parents] == [OTHER, CONTROLLER]
    route_calls = [
        (c.verb, c.resource) for c in kube.calls() if c.resource.startswith("httproutes") and c.name
    ]
    assert route_calls == [
        ("update", "httproutes/status"),  # 409
        ("get", "httproutes"),
        ("update", "httproutes/status"),
    ]


def test_update_status_false_writes_no_gateway_status(kube: KubeEmulator) -> None:
    world(kube)
    statuses = Statuses()
    with replicas(kube, gateway_statuses=statuses, update_status=False) as (rep,):
        assert rep.runtime.gateway_status is None
        time.sleep(0.5)
    assert status_writes(kube) == []
    assert statuses.snapshots == []


def _timeless(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _timeless(v) for k, v in value.items() if k != "lastTransitionTime"}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _conditions(status: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(status, Mapping):
        for key, value in status.items():
            if key == "conditions" and isinstance(value, list):
                yield from value
            else:
                yield from _conditions(value)
    elif isinstance(status, list):
        for item in status:
            yield from _conditions(item)


def test_kubernetes_mode_writes_the_status_each_build_computes(kube: KubeEmulator) -> None:
    """No stand-in: the statuses of the controller's own builds (BuildResult.statuses, what
    ``polyingress status`` prints) are what the leader writes."""
    world(kube)
    kube.put(service("web"))
    with replicas(kube) as (rep,):
        assert rep.runtime.gateway_status is not None

        def written_as_built() -> bool:
            result = rep.controller.last_result
            if result is None or not result.statuses:
                return False
            for doc in result.statuses:
                meta = doc["metadata"]
                stored = status_of(kube, doc["kind"], meta["name"], meta.get("namespace", ""))
                want = with_status_defaults(doc["kind"], doc["status"])
                if _timeless(stored) != _timeless(want):
                    return False
            return True

        wait_until(written_as_built)
        docs = rep.controller.last_result.statuses
        assert sorted({d["kind"] for d in docs}) == ["Gateway", "GatewayClass", "HTTPRoute"]
        assert accepted(kube, "HTTPRoute", "web")["status"] == "True"
        for doc in docs:
            meta = doc["metadata"]
            stored = status_of(kube, doc["kind"], meta["name"], meta.get("namespace", ""))
            for condition in _conditions(stored):
                assert condition["lastTransitionTime"] not in ("", "1970-01-01T00:00:00Z")
        # Not ours: never written.
        assert status_of(kube, "GatewayClass", "theirs", "")["conditions"][0]["reason"] == "Pending"
        writes = len(status_writes(kube))
        kube.put(service("nudge"))
        time.sleep(1.2)  # builds and resyncs: nothing changed, nothing written
        assert len(status_writes(kube)) == writes


def test_gateways_get_the_addresses_the_ingresses_are_published_at(
    kube: KubeEmulator, tmp_path: Path
) -> None:
    world(kube)
    # Given in no particular order: hostname first, IPs unsorted, an IPv6 one not canonical.
    given = ("lb.example.com", "192.0.2.10", "2001:DB8:0:0::1", "10.0.0.2", "192.0.2.10")
    with replicas(kube, publish_status_address=given) as (rep,):
        assert rep.leading
        wait_until(lambda: (status_of(kube, "Gateway", "gw") or {}).get("addresses"))
        written = status_of(kube, "Gateway", "gw")["addresses"]
        assert written == [
            {"type": "IPAddress", "value": "10.0.0.2"},
            {"type": "IPAddress", "value": "192.0.2.10"},
            {"type": "IPAddress", "value": "2001:db8::1"},
            {"type": "Hostname", "value": "lb.example.com"},
        ]
        # The same objects and addresses without a cluster: `polyingress status` prints the
        # addresses Kubernetes mode wrote, in the same order.
        objects = [kube.get(kind, ns, name) for kind, ns, name in _WORLD]
        write_manifests(tmp_path, "world.yaml", [_spec_only(o) for o in objects if o])
        out = subprocess.run(
            [
                *(sys.executable, "-m", "polyingress.core.runtime.cli", "status"),
                *("--manifests", str(tmp_path), "--publish-status-address", ",".join(given)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        printed = next(
            d
            for d in yaml.safe_load(out.stdout)
            if d["kind"] == "Gateway" and d["metadata"]["name"] == "gw"
        )
        assert printed["status"]["addresses"] == written
        # Not ours: no addresses written to the other class's Gateway.
        assert "addresses" not in (status_of(kube, "Gateway", "their-gw") or {})
        writes = len(status_writes(kube))
        time.sleep(1.2)  # resyncs: the stored addresses are what we want; nothing written again
        assert len(status_writes(kube)) == writes
