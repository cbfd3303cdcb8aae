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

import contextlib
import functools
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from polyingress.core import BuildOptions, RouteModel, build_model
from polyingress.core.pipeline.model import Answer
from polyingress.core.pipeline.store import ObjectStore
from polyingress.core.pipeline.translate.annotations import policy_of
from polyingress.core.pipeline.translate.service import backend_name
from polyingress.core.runtime.hello import HelloServer, request_delay
from polyingress.testing.annotation_cases import (
    BLACKHOLE,
    CASES,
    NAMESPACE,
    PROTOCOL_SERVICES,
    SERVICES,
    SETTINGS_CONFIGMAP,
    SINK,
    STICKY,
    AnnotationCase,
    Expect,
    Sticky,
    base_objects,
    hello_name,
    location,
    sticky_names,
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
from polyingress.testing.protocols import H2CServer, tls_hello

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
    opts = BuildOptions(
        features=features, http_port=ports[0], https_port=ports[1], configmap=SETTINGS_CONFIGMAP
    )
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
    if e.within is not None:
        # The endpoint never accepts: only the row's connect timeout ends the wait in time.
        assert answer.proxied and route is not None, f"{case}: {e}: got {answer}"
        limit = getattr(route, e.ends_by)
        assert limit is not None and limit < e.within, (
            f"{case}: {e}: the route's {e.ends_by} {limit} does not end it"
        )
        return
    if e.status == 504 and delay is not None:
        assert answer.proxied and route is not None, f"{case}: {e}: got {answer}"
        assert route.timeout is not None and route.timeout < delay, (
            f"{case}: {e}: the route's timeout {route.timeout} does not end a {delay}s wait"
        )
        return
    # The response headers the core states: the CORS filter's (Answer.cors), the row's response
    # header filter's (custom-headers).
    changes = route.response_headers if route is not None else None
    given = changes.apply({}) if changes is not None else {}
    given |= {k: [v] for k, v in answer.cors}
    for k, v in e.response_headers:
        assert given.get(k.lower()) == [v], f"{case}: {e}: response headers {given}"
    for k in e.absent_response_headers:
        assert k.lower() not in given, f"{case}: {e}: {k} in {given}"
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
        services = {model.backend(n).service for n in names if n is not None}
        assert services == {e.service}, f"{case}: {e}: reaches {names}"
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
    errors = [str(p) for p in result.errors]
    assert len(errors) == len(case.errors), f"{case}: {errors}"
    for error, want in zip(errors, case.errors, strict=True):
        assert want in error, f"{case}: {errors}"
    for e in case.expects:
        _check_answer(case, e, result.model)
    for sticky in case.sticky:
        answer = result.model.answer(sticky.host, sticky.target, scheme=sticky.scheme)
        assert answer.proxied and answer.backend == _name(STICKY[0]), f"{case}: {answer}"
        affinity = answer.route.affinity if answer.route is not None else None
        assert affinity is not None and affinity.name == sticky.cookie, f"{case}: {affinity}"
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
        self.fleet = HelloFleet(
            [*((hello_name(s), a) for s, a in SERVICES.items()), *sticky_names()]
        )
        self.others = start_protocol_servers(self.fleet.port)
        self.manifests = tmp / "manifests"
        write_manifests(self.manifests, "base.yaml", base_objects(self.fleet.port))
        settings = ["--configmap", "/".join(SETTINGS_CONFIGMAP)]
        # The proxy's workdir where nginx's workers (nobody, when run as root) can write the
        # temporary files of large request bodies: pytest's base directory is 0700.
        self.workdir = Path(tempfile.mkdtemp(prefix="polyingress-annotations-"))
        self.workdir.chmod(0o711)
        self.controller = Controller(
            backend, self.manifests, self.workdir / "work", extra=[*settings, *(extra or [])]
        )
        self.blackhole = _blackhole(BLACKHOLE[1], self.fleet.port)
        self.sink = _Sink(SINK[1], self.fleet.port)
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
        body = None if e.body_size is None else b"x" * e.body_size
        return self.controller.get(
            e.host,
            e.target,
            scheme=e.scheme,
            method=e.method,
            headers=dict(e.headers),
            body=body,
            source=e.source,
            chunked=e.chunked,
            timeout=max(5.0, e.within or 0.0),
        )

    def holds(self, case: AnnotationCase, e: Expect) -> tuple[bool, str]:
        started = time.monotonic()
        resp = self.send(e)
        took = time.monotonic() - started
        why = f"{case}: {e}: got HTTP {resp.status} {resp.headers} {resp.body[:200]!r}"
        for k, v in e.response_headers:
            if resp.header_values(k) != [v]:
                return False, f"{why}: response header {k}: {resp.header_values(k)}"
        for k in e.absent_response_headers:
            if resp.header_values(k):
                return False, f"{why}: {k} in the response"
        if e.within is not None and took >= e.within:
            return False, f"{why} after {took:.1f}s, not within {e.within}s"
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
        for sticky in case.sticky:
            self.check_sticky(case, sticky)

    def _sticky_get(self, sticky: Sticky, cookie: str | None) -> Response:
        headers = {"Cookie": f"{sticky.cookie}={cookie}"} if cookie is not None else {}
        return self.controller.get(
            sticky.host, sticky.target, scheme=sticky.scheme, headers=headers
        )

    def _served_by(self, case: AnnotationCase, resp: Response) -> str:
        assert resp.status == 200, f"{case}: HTTP {resp.status} {resp.body[:200]!r}"
        name = str(resp.json()["server_name"])
        assert name in {n for n, _a in sticky_names()}, f"{case}: answered by {name}"
        return name

    def check_sticky(self, case: AnnotationCase, sticky: Sticky) -> None:
        """A request without the cookie gets it (with its attributes); sent back, it keeps
        every request on one endpoint; without it, requests reach several."""
        wait_until(lambda: bool(self._cookie(sticky, self._sticky_get(sticky, None))), timeout=20)
        resp = self._sticky_get(sticky, None)
        self._served_by(case, resp)
        value, attributes = self._cookie(sticky, resp)
        assert value, f"{case}: no {sticky.cookie} cookie in {resp.header_values('set-cookie')}"
        for want in sticky.attributes:
            assert want.lower() in attributes, f"{case}: {want} not in {attributes}"
        for name in sticky.absent:
            found = [a for a in attributes if a.split("=")[0] == name.lower()]
            assert not found, f"{case}: {name} in {attributes}"
        kept = {self._served_by(case, self._sticky_get(sticky, value)) for _ in range(20)}
        assert len(kept) == 1, f"{case}: with the cookie, requests reached {sorted(kept)}"
        spread = {self._served_by(case, self._sticky_get(sticky, None)) for _ in range(20)}
        assert len(spread) > 1, f"{case}: without the cookie, only {sorted(spread)} answered"

    @staticmethod
    def _cookie(sticky: Sticky, resp: Response) -> tuple[str, list[str]]:
        """The cookie's value and attributes (lowercase) from the response's Set-Cookie."""
        for line in resp.header_values("set-cookie"):
            first, *rest = [p.strip() for p in line.split(";")]
            name, _eq, value = first.partition("=")
            if name == sticky.cookie:
                return value, [a.lower() for a in rest if a]
        return "", []

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
        for server in self.others:
            server.stop()
        for sock in self.blackhole:
            sock.close()
        self.sink.stop()
        # (the controller's log, beside the proxy's workdir, is kept)
        shutil.rmtree(self.workdir / "work", ignore_errors=True)


class _Sink(threading.Thread):
    """A server that accepts connections and never reads from them (receive buffer 4 KB):
    whatever is sent to it stops once the buffers are full."""

    def __init__(self, address: str, port: int) -> None:
        super().__init__(daemon=True)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.listener.bind((address, port))
        self.listener.listen(64)
        self.held: list[socket.socket] = []
        self.start()

    def run(self) -> None:
        while True:
            try:
                conn, _peer = self.listener.accept()
            except OSError:
                return  # closed by stop()
            self.held = [*self.held[-63:], conn]

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
        self.listener.close()
        self.join(timeout=5)
        for conn in self.held:
            conn.close()


def _blackhole(address: str, port: int) -> list[socket.socket]:
    """A listener that never accepts, its accept queue filled: the kernel then drops the SYNs
    of every further connection, which waits until its connect timeout (Linux)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((address, port))
    listener.listen(0)
    held = [listener]
    for _ in range(4):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.setblocking(False)
        client.connect_ex((address, port))
        held.append(client)
    time.sleep(0.2)
    return held


def start_protocol_servers(port: int) -> list[HelloServer | H2CServer]:
    """The endpoints of :data:`PROTOCOL_SERVICES` on ``port``: an HTTPS hello server with a
    self-signed certificate, an h2c-only server."""
    out: list[HelloServer | H2CServer] = []
    for service, (address, protocol) in PROTOCOL_SERVICES.items():
        if protocol == "https":
            out.append(tls_hello(hello_name(service), address, port).start())
        else:
            out.append(H2CServer(hello_name(service), address, port).start())
    return out


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
