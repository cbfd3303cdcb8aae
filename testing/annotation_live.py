"""The ingress-nginx annotation cases, checked against the core and live through a backend.

:func:`check_model` holds :meth:`RouteModel.answer` to a case (built as a backend serving every
Gateway API feature would serve it); :class:`AnnotationWorld` runs ``polyingress run --backend
NAME`` once and loads one case at a time (the base objects plus the case's Ingresses), waits
until the controller has built from them, then sends every request over real HTTP(S) until it
gets what the case expects three times in a row, checking what the hello backend received.

A case whose annotations need a Gateway API feature the backend does not declare
(``BackendInfo.gateway_features``; the translation names them per annotation) is skipped with
that reason: on such a backend the core answers those paths 500 and reports the annotation,
which tests/test_annotations_core.py checks.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from polyingress.core import BuildOptions, RouteModel, build_model
from polyingress.core.pipeline.model import Answer
from polyingress.core.pipeline.store import ObjectStore
from polyingress.core.pipeline.translate.annotations import policy_of
from polyingress.core.pipeline.translate.service import backend_name
from polyingress.core.runtime.hello import request_delay
from polyingress.testing.annotation_cases import (
    CASES,
    NAMESPACE,
    SERVICES,
    AnnotationCase,
    Expect,
    base_objects,
    hello_name,
    location,
)
from polyingress.testing.gateway_live import backend_features, same_location
from polyingress.testing.live import (
    Controller,
    HelloFleet,
    Response,
    check_split,
    hold_consistently,
    metric,
    wait_until,
    write_manifests,
)

__all__ = [
    "AnnotationWorld",
    "case_features",
    "check_model",
    "model_of",
    "test_annotation_case",
]

pytestmark = pytest.mark.live

CORE_PORTS = (8080, 8443)  # the proxy's ports the core check builds with


def case_features(case: AnnotationCase, ports: tuple[int, int] = (80, 443)) -> frozenset[str]:
    """The Gateway API features the case's annotations need (the translation's verdicts) with
    the proxy on ``ports`` (HTTP, HTTPS: a redirect to another port needs port redirects)."""
    out: set[str] = set()
    for obj in case.ingresses:
        policy, _problems = policy_of(obj, http_port=ports[0], https_port=ports[1])
        if policy is not None:
            out |= policy.features
    return frozenset(out)


def model_of(
    case: AnnotationCase, ports: tuple[int, int] = CORE_PORTS, features: Any = None
) -> Any:
    """The core's build of the base plus the case (a BuildResult)."""
    store = ObjectStore()
    store.replace_many([*base_objects(1), *case.ingresses, *case.objects], ())
    opts = BuildOptions(features=features, http_port=ports[0], https_port=ports[1])
    return build_model(store.snapshot(), opts)


def _name(service: str) -> str:
    return backend_name(NAMESPACE, service, "80")


def _sent(e: Expect) -> tuple[tuple[str, str], ...]:
    return tuple((k.lower(), v) for k, v in e.headers)


def _check_answer(case: AnnotationCase, e: Expect, model: RouteModel) -> None:
    answer: Answer = model.answer(
        e.host,
        e.target,
        scheme=e.scheme,
        method=e.method,
        headers=_sent(e),
        client=e.source,
        body_size=e.body_size,
    )
    route = answer.route
    delay = request_delay(e.target)
    if e.status == 504 and delay is not None:
        assert answer.proxied and route is not None, f"{case}: {e}: got {answer}"
        assert route.timeout is not None and route.timeout < delay, (
            f"{case}: {e}: the route's timeout {route.timeout} does not end a {delay}s wait"
        )
        return
    if e.service is None and e.status != 200:
        assert answer.status == e.status, f"{case}: {e}: got {answer}"
        if e.challenge is not None:
            policy = route.policy if route is not None else None
            auth = policy.auth if policy is not None else None
            assert auth is not None and auth.challenge() == e.challenge, f"{case}: {e}: {auth}"
        if e.location is not None:
            want = location(e.location, *CORE_PORTS)
            assert answer.location == want, f"{case}: {e}: Location {answer.location}, not {want}"
        return
    assert answer.proxied, f"{case}: {e}: expected a backend, got {answer}"
    names = {w.backend for w in answer.backends if w.weight > 0}
    if e.service is not None:
        assert names == {_name(e.service)}, f"{case}: {e}: reaches {names}"
    if delay is not None and route is not None:
        assert route.timeout is None or route.timeout > delay, f"{case}: {e}: times out"
    assert answer.path == (e.path_seen or e.target), f"{case}: {e}: backend gets {answer.path}"
    assert answer.host == e.host_seen, f"{case}: {e}: backend gets Host {answer.host}"
    sent = {k: [v] for k, v in _sent(e)}
    seen = route.request_headers.apply(sent) if route and route.request_headers else sent
    for k, v in e.headers_seen:
        assert seen.get(k.lower()) == [v], f"{case}: {e}: backend gets headers {seen}"
    for k in e.absent_seen:
        assert k.lower() not in seen, f"{case}: {e}: {k} reaches the backend"


