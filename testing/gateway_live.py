"""The Gateway API conformance cases, checked against the core and live through a backend.

:func:`check_model` holds :meth:`RouteModel.answer` and the computed status to a case;
:class:`GatewayWorld` runs ``polyingress run --backend NAME`` once and loads one case at a time
(the base objects plus the case's own, as upstream applies one test's manifests at a time),
waits until the controller has applied it, then sends every request over real HTTP(S) until it
gets what the case expects three times in a row (upstream's rule), checking what the hello
backend received, what the client got back and what reached a mirror; then it checks the
status the controller computes for that backend (``polyingress status --backend NAME`` on the
same manifests: the status depends on the backend's features).

A case needing an extended feature the backend does not declare (``BackendInfo.
gateway_features``) is skipped with that reason, as the upstream suite skips unsupported
features; a core case is never skipped.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h2.exceptions
import pytest
import yaml
from websockets.exceptions import WebSocketException

from polyingress.core import BuildOptions, RouteModel, build_model, served_features
from polyingress.core.pipeline.model import Answer, Outcome
from polyingress.core.pipeline.store import ObjectStore
from polyingress.core.runtime.hello import request_delay
from polyingress.testing.gateway_cases import (
    BACKEND_HEADER_REQUESTS,
    BACKENDS,
    CASES,
    CONTROLLER,
    CORE_FEATURES,
    INFRA,
    MIRROR_SHARE_REQUESTS,
    WS_MESSAGES,
    Expect,
    GatewayCase,
    base_objects,
    certificate_sha256,
    hello_name,
)
from polyingress.testing.live import (
    CONSECUTIVE,
    Controller,
    HelloFleet,
    Response,
    check_split,
    free_port,
    hold_consistently,
    metric,
    wait_until,
    write_manifests,
)
from polyingress.testing.protocols import H2CServer, WebSocketEcho, h2c_get, websocket_echo

__all__ = [
    "CONSECUTIVE",
    "GatewayWorld",
    "backend_features",
    "check_model",
    "check_statuses",
    "model_of",
    "same_location",
    "test_gateway_conformance",
]

pytestmark = pytest.mark.live

_HELLO_PORT = 1  # the port the base objects name; the model check needs no real one
_GROUP = "gateway.networking.k8s.io"
_REQUEST_ID = "gateway-api-conformance-request-id"  # upstream's query parameter for mirrors
_WELL_KNOWN = {"http": 80, "https": 443}


def backend_features(name: str) -> frozenset[str]:
    """The Gateway API features a backend plugin declares."""
    from polyingress.core.runtime.plugins import load_backend, plugin_manager

    _p, obj = load_backend(name)
    info = plugin_manager((name, obj)).hook.polyingress_backend_info()
    return served_features(info.gateway_features) if info is not None else frozenset()


def model_of(case: GatewayCase, features: frozenset[str] | None = None) -> Any:
    """The core's build of the base plus the case (a BuildResult)."""
    store = ObjectStore()
    store.replace_many([*base_objects(_HELLO_PORT), *case.objects_at(_HELLO_PORT)], ())
    return build_model(store.snapshot(), BuildOptions(features=features, now="now"))


def _backend_name(ref: tuple[str, str]) -> str:
    return f"{ref[0]}__{ref[1]}__8080"


def _joined(headers: Mapping[str, list[str]], name: str) -> str | None:
    values = headers.get(name.lower())
    return None if values is None else ",".join(values)


