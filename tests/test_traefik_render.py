"""plugins/traefik/render.py: schema validity, golden files, determinism, semantics at scale."""

from __future__ import annotations

import difflib
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from traefik_oracle import (
    FALLBACK,
    SCHEMA_PATH,
    Outcome,
    Request,
    ingress_world,
    merge,
    route,
    schema_validator,
)

from polyingress.core import (
    Certificate,
    ObjectRef,
    ObjectStore,
    PathType,
    Route,
    RouteModel,
    VirtualHost,
    build_model,
    redirect_status,
)
from polyingress.plugins.traefik.render import (
    MAPPING_CHUNK,
    RenderSettings,
    dump_yaml,
    quote,
    render,
)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "traefik"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"
SETTINGS = RenderSettings(
    cert_dir="/var/lib/polyingress/traefik/certs",
    http_port=8080,
    https_port=8443,
)


def test_traefik_schema_is_part_of_the_repository() -> None:
    # A plain clone must run every schema test: the schema may not come from outside the tree.
    assert SCHEMA_PATH.is_relative_to(ROOT / "tests" / "data"), SCHEMA_PATH
    assert schema_validator().schema["$id"].endswith("/traefik-v3-file-provider.json")


@pytest.fixture(scope="module")
def validator() -> Any:
    return schema_validator()


def build(objects: list[dict[str, Any]]) -> RouteModel:
    store = ObjectStore()
    store.replace_many(objects, ())
    return build_model(store.snapshot()).model


def ingress_class() -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": "polyingress"},
        "spec": {"controller": "polyingress.io/controller"},
    }


def ingress(name: str, spec: dict[str, Any], second: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": "web",
            "creationTimestamp": f"2024-01-01T00:00:{second:02d}Z",
        },
        "spec": {"ingressClassName": "polyingress", **spec},
    }


def rule(host: str | None, *paths: tuple[str, str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": path,
                    "pathType": ptype,
                    "backend": {"service": {"name": svc, "port": {"number": 80}}},
                }
                for path, ptype, svc in paths
            ]
        }
    }
    if host is not None:
        out["host"] = host
    return out


def service(name: str, ready: int, namespace: str = "web") -> list[dict[str, Any]]:
    endpoints = [
        {"addresses": [f"10.1.{i}.{len(name)}"], "conditions": {"ready": True}}
        for i in range(ready)
    ] or [{"addresses": ["10.9.9.9"], "conditions": {"ready": False}}]
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-1",
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": endpoints,
        },
    ]


def cafe_world() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in sorted((ROOT / "examples" / "cafe").glob("*.yaml")):
        objects.extend(o for o in yaml.safe_load_all(path.read_text()) if o)
    return objects


def hosts_world() -> list[dict[str, Any]]:
    """Exact, wildcard, an exact host below a wildcard, host-less rules, TLS without a Secret."""
    return [
        ingress_class(),
        ingress(
            "shop",
            {
                "rules": [
                    rule("shop.example.com", ("/", "Prefix", "shop"), ("/api", "Prefix", "api")),
                    rule("*.apps.example.com", ("/", "Prefix", "apps")),
                    rule("admin.apps.example.com", ("/admin", "Prefix", "admin")),
                    rule(None, ("/status", "Exact", "status"), ("/static", "Prefix", "static")),
                ],
                "tls": [{"hosts": ["admin.apps.example.com"], "secretName": "absent"}],
            },
        ),
        *service("shop", 2),
        *service("api", 1),
        *service("apps", 3),
        *service("admin", 1),
        *service("status", 1),
        *service("static", 1),
    ]


