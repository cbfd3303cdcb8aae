"""Upstream's ConformanceReport (gateway.networking.k8s.io/v1, kind ConformanceReport) from the
outcomes of a live run of the Gateway API cases (:mod:`polyingress.testing.gateway_live`).

The report is the one kubernetes-sigs/gateway-api v1.6.1's suite writes (conformance/apis/v1,
conformance/utils/suite/reports.go), for the profile GATEWAY-HTTP, by upstream's rules:

* a test belongs to the profile when every feature it needs is one of the profile's (core:
  Gateway, HTTPRoute, ReferenceGrant; extended: the Gateway and HTTPRoute extended features and
  BackendTLSPolicy's); it is an extended test when it needs any feature beyond the core ones;
* a test needing a feature the backend does not declare is not supported: it is not counted;
* every other test is passed, failed or skipped: a test here is the upstream test, passed when
  every case of it (its steps) passed, failed when one failed; a test of upstream's profile
  that was not run (not ported to this kit, or deselected) is skipped and listed, so a report
  cannot be a success by leaving tests out;
* core (and extended) result: failure when a test failed, partial when one was skipped, else
  success; provisional tests that passed are listed in ``succeededProvisionalTests``.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import yaml

from polyingress.core.pipeline.gateway import HTTPROUTE_EXTENDED
from polyingress.testing.gateway_cases import CASES, CORE_FEATURES, GatewayCase

__all__ = [
    "GATEWAY_API_VERSION",
    "PROFILE",
    "PROFILE_EXTENDED_FEATURES",
    "UPSTREAM_TESTS",
    "Outcome",
    "conformance_report",
    "implementation",
    "outcomes_by_test",
    "report_yaml",
]

GATEWAY_API_VERSION = "v1.6.1"
PROFILE = "GATEWAY-HTTP"


class Outcome:
    """A case's result in a run."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


# The extended features of the GATEWAY-HTTP profile (upstream's GatewayExtendedFeatures,
# HTTPRouteExtendedFeatures and BackendTLSPolicy's core and extended features).
PROFILE_EXTENDED_FEATURES = frozenset(
    {
        # Gateway
        "GatewayPort8080",
        "GatewayStaticAddresses",
        "GatewayHTTPListenerIsolation",
        "GatewayHTTPSListenerDetectMisdirectedRequests",
        "GatewayInfrastructurePropagation",
        "GatewayAddressEmpty",
        "GatewayBackendClientCertificate",
        "GatewayFrontendClientCertificateValidation",
        "GatewayFrontendClientCertificateValidationInsecureFallback",
        "ListenerSet",
        # BackendTLSPolicy
        "BackendTLSPolicy",
        "BackendTLSPolicySANValidation",
    }
    # HTTPRoute: upstream's HTTPRouteExtendedFeatures, listed once in the core
    | set(HTTPROUTE_EXTENDED)
    | {"HTTPRouteRetryBackendTimeout", "HTTPRouteRetryConnectionError"}
)


def _t(*features: str, provisional: bool = False) -> tuple[frozenset[str], bool]:
    return frozenset(features), provisional


