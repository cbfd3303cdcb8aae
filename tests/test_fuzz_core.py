"""Properties: a hostile Ingress is rejected naming object and field, or only safe strings reach
the model; a kept Builder, after any sequence of changes, gives exactly a fresh build's result.
Backend fuzz tests (test_fuzz_<backend>.py) build on the same strategies."""

from __future__ import annotations

import copy
import os
import re
from typing import Any

from conftest import build
from hostile import hostile_ingress
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kube_objects import CLASS, ingress, path, rule, service, slice_

from polyingress.core import Builder, BuildOptions, ObjectStore, build_model
from polyingress.core.pipeline.store import ObjectKey, object_key
from polyingress.testing.cases import tls_secret

EXAMPLES = int(os.environ.get("POLYINGRESS_FUZZ_EXAMPLES", "300"))

SAFE_HOST = re.compile(
    r"^(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
SAFE_PATH = re.compile(r"^/[A-Za-z0-9\-._~!&()*+,=:@/]*$")
SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
FIELDS = re.compile(r"^(metadata\.|spec\.(rules|tls|defaultBackend|ingressClassName)|spec$)")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_ingress())
def test_hostile_ingress_rejected_precisely_or_safe(ing: dict[str, Any]) -> None:
    result = build([CLASS, ing])
    if result.rejected:
        assert [r.name for r in result.rejected] == ["fuzz"]
        assert result.errors
        for p in result.errors:
            assert p.ref.namespace == "fuzz" and p.ref.name == "fuzz"
            assert FIELDS.match(p.field), p.field
            assert str(p).startswith(f"Ingress fuzz/fuzz: {p.field}: ")
            assert "\n" not in p.message and "\x00" not in p.message
        assert not [v for v in result.model.vhosts if v.host is not None]
        return
    for vhost in result.model.vhosts:
        assert vhost.host is None or SAFE_HOST.match(vhost.host), vhost.host
        assert len(vhost.host or "") <= 253
        for route in vhost.routes:
            assert SAFE_PATH.match(route.path), route.path
            assert "//" not in route.path and "/../" not in route.path + "/"
            assert re.match(r"^[a-z0-9_-]+$", route.backend)
    for backend in result.model.backends:
        assert SAFE_NAME.match(backend.service) and SAFE_NAME.match(backend.port)


# -- One statement of the semantics: after any sequence of changes, the Builder that kept its
# -- state gives exactly what a fresh build of the same snapshot gives.

HOSTS = [None, "a.example.com", "b.example.com", "*.example.com"]
SERVICES = ["svc-a", "svc-b", "svc-default", "svc-gone"]
STAMPS = ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]
OPTS = BuildOptions(
    default_backend_service=("default", "svc-default"), configmap=("default", "polyingress")
)


@st.composite
def an_ingress(draw: st.DrawFn) -> dict[str, Any]:
    a_path = st.builds(
        path,
        st.sampled_from(["/", "/a", "/a/b"] * 3 + ["/a b"]),  # "/a b" rejects the Ingress
        st.sampled_from(SERVICES),
        st.sampled_from(["Prefix", "Exact"]),
        st.sampled_from([80, 81, "http"]),
    )
    a_rule = st.builds(
        lambda h, ps: rule(h, *ps), st.sampled_from(HOSTS), st.lists(a_path, min_size=1, max_size=3)
    )
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        tls: dict[str, Any] = {"hosts": draw(st.lists(st.sampled_from(HOSTS[1:]), max_size=2))}
        secret = draw(st.sampled_from(["tls-a", "tls-b", "tls-gone", None]))
        if secret is not None:
            tls["secretName"] = secret
        spec["tls"] = [tls]
    if draw(st.booleans()):
        svc = draw(st.sampled_from(SERVICES))
        spec["defaultBackend"] = {"service": {"name": svc, "port": {"number": 80}}}
    return ingress(
        draw(st.sampled_from(["i1", "i2", "i3", "i4"])),
        *draw(st.lists(a_rule, max_size=3)),
        created=draw(st.sampled_from(STAMPS)),
        cls=draw(st.sampled_from(["polyingress"] * 4 + ["other", None])),
        annotations=draw(
            st.sampled_from(
                [
                    None,
                    None,
                    None,
                    {"polyingress.io/ssl-redirect": "false"},
                    {"polyingress.io/ssl-redirect": "no"},
                ]
            )
        ),
        **spec,
    )