def default_world() -> list[dict[str, Any]]:
    """A default backend, a Service without ready endpoints, a missing Service."""
    return [
        ingress_class(),
        ingress(
            "default", {"defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}}}
        ),
        ingress(
            "apps",
            {
                "rules": [
                    rule("down.example.com", ("/", "Prefix", "down")),
                    rule("gone.example.com", ("/gone", "Prefix", "gone")),
                    rule("*.example.com", ("/wild", "Prefix", "wild")),
                    rule(None, ("/", "Prefix", "root")),
                ]
            },
            second=1,
        ),
        *service("fallback", 1),
        *service("down", 0),
        *service("wild", 1),
        *service("root", 1),
    ]


def paths_world() -> list[dict[str, Any]]:
    """Exact and Prefix side by side, equal lengths, odd characters, a reduced-name collision."""
    return [
        ingress_class(),
        ingress(
            "paths",
            {
                "rules": [
                    rule(
                        "paths.example.com",
                        ("/", "Prefix", "root"),
                        ("/docs", "Exact", "exact"),
                        ("/docs", "Prefix", "docs"),
                        ("/docs/v1/", "Prefix", "v1"),
                        ("/docs/v2", "ImplementationSpecific", "v2"),
                        ("/a-b", "Prefix", "dash"),
                        ("/a/b", "Prefix", "slash"),
                        ("/odd~!&()*+,=:@._", "Exact", "odd"),
                        ("/Docs", "Prefix", "upper"),
                    )
                ]
            },
        ),
        *(
            obj
            for name in ("root", "exact", "docs", "v1", "v2", "dash", "slash", "odd", "upper")
            for obj in service(name, 1)
        ),
    ]


_NGINX = "nginx.ingress.kubernetes.io/"


def send_timeout_world(annotated: bool = True) -> list[dict[str, Any]]:
    """Two Ingresses with proxy-send-timeout (one with proxy-read-timeout too), one without;
    ``annotated=False``: the same world without the send timeouts."""

    def annotations(**values: str) -> dict[str, Any]:
        kept = {k: v for k, v in values.items() if annotated or k != "proxy-send-timeout"}
        return {"annotations": {_NGINX + k: v for k, v in kept.items()}} if kept else {}

    def annotated_ingress(name: str, spec: dict[str, Any], **values: str) -> dict[str, Any]:
        obj = ingress(name, spec)
        obj["metadata"].update(annotations(**values))
        return obj

    return [
        ingress_class(),
        annotated_ingress(
            "upload",
            {"rules": [rule("upload.example.com", ("/", "Prefix", "upload"))]},
            **{"proxy-send-timeout": "3"},
        ),
        annotated_ingress(
            "api",
            {"rules": [rule("api.example.com", ("/v1", "Prefix", "api"))]},
            **{"proxy-send-timeout": "3", "proxy-read-timeout": "30"},
        ),
        ingress("plain", {"rules": [rule("plain.example.com", ("/", "Prefix", "plain"))]}),
        *service("upload", 1),
        *service("api", 2),
        *service("plain", 1),
    ]


GOLDEN_CASES = {
    "cafe": cafe_world,
    "hosts-wildcards-tls": hosts_world,
    "default-backend-503": default_world,
    "paths": paths_world,
    "empty": lambda: [ingress_class()],
    "annotations-send-timeout": send_timeout_world,
}


def validate(validator: Any, rendered: Any) -> None:
    validator.validate(rendered.config)
    validator.validate(rendered.probe)
    # One file: the routing and the probe of its revision.
    assert yaml.safe_load(rendered.text) == rendered.document
    assert rendered.document["http"]["routers"]["polyingress-probe"]["rule"].endswith(
        f"Path(`/{rendered.revision}`)"
    )


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden(case: str, validator: Any) -> None:
    rendered = render(build(GOLDEN_CASES[case]()), SETTINGS, FALLBACK)
    validate(validator, rendered)
    path = GOLDEN / f"{case}.yaml"
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered.text)
    assert path.exists(), f"{path} is missing; run UPDATE_GOLDEN=1 pytest {__file__}"
    assert rendered.text == path.read_text(), f"{case}: differs from {path}"


def test_render_is_byte_identical_whatever_the_object_order() -> None:
    objects = hosts_world() + default_world()[2:] + paths_world()[1:]
    first = render(build(objects), SETTINGS, FALLBACK)
    for seed in range(3):
        shuffled = list(objects)
        random.Random(seed).shuffle(shuffled)
        again = render(build(shuffled), SETTINGS, FALLBACK)
        assert again.text == first.text
        assert again.revision == first.revision


def test_reduced_router_names_get_a_hash_only_on_collision() -> None:
    routers = render(build(paths_world()), SETTINGS, FALLBACK).config["http"]["routers"]
    suffixed = sorted(n for n in routers if "_" in n)
    assert [n.rsplit("_", 1)[0] for n in suffixed] == [
        "web-paths.example.com-prefix-a-b",
        "web-paths.example.com-prefix-a-b",
        "websecure-paths.example.com-prefix-a-b",
        "websecure-paths.example.com-prefix-a-b",
    ]
    assert all(n.replace("_", "").replace(".", "").replace("-", "").isalnum() for n in routers)


