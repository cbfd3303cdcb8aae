"""The reconciler: coalescing, last good model, refused models, transient failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from kube_objects import CLASS, ingress, path, rule, service, slice_
from livekit import wait_until

from polyingress.core import (
    ApplyError,
    ApplyResult,
    HealthReport,
    ModelDiff,
    ObjectStore,
    RouteModel,
    RunSettings,
    TransientApplyError,
    hookimpl,
)
from polyingress.core.runtime.controller import Controller
from polyingress.core.runtime.plugins import plugin_manager


class RecordingBackend:
    """A complete in-process backend plugin whose 'proxy' is a list of applied models."""

    def __init__(self) -> None:
        self.applied: list[RouteModel] = []
        self.diffs: list[ModelDiff] = []
        self.refuse_hosts: set[str] = set()
        self.transient_failures = 0
        self.supervised = threading.Event()
        self.attempts = 0

    @hookimpl
    def polyingress_create_backend(self, settings: RunSettings) -> RecordingBackend:
        return self

    @hookimpl
    def polyingress_start(self, backend: Any, model: RouteModel) -> ApplyResult:
        self.applied.append(model)
        return ApplyResult()

    @hookimpl
    def polyingress_apply(
        self, backend: Any, model: RouteModel, previous: RouteModel, diff: ModelDiff
    ) -> ApplyResult:
        self.attempts += 1
        if self.transient_failures:
            self.transient_failures -= 1
            raise TransientApplyError("proxy socket busy")
        bad = [v for v in model.vhosts if v.host in self.refuse_hosts]
        if bad:
            raise ApplyError("host refused", refs=tuple(r.source for r in bad[0].routes))
        assert previous == self.applied[-1], "previous must be what the proxy serves"
        self.applied.append(model)
        self.diffs.append(diff)
        return ApplyResult(reloaded=not diff.endpoints_only, reasons=("test",))

    @hookimpl
    def polyingress_supervise(self, backend: Any, model: RouteModel) -> None:
        self.supervised.set()

    @hookimpl
    def polyingress_health(self, backend: Any) -> HealthReport:
        return HealthReport(live=True, ready=bool(self.applied))


def objects(n_eps: int, host: str = "h.com") -> list[dict[str, Any]]:
    return [
        CLASS,
        ingress("i", rule(host, path("/", "s"))),
        service("s"),
        slice_("s", [(f"10.0.0.{i + 1}", True) for i in range(n_eps)]),
    ]


@pytest.fixture
def setup() -> Any:
    store = ObjectStore()
    store.replace_many(objects(1), ())
    rec = RecordingBackend()
    ctl = Controller(
        RunSettings(backend="rec"),
        plugin_manager(("rec", rec)),
        store,
        debounce=0.05,
        supervise_interval=0.1,
        retry_attempts=3,
    )
    ctl.start()
    yield store, rec, ctl
    ctl.stop()


def test_start_serves_first_model_and_reports_ready(setup: Any) -> None:
    _store, rec, ctl = setup
    assert len(rec.applied) == 1 and ctl.health().ready
    assert rec.applied[0].backends[0].ready_endpoints[0].address == "10.0.0.1"
    assert rec.supervised.wait(2)


def test_burst_of_changes_is_coalesced(setup: Any) -> None:
    store, rec, _ctl = setup
    for n in range(2, 52):
        store.replace_many(objects(n), ())
    wait_until(lambda: len(rec.applied[-1].backends[0].endpoints) == 51, timeout=10)
    assert len(rec.applied) <= 4, f"{len(rec.applied)} applies for one burst"
    assert rec.diffs[-1].endpoints_only


def test_refused_model_keeps_last_good_and_is_not_retried(setup: Any) -> None:
    store, rec, ctl = setup
    good = rec.applied[-1]
    rec.refuse_hosts = {"bad.com"}
    store.replace_many(objects(1, host="bad.com"), ())
    wait_until(lambda: ctl.status().failing)
    attempts = rec.attempts
    store.replace_many(objects(1, host="bad.com"), ())  # same input again: no new attempt
    store.upsert({**CLASS, "metadata": {"name": "polyingress", "labels": {"x": "y"}}})
    time.sleep(0.5)  # several debounce periods: the worker has seen both changes
    assert rec.attempts == attempts
    assert ctl.last_good == good and "host refused" in (ctl.last_error or "")
    # A later good change is applied.
    store.replace_many(objects(3), ())
    wait_until(lambda: len(rec.applied[-1].backends[0].endpoints) == 3)
    assert ctl.last_error is None


def test_transient_failure_is_retried_with_backoff(setup: Any) -> None:
    store, rec, _ctl = setup
    rec.transient_failures = 2
    store.replace_many(objects(4), ())
    wait_until(lambda: len(rec.applied[-1].backends[0].endpoints) == 4, timeout=10)
    assert rec.attempts == 3


def test_unchanged_input_applies_nothing(setup: Any) -> None:
    store, rec, _ctl = setup
    store.replace_many(objects(1), ())
    store.upsert({**CLASS, "metadata": {"name": "polyingress", "annotations": {"a": "b"}}})
    wait_until(lambda: rec.supervised.is_set())
    assert len(rec.applied) == 1


class SlowReloadBackend(RecordingBackend):
    """A backend whose applies of routing changes block until released (a slow reload), and
    which takes endpoint-only changes at run time (polyingress_push_endpoints)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.reloading = threading.Event()
        self.pushed: list[tuple[RouteModel, RouteModel, ModelDiff]] = []
        self.before_return: Callable[[], None] | None = None
        # What the 'proxy' serves per backend: set by applies (the backends they name as
        # changed) and by pushes.
        self.live: dict[str, tuple[str, ...]] = {}

    def _take(self, model: RouteModel, names: Iterable[str]) -> None:
        for name in names:
            if name in model.backend_index:
                eps = model.backend_index[name].ready_endpoints
                self.live[name] = tuple(e.address for e in eps)

    @hookimpl
    def polyingress_start(self, backend: Any, model: RouteModel) -> ApplyResult:
        self._take(model, model.backend_index)
        return super().polyingress_start(backend, model)

    @hookimpl
    def polyingress_apply(
        self, backend: Any, model: RouteModel, previous: RouteModel, diff: ModelDiff
    ) -> ApplyResult:
        if not diff.endpoints_only:
            self.reloading.set()
            assert self.release.wait(10)
            if self.before_return is not None:
                self.before_return()
                self.before_return = None
            self.reloading.clear()
        self._take(model, (*diff.backends_added, *diff.endpoints_changed))
        return super().polyingress_apply(backend, model, previous, diff)

    @hookimpl
    def polyingress_push_endpoints(
        self, backend: Any, model: RouteModel, previous: RouteModel, diff: ModelDiff
    ) -> ApplyResult:
        assert self.reloading.is_set(), "only called while an apply runs"
        assert diff.endpoints_only
        self.pushed.append((model, previous, diff))
        self._take(model, diff.endpoints_changed)
        return ApplyResult(runtime_changes=len(diff.endpoints_changed))


