"""The same Gateway API objects from a manifest directory and from the API server give the
same model and status, though the API server stores them with the CRDs' schema defaults filled
in (parentRef group and kind, backendRef weight, a rule's default match, allowedRoutes ...) and
manifests usually leave those out."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kube_emulator import KIND_TO_PLURAL, SCHEMAS, apply_defaults

from polyingress.core import BuildOptions, ObjectStore, build_model
from polyingress.core.sources.kubernetes.gateway_status import with_status_defaults
from polyingress.testing.gateway_cases import CASES, GatewayCase, base_objects


def as_stored(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as the API server stores it (the vendored CRDs' defaults applied)."""
    plural = KIND_TO_PLURAL.get(obj["kind"])
    out = copy.deepcopy(obj)
    if plural in SCHEMAS:
        apply_defaults(out, SCHEMAS[plural])
    return out


def stored_status(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "status": with_status_defaults(doc["kind"], doc["status"])}


def build(objects: list[dict[str, Any]]) -> Any:
    store = ObjectStore()
    store.replace_many(objects, ())
    return build_model(store.snapshot(), BuildOptions(now="now"))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_defaulted_objects_build_what_the_manifests_build(case: GatewayCase) -> None:
    objects = [*base_objects(8080), *case.objects]
    defaulted = [as_stored(o) for o in objects]
    assert defaulted != objects or not any(o["kind"] == "HTTPRoute" for o in objects)
    written, stored = build(objects), build(defaulted)
    assert stored.model == written.model
    # A status names the parentRef as the route does: with the defaults from the API server,
    # without them from a manifest; stored, the status gets the same defaults (the writer
    # compares it so), and they are the same.
    assert [stored_status(d) for d in stored.statuses] == [
        stored_status(d) for d in written.statuses
    ]
    assert [str(p) for p in stored.problems] == [str(p) for p in written.problems]
