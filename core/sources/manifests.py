"""The manifest-directory source: Kubernetes objects from *.yaml / *.yml / *.json files.

Every file below the directory is read (multi-document YAML, ``kind: List``); objects without
a namespace are in ``default`` (cluster-scoped kinds: IngressClass, Namespace, GatewayClass
have none). A kind is taken from its own API group only (``store.accepts``): a Gateway of
``networking.istio.io`` is not a Gateway API Gateway. Files are watched (watchfiles): adding,
editing or removing a file is applied while running. A file that fails to parse keeps the
objects it last yielded.

There is no API server in front of the files, so what it would do on the way in is done here:
``extensions/v1beta1`` and ``networking.k8s.io/v1beta1`` Ingresses (removed in Kubernetes 1.22,
still in many tutorials) are converted to ``networking.k8s.io/v1`` as the API server converted
them, with a warning that shows the v1 form; Gateway API objects written as
``gateway.networking.k8s.io/v1beta1`` read as ``.../v1`` (the CRDs convert without changing a
field, and v1beta1 is still served: no warning).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import Gauge
from watchfiles import watch

from polyingress.core.pipeline.store import (
    CLUSTER_SCOPED,
    GATEWAY_KINDS,
    GATEWAY_V1,
    KINDS,
    ObjectKey,
    ObjectStore,
    accepts,
    object_key,
)

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


LEGACY_INGRESS_VERSIONS = ("extensions/v1beta1", "networking.k8s.io/v1beta1")
INGRESS_V1 = "networking.k8s.io/v1"
_SHOWN_LINES = 40  # of the v1 form in a conversion warning


def _normalize(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = obj.get("kind")
    if not accepts(kind, obj.get("apiVersion")):
        return None  # not a kind we read, or a kind of that name from another API group
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    out = dict(obj)
    if kind in GATEWAY_KINDS:
        out["apiVersion"] = GATEWAY_V1  # what the API server answers a v1 read with
    if kind not in CLUSTER_SCOPED and not meta.get("namespace"):
        out["metadata"] = {**meta, "namespace": "default"}
    return out


def _v1_backend(backend: Any) -> Any:
    """``serviceName``/``servicePort`` -> ``service.name``/``service.port``: an integer port
    is a number, a string one a port name (IntOrString, as the API server converted it)."""
    if not isinstance(backend, Mapping) or "service" in backend:
        return backend
    out = {k: v for k, v in backend.items() if k not in ("serviceName", "servicePort")}
    if "serviceName" in backend or "servicePort" in backend:
        service: dict[str, Any] = {}
        if "serviceName" in backend:
            service["name"] = backend["serviceName"]
        port = backend.get("servicePort")
        if isinstance(port, str):
            service["port"] = {"name": port}
        elif port is not None:
            service["port"] = {"number": port}
        out["service"] = service
    return out


def _v1_paths(paths: Any) -> Any:
    if not isinstance(paths, list):
        return paths
    converted = []
    for p in paths:
        if isinstance(p, Mapping):
            head = {"path": p["path"]} if "path" in p else {}
            p = {
                **head,
                # The v1beta1 default: matching is up to the controller (Prefix, for us).
                "pathType": (
                    "ImplementationSpecific" if p.get("pathType") is None else p["pathType"]
                ),
                "backend": _v1_backend(p.get("backend")),
                **{k: v for k, v in p.items() if k not in ("path", "pathType", "backend")},
            }
        converted.append(p)
    return converted


def _v1_rules(rules: Any) -> Any:
    if not isinstance(rules, list):
        return rules
    converted = []
    for rule in rules:
        http = rule.get("http") if isinstance(rule, Mapping) else None
        if isinstance(http, Mapping):
            rule = {**rule, "http": {**http, "paths": _v1_paths(http.get("paths"))}}
        converted.append(rule)
    return converted


def ingress_v1(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An ``extensions/v1beta1`` or ``networking.k8s.io/v1beta1`` Ingress in its v1 form."""
    out = {**obj, "apiVersion": INGRESS_V1}
    spec = obj.get("spec")
    if isinstance(spec, Mapping):
        new_spec = {k: v for k, v in spec.items() if k != "backend"}
        if spec.get("backend") is not None and spec.get("defaultBackend") is None:
            new_spec["defaultBackend"] = _v1_backend(spec["backend"])
        if "rules" in spec:
            new_spec["rules"] = _v1_rules(spec["rules"])
        out["spec"] = new_spec
    return out


