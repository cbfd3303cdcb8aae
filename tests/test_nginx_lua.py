"""The nginx backend in Lua mode: the decision, the render, detection, and the balancer and the
endpoint channel on a real nginx (the core's reconciler driving the plugin in this process).

Golden files for the Lua render (``tests/golden/nginx/lua-*.conf``) are regenerated with
``UPDATE_GOLDEN=1`` like the static ones.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from livekit import needs, request, require, wait_until
from nginx_oracle import nginx_answer, nginx_servers
from test_nginx_live import Live, configmap, endpoints, hello_services, ingress, service, slice_
from test_nginx_render import (
    GOLDEN,
    METHODS,
    OPTS,
    UPDATE_GOLDEN,
    _path,
    _world,
    build,
    fixture_model,
    needs_nginx,
    nginx_t,
    request_paths,
    routes,
)

from polyingress.core import (
    ApplyResult,
    ModelDiff,
    PathType,
    ReloadReason,
    RouteModel,
    RunSettings,
    fallback_certificate,
)
from polyingress.core.sources.manifests import load_objects
from polyingress.plugins.nginx import lua_support, plugin
from polyingress.plugins.nginx import render as render_module
from polyingress.plugins.nginx.apply import (
    ApplyPlan,
    NginxBackend,
    NginxOptions,
    plan,
    reload_reasons,
)
from polyingress.plugins.nginx.channel import TOKEN_HEADER, ChannelError, EndpointChannel
from polyingress.plugins.nginx.lua_support import LuaSupport, detect_lua, lua_render
from polyingress.plugins.nginx.render import (
    LuaRender,
    UnsafeValue,
    endpoint_state,
    render,
)
from polyingress.testing.cases import model_answer

FIXTURES = Path(__file__).parent / "fixtures" / "nginx"
LUA = LuaRender(
    modules=(
        "/usr/lib/nginx/modules/ndk_http_module.so",
        "/usr/lib/nginx/modules/ngx_http_lua_module.so",
    ),
    package_dir="/usr/lib/python3/dist-packages/polyingress/plugins/nginx/lua",
    channel_socket="/var/lib/polyingress/channel/nginx.sock",
    unavailable_port=18247,
    token="0123456789abcdef0123456789abcdef",
)
LUA_OPTS = replace(OPTS, lua=LUA)
LUA_CASES = ["cafe", "paths", "wildcard-catch-all", "alike"]
HAVE_LUA = shutil.which("nginx") is not None and detect_lua("nginx").available
needs_lua = needs("nginx-lua")


# -- the decision --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("diff", "lua", "expected"),
    [
        (ModelDiff(endpoints_changed=("a",)), True, ApplyPlan((), ("a",))),
        (
            ModelDiff(endpoints_changed=("a",)),
            False,
            ApplyPlan((ReloadReason.ENDPOINTS_CHANGED,), ()),
        ),
        (
            ModelDiff(endpoints_changed=("a",), routes_added=(("h", "/x", PathType.PREFIX),)),
            True,
            ApplyPlan((ReloadReason.ROUTES_CHANGED,), ("a",)),
        ),
        (
            ModelDiff(backends_added=("b",), endpoints_changed=("a",)),
            True,
            ApplyPlan((ReloadReason.ROUTES_CHANGED,), ("a",)),
        ),
        (ModelDiff(tls_changed=("h",)), True, ApplyPlan((ReloadReason.CERTIFICATES_CHANGED,), ())),
        (ModelDiff(settings_changed=True), True, ApplyPlan((ReloadReason.SETTINGS_CHANGED,), ())),
        (ModelDiff(vhosts_removed=("h",)), False, ApplyPlan((ReloadReason.ROUTES_CHANGED,), ())),
    ],
    ids=[
        "lua-endpoints-only-pushed",
        "static-endpoints-reload",
        "lua-routes-reload-endpoints-pushed",
        "lua-new-backend-reloads",
        "lua-tls-reloads",
        "lua-settings-reload",
        "static-hosts-reload",
    ],
)
def test_plan_reloads_only_for_routing_in_lua_mode(
    diff: ModelDiff, lua: bool, expected: ApplyPlan
) -> None:
    assert plan(diff, lua=lua) == expected


def test_endpoints_are_never_a_reload_reason_in_lua_mode() -> None:
    both = ModelDiff(endpoints_changed=("a",), default_backend_changed=True)
    assert reload_reasons(both) == (ReloadReason.ROUTES_CHANGED, ReloadReason.ENDPOINTS_CHANGED)
    assert reload_reasons(both, lua=True) == (ReloadReason.ROUTES_CHANGED,)


# -- the render ----------------------------------------------------------------------------------


def _with_endpoints(objects: list[dict[str, Any]], svc: str, ready: list[str]) -> Any:
    out = copy.deepcopy(objects)
    for obj in out:
        if (
            obj["kind"] == "EndpointSlice"
            and obj["metadata"]["labels"].get("kubernetes.io/service-name") == svc
        ):
            obj["endpoints"] = [{"addresses": [a], "conditions": {"ready": True}} for a in ready]
            obj["endpoints"] += [{"addresses": ["10.77.0.9"], "conditions": {"ready": False}}]
    return out


def test_lua_render_names_no_endpoint_and_endpoint_changes_leave_it_byte_identical() -> None:
    objects = load_objects(FIXTURES / "paths.yaml")
    model = build(objects)
    addresses = {e.address for b in model.backends for e in b.endpoints}
    assert addresses, "the fixture must have endpoints"
    base = render(model, LUA_OPTS, fallback_certificate())
    for address in addresses:
        assert address not in base.text
    ready_svc = next(b for b in model.backends if len(b.ready_endpoints) >= 1)
    empty_svc = next(b for b in model.backends if b.problem is None and not b.available)
    variants = {
        "n-to-m": _with_endpoints(objects, ready_svc.service, ["10.77.0.1", "10.77.0.2"]),
        "n-to-0": _with_endpoints(objects, ready_svc.service, []),
        "0-to-n": _with_endpoints(objects, empty_svc.service, ["10.77.0.3"]),
    }
    for name, changed in variants.items():
        other = build(changed)
        assert other.model_hash != model.model_hash, name
        text = render(other, LUA_OPTS, fallback_certificate()).text
        assert text == base.text, f"{name}: the Lua render changed"
        assert (
            render(other, OPTS, fallback_certificate()).text
            != render(model, OPTS, fallback_certificate()).text
        ), f"{name}: the static render must change (sanity)"


def test_lua_render_proxies_backends_without_endpoints_and_keeps_503_for_missing_ones() -> None:
    model = fixture_model("paths")
    text = render(model, LUA_OPTS, fallback_certificate()).text
    proxy = 'proxy_pass "http://polyingress_lua";'
    # No ready endpoint today: proxied all the same (its endpoints are pushed later).
    assert f'set $polyingress_backend "shop__empty__80"; {proxy}' in text
    # One upstream for every backend, and no endpoint address in the text.
    assert (
        len(re.findall(r"^    upstream ", text, re.M)) == 1 and text.count("server 0.0.0.1;") == 1
    )
    assert text.count("balancer_by_lua_block") == 1
    missing = [b for b in model.backends if b.problem is not None]
    assert missing
    for backend in missing:
        assert f'set $polyingress_backend "{backend.name}"; {proxy}' in text


def test_lua_render_keeps_the_channel_off_tcp_and_the_responder_on_loopback() -> None:
    text = render(fixture_model("cafe"), LUA_OPTS, fallback_certificate()).text
    listens = re.findall(r"listen (\S+)", text)
    assert f'"unix:{LUA.channel_socket}";' in listens
    assert '"127.0.0.1:18247";' in listens
    assert text.count('polyingress_channel").handle()') == 1
    server = text[text.index(f"unix:{LUA.channel_socket}") :]
    assert "listen" not in server.split("server {", 1)[0].replace(f"unix:{LUA.channel_socket}", "")
    assert text.index('load_module "/usr/lib/nginx/modules/ndk_http_module.so";') < text.index(
        'load_module "/usr/lib/nginx/modules/ngx_http_lua_module.so";'
    )


# Hosts drawn from a few tables, so that several share a shape and one server block.
TABLES = st.lists(routes, min_size=1, max_size=3)
GROUP_HOSTS = [f"h{i}.example.com" for i in range(6)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tables=TABLES,
    picks=st.lists(st.tuples(st.integers(0, 2), st.booleans()), min_size=6, max_size=6),
    default=st.sampled_from([None, "s1", "s3", "s4"]),
    requests=request_paths,
)
def test_hosts_served_alike_answer_as_the_model_in_lua_mode(
    tables: list[list[tuple[str, str, str]]],
    picks: list[tuple[int, bool]],
    default: str | None,
    requests: list[str],
) -> None:
    """Lua mode: hosts whose blocks differ only in name and backends share a server block and
    read their backends from maps of $host; every request gets the model's answer (the
    balancer's 503 for a backend without endpoints included)."""
    rules, tls = [], []
    for host, (index, secure) in zip(GROUP_HOSTS, picks, strict=True):
        table = tables[index % len(tables)]
        # The same table to another Service: same shape, other backends.
        swap = {"s1": "s2", "s2": "s1"} if host.startswith(("h1", "h3")) else {}
        paths = [_path(p, t, swap.get(svc, svc)) for p, t, svc in table]
        rules.append({"host": host, "http": {"paths": paths or [_path("/", "Prefix", "s1")]}})
        if secure:
            tls.append({"hosts": [host]})
    model = build(_world(rules, tls=tls, default=default))
    text = render(model, LUA_OPTS, fallback_certificate()).text
    event("hosts share a server block" if "served alike" in text else "no shared block")
    servers = nginx_servers(text)
    probes = set(requests) | {p for t in tables for p, _t, _s in t}
    probes |= {p.rstrip("/") + suffix for p in list(probes) for suffix in ("/", "x", "/x")}
    for scheme, port in (("http", OPTS.http_port), ("https", OPTS.https_port)):
        for host in GROUP_HOSTS:
            for path in sorted(p for p in probes if p.startswith("/")):
                for method in METHODS:
                    got = nginx_answer(servers, port, host, path, method)
                    if got in model.backend_index and not model.backend(got).available:
                        got = "503"  # the balancer sends it to the local 503 responder
                    want = model_answer(model, scheme, host, path, method)
                    assert got == want, (
                        f"{method} {scheme}://{host}{path}: nginx {got}, model {want}"
                    )


