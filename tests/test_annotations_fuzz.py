"""Hostile values for every annotation: parsing never fails otherwise than with a problem naming
the key, and whatever is accepted reaches the model only in the characters each field allows
(no quote, brace, semicolon, backslash, '$' but a capture reference, control or non-ASCII
character: nothing a proxy's configuration language could read as syntax)."""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass
from typing import Any

import pytest
from hostile import NASTY, hostile_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polyingress.core import BuildOptions, ObjectStore, build_model
from polyingress.core.pipeline.annotations import NGINX_PREFIX, REGISTRY, parse_annotations
from polyingress.core.pipeline.model import ObjectRef, Route
from polyingress.core.pipeline.problems import Severity
from polyingress.core.pipeline.regexpath import check_common_regex
from polyingress.testing.annotation_cases import base_objects, ingress, secret

REF = ObjectRef(kind="Ingress", namespace="default", name="web")
# A valid value per annotation: hostile text is added around it, so that the fuzzing also
# explores values close to being accepted.
VALID = {
    "rewrite-target": "/new/$1",
    "app-root": "/app",
    "permanent-redirect": "https://example.com/x",
    "temporal-redirect": "http://example.com:8080/",
    "upstream-vhost": "up.example.com",
    "x-forwarded-prefix": "/p",
    "canary-by-header": "X-Canary",
    "canary-by-header-value": "yes",
    "canary-by-header-pattern": "^(v[0-9]+|lab)$",
    "server-alias": "a.example.com,*.b.example.com",
    "whitelist-source-range": "10.0.0.0/8,192.168.1.1",
    "cors-allow-origin": "https://a.example.com",
    "proxy-body-size": "8m",
    "proxy-read-timeout": "60",
    "canary-weight": "10",
    "custom-headers": "ns/headers",
    "auth-realm": "Protected area",
    "allowlist-source-range": "10.0.0.0/8,::1",
    "denylist-source-range": "10.1.0.0/16",
    "limit-rps": "10",
    "limit-connections": "5",
    "auth-type": "basic",
    "auth-secret": "users",
}
# Characters no accepted value may hold (a capture reference $1-$9 excepted).
_UNSAFE = re.compile(r"[^\x20-\x7e]|[\"'`{};\\#<>|]")


