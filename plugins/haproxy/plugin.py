"""The HAProxy backend's hook implementations: every routine change through the Runtime API.

``run`` starts HAProxy 2.6+ in master-worker mode in the workdir (process.py), applies each new
model at run time (apply.py) and reloads only when it must, naming why. Once a second the
supervisor restarts a dead HAProxy with backoff (on the current model), replays the model onto
a worker it did not start (an external reload, a respawn), deletes drained servers, and every
``CHECK_INTERVAL`` reads back everything HAProxy holds and repairs any difference.

Gateway API (``GATEWAY_FEATURES``): HTTPRoute rows are routes-map data read by one interpreter
in the configuration (rows.py explains the entries), so routine HTTPRoute changes never reload:
routes, hosts, paths, rules, Services, the *values* a rule compares (method, header and query
values), header filter values, redirects, rewrites, 500 rules, timeouts, and split weights (set
on the split's servers). What reloads, and why:

* a header or query-parameter *name* (or a combination of names) in a condition, or a header
  name in a filter, that the running configuration does not read yet: HAProxy 2.6 fetches a
  header (``req.fhdr``) or sets one (``set-header``) only by a name written in haproxy.cfg.
  Once read, a name stays until the process restarts, so it reloads once
  (``runtime_unsupported``);
* a ``ReplacePrefixMatch`` prefix of more segments, or a wildcard host of more labels, than the
  configuration's bounds (16 and 8, or what the model needed at the last reload), and more new
  Services and splits than spare backends (``runtime_capacity``);
* as for Ingresses: global settings, a refused runtime change, a certificate too large for one
  command.

Request mirrors are a Lua action (lua/mirror.lua, written to the workdir and loaded with
``lua-load``): HAProxy 2.6 has no native mirror, its Lua HTTP client sends the copy from a task
of its own. So the backend needs an HAProxy built with Lua (Debian's, Ubuntu's and the official
images are); ``start`` says so plainly when it is not.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import logging
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from polyingress.core import (
    ApplyError,
    ApplyResult,
    BackendInfo,
    Certificate,
    FileGuard,
    HealthReport,
    ModelDiff,
    ReloadReason,
    RenderedConfig,
    RenderedFile,
    RouteModel,
    RunSettings,
    backend_plugin,
    fallback_certificate,
    non_negative_int,
    non_negative_number,
)

from .apply import RELOAD_DRIFT, SECRET_MODE, Applier, ApplyOptions, DriftError
from .metrics import APPLY_SECONDS, RESTARTS
from .process import HAProxyProcess, StartFailed
from .render import (
    CONFIG_FILE,
    CRT_LIST,
    FALLBACK_PEM,
    MIRROR_LUA,
    ROUTES_MAP,
    SETTINGS,
    RenderSettings,
    SlotTable,
    cert_file,
    mirror_lua,
    pem_bundle,
    render,
    source_file,
)
from .rows import wanted_names
from .runtime import CommandRejected, RuntimeApiError

__all__ = ["HAProxyBackend", "HAProxyUnavailable", "hooks"]

log = logging.getLogger(__name__)

NAME = "haproxy"
# The Gateway API features served (upstream names), each proven by the live cases
# (tests/test_gateway_live.py, tests/test_haproxy_gateway.py). Mirrors need HAProxy's Lua
# (lua/mirror.lua; every HAProxy of Debian, Ubuntu and the official images has it).
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
    # Mirror shares: a counter per row and mirror in lua/mirror.lua, any fraction.
    "HTTPRouteRequestPercentageMirror",
    "polyingress.io/MirrorFraction",
    "HTTPRouteRequestTimeout",
    "HTTPRouteBackendTimeout",
    # h2c: servers with `proto h2`; WebSocket: HAProxy passes upgrades in mode http.
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    # CORS: the allowed-Origin regexes are configuration (a new one reloads), the rest map data.
    "HTTPRouteCORS",
    # Filters on a backendRef of a split: the member sockets' frontend (rows.hop_members).
    "HTTPRouteBackendRequestHeaderModification",
    # backend-protocol HTTPS/GRPCS: TLS to the endpoints (polyingress capability, core BACKEND_TLS)
    "polyingress.io/BackendProtocolTLS",
    # Annotation rows: canary-by-cookie (a row's cookie is one more value the key holds:
    # rows.py cookie_regex).
    "polyingress.io/CookieMatching",
    # canary-by-header-pattern: the regex is configuration (rows.py REGEX: a new one reloads
    # once; HAProxy 2.6 matches no regex taken from a map or variable), its rows map data.
    "polyingress.io/HeaderRegexMatching",
    # affinity: cookie (rows.py: the cookie's value is the key every slot hashes).
    "polyingress.io/SessionAffinity",
    # polyingress's request policies (core/pipeline/policy.py): source ranges are the source
    # map of the row's own slot (rows.sources_name), or record entries of the routes map for
    # a row with basic auth, mirrors or a 500 share; both changed through the Runtime API.
    "polyingress.io/SourceRanges",
    # ... and the body size: a record field (413 for a Content-Length above it).
    "polyingress.io/BodySize",
    # ... and basic authentication: userlists in the configuration (their changes reload).
    "polyingress.io/BasicAuth",
    # ... and rate limits: counters in three fixed stick tables, limits as record fields.
    "polyingress.io/RateLimit",
    # proxy-connect-timeout: a slot section with its own `timeout connect` (rows.connect_name;
    # a new value reloads once), HAProxy's 503 of a connection never accepted answering 504.
    "polyingress.io/BackendConnectTimeout",
    # (Named rules and listener isolation are the core's: served_features adds them.)
)
DEFAULT_SPARE_BACKENDS = 64
DEFAULT_DRAIN_TIMEOUT = 30.0
CHECK_INTERVAL = 10.0
# Files HAProxy reads at a reload: put back by the supervisor if something else damages them.
GUARDED_FILES = (CONFIG_FILE, ROUTES_MAP, CRT_LIST, FALLBACK_PEM, MIRROR_LUA)
# The periodic full read-back (every apply already reads back what it changed) waits for a
# quiet moment: at 10,000 Ingresses it takes about a second, and it runs on the reconciler's
# worker, so a change arriving meanwhile would wait for it.
QUIET_BEFORE_CHECK = 3.0
UNREACHABLE_LIMIT = 5
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux
KEY_PLACEHOLDER = "<private key: written to the workdir (mode 0600), not shown>\n"
FALLBACK_PLACEHOLDER = (
    "<self-signed fallback certificate and key: generated at start, written to the workdir>\n"
)


def _default_note(cert: Certificate) -> str:
    return f"<the default certificate {cert.name} and its key (no or unknown SNI)>\n"


def _spare(options: argparse.Namespace) -> int:
    value = getattr(options, "haproxy_spare_backends", None)
    return DEFAULT_SPARE_BACKENDS if value is None else int(value)


def _render_settings(settings: RunSettings) -> RenderSettings:
    return RenderSettings(
        bind=settings.bind,
        http_port=settings.http_port,
        https_port=settings.https_port,
        redirect_https_port=settings.public_https_port,
        spare_backends=_spare(settings.options),
    )


class HAProxyUnavailable(RuntimeError):
    """HAProxy could not be started or reached; retrying may help (unlike ApplyError)."""


class HAProxyBackend:
    """One run's state. Lifecycle hooks run on one thread; ``health`` only reads ``_health``."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.workdir = Path(os.path.abspath(settings.workdir))
        options = settings.options
        given = getattr(options, "haproxy_binary", None)
        self.binary: str | None = given if given is not None else shutil.which("haproxy")
        drain = getattr(options, "haproxy_drain_timeout", None)
        self.process = HAProxyProcess(self.binary or "haproxy", self.workdir)
        self.guard = FileGuard()
        self.applier = Applier(
            self.process,
            _render_settings(settings),
            ApplyOptions(
                spare_backends=_spare(options),
                drain_timeout=DEFAULT_DRAIN_TIMEOUT if drain is None else float(drain),
            ),
            fallback_certificate(),
        )
        self.next_check = 0.0
        self.last_apply = 0.0
        self.unreachable = 0
        self.restarts = 0
        self._health = HealthReport(live=True, ready=False, detail="not started")

    # ---- lifecycle

    def start(self, model: RouteModel) -> ApplyResult:
        if self.binary is None or not os.access(self.binary, os.X_OK):
            raise ApplyError(
                "haproxy: no HAProxy executable (install HAProxy 2.6 or later, or pass "
                "--haproxy-binary)"
            )
        if len(str(self.process.master_socket)) > MAX_SOCKET_PATH:
            raise ApplyError(f"haproxy: workdir {self.workdir} is too long for a UNIX socket path")
        if not haproxy_has_lua(self.binary):
            raise ApplyError(
                f"haproxy: {self.binary} is built without Lua (haproxy -vv has no 'Built with "
                "Lua'); the haproxy backend needs it for Gateway API request mirrors (Debian, "
                "Ubuntu and the official HAProxy images have it)"
            )
        previous = self.applier.state.slots if self.applier.state is not None else None
        try:
            self.process.stop(timeout=2.0)
            self.applier.start(model, previous)
        except (StartFailed, RuntimeApiError, OSError) as exc:
            self.process.stop(timeout=2.0)
            self._set_health(False, False, f"haproxy failed to start: {exc}")
            # Not the model's fault (a port in use, a crash): the core retries with backoff.
            raise HAProxyUnavailable(f"haproxy: {exc}") from exc
        self.next_check = time.monotonic() + CHECK_INTERVAL
        self._set_health(True, True, f"haproxy running (master pid {self.process.pid})")
        self._guard_record()
        return ApplyResult(reloaded=False, reasons=(ReloadReason.START,))

    def _guard_record(self) -> None:
        # And the source map files that refuse someone (a slot with source lists; the others
        # are empty, and there is one per slot: reading them all at every apply costs more).
        state = self.applier.state
        lists = [source_file(s) for s in sorted(state.sources)] if state is not None else []
        self.guard.record(self.workdir / name for name in (*GUARDED_FILES, *lists))

    def apply(self, model: RouteModel, previous: RouteModel, diff: ModelDiff) -> ApplyResult:
        started = time.monotonic()
        self.last_apply = started
        watch = self.applier.watch
        watch.reset()
        if not self.process.alive():
            # A dead HAProxy is started on the NEW model: the core would not retry this one.
            with watch.part("restart"):
                self._restart(model, "not running at apply")
            result = ApplyResult(
                reloaded=True,
                reasons=(ReloadReason.PROCESS_RESTARTED,),
                detail="haproxy was not running; started",
            )
        else:
            try:
                result = self.applier.apply(model, diff)
            except (RuntimeApiError, OSError):
                if self.process.alive():
                    raise
                self._restart(model, "exited during apply")
                result = ApplyResult(
                    reloaded=True,
                    reasons=(ReloadReason.PROCESS_RESTARTED,),
                    detail="haproxy exited; restarted",
                )
        APPLY_SECONDS.labels("reload" if result.reloaded else "runtime").observe(
            time.monotonic() - started
        )
        self._guard_record()
        return dataclasses.replace(result, timings=watch.timings())

    def _restart(self, model: RouteModel, cause: str) -> None:
        RESTARTS.labels(cause).inc()
        self.restarts += 1
        self.start(model)

    def supervise(self, model: RouteModel) -> str | None:
        now = time.monotonic()
        if not self.process.alive():
            # Restarted at once, then with the kit's back-off while it keeps dying.
            code = self.process.exited()
            if not self.process.restart_due():
                wait = self.process.restart_in()
                self._set_health(False, False, f"haproxy exited ({code}); restart in {wait:.0f}s")
                return None
            try:
                self._restart(model, "exited")
            except (ApplyError, HAProxyUnavailable) as exc:
                return f"haproxy exited with code {code}; restart failed: {exc}"
            return f"haproxy exited with code {code}; restarted with the current model"
        fixed = self.guard.repair()
        if fixed:
            names = ", ".join(str(p.relative_to(self.workdir)) for p in fixed)
            return f"generated files changed on disk, rewritten from the model: {names}"
        try:
            workers = self.process.worker_pids()
        except RuntimeApiError as exc:
            self.unreachable += 1
            if self.unreachable < UNREACHABLE_LIMIT:
                return None
            self.unreachable = 0
            self._restart(model, "master CLI unreachable")
            return f"haproxy master CLI unreachable ({exc}); restarted"
        self.unreachable = 0
        if not workers:
            return None
        try:
            return self._check(model, workers, now)
        except (DriftError, CommandRejected) as exc:
            log.warning("haproxy: repair at run time failed (%s); reloading", exc)
            self.applier.reload(model, (RELOAD_DRIFT,))
            return f"haproxy drifted from the model ({exc}); reloaded"
        except RuntimeApiError as exc:  # HAProxy busy or reloading: next tick
            log.warning("haproxy: read-back failed: %s", exc)
            return None

    def _check(self, model: RouteModel, workers: frozenset[int], now: float) -> str | None:
        if workers != self.applier.worker_pids:
            old = sorted(self.applier.worker_pids)
            self.applier.worker_pids = workers
            RESTARTS.labels("worker changed").inc()
            repaired = self.applier.reconcile(model)
            return (
                f"haproxy worker changed ({old} -> {sorted(workers)}) without a reload by "
                f"polyingress; replayed the model ({repaired} repairs)"
            )
        self.applier.tick()
        dirty = self.applier.state is not None and self.applier.state.dirty
        if (now < self.next_check or now - self.last_apply < QUIET_BEFORE_CHECK) and not dirty:
            return None
        started = time.monotonic()
        repaired = self.applier.reconcile(model)
        # A full read-back of a huge world takes a while: keep it under ~2% of the time.
        spent = time.monotonic() - started
        self.next_check = time.monotonic() + max(CHECK_INTERVAL, 50 * spent)
        if repaired:
            return f"read-back found HAProxy differing from the model; {repaired} repairs"
        return None

    def stop(self) -> None:
        self.process.stop()
        self._set_health(False, False, "stopped")

    def _set_health(self, live: bool, ready: bool, detail: str) -> None:
        self._health = HealthReport(live=live, ready=ready, detail=detail)

    def health(self) -> HealthReport:
        return self._health


