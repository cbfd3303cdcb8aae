"""A kept Builder, updated change by change, gives exactly a fresh build's model and problems."""

from __future__ import annotations

import copy
import random
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from polyingress.core import Builder, BuildOptions, ObjectStore, build_model
from polyingress.core.pipeline.store import ObjectKey, Snapshot, object_key
from polyingress.testing.cases import default_backend_ingress, tls_secret, world

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
from worlds import generated_world

N = "nginx.ingress.kubernetes.io/"
# Annotations a change may give an Ingress: rows of every kind (rewrites, redirects, canaries
# attaching to whichever Ingress has their host and path, aliases of hosts that may be real),
# and invalid ones.
ANNOTATION_SETS: list[dict[str, str]] = [
    {"polyingress.io/ssl-redirect": "true"},
    {"polyingress.io/ssl-redirect": "false"},
    {"polyingress.io/ssl-redirect": "maybe"},
    {N + "rewrite-target": "/new", N + "upstream-vhost": "up.example.com"},
    {N + "canary": "true", N + "canary-weight": "30"},
    {N + "canary": "true", N + "canary-by-header": "X-Canary", N + "canary-weight": "80"},
    {N + "server-alias": "alias.example.com, app.example.com"},
    {N + "server-alias": "alias.example.com"},
    {N + "app-root": "/start", N + "force-ssl-redirect": "true"},
    {N + "permanent-redirect": "https://moved.example.com/x"},
    {N + "proxy-read-timeout": "7", N + "x-forwarded-prefix": "/p", N + "rewrite-target": "/"},
    {N + "whitelist-source-range": "10.0.0.0/8"},
    {N + "enable-cors": "true"},
    {N + "canary-weight": "5"},
    {N + "custom-headers": "headers"},
    {N + "custom-headers": "other/headers"},
    {N + "canary": "true", N + "canary-by-cookie": "Canary", N + "canary-weight": "10"},
]
# The ConfigMaps custom-headers reads: its own, and --configmap (the allowed names).
CONFIGMAP_DATA: list[dict[str, str]] = [
    {"X-Custom": "1"},
    {"X-Custom": "2", "X-Other": "a b"},
    {"Bad Name": "1"},
    {},
]
SETTINGS_DATA: list[dict[str, str]] = [
    {"global-allowed-response-headers": "X-Custom"},
    {"global-allowed-response-headers": "X-Custom,X-Other"},
    {"global-allowed-response-headers": "x-custom"},
    {},
]


def configmaps(namespace: str) -> list[dict[str, Any]]:
    def cm(name: str, data: dict[str, str]) -> dict[str, Any]:
        meta = {"name": name, "namespace": namespace}
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}

    return [cm("headers", CONFIGMAP_DATA[0]), cm("settings", SETTINGS_DATA[0])]


def mutate(rng: random.Random, objs: dict[ObjectKey, dict[str, Any]]) -> dict[str, Any] | None:
    """One random change: returns the new object, or None after deleting one."""
    key = rng.choice(sorted(objs))
    obj = copy.deepcopy(objs[key])
    kind = key[0]
    roll = rng.random()
    if roll < 0.08 and kind != "IngressClass":
        return None  # delete
    if kind == "Ingress":
        spec = obj["spec"]
        choice = rng.randrange(7)
        rules = spec.get("rules") or []
        if choice == 0 and rules:
            rules[0]["host"] = rng.choice(
                ["app.example.com", "new.example.com", "*.wild.example.com", "x.wild.example.com"]
            )
        elif choice == 1 and rules:
            paths = rules[0]["http"]["paths"]
            paths.append(
                {
                    "path": rng.choice(["/a", "/foo", "/foo/bar", "/any", "/z/"]),
                    "pathType": rng.choice(["Exact", "Prefix"]),
                    "backend": {
                        "service": {
                            "name": rng.choice(["svc-foo", "svc-root", "nope"]),
                            "port": {"number": 80},
                        }
                    },
                }
            )
        elif choice == 2 and rules:
            rules[0]["http"]["paths"][0]["path"] = "/bad path"  # becomes invalid
        elif choice == 3:
            cls = rng.choice(["polyingress", "other", None])
            if cls is None:
                spec.pop("ingressClassName", None)  # names no class: not ours, not other's
            else:
                spec["ingressClassName"] = cls
        elif choice == 4:
            obj["metadata"]["creationTimestamp"] = f"2025-0{rng.randrange(1, 9)}-01T00:00:00Z"
        elif choice == 5:
            spec["tls"] = [
                {
                    "hosts": [rules[0].get("host", "app.example.com")] if rules else [],
                    "secretName": rng.choice(["secure-tls", "missing"]),
                }
            ]
        else:
            obj["metadata"]["annotations"] = rng.choice(ANNOTATION_SETS)
    elif kind == "EndpointSlice":
        n = rng.randrange(0, 4)
        obj["endpoints"] = [
            {
                "addresses": [f"10.9.{rng.randrange(4)}.{i + 1}"],
                "conditions": {"ready": rng.random() < 0.7},
            }
            for i in range(n)
        ]
        if rng.random() < 0.2:
            obj["metadata"]["labels"]["kubernetes.io/service-name"] = "svc-root"
    elif kind == "Service":
        obj["spec"]["ports"][0]["port"] = rng.choice([80, 81])
    elif kind == "ConfigMap":
        table = SETTINGS_DATA if obj["metadata"]["name"] == "settings" else CONFIGMAP_DATA
        obj["data"] = dict(rng.choice(table))
    elif kind == "Secret":
        obj = tls_secret(
            obj["metadata"]["name"],
            rng.choice(["secure.example.com", "x.com"]),
            namespace=obj["metadata"]["namespace"],
        )
        if rng.random() < 0.3:
            obj["data"]["tls.key"] = "bm90IGEga2V5"
    return obj


