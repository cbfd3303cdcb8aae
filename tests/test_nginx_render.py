"""nginx rendering: golden files, nginx -t, quoting, attribution, and the routing semantics.

Golden files are regenerated with ``UPDATE_GOLDEN=1 pytest tests/test_nginx_render.py`` and
reviewed like code.
"""

from __future__ import annotations

import os
import random
import shutil
import string
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit import needs
from manifests import Objects
from nginx_oracle import nginx_answer, nginx_servers

from polyingress.core import (
    BuildOptions,
    ObjectRef,
    ObjectStore,
    PathTable,
    RouteModel,
    build_model,
    fallback_certificate,
)
from polyingress.core.sources.manifests import load_objects
from polyingress.plugins.nginx.process import check_config
from polyingress.plugins.nginx.render import (
    LuaRender,
    NginxConfig,
    RenderCache,
    RenderOptions,
    UnsafeValue,
    line_owners,
    quote,
    render,
    server_names_hash,
)
from polyingress.testing.cases import model_answer

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures" / "nginx"
GOLDEN = HERE / "golden" / "nginx"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"
OPTS = RenderOptions(bind="127.0.0.1", http_port=18080, https_port=18443, status_port=18246)
CASES = [
    "cafe",
    "paths",
    "wildcard-catch-all",
    "wildcard-tls",
    "wildcard-tls-catch-all",
    "settings",
    "alike",
]
BUILD = {"settings": BuildOptions(configmap=("kube-system", "polyingress"))}
NGINX = shutil.which("nginx")
needs_nginx = needs("nginx")
FALLBACK = fallback_certificate()


def build(objects: list[dict[str, Any]], opts: BuildOptions | None = None) -> RouteModel:
    store = ObjectStore()
    store.replace_many(upserts=objects, deletes=())
    return build_model(store.snapshot(), opts or BuildOptions()).model


def fixture_model(case: str) -> RouteModel:
    return build(load_objects(FIXTURES / f"{case}.yaml"), BUILD.get(case))


