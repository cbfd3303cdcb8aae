"""The Traefik backend's Gateway API rows live: a real `polyingress run --backend traefik` and
real HTTP, compared request by request with RouteModel.answer (beyond the upstream cases of
tests/test_gateway_live.py: every row kind, the statuses of redirects for every method, the
500 share of a split, hostile values, the time an HTTPRoute change takes to be served)."""

from __future__ import annotations

import http.client
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from livekit import Controller, HelloFleet, Response, needs, write_manifests
from traefik_gateway_worlds import (
    MISSING,
    SERVICES,
    Match,
    Request,
    Rule,
    base_objects,
    everything_world,
    header_filter,
    ingress,
    requests,
    route_object,
)

from polyingress.core import ObjectStore, RouteModel, build_model
from polyingress.plugins.traefik.render import MAPPING_CHUNK

pytestmark = [pytest.mark.live, needs("traefik")]

ADDRESS = "127.0.91"
REDIRECTS = (301, 302, 303, 307, 308)
HOSTILE = 'a`) || Host(`evil`) "q" \\ {{x}}'


def redirect_rule(status: int) -> Rule:
    spec = {"statusCode": status, "hostname": "r.org", "port": 8443, "scheme": "https"}
    return Rule(
        (Match(f"/r{status}"),),
        (),
        ({"type": "RequestRedirect", "requestRedirect": spec},),
    )


def extra_world() -> list[dict[str, Any]]:
    """What the live tests below need besides the everything world."""
    return [
        route_object("redirects", *(redirect_rule(s) for s in REDIRECTS), hostnames=("r.com",)),
        route_object(
            "fail-share",
            Rule((Match("/"),), (("s0", 1), (MISSING, 1))),
            hostnames=("split.com",),
        ),
        route_object(
            "hostile",
            Rule(
                (Match("/", headers=(("X-Token", HOSTILE),)),),
                (("s1", 1),),
                (header_filter("RequestHeaderModifier", set={"X-Echo": HOSTILE}),),
            ),
            hostnames=("hostile.com",),
        ),
    ]


def encoded_world() -> list[dict[str, Any]]:
    """Rule paths with percent-encodings (the Gateway API allows them; Ingress paths not)."""
    return [
        route_object(
            "encoded",
            Rule((Match("/sp%20ace", "Exact"),), (("s0", 1),)),
            Rule((Match("/semi%3Bx"),), (("s1", 1),)),
            Rule((Match("/quote%22s"),), (("s2", 1),)),
            hostnames=("pct.com",),
        )
    ]


def timeouts_world() -> list[dict[str, Any]]:
    """A route timeout longer than the ConfigMap's proxy-read-timeout (1s here), and a row
    without one."""
    return [
        route_object(
            "timeouts",
            Rule((Match("/long"),), (("s0", 1),), timeout="3s"),
            Rule((Match("/plain"),), (("s1", 1),)),
            hostnames=("t.com",),
        ),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "polyingress", "namespace": "gw"},
            "data": {"proxy-read-timeout": "1s"},
        },
    ]


def differences_world() -> list[dict[str, Any]]:
    """Rows whose conditions Traefik evaluates otherwise than the core (README, Traefik)."""
    return [
        route_object(
            "differences",
            Rule((Match("/q", query=(("q", "1"),)),), (("s0", 1),)),
            Rule((Match("/h", headers=(("Version", "one"),)),), (("s1", 1),)),
            Rule((Match("/host", headers=(("Host", "diff.com"),)),), (("s2", 1),)),
            hostnames=("diff.com",),
        )
    ]


MANY = 150


def many_world() -> list[dict[str, Any]]:
    """HTTPRoutes of one row each on hosts of their own: with them the document has more
    routers than one YAML mapping of its text holds (``render.MAPPING_CHUNK``), so the routers
    are written as a merge of several mappings, as a large world's are."""
    return [
        route_object(
            f"many-{i:03d}",
            Rule((Match(f"/m{i}"),), ((f"s{i % 3}", 1),)),
            hostnames=(f"m{i:03d}.many.com",),
        )
        for i in range(MANY)
    ]


def world(port: int, change: int = 0, kind: str = "HTTPRoute") -> list[dict[str, Any]]:
    """The world; ``change`` > 0 adds an HTTPRoute (or Ingress) edit: ``/changed/<change>`` on
    host c.com to s2 (the change timing below)."""
    objects = [
        *base_objects(port, ADDRESS),
        *everything_world(),
        *extra_world(),
        *differences_world(),
        *encoded_world(),
        *timeouts_world(),
        *many_world(),
    ]
    if change and kind == "HTTPRoute":
        objects.append(
            route_object(
                "changed", Rule((Match(f"/changed/{change}"),), (("s2", 1),)), hostnames=("c.com",)
            )
        )
    elif change:
        objects.append(ingress("changed", "c.com", [(f"/changed/{change}", "Prefix", "s2")]))
    return objects


def model_of(objects: list[dict[str, Any]]) -> RouteModel:
    store = ObjectStore()
    store.replace_many(objects, ())
    return build_model(store.snapshot()).model


