"""RouteModel.answer: the core's one statement of what a request gets, in the order a proxy
applies the rules (path rule, HTTPS redirect, route, default backend, 404, 503)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import build
from kube_objects import CLASS, ingress, path, rule, service, slice_

from polyingress.core import Answer, Outcome, PathTable, RouteModel, redirect_status
from polyingress.testing.cases import tls_secret

HOST = "shop.example.com"


def model(*extra: dict[str, Any], default: bool = False) -> RouteModel:
    objects: list[dict[str, Any]] = [
        CLASS,
        ingress(
            "shop",
            rule(HOST, path("/admin", "svc-admin"), path("/api/v1", "svc-empty", "Exact")),
            rule("*.example.com", path("/", "svc-wild")),
            rule(None, path("/any", "svc-any")),
            tls=[{"hosts": ["secure.example.com"], "secretName": "secure-tls"}],
        ),
        ingress("secure", rule("secure.example.com", path("/pay", "svc-admin"))),
        tls_secret("secure-tls", "secure.example.com", namespace="default"),
        service("svc-admin"),
        service("svc-empty"),
        service("svc-wild"),
        service("svc-any"),
        slice_("svc-admin", [("10.0.0.1", True)]),
        slice_("svc-empty", [("10.0.0.2", False)]),
        slice_("svc-wild", [("10.0.0.3", True)]),
        slice_("svc-any", [("10.0.0.4", True)]),
        *extra,
    ]
    if default:
        objects += [
            ingress(
                "fallback", defaultBackend={"service": {"name": "svc-dflt", "port": {"number": 80}}}
            ),
            service("svc-dflt"),
            slice_("svc-dflt", [("10.0.0.5", True)]),
        ]
    result = build(objects)
    assert not result.errors, result.errors
    return result.model


def service_of(m: RouteModel, answer: Answer) -> str | None:
    return None if answer.backend is None else m.backend(answer.backend).service


def test_a_route_is_proxied_with_the_normalized_path_and_the_query_as_sent() -> None:
    m = model()
    answer = m.answer(HOST, "/x/../%61dmin//users?q=%2F")
    assert answer.outcome is Outcome.ROUTE and answer.proxied and answer.status is None
    assert service_of(m, answer) == "svc-admin"
    assert answer.route is not None and answer.route.path == "/admin"
    assert answer.path == "/admin/users?q=%2F"


@pytest.mark.parametrize("target", ["/admin%2Fx", "/a%5Cb", "/a\\b", "/a%zz", "/a%00"])
def test_the_request_path_rule_refuses_with_400_before_anything_else(target: str) -> None:
    m = model()
    for host, scheme in ((HOST, "https"), ("secure.example.com", "http"), ("nowhere", "http")):
        answer = m.answer(host, target, scheme=scheme)
        assert (answer.outcome, answer.status, answer.path) == (Outcome.BAD_PATH, 400, None)


@pytest.mark.parametrize(("method", "status"), [("GET", 301), ("HEAD", 308), ("POST", 308)])
def test_plain_http_to_an_ssl_redirect_host_is_redirected_even_where_no_route_matches(
    method: str, status: int
) -> None:
    m = model()
    for target in ("/pay", "/not-routed"):
        answer = m.answer("secure.example.com", target, method=method)
        assert (answer.outcome, answer.status) == (Outcome.REDIRECT, status)
        assert status == redirect_status(method)
    https = m.answer("secure.example.com", "/pay", scheme="https", method=method)
    assert https.outcome is Outcome.ROUTE


def test_a_chosen_backend_without_a_ready_endpoint_answers_503_naming_it() -> None:
    m = model()
    answer = m.answer(HOST, "/api/v1", scheme="https")
    assert (answer.outcome, answer.status) == (Outcome.UNAVAILABLE, 503)
    assert service_of(m, answer) == "svc-empty" and answer.path is None
    assert m.answer(HOST, "/api/v1/", scheme="https").outcome is Outcome.NOT_FOUND


def test_no_route_is_404_or_the_default_backend() -> None:
    assert model().answer(HOST, "/nothing").outcome is Outcome.NOT_FOUND
    assert model().answer(HOST, "/nothing").status == 404
    with_default = model(default=True)
    answer = with_default.answer(HOST, "/nothing")
    assert answer.outcome is Outcome.DEFAULT and service_of(with_default, answer) == "svc-dflt"


def test_host_selection_exact_then_single_label_wildcard_then_catch_all() -> None:
    m = model()
    assert service_of(m, m.answer("SHOP.example.com:8080", "/admin")) == "svc-admin"
    assert service_of(m, m.answer("a.example.com", "/x")) == "svc-wild"
    assert m.answer("a.b.example.com", "/x").outcome is Outcome.NOT_FOUND
    assert service_of(m, m.answer("a.b.example.com", "/any/x")) == "svc-any"
    # the host's own table holds the catch-all's rules below its own
    assert service_of(m, m.answer(HOST, "/any")) == "svc-any"


def test_fallback_host_is_the_next_host_the_selection_rule_would_try() -> None:
    m = model()
    exact, wildcard, catch_all = (m.vhost_index[h] for h in (HOST, "*.example.com", None))
    assert m.fallback_host(exact) is wildcard
    assert m.fallback_host(wildcard) is catch_all
    assert m.fallback_host(catch_all) is None
    # every exact host below *.example.com falls back to the wildcard, not the catch-all
    assert m.fallback_host(m.vhost_index["secure.example.com"]) is wildcard
    assert m.select_vhost("nothing.example.com") is wildcard


def test_outcome_after_the_route_is_chosen() -> None:
    m = model(default=True)
    vhost = m.vhost_index[HOST]
    admin = vhost.match("/admin/x")
    assert m.outcome(admin).outcome is Outcome.ROUTE and m.outcome(admin).route is admin
    empty = vhost.match("/api/v1")
    assert (m.outcome(empty).outcome, m.outcome(empty).status) == (Outcome.UNAVAILABLE, 503)
    assert m.outcome(None).outcome is Outcome.DEFAULT
    assert model().outcome(None) == Answer(Outcome.NOT_FOUND, status=404)


def test_path_table_matches_element_wise_and_prefers_exact() -> None:
    vhost = model().vhost_index[HOST]
    table = PathTable(vhost.routes)
    assert table.match("/admin") is table.match("/admin/users") is vhost.match("/admin/")
    assert table.match("/adminx") is None or table.match("/adminx").path == "/any"
    assert table.match("/api/v1") is not None and table.match("/api/v1").path_type.value == "Exact"
    assert table.match("/api/v1/x") is None


def test_a_host_with_a_port_and_trailing_dots_selects_its_virtual_host() -> None:
    """The port goes first, then the trailing dot: ``r.com.:8080`` is ``r.com`` (Traefik and
    the others route it so)."""
    model = build(
        [
            CLASS,
            service("web"),
            slice_("web", [("10.0.0.1", True)]),
            ingress("web", rule("r.com", path("/", "web"))),
        ]
    ).model
    for host in ("r.com", "r.com.", "R.COM.:8080", "r.com:8080"):
        assert model.answer(host, "/").outcome is Outcome.ROUTE, host


def test_split_shares_are_what_a_proxy_shares_out() -> None:
    """A weighted split as a proxy serves it: backends without a ready endpoint and weights of
    0 get no share, a backend named twice adds up, invalid references' weight answers 500."""
    from polyingress.core import Backend, Endpoint, ObjectRef, PathType, Route, WeightedBackend

    up = Endpoint(address="10.0.0.1", port=80)
    down = Endpoint(address="10.0.0.2", port=80, ready=False)
    m = RouteModel(
        backends=(
            Backend(name="a", namespace="n", service="a", port="80", endpoints=(up,)),
            Backend(name="b", namespace="n", service="b", port="80", endpoints=(up,)),
            Backend(name="c", namespace="n", service="c", port="80", endpoints=(down,)),
        )
    )
    ref = ObjectRef(kind="HTTPRoute", namespace="n", name="r")

    def split(*shares: tuple[str | None, int]) -> Route:
        parts = tuple(WeightedBackend(backend=b, weight=w) for b, w in shares)
        return Route(path="/", path_type=PathType.PREFIX, backend=None, source=ref, split=parts)

    assert m.split_shares(split(("a", 3), ("c", 5), ("b", 0), (None, 2), ("a", 1))) == (
        (("a", 4),),
        2,
    )
    assert m.split_shares(split(("b", 1), ("a", 2))) == ((("b", 1), ("a", 2)), 0)
    assert m.split_shares(split(("c", 1), (None, 0))) == ((), 0)
    one = Route(path="/", path_type=PathType.PREFIX, backend="a", source=ref)
    assert m.split_shares(one) == ((("a", 1),), 0)
    assert m.split_shares(Route(path="/", path_type=PathType.PREFIX, backend="c", source=ref)) == (
        (),
        0,
    )
