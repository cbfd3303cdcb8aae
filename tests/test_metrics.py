"""Metrics: label values come from closed sets, and the README documents every metric.

The live counterpart (every label value on /metrics of a real run, per backend) is
test_metrics_live.py.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any

import pytest
from kube_objects import CLASS, ingress, path, rule, service, slice_
from livekit import wait_until
from metrics_doc import documented, family_name, reload_reasons
from prometheus_client import REGISTRY, generate_latest

from polyingress.core import (
    ApplyResult,
    ModelDiff,
    ObjectStore,
    ReloadReason,
    RouteModel,
    RunSettings,
    hookimpl,
)
from polyingress.core.runtime.controller import Controller
from polyingress.core.runtime.plugins import plugin_manager
from polyingress.core.sources.kubernetes.source import KindSpec, KubeOptions, Reflector

# Every module that defines metrics (prometheus_client registers them at import).
METRIC_MODULES = (
    "polyingress.core.runtime.controller",
    "polyingress.core.sources.kubernetes.events",
    "polyingress.core.sources.kubernetes.leader",
    "polyingress.core.sources.kubernetes.status",
    "polyingress.core.sources.kubernetes.source",
    "polyingress.core.sources.manifests",
    "polyingress.plugins.haproxy.metrics",
    "polyingress.plugins.nginx.metrics",
)


class ThirdPartyBackend:
    """A backend plugin written before the vocabulary: each reload's reason is free text
    with a count in it (the kind of text that made a new time series per count)."""

    def __init__(self, reasons: list[tuple[Any, ...]]) -> None:
        self.reasons = reasons
        self.applied: list[RouteModel] = []

    @hookimpl
    def polyingress_create_backend(self, settings: RunSettings) -> ThirdPartyBackend:
        return self

    @hookimpl
    def polyingress_start(self, backend: Any, model: RouteModel) -> ApplyResult:
        self.applied.append(model)
        return ApplyResult()

    @hookimpl
    def polyingress_apply(self, backend: Any, model: RouteModel, diff: ModelDiff) -> ApplyResult:
        self.applied.append(model)
        return ApplyResult(reloaded=True, reasons=self.reasons.pop(0))


def objects(endpoints: int) -> list[dict[str, Any]]:
    return [
        CLASS,
        ingress("i", rule("h.test", path("/", "s"))),
        service("s"),
        slice_("s", [(f"10.0.0.{i + 1}", True) for i in range(endpoints)]),
    ]


def reload_samples() -> dict[str, float]:
    return {
        s.labels["reason"]: s.value
        for family in REGISTRY.collect()
        if family.name == "polyingress_reloads"
        for s in family.samples
        if s.name == "polyingress_reloads_total"
    }


def run_reloads(reasons: list[tuple[Any, ...]]) -> dict[str, float]:
    """Apply one change per entry of ``reasons`` through a real Controller; the counts each
    reason label gained."""
    store = ObjectStore()
    store.replace_many(objects(1), ())
    backend = ThirdPartyBackend(list(reasons))
    ctl = Controller(
        RunSettings(backend="third-party"),
        plugin_manager(("third-party", backend)),
        store,
        debounce=0.01,
    )
    before = reload_samples()
    ctl.start()
    try:
        for n in range(2, 2 + len(reasons)):
            store.replace_many(objects(n), ())
            wait_until(lambda n=n: len(backend.applied[-1].backends[0].endpoints) == n)
    finally:
        ctl.stop()
    after = reload_samples()
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def test_free_text_reasons_are_counted_as_other_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    texts = [
        ("configuration file rewritten (3 routes changed)",),
        ("configuration file rewritten (4 routes changed)",),
    ]
    with caplog.at_level(logging.INFO, logger="polyingress.controller"):
        gained = run_reloads(texts)
    assert gained == {"other": 2.0}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "3 routes changed" in warnings[0], warnings
    assert "ReloadReason" in warnings[0]
    # The free text still reaches the log, each time.
    assert "reloaded the proxy: configuration file rewritten (4 routes changed)" in caplog.text
    labels = set(reload_samples())
    assert labels <= {r.value for r in ReloadReason}, labels


def test_members_and_their_values_are_counted_as_themselves() -> None:
    gained = run_reloads(
        [
            (ReloadReason.ROUTES_CHANGED, ReloadReason.CERTIFICATES_CHANGED),
            ("endpoints_changed",),
            (),
        ]
    )
    assert gained == {
        "routes_changed": 1.0,
        "certificates_changed": 1.0,
        "endpoints_changed": 1.0,
        "other": 1.0,  # a reload that names no reason
    }


def test_detail_is_logged_and_never_a_label(caplog: pytest.LogCaptureFixture) -> None:
    class WithDetail(ThirdPartyBackend):
        @hookimpl
        def polyingress_apply(
            self, backend: Any, model: RouteModel, diff: ModelDiff
        ) -> ApplyResult:
            self.applied.append(model)
            return ApplyResult(
                reloaded=True, reasons=(ReloadReason.SETTINGS_CHANGED,), detail="7 keys changed"
            )

    store = ObjectStore()
    store.replace_many(objects(1), ())
    backend = WithDetail([])
    ctl = Controller(RunSettings(backend="d"), plugin_manager(("d", backend)), store)
    with caplog.at_level(logging.INFO, logger="polyingress.controller"):
        ctl.start()
        try:
            store.replace_many(objects(2), ())
            wait_until(lambda: len(backend.applied) == 2)
        finally:
            ctl.stop()
    assert "reloaded the proxy: settings_changed (7 keys changed)" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "7 keys" not in generate_latest(REGISTRY).decode()


def test_watch_event_of_an_unknown_type_is_counted_as_other() -> None:
    reflector = Reflector(
        KindSpec("Service", "v1", None, None, None),
        ObjectStore(),
        KubeOptions(),
        threading.Event(),
        lambda: None,
    )
    meta = {"name": "s", "namespace": "default", "resourceVersion": "7"}
    reflector._event({"type": "SURPRISE-42", "object": {"metadata": meta}})
    text = generate_latest(REGISTRY).decode()
    assert 'type="SURPRISE-42"' not in text
    value = REGISTRY.get_sample_value(
        "polyingress_source_watch_events_total", {"kind": "Service", "type": "other"}
    )
    assert value is not None and value >= 1
    assert "other" in documented()["polyingress_source_watch_events_total"].labels["type"]


def test_every_metric_is_documented_with_its_type() -> None:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    registered = {
        family_name(f.name, f.type): f.type
        for f in REGISTRY.collect()
        if f.name.startswith("polyingress_")
    }
    docs = documented()
    assert sorted(registered) == sorted(docs)
    assert {n: d.type for n, d in docs.items()} == registered


def test_reload_reason_labels_are_documented_as_the_vocabulary() -> None:
    docs = documented()
    assert reload_reasons() == {r.value for r in ReloadReason}
    for name in ("polyingress_reloads_total", "polyingress_haproxy_reloads_total"):
        assert docs[name].labels == {"reason": reload_reasons()}