class Live:
    def __init__(self, tmp: Path) -> None:
        self.fleet = HelloFleet(
            [(name, f"{ADDRESS}.{octet}") for name, octet in SERVICES.items() if octet is not None]
        )
        self.objects = world(self.fleet.port)
        self.model = model_of(self.objects)
        self.manifests = tmp / "manifests"
        write_manifests(self.manifests, "world.yaml", self.objects)
        self.controller = Controller(
            "traefik", self.manifests, tmp / "work", extra=["--configmap", "gw/polyingress"]
        ).start()

    def send(self, req: Request) -> Response:
        return self.controller.get(
            req.host, req.target, scheme=req.scheme, method=req.method, headers=dict(req.headers)
        )

    def stop(self) -> None:
        self.controller.stop()
        self.fleet.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    world_ = Live(tmp_path_factory.mktemp("traefik-gateway"))
    try:
        yield world_
    finally:
        world_.stop()


def _short(backend: str | None) -> str | None:
    return None if backend is None else backend.split("__")[1]


def check(live: Live, req: Request) -> None:
    """What Traefik answers ``req`` is what RouteModel.answer says."""
    answer = live.model.answer(
        req.host,
        req.target,
        scheme=req.scheme,
        method=req.method,
        headers=tuple((k.lower(), v) for k, v in req.headers),
    )
    resp = live.send(req)
    where = f"{req}: answer {answer}; got {resp.status} {resp.headers} {resp.body[:200]!r}"
    if answer.status is not None:
        assert resp.status == answer.status, where
        if answer.location is not None:
            assert resp.headers.get("location") == answer.location, where
        return
    row = answer.route
    names = {_short(w.backend) for w in answer.backends if w.backend is not None}
    fail = row is not None and any(w.backend is None and w.weight for w in row.split)
    if fail and resp.status == 500:
        return  # the invalid reference's share
    assert resp.status == 200, where
    if req.method == "HEAD":
        return  # no body: the hello server cannot be told
    seen = resp.json()
    assert seen["server_name"] in names, where
    assert seen["uri"] == answer.path, where
    assert seen["host"] == (answer.host or req.host), where
    if row is not None and row.request_headers is not None:
        sent = {k.lower(): [v] for k, v in req.headers}
        for name, values in row.request_headers.apply(sent).items():
            assert seen["headers"].get(name) == ",".join(values), where
        for name in row.request_headers.remove:
            assert name not in seen["headers"], where


def test_every_request_of_the_grid_is_answered_as_the_core_says(live: Live) -> None:
    for req in requests():
        check(live, req)


def test_routers_in_every_merged_mapping_of_a_large_document_are_served(live: Live) -> None:
    """Traefik's YAML decoder (yaml.v3) checks a mapping's keys for duplicates pairwise, so a
    mapping of 20,000 routers cost seconds per change: a large document's routers are written
    as a merge (``<<``) of mappings of at most MAPPING_CHUNK keys. Every router of every one of
    them is served."""
    text = (live.controller.workdir / "dynamic" / "polyingress.yaml").read_text()
    routers = yaml.safe_load(text)["http"]["routers"]
    assert len(routers) > 2 * MAPPING_CHUNK
    assert text.count("\n    <<:\n") == 1  # http.routers
    merged = yaml.compose(text)
    assert merged is not None
    assert _largest_mapping(merged) <= MAPPING_CHUNK
    for i in range(MANY):
        for scheme in ("http", "https"):
            for target in (f"/m{i}/x", f"/m{i}", "/other", f"/m{i}x"):
                check(live, Request(f"m{i:03d}.many.com", target, scheme))
    check(live, Request(f"m{MANY:03d}.many.com", "/m0"))


def _largest_mapping(node: yaml.Node) -> int:
    if isinstance(node, yaml.MappingNode):
        own = len(node.value)
        return max([own, *(_largest_mapping(v) for _k, v in node.value)])
    if isinstance(node, yaml.SequenceNode):
        return max([0, *(_largest_mapping(v) for v in node.value)])
    return 0


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "get"])
@pytest.mark.parametrize("status", REDIRECTS)
def test_a_redirect_has_its_status_for_every_method(live: Live, status: int, method: str) -> None:
    """Traefik's redirect middlewares answer 307/308 to anything but GET; the route's status is
    the answer for every method here."""
    req = Request("R.com:8080", f"/r{status}/x?a=%41", method=method)
    resp = live.send(req)
    assert resp.status == status
    assert resp.headers["location"] == f"https://r.org:8443/r{status}/x?a=%41"
    check(live, req)


def test_an_invalid_references_share_of_a_split_answers_500(live: Live) -> None:
    seen = Counter()
    for _ in range(200):
        resp = live.send(Request("split.com", "/"))
        seen[resp.status if resp.status != 200 else resp.json()["server_name"]] += 1
    assert set(seen) == {500, "s0"}, seen
    assert 60 <= seen[500] <= 140, seen  # half of 200, far beyond chance


