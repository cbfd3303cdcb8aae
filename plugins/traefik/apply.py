"""Write a rendered Traefik configuration where the file provider watches it.

Workdir layout (the backend owns ``RunSettings.workdir``)::

    <workdir>/traefik.yml              static configuration (managed mode)
    <workdir>/traefik.pid              the pid of the Traefik we run (managed mode)
    <workdir>/dynamic/polyingress.yaml the watched directory: the configuration, with its
                                       readiness probe (render.probe_config)
    <workdir>/certs/*.crt, *.key       certificates and keys, mode 0600
    <workdir>/plugins-local/src/polyingress/filters/
                                       polyingress's filters, a local plugin (filters.py),
                                       read by Traefik at its start

Traefik watches ``dynamic/`` and reloads on every event in it, so the new document is written
to a temporary file in the *parent* (``<workdir>``), fsynced, and renamed over the live file:
Traefik never sees a temporary or half-written file (rename within one filesystem is atomic).
Certificate and key files are written before the document that names them and removed only
after a document no longer naming them is in place. The probe file of earlier releases
(``polyingress-probe.yaml``) is removed before the document, which now holds the probe, is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from polyingress.core import write_atomic

from .filters import plugin_files
from .render import DYNAMIC_FILE, TraefikConfig

__all__ = ["Layout", "WriteResult", "install_plugin", "write_config"]

SECRET_MODE = 0o600
LEGACY_PROBE_FILE = "polyingress-probe.yaml"  # the probe's own file before it joined the document
_SECRET_SUFFIXES = (".crt", ".key")


@dataclass(frozen=True, slots=True)
class Layout:
    workdir: Path

    @property
    def dynamic_dir(self) -> Path:
        return self.workdir / "dynamic"

    @property
    def config_path(self) -> Path:
        return self.dynamic_dir / DYNAMIC_FILE

    @property
    def legacy_probe_path(self) -> Path:
        return self.dynamic_dir / LEGACY_PROBE_FILE

    @property
    def cert_dir(self) -> Path:
        return self.workdir / "certs"

    @property
    def static_path(self) -> Path:
        return self.workdir / "traefik.yml"

    @property
    def pid_path(self) -> Path:
        return self.workdir / "traefik.pid"


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteResult:
    """``config_written`` False means the live document already was this one."""

    config_written: bool
    files_written: tuple[str, ...] = ()
    files_removed: tuple[str, ...] = ()


def _write_if_changed(path: Path, text: str) -> bool:
    # The temporary file goes to the parent of the watched directory: Traefik never sees it.
    # Owner only: a basicAuth middleware holds password hashes.
    return write_atomic(path, text, mode=0o600, staging=path.parent.parent)


def _prepare(layout: Layout) -> None:
    layout.dynamic_dir.mkdir(parents=True, exist_ok=True)
    layout.cert_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(layout.cert_dir, 0o700)


def install_plugin(layout: Layout) -> None:
    """Put polyingress's filters where Traefik looks for local plugins (its working directory
    is the workdir): before Traefik starts, as it loads plugins only then."""
    for name, text in plugin_files():
        path = layout.workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)


def write_config(layout: Layout, rendered: TraefikConfig) -> WriteResult:
    """Make ``layout`` hold ``rendered``: secrets first, then the document, then cleanup."""
    _prepare(layout)
    written = [
        f.name
        for f in rendered.files
        if write_atomic(layout.cert_dir / f.name, f.data, mode=SECRET_MODE)
    ]

    # Before the document: its router has the probe's name, which must not be defined twice.
    layout.legacy_probe_path.unlink(missing_ok=True)
    config_written = _write_if_changed(layout.config_path, rendered.text)

    wanted = {f.name for f in rendered.files}
    removed = []
    for entry in sorted(layout.cert_dir.iterdir()):
        if entry.name.endswith(_SECRET_SUFFIXES) and entry.name not in wanted:
            entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return WriteResult(
        config_written=config_written,
        files_written=tuple(written),
        files_removed=tuple(removed),
    )