@pytest.mark.parametrize("case", LUA_CASES)
def test_golden_lua_config(case: str) -> None:
    text = render(fixture_model(case), LUA_OPTS, fallback_certificate()).text
    golden = GOLDEN / f"lua-{case}.conf"
    if UPDATE_GOLDEN:
        golden.write_text(text)
    assert golden.exists(), f"{golden} missing: run with UPDATE_GOLDEN=1"
    assert text == golden.read_text(), f"{case}: rendered Lua config differs from {golden}"


@needs_lua
@pytest.mark.parametrize("case", LUA_CASES)
def test_golden_lua_config_passes_nginx_t_without_warnings(case: str, tmp_path: Path) -> None:
    """The golden text with this machine's module and package paths and a real socket path."""
    support = detect_lua("nginx")
    local = replace(
        LUA,
        modules=support.modules,
        package_dir=str(lua_support.LUA_PACKAGE_DIR),
        channel_socket=str(tmp_path / "channel" / "nginx.sock"),
    )
    (tmp_path / "channel").mkdir(mode=0o700)
    (tmp_path / "conf").mkdir()
    config = render(fixture_model(case), replace(OPTS, lua=local), fallback_certificate())
    text = (GOLDEN / f"lua-{case}.conf").read_text()
    for old, new in (
        (LUA.package_dir, local.package_dir),
        (LUA.channel_socket, local.channel_socket),
        *zip(LUA.modules, local.modules, strict=True),
    ):
        text = text.replace(old, new)
    result = nginx_t(tmp_path, config, text)
    assert result.returncode == 0, result.stdout
    assert "[warn]" not in result.stdout, result.stdout


