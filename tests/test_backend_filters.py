"""Filters on a backendRef (HTTPRouteBackendRequestHeaderModification) in the core: the
composition with the rule's filter, a split's own filters, what is not served."""

from __future__ import annotations

from typing import Any

import pytest

from polyingress.core import BuildOptions, ObjectStore, build_model
from polyingress.core.pipeline.model import HeaderFilter
from polyingress.testing.gateway_cases import GW, INFRA, base_objects

FEATURE = "HTTPRouteBackendRequestHeaderModification"


def _filter(**kw: Any) -> HeaderFilter:
    return HeaderFilter(**kw)


@pytest.mark.parametrize(
    ("first", "after", "sent", "want"),
    [
        # set, then the backend adds to it: one line of both
        (_filter(set=(("x", "a"),)), _filter(add=(("x", "b"),)), {}, {"x": ["a,b"]}),
        # add twice: the client's value, then both
        (_filter(add=(("x", "a"),)), _filter(add=(("x", "b"),)), {"x": ["c"]}, {"x": ["c", "a,b"]}),
        # removed, then added: only the added value
        (_filter(remove=("x",)), _filter(add=(("x", "b"),)), {"x": ["c"]}, {"x": ["b"]}),
        # the backend's set wins; its remove removes
        (_filter(set=(("x", "a"),)), _filter(set=(("x", "b"),)), {}, {"x": ["b"]}),
        (_filter(add=(("x", "a"),)), _filter(remove=("x",)), {"x": ["c"]}, {}),
        # untouched names keep the first filter's change
        (_filter(set=(("y", "1"),)), _filter(add=(("x", "b"),)), {}, {"y": ["1"], "x": ["b"]}),
    ],
)
def test_then_is_one_filter_with_both_effects(
    first: HeaderFilter, after: HeaderFilter, sent: dict[str, list[str]], want: dict[str, list[str]]
) -> None:
    composed = first.then(after)
    names = [n for n, _v in composed.set] + [n for n, _v in composed.add] + list(composed.remove)
    assert len(names) == len(set(names)), "each name in one list only"
    assert composed.apply(sent) == want
    # Joined as the backend sees several lines of one header: the same as applying both.
    joined = {k: ",".join(v) for k, v in after.apply(first.apply(sent)).items()}
    assert {k: ",".join(v) for k, v in composed.apply(sent).items()} == joined


def _route(rule: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": INFRA},
        "spec": {"parentRefs": [{"name": "same-namespace"}], "rules": [rule]},
    }


def _ref(n: int, **filters: Any) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": f"infra-backend-v{n}", "port": 8080}
    if filters:
        ref["filters"] = [
            {"type": "RequestHeaderModifier", "requestHeaderModifier": filters},
        ]
    return ref


def _build(route: dict[str, Any], features: frozenset[str] | None = None) -> Any:
    store = ObjectStore()
    store.replace_many([*base_objects(1), route], ())
    return build_model(store.snapshot(), BuildOptions(features=features, now="now"))


def _accepted(result: Any) -> tuple[str, str, str]:
    doc = next(d for d in result.statuses if d["kind"] == "HTTPRoute")
    cond = next(c for c in doc["status"]["parents"][0]["conditions"] if c["type"] == "Accepted")
    return cond["status"], cond["reason"], cond["message"]


def test_one_backend_filter_follows_the_rules() -> None:
    rule = {
        "filters": [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"set": [{"name": "X-A", "value": "rule"}]},
            }
        ],
        "backendRefs": [_ref(1, add=[{"name": "X-A", "value": "backend"}])],
    }
    answer = _build(_route(rule)).model.answer(GW, "/")
    assert answer.proxied and answer.route.split == ()
    assert answer.route.request_headers.apply({}) == {"x-a": ["rule,backend"]}


def test_a_split_keeps_each_backends_filter() -> None:
    rule = {
        "backendRefs": [
            _ref(1, set=[{"name": "Backend", "value": "one"}]),
            _ref(2, remove=["X-Gone"]),
        ]
    }
    answer = _build(_route(rule)).model.answer(GW, "/")
    first, second = answer.backends
    assert first.headers(None) == HeaderFilter(set=(("backend", "one"),))
    assert second.headers(None) == HeaderFilter(remove=("x-gone",))


def test_undeclared_feature_answers_500() -> None:
    rule = {"backendRefs": [_ref(1, set=[{"name": "X-A", "value": "1"}])]}
    result = _build(_route(rule), frozenset({"HTTPRoute", "Gateway", "ReferenceGrant"}))
    assert result.model.answer(GW, "/").status == 500
    status, reason, message = _accepted(result)
    assert (status, reason) == ("False", "UnsupportedValue") and FEATURE in message
    served = _build(_route(rule), frozenset({"HTTPRoute", "Gateway", "ReferenceGrant", FEATURE}))
    assert _accepted(served)[:2] == ("True", "Accepted")


def test_other_filter_types_on_a_backend_are_not_served() -> None:
    ref = _ref(1)
    ref["filters"] = [
        {
            "type": "ResponseHeaderModifier",
            "responseHeaderModifier": {"set": [{"name": "X", "value": "1"}]},
        }
    ]
    result = _build(_route({"backendRefs": [ref]}))
    assert result.model.answer(GW, "/").status == 500
    status, reason, message = _accepted(result)
    assert (status, reason) == ("False", "UnsupportedValue")
    assert "ResponseHeaderModifier filter on a backendRef" in message


def test_a_hostile_backend_filter_value_is_refused() -> None:
    rule = {"backendRefs": [_ref(1, set=[{"name": "X-A", "value": "a\r\nInjected: 1"}])]}
    result = _build(_route(rule))
    status, reason, message = _accepted(result)
    assert (status, reason) == ("False", "UnsupportedValue")
    assert "filters[0].value" in message or "printable ASCII" in message
