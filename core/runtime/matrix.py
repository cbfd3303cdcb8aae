"""The tables of what the installed backends declare, as the README shows them.

``python -m polyingress.core.runtime.matrix [BACKEND ...]`` prints the Gateway API feature
matrix: one row per feature of the GATEWAY-HTTP profile, one column per backend, from what each
backend declares (``BackendInfo.gateway_features``). ``... matrix --settings [BACKEND ...]``
prints the ConfigMap settings table: the core's allow-list with what each backend sets for each
key (``BackendInfo.settings``). Both are the declarations the core acts on, so the README
(regenerated from them, and compared with them by tests) cannot drift from what runs.
"""

from __future__ import annotations

import sys

from polyingress.core.api import BackendInfo
from polyingress.core.pipeline.gateway import HTTPROUTE_EXTENDED, served_features
from polyingress.core.pipeline.settings import settings_table
from polyingress.core.runtime.plugins import discover, load_backend, plugin_manager

__all__ = ["EXTENDED", "features_of", "info_of", "matrix", "settings_matrix"]

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


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    table = settings_matrix if args[:1] == ["--settings"] else matrix
    backends = [a for a in args if a != "--settings"]
    sys.stdout.write(table(backends or sorted(discover())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
