"""Gateway API objects and Namespaces into the store: from manifest files, by kind and group."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from gwapi_objects import (
    V1,
    gateway,
    gateway_class,
    http_route,
    istio_gateway,
    namespace,
    reference_grant,
)
from livekit import wait_until

from polyingress.core import ObjectStore
from polyingress.core.pipeline.store import object_key
from polyingress.core.sources.manifests import ManifestSource, load_objects

FIXTURES = Path(__file__).parent / "fixtures" / "gateway-api"


def keys(store: ObjectStore, *kinds: str) -> dict[str, list[tuple[str, str]]]:
    return {kind: store.keys(kind) for kind in kinds}


@pytest.mark.parametrize(
    ("obj", "key"),
    [
        (gateway_class(), ("GatewayClass", "", "polyingress")),
        (gateway("gw", ns="shop"), ("Gateway", "shop", "gw")),
        (http_route("r", "a.example.com", ns="shop"), ("HTTPRoute", "shop", "r")),
        (reference_grant(), ("ReferenceGrant", "backends", "allow-routes")),
        (reference_grant(api_version=V1), ("ReferenceGrant", "backends", "allow-routes")),
        (http_route("r", "a.example.com", api_version=f"{V1}beta1"), ("HTTPRoute", "default", "r")),
        (namespace("shop", {"team": "a"}), ("Namespace", "", "shop")),
        # Cluster-scoped: a namespace written by mistake does not make two objects.
        (
            {**namespace("shop"), "metadata": {"name": "shop", "namespace": "x"}},
            ("Namespace", "", "shop"),
        ),
        (istio_gateway(), None),
        ({**gateway(), "apiVersion": "gateway.networking.k8s.io/v1alpha2"}, None),
        ({k: v for k, v in gateway().items() if k != "apiVersion"}, None),
        ({**namespace("shop"), "apiVersion": "example.com/v1"}, None),
        # The older kinds: another group is not ours either (Knative's Service).
        (
            {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "k"}},
            None,
        ),
        ({"kind": "Service", "metadata": {"name": "k", "namespace": "a"}}, ("Service", "a", "k")),
    ],
    ids=[
        "gatewayclass-cluster-scoped",
        "gateway",
        "httproute",
        "referencegrant-v1beta1",
        "referencegrant-v1",
        "httproute-v1beta1",
        "namespace",
        "namespace-ignores-a-namespace",
        "istio-gateway-is-not-ours",
        "version-not-served",
        "gateway-api-kind-needs-apiversion",
        "namespace-of-another-group",
        "knative-service-is-not-ours",
        "older-kinds-may-omit-apiversion",
    ],
)
def test_object_key_takes_a_kind_from_its_own_group(
    obj: dict[str, Any], key: tuple[str, str, str] | None
) -> None:
    assert object_key(obj) == key


def test_store_keeps_an_istio_gateway_out() -> None:
    store = ObjectStore()
    assert store.replace_many(upserts=[istio_gateway()], deletes=()) is False
    assert store.replace_many(upserts=[gateway()], deletes=()) is True
    assert store.snapshot().get("Gateway", "default", "gw") == gateway()


def test_the_cafe_files_load_as_the_api_would_serve_them() -> None:
    objects = load_objects(FIXTURES / "cafe-gateway.yaml") + load_objects(FIXTURES / "grants.yaml")
    got = sorted(
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objects
    )
    assert got == [
        ("Gateway", "cafe", "cafe-gateway"),  # the Istio one in grants.yaml is not read
        ("GatewayClass", "", "polyingress"),
        ("HTTPRoute", "cafe", "coffee"),
        ("HTTPRoute", "cafe", "tea"),
        ("Namespace", "", "cafe"),
        ("Namespace", "", "kitchen"),
        ("ReferenceGrant", "kitchen", "cafe-routes"),
    ]
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    # Every Gateway API object reads as v1, as a v1 list from the API server returns it.
    assert {o["apiVersion"] for o in objects if o["kind"] != "Namespace"} == {V1}
    tea = by_name[("HTTPRoute", "tea")]
    raw = [d for d in yaml.safe_load_all((FIXTURES / "cafe-gateway.yaml").read_text()) if d]
    assert tea["spec"] == next(d for d in raw if d["metadata"]["name"] == "tea")["spec"]
    assert by_name[("Namespace", "cafe")]["metadata"] == {
        "name": "cafe",
        "labels": {"shared-gateway-access": "true"},
    }
    assert "namespace" not in by_name[("GatewayClass", "polyingress")]["metadata"]
    grant = by_name[("ReferenceGrant", "cafe-routes")]
    assert grant["spec"]["to"] == [{"group": "", "kind": "Service", "name": "tea-svc"}]


def test_gateway_objects_are_added_edited_and_removed_while_watching(tmp_path: Path) -> None:
    store = ObjectStore()
    src = ManifestSource(tmp_path, store, debounce_ms=10)
    src.load()
    src.start()
    try:
        shutil.copy(FIXTURES / "cafe-gateway.yaml", tmp_path / "cafe.yaml")
        shutil.copy(FIXTURES / "grants.yaml", tmp_path / "grants.yaml")
        wait_until(lambda: store.keys("ReferenceGrant") == [("kitchen", "cafe-routes")])
        wait_until(lambda: len(store.keys("HTTPRoute")) == 2)
        assert keys(store, "GatewayClass", "Gateway", "Namespace") == {
            "GatewayClass": [("", "polyingress")],
            "Gateway": [("cafe", "cafe-gateway")],
            "Namespace": [("", "cafe"), ("", "kitchen")],
        }
        # A label changes on a Namespace, a route moves to another host.
        text = (tmp_path / "cafe.yaml").read_text()
        text = text.replace('shared-gateway-access: "true"', 'shared-gateway-access: "false"')
        (tmp_path / "cafe.yaml").write_text(text.replace("/coffee", "/espresso"))
        wait_until(
            lambda: (
                (store.snapshot().get("Namespace", "", "cafe") or {})["metadata"]["labels"]
                == {"shared-gateway-access": "false"}
            )
        )
        coffee = store.snapshot().get("HTTPRoute", "cafe", "coffee")
        assert coffee is not None
        assert coffee["spec"]["rules"][0]["matches"][0]["path"]["value"] == "/espresso"
        (tmp_path / "grants.yaml").unlink()
        wait_until(lambda: store.keys("ReferenceGrant") == [])
        assert store.keys("Namespace") == [("", "cafe")]
        assert store.keys("Gateway") == [("cafe", "cafe-gateway")]
    finally:
        src.stop()


def test_json_gateway_list(tmp_path: Path) -> None:
    f = tmp_path / "routes.json"
    f.write_text(
        json.dumps(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRouteList",
                "items": [http_route(f"r{i}", f"r{i}.example.com") for i in range(3)],
            }
        )
    )
    assert [o["metadata"]["name"] for o in load_objects(f)] == ["r0", "r1", "r2"]
