"""The conformance suite (polyingress.testing.conformance) on the built-in backends, and the
live routing properties only the built-in backends promise.

Every test of the conformance kit runs here once per backend (nginx, HAProxy, Traefik); a
third-party backend runs the same tests with ``pytest -p polyingress.testing
--polyingress-backend NAME``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from livekit import backend_param, wait_until

from polyingress.core import redirect_status
from polyingress.testing.cases import TLS_HOST
from polyingress.testing.conformance import *  # noqa: F403 (the whole suite)
from polyingress.testing.conformance import LiveWorld

pytestmark = pytest.mark.live


@pytest.fixture(scope="module", params=[backend_param(n) for n in ("nginx", "haproxy", "traefik")])
def polyingress_backend(request: pytest.FixtureRequest) -> str:
    """The conformance kit's backend, once per built-in backend."""
    return str(request.param)


def test_redirect_differences_are_the_documented_ones(live_world: LiveWorld) -> None:
    """What the proxies cannot do alike (README, semantics table): nginx's Location carries the
    request target as sent, HAProxy's and Traefik's the normalized path (the HTTPS request that
    follows is normalized alike); nginx's request parser refuses a lowercase method with 400,
    HAProxy and Traefik redirect it like any method other than GET."""
    nginx = live_world.controller.backend == "nginx"
    resp = live_world.get(TLS_HOST, "/x/../y?q=/../z")
    assert resp.status == 301
    live_world.check_redirect(resp, TLS_HOST, "/x/../y?q=/../z" if nginx else "/y?q=/../z")
    assert live_world.get(TLS_HOST, "/x", method="get").status == (400 if nginx else 308)


def _process_state(pid: int) -> str:
    """The state letter of /proc/<pid>/stat ("T": stopped by a signal)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_redirect_is_answered_by_the_proxy_without_the_controller(live_world: LiveWorld) -> None:
    """A plain-HTTP request to an ssl-redirect host never depends on the controller process:
    with the controller stopped (SIGSTOP; the proxy runs in a session of its own and keeps
    running), the proxy alone still answers the redirect."""
    proc = live_world.controller.proc
    assert proc is not None and proc.poll() is None
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: _process_state(proc.pid) == "T", timeout=5, interval=0.01)
        for method, body in (("GET", None), ("HEAD", None), ("POST", b"x" * 100)):
            resp = live_world.get(TLS_HOST, "/p?q=1", method=method, body=body, timeout=5)
            assert resp.status == redirect_status(method), method
            live_world.check_redirect(resp, TLS_HOST, "/p?q=1")
        assert live_world.get(TLS_HOST, "/x", scheme="https").server_name == "svc-tls-1"
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    wait_until(lambda: live_world.controller.health("/readyz")[0] == 200)
