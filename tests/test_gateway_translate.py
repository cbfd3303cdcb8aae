"""The Gateway API stage (core/pipeline/gateway.py, translate/httproute.py): focused checks of
what the conformance cases found."""

from __future__ import annotations

from typing import Any

from polyingress.core import BuildOptions, build_model
from polyingress.core.pipeline.store import ObjectStore
from polyingress.testing.gateway_cases import INFRA, base_objects


def _statuses(*objects: dict[str, Any]) -> list[dict[str, Any]]:
    store = ObjectStore()
    store.replace_many([*base_objects(1), *objects], ())
    return list(build_model(store.snapshot(), BuildOptions(now="now")).statuses)


def _route(name: str, parent: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": INFRA},
        "spec": {
            "parentRefs": [parent],
            "rules": [{"backendRefs": [{"name": "infra-backend-v1", "port": 8080}]}],
        },
    }


def _parents(statuses: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    (doc,) = [d for d in statuses if d["kind"] == "HTTPRoute" and d["metadata"]["name"] == name]
    return list(doc["status"]["parents"])


def test_status_parent_ref_has_the_defaulted_group_and_kind() -> None:
    # The API server defaults a parentRef's group and kind; status.parents[].parentRef must
    # carry them so that clients (upstream's conformance suite among them) match it.
    statuses = _statuses(
        _route("bare", {"name": "same-namespace"}),
        _route(
            "explicit",
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": "all-namespaces",
                "namespace": INFRA,
                "sectionName": "http",
            },
        ),
    )
    (bare,) = _parents(statuses, "bare")
    assert bare["parentRef"] == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": "same-namespace",
    }
    assert bare["controllerName"] == "polyingress.io/controller"
    (explicit,) = _parents(statuses, "explicit")
    assert explicit["parentRef"] == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": "all-namespaces",
        "namespace": INFRA,
        "sectionName": "http",
    }


def _gateway(name: str, listeners: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": INFRA},
        "spec": {"gatewayClassName": "polyingress", "listeners": listeners, **spec},
    }


def _doc(statuses: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in statuses if d["kind"] == kind and d["metadata"]["name"] == name]
    return dict(doc["status"])


def _cond(conds: list[dict[str, Any]], ctype: str) -> tuple[str, str]:
    (c,) = [c for c in conds if c["type"] == ctype]
    return c["status"], c["reason"]


_HTTP = {"name": "http", "port": 80, "protocol": "HTTP"}
_BAD = {"name": "invalid", "port": 1111, "protocol": "INVALID"}


def test_listener_of_an_unsupported_protocol_supports_no_kind_and_makes_listeners_not_valid() -> (
    None
):
    statuses = _statuses(_gateway("only-bad", [_BAD]), _gateway("mixed", [_HTTP, _BAD]))
    only = _doc(statuses, "Gateway", "only-bad")
    assert _cond(only["conditions"], "Accepted") == ("False", "ListenersNotValid")
    (bad,) = only["listeners"]
    assert bad["supportedKinds"] == []
    assert _cond(bad["conditions"], "Accepted") == ("False", "UnsupportedProtocol")
    mixed = _doc(statuses, "Gateway", "mixed")
    # Accepted (one listener is served), with the reason that one is not valid.
    assert _cond(mixed["conditions"], "Accepted") == ("True", "ListenersNotValid")
    http, bad = mixed["listeners"]
    assert http["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]
    assert bad["supportedKinds"] == []
    assert _cond(_doc(statuses, "Gateway", "same-namespace")["conditions"], "Accepted") == (
        "True",
        "Accepted",
    )


def test_a_secret_without_a_usable_certificate_is_an_invalid_certificate_ref() -> None:
    malformed = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": "malformed", "namespace": INFRA},
        "data": {"tls.crt": "SGVsbG8gd29ybGQK", "tls.key": "SGVsbG8gd29ybGQK"},
    }

    def https(secret: str) -> dict[str, Any]:
        return {
            "name": "https",
            "port": 443,
            "protocol": "HTTPS",
            "tls": {"certificateRefs": [{"kind": "Secret", "name": secret}]},
        }

    statuses = _statuses(
        malformed,
        _gateway("bad-cert", [https("malformed")]),
        _gateway("good-cert", [https("tls-validity-checks-certificate")]),
    )
    (bad,) = _doc(statuses, "Gateway", "bad-cert")["listeners"]
    assert _cond(bad["conditions"], "ResolvedRefs") == ("False", "InvalidCertificateRef")
    assert _cond(bad["conditions"], "Programmed") == ("False", "Invalid")
    (good,) = _doc(statuses, "Gateway", "good-cert")["listeners"]
    assert _cond(good["conditions"], "ResolvedRefs") == ("True", "ResolvedRefs")
    assert _cond(good["conditions"], "Programmed") == ("True", "Programmed")


def test_a_gateway_with_parameters_is_not_accepted_and_takes_no_route() -> None:
    gw = _gateway(
        "with-parameters",
        [{**_HTTP, "allowedRoutes": {"namespaces": {"from": "All"}}}],
        infrastructure={
            "parametersRef": {"group": "invalid.io", "kind": "InvalidParameters", "name": "x"}
        },
    )
    store = ObjectStore()
    store.replace_many(
        [*base_objects(1), gw, _route("to-parameters", {"name": "with-parameters"})], ()
    )
    result = build_model(store.snapshot(), BuildOptions(now="now"))
    statuses = list(result.statuses)
    doc = _doc(statuses, "Gateway", "with-parameters")
    assert _cond(doc["conditions"], "Accepted") == ("False", "InvalidParameters")
    assert doc["listeners"][0]["attachedRoutes"] == 0
    (parent,) = _parents(statuses, "to-parameters")
    assert _cond(parent["conditions"], "Accepted")[0] == "False"
    assert result.model.answer("x.example", "/").status == 404


def test_listener_isolation_a_more_specific_listener_takes_its_names_from_a_route() -> None:
    # A route attached to the hostname-less listener with the hostname *.example.com does not
    # serve x.example.com when a listener *.example.com exists: that listener's routes alone do
    # (the spec's listener isolation). Its other hostnames stay served, and it stays attached.
    listeners = [
        {**_HTTP, "name": "any", "allowedRoutes": {"namespaces": {"from": "All"}}},
        {
            **_HTTP,
            "name": "wild",
            "hostname": "*.example.com",
            "allowedRoutes": {"namespaces": {"from": "All"}},
        },
    ]
    route = _route("through-any", {"name": "iso", "sectionName": "any"})
    route["spec"]["hostnames"] = ["*.example.com", "bar.com"]
    store = ObjectStore()
    store.replace_many([*base_objects(1), _gateway("iso", listeners), route], ())
    result = build_model(store.snapshot(), BuildOptions(now="now"))
    model = result.model
    assert model.answer("x.example.com", "/").status == 404
    assert model.answer("bar.com", "/").proxied
    doc = _doc(list(result.statuses), "Gateway", "iso")
    assert [ln["attachedRoutes"] for ln in doc["listeners"]] == [1, 0]
    (parent,) = _parents(list(result.statuses), "through-any")
    assert _cond(parent["conditions"], "Accepted") == ("True", "Accepted")