def values(value: Any) -> list[str]:
    """Every string in a parsed value (tuples, dataclasses, nested)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, tuple | list):
        return [s for v in value for s in values(v)]
    if is_dataclass(value) and not isinstance(value, type):
        return [s for f in fields(value) for s in values(getattr(value, f.name))]
    return []


# A regular expression (canary-by-header-pattern) needs { } | \ $: each backend writes it
# quoted as a regex (nginx quote, haproxy.cfg cfg_word, Traefik literal); it holds none of
# the characters that end or comment a word, and is in the common subset.
_UNSAFE_REGEX = re.compile(r"[^\x21-\x7e]|[\"'`;#<>,!@%]")
_REGEXES = frozenset({"canary-by-header-pattern"})


def assert_safe(text: str, where: str) -> None:
    if where.split("=", 1)[0].rsplit("/", 1)[-1] in _REGEXES:
        bad = _UNSAFE_REGEX.search(text)
        assert bad is None, f"{where}: {text!r} holds {bad.group()!r}"
        check_common_regex(text)
        return
    bad = _UNSAFE.search(text)
    assert bad is None, f"{where}: {text!r} holds {bad.group()!r}"
    assert "$" not in re.sub(r"\$[1-9]", "", text), f"{where}: {text!r} holds '$'"


def value_strategy(name: str) -> st.SearchStrategy[str]:
    near = st.builds(
        lambda a, b, c: a + b + c,
        hostile_text(8),
        st.just(VALID.get(name, "true")),
        hostile_text(8),
    )
    valid = VALID.get(name, "true")
    # One hostile character put anywhere in a valid value: the likeliest escape.
    spliced = st.builds(
        lambda i, c: valid[:i] + c + valid[i:],
        st.integers(0, len(valid)),
        st.sampled_from(NASTY),
    )
    return st.one_of(hostile_text(), near, spliced, st.text(max_size=30))


@pytest.mark.parametrize("name", sorted(REGISTRY))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_is_parsed_or_refused_naming_the_key(name: str, data: st.DataObject) -> None:
    value = data.draw(value_strategy(name))
    for prefix in ("polyingress.io", NGINX_PREFIX):
        key = f"{prefix}/{name}"
        parsed, problems = parse_annotations(REF, {key: value})
        if name in parsed.values:
            assert not [p for p in problems if p.severity is Severity.ERROR]
            for text in values(parsed.values[name]):
                if name != "session-cookie-name":  # never served
                    assert_safe(text, key)
        else:
            assert problems and all(key in p.field for p in problems)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_hostile_character_anywhere_in_a_valid_value(name: str) -> None:
    """Exhaustive: each hostile character at each position of a valid value."""
    valid = VALID.get(name, "true")
    for i in range(len(valid) + 1):
        for c in NASTY:
            value = valid[:i] + c + valid[i:]
            parsed, problems = parse_annotations(REF, {f"{NGINX_PREFIX}/{name}": value})
            if name in parsed.values:
                if name != "session-cookie-name":
                    for text in values(parsed.values[name]):
                        assert_safe(text, f"{name}={value!r}")
            else:
                assert problems, value


def strings_of(route: Route) -> list[str]:
    out = [route.path]
    for part in (route.rewrite, route.redirect, route.request_headers, route.response_headers):
        out += values(part)
    policy = route.policy
    if policy is not None:
        # (a user's hash is not text of the annotations: the core accepts bcrypt and md5-crypt
        # only, of [./A-Za-z0-9$])
        out += values(policy.sources) + values(policy.rate)
        if policy.auth is not None:
            out += [policy.auth.realm, *(u for u, _h in policy.auth.users)]
    out += values(route.headers)
    return out


_TRANSLATED = (
    "rewrite-target",
    "app-root",
    "permanent-redirect",
    "temporal-redirect",
    "upstream-vhost",
    "x-forwarded-prefix",
    "canary-by-header",
    "canary-by-header-value",
    "server-alias",
    "allowlist-source-range",
    "denylist-source-range",
    "proxy-body-size",
    "limit-rps",
    "limit-connections",
    "auth-type",
    "auth-secret",
    "auth-realm",
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    annotations=st.dictionaries(
        st.sampled_from(_TRANSLATED),
        st.one_of(*(value_strategy(n) for n in _TRANSLATED)),
        max_size=4,
    ),
    canary=st.booleans(),
    regex=st.booleans(),
    path=st.one_of(st.just("/api(/|$)(.*)"), st.just("/api/(.*)"), hostile_text(12)),
)
def test_hostile_annotations_reject_one_ingress_or_reach_the_model_safe(
    annotations: dict[str, str], canary: bool, regex: bool, path: str
) -> None:
    ann = dict(annotations)
    if regex:
        ann["use-regex"] = "true"
    extra = {"rewrite-target": "/x"} if "x-forwarded-prefix" in ann else {}
    main = ingress("main", "a.example.com", "/api", annotations={**extra, **ann})
    fuzzed = ingress(
        "fuzzed",
        "a.example.com",
        "/" + path.lstrip("/") if not regex else path,
        "canary",
        path_type="ImplementationSpecific",
        annotations={**ann, **({"canary": "true"} if canary else {})},
        created="2026-01-02T00:00:00Z",
    )
    bystander = ingress("bystander", "b.example.com", "/", "other")
    store = ObjectStore()
    users = secret("users", auth="foo:$1$jxFc39BW$IjVCeU1/bC99sGYDmd4Ec0\n")
    store.replace_many([*base_objects(8080), main, fuzzed, bystander, users], ())
    result = build_model(store.snapshot(), BuildOptions(https_port=8443))
    assert "bystander" in {r.name for r in result.served}
    assert result.model.answer("b.example.com", "/").proxied
    for vhost in result.model.vhosts:
        if vhost.host is not None:
            assert_safe(vhost.host, "host")
        for route in vhost.routes:
            for text in strings_of(route):
                assert_safe(text, f"{vhost.host} {route.path}")
    for target in ("/", "/api", "/api/x?y=1"):
        for client in ("10.0.0.1", "::1"):
            result.model.answer(
                "a.example.com", target, headers=(("x-canary", "always"),), client=client
            )
