"""The Gateway API conformance cases (polyingress.testing.gateway_live) live on the built-in
backends: nginx, HAProxy and Traefik, one controller each, one case loaded at a time."""

from __future__ import annotations

import pytest
from livekit import backend_param

from polyingress.testing.gateway_live import *  # noqa: F403 (the whole suite)

pytestmark = pytest.mark.live


@pytest.fixture(scope="module", params=[backend_param(n) for n in ("nginx", "haproxy", "traefik")])
def polyingress_backend(request: pytest.FixtureRequest) -> str:
    """The conformance kit's backend, once per built-in backend."""
    return str(request.param)