def _conversion_warning(path: Path, old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    meta = new.get("metadata") or {}
    name = f"{meta.get('namespace') or 'default'}/{meta.get('name') or '(name missing)'}"
    spec = new.get("spec")
    if not isinstance(spec, Mapping):
        spec = {}
    shown = {k: spec[k] for k in ("defaultBackend", "rules") if k in spec}
    lines = yaml.safe_dump({"spec": shown}, sort_keys=False, width=100).splitlines()
    if len(lines) > _SHOWN_LINES:
        more = len(lines) - _SHOWN_LINES
        lines = [*lines[:_SHOWN_LINES], f"# ... {more} more lines"]
    snippet = "\n".join("    " + line for line in lines)
    return (
        f"{path}: Ingress {name} is {old.get('apiVersion')}, which Kubernetes removed in 1.22; "
        f"read as {INGRESS_V1} the way the API server converted it (no pathType: "
        "ImplementationSpecific; serviceName/servicePort: service.name/port). Its v1 form:\n"
        + snippet
    )


def _convert(path: Path, obj: dict[str, Any], warnings: list[str] | None) -> dict[str, Any]:
    if obj.get("kind") != "Ingress" or obj.get("apiVersion") not in LEGACY_INGRESS_VERSIONS:
        return obj
    new = ingress_v1(obj)
    if warnings is not None:
        warnings.append(_conversion_warning(path, obj, new))
    return new


def _yaml_error(exc: yaml.YAMLError) -> str:
    """One line: where, then what (PyYAML's own text spans several lines)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = exc.problem or exc.context or "syntax error"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        return f"{where}{what}{context}"
    return " ".join(str(exc).split())


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


def load_objects(path: Path, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """Parse one file into normalized objects of the kinds we read. Raises ManifestError.

    Legacy Ingresses are converted to v1; one warning per conversion goes to ``warnings``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{path}: cannot read: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start})"
        ) from exc
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        if path.suffix == ".json":
            docs: list[Any] = [json.loads(text)]
        else:
            docs = list(yaml.load_all(text, Loader=_Loader))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {_yaml_error(exc)}") from exc
    objects = []
    for i, doc in enumerate(docs):
        if doc is not None and not isinstance(doc, Mapping) and warnings is not None:
            what = f"document {i + 1}" if len(docs) > 1 else "the file"
            warnings.append(f"{path}: {what} is not a Kubernetes object (no kind); ignored")
        for item in _expand(doc):
            obj = _normalize(item)
            if obj is not None:
                objects.append(_convert(path, obj, warnings))
    return objects


