"""The README's Gateway API feature matrix is what the backends declare (regenerate it with
``python -m polyingress.core.runtime.matrix nginx haproxy traefik caddy``; Caddy is the
third-party backend of contrib/caddy: without it installed the test is skipped, under CI=true it
fails)."""

from __future__ import annotations

import re
from pathlib import Path

from livekit import needs

from polyingress.core.runtime.matrix import matrix

README = Path(__file__).parent.parent / "README.md"


@needs("caddy")
def test_readme_matrix_is_generated_from_the_declarations() -> None:
    text = README.read_text()
    block = r"<!-- gateway-matrix:begin -->\n(.*?)<!-- gateway-matrix:end -->"
    found = re.search(block, text, re.S)
    assert found is not None, "README lost its gateway-matrix block"
    assert found.group(1) == matrix(["nginx", "haproxy", "traefik", "caddy"]), (
        "regenerate: python -m polyingress.core.runtime.matrix nginx haproxy traefik caddy"
    )