def test_certificates_and_fallback_are_files_named_by_content() -> None:
    rendered = render(build(cafe_world()), SETTINGS, FALLBACK)
    tls = rendered.config["tls"]
    named = {e[k] for e in tls["certificates"] for k in ("certFile", "keyFile")}
    named |= set(tls["stores"]["default"]["defaultCertificate"].values())
    files = {f"{SETTINGS.cert_dir}/{f.name}": f for f in rendered.files}
    assert named == set(files)
    assert sorted(f.name.rsplit(".", 1)[1] for f in rendered.files if f.is_key) == ["key", "key"]
    assert all("PRIVATE KEY" in f.data for f in rendered.files if f.is_key)
    renewed = Certificate(
        name=FALLBACK.name, source=FALLBACK.source, cert_pem="new\n", key_pem="new\n"
    )
    assert render(build(cafe_world()), SETTINGS, renewed).text != rendered.text


def test_quote_refuses_what_cannot_be_a_rule_value() -> None:
    assert quote("/a.b") == "`/a.b`"
    for bad in ("/a`b", "/a b", "/a\nb", "", "/é"):
        with pytest.raises(ValueError):
            quote(bad)


@pytest.mark.parametrize(
    "value",
    ["yes", "No", "on", "true", "null", "1.5", "0x1f", "1:20", "-", "a: b", "#x", "", "é", "a b"],
)
def test_dump_yaml_quotes_what_yaml_would_read_otherwise(value: str) -> None:
    doc = {"k": value, "l": [value, {"x": value, "y": []}], "m": {}, "n": 3, "o": False}
    assert yaml.safe_load(dump_yaml(doc)) == doc


def _largest_mapping(node: yaml.Node) -> int:
    if isinstance(node, yaml.MappingNode):
        return max([len(node.value), *(_largest_mapping(v) for _k, v in node.value)])
    if isinstance(node, yaml.SequenceNode):
        return max([0, *(_largest_mapping(v) for v in node.value)])
    return 0


@pytest.mark.parametrize("size", [1, MAPPING_CHUNK, MAPPING_CHUNK + 1, 3 * MAPPING_CHUNK + 7])
def test_a_large_mapping_is_written_as_a_merge_of_small_ones(size: int) -> None:
    """Traefik's YAML decoder compares every pair of a mapping's keys (yaml.v3's duplicate
    check): 20,000 routers in one mapping cost seconds at every change. A mapping of more than
    MAPPING_CHUNK keys is written as ``<<:`` and a list of smaller mappings, which a YAML
    loader reads back as the one mapping; a smaller one is written as before."""
    inner = {f"r-{i:05d}": {"rule": f"Host(`h{i}.com`)", "priority": i} for i in range(size)}
    doc = {"http": {"routers": inner, "middlewares": {"m": {"x": [1, {"y": "z"}]}}}}
    text = dump_yaml(doc)
    assert yaml.safe_load(text) == doc
    composed = yaml.compose(text)
    assert composed is not None
    largest = _largest_mapping(composed)
    assert largest == max(2, size) if size <= MAPPING_CHUNK else largest <= MAPPING_CHUNK
    assert ("<<:" in text) == (size > MAPPING_CHUNK)
    if size <= MAPPING_CHUNK:
        assert text.startswith("http:\n  middlewares:\n")
        assert "\n  routers:\n    r-00000:\n" in text


def test_one_entry_more_in_a_large_mapping_changes_only_its_own_lines() -> None:
    """The text stays diffable: a router added to a large document (merged mappings) adds its
    own lines; at most the list marker of its mapping's first line moves."""
    routers = {f"r-{i:05d}": {"rule": f"Host(`h{i}.com`)"} for i in range(0, 4000, 2)}
    before = dump_yaml({"http": {"routers": routers}}).splitlines()
    after = dump_yaml({"http": {"routers": {**routers, "r-01001": {"rule": "X"}}}}).splitlines()
    assert _changed(_unmarked(before), _unmarked(after)) == ["+      r-01001:", "+        rule: X"]
    assert len(_changed(before, after)) <= 4


def _unmarked(lines: list[str]) -> list[str]:
    return [re.sub(r"^(\s*)- ", r"\1  ", line) for line in lines]


