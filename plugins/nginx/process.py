"""The nginx master as a child process, and what /proc says about it.

nginx runs fully inside a prefix (``-p``): pid file, temp paths and the startup error log
(``-e stderr``) never touch /etc, /run or /var (nginx notes §1: docs/notes/nginx-1.22.md). The
master runs in the foreground
(``daemon off`` in the config) in its own process group, so a terminal's Ctrl-C reaches only
the controller, and the whole group (master and workers) can be found and stopped by its id.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "CheckResult",
    "LogTail",
    "NginxProcess",
    "check_config",
    "group_members",
    "nginx_version",
    "stop_stale_master",
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
    """What nginx writes to stderr: forwarded to logging, the last lines kept, numbered."""

    def __init__(self, maxlen: int = 500) -> None:
        self._lines: deque[tuple[int, str]] = deque(maxlen=maxlen)
        self._seq = 0
        self._lock = threading.Lock()

    def feed(self, line: str) -> None:
        line = line.rstrip("\n")
        if not line:
            return
        m = _LEVEL.search(line)
        log.log(_PY_LEVEL[m.group(1)] if m else logging.INFO, "nginx: %s", line)
        with self._lock:
            self._seq += 1
            self._lines.append((self._seq, line))

    def mark(self) -> int:
        with self._lock:
            return self._seq

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return [line for seq, line in self._lines if seq > mark]

    def last(self, n: int) -> list[str]:
        with self._lock:
            return [line for _seq, line in list(self._lines)[-n:]]


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
    comm: str
    state: str
    ppid: int
    pgrp: int


def _stat(pid: int) -> _Stat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    comm = raw[raw.find("(") + 1 : raw.rfind(")")]
    fields = raw[raw.rfind(")") + 2 :].split()
    return _Stat(comm, fields[0], int(fields[1]), int(fields[2]))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st.state not in ("Z", "X")


def group_members(pgid: int) -> list[int]:
    """Live nginx processes in process group ``pgid`` (a master's workers outlive it)."""
    out = []
    for pid in _pids():
        st = _stat(pid)
        if st is not None and st.pgrp == pgid and st.comm == "nginx" and st.state not in "ZX":
            out.append(pid)
    return out


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    # Only if nginx processes are in it: a group id is a pid, and pids get reused.
    if group_members(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.01)
    return not any(_alive(p) for p in pids)


def stop_stale_master(prefix: Path, pid_file: Path, timeout: float) -> int | None:
    """Stop an nginx master left running on ``prefix`` by an earlier controller (and its
    group). Returns its pid, or None when there was none."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    cmd = _cmdline(pid)
    if not cmd.startswith("nginx: master process") or f"-p {prefix}/" not in cmd:
        return None
    st = _stat(pid)
    if st is None:
        return None
    log.warning("stopping nginx master %d left running on %s by an earlier run", pid, prefix)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGQUIT)
    _wait_gone([pid], timeout)
    left = group_members(st.pgrp)
    _kill_group(st.pgrp, signal.SIGKILL)
    _wait_gone(left, 5)
    return pid


# -- the master -----------------------------------------------------------------------------------


class NginxProcess:
    """One nginx master started by us: ``nginx -p PREFIX/ -e stderr -c CONF``."""

    def __init__(self, binary: str, prefix: Path, conf: Path, tail: LogTail) -> None:
        self.binary = binary
        self.prefix = prefix
        self.conf = conf
        self.tail = tail
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def spawn(self) -> None:
        self._proc = subprocess.Popen(
            [self.binary, "-p", f"{self.prefix}/", "-e", "stderr", "-c", str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            process_group=0,
            close_fds=True,
        )
        assert self._proc.stderr is not None
        self._reader = threading.Thread(
            target=self._read, args=(self._proc.stderr,), name="nginx-stderr", daemon=True
        )
        self._reader.start()
        log.info("started nginx master %d (prefix %s)", self._proc.pid, self.prefix)

    def _read(self, stream: IO[bytes]) -> None:
        # EOF only once every holder of the pipe (master and workers) has exited.
        with stream:
            for raw in stream:
                self.tail.feed(raw.decode(errors="replace"))

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def describe_exit(self) -> str:
        code = self.returncode
        if code is None:
            return "running"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def reload(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGHUP)

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
                if "shutting down" not in _cmdline(pid):
                    pending.append(pid)
            if not pending:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    def kill_leftovers(self) -> list[int]:
        """After the master died: SIGKILL the workers it left (they keep the listeners)."""
        if self._proc is None:
            return []
        left = group_members(self._proc.pid)
        if left:
            log.warning("killing %d nginx workers left by master %d", len(left), self._proc.pid)
            _kill_group(self._proc.pid, signal.SIGKILL)
            _wait_gone(left, 5)
        return left

    def stop(self, timeout: float) -> None:
        """Graceful stop (QUIT: in-flight requests finish), bounded; then KILL the group."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("nginx did not stop within %.0fs; killing it", timeout)
        self.kill_leftovers()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)
        log.info("nginx master %d %s", proc.pid, self.describe_exit())
