"""The ingress-nginx annotation cases (polyingress.testing.annotation_live) live on the
built-in backends: nginx, HAProxy and Traefik, one controller each, one case loaded at a time.
A case is skipped, naming the features, on a backend that does not declare the Gateway API
features its annotations need."""

from __future__ import annotations

import pytest
from livekit import backend_param

from polyingress.testing.annotation_live import *  # noqa: F403 (the whole suite)

pytestmark = pytest.mark.live


@pytest.fixture(scope="module", params=[backend_param(n) for n in ("nginx", "haproxy", "traefik")])
def polyingress_backend(request: pytest.FixtureRequest) -> str:
    """The conformance kit's backend, once per built-in backend."""
    return str(request.param)