def _changed(before: list[str], after: list[str]) -> list[str]:
    diff = difflib.unified_diff(before, after, n=0, lineterm="")
    return [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def test_a_large_worlds_text_is_its_document(validator: Any) -> None:
    model = build(ingress_world(1_000))
    rendered = render(model, SETTINGS, FALLBACK)
    assert len(rendered.config["http"]["routers"]) > 4 * MAPPING_CHUNK
    validate(validator, rendered)
    composed = yaml.compose(rendered.text)
    assert composed is not None
    assert _largest_mapping(composed) <= MAPPING_CHUNK


# ---------------------------------------------------------------------------------------------
# Semantics: the oracle agrees with the core's reference resolution
# ---------------------------------------------------------------------------------------------


def expected_outcome(model: RouteModel, req: Request) -> Outcome:
    vhost = model.select_vhost(req.host)
    if not req.is_tls and vhost is not None and vhost.tls and vhost.tls.ssl_redirect:
        # Traefik's redirectScheme: the host as written, without its port.
        host = req.host.rsplit(":", 1)[0] if ":" in req.host else req.host
        location = f"https://{host}:{SETTINGS.https_port}{req.path}"
        return Outcome(status=redirect_status(req.method), location=location)
    _kind, _route, backend = model.resolve(req.host, req.path)
    if backend is None:
        return Outcome(status=404)
    if not model.backend(backend).available:
        return Outcome(status=503, service=backend)
    return Outcome(status=200, service=backend)


def assert_routes_like_core(model: RouteModel, config: dict[str, Any], req: Request) -> None:
    got = route(config, req)
    want = expected_outcome(model, req)
    assert (got.status, got.service, got.location) == (want.status, want.service, want.location), (
        req
    )


HOSTS = ["a.com", "b.a.com", "*.a.com", "c.b.a.com", "*.b.a.com", None]
PATHS = ["/", "/foo", "/foo/bar", "/foobar", "/foo/", "/Foo", "/x/y"]
REQUEST_HOSTS = [
    "a.com",
    "A.com:80",
    "a.com.",
    "b.a.com",
    "x.a.com",
    "c.b.a.com",
    "d.c.b.a.com",
    "y.b.a.com",
    "zzz.org",
]
REQUEST_PATHS = ["/", "/foo", "/foo/", "/foo/bar", "/foo/bar/x", "/foobar", "/Foo", "/x/y/z"]

rows = st.tuples(
    st.sampled_from(HOSTS),
    st.sampled_from(PATHS),
    st.sampled_from(["Exact", "Prefix", "ImplementationSpecific"]),
    st.sampled_from(["s0", "s1", "s2", "down", "missing"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ingresses=st.lists(st.lists(rows, min_size=1, max_size=5), min_size=1, max_size=4),
    tls_hosts=st.sets(st.sampled_from([h for h in HOSTS if h is not None]), max_size=2),
    default=st.sampled_from([None, "s0", "down"]),
)
def test_oracle_agrees_with_core_on_random_worlds(
    validator: Any,
    ingresses: list[list[tuple[str | None, str, str, str]]],
    tls_hosts: set[str],
    default: str | None,
) -> None:
    objects = [ingress_class(), *service("s0", 1), *service("s1", 2), *service("s2", 1)]
    objects += service("down", 0)
    for i, paths in enumerate(ingresses):
        by_host: dict[str | None, list[tuple[str, str, str]]] = {}
        for host, path, ptype, svc in paths:
            by_host.setdefault(host, []).append((path, ptype, svc))
        spec: dict[str, Any] = {"rules": [rule(h, *p) for h, p in by_host.items()]}
        if i == 0 and tls_hosts:
            spec["tls"] = [{"hosts": sorted(tls_hosts), "secretName": "absent"}]
        if i == 0 and default is not None:
            spec["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
        objects.append(ingress(f"ing{i}", spec, second=i))
    model = build(objects)
    rendered = render(model, SETTINGS, FALLBACK)
    validate(validator, rendered)
    config = rendered.config
    for host in REQUEST_HOSTS:
        for path in REQUEST_PATHS:
            for entrypoint, method in (("web", "GET"), ("web", "HEAD"), ("websecure", "GET")):
                req = Request(host=host, path=path, entrypoint=entrypoint, method=method)
                assert_routes_like_core(model, config, req)


def test_merged_rows_are_rendered_when_they_are_not_the_catch_all_hosts() -> None:
    """A model built by hand, whose merged rows the catch-all host does not have."""
    ref = ObjectRef(kind="Ingress", namespace="ns", name="i")
    odd = Route(
        path="/odd", path_type=PathType.PREFIX, backend="b", source=ref, from_catch_all=True
    )
    model = RouteModel(
        vhosts=(
            VirtualHost(host="a.com", routes=(odd,)),
            VirtualHost(
                host=None,
                routes=(Route(path="/", path_type=PathType.PREFIX, backend="c", source=ref),),
            ),
        ),
    )
    config = render(model, SETTINGS, FALLBACK).config
    for service in ("b", "c"):
        config["http"]["services"][service] = {"loadBalancer": {"servers": [{"url": "http://x"}]}}
    assert route(config, Request(host="a.com", path="/odd/1")).service == "b"
    assert route(config, Request(host="a.com", path="/other")).status == 404
    assert route(config, Request(host="b.com", path="/other")).service == "c"


def test_ten_thousand_ingresses(validator: Any) -> None:
    model = build(ingress_world(10_000))
    rendered = render(model, SETTINGS, FALLBACK)
    validator.validate(rendered.config)
    assert len(rendered.config["http"]["routers"]) > 39_000
    config = merge(rendered.config, rendered.probe)
    rng = random.Random(7)
    for _ in range(12):
        i = rng.randrange(10_000)
        host = f"h{i}.example.com" if i % 50 != 49 else f"x.w{i}.example.com"
        for path in (f"/api/v{i % 7}/x", "/healthz", "/nothing"):
            for entrypoint in ("web", "websecure"):
                req = Request(host=host, path=path, entrypoint=entrypoint)
                assert_routes_like_core(model, config, req)


def _empty_mappings(value: Any, where: str = "") -> list[str]:
    if isinstance(value, dict):
        if not value:
            return [where]
        return [p for k, v in value.items() for p in _empty_mappings(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _empty_mappings(v, f"{where}[{i}]")]
    return []


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_no_section_is_an_empty_mapping(case: str) -> None:
    """Traefik 3.7 refuses a whole file for ``routers: {}`` ("routers cannot be a standalone
    element"), so a route-less model (the last Ingress deleted, a start without any) would never
    be loaded. The only empty mapping Traefik takes is a router's ``tls: {}``."""
    rendered = render(build(GOLDEN_CASES[case]()), SETTINGS, FALLBACK)
    for config in (rendered.config, rendered.probe):
        found = _empty_mappings(config)
        assert [p for p in found if not re.fullmatch(r"\.http\.routers\..+\.tls", p)] == []


# ---------------------------------------------------------------------------------------------
# proxy-send-timeout: the filters plugin's sendTimeoutMs
# ---------------------------------------------------------------------------------------------


def _plugin_configs(document: dict[str, Any], host: str) -> list[dict[str, Any]]:
    """The filters plugin's configurations on the routers of ``host``."""
    middlewares = document["http"]["middlewares"]
    out = []
    for router in document["http"]["routers"].values():
        if f"`{host}`" not in router["rule"]:
            continue
        for name in router.get("middlewares", []):
            plugin = middlewares[name].get("plugin")
            if plugin is not None:
                out.append(plugin["polyingress"])
    return out


def test_send_timeout_rows_get_the_plugin_with_send_timeout_ms(validator: Any) -> None:
    """A row with proxy-send-timeout gets the filters middleware with sendTimeoutMs (beside a
    route timeout's timeoutMs); equal configurations share one middleware; a row without it
    renders exactly as in a world without any send timeout."""
    rendered = render(build(send_timeout_world()), SETTINGS, FALLBACK)
    validate(validator, rendered)
    doc = rendered.document
    upload = _plugin_configs(doc, "upload.example.com")
    assert upload and all(c == {"sendTimeoutMs": 3000} for c in upload), upload
    api = _plugin_configs(doc, "api.example.com")
    assert api and all(c == {"timeoutMs": 30000, "sendTimeoutMs": 3000} for c in api), api
    assert _plugin_configs(doc, "plain.example.com") == []
    plugins = [m for m in doc["http"]["middlewares"].values() if "plugin" in m]
    assert len(plugins) == 2, plugins  # one per distinct configuration, for both entry points

    bare = render(build(send_timeout_world(annotated=False)), SETTINGS, FALLBACK).document
    assert _plugin_configs(bare, "upload.example.com") == []
    assert _plugin_configs(bare, "api.example.com") == [{"timeoutMs": 30000}] * len(api)
    for section in ("services", "serversTransports"):
        assert doc["http"][section] == bare["http"][section], section
    plain = {k: v for k, v in doc["http"]["routers"].items() if "plain.example.com" in v["rule"]}
    assert plain and plain == {
        k: v for k, v in bare["http"]["routers"].items() if "plain.example.com" in v["rule"]
    }
