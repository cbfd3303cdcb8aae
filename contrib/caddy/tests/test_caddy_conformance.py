"""The Caddy backend passes polyingress's conformance suite, live, with no exception: every
shared routing case, the request-path rule, the redirect, the fallback certificate, the
forwarded headers, manifest changes while running (the cases the built-in nginx, HAProxy and
Traefik backends pass).

    pip install polyingress[test] ./contrib/caddy
    pytest contrib/caddy/tests

(or, without this file: ``pytest -p polyingress.testing --polyingress-backend caddy``).
"""

from __future__ import annotations

import pytest
from caddykit import require_caddy

from polyingress.testing.conformance import *  # noqa: F403 (the whole suite)


@pytest.fixture(scope="session")
def polyingress_backend() -> str:
    require_caddy()
    return "caddy"
