"""The reconciler: sources mark the state dirty; one worker builds, diffs and applies.

Changes arriving close together are coalesced (``debounce``); the last successfully applied
model is kept; a model the proxy refused (``ApplyError``) is remembered by hash and not retried
until the input changes; any other failure is retried with backoff (tenacity) and never
replaces the last good state.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pluggy
from prometheus_client import Counter, Gauge, Histogram
from tenacity import Retrying, retry_if_not_exception_type, stop_after_attempt, wait_exponential

from polyingress.core.api import ApplyError, ApplyResult, HealthReport, RunSettings, Timings
from polyingress.core.pipeline.builder import Builder, BuildResult
from polyingress.core.pipeline.diff import ModelDiff, diff, endpoints_changed
from polyingress.core.pipeline.model import RouteModel
from polyingress.core.pipeline.problems import Severity
from polyingress.core.pipeline.store import ObjectKey, ObjectStore
from polyingress.core.reasons import ReloadReason

__all__ = ["ApplyRecord", "Controller", "ControllerStatus"]

log = logging.getLogger("polyingress.controller")

SYNCS = Counter("polyingress_syncs_total", "Model builds by outcome", ["result"])
APPLY_SECONDS = Histogram(
    "polyingress_apply_duration_seconds",
    "Time to apply a model to the proxy",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RELOADS = Counter(
    "polyingress_reloads_total", "Proxy reloads by reason (ReloadReason values)", ["reason"]
)
RUNTIME_CHANGES = Counter("polyingress_runtime_changes_total", "Changes applied at run time")
REPAIRS = Counter("polyingress_supervisor_repairs_total", "Proxy repairs by the supervisor")
PROBLEMS = Gauge("polyingress_problems", "Problems in the current model", ["severity"])
ROUTES = Gauge("polyingress_routes", "Routes in the last applied model")
# The interpreter's switch interval while the controller runs (see Controller.start).
SWITCH_INTERVAL = 0.001
LAST_SUCCESS = Gauge("polyingress_last_apply_success_timestamp_seconds", "Last good apply")


@dataclass(frozen=True, slots=True)
class ControllerStatus:
    started: bool
    last_error: str | None
    applies: int
    failing: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyRecord:
    """One apply the controller attempted, for the dashboard's history (newest last).

    ``outcome`` is ``started`` (the first model), ``applied``, ``rejected`` (the proxy refused
    the model: ``ApplyError``) or ``failed`` (any other failure; retried later). The times are
    seconds: ``total`` from the first change noticed to the proxy serving the model, made of
    ``queued`` (waiting for the worker and the debounce), ``build``, ``diff`` and ``apply``
    (the backend's call, whose own parts are ``timings``). ``reasons`` are ReloadReason
    values when the proxy ``reloaded``; ``detail`` and ``error`` are free text."""

    at: float  # wall clock (time.time()) when the apply ended
    outcome: str
    change: str
    total: float
    queued: float = 0.0
    build: float = 0.0
    diff: float = 0.0
    apply: float = 0.0
    reloaded: bool = False
    reasons: tuple[str, ...] = ()
    runtime_changes: int = 0
    detail: str = ""
    timings: Timings = field(default_factory=Timings)
    error: str = ""


class Controller:
    """Drives one backend from one store. ``start()`` blocks until the first model is served."""

    def __init__(
        self,
        settings: RunSettings,
        pm: pluggy.PluginManager,
        store: ObjectStore,
        *,
        debounce: float = 0.05,
        supervise_interval: float = 1.0,
        retry_attempts: int = 5,
        history: int = 50,
    ) -> None:
        self.settings = settings
        self.pm = pm
        self.store = store
        self.debounce = debounce
        self.supervise_interval = supervise_interval
        self.retry_attempts = retry_attempts
        self.backend: Any = None
        self.last_good: RouteModel | None = None
        self.last_result: BuildResult | None = None
        self.last_error: str | None = None
        self._failed_model: RouteModel | None = None
        self._retry_at: float | None = None
        self.retry_pause = 2.0
        self.applies = 0
        self.started = False
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[BuildResult], None]] = []
        self._builder = Builder(settings.build)
        self._changed: set[ObjectKey] | None = None  # None: unknown, build everything
        self._changed_lock = threading.Lock()
        self._noticed_at: float | None = None  # monotonic: the first change not yet built
        self._applied_listeners: list[Callable[[RouteModel, ApplyResult], None]] = []
        self._told_unknown_reason = False
        self.last_noticed_at: float | None = None  # of the changes in the last build
        # The runtime lane (polyingress_push_endpoints): endpoint-only changes that arrive
        # while an apply runs are pushed from a second thread instead of waiting behind it.
        self._build_lock = threading.Lock()
        self._lane_wake = threading.Event()
        self.lane_pushes = 0
        # Backends the lane pushed that no applied model has recorded yet: name -> push count.
        self._lane_lock = threading.Lock()
        self._lane_touched: dict[str, int] = {}
        self._history: deque[ApplyRecord] = deque(maxlen=history)
        self._history_lock = threading.Lock()
        store.subscribe(self._on_change)

    # -- public -------------------------------------------------------------------------------

    def history(self) -> tuple[ApplyRecord, ...]:
        """The last applies (at most ``history`` of them), oldest first."""
        with self._history_lock:
            return tuple(self._history)

    def _remember(self, record: ApplyRecord) -> None:
        with self._history_lock:
            self._history.append(record)

    def on_build(self, callback: Callable[[BuildResult], None]) -> None:
        self._listeners.append(callback)

    def on_applied(self, callback: Callable[[RouteModel, ApplyResult], None]) -> None:
        self._applied_listeners.append(callback)

    def _on_change(self, keys: list[ObjectKey]) -> None:
        with self._changed_lock:
            if self._changed is not None:
                self._changed.update(keys)
            if self._noticed_at is None:
                self._noticed_at = time.monotonic()
        self._dirty.set()
        self._lane_wake.set()

    def _build_model(self) -> BuildResult:
        with self._build_lock:
            with self._changed_lock:
                changed, self._changed = self._changed, set()
                self.last_noticed_at, self._noticed_at = self._noticed_at, None
                snapshot = self.store.snapshot()
            return self._builder.build(snapshot, changed)

    def build(self) -> BuildResult:
        """Build the model for the store's current state (incrementally from the last build)."""
        result = self._build_model()
        self.last_result = result
        for p in result.problems:
            if p.severity is Severity.ERROR:
                log.error("%s", p)
            else:
                log.warning("%s", p)
        PROBLEMS.labels("error").set(len(result.errors))
        PROBLEMS.labels("warning").set(len(result.warnings))
        self.pm.hook.polyingress_model_built(result=result)
        for cb in self._listeners:
            cb(result)
        return result

    def start(self) -> None:
        """Create the backend, serve the first model (retrying with backoff), start the worker."""
        self.backend = self.pm.hook.polyingress_create_backend(settings=self.settings)
        if self.backend is None:
            raise RuntimeError(f"backend {self.settings.backend!r} created no backend object")
        # While the reconciler renders (pure Python: tens of ms for 10,000 Ingresses), every
        # other thread that carries a change in (the source's watch, the runtime lane, their
        # socket reads and writes) waits for the GIL at each step, up to the interpreter's
        # switch interval (5 ms by default): chained, 20-50 ms of an endpoint change pushed
        # during a reload. A shorter interval bounds each wait; the render costs the same.
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        self._dirty.clear()
        began = time.monotonic()
        result = self.build()
        model = result.model
        built = time.monotonic()
        for attempt in Retrying(
            stop=stop_after_attempt(self.retry_attempts),
            wait=wait_exponential(multiplier=0.2, max=5),
            reraise=True,
        ):
            with attempt:
                started = time.monotonic()
                apply_result = self.pm.hook.polyingress_start(backend=self.backend, model=model)
                APPLY_SECONDS.observe(time.monotonic() - started)
        apply_result = apply_result or ApplyResult()
        done = time.monotonic()
        self._remember(
            _record(
                "started",
                "the first model",
                apply_result,
                total=done - began,
                build=built - began,
                apply=done - built,
            )
        )
        self._record_success(model, apply_result, ModelDiff())
        self.started = True
        log.info("serving %d hosts, %d backends", len(model.vhosts), len(model.backends))
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.backend is not None:
            self.pm.hook.polyingress_stop(backend=self.backend)

    def health(self) -> HealthReport:
        if self.backend is None:
            return HealthReport(live=True, ready=False, detail="starting")
        report = self.pm.hook.polyingress_health(backend=self.backend)
        if report is None:
            report = HealthReport(live=True, ready=self.started)
        worker_ok = self._thread is None or self._thread.is_alive()
        return HealthReport(
            live=report.live and worker_ok,
            ready=report.ready and self.started,
            detail=report.detail if worker_ok else "reconciler worker stopped",
        )

    def status(self) -> ControllerStatus:
        return ControllerStatus(
            started=self.started,
            last_error=self.last_error,
            applies=self.applies,
            failing=self._failed_model is not None,
        )

    def sync_now(self) -> None:
        """Run one sync in the caller's thread (tests, and ``render``-like tools)."""
        self._sync()

    # -- worker -------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._work()
        except BaseException:
            # Nothing but a stop should end the worker; if anything else does, /healthz says
            # "reconciler worker stopped" and the log says why.
            log.critical("reconciler worker failed", exc_info=True)
            raise
        finally:
            log.info("reconciler worker exits (stop requested: %s)", self._stop.is_set())

    def _work(self) -> None:
        next_supervise = time.monotonic() + self.supervise_interval
        while not self._stop.is_set():
            timeout = max(0.0, next_supervise - time.monotonic())
            if self._dirty.wait(timeout=timeout) and not self._stop.is_set():
                # Coalesce: wait until no new change arrived for `debounce` seconds (bounded).
                deadline = time.monotonic() + max(self.debounce * 20, 1.0)
                while time.monotonic() < deadline:
                    self._dirty.clear()
                    if not self._dirty.wait(timeout=self.debounce):
                        break
                self._dirty.clear()
                try:
                    self._sync()
                except Exception:
                    log.exception("sync failed")
            if time.monotonic() >= next_supervise and not self._stop.is_set():
                next_supervise = time.monotonic() + self.supervise_interval
                self._supervise()
            if self._retry_at is not None and time.monotonic() >= self._retry_at:
                self._retry_at = None
                self._dirty.set()

    def _supervise(self) -> None:
        if self.last_good is None:
            return
        try:
            repaired = self.pm.hook.polyingress_supervise(
                backend=self.backend, model=self.last_good
            )
        except Exception:
            log.exception("supervisor hook failed")
            return
        if repaired:
            REPAIRS.inc()
            log.warning("supervisor: %s", repaired)

    def _sync(self) -> None:
        sync_started = time.monotonic()
        result = self.build()
        noticed = self.last_noticed_at
        built = time.monotonic()
        model = result.model
        previous = self.last_good or RouteModel()
        change, lane_pushed = self._with_lane_pushes(diff(previous, model), previous, model)
        diffed = time.monotonic()
        if change.empty:
            SYNCS.labels("unchanged").inc()
            self._forget_failure()
            return
        if self._failed_model is not None and model == self._failed_model:
            SYNCS.labels("skipped_known_bad").inc()
            return
        log.info("applying: %s", change.summary())
        started = time.monotonic()
        lane = self._start_lane(model)
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.retry_attempts),
                wait=wait_exponential(multiplier=0.2, max=5),
                retry=retry_if_not_exception_type(ApplyError),
                reraise=True,
            ):
                with attempt:
                    if self._stop.is_set():
                        return
                    apply_result = self.pm.hook.polyingress_apply(
                        backend=self.backend, model=model, previous=previous, diff=change
                    )
        except ApplyError as exc:
            self._remember_failure(model)
            self.last_error = str(exc)
            SYNCS.labels("rejected").inc()
            culprits = ", ".join(str(r) for r in exc.refs) or "unknown object"
            log.error("the proxy refused the new configuration (%s): %s", culprits, exc)
            self._remember_attempt(
                "rejected",
                change,
                sync_started,
                noticed,
                started,
                built,
                diffed,
                f"{culprits}: {exc}",
            )
            return
        except Exception as exc:
            # Transient (the proxy died, a socket was busy): keep the last good model and try
            # this one again after a pause, once the supervisor had a chance to repair things.
            self.last_error = f"{type(exc).__name__}: {exc}"
            SYNCS.labels("failed").inc()
            log.exception("applying the new model failed; still serving the last good one")
            self._retry_at = time.monotonic() + self.retry_pause
            self._remember_attempt(
                "failed", change, sync_started, noticed, started, built, diffed, self.last_error
            )
            return
        finally:
            if lane is not None:
                lane.stop()
            APPLY_SECONDS.observe(time.monotonic() - started)
        apply_result = apply_result or ApplyResult()
        done = time.monotonic()
        # Where the time went, from the first change noticed to the proxy serving the model
        # (the backend's parts: its ApplyResult.timings).
        queued = sync_started - noticed if noticed is not None else 0.0
        log.info(
            "applied %s in %.1f ms: queued %.1f ms, build %.1f ms, diff %.1f ms, apply %.1f ms%s",
            change.summary(),
            (done - (noticed if noticed is not None else sync_started)) * 1000,
            queued * 1000,
            (built - sync_started) * 1000,
            (diffed - built) * 1000,
            (done - started) * 1000,
            f" ({apply_result.timings})" if apply_result.timings.parts else "",
        )
        with self._lane_lock:
            for name, seq in lane_pushed.items():
                if self._lane_touched.get(name) == seq:
                    del self._lane_touched[name]
        self._remember(
            _record(
                "applied",
                change.summary(),
                apply_result,
                total=done - (noticed if noticed is not None else sync_started),
                queued=queued,
                build=built - sync_started,
                diff=diffed - built,
                apply=done - started,
            )
        )
        self._record_success(model, apply_result, change)

    def _remember_attempt(
        self,
        outcome: str,
        change: ModelDiff,
        sync_started: float,
        noticed: float | None,
        started: float,
        built: float,
        diffed: float,
        error: str,
    ) -> None:
        done = time.monotonic()
        self._remember(
            _record(
                outcome,
                change.summary(),
                ApplyResult(),
                total=done - (noticed if noticed is not None else sync_started),
                queued=sync_started - noticed if noticed is not None else 0.0,
                build=built - sync_started,
                diff=diffed - built,
                apply=done - started,
                error=error,
            )
        )

    def _with_lane_pushes(
        self, change: ModelDiff, previous: RouteModel, model: RouteModel
    ) -> tuple[ModelDiff, dict[str, int]]:
        """The diff, with the backends the runtime lane pushed since the last good model among
        ``endpoints_changed``: the proxy has their endpoints of a model the core never recorded,
        which may differ from both ``previous`` and ``model`` (a change pushed during an apply,
        then undone). Returns them with their push counts, forgotten once an apply took them."""
        with self._lane_lock:
            pushed = dict(self._lane_touched)
        both = previous.backend_index.keys() & model.backend_index.keys()
        extra = {n for n in pushed if n in both} - set(change.endpoints_changed)
        if extra:
            change = replace(
                change, endpoints_changed=tuple(sorted({*change.endpoints_changed, *extra}))
            )
        return change, {n: c for n, c in pushed.items() if n in both}

    def _start_lane(self, model: RouteModel) -> _RuntimeLane | None:
        """While the apply of ``model`` runs: a lane for the endpoint-only changes (if the
        backend takes them, ``polyingress_push_endpoints``)."""
        if not self.pm.hook.polyingress_push_endpoints.get_hookimpls():
            return None
        # Not cleared: a change that came after this model was built wakes the lane at once.
        lane = _RuntimeLane(self, model)
        lane.start()
        return lane

    def _remember_failure(self, model: RouteModel) -> None:
        self._retry_at = None
        # Compared by value (cheap: unchanged parts are shared objects), not by hash.
        self._failed_model = model

    def _forget_failure(self) -> None:
        self._failed_model = None

    def _record_success(self, model: RouteModel, result: ApplyResult, change: ModelDiff) -> None:
        self.last_good = model
        self._retry_at = None
        self._forget_failure()
        self.last_error = None
        self.applies += 1
        SYNCS.labels("applied").inc()
        LAST_SUCCESS.set(time.time())
        ROUTES.set(sum(len(v.routes) for v in model.vhosts))
        if result.reloaded:
            self._count_reload(result)
        if result.runtime_changes:
            RUNTIME_CHANGES.inc(result.runtime_changes)
        self.pm.hook.polyingress_applied(model=model, diff=change, result=result)
        for cb in self._applied_listeners:
            cb(model, result)

    def _count_reload(self, result: ApplyResult) -> None:
        """One count per reason, labelled only with members of the closed vocabulary: free
        text would make a new time series per distinct text."""
        given = [str(r) for r in result.reasons]
        codes = dict.fromkeys(ReloadReason.of(r) for r in result.reasons) or {ReloadReason.OTHER}
        for code in codes:
            RELOADS.labels(code.value).inc()
        unknown = [r for r in given if ReloadReason.of(r) is ReloadReason.OTHER and r != "other"]
        if (unknown or not given) and not self._told_unknown_reason:
            self._told_unknown_reason = True
            log.warning(
                "backend %s reloaded with %s; counted as 'other' in polyingress_reloads_total "
                "(a backend returns ReloadReason members in ApplyResult.reasons and free text in "
                "ApplyResult.detail; said once)",
                self.settings.backend,
                "reasons outside the vocabulary: " + "; ".join(repr(r) for r in unknown)
                if unknown
                else "no reason",
            )
        said = ", ".join(given) or "no reason given"
        log.info("reloaded the proxy: %s%s", said, f" ({result.detail})" if result.detail else "")


