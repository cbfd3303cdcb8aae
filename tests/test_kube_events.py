"""events.k8s.io/v1 Events on Ingresses: reasons, notes, series and rate limiting."""

from __future__ import annotations

from typing import Any

from kube_emulator import KubeEmulator, replicas
from kube_objects import CLASS, ingress, path, rule, service, slice_
from kubernetes import client as kclient
from livekit import wait_until

from polyingress.core.sources.kubernetes.events import EventRecorder, Regarding
from polyingress.core.sources.kubernetes.source import api_client


def events(kube: KubeEmulator, name: str | None = None, reason: str | None = None) -> list[Any]:
    return [
        e
        for e in kube.list("Event")
        if (name is None or e["regarding"]["name"] == name)
        and (reason is None or e["reason"] == reason)
    ]


def objects(kube: KubeEmulator) -> None:
    kube.put(CLASS)
    kube.put(service("web"))
    kube.put(slice_("web", [("10.0.0.1", True)]))
    kube.put(ingress("web", rule("web.example.com", path("/", "web"))))


def test_sync_event_names_the_ingress_and_what_was_applied(kube: KubeEmulator) -> None:
    objects(kube)
    with replicas(kube) as (rep,):
        wait_until(lambda: events(kube, "web", "Sync"))
        (event,) = events(kube, "web", "Sync")
        web = kube.get("Ingress", "default", "web")
        assert web is not None
        assert event["type"] == "Normal"
        assert event["action"] == "Apply"
        assert event["note"] == "Configuration applied to test: 1 path on web.example.com"
        assert event["regarding"]["kind"] == "Ingress"
        assert event["regarding"]["uid"] == web["metadata"]["uid"]
        assert event["reportingController"] == "polyingress.io/controller"
        assert event["reportingInstance"] == "replica-a"
        assert event["metadata"]["namespace"] == "default"

        # A new path: a new note, a new Event.
        kube.put(ingress("web", rule("web.example.com", path("/", "web"), path("/api", "web"))))
        wait_until(lambda: len(events(kube, "web", "Sync")) == 2)
        # Endpoint churn re-applies the model but the Ingress did not change: no Event.
        kube.put(slice_("web", [("10.0.0.2", True)]))
        wait_until(
            lambda: [e.address for b in rep.model().backends for e in b.endpoints] == ["10.0.0.2"]
        )
        rep.runtime.events.recorder.wait_idle()
        assert len(events(kube, "web", "Sync")) == 2


def test_rejected_event_gives_the_precise_reason(kube: KubeEmulator) -> None:
    objects(kube)
    kube.put(ingress("bad", rule("bad.example.com", path("nope", "web"))))
    with replicas(kube):
        wait_until(lambda: events(kube, "bad", "Rejected"))
        (event,) = events(kube, "bad", "Rejected")
        assert event["type"] == "Warning"
        assert event["note"] == (
            "Ingress rejected: spec.rules[0].http.paths[0].path: "
            "path 'nope' must be absolute (start with '/')"
        )
        assert events(kube, "bad", "Sync") == []


def test_rejected_event_for_a_lost_conflict(kube: KubeEmulator) -> None:
    objects(kube)
    kube.put(
        ingress("late", rule("web.example.com", path("/", "web")), created="2026-02-01T00:00:00Z")
    )
    with replicas(kube):
        wait_until(lambda: events(kube, "late", "Rejected"))
        (event,) = events(kube, "late", "Rejected")
        assert "already served by Ingress default/web (older)" in event["note"]
        assert events(kube, "web", "Rejected") == []


def test_backend_error_event_when_the_proxy_refuses(kube: KubeEmulator) -> None:
    objects(kube)
    with replicas(kube) as (rep,):
        rep.proxy.refuse_hosts.add("bad.example.com")
        kube.put(ingress("bad", rule("bad.example.com", path("/", "web"))))
        wait_until(lambda: events(kube, "bad", "BackendError"))
        (event,) = events(kube, "bad", "BackendError")
        assert event["type"] == "Warning"
        assert "refused the configuration" in event["note"]
        assert "host bad.example.com refused by the test proxy" in event["note"]
        assert events(kube, "web", "BackendError") == []
        assert rep.proxy.get("web.example.com", "/")[0] == 200  # still serving