# Every test of upstream v1.6.1 in the GATEWAY-HTTP profile: its features beyond the core ones
# and whether it is provisional.
UPSTREAM_TESTS: dict[str, tuple[frozenset[str], bool]] = {
    # core
    "GatewayClassObservedGenerationBump": _t(),
    "GatewayInvalidParametersRef": _t(),
    "GatewayInvalidRouteKind": _t(),
    "GatewayInvalidTLSConfiguration": _t(),
    "GatewayListenerUnsupportedProtocol": _t(),
    "GatewayModifyListeners": _t(),
    "GatewayObservedGenerationBump": _t(),
    "GatewaySecretInvalidReferenceGrant": _t(),
    "GatewaySecretMissingReferenceGrant": _t(),
    "GatewaySecretReferenceGrantAllInNamespace": _t(),
    "GatewaySecretReferenceGrantSpecific": _t(),
    "GatewayWithAttachedRoutes": _t(),
    "HTTPRouteCrossNamespace": _t(),
    "HTTPRouteExactPathMatching": _t(),
    "HTTPRouteHTTPSListener": _t(),
    "HTTPRouteHeaderMatching": _t(),
    "HTTPRouteHostnameIntersection": _t(),
    "HTTPRouteInvalidBackendRefUnknownKind": _t(),
    "HTTPRouteInvalidCrossNamespaceBackendRef": _t(),
    "HTTPRouteInvalidCrossNamespaceParentRef": _t(),
    "HTTPRouteInvalidNonExistentBackendRef": _t(),
    "HTTPRouteInvalidParentRefNotMatchingSectionName": _t(),
    "HTTPRouteInvalidReferenceGrant": _t(),
    "HTTPRouteListenerHostnameMatching": _t(),
    "HTTPRouteMatching": _t(),
    "HTTPRouteMatchingAcrossRoutes": _t(),
    "HTTPRouteMultipleGateways": _t(),
    "HTTPRouteNoBackendRefs": _t(),
    "HTTPRouteObservedGenerationBump": _t(),
    "HTTPRoutePartiallyInvalidViaInvalidReferenceGrant": _t(),
    "HTTPRoutePathMatchOrder": _t(),
    "HTTPRouteRedirectHostAndStatus": _t(),
    "HTTPRouteReferenceGrant": _t(),
    "HTTPRouteRequestHeaderModifier": _t(),
    "HTTPRouteServiceTypes": _t(),
    "HTTPRouteSimpleSameNamespace": _t(),
    "HTTPRouteWeight": _t(),
    # extended
    "BackendTLSPolicy": _t("BackendTLSPolicy"),
    "BackendTLSPolicyConflictResolution": _t("BackendTLSPolicy"),
    "BackendTLSPolicyInvalidCACertificateRef": _t("BackendTLSPolicy"),
    "BackendTLSPolicyInvalidKind": _t("BackendTLSPolicy"),
    "BackendTLSPolicyObservedGenerationBump": _t("BackendTLSPolicy"),
    "BackendTLSPolicySANValidation": _t("BackendTLSPolicy", "BackendTLSPolicySANValidation"),
    "GatewayFrontendClientCertificateValidation": _t("GatewayFrontendClientCertificateValidation"),
    "GatewayFrontendClientCertificateValidationInsecureFallback": _t(
        "GatewayFrontendClientCertificateValidation",
        "GatewayFrontendClientCertificateValidationInsecureFallback",
    ),
    "GatewayFrontendInvalidDefaultClientCertificateValidation": _t(
        "GatewayFrontendClientCertificateValidation"
    ),
    "GatewayHTTPListenerIsolation": _t("GatewayHTTPListenerIsolation"),
    "GatewayInfrastructure": _t("GatewayInfrastructurePropagation", provisional=True),
    "GatewayInvalidFrontendClientCertificateValidation": _t(
        "GatewayFrontendClientCertificateValidation"
    ),
    "GatewayInvalidTLSBackendConfiguration": _t(
        "GatewayBackendClientCertificate", "BackendTLSPolicy"
    ),
    "GatewayOptionalAddressValue": _t("GatewayAddressEmpty", provisional=True),
    "GatewayStaticAddresses": _t("GatewayStaticAddresses"),
    "GatewayTLSBackendClientCertificate": _t("GatewayBackendClientCertificate", "BackendTLSPolicy"),
    "GatewayWithAttachedRoutesWithPort8080": _t("GatewayPort8080"),
    "HTTPRoute303Redirect": _t("HTTPRoute303RedirectStatusCode", provisional=True),
    "HTTPRoute307Redirect": _t("HTTPRoute307RedirectStatusCode", provisional=True),
    "HTTPRoute308Redirect": _t("HTTPRoute308RedirectStatusCode", provisional=True),
    "HTTPRouteBackendProtocolH2C": _t("HTTPRouteBackendProtocolH2C"),
    "HTTPRouteBackendProtocolWebSocket": _t("HTTPRouteBackendProtocolWebSocket"),
    "HTTPRouteBackendRequestHeaderModifier": _t("HTTPRouteBackendRequestHeaderModification"),
    "HTTPRouteCORS": _t("HTTPRouteCORS"),
    "HTTPRouteHTTPSListenerDetectMisdirectedRequests": _t(
        "GatewayHTTPSListenerDetectMisdirectedRequests"
    ),
    "HTTPRouteInvalidParentRefNotMatchingListenerPort": _t("HTTPRouteDestinationPortMatching"),
    "HTTPRouteInvalidParentRefSectionNameNotMatchingPort": _t("HTTPRouteParentRefPort"),
    "HTTPRouteListenerPortMatching": _t("HTTPRouteParentRefPort"),
    "HTTPRouteMethodMatching": _t("HTTPRouteMethodMatching"),
    "HTTPRouteNamedRule": _t("HTTPRouteNamedRouteRule", provisional=True),
    "HTTPRouteQueryParamMatching": _t("HTTPRouteQueryParamMatching"),
    "HTTPRouteRedirectPath": _t("HTTPRoutePathRedirect"),
    "HTTPRouteRedirectPort": _t("HTTPRoutePortRedirect"),
    "HTTPRouteRedirectPortAndScheme": _t("HTTPRoutePortRedirect", "GatewayPort8080"),
    "HTTPRouteRedirectScheme": _t("HTTPRouteSchemeRedirect"),
    "HTTPRouteRequestHeaderModifierBackendWeights": _t("HTTPRouteBackendRequestHeaderModification"),
    "HTTPRouteRequestMirror": _t("HTTPRouteRequestMirror"),
    "HTTPRouteRequestMultipleMirrors": _t(
        "HTTPRouteRequestMirror", "HTTPRouteRequestMultipleMirrors"
    ),
    "HTTPRouteRequestPercentageMirror": _t("HTTPRouteRequestPercentageMirror", provisional=True),
    "HTTPRouteResponseHeaderModifier": _t("HTTPRouteResponseHeaderModification"),
    "HTTPRouteRetry": _t("HTTPRouteRetry"),
    "HTTPRouteRewriteHost": _t("HTTPRouteHostRewrite"),
    "HTTPRouteRewritePath": _t("HTTPRoutePathRewrite"),
    "HTTPRouteTimeoutBackendRequest": _t("HTTPRouteBackendTimeout"),
    "HTTPRouteTimeoutRequest": _t("HTTPRouteRequestTimeout"),
    "ListenerSetAllowedNamespaceNone": _t("ListenerSet"),
    "ListenerSetAllowedNamespaceSame": _t("ListenerSet"),
    "ListenerSetAllowedNamespaceSelector": _t("ListenerSet"),
    "ListenerSetAllowedRoutesNamespaces": _t("ListenerSet"),
    "ListenerSetDefaultNotAllowed": _t("ListenerSet"),
    "ListenerSetDualParentRefIndependence": _t("ListenerSet"),
    "ListenerSetGatewayParentSectionNameNotFound": _t("ListenerSet"),
    "ListenerSetHTTPRouting": _t("ListenerSet"),
    "ListenerSetHostnameConflict": _t("ListenerSet"),
    "ListenerSetProtocolConflict": _t("ListenerSet"),
    "ListenerSetReferenceGrant": _t("ListenerSet"),
    "ListenerSetRouteStatusScopedToParentRef": _t("ListenerSet"),
}


