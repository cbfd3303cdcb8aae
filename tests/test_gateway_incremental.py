"""A kept Builder, updated change by change, gives a fresh build's model, problems and Gateway
API status also when HTTPRoutes, Gateways, ReferenceGrants and Services change."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from polyingress.core import Builder, BuildOptions, ObjectStore, build_model
from polyingress.core.pipeline.store import ObjectKey, object_key
from polyingress.testing.cases import world
from polyingress.testing.gateway_cases import CASES, INFRA, WEB, base_objects

_HOSTS = [None, ["example.com"], ["*.wildcard.io"], ["app.example.com"], ["a.b.wildcard.io"]]


def _mutate(rng: random.Random, obj: dict[str, Any]) -> dict[str, Any] | None:
    obj = copy.deepcopy(obj)
    kind = obj["kind"]
    if rng.random() < (0.4 if kind == "Service" else 0.1) and kind != "Namespace":
        return None
    if kind == "HTTPRoute":
        spec = obj["spec"]
        choice = rng.randrange(5)
        if choice == 0:
            hosts = rng.choice(_HOSTS)
            if hosts is None:
                spec.pop("hostnames", None)
            else:
                spec["hostnames"] = hosts
        elif choice == 1:
            spec["parentRefs"] = [
                {"name": rng.choice(["same-namespace", "all-namespaces", "nope"])}
            ]
        elif choice == 2 and spec.get("rules"):
            rule = spec["rules"][0]
            rule["backendRefs"] = [
                {"name": rng.choice(["infra-backend-v1", "infra-backend-v2", "gone"]), "port": 8080}
            ]
        elif choice == 3:
            spec.setdefault("rules", [{}]).append(
                {
                    "matches": [
                        {
                            "path": {"type": "PathPrefix", "value": rng.choice(["/", "/a"])},
                            "headers": [{"name": "X", "value": "y"}],
                        }
                    ],
                    "backendRefs": [{"name": "infra-backend-v3", "port": 8080}],
                }
            )
        else:
            obj["metadata"]["creationTimestamp"] = f"2025-0{rng.randrange(1, 9)}-01T00:00:00Z"
    elif kind == "Gateway":
        listener = obj["spec"]["listeners"][0]
        if rng.random() < 0.5:
            listener["hostname"] = rng.choice(["example.com", "*.wildcard.io", "other.org"])
        else:
            listener["allowedRoutes"] = {"namespaces": {"from": rng.choice(["Same", "All"])}}
    elif kind == "Service":
        obj["spec"]["ports"][0]["port"] = rng.choice([8080, 8081])
    elif kind == "Namespace":
        obj["metadata"]["labels"] = {"gateway-conformance": rng.choice(["backend", "x"])}
    return obj


def _grant() -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": "grant", "namespace": WEB},
        "spec": {
            "from": [
                {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": INFRA}
            ],
            "to": [{"group": "", "kind": "Service"}],
        },
    }


@pytest.mark.parametrize("seed", range(8))
def test_random_gateway_changes_match_full_build(seed: int) -> None:
    rng = random.Random(seed)
    opts = BuildOptions(now="t")
    objects = [*world(8080), *base_objects(8080), _grant()]
    for case in CASES:
        objects += case.objects
    objs = {object_key(o): o for o in objects}
    objs = {k: v for k, v in objs.items() if k is not None}
    store = ObjectStore()
    store.replace_many(objs.values(), ())
    inc = Builder(opts)
    inc.build(store.snapshot(), None)
    deleted: dict[ObjectKey, dict[str, Any]] = {}
    mutable = [
        k
        for k in objs
        if k[0] in ("HTTPRoute", "Gateway", "Service", "Namespace", "ReferenceGrant")
    ]
    for step in range(30):
        changed: set[ObjectKey] = set()
        for _ in range(rng.randrange(1, 4)):
            live = [k for k in mutable if k in objs]
            gone = [k for k in mutable if k not in objs]
            if gone and rng.random() < 0.3:  # a deleted object comes back
                key = rng.choice(sorted(gone))
                store.upsert(deleted[key])
                objs[key] = deleted[key]
                changed.add(key)
                continue
            key = rng.choice(sorted(live))
            new = _mutate(rng, objs[key])
            if new is None:
                store.delete(key)
                deleted[key] = objs.pop(key)
            else:
                store.upsert(new)
                objs[key] = new
            changed.add(key)
        snap = store.snapshot()
        got = inc.build(snap, None if step % 5 == 4 else changed)
        want = build_model(snap, opts)
        assert got.model == want.model, step
        assert got.problems == want.problems, step
        assert got.statuses == want.statuses, step
    assert inc.incremental_builds > 0
