"""Apply: write a new file, swap atomically, SIGHUP, wait until served (``nginx -t`` only
before a start: a reload's own parse refuses a bad file and keeps the old configuration); in
Lua mode, push endpoints through the channel instead of reloading when only endpoints changed.

Workdir layout (the nginx prefix; nothing is written outside it)::

    conf/nginx.conf             the running configuration (0600: it holds the channel token)
    conf/nginx.conf.next        the candidate being checked
    conf/nginx.conf.rejected    the last candidate nginx refused (for the operator)
    conf/certs/                 certificates (0644) and keys (0600), named by fingerprint
    channel/                    0700, Lua mode: nginx.sock (0600), the endpoint channel, and
                                endpoints.json (0600), the state a new dictionary starts from
    logs/access.log             only with enable-access-log
    run/nginx.pid, tmp/*        pid file and temp paths

"Serving" means: the status server answers the new config digest (a new worker runs) and every
old worker has stopped accepting (nginx notes §5); in Lua mode also: the channel holds the model's
endpoints, read back and compared. Until then ``start`` and ``apply`` do not return.

Lua mode, per apply (the decision in words: :func:`plan`):

* Same rendered text (an endpoints-only diff always is): PATCH the changed backends, verify.
* Otherwise first (before rendering) PATCH the backends the diff adds or changes (old and new
  workers share the dictionary: a changed endpoint is live at once, and a backend only the new
  config routes to has its endpoints when the first new worker starts); then, if the text
  changed, the reload; after it, once no old worker accepts, delete the backends the diff
  removes; verify each write. Without a diff: PUT the whole state.
* While an apply runs (a reload), the core's runtime lane may push newer endpoints from a
  second thread (:meth:`NginxBackend.push_endpoints`): all channel writes go through one lock
  and take each backend's endpoints from the newest model handed over.
  When the running config has no dictionary yet (start, or back from static upstreams), nginx
  fills the new one from ``channel/endpoints.json`` while loading the config.
* Any channel failure: render the same model with static upstreams and reload, so no request
  goes to an endpoint that is gone; reasons get ``lua-push-failed``. Lua mode is tried again
  on the first apply after a backoff (30 s, doubling up to 10 min), reason ``lua-restored``.
"""

from __future__ import annotations

import contextlib
import gc
import http.client
import json
import logging
import os
import pwd
import re
import secrets
import signal
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from polyingress.core import (
    ApplyError,
    ApplyResult,
    FileGuard,
    HealthReport,
    ModelDiff,
    ObjectRef,
    ReloadReason,
    RouteModel,
    RunSettings,
    Stopwatch,
    Timings,
    diff_reasons,
    fallback_certificate,
    wait_until_served,
    write_atomic,
)

from . import metrics
from .channel import ChannelError, EndpointChannel
from .lua_support import CHANNEL_DIR, CHANNEL_SOCKET, lua_render
from .process import Generations, LogTail, NginxProcess, check_config, pss_bytes
from .render import (
    CONFIG_VERSION_PATH,
    LUA_SEED,
    TEMP_PATHS,
    NginxConfig,
    RenderCache,
    RenderOptions,
    UnsafeValue,
    endpoint_state,
    line_owners,
    render,
)
from .settings import SETTINGS

__all__ = [
    "ApplyPlan",
    "NginxBackend",
    "NginxOptions",
    "explain_failure",
    "lua_seed",
    "plan",
    "reload_reasons",
]

log = logging.getLogger("polyingress.nginx")


