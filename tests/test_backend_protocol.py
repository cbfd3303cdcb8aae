"""Backend protocols in the core: a Service port's appProtocol (Gateway API, GEP-1911) and the
ingress-nginx backend-protocol annotation give Backend.protocol; what a backend does not serve
answers 500 with the reason in the status or the problems. And the kit's h2c and WebSocket
servers refuse what they do not speak (so a proxy talking HTTP/1.1 to them fails the case)."""

from __future__ import annotations

import http.client
from typing import Any

import pytest

from polyingress.core import BuildOptions, ObjectStore, build_model
from polyingress.core.pipeline.model import BackendProtocol, Outcome
from polyingress.testing.annotation_cases import NAMESPACE, ingress
from polyingress.testing.annotation_cases import base_objects as annotation_base
from polyingress.testing.gateway_cases import CASES, GW, INFRA, base_objects
from polyingress.testing.live import free_port
from polyingress.testing.protocols import H2CServer, WebSocketEcho, h2c_get, websocket_echo

H2C = "HTTPRouteBackendProtocolH2C"
WS = "HTTPRouteBackendProtocolWebSocket"


def _case(name: str) -> Any:
    return next(c for c in CASES if c.name == name)


def _gateway_build(objects: list[dict[str, Any]], features: frozenset[str] | None) -> Any:
    store = ObjectStore()
    store.replace_many([*base_objects(1), *objects], ())
    return build_model(store.snapshot(), BuildOptions(features=features, now="now"))


def _route_conditions(result: Any, name: str) -> dict[str, tuple[str, str]]:
    doc = next(
        d for d in result.statuses if d["kind"] == "HTTPRoute" and d["metadata"]["name"] == name
    )
    return {
        c["type"]: (c["status"], c["reason"]) for c in doc["status"]["parents"][0]["conditions"]
    }


def test_h2c_app_protocol_makes_an_h2c_backend() -> None:
    result = _gateway_build(list(_case("HTTPRouteBackendProtocolH2C").objects), None)
    answer = result.model.answer(GW, "/")
    assert answer.proxied
    backend = result.model.backend(answer.backend)
    assert backend.name == f"{INFRA}__infra-backend-v1__8081__h2c"
    assert backend.protocol is BackendProtocol.H2C
    assert [e.address for e in backend.ready_endpoints] == ["127.0.90.1"]


def test_ws_app_protocol_is_an_http_backend() -> None:
    """WebSocket is HTTP/1.1 with the upgrade passed: the same kind of backend as 8080's."""
    result = _gateway_build(list(_case("HTTPRouteBackendProtocolWebSocket").objects), None)
    backend = result.model.backend(result.model.answer(GW, "/ws").backend)
    assert backend.name == f"{INFRA}__infra-backend-v1__8082"
    assert backend.protocol is BackendProtocol.HTTP


@pytest.mark.parametrize(
    ("case", "feature"),
    [("HTTPRouteBackendProtocolH2C", H2C), ("HTTPRouteBackendProtocolWebSocket", WS)],
)
def test_undeclared_protocol_is_an_unsupported_reference(case: str, feature: str) -> None:
    """A backend not declaring the protocol's feature: ResolvedRefs False UnsupportedProtocol,
    and the rule answers 500 (never HTTP/1.1 to an h2c port in silence)."""
    features = frozenset({"HTTPRoute", "Gateway", "ReferenceGrant"})
    c = _case(case)
    result = _gateway_build(list(c.objects), features)
    route = c.objects[0]["metadata"]["name"]
    assert _route_conditions(result, route)["ResolvedRefs"] == ("False", "UnsupportedProtocol")
    assert result.model.answer(GW, c.expects[0].path).status == 500
    declared = _gateway_build(list(c.objects), features | {feature})
    assert _route_conditions(declared, route)["ResolvedRefs"] == ("True", "ResolvedRefs")
    assert declared.model.answer(GW, c.expects[0].path).proxied


def test_unknown_app_protocol_is_unsupported() -> None:
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "odd", "namespace": INFRA},
        "spec": {
            "parentRefs": [{"name": "same-namespace"}],
            "rules": [{"backendRefs": [{"name": "odd", "port": 9000}]}],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "odd", "namespace": INFRA},
        "spec": {"ports": [{"port": 9000, "appProtocol": "example.com/carrier-pigeon"}]},
    }
    result = _gateway_build([route, service], None)
    assert _route_conditions(result, "odd")["ResolvedRefs"] == ("False", "UnsupportedProtocol")
    assert result.model.answer(GW, "/").status == 500


def _ingress_build(*objs: dict[str, Any], features: frozenset[str] | None = None) -> Any:
    store = ObjectStore()
    store.replace_many([*annotation_base(8080), *objs], ())
    return build_model(store.snapshot(), BuildOptions(features=features, backend="test"))


