"""The README's annotation matrix is what the core states and the backends declare
(regenerate it with ``python -m polyingress.core.runtime.matrix --annotations nginx haproxy
traefik``); the cells follow the features a backend declares."""

from __future__ import annotations

import re
from pathlib import Path

from polyingress.core.runtime.matrix import annotation_matrix

README = Path(__file__).parent.parent / "README.md"


def test_readme_annotation_matrix_is_generated() -> None:
    text = README.read_text()
    block = r"<!-- annotations-matrix:begin -->\n(.*?)<!-- annotations-matrix:end -->"
    found = re.search(block, text, re.S)
    assert found is not None, "README lost its annotations-matrix block"
    assert found.group(1) == annotation_matrix(["nginx", "haproxy", "traefik"]), (
        "regenerate: python -m polyingress.core.runtime.matrix --annotations nginx haproxy traefik"
    )


def _cells(table: str, name: str) -> list[str]:
    row = next(r for r in table.splitlines() if r.startswith(f"| {name} |"))
    return [c.strip() for c in row.strip("|").split("|")][1:3]


def test_cells_follow_the_declared_features() -> None:
    declared = {
        "none": frozenset[str](),
        "rich": frozenset({"HTTPRoute", "HTTPRoutePathRewrite", "HTTPRouteHostRewrite"}),
    }
    table = annotation_matrix(["none", "rich"], declared)
    assert _cells(table, "rewrite-target") == ["unsupported", "partial"]
    assert _cells(table, "upstream-vhost") == ["unsupported", "supported"]
    assert _cells(table, "canary-weight") == ["unsupported", "supported"]
    assert _cells(table, "server-alias") == ["supported", "supported"]
    assert _cells(table, "enable-cors") == ["unsupported", "unsupported"]
    assert _cells(table, "app-root") == ["unsupported", "unsupported"]
    # A '|' of a note cannot break the table: every row has the header's cells.
    widths = {len(re.split(r"(?<!\\)\|", r)) for r in table.splitlines()}
    assert len(widths) == 1
