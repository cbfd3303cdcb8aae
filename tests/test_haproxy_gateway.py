"""Gateway API rows on a real HAProxy, compared with the core's RouteModel.answer.

Every request is sent through a real ``polyingress run --backend haproxy`` to the hello servers
of the conformance base (testing/gateway_cases.py) and what the client and the backend see is
held to :meth:`RouteModel.answer`: the status, the backend (one of a split's), the path and
Host the backend receives, the request headers after the route's filters, the response headers,
a redirect's Location. The worlds are random HTTPRoutes (seeded) with every row kind the model
has, hostile header names and values, Gateway API path characters (``;``, ``'``, ``$``), suffix
hosts and HTTPS listeners; then routine edits of them must be served without a reload.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from livekit import metric, needs, wait_until

from polyingress.core import RouteModel, self_signed
from polyingress.testing.gateway_cases import INFRA, GatewayCase, hello_name
from polyingress.testing.gateway_live import GatewayWorld, model_of

pytestmark = [pytest.mark.live, needs("haproxy")]

HTTP_GATEWAY = {"name": "same-namespace"}
HTTPS_GATEWAY = {"name": "same-namespace-with-https-listener", "sectionName": "https"}
HOSTS = ("example.com", "x.wild.com", "*.wild.com", "*.b.wild.com", "other.org")
PATHS = ("/", "/a", "/a/b", "/a/b/c", "/a;b", "/q'x", "/p$1", "/s(1)*", "/e:@=,+&!")
METHODS = ("GET", "POST", "PUT")
# Header names are RFC 7230 tokens: every token character a proxy's config could choke on.
HEADER_NAMES = ("x-version", "X-Hostile'#$%&*+^`|~!", "color")
HOSTILE = "va\"l\\ue %41;#$'x `${a}` %[path] \\x00 <<"
HEADER_VALUES = ("one", "two", HOSTILE, "in ner")
QUERY_NAMES = ("q", "a.b", "x~y")
QUERY_VALUES = ("1", "", "v-._~")
SERVICES = ("infra-backend-v1", "infra-backend-v2", "infra-backend-v3")


def _route(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": INFRA},
        "spec": spec,
    }


def _header_filter(rng: random.Random) -> dict[str, Any]:
    names = rng.sample(["x-set", "X-Hostile'#$%&*+^`|~!", "x-add", "x-gone", "color"], 3)
    value = rng.choice([HOSTILE, "plain", "", "a,b; c=d"])
    return {
        "set": [{"name": names[0], "value": value}],
        "add": [{"name": names[1], "value": rng.choice([HOSTILE, "added"])}],
        "remove": [names[2]],
    }


def _rule(rng: random.Random) -> dict[str, Any]:
    prefix_only = rng.random() < 0.5
    matches = []
    for _ in range(rng.randint(1, 2)):
        match: dict[str, Any] = {
            "path": {
                "type": "PathPrefix" if prefix_only or rng.random() < 0.6 else "Exact",
                "value": rng.choice(PATHS),
            }
        }
        if rng.random() < 0.3:
            match["method"] = rng.choice(METHODS)
        if rng.random() < 0.4:
            names = rng.sample(HEADER_NAMES, rng.randint(1, 2))
            match["headers"] = [{"name": n, "value": rng.choice(HEADER_VALUES)} for n in names]
        if rng.random() < 0.3:
            match["queryParams"] = [
                {"name": rng.choice(QUERY_NAMES), "value": rng.choice(QUERY_VALUES)}
            ]
        matches.append(match)
    rule: dict[str, Any] = {"matches": matches}
    filters: list[dict[str, Any]] = []
    kind = rng.random()
    if kind < 0.2:
        redirect: dict[str, Any] = {"statusCode": rng.choice([301, 302, 303, 307, 308])}
        if rng.random() < 0.5:
            redirect["hostname"] = rng.choice(["redirect.example", "b.example.org"])
        if rng.random() < 0.4:
            redirect["scheme"] = rng.choice(["http", "https"])
        if rng.random() < 0.4:
            redirect["port"] = rng.choice([80, 443, 8443])
        if rng.random() < 0.5:
            redirect["path"] = _path_modifier(rng, prefix_only)
        filters.append({"type": "RequestRedirect", "requestRedirect": redirect})
    else:
        refs = []
        for service in rng.sample(SERVICES, rng.choice([1, 1, 2, 3])):
            ref: dict[str, Any] = {"name": service, "port": 8080}
            if rng.random() < 0.5:
                ref["weight"] = rng.choice([0, 1, 2, 3])
            refs.append(ref)
        if rng.random() < 0.1:
            refs.append({"name": "no-such-service", "port": 8080})
        if rng.random() < 0.05:
            refs = []
        rule["backendRefs"] = refs
        if kind < 0.4:
            rewrite: dict[str, Any] = {}
            if rng.random() < 0.5:
                rewrite["hostname"] = rng.choice(["rewritten.example", "x.example.org"])
            if rng.random() < 0.7 or not rewrite:
                rewrite["path"] = _path_modifier(rng, prefix_only)
            filters.append({"type": "URLRewrite", "urlRewrite": rewrite})
    if rng.random() < 0.3:
        filters.append(
            {"type": "RequestHeaderModifier", "requestHeaderModifier": _header_filter(rng)}
        )
    if rng.random() < 0.3:
        filters.append(
            {"type": "ResponseHeaderModifier", "responseHeaderModifier": _header_filter(rng)}
        )
    if filters:
        rule["filters"] = filters
    return rule


def _path_modifier(rng: random.Random, prefix_only: bool) -> dict[str, Any]:
    value = rng.choice(["/", "/new", "/new/", "/n;e'w$", "/deep/er"])
    if prefix_only and rng.random() < 0.6:
        return {"type": "ReplacePrefixMatch", "replacePrefixMatch": value}
    return {"type": "ReplaceFullPath", "replaceFullPath": value}


def random_routes(seed: int, count: int = 4) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    routes = []
    for i in range(count):
        spec: dict[str, Any] = {"parentRefs": [HTTP_GATEWAY]}
        if rng.random() < 0.4:
            spec["parentRefs"].append(HTTPS_GATEWAY)
        if rng.random() < 0.8:
            spec["hostnames"] = rng.sample(HOSTS, rng.randint(1, 2))
        spec["rules"] = [_rule(rng) for _ in range(rng.randint(1, 3))]
        routes.append(_route(f"random-{seed}-{i}", spec))
    return routes


@dataclass(frozen=True)
class Probe:
    host: str
    target: str
    scheme: str = "http"
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        extra = "".join(f" [{k}: {v}]" for k, v in self.headers)
        return f"{self.method} {self.scheme}://{self.host}{self.target}{extra}"


def _hosts(route: dict[str, Any]) -> list[str]:
    names = route["spec"].get("hostnames") or ["anything.test"]
    out = []
    for name in names:
        if name.startswith("*."):
            out += ["one" + name[1:], "two.levels" + name[1:]]
        else:
            out.append(name)
    return out


def probes(routes: list[dict[str, Any]], seed: int) -> list[Probe]:
    """Requests meeting each match, and near misses (a header, the method or the path off)."""
    rng = random.Random(seed * 7 + 1)
    out: list[Probe] = []
    for route in routes:
        schemes = ["http"] + (["https"] if HTTPS_GATEWAY in route["spec"]["parentRefs"] else [])
        for rule in route["spec"]["rules"]:
            for match in rule["matches"]:
                path = match["path"]["value"]
                targets = [path]
                if match["path"]["type"] == "PathPrefix":
                    targets += [path.rstrip("/") + "/z/y", path + "x"]
                query = "&".join(f"{q['name']}={q['value']}" for q in match.get("queryParams", []))
                headers = tuple((h["name"], h["value"]) for h in match.get("headers", []))
                for host in _hosts(route):
                    for target in targets:
                        scheme = rng.choice(schemes)
                        full = f"{target}?{query}&other=1" if query else target + "?k=v"
                        method = match.get("method", "GET")
                        out.append(Probe(host, full, scheme, method, headers))
                        # near misses
                        if headers:
                            out.append(Probe(host, full, scheme, method, headers[1:]))
                        if "method" in match:
                            out.append(Probe(host, full, scheme, "DELETE", headers))
                        if query:
                            out.append(Probe(host, target, scheme, method, headers))
        out.append(Probe("nowhere.test", "/a/b", "http"))
    return out


def check(world: GatewayWorld, model: RouteModel, probe: Probe) -> str | None:
    """None when the live answer is the model's, else what differs."""
    answer = model.answer(
        probe.host,
        probe.target,
        scheme=probe.scheme,
        method=probe.method,
        headers=tuple((k.lower(), v) for k, v in probe.headers),
    )
    resp = world.controller.get(
        probe.host,
        probe.target,
        scheme=probe.scheme,
        method=probe.method,
        headers=dict(probe.headers),
    )
    got = f"{probe}: model {answer.status or 'proxied'} {answer.backends} path={answer.path} "
    got += f"location={answer.location}; live HTTP {resp.status} {resp.headers} {resp.body[:300]!r}"
    route = answer.route
    if answer.proxied:
        names = {
            hello_name(*_service(w.backend)) for w in answer.backends if w.backend and w.weight
        }
        invalid = sum(w.weight for w in answer.backends if w.backend is None)
        if resp.status == 500 and invalid:
            return None  # the invalid backends' share of a split
        if resp.status != 200 or resp.server_name not in names:
            return got
        seen = resp.json()
        if seen["uri"] != answer.path:
            return f"{got}: the backend got {seen['uri']}"
        host = answer.host or probe.host
        if seen["host"] != host:
            return f"{got}: the backend got Host {seen['host']}"
        sent = {k.lower(): [v] for k, v in probe.headers}
        if route is not None and route.request_headers is not None:
            after = route.request_headers.apply(sent)
            f = route.request_headers
            for name in {n for n, _ in (*f.set, *f.add)} | set(f.remove):
                want = after.get(name)
                have = seen["headers"].get(name)
                # The hello server joins repeated header lines with "," (as upstream's echo).
                if (",".join(want) if want else None) != have:
                    return f"{got}: header {name} reached the backend as {have!r}, not {want!r}"
        else:
            for k, v in probe.headers:
                if seen["headers"].get(k.lower()) != v.strip():
                    return f"{got}: header {k} reached the backend as {seen['headers']}"
    else:
        if resp.status != answer.status:
            return got
        if answer.location is not None and resp.headers.get("location") != answer.location:
            return f"{got}: Location {resp.headers.get('location')!r}"
    if route is not None and route.response_headers is not None and resp.status != 503:
        f = route.response_headers
        for name, value in (*f.set, *f.add):
            if resp.headers.get(name) != value:
                return f"{got}: response header {name} is {resp.headers.get(name)!r}"
        for name in f.remove:
            if name in resp.headers:
                return f"{got}: response header {name} was not removed"
    return None