class NginxExited(RuntimeError):
    """nginx died while applying: transient, unlike a refused configuration (ApplyError)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NginxOptions:
    """The ``--nginx-*`` options."""

    binary: str = "nginx"
    status_port: int = 0
    reload_timeout: float = 60.0
    stop_timeout: float = 15.0
    lua: str = "auto"


LUA_RETRY_FIRST = 30.0
LUA_RETRY_MAX = 600.0


def reload_reasons(diff: ModelDiff, *, lua: bool = False) -> tuple[ReloadReason, ...]:
    """Why a reload is needed, in the core's vocabulary (they label a metric). In Lua mode
    endpoints are never a reason."""
    return diff_reasons(diff, endpoints=not lua) or (ReloadReason.OTHER,)


@dataclass(frozen=True, slots=True)
class ApplyPlan:
    """What a diff needs: ``reload`` names why a reload is needed (empty: none), ``push`` the
    backends whose endpoints go through the channel."""

    reload: tuple[ReloadReason, ...]
    push: tuple[str, ...]


def plan(diff: ModelDiff, *, lua: bool) -> ApplyPlan:
    """Run time or reload, from the diff alone. Static upstreams: every change reloads. Lua:
    endpoints never do (also those of backends in a diff that reloads for other reasons);
    they are pushed. The rendered text has the last word: an unchanged text never reloads."""
    return ApplyPlan(
        reload=diff_reasons(diff, endpoints=not lua),
        push=diff.endpoints_changed if lua else (),
    )


_FATAL = re.compile(r"\[(?:emerg|alert|crit)\] (?:\d+#\d+: )?(?P<msg>.*)$")
_WHERE = re.compile(r"^(?P<msg>.*) in (?P<path>\S+):(?P<line>\d+)$")
_QUOTED_WORD = re.compile(r'"([a-z0-9_]+)"')


def explain_failure(
    output: str, config: NginxConfig, conf_name: str
) -> tuple[str, tuple[ObjectRef, ...]]:
    """nginx's error as one sentence, and the objects at fault when they can be told.

    The failing line (``... in FILE:LINE``) is mapped to the objects it was rendered from
    (:func:`line_owners`); a directive named in the message or on that line that a ConfigMap
    key set, or a certificate file named in the message, attributes the failure to the
    ConfigMap or to the Secret and the Ingress that uses it.
    """
    fatal = [m.group("msg") for m in map(_FATAL.search, output.splitlines()) if m is not None]
    if not fatal:
        return (output.strip().splitlines() or ["nginx -t failed without a message"])[-1], ()
    message = fatal[0]
    refs: list[ObjectRef] = []
    words = set(_QUOTED_WORD.findall(message))
    where = _WHERE.match(message)
    if where is not None:
        message = where.group("msg")
        number = int(where.group("line"))
        lines = config.text.splitlines()
        if where.group("path").endswith(conf_name) and 0 < number <= len(lines):
            statement = lines[number - 1].strip()
            message += f" (line {number}: {statement})"
            refs.extend(line_owners(config.text)[number - 1])
            words.add(statement.split(" ", 1)[0])
    source = config.settings_source
    if source is not None:
        for key in sorted(config.settings.from_configmap):
            if words & set(SETTINGS[key].directives):
                refs.append(source)
    for pair in config.key_pairs:
        if pair.crt in message or pair.key in message:
            refs.extend(pair.refs)
    return message, tuple(dict.fromkeys(refs))


def lua_seed(model: RouteModel) -> str:
    """``channel/endpoints.json``: the endpoints a new Lua dictionary starts from."""
    state = {name: [[a, p] for a, p in eps] for name, eps in endpoint_state(model).items()}
    return json.dumps({"backends": state}, separators=(",", ":"), sort_keys=True)


def _free_ports(count: int, taken: tuple[int, ...] = ()) -> list[int]:
    """``count`` distinct free loopback ports, none of ``taken`` (all bound at once: two
    successive binds to port 0 may return the same port)."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
            if port not in taken:
                ports.append(port)
        return ports


