"""The nginx master as a child process (the kit's ManagedProcess), and what /proc says about
its workers.

nginx runs fully inside a prefix (``-p``): pid file, temp paths and the startup error log
(``-e stderr``) never touch /etc, /run or /var (nginx notes §1: docs/notes/nginx-1.22.md). The
master runs in the foreground (``daemon off`` in the config) in a session of its own, so a
terminal's Ctrl-C reaches only the controller, and the whole group (master and workers) can be
found and stopped by its id: QUIT (graceful: in-flight requests finish) with its bound, then
SIGKILL to the group. A master an earlier run left on the prefix (found through nginx's pid
file, by its process title) is stopped the same way before a new one starts.
"""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from polyingress.core import ManagedProcess, command_line

from .render import PID_FILE

__all__ = [
    "CheckResult",
    "LogTail",
    "NginxProcess",
    "check_config",
    "nginx_version",
]

log = logging.getLogger("polyingress.nginx")

_LEVEL = re.compile(r"\[(debug|info|notice|warn|error|crit|alert|emerg)\]")
_PY_LEVEL = {
    "debug": logging.DEBUG,
    "info": logging.DEBUG,
    "notice": logging.DEBUG,
    "warn": logging.WARNING,
    # Per-request errors (an upstream refused a connection): worth seeing, not alarming.
    "error": logging.WARNING,
    "crit": logging.ERROR,
    "alert": logging.ERROR,
    "emerg": logging.ERROR,
}
FATAL_LEVELS = ("[emerg]", "[alert]", "[crit]")


class LogTail:
    """What nginx writes to stderr: forwarded to logging, the last lines kept, numbered, with
    the time each arrived (``time.monotonic()``: the reload's timings are read from them)."""

    def __init__(self, maxlen: int = 500) -> None:
        self._lines: deque[tuple[int, float, str]] = deque(maxlen=maxlen)
        self._seq = 0
        self._lock = threading.Lock()
        self._watchers: list[Callable[[str, float], None]] = []

    def watch(self, callback: Callable[[str, float], None]) -> None:
        """Call ``callback(line, arrived)`` for every line from now on (from the reader)."""
        self._watchers.append(callback)

    def feed(self, line: str) -> None:
        line = line.rstrip("\n")
        if not line:
            return
        arrived = time.monotonic()
        m = _LEVEL.search(line)
        log.log(_PY_LEVEL[m.group(1)] if m else logging.INFO, "nginx: %s", line)
        with self._lock:
            self._seq += 1
            self._lines.append((self._seq, arrived, line))
        for callback in self._watchers:
            callback(line, arrived)

    def mark(self) -> int:
        with self._lock:
            return self._seq

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return [line for seq, _t, line in self._lines if seq > mark]

    def arrived(self, mark: int, text: str) -> float | None:
        """When the first line after ``mark`` containing ``text`` arrived (None: none yet)."""
        with self._lock:
            return next((t for seq, t, line in self._lines if seq > mark and text in line), None)

    def last(self, n: int) -> list[str]:
        with self._lock:
            return [line for _seq, _t, line in list(self._lines)[-n:]]


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    output: str
    seconds: float