def test_endpoint_changes_during_a_slow_apply_are_pushed_without_waiting() -> None:
    store = ObjectStore()
    store.replace_many(objects(1), ())
    rec = SlowReloadBackend()
    ctl = Controller(RunSettings(backend="rec"), plugin_manager(("rec", rec)), store, debounce=0.01)
    ctl.start()
    try:
        routed = [*objects(1), ingress("j", rule("j.com", path("/", "s")))]
        store.replace_many(routed, ())  # a routing change: a slow apply
        assert rec.reloading.wait(5)
        applying = rec.applied[-1]
        store.replace_many([slice_("s", [("10.0.0.7", True)])], ())
        wait_until(lambda: len(rec.pushed) == 1, timeout=5)
        model, previous, diff = rec.pushed[0]
        assert diff.endpoints_only and diff.endpoints_changed == ("default__s__80",)
        assert model.backends[0].ready_endpoints[0].address == "10.0.0.7"
        assert "j.com" in previous.vhost_index, "against the model being applied"
        assert rec.applied[-1] is applying, "the slow apply is still running"
        # Another endpoint change: against the model pushed last.
        store.replace_many([slice_("s", [("10.0.0.9", True)])], ())
        wait_until(lambda: len(rec.pushed) == 2, timeout=5)
        assert rec.pushed[1][1] is rec.pushed[0][0]
        # A routing change is left to the worker; it is not pushed.
        store.replace_many([ingress("k", rule("k.com", path("/", "s")))], ())
        time.sleep(0.3)
        assert len(rec.pushed) == 2
        # An endpoint change together with a routing change: the endpoints are pushed.
        both = [slice_("s", [("10.0.0.8", True)]), ingress("m", rule("m.com", path("/", "s")))]
        store.replace_many(both, ())
        wait_until(lambda: len(rec.pushed) == 3, timeout=5)
        assert rec.pushed[2][2] == ModelDiff(endpoints_changed=("default__s__80",))
        assert rec.live["default__s__80"] == ("10.0.0.8",)
        rec.release.set()
        # The worker then applies the newest model itself (the record of what is served;
        # recorded once the backend's apply returned, after the backend noted it).
        wait_until(
            lambda: "m.com" in rec.applied[-1].vhost_index and ctl.last_good is rec.applied[-1],
            timeout=10,
        )
        assert rec.applied[-1].backends[0].ready_endpoints[0].address == "10.0.0.8"
        assert ctl.lane_pushes == 3
    finally:
        rec.release.set()
        ctl.stop()


def test_without_the_hook_there_is_no_lane(setup: Any) -> None:
    store, rec, ctl = setup
    store.replace_many(objects(2), ())
    wait_until(lambda: len(rec.applied) == 2)
    assert ctl.lane_pushes == 0
    assert not any(t.name == "runtime-lane" for t in threading.enumerate())


def test_an_endpoint_change_pushed_during_an_apply_and_undone_after_it_is_applied() -> None:
    """The lane pushed endpoints of a model the core never recorded. When the change is undone
    right as the apply returns (the lane has stopped), the newest model's endpoints equal
    those of the applied model, yet the proxy holds the pushed ones: the core names the
    backend in the next diff's endpoints_changed, so the backend makes it right."""
    store = ObjectStore()
    store.replace_many(objects(1), ())
    rec = SlowReloadBackend()
    ctl = Controller(RunSettings(backend="rec"), plugin_manager(("rec", rec)), store, debounce=0.01)
    ctl.start()
    try:
        store.replace_many([ingress("j", rule("j.com", path("/", "s")))], ())
        assert rec.reloading.wait(5)
        store.replace_many([slice_("s", [("10.0.0.7", True)])], ())
        wait_until(lambda: len(rec.pushed) == 1, timeout=5)
        assert rec.live["default__s__80"] == ("10.0.0.7",)
        rec.before_return = lambda: store.replace_many([slice_("s", [("10.0.0.1", True)])], ())
        rec.release.set()
        wait_until(lambda: rec.live["default__s__80"] == ("10.0.0.1",), timeout=10)
        wait_until(lambda: ctl.last_good is rec.applied[-1])
        assert rec.applied[-1].backends[0].ready_endpoints[0].address == "10.0.0.1"
        applies = len(rec.applied)
        time.sleep(0.3)  # nothing more to apply once it was taken
        assert len(rec.applied) == applies
    finally:
        rec.release.set()
        ctl.stop()
