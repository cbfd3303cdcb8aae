"""The ingress-nginx annotation cases of the kit (polyingress.testing.annotation_live) live on
Caddy: one controller, one case loaded at a time. A case whose annotations need a Gateway API
feature Caddy does not declare is skipped naming it (the core answers those paths 500 and
reports the annotation, as on every backend)."""

from __future__ import annotations

import pytest
from caddykit import require_caddy

from polyingress.testing.annotation_live import *  # noqa: F403 (the whole suite)

pytestmark = pytest.mark.live


@pytest.fixture(scope="session")
def polyingress_backend() -> str:
    require_caddy()
    return "caddy"