def _service(backend: str) -> tuple[str, str]:
    namespace, service, _port = backend.split("__")
    return namespace, service


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayWorld]:
    w = GatewayWorld("haproxy", tmp_path_factory.mktemp("gateway-haproxy"))
    yield w
    w.stop()


def _load(world: GatewayWorld, name: str, routes: list[dict[str, Any]]) -> RouteModel:
    case = GatewayCase(name, tuple(routes), ())
    try:
        world.load(case)
    except AssertionError:
        raise AssertionError(f"{name} was not applied:\n{world.controller.log()}") from None
    model: RouteModel = model_of(case, world.features).model
    return model


def _commands(world: GatewayWorld, command: str) -> float:
    text = world.controller.metrics()
    return metric(text, "polyingress_haproxy_runtime_commands_total", command=command)


def _reloads(world: GatewayWorld) -> float:
    return metric(world.controller.metrics(), "polyingress_haproxy_reloads_total")


@pytest.mark.parametrize("seed", range(6))
def test_random_routes_answer_as_the_model_says(world: GatewayWorld, seed: int) -> None:
    routes = random_routes(seed)
    model = _load(world, f"random-{seed}", routes)
    failures = [why for p in probes(routes, seed) if (why := check(world, model, p))]
    assert not failures, "\n".join(failures[:8]) + f"\n({len(failures)} failures)"


