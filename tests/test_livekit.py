"""The live-test rule (tests/livekit.py, applied by tests/conftest.py): a test of a proxy that is
not installed is skipped on a developer's machine and FAILS under ``CI=true``, whichever way it
says what it needs (``needs`` mark, ``backend_param``, ``require`` at run time).

Each case runs a real pytest session in a subprocess with the real conftest hook and livekit,
where Traefik is made to look missing and nginx present (a pretend binary), so the outcome
depends only on the rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ("pytester",)

TESTS = Path(__file__).resolve().parent

CONFTEST = f"""
import importlib.util
import sys

sys.path.insert(0, {str(TESTS)!r})
import livekit

# Traefik is missing here, nginx is present: the rule decides the rest.
livekit.proxy_binary = lambda proxy: None if proxy == "traefik" else "/bin/true"

_spec = importlib.util.spec_from_file_location("real_conftest", {str(TESTS / "conftest.py")!r})
_real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_real)
pytest_runtest_setup = _real.pytest_runtest_setup
"""

TESTS_OF_THE_RULE = """
import pytest
from livekit import backend_param, needs, require


@needs("traefik")
def test_marked_missing():
    pass


@needs("nginx")
def test_marked_present():
    pass


@pytest.mark.parametrize("backend", [backend_param("nginx"), backend_param("traefik")])
def test_param(backend):
    pass


def test_required_at_run_time_missing():
    require("traefik")


def test_required_at_run_time_present():
    require("nginx")
"""


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None) -> Any:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_rule=TESTS_OF_THE_RULE)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    return pytester.runpytest_subprocess("-rsfE", "-p", "no:cacheprovider")


def test_a_missing_proxy_skips_without_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(pytester, monkeypatch, None)
    result.assert_outcomes(passed=3, skipped=3)
    result.stdout.fnmatch_lines(["*not installed on this machine: traefik*"])


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_a_missing_proxy_fails_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    result = run(pytester, monkeypatch, ci)
    # A marked test fails in its setup (pytest reports an error), ``require`` in its call; both
    # make the run red.
    result.assert_outcomes(passed=3, failed=1, errors=2)
    assert result.ret != 0
    red = {
        line.split()[1] for line in result.stdout.lines if line.startswith(("FAILED ", "ERROR "))
    }
    assert red == {
        "test_rule.py::test_marked_missing",
        "test_rule.py::test_param[traefik]",
        "test_rule.py::test_required_at_run_time_missing",
    }
    result.stdout.fnmatch_lines(["*CI=true and a proxy this test needs is not installed*traefik*"])


def test_ci_other_than_true_keeps_skipping(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(pytester, monkeypatch, "false")
    result.assert_outcomes(passed=3, skipped=3)


def test_an_unknown_proxy_name_is_refused_at_once() -> None:
    from livekit import needs

    with pytest.raises(ValueError, match="unknown proxy 'traefk'"):
        needs("traefk")
