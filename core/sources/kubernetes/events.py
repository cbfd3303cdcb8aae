"""events.k8s.io/v1 Events on Ingress objects, shown by ``kubectl describe ingress``.

Reasons: ``Sync`` (Normal) when an Ingress's configuration was applied to the proxy,
``Rejected`` (Warning) with the precise problems when an Ingress is invalid or loses a
conflict to an older one, ``BackendError`` (Warning) when the proxy refused a configuration.

Like client-go's event library (``k8s.io/client-go/tools/events``): an Event identical to one
written less than ``dedupe_window`` ago (same object, type, reason and note) does not create a
new object but counts in the first one's ``series`` (count, lastObservedTime), patched at most
once per ``series_interval``; each object has a token bucket (burst 25, one token per 5
minutes: client-go's spam filter) and Events beyond it are dropped and counted. Only the
leader writes: Events emitted while not leading are dropped, and a queued write is skipped
when leadership was lost in between. Writes run on the recorder's own thread and never block
the reconciler.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubernetes import client as kclient
from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter

from polyingress.core.api import ApplyError
from polyingress.core.hookspecs import hookimpl
from polyingress.core.pipeline.builder import BuildResult
from polyingress.core.pipeline.model import ObjectRef, RouteModel
from polyingress.core.pipeline.problems import Problem, Severity
from polyingress.core.pipeline.store import ObjectStore, Snapshot
from polyingress.core.sources.kubernetes.source import merge_patch, raw

__all__ = ["EventRecorder", "IngressEvents"]

log = logging.getLogger("polyingress.events")

EVENTS = Counter("polyingress_events_total", "Events by reason and outcome", ["reason", "outcome"])

NORMAL = "Normal"
WARNING = "Warning"
NOTE_MAX = 1024  # the API rejects longer notes
DEDUPE_WINDOW = 6 * 60.0  # client-go: isomorphic events within 6 minutes form a series
BURST = 25
REFILL_SECONDS = 300.0


class Leader(Protocol):
    def is_leader(self) -> bool: ...


def _microtime(ts: float | None = None) -> str:
    when = datetime.datetime.fromtimestamp(ts if ts is not None else time.time(), datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Series:
    name: str
    namespace: str
    count: int
    first: float
    last: float
    written_count: int
    patched_at: float
    created: bool = False


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass(frozen=True, slots=True)
class Regarding:
    """The object an Event is about (an ObjectReference)."""

    kind: str
    namespace: str
    name: str
    api_version: str = "networking.k8s.io/v1"
    uid: str = ""
    resource_version: str = ""

    def reference(self) -> dict[str, Any]:
        ref = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }
        if self.uid:
            ref["uid"] = self.uid
        if self.resource_version:
            ref["resourceVersion"] = self.resource_version
        return ref


class EventRecorder:
    """De-duplicating, rate-limited Event writer (see the module docstring)."""

    def __init__(
        self,
        api: kclient.ApiClient,
        *,
        leader: Leader,
        controller: str,
        instance: str,
        series_interval: float = 30.0,
        dedupe_window: float = DEDUPE_WINDOW,
        burst: int = BURST,
        refill_seconds: float = REFILL_SECONDS,
        request_timeout: float = 10.0,
        clock: Any = time.time,
    ) -> None:
        self.events = kclient.EventsV1Api(api)
        self.leader = leader
        self.controller = controller
        self.instance = instance[:128]
        self.series_interval = series_interval
        self.dedupe_window = dedupe_window
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.request_timeout = request_timeout
        self.clock = clock
        self.series: dict[tuple[str, ...], _Series] = {}
        self.buckets: dict[tuple[str, str, str], _Bucket] = {}
        self.dropped = 0
        self._queue: queue.Queue[tuple[str, tuple[str, ...], dict[str, Any]] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public --------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=self.request_timeout + 1)

    def emit(self, regarding: Regarding, etype: str, reason: str, action: str, note: str) -> bool:
        """Queue an Event; False when dropped (not leading, or rate-limited)."""
        if not self.leader.is_leader():
            EVENTS.labels(reason, "not_leader").inc()
            return False
        note = note if len(note) <= NOTE_MAX else note[: NOTE_MAX - 3] + "..."
        key = (regarding.namespace, regarding.name, regarding.uid, etype, reason, note)
        now = self.clock()
        with self._lock:
            series = self.series.get(key)
            if series is not None and now - series.last < self.dedupe_window:
                series.count += 1
                series.last = now
                EVENTS.labels(reason, "series").inc()
                self._queue.put(("flush", key, {}))
                return True
            if not self._take(regarding, now):
                self.dropped += 1
                EVENTS.labels(reason, "rate_limited").inc()
                log.debug(
                    "event %s on %s/%s rate-limited", reason, regarding.namespace, regarding.name
                )
                return False
            digest = hashlib.sha256(f"{uuid.uuid4()}".encode()).hexdigest()[:16]
            name = f"{regarding.name[:200]}.{digest}"
            self.series[key] = _Series(
                name=name,
                namespace=regarding.namespace,
                count=1,
                first=now,
                last=now,
                written_count=1,
                patched_at=now,
            )
            self._prune(now)
        body = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": regarding.namespace},
            "eventTime": _microtime(now),
            "reportingController": self.controller,
            "reportingInstance": self.instance,
            "action": action,
            "reason": reason,
            "note": note,
            "type": etype,
            "regarding": regarding.reference(),
        }
        self._queue.put(("create", key, body))
        EVENTS.labels(reason, "queued").inc()
        return True

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until every queued write was attempted (tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    # -- internals ------------------------------------------------------------------------------

    def _take(self, regarding: Regarding, now: float) -> bool:
        bkey = (regarding.namespace, regarding.name, regarding.uid)
        bucket = self.buckets.get(bkey)
        if bucket is None:
            bucket = self.buckets[bkey] = _Bucket(tokens=float(self.burst), at=now)
        bucket.tokens = min(
            float(self.burst), bucket.tokens + (now - bucket.at) / self.refill_seconds
        )
        bucket.at = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _prune(self, now: float) -> None:
        if len(self.series) > 4096:
            for key in [k for k, s in self.series.items() if now - s.last >= self.dedupe_window]:
                del self.series[key]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=self.series_interval / 2)
            except queue.Empty:
                self._flush_due()
                continue
            try:
                if item is None:
                    return
                op, key, body = item
                if op == "create":
                    self._create(key, body)
                self._flush_due()
            except Exception:
                log.exception("writing an Event failed")
            finally:
                self._queue.task_done()

    def _create(self, key: tuple[str, ...], body: dict[str, Any]) -> None:
        if not self.leader.is_leader():
            EVENTS.labels(body["reason"], "not_leader").inc()
            with self._lock:
                self.series.pop(key, None)
            return
        try:
            raw(
                self.events.create_namespaced_event,
                body["metadata"]["namespace"],
                body,
                _request_timeout=self.request_timeout,
            )
        except ApiException as exc:
            EVENTS.labels(body["reason"], "failed").inc()
            log.warning(
                "creating Event %s failed: HTTP %s %s", body["reason"], exc.status, exc.reason
            )
            with self._lock:
                self.series.pop(key, None)
            return
        except Exception as exc:
            EVENTS.labels(body["reason"], "failed").inc()
            log.warning("creating Event %s failed: %s", body["reason"], exc)
            with self._lock:
                self.series.pop(key, None)
            return
        EVENTS.labels(body["reason"], "written").inc()
        with self._lock:
            series = self.series.get(key)
            if series is not None:
                series.created = True

    def _flush_due(self) -> None:
        now = self.clock()
        with self._lock:
            due = [
                (key, s)
                for key, s in self.series.items()
                if s.created
                and s.count > s.written_count
                and now - s.patched_at >= self.series_interval
            ]
        for key, s in due:
            if not self.leader.is_leader():
                return
            patch = {"series": {"count": s.count, "lastObservedTime": _microtime(s.last)}}
            try:
                merge_patch(
                    self.events.patch_namespaced_event,
                    s.name,
                    s.namespace,
                    patch,
                    self.request_timeout,
                )
            except Exception as exc:
                log.warning("updating the series of Event %s failed: %s", s.name, exc)
                with self._lock:
                    self.series.pop(key, None)  # the next occurrence starts a new Event
                continue
            with self._lock:
                s.written_count = s.count
                s.patched_at = now
            EVENTS.labels(key[4], "series_written").inc()


def _fingerprint(obj: Mapping[str, Any] | None) -> str:
    if obj is None:
        return ""
    meta = obj.get("metadata") or {}
    content = {"spec": obj.get("spec"), "annotations": meta.get("annotations")}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class _Memory:
    synced: dict[ObjectRef, str] = field(default_factory=dict)  # ref -> fingerprint
    rejected: dict[ObjectRef, tuple[str, str]] = field(default_factory=dict)  # (fingerprint, note)


_API_VERSIONS = {"Ingress": "networking.k8s.io/v1", "HTTPRoute": "gateway.networking.k8s.io/v1"}


class IngressEvents:
    """Turns builds and applies into Events on the Ingresses concerned."""

    def __init__(self, recorder: EventRecorder, store: ObjectStore, *, backend: str = "") -> None:
        self.recorder = recorder
        self.store = store
        self.backend = backend or "the proxy"
        self.memory = _Memory()
        self.failed_models: set[str] = set()

    def _regarding(
        self, ref: ObjectRef, snapshot: Snapshot | None = None
    ) -> tuple[Regarding, Mapping[str, Any] | None]:
        snap = snapshot if snapshot is not None else self.store.snapshot()
        obj = snap.get(ref.kind, ref.namespace, ref.name)
        meta = (obj or {}).get("metadata") or {}
        return (
            Regarding(
                kind=ref.kind,
                namespace=ref.namespace,
                name=ref.name,
                api_version=_API_VERSIONS.get(ref.kind, "networking.k8s.io/v1"),
                uid=str(meta.get("uid") or ""),
                resource_version=str(meta.get("resourceVersion") or ""),
            ),
            obj,
        )

    def built(self, result: BuildResult) -> None:
        """Rejected: invalid Ingresses of our class, and Ingresses that lost a conflict."""
        per_ref: dict[ObjectRef, list[Problem]] = {}
        rejected = set(result.rejected)
        for p in result.problems:
            if p.ref.kind == "HTTPRoute":
                # An HTTPRoute's errors: refused, or a rule this backend cannot serve.
                if p.severity is Severity.ERROR:
                    per_ref.setdefault(p.ref, []).append(p)
                continue
            if p.ref.kind != "Ingress":
                continue
            if (p.ref in rejected and p.severity is Severity.ERROR) or p.reason == "Conflict":
                per_ref.setdefault(p.ref, []).append(p)
        snapshot = self.store.snapshot() if per_ref else None
        for ref in sorted(per_ref):
            problems = per_ref[ref]
            note = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in problems)
            if ref in rejected:
                note = "Ingress rejected: " + note
            elif ref.kind == "HTTPRoute":
                note = "HTTPRoute not accepted: " + note
            regarding, obj = self._regarding(ref, snapshot)
            memo = (_fingerprint(obj), note)
            if self.memory.rejected.get(ref) == memo:
                continue
            if self.recorder.emit(regarding, WARNING, "Rejected", "Validate", note):
                self.memory.rejected[ref] = memo
        for ref in [r for r in self.memory.rejected if r not in per_ref]:
            del self.memory.rejected[ref]
        for ref in [r for r in self.memory.synced if r in rejected or r in result.ignored]:
            del self.memory.synced[ref]

    def applied(self, result: BuildResult, model: RouteModel) -> None:
        """Sync: each served Ingress whose content changed since its last Sync Event."""
        paths: dict[ObjectRef, int] = {}
        hosts: dict[ObjectRef, set[str]] = {}
        for vhost in model.vhosts:
            for route in vhost.routes:
                if route.from_catch_all:
                    continue
                paths[route.source] = paths.get(route.source, 0) + 1
                hosts.setdefault(route.source, set()).add(vhost.host or "*")
        snapshot = self.store.snapshot()
        for ref in result.served:
            regarding, obj = self._regarding(ref, snapshot)
            fp = _fingerprint(obj)
            if self.memory.synced.get(ref) == fp:
                continue
            n = paths.get(ref, 0)
            where = ", ".join(sorted(hosts.get(ref, ()))) or "no host"
            plural = "s" if n != 1 else ""
            note = f"Configuration applied to {self.backend}: {n} path{plural} on {where}"
            if self.recorder.emit(regarding, NORMAL, "Sync", "Apply", note):
                self.memory.synced[ref] = fp

    def refused(self, exc: ApplyError, model: RouteModel, served: tuple[ObjectRef, ...]) -> None:
        """BackendError on the Ingresses the proxy blamed, else on those not yet synced."""
        if model.model_hash in self.failed_models:
            return
        self.failed_models.add(model.model_hash)
        snapshot = self.store.snapshot()
        refs = [r for r in exc.refs if r.kind == "Ingress"]
        if not refs:
            refs = [
                r
                for r in served
                if self.memory.synced.get(r) != _fingerprint(self._regarding(r, snapshot)[1])
            ]
        if not refs:
            refs = list(served)
        note = f"{self.backend} refused the configuration; still serving the previous one: {exc}"
        for ref in sorted(set(refs)):
            regarding, _obj = self._regarding(ref, snapshot)
            self.recorder.emit(regarding, WARNING, "BackendError", "Apply", note)

    def apply_observer(self) -> Any:
        """A plugin for the controller's plugin manager that sees refused applies."""
        events = self

        class ApplyObserver:
            last_served: tuple[ObjectRef, ...] = ()

            @hookimpl
            def polyingress_model_built(self, result: BuildResult) -> None:
                ApplyObserver.last_served = result.served

            @hookimpl(wrapper=True)
            def polyingress_apply(self, model: RouteModel) -> Generator[None, Any, Any]:
                try:
                    return (yield)
                except ApplyError as exc:
                    try:
                        events.refused(exc, model, ApplyObserver.last_served)
                    except Exception:
                        log.exception("recording a BackendError Event failed")
                    raise

        return ApplyObserver()