class AlwaysLeader:
    def is_leader(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def recorder(kube: KubeEmulator, clock: Clock, **kw: Any) -> EventRecorder:
    api = api_client(configuration=kclient.Configuration(host=kube.url))
    rec = EventRecorder(
        api,
        leader=AlwaysLeader(),
        controller="polyingress.io/controller",
        instance="test",
        series_interval=0.05,
        clock=clock,
        **kw,
    )
    rec.start()
    return rec


WEB = Regarding(kind="Ingress", namespace="default", name="web", uid="u-1")


def test_identical_events_form_a_series(kube: KubeEmulator) -> None:
    clock = Clock()
    rec = recorder(kube, clock)
    try:
        for _ in range(3):
            assert rec.emit(WEB, "Warning", "Rejected", "Validate", "same note")
            clock.now += 10
        wait_until(lambda: (events(kube, "web") or [{}])[0].get("series", {}).get("count") == 3)
        (event,) = events(kube, "web")
        assert event["note"] == "same note"
        # After the de-duplication window a repeat is a new Event.
        clock.now += 6 * 60
        rec.emit(WEB, "Warning", "Rejected", "Validate", "same note")
        wait_until(lambda: len(events(kube, "web")) == 2)
    finally:
        rec.stop()
    assert {c.verb for c in kube.calls() if c.resource == "events"} == {"create", "patch"}


def test_events_are_rate_limited_per_object(kube: KubeEmulator) -> None:
    clock = Clock()
    rec = recorder(kube, clock, burst=5, refill_seconds=300)
    try:
        sent = [rec.emit(WEB, "Normal", "Sync", "Apply", f"note {i}") for i in range(8)]
        assert sent == [True] * 5 + [False] * 3
        other = Regarding(kind="Ingress", namespace="default", name="other", uid="u-2")
        assert rec.emit(other, "Normal", "Sync", "Apply", "note")  # its own bucket
        clock.now += 300  # one token back
        assert rec.emit(WEB, "Normal", "Sync", "Apply", "note 9")
        assert not rec.emit(WEB, "Normal", "Sync", "Apply", "note 10")
        assert rec.wait_idle()
    finally:
        rec.stop()
    assert len(events(kube, "web")) == 6
    assert rec.dropped == 4


def test_long_notes_are_truncated_to_the_api_limit(kube: KubeEmulator) -> None:
    rec = recorder(kube, Clock())
    try:
        rec.emit(WEB, "Warning", "Rejected", "Validate", "x" * 5000)
        wait_until(lambda: events(kube, "web"))
    finally:
        rec.stop()
    note = events(kube, "web")[0]["note"]
    assert len(note) == 1024 and note.endswith("...")


def test_an_httproute_that_is_not_accepted_gets_a_warning_event(kube: KubeEmulator) -> None:
    from gwapi_objects import gateway, gateway_class, http_route

    objects(kube)
    kube.put(gateway_class())
    kube.put(gateway())
    bad = http_route("bad-route", "app.example.com")
    bad["spec"]["rules"][0]["matches"][0]["path"]["value"] = "no-slash"
    kube.put(bad)
    kube.put(http_route("good-route", "ok.example.com"))
    with replicas(kube):
        wait_until(lambda: events(kube, "bad-route", "Rejected"))
        (event,) = events(kube, "bad-route", "Rejected")
        assert event["type"] == "Warning"
        assert event["regarding"]["kind"] == "HTTPRoute"
        assert event["regarding"]["apiVersion"] == "gateway.networking.k8s.io/v1"
        assert event["note"].startswith(
            "HTTPRoute not accepted: spec.rules[0].matches[0].path.value: must be an absolute path"
        )
        assert events(kube, "good-route") == []


def test_an_annotation_the_backend_cannot_serve_gets_a_warning_event(kube: KubeEmulator) -> None:
    """An Ingress whose annotation needs a Gateway API feature its backend does not declare is
    served with its paths answering 500: a Rejected (Warning) Event names the annotation."""
    from polyingress.core import BuildOptions, ObjectStore, build_model
    from polyingress.core.sources.kubernetes.events import IngressEvents

    web = ingress(
        "web",
        rule("web.example.com", path("/", "web")),
        annotations={"nginx.ingress.kubernetes.io/rewrite-target": "/app"},
    )
    kube.put(web)
    store = ObjectStore()
    store.replace_many([CLASS, service("web"), slice_("web", [("10.0.0.1", True)]), web], ())
    result = build_model(
        store.snapshot(), BuildOptions(features=frozenset({"HTTPRoute"}), backend="tiny")
    )
    assert [r.name for r in result.served] == ["web"]
    rec = recorder(kube, Clock())
    try:
        IngressEvents(rec, store, backend="tiny").built(result)
        wait_until(lambda: events(kube, "web", "Rejected"))
    finally:
        rec.stop()
    (event,) = events(kube, "web", "Rejected")
    assert event["type"] == "Warning"
    assert event["note"] == (
        "metadata.annotations['nginx.ingress.kubernetes.io/rewrite-target']: needs "
        "HTTPRoutePathRewrite, not served by the tiny backend; its paths answer 500"
    )