@functools.cache
def haproxy_has_lua(binary: str) -> bool:
    """Whether ``haproxy -vv`` says the binary is built with Lua (True when it cannot tell:
    ``haproxy -c`` then reports what is wrong)."""
    try:
        done = subprocess.run(
            [binary, "-vv"], capture_output=True, timeout=10, check=False, text=True
        )
    except (OSError, subprocess.SubprocessError):
        return True
    return done.returncode != 0 or "Built with Lua" in done.stdout


def haproxy_version(binary: str | None) -> str | None:
    if binary is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            [binary, "-v"], capture_output=True, timeout=10, check=False, text=True
        )
        match = re.search(r"version (\S+)", done.stdout)
        if match:
            return match[1]
    return None


# --------------------------------------------------------------------------- hooks


def add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("haproxy backend")
    group.add_argument(
        "--haproxy-binary",
        metavar="PATH",
        default=None,
        help="HAProxy 2.6+ executable to run (default: 'haproxy' on PATH)",
    )
    group.add_argument(
        "--haproxy-spare-backends",
        metavar="N",
        type=non_negative_int,
        default=None,
        help="spare backends declared in the configuration, so that a new Service needs no "
        f"reload (default {DEFAULT_SPARE_BACKENDS}; when used up, a reload adds at least as "
        "many as there are Services)",
    )
    group.add_argument(
        "--haproxy-drain-timeout",
        metavar="SECONDS",
        type=non_negative_number,
        default=None,
        help="how long a removed endpoint may finish its requests before they are cut "
        f"(default {DEFAULT_DRAIN_TIMEOUT:g})",
    )