def _routine(
    version: str = "one",
    set_value: str = "A",
    weights: tuple[int, int] = (1, 1),
    redirect: tuple[int, str] = (301, "new.example"),
    prefix: str = "/v2",
    backend: str = "infra-backend-v1",
    extra: tuple[dict[str, Any], ...] = (),
) -> list[dict[str, Any]]:
    """A route with a row of every kind; the arguments are what the routine edits change."""
    spec = {
        "parentRefs": [HTTP_GATEWAY, HTTPS_GATEWAY],
        "hostnames": ["routine.example"],
        "rules": [
            {
                "matches": [
                    {
                        "path": {"type": "PathPrefix", "value": "/"},
                        "headers": [{"name": "x-version", "value": version}],
                    }
                ],
                "backendRefs": [{"name": backend, "port": 8080}],
                "filters": [
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"set": [{"name": "x-set", "value": set_value}]},
                    }
                ],
            },
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {"name": "infra-backend-v1", "port": 8080, "weight": weights[0]},
                    {"name": "infra-backend-v2", "port": 8080, "weight": weights[1]},
                ],
            },
            {
                "matches": [{"path": {"type": "Exact", "value": "/old"}}],
                "filters": [
                    {
                        "type": "RequestRedirect",
                        "requestRedirect": {"statusCode": redirect[0], "hostname": redirect[1]},
                    }
                ],
            },
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                "backendRefs": [{"name": "infra-backend-v3", "port": 8080}],
                "filters": [
                    {
                        "type": "URLRewrite",
                        "urlRewrite": {
                            "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": prefix}
                        },
                    },
                    {
                        "type": "ResponseHeaderModifier",
                        "responseHeaderModifier": {"set": [{"name": "x-resp", "value": prefix}]},
                    },
                ],
            },
        ],
    }
    return [_route("routine", spec), *extra]


