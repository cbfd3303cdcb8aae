"""Leader election: one leader among replicas, handover, and losing the lease."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator

import pytest
from kube_emulator import KubeEmulator, replicas, running_emulator
from kube_objects import CLASS, ingress, path, rule, service, slice_
from livekit import wait_until

LEASE = 1.0
RETRY = 0.1


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    with running_emulator() as emu:
        emu.put(CLASS)
        emu.put(service("web"))
        emu.put(slice_("web", [("10.0.0.1", True)]))
        emu.put(ingress("web", rule("web.example.com", path("/", "web"))))
        yield emu


def writes_by(kube: KubeEmulator, identity: str) -> list[str]:
    return [
        f"{c.verb} {c.resource}"
        for c in kube.calls()
        if c.user_agent.endswith(f"({identity})") and c.resource in ("events", "ingresses/status")
    ]


def holder(kube: KubeEmulator) -> str | None:
    lease = kube.get("Lease", "polyingress", "polyingress-leader") or {}
    return (lease.get("spec") or {}).get("holderIdentity")


def test_two_replicas_elect_one_leader_and_only_it_writes(kube: KubeEmulator) -> None:
    with replicas(kube, "a", "b", publish_status_address=("203.0.113.7",)) as (a, b):
        assert a.leading and not b.leading  # a started first and took the lease
        assert holder(kube) == "a"
        # Both serve traffic.
        assert a.proxy.get("web.example.com", "/")[0] == 200
        assert b.proxy.get("web.example.com", "/")[0] == 200
        kube.put(service("api"))
        kube.put(ingress("api", rule("api.example.com", path("/", "api"))))
        for r in (a, b):
            wait_until(lambda r=r: r.proxy.get("api.example.com", "/")[0] == 200)
        wait_until(lambda: "patch ingresses/status" in writes_by(kube, "a"))
        wait_until(lambda: len([e for e in kube.list("Event") if e["reason"] == "Sync"]) == 2)
        assert writes_by(kube, "b") == []
        assert {e["reportingInstance"] for e in kube.list("Event")} == {"a"}


def test_killing_the_leader_hands_over_within_the_lease_duration(kube: KubeEmulator) -> None:
    with replicas(kube, "a", "b", publish_status_address=("203.0.113.7",)) as (a, b):
        assert a.leading
        a.kill()
        killed = time.monotonic()
        wait_until(lambda: b.leading, timeout=5, interval=0.01)
        took = time.monotonic() - killed
        # The follower waits for the lease to expire as it observed it: at most one lease
        # duration after the last renewal it saw, plus its own retry period.
        assert took <= LEASE + 2 * RETRY + 0.3, took
        assert holder(kube) == "b"
        lease = kube.get("Lease", "polyingress", "polyingress-leader")
        assert lease is not None and lease["spec"]["leaseTransitions"] == 1
        # The new leader writes.
        kube.put(service("api"))
        kube.put(ingress("api", rule("api.example.com", path("/", "api"))))
        wait_until(lambda: any(e["reportingInstance"] == "b" for e in kube.list("Event")))
        wait_until(lambda: "patch ingresses/status" in writes_by(kube, "b"))


def test_a_graceful_stop_releases_the_lease_at_once(kube: KubeEmulator) -> None:
    with replicas(kube, "a", "b") as (a, b):
        assert a.leading
        a.stop()
        stopped = time.monotonic()
        wait_until(lambda: b.leading, timeout=5, interval=0.01)
        assert time.monotonic() - stopped < LEASE / 2


def test_a_leader_that_loses_the_lease_stops_writing_at_once(kube: KubeEmulator) -> None:
    with replicas(kube, "a", publish_status_address=("203.0.113.7",)) as (a,):
        assert a.leading
        lease = kube.get("Lease", "polyingress", "polyingress-leader")
        assert lease is not None
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease["spec"].update(holderIdentity="intruder", renewTime=now, leaseDurationSeconds=60)
        kube.put(lease)
        wait_until(lambda: not a.leading, timeout=1)
        before = writes_by(kube, "a")
        kube.put(service("api"))
        kube.put(ingress("api", rule("api.example.com", path("/", "api"))))
        wait_until(lambda: a.proxy.get("api.example.com", "/")[0] == 200)  # still serves
        time.sleep(0.6)  # > status resync
        assert writes_by(kube, "a") == before
        assert holder(kube) == "intruder"


def test_an_unreachable_api_ends_leadership_after_the_renew_deadline(kube: KubeEmulator) -> None:
    with replicas(kube, "a") as (a,):
        assert a.leading
        kube.go_down()
        down = time.monotonic()
        try:
            wait_until(lambda: not a.leading, timeout=3, interval=0.01)
            assert time.monotonic() - down < 0.6 + 2 * RETRY + 0.3  # renew deadline 0.6 s
        finally:
            kube.come_back()
        wait_until(lambda: a.leading, timeout=5)