def nginx_t(
    tmp: Path, config: NginxConfig, text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Write ``text`` (default: the config) and its key pairs into a prefix and nginx -t it."""
    assert NGINX is not None
    for pair in config.key_pairs:
        (tmp / "conf" / pair.crt).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "conf" / pair.crt).write_text(pair.cert_pem)
        (tmp / "conf" / pair.key).write_text(pair.key_pem)
    for sub in ("logs", "run", "tmp"):
        (tmp / sub).mkdir(exist_ok=True)
    conf = tmp / "conf" / "nginx.conf"
    conf.write_text(config.text if text is None else text)
    result = check_config(NGINX, tmp, conf)
    return subprocess.CompletedProcess([], 0 if result.ok else 1, result.output, "")


# -- golden files --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_golden_config(case: str) -> None:
    text = render(fixture_model(case), OPTS, fallback_certificate()).text
    golden = GOLDEN / f"{case}.conf"
    if UPDATE_GOLDEN:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"{golden} missing: run with UPDATE_GOLDEN=1"
    assert text == golden.read_text(), f"{case}: rendered config differs from {golden}"


@needs_nginx
@pytest.mark.parametrize("case", CASES)
def test_golden_config_passes_nginx_t_without_warnings(case: str, tmp_path: Path) -> None:
    config = render(fixture_model(case), OPTS, fallback_certificate())
    result = nginx_t(tmp_path, config, (GOLDEN / f"{case}.conf").read_text())
    assert result.returncode == 0, result.stdout
    assert "[warn]" not in result.stdout, result.stdout
    assert "[emerg]" not in result.stdout


def test_render_is_identical_for_shuffled_input() -> None:
    objects = load_objects(FIXTURES / "paths.yaml")
    first = render(build(objects), OPTS, fallback_certificate()).text
    random.Random(7).shuffle(objects)
    assert render(build(objects), OPTS, fallback_certificate()).text == first


def test_settings_problems_are_reported_and_not_rendered() -> None:
    """The core reports what the ConfigMap got wrong (build problems naming each key); the rest
    of the ConfigMap, and the rest of the configuration, is rendered."""
    store = ObjectStore()
    store.replace_many(upserts=load_objects(FIXTURES / "settings.yaml"), deletes=())
    result = build_model(store.snapshot(), BUILD["settings"])
    config = render(result.model, OPTS, fallback_certificate())
    problems = "\n".join(str(p) for p in result.problems)
    assert (
        "ConfigMap kube-system/polyingress: data['server-snippet']: not a setting of polyingress"
        in problems
    )
    for key in ("proxy-buffering", "ssl-ciphers", "keep-alive-requests", "client-body-timeout"):
        assert f"data['{key}']" in problems
    assert len(result.problems) == 5
    for text in ("return 200;", "/etc/passwd", "1y", "maybe"):
        assert text not in config.text
    assert config.settings.from_configmap >= {"worker-processes", "proxy-buffer-size"}
    assert "proxy-buffering" not in config.settings.from_configmap
    assert 'server_name "web.example.com";' in config.text


def test_zero_endpoints_renders_503_without_upstream() -> None:
    text = render(fixture_model("paths"), OPTS, fallback_certificate()).text
    assert 'upstream "shop__empty__80"' not in text
    assert 'upstream "shop__missing__80"' not in text
    assert 'proxy_pass "http://shop__empty__80"' not in text
    assert text.count("return 503;") == 4  # = /empty, ^~ /empty/, = /missing, ^~ /missing/


def test_status_server_is_loopback_only_and_answers_the_digest() -> None:
    config = render(fixture_model("cafe"), OPTS, fallback_certificate())
    assert 'listen "127.0.0.1:18246";' in config.text
    assert f'return 200 "{config.digest}";' in config.text
    public = [line for line in config.text.splitlines() if "listen" in line and "18246" not in line]
    assert all("18080" in line or "18443" in line for line in public)
    assert config.text.count("/-/config-version") == 1


def test_identical_models_give_identical_digests_and_others_differ() -> None:
    a = render(fixture_model("cafe"), OPTS, fallback_certificate())
    b = render(fixture_model("cafe"), OPTS, fallback_certificate())
    c = render(fixture_model("paths"), OPTS, fallback_certificate())
    assert a.digest == b.digest != c.digest


# -- quoting -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("/plain", '"/plain"'),
        ("/a b;{c}#'", '"/a b;{c}#\'"'),
        ('/say "hi"', '"/say \\"hi\\""'),
        ("/back\\slash", '"/back\\\\slash"'),
        ("/t\\t", '"/t\\\\t"'),
        ("", '""'),
    ],
    ids=["plain", "delimiters", "double-quote", "backslash", "backslash-t", "empty"],
)
def test_quote_escapes(value: str, quoted: str) -> None:
    assert quote(value) == quoted


@pytest.mark.parametrize(
    "value",
    ["/a\nb", "/a\rb", "/a\tb", "/a\x00b", "/a\x7fb"],
    ids=["lf", "cr", "tab", "nul", "del"],
)
def test_quote_refuses_control_characters(value: str) -> None:
    with pytest.raises(UnsafeValue, match="control character"):
        quote(value)
    with pytest.raises(UnsafeValue):
        quote(value, variables=True)


def test_quote_refuses_dollar_unless_asked() -> None:
    with pytest.raises(UnsafeValue, match=r"'\$'"):
        quote("/a$http_cookie")
    assert quote("https://$host$request_uri", variables=True) == '"https://$host$request_uri"'


@needs_nginx
@pytest.mark.parametrize(
    "value",
    ["/a b;{c}#'", '/q"uote', "/back\\slash", "/}; location /x { return 200; } #", '/\\"; {'],
    ids=["delimiters", "quote", "backslash", "injection", "escape-then-quote"],
)
def test_quoted_values_stay_one_token_for_nginx(value: str, tmp_path: Path) -> None:
    """nginx -t accepts each value as a single location argument (no injected directive):
    a value that broke out of its quotes would add a location or a syntax error."""
    config = render(RouteModel(), OPTS, fallback_certificate())
    probe = f"        location = {quote(value)} {{\n            return 204;\n        }}\n"
    marker = '        location = "/-/status" {\n'
    text = config.text.replace(marker, probe + marker)
    result = nginx_t(tmp_path, config, text)
    assert result.returncode == 0, result.stdout
    duplicate = text.replace(marker, probe + marker, 1)
    assert "duplicate location" in nginx_t(tmp_path, config, duplicate).stdout


# -- attribution of nginx -t failures -------------------------------------------------------------


def test_line_owners_follow_blocks() -> None:
    config = render(fixture_model("paths"), OPTS, fallback_certificate())
    lines = config.text.splitlines()
    owners = line_owners(config.text)
    shop = ObjectRef(kind="Ingress", namespace="shop", name="shop")
    catch_all = ObjectRef(kind="Ingress", namespace="shop", name="catch-all")
    at = {line.strip(): owners[i] for i, line in enumerate(lines)}
    assert at['location = "/v6" {'] == (shop,)
    assert at['location ^~ "/any/" {'] == (catch_all,)
    assert at['server "[fd00::1]:8080";'] == (
        ObjectRef(kind="Service", namespace="shop", name="v6"),
    )
    assert owners[lines.index("    keepalive_timeout 75s;")] == ()


# -- hash sizes ------------------------------------------------------------------------------------


def test_server_names_hash_grows_with_the_longest_name() -> None:
    assert server_names_hash(["a.example.com"]) == (256, 512)
    bucket, max_size = server_names_hash(["x" * 253] + [f"h{i}.example.com" for i in range(999)])
    assert bucket >= 8 * (8 + 256) + 8 and max_size == 4000


def _host(rng: random.Random, length: int) -> str:
    labels = []
    while sum(len(lab) + 1 for lab in labels) < length - 12:
        labels.append("".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 20))))
    return (".".join(labels) + ".example.com")[-253:].lstrip(".-")


@needs_nginx
def test_many_long_host_names_build_hashes_without_warnings(tmp_path: Path) -> None:
    rng = random.Random(1)
    hosts = sorted({_host(rng, rng.choice([20, 40, 80, 253])) for _ in range(1500)})
    hosts = [h for h in hosts if all(0 < len(lab) <= 63 for lab in h.split("."))]
    rules = [{"host": h, "http": {"paths": [_path("/", "Prefix", "s1")]}} for h in hosts[:1000]] + [
        {"host": "*." + h, "http": {"paths": [_path("/", "Prefix", "s1")]}} for h in hosts[1000:]
    ]
    config = render(build(_world(rules)), OPTS, fallback_certificate())
    result = nginx_t(tmp_path, config)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "[warn]" not in result.stdout, result.stdout[-2000:]


# -- routing semantics: the rendered config answers as the model does ------------------------------


def _path(path: str, ptype: str, svc: str) -> dict[str, Any]:
    return {
        "path": path,
        "pathType": ptype,
        "backend": {"service": {"name": svc, "port": {"number": 80}}},
    }


def _world(
    rules: list[dict[str, Any]],
    *,
    tls: list[dict[str, Any]] | None = None,
    default: str | None = None,
) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = [
        {
            "kind": "IngressClass",
            "metadata": {"name": "polyingress"},
            "spec": {"controller": "polyingress.io/controller"},
        }
    ]
    for svc, ready in (("s1", True), ("s2", True), ("s3", False)):
        objs.append(
            {
                "kind": "Service",
                "metadata": {"name": svc, "namespace": "t"},
                "spec": {"ports": [{"name": "http", "port": 80}]},
            }
        )
        objs.append(
            {
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{svc}-1",
                    "namespace": "t",
                    "labels": {"kubernetes.io/service-name": svc},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080}],
                "endpoints": [{"addresses": ["10.9.0.1"], "conditions": {"ready": ready}}],
            }
        )
    spec: dict[str, Any] = {"ingressClassName": "polyingress", "rules": rules}
    if tls:
        spec["tls"] = tls
    if default:
        spec["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
    objs.append({"kind": "Ingress", "metadata": {"name": "gen", "namespace": "t"}, "spec": spec})
    return objs


SEGMENTS = ["a", "b", "ab", "A"]
SERVICES = ["s1", "s2", "s3", "s4"]  # s3: no ready endpoints; s4: no such Service
HOSTS = ["h.example.com", "x.w.example.com", "y.x.w.example.com", "w.example.com", "o.example.org"]
METHODS = ["GET", "HEAD", "POST"]

paths = st.tuples(st.lists(st.sampled_from(SEGMENTS), max_size=3), st.booleans()).map(
    lambda p: "/" + "/".join(p[0]) + ("/" if p[1] and p[0] else "")
)
routes = st.lists(
    st.tuples(paths, st.sampled_from(["Exact", "Prefix"]), st.sampled_from(SERVICES)), max_size=6
)
request_paths = st.lists(
    st.tuples(st.lists(st.sampled_from([*SEGMENTS, "abc", "x"]), max_size=4), st.booleans()),
    min_size=5,
    max_size=15,
).map(lambda ps: ["/" + "/".join(p) + ("/" if slash and p else "") for p, slash in ps])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    exact=routes,
    wild=routes,
    any_host=routes,
    default=st.sampled_from([None, "s1", "s3", "s4"]),
    tls_exact=st.booleans(),
    tls_wild=st.booleans(),
    requests=request_paths,
)
def test_rendered_config_answers_as_the_model(
    exact: list[tuple[str, str, str]],
    wild: list[tuple[str, str, str]],
    any_host: list[tuple[str, str, str]],
    default: str | None,
    tls_exact: bool,
    tls_wild: bool,
    requests: list[str],
) -> None:
    rules = []
    for host, table in (("h.example.com", exact), ("*.w.example.com", wild), (None, any_host)):
        if not table:
            continue
        rule: dict[str, Any] = {"http": {"paths": [_path(p, t, s) for p, t, s in table]}}
        if host is not None:
            rule["host"] = host
        rules.append(rule)
    tls = [
        {"hosts": [h]}
        for h, on in (("h.example.com", tls_exact), ("*.w.example.com", tls_wild))
        if on
    ]
    if not rules and default is None:
        default = "s1"
    model = build(_world(rules, tls=tls, default=default))
    servers = nginx_servers(render(model, OPTS, fallback_certificate()).text)
    probes = set(requests) | {p for p, _t, _s in exact + wild + any_host}
    probes |= {p.rstrip("/") + suffix for p in list(probes) for suffix in ("/", "x", "/x")}
    probes = {p for p in probes if p.startswith("/")}
    for scheme, port in (("http", OPTS.http_port), ("https", OPTS.https_port)):
        for host in HOSTS:
            for path in sorted(probes):
                for method in METHODS:
                    got = nginx_answer(servers, port, host, path, method)
                    want = model_answer(model, scheme, host, path, method)
                    assert got == want, (
                        f"{method} {scheme}://{host}{path}: nginx {got}, model {want}"
                    )


@settings(max_examples=300, deadline=None)
@given(
    table=routes,
    probes=st.lists(st.text(alphabet="/abA\x00", max_size=10).map(lambda p: "/" + p), max_size=20),
)
def test_indexed_matcher_agrees_with_the_reference_match(
    table: list[tuple[str, str, str]], probes: list[str]
) -> None:
    """The core's PathTable (what the nginx renderer and VirtualHost.match use) picks the route
    the per-route reference picks: the first in canonical order whose Route.matches holds."""
    rules = [{"host": "h.example.com", "http": {"paths": [_path(p, t, s) for p, t, s in table]}}]
    model = build(_world(rules if table else [], default="s1"))
    vhost = model.vhost_index.get("h.example.com")
    routes = vhost.routes if vhost is not None else ()
    matcher = PathTable(routes)
    for path in [*probes, *(p for p, _t, _s in table)]:
        reference = next((r for r in routes if r.matches(path)), None)
        assert matcher.match(path) == reference, path


# -- the render cache ------------------------------------------------------------------------------

Row = tuple[str, str, str]
CACHE_LUA = LuaRender(
    modules=(),
    package_dir="/opt/polyingress/lua",
    channel_socket="/run/polyingress/channel/nginx.sock",
    unavailable_port=18247,
    token="0123456789abcdef0123456789abcdef",
)
# One Secret, two certificates (a rotation: the files are named by the fingerprint).
G_SECRETS = [
    Objects("t", api_version=False).self_signed_secret("g-tls", "g.example.com", f"g-v{i}")
    for i in (1, 2)
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(
            routes,
            routes,
            routes,
            st.sampled_from([None, "s1", "s3"]),
            st.sampled_from([None, 0, 1, 2]),
            st.sampled_from(["s1", "s2", "s3"]),
        ),
        min_size=2,
        max_size=5,
    ),
    lua=st.booleans(),
)
def test_a_render_through_the_cache_is_the_render_without_it(
    steps: list[tuple[list[Row], list[Row], list[Row], str | None, int | None, str]], lua: bool
) -> None:
    """A sequence of worlds (a host's routes, a wildcard's, the host-less ones, the default
    backend, TLS with the fallback or one of two certificates of one Secret, which Service has
    no ready endpoint) rendered through one RenderCache gives, at every step, the text a render
    without it gives."""
    opts = replace(OPTS, lua=CACHE_LUA if lua else None)
    cache = RenderCache()
    for exact, wild, any_host, default, tls, down in steps:
        rules: list[dict[str, Any]] = [
            {"host": "h.example.com", "http": {"paths": [_path("/", "Prefix", "s1")]}},
            {"host": "g.example.com", "http": {"paths": [_path(p, t, s) for p, t, s in exact]}},
            {"host": "*.w.example.com", "http": {"paths": [_path(p, t, s) for p, t, s in wild]}},
            {"http": {"paths": [_path(p, t, s) for p, t, s in any_host]}},
        ]
        rules = [r for r in rules if r["http"]["paths"]]
        secure: list[dict[str, Any]] | None = None
        if tls is not None:
            secure = [{"hosts": ["g.example.com"]}]
            if tls:
                secure[0]["secretName"] = "g-tls"
        objects = _world(rules, tls=secure, default=default)
        if tls:
            objects.append(G_SECRETS[tls - 1])
        for obj in objects:
            if obj["kind"] == "EndpointSlice":
                ready = obj["metadata"]["name"] != f"{down}-1"
                obj["endpoints"] = [{"addresses": ["10.9.0.1"], "conditions": {"ready": ready}}]
        model = build(objects)
        cached = render(model, opts, FALLBACK, cache).text
        assert cached == render(model, opts, FALLBACK).text
    # Not vacuous: the same world again is rendered from the cache alone.
    hits, misses = cache.hits, cache.misses
    assert render(build(objects), opts, FALLBACK, cache).text == cached
    assert cache.misses == misses
    assert cache.hits - hits == len([v for v in model.vhosts if v.host is not None])


def test_a_rotated_certificate_renders_the_host_again_through_the_cache() -> None:
    """Same host, same routes, same Secret; a new certificate in it names new files."""
    rules = [{"host": "g.example.com", "http": {"paths": [_path("/", "Prefix", "s1")]}}]
    cache = RenderCache()
    for secret in (*G_SECRETS, G_SECRETS[0]):
        objects = [*_world(rules, tls=[{"hosts": ["g.example.com"], "secretName": "g-tls"}])]
        model = build([*objects, secret])
        text = render(model, OPTS, FALLBACK, cache).text
        assert text == render(model, OPTS, FALLBACK).text
        (pair,) = [p for p in render(model, OPTS, FALLBACK).key_pairs if p.name != FALLBACK.name]
        assert f'ssl_certificate "{pair.crt}";' in text
    assert cache.misses == 3