def _multimap(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, val in pairs:
        out.setdefault(k.lower(), []).append(val)
    return out


def same_location(got: str | None, want: str) -> bool:
    """A redirect's Location compared as upstream compares it: scheme, host, port (the
    scheme's well-known port may be written or left out) and path (and the query)."""
    if got is None:
        return False
    a, b = urlsplit(got), urlsplit(want)
    return (
        a.scheme == b.scheme
        and a.hostname == b.hostname
        and (a.port or _WELL_KNOWN.get(a.scheme)) == (b.port or _WELL_KNOWN.get(b.scheme))
        and a.path == b.path
        and a.query == b.query
    )


def _check_answer(case: GatewayCase, e: Expect, model: RouteModel) -> None:
    answer: Answer = model.answer(
        e.host,
        e.path,
        scheme=e.scheme,
        method=e.method,
        headers=tuple((k.lower(), val) for k, val in e.sent_headers),
    )
    route = answer.route
    delay = request_delay(e.path)
    reaches_backend = e.backend is not None or e.status == 200
    if e.status == 504 and delay is not None:
        # The backend answers after ``delay``: the route's timeout must end the wait first.
        assert answer.proxied and route is not None, f"{case}: {e}: got {answer}"
        assert route.timeout is not None and route.timeout < delay, (
            f"{case}: {e}: the route's timeout {route.timeout} does not end a {delay}s wait"
        )
    elif reaches_backend:
        assert answer.proxied, f"{case}: {e}: expected {e.backend or 'a backend'}, got {answer}"
        if e.backend is not None:
            # The hello server the request reaches (as upstream checks the pod that answered),
            # whichever Service leads to it.
            names = {w.backend for w in answer.backends if w.backend is not None}
            addresses = {
                ep.address
                for name in names
                if name in model.backend_index
                for ep in model.backend(name).ready_endpoints
            }
            assert BACKENDS[e.backend] in addresses, f"{case}: {e}: got {names} ({addresses})"
        if delay is not None and route is not None:
            assert route.timeout is None or route.timeout > delay, (
                f"{case}: {e}: the route's timeout {route.timeout} ends a {delay}s wait"
            )
    else:
        assert answer.status == e.status, f"{case}: {e}: got {answer}"
    if e.location is not None:
        assert answer.location == e.location, f"{case}: {e}: got {answer.location}"
    if e.certificate is not None:
        got = model.certificate_for(e.host)
        want = certificate_sha256(e.certificate)
        assert got is not None and model.certificate(got).fingerprint == want, (
            f"{case}: {e}: the host is served with {got}, not {e.certificate}"
        )
    if answer.outcome is Outcome.CORS_PREFLIGHT:
        _check_response_headers(case, e, _multimap(answer.cors))
    if not reaches_backend or not answer.proxied:
        return
    want_path = e.path_seen or e.path
    assert answer.path == want_path, f"{case}: {e}: the backend gets {answer.path}"
    if e.as_sent:
        assert answer.host is None, f"{case}: {e}: the backend gets Host {answer.host}"
    elif e.host_seen is not None:
        assert answer.host == e.host_seen, f"{case}: {e}: the backend gets Host {answer.host}"
    sent = _multimap(e.sent_headers)
    got_headers = (
        route.request_headers.apply(sent) if route and route.request_headers is not None else sent
    )
    if e.backend_header is not None:
        # Each backend of the split sets the header to its own Service name.
        for w in answer.backends:
            if w.weight <= 0 or w.backend is None:
                continue
            own = w.headers(route.request_headers if route is not None else None)
            seen = own.apply(sent) if own is not None else sent
            service = model.backend(w.backend).service
            assert _joined(seen, e.backend_header) == service, (
                f"{case}: {e}: {w.backend} gets {e.backend_header} {seen}"
            )
    for k, val in e.request_headers if e.as_sent else e.headers:
        assert _joined(got_headers, k) == val, f"{case}: {e}: request headers {got_headers}"
    for k in e.absent:
        assert k.lower() not in got_headers, f"{case}: {e}: {k} must not reach the backend"
    resp = _multimap(e.backend_response_headers)
    if route is not None and route.response_headers is not None:
        resp = route.response_headers.apply(resp)
    resp.update({k: [val] for k, val in answer.cors})  # they replace the backend's
    _check_response_headers(case, e, resp)
    if e.mirrored_to:
        mirrors = set(route.mirrors) if route is not None else set()
        for ref in e.mirrored_to:
            assert _backend_name(ref) in mirrors, f"{case}: {e}: not mirrored to {ref}: {mirrors}"
    if e.mirror_shares:
        assert route is not None, f"{case}: {e}: no route"
        fractions = route.mirror_fractions or tuple((1, 1) for _m in route.mirrors)
        shares = {m: n / d for m, (n, d) in zip(route.mirrors, fractions, strict=True)}
        for ref, share in e.mirror_shares:
            has = shares.get(_backend_name(ref))
            assert has == share, f"{case}: {e}: mirrors {ref} with share {has}, not {share}"


def _check_response_headers(case: GatewayCase, e: Expect, resp: dict[str, list[str]]) -> None:
    for k, val in e.response_headers:
        assert _joined(resp, k) == val, f"{case}: {e}: response headers {resp}"
    for k in e.absent_response_headers:
        assert k.lower() not in resp, f"{case}: {e}: {k} must not be in the response"


def check_model(case: GatewayCase) -> None:
    """Every request of the case against :meth:`RouteModel.answer`, every expected condition
    against the computed status, the split against the weights."""
    result = model_of(case)
    model: RouteModel = result.model
    for e in case.expects:
        _check_answer(case, e, model)
    if case.weights:
        e = case.expects[0]
        answer = model.answer(e.host, e.path, scheme=e.scheme, method=e.method)
        split = {w.backend: w.weight for w in answer.backends}
        total = sum(split.values())
        for ref, share in case.weights:
            got = split.get(_backend_name(ref), 0) / total if total else 0.0
            assert abs(got - share) < 1e-9, f"{case}: {ref} gets {got:.1%}, not {share:.1%}"
    check_statuses(case, result.statuses)


def check_statuses(case: GatewayCase, statuses: Iterable[Mapping[str, Any]]) -> None:
    """The case's expected conditions, attachedRoutes and Gateways without routes in status
    documents (``{kind, metadata, status}``), as upstream's helpers compare them: a condition
    is found when one of that type has the status and (unless "") the reason; an HTTPRoute's
    parent must name our controller and its parentRef the Gateway group and kind (what the API
    server defaults when a route leaves them out)."""
    docs = {
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d["status"]
        for d in statuses
    }
    for kind, ns, name, parent, ctype, status, reason in case.statuses:
        doc = docs.get((kind, ns, name))
        assert doc is not None, f"{case}: no status for {kind} {ns}/{name}"
        if kind == "HTTPRoute":
            parents = [p for p in doc.get("parents") or () if p["parentRef"]["name"] == parent]
            assert parents, f"{case}: HTTPRoute {ns}/{name} has no status for parent {parent}"
            for p in parents:
                ref = p["parentRef"]
                assert p.get("controllerName") == CONTROLLER, f"{case}: {name}: {p}"
                assert (ref.get("group"), ref.get("kind")) == (_GROUP, "Gateway"), (
                    f"{case}: HTTPRoute {ns}/{name}: parentRef without the Gateway group/kind {ref}"
                )
            conds = [c for p in parents for c in p["conditions"]]
        elif kind == "Gateway" and parent:
            listeners = [ln for ln in doc.get("listeners") or () if ln["name"] == parent]
            assert listeners, f"{case}: Gateway {ns}/{name} has no listener {parent} in status"
            conds = listeners[0]["conditions"]
        else:
            conds = doc["conditions"]
        found = [c for c in conds if c["type"] == ctype]
        assert found, f"{case}: {kind} {ns}/{name} {parent}: no {ctype} condition in {conds}"
        assert _has_condition(found, ctype, status, reason), (
            f"{case}: {kind} {ns}/{name} {parent}: {ctype} is {found}, not {status} {reason}"
        )
    listed: dict[tuple[str, str], int] = {}
    for want in case.listeners:
        key = (want.namespace, want.gateway)
        listed[key] = listed.get(key, 0) + 1
        doc = docs.get(("Gateway", *key))
        assert doc is not None, f"{case}: no status for Gateway {key}"
        found_ln = [ln for ln in doc.get("listeners") or () if ln["name"] == want.name]
        assert found_ln, f"{case}: Gateway {key} has no listener {want.name} in status"
        ln = found_ln[0]
        where = f"{case}: Gateway {want.namespace}/{want.gateway} listener {want.name}"
        assert ln["attachedRoutes"] == want.attached, (
            f"{where}: attachedRoutes {ln['attachedRoutes']}, not {want.attached}"
        )
        kinds = [(k.get("group", _GROUP), k.get("kind")) for k in ln.get("supportedKinds") or ()]
        if want.kinds:
            for kind in want.kinds:
                assert (_GROUP, kind) in kinds, f"{where}: supportedKinds {kinds} lack {kind}"
        else:
            assert not kinds, f"{where}: supportedKinds must be empty, not {kinds}"
        for ctype, status, reason in want.conditions:
            assert _has_condition(ln["conditions"], ctype, status, reason), (
                f"{where}: no {ctype} {status} {reason or '(any reason)'} in {ln['conditions']}"
            )
    for (ns, gw), count in listed.items():
        got = len(docs[("Gateway", ns, gw)].get("listeners") or ())
        assert got == count, f"{case}: Gateway {ns}/{gw} has {got} listeners in status, not {count}"
    for ns, gw in case.zero_routes:
        doc = docs.get(("Gateway", ns, gw))
        assert doc is not None, f"{case}: no status for Gateway {ns}/{gw}"
        listeners = doc.get("listeners") or []
        assert not listeners or (len(listeners) == 1 and listeners[0]["attachedRoutes"] == 0), (
            f"{case}: Gateway {ns}/{gw} must have no route attached: {listeners}"
        )
    generations = {
        (o["kind"], (o.get("metadata") or {}).get("namespace", ""), o["metadata"]["name"]): (
            o["metadata"].get("generation")
        )
        for o in case.objects
    }
    for kind, ns, name in case.latest:
        doc = docs.get((kind, ns, name))
        assert doc is not None, f"{case}: no status for {kind} {ns}/{name}"
        want_gen = generations.get((kind, ns, name))
        assert want_gen is not None, f"{case}: {kind} {ns}/{name} has no metadata.generation"
        conds = (
            [c for p in doc.get("parents") or () for c in p["conditions"]]
            if kind == "HTTPRoute"
            else list(doc.get("conditions") or ())
        )
        stale = [c for c in conds if c.get("observedGeneration") != want_gen]
        assert conds and not stale, (
            f"{case}: {kind} {ns}/{name}: conditions not of generation {want_gen}: {stale or conds}"
        )


def _has_condition(
    conditions: Iterable[Mapping[str, Any]], ctype: str, status: str, reason: str
) -> bool:
    """Upstream's findConditionInList: one of that type with the status and the reason (an
    empty one matches any)."""
    return any(
        c["type"] == ctype
        and (not status or c["status"] == status)
        and (not reason or c["reason"] == reason)
        for c in conditions
    )


class GatewayWorld:
    """One controller for a backend; :meth:`load` switches to a case's objects."""

    def __init__(self, backend: str, tmp: Path, extra: list[str] | None = None) -> None:
        self.backend = backend
        self.features = backend_features(backend) | (CORE_FEATURES - {"HTTPRoute"})
        self.fleet = HelloFleet([(hello_name(ns, s), a) for (ns, s), a in BACKENDS.items()])
        # infra-backend-v1's h2c-only and WebSocket servers (its ports 8081 and 8082).
        v1 = hello_name(INFRA, "infra-backend-v1")
        address = BACKENDS[(INFRA, "infra-backend-v1")]
        self.h2c = H2CServer(v1, address, free_port()).start()
        self.ws = WebSocketEcho(v1, address, free_port()).start()
        ports = {"second-port": self.h2c.port, "third-port": self.ws.port}
        self.manifests = tmp / "manifests"
        write_manifests(
            self.manifests, "base.yaml", base_objects(self.fleet.port, CONTROLLER, ports)
        )
        self.controller = Controller(backend, self.manifests, tmp / "work", extra=extra or [])
        self.controller.start()
        self.loaded: tuple[dict[str, Any], ...] | None = None

    def load(self, case: GatewayCase) -> None:
        """Write the case's objects and wait until the controller has built from them: a model
        applied (the proxy serves it), or unchanged (two cases whose routes attach nowhere
        give the same model), or refused."""
        if self.loaded == case.objects:
            return
        before = self._syncs()
        write_manifests(self.manifests, "case.yaml", case.objects_at(self.fleet.port))
        wait_until(lambda: self._syncs() > before, timeout=20)
        self.loaded = case.objects

    def _syncs(self) -> float:
        """Every model build the controller finished, whatever its outcome."""
        return metric(self.controller.metrics(), "polyingress_syncs_total")

    def send(self, e: Expect, target: str | None = None) -> Response:
        return self.controller.get(
            e.host,
            target or e.path,
            scheme=e.scheme,
            method=e.method,
            headers=dict(e.sent_headers),
        )

    def holds(self, case: GatewayCase, e: Expect) -> tuple[bool, str]:
        """One request: whether it got what ``e`` expects, and if not, why."""
        if e.protocol == "h2c":
            return self._holds_h2c(case, e)
        if e.protocol == "websocket":
            return self._holds_websocket(case, e)
        target, want_path = e.path, e.path_seen or e.path
        if e.mirrored_to:  # a unique request, to be found in the mirrors' logs
            rid = f"{_REQUEST_ID}={uuid.uuid4()}"
            target += ("&" if "?" in target else "?") + rid
            want_path += ("&" if "?" in want_path else "?") + rid
        resp = self.send(e, target)
        why = f"{case}: {e}: got HTTP {resp.status} {resp.headers} {resp.body[:200]!r}"
        if e.backend is not None or e.status == 200:
            if resp.status != 200:
                return False, why
            try:
                seen = resp.json()
                name = str(seen["server_name"])
            except (ValueError, KeyError, TypeError):
                return False, f"{why}: not an answer of a hello backend"
            if e.backend is not None and name != hello_name(*e.backend):
                return False, why
            if seen["uri"] != want_path:
                return False, f"{why}: the backend got {seen['uri']}"
            if seen["method"] != e.method:
                return False, f"{why}: the backend got {seen['method']}"
            want_host = e.host if e.as_sent else e.host_seen
            if want_host is not None and seen["host"] != want_host:
                return False, f"{why}: the backend got Host {seen['host']}"
            for k, val in e.request_headers if e.as_sent else e.headers:
                if seen["headers"].get(k.lower()) != val:
                    return False, f"{why}: the backend got headers {seen['headers']}"
            for k in e.absent:
                if k.lower() in seen["headers"]:
                    return False, f"{why}: {k} reached the backend"
            if e.backend_header is not None:
                service = name.split("/", 1)[-1]
                got = seen["headers"].get(e.backend_header.lower())
                if got != service:
                    return False, f"{why}: {service} got {e.backend_header}: {got}"
        elif resp.status != e.status:
            return False, why
        if e.location is not None and not same_location(resp.headers.get("location"), e.location):
            return False, f"{why}: Location {resp.headers.get('location')}, not {e.location}"
        for k, val in e.response_headers:
            got = resp.header_values(k)
            if ",".join(got) != val:
                return False, f"{why}: response header {k}: {got}"
        for k in e.absent_response_headers:
            if resp.header_values(k):
                return False, f"{why}: {k} in the response"
        if e.certificate is not None and resp.peer_sha256 != certificate_sha256(e.certificate):
            return False, f"{why}: not the certificate of {e.certificate} (CN {resp.peer_cn})"
        for ref in e.mirrored_to:
            server = self.fleet.servers[hello_name(*ref)]

            def mirrored(server: Any = server) -> bool:
                return any(r["uri"] == want_path for r in list(server.requests))

            try:
                wait_until(mirrored, timeout=10, interval=0.05)
            except AssertionError:
                return False, f"{case}: {e}: no copy of {want_path} reached {ref}"
        return True, ""

    def _holds_h2c(self, case: GatewayCase, e: Expect) -> tuple[bool, str]:
        """An HTTP/2 prior-knowledge request; the answer must come from the backend's h2c
        server (it speaks nothing else)."""
        try:
            resp = h2c_get(self.controller.http_port, e.host, e.path)
        except (OSError, h2.exceptions.ProtocolError) as exc:
            return False, f"{case}: {e}: {type(exc).__name__}: {exc}"
        why = f"{case}: {e}: got HTTP {resp.status} {resp.headers} {resp.body[:200]!r}"
        if resp.status != e.status:
            return False, why
        if e.backend is not None:
            try:
                seen = resp.json()
            except ValueError:
                return False, f"{why}: not an answer of the h2c backend"
            if seen.get("server_name") != hello_name(*e.backend):
                return False, why
            if seen.get("protocol") != "HTTP/2" or seen.get("uri") != (e.path_seen or e.path):
                return False, f"{why}: the backend got {seen}"
        return True, ""

    def _holds_websocket(self, case: GatewayCase, e: Expect) -> tuple[bool, str]:
        """A WebSocket through the Gateway: the messages come back unchanged, from the
        backend's WebSocket server."""
        before = self.ws.connections
        try:
            replies = websocket_echo(self.controller.http_port, e.host, e.path, WS_MESSAGES)
        except (OSError, WebSocketException, TimeoutError) as exc:
            return False, f"{case}: {e}: {type(exc).__name__}: {exc}"
        if replies != list(WS_MESSAGES):
            return False, f"{case}: {e}: replies {replies!r}, not {WS_MESSAGES!r}"
        if e.backend == (INFRA, "infra-backend-v1") and self.ws.connections <= before:
            return False, f"{case}: {e}: the echo did not come from {e.backend}'s server"
        return True, ""

    def check(self, case: GatewayCase) -> None:
        self.load(case)
        for e in case.expects:
            hold_consistently(functools.partial(self.holds, case, e))
            if e.backend_header is not None:
                # Upstream's loop: every one of these requests, none retried.
                for _ in range(BACKEND_HEADER_REQUESTS):
                    good, why = self.holds(case, e)
                    assert good, why
            if e.mirror_shares:
                self.check_mirror_shares(case, e)
        if case.weights:
            self.check_weights(case)
        check_statuses(case, self.statuses())

    def check_mirror_shares(self, case: GatewayCase, e: Expect) -> None:
        """Upstream's distribution check: of MIRROR_SHARE_REQUESTS requests in a row, each
        mirror gets its share of copies, within 5 % of the expected count."""
        servers = {ref: self.fleet.servers[hello_name(*ref)] for ref, _share in e.mirror_shares}
        marks = {ref: server.received for ref, server in servers.items()}
        want_path = e.path_seen or e.path

        def copies() -> dict[tuple[str, str], int]:
            return {
                ref: sum(
                    1
                    for r in server.requests_since(marks[ref])
                    if str(r["uri"]).split("?", 1)[0] == want_path
                )
                for ref, server in servers.items()
            }

        last: dict[tuple[str, str], int] = {}

        def settled() -> bool:  # copies travel on their own: wait until none is on its way
            nonlocal last
            now = copies()
            done = now == last
            last = now
            return done

        wait_until(settled, timeout=20, interval=0.5)  # the copies of the requests before
        marks = {ref: server.received for ref, server in servers.items()}
        for _ in range(MIRROR_SHARE_REQUESTS):
            good, why = self.holds(case, e)
            assert good, why
        last = {}
        wait_until(settled, timeout=20, interval=0.5)
        for ref, share in e.mirror_shares:
            expected = MIRROR_SHARE_REQUESTS * share
            assert abs(last[ref] - expected) <= expected * 0.05, (
                f"{case}: {e}: {last[ref]} copies reached {ref}, not {expected:.0f} (±5 %)"
            )

    def check_weights(self, case: GatewayCase, requests: int = 500) -> None:
        e = case.expects[0]
        check_split(
            lambda: self.send(e),
            {hello_name(*ref): share for ref, share in case.weights},
            str(case),
            requests,
        )

    def statuses(self) -> list[dict[str, Any]]:
        """The status ``polyingress status --backend`` computes for the loaded manifests."""
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "polyingress.core.runtime.cli",
                "status",
                "--manifests",
                str(self.manifests),
                "--backend",
                self.backend,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, f"polyingress status failed: {out.stderr}"
        docs = yaml.safe_load(out.stdout) or []
        assert isinstance(docs, list), out.stdout
        return docs

    def stop(self) -> None:
        self.controller.stop()
        self.fleet.stop()
        self.h2c.stop()
        self.ws.stop()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_gateway_conformance(gateway_world: GatewayWorld, case: GatewayCase) -> None:
    missing = sorted(case.features - gateway_world.features)
    if missing:
        pytest.skip(f"the {gateway_world.backend} backend does not declare {', '.join(missing)}")
    if "HTTPRoute" not in gateway_world.features:
        pytest.fail(f"the {gateway_world.backend} backend does not serve HTTPRoutes")
    gateway_world.check(case)