def outcomes_by_test(
    outcomes: Mapping[str, str], cases: Iterable[GatewayCase] = CASES
) -> dict[str, str]:
    """Upstream test -> outcome, from case name -> outcome (a test of several steps passed
    when each step passed, failed when one failed; a step without an outcome makes the test
    skipped unless one failed)."""
    steps: dict[str, list[str | None]] = {}
    for case in cases:
        steps.setdefault(case.upstream, []).append(outcomes.get(case.name))
    out: dict[str, str] = {}
    for test, results in steps.items():
        if Outcome.FAILED in results:
            out[test] = Outcome.FAILED
        elif all(r == Outcome.PASSED for r in results):
            out[test] = Outcome.PASSED
        elif any(r is not None for r in results):
            out[test] = Outcome.SKIPPED
    return out


def _status(passed: int, failed: int, skipped: int) -> dict[str, Any]:
    result = "failure" if failed else "partial" if skipped else "success"
    return {
        "result": result,
        "statistics": {"Passed": passed, "Failed": failed, "Skipped": skipped},
    }


def _summary(status: Mapping[str, Any]) -> str:
    stats = status["statistics"]
    return {
        "success": "succeeded",
        "partial": f"partially succeeded with {stats['Skipped']} test skips",
        "failure": f"failed with {stats['Failed']} test failures",
    }[status["result"]]