class NginxBackend:
    """The nginx backend of one ``polyingress run``: owns the prefix and the master."""

    def __init__(self, settings: RunSettings, options: NginxOptions) -> None:
        self.options = options
        self.prefix = Path(settings.workdir).resolve()
        self.conf_dir = self.prefix / "conf"
        self.conf = self.conf_dir / "nginx.conf"
        self.guard = FileGuard()
        self.candidate = self.conf_dir / "nginx.conf.next"
        self.rejected = self.conf_dir / "nginx.conf.rejected"
        # The status server, and in Lua mode the 503 responder: loopback ports of their own.
        ports = _free_ports(2, taken=(settings.http_port, settings.https_port, options.status_port))
        self.render_options = RenderOptions(
            bind=settings.bind,
            http_port=settings.http_port,
            https_port=settings.https_port,
            redirect_https_port=settings.public_https_port,
            status_port=options.status_port or ports[0],
        )
        self.fallback = fallback_certificate()
        self.channel_dir = self.prefix / CHANNEL_DIR
        self.channel_socket = self.prefix / CHANNEL_SOCKET
        self.lua, self.lua_state = lua_render(
            options.lua,
            options.binary,
            self.prefix,
            token=secrets.token_hex(16),
            unavailable_port=ports[1],
        )
        self.channel = (
            EndpointChannel(self.channel_socket, self.lua.token) if self.lua is not None else None
        )
        self._lua_retry_at = 0.0
        self._lua_backoff = LUA_RETRY_FIRST
        self.pushes = 0
        self.push_failures = 0
        if self.lua is not None:
            log.info(
                "nginx: Lua balancer on: endpoint changes are pushed through %s, no reload",
                self.channel_socket,
            )
        else:
            log.log(
                logging.INFO if options.lua == "off" else logging.WARNING,
                "nginx: Lua balancer %s; static upstreams: every endpoint change reloads nginx",
                self.lua_state,
            )
        self.tail = LogTail()
        self.generations = Generations()
        self.tail.watch(self.generations.on_line)
        self.process: NginxProcess | None = None
        self.running: NginxConfig | None = None
        self.failed: tuple[str, ApplyError] | None = None
        self.checks = 0
        self.reloads = 0
        self.watch = Stopwatch()  # where an apply's time goes (ApplyResult.timings)
        # The channel's writes (the apply's and the runtime lane's) and the newest model whose
        # endpoints they send; the model whose apply the lane's pushes followed (push_endpoints).
        self._channel_lock = threading.Lock()
        self._endpoints: RouteModel | None = None
        self._lane_root: RouteModel | None = None
        # The host blocks of the last render per mode (Lua, and static for the fallback).
        self._render_cache = {True: RenderCache(), False: RenderCache()}
        self.restarts = 0
        self.restart_failures = 0
        self.last_error: str | None = None
        self._problems: tuple[str, ...] = ()
        self._access_checked = False
        self._check_seconds = 0.0
        # Ready only once start() returned: in Lua mode that is after the endpoints were
        # pushed and read back, not when nginx first answers.
        self._ready = False
        metrics.observe(self)

    # -- rendering and files ------------------------------------------------------------------

    def _use_lua(self) -> bool:
        return self.lua is not None and time.monotonic() >= self._lua_retry_at

    def render(self, model: RouteModel, lua: bool = False) -> NginxConfig:
        options = replace(self.render_options, lua=self.lua if lua else None)
        # No cyclic garbage is made here, and with 10,000 hosts a full collection over the
        # model's objects took longer than the render itself (as in the core's diff).
        enabled = gc.isenabled()
        gc.disable()
        try:
            config = render(model, options, self.fallback, self._render_cache[lua])
        except UnsafeValue as exc:
            raise ApplyError(f"cannot render the nginx configuration: {exc}") from exc
        finally:
            if enabled:
                gc.enable()
        if config.problems != self._problems:
            for problem in config.problems:
                log.warning("%s", problem)
            self._problems = config.problems
        return config

    def _prepare_dirs(self) -> None:
        for sub in ("conf", "logs", "run", "tmp"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "certs").mkdir(mode=0o700, exist_ok=True)
        for _directive, path in TEMP_PATHS:
            (self.prefix / path).mkdir(parents=True, exist_ok=True)
        self.channel_dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.channel_dir, 0o700)

    def _remove_stale_socket(self) -> None:
        """A master that died (SIGKILL) leaves its UNIX socket; nginx would not bind it."""
        with contextlib.suppress(FileNotFoundError):
            self.channel_socket.unlink()

    def _write_seed(self, model: RouteModel) -> None:
        write_atomic(self.prefix / LUA_SEED, lua_seed(model), mode=0o600)

    def _check_worker_access(self) -> None:
        """As root, nginx runs its workers as ``nobody`` (nginx notes §1); they buffer large request
        bodies and responses in ``tmp/`` and fail (500, EACCES) if a parent of the prefix is
        not searchable by others. Say so once instead of failing requests silently."""
        if os.geteuid() != 0 or self._access_checked:
            return
        self._access_checked = True
        for parent in [self.prefix, *self.prefix.parents]:
            try:
                searchable = bool(parent.stat().st_mode & 0o001)
            except OSError:
                continue
            if not searchable:
                log.warning(
                    "nginx workers run as nobody and cannot reach %s/tmp: %s is not searchable "
                    "by others, so large request bodies and responses will fail; use a workdir "
                    "whose parents are o+x, or run the controller as an unprivileged user",
                    self.prefix,
                    parent,
                )
                return

    def _write_key_pairs(self, config: NginxConfig) -> None:
        for pair in config.key_pairs:
            write_atomic(self.conf_dir / pair.key, pair.key_pem, mode=0o600)
            write_atomic(self.conf_dir / pair.crt, pair.cert_pem, mode=0o644)
        self._write_auth_files(config)

    def _write_auth_files(self, config: NginxConfig) -> None:
        """The basic authentication user files: the workers read them on every request, so
        as root (workers run as nobody) they belong to nobody, readable by it alone;
        otherwise to us, owner only."""
        if not config.auth_files:
            return
        (self.conf_dir / "auth").mkdir(mode=0o711, exist_ok=True)
        owner = _worker_uid()
        for name, text in config.auth_files:
            path = self.conf_dir / name
            written = write_atomic(path, text, mode=0o400 if owner is not None else 0o600)
            if written and owner is not None:
                os.chown(path, owner, -1)

    def _remove_stale_files(self, config: NginxConfig) -> None:
        """Certificates and keys the running configuration no longer names."""
        keep = {p.crt for p in config.key_pairs} | {p.key for p in config.key_pairs}
        keep |= {name for name, _text in config.auth_files}
        for folder in ("certs", "auth"):
            if not (self.conf_dir / folder).is_dir():
                continue
            for path in (self.conf_dir / folder).iterdir():
                if f"{folder}/{path.name}" not in keep:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()

    def _write_candidate(self, config: NginxConfig) -> None:
        """Write the candidate (and its certificates) to new files; ApplyError at once if the
        same text was refused before."""
        if self.failed is not None and self.failed[0] == config.digest:
            # The same text was refused already: say so again without asking nginx.
            raise ApplyError(str(self.failed[1]), self.failed[1].refs)
        with self.watch.part("write"):
            self._write_key_pairs(config)
            write_atomic(self.candidate, config.text, mode=0o600)
        self.checks += 1

    def _check(self, config: NginxConfig) -> None:
        """Before a start: write the candidate and ``nginx -t`` it; ApplyError if refused.

        A reload needs no ``nginx -t``: the master parses the new file itself, and one it
        refuses ([emerg]) leaves the old configuration and workers serving (notes §5); the
        apply reads the refusal from nginx's log (:meth:`_wait_serving`). With no master
        running yet, a refused file would end nginx instead, so a start checks it first.
        """
        self._write_candidate(config)
        with self.watch.part("validate"):
            result = check_config(self.options.binary, self.prefix, self.candidate)
        self._check_seconds = result.seconds
        for line in result.output.splitlines():
            if "[warn]" in line:
                log.warning("nginx -t: %s", line)
        if result.ok:
            return
        message, refs = explain_failure(result.output, config, self.candidate.name)
        os.replace(self.candidate, self.rejected)
        if self.running is not None:
            self._remove_stale_files(self.running)
        error = ApplyError(f"nginx -t refused the configuration: {message}", refs)
        self.failed = (config.digest, error)
        self.last_error = str(error)
        raise error

    # -- readiness ----------------------------------------------------------------------------

    def _version(self) -> str | None:
        conn = http.client.HTTPConnection("127.0.0.1", self.render_options.status_port, timeout=1.0)
        try:
            conn.request("GET", CONFIG_VERSION_PATH, headers={"Connection": "close"})
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()
        return body.decode(errors="replace") if resp.status == 200 else None

    def _wait_serving(self, process: NginxProcess, config: NginxConfig, mark: int) -> None:
        """Until the marker answers the config's digest; ApplyError if nginx refused it
        (the master logs [emerg] and keeps its old configuration) or it is not served in time,
        NginxExited if nginx died."""

        def served() -> bool:
            lines = self.tail.since(mark)
            # [emerg] only: an [alert] such as "worker process exited on signal 9" is no verdict
            # on the configuration.
            fatal = [line for line in lines if "[emerg]" in line]
            if fatal:
                message, refs = explain_failure("\n".join(fatal), config, self.conf.name)
                raise ApplyError(f"nginx refused the configuration: {message}", refs)
            if not process.alive():
                time.sleep(0.05)  # let the reader collect the last lines
                last = "; ".join(self.tail.since(mark)[-3:])
                # Not a verdict on the configuration: the core retries the model once the
                # supervisor has restarted nginx.
                raise NginxExited(f"nginx {process.describe_exit()}: {last}")
            return self._version() == config.digest

        wait_until_served(
            served,
            timeout=self.options.reload_timeout,
            what=f"nginx config {config.digest}",
            interval=0.005,
            max_interval=0.005,
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, model: RouteModel) -> ApplyResult:
        """Start nginx serving ``model`` (stopping a master an earlier run left behind)."""
        self._ready = False
        with self._channel_lock:
            self._endpoints = model
        self._prepare_dirs()
        self._check_worker_access()
        process = self.process
        if process is None:
            process = NginxProcess(
                self.options.binary, self.prefix, self.conf, self.tail, self.options.stop_timeout
            )
            self.process = process
        # A running master stops gracefully; a dead one's workers (they hold the listening
        # sockets) are killed; without either, a master an earlier run left on the prefix.
        process.stop()
        try:
            self._remove_stale_socket()
            config = self.render(model, lua=self._use_lua())
            if config.lua:
                self._write_seed(model)
            self._check(config)
            os.replace(self.candidate, self.conf)
        except Exception:
            process.failed_start()  # restarts back off as if nginx had died at once
            raise
        mark = self.tail.mark()
        self.generations.clear()
        process.start()
        try:
            self._wait_serving(process, config, mark)
        except ApplyError as exc:
            self.last_error = str(exc)
            process.stop()
            raise
        self.running = config
        self._guard_record()
        self.failed = None
        self.last_error = None
        self._remove_stale_files(config)
        log.info("nginx serving config %s (pid %d)", config.digest, process.pid)
        result = ApplyResult(reloaded=False, reasons=(ReloadReason.START,))
        if config.lua:
            self._secure_channel()
            try:
                self._push(model, None)
            except ChannelError as exc:
                result = self._fall_back(model, exc, (ReloadReason.START,))
        self._ready = True
        return result

    def _secure_channel(self) -> None:
        # nginx creates UNIX sockets 0666; the 0700 directory already keeps others out.
        try:
            os.chmod(self.channel_socket, 0o600)
        except OSError as exc:
            log.warning("nginx: cannot make %s 0600: %s", self.channel_socket, exc)

    def _push(
        self, model: RouteModel, names: tuple[str, ...] | None, delete: tuple[str, ...] = ()
    ) -> int:
        """Write the endpoints of ``names`` (None: the whole state), delete the backends
        ``delete``, and verify."""
        assert self.channel is not None
        started = time.monotonic()
        with self.watch.part("push endpoints"):
            generation = self._send(model, names, delete)
        self.pushes += 1
        if names is None:
            what = f"all {len(model.backends)} backends"
        else:
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            what = f"{len(names)} backend{'s' if len(names) != 1 else ''} ({shown})"
        if delete:
            what += f", {len(delete)} deleted"
        log.info(
            "nginx: endpoints of %s pushed and read back (generation %d, %.1f ms)",
            what,
            generation,
            (time.monotonic() - started) * 1000,
        )
        return generation

    def _send(
        self, model: RouteModel, names: tuple[str, ...] | None, delete: tuple[str, ...] = ()
    ) -> int:
        """One write and its read-back, under the channel lock: the endpoints of ``names``
        (None: every backend) in ``model``, or in the newest model handed over where it has
        the backend (a runtime lane push's newer endpoints, see :meth:`push_endpoints`)."""
        assert self.channel is not None
        with self._channel_lock:
            state = endpoint_state(model, names)
            newest = self._endpoints
            if newest is not None and newest is not model:
                index = newest.backend_index
                state.update(endpoint_state(newest, [n for n in state if n in index]))
            if names is None:
                return self.channel.replace(state)
            return self.channel.update(state, delete=delete)

    def _fall_back(
        self, model: RouteModel, exc: ChannelError, reasons: tuple[ReloadReason, ...]
    ) -> ApplyResult:
        """The channel failed: reload with static upstreams (endpoints in the config), so that
        no request goes to an endpoint that is gone; Lua mode again after a backoff."""
        self.push_failures += 1
        self._lua_retry_at = time.monotonic() + self._lua_backoff
        log.error(
            "nginx: endpoint push failed (%s); reloading with static upstreams so that no "
            "request goes to a removed endpoint; Lua balancer again in %.0fs",
            exc,
            self._lua_backoff,
        )
        self._lua_backoff = min(self._lua_backoff * 2, LUA_RETRY_MAX)
        reasons = tuple(dict.fromkeys((*reasons, ReloadReason.RUNTIME_FAILED)))
        self._reload(self.render(model, lua=False), reasons)
        return ApplyResult(reloaded=True, reasons=reasons, detail=f"endpoint push failed: {exc}")

    def apply(
        self, model: RouteModel, previous: RouteModel | None = None, diff: ModelDiff | None = None
    ) -> ApplyResult:
        """Serve ``model``; the result's ``timings`` say where the time went. ``previous`` is
        not needed: the backend compares with the configuration it runs."""
        self.watch.reset()
        with self._channel_lock:
            # Endpoints come from the newest model: this one, unless the core's runtime lane
            # already pushed a successor of it (push_endpoints, while this apply started).
            if self._lane_root is not model:
                self._endpoints = model
            self._lane_root = None
        try:
            result = self._apply(model, diff)
        finally:
            with self._channel_lock:
                self._lane_root = None
        return replace(result, timings=self.watch.timings())

    def push_endpoints(
        self, model: RouteModel, previous: RouteModel, diff: ModelDiff
    ) -> ApplyResult | None:
        """The core's runtime lane (a second thread, while :meth:`apply` runs, a reload say):
        push an endpoint-only change through the channel at once instead of after the reload.
        Old and new workers share the dictionary, so the push is live for both. None (the
        next apply does it) unless nginx runs the Lua balancer and the push was read back.

        Every channel write, this one and the apply's, takes the endpoints from the newest
        model handed over (``self._endpoints``) under one lock, so an apply's write never
        brings back endpoints older than a push of the lane."""
        process, running, channel = self.process, self.running, self.channel
        if (
            channel is None
            or not diff.endpoints_only
            or running is None
            or not running.lua
            or not self._use_lua()
            or process is None
            or not process.alive()
        ):
            return None
        started = time.monotonic()
        names = diff.endpoints_changed
        try:
            with self._channel_lock:
                if self._lane_root is None:
                    self._lane_root = previous
                self._endpoints = model
                generation = channel.update(endpoint_state(model, names))
                self.pushes += 1
        except ChannelError as exc:
            log.warning("nginx: endpoint push during a reload failed (%s); after it then", exc)
            return None
        seconds = time.monotonic() - started
        log.info(
            "nginx: endpoints of %d backend%s pushed during an apply and read back "
            "(generation %d, %.1f ms)",
            len(names),
            "s" if len(names) != 1 else "",
            generation,
            seconds * 1000,
        )
        return ApplyResult(
            reloaded=False,
            reasons=(ReloadReason.ENDPOINTS_CHANGED,),
            runtime_changes=len(names),
            timings=Timings((("push endpoints", seconds),)),
        )

    def _apply(self, model: RouteModel, diff: ModelDiff | None) -> ApplyResult:
        process = self.process
        if process is None or not process.alive() or self.running is None:
            with self.watch.part("restart"):
                self.start(model)
            return ApplyResult(reloaded=True, reasons=(ReloadReason.PROCESS_RESTARTED,))
        previous = self.running
        if diff is not None and diff.endpoints_only and previous.lua and self._use_lua():
            # Lua mode renders no endpoint: the text is the running one, without rendering it
            # (the render of 10,000 hosts takes longer than the push).
            return self._push_endpoints(model, diff.endpoints_changed)
        early: tuple[str, ...] = ()
        if diff is not None and previous.lua and self._use_lua():
            # First the endpoints (old and new workers share the dictionary): an endpoint
            # change is live now, not after the render, and a new backend has its endpoints
            # before the first new worker starts.
            early = (*diff.backends_added, *diff.endpoints_changed)
            if early:
                try:
                    self._push(model, early)
                except ChannelError as exc:
                    return self._fall_back(model, exc, reload_reasons(diff, lua=True))
        with self.watch.part("render"):
            config = self.render(model, lua=self._use_lua())
        if config.text == previous.text:
            self.failed = None
            change = plan(diff, lua=True) if diff is not None else None
            if not config.lua or (change is not None and not change.push):
                log.debug("rendered configuration unchanged (%s): no reload", config.digest)
                return ApplyResult(reloaded=False)
            if early and change is not None:
                return ApplyResult(
                    reloaded=False,
                    reasons=(ReloadReason.ENDPOINTS_CHANGED,),
                    runtime_changes=len(change.push),
                )
            return self._push_endpoints(model, change.push if change is not None else None)
        if config.lua and not previous.lua:
            reasons = (
                *(diff_reasons(diff, endpoints=False) if diff is not None else ()),
                ReloadReason.RUNTIME_RESTORED,
            )
        elif diff is not None:
            reasons = reload_reasons(diff, lua=config.lua)
        else:
            reasons = (ReloadReason.OTHER,)
        started = time.monotonic()
        self._write_candidate(config)
        if config.lua:
            # Before the HUP: the endpoints of backends the new workers route to first (with
            # a diff, pushed above already).
            try:
                if not previous.lua:
                    self._write_seed(model)
                elif diff is None:
                    self._push(model, tuple(b.name for b in model.backends))
            except ChannelError as exc:
                return self._fall_back(model, exc, reasons)
        self._reload(config, reasons, started=started)
        if config.lua:
            self._secure_channel()
            try:
                if not previous.lua or diff is None:
                    self._push(model, None)  # the whole state: a new dictionary, or unknown
                elif diff.backends_removed:
                    # Once no old worker accepts: what only the old configuration routed to.
                    self._push(model, (), delete=diff.backends_removed)
            except ChannelError as exc:
                return self._fall_back(model, exc, reasons)
            if not previous.lua:
                self._lua_backoff = LUA_RETRY_FIRST
                log.info("nginx: Lua balancer restored")
        return ApplyResult(reloaded=True, reasons=reasons)

    def _push_endpoints(self, model: RouteModel, names: tuple[str, ...] | None) -> ApplyResult:
        try:
            self._push(model, names)
        except ChannelError as exc:
            return self._fall_back(model, exc, (ReloadReason.ENDPOINTS_CHANGED,))
        count = len(names) if names is not None else len(model.backends)
        return ApplyResult(
            reloaded=False, reasons=(ReloadReason.ENDPOINTS_CHANGED,), runtime_changes=count
        )

    def _reload(
        self, config: NginxConfig, reasons: tuple[ReloadReason, ...], started: float | None = None
    ) -> None:
        """Make the running master serve ``config``: write it (unless the caller did, at
        ``started``), swap, HUP, wait until the new workers serve it and the old ones stopped
        accepting. A configuration the master refuses is an ApplyError, and the old one keeps
        serving."""
        process = self.process
        assert process is not None and self.running is not None
        if started is None:
            started = time.monotonic()
            self._write_candidate(config)
        previous = self.running
        os.replace(self.candidate, self.conf)
        old_workers = process.workers()
        mark = self.tail.mark()
        hup = time.monotonic()
        process.signal(signal.SIGHUP)
        try:
            self._wait_serving(process, config, mark)
        except ApplyError as exc:
            # The master keeps its old configuration; so must the file, for later restarts.
            write_atomic(self.rejected, config.text, mode=0o600)
            write_atomic(self.conf, previous.text, mode=0o600)
            self._remove_stale_files(previous)
            self.failed = (config.digest, exc)
            self.last_error = str(exc)
            raise
        self._time_reload(mark, hup)
        with self.watch.part("old workers stop accepting"):
            retired = process.wait_retired(old_workers, timeout=5.0)
        if not retired:
            log.warning("old nginx workers still accept connections 5s after the reload")
        self.generations.retire(self.reloads + 1, old_workers, hup, process.pid)
        self.running = config
        self._guard_record()
        self.failed = None
        self.last_error = None
        self.reloads += 1
        self._remove_stale_files(config)
        log.info(
            "nginx reloaded (%s): config %s, %s, served after %.0f ms",
            ", ".join(reasons),
            config.digest,
            "Lua balancer" if config.lua else "static upstreams",
            (time.monotonic() - started) * 1000,
        )

    def _time_reload(self, mark: int, hup: float) -> None:
        """Split the time from SIGHUP until the new workers served into the master's parse of
        the configuration (until it logs "start worker processes", notice level) and the new
        workers' start (until the status server answers the new digest)."""
        served = time.monotonic()
        parsed = self.tail.arrived(mark, "start worker processes")
        if parsed is not None and hup <= parsed <= served:
            self.watch.add("master parse", parsed - hup)
            self.watch.add("new workers serve", served - parsed)
        else:
            self.watch.add("reload until served", served - hup)

    # -- observed by /metrics ---------------------------------------------------------------

    def worker_generations(self) -> int:
        """The current workers' generation plus each older one still shutting down (0: nginx
        is not running)."""
        process = self.process
        if process is None or not process.alive():
            return 0
        old = self.generations.old(process.pid)
        known = {pid for generation in old for pid in generation}
        # Retired by a reload whose apply has not returned yet: one more generation.
        stray = [pid for pid in process.shutting_down() if pid not in known]
        return 1 + len(old) + (1 if stray else 0)

    def memory_bytes(self) -> int:
        """PSS of the master and all its workers (old ones included)."""
        process = self.process
        if process is None or process.pid is None or not process.alive():
            return 0
        return sum(pss_bytes(pid) for pid in [process.pid, *process.workers()])

    def _guard_record(self) -> None:
        certs = self.conf_dir / "certs"
        self.guard.record([self.conf, *sorted(certs.glob("polyingress-fallback.*"))])

    def supervise(self, model: RouteModel) -> str | None:
        """Restart a dead master with backoff and make it serve ``model`` again; put back
        generated files that something else changed or deleted."""
        process = self.process
        if process is None:
            return None
        if process.alive():
            fixed = self.guard.repair()
            if fixed:
                names = ", ".join(str(p.relative_to(self.prefix)) for p in fixed)
                return f"generated files changed on disk, rewritten from the model: {names}"
            return None
        # Restarted at once, then with the kit's back-off while it keeps dying.
        if not process.restart_due():
            return None
        if process.pid is not None:
            what = f"nginx master {process.pid} {process.describe_exit()}"
        else:
            what = "nginx not running after a failed start"
        try:
            self.start(model)
        except Exception as exc:
            self.restart_failures += 1
            delay = process.restart_in()
            self.last_error = f"{what}; restart failed: {exc}"
            return f"{what}; restart failed: {exc}; next attempt in {delay:.1f}s"
        self.restarts += 1
        self.restart_failures = 0
        return f"{what}; restarted, serving config {self.running.digest if self.running else '?'}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def health(self) -> HealthReport:
        process = self.process
        running = self.running
        if process is not None and process.alive() and running is not None and self._ready:
            upstreams = "Lua balancer" if running.lua else "static upstreams"
            return HealthReport(
                live=True,
                ready=True,
                detail=f"nginx {process.pid} serving {running.digest} ({upstreams})",
            )
        # Dead and being restarted with backoff: live until restarts keep failing.
        if process is None:
            detail = self.last_error or "nginx not started"
        elif process.alive():
            detail = "nginx starting"
        else:
            detail = self.last_error or "nginx down"
        return HealthReport(live=self.restart_failures < 5, ready=False, detail=detail)


def _worker_uid() -> int | None:
    """The user nginx's workers run as when started by root (nobody, nginx's default), else
    None: they run as we do."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return None