def _plain(name: str, host: str, path: str, service: str) -> dict[str, Any]:
    return _route(
        name,
        {
            "parentRefs": [HTTP_GATEWAY],
            "hostnames": [host],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": path}}],
                    "backendRefs": [{"name": service, "port": 8080}],
                }
            ],
        },
    )


ROUTINE_PROBES = [
    Probe("routine.example", "/x", headers=(("x-version", "one"),)),
    Probe("routine.example", "/x", headers=(("x-version", "two"),)),
    Probe("routine.example", "/x", "https"),
    Probe("routine.example", "/old?a=1"),
    Probe("routine.example", "/api/users?id=7"),
    Probe("routine.example", "/api", "https"),
    Probe("b.routine.example", "/any"),
    Probe("deep.sub.routine.example", "/any"),
    Probe("new.routine.example", "/new"),
]


def test_routine_httproute_changes_are_served_without_a_reload(world: GatewayWorld) -> None:
    """Every edit below is a runtime change: conditions' values, header filter values, split
    weights, a redirect's code and host, a rewrite, a new route and host (exact and suffix), a
    removed route, another Service. Each is served as the model says, and HAProxy never
    reloads."""
    steps: list[list[dict[str, Any]]] = [
        _routine(),
        _routine(version="two", set_value='B ${x} "q" \\ %[x]'),
        _routine(version="two", weights=(3, 1)),
        _routine(extra=(_plain("b", "b.routine.example", "/", "infra-backend-v3"),)),
        _routine(redirect=(308, "elsewhere.example"), prefix="/v3/"),
        _routine(backend="infra-backend-v3", prefix="/"),
        _routine(
            extra=(
                _plain("c", "*.routine.example", "/", "infra-backend-v2"),
                _plain("d", "new.routine.example", "/new", "infra-backend-v1"),
            )
        ),
        _routine(extra=(_plain("c", "*.routine.example", "/any", "infra-backend-v1"),)),
    ]
    model = _load(world, "routine-0", steps[0])
    reloads = _reloads(world)
    for i, routes in enumerate(steps):
        model = _load(world, f"routine-{i}", routes)
        failures = [why for p in ROUTINE_PROBES if (why := check(world, model, p))]
        assert not failures, f"step {i}:\n" + "\n".join(failures)
        assert _reloads(world) == reloads, f"step {i} reloaded HAProxy:\n{world.controller.log()}"


