"""The hello backend's test helpers, over real HTTP: ?delay=, X-Echo-Set-Header, repeated request
headers, and the log of the requests it received (what the Gateway API cases rely on)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from polyingress.core.runtime.hello import MAX_DELAY, HelloServer, request_delay


@pytest.fixture
def hello() -> Iterator[HelloServer]:
    server = HelloServer("hello-1", "127.0.0.1", 0).start()
    try:
        yield server
    finally:
        server.stop()


def _get(
    server: HelloServer, target: str, headers: tuple[tuple[str, str], ...] = ()
) -> tuple[http.client.HTTPResponse, dict[str, Any]]:
    conn = http.client.HTTPConnection(str(server.address), int(server.port), timeout=10)
    try:
        conn.putrequest("GET", target)
        conn.putheader("Accept", "application/json")
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        body = json.loads(resp.read())
        return resp, body
    finally:
        conn.close()


def test_delay_waits_before_answering(hello: HelloServer) -> None:
    start = time.monotonic()
    resp, _ = _get(hello, "/slow?x=1&delay=300ms")
    assert resp.status == 200
    assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    _get(hello, "/fast?delay=nonsense")
    assert time.monotonic() - start < 0.3


def test_request_delay_parses_durations_and_caps_them() -> None:
    assert request_delay("/x?delay=1s") == 1.0
    assert request_delay("/x?a=b&delay=500ms") == 0.5
    assert request_delay("/x?delay=") is None
    assert request_delay("/x?delayed=1s") is None
    assert request_delay("/x") is None
    assert request_delay("/x?delay=1h") == MAX_DELAY


def test_echo_set_header_sets_response_headers(hello: HelloServer) -> None:
    resp, _ = _get(
        hello,
        "/",
        (("X-Echo-Set-Header", "X-Header-Set:one,x-lower: two ,bad header:x,no-colon"),),
    )
    assert resp.getheader("X-Header-Set") == "one"
    assert resp.getheader("x-lower") == "two"
    assert resp.getheader("bad header") is None
    assert resp.getheader("no-colon") is None


def test_repeated_request_headers_are_joined_in_order(hello: HelloServer) -> None:
    _, info = _get(hello, "/", (("X-Add", "first"), ("x-add", "second"), ("X-One", "1")))
    headers = info["headers"]
    assert headers["x-add"] == "first,second"
    assert headers["x-one"] == "1"


def test_requests_keeps_what_the_server_received(hello: HelloServer) -> None:
    _get(hello, "/first?id=1", (("X-Mark", "a"),))
    _get(hello, "/second?id=2")
    seen = [r["uri"] for r in hello.requests]
    assert seen == ["/first?id=1", "/second?id=2"]
    assert hello.requests[0]["headers"]["x-mark"] == "a"
    assert hello.requests[0]["method"] == "GET"


def test_requests_since_a_mark_survives_a_full_log() -> None:
    """``received`` counts every request; ``requests_since`` finds the ones after a mark even
    when the log is full and its oldest entries drop out (an index into ``requests`` would
    not: the mirror-share check once counted 94 of 100 copies that way)."""
    server = HelloServer("small-log", "127.0.0.1", 0, log_size=4).start()
    try:
        for i in range(3):
            _get(server, f"/before/{i}")
        mark = server.received
        for i in range(3):
            _get(server, f"/after/{i}")
        assert server.received == 6 and len(server.requests) == 4
        assert [r["uri"] for r in server.requests_since(mark)] == [f"/after/{i}" for i in range(3)]
        assert server.requests_since(server.received) == []
        with pytest.raises(LookupError, match="2 of 6 requests left the log"):
            server.requests_since(0)
    finally:
        server.stop()
