"""custom-headers in Kubernetes mode: the ConfigMaps Ingresses name reach the model (and only
they are kept), through the real client against the kmock emulator over real HTTP."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from kube_emulator import KubeEmulator, replicas
from kube_objects import CLASS, ingress, path, rule, service, slice_
from livekit import needs, wait_until

from polyingress.core import BuildResult
from polyingress.core.sources.kubernetes.configmaps import named_configmaps
from polyingress.testing.live import Controller, HelloFleet

SETTINGS = ("polyingress", "polyingress")
NGINX = "nginx.ingress.kubernetes.io"


def configmap(ns: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    }


def headers_ingress(name: str, host: str, ref: str, ns: str = "default", key: str = "") -> Any:
    return ingress(
        name,
        rule(host, path("/", "web")),
        ns=ns,
        annotations={f"{key or 'polyingress.io'}/custom-headers": ref},
    )


def world(kube: KubeEmulator, ns: str = "default") -> None:
    kube.put(CLASS)
    kube.put(configmap(*SETTINGS, {"global-allowed-response-headers": "X-Team,X-Env"}))
    kube.put(service("web", ns=ns))
    kube.put(slice_("web", [("10.0.0.1", True)], ns=ns))


def answer(rep: Any, host: str) -> tuple[int, tuple[tuple[str, str], ...] | None]:
    """The status a request for ``host`` gets (200: proxied to its backend) and the response
    headers its route sets."""
    got = rep.model().answer(host, "/")
    headers = got.route.response_headers if got.route is not None else None
    return got.status or 200, (headers.set if headers is not None else None)


def held(rep: Any) -> set[tuple[str, str]]:
    return set(rep.store.keys("ConfigMap"))


def test_named_configmaps_reads_both_prefixes_and_the_own_namespace_only() -> None:
    def named(annotations: dict[str, str]) -> frozenset[tuple[str, str]]:
        obj = {"metadata": {"namespace": "apps", "annotations": annotations}}
        return named_configmaps(obj, "example.io")

    assert named({"example.io/custom-headers": "h"}) == {("apps", "h")}
    assert named({f"{NGINX}/custom-headers": "apps/h"}) == {("apps", "h")}
    assert named({"example.io/custom-headers": "a", f"{NGINX}/custom-headers": "b"}) == {
        ("apps", "a"),
        ("apps", "b"),
    }
    # Another namespace (the builder refuses it), a bad name, another prefix: nothing to read.
    assert named({"example.io/custom-headers": "other/h"}) == frozenset()
    assert named({"example.io/custom-headers": "Not_A_Name"}) == frozenset()
    assert named({"polyingress.io/custom-headers": "h"}) == frozenset()


def test_custom_headers_are_served_edited_and_deleted_without_restart(kube: KubeEmulator) -> None:
    world(kube)
    kube.put(configmap("default", "team", {"X-Team": "blue"}))
    # Not named by any Ingress: never kept (a large one, as a Grafana dashboard can be).
    kube.put(configmap("default", "dashboard", {"dashboard.json": "x" * 200_000}))
    kube.put(headers_ingress("web", "web.example.com", "team"))
    kube.put(headers_ingress("alias", "alias.example.com", "default/team", key=NGINX))
    with replicas(kube, configmap=SETTINGS) as (rep,):
        assert answer(rep, "web.example.com") == (200, (("x-team", "blue"),))
        assert answer(rep, "alias.example.com") == (200, (("x-team", "blue"),))
        assert held(rep) == {SETTINGS, ("default", "team")}

        kube.put(configmap("default", "team", {"X-Team": "green", "X-Env": "prod"}))
        wait_until(
            lambda: answer(rep, "web.example.com")[1] == (("x-env", "prod"), ("x-team", "green"))
        )

        # Deleted: the paths answer 503, as ingress-nginx's denied location; back when created.
        kube.delete("ConfigMap", "default", "team")
        wait_until(lambda: answer(rep, "web.example.com")[0] == 503)
        assert answer(rep, "alias.example.com")[0] == 503
        problems = rep.controller.last_result.problems
        assert any("ConfigMap default/team not found" in p.message for p in problems)
        assert held(rep) == {SETTINGS}
        kube.put(configmap("default", "team", {"X-Team": "red"}))
        wait_until(lambda: answer(rep, "web.example.com") == (200, (("x-team", "red"),)))

        # A header name the settings do not allow: 503, the problem names it.
        kube.put(configmap("default", "team", {"X-Secret": "1"}))
        wait_until(lambda: answer(rep, "web.example.com")[0] == 503)
        assert any(
            "X-Secret is not allowed" in p.message for p in rep.controller.last_result.problems
        )


def test_an_ingress_naming_an_existing_configmap_never_sees_it_missing(kube: KubeEmulator) -> None:
    world(kube)
    kube.put(configmap("default", "later", {"X-Team": "late"}))
    kube.put(ingress("plain", rule("plain.example.com", path("/", "web"))))
    builds: list[BuildResult] = []
    lock = threading.Lock()

    def record(result: BuildResult) -> None:
        with lock:
            builds.append(result)

    with replicas(kube, configmap=SETTINGS) as (rep,):
        assert held(rep) == {SETTINGS}  # nobody names "later" yet: not kept
        rep.controller.on_build(record)
        kube.put(headers_ingress("late", "late.example.com", "later"))
        wait_until(lambda: answer(rep, "late.example.com") == (200, (("x-team", "late"),)))
        assert held(rep) == {SETTINGS, ("default", "later")}
        # Every build that saw the Ingress saw its ConfigMap: no 503 meanwhile.
        with lock:
            seen = [b for b in builds if b.model.answer("late.example.com", "/").route is not None]
            assert seen and all(
                "later not found" not in p.message for b in builds for p in b.problems
            )
        reads = [c for c in kube.calls() if c.resource == "configmaps" and c.name == "later"]
        assert [c.verb for c in reads] == ["list"]  # one read, by field selector

        # Named no more (annotation removed, then the Ingress deleted): dropped from memory.
        kube.put(ingress("late", rule("late.example.com", path("/", "web"))))
        wait_until(lambda: held(rep) == {SETTINGS})
        # The store drops the ConfigMap first; the rebuild that follows serves the Ingress plain.
        wait_until(lambda: answer(rep, "late.example.com") == (200, None))
        kube.put(headers_ingress("late", "late.example.com", "later"))
        wait_until(lambda: held(rep) == {SETTINGS, ("default", "later")})
        kube.delete("Ingress", "default", "late")
        wait_until(lambda: held(rep) == {SETTINGS})


def test_a_relist_keeps_the_named_configmaps_beside_the_settings_one(kube: KubeEmulator) -> None:
    """--configmap's own watch relists its one object only: a named ConfigMap of the same
    namespace stays, and so does its Ingress's answer."""
    world(kube, ns="polyingress")
    kube.put(configmap("polyingress", "team", {"X-Team": "ops"}))
    kube.put(headers_ingress("ops", "ops.example.com", "team", ns="polyingress"))
    with replicas(kube, configmap=SETTINGS) as (rep,):
        assert rep.runtime.source is not None
        lists = {
            r.spec.role: r for r in rep.runtime.source.reflectors if r.spec.kind == "ConfigMap"
        }
        before = {role: r.relists for role, r in lists.items()}
        assert answer(rep, "ops.example.com") == (200, (("x-team", "ops"),))
        kube.put(configmap(*SETTINGS, {"global-allowed-response-headers": "X-Team"}), notify=False)
        kube.compact()
        wait_until(lambda: all(r.relists > before[role] for role, r in lists.items()))
        assert held(rep) == {SETTINGS, ("polyingress", "team")}
        assert answer(rep, "ops.example.com") == (200, (("x-team", "ops"),))