def _split(weights: dict[str, int]) -> list[dict[str, Any]]:
    return [
        _route(
            "split",
            {
                "parentRefs": [HTTP_GATEWAY],
                "hostnames": ["split.example"],
                "rules": [
                    {
                        "backendRefs": [
                            {"name": name, "port": 8080, "weight": weight}
                            for name, weight in weights.items()
                        ]
                    }
                ],
            },
        )
    ]


def _shares(world: GatewayWorld, requests: int = 400) -> dict[str, float]:
    seen: dict[str, int] = {}
    for _ in range(requests):
        resp = world.controller.get("split.example", "/")
        key = str(resp.server_name) if resp.status == 200 else str(resp.status)
        seen[key] = seen.get(key, 0) + 1
    return {k: n / requests for k, n in seen.items()}


def test_weighted_split_shares_and_weight_changes_without_a_reload(world: GatewayWorld) -> None:
    """A split is a slot holding its backends' servers, weighted (HAProxy's weighted round
    robin: exact shares); weight 0 gets nothing; new weights of the same backends are set on
    the servers (set server weight) without a reload; an invalid backend's share answers 500."""
    v1, v2, v3 = (hello_name(INFRA, s) for s in SERVICES)
    _load(world, "split-0", _split({SERVICES[0]: 70, SERVICES[1]: 30, SERVICES[2]: 0}))
    reloads = _reloads(world)
    shares = _shares(world)
    assert abs(shares.get(v1, 0) - 0.7) <= 0.02 and abs(shares.get(v2, 0) - 0.3) <= 0.02, shares
    assert v3 not in shares, shares
    added = _commands(world, "add server")
    _load(world, "split-1", _split({SERVICES[0]: 1, SERVICES[1]: 3, SERVICES[2]: 0}))
    assert _commands(world, "add server") == added  # the same slot, its servers reweighted
    shares = _shares(world)
    assert abs(shares.get(v1, 0) - 0.25) <= 0.02 and abs(shares.get(v2, 0) - 0.75) <= 0.02, shares
    _load(world, "split-2", _split({SERVICES[0]: 1, SERVICES[1]: 1, "no-such-service": 2}))
    shares = _shares(world)
    assert abs(shares.get("500", 0) - 0.5) <= 0.08, shares
    assert abs(shares.get(v1, 0) - 0.25) <= 0.06 and abs(shares.get(v2, 0) - 0.25) <= 0.06, shares
    assert _reloads(world) == reloads, world.controller.log()


def _member_split(members: list[tuple[str, int, str]]) -> list[dict[str, Any]]:
    """split.example: one rule whose backendRefs (Service, weight, value) each set header
    Member to their own value (HTTPRouteBackendRequestHeaderModification); the rule adds
    X-Rule."""

    def ref(name: str, weight: int, value: str) -> dict[str, Any]:
        modifier = {"set": [{"name": "Member", "value": value}]}
        return {
            "name": name,
            "port": 8080,
            "weight": weight,
            "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": modifier}],
        }

    rule = {
        "filters": [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"add": [{"name": "X-Rule", "value": "r"}]},
            }
        ],
        "backendRefs": [ref(*m) for m in members],
    }
    spec = {"parentRefs": [HTTP_GATEWAY], "hostnames": ["split.example"], "rules": [rule]}
    return [_route("split", spec)]


def _member_shares(world: GatewayWorld, requests: int = 400) -> dict[tuple[str, str], float]:
    """(server, Member header it got) -> share; every request must carry X-Rule and one
    X-Forwarded-For address (the member hop adds none)."""
    seen: dict[tuple[str, str], int] = {}
    for _ in range(requests):
        resp = world.controller.get("split.example", "/")
        assert resp.status == 200, (resp.status, resp.body[:200])
        headers = resp.json()["headers"]
        assert headers.get("x-rule") == "r", headers
        assert headers.get("x-forwarded-for") == "127.0.0.1", headers
        assert "x-polyingress-row" not in headers, headers
        key = (str(resp.server_name), str(headers.get("member")))
        seen[key] = seen.get(key, 0) + 1
    return {k: n / requests for k, n in seen.items()}


