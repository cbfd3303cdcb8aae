"""The example backend passes polyingress's conformance suite: the shared routing cases, live,
which the built-in nginx, HAProxy and Traefik backends pass too.

    pip install polyingress[test] ./examples/example-backend
    pytest examples/example-backend/tests

(or, without this file: ``pytest -p polyingress.testing --polyingress-backend example``).
"""

from __future__ import annotations

import pytest

from polyingress.testing.conformance import *  # noqa: F403 (the whole suite)


@pytest.fixture(scope="session")
def polyingress_backend() -> str:
    return "example"
