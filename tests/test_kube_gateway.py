"""Gateway API objects and Namespaces from the Kubernetes API: the real client against the kmock
emulator over real HTTP, the emulator serving the vendored CRDs (deploy/gateway-api)."""

from __future__ import annotations

import logging
import time

import pytest
from gwapi_objects import GROUP, gateway, gateway_class, http_route, namespace, reference_grant
from kube_emulator import ApiError, Call, KubeEmulator, Replica, replicas
from kube_objects import CLASS, ingress, path, rule, service, slice_
from livekit import wait_until

GATEWAY_KINDS = ("GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant")


def cafe_ingress(kube: KubeEmulator) -> None:
    kube.put(CLASS)
    kube.put(service("coffee-svc"))
    kube.put(slice_("coffee-svc", [("10.0.0.1", True)]))
    kube.put(ingress("cafe", rule("cafe.example.com", path("/coffee", "coffee-svc"))))


def gateway_world(kube: KubeEmulator) -> None:
    kube.put(namespace("default", {"shared": "true"}))
    kube.put(namespace("backends"))
    kube.put(gateway_class())
    kube.put(gateway("gw"))
    kube.put(http_route("web", "web.example.com"))
    kube.put(reference_grant())


def reflector(rep: Replica, kind: str) -> object:
    assert rep.runtime.source is not None
    return next(r for r in rep.runtime.source.reflectors if r.spec.kind == kind)


def test_gateway_kinds_and_namespaces_are_listed_then_watched(kube: KubeEmulator) -> None:
    cafe_ingress(kube)
    gateway_world(kube)
    with replicas(kube) as (rep,):
        store = rep.store
        assert store.keys("GatewayClass") == [("", "polyingress")]
        assert store.keys("Gateway") == [("default", "gw")]
        assert store.keys("HTTPRoute") == [("default", "web")]
        assert store.keys("ReferenceGrant") == [("backends", "allow-routes")]
        assert store.keys("Namespace") == [("", "backends"), ("", "default")]
        route = store.snapshot().get("HTTPRoute", "default", "web")
        assert route is not None and route["apiVersion"] == f"{GROUP}/v1"
        assert "managedFields" not in route["metadata"]
        # As the API server stores it: the CRD's defaults filled in.
        assert route["spec"]["parentRefs"][0]["kind"] == "Gateway"
        assert route["spec"]["rules"][0]["backendRefs"][0]["weight"] == 1
        grant = store.snapshot().get("ReferenceGrant", "backends", "allow-routes")
        assert grant is not None and grant["apiVersion"] == f"{GROUP}/v1"
        assert rep.health().detail == ""  # nothing missing, nothing degraded

        kube.put(http_route("web", "www.example.com"))
        kube.put(http_route("api", "api.example.com", ns="backends"))
        kube.delete("ReferenceGrant", "backends", "allow-routes")
        kube.put(namespace("backends", {"shared": "true"}))
        kube.put(gateway_class("other", controller="example.com/other"))
        wait_until(lambda: store.keys("HTTPRoute") == [("backends", "api"), ("default", "web")])
        wait_until(lambda: store.keys("ReferenceGrant") == [])
        wait_until(
            lambda: (
                (store.snapshot().get("Namespace", "", "backends") or {})
                .get("metadata", {})
                .get("labels")
                == {"shared": "true"}
            )
        )
        wait_until(lambda: len(store.keys("GatewayClass")) == 2)
        web = store.snapshot().get("HTTPRoute", "default", "web")
        assert web is not None and web["spec"]["hostnames"] == ["www.example.com"]
        # Ingresses are served alongside.
        assert {v.host for v in rep.model().vhosts} >= {"cafe.example.com"}
    calls = {(c.verb, c.resource, c.version) for c in kube.calls()}
    for plural in ("gatewayclasses", "gateways", "httproutes", "referencegrants"):
        assert ("list", plural, "v1") in calls and ("watch", plural, "v1") in calls
    assert ("list", "namespaces", "v1") in calls and ("watch", "namespaces", "v1") in calls


