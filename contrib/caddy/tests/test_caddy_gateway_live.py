"""What is Caddy's own in serving HTTPRoutes, live (one controller for the module, the kit's
GatewayWorld, cases of this module's own loaded one at a time): the invalid references' share of
a weighted split answered 500 by the server on a UNIX socket, also after other configurations
were loaded; values with Caddy's placeholder syntax reaching the backend and the client
literally; the first query parameter of a name deciding, as the core reads a query; a header
removal Caddy cannot express answering 500 for its rule alone; WebSockets through conditional,
filtered and split rows (HTTPRouteBackendProtocolWebSocket)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import websocket
from caddykit import require_caddy

from polyingress.testing.gateway_cases import GW, INFRA, Expect, GatewayCase, hello_name, v
from polyingress.testing.gateway_live import GatewayWorld, check_model, model_of
from polyingress.testing.live import WebSocketEcho, free_port

pytestmark = pytest.mark.live

HOST = "caddy.example.com"
HOSTILE = "{env.HOME}{http.request.uri}\\{x\\}$1"


@pytest.fixture(scope="session")
def polyingress_backend() -> str:
    require_caddy()
    return "caddy"


def ref(n: int | str, weight: int = 1) -> dict[str, Any]:
    name = f"infra-backend-v{n}" if isinstance(n, int) else n
    return {"name": name, "port": 8080, "weight": weight}


def route(name: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": INFRA},
        "spec": {
            "parentRefs": [{"name": "same-namespace"}],
            "hostnames": [HOST],
            "rules": list(rules),
        },
    }


def prefix(path: str) -> dict[str, Any]:
    return {"path": {"type": "PathPrefix", "value": path}}


SPLIT = GatewayCase(
    "CaddySplitWithInvalidShare",
    (route("split", {"matches": [prefix("/")], "backendRefs": [ref(1, 3), ref("missing", 1)]}),),
    (Expect(HOST, "/x", status=200),),
)
OTHER = GatewayCase(
    "CaddyOther",
    (route("other", {"matches": [prefix("/")], "backendRefs": [ref(2)]}),),
    (Expect(HOST, "/x", backend=v(2)),),
)


def shares(world: GatewayWorld, requests: int = 200) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(requests):
        resp = world.send(Expect(HOST, "/x"))
        seen[str(resp.server_name) if resp.status == 200 else str(resp.status)] += 1
    return seen


def test_the_invalid_share_of_a_split_answers_500_also_after_other_loads(
    gateway_world: GatewayWorld,
) -> None:
    """Weights 3 (v1) and 1 (a missing Service): a quarter of the requests get 500 from Caddy's
    server on its UNIX socket, the rest v1, in a round robin (exact over 200 requests); the
    same after another configuration (without that server) was loaded and this one again."""
    for case in (SPLIT, OTHER, SPLIT):
        check_model(case)
        gateway_world.check(case)
        if case is SPLIT:
            assert shares(gateway_world) == Counter({hello_name(*v(1)): 150, "500": 50})
    socket = gateway_world.controller.workdir / "caddy-500.sock"
    assert socket.is_socket() and socket.stat().st_mode & 0o777 == 0o200


def test_values_in_caddys_placeholder_syntax_stay_literal(gateway_world: GatewayWorld) -> None:
    """A header match, request and response header values holding '{...}', '\\' and '$'
    reach Caddy as literals: nothing of the environment or the request is substituted."""
    case = GatewayCase(
        "CaddyLiteralValues",
        (
            route(
                "literal",
                {
                    "matches": [
                        {**prefix("/"), "headers": [{"name": "X-Match", "value": HOSTILE}]}
                    ],
                    "filters": [
                        {
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": {"set": [{"name": "X-Set", "value": HOSTILE}]},
                        },
                        {
                            "type": "ResponseHeaderModifier",
                            "responseHeaderModifier": {
                                "add": [{"name": "X-Out", "value": HOSTILE}]
                            },
                        },
                    ],
                    "backendRefs": [ref(1)],
                },
            ),
        ),
        (
            Expect(
                HOST,
                "/a",
                backend=v(1),
                request_headers=(("X-Match", HOSTILE),),
                headers=(("X-Set", HOSTILE), ("X-Match", HOSTILE)),
                response_headers=(("X-Out", HOSTILE),),
            ),
            Expect(HOST, "/a", status=404, request_headers=(("X-Match", "/home"),)),
            Expect(HOST, "/a", status=404),
        ),
        features=frozenset({"HTTPRouteResponseHeaderModification"}),
    )
    check_model(case)  # what the core says, then what Caddy does
    gateway_world.check(case)


def test_the_first_query_parameter_of_a_name_decides(gateway_world: GatewayWorld) -> None:
    """As the core reads a query (polyingress.core's Request.query_param): split at '&', the
    first parameter of the name counts, undecoded; two parameters must both hold."""
    case = GatewayCase(
        "CaddyQueryFirstParameter",
        (
            route(
                "query",
                {
                    "matches": [
                        {
                            **prefix("/"),
                            "queryParams": [
                                {"name": "q", "value": "1"},
                                {"name": "r", "value": "a.b"},
                            ],
                        }
                    ],
                    "backendRefs": [ref(1)],
                },
                {"matches": [prefix("/")], "backendRefs": [ref(2)]},
            ),
        ),
        tuple(
            Expect(HOST, target, backend=v(1) if hit else v(2))
            for target, hit in (
                ("/?q=1&r=a.b", True),
                ("/?r=a.b&qq=2&q=1&q=2", True),
                ("/?q&r=a.b&q=1", False),
                ("/?q=2&r=a.b&q=1", False),
                ("/?q=1&r=a.b&r=x", True),
                ("/?q=1&r=aXb", False),
                ("/?q=1", False),
                ("/?q=%31&r=a.b", False),
                ("/?r=a.b;q=1", False),
            )
        ),
        features=frozenset({"HTTPRouteQueryParamMatching"}),
    )
    check_model(case)  # what the core says, then what Caddy does
    gateway_world.check(case)


def test_a_header_removal_caddy_cannot_express_answers_500_for_its_rule_alone(
    gateway_world: GatewayWorld,
) -> None:
    """Caddy reads a leading or trailing '*' in a header name to delete as a wildcard
    ('*' alone: every header), so such a rule answers 500 (and the backend logs it); the
    route's other rules are served."""
    remove = {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {"remove": ["x-*"]},
    }
    case = GatewayCase(
        "CaddyWildcardRemoval",
        (
            route(
                "wildcard",
                {"matches": [prefix("/removal")], "filters": [remove], "backendRefs": [ref(1)]},
                {"matches": [prefix("/")], "backendRefs": [ref(2)]},
            ),
        ),
        (
            Expect(HOST, "/removal", status=500),
            Expect(HOST, "/other", backend=v(2)),
            Expect(GW, "/removal", status=404),
        ),
    )
    # The core serves the rule (Caddy's one difference from RouteModel.answer for HTTPRoutes:
    # contrib/caddy/README.md); Caddy refuses it alone.
    model = model_of(case).model
    assert model.answer(HOST, "/removal").proxied
    gateway_world.check(case)
    log = gateway_world.controller.log_path
    assert log is not None
    assert "HTTPRoute gateway-conformance-infra/wildcard: removing header 'x-*'" in log.read_text()


WS_ADDRESS = "127.0.91.1"


@pytest.fixture(scope="module")
def echo() -> Iterator[WebSocketEcho]:
    server = WebSocketEcho(WS_ADDRESS, free_port(WS_ADDRESS))
    yield server
    server.stop()


def ws_service(name: str, port: int) -> list[dict[str, Any]]:
    """A Service whose port says WebSocket (appProtocol kubernetes.io/ws), on the echo."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": INFRA},
            "spec": {
                "ports": [
                    {
                        "name": "ws",
                        "port": 8080,
                        "targetPort": port,
                        "appProtocol": "kubernetes.io/ws",
                    }
                ]
            },
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-1",
                "namespace": INFRA,
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": [{"name": "ws", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [WS_ADDRESS], "conditions": {"ready": True}}],
        },
    ]


def test_websockets_pass_conditional_filtered_and_split_rows(
    gateway_world: GatewayWorld, echo: WebSocketEcho
) -> None:
    """HTTPRouteBackendProtocolWebSocket: the upgrade passes a row with a header match and a
    request header filter (the echo sees the header), a weighted split, and a rewritten path;
    the same path without the header is a plain HTTP backend, whose refusal of the upgrade
    reaches the client."""
    port = echo.server.server_address[1]
    filtered = {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {"set": [{"name": "X-Filtered", "value": "yes"}]},
    }
    rewrite = {
        "type": "URLRewrite",
        "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/room"}},
    }
    case = GatewayCase(
        "CaddyWebSockets",
        (
            *ws_service("ws", port),
            *ws_service("ws-two", port),
            route(
                "ws",
                {
                    "matches": [
                        {**prefix("/chat"), "headers": [{"name": "X-Room", "value": "one"}]}
                    ],
                    "filters": [filtered],
                    "backendRefs": [ref("ws")],
                },
                {"matches": [prefix("/split")], "backendRefs": [ref("ws"), ref("ws-two")]},
                {"matches": [prefix("/moved")], "filters": [rewrite], "backendRefs": [ref("ws")]},
                {"matches": [prefix("/chat")], "backendRefs": [ref(1)]},
            ),
        ),
        (Expect(HOST, "/chat", backend=v(1)),),
        features=frozenset({"HTTPRoutePathRewrite"}),
    )
    check_model(case)
    gateway_world.check(case)

    def connect(path: str, *headers: str) -> websocket.WebSocket:
        return websocket.create_connection(
            f"ws://127.0.0.1:{gateway_world.controller.http_port}{path}",
            host=HOST,
            header=list(headers),
            timeout=5,
        )

    for path, headers, want in (
        ("/chat?x=1", ("X-Room: one",), "/chat?x=1 yes"),
        ("/split/a", (), "/split/a -"),
        ("/split/b", (), "/split/b -"),
        ("/moved/x", (), "/room/x -"),
    ):
        ws = connect(path, *headers)
        try:
            for message in ("hello", "again"):
                ws.send(message)
                assert ws.recv() == f"{want} {message}"
        finally:
            ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException):
        connect("/chat")
