"""A value ending in a newline is refused everywhere: Python's '$' also matches before a final
'\\n', so every validator uses fullmatch (found by the annotation fuzzing: '/app\\n' passed as
an app-root, and a Gateway API header value 'v\\n' as a header value)."""

from __future__ import annotations

import pytest

from polyingress.core.pipeline.annotations import NGINX_PREFIX, parse_annotations
from polyingress.core.pipeline.model import ObjectRef
from polyingress.core.pipeline.translate.httproute import parse_duration, parse_httproute
from polyingress.core.pipeline.validate import (
    check_dns1035_label,
    check_dns1123_label,
    check_dns1123_subdomain,
    check_port_name,
)


@pytest.mark.parametrize(
    "check", [check_dns1035_label, check_dns1123_label, check_dns1123_subdomain, check_port_name]
)
def test_names(check: object) -> None:
    assert check("web\n") is not None  # type: ignore[operator]
    assert check("web") is None  # type: ignore[operator]


def test_gateway_header_value_and_name() -> None:
    def route(name: str, value: str) -> object:
        obj = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "default"},
            "spec": {
                "rules": [
                    {
                        "filters": [
                            {
                                "type": "RequestHeaderModifier",
                                "requestHeaderModifier": {"set": [{"name": name, "value": value}]},
                            }
                        ]
                    }
                ]
            },
        }
        return parse_httproute(obj)[0]

    assert route("X-A", "v") is not None
    assert route("X-A", "v\n") is None
    assert route("X-A\n", "v") is None
    assert parse_duration("10s\n") is None


def test_annotations() -> None:
    ref = ObjectRef(kind="Ingress", namespace="default", name="web")
    for key, value in (
        ("app-root", "/app\n"),
        ("canary-weight", "10\n"),
        ("rewrite-target", "/\n"),
    ):
        parsed, problems = parse_annotations(ref, {f"{NGINX_PREFIX}/{key}": value})
        assert key not in parsed.values and problems[0].severity.value == "error"


def test_the_plugins_quoting_gates_refuse_a_trailing_newline() -> None:
    """HAProxy's and Traefik's one gate for model strings match whole strings: Python's ``$``
    also matches before a final newline, which would let ``web\\n`` into a config line."""
    from polyingress.plugins.haproxy.render import quote as haproxy_quote
    from polyingress.plugins.traefik.render import quote as traefik_quote

    assert haproxy_quote("web", "name") == "web"
    assert traefik_quote("web") == "`web`"
    with pytest.raises(ValueError):
        haproxy_quote("web\n", "name")
    with pytest.raises(ValueError):
        traefik_quote("web\n")
