"""Upstream's ConformanceReport from the Gateway API cases' outcomes
(polyingress.testing.gateway_report) and its pytest option (--polyingress-gateway-report)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from livekit import needs

from polyingress.testing.gateway_cases import CASES
from polyingress.testing.gateway_report import (
    PROFILE_EXTENDED_FEATURES,
    UPSTREAM_TESTS,
    Outcome,
    conformance_report,
)

_IMPL = {
    "organization": "polyingress",
    "project": "polyingress",
    "url": "https://example.invalid/polyingress",
    "version": "0.1.0",
    "contact": ["someone@example.invalid"],
}
_PORTED = {c.upstream for c in CASES}
_CORE_TESTS = {t for t, (needs_, _p) in UPSTREAM_TESTS.items() if not needs_}


def _all(outcome: str) -> dict[str, str]:
    return {c.name: outcome for c in CASES}


def _profile(report: dict[str, object]) -> dict[str, object]:
    (profile,) = report["profiles"]  # type: ignore[misc]
    assert isinstance(profile, dict)
    return profile


def test_every_ported_case_is_an_upstream_test_of_the_profile_or_named_why_not() -> None:
    # HTTPRouteDisallowedKind needs TLSRoute: upstream's GATEWAY-TLS profile, not GATEWAY-HTTP.
    assert _PORTED - set(UPSTREAM_TESTS) == {"HTTPRouteDisallowedKind"}
    assert len(_CORE_TESTS) == 37  # upstream v1.6.1's GATEWAY-HTTP core tests


def test_report_has_upstreams_shape() -> None:
    report = conformance_report(_all(Outcome.PASSED), {"HTTPRoute"}, impl=_IMPL, date="D")
    assert {k: report[k] for k in report if k != "profiles"} == {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "ConformanceReport",
        "implementation": _IMPL,
        "date": "D",
        "gatewayAPIVersion": "v1.6.1",
        "gatewayAPIChannel": "standard",
        "mode": "default",
    }
    assert _profile(report)["name"] == "GATEWAY-HTTP"


def test_core_tests_not_ported_are_skipped_so_the_core_result_is_partial() -> None:
    report = conformance_report(_all(Outcome.PASSED), {"HTTPRoute"}, impl=_IMPL)
    core = _profile(report)["core"]
    assert isinstance(core, dict)
    missing = sorted(_CORE_TESTS - _PORTED)
    assert core["statistics"] == {
        "Passed": len(_CORE_TESTS & _PORTED),
        "Failed": 0,
        "Skipped": len(missing),
    }
    assert core.get("skippedTests", []) == missing
    assert core["result"] == ("partial" if missing else "success")
    # Declaring no extended feature: no extended test is supported, so none is counted.
    assert "extended" not in _profile(report)


def test_a_failed_step_fails_its_upstream_test() -> None:
    outcomes = _all(Outcome.PASSED)
    outcomes["HTTPRouteReferenceGrant/grant-deleted"] = Outcome.FAILED
    core = _profile(conformance_report(outcomes, {"HTTPRoute"}, impl=_IMPL))["core"]
    assert isinstance(core, dict)
    assert core["result"] == "failure"
    assert core["failedTests"] == ["HTTPRouteReferenceGrant"]
    assert core["statistics"]["Failed"] == 1


def test_extended_features_declared_count_their_tests_only() -> None:
    features = {"HTTPRoute", "HTTPRouteMethodMatching", "HTTPRoute303RedirectStatusCode"}
    outcomes = _all(Outcome.PASSED)
    outcomes["HTTPRouteMethodMatching"] = Outcome.FAILED
    report = conformance_report(outcomes, features, impl=_IMPL)
    ext = _profile(report)["extended"]
    assert isinstance(ext, dict)
    assert ext["statistics"] == {"Passed": 1, "Failed": 1, "Skipped": 0}
    assert ext["failedTests"] == ["HTTPRouteMethodMatching"]
    assert ext["result"] == "failure"
    assert ext["supportedFeatures"] == ["HTTPRoute303RedirectStatusCode", "HTTPRouteMethodMatching"]
    assert set(ext["unsupportedFeatures"]) == PROFILE_EXTENDED_FEATURES - features
    assert report["succeededProvisionalTests"] == ["HTTPRoute303Redirect"]
    assert _profile(report)["summary"].endswith("Extended tests failed with 1 test failures.")


def test_cases_not_run_are_skipped_not_passed() -> None:
    outcomes = {"HTTPRouteWeight": Outcome.PASSED}
    core = _profile(conformance_report(outcomes, {"HTTPRoute"}, impl=_IMPL))["core"]
    assert isinstance(core, dict)
    assert core["statistics"] == {"Passed": 1, "Failed": 0, "Skipped": 36}


@needs("nginx")
def test_report_option_writes_what_the_run_found(tmp_path: Path) -> None:
    """A real run of two cases with the kit's plugin: the report counts what pytest saw."""
    report_path, junit = tmp_path / "report-{backend}.yaml", tmp_path / "junit.xml"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "polyingress.testing",
            "-p",
            "no:cacheprovider",
            "--polyingress-backend",
            "nginx",
            "--polyingress-gateway-report",
            str(report_path),
            "--polyingress-report-url",
            "https://example.invalid/polyingress",
            "--polyingress-report-contact",
            "someone@example.invalid",
            "--junitxml",
            str(junit),
            "-k",
            "HTTPRouteSimpleSameNamespace or HTTPRouteMethodMatching",
            "-q",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert junit.exists(), f"{run.stdout}\n{run.stderr}"
    cases = ET.parse(junit).getroot().iter("testcase")
    outcome = {}
    for tc in cases:
        name = tc.get("name", "")
        kind = next((child.tag for child in tc), "passed")
        outcome[name[name.index("[") + 1 : -1]] = kind
    assert set(outcome) == {"HTTPRouteSimpleSameNamespace", "HTTPRouteMethodMatching"}, run.stdout
    report = yaml.safe_load((tmp_path / "report-nginx.yaml").read_text())
    assert report["implementation"]["url"] == "https://example.invalid/polyingress"
    assert report["implementation"]["contact"] == ["someone@example.invalid"]
    core = report["profiles"][0]["core"]
    simple = outcome["HTTPRouteSimpleSameNamespace"]
    assert core["statistics"]["Passed"] == (simple == "passed")
    assert core["statistics"]["Failed"] == (simple in ("failure", "error"))
    assert core["statistics"]["Skipped"] == 37 - (simple != "skipped")
    method = outcome["HTTPRouteMethodMatching"]
    ext = report["profiles"][0].get("extended")
    if method == "skipped":  # nginx does not declare HTTPRouteMethodMatching: not counted
        assert ext is None or "HTTPRouteMethodMatching" in ext["unsupportedFeatures"]
    else:
        assert ext["statistics"]["Passed"] == (method == "passed")
        assert "HTTPRouteMethodMatching" in ext["supportedFeatures"]