# -- live: `polyingress run` in Kubernetes mode, a real proxy, a real backend ------------------


@needs("nginx")
def test_custom_headers_through_a_live_proxy(kube: KubeEmulator, tmp_path: Path) -> None:
    """`polyingress run --kubeconfig` against the emulator, nginx in front of a hello server:
    the named ConfigMap's headers are on the answers, an edit is served without a restart, a
    deletion answers 503, and a ConfigMap created again is served again."""
    fleet = HelloFleet([("default/web", "127.0.93.1")])
    world(kube)
    kube.put(service("web", ports=[{"name": "http", "port": 80, "targetPort": fleet.port}]))
    kube.put(slice_("web", [("127.0.93.1", True)], ports=[{"name": "http", "port": fleet.port}]))
    kube.put(configmap("default", "team", {"X-Team": "blue"}))
    kube.put(headers_ingress("web", "web.example.com", "team"))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kube.kubeconfig())
    flags = ["--kubeconfig", str(kubeconfig), "--election-namespace", "polyingress"]
    controller = Controller(
        "nginx", None, tmp_path / "work", extra=[*flags, "--configmap", "polyingress/polyingress"]
    )

    def team() -> tuple[int, str | None]:
        got = controller.get("web.example.com", "/")
        return got.status, got.headers.get("x-team")

    try:
        controller.start()
        wait_until(lambda: team() == (200, "blue"))
        assert controller.get("web.example.com", "/").server_name == "default/web"
        kube.put(configmap("default", "team", {"X-Team": "green"}))
        wait_until(lambda: team() == (200, "green"))
        kube.delete("ConfigMap", "default", "team")
        wait_until(lambda: team()[0] == 503)
        kube.put(configmap("default", "team", {"X-Team": "red"}))
        wait_until(lambda: team() == (200, "red"))
        assert controller.proc is not None and controller.proc.poll() is None  # never restarted
    finally:
        controller.stop()
        fleet.stop()
