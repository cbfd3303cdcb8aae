"""diff(old, new) tells a backend precisely what changed."""

from __future__ import annotations

from typing import Any

from conftest import build
from kube_objects import CLASS, ingress, path, rule, service, slice_
from test_builder import tls_secret

from polyingress.core import PathType, RouteModel, diff, self_signed


def world(eps: list[tuple[str, bool]], extra: list[dict[str, Any]] | None = None) -> RouteModel:
    objs = [
        CLASS,
        ingress("i", rule("h.com", path("/a", "s"))),
        service("s"),
        slice_("s", eps),
        *(extra or []),
    ]
    return build(objs).model


def test_identical_models_give_empty_diff() -> None:
    d = diff(world([("10.0.0.1", True)]), world([("10.0.0.1", True)]))
    assert d.empty and not d.endpoints_only and d.summary() == "no change"


def test_endpoint_change_only() -> None:
    d = diff(world([("10.0.0.1", True)]), world([("10.0.0.1", True), ("10.0.0.2", True)]))
    assert d.endpoints_only
    assert d.endpoints_changed == ("default__s__80",)
    assert not d.routing_changed


def test_readiness_flip_is_an_endpoint_change() -> None:
    d = diff(world([("10.0.0.1", True)]), world([("10.0.0.1", False)]))
    assert d.endpoints_only


def test_route_and_backend_added_and_removed() -> None:
    old = world([("10.0.0.1", True)])
    new = world([("10.0.0.1", True)], [ingress("j", rule("h.com", path("/b", "t", "Exact")))])
    d = diff(old, new)
    assert d.routes_added == (("h.com", "/b", PathType.EXACT),)
    assert d.backends_added == ("default__t__80",)
    assert not d.endpoints_only and d.routing_changed
    back = diff(new, old)
    assert back.routes_removed == (("h.com", "/b", PathType.EXACT),)
    assert back.backends_removed == ("default__t__80",)


def test_route_retargeted_is_changed() -> None:
    a = build([CLASS, ingress("i", rule("h.com", path("/a", "s")))]).model
    b = build([CLASS, ingress("i", rule("h.com", path("/a", "t")))]).model
    d = diff(a, b)
    assert d.routes_changed == (("h.com", "/a", PathType.PREFIX),)
    assert d.backends_added == ("default__t__80",) and d.backends_removed == ("default__s__80",)


def test_vhost_added() -> None:
    a = build([CLASS, ingress("i", rule("h.com", path("/a", "s")))]).model
    b = build(
        [CLASS, ingress("i", rule("h.com", path("/a", "s")), rule("*.x.com", path("/", "s")))]
    )
    d = diff(a, b.model)
    assert d.vhosts_added == ("*.x.com",)


def test_certificates_added_changed_removed() -> None:
    tls = [{"hosts": ["h.com"], "secretName": "c"}]
    c1, c2 = self_signed("h.com"), self_signed("h.com")
    ing = ingress("i", rule("h.com", path("/", "s")), tls=tls)
    none = build([CLASS, ingress("i", rule("h.com", path("/", "s")))]).model
    one = build([CLASS, ing, tls_secret("c", c1.cert_pem, c1.key_pem)]).model
    two = build([CLASS, ing, tls_secret("c", c2.cert_pem, c2.key_pem)]).model
    assert diff(none, one).certificates_added == ("default__c",)
    assert diff(none, one).tls_changed == ("h.com",)
    rotated = diff(one, two)
    assert rotated.certificates_changed == ("default__c",) and not rotated.tls_changed
    assert diff(two, none).certificates_removed == ("default__c",)


def test_diff_from_nothing_adds_everything() -> None:
    model = world([("10.0.0.1", True)])
    d = diff(None, model)
    assert d.backends_added == ("default__s__80",)
    assert d.vhosts_added == ("h.com",)


