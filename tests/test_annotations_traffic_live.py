"""HAProxy serves session affinity changes through the Runtime API (issue 16 point 3): once
the running configuration reads the cookie's name, turning affinity on and off and changing
the cookie's attributes are routes-map data, with no reload; affinity keeps working."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from livekit import needs

from polyingress.testing.annotation_cases import STICKY, AnnotationCase, Sticky, ingress
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
