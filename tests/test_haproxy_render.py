"""Tests of polyingress.plugins.haproxy.render: golden files, haproxy -c, routing semantics."""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from conftest import UPDATE_GOLDEN
from livekit import needs

from polyingress.core import (
    BuildOptions,
    GlobalSettings,
    ObjectStore,
    RouteModel,
    RunSettings,
    SettingsSupport,
    build_model,
    fallback_certificate,
    parse_settings,
)
from polyingress.core.sources.manifests import load_objects
from polyingress.plugins.haproxy import plugin
from polyingress.plugins.haproxy.render import (
    CATCH_ALL_KEY,
    CRT_LIST,
    DEFAULT_KEY,
    FALLBACK_PEM,
    MIRROR_LUA,
    ROUTES_MAP,
    SETTINGS,
    RenderSettings,
    SlotTable,
    Tuning,
    map_entries,
    mirror_lua,
    pem_bundle,
    quote,
    render,
    slot_name,
    tuning_of,
)
from polyingress.plugins.haproxy.rows import wanted_names
from polyingress.testing.cases import CASES as ROUTING_CASES
from polyingress.testing.cases import DEFAULT_CASES, default_backend_ingress, world

FIXTURES = Path(__file__).parent / "fixtures" / "haproxy"
GOLDEN = Path(__file__).parent / "golden" / "haproxy"
HAPROXY = shutil.which("haproxy")


@dataclass(frozen=True)
class Case:
    name: str
    build: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


GOLDEN_CASES = [
    Case("basic"),
    Case("wildcard-catch-all"),
    Case("tls", run={"http_port": 80, "https_port": 443}),
    Case("empty"),
    Case("ipv6-settings", build={"configmap": ("ops", "polyingress")}, run={"bind": "::"}),
    Case("gateway", build={"features": frozenset(plugin.GATEWAY_FEATURES)}),
]


def _objects(case: Case) -> list[dict[str, Any]]:
    return load_objects(FIXTURES / f"{case.name}.yaml")


def _model(objects: list[dict[str, Any]], case: Case) -> RouteModel:
    store = ObjectStore()
    store.replace_many(objects, ())
    return build_model(store.snapshot(), BuildOptions(**case.build)).model


def _settings(case: Case) -> RunSettings:
    options = argparse.Namespace(haproxy_spare_backends=2)
    return RunSettings(backend="haproxy", options=options, **case.run)


def _files(case: Case, objects: list[dict[str, Any]] | None = None) -> dict[str, str]:
    model = _model(objects if objects is not None else _objects(case), case)
    rendered = plugin.hooks.polyingress_render(settings=_settings(case), model=model)
    return dict(rendered.files)


GOLDEN_SUFFIX = {"haproxy.cfg": "cfg", ROUTES_MAP: "map", CRT_LIST: "crt-list"}


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=str)
def test_render_matches_golden_files(case: Case) -> None:
    files = _files(case)
    for name, suffix in GOLDEN_SUFFIX.items():
        golden = GOLDEN / f"{case.name}.{suffix}"
        if UPDATE_GOLDEN:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(files[name])
        assert golden.exists(), f"{golden} missing: run with UPDATE_GOLDEN=1 and review"
        assert files[name] == golden.read_text(), f"{golden} differs (UPDATE_GOLDEN=1 to review)"


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=str)
def test_render_ignores_object_order(case: Case) -> None:
    objects = _objects(case)
    shuffled = list(objects)
    random.Random(7).shuffle(shuffled)
    assert _files(case, shuffled) == _files(case, objects)


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=str)
def test_render_output_has_no_private_key(case: Case) -> None:
    files = _files(case)
    assert not any("PRIVATE KEY" in text for text in files.values())
    assert FALLBACK_PEM in files