@pytest.mark.parametrize("name", sorted(_PORTED - {"HTTPRouteDisallowedKind"}))
def test_ported_case_features_are_upstreams(name: str) -> None:
    (needs_, _provisional) = UPSTREAM_TESTS[name]
    for case in CASES:
        if case.upstream == name:
            assert case.features == needs_, f"{case}: {case.features} != upstream's {needs_}"
            assert case.provisional == _provisional


@needs("nginx")
def test_report_of_a_suite_whose_module_names_the_backend(tmp_path: Path) -> None:
    """A third-party distribution runs the suite from a module of its own that overrides the
    ``polyingress_backend`` fixture (no --polyingress-backend): the report is that backend's."""
    (tmp_path / "test_suite.py").write_text(
        "import pytest\n"
        "from polyingress.testing.gateway_live import *  # noqa: F403\n\n\n"
        "@pytest.fixture(scope='session')\n"
        "def polyingress_backend() -> str:\n"
        "    return 'nginx'\n"
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "polyingress.testing",
            "-p",
            "no:cacheprovider",
            "--polyingress-gateway-report",
            str(tmp_path / "report.yaml"),
            "-k",
            "HTTPRouteSimpleSameNamespace",
            "-q",
            "test_suite.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    report = yaml.safe_load((tmp_path / "report.yaml").read_text())
    assert report["profiles"][0]["core"]["statistics"]["Passed"] == 1, report