def test_backend_filters_of_a_split_per_member_without_a_reload(world: GatewayWorld) -> None:
    """Each backendRef of a split changes the requests it gets, and only those (HAProxy picks
    the server after its http-request rules: the member sockets' frontend, rows.hop_members):
    the shares stay the weights', the same Service twice with two filters is two members, and
    new weights, new values and another member are run-time changes after the first load."""
    v1, v2, _v3 = (hello_name(INFRA, s) for s in SERVICES)
    _load(world, "members-0", _member_split([(SERVICES[0], 3, "one"), (SERVICES[1], 1, "two")]))
    reloads = _reloads(world)
    shares = _member_shares(world)
    assert set(shares) == {(v1, "one"), (v2, "two")}, shares
    assert abs(shares[(v1, "one")] - 0.75) <= 0.03, shares
    _load(world, "members-1", _member_split([(SERVICES[0], 1, "uno"), (SERVICES[1], 1, "dos")]))
    shares = _member_shares(world)
    assert set(shares) == {(v1, "uno"), (v2, "dos")}, shares
    assert abs(shares[(v1, "uno")] - 0.5) <= 0.03, shares
    three = [(SERVICES[0], 1, "a"), (SERVICES[1], 2, "b"), (SERVICES[0], 1, "c")]
    _load(world, "members-2", _member_split(three))
    shares = _member_shares(world)
    assert set(shares) == {(v1, "a"), (v2, "b"), (v1, "c")}, shares
    for key, want in (((v1, "a"), 0.25), ((v2, "b"), 0.5), ((v1, "c"), 0.25)):
        assert abs(shares[key] - want) <= 0.03, shares
    assert _reloads(world) == reloads, world.controller.log()


def _timeouts(fast: str, slow: str) -> list[dict[str, Any]]:
    def rule(path: str, timeout: str) -> dict[str, Any]:
        return {
            "matches": [{"path": {"type": "PathPrefix", "value": path}}],
            "backendRefs": [{"name": SERVICES[0], "port": 8080}],
            "timeouts": {"request": timeout},
        }

    spec = {
        "parentRefs": [HTTP_GATEWAY],
        "hostnames": ["timeout.example"],
        "rules": [rule("/fast", fast), rule("/slow", slow)],
    }
    return [_route("timeouts", spec)]


def test_request_timeouts_are_per_row_data(world: GatewayWorld) -> None:
    """A row's timeout bounds the wait for the backend (504 past it); it is record data, so
    changing it needs no reload."""
    _load(world, "timeouts-0", _timeouts("300ms", "3s"))
    reloads = _reloads(world)
    assert world.controller.get("timeout.example", "/fast?delay=1s").status == 504
    assert world.controller.get("timeout.example", "/slow?delay=1s").status == 200
    assert world.controller.get("timeout.example", "/fast?delay=0s").status == 200
    _load(world, "timeouts-1", _timeouts("3s", "300ms"))
    assert world.controller.get("timeout.example", "/fast?delay=1s").status == 200
    assert world.controller.get("timeout.example", "/slow?delay=1s").status == 504
    assert _reloads(world) == reloads


def _secret(name: str, common_name: str, *names: str) -> dict[str, Any]:
    cert = self_signed(common_name, names)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": INFRA},
        "data": {
            "tls.crt": base64.b64encode(cert.cert_pem.encode()).decode(),
            "tls.key": base64.b64encode(cert.key_pem.encode()).decode(),
        },
    }


