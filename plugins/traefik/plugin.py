"""The Traefik backend's hook implementations.

Managed mode: a ``traefik`` executable is on PATH (or named by ``--traefik-binary``); the
backend writes the static configuration to ``<workdir>/traefik.yml``, starts Traefik with it,
restarts it with backoff when it exits, and stops it with SIGTERM. External mode: no
executable; the backend only writes the dynamic configuration for a Traefik started elsewhere
with ``polyingress traefik static-config`` (ready once the file is written).

Traefik's file provider applies a rewritten file by itself, without a restart; every apply is a
whole-file rewrite, skipped when the text is unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from importlib import metadata
from pathlib import Path

from polyingress.core import (
    ApplyError,
    ApplyResult,
    BackendInfo,
    HealthReport,
    ModelDiff,
    RenderedConfig,
    RouteModel,
    RunSettings,
    fallback_certificate,
    hookimpl,
    write_atomic,
)

from .apply import Layout, WriteResult, write_config
from .render import WEB, WEBSECURE, RenderSettings, TraefikConfig, dump_yaml, render

__all__ = ["TraefikBackend", "static_config"]

log = logging.getLogger(__name__)

NAME = "traefik"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 20.0  # Traefik's default entry point graceTimeOut is 10s
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0
KEY_PLACEHOLDER = "<private key: written to the workdir, not shown>\n"


def _address(bind: str, port: int) -> str:
    return f"[{bind}]:{port}" if ":" in bind else f"{bind}:{port}"


def static_config(http_port: int, https_port: int, workdir: Path | str, bind: str = "0.0.0.0") -> str:
    """Traefik's static configuration: entry points ``web``/``websecure``, the file provider
    watching ``<workdir>/dynamic`` (the directory polyingress writes)."""
    layout = Layout(Path(os.path.abspath(workdir)))
    config = {
        "entryPoints": {
            WEB: {"address": _address(bind, http_port)},
            WEBSECURE: {"address": _address(bind, https_port)},
        },
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "log": {"level": "INFO"},
        "providers": {"file": {"directory": str(layout.dynamic_dir), "watch": True}},
    }
    return "# Traefik static configuration for polyingress (traefik --configFile=...)\n" + dump_yaml(
        config
    )


class TraefikBackend:
    """One run's state. Lifecycle hooks run on one thread; ``health`` only reads ``_health``."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.layout = Layout(Path(os.path.abspath(settings.workdir)))
        options = settings.options
        given = getattr(options, "traefik_binary", None)
        self.binary_given = given is not None
        self.binary: str | None = given if given is not None else shutil.which("traefik")
        redirect_port = getattr(options, "traefik_https_redirect_port", None)
        self.render_settings = RenderSettings(
            cert_dir=str(self.layout.cert_dir),
            https_port=redirect_port if redirect_port is not None else settings.https_port,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.backoff = BACKOFF_FIRST
        self.next_restart = 0.0
        self.restarts = 0
        self.written_stat: tuple[int, int, int] | None = None
        self._health = HealthReport(live=True, ready=False, detail="not started")

    @property
    def managed(self) -> bool:
        return self.binary is not None

    def render(self, model: RouteModel) -> TraefikConfig:
        return render(model, self.render_settings, fallback_certificate())

    def write(self, model: RouteModel) -> WriteResult:
        try:
            result = write_config(self.layout, self.render(model))
            st = self.layout.config_path.stat()
        except (OSError, ValueError) as exc:
            raise ApplyError(f"traefik: writing {self.layout.config_path} failed: {exc}") from exc
        self.written_stat = (st.st_ino, st.st_size, st.st_mtime_ns)
        if result.config_written:
            log.info(
                "traefik: wrote %s (%d secret files written, %d removed)",
                self.layout.config_path,
                len(result.files_written),
                len(result.files_removed),
            )
        return result

    def set_health(self, live: bool, ready: bool, detail: str) -> None:
        self._health = HealthReport(live=live, ready=ready, detail=detail)

    def health(self) -> HealthReport:
        return self._health

    def spawn(self) -> None:
        assert self.binary is not None
        static = static_config(
            self.settings.http_port,
            self.settings.https_port,
            self.layout.workdir,
            self.settings.bind,
        )
        write_atomic(self.layout.static_path, static)
        try:
            self.proc = subprocess.Popen(
                [self.binary, f"--configFile={self.layout.static_path}"],
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # our stop() decides how Traefik is signalled
            )
        except OSError as exc:
            raise ApplyError(f"traefik: cannot start {self.binary}: {exc}") from exc
        self.started_at = time.monotonic()
        log.info("traefik: started %s (pid %d)", self.binary, self.proc.pid)

    def wait_listening(self) -> None:
        """Until the HTTP entry point accepts connections, or Traefik exits, or time is up."""
        assert self.proc is not None
        host = self.settings.bind
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise ApplyError(f"traefik exited with code {code} while starting")
            with contextlib.suppress(OSError):
                socket.create_connection((host, self.settings.http_port), timeout=0.5).close()
                return
            time.sleep(0.1)
        raise ApplyError(
            f"traefik did not listen on {host}:{self.settings.http_port} within {START_TIMEOUT}s"
        )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("traefik: pid %d ignored SIGTERM for %ss; killing", proc.pid, STOP_TIMEOUT)
            proc.kill()
            proc.wait()


def _version() -> str:
    try:
        return metadata.version("polyingress")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@hookimpl
def polyingress_add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("traefik backend")
    group.add_argument(
        "--traefik-binary",
        metavar="PATH",
        default=None,
        help="Traefik v3 executable to start and supervise (default: 'traefik' on PATH; "
        "without one, only the configuration is written: external mode)",
    )
    group.add_argument(
        "--traefik-https-redirect-port",
        metavar="PORT",
        type=int,
        default=None,
        help="port in the Location of HTTP to HTTPS redirects (default: --https-port; "
        "443 is left out of the URL)",
    )


@hookimpl
def polyingress_backend_info() -> BackendInfo:
    found = shutil.which("traefik")
    return BackendInfo(
        name=NAME,
        version=_version(),
        description="Traefik v3 through its file provider (dynamic configuration, no restart)",
        features=(
            "file-provider: whole-file atomic rewrite, skipped when unchanged",
            "runtime-endpoints: no (endpoint changes rewrite the file; Traefik applies it live)",
            f"binary: {found}" if found else "binary: not on PATH (external mode)",
        ),
    )


@hookimpl
def polyingress_create_backend(settings: RunSettings) -> TraefikBackend:
    return TraefikBackend(settings)


@hookimpl
def polyingress_start(backend: TraefikBackend, model: RouteModel) -> ApplyResult:
    if backend.binary_given and not (
        backend.binary is not None and os.access(backend.binary, os.X_OK)
    ):
        raise ApplyError(f"traefik: --traefik-binary {backend.binary} is not an executable")
    backend.write(model)
    if not backend.managed:
        backend.set_health(
            True,
            True,
            f"external mode: configuration written to {backend.layout.config_path}",
        )
        return ApplyResult(reloaded=False, reasons=("external mode: initial configuration",))
    backend.spawn()
    try:
        backend.wait_listening()
    except ApplyError:
        backend.stop()
        raise
    backend.set_health(True, True, f"traefik running (pid {backend.proc.pid if backend.proc else '?'})")
    return ApplyResult(reloaded=True, reasons=("traefik started with the initial configuration",))


@hookimpl
def polyingress_apply(
    backend: TraefikBackend, model: RouteModel, previous: RouteModel, diff: ModelDiff
) -> ApplyResult:
    result = backend.write(model)
    if not result.config_written:
        return ApplyResult(
            reloaded=False, reasons=(f"rendered configuration unchanged ({diff.summary()})",)
        )
    return ApplyResult(
        reloaded=True,
        reasons=(f"configuration file rewritten, Traefik reloads it ({diff.summary()})",),
    )


def _config_intact(backend: TraefikBackend) -> bool:
    try:
        st = backend.layout.config_path.stat()
    except FileNotFoundError:
        return False
    return backend.written_stat == (st.st_ino, st.st_size, st.st_mtime_ns)


@hookimpl
def polyingress_supervise(backend: TraefikBackend, model: RouteModel) -> str | None:
    repaired: list[str] = []
    if not _config_intact(backend):
        backend.write(model)
        repaired.append(f"{backend.layout.config_path} was changed or removed; rewritten")
    proc = backend.proc
    if not backend.managed or proc is None:
        return "; ".join(repaired) or None
    now = time.monotonic()
    code = proc.poll()
    if code is None:
        if now - backend.started_at >= STABLE_AFTER:
            backend.backoff = BACKOFF_FIRST
        return "; ".join(repaired) or None
    if now < backend.next_restart:
        wait = backend.next_restart - now
        backend.set_health(False, False, f"traefik exited with code {code}; restart in {wait:.0f}s")
        return "; ".join(repaired) or None
    backend.spawn()
    backend.restarts += 1
    backend.next_restart = now + backend.backoff
    backend.backoff = min(backend.backoff * 2, BACKOFF_MAX)
    pid = backend.proc.pid if backend.proc else "?"
    backend.set_health(True, True, f"traefik running (pid {pid}, {backend.restarts} restarts)")
    repaired.append(f"traefik exited with code {code}; restarted")
    return "; ".join(repaired)


@hookimpl
def polyingress_health(backend: TraefikBackend) -> HealthReport:
    return backend.health()


@hookimpl
def polyingress_stop(backend: TraefikBackend) -> None:
    backend.stop()
    backend.set_health(False, False, "stopped")


@hookimpl
def polyingress_render(settings: RunSettings, model: RouteModel) -> RenderedConfig:
    backend = TraefikBackend(settings)
    rendered = backend.render(model)
    files = [
        (
            "traefik.yml",
            static_config(settings.http_port, settings.https_port, backend.layout.workdir, settings.bind),
        ),
        (f"dynamic/{backend.layout.config_path.name}", rendered.text),
    ]
    files.extend(
        (f"certs/{f.name}", KEY_PLACEHOLDER if f.is_key else f.data) for f in rendered.files
    )
    return RenderedConfig(files=tuple(files))