@needs("haproxy")
@pytest.mark.parametrize("case", GOLDEN_CASES, ids=str)
def test_rendered_config_passes_haproxy_check(case: Case, tmp_path: Path) -> None:
    model = _model(_objects(case), case)
    spare = 2
    settings = _settings(case)
    rendered = render(
        model,
        RenderSettings(
            bind=settings.bind,
            http_port=settings.http_port,
            https_port=settings.https_port,
            spare_backends=spare,
        ),
        SlotTable.plan(wanted_names(model), spare),
    )
    files = {
        "haproxy.cfg": rendered.config,
        ROUTES_MAP: rendered.map_text,
        CRT_LIST: rendered.crt_list_text,
        FALLBACK_PEM: pem_bundle(fallback_certificate()),
        MIRROR_LUA: mirror_lua(),
        **rendered.pems,
        **rendered.sources,
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert HAPROXY is not None
    done = subprocess.run(
        [HAPROXY, "-c", "-f", "haproxy.cfg"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout + done.stderr, done.stdout + done.stderr


# --------------------------------------------------------------------------- semantics


def _emulate(entries: dict[str, str], host: str, path: str) -> str | None:
    """The frontend's lookup chain (haproxy.cfg.j2), in Python: the backend slot or None."""
    name = host.lower().rsplit(":", 1)[0] if not host.startswith("[") else host.lower()
    name = name.removesuffix(".")
    vk = entries.get(f"@{name}")
    if vk is None and "." in name:
        vk = entries.get(f"@*.{name.split('.', 1)[1]}")
    if vk is None:
        vk = CATCH_ALL_KEY
    path = path.split("?", 1)[0]
    found = entries.get(f"={vk}{path}")
    if found is None:
        key = f"^{vk}{path}/"
        prefixes = [k for k in entries if k.startswith("^") and key.startswith(k)]
        found = entries[max(prefixes, key=len)] if prefixes else None
    return found if found is not None else entries.get(DEFAULT_KEY)


def _check_against_model(model: RouteModel, requests: list[tuple[str, str]]) -> None:
    slots = SlotTable.plan((b.name for b in model.backends), 0)
    entries = map_entries(model, slots.assigned)
    for host, path in requests:
        _kind, _route, backend = model.resolve(host, path.split("?", 1)[0])
        expected = slots.assigned[backend] if backend is not None else None
        assert _emulate(entries, host, path) == expected, (host, path)


def test_map_lookup_chain_matches_the_model_on_the_routing_cases() -> None:
    objects = world(8080)
    requests = [(c.host, c.path) for c in ROUTING_CASES if c.scheme == "http"]
    _check_against_model(_model(objects, Case("routing")), requests)
    with_default = _model([*objects, default_backend_ingress()], Case("routing"))
    _check_against_model(with_default, [(c.host, c.path) for c in DEFAULT_CASES])


@pytest.mark.parametrize("case", [c for c in GOLDEN_CASES if c.name != "gateway"], ids=str)
def test_map_lookup_chain_matches_the_model_on_fixtures(case: Case) -> None:
    # Ingress tables (the emulator knows slots only); Gateway API rows are held to the model
    # live, on a real HAProxy (tests/test_haproxy_gateway.py).
    model = _model(_objects(case), case)
    hosts = [v.host.replace("*", "x") for v in model.vhosts if v.host] + ["nowhere.test"]
    hosts += [f"deep.{h}" for h in hosts]
    paths = {"/", "/x", "/a/b"}
    for vhost in model.vhosts:
        for route in vhost.routes:
            paths |= {route.path, route.path + "/", route.path + "x", route.path + "/deeper"}
    _check_against_model(model, [(h, p) for h in hosts for p in sorted(paths)])


def test_tls_host_gets_redirect_entry_and_plain_host_does_not() -> None:
    model = _model(_objects(GOLDEN_CASES[2]), GOLDEN_CASES[2])
    entries = map_entries(model, SlotTable.plan((b.name for b in model.backends), 0).assigned)
    assert entries["rshop.example.com"] == "1"
    assert entries["rpending.example.com"] == "1"
    assert "rplain.example.com" not in entries


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    "value",
    ["a b", 'a"b', "a#b", "a\\b", "a;b", "a$b", "", "a\nb", "a'b", "a`b"],
    ids=repr,
)
def test_quote_refuses_strings_that_are_not_one_safe_word(value: str) -> None:
    with pytest.raises(ValueError):
        quote(value, "test")


def test_quote_accepts_hosts_paths_and_addresses() -> None:
    for value in ("*.foo.com", "/a/b:c@d(e)+f,g=h!i&j~k", "[fd00::1]:8080", "slot_0001"):
        assert quote(value, "test") == value


DEFAULT_TUNING = Tuning(
    timeout_connect="5s",
    timeout_server="60s",
    timeout_client="60s",
    timeout_http_request="60s",
    timeout_http_keep_alive="75s",
    hard_stop_after="10s",
    maxconn=None,
)


@pytest.mark.parametrize(
    ("values", "expected", "issues"),
    [
        ({}, DEFAULT_TUNING, ()),
        ({"proxy-connect-timeout": "3"}, replace(DEFAULT_TUNING, timeout_connect="3s"), ()),
        ({"proxy-read-timeout": "250ms"}, replace(DEFAULT_TUNING, timeout_server="250ms"), ()),
        ({"proxy-read-timeout": "2m"}, replace(DEFAULT_TUNING, timeout_server="120s"), ()),
        ({"max-worker-connections": "20000"}, replace(DEFAULT_TUNING, maxconn=20000), ()),
        ({"max-worker-connections": "3"}, DEFAULT_TUNING, ("InvalidSetting",)),
        ({"keep-alive": "forever"}, DEFAULT_TUNING, ("InvalidSetting",)),
        ({"unknown-key": "x"}, DEFAULT_TUNING, ("UnknownSetting",)),
        ({"use-http2": "false"}, DEFAULT_TUNING, ("UnsupportedSetting",)),
    ],
    ids=[
        "none",
        "bare-seconds",
        "milliseconds",
        "minutes",
        "maxconn",
        "maxconn-too-small",
        "bad",
        "unknown",
        "not-haproxy",
    ],
)
def test_tuning_formats_the_core_settings(
    values: dict[str, str], expected: Tuning, issues: tuple[str, ...]
) -> None:
    """The core parses the ConfigMap (and reports what it ignores, here with HAProxy's
    applied keys); the backend only writes the typed values in HAProxy's syntax."""
    settings, found = parse_settings(
        values, support=SettingsSupport("haproxy", frozenset(SETTINGS))
    )
    assert tuning_of(settings) == expected
    assert tuple(issue.reason for issue in found) == issues
    assert tuning_of(GlobalSettings()) == DEFAULT_TUNING


def test_slot_plan_keeps_assignments_and_fills_lowest_free_slot() -> None:
    first = SlotTable.plan(["a", "b", "c"], 2)
    assert first.assigned == {"a": slot_name(1), "b": slot_name(2), "c": slot_name(3)}
    assert first.free == (slot_name(4), slot_name(5))
    second = SlotTable.plan(["c", "d"], 2, first)
    assert second.assigned["c"] == slot_name(3)
    assert second.assigned["d"] == slot_name(1)
    assert second.free == (slot_name(2), slot_name(4), slot_name(5))


def test_slot_plan_grows_the_pool_to_the_spare_count() -> None:
    table = SlotTable.plan(["a", "b", "c"], 1, SlotTable.plan(["a"], 1))
    assert len(table.free) == 1
    assert table.slots == tuple(slot_name(n) for n in range(1, 5))


def test_https_location_omits_port_443() -> None:
    assert ":443" not in RenderSettings(https_port=443).https_location()
    assert ":8443%" in RenderSettings(https_port=8443).https_location()


def test_bind_address_refuses_a_hostname() -> None:
    with pytest.raises(ValueError):
        RenderSettings(bind="localhost").bind_address(80)
    assert RenderSettings(bind="::").bind_address(80) == "[::]:80"