def test_a_hostile_header_value_is_matched_and_set_as_written(live: Live) -> None:
    resp = live.send(Request("hostile.com", "/", headers=(("X-Token", HOSTILE),)))
    assert resp.status == 200
    assert resp.json()["headers"]["x-echo"] == HOSTILE
    for other in ("a", HOSTILE[:-1], "evil"):
        assert live.send(Request("hostile.com", "/", headers=(("X-Token", other),))).status == 404
    assert live.send(Request("evil", "/", headers=(("X-Token", HOSTILE),))).status == 404


@pytest.mark.parametrize(
    "target",
    [
        "/sp%20ace",
        "/sp%20ace/",
        "/semi%3Bx",
        "/semi%3bx/y",
        "/semi;x",
        "/quote%22s/a",
        "/quote%22",
        "/%73emi%3Bx",
    ],
)
def test_encoded_rule_paths_match_as_the_core_says(live: Live, target: str) -> None:
    check(live, Request("pct.com", target))


@pytest.mark.parametrize(
    ("target", "status", "least", "most"),
    [
        ("/long?delay=2s", 200, 1.9, 2.9),  # the route's 3s, not the ConfigMap's 1s
        ("/long?delay=5s", 504, 2.9, 4.5),
        ("/plain?delay=2s", 504, 0.9, 1.9),  # the ConfigMap's proxy-read-timeout
    ],
)
def test_a_route_timeout_replaces_the_configmaps_read_timeout(
    live: Live, target: str, status: int, least: float, most: float
) -> None:
    start = time.monotonic()
    resp = live.controller.get("t.com", target, timeout=10)
    took = time.monotonic() - start
    assert resp.status == status, resp
    assert least <= took <= most, took


def _raw(live: Live, target: str, lines: list[tuple[str, str]]) -> Response:
    """A request with these header lines exactly (a name may repeat), Host diff.com."""
    conn = http.client.HTTPConnection("127.0.0.1", live.controller.http_port, timeout=5)
    try:
        conn.putrequest("GET", target, skip_host=True)
        for name, value in [("Host", "diff.com"), ("Accept", "application/json"), *lines]:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("target", "lines", "core", "traefik"),
    [
        # Query() compares decoded values: %31 is 1 (the core compares the value as sent).
        ("/q?q=%31", [], 404, "s0"),
        # Any value of a repeated parameter counts (the core: the first).
        ("/q?q=2&q=1", [], 404, "s0"),
        ("/q?q=1&q=2", [], "s0", "s0"),
        # Any line of a repeated header counts (the core: the first).
        ("/h", [("Version", "two"), ("Version", "one")], 404, "s1"),
        ("/h", [("Version", "one"), ("Version", "two")], "s1", "s1"),
        # A match on the Host header: Go moves Host out of the header map, Header() never sees
        # it (the core compares the Host header as sent).
        ("/host", [], "s2", 404),
    ],
    ids=[
        "query-decoded",
        "query-any-value",
        "query-first",
        "header-any-line",
        "header-first",
        "header-host",
    ],
)
def test_the_documented_differences_of_traefiks_matchers(
    live: Live, target: str, lines: list[tuple[str, str]], core: object, traefik: object
) -> None:
    """Pinned down: where Traefik's Query() and Header() differ from RouteModel.answer (the
    README's Traefik section); everything else of these rows is as the core says."""
    first = {}
    for name, value in lines:
        first.setdefault(name.lower(), value)
    answer = live.model.answer("diff.com", target, headers=(("host", "diff.com"), *first.items()))
    assert (answer.status or _short(answer.backend)) == core
    resp = _raw(live, target, lines)
    assert (resp.status if resp.status != 200 else resp.json()["server_name"]) == traefik


def test_an_httproute_change_is_served_like_an_ingress_change(live: Live) -> None:
    """An HTTPRoute edit is served the way an Ingress edit is: one whole-file rewrite that
    Traefik applies live (no restart; the filters plugin is loaded once, at Traefik's start),
    confirmed by the probe of its revision. The time from the manifest write to the first
    request served by the new route is printed for both kinds; the bound is loose (a shared
    2-core machine): the figures are in the report, the benchmarks in bench/."""
    times: dict[str, list[float]] = {"HTTPRoute": [], "Ingress": []}
    change = 0
    for _round in range(5):
        for kind in times:
            change += 1
            write_manifests(live.manifests, "world.yaml", world(live.fleet.port, change, kind))
            start = time.monotonic()
            while True:
                resp = live.send(Request("c.com", f"/changed/{change}"))
                if resp.status == 200:
                    break
                assert time.monotonic() - start < 10, "the change was not served within 10 s"
                time.sleep(0.002)
            times[kind].append(time.monotonic() - start)
            assert resp.json()["server_name"] == "s2"
    for kind, seen in times.items():
        print(f"{kind} change -> served: {', '.join(f'{t * 1000:.0f} ms' for t in seen)}")
    medians = {kind: sorted(seen)[len(seen) // 2] for kind, seen in times.items()}
    assert medians["HTTPRoute"] < 2.0, times
    write_manifests(live.manifests, "world.yaml", live.objects)
