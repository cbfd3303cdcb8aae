"""Atomic file writes for generated configuration, keys and maps."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["FileGuard", "write_atomic"]


def write_atomic(
    path: Path, data: str | bytes, mode: int = 0o644, *, staging: Path | None = None
) -> bool:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename).

    Returns False, writing nothing, when the file already holds exactly ``data``. Readers see
    either the old or the new file, never a partial one. ``mode`` is set before any byte is
    written, so a key file is never readable by others, not even for an instant. The temporary
    file is made in ``staging`` (default: ``path``'s directory; it must be on the same
    filesystem), so that a program watching ``path``'s directory never sees it.
    """
    raw = data.encode() if isinstance(data, str) else data
    try:
        if path.read_bytes() == raw and (path.stat().st_mode & 0o777) == mode:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent if staging is None else staging
    fd, tmp = tempfile.mkstemp(dir=staging, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    for directory in {path.parent, staging}:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return True


class FileGuard:
    """Remembers generated files as written and puts them back if something else changed or
    deleted them (a backend calls ``record`` after each apply and ``repair`` when supervising).

    A proxy only reads its files at (re)load, so a damaged file would otherwise go unnoticed
    until the next reload or restart picked it up.
    """

    def __init__(self) -> None:
        self._files: dict[Path, tuple[bytes, int, tuple[int, int, int]]] = {}

    @staticmethod
    def _signature(path: Path) -> tuple[int, int, int] | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def record(self, paths: Iterable[Path]) -> None:
        files = {}
        for path in paths:
            try:
                st = path.stat()
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            files[path] = (data, st.st_mode & 0o777, (st.st_ino, st.st_size, st.st_mtime_ns))
        self._files = files

    def repair(self) -> list[Path]:
        """Rewrite every recorded file whose signature changed; returns the paths rewritten."""
        fixed = []
        for path, (data, mode, signature) in list(self._files.items()):
            if self._signature(path) == signature:
                continue
            write_atomic(path, data, mode)
            now = self._signature(path)
            if now is not None:
                self._files[path] = (data, mode, now)
            fixed.append(path)
        return fixed
