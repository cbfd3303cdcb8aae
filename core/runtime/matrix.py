"""The Gateway API feature matrix of the installed backends, as the README shows it.

``python -m polyingress.core.runtime.matrix [BACKEND ...]`` prints a Markdown table: one row per
feature of the GATEWAY-HTTP profile, one column per backend, from what each backend declares
(``BackendInfo.gateway_features``) — the same declaration the core acts on, so the README
(regenerated from it, and compared with it by a test) cannot drift from what runs.
"""

from __future__ import annotations

import sys

from polyingress.core.pipeline.gateway import served_features
from polyingress.core.runtime.plugins import discover, load_backend, plugin_manager

__all__ = ["EXTENDED", "features_of", "matrix"]

# The HTTPRoute extended features of Gateway API v1.6.1 (pkg/features/httproute.go), in order.
EXTENDED = (
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect",
    "HTTPRouteSchemeRedirect",
    "HTTPRoutePathRedirect",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteBackendTimeout",
    "HTTPRouteParentRefPort",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteCORS",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteRetry",
)


def features_of(backend: str) -> frozenset[str]:
    _path, obj = load_backend(backend)
    info = plugin_manager((backend, obj)).hook.polyingress_backend_info()
    return served_features(info.gateway_features) if info is not None else frozenset()


def matrix(backends: list[str]) -> str:
    declared = {b: features_of(b) for b in backends}
    head = "| feature | " + " | ".join(backends) + " |"
    rule = "|---|" + "---|" * len(backends)
    rows = [head, rule]
    core = " | ".join("core" if "HTTPRoute" in declared[b] else "no" for b in backends)
    rows.append(f"| HTTPRoute (core) | {core} |")
    for feature in EXTENDED:
        cells = " | ".join("yes" if feature in declared[b] else "—" for b in backends)
        rows.append(f"| {feature} | {cells} |")
    counts = " | ".join(
        f"{sum(f in declared[b] for f in EXTENDED)}/{len(EXTENDED)}" for b in backends
    )
    rows.append(f"| extended features | {counts} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    sys.stdout.write(matrix(args or sorted(discover())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
