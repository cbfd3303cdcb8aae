"""HAProxy serves session affinity changes through the Runtime API (issue 16 point 3): once
the running configuration reads the cookie's name, turning affinity on and off and changing
the cookie's attributes are routes-map data, with no reload; affinity keeps working. And
proxy-connect-timeout, a slot section of its own: a new value reloads once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from livekit import needs

from polyingress.testing.annotation_cases import (
    BLACKHOLE,
    STICKY,
    AnnotationCase,
    Expect,
    Sticky,
    ingress,
)
from polyingress.testing.annotation_live import AnnotationWorld
from polyingress.testing.live import metric, wait_until

pytestmark = [pytest.mark.live, needs("haproxy")]

HOST = "runtime-sticky.foo.com"


def _case(name: str, annotations: dict[str, str], sticky: tuple[Sticky, ...]) -> AnnotationCase:
    ing = ingress("sticky", HOST, "/", STICKY[0], annotations=annotations)
    return AnnotationCase(name, "runtime changes", (ing,), (), sticky=sticky)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnnotationWorld]:
    w = AnnotationWorld("haproxy", tmp_path_factory.mktemp("haproxy-affinity"))
    try:
        yield w
    finally:
        w.stop()


def _reloads(world: AnnotationWorld) -> float:
    return metric(world.controller.metrics(), "polyingress_haproxy_reloads_total")


def test_affinity_changes_go_through_the_runtime_api(world: AnnotationWorld) -> None:
    on = {"affinity": "cookie", "session-cookie-name": "SERVERID"}
    world.check(_case("on", on, (Sticky(HOST, "/", "SERVERID", attributes=("Path=/",)),)))
    before = _reloads(world)
    longer = {**on, "session-cookie-max-age": "100", "session-cookie-path": "/app"}
    world.check(
        _case("attributes", longer, (Sticky(HOST, "/", "SERVERID", ("Max-Age=100", "Path=/app")),))
    )
    off = _case("off", {}, ())
    world.load(off)
    wait_until(lambda: not world.controller.get(HOST, "/").header_values("set-cookie"), timeout=20)
    world.check(_case("on again", on, (Sticky(HOST, "/x", "SERVERID"),)))
    assert _reloads(world) == before, "an affinity change reloaded HAProxy"


def _connect(name: str, fine: str | None) -> AnnotationCase:
    """connect.bar.com: an endpoint that never accepts, 1 s; connect-fine.bar.com: the echo
    Service, with proxy-connect-timeout ``fine`` (None: without the annotation)."""
    slow = ingress(
        "connect", "connect.bar.com", "/", BLACKHOLE[0], annotations={"proxy-connect-timeout": "1"}
    )
    kept = {"proxy-connect-timeout": fine} if fine is not None else {}
    ok = ingress("fine", "connect-fine.bar.com", "/", annotations=kept)
    expects = (
        Expect("connect.bar.com", "/", status=504, within=15.0),
        Expect("connect-fine.bar.com", "/x", "echo"),
    )
    return AnnotationCase(name, "runtime changes", (slow, ok), expects)


def test_connect_timeouts_are_slot_sections_a_new_value_reloads_once(
    world: AnnotationWorld,
) -> None:
    """HAProxy 2.6 has no per-request connect timeout: rows with proxy-connect-timeout go to a
    slot backend of their own with that `timeout connect` (rows.connect_name). Its 503 of a
    connection never accepted answers 504; a new value reloads once, the same values and
    rows without the annotation are run-time changes."""
    world.check(_connect("connect 1s", "1"))
    before = _reloads(world)
    world.check(_connect("connect 2s", "2"))
    assert _reloads(world) == before + 1, "a new connect timeout is one reload"
    world.check(_connect("connect 2s again", "2"))
    world.check(_connect("no annotation", None))
    assert _reloads(world) == before + 1, "no new connect timeout, no reload"