class ManifestSource:
    """Feeds an ObjectStore from a directory; ``start()`` watches it in a thread."""

    def __init__(self, directory: Path, store: ObjectStore, *, debounce_ms: int = 50) -> None:
        self.directory = Path(directory).resolve()
        self.store = store
        self.debounce_ms = debounce_ms
        self.file_objects: dict[Path, dict[ObjectKey, dict[str, Any]]] = {}
        self.file_errors: dict[Path, str] = {}
        self.file_warnings: dict[Path, tuple[str, ...]] = {}
        # What each file was when last read (see _unchanged): arming the watch re-reads only
        # the files that changed since.
        self.file_stats: dict[Path, tuple[int, int, int, int]] = {}
        self._read_at: dict[Path, int] = {}
        # Problems found by load() before start() are the caller's to report (validate prints
        # them, run logs them); once watching, the source logs what each change brings.
        self._watching = False
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            what = "not a directory" if self.directory.exists() else "no such directory"
            raise ManifestError(f"{self.directory}: {what}")
        return sorted(
            p
            for p in self.directory.rglob("*")
            if p.suffix in SUFFIXES and p.is_file() and not p.name.startswith(".")
        )

    @staticmethod
    def _stat(path: Path) -> tuple[int, int, int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    # A file modified this close to (or after) the moment it was read may have been written
    # again within the same timestamp tick (Linux file systems: a few ms) without its mtime
    # moving: it is not known to be unchanged (git's "racily clean" rule).
    _RACY_NS = 100_000_000

    def _unchanged(self, path: Path) -> bool:
        """The file is as it was when last read: same inode, size, mtime and ctime, and its
        mtime not within ``_RACY_NS`` of that read."""
        recorded = self.file_stats.get(path)
        if recorded is None or self._stat(path) != recorded:
            return False
        return recorded[2] < self._read_at[path] - self._RACY_NS

    def _forget(self, path: Path) -> None:
        self.file_objects.pop(path, None)
        self.file_errors.pop(path, None)
        self.file_warnings.pop(path, None)
        self.file_stats.pop(path, None)
        self._read_at.pop(path, None)

    def _read(self, path: Path) -> None:
        warnings: list[str] = []
        # Stat before reading: a write after the stat leaves a newer file than recorded.
        stat = self._stat(path)
        if stat is not None:
            self.file_stats[path] = stat
            self._read_at[path] = time.time_ns()
        else:
            self.file_stats.pop(path, None)
        try:
            objects = load_objects(path, warnings)
        except ManifestError as exc:
            # Said once per change: the watcher's first pass re-reads every file.
            if self._watching and self.file_errors.get(path) != str(exc):
                kept = path in self.file_objects
                log.warning("%s%s", exc, "; keeping the objects it yielded before" if kept else "")
            self.file_errors[path] = str(exc)
            INVALID_FILES.set(len(self.file_errors))
            return
        self.file_errors.pop(path, None)
        INVALID_FILES.set(len(self.file_errors))
        if self._watching and self.file_warnings.get(path, ()) != tuple(warnings):
            for warning in warnings:
                log.warning("%s", warning)
        if warnings:
            self.file_warnings[path] = tuple(warnings)
        else:
            self.file_warnings.pop(path, None)
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
            for gone in (set(self.file_objects) | set(self.file_errors)) - set(files):
                self._forget(gone)
            INVALID_FILES.set(len(self.file_errors))
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
                    self._forget(path)
                    INVALID_FILES.set(len(self.file_errors))
                affected.update(self.file_objects.get(path, {}))
            if not affected:
                return False
            winners: dict[ObjectKey, dict[str, Any]] = {}
            for path in sorted(self.file_objects):  # later files win, as in _publish
                objects = self.file_objects[path]
                # Look the few affected keys up (set.intersection(dict) walks the whole dict:
                # 30,000 objects in the 10,000-Ingress world's file, at every change).
                for key in affected:
                    if key in objects:
                        winners[key] = objects[key]
            deletes = [k for k in affected if k not in winners]
            return self.store.replace_many(upserts=winners.values(), deletes=deletes)

    def changed_since_read(self) -> set[Path]:
        """The files added, removed or changed since they were last read."""
        with self._lock:
            files = set(self._files())
            known = set(self.file_objects) | set(self.file_errors)
            return (known - files) | {p for p in files if not self._unchanged(p)}

    def start(self) -> None:
        self._watching = True
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
            # Yield 2 ms after the last event (watchfiles checks every `step` ms: a change
            # waits 1.5 steps on average; at 2 ms the idle watch costs ~0.6 % of a core).
            step=2,
            rust_timeout=200,
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            paths = {Path(p) for _change, p in changes}
            if not self._ready.is_set():
                # The first yield means the watcher is armed: catch the changes made between
                # the initial load and now. Only the files that changed are read again (all of
                # them took seconds at 10,000 Ingresses, delaying the first change).
                try:
                    paths |= self.changed_since_read()
                except Exception:
                    log.exception("re-reading the manifest directory failed")
                self._ready.set()
            if not paths:
                continue
            try:
                self.apply_changes(paths)
            except Exception:  # never let one bad event stop the watcher
                log.exception("applying manifest changes failed")