@pytest.mark.parametrize(
    "token", ['a"b', "a\\b", "a}b", "a\nb", "é"], ids=["quote", "backslash", "brace", "lf", "utf8"]
)
def test_lua_values_that_need_quoting_are_refused(token: str) -> None:
    with pytest.raises(UnsafeValue):
        render(RouteModel(), replace(OPTS, lua=replace(LUA, token=token)), fallback_certificate())


def test_endpoint_state_lists_ready_endpoints_in_model_order() -> None:
    model = fixture_model("paths")
    state = endpoint_state(model)
    assert set(state) == {b.name for b in model.backends}
    for backend in model.backends:
        assert state[backend.name] == [(e.address, e.port) for e in backend.ready_endpoints]
    assert endpoint_state(model, ["shop__v6__80", "nope"]) == {
        "shop__v6__80": state["shop__v6__80"]
    }


# -- detection and options -----------------------------------------------------------------------


def test_lua_mode_off_auto_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kw: dict[str, Any] = {"token": "t", "unavailable_port": 1}
    assert lua_render("off", "nginx", tmp_path, **kw) == (None, "off (--nginx-lua off)")
    missing = LuaSupport(False, "ngx_http_lua_module.so not in /x")
    monkeypatch.setattr(lua_support, "detect_lua", lambda _binary: missing)
    assert lua_render("auto", "nginx", tmp_path, **kw) == (
        None,
        "unavailable: ngx_http_lua_module.so not in /x",
    )
    with pytest.raises(RuntimeError, match=r"--nginx-lua on, but .* not in /x"):
        lua_render("on", "nginx", tmp_path, **kw)
    monkeypatch.setattr(lua_support, "detect_lua", lambda _binary: LuaSupport(True, "", ()))
    lua, state = lua_render("auto", "nginx", tmp_path, **kw)
    assert lua is not None and state == "on"
    assert lua.channel_socket == str(tmp_path / "channel" / "nginx.sock")
    deep = tmp_path / ("d" * 100)
    assert lua_render("auto", "nginx", deep, **kw)[1].endswith("is longer than 107 bytes")


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (
            "polyingress-lua-probe: init_by_lua:2: module 'cjson.safe' not found:\n",
            "Lua module 'cjson.safe' not found (lua-resty-core / lua-cjson missing?)",
        ),
        (
            'nginx: [emerg] dlopen() "/m/ngx_http_lua_module.so" failed (x: undefined symbol)\n',
            'dlopen() "/m/ngx_http_lua_module.so" failed (x: undefined symbol)',
        ),
    ],
    ids=["lua-module-missing", "dlopen"],
)
def test_detection_failure_is_one_sentence(output: str, reason: str) -> None:
    assert lua_support._failure(output) == reason


