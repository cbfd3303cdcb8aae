"""plugins/traefik/redirector.py: the Location of the 308, and what it refuses."""

from __future__ import annotations

import pytest

from polyingress.plugins.traefik.redirector import dial_url, redirect_location


@pytest.mark.parametrize(
    ("host", "target", "port", "location"),
    [
        ("a.example.com", "/", 8443, "https://a.example.com:8443/"),
        ("A.Example.COM:80", "/x/y?z=1&w", 8443, "https://a.example.com:8443/x/y?z=1&w"),
        ("a.example.com.", "/p", 443, "https://a.example.com/p"),
        ("a.example.com", "//evil.example/x", 443, "https://a.example.com//evil.example/x"),
        ("xn--bcher-kva.example", "/%0d%0a", 443, "https://xn--bcher-kva.example/%0d%0a"),
    ],
)
def test_location_keeps_path_and_query_on_the_request_host(
    host: str, target: str, port: int, location: str
) -> None:
    assert redirect_location(host, target, port) == location


@pytest.mark.parametrize(
    ("host", "target"),
    [
        (None, "/"),
        ("", "/"),
        ("a b.com", "/"),
        ("evil.com/x", "/"),
        ("a.com:80:80", "/"),
        ("[::1]:80", "/"),
        ("-a.com", "/"),
        ("a..com", "/"),
        ("a" * 64 + ".com", "/"),
        ("a.com", "http://evil.com/"),
        ("a.com", "*"),
        ("a.com", ""),
        ("a.com", "/a b"),
        ("a.com", "/a\r\nSet-Cookie: x"),
        ("a.com", "/" + "a" * 9000),
    ],
)
def test_unusable_host_or_target_gets_no_location(host: str | None, target: str) -> None:
    assert redirect_location(host, target, 443) is None


def test_wildcard_listen_address_is_dialled_on_loopback() -> None:
    assert dial_url("0.0.0.0", 10308) == "http://127.0.0.1:10308"
    assert dial_url("::", 1) == "http://[::1]:1"
    assert dial_url("10.1.2.3", 2) == "http://10.1.2.3:2"