def test_suffix_host_certificates_by_sni(world: GatewayWorld) -> None:
    """An HTTPS listener ``*.sni.example`` is the suffix host ``**.sni.example`` (one label or
    more). Its certificate is served for the names it covers, one label below the suffix and
    the deeper names in its SANs; an exact listener host keeps its own certificate and alone
    answers its names (no fall-through to the suffix host's rows)."""
    listeners = [
        {
            "name": name,
            "port": 443,
            "protocol": "HTTPS",
            "hostname": host,
            "allowedRoutes": {"namespaces": {"from": "Same"}},
            "tls": {"certificateRefs": [{"kind": "Secret", "name": secret}]},
        }
        for name, host, secret in (
            ("suffix", "*.sni.example", "sni-suffix"),
            ("exact", "exact.sni.example", "sni-exact"),
        )
    ]
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "sni", "namespace": INFRA},
        "spec": {"gatewayClassName": "polyingress", "listeners": listeners},
    }

    def route(name: str, section: str, host: str, path: str, service: str) -> dict[str, Any]:
        return _route(
            name,
            {
                "parentRefs": [{"name": "sni", "sectionName": section}],
                "hostnames": [host],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": path}}],
                        "backendRefs": [{"name": service, "port": 8080}],
                    }
                ],
            },
        )

    objects = [
        gateway,
        _secret("sni-suffix", "*.sni.example", "*.sni.example", "*.deep.sni.example"),
        _secret("sni-exact", "exact.sni.example", "exact.sni.example"),
        route("suffix", "suffix", "*.sni.example", "/", SERVICES[0]),
        route("exact", "exact", "exact.sni.example", "/only", SERVICES[1]),
    ]
    model = _load(world, "sni", objects)
    for host, path, cn in [
        ("a.sni.example", "/", "*.sni.example"),
        ("x.deep.sni.example", "/", "*.sni.example"),
        ("exact.sni.example", "/only/x", "exact.sni.example"),
        ("exact.sni.example", "/", "exact.sni.example"),  # 404: the exact host answers alone
        ("a.b.sni.example", "/", None),  # not covered by the certificate: the fallback one
    ]:
        probe = Probe(host, path, "https")
        assert check(world, model, probe) is None, check(world, model, probe)
        resp = world.controller.get(host, path, scheme="https")
        if cn is not None:
            assert resp.peer_cn == cn, (host, resp.peer_cn)
        else:
            assert resp.peer_cn not in ("*.sni.example", "exact.sni.example"), resp.peer_cn


def _mirrored(mirrors: list[str], header: str = "one") -> list[dict[str, Any]]:
    spec = {
        "parentRefs": [HTTP_GATEWAY],
        "hostnames": ["mirror.example"],
        "rules": [
            {
                "backendRefs": [{"name": SERVICES[0], "port": 8080}],
                "filters": [
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"set": [{"name": "x-set", "value": header}]},
                    },
                    *(
                        {
                            "type": "RequestMirror",
                            "requestMirror": {"backendRef": {"name": name, "port": 8080}},
                        }
                        for name in mirrors
                    ),
                ],
            }
        ],
    }
    return [_route("mirror", spec)]


def _copies(world: GatewayWorld, service: str, marker: str) -> list[dict[str, Any]]:
    server = world.fleet.servers[hello_name(INFRA, service)]
    return [r for r in list(server.requests) if marker in r["uri"]]


def test_request_mirrors_get_the_request_as_proxied(world: GatewayWorld) -> None:
    """Each mirror gets one copy (method, path and query, the headers after the route's
    filters, the body); the request itself is answered by its backend. Other mirrors, or
    other filter values, are routine changes."""
    _load(world, "mirror-0", _mirrored([SERVICES[1], SERVICES[2]]))
    reloads = _reloads(world)
    resp = world.controller.get("mirror.example", "/m?id=first")
    assert resp.status == 200 and resp.server_name == hello_name(INFRA, SERVICES[0])
    for service in SERVICES[1:]:
        copies = wait_until(lambda s=service: _copies(world, s, "id=first"), timeout=5)
        assert len(copies) == 1 and copies[0]["uri"] == "/m?id=first", copies
        assert copies[0]["headers"]["x-set"] == "one" and copies[0]["method"] == "GET"
    body = b"a body for the mirror"
    resp = world.controller.get("mirror.example", "/m?id=posted", method="POST", body=body)
    assert resp.status == 200
    copies = wait_until(lambda: _copies(world, SERVICES[1], "id=posted"), timeout=5)
    assert copies[0]["method"] == "POST" and copies[0]["body_length"] == len(body)

    _load(world, "mirror-1", _mirrored([SERVICES[2]], header="two"))
    world.controller.get("mirror.example", "/m?id=second")
    copies = wait_until(lambda: _copies(world, SERVICES[2], "id=second"), timeout=5)
    assert copies[0]["headers"]["x-set"] == "two"
    time.sleep(0.5)
    assert not _copies(world, SERVICES[1], "id=second")  # no longer a mirror
    assert _reloads(world) == reloads


