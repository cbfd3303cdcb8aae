"""deploy/gateway-api: the vendored Gateway API standard install, and what the source reads."""

from __future__ import annotations

import re
from typing import Any

from kube_emulator import DEPLOY, GATEWAY_INSTALL, OVERLAYS, kustomize_build

from polyingress.core.pipeline.store import (
    CLUSTER_SCOPED,
    GATEWAY_API_VERSIONS,
    GATEWAY_GROUP,
    GATEWAY_KINDS,
)
from polyingress.core.sources.kubernetes.source import GATEWAY_PLURALS

VERSION = "v1.6.1"


def crds() -> dict[str, dict[str, Any]]:
    return {
        o["spec"]["names"]["kind"]: o
        for o in kustomize_build(DEPLOY / "gateway-api")
        if o["kind"] == "CustomResourceDefinition"
    }


def test_it_is_the_upstream_standard_install_of_the_version_named() -> None:
    text = GATEWAY_INSTALL.read_text()
    assert text.startswith("# Copyright The Kubernetes Authors.\n")
    assert "Licensed under the Apache License, Version 2.0" in text.split("---", 1)[0]
    assert "# Gateway API Standard channel install" in text
    objects = kustomize_build(DEPLOY / "gateway-api")
    for obj in objects:
        annotations = obj["metadata"].get("annotations") or {}
        assert annotations.get("gateway.networking.k8s.io/bundle-version") == VERSION, obj
        assert annotations.get("gateway.networking.k8s.io/channel") == "standard", obj
    readme = (DEPLOY / "gateway-api" / "README.md").read_text()
    assert f"v{VERSION[1:]} standard channel install" in readme
    assert (DEPLOY / "gateway-api" / "LICENSE").read_text().lstrip().startswith("Apache License")
    # Every CRD the install carries is listed in the README's table.
    for crd in crds().values():
        plural = crd["spec"]["names"]["plural"]
        assert re.search(rf"`{plural}[`.]", readme), plural


def test_the_kinds_read_are_served_as_the_source_reads_them() -> None:
    found = crds()
    assert set(GATEWAY_KINDS) <= set(found)
    for kind in GATEWAY_KINDS:
        spec = found[kind]["spec"]
        assert spec["group"] == GATEWAY_GROUP
        assert spec["names"]["plural"] == GATEWAY_PLURALS[kind]
        assert (spec["scope"] == "Cluster") == (kind in CLUSTER_SCOPED)
        served = {f"{GATEWAY_GROUP}/{v['name']}" for v in spec["versions"] if v["served"]}
        # The source lists v1 (ReferenceGrant: v1, else v1beta1); manifests may say either.
        assert served == GATEWAY_API_VERSIONS, kind
        with_status = {v["name"] for v in spec["versions"] if "status" in v.get("subresources", {})}
        assert (with_status == {"v1", "v1beta1"}) == (kind != "ReferenceGrant"), kind


def test_the_overlays_leave_the_crds_to_their_own_install() -> None:
    for overlay in OVERLAYS:
        kinds = {o["kind"] for o in kustomize_build(DEPLOY / "overlays" / overlay)}
        assert "CustomResourceDefinition" not in kinds
