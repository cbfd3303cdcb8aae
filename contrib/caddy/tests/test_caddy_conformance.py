"""The Caddy backend passes polyingress's conformance suite, live, with no exception: every
shared routing case, the request-path rule, the redirect, the fallback certificate, the
forwarded headers, manifest changes while running (the cases the built-in nginx, HAProxy and
Traefik backends pass).

    pip install polyingress[test] ./contrib/caddy
    pytest contrib/caddy/tests

(or, without this file: ``pytest -p polyingress.testing --polyingress-backend caddy``).
"""

from __future__ import annotations

import os
import signal

import pytest
from caddykit import require_caddy

from polyingress.core import redirect_status
from polyingress.testing.cases import TLS_HOST
from polyingress.testing.conformance import *  # noqa: F403 (the whole suite)
from polyingress.testing.conformance import LiveWorld
from polyingress.testing.live import wait_until


@pytest.fixture(scope="session")
def polyingress_backend() -> str:
    require_caddy()
    return "caddy"


# ---- where the proxies may differ (the README's semantics section), as Caddy does it


def test_the_redirect_carries_the_normalized_path_and_any_other_method_gets_308(
    live_world: LiveWorld,
) -> None:
    """Like HAProxy and Traefik: the Location holds the normalized path (the request-path rule
    runs first) and a lowercase method is a method other than GET; like Traefik, the host is
    kept as the client wrote it."""
    resp = live_world.get(TLS_HOST.upper(), "/x/../y?q=/../z")
    assert resp.status == 301
    port = live_world.controller.https_port
    assert resp.headers["location"] == f"https://{TLS_HOST.upper()}:{port}/y?q=/../z"
    assert live_world.get(TLS_HOST, "/x", method="get").status == 308


def test_the_redirect_is_answered_by_caddy_without_the_controller(live_world: LiveWorld) -> None:
    """With the controller stopped (SIGSTOP), Caddy alone still answers everything."""
    proc = live_world.controller.proc
    assert proc is not None and proc.poll() is None
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        for method in ("GET", "HEAD", "POST"):
            resp = live_world.get(TLS_HOST, "/p?q=1", method=method, timeout=5)
            assert resp.status == redirect_status(method), method
            live_world.check_redirect(resp, TLS_HOST, "/p?q=1")
        assert live_world.get(TLS_HOST, "/x", scheme="https").server_name == "svc-tls-1"
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    wait_until(lambda: live_world.controller.health("/readyz")[0] == 200)
