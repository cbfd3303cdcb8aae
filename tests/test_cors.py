"""The CORS filter in the core (HTTPRouteCORS): which Origins are allowed, what a preflight and
an actual request get (RouteModel.answer), which values are refused."""

from __future__ import annotations

from typing import Any

import pytest

from polyingress.core import BuildOptions, ObjectStore, build_model
from polyingress.core.pipeline.model import Cors, Outcome
from polyingress.testing.gateway_cases import GW, INFRA, base_objects

ORIGINS = Cors(allow_origins=("https://www.foo.com", "https://*.bar.com", "http://x.org:8080"))


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://www.foo.com", True),
        ("https://www.foo.com:443", True),  # the default port written out
        ("https://www.foo.com:8443", False),
        ("http://www.foo.com", False),
        ("https://a.bar.com", True),
        ("https://a.b.bar.com", True),  # one label or more
        ("https://bar.com", False),
        ("https://foobar.com", False),
        ("https://xbar.com", False),
        ("http://x.org:8080", True),
        ("http://x.org", False),
        ("https://www.foo.com.evil.com", False),
        ("null", False),
    ],
)
def test_allowed_origins(origin: str, allowed: bool) -> None:
    assert ORIGINS.allows(origin) is allowed


def test_any_origin_and_none() -> None:
    assert Cors(allow_origins=("*",)).allows("https://anything.example:1")
    assert not Cors().allows("https://a.example")
    assert not Cors(allow_origins=("*",)).allows(None)


def test_preflight_headers_echo_wildcards() -> None:
    cors = Cors(
        allow_origins=("*",),
        allow_methods=("*",),
        allow_headers=("*",),
        expose_headers=("*",),
        allow_credentials=True,
    )
    got = dict(cors.preflight_headers("https://o.example", "PUT", "x-a, x-b"))
    assert got == {
        "access-control-allow-origin": "https://o.example",
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "PUT",
        "access-control-allow-headers": "x-a, x-b",
        "access-control-max-age": "5",
    }  # expose "*" is left out with credentials
    assert dict(Cors(expose_headers=("*",)).response_headers("o"))[
        "access-control-expose-headers"
    ] == ("*")


def _route(cors: dict[str, Any], name: str = "c") -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": INFRA},
        "spec": {
            "parentRefs": [{"name": "same-namespace"}],
            "rules": [
                {
                    "filters": [{"type": "CORS", "cors": cors}],
                    "backendRefs": [{"name": "infra-backend-v1", "port": 8080}],
                }
            ],
        },
    }


def _build(*objs: dict[str, Any], features: frozenset[str] | None = None) -> Any:
    store = ObjectStore()
    store.replace_many([*base_objects(1), *objs], ())
    return build_model(store.snapshot(), BuildOptions(features=features, now="now"))


def _accepted(result: Any) -> tuple[str, str, str]:
    doc = next(d for d in result.statuses if d["kind"] == "HTTPRoute")
    cond = next(c for c in doc["status"]["parents"][0]["conditions"] if c["type"] == "Accepted")
    return cond["status"], cond["reason"], cond["message"]


def test_answers_of_a_cors_row() -> None:
    model = _build(
        _route({"allowOrigins": ["https://*.foo.com"], "allowMethods": ["GET"], "maxAge": 60})
    ).model
    origin = (("origin", "https://a.foo.com"),)
    pre = model.answer(
        GW, "/x", method="OPTIONS", headers=(*origin, ("access-control-request-method", "GET"))
    )
    assert (pre.outcome, pre.status) == (Outcome.CORS_PREFLIGHT, 204)
    assert dict(pre.cors)["access-control-max-age"] == "60"
    denied = model.answer(
        GW,
        "/x",
        method="OPTIONS",
        headers=(("origin", "https://a.bar.com"), ("access-control-request-method", "GET")),
    )
    assert (denied.status, denied.cors) == (204, ())
    # OPTIONS without Access-Control-Request-Method is no preflight: proxied
    plain_options = model.answer(GW, "/x", method="OPTIONS", headers=origin)
    assert plain_options.proxied and dict(plain_options.cors) == {
        "access-control-allow-origin": "https://a.foo.com"
    }
    assert model.answer(GW, "/x").cors == ()