def info() -> BackendInfo:
    binary = shutil.which("haproxy")
    version = haproxy_version(binary)
    return BackendInfo(
        name=NAME,
        version=version or "not installed",
        description="HAProxy 2.6+ driven through its Runtime API: routine changes never reload",
        features=(
            "runtime-endpoints: add/del server (drained before deletion)",
            "runtime-routes: one map, atomic prepare/commit",
            "runtime-certificates: new/set/commit ssl cert + crt-list",
            "new Services: spare backend slots (--haproxy-spare-backends)",
            "reloads only for: spare pool exhausted, global settings, refused runtime change",
            f"binary: {binary}" if binary else "binary: not on PATH",
        ),
        gateway_features=GATEWAY_FEATURES,
        settings=SETTINGS,
    )


def _slot_order(name: str) -> tuple[int, str]:
    """A source map file in slot order (slot_0009 before slot_0010, slot_10000 last)."""
    digits = "".join(c for c in name if c.isdigit())
    return (int(digits or 0), name)


def render_config(settings: RunSettings, model: RouteModel) -> RenderedConfig:
    render_settings = _render_settings(settings)
    slots = SlotTable.plan(wanted_names(model), render_settings.spare_backends)
    rendered = render(model, render_settings, slots)
    # The crt-list's first line: the model's default certificate, else the fallback.
    default = model.certificate_index.get(model.default_certificate or "")
    files: list[tuple[str, str]] = [
        (CONFIG_FILE, rendered.config),
        (ROUTES_MAP, rendered.map_text),
        (CRT_LIST, rendered.crt_list_text),
        (FALLBACK_PEM, FALLBACK_PLACEHOLDER if default is None else _default_note(default)),
        (MIRROR_LUA, mirror_lua()),
    ]
    written = [
        RenderedFile(name=CONFIG_FILE, text=rendered.config, mode=SECRET_MODE),  # userlists
        RenderedFile(name=ROUTES_MAP, text=rendered.map_text),
        RenderedFile(name=CRT_LIST, text=rendered.crt_list_text),
        RenderedFile(
            name=FALLBACK_PEM, text=pem_bundle(default or fallback_certificate()), mode=SECRET_MODE
        ),
        RenderedFile(name=MIRROR_LUA, text=mirror_lua()),
    ]
    # Every slot's source map file (HAProxy needs each one, an empty one refuses nobody).
    for name, text in sorted(rendered.sources.items(), key=lambda item: _slot_order(item[0])):
        files.append((name, text))
        written.append(RenderedFile(name=name, text=text))
    for cert in model.certificates:
        name = cert_file(cert.name)
        if name in rendered.pems:
            pem = cert.cert_pem if cert.cert_pem.endswith("\n") else cert.cert_pem + "\n"
            files.append((name, pem + KEY_PLACEHOLDER))
            written.append(RenderedFile(name=name, text=rendered.pems[name], mode=SECRET_MODE))
    return RenderedConfig(files=tuple(files), written=tuple(written))


# Every hook of the backend, from its class and the functions above (polyingress.core.kit).
hooks = backend_plugin(
    info=info, create=HAProxyBackend, render=render_config, add_options=add_options
)