@needs_lua
def test_detection_runs_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    detect_lua.cache_clear()
    try:
        assert detect_lua("nginx").available
        monkeypatch.setattr(lua_support, "_REQUIRES", (*lua_support._REQUIRES, "no.such.mod"))
        detect_lua.cache_clear()
        assert detect_lua("nginx") == LuaSupport(
            False, "Lua module 'no.such.mod' not found (lua-resty-core / lua-cjson missing?)"
        )
    finally:
        detect_lua.cache_clear()


@needs_nginx
def test_without_lua_the_backend_says_so_once_and_renders_static_upstreams(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = LuaSupport(False, "ngx_http_lua_module.so not in /usr/lib/nginx/modules")
    monkeypatch.setattr(lua_support, "detect_lua", lambda _binary: missing)
    settings = RunSettings(backend="nginx", workdir=tmp_path / "work")
    with caplog.at_level(logging.INFO, logger="polyingress.nginx"):
        backend = NginxBackend(settings, NginxOptions(lua="auto"))
        for _ in range(3):
            config = backend.render(fixture_model("cafe"), lua=backend._use_lua())
    assert backend.lua is None and backend.channel is None
    assert not config.lua and "lua" not in config.text
    assert caplog.text.count("Lua balancer unavailable: ngx_http_lua_module.so not in") == 1
    assert "static upstreams: every endpoint change reloads nginx" in caplog.text
    with pytest.raises(RuntimeError, match=r"--nginx-lua on, but the Lua balancer cannot run"):
        plugin.hooks.polyingress_create_backend(
            settings=replace(settings, options=argparse.Namespace(nginx_lua="on"))
        )


def test_nginx_lua_option_is_auto_on_or_off() -> None:
    parser = argparse.ArgumentParser()
    plugin.hooks.polyingress_add_options(parser=parser)
    assert plugin.options_from(RunSettings(backend="nginx", options=parser.parse_args([]))).lua == (
        "auto"
    )
    ns = parser.parse_args(["--nginx-lua", "off"])
    assert plugin.options_from(RunSettings(backend="nginx", options=ns)).lua == "off"
    with pytest.raises(SystemExit):
        parser.parse_args(["--nginx-lua", "maybe"])


@needs_nginx
def test_plugins_listing_says_whether_lua_is_used() -> None:
    info = plugin.hooks.polyingress_backend_info()
    lua = [f for f in info.features if "Lua balancer" in f]
    assert len(lua) == 1
    if HAVE_LUA:
        assert "without reload" in lua[0]
    else:
        assert "static upstreams" in lua[0] and "a reload per endpoint change" in lua[0]


# -- on a real nginx -----------------------------------------------------------------------------


def lua_world(port: int, workers: str = "2") -> list[dict[str, Any]]:
    return [
        *hello_services(port),
        ingress("app", "app.test", {"/x": "svc-a", "/y": "svc-b"}),
        configmap(**{"worker-processes": workers}),
    ]


class LuaLive(Live):
    applied: list[ApplyResult]

    def channel(self) -> EndpointChannel:
        channel = self.backend.channel
        assert channel is not None
        return channel

    def state(self, name: str) -> list[list[Any]] | None:
        _generation, state = self.channel().read([name])
        return state.get(name)

    def workers(self) -> list[int]:
        assert self.backend.process is not None
        return self.backend.process.workers()


def _start(tmp_path: Path, workers: str = "2") -> LuaLive:
    state = LuaLive.start(
        tmp_path,
        lambda port: lua_world(port, workers),
        nginx_lua="on",
        nginx_reload_timeout=20.0,
    )
    state.applied = []
    state.controller.on_applied(lambda _model, result: state.applied.append(result))
    return state


@pytest.fixture
def lua_live(tmp_path: Path) -> Iterator[LuaLive]:
    require("nginx-lua")
    state = _start(tmp_path)
    with state.serving():
        yield state


@pytest.mark.live
def test_endpoint_changes_to_zero_and_back_are_served_without_reload(lua_live: LuaLive) -> None:
    live = lua_live
    port = live.fleet.port
    text, workers, reloads = live.backend.running, live.workers(), live.backend.reloads
    assert text is not None and text.lua
    assert set(live.served_by("app.test", "/x/1")) == {"a1", "a2"}

    live.change(endpoints("svc-a", port, "a2"))
    assert live.served_by("app.test", "/x/1") == Counter({"a2": 20})
    live.change(endpoints("svc-a", port, not_ready=("127.0.4.1",)))
    assert {live.get("app.test", "/x/1").status for _ in range(10)} == {503}
    assert live.state("live__svc-a__80") == []
    live.change(endpoints("svc-a", port, "b2", "a1"))
    assert set(live.served_by("app.test", "/x/1")) == {"b2", "a1"}
    assert live.state("live__svc-a__80") == [["127.0.4.1", port], ["127.0.4.4", port]]

    assert live.backend.reloads == reloads
    assert live.workers() == workers
    assert live.backend.running is text
    assert [(r.reloaded, r.reasons, r.runtime_changes) for r in live.applied] == [
        (False, (ReloadReason.ENDPOINTS_CHANGED,), 1)
    ] * 3


@pytest.mark.live
def test_a_routing_change_reloads_and_its_new_backend_has_endpoints_at_once(
    lua_live: LuaLive,
) -> None:
    live = lua_live
    port = live.fleet.port
    reloads = live.backend.reloads
    live.change(
        service("svc-c"),
        slice_("svc-c", port, ["127.0.4.3"]),
        endpoints("svc-a", port, "a1"),
        ingress("app", "app.test", {"/x": "svc-a", "/y": "svc-b", "/z": "svc-c"}),
    )
    assert live.backend.reloads == reloads + 1
    assert live.applied[-1] == ApplyResult(reloaded=True, reasons=(ReloadReason.ROUTES_CHANGED,))
    assert live.served_by("app.test", "/z/1") == Counter({"b1": 20})
    assert live.served_by("app.test", "/x/1") == Counter({"a1": 20})
    _generation, state = live.channel().read()
    assert set(state) == {"live__svc-a__80", "live__svc-b__80", "live__svc-c__80"}

    live.change(ingress("app", "app.test", {"/x": "svc-a"}))
    _generation, state = live.channel().read()
    assert set(state) == {"live__svc-a__80"}, "a full push after a reload drops old backends"


@pytest.mark.live
def test_an_endpoint_change_is_served_while_a_reload_runs(lua_live: LuaLive) -> None:
    """An endpoint change never waits behind a reload: with nginx's master stopped in the middle
    of one (SIGSTOP: the HUP waits, so does the apply), the endpoint change made meanwhile is
    pushed by the core's runtime lane and served by the running workers at once. The reload's
    own channel writes afterwards do not bring the old endpoint back."""
    live = lua_live
    port = live.fleet.port
    process = live.backend.process
    assert process is not None and process.pid is not None
    reloads = live.backend.reloads
    conf = live.settings.workdir / "conf" / "nginx.conf"
    assert set(live.served_by("app.test", "/x/1")) == {"a1", "a2"}
    os.kill(process.pid, signal.SIGSTOP)
    try:
        routes = {"/x": "svc-a", "/y": "svc-b", "/w": "svc-b"}
        live.store.replace_many(upserts=[ingress("app", "app.test", routes)], deletes=())
        wait_until(lambda: '"/w"' in conf.read_text(), timeout=10)  # swapped; HUP pending
        live.store.replace_many(upserts=[endpoints("svc-a", port, "a2")], deletes=())
        wait_until(lambda: live.served_by("app.test", "/x/1", 10) == Counter({"a2": 10}))
        assert live.backend.reloads == reloads, "the reload has not finished"
        assert live.get("app.test", "/w/1").status == 404, "the old configuration serves"
        assert live.controller.lane_pushes == 1
    finally:
        os.kill(process.pid, signal.SIGCONT)
    wait_until(lambda: live.backend.reloads == reloads + 1, timeout=20)
    wait_until(lambda: live.controller.last_good is live.controller.last_result.model)
    assert live.served_by("app.test", "/w/1") == Counter({"b1": 20})
    assert live.served_by("app.test", "/x/1") == Counter({"a2": 20})
    assert live.state("live__svc-a__80") == [["127.0.4.2", port]]


@pytest.mark.live
def test_a_refused_connection_is_retried_on_the_next_endpoint(lua_live: LuaLive) -> None:
    live = lua_live
    # 127.0.4.99 has no server: every attempt there is refused before anything is sent.
    live.change(slice_("svc-a", live.fleet.port, ["127.0.4.99", "127.0.4.1", "127.0.4.98"]))
    for method in ("GET", "POST"):
        for _ in range(12):
            resp = request(live.settings.http_port, "app.test", "/x/r", method=method, body=b"x")
            assert (resp.status, resp.server_name) == (200, "a1"), method


class _ReadThenClose:
    """Reads one request (headers and body) per connection, then closes without answering."""

    def __init__(self, address: str, port: int) -> None:
        self.sock = socket.create_server((address, port))
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head = data.split(b"\r\n\r\n", 1)[0]
                m = re.search(rb"(?i)content-length: *(\d+)", head)
                want = len(head) + 4 + (int(m.group(1)) if m else 0)
                while len(data) < want:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(head.split(b"\r\n", 1)[0])

    def stop(self) -> None:
        self.sock.close()


@pytest.mark.live
def test_a_sent_request_is_replayed_only_when_idempotent(tmp_path: Path) -> None:
    """nginx's own rule (nginx notes §7), kept by the balancer: a request the endpoint read and then
    dropped is retried on the next endpoint for GET, never for POST (502)."""
    require("nginx-lua")
    live = _start(tmp_path, workers="1")  # one worker: strict round-robin
    closer = _ReadThenClose("127.0.4.97", live.fleet.port)
    try:
        live.change(slice_("svc-a", live.fleet.port, ["127.0.4.1", "127.0.4.97"]))
        posts = [
            request(live.settings.http_port, "app.test", "/x/p", method="POST", body=b"data")
            for _ in range(4)
        ]
        assert sorted(r.status for r in posts) == [200, 200, 502, 502]
        assert closer.requests == [b"POST /x/p HTTP/1.1"] * 2, "each POST reached it once"
        gets = [live.get("app.test", "/x/g") for _ in range(4)]
        assert [(r.status, r.server_name) for r in gets] == [(200, "a1")] * 4
        assert b"GET /x/g HTTP/1.1" in closer.requests
    finally:
        closer.stop()
        live.controller.stop()
        live.fleet.stop()


@pytest.mark.live
def test_upstream_connections_are_kept_alive(lua_live: LuaLive) -> None:
    live = lua_live
    server = live.fleet.servers["b1"].server
    accepted: list[object] = []
    original = server.get_request

    def counting() -> Any:
        got = original()
        accepted.append(got)
        return got

    server.get_request = counting  # type: ignore[method-assign]
    for _ in range(40):
        assert live.get("app.test", "/y/k").server_name == "b1"
    assert 1 <= len(accepted) <= 4, f"{len(accepted)} connections for 40 requests"


@pytest.mark.live
def test_a_failed_push_falls_back_to_static_upstreams_then_lua_returns(
    lua_live: LuaLive, caplog: pytest.LogCaptureFixture
) -> None:
    live = lua_live
    port = live.fleet.port
    backend = live.backend
    good = backend.channel
    assert good is not None
    backend.channel = EndpointChannel(good.path, "not-the-token")
    reloads = backend.reloads
    live.change(endpoints("svc-a", port, "b2"))
    assert live.applied[-1].reloaded
    assert live.applied[-1].reasons == (
        ReloadReason.ENDPOINTS_CHANGED,
        ReloadReason.RUNTIME_FAILED,
    )
    assert "wrong X-Polyingress-Token" in live.applied[-1].detail
    assert backend.reloads == reloads + 1
    running = backend.running
    assert running is not None and not running.lua
    assert f'server "127.0.4.4:{port}";' in running.text
    assert live.served_by("app.test", "/x/1") == Counter({"b2": 20})
    assert "endpoint push failed (PATCH /endpoints: HTTP 403: wrong X-Polyingress-Token)" in (
        caplog.text
    )

    live.change(endpoints("svc-a", port, "a1"))  # within the backoff: static, a reload
    assert backend.reloads == reloads + 2
    assert live.applied[-1].reasons == (ReloadReason.ENDPOINTS_CHANGED,)
    assert live.served_by("app.test", "/x/1") == Counter({"a1": 20})

    backend.channel = good
    backend._lua_retry_at = 0.0  # the backoff is over
    live.change(endpoints("svc-a", port, "a2"))
    assert live.applied[-1] == ApplyResult(reloaded=True, reasons=(ReloadReason.RUNTIME_RESTORED,))
    assert backend.running is not None and backend.running.lua
    # A new dictionary: nginx filled it from channel/endpoints.json (generation 1) while
    # loading the config, then the controller pushed the whole state (2).
    assert good.read()[0] == 2
    assert live.served_by("app.test", "/x/1") == Counter({"a2": 20})
    workers = live.workers()
    live.change(endpoints("svc-a", port, "a1"))
    assert live.applied[-1].reloaded is False
    assert live.workers() == workers
    assert live.served_by("app.test", "/x/1") == Counter({"a1": 20})


@pytest.mark.live
def test_a_full_dictionary_falls_back_to_static_upstreams(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require("nginx-lua")
    monkeypatch.setattr(render_module, "LUA_DICT_SIZE", "32k")
    live = _start(tmp_path)
    try:
        assert live.backend.running is not None and "polyingress_backends 32k;" in (
            live.backend.running.text
        )
        many = [f"127.0.{5 + n // 250}.{n % 250 + 1}" for n in range(3000)]
        live.change(slice_("svc-a", live.fleet.port, many))
        assert live.applied[-1].reloaded
        assert live.applied[-1].reasons == (
            ReloadReason.ENDPOINTS_CHANGED,
            ReloadReason.RUNTIME_FAILED,
        )
        assert "HTTP 507: no memory in lua_shared_dict" in caplog.text
        running = live.backend.running
        assert running is not None and not running.lua
        assert running.text.count(f':{live.fleet.port}";') >= 3001
        assert live.served_by("app.test", "/y/1") == Counter({"b1": 20})
    finally:
        live.controller.stop()
        live.fleet.stop()


@pytest.mark.live
def test_a_restarted_master_serves_the_current_endpoints(lua_live: LuaLive) -> None:
    live = lua_live
    live.change(endpoints("svc-a", live.fleet.port, "b2"))
    process = live.backend.process
    assert process is not None and process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    wait_until(lambda: live.backend.restarts == 1 and live.backend.health().ready, timeout=15)
    assert live.served_by("app.test", "/x/1") == Counter({"b2": 20})
    assert live.state("live__svc-a__80") == [["127.0.4.4", live.fleet.port]]
    assert live.channel().read()[0] == 2, "filled from the state file, then pushed"
    assert "Lua balancer" in live.backend.health().detail


def _status(sock_path: Path, method: str, headers: dict[str, str], body: bytes = b"") -> int:
    conn = http.client.HTTPConnection("localhost", timeout=5)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.connect(str(sock_path))
    try:
        conn.request(method, "/endpoints", body=body or None, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.live
def test_the_channel_refuses_every_client_but_the_controller(lua_live: LuaLive) -> None:
    live = lua_live
    channel = live.channel()
    before = channel.read()
    path = channel.path
    workdir = live.settings.workdir
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    assert (path.stat().st_mode & 0o777) == 0o600
    assert ((workdir / "conf" / "nginx.conf").stat().st_mode & 0o777) == 0o600
    assert ((workdir / "channel" / "endpoints.json").stat().st_mode & 0o777) == 0o600

    evil = json.dumps({"backends": {"live__svc-a__80": [["10.66.0.1", 80]]}}).encode()
    assert _status(path, "GET", {}) == 401
    assert _status(path, "PUT", {}, evil) == 401
    for wrong in ("x", channel.token[:-1] + "0", channel.token + "0", channel.token.upper()):
        if wrong == channel.token:
            continue
        assert _status(path, "PUT", {TOKEN_HEADER: wrong}, evil) == 403
        assert _status(path, "GET", {TOKEN_HEADER: wrong}) == 403
    assert _status(path, "PUT", {TOKEN_HEADER: channel.token}, b'{"backends": 1}') == 400
    bad_address = json.dumps({"backends": {"live__svc-a__80": [["evil.example", 80]]}}).encode()
    assert _status(path, "PATCH", {TOKEN_HEADER: channel.token}, bad_address) == 400
    assert _status(path, "DELETE", {TOKEN_HEADER: channel.token}) == 405
    assert channel.read() == before, "nothing changed"

    # The channel is not on any TCP listener, not even with the token.
    headers = {TOKEN_HEADER: channel.token}
    ports = [
        ("http", live.settings.http_port),
        ("https", live.settings.https_port),
        ("http", live.backend.render_options.status_port),
    ]
    lua = live.backend.lua
    assert lua is not None
    ports.append(("http", lua.unavailable_port))
    for scheme, port in ports:
        for host in ("app.test", "localhost"):
            resp = request(port, host, "/endpoints", scheme=scheme, headers=headers)
            assert resp.status in (404, 503), (port, resp.status)
            assert b"generation" not in resp.body

    if os.geteuid() == 0:
        # Another user (the workers' nobody) cannot even connect.
        code = (
            "import os, socket, sys; os.setgid(65534); os.setuid(65534); "
            "s = socket.socket(socket.AF_UNIX); "
            "sys.exit(0 if s.connect_ex(sys.argv[1]) != 0 else 1)"
        )
        assert subprocess.run([sys.executable, "-c", code, str(path)], check=False).returncode == 0


def test_channel_errors_name_the_request(tmp_path: Path) -> None:
    channel = EndpointChannel(tmp_path / "none.sock", "t", timeout=1)
    with pytest.raises(ChannelError, match=r"GET .*none\.sock"):
        channel.read()
