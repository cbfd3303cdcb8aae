"""The Gateway API conformance cases of the kit (polyingress.testing.gateway_live) live on Caddy:
one controller, one case loaded at a time, every core case and every extended one the backend
declares (BackendInfo.gateway_features); a case needing an undeclared feature is skipped with
that reason, as upstream's suite skips unsupported features. The report of a run:

    pytest contrib/caddy/tests/test_caddy_gateway.py \
        --polyingress-gateway-report contrib/caddy/conformance-report.yaml
"""

from __future__ import annotations

import pytest
from caddykit import require_caddy

from polyingress.testing.gateway_live import *  # noqa: F403 (the whole suite)

pytestmark = pytest.mark.live


@pytest.fixture(scope="session")
def polyingress_backend() -> str:
    require_caddy()
    return "caddy"
