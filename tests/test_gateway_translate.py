"""The Gateway API stage (core/pipeline/gateway.py, translate/httproute.py): focused checks of
what the conformance cases found."""

from __future__ import annotations

from typing import Any

from polyingress.core import BuildOptions, build_model
from polyingress.core.pipeline.store import ObjectStore
from polyingress.testing.gateway_cases import INFRA, base_objects


def _statuses(*objects: dict[str, Any]) -> list[dict[str, Any]]:
    store = ObjectStore()
    store.replace_many([*base_objects(1), *objects], ())
    return list(build_model(store.snapshot(), BuildOptions(now="now")).statuses)


def _route(name: str, parent: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": INFRA},
        "spec": {
            "parentRefs": [parent],
            "rules": [{"backendRefs": [{"name": "infra-backend-v1", "port": 8080}]}],
        },
    }


def _parents(statuses: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    (doc,) = [d for d in statuses if d["kind"] == "HTTPRoute" and d["metadata"]["name"] == name]
    return list(doc["status"]["parents"])


def test_status_parent_ref_has_the_defaulted_group_and_kind() -> None:
    # The API server defaults a parentRef's group and kind; status.parents[].parentRef must
    # carry them so that clients (upstream's conformance suite among them) match it.
    statuses = _statuses(
        _route("bare", {"name": "same-namespace"}),
        _route(
            "explicit",
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": "all-namespaces",
                "namespace": INFRA,
                "sectionName": "http",
            },
        ),
    )
    (bare,) = _parents(statuses, "bare")
    assert bare["parentRef"] == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": "same-namespace",
    }
    assert bare["controllerName"] == "polyingress.io/controller"
    (explicit,) = _parents(statuses, "explicit")
    assert explicit["parentRef"] == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": "all-namespaces",
        "namespace": INFRA,
        "sectionName": "http",
    }
