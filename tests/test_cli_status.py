"""`polyingress status`: the Gateway API status the controller would write, as YAML."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from polyingress.core import BASIC_AUTH, BODY_SIZE, RATE_LIMIT, SOURCE_RANGES
from polyingress.testing.gateway_cases import CASES, INFRA, base_objects
from polyingress.testing.gateway_live import backend_features
from polyingress.testing.live import write_manifests


def polyingress(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polyingress.core.runtime.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _world(tmp_path: Path, *extra: dict[str, Any]) -> Path:
    case = next(c for c in CASES if c.name == "HTTPRoutePathMatchOrder")
    write_manifests(tmp_path, "w.yaml", [*base_objects(8080), *case.objects, *extra])
    return tmp_path


def _doc(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_status_prints_every_object_of_ours_with_its_conditions(tmp_path: Path) -> None:
    bad = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "elsewhere", "namespace": "other"},
        "spec": {
            "parentRefs": [{"name": "same-namespace", "namespace": INFRA}],
            "rules": [{"backendRefs": [{"name": "infra-backend-v1", "port": 8080}]}],
        },
    }
    out = polyingress("status", "--manifests", str(_world(tmp_path, bad)))
    assert out.returncode == 0, out.stderr
    docs = yaml.safe_load(out.stdout)
    assert {d["kind"] for d in docs} == {"GatewayClass", "Gateway", "HTTPRoute"}
    route = _doc(docs, "HTTPRoute", "path-matching-order")
    conds = {c["type"]: c for c in route["status"]["parents"][0]["conditions"]}
    assert (conds["Accepted"]["status"], conds["ResolvedRefs"]["status"]) == ("True", "True")
    assert route["status"]["parents"][0]["controllerName"] == "polyingress.io/controller"
    # A route of another namespace on a listener that allows only its own: not allowed.
    other = _doc(docs, "HTTPRoute", "elsewhere")["status"]["parents"][0]["conditions"]
    assert other[0]["reason"] == "NotAllowedByListeners"
    gateway = _doc(docs, "Gateway", "same-namespace")["status"]
    assert gateway["listeners"][0]["attachedRoutes"] == 1
    assert {c["type"]: c["status"] for c in gateway["conditions"]} == {
        "Accepted": "True",
        "Programmed": "True",
    }


def test_status_with_a_backend_lists_its_features(tmp_path: Path) -> None:
    out = polyingress("status", "--manifests", str(_world(tmp_path)), "--backend", "traefik")
    assert out.returncode == 0, out.stderr
    cls = _doc(yaml.safe_load(out.stdout), "GatewayClass", "polyingress")["status"]
    declared = sorted(backend_features("traefik") - {"Gateway", "ReferenceGrant"})
    # Upstream feature names only: the annotations' own ("polyingress.io/...") are not listed.
    assert [f["name"] for f in cls["supportedFeatures"]] == [f for f in declared if "/" not in f]
    assert {SOURCE_RANGES, BODY_SIZE, BASIC_AUTH, RATE_LIMIT} <= set(declared)


def test_validate_adds_a_gateway_line_only_when_there_are_gateway_objects(tmp_path: Path) -> None:
    out = polyingress("validate", "--manifests", str(_world(tmp_path)))
    assert out.returncode == 0, out.stdout
    assert out.stdout.splitlines()[-1] == (
        "1 GatewayClasses, 4 Gateways; 1 HTTPRoutes: 1 accepted, 0 not accepted "
        "(polyingress status says why)"
    )
    cafe = polyingress("validate", "--manifests", "examples/cafe")
    assert "HTTPRoutes" not in cafe.stdout


def test_status_gives_gateways_the_published_addresses(tmp_path: Path) -> None:
    manifests = str(_world(tmp_path))
    docs = yaml.safe_load(polyingress("status", "--manifests", manifests).stdout)
    # Not published anywhere: the spec's "not yet known" is no addresses field at all.
    assert all("addresses" not in d["status"] for d in docs if d["kind"] == "Gateway")
    out = polyingress(
        "status",
        "--manifests",
        manifests,
        "--publish-status-address",
        "203.0.113.7, LB.Example.COM,2001:db8:0:0::1,203.0.113.7",
    )
    assert out.returncode == 0, out.stderr
    docs = yaml.safe_load(out.stdout)
    gateways = [d for d in docs if d["kind"] == "Gateway"]
    assert gateways
    for gw in gateways:
        assert gw["status"]["addresses"] == [
            {"type": "IPAddress", "value": "2001:db8::1"},
            {"type": "IPAddress", "value": "203.0.113.7"},
            {"type": "Hostname", "value": "lb.example.com"},
        ]
    # Routes and classes have no addresses.
    assert all("addresses" not in d["status"] for d in docs if d["kind"] != "Gateway")
    bad = polyingress("status", "--manifests", manifests, "--publish-status-address", " , ")
    assert bad.returncode == 2 and "ADDR[,ADDR...]" in bad.stderr
