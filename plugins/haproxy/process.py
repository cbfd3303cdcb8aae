"""Supervision of one HAProxy master-worker process tree in the backend's workdir.

HAProxy runs in the foreground as our child, in its own process group (``start_new_session``):
``haproxy -W -S <workdir>/master.sock,mode,600 -f haproxy.cfg`` with the workdir as its working
directory (the configuration's relative paths point into it). Its stdout/stderr go to
``<workdir>/haproxy.log``: a failed reload reports only there (docs/notes/haproxy-2.6.md §1).

Stop: SIGUSR1 to the master is a soft stop (workers stop listening, finish their requests and
exit, then the master exits); after the bound, SIGTERM, then SIGKILL to the whole process group,
so no worker is left behind. When the master is killed, its workers exit by themselves
(verified on 2.6.12); the group kill covers the rest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from polyingress.core import ApplyError, ManagedProcess, command_line, wait_until_served

from .render import ADMIN_SOCKET, CONFIG_FILE, MASTER_SOCKET
from .runtime import MasterClient, RetryPolicy, RuntimeApiError, RuntimeClient

__all__ = ["ConfigInvalid", "HAProxyProcess", "StartFailed"]

PID_FILE = "haproxy.pid"
LOG_FILE = "haproxy.log"
CHECK_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0  # the soft stop's bound
TERM_TIMEOUT = 3.0
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0


class ConfigInvalid(Exception):
    """``haproxy -c`` refused a configuration; the message is HAProxy's own output."""


class StartFailed(Exception):
    pass


class HAProxyProcess(ManagedProcess):
    """One HAProxy master (and its workers) owned by this run."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.config = workdir / CONFIG_FILE
        self.master_socket = workdir / MASTER_SOCKET
        self.admin_socket = workdir / ADMIN_SOCKET
        super().__init__(
            "haproxy",
            [binary, "-W", "-S", f"{self.master_socket},mode,600", "-f", CONFIG_FILE],
            cwd=workdir,
            log_file=workdir / LOG_FILE,
            pid_file=workdir / PID_FILE,
            stop_signals=((signal.SIGUSR1, STOP_TIMEOUT), (signal.SIGTERM, TERM_TIMEOUT)),
            leftover_matches=self._is_leftover,
            backoff_first=BACKOFF_FIRST,
            backoff_max=BACKOFF_MAX,
            stable_after=STABLE_AFTER,
        )

    # ---- clients

    def master(self, *, patient: bool = True) -> MasterClient:
        retry = RetryPolicy() if patient else RetryPolicy(total=0)
        return MasterClient(str(self.master_socket), timeout=10.0, retry=retry)

    def admin(self) -> RuntimeClient:
        return RuntimeClient(str(self.admin_socket), timeout=10.0)

    # ---- actions

    def check(self, config: Path | None = None) -> None:
        """``haproxy -c`` in the workdir; raises ConfigInvalid with HAProxy's output."""
        path = config or self.config
        try:
            done = subprocess.run(
                [self.binary, "-c", "-f", path.name],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=CHECK_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigInvalid(f"{self.binary} -c -f {path}: {exc}") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            alerts = [line for line in output.splitlines() if "[ALERT]" in line] or [output]
            raise ConfigInvalid("\n".join(alerts).strip())

    def serve(self, timeout: float = 20.0) -> frozenset[int]:
        """Start HAProxy on the configuration in the workdir; returns the worker pids once the
        master lists a worker and the admin socket answers. StartFailed (HAProxy stopped) if
        it exits or does not get there within ``timeout``."""
        for sock in (self.master_socket, self.admin_socket):
            sock.unlink(missing_ok=True)
        master = self.master(patient=False)
        admin = RuntimeClient(str(self.admin_socket), timeout=5.0, retry=RetryPolicy(total=0))
        workers: frozenset[int] = frozenset()

        def serving() -> bool:
            nonlocal workers
            with contextlib.suppress(RuntimeApiError, OSError):
                workers = master.show_proc().worker_pids
                if workers:
                    admin.show_info()
                    return True
            return False

        try:
            self.start()
            wait_until_served(
                serving,
                timeout=timeout,
                what=CONFIG_FILE,
                process=self,
                interval=0.01,
                max_interval=0.05,
            )
        except ApplyError as exc:
            # An exit names the log's tail already; a timeout does not.
            tail = "" if self.exited() is not None else self.log_tail()
            self.stop(timeout=2.0)
            raise StartFailed(f"{exc}: {tail}" if tail else f"{exc}") from exc
        return workers

    def worker_pids(self) -> frozenset[int]:
        return self.master(patient=False).show_proc().worker_pids

    def _is_leftover(self, pid: int) -> bool:
        """A master left by an earlier run in this workdir (we were SIGKILLed): haproxy, running
        in our workdir. Its command line is not ours once it reloaded (the re-exec adds -sf and
        -x arguments)."""
        argv = command_line(pid)
        if not argv or "haproxy" not in Path(argv[0]).name:
            return False
        try:
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            return False
        return cwd.resolve() == self.workdir.resolve()