def test_reference_grant_is_read_as_v1beta1_where_v1_is_not_served(kube: KubeEmulator) -> None:
    kube.api.served["referencegrants"] = frozenset({"v1beta1"})  # Gateway API before v1.5
    gateway_world(kube)
    with replicas(kube) as (rep,):
        assert rep.store.keys("ReferenceGrant") == [("backends", "allow-routes")]
        grant = rep.store.snapshot().get("ReferenceGrant", "backends", "allow-routes")
        assert grant is not None and grant["apiVersion"] == f"{GROUP}/v1"  # stored as v1
        kube.put(reference_grant("second"))
        wait_until(lambda: len(rep.store.keys("ReferenceGrant")) == 2)
        assert rep.runtime.source is not None
        assert rep.runtime.source.absent() == ()
    grants = [(c.verb, c.version) for c in kube.calls() if c.resource == "referencegrants"]
    assert grants[0] == ("list", "v1")  # 404
    assert ("list", "v1beta1") in grants and ("watch", "v1beta1") in grants


def test_without_the_crds_ingresses_are_served_and_crds_installed_later_are_read(
    kube: KubeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="polyingress.kubernetes")
    kube.uninstall(GROUP)
    cafe_ingress(kube)
    with replicas(kube) as (rep,):
        # The first lists completed: the Gateway API kinds count as read, and empty.
        assert rep.proxy.get("cafe.example.com", "/coffee") == (200, "default__coffee-svc__80")
        assert rep.runtime.source is not None
        assert set(rep.runtime.source.absent()) == set(GATEWAY_KINDS)
        report = rep.health()
        assert report.live and report.ready
        assert "not served by the Kubernetes API: GatewayClass, Gateway, HTTPRoute, " in (
            report.detail
        )
        assert rep.runtime.health().ok  # not a failure: nothing is degraded
        time.sleep(1.0)  # a few retries (absent_retry 0.3 s)
        lists = [c for c in kube.calls() if c.verb == "list" and c.resource == "gateways"]
        assert 2 <= len(lists) <= 6  # retried, on the slow schedule, not in a tight loop
        said = [r.getMessage() for r in caplog.records if "not served" in r.getMessage()]
        assert len(said) == 1 and all(k in said[0] for k in GATEWAY_KINDS)  # once, in one line

        # The CRDs are installed: the objects are read, the note goes away.
        kube.install(GROUP)
        gateway_world(kube)
        wait_until(lambda: rep.store.keys("HTTPRoute") == [("default", "web")])
        wait_until(lambda: rep.runtime.health().absent == ())
        assert "not served" not in rep.health().detail
        assert rep.store.keys("Gateway") == [("default", "gw")]
        assert rep.store.keys("GatewayClass") == [("", "polyingress")]
        kube.put(http_route("api", "api.example.com"))  # and watched from then on
        wait_until(lambda: len(rep.store.keys("HTTPRoute")) == 2)
        assert any("served by the API server now" in r.getMessage() for r in caplog.records)

        # Deleted again: their objects go with them, the controller carries on.
        caplog.clear()
        kube.uninstall(GROUP)
        wait_until(lambda: set(rep.runtime.health().absent) == set(GATEWAY_KINDS))
        for kind in GATEWAY_KINDS:
            assert rep.store.keys(kind) == []
        assert rep.store.keys("Namespace") == [("", "backends"), ("", "default")]
        assert rep.proxy.get("cafe.example.com", "/coffee")[0] == 200
        said = [r.getMessage() for r in caplog.records if "not served" in r.getMessage()]
        assert sorted(m.split(":")[0] for m in said) == sorted(GATEWAY_KINDS)  # once per kind


