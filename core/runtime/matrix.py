"""The Gateway API feature matrix and the ingress-nginx annotation matrix of the installed
backends, as the README shows them.

``python -m polyingress.core.runtime.matrix [BACKEND ...]`` prints a Markdown table: one row per
feature of the GATEWAY-HTTP profile, one column per backend, from what each backend declares
(``BackendInfo.gateway_features``) — the same declaration the core acts on, so the README
(regenerated from it, and compared with it by a test) cannot drift from what runs.

``python -m polyingress.core.runtime.matrix --annotations [BACKEND ...]`` prints the
annotation x backend table: for each ingress-nginx annotation polyingress reads, whether each
backend serves it (``supported``: ingress-nginx's behaviour; ``partial``: with the stated
difference; ``unsupported``), from the translation's stated support
(:data:`~polyingress.core.pipeline.translate.annotations.ANNOTATION_SUPPORT`) and the Gateway
API features it needs, held against what the backend declares.
"""

from __future__ import annotations

import sys

from polyingress.core.pipeline.annotations import REGISTRY
from polyingress.core.pipeline.gateway import served_features
from polyingress.core.pipeline.translate.annotations import ANNOTATION_SUPPORT, Support
from polyingress.core.runtime.plugins import discover, load_backend, plugin_manager

__all__ = ["EXTENDED", "annotation_matrix", "features_of", "matrix"]

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


def annotation_cell(name: str, features: frozenset[str]) -> str:
    """What a backend serving ``features`` does with annotation ``name``."""
    support, needs, _note = ANNOTATION_SUPPORT[name]
    if support is Support.UNSUPPORTED or not needs <= features:
        return "unsupported"
    return "supported" if support is Support.HONOURED else "partial"


def annotation_matrix(
    backends: list[str], declared: dict[str, frozenset[str]] | None = None
) -> str:
    """The annotation x backend table (``declared``: the backends' features, else read from
    the installed plugins)."""
    served = declared if declared is not None else {b: features_of(b) for b in backends}
    head = (
        "| `nginx.ingress.kubernetes.io/` | "
        + " | ".join(backends)
        + " | Gateway API features needed | difference, or why unsupported |"
    )
    rows = [head, "|---|" + "---|" * len(backends) + "---|---|"]
    for name in REGISTRY:
        _support, needs, note = ANNOTATION_SUPPORT[name]
        cells = " | ".join(annotation_cell(name, served[b]) for b in backends)
        wanted = ", ".join(sorted(needs))
        note = note.replace("|", "\\|")
        rows.append(f"| {name} | {cells} | {wanted} | {note} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--annotations":
        sys.stdout.write(annotation_matrix(args[1:] or sorted(discover())))
        return 0
    sys.stdout.write(matrix(args or sorted(discover())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
