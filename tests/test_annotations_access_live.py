"""Source ranges where a backend has a mode or a runtime path of its own: nginx with static
upstreams (a 503 answered after the access phase) and HAProxy, whose list edits are Runtime API
changes, never a reload: a row whose only policy is its lists gets a slot of its own whose map
file says which networks are refused (rows.sources_name; a new list is a new slot, its map filled
with ``add map`` before the route points at it); a row that also asks for basic authentication keeps
them in its record, where a prefix length no rendered rule compares yet reloads once."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from livekit import metric, needs

from polyingress.testing.annotation_cases import (
    CASES,
    AnnotationCase,
    Expect,
    basic,
    ingress,
    secret,
)
from polyingress.testing.annotation_live import AnnotationWorld

pytestmark = pytest.mark.live

SOURCE_CASES = [c for c in CASES if "source-range" in c.name]
INSIDE, OUTSIDE = "127.0.92.5", "127.0.93.5"


@pytest.fixture(scope="module")
def static_nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnnotationWorld]:
    world = AnnotationWorld(
        "nginx", tmp_path_factory.mktemp("static-nginx"), extra=["--nginx-lua", "off"]
    )
    yield world
    world.stop()


@needs("nginx")
@pytest.mark.parametrize("case", SOURCE_CASES, ids=str)
def test_source_ranges_on_nginx_static_upstreams(
    static_nginx: AnnotationWorld, case: AnnotationCase
) -> None:
    static_nginx.check(case)


@pytest.fixture(scope="module")
def haproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnnotationWorld]:
    world = AnnotationWorld("haproxy", tmp_path_factory.mktemp("haproxy-access"))
    yield world
    world.stop()


def _reloads(world: AnnotationWorld) -> float:
    return metric(world.controller.metrics(), "polyingress_haproxy_reloads_total")


def _lists(
    name: str, expects: tuple[Expect, ...], *, auth: bool = False, **annotations: str
) -> AnnotationCase:
    more = {"auth-type": "basic", "auth-secret": "basic-auth", "auth-realm": "r"} if auth else {}
    return AnnotationCase(
        name,
        "polyingress: HAProxy changes source ranges at run time",
        (
            ingress(
                "acl",
                "acl.foo.com",
                "/",
                annotations={**more, **{k.replace("_", "-"): v for k, v in annotations.items()}},
            ),
        ),
        expects,
        objects=(secret("basic-auth", auth=f"foo:{BCRYPT}\n"),) if auth else (),
    )


# bcrypt (cost 4) of "open sesame"
BCRYPT = "$2y$04$ABePdTwGq2Ow5BWZLO12LeTnPGEdBjwulNqW2nfVWdcnMNqAEc.Pu"


def _refusing(world: AnnotationWorld) -> dict[str, list[str]]:
    """The source maps of the running HAProxy that refuse someone: file -> refused networks."""
    maps = Path(world.workdir) / "work" / "sources"
    found = {p.name: p.read_text().split("\n") for p in sorted(maps.glob("*.map"))}
    return {
        name: [line.split(" ")[0] for line in lines if line.endswith(" 1")]
        for name, lines in found.items()
        if any(line.endswith(" 1") for line in lines)
    }


@needs("haproxy")
def test_haproxy_list_edits_need_no_reload(haproxy: AnnotationWorld) -> None:
    """Allow a network, move it, add a denied address, drop every list, deny a /16, allow a
    /20, move it: each is served as the core says and HAProxy never reloads, whatever the
    prefix length (each list is the ACL file of the row's own slot); exactly one slot refuses
    someone while the row has lists, none once it has none."""
    first = _lists(
        "allow-92",
        (
            Expect("acl.foo.com", "/", "echo", source=INSIDE),
            Expect("acl.foo.com", "/", status=403, source=OUTSIDE),
        ),
        allowlist_source_range="127.0.92.0/24",
    )
    routine = [
        _lists(
            "allow-93-deny-one",
            (
                Expect("acl.foo.com", "/", status=403, source=INSIDE),
                Expect("acl.foo.com", "/", "echo", source=OUTSIDE),
                Expect("acl.foo.com", "/", status=403, source="127.0.93.7"),
            ),
            allowlist_source_range="127.0.93.0/24",
            denylist_source_range="127.0.93.7",
        ),
        _lists(
            "open",
            (
                Expect("acl.foo.com", "/", "echo", source=INSIDE),
                Expect("acl.foo.com", "/", "echo", source="127.0.93.7"),
            ),
        ),
        _lists(
            "deny-16",
            (
                Expect("acl.foo.com", "/", "echo", source=INSIDE),
                Expect("acl.foo.com", "/", status=403, source="127.7.0.1"),
            ),
            denylist_source_range="127.7.0.0/16",
        ),
        _lists(
            "allow-80-20",
            (
                Expect("acl.foo.com", "/", "echo", source="127.0.95.1"),
                Expect("acl.foo.com", "/", status=403, source="127.0.96.1"),
            ),
            allowlist_source_range="127.0.80.0/20",
        ),
        _lists(
            "allow-96-20",
            (
                Expect("acl.foo.com", "/", status=403, source="127.0.95.1"),
                Expect("acl.foo.com", "/", "echo", source="127.0.96.1"),
            ),
            allowlist_source_range="127.0.96.0/20",
        ),
    ]
    haproxy.check(first)
    reloads = _reloads(haproxy)
    for case in routine:
        haproxy.check(case)
        assert _reloads(haproxy) == reloads, f"{case} reloaded HAProxy:\n{haproxy.controller.log()}"
        refusing = _refusing(haproxy)
        if case.name == "open":
            assert refusing == {}, refusing
        else:
            assert len(refusing) == 1, refusing
    (networks,) = _refusing(haproxy).values()
    refused = [ipaddress.ip_network(n) for n in networks]
    assert not any(ipaddress.ip_address("127.0.96.1") in n for n in refused), networks
    assert any(ipaddress.ip_address("127.0.95.1") in n for n in refused), networks


@needs("haproxy")
def test_haproxy_lists_with_basic_auth_stay_in_the_record(haproxy: AnnotationWorld) -> None:
    """With basic authentication (403 before 401, asked in the frontend) the lists are the
    row's record entries: a prefix length no rendered rule compares (/21) reloads once, then
    lists of that length are data too."""
    creds = (basic("foo", "open sesame"),)
    haproxy.check(
        _lists(
            "auth-allow-92",
            (
                Expect("acl.foo.com", "/", status=401, source=INSIDE),
                Expect("acl.foo.com", "/", "echo", source=INSIDE, headers=creds),
                Expect("acl.foo.com", "/", status=403, source=OUTSIDE, headers=creds),
            ),
            auth=True,
            allowlist_source_range="127.0.92.0/24",
        )
    )
    reloads = _reloads(haproxy)
    assert _refusing(haproxy) == {}
    haproxy.check(
        _lists(
            "auth-allow-88-21",
            (
                Expect("acl.foo.com", "/", "echo", source="127.0.88.1", headers=creds),
                Expect("acl.foo.com", "/", status=403, source="127.0.96.1", headers=creds),
            ),
            auth=True,
            allowlist_source_range="127.0.88.0/21",
        )
    )
    assert _reloads(haproxy) == reloads + 1
    assert "source range lengths IPv4 /21" in haproxy.controller.log(tail=None)
    haproxy.check(
        _lists(
            "auth-allow-96-21",
            (
                Expect("acl.foo.com", "/", status=403, source="127.0.88.1", headers=creds),
                Expect("acl.foo.com", "/", "echo", source="127.0.96.1", headers=creds),
            ),
            auth=True,
            allowlist_source_range="127.0.96.0/21",
        )
    )
    assert _reloads(haproxy) == reloads + 1


def _chunked_case(status: int, service: str | None) -> AnnotationCase:
    return AnnotationCase(
        "proxy-body-size/chunked",
        "nginx's client_max_body_size counts a chunked body as it arrives",
        (ingress("small", "body.foo.com", "/", annotations={"proxy-body-size": "1k"}),),
        (
            Expect(
                "body.foo.com",
                "/",
                service,
                status=status,
                method="POST",
                body_size=50_000,
                chunked=True,
                path_seen="/",
            ),
            Expect("body.foo.com", "/", "echo", method="POST", body_size=1000, chunked=True),
        ),
    )


@needs("nginx")
def test_a_chunked_body_above_the_size_gets_413_on_nginx(static_nginx: AnnotationWorld) -> None:
    static_nginx.check(_chunked_case(413, None))


@needs("haproxy")
def test_a_chunked_body_above_the_size_is_proxied_on_haproxy(haproxy: AnnotationWorld) -> None:
    """The documented partial (README matrix, proxy-body-size): HAProxy compares the
    Content-Length only; a chunked body has none."""
    haproxy.check(_chunked_case(200, "echo"))


@needs("haproxy")
def test_haproxy_limit_edits_need_no_reload(haproxy: AnnotationWorld) -> None:
    """Rate limits and body sizes are record fields: editing them is Runtime API data."""
    reloads = _reloads(haproxy)
    for rps, size, big in (("100", "1k", 2000), ("200", "4k", 5000), ("300", "1k", 2000)):
        haproxy.check(
            _lists(
                f"limits-{rps}-{size}",
                (
                    Expect("acl.foo.com", "/", "echo", method="POST", body_size=1000),
                    Expect("acl.foo.com", "/", status=413, method="POST", body_size=big),
                ),
                limit_rps=rps,
                proxy_body_size=size,
            )
        )
        assert _reloads(haproxy) == reloads, haproxy.controller.log()


def _pattern(name: str, patterns: dict[str, str], expects: tuple[Expect, ...]) -> AnnotationCase:
    """A main Ingress on acl.foo.com and one canary per (path, pattern) of ``patterns``."""
    ingresses = [ingress("acl", "acl.foo.com", "/")]
    for i, (path, pattern) in enumerate(sorted(patterns.items())):
        ingresses.append(ingress(f"acl-main-{i}", "acl.foo.com", path))
        ingresses.append(
            ingress(
                f"acl-canary-{i}",
                "acl.foo.com",
                path,
                "canary",
                annotations={
                    "canary": "true",
                    "canary-by-header": "X-Canary",
                    "canary-by-header-pattern": pattern,
                },
                created="2026-01-02T00:00:00Z",
            )
        )
    return AnnotationCase(
        name, "polyingress: HAProxy and canary-by-header-pattern", tuple(ingresses), expects
    )


@needs("haproxy")
def test_haproxy_pattern_edits_reload_only_for_a_new_regex(haproxy: AnnotationWorld) -> None:
    """A pattern is a line of haproxy.cfg (HAProxy 2.6 matches no regex read from a map or a
    variable): a new one reloads once; a canary moving to a pattern the configuration already
    reads, or dropping one, is routes-map data."""
    hit, miss = (("X-Canary", "v12"),), (("X-Canary", "x"),)
    two = {"/a": "^v[0-9]+$", "/b": "^x$"}
    haproxy.check(
        _pattern(
            "patterns-two",
            two,
            (
                Expect("acl.foo.com", "/a", "canary", headers=hit),
                Expect("acl.foo.com", "/a", "echo", headers=miss),
                Expect("acl.foo.com", "/b", "canary", headers=miss),
            ),
        )
    )
    reloads = _reloads(haproxy)
    swapped = {"/a": "^x$", "/b": "^v[0-9]+$"}
    haproxy.check(
        _pattern(
            "patterns-swapped",
            swapped,
            (
                Expect("acl.foo.com", "/a", "canary", headers=miss),
                Expect("acl.foo.com", "/a", "echo", headers=hit),
                Expect("acl.foo.com", "/b", "canary", headers=hit),
            ),
        )
    )
    assert _reloads(haproxy) == reloads, haproxy.controller.log()
    haproxy.check(
        _pattern(
            "patterns-new",
            {"/a": "^w", "/b": "^v[0-9]+$"},
            (
                Expect("acl.foo.com", "/a", "canary", headers=(("X-Canary", "wx"),)),
                Expect("acl.foo.com", "/a", "echo", headers=miss),
            ),
        )
    )
    assert _reloads(haproxy) == reloads + 1, haproxy.controller.log()
