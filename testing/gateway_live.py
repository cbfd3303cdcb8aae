"""The Gateway API conformance cases, checked against the core and live through a backend.

:func:`check_model` holds :meth:`RouteModel.answer` and the computed status to a case;
:class:`GatewayWorld` runs ``polyingress run --backend NAME`` once and loads one case at a time
(the base objects plus the case's own, as upstream applies one test's manifests at a time),
waits until the controller has applied it, then sends every request over real HTTP(S) and
checks what the hello backend received and what the client got back.

A case needing an extended feature the backend does not declare (``BackendInfo.
gateway_features``) is skipped with that reason, as the upstream suite skips unsupported
features; a core case is never skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from polyingress.core import BuildOptions, RouteModel, build_model
from polyingress.core.pipeline.store import ObjectStore
from polyingress.testing.gateway_cases import (
    BACKENDS,
    CASES,
    Expect,
    GatewayCase,
    base_objects,
    hello_name,
)
from polyingress.testing.live import Controller, HelloFleet, Response, wait_until, write_manifests

__all__ = [
    "GatewayWorld",
    "backend_features",
    "check_model",
    "model_of",
    "test_gateway_conformance",
]

pytestmark = pytest.mark.live

_HELLO_PORT = 1  # the port the base objects name; the model check needs no real one


def backend_features(name: str) -> frozenset[str]:
    """The Gateway API features a backend plugin declares."""
    from polyingress.core.runtime.plugins import load_backend, plugin_manager

    _p, obj = load_backend(name)
    info = plugin_manager((name, obj)).hook.polyingress_backend_info()
    return frozenset(info.gateway_features) if info is not None else frozenset()


def model_of(case: GatewayCase, features: frozenset[str] | None = None) -> Any:
    """The core's build of the base plus the case (a BuildResult)."""
    store = ObjectStore()
    store.replace_many([*base_objects(_HELLO_PORT), *case.objects], ())
    return build_model(store.snapshot(), BuildOptions(features=features, now="now"))


def _backend_name(ref: tuple[str, str]) -> str:
    return f"{ref[0]}__{ref[1]}__8080"


def check_model(case: GatewayCase) -> None:
    """Every request of the case against :meth:`RouteModel.answer`, every expected condition
    against the computed status."""
    result = model_of(case)
    model: RouteModel = result.model
    for e in case.expects:
        answer = model.answer(
            e.host,
            e.path,
            scheme=e.scheme,
            method=e.method,
            headers=tuple((k.lower(), val) for k, val in e.request_headers),
        )
        if e.backend is not None:
            assert answer.proxied, f"{case}: {e}: expected {e.backend}, got {answer}"
            names = {w.backend for w in answer.backends}
            assert _backend_name(e.backend) in names, f"{case}: {e}: got {names}"
        else:
            assert answer.status == e.status, f"{case}: {e}: got {answer}"
        if e.location is not None:
            assert answer.location == e.location, f"{case}: {e}: got {answer.location}"
        if e.path_seen is not None:
            assert answer.path == e.path_seen, f"{case}: {e}: backend gets {answer.path}"
        if e.host_seen is not None:
            assert answer.host == e.host_seen, f"{case}: {e}: backend gets host {answer.host}"
        route = answer.route
        if e.headers or e.absent:
            sent = {k.lower(): [val] for k, val in e.request_headers}
            got = route.request_headers.apply(sent) if route and route.request_headers else sent
            for k, val in e.headers:
                assert got.get(k.lower()) == [val], f"{case}: {e}: request headers {got}"
            for k in e.absent:
                assert k.lower() not in got, f"{case}: {e}: {k} must not reach the backend"
        if e.response_headers or e.absent_response_headers:
            resp: dict[str, list[str]] = {}
            if route is not None and route.response_headers is not None:
                resp = route.response_headers.apply(resp)
            for k, val in e.response_headers:
                assert val in resp.get(k.lower(), []), f"{case}: {e}: response headers {resp}"
    check_statuses(case, result.statuses)


def check_statuses(case: GatewayCase, statuses: Iterable[dict[str, Any]]) -> None:
    docs = {
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d["status"]
        for d in statuses
    }
    for kind, ns, name, parent, ctype, status, reason in case.statuses:
        doc = docs.get((kind, ns, name))
        assert doc is not None, f"{case}: no status for {kind} {ns}/{name}"
        if kind == "HTTPRoute":
            conds = [
                c
                for p in doc["parents"]
                if p["parentRef"]["name"] == parent
                for c in p["conditions"]
            ]
        elif kind == "Gateway" and parent:
            conds = [c for ln in doc["listeners"] if ln["name"] == parent for c in ln["conditions"]]
        else:
            conds = doc["conditions"]
        found = [c for c in conds if c["type"] == ctype]
        assert found, f"{case}: {kind} {ns}/{name} {parent}: no {ctype} condition in {conds}"
        assert (found[0]["status"], found[0]["reason"]) == (status, reason), (
            f"{case}: {kind} {ns}/{name} {parent}: {ctype} is {found[0]}"
        )


