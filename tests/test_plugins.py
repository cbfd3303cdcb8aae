"""Plugin discovery, the example third-party backend, and the core/plugin boundary."""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from livekit import REPO, Controller, free_port, needs, running, wait_until, write_manifests

from polyingress.core import hookspecs
from polyingress.testing.cases import CASES, PATH_CASES, world
from polyingress.testing.gateway_cases import CASES as GATEWAY_CASES
from polyingress.testing.gateway_live import backend_features

EXAMPLE = REPO / "examples" / "example-backend"


@pytest.fixture(scope="module")
def example_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Install the example distribution (built by pip from its own pyproject) into a target
    directory that is put on PYTHONPATH: a real install, invisible to other tests."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    yield env


def polyingress(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polyingress.core.runtime.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )


def test_plugins_lists_third_party_backend_with_version(example_installed: dict[str, str]) -> None:
    out = polyingress("plugins", env=example_installed)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("example\t"))
    assert line.split("\t")[1:3] == ["0.1.0", "polyingress-example-backend"]


def test_backend_flag_selects_third_party_plugin_and_it_receives_the_model(
    example_installed: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_manifests(tmp_path / "m", "world.yaml", world(free_port()))
    for key, value in example_installed.items():
        monkeypatch.setenv(key, value)
    ctl = Controller("example", tmp_path / "m", tmp_path / "work", extra=["--example-indent", "1"])
    ctl.start()
    try:
        routes = json.loads((tmp_path / "work" / "routes.json").read_text())
        hosts = [v["host"] for v in routes["vhosts"]]
        assert hosts == [
            "app.example.com",
            "only.example.com",
            "secure.example.com",
            "*.wild.example.com",
            "*.wsecure.example.com",
            None,
        ]
        assert (tmp_path / "work" / "routes.json").read_text().startswith('{\n "backends"')
        # A change in the manifest directory reaches the plugin as a new model and a diff.
        write_manifests(tmp_path / "m", "world.yaml", world(free_port())[:-3])
        wait_until(lambda: (tmp_path / "work" / "applied.log").exists(), timeout=20)
        assert "routes_removed" in (tmp_path / "work" / "applied.log").read_text()
    finally:
        assert ctl.stop() == 0


def test_render_with_third_party_plugin(example_installed: dict[str, str]) -> None:
    out = polyingress(
        "render", "--backend", "example", "--manifests", "examples/cafe", env=example_installed
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["vhosts"][0]["host"] == "cafe.example.com"


def test_render_output_with_third_party_plugin_writes_what_run_writes(
    example_installed: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in example_installed.items():
        monkeypatch.setenv(key, value)
    cafe = REPO / "examples" / "cafe"
    ctl = Controller("example", cafe, tmp_path / "work", extra=["--example-indent", "1"])
    with running(ctl):
        ran = (tmp_path / "work" / "routes.json").read_text()
    out = polyingress(
        "render",
        "--backend",
        "example",
        "--manifests",
        str(cafe),
        "--example-indent",
        "1",
        "--output",
        str(tmp_path / "out"),
        env=example_installed,
    )
    assert out.returncode == 0, out.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["routes.json"]
    assert (tmp_path / "out" / "routes.json").read_text() == ran


def test_unknown_backend_is_a_clear_error() -> None:
    out = polyingress("render", "--backend", "nope", "--manifests", "examples/cafe")
    assert out.returncode == 2
    assert "unknown backend 'nope'" in out.stderr


def test_core_never_imports_a_plugin() -> None:
    for path in (REPO / "core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith("polyingress.plugins"), f"{path} imports {name}"


def test_plugins_import_only_the_core_public_api() -> None:
    for path in (REPO / "plugins").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "polyingress.core"
            ):
                assert node.module == "polyingress.core", f"{path}: {node.module}"


def test_core_imports_without_any_plugin_installed() -> None:
    code = (
        "import sys; sys.modules['polyingress.plugins'] = None; "
        "import polyingress.core, polyingress.core.runtime.cli, polyingress.core.runtime.controller"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_hook_is_documented() -> None:
    hooks = [
        n
        for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
        if n.startswith("polyingress_")
    ]
    assert len(hooks) >= 10
    for name in hooks:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert len(doc) > 80, f"{name} is not documented"
    doc = REPO / "docs" / "plugin-hooks.md"
    text = doc.read_text()
    for name in hooks:
        sig = inspect.signature(getattr(hookspecs, name))
        args = ", ".join(sig.parameters)
        assert f"## `{name}({args})`" in text, f"{name}({args}) missing in {doc}"


def run_pytest(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def passed(out: subprocess.CompletedProcess[str]) -> int:
    """How many tests a pytest run passed, asserting that it passed them all; the only skips
    allowed (run with ``-rs``) are Gateway API cases of a feature the backend does not declare,
    as the upstream suite skips them."""
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    found = re.search(r"(\d+) passed", out.stdout)
    assert found is not None and " failed" not in out.stdout
    skips = [line for line in out.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all("backend does not declare" in line for line in skips), skips
    assert bool(skips) == (" skipped" in out.stdout), out.stdout[-3000:]
    return int(found.group(1))


@pytest.mark.live
@needs("haproxy")
def test_the_conformance_kit_runs_from_anywhere_against_an_installed_backend(
    tmp_path: Path,
) -> None:
    """``pytest -p polyingress.testing --polyingress-backend NAME``, outside the repository,
    collects the whole kit (Ingress, Gateway API and annotation suites) and runs it live
    against the installed backend; here one case table and one case of each other suite run
    (all of them run on every backend in this repository's own live tests)."""
    base = ["-p", "polyingress.testing", "--polyingress-backend", "haproxy", "-rs"]
    collected = run_pytest(*base, "--collect-only", cwd=tmp_path, env=dict(os.environ))
    served = backend_features("haproxy")
    gateway = sum(case.features <= served for case in GATEWAY_CASES)
    found = re.search(r"(\d+) tests? collected", collected.stdout)
    assert found is not None, collected.stdout[-2000:]
    assert int(found.group(1)) >= len(CASES) + len(PATH_CASES) + gateway
    chosen = (
        "test_routes_per_ingress_v1 or HTTPRouteSimpleSameNamespace or rewrite-target/whole-path"
    )
    out = run_pytest(*base, "-k", chosen, cwd=tmp_path, env=dict(os.environ))
    assert passed(out) == len(CASES) + 2
    assert "test_routes_per_ingress_v1" not in out.stdout  # -q: only the summary


@pytest.mark.live
def test_the_example_backend_passes_the_conformance_suite_in_its_own_tests(
    example_installed: dict[str, str], tmp_path: Path
) -> None:
    """The third-party example runs the kit from its own test directory (its conftest names
    the plugin), with nothing of this repository's tests on the path."""
    out = run_pytest(str(EXAMPLE / "tests"), cwd=tmp_path, env=example_installed)
    assert passed(out) >= len(CASES) + len(PATH_CASES)


def test_the_conformance_kit_without_a_backend_adds_no_test(tmp_path: Path) -> None:
    (tmp_path / "test_own.py").write_text("def test_own():\n    assert True\n")
    out = run_pytest("-p", "polyingress.testing", cwd=tmp_path, env=dict(os.environ))
    assert passed(out) == 1