def check_model(case: AnnotationCase) -> None:
    """Every request of the case against :meth:`RouteModel.answer`; the split against the
    weights; no problem but the case's own."""
    result = model_of(case)
    errors = [p.reason for p in result.errors]
    assert errors == list(case.errors), f"{case}: {[str(p) for p in result.errors]}"
    for e in case.expects:
        _check_answer(case, e, result.model)
    if case.weights:
        e = case.expects[0]
        answer = result.model.answer(e.host, e.target, scheme=e.scheme, headers=_sent(e))
        split = {w.backend: w.weight for w in answer.backends}
        total = sum(split.values())
        for service, share in case.weights:
            got = split.get(_name(service), 0) / total if total else 0.0
            assert abs(got - share) < 1e-9, f"{case}: {service} gets {got:.1%}, not {share:.1%}"


class AnnotationWorld:
    """One controller for a backend; :meth:`load` switches to a case's Ingresses."""

    def __init__(self, backend: str, tmp: Path, extra: list[str] | None = None) -> None:
        self.backend = backend
        self.features = backend_features(backend)
        self.fleet = HelloFleet([(hello_name(s), a) for s, a in SERVICES.items()])
        self.manifests = tmp / "manifests"
        write_manifests(self.manifests, "base.yaml", base_objects(self.fleet.port))
        # nginx run as root buffers request bodies above 16 KiB in <workdir>/tmp as nobody,
        # who must reach it: pytest's private temporary directories are not searchable by
        # others (the nginx backend warns about such a workdir), so the workdir lives in a
        # directory of its own that is.
        self.reachable = Path(tempfile.mkdtemp(prefix="polyingress-annotations-"))
        self.reachable.chmod(0o711)
        self.controller = Controller(
            backend, self.manifests, self.reachable / "work", extra=extra or []
        )
        self.controller.start()
        self.loaded: tuple[dict[str, Any], ...] | None = None

    def load(self, case: AnnotationCase) -> None:
        objects = (*case.ingresses, *case.objects)
        if self.loaded == objects:
            return
        before = self._syncs()
        write_manifests(self.manifests, "case.yaml", list(objects))
        wait_until(lambda: self._syncs() > before, timeout=20)
        self.loaded = objects

    def _syncs(self) -> float:
        return metric(self.controller.metrics(), "polyingress_syncs_total")

    def send(self, e: Expect) -> Response:
        return self.controller.get(
            e.host,
            e.target,
            scheme=e.scheme,
            method=e.method,
            headers=dict(e.headers),
            source=e.source,
            body=None if e.body_size is None else b"b" * e.body_size,
            chunked=e.chunked,
        )

    def holds(self, case: AnnotationCase, e: Expect) -> tuple[bool, str]:
        resp = self.send(e)
        why = f"{case}: {e}: got HTTP {resp.status} {resp.headers} {resp.body[:200]!r}"
        if e.service is None and e.status != 200:
            if resp.status != e.status:
                return False, why
            if e.challenge is not None and resp.headers.get("www-authenticate") != e.challenge:
                return False, f"{why}: WWW-Authenticate is not {e.challenge}"
            if e.location is not None:
                want = location(e.location, self.controller.http_port, self.controller.https_port)
                if not same_location(resp.headers.get("location"), want):
                    return False, f"{why}: Location {resp.headers.get('location')}, not {want}"
            return True, ""
        if resp.status != 200:
            return False, why
        try:
            seen = resp.json()
            name = str(seen["server_name"])
        except (ValueError, KeyError, TypeError):
            return False, f"{why}: not an answer of a hello backend"
        if e.service is not None and name != hello_name(e.service):
            return False, why
        if seen["uri"] != (e.path_seen or e.target):
            return False, f"{why}: the backend got {seen['uri']}"
        if seen["method"] != e.method:
            return False, f"{why}: the backend got {seen['method']}"
        want_host = e.host_seen or e.host
        got_host = str(seen["host"]).rsplit(":", 1)[0] if e.host_seen is None else seen["host"]
        if got_host != want_host:
            return False, f"{why}: the backend got Host {seen['host']}"
        for k, v in e.headers_seen:
            if seen["headers"].get(k.lower()) != v:
                return False, f"{why}: the backend got headers {seen['headers']}"
        for k in e.absent_seen:
            if k.lower() in seen["headers"]:
                return False, f"{why}: {k} reached the backend"
        return True, ""

    def check(self, case: AnnotationCase) -> None:
        self.load(case)
        for e in case.expects:
            hold_consistently(functools.partial(self.holds, case, e))
        if case.weights:
            self.check_weights(case)

    def check_weights(self, case: AnnotationCase, requests: int = 500) -> None:
        e = case.expects[0]
        check_split(
            lambda: self.send(e),
            {hello_name(s): share for s, share in case.weights},
            str(case),
            requests,
        )

    def stop(self) -> None:
        self.controller.stop()
        self.fleet.stop()
        shutil.rmtree(self.reachable, ignore_errors=True)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_annotation_case(annotation_world: AnnotationWorld, case: AnnotationCase) -> None:
    ports = (annotation_world.controller.http_port, annotation_world.controller.https_port)
    missing = sorted(case_features(case, ports) - annotation_world.features)
    if missing:
        pytest.skip(
            f"the {annotation_world.backend} backend does not declare {', '.join(missing)}, "
            "which these annotations need"
        )
    annotation_world.check(case)