def test_an_older_rbac_keeps_ingresses_served_and_says_what_it_cannot_read(
    kube: KubeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """An upgrade whose new RBAC was not applied: the new kinds are 403 Forbidden."""
    caplog.set_level(logging.INFO, logger="polyingress.kubernetes")
    cafe_ingress(kube)
    gateway_world(kube)
    denied = {"namespaces", "gateways", "httproutes"}

    def old_rbac(call: Call) -> ApiError | None:
        if call.resource in denied:
            return ApiError(403, "Forbidden", f"cannot {call.verb} resource {call.resource}")
        return None

    kube.api.faults.append(old_rbac)
    with replicas(kube) as (rep,):
        assert rep.proxy.get("cafe.example.com", "/coffee")[0] == 200
        report = rep.health()
        assert report.live and report.ready
        assert "not allowed to be read (RBAC): Namespace, Gateway, HTTPRoute (apply the RBAC" in (
            report.detail
        )
        assert "not served" not in report.detail
        assert rep.store.keys("GatewayClass") == [("", "polyingress")]  # allowed: read
        said = [r.getMessage() for r in caplog.records if "not allowed" in r.getMessage()]
        assert len(said) == 1

        denied.clear()  # the RBAC is applied
        wait_until(lambda: rep.store.keys("HTTPRoute") == [("default", "web")])
        wait_until(lambda: rep.store.keys("Namespace") == [("", "backends"), ("", "default")])
        wait_until(lambda: rep.health().detail == "")


def test_expired_resource_version_relists_the_routes(kube: KubeEmulator) -> None:
    gateway_world(kube)
    with replicas(kube) as (rep,):
        routes = reflector(rep, "HTTPRoute")
        lists_before = routes.relists  # type: ignore[attr-defined]
        # A change the watch never sees (its event compacted away), then 410 for open watches.
        kube.put(http_route("late", "late.example.com"), notify=False)
        kube.delete("HTTPRoute", "default", "web")
        kube.compact()
        wait_until(lambda: rep.store.keys("HTTPRoute") == [("default", "late")])
        assert routes.relists > lists_before  # type: ignore[attr-defined]
        assert rep.store.keys("Gateway") == [("default", "gw")]


def test_api_outage_keeps_the_gateway_objects_and_catches_up(kube: KubeEmulator) -> None:
    cafe_ingress(kube)
    gateway_world(kube)
    with replicas(kube) as (rep,):
        kube.go_down()
        try:
            wait_until(lambda: "source degraded" in rep.health().detail, timeout=10)
            assert rep.runtime.source is not None
            assert rep.runtime.source.absent() == ()  # unreachable is not "not installed"
            assert rep.store.keys("HTTPRoute") == [("default", "web")]
            kube.put(http_route("new", "new.example.com"))
            kube.put(namespace("fresh"))
        finally:
            kube.come_back()
        wait_until(lambda: rep.runtime.health().ok, timeout=10)
        wait_until(lambda: ("default", "new") in rep.store.keys("HTTPRoute"))
        wait_until(lambda: ("", "fresh") in rep.store.keys("Namespace"))
        assert rep.store.keys("Gateway") == [("default", "gw")]


def test_watch_namespace_narrows_routes_and_reads_that_namespace_only(kube: KubeEmulator) -> None:
    gateway_world(kube)
    kube.put(namespace("shop", {"team": "shop"}))
    kube.put(gateway("shop-gw", ns="shop"))
    kube.put(http_route("shop", "shop.example.com", ns="shop", parent=("shop", "shop-gw")))
    with replicas(kube, watch_namespace="shop") as (rep,):
        assert rep.store.keys("HTTPRoute") == [("shop", "shop")]
        assert rep.store.keys("Gateway") == [("shop", "shop-gw")]
        assert rep.store.keys("ReferenceGrant") == []
        assert rep.store.keys("GatewayClass") == [("", "polyingress")]  # cluster-scoped
        assert rep.store.keys("Namespace") == [("", "shop")]
        kube.put(namespace("other"))
        kube.put(namespace("shop", {"team": "shop", "shared": "true"}))
        wait_until(
            lambda: (
                (rep.store.snapshot().get("Namespace", "", "shop") or {})["metadata"]["labels"]
                == {"team": "shop", "shared": "true"}
            )
        )
        assert rep.store.keys("Namespace") == [("", "shop")]
    for c in kube.calls():
        if c.resource in ("gateways", "httproutes", "referencegrants"):
            assert c.namespace == "shop", c
        if c.resource == "namespaces":
            assert c.name == "shop", c  # by field selector metadata.name