def implementation(url: str = "", contact: Iterable[str] = ()) -> dict[str, Any]:
    """The ``implementation`` block: polyingress, its installed version; ``url`` and ``contact``
    as given, else from the package's metadata (Project-URL, Author-email), else empty."""
    try:
        meta = importlib.metadata.metadata("polyingress")
        version = importlib.metadata.version("polyingress")
    except importlib.metadata.PackageNotFoundError:
        meta, version = None, ""
    if not url and meta is not None:
        urls = [u.split(",", 1)[-1].strip() for u in meta.get_all("Project-URL") or ()]
        url = urls[0] if urls else str(meta["Home-page"] or "")
    contacts = list(contact)
    if not contacts and meta is not None:
        contacts = [str(meta[k]) for k in ("Author-email", "Maintainer-email") if meta[k]]
    return {
        "organization": "polyingress",
        "project": "polyingress",
        "url": url,
        "version": version,
        "contact": contacts,
    }


def conformance_report(
    outcomes: Mapping[str, str],
    features: Iterable[str],
    *,
    impl: Mapping[str, Any] | None = None,
    date: str | None = None,
    mode: str = "default",
    cases: Iterable[GatewayCase] = CASES,
) -> dict[str, Any]:
    """The ConformanceReport of one backend: ``outcomes`` maps case names to
    :class:`Outcome` values, ``features`` are the Gateway API features the backend declares
    (``BackendInfo.gateway_features``; the core's Gateway and ReferenceGrant are added)."""
    supported = frozenset(features) | (CORE_FEATURES - {"HTTPRoute"})
    by_test = outcomes_by_test(outcomes, cases)
    core: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}
    extended: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}
    provisional_passed: list[str] = []
    for test, (needs, provisional) in sorted(UPSTREAM_TESTS.items()):
        if not needs <= supported:
            continue  # not supported: not counted
        result = by_test.get(test, Outcome.SKIPPED)
        (extended if needs else core)[result].append(test)
        if provisional and result == Outcome.PASSED:
            provisional_passed.append(test)
    profile: dict[str, Any] = {"name": PROFILE, "core": _status(*_counts(core))}
    _lists(profile["core"], core)
    summary = f"Core tests {_summary(profile['core'])}"
    if any(extended.values()):
        ext = _status(*_counts(extended))
        _lists(ext, extended)
        ext["supportedFeatures"] = sorted(PROFILE_EXTENDED_FEATURES & supported)
        ext["unsupportedFeatures"] = sorted(PROFILE_EXTENDED_FEATURES - supported)
        profile["extended"] = ext
        summary += f". Extended tests {_summary(ext)}"
    profile["summary"] = summary + "."
    report: dict[str, Any] = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "ConformanceReport",
        "implementation": dict(impl) if impl is not None else implementation(),
        "date": date or datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
        "gatewayAPIVersion": GATEWAY_API_VERSION,
        "gatewayAPIChannel": "standard",
        "mode": mode,
        "profiles": [profile],
    }
    if provisional_passed:
        report["succeededProvisionalTests"] = provisional_passed
    return report


def _counts(tests: Mapping[str, list[str]]) -> tuple[int, int, int]:
    return len(tests["passed"]), len(tests["failed"]), len(tests["skipped"])


def _lists(status: dict[str, Any], tests: Mapping[str, list[str]]) -> None:
    if tests["skipped"]:
        status["skippedTests"] = list(tests["skipped"])
    if tests["failed"]:
        status["failedTests"] = list(tests["failed"])


def report_yaml(report: Mapping[str, Any]) -> str:
    """The report as YAML, keys sorted as upstream's reports are written."""
    return yaml.safe_dump(dict(report), sort_keys=True, default_flow_style=False)