@pytest.mark.parametrize(
    ("value", "protocol"),
    [
        ("HTTPS", BackendProtocol.HTTPS),
        ("H2C", BackendProtocol.H2C),
        ("GRPC", BackendProtocol.GRPC),
        ("GRPCS", BackendProtocol.GRPCS),
        ("http", BackendProtocol.HTTP),
    ],
)
def test_backend_protocol_annotation(value: str, protocol: BackendProtocol) -> None:
    """The annotation makes a backend of its own for the Service port, beside the plain one
    another Ingress uses."""
    secure = ingress("secure", "a.example.com", "/", annotations={"backend-protocol": value})
    plain = ingress("plain", "b.example.com", "/")
    result = _ingress_build(secure, plain)
    assert [r.name for r in result.served] == ["plain", "secure"]
    a = result.model.backend(result.model.answer("a.example.com", "/").backend)
    b = result.model.backend(result.model.answer("b.example.com", "/").backend)
    assert a.protocol is protocol and b.protocol is BackendProtocol.HTTP
    suffix = "" if protocol is BackendProtocol.HTTP else f"__{protocol.value}"
    assert a.name == f"{NAMESPACE}__echo__80{suffix}"
    assert a.endpoints == b.endpoints


def test_h2c_annotation_on_a_backend_without_h2c_answers_500() -> None:
    features = frozenset({"HTTPRoute"})
    h2c = ingress("h2c", "a.example.com", "/", annotations={"backend-protocol": "H2C"})
    result = _ingress_build(h2c, features=features)
    assert result.model.answer("a.example.com", "/").status == 500
    assert any(
        p.reason == "UnsupportedValue" and "backend-protocol" in p.field for p in result.problems
    )
    served = _ingress_build(h2c, features=features | {H2C})
    assert served.model.answer("a.example.com", "/").outcome is Outcome.ROUTE


def test_fcgi_rejects_the_ingress() -> None:
    fcgi = ingress("fcgi", "a.example.com", "/", annotations={"backend-protocol": "FCGI"})
    result = _ingress_build(fcgi)
    assert [r.name for r in result.rejected] == ["fcgi"]


def test_canary_takes_the_main_ingress_protocol() -> None:
    """ingress-nginx: the canary's own backend-protocol is ignored, the main Ingress's
    applies to the canary's backend too."""
    main = ingress("main", "a.example.com", "/", annotations={"backend-protocol": "HTTPS"})
    canary = ingress(
        "canary",
        "a.example.com",
        "/",
        "canary",
        annotations={"canary": "true", "canary-weight": "100", "backend-protocol": "HTTP"},
        created="2026-01-02T00:00:00Z",
    )
    result = _ingress_build(main, canary)
    answer = result.model.answer("a.example.com", "/")
    names = {w.backend for w in answer.backends if w.weight}
    assert names == {f"{NAMESPACE}__canary__80__https"}


def test_h2c_server_refuses_http1() -> None:
    server = H2CServer("t/h2c", "127.0.0.1", free_port()).start()
    try:
        assert h2c_get(server.port, "x.example", "/a?b=1").json()["protocol"] == "HTTP/2"
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            with pytest.raises((http.client.HTTPException, OSError)):
                conn.request("GET", "/")
                conn.getresponse()
        finally:
            conn.close()
        assert server.refused == 1
    finally:
        server.stop()


def test_websocket_echo_refuses_plain_http() -> None:
    server = WebSocketEcho("t/ws", "127.0.0.1", free_port()).start()
    try:
        assert websocket_echo(server.port, "x.example", "/ws", ["a", b"\x00\x01"]) == [
            "a",
            b"\x00\x01",
        ]
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            conn.request("GET", "/ws")
            assert conn.getresponse().status == 426
        finally:
            conn.close()
        assert server.connections == 1
    finally:
        server.stop()


def test_https_needs_the_tls_capability_and_it_is_no_gateway_feature() -> None:
    """A backend serving HTTPRoute but not declaring polyingress.io/BackendProtocolTLS (a
    third-party one) answers an HTTPS Ingress 500, never plain HTTP; the capability is not
    listed in GatewayClass supportedFeatures."""
    from polyingress.core.pipeline.gateway import BACKEND_TLS

    secure = ingress("secure", "a.example.com", "/", annotations={"backend-protocol": "HTTPS"})
    without = _ingress_build(secure, features=frozenset({"HTTPRoute"}))
    assert without.model.answer("a.example.com", "/").status == 500
    served = _ingress_build(secure, features=frozenset({"HTTPRoute", BACKEND_TLS}))
    assert served.model.answer("a.example.com", "/").proxied
    result = _gateway_build([], frozenset({"HTTPRoute", "Gateway", BACKEND_TLS}))
    doc = next(d for d in result.statuses if d["kind"] == "GatewayClass")
    names = [f["name"] for f in doc["status"]["supportedFeatures"]]
    assert "HTTPRoute" in names and BACKEND_TLS not in names
