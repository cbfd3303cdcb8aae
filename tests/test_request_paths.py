"""The request-path rule (core/pipeline/requestpath.py), stated once, held live on every proxy.

``normalize_request_path`` says what a raw request target becomes before matching (or 400);
a bounded fuzz of hostile paths (dot segments, encoded dots, encoded
unreserved characters, encoded slashes and backslashes, runs of slashes) are sent through
each real proxy, which must pick the Service the model picks for the normalized path and
forward exactly that path (the shared PATH_CASES run in the conformance suite,
polyingress.testing.conformance). The few places where a proxy cannot follow the rule are pinned
down per backend in ``KNOWN_DIFFERENCES`` (and listed in the README).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit import backend_param

from polyingress.core import (
    BuildOptions,
    ObjectStore,
    RouteModel,
    build_model,
    normalize_request_path,
)
from polyingress.testing.cases import model_answer, service_of, world
from polyingress.testing.conformance import LiveWorld


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/x/../admin/x", "/admin/x"),
        ("/a/b/../../c", "/c"),
        ("/../a", "/a"),
        ("/..", "/"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/a/./b", "/a/b"),
        ("/a/../", "/"),
        ("/%2e%2E/a", "/a"),
        ("/x/%2e%2e/a", "/a"),
        ("/%61dmin", "/admin"),
        ("/a/%7euser", "/a/~user"),
        ("/a%2db%5fc%2E", "/a-b_c."),
        ("/a%3bb", "/a%3Bb"),
        ("/a%c3%a9", "/a%C3%A9"),
        ("/a%20b", "/a%20b"),
        ("/a%25b", "/a%25b"),
        ("//a///b//", "/a/b/"),
        ("/a//../b", "/b"),
        ("/a?q=%2F&r=/../x", "/a?q=%2F&r=/../x"),
        ("/a?", "/a?"),
        ("/a%2Fb", None),
        ("/a%2fb", None),
        ("/a%5Cb", None),
        ("/a%5cb", None),
        ("/a%00", None),
        ("/a\\b", None),
        ("/a%zz", None),
        ("/a%2", None),
        ("/a%", None),
        ("a/b", None),
        ("", None),
    ],
)
def test_normalize_request_path(target: str, expected: str | None) -> None:
    assert normalize_request_path(target) == expected


def test_normalizing_twice_changes_nothing() -> None:
    for target in ["/x/../%61dmin//y/./", "/a/b/..", "/%7e/%2e/b", "/a%3bb?x=/../"]:
        once = normalize_request_path(target)
        assert once is not None
        assert normalize_request_path(once) == once


# -- live, every backend ------------------------------------------------------------------------


def climbs_above_root(target: str) -> bool:
    """A '..' (plain or encoded) that would leave the root."""
    path = target.partition("?")[0].replace("%2e", ".").replace("%2E", ".")
    depth = 0
    for segment in path.split("/")[1:]:
        if segment == "..":
            if depth == 0:
                return True
            depth -= 1
        elif segment not in (".", ""):
            depth += 1
    return False


def ends_in_dot_segment(target: str) -> bool:
    last = target.partition("?")[0].rsplit("/", 1)[-1].lower().replace("%2e", ".")
    return last in (".", "..")


def expected_path(backend: str, target: str) -> str | None:
    """What ``backend`` makes of ``target``: the rule, with its documented differences.

    * nginx refuses a '..' above the root with 400 in its request parser, before any
      configuration applies (the rule drops it).
    * Traefik cleans a path ending in a dot segment without its trailing slash (``/a/b/..``
      becomes ``/a``, the rule says ``/a/``).
    * Traefik refuses an encoded slash, backslash or NUL only if it is still there after the
      dot segments are removed (``/a%2Fb/../c`` becomes ``/c``; the rule says 400).
    """
    normalized = normalize_request_path(_traefik_order(target) if backend == "traefik" else target)
    if normalized is None:
        return None
    if backend == "nginx" and climbs_above_root(target):
        return None
    path, sep, query = normalized.partition("?")
    if backend == "traefik" and ends_in_dot_segment(target) and path != "/":
        path = path.rstrip("/")
    return path + sep + query


_HIDDEN = {"%2F": "\x01", "%2f": "\x02", "%5C": "\x03", "%5c": "\x04", "%00": "\x05", "\\": "\x06"}


def _traefik_order(target: str) -> str:
    """Traefik removes dot segments before it looks for refused encodings: the rule applied in
    that order (refused encodings hidden from the normalization, then put back)."""
    path, sep, query = target.partition("?")
    for code, mark in _HIDDEN.items():
        path = path.replace(code, mark)
    cleaned = normalize_request_path(path + sep + query)
    if cleaned is None:
        return target
    for code, mark in _HIDDEN.items():
        cleaned = cleaned.replace(mark, code)
    return cleaned


KNOWN_DIFFERENCES = [
    # (backend, target, what it gets, the rule's answer)
    ("nginx", "/../foo/x", "400", "svc-foo"),
    ("nginx", "/%2e%2e/foo/x", "400", "svc-foo"),
    ("traefik", "/foo/bar/..", "svc-exact", "svc-foo"),
    ("traefik", "/x%2Fy/../foo/x", "svc-foo", "400"),
]


@pytest.fixture(
    scope="module", params=[backend_param(n) for n in ("nginx", "haproxy", "traefik", "caddy")]
)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveWorld]:
    w = LiveWorld(request.param, tmp_path_factory.mktemp(f"paths-{request.param}"))
    yield w
    w.stop()


def _model() -> RouteModel:
    store = ObjectStore()
    store.replace_many(upserts=world(8080), deletes=())
    return build_model(store.snapshot(), BuildOptions()).model


MODEL = _model()


def check(live: LiveWorld, host: str, target: str, scheme: str = "http") -> None:
    """The proxy answers ``target`` as the model answers the backend's normalized path, and
    the Service receives exactly that path."""
    backend = live.controller.backend
    normalized = expected_path(backend, target)
    want = "400" if normalized is None else model_answer(MODEL, scheme, host, normalized)
    resp = live.controller.get(host, target, scheme=scheme)
    if want.isdigit():
        assert str(resp.status) == want, (backend, target, resp.status, resp.server_name)
        return
    assert resp.status == 200, (backend, target, resp.status)
    assert resp.server_name is not None
    service = MODEL.backend(want).service
    assert service_of(resp.server_name) == service, (backend, target, resp.server_name)
    assert resp.json()["uri"] == normalized, (backend, target, "the Service gets the matched path")


@pytest.mark.live
@pytest.mark.parametrize(("backend", "target", "got", "rule"), KNOWN_DIFFERENCES)
def test_known_differences_are_exactly_these(
    live: LiveWorld, backend: str, target: str, got: str, rule: str
) -> None:
    """Each documented difference holds on its backend, and only there."""
    resp = live.controller.get("app.example.com", target)
    answer = str(resp.status) if resp.status != 200 else service_of(resp.server_name or "")
    assert answer == (got if live.controller.backend == backend else rule), target


SEGMENTS = [
    "foo", "bar", "Case", "trail", "x", "", ".", "..", "%2e", "%2E%2e", ".%2e",
    "%66oo", "b%61r", "%7e", "a%20b", "%2F", "%2f", "%5C", "a%5cb", "%00", "%zz",
]  # fmt: skip

targets = st.builds(
    lambda segments, query: "/" + "/".join(segments) + query,
    st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=6),
    st.sampled_from(["", "?q=1", "?a=%2F&b=/../x"]),
)


@pytest.mark.live
@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(target=targets)
def test_fuzzed_paths_reach_what_the_model_says(live: LiveWorld, target: str) -> None:
    check(live, "app.example.com", target)


def test_expected_path_applies_the_documented_differences_only() -> None:
    assert expected_path("haproxy", "/../a") == "/a"
    assert expected_path("nginx", "/../a") is None
    assert expected_path("nginx", "/a/../b") == "/b"
    assert expected_path("traefik", "/a/b/..") == "/a"
    assert expected_path("haproxy", "/a/b/..") == "/a/"
    assert expected_path("traefik", "/..") == "/"
    assert expected_path("traefik", "/a%2Fb/../c") == "/c"
    assert expected_path("traefik", "/a%2Fb/c") is None
    assert expected_path("haproxy", "/a%2Fb/../c") is None
