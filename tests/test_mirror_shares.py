"""Mirror shares (HTTPRouteRequestPercentageMirror) in the core: ``percent`` and ``fraction``
become a reduced share per mirror; a share that is no whole percent needs the backend's
polyingress.io/MirrorFraction (Traefik's integer ``percent`` cannot state it); bad values are
refused naming the field. Live: the upstream case (testing/gateway_cases.py) on HAProxy and
Traefik."""

from __future__ import annotations

from typing import Any

import pytest

from polyingress.core import BuildOptions, ObjectStore, build_model
from polyingress.testing.gateway_cases import GW, INFRA, base_objects

PERCENT = "HTTPRouteRequestPercentageMirror"
FRACTION = "polyingress.io/MirrorFraction"
MIRRORS = frozenset({"HTTPRoute", "HTTPRouteRequestMirror", "HTTPRouteRequestMultipleMirrors"})


def _route(*mirrors: dict[str, Any]) -> dict[str, Any]:
    filters = [
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": f"infra-backend-v{i + 2}", "port": 8080}}
            | share,
        }
        for i, share in enumerate(mirrors)
    ]
    rule = {"filters": filters, "backendRefs": [{"name": "infra-backend-v1", "port": 8080}]}
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": INFRA},
        "spec": {"parentRefs": [{"name": "same-namespace"}], "rules": [rule]},
    }


def _build(route: dict[str, Any], features: frozenset[str] | None = None) -> Any:
    store = ObjectStore()
    store.replace_many([*base_objects(1), route], ())
    return build_model(store.snapshot(), BuildOptions(features=features, now="now"))


def _accepted(result: Any) -> tuple[str, str, str]:
    doc = next(d for d in result.statuses if d["kind"] == "HTTPRoute")
    cond = next(c for c in doc["status"]["parents"][0]["conditions"] if c["type"] == "Accepted")
    return cond["status"], cond["reason"], cond["message"]


@pytest.mark.parametrize(
    ("share", "want"),
    [
        ({"percent": 20}, ((1, 5),)),
        ({"fraction": {"numerator": 25, "denominator": 50}}, ((1, 2),)),
        ({"fraction": {"numerator": 1}}, ((1, 100),)),  # denominator 100 by default
        ({"fraction": {"numerator": 1, "denominator": 3}}, ((1, 3),)),
        ({"percent": 100}, ()),  # every request: a plain mirror
        ({}, ()),
    ],
)
def test_a_mirror_share_is_reduced(
    share: dict[str, Any], want: tuple[tuple[int, int], ...]
) -> None:
    route = _build(_route(share)).model.answer(GW, "/").route
    assert route.mirrors == (f"{INFRA}__infra-backend-v2__8080",)
    assert route.mirror_fractions == want


def test_a_zero_share_mirrors_nothing_and_the_others_keep_theirs() -> None:
    route = _build(_route({"percent": 0}, {"percent": 35})).model.answer(GW, "/").route
    assert route.mirrors == (f"{INFRA}__infra-backend-v3__8080",)
    assert route.mirror_fractions == ((7, 20),)


def test_a_share_needs_the_feature_and_a_fraction_its_capability() -> None:
    plain = _build(_route({"percent": 20}), MIRRORS)
    assert plain.model.answer(GW, "/").status == 500
    assert _accepted(plain)[:2] == ("False", "UnsupportedValue")
    whole = _build(_route({"percent": 20}), MIRRORS | {PERCENT})
    assert whole.model.answer(GW, "/").proxied
    third = {"fraction": {"numerator": 1, "denominator": 3}}
    traefik = _build(_route(third), MIRRORS | {PERCENT})  # Traefik: integer percents only
    assert traefik.model.answer(GW, "/").status == 500
    assert _accepted(traefik)[:2] == ("False", "UnsupportedValue")
    haproxy = _build(_route(third), MIRRORS | {PERCENT, FRACTION})
    assert haproxy.model.answer(GW, "/").route.mirror_fractions == ((1, 3),)


@pytest.mark.parametrize(
    ("share", "field"),
    [
        ({"percent": 101}, "percent"),
        ({"percent": -1}, "percent"),
        ({"percent": "20"}, "percent"),
        ({"fraction": {"numerator": 3, "denominator": 2}}, "fraction.numerator"),
        ({"fraction": {"numerator": 1, "denominator": 0}}, "fraction.denominator"),
        ({"fraction": {"denominator": 10}}, "fraction.numerator"),
        ({"percent": 5, "fraction": {"numerator": 1}}, "requestMirror"),
    ],
)
def test_bad_shares_are_refused_naming_the_field(share: dict[str, Any], field: str) -> None:
    result = _build(_route(share))
    assert result.model.answer(GW, "/").status == 404  # the route is not served
    fields = [str(p.field) for p in result.problems]
    assert any(f.endswith("." + field) for f in fields), fields
