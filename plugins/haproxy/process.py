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
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from .render import ADMIN_SOCKET, CONFIG_FILE, MASTER_SOCKET
from .runtime import MasterClient, RetryPolicy, RuntimeApiError, RuntimeClient

__all__ = ["ConfigInvalid", "HAProxyProcess", "StartFailed"]

log = logging.getLogger(__name__)

PID_FILE = "haproxy.pid"
LOG_FILE = "haproxy.log"
CHECK_TIMEOUT = 60.0


class ConfigInvalid(Exception):
    """``haproxy -c`` refused a configuration; the message is HAProxy's own output."""


class StartFailed(Exception):
    pass


def _tail(path: Path, size: int = 2000) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - size))
            return fh.read().decode(errors="replace").strip()
    except OSError:
        return ""


class HAProxyProcess:
    """One HAProxy master (and its workers) owned by this run."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.config = workdir / CONFIG_FILE
        self.master_socket = workdir / MASTER_SOCKET
        self.admin_socket = workdir / ADMIN_SOCKET
        self.pid_file = workdir / PID_FILE
        self.log_file = workdir / LOG_FILE
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    # ---- clients

    def master(self, *, patient: bool = True) -> MasterClient:
        retry = RetryPolicy() if patient else RetryPolicy(total=0)
        return MasterClient(str(self.master_socket), timeout=10.0, retry=retry)

    def admin(self) -> RuntimeClient:
        return RuntimeClient(str(self.admin_socket), timeout=10.0)

    # ---- state

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def log_tail(self) -> str:
        return _tail(self.log_file)

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

    def start(self, timeout: float = 20.0) -> frozenset[int]:
        """Start HAProxy on the configuration in the workdir; returns the worker pids once the
        master lists a worker and the admin socket answers."""
        if self.proc is not None:
            self.stop(timeout=2.0)
        self.kill_leftover()
        for sock in (self.master_socket, self.admin_socket):
            sock.unlink(missing_ok=True)
        with self.log_file.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "-W",
                    "-S",
                    f"{self.master_socket},mode,600",
                    "-f",
                    CONFIG_FILE,
                ],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        self.pid_file.write_text(f"{self.proc.pid}\n")
        log.info("haproxy: started master pid %d", self.proc.pid)
        deadline = time.monotonic() + timeout
        master = self.master(patient=False)
        admin = RuntimeClient(str(self.admin_socket), timeout=5.0, retry=RetryPolicy(total=0))
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise StartFailed(f"haproxy exited with code {code}: {self.log_tail()}")
            with contextlib.suppress(RuntimeApiError, OSError):
                workers = master.show_proc().worker_pids
                if workers:
                    admin.show_info()
                    return workers
            time.sleep(0.05)
        self.stop(timeout=2.0)
        raise StartFailed(f"haproxy did not become ready within {timeout}s: {self.log_tail()}")

    def worker_pids(self) -> frozenset[int]:
        return self.master(patient=False).show_proc().worker_pids

    def stop(self, timeout: float = 10.0) -> None:
        """Soft stop (SIGUSR1), bounded; then SIGTERM; then SIGKILL to the process group."""
        proc, self.proc = self.proc, None
        if proc is None:
            self.kill_leftover()
            return
        try:
            if proc.poll() is None:
                self._signal_and_wait(proc, signal.SIGUSR1, timeout)
            if proc.poll() is None:
                log.warning("haproxy: pid %d still running after %ss; SIGTERM", proc.pid, timeout)
                self._signal_and_wait(proc, signal.SIGTERM, 3.0)
        finally:
            # Workers of a killed master, or anything else in its group: nothing stays behind.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5.0)
            self.pid_file.unlink(missing_ok=True)

    @staticmethod
    def _signal_and_wait(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)

    def kill_leftover(self) -> None:
        """Kill a master left by an earlier run in this workdir (we were SIGKILLed): it would
        hold the ports. Only a process that is haproxy and runs in our workdir is touched."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        if self.proc is not None and self.proc.pid == pid:
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            self.pid_file.unlink(missing_ok=True)
            return
        if not cmdline or "haproxy" not in Path(cmdline[0].decode(errors="replace")).name:
            return
        if cwd.resolve() != self.workdir.resolve():
            return
        log.warning("haproxy: killing master pid %d left by an earlier run", pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
