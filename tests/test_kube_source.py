"""The Kubernetes source: the real client against the kmock emulator over real HTTP."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kube_emulator import (
    KubeEmulator,
    configmap,
    replicas,
    tls_secret,
)
from kube_objects import CLASS, ingress, path, rule, service, slice_
from livekit import wait_until

from polyingress.core import BuildOptions, ObjectStore, build_model
from polyingress.core.sources.kubernetes.source import (
    KubeOptions,
    KubeSource,
    add_kube_options,
    api_client,
)


def cafe(kube: KubeEmulator) -> None:
    kube.put(CLASS)
    kube.put(service("coffee-svc"))
    kube.put(slice_("coffee-svc", [("10.0.0.1", True), ("10.0.0.2", True)]))
    kube.put(service("tea-svc"))
    kube.put(slice_("tea-svc", [("10.0.1.1", True)]))
    kube.put(
        ingress(
            "cafe",
            rule("cafe.example.com", path("/coffee", "coffee-svc"), path("/tea", "tea-svc")),
        )
    )


def backends(model: object) -> set[str]:
    return {b.name for b in getattr(model, "backends", ())}


def test_initial_list_through_kubeconfig_and_flags(kube: KubeEmulator, tmp_path: Path) -> None:
    cafe(kube)
    kube.put(tls_secret("cafe-tls", "cafe.example.com"))
    kube.put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "opaque"}, "data": {}})
    for name, kind in (
        ("token", "kubernetes.io/service-account-token"),
        ("rel", "helm.sh/release.v1"),
    ):
        kube.put(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name},
                "type": kind,
                "data": {},
            }
        )
    kube.put(configmap({"proxy-body-size": "8m"}))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kube.kubeconfig())
    parser = argparse.ArgumentParser()
    add_kube_options(parser)
    args = parser.parse_args(
        ["--kubeconfig", str(kubeconfig), "--update-status=false", "--initial-sync-timeout=10"]
    )
    args.configmap = ("polyingress", "polyingress")
    opts = KubeOptions.from_args(args)
    assert opts.update_status is False and opts.election_id == "polyingress-leader"
    store = ObjectStore()
    source = KubeSource(api_client(opts.kubeconfig), store, opts)
    source.start(wait=True)
    try:
        assert store.keys("Ingress") == [("default", "cafe")]
        assert store.keys("IngressClass") == [("", "polyingress")]
        # TLS and Opaque (an auth-secret's type; none given is Opaque): the others never kept
        assert store.keys("Secret") == [("default", "cafe-tls"), ("default", "opaque")]
        assert store.keys("ConfigMap") == [("polyingress", "polyingress")]
        assert len(store.keys("EndpointSlice")) == 2
        obj = store.snapshot().get("Ingress", "default", "cafe")
        assert obj is not None and obj["kind"] == "Ingress"
        assert obj["apiVersion"] == "networking.k8s.io/v1"
        assert "managedFields" not in obj["metadata"]
        result = build_model(
            store.snapshot(), BuildOptions(configmap=("polyingress", "polyingress"))
        )
        assert [v.host for v in result.model.vhosts] == ["cafe.example.com"]
        assert result.model.settings.values == (("proxy-body-size", "8m"),)
        assert source.health().ok and source.health().synced
    finally:
        source.stop()
    verbs = {(c.verb, c.resource) for c in kube.calls()}
    assert ("list", "ingresses") in verbs and ("watch", "ingresses") in verbs


def test_watch_applies_add_modify_and_delete(kube: KubeEmulator) -> None:
    cafe(kube)
    with replicas(kube) as (rep,):
        assert {v.host for v in rep.model().vhosts} == {"cafe.example.com"}
        kube.put(service("juice-svc"))
        kube.put(ingress("juice", rule("juice.example.com", path("/", "juice-svc"))))
        wait_until(lambda: "juice.example.com" in {v.host for v in rep.model().vhosts})
        assert rep.proxy.get("juice.example.com", "/x") == (200, "default__juice-svc__80")

        kube.put(ingress("juice", rule("juice.example.com", path("/fresh", "juice-svc"))))
        wait_until(lambda: rep.proxy.get("juice.example.com", "/x")[0] == 404)
        assert rep.proxy.get("juice.example.com", "/fresh/orange")[0] == 200

        kube.delete("Ingress", "default", "juice")
        wait_until(lambda: "juice.example.com" not in {v.host for v in rep.model().vhosts})
        kube.put(slice_("coffee-svc", [("10.0.0.9", True)]))
        wait_until(
            lambda: (
                [
                    e.address
                    for b in rep.model().backends
                    if b.service == "coffee-svc"
                    for e in b.endpoints
                ]
                == ["10.0.0.9"]
            )
        )


def test_bookmarks_keep_a_quiet_kind_current(kube: KubeEmulator) -> None:
    cafe(kube)
    with replicas(kube) as (rep,):
        assert rep.runtime.source is not None
        classes = next(r for r in rep.runtime.source.reflectors if r.spec.kind == "IngressClass")
        for i in range(3):
            kube.put(service(f"extra-{i}"))
        # No IngressClass changed, yet its watch learns the newest resourceVersion.
        wait_until(lambda: classes.resource_version == str(kube.rv), timeout=5)


def test_expired_resource_version_is_answered_with_a_relist(kube: KubeEmulator) -> None:
    cafe(kube)
    with replicas(kube) as (rep,):
        assert rep.runtime.source is not None
        ingresses = next(r for r in rep.runtime.source.reflectors if r.spec.kind == "Ingress")
        lists_before = ingresses.relists
        # A change the watch never sees (its event compacted away), then 410 for open watches.
        kube.put(ingress("late", rule("late.example.com", path("/", "tea-svc"))), notify=False)
        kube.delete("Ingress", "default", "cafe")
        kube.compact()
        wait_until(lambda: {v.host for v in rep.model().vhosts} == {"late.example.com"})
        assert ingresses.relists > lists_before
        assert rep.store.keys("Ingress") == [("default", "late")]
        lists = [c for c in kube.calls() if c.verb == "list" and c.resource == "ingresses"]
        assert len(lists) >= 2


def test_api_outage_keeps_serving_and_reports_the_source_degraded(kube: KubeEmulator) -> None:
    cafe(kube)
    with replicas(kube) as (rep,):
        assert rep.proxy.get("cafe.example.com", "/tea") == (200, "default__tea-svc__80")
        model = rep.model()
        kube.go_down()
        try:
            wait_until(lambda: "source degraded" in rep.health().detail, timeout=10)
            report = rep.health()
            assert report.live and report.ready  # /healthz 200 with the detail, /readyz 200
            assert rep.runtime.health().ok is False
            for _ in range(5):
                assert rep.proxy.get("cafe.example.com", "/tea") == (200, "default__tea-svc__80")
                time.sleep(0.05)
            assert rep.model() is model
            assert rep.store.keys("Ingress") == [("default", "cafe")]
            # Changed while the controller cannot see it: applied once the API is back.
            kube.put(service("juice-svc"))
            kube.put(ingress("juice", rule("juice.example.com", path("/", "juice-svc"))))
        finally:
            kube.come_back()
        wait_until(lambda: rep.runtime.health().ok, timeout=10)
        assert "degraded" not in rep.health().detail
        wait_until(lambda: rep.proxy.get("juice.example.com", "/")[0] == 200)
        assert rep.proxy.get("cafe.example.com", "/tea")[0] == 200


def test_secret_rotation_is_applied(kube: KubeEmulator) -> None:
    cafe(kube)
    kube.put(tls_secret("cafe-tls", "cafe.example.com"))
    kube.put(
        ingress(
            "cafe",
            rule("cafe.example.com", path("/coffee", "coffee-svc")),
            tls=[{"hosts": ["cafe.example.com"], "secretName": "cafe-tls"}],
        )
    )
    with replicas(kube) as (rep,):
        first = {c.name: c.fingerprint for c in rep.model().certificates}
        assert list(first) == ["default__cafe-tls"]
        kube.put(tls_secret("cafe-tls", "cafe.example.com"))
        wait_until(
            lambda: (
                {c.name: c.fingerprint for c in rep.model().certificates}.get("default__cafe-tls")
                not in (None, first["default__cafe-tls"])
            )
        )


def test_ingress_of_another_class_is_ignored(kube: KubeEmulator) -> None:
    cafe(kube)
    kube.put(ingress("theirs", rule("other.example.com", path("/", "tea-svc")), cls="nginx-other"))
    with replicas(kube) as (rep,):
        result = build_model(rep.store.snapshot())
        refs = {(r.namespace, r.name) for r in result.ignored}
        assert refs == {("default", "theirs")}
        assert {v.host for v in rep.model().vhosts} == {"cafe.example.com"}
        assert rep.proxy.get("other.example.com", "/")[0] == 404


def test_watch_namespace_reads_that_namespace_only(kube: KubeEmulator) -> None:
    cafe(kube)
    kube.put(service("shop-svc", ns="shop"))
    kube.put(ingress("shop", rule("shop.example.com", path("/", "shop-svc")), ns="shop"))
    with replicas(kube, watch_namespace="shop") as (rep,):
        assert {v.host for v in rep.model().vhosts} == {"shop.example.com"}
        assert rep.store.keys("Ingress") == [("shop", "shop")]
    namespaced = {c.namespace for c in kube.calls() if c.resource == "ingresses"}
    assert namespaced == {"shop"}


def test_large_lists_are_read_in_pages(kube: KubeEmulator) -> None:
    cafe(kube)
    for i in range(7):
        kube.put(service(f"svc-{i}"))
    with replicas(kube, page_size=3) as (rep,):
        assert len(rep.store.keys("Service")) == 9
    pages = [c for c in kube.calls() if c.verb == "list" and c.resource == "services"]
    assert len(pages) == 3