def test_gateway_rows_of_one_path_changed_in_anything_are_a_change() -> None:
    """A Gateway API row's condition, filter or split may change while its path and backend
    stay: the diff must not call that 'no change' (the controller would not apply it)."""
    from polyingress.core.pipeline.model import (
        HeaderFilter,
        HeaderMatch,
        ObjectRef,
        Route,
        VirtualHost,
        WeightedBackend,
    )

    src = ObjectRef(kind="HTTPRoute", namespace="ns", name="r")

    def model(*rows: Route) -> RouteModel:
        return RouteModel(vhosts=(VirtualHost(host="h.com", routes=rows),))

    plain = Route(path="/a", path_type=PathType.PREFIX, backend="ns__s__80", source=src)
    one = Route(
        path="/a",
        path_type=PathType.PREFIX,
        backend="ns__s__80",
        source=src,
        headers=(HeaderMatch(name="v", value="one"),),
    )
    two = Route(
        path="/a",
        path_type=PathType.PREFIX,
        backend="ns__s__80",
        source=src,
        headers=(HeaderMatch(name="v", value="two"),),
    )
    key = (("h.com", "/a", PathType.PREFIX),)
    filtered = Route(
        path="/a",
        path_type=PathType.PREFIX,
        backend="ns__s__80",
        source=src,
        request_headers=HeaderFilter(set=(("x", "1"),)),
    )
    split = Route(
        path="/a",
        path_type=PathType.PREFIX,
        backend=None,
        source=src,
        split=(
            WeightedBackend(backend="ns__s__80", weight=1),
            WeightedBackend(backend=None, weight=1),
        ),
    )
    for old, new in [
        (model(one, plain), model(two, plain)),  # a header value
        (model(plain), model(one, plain)),  # a conditional row added before the plain one
        (model(plain), model(filtered)),  # a filter
        (model(plain), model(split)),  # a split
    ]:
        d = diff(old, new)
        assert not d.empty and d.routes_changed == key, d
    assert diff(model(one, plain), model(one, plain)).empty


def _gateway_world(header_value: str, address: str) -> RouteModel:
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "default"},
        "spec": {
            "gatewayClassName": "c",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
        },
    }
    gateway_class = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": "c"},
        "spec": {"controllerName": "polyingress.io/controller"},
    }
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "default"},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "hostnames": ["h.com"],
            "rules": [
                {
                    "matches": [{"headers": [{"name": "version", "value": header_value}]}],
                    "backendRefs": [{"name": "s", "port": 80}],
                },
                {"backendRefs": [{"name": "s", "port": 80}]},
            ],
        },
    }
    objs = [gateway_class, gateway, route, service("s"), slice_("s", [(address, True)])]
    return build(objs).model


def test_a_gateway_row_change_beside_another_row_of_its_path_is_a_route_change() -> None:
    """Rows sharing a (path, type) key differ in their conditions: changing one is a route
    change, never 'endpoints only' (a backend would skip re-rendering)."""
    d = diff(_gateway_world("one", "10.0.0.1"), _gateway_world("two", "10.0.0.2"))
    assert d.routes_changed == (("h.com", "/", PathType.PREFIX),)
    assert not d.endpoints_only and d.routing_changed


def test_the_default_certificate_is_the_hostname_less_https_listeners() -> None:
    """An HTTPS listener without hostname matches every hostname: its certificate answers no
    or unknown SNI (the model's default certificate); with a hostname it is that host's only,
    and the diff says the default changed."""
    from gwapi_objects import gateway, gateway_class, namespace

    cert = self_signed("default.test", ("default.test",))
    secret = tls_secret("gw-cert", cert.cert_pem, cert.key_pem)

    def listener(hostname: str | None) -> dict[str, Any]:
        ln: dict[str, Any] = {
            "name": "https",
            "protocol": "HTTPS",
            "port": 443,
            "tls": {"certificateRefs": [{"kind": "Secret", "name": "gw-cert"}]},
        }
        return ln if hostname is None else {**ln, "hostname": hostname}

    def model(hostname: str | None) -> RouteModel:
        objs = [namespace("default"), gateway_class(), secret]
        return build([*objs, gateway("gw", listeners=[listener(hostname)])]).model

    open_listener, named = model(None), model("named.test")
    assert open_listener.default_certificate == "default__gw-cert"
    assert open_listener.certificate("default__gw-cert").fingerprint == cert.fingerprint
    assert open_listener.certificate_for("unknown.example") == "default__gw-cert"
    assert named.default_certificate is None
    assert named.certificate_for("unknown.example") is None  # the fallback
    assert diff(named, open_listener).default_certificate_changed
    assert not diff(open_listener, model(None)).default_certificate_changed
