"""The ingress-nginx annotation cases (polyingress.testing.annotation_live) live on the
built-in backends: nginx, HAProxy and Traefik, one controller each, one case loaded at a time.
A case is skipped, naming the features, on a backend that does not declare the Gateway API
features its annotations need."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator

import pytest
from livekit import backend_param

from polyingress.core import BASIC_AUTH, RATE_LIMIT
from polyingress.core.pipeline.translate.annotations import SEND_TIMEOUT
from polyingress.testing.annotation_cases import CASES, AnnotationCase, Expect, ingress
from polyingress.testing.annotation_live import *  # noqa: F403 (the whole suite)
from polyingress.testing.annotation_live import AnnotationWorld
from polyingress.testing.live import wait_until

pytestmark = pytest.mark.live


@pytest.fixture(scope="module", params=[backend_param(n) for n in ("nginx", "haproxy", "traefik")])
def polyingress_backend(request: pytest.FixtureRequest) -> str:
    """The conformance kit's backend, once per built-in backend."""
    return str(request.param)


# The status each backend answers above a rate limit: ingress-nginx's 503 (limit-req-status-code
# and limit-conn-status-code), except Traefik's rateLimit and inFlightReq, which answer 429 (the
# documented partial of limit-rps, limit-rpm and limit-connections).
LIMIT_STATUS = {"nginx": 503, "haproxy": 503, "traefik": 429}
_RATE = AnnotationCase(
    "limit-rps/limit-connections",
    "docs/user-guide/nginx-configuration/annotations.md Rate Limiting",
    (
        ingress(
            "rps",
            "rps.foo.com",
            "/",
            annotations={"limit-rps": "1", "limit-burst-multiplier": "1"},
        ),
        ingress("conn", "conn.foo.com", "/", annotations={"limit-connections": "1"}),
    ),
    (),
)


def test_rate_limits_per_client_address(annotation_world: AnnotationWorld) -> None:
    """limit-rps 1 (burst 1): of 10 quick requests from one address at least one gets the
    limit status and none anything else; another address is not limited by them; after a
    wait the first passes again. limit-connections 1: of 3 concurrent slow requests at least
    one is refused, at least one served. No timing is relied on but the wait."""
    world = annotation_world
    if RATE_LIMIT not in world.features:
        pytest.skip(f"the {world.backend} backend does not declare {RATE_LIMIT}")
    limited = LIMIT_STATUS[world.backend]
    world.load(_RATE)
    wait_until(lambda: world.send(Expect("rps.foo.com", "/", source="127.0.94.1")).status == 200)
    first = [world.send(Expect("rps.foo.com", "/", source="127.0.94.2")).status for _ in range(10)]
    assert set(first) <= {200, limited} and limited in first, first
    assert world.send(Expect("rps.foo.com", "/", source="127.0.94.3")).status == 200
    wait_until(
        lambda: world.send(Expect("rps.foo.com", "/", source="127.0.94.2")).status == 200,
        timeout=10,
        interval=0.5,
    )
    statuses: list[int] = []

    def slow() -> None:
        statuses.append(
            world.send(Expect("conn.foo.com", "/?delay=1s", source="127.0.94.4")).status
        )

    threads = [threading.Thread(target=slow) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(set(statuses)) == sorted({200, limited}), statuses
    # Once the requests in flight are over (a loaded machine may keep one longer than the
    # client waited), one passes again.
    wait_until(
        lambda: world.send(Expect("conn.foo.com", "/", source="127.0.94.4")).status == 200,
        timeout=15,
        interval=0.5,
    )


def test_send_timeout_waits_for_a_slow_client(annotation_world: AnnotationWorld) -> None:
    """proxy-send-timeout bounds the pauses of the *endpoint* taking the request, not the
    client's: an upload that pauses longer than the route's send timeout (1 s) between its
    parts, to an endpoint reading normally, reaches it whole (200), however long it takes."""
    world = annotation_world
    if SEND_TIMEOUT not in world.features:
        pytest.skip(f"the {world.backend} backend does not declare {SEND_TIMEOUT}")
    case = next(c for c in CASES if c.name == "proxy-send-timeout/504")
    world.load(case)
    wait_until(lambda: world.send(case.expects[1]).status == 200, timeout=20)
    part, parts, pause = 64 << 10, 3, 2.0

    def body() -> Iterator[bytes]:
        for i in range(parts):
            if i:
                time.sleep(pause)
            yield b"x" * part

    conn = http.client.HTTPConnection("127.0.0.1", world.controller.http_port, timeout=30)
    try:
        started = time.monotonic()
        headers = {
            "Host": "send-fine.bar.com",
            "Accept": "application/json",
            "Content-Length": str(part * parts),
        }
        conn.request("POST", "/slow", body=body(), headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        took = time.monotonic() - started
    finally:
        conn.close()
    assert resp.status == 200, (resp.status, data[:200])
    seen = json.loads(data)
    assert seen["body_length"] == part * parts, seen
    assert took >= (parts - 1) * pause, f"the upload took {took:.1f}s: its pauses were not kept"


def test_basic_auth_without_a_realm(annotation_world: AnnotationWorld) -> None:
    """auth-type basic without auth-realm: ingress-nginx's `auth_basic ""`, so the challenge is
    `Basic realm=""` (HAProxy's `auth realm` refuses an empty realm: the frontend answers that
    401 by itself; before, such an Ingress failed the whole configuration). Traefik's
    basicAuth puts its default realm in place of an empty one: the documented partial of
    auth-realm there."""
    world = annotation_world
    if BASIC_AUTH not in world.features:
        pytest.skip(f"the {world.backend} backend does not declare {BASIC_AUTH}")
    base = next(c for c in CASES if c.name == "auth-type/basic")
    annotations = {"auth-type": "basic", "auth-secret": "basic-auth"}
    case = AnnotationCase(
        "auth-type/basic without auth-realm",
        "ingress-nginx's template: auth_basic with the realm annotation's value, empty when unset",
        (ingress("auth", "auth.foo.com", "/", annotations=annotations),),
        (base.expects[4],),
        objects=base.objects,
    )
    world.load(case)
    wait_until(lambda: world.send(base.expects[4]).status == 200, timeout=20)
    challenge = 'Basic realm="traefik"' if world.backend == "traefik" else 'Basic realm=""'
    resp = world.send(Expect("auth.foo.com", "/", status=401))
    assert resp.status == 401, resp
    assert resp.headers.get("www-authenticate") == challenge, resp.headers
