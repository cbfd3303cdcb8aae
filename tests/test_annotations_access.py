"""Access policies from ingress-nginx annotations in the core: source ranges (allowlist,
whitelist, denylist) on the route model, what RouteModel.answer says, and what a backend that
does not declare the feature gets (500, never an open door)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from polyingress.core import (
    BODY_SIZE,
    SOURCE_RANGES,
    Builder,
    BuildOptions,
    ObjectStore,
    RateLimit,
    RoutePolicy,
    SourceRanges,
    admitted_networks,
    build_model,
    diff,
)
from polyingress.core.pipeline.model import Outcome
from polyingress.core.pipeline.problems import Severity
from polyingress.testing.annotation_cases import NAMESPACE, base_objects, basic, ingress, secret

ECHO = f"{NAMESPACE}__echo__80"


def build(*ingresses: dict[str, Any], **opts: Any) -> Any:
    store = ObjectStore()
    store.replace_many([*base_objects(8080), *ingresses], ())
    return build_model(store.snapshot(), BuildOptions(**opts))


def test_allowlist_admits_its_networks_only() -> None:
    ing = ingress(
        "acl", "a.example.com", "/", annotations={"allowlist-source-range": "10.0.0.0/8, ::1"}
    )
    model = build(ing).model
    assert model.answer("a.example.com", "/x", client="10.1.2.3").backend == ECHO
    assert model.answer("a.example.com", "/x", client="::1").backend == ECHO
    refused = model.answer("a.example.com", "/x", client="192.168.0.1")
    assert (refused.outcome, refused.status) == (Outcome.REFUSED, 403)
    assert model.answer("a.example.com", "/x", client="::2").status == 403


def test_denylist_comes_before_the_allowlist() -> None:
    """ingress-nginx renders ``deny`` lines, then ``allow`` lines and ``deny all``."""
    ing = ingress(
        "acl",
        "a.example.com",
        "/",
        annotations={
            "allowlist-source-range": "10.0.0.0/8",
            "denylist-source-range": "10.9.0.0/16,10.0.0.1",
        },
    )
    model = build(ing).model
    assert model.answer("a.example.com", "/", client="10.1.0.1").proxied
    assert model.answer("a.example.com", "/", client="10.9.3.4").status == 403
    assert model.answer("a.example.com", "/", client="10.0.0.1").status == 403
    assert model.answer("a.example.com", "/", client="11.0.0.1").status == 403


def test_denylist_alone_refuses_its_networks_only() -> None:
    ing = ingress("acl", "a.example.com", "/", annotations={"denylist-source-range": "10.0.0.0/8"})
    model = build(ing).model
    assert model.answer("a.example.com", "/", client="10.0.0.9").status == 403
    assert model.answer("a.example.com", "/", client="11.0.0.9").proxied
    assert model.answer("a.example.com", "/", client="2001:db8::1").proxied


def test_allowlist_wins_over_its_old_name() -> None:
    ing = ingress(
        "acl",
        "a.example.com",
        "/",
        annotations={
            "allowlist-source-range": "10.0.0.0/8",
            "whitelist-source-range": "11.0.0.0/8",
        },
    )
    result = build(ing)
    assert result.model.answer("a.example.com", "/", client="10.0.0.1").proxied
    assert result.model.answer("a.example.com", "/", client="11.0.0.1").status == 403
    assert not result.problems


def test_the_policy_is_on_the_ingress_rows_only() -> None:
    """Another Ingress on the same host keeps its paths open; a redirect row answers first."""
    acl = ingress(
        "acl", "a.example.com", "/admin", annotations={"whitelist-source-range": "10.0.0.1"}
    )
    other = ingress("other", "a.example.com", "/", created="2026-01-02T00:00:00Z")
    moved = ingress(
        "moved",
        "b.example.com",
        "/",
        annotations={
            "whitelist-source-range": "10.0.0.1",
            "permanent-redirect": "https://c.example.com/",
        },
    )
    model = build(acl, other, moved).model
    assert model.answer("a.example.com", "/admin/x", client="10.0.0.2").status == 403
    assert model.answer("a.example.com", "/public", client="10.0.0.2").proxied
    assert model.answer("b.example.com", "/", client="10.0.0.2").status == 301


def test_a_refused_request_gets_403_before_503() -> None:
    """As ingress-nginx answers (its Lua balancer picks the endpoint after the access phase)."""
    ing = ingress(
        "acl", "a.example.com", "/", "missing", annotations={"whitelist-source-range": "10.0.0.1"}
    )
    model = build(ing).model
    assert model.answer("a.example.com", "/", client="10.0.0.1").status == 503
    assert model.answer("a.example.com", "/", client="10.0.0.2").status == 403


def test_a_canary_gets_the_main_ingress_policy() -> None:
    main = ingress("main", "a.example.com", "/", annotations={"whitelist-source-range": "10.0.0.1"})
    canary = ingress(
        "canary",
        "a.example.com",
        "/",
        "canary",
        annotations={
            "canary": "true",
            "canary-by-header": "x-canary",
            "whitelist-source-range": "0.0.0.0/0",
        },
        created="2026-01-02T00:00:00Z",
    )
    result = build(main, canary)
    model = result.model
    headers = (("x-canary", "always"),)
    assert model.answer("a.example.com", "/", headers=headers, client="10.0.0.2").status == 403
    answer = model.answer("a.example.com", "/", headers=headers, client="10.0.0.1")
    assert answer.backend == f"{NAMESPACE}__canary__80"
    assert [p.severity for p in result.problems] == []


def test_a_backend_without_the_feature_answers_500_never_opens() -> None:
    ing = ingress("acl", "a.example.com", "/", annotations={"denylist-source-range": "10.0.0.1"})
    result = build(ing, features=frozenset({"HTTPRoute"}), backend="tiny")
    assert result.model.answer("a.example.com", "/", client="10.0.0.2").status == 500
    (p,) = result.problems
    assert (p.severity, p.reason) == (Severity.ERROR, "UnsupportedValue")
    assert p.field == "metadata.annotations['nginx.ingress.kubernetes.io/denylist-source-range']"
    assert f"needs {SOURCE_RANGES}" in p.message
    served = build(ing, features=frozenset({"HTTPRoute", SOURCE_RANGES}), backend="full")
    assert not served.problems


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.0.0.0/33", "not a CIDR"),
        ("10.0.0.0/8 11.0.0.0/8", "not a CIDR"),
        ("all", "not a CIDR"),
        ("10.0.0.0/8;deny", "not a CIDR"),
        (",", "no CIDR given"),
    ],
)
def test_a_bad_range_rejects_the_ingress_naming_the_key(value: str, message: str) -> None:
    bad = ingress("bad", "a.example.com", "/", annotations={"denylist-source-range": value})
    good = ingress("good", "b.example.com", "/")
    result = build(bad, good)
    assert [r.name for r in result.rejected] == ["bad"]
    (p,) = result.problems
    assert p.field == "metadata.annotations['nginx.ingress.kubernetes.io/denylist-source-range']"
    assert message in p.message
    assert result.model.answer("b.example.com", "/").proxied
    assert result.model.answer("a.example.com", "/").status == 404


def test_admitted_networks_is_the_allowlist_without_the_denylist() -> None:
    ranges = SourceRanges(allow=("10.0.0.0/8", "2001:db8::/32"), deny=("10.128.0.0/9",))
    assert admitted_networks(ranges) == ("10.0.0.0/9", "2001:db8::/32")
    everything = admitted_networks(SourceRanges(deny=("0.0.0.0/1",)))
    assert everything == ("128.0.0.0/1", "::/0")
    assert admitted_networks(SourceRanges(allow=("10.0.0.1/32",), deny=("10.0.0.0/8",))) == ()


def test_source_ranges_are_normalized_and_state_their_feature() -> None:
    with pytest.raises(ValueError, match="normalized"):
        SourceRanges(allow=("10.0.0.1/8",))
    assert RoutePolicy(sources=SourceRanges(deny=("10.0.0.0/8",))).features == {SOURCE_RANGES}


def test_haproxy_source_entries_are_masked_addresses_in_hex() -> None:
    """The record entries HAProxy's ``src,ipmask(m4,m6),hex`` finds, and the lengths its
    rules compare (a family without a length keeps the whole address), for a row that keeps
    its lists in the frontend (basic authentication: 403 comes before 401). Without it the
    row is a slot of its own whose source map holds the lists (rows.sources_name)."""
    from polyingress.plugins.haproxy.rows import (
        FLAG_BITS,
        Shapes,
        slot_owner,
        source_verdicts,
        table_entries,
    )

    lists = {
        "allowlist-source-range": "2001:db8::/32, 10.0.0.1",
        "denylist-source-range": "10.0.0.1",
    }
    ing = ingress("acl", "a.example.com", "/", annotations={**AUTH, **lists})
    model = build(ing, secret("users", auth=f"foo:{BCRYPT}\n")).model
    shapes = Shapes.of(model)
    assert (32, 32, 32) in shapes.source_masks()  # IPv4 /32 and IPv6 /32: one rule
    assert (8, 128, 8) in shapes.source_masks()
    (vhost,) = model.vhosts
    entries = table_entries(vhost, "a.example.com", {ECHO: "slot_0001"}, shapes)
    sources = {k.split("|", 1)[1]: v for k, v in entries.items() if k.startswith("x") and "|s" in k}
    # 1 allowed, 2 denied, 3 both
    assert sources == {"s20010DB8000000000000000000000000/32": "1", "s0A000001/32": "3"}
    (record,) = [v for k, v in entries.items() if k.startswith("x") and "|" not in k]
    assert int(record.split("|")[5]) == sum(FLAG_BITS[c] for c in "sluB")

    plain = build(ingress("acl", "a.example.com", "/", annotations=lists)).model
    assert (32, 32, 32) not in Shapes.of(plain).source_masks()  # no rule for the slot way
    ((row,),) = [v.routes for v in plain.vhosts]
    owner = slot_owner(row)
    assert owner is not None and row.policy is not None and row.policy.sources is not None
    entries = table_entries(plain.vhosts[0], "a.example.com", {owner: "slot_0002"}, shapes)
    assert entries == {"^a.example.com/": "slot_0002"}
    verdicts = dict(source_verdicts(row.policy.sources))
    # 10.0.0.1 is both allowed and denied: refused, as all of IPv4; the IPv6 /32 is admitted
    assert verdicts["2001:db8::/32"] == "0" and verdicts["0.0.0.0/0"] == "1"


def test_body_size_413_above_it_before_the_source_ranges() -> None:
    ing = ingress(
        "up",
        "a.example.com",
        "/",
        annotations={"proxy-body-size": "1k", "allowlist-source-range": "10.0.0.0/8"},
    )
    free = ingress("free", "b.example.com", "/", annotations={"proxy-body-size": "0"})
    model = build(ing, free).model
    assert model.answer("a.example.com", "/", client="10.0.0.1", body_size=1024).proxied
    too_big = model.answer("a.example.com", "/", client="10.0.0.1", body_size=1025)
    assert (too_big.outcome, too_big.status) == (Outcome.REFUSED, 413)
    assert model.answer("a.example.com", "/", client="11.0.0.1", body_size=1025).status == 413
    assert model.answer("a.example.com", "/", client="11.0.0.1", body_size=1).status == 403
    assert model.answer("b.example.com", "/", body_size=1 << 40).proxied
    (row,) = [r for v in model.vhosts if v.host == "b.example.com" for r in v.routes]
    assert row.policy == RoutePolicy(max_body=0)
    assert row.policy.features == {BODY_SIZE}


def test_body_size_bad_values_reject_the_ingress() -> None:
    for value in ("8mb", "-1", "1.5m", "8 m"):
        result = build(ingress("bad", "a.example.com", "/", annotations={"proxy-body-size": value}))
        assert [r.name for r in result.rejected] == ["bad"], value
        (p,) = result.problems
        assert p.field == "metadata.annotations['nginx.ingress.kubernetes.io/proxy-body-size']"


# --- basic authentication ---------------------------------------------------------------------

BCRYPT = "$2y$04$ABePdTwGq2Ow5BWZLO12LeTnPGEdBjwulNqW2nfVWdcnMNqAEc.Pu"  # "open sesame"
MD5_CRYPT = "$1$jxFc39BW$IjVCeU1/bC99sGYDmd4Ec0"  # "open sesame"
AUTH = {"auth-type": "basic", "auth-secret": "users", "auth-realm": "staff only"}


def _auth_ingress(**extra: str) -> dict[str, Any]:
    return ingress("auth", "a.example.com", "/", annotations={**AUTH, **extra})


def test_basic_auth_401_without_a_password_of_the_secret() -> None:
    result = build(_auth_ingress(), secret("users", auth=f"foo:{BCRYPT}\nbar:{MD5_CRYPT}\n"))
    model = result.model
    assert not result.problems
    refused = model.answer("a.example.com", "/")
    assert (refused.outcome, refused.status) == (Outcome.REFUSED, 401)
    assert refused.route is not None and refused.route.policy is not None
    auth = refused.route.policy.auth
    assert auth is not None and auth.challenge() == 'Basic realm="staff only"'
    for user in ("foo", "bar"):
        assert model.answer("a.example.com", "/", headers=(basic(user, "open sesame"),)).proxied
        assert model.answer("a.example.com", "/", headers=(basic(user, "x"),)).status == 401
    assert "open sesame" not in repr(auth) and BCRYPT not in repr(auth)
    canonical = json.dumps(model.to_canonical())
    assert BCRYPT not in canonical and auth.fingerprint in canonical


def test_a_changed_secret_is_served_by_the_next_incremental_build() -> None:
    store = ObjectStore()
    store.replace_many(
        [*base_objects(8080), _auth_ingress(), secret("users", auth=f"foo:{BCRYPT}")], ()
    )
    builder = Builder(BuildOptions())
    first = builder.build(store.snapshot()).model
    assert first.answer("a.example.com", "/", headers=(basic("foo", "open sesame"),)).proxied
    store.replace_many([secret("users", auth=f"bar:{MD5_CRYPT}")], ())
    second = builder.build(store.snapshot()).model
    assert builder.incremental_builds == 1
    assert second.answer("a.example.com", "/", headers=(basic("foo", "open sesame"),)).status == 401
    assert second.answer("a.example.com", "/", headers=(basic("bar", "open sesame"),)).proxied
    assert diff(first, second).routes_changed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"auth": "foo:$apr1$ferEWR2m$5k.IdJ67zbNbMJ/6gD4Kb0"}, "apr1 (Apache MD5; HAProxy"),
        ({"auth": "foo:{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg="}, "{SHA} (HAProxy"),
        ({"auth": "foo:{PLAIN}s3cret"}, "{PLAIN}"),
        ({"auth": "foo:$6$jL2QdQLhbQIWrVE5$PfhpAlOdb5pOYyqc"}, "sha512-crypt (Traefik"),
        ({"auth": "foo:abhWCwoTZY2c6"}, "DES crypt (Traefik"),
        ({"auth": f"foo:{BCRYPT}\nfoo:{MD5_CRYPT}"}, "names a user twice"),
        ({"auth": f"f o:{BCRYPT}"}, "the user name is not"),
        ({"auth": "foo"}, "line 1 of 'auth' is not user:hash"),
        ({"auth": "# nobody\n"}, "holds no user"),
        ({"other": f"foo:{BCRYPT}"}, "has no key 'auth'"),
    ],
)
def test_an_unusable_secret_answers_503_naming_the_format_never_the_hash(
    data: dict[str, str], message: str
) -> None:
    """As ingress-nginx answers for a Secret it cannot use (its e2e test: 503); the problem
    names the Secret, the line and the hash format, and holds no secret data."""
    result = build(_auth_ingress(), secret("users", **data))
    assert (
        result.model.answer("a.example.com", "/", headers=(basic("foo", "s3cret"),)).status == 503
    )
    (p,) = result.problems
    assert (p.severity, p.reason) == (Severity.ERROR, "InvalidAuthSecret")
    assert p.field == "metadata.annotations['nginx.ingress.kubernetes.io/auth-secret']"
    assert message in p.message and "Secret annotations/users" in p.message
    for value in data.values():
        for part in value.split(":")[1:]:
            assert part.split("\n")[0] not in p.message


def test_a_missing_secret_answers_503_and_its_arrival_serves() -> None:
    result = build(_auth_ingress())
    assert result.model.answer("a.example.com", "/").status == 503
    assert "Secret annotations/users not found" in result.problems[0].message
    served = build(_auth_ingress(), secret("users", auth=f"foo:{BCRYPT}"))
    assert served.model.answer("a.example.com", "/").status == 401


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"auth-type": "digest"}, "digest authentication is not served"),
        ({"auth-secret": "other/users"}, "a Secret of another namespace"),
    ],
)
def test_what_basic_auth_refuses_rejects_the_ingress(extra: dict[str, str], why: str) -> None:
    result = build(_auth_ingress(**extra), secret("users", auth=f"foo:{BCRYPT}"))
    assert [r.name for r in result.rejected] == ["auth"]
    assert any(why in p.message for p in result.problems)
    assert result.model.answer("a.example.com", "/").status == 404


def test_auth_map_and_the_default_realm() -> None:
    ing = ingress(
        "auth",
        "a.example.com",
        "/",
        annotations={"auth-type": "basic", "auth-secret": "users", "auth-secret-type": "auth-map"},
    )
    model = build(ing, secret("users", foo=BCRYPT, bar=MD5_CRYPT)).model
    assert model.answer("a.example.com", "/", headers=(basic("bar", "open sesame"),)).proxied
    refused = model.answer("a.example.com", "/")
    assert refused.route is not None and refused.route.policy is not None
    assert refused.route.policy.auth is not None
    assert refused.route.policy.auth.challenge() == 'Basic realm=""'


def test_a_backend_without_basic_auth_answers_500() -> None:
    result = build(
        _auth_ingress(),
        secret("users", auth=f"foo:{BCRYPT}"),
        features=frozenset({"HTTPRoute", SOURCE_RANGES}),
        backend="tiny",
    )
    answer = result.model.answer("a.example.com", "/", headers=(basic("foo", "open sesame"),))
    assert answer.status == 500
    assert {p.reason for p in result.problems} == {"UnsupportedValue"}


# --- rate limits ------------------------------------------------------------------------------


def test_rate_limits_are_one_zone_per_ingress_inherited_by_its_canaries() -> None:
    main = ingress(
        "main",
        "a.example.com",
        "/",
        annotations={"limit-rps": "10", "limit-rpm": "100", "limit-connections": "3"},
        more=(("/other", "echo"),),
    )
    canary = ingress(
        "canary",
        "a.example.com",
        "/",
        "canary",
        annotations={"canary": "true", "canary-by-header": "x-canary", "limit-rps": "99"},
        created="2026-01-02T00:00:00Z",
    )
    model = build(main, canary).model
    rates = {r.policy.rate for v in model.vhosts for r in v.routes if r.policy is not None}
    assert rates == {
        RateLimit(zone="annotations/main", rps=10, rpm=100, connections=3, burst_multiplier=5)
    }
    (rate,) = rates
    assert rate is not None and (rate.burst(10), rate.status) == (50, 503)
    # What a request within the limits gets: the limits are the proxies' counting.
    assert model.answer("a.example.com", "/other").proxied


def test_burst_multiplier_alone_has_no_effect() -> None:
    result = build(
        ingress("m", "a.example.com", "/", annotations={"limit-burst-multiplier": "2"}),
        ingress(
            "c",
            "b.example.com",
            "/",
            annotations={"limit-connections": "2", "limit-burst-multiplier": "2"},
        ),
    )
    routes = {v.host: v.routes[0] for v in result.model.vhosts}
    assert routes["a.example.com"].policy is None
    policy = routes["b.example.com"].policy
    assert policy is not None and policy.rate == RateLimit(
        zone="annotations/c", connections=2, burst_multiplier=2
    )
    with pytest.raises(ValueError, match="without a limit"):
        RateLimit(zone="x/y")