@st.composite
def an_object(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Ingress"] * 4 + ["Service", "EndpointSlice"] * 2 + ["other"]))
    if kind == "Ingress":
        return draw(an_ingress())
    if kind == "Service":
        name = draw(st.sampled_from(SERVICES[:3]))
        port = draw(st.sampled_from([80, 81]))
        if draw(st.integers(0, 5)) == 0:
            return service(name, type="ExternalName", externalName="example.com")
        return service(name, [{"name": "http", "port": port, "targetPort": 8080}])
    if kind == "EndpointSlice":
        eps = draw(st.lists(st.tuples(st.sampled_from(["10.0.0.1", "10.0.0.2"]), st.booleans())))
        name = draw(st.sampled_from(["s1", "s2"]))
        return slice_(draw(st.sampled_from(SERVICES)), eps, name=name)
    other = draw(st.sampled_from(["secret", "bad secret", "class", "default class", "configmap"]))
    if other in ("secret", "bad secret"):
        obj = tls_secret(
            draw(st.sampled_from(["tls-a", "tls-b"])),
            draw(st.sampled_from(["a.example.com", "b.example.com"])),
            namespace="default",
        )
        if other == "bad secret":
            obj["data"]["tls.key"] = "bm90IGEga2V5"
        return obj
    if other in ("class", "default class"):
        cls = copy.deepcopy(CLASS)
        if other == "default class":
            default = {"ingressclass.kubernetes.io/is-default-class": "true"}
            cls["metadata"]["annotations"] = default
        return cls
    value = draw(st.sampled_from(["on", "bad\x01value"]))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "polyingress", "namespace": "default"},
        "data": {"proxy-timeout": value},
    }


# One change: an object to write, or the key of one to delete.
a_change = st.one_of(an_object(), st.builds(lambda o: object_key(o), an_object()))


@settings(
    max_examples=max(EXAMPLES // 2, 20),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.lists(an_object(), max_size=10),
    st.lists(
        st.tuples(st.lists(a_change, min_size=1, max_size=3), st.booleans()), min_size=1, max_size=8
    ),
)
def test_builder_after_any_changes_equals_a_fresh_build(
    world: list[dict[str, Any]],
    steps: list[tuple[list[dict[str, Any] | ObjectKey], bool]],
) -> None:
    store = ObjectStore()
    store.replace_many([CLASS, service("svc-default"), slice_("svc-default", []), *world], ())
    changed: set[ObjectKey] = set()
    store.subscribe(changed.update)
    kept = Builder(OPTS)
    kept.build(store.snapshot())
    for batch, told in steps:
        changed.clear()
        for change in batch:
            if isinstance(change, tuple):
                store.delete(change)
            else:
                store.upsert(change)
        snap = store.snapshot()
        # The controller tells the Builder what changed; a resync does not (None).
        got = kept.build(snap, set(changed) if told else None)
        want = build_model(snap, OPTS)
        assert got.model == want.model
        assert got.problems == want.problems
        assert got.warnings == want.warnings and got.errors == want.errors
        assert (got.served, got.rejected, got.ignored, got.without_class) == (
            want.served,
            want.rejected,
            want.ignored,
            want.without_class,
        )
        # Pure: the order the store received the objects in does not matter.
        again = ObjectStore()
        again.replace_many(
            reversed([o for kind in snap.objects.values() for o in kind.values()]), ()
        )
        assert build_model(again.snapshot(), OPTS) == want