def canaries(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Canary Ingresses of the first two Ingresses of a world: their rules, other Services."""
    out = []
    for i, ing in enumerate([o for o in objs if o["kind"] == "Ingress"][:2]):
        canary = copy.deepcopy(ing)
        canary["metadata"]["name"] = f"canary-{i}"
        canary["metadata"]["creationTimestamp"] = "2026-06-01T00:00:00Z"
        canary["metadata"]["annotations"] = ANNOTATION_SETS[4 + i]
        canary["spec"].pop("tls", None)
        canary["spec"].pop("defaultBackend", None)
        for r in canary["spec"].get("rules") or []:
            for p in (r.get("http") or {}).get("paths") or []:
                p["backend"] = {"service": {"name": "svc-foo", "port": {"number": 80}}}
        out.append(canary)
    return out


@pytest.mark.parametrize("seed", range(12))
def test_random_change_sequences_match_full_build(seed: int) -> None:
    rng = random.Random(seed)
    opts = BuildOptions(
        default_backend_service=("routing", "svc-default"), configmap=("routing", "settings")
    )
    base = [*world(8080), default_backend_ingress()]
    objs = {object_key(o): o for o in [*base, *canaries(base), *configmaps("routing")]}
    store = ObjectStore()
    store.replace_many(objs.values(), ())
    inc = Builder(opts)
    inc.build(store.snapshot(), None)
    for step in range(40):
        changed: set[ObjectKey] = set()
        for _ in range(rng.randrange(1, 4)):
            key = rng.choice(sorted(objs))
            new = mutate(rng, {key: objs[key]})
            if new is None:
                if key[0] == "IngressClass":
                    continue
                store.delete(key)
                del objs[key]
            else:
                store.upsert(new)
                objs[key] = new
            changed.add(key)
        snap = store.snapshot()
        # Every fourth step the Builder is not told what changed (a resync).
        got = inc.build(snap, None if step % 4 == 3 else changed)
        want = build_model(snap, opts)
        assert got.model == want.model
        assert got.problems == want.problems
        assert got.warnings == want.warnings
        assert (got.served, got.rejected, got.ignored) == (want.served, want.rejected, want.ignored)
        assert got.without_class == want.without_class
        if not objs:
            break
    assert inc.incremental_builds > 0


def test_endpoint_change_in_a_large_world_is_incremental() -> None:
    objs = generated_world(2000)
    store = ObjectStore()
    store.replace_many(objs, ())
    inc = Builder()
    first = inc.build(store.snapshot(), None)
    sl = copy.deepcopy(next(o for o in objs if o["kind"] == "EndpointSlice"))
    sl["endpoints"] = [{"addresses": ["10.200.0.1"], "conditions": {"ready": True}}]
    store.upsert(sl)
    started = time.perf_counter()
    second = inc.build(store.snapshot(), {object_key(sl)})
    elapsed = time.perf_counter() - started
    assert inc.incremental_builds == 1
    changed = [b for b in second.model.backends if b not in first.model.backends]
    assert [e.address for e in changed[0].endpoints] == ["10.200.0.1"]
    # Unchanged parts are shared, not copied.
    assert all(a is b for a, b in zip(first.model.vhosts, second.model.vhosts, strict=True))
    assert second.model == build_model(store.snapshot()).model
    assert elapsed < 5  # a sanity bound only; speed is measured in bench/, not here


def test_build_model_is_pure() -> None:
    """No state outlives a call: an object changed in place (which the store never does, but a
    caller may) is read again, where a cache keyed by identity would return the old result."""
    objs = {object_key(o): o for o in world(8080)}
    ing = next(o for k, o in objs.items() if k[0] == "Ingress")
    snap = Snapshot(objects=_by_kind(objs.values()), generation=1)
    before = build_model(snap)
    ing["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/changed-in-place"
    after = build_model(snap)
    assert after != before
    assert any(r.path == "/changed-in-place" for v in after.model.vhosts for r in v.routes)
    ing["spec"]["rules"][0]["http"]["paths"][0]["path"] = "/bad path"
    assert build_model(snap).rejected


def test_a_resync_reuses_the_unchanged_parts() -> None:
    """Told nothing, a kept Builder compares the snapshots by identity: a resync of the same
    objects returns the same result, and one changed object updates only what it touches."""
    store = ObjectStore()
    store.replace_many(generated_world(50), ())
    kept = Builder()
    first = kept.build(store.snapshot())
    assert kept.build(store.snapshot()) is first
    sl = copy.deepcopy(next(o for o in generated_world(50) if o["kind"] == "EndpointSlice"))
    sl["endpoints"] = []
    store.upsert(sl)
    second = kept.build(store.snapshot())
    assert kept.full_builds == 1 and kept.incremental_builds == 1
    assert second == build_model(store.snapshot())
    assert all(a is b for a, b in zip(first.model.vhosts, second.model.vhosts, strict=True))


def _by_kind(objs: Any) -> dict[str, dict[tuple[str, str], Any]]:
    out: dict[str, dict[tuple[str, str], Any]] = {}
    for o in objs:
        key = object_key(o)
        assert key is not None
        out.setdefault(key[0], {})[(key[1], key[2])] = o
    return out
