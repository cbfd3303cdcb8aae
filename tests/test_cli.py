"""The command line: validate and render output, exit codes, flag errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kube_objects import CLASS, ingress, path, rule
from livekit import REPO, write_manifests


def polyingress(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polyingress.core.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def test_validate_cafe_example_is_clean() -> None:
    out = polyingress("validate", "--manifests", "examples/cafe")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("1 hosts, 2 routes, 2 backends")


def test_validate_reports_host_path_and_port_precisely(tmp_path: Path) -> None:
    shutil.copytree(REPO / "examples" / "cafe", tmp_path / "m")
    write_manifests(
        tmp_path / "m",
        "bad.yaml",
        [
            CLASS,
            ingress("bad-host", rule("Cafe.Example.com", path("/", "s"))),
            ingress("bad-path", rule("a.example.com", path("/tea;evil", "s"))),
            ingress("bad-port", rule("b.example.com", path("/", "s", port=99999))),
        ],
    )
    out = polyingress("validate", "--manifests", str(tmp_path / "m"))
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert any(
        line.startswith(
            "error: Ingress default/bad-host: spec.rules[0].host: host 'Cafe.Example.com'"
        )
        for line in lines
    ), lines
    assert any(
        "error: Ingress default/bad-path: spec.rules[0].http.paths[0].path: path '/tea;evil' "
        "contains character ';'" in line
        for line in lines
    ), lines
    assert any(
        "error: Ingress default/bad-port: "
        "spec.rules[0].http.paths[0].backend.service.port.number: port number 99999 is out of "
        "range 1-65535" in line
        for line in lines
    ), lines
    assert "1 Ingresses served, 3 rejected" in out.stdout


def test_validate_output_is_stable(tmp_path: Path) -> None:
    assert (
        polyingress("validate", "--manifests", "examples/cafe").stdout
        == polyingress("validate", "--manifests", "examples/cafe").stdout
    )


def test_validate_reports_unparseable_file(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("kind: [\n")
    out = polyingress("validate", "--manifests", str(tmp_path))
    assert out.returncode == 1
    assert "broken.yaml: not valid YAML" in out.stdout


def test_bad_flag_values_are_rejected() -> None:
    out = polyingress("validate", "--manifests", "examples/cafe", "--default-backend-service", "x")
    assert out.returncode == 2
    assert "must be NAMESPACE/NAME" in out.stderr


@pytest.mark.parametrize(
    ("backend", "flag", "value", "message"),
    [
        ("nginx", "--http-port", "70000", "out of range 0-65535"),
        ("nginx", "--debounce-ms", "-5", "must be >= 0"),
        ("nginx", "--lease-duration", "0", "must be > 0"),
        ("nginx", "--nginx-status-port", "x", "is not a whole number"),
        ("nginx", "--nginx-reload-timeout", "-1", "must be > 0"),
        ("haproxy", "--haproxy-spare-backends", "-1", "must be >= 0"),
        ("haproxy", "--haproxy-drain-timeout", "soon", "is not a number"),
        ("traefik", "--traefik-https-redirect-port", "65536", "out of range 0-65535"),
    ],
)
def test_bad_numbers_are_usage_errors_naming_the_flag(
    backend: str, flag: str, value: str, message: str
) -> None:
    out = polyingress(
        "run", "--backend", backend, "--manifests", "examples/cafe", f"{flag}={value}"
    )
    assert out.returncode == 2, out.stderr
    assert flag in out.stderr and message in out.stderr, out.stderr
