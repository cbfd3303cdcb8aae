"""The manifest-directory source: Kubernetes objects from *.yaml / *.yml / *.json files.

Every file below the directory is read (multi-document YAML, ``kind: List``); objects without
a namespace are in ``default``. Files are watched (watchfiles): adding, editing or removing a
file is applied while running. A file that fails to parse keeps the objects it last yielded.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import Gauge
from watchfiles import watch

from polyingress.core.store import CLUSTER_SCOPED, KINDS, ObjectKey, ObjectStore, object_key

__all__ = ["ManifestError", "ManifestSource", "load_objects"]

log = logging.getLogger(__name__)

INVALID_FILES = Gauge(
    "polyingress_manifest_files_invalid",
    "Manifest files that failed to parse (their last good objects are kept)",
)

SUFFIXES = (".yaml", ".yml", ".json")
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestError(ValueError):
    pass


def _normalize(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = obj.get("kind")
    if kind not in KINDS:
        return None
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    out = dict(obj)
    if kind not in CLUSTER_SCOPED and not meta.get("namespace"):
        out["metadata"] = {**meta, "namespace": "default"}
    return out


def _expand(doc: Any) -> Iterator[Mapping[str, Any]]:
    if not isinstance(doc, Mapping):
        return
    if doc.get("kind") == "List" or (
        isinstance(doc.get("kind"), str) and doc["kind"].endswith("List") and "items" in doc
    ):
        for item in doc.get("items") or []:
            yield from _expand(item)
    else:
        yield doc


def load_objects(path: Path) -> list[dict[str, Any]]:
    """Parse one file into normalized objects of the kinds we read. Raises ManifestError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from exc
    try:
        if path.suffix == ".json":
            docs: list[Any] = [json.loads(text)]
        else:
            docs = list(yaml.load_all(text, Loader=_Loader))
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from exc
    objects = []
    for doc in docs:
        for item in _expand(doc):
            obj = _normalize(item)
            if obj is not None:
                objects.append(obj)
    return objects


class ManifestSource:
    """Feeds an ObjectStore from a directory; ``start()`` watches it in a thread."""

    def __init__(self, directory: Path, store: ObjectStore, *, debounce_ms: int = 50) -> None:
        self.directory = Path(directory).resolve()
        self.store = store
        self.debounce_ms = debounce_ms
        self.file_objects: dict[Path, dict[ObjectKey, dict[str, Any]]] = {}
        self.file_errors: dict[Path, str] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            raise ManifestError(f"{self.directory}: not a directory")
        return sorted(
            p
            for p in self.directory.rglob("*")
            if p.suffix in SUFFIXES and p.is_file() and not p.name.startswith(".")
        )

    def _read(self, path: Path) -> None:
        try:
            objects = load_objects(path)
        except ManifestError as exc:
            self.file_errors[path] = str(exc)
            INVALID_FILES.set(len(self.file_errors))
            log.warning("%s; keeping the objects it yielded before", exc)
            return
        self.file_errors.pop(path, None)
        INVALID_FILES.set(len(self.file_errors))
        keyed: dict[ObjectKey, dict[str, Any]] = {}
        for obj in objects:
            key = object_key(obj)
            if key is not None:
                keyed[key] = obj
        self.file_objects[path] = keyed

    def _publish(self) -> bool:
        merged: dict[ObjectKey, dict[str, Any]] = {}
        for path in sorted(self.file_objects):
            merged.update(self.file_objects[path])
        current = {(k, ns, n) for k in KINDS for (ns, n) in self.store.keys(k)}
        deletes = [k for k in current if k not in merged]
        return self.store.replace_many(upserts=merged.values(), deletes=deletes)

    def load(self) -> bool:
        """(Re)read every file and publish the result; True when the store changed."""
        with self._lock:
            files = self._files()
            for gone in set(self.file_objects) - set(files):
                del self.file_objects[gone]
                self.file_errors.pop(gone, None)
            for path in files:
                self._read(path)
            return self._publish()

    def apply_changes(self, paths: set[Path]) -> bool:
        """Re-read the changed files and publish only the objects they can affect, so that the
        cost of editing one small file does not grow with the size of the whole directory."""
        with self._lock:
            affected: set[ObjectKey] = set()
            # A new directory's files may have been written before its watch was armed:
            # read them from the directory itself.
            paths = set(paths)
            for path in [p for p in paths if p.is_dir()]:
                paths.update(f for f in path.rglob("*") if f.is_file())
            for path in sorted(paths):
                if path.suffix not in SUFFIXES or path.name.startswith("."):
                    continue
                affected.update(self.file_objects.get(path, {}))
                if path.is_file():
                    self._read(path)
                else:
                    self.file_objects.pop(path, None)
                    self.file_errors.pop(path, None)
                affected.update(self.file_objects.get(path, {}))
            if not affected:
                return False
            winners: dict[ObjectKey, dict[str, Any]] = {}
            for path in sorted(self.file_objects):  # later files win, as in _publish
                objects = self.file_objects[path]
                for key in affected.intersection(objects) if len(objects) > 64 else objects:
                    if key in affected:
                        winners[key] = objects[key]
            deletes = [k for k in affected if k not in winners]
            return self.store.replace_many(upserts=winners.values(), deletes=deletes)

    def start(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="manifest-watch", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        for changes in watch(
            self.directory,
            stop_event=self._stop,
            debounce=self.debounce_ms,
            step=5,  # yield 5 ms after the last event: changes are served fast
            rust_timeout=200,
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            if not self._ready.is_set():
                # The first yield means the watcher is armed: re-read once to catch any change
                # made between the initial load and now.
                try:
                    self.load()
                except Exception:
                    log.exception("re-reading the manifest directory failed")
                self._ready.set()
            if not changes:
                continue
            try:
                self.apply_changes({Path(p) for _change, p in changes})
            except Exception:  # never let one bad event stop the watcher
                log.exception("applying manifest changes failed")
