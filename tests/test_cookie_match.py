"""Cookie matches (canary-by-cookie): the core's rule (Request.cookie: the first pair of that
name, case-sensitive) and the regular expressions nginx, HAProxy and Traefik are given for it,
compared on generated Cookie headers. nginx and HAProxy use PCRE, Traefik RE2; Python's ``re``
reads all three once ``[[:blank:]]`` is spelled ``[ \\t]`` (it has no POSIX classes), and none
uses a construct the three read differently (the Traefik one has no look-ahead at all)."""

from __future__ import annotations

import random
import re

import pytest

from polyingress.core.pipeline.model import Request
from polyingress.plugins.haproxy.rows import cookie_regex as haproxy_regex
from polyingress.plugins.nginx.gateway import cookie_regex as nginx_regex
from polyingress.plugins.traefik.render import cookie_regex as traefik_regex

NAMES = ("c", "Canary-By-Cookie", "a.b", "x~y_z", "ab")
PIECES = ("c", "C", "Canary-By-Cookie", "canary-by-cookie", "a.b", "aXb", "x~y_z", "ab", "a")
VALUES = ("always", "never", "", "alwaysx", "al ways", "1")


def _posix(regex: str) -> str:
    return regex.replace("[:blank:]", " \\t")


def _header(rnd: random.Random) -> str:
    pairs = []
    for _ in range(rnd.randint(0, 4)):
        name = rnd.choice(PIECES)
        pad = rnd.choice(("", " ", "\t", "  "))
        end = rnd.choice(("", " "))
        if rnd.random() < 0.15:
            pairs.append(pad + name + end)  # no '=': not a cookie
        else:
            pairs.append(f"{pad}{name}{rnd.choice(('=', ' =', '= '))}{rnd.choice(VALUES)}{end}")
    return ";".join(pairs)


def _haproxy_holds(name: str, value: str, header: str) -> bool:
    # regsub(regex, " \1"): the header itself when the regex does not match (it never starts
    # with a space: HAProxy trims header values).
    got = re.sub(_posix(haproxy_regex(name)), r" \1", header.strip(" \t"), count=1)
    return got == " " + value


@pytest.mark.parametrize("seed", range(4))
def test_regexes_agree_with_the_core(seed: int) -> None:
    rnd = random.Random(seed)
    checked = 0
    for _ in range(1500):
        header = _header(rnd)
        request = Request(headers=(("cookie", header),))
        for name in NAMES:
            for value in ("always", "never", "1"):
                want = request.cookie(name) == value
                assert bool(re.search(_posix(nginx_regex(name, value)), header)) == want, header
                assert bool(re.search(_posix(traefik_regex(name, value)), header)) == want, header
                assert _haproxy_holds(name, value, header) == want, (name, value, header)
                checked += want
    assert checked > 100  # the generator makes matching headers too


def test_the_core_reads_the_first_pair_of_that_exact_name() -> None:
    def cookie(header: str, name: str) -> str | None:
        return Request(headers=(("Cookie", header),)).cookie(name)

    assert cookie("a=1; c=always; c=never", "c") == "always"
    assert cookie("C=never; c=always", "c") == "always"
    assert cookie("c; c=x", "c") == "x"
    assert cookie(" c=v \t", "c") == "v"
    assert cookie("c =v", "c") is None
    assert Request().cookie("c") is None


@pytest.mark.parametrize("bad", ["a b", "a;b", "a`b", "a$b", "a\\b", ""])
def test_only_cookie_tokens_reach_a_traefik_rule(bad: str) -> None:
    with pytest.raises(ValueError):
        traefik_regex(bad, "always")
    with pytest.raises(ValueError):
        haproxy_regex(bad)