def check_config(binary: str, prefix: Path, conf: Path, timeout: float = 300) -> CheckResult:
    """``nginx -t`` on ``conf`` (a new file, not the running one); never signals the master.

    ``-t`` binds the listeners (EADDRINUSE is tolerated), loads every certificate and creates
    the temp paths (notes §1); it is only ever run on text rendered from the validated model.
    """
    started = time.monotonic()
    proc = subprocess.run(
        [binary, "-t", "-q", "-p", f"{prefix}/", "-e", "stderr", "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        check=False,
    )
    output = proc.stdout.decode(errors="replace")
    return CheckResult(proc.returncode == 0, output, time.monotonic() - started)


def nginx_version(binary: str) -> str | None:
    try:
        proc = subprocess.run(
            [binary, "-v"], capture_output=True, timeout=10, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"nginx/(\S+)", proc.stderr.decode(errors="replace"))
    return m.group(1) if m else None


# -- /proc ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Stat:
    state: str
    ppid: int


def _stat(pid: int) -> _Stat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return _Stat(fields[0], int(fields[1]))


def _title(pid: int) -> str:
    """The process title (nginx rewrites its command line: "nginx: worker process")."""
    return " ".join(command_line(pid) or []).strip()


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


# -- the master -----------------------------------------------------------------------------------


class NginxProcess(ManagedProcess):
    """The nginx master started by us: ``nginx -p PREFIX/ -e stderr -c CONF``; its stderr goes
    to ``tail``."""

    def __init__(
        self, binary: str, prefix: Path, conf: Path, tail: LogTail, stop_timeout: float
    ) -> None:
        self.prefix = prefix
        super().__init__(
            "nginx",
            [binary, "-p", f"{prefix}/", "-e", "stderr", "-c", str(conf)],
            pid_file=prefix / PID_FILE,  # nginx writes the same pid there itself
            output=tail.feed,
            stop_signals=((signal.SIGQUIT, stop_timeout),),
            leftover_matches=self._is_master,
            leftover_stop_signals=((signal.SIGQUIT, stop_timeout),),
            backoff_first=0.5,
            backoff_max=30.0,
        )

    def _is_master(self, pid: int) -> bool:
        """An nginx master on this prefix (its title: "nginx: master process nginx -p ...")."""
        title = _title(pid)
        return title.startswith("nginx: master process") and f"-p {self.prefix}/" in title

    def describe_exit(self) -> str:
        code = self.exited()
        if code is None:
            return "running" if self.alive() else "not running"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def workers(self) -> list[int]:
        """The master's children (workers, including old ones still shutting down)."""
        master = self.pid
        if master is None:
            return []
        out = []
        for pid in _pids():
            st = _stat(pid)
            if st is not None and st.ppid == master and st.state not in "ZX":
                out.append(pid)
        return sorted(out)

    def shutting_down(self) -> list[int]:
        """The workers that stopped accepting and finish what they hold (old generations)."""
        return [pid for pid in self.workers() if "shutting down" in _title(pid)]

    def wait_retired(self, old: list[int], timeout: float) -> bool:
        """Wait until the old workers stopped accepting: exited, or titled "shutting down".

        After SIGHUP the master starts new workers, sleeps 100 ms, then tells the old ones to
        quit (notes §5); a worker sets that title right before closing its listening sockets.
        """
        master = self.pid
        deadline = time.monotonic() + timeout
        while True:
            pending = []
            for pid in old:
                st = _stat(pid)
                if st is None or st.state in "ZX" or st.ppid != master:
                    continue
                if "shutting down" not in _title(pid):
                    pending.append(pid)
            if not pending:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)


# -- worker generations and memory ---------------------------------------------------------------

_EXITED = re.compile(r"\bworker process (\d+) exited\b")


def pss_bytes(pid: int) -> int:
    """The proportional set size of ``pid`` (``/proc/PID/smaps_rollup``): shared pages count
    once over the processes that share them, so the PSS of a master and its workers adds up
    to what they hold together. 0 when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class _Generation:
    reload: int  # the reload that retired it
    retired_at: float  # time.monotonic() of that reload's SIGHUP
    pids: set[int]


class Generations:
    """The worker generations of one nginx master: the current workers, and per reload the old
    workers it retired that are still shutting down (each reload retires a set; with
    long-lived connections open they live until ``worker_shutdown_timeout``).

    Old workers are forgotten when nginx logs their exit (``worker process N exited``, notice
    level) or when /proc no longer shows them as the master's children; when the last worker of
    a generation is gone, how long it lived after its reload is logged (the benchmark reads it).
    """

    def __init__(self) -> None:
        self._old: list[_Generation] = []
        self._lock = threading.Lock()

    def retire(self, reload: int, pids: list[int], at: float, master: int | None) -> None:
        """``pids`` (the master's children before the reload) stopped being current; those
        already retired by an earlier reload stay in their own generation, and those that
        exited already (nginx logged it before this reload's apply returned) are left out."""
        with self._lock:  # held: an exit logged meanwhile waits for the generation to exist
            alive = set()
            for pid in pids:
                st = _stat(pid)
                if st is not None and st.state not in "ZX" and st.ppid == master:
                    alive.add(pid)
            new = alive.difference(*(gen.pids for gen in self._old))
            if new:
                self._old.append(_Generation(reload, at, new))

    def on_line(self, line: str, arrived: float) -> None:
        """A line of nginx's log (LogTail.watch): notes an old worker's exit."""
        m = _EXITED.search(line)
        if m is not None:
            self._exited({int(m.group(1))}, arrived)

    def _exited(self, pids: set[int], at: float) -> None:
        with self._lock:
            done = []
            for gen in self._old:
                if gen.pids & pids:
                    gen.pids -= pids
                    if not gen.pids:
                        done.append(gen)
            for gen in done:
                self._old.remove(gen)
        for gen in done:
            log.info(
                "nginx: the old workers of reload %d exited %.1f s after it",
                gen.reload,
                at - gen.retired_at,
            )

    def old(self, master: int | None) -> list[list[int]]:
        """The old generations still alive (their pids), after dropping what /proc says has
        exited (a worker nginx did not log, e.g. with error-log-level above notice)."""
        with self._lock:
            pids = {p for gen in self._old for p in gen.pids}
        gone = set()
        for pid in pids:
            st = _stat(pid)
            if st is None or st.state in "ZX" or st.ppid != master:
                gone.add(pid)
        if gone:
            self._exited(gone, time.monotonic())
        with self._lock:
            return [sorted(gen.pids) for gen in self._old]

    def clear(self) -> None:
        """The master was replaced (start, restart): its workers went with it."""
        with self._lock:
            self._old.clear()
