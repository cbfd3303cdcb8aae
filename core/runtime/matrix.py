"""The tables of what the installed backends declare, as the README shows them.

``python -m polyingress.core.runtime.matrix [BACKEND ...]`` prints the Gateway API feature
matrix: one row per feature of the GATEWAY-HTTP profile, one column per backend, from what each
backend declares (``BackendInfo.gateway_features``). ``... matrix --settings [BACKEND ...]``
prints the ConfigMap settings table: the core's allow-list with what each backend sets for each
key (``BackendInfo.settings``). ``... matrix --annotations [BACKEND ...]`` prints the
ingress-nginx annotation x backend table: whether each backend serves each annotation
polyingress reads (``supported``: ingress-nginx's behaviour; ``partial``: with the stated
difference; ``unsupported``), from the translation's stated support
(:data:`~polyingress.core.pipeline.translate.annotations.ANNOTATION_SUPPORT`) and the Gateway
API features it needs, held against what the backend declares. All are the declarations the
core acts on, so the README (regenerated from them, and compared with them by tests) cannot
drift from what runs.
"""

from __future__ import annotations

import sys

from polyingress.core.api import BackendInfo
from polyingress.core.pipeline.annotations import REGISTRY
from polyingress.core.pipeline.gateway import HTTPROUTE_EXTENDED, served_features
from polyingress.core.pipeline.settings import settings_table
from polyingress.core.pipeline.translate.annotations import ANNOTATION_SUPPORT, Support
from polyingress.core.runtime.plugins import discover, load_backend, plugin_manager

__all__ = [
    "EXTENDED",
    "annotation_matrix",
    "features_of",
    "info_of",
    "matrix",
    "settings_matrix",
]

EXTENDED = HTTPROUTE_EXTENDED


def info_of(backend: str) -> BackendInfo | None:
    """What an installed backend declares (its ``polyingress_backend_info``)."""
    _path, obj = load_backend(backend)
    info: BackendInfo | None = plugin_manager((backend, obj)).hook.polyingress_backend_info()
    return info


def features_of(backend: str) -> frozenset[str]:
    info = info_of(backend)
    return served_features(info.gateway_features) if info is not None else frozenset()


def settings_matrix(backends: list[str]) -> str:
    """The ConfigMap settings table (README, "Global settings")."""
    declared = {b: info_of(b) for b in backends}
    return settings_table((b, i.settings if i is not None else {}) for b, i in declared.items())


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
    """The annotation x backend table (README, "ingress-nginx annotations"); ``declared``: the
    backends' features, else read from the installed plugins."""
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
    tables = {"--settings": settings_matrix, "--annotations": annotation_matrix}
    table = tables.get(args[0], matrix) if args else matrix
    backends = [a for a in args if a not in tables]
    sys.stdout.write(table(backends or sorted(discover())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
