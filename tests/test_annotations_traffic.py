"""Translation of the traffic annotations (canary-by-cookie, custom-headers): the values refused
and what the route model gets. The behaviour a request sees is in the annotation cases
(polyingress.testing.annotation_cases), checked against the core and live."""

from __future__ import annotations

from typing import Any

import pytest

from polyingress.core.pipeline.translate.annotations import Support, policy_of

N = "nginx.ingress.kubernetes.io/"


def _ingress(annotations: dict[str, str], namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "namespace": namespace, "annotations": annotations},
        "spec": {
            "rules": [
                {
                    "host": "a.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "s", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ]
        },
    }


@pytest.mark.parametrize("name", ["a b", "a/b", "a:b", "a$b", "a;b", "a=b", "é"])
def test_canary_cookie_names_are_plain_tokens(name: str) -> None:
    policy, problems = policy_of(_ingress({N + "canary": "true", N + "canary-by-cookie": name}))
    assert policy is not None
    assert [p.reason for p in problems] == ["InvalidAnnotation"]
    assert policy.canary is not None and policy.canary.cookie is None


def test_canary_cookie_is_a_canary_s_rule() -> None:
    policy, problems = policy_of(
        _ingress({N + "canary": "true", N + "canary-by-cookie": "Canary.v2"})
    )
    assert problems == [] and policy is not None and policy.canary is not None
    assert policy.canary.cookie == "Canary.v2"
    assert "polyingress.io/CookieMatching" in policy.features
    # Not a canary: refused, as ingress-nginx refuses it.
    policy, problems = policy_of(_ingress({N + "canary-by-cookie": "Canary"}))
    assert policy is not None and policy.rejected


def test_custom_headers_reads_a_configmap_of_the_ingress_namespace_only() -> None:
    policy, problems = policy_of(_ingress({N + "custom-headers": "shop/headers"}))
    assert problems == [] and policy is not None
    assert policy.custom_headers == ("shop", "headers")
    assert "HTTPRouteResponseHeaderModification" in policy.features
    policy, _problems = policy_of(_ingress({N + "custom-headers": "headers"}))
    assert policy is not None and policy.custom_headers == ("shop", "headers")
    policy, problems = policy_of(_ingress({N + "custom-headers": "kube-system/headers"}))
    assert policy is not None and policy.custom_headers is None
    (verdict,) = policy.rejected
    assert verdict.support is Support.UNSUPPORTED and "kube-system/headers" in verdict.note
    assert [p.reason for p in problems] == ["UnsupportedAnnotation"]


def test_a_backend_without_connect_timeouts_serves_the_ingress_without_one() -> None:
    from polyingress.core import BuildOptions, ObjectStore, build_model, served_features
    from polyingress.core.runtime.matrix import info_of
    from polyingress.testing.annotation_cases import CASES, base_objects

    case = next(c for c in CASES if c.name == "proxy-connect-timeout/504")
    store = ObjectStore()
    store.replace_many([*base_objects(8080), *case.ingresses], ())
    # Every built-in backend serves it; a backend without it: HAProxy's features less it.
    lacking = "polyingress.io/BackendConnectTimeout"
    for backend, kept in (("haproxy", None), ("haproxy", 1.0), ("nginx", 1.0), ("traefik", 1.0)):
        info = info_of(backend)
        assert info is not None
        features = served_features(info.gateway_features)
        assert lacking in features, backend
        if kept is None:
            features -= {lacking}
        opts = BuildOptions(features=features, backend=backend)
        result = build_model(store.snapshot(), opts)
        answer = result.model.answer("connect-fine.bar.com", "/x")
        assert answer.proxied and answer.route is not None, backend
        assert answer.route.connect_timeout == kept, backend
        assert not result.errors, backend
        found = [p for p in result.problems if "proxy-connect-timeout" in p.field]
        assert bool(found) == (kept is None), (backend, found)


def test_send_timeouts_are_a_documented_partial_on_haproxy() -> None:
    """proxy-send-timeout: nginx's proxy_send_timeout, and on Traefik the filters plugin's
    watch on the request body. HAProxy's `timeout server` would also bound the wait for the
    response: there the Ingress is served with the ConfigMap's timeouts (the row has none) and
    a warning names the key."""
    from polyingress.core import BuildOptions, ObjectStore, build_model, served_features
    from polyingress.core.runtime.matrix import info_of
    from polyingress.testing.annotation_cases import CASES, base_objects

    case = next(c for c in CASES if c.name == "proxy-send-timeout/504")
    store = ObjectStore()
    store.replace_many([*base_objects(8080), *case.ingresses], ())
    for backend, kept in (("haproxy", None), ("traefik", 1.0), ("nginx", 1.0)):
        info = info_of(backend)
        assert info is not None
        opts = BuildOptions(features=served_features(info.gateway_features), backend=backend)
        result = build_model(store.snapshot(), opts)
        answer = result.model.answer("send-fine.bar.com", "/x", method="POST")
        assert answer.proxied and answer.route is not None, backend
        assert answer.route.send_timeout == kept, backend
        assert not result.errors, backend
        found = [p for p in result.problems if "proxy-send-timeout" in p.field]
        assert bool(found) == (kept is None), (backend, found)
        assert all(p.severity.value == "warning" for p in found), (backend, found)