class _RuntimeLane(threading.Thread):
    """Endpoint-only changes while an apply runs, pushed without waiting behind it.

    Woken by store changes, it builds the model at once (not after the worker's
    debounce), compares it with the model being applied (then the last one it
    built) and passes the endpoint changes of backends both have to
    ``polyingress_push_endpoints``, also when the same model changes routes. Routing changes
    it leaves to the worker, which applies the newest model once the apply returned; after a
    declined push the lane stops for this apply. The lane only brings endpoints forward: the
    worker's apply stays the record (last good model, metrics, observers), and the backends
    the lane pushed are in its next diff's endpoints_changed. It never calls observers itself.
    """

    def __init__(self, controller: Controller, applying: RouteModel) -> None:
        super().__init__(name="runtime-lane", daemon=True)
        self.controller = controller
        self.base = applying
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.controller._lane_wake.set()
        self.join(timeout=30)
        # Whatever arrived meanwhile is the worker's to build and apply now.
        self.controller._dirty.set()

    def run(self) -> None:
        c = self.controller
        while not self._halt.is_set():
            c._lane_wake.wait()
            if self._halt.is_set():
                return
            # No settle: the source publishes a burst (a file, a watch event) as one change, a
            # push costs the backend little, and changes that come while one is under way are
            # taken together by the next.
            c._lane_wake.clear()
            try:
                if not self._push_one():
                    return
            except Exception:
                log.exception("runtime lane failed; the change is applied after the running apply")
                return

    def _push_one(self) -> bool:
        """Build and push one change; False: leave the rest of this apply to the worker."""
        c = self.controller
        began = time.monotonic()
        result = c._build_model()
        noticed = c.last_noticed_at
        built = time.monotonic()
        model = result.model
        # Only the endpoints of backends both models have: a routing change in the same
        # model is the worker's, after the apply; the endpoints need not wait.
        names = endpoints_changed(self.base, model)
        diffed = time.monotonic()
        previous, self.base = self.base, model
        if not names:
            return True
        change = ModelDiff(endpoints_changed=names)
        pushed = c.pm.hook.polyingress_push_endpoints(
            backend=c.backend, model=model, previous=previous, diff=change
        )
        if pushed is None:
            log.debug("the backend left an endpoint change to the next apply")
            return False
        done = time.monotonic()
        c.lane_pushes += 1
        with c._lane_lock:
            for name in change.endpoints_changed:
                c._lane_touched[name] = c.lane_pushes
        log.info(
            "pushed during an apply %s in %.1f ms: queued %.1f ms, build %.1f ms, diff %.1f ms, "
            "push %.1f ms%s",
            change.summary(),
            (done - (noticed if noticed is not None else began)) * 1000,
            (began - noticed) * 1000 if noticed is not None else 0.0,
            (built - began) * 1000,
            (diffed - built) * 1000,
            (done - diffed) * 1000,
            f" ({pushed.timings})" if pushed.timings.parts else "",
        )
        return True


def _record(
    outcome: str,
    change: str,
    result: ApplyResult,
    *,
    total: float,
    queued: float = 0.0,
    build: float = 0.0,
    diff: float = 0.0,
    apply: float = 0.0,
    error: str = "",
) -> ApplyRecord:
    reasons = (
        tuple(dict.fromkeys(ReloadReason.of(r).value for r in result.reasons))
        if result.reloaded
        else ()
    )
    return ApplyRecord(
        at=time.time(),
        outcome=outcome,
        change=change,
        total=total,
        queued=queued,
        build=build,
        diff=diff,
        apply=apply,
        reloaded=result.reloaded,
        reasons=reasons or (("other",) if result.reloaded else ()),
        runtime_changes=result.runtime_changes,
        detail=result.detail,
        timings=result.timings,
        error=error,
    )