def test_undeclared_cors_answers_500() -> None:
    route = _route({"allowOrigins": ["*"]})
    result = _build(route, features=frozenset({"HTTPRoute", "Gateway", "ReferenceGrant"}))
    assert result.model.answer(GW, "/").status == 500
    status, reason, message = _accepted(result)
    assert (status, reason) == ("False", "UnsupportedValue") and "HTTPRouteCORS" in message


@pytest.mark.parametrize(
    ("cors", "field"),
    [
        ({"allowOrigins": ["https://a.example", "*"]}, "allowOrigins"),
        ({"allowOrigins": ["ftp://a.example"]}, "allowOrigins[0]"),
        ({"allowOrigins": ["https://a.example/path"]}, "allowOrigins[0]"),
        ({"allowOrigins": ['https://a.example";']}, "allowOrigins[0]"),
        ({"allowOrigins": ["https://a.*.example"]}, "allowOrigins[0]"),
        ({"allowOrigins": ["https://a.example:70000"]}, "allowOrigins[0]"),
        ({"allowMethods": ["GET", "*"]}, "allowMethods"),
        ({"allowMethods": ["get"]}, "allowMethods[0]"),
        ({"allowHeaders": ["x-a\r\nx-b"]}, "allowHeaders[0]"),
        ({"exposeHeaders": ["a b"]}, "exposeHeaders[0]"),
        ({"maxAge": 0}, "maxAge"),
        ({"allowCredentials": "yes"}, "allowCredentials"),
    ],
)
def test_refused_values_name_the_field(cors: dict[str, Any], field: str) -> None:
    status, reason, message = _accepted(_build(_route(cors)))
    assert (status, reason) == ("False", "UnsupportedValue")
    assert f"spec.rules[0].filters[0].cors.{field}" in message


def _ingress_model(*objs: dict[str, Any], features: frozenset[str] | None = None) -> Any:
    from polyingress.testing.annotation_cases import base_objects as annotation_base

    store = ObjectStore()
    store.replace_many([*annotation_base(8080), *objs], ())
    return build_model(store.snapshot(), BuildOptions(features=features, backend="test"))


def test_enable_cors_defaults_are_ingress_nginx_s() -> None:
    from polyingress.testing.annotation_cases import ingress

    result = _ingress_model(ingress("c", "a.example", "/", annotations={"enable-cors": "true"}))
    route = result.model.answer("a.example", "/").route
    assert route.cors == Cors(
        allow_origins=("*",),
        allow_methods=("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"),
        allow_headers=(
            "DNT",
            "Keep-Alive",
            "User-Agent",
            "X-Requested-With",
            "If-Modified-Since",
            "Cache-Control",
            "Content-Type",
            "Range",
            "Authorization",
        ),
        allow_credentials=True,
        max_age=1728000,
    )


def test_cors_annotation_origins_and_switch() -> None:
    from polyingress.testing.annotation_cases import ingress

    on = ingress(
        "c",
        "a.example",
        "/",
        annotations={
            "enable-cors": "true",
            "cors-allow-origin": "https://A.Example:8443, ftp://files.example, *",
        },
    )
    cors = _ingress_model(on).model.answer("a.example", "/").route.cors
    assert cors.allow_origins == ("*",)
    listed = ingress(
        "c",
        "a.example",
        "/",
        annotations={
            "enable-cors": "true",
            "cors-allow-origin": "https://A.Example:8443, ftp://x.y",
        },
    )
    cors = _ingress_model(listed).model.answer("a.example", "/").route.cors
    assert cors.allow_origins == ("https://a.example:8443",)  # ftp left out (partial)
    off = ingress("c", "a.example", "/", annotations={"enable-cors": "false", "cors-max-age": "1"})
    assert _ingress_model(off).model.answer("a.example", "/").route.cors is None


def test_cors_annotation_on_a_backend_without_cors_answers_500() -> None:
    from polyingress.testing.annotation_cases import ingress

    on = ingress("c", "a.example", "/", annotations={"enable-cors": "true"})
    result = _ingress_model(on, features=frozenset({"HTTPRoute"}))
    assert result.model.answer("a.example", "/").status == 500
    assert any("HTTPRouteCORS" in p.message for p in result.problems)