def _cors(origins: list[str], methods: list[str], credentials: bool) -> list[dict[str, Any]]:
    spec = {
        "parentRefs": [HTTP_GATEWAY],
        "hostnames": ["cors.example"],
        "rules": [
            {
                "filters": [
                    {
                        "type": "CORS",
                        "cors": {
                            "allowOrigins": origins,
                            "allowMethods": methods,
                            "exposeHeaders": ["x-exposed"],
                            "allowCredentials": credentials,
                            "maxAge": 90,
                        },
                    }
                ],
                "backendRefs": [{"name": SERVICES[0], "port": 8080}],
            }
        ],
    }
    return [_route("cors", spec)]


def _preflight(world: GatewayWorld, origin: str) -> Any:
    headers = {"Origin": origin, "Access-Control-Request-Method": "PUT"}
    return world.controller.get("cors.example", "/p", method="OPTIONS", headers=headers)


def test_cors_values_are_data_and_a_new_origin_list_reloads_once(world: GatewayWorld) -> None:
    """A CORS row's methods, credentials, expose list and max-age are map data (no reload);
    its allowed-Origin regex is configuration: a new origin list reloads once
    (runtime_unsupported). A preflight never reaches the backend, and the backend's own CORS
    headers are replaced."""
    _load(world, "cors-0", _cors(["https://*.good.example"], ["GET", "PUT"], True))
    reloads = _reloads(world)
    seen = world.fleet.servers[hello_name(INFRA, SERVICES[0])].received
    resp = _preflight(world, "https://a.b.good.example")
    assert resp.status == 204, resp
    assert resp.headers.get("access-control-allow-origin") == "https://a.b.good.example"
    assert resp.headers.get("access-control-allow-methods") == "GET, PUT"
    assert resp.headers.get("access-control-allow-credentials") == "true"
    assert resp.headers.get("access-control-max-age") == "90"
    denied = _preflight(world, "https://evil.example")
    assert denied.status == 204 and "access-control-allow-origin" not in denied.headers
    assert world.fleet.servers[hello_name(INFRA, SERVICES[0])].received == seen
    # the backend's own header is replaced by the allowed Origin's
    echo = "Access-Control-Allow-Origin:*,Access-Control-Allow-Credentials:false"
    actual = world.controller.get(
        "cors.example",
        "/a",
        headers={"Origin": "https://x.good.example", "X-Echo-Set-Header": echo},
    )
    assert actual.status == 200 and actual.server_name == hello_name(INFRA, SERVICES[0])
    assert actual.header_values("access-control-allow-origin") == ["https://x.good.example"]
    assert actual.header_values("access-control-allow-credentials") == ["true"]
    assert actual.header_values("access-control-expose-headers") == ["x-exposed"]
    _load(world, "cors-1", _cors(["https://*.good.example"], ["*"], False))
    resp = _preflight(world, "https://a.good.example")
    assert resp.headers.get("access-control-allow-methods") == "PUT"
    assert "access-control-allow-credentials" not in resp.headers
    assert _reloads(world) == reloads, world.controller.log()
    _load(world, "cors-2", _cors(["https://other.example:8443"], ["*"], False))
    assert (
        _preflight(world, "https://a.good.example").headers.get("access-control-allow-origin")
        is None
    )
    resp = _preflight(world, "https://other.example:8443")
    assert resp.headers.get("access-control-allow-origin") == "https://other.example:8443"
    assert _reloads(world) == reloads + 1, world.controller.log()