class GatewayWorld:
    """One controller for a backend; :meth:`load` switches to a case's objects."""

    def __init__(self, backend: str, tmp: Path, extra: list[str] | None = None) -> None:
        self.backend = backend
        self.features = backend_features(backend)
        self.fleet = HelloFleet([(hello_name(ns, s), a) for (ns, s), a in BACKENDS.items()])
        self.manifests = tmp / "manifests"
        write_manifests(self.manifests, "base.yaml", base_objects(self.fleet.port))
        self.controller = Controller(backend, self.manifests, tmp / "work", extra=extra or [])
        self.controller.start()
        self.loaded: str | None = None

    def load(self, case: GatewayCase) -> None:
        if self.loaded == case.name:
            return
        before = self.controller.applied()
        write_manifests(self.manifests, "case.yaml", list(case.objects))
        self.controller.wait_applied(before)
        self.loaded = case.name

    def send(self, e: Expect) -> Response:
        return self.controller.get(
            e.host, e.path, scheme=e.scheme, method=e.method, headers=dict(e.request_headers)
        )

    def holds(self, case: GatewayCase, e: Expect) -> tuple[bool, str]:
        resp = self.send(e)
        why = f"{case}: {e}: got HTTP {resp.status} {resp.headers} {resp.body[:200]!r}"
        if e.backend is not None:
            if resp.status != 200 or resp.server_name != hello_name(*e.backend):
                return False, why
            seen = resp.json()
            if e.path_seen is not None and seen["uri"] != e.path_seen:
                return False, f"{why}: the backend got {seen['uri']}"
            if e.host_seen is not None and seen["host"].split(":")[0] != e.host_seen:
                return False, f"{why}: the backend got Host {seen['host']}"
            for k, val in e.headers:
                if seen["headers"].get(k.lower()) != val:
                    return False, f"{why}: the backend got headers {seen['headers']}"
            for k in e.absent:
                if k.lower() in seen["headers"]:
                    return False, f"{why}: {k} reached the backend"
        elif resp.status != e.status:
            return False, why
        if e.location is not None and resp.headers.get("location") != e.location:
            return False, f"{why}: Location {resp.headers.get('location')}"
        for k, val in e.response_headers:
            if resp.headers.get(k.lower()) != val:
                return False, f"{why}: response headers {resp.headers}"
        for k in e.absent_response_headers:
            if k.lower() in resp.headers:
                return False, f"{why}: {k} in the response"
        return True, ""

    def check(self, case: GatewayCase) -> None:
        self.load(case)
        for e in case.expects:
            last = [""]

            def ok(e: Expect = e, last: list[str] = last) -> bool:
                good, last[0] = self.holds(case, e)
                return good

            try:
                wait_until(ok, timeout=10, interval=0.1)
            except AssertionError:
                raise AssertionError(last[0]) from None
        if case.weights:
            self.check_weights(case)

    def check_weights(self, case: GatewayCase, requests: int = 500) -> None:
        """Upstream's rule: over 500 requests each backend's share is within 5 % of its
        weight's share (a weight 0 gets none)."""
        e = case.expects[0]
        seen: Counter[str] = Counter()
        for _ in range(requests):
            resp = self.send(e)
            assert resp.status == 200, f"{case}: HTTP {resp.status}"
            seen[str(resp.server_name)] += 1
        for ref, share in case.weights:
            got = seen[hello_name(*ref)] / requests
            assert abs(got - share) <= 0.05 if share else got == 0, (
                f"{case}: {ref} got {got:.1%} of the requests, its weight says {share:.1%}"
            )

    def stop(self) -> None:
        self.controller.stop()
        self.fleet.stop()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_gateway_conformance(gateway_world: GatewayWorld, case: GatewayCase) -> None:
    missing = sorted(case.features - gateway_world.features)
    if missing:
        pytest.skip(f"the {gateway_world.backend} backend does not declare {', '.join(missing)}")
    if "HTTPRoute" not in gateway_world.features:
        pytest.fail(f"the {gateway_world.backend} backend does not serve HTTPRoutes")
    gateway_world.check(case)
