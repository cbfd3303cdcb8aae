"""Property: hostile input never becomes proxy configuration, on any backend.

Each example is a world (``hostile.hostile_world``): several Ingresses, hostile and
hostile-but-valid, with the Services, EndpointSlices, TLS Secrets and ConfigMap they name. For
every backend the world is either rejected object by object with a precise reason (the Ingress
and the field), or its model is rendered and

* the configuration passes the proxy's own check (``nginx -t``, ``haproxy -c``, the Traefik v3
  file-provider JSON schema),
* has exactly the blocks, map lines or routers the model calls for and nothing else (no
  directive outside an allow-list, no value a hostile annotation or Secret carried),
* and routes every probe request exactly as the model does (nginx: a simulator of its server
  and location selection over the parsed configuration; HAProxy: the frontend's map lookups;
  Traefik: the documentation oracle ``traefik_oracle``);
* HAProxy Runtime API commands, and nginx endpoint-channel requests (Lua mode), built for the
  change from a previous model carry only the model's validated strings.

nginx is checked in both modes ``polyingress run`` may use: static upstreams, and the Lua
balancer (``nginx-lua``; livekit's rule: skipped without the Lua module, failed under CI).

A bounded live subset runs on real Traefik (managed by its backend): a few worlds, each applied
and served, and a sample of each world's probe requests sent over HTTP(S) and answered as the
model says (status, backend, redirect Location).

Batching many objects per example keeps ``nginx -t`` and ``haproxy -c`` affordable: the
default suite runs 50-100 worlds per backend (derandomized, so CI sees the same ones; about
25 s on 2 cores).
The long target runs thousands of random worlds per backend (README, "Fuzzing")::

    POLYINGRESS_FUZZ_EXAMPLES=5000 .venv/bin/pytest -m slow tests/test_fuzz_backends.py
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hostile import (
    ANNOTATION_CANARY,
    CONFIGMAP_CANARY,
    CONFIGMAP_REF,
    FUZZ_NS,
    SECRET_CANARY,
    hostile_world,
)
from hypothesis import HealthCheck, given, settings
from livekit import AddressEcho, backend_param, free_port, needs
from nginx_oracle import NginxServer, Stmt, nginx_answer, parse_nginx, servers_of, stmt_answer
from traefik_oracle import FALLBACK, Outcome, Request, route, schema_validator

from polyingress.core import (
    BuildOptions,
    BuildResult,
    Endpoint,
    ObjectRef,
    ObjectStore,
    PathType,
    RouteModel,
    build_model,
    diff,
    fallback_certificate,
    normalize_request_path,
)
from polyingress.plugins.haproxy import apply as haproxy_apply
from polyingress.plugins.haproxy import render as haproxy_render
from polyingress.plugins.haproxy.apply import (
    group_entries,
    plan_routes,
    plan_servers,
    update_entries,
)
from polyingress.plugins.haproxy.runtime import (
    Command,
    Reply,
    RuntimeClient,
    ServerAdmin,
    ServerOpState,
    ServerState,
)
from polyingress.plugins.nginx import render as nginx_render
from polyingress.plugins.nginx.apply import explain_failure
from polyingress.plugins.nginx.channel import EndpointChannel
from polyingress.plugins.nginx.lua_support import lua_render
from polyingress.plugins.nginx.process import check_config
from polyingress.plugins.traefik import render as traefik_render
from polyingress.testing.cases import model_answer

NGINX = shutil.which("nginx")
HAPROXY = shutil.which("haproxy")
BUILD = BuildOptions(configmap=CONFIGMAP_REF)
CONFIGMAP = ObjectRef(kind="ConfigMap", namespace=CONFIGMAP_REF[0], name=CONFIGMAP_REF[1])
HTTP_PORT, HTTPS_PORT, STATUS_PORT = free_port(), free_port(), free_port()
SPARE = 4

# Worlds per backend in the default suite (each world holds up to 6 Ingresses); the long target
# takes its count from POLYINGRESS_FUZZ_EXAMPLES.
DEFAULT_EXAMPLES = {"nginx": 60, "nginx-lua": 50, "haproxy": 60, "traefik": 100}
LONG_EXAMPLES = int(os.environ.get("POLYINGRESS_FUZZ_EXAMPLES", "0") or 0)

# A problem names the object and one of its fields (validate.py, annotations.py, builder.py).
INGRESS_FIELD = re.compile(
    r"^(metadata\.(name|annotations\[.*\])|spec(\.(rules|tls|defaultBackend|ingressClassName).*)?)$"
)


def build(objects: list[dict[str, Any]]) -> BuildResult:
    store = ObjectStore()
    store.replace_many(upserts=objects, deletes=())
    return build_model(store.snapshot(), BUILD)


def configmap_data(objects: list[dict[str, Any]]) -> dict[str, str]:
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            return dict(obj["data"])
    return {}


def previous_world(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The world before the change a runtime apply makes: every other Ingress removed."""
    out, n = [], 0
    for obj in objects:
        if obj["kind"] == "Ingress":
            n += 1
            if n % 2 == 0:
                continue
        out.append(obj)
    return out


# -- the core's side: rejections are precise -------------------------------------------------------


def check_problems(objects: list[dict[str, Any]], result: BuildResult) -> None:
    names = {o["metadata"]["name"] for o in objects if o["kind"] == "Ingress"}
    for ref in result.rejected:
        assert ref.kind == "Ingress" and ref.namespace == FUZZ_NS and ref.name in names, ref
        errors = [p for p in result.errors if p.ref == ref]
        assert errors, f"{ref} rejected without an error naming it"
        for p in errors:
            assert INGRESS_FIELD.match(p.field), (ref, p.field)
            assert str(p).startswith(f"Ingress {FUZZ_NS}/{ref.name}: {p.field}: "), str(p)
    served = set(result.served)
    assert not served & set(result.rejected)
    for p in result.problems:
        assert "\n" not in p.message and "\x00" not in p.message, p
        assert SECRET_CANARY not in str(p), "Secret content in a problem"
        if p.ref.kind == "Ingress":
            assert p.ref.name in names, p
    model = result.model
    for vhost in model.vhosts:
        for r in vhost.routes:
            assert r.source in served, (vhost.host, r)
        if vhost.tls is not None:
            assert vhost.tls.source in served
            if vhost.tls.certificate is not None:
                assert vhost.tls.certificate in model.certificate_index


# Request methods of the plain-HTTP probes (the HTTPS redirect depends on the method); HTTPS
# probes are GETs.
METHODS = {"http": ("GET", "HEAD", "POST"), "https": ("GET",)}


def probes(model: RouteModel) -> tuple[list[str], list[str]]:
    """Request hosts and paths that reach every virtual host and every route's edges."""
    hosts = {"unknown.invalid"}
    paths = {"/", "/x", "/x/"}
    for vhost in model.vhosts:
        if vhost.host is not None and vhost.host.startswith("*."):
            suffix = vhost.host[2:]
            hosts |= {f"x.{suffix}", f"y.x.{suffix}", suffix}
        elif vhost.host is not None:
            hosts.add(vhost.host)
        for r in vhost.routes:
            paths |= {r.path, r.path + "/", r.path + "/y", r.path + "y"}
            if len(r.path) > 1:
                paths.add(r.path[:-1])
    # Every proxy applies the request-path rule first; the configurations are judged on what
    # it yields (tests/test_request_paths.py holds the rule itself live).
    normalized = {normalize_request_path(p) for p in paths}
    return sorted(hosts), sorted(p for p in normalized if p is not None)[:80]


# Directive names per context: everything the nginx renderer may write, nothing else; the Lua
# mode adds its own (LUA_ALLOWED).
NGINX_ALLOWED = {
    "main": {
        "daemon",
        "master_process",
        "worker_processes",
        "worker_shutdown_timeout",
        "pcre_jit",
        "pid",
        "error_log",
        "events",
        "http",
    },
    "events": {"worker_connections"},
    "http": {
        "default_type",
        "server_tokens",
        "log_format",
        "access_log",
        "client_body_temp_path",
        "proxy_temp_path",
        "fastcgi_temp_path",
        "uwsgi_temp_path",
        "scgi_temp_path",
        "server_names_hash_bucket_size",
        "server_names_hash_max_size",
        "map_hash_bucket_size",
        "map_hash_max_size",
        "keepalive_timeout",
        "keepalive_requests",
        "client_header_timeout",
        "client_body_timeout",
        "large_client_header_buffers",
        "client_max_body_size",
        "map",
        "proxy_http_version",
        "proxy_set_header",
        "proxy_redirect",
        "proxy_connect_timeout",
        "proxy_read_timeout",
        "proxy_send_timeout",
        "proxy_buffering",
        "proxy_buffer_size",
        "proxy_next_upstream",
        "proxy_next_upstream_tries",
        "ssl_protocols",
        "ssl_ciphers",
        "ssl_session_cache",
        "ssl_session_timeout",
        "upstream",
        "server",
    },
    "upstream": {"server", "keepalive", "keepalive_timeout", "keepalive_requests"},
    "server": {
        "listen",
        "server_name",
        "ssl_certificate",
        "ssl_certificate_key",
        "if",
        "rewrite",
        "location",
    },
    "status-server": {"listen", "access_log", "location"},
    "location": {"return", "proxy_pass", "if", "set"},
    "status-location": {"default_type", "return", "stub_status"},
    "if": {"return", "proxy_pass", "set"},
}
LUA_ALLOWED = {
    "main": {"load_module"},
    "http": {"lua_package_path", "lua_shared_dict", "init_by_lua_block"},
    "upstream": {"balancer_by_lua_block"},
    "status-server": {"client_max_body_size", "client_body_buffer_size"},
    "status-location": {"content_by_lua_block"},
}
LUA_PORT = free_port()
LUA_PREFIX = Path(tempfile.gettempdir()) / "polyingress-fuzz-lua"
LUA_TOKEN = "0123456789abcdef0123456789abcdef"


def _check_names(stmts: Iterable[Stmt], context: str, lua: bool) -> None:
    allowed = NGINX_ALLOWED[context] | (LUA_ALLOWED.get(context, set()) if lua else set())
    for s in stmts:
        assert s.name in allowed, f"{s.name!r} in {context}: {s.args}"


def _location_keys(routes: Iterable[Any]) -> set[tuple[str, ...]]:
    keys: set[tuple[str, ...]] = {("/",)}
    for r in routes:
        if r.path_type is PathType.EXACT:
            keys.add(("=", r.path))
            if r.path.endswith("/") and r.path != "/":
                keys.add(("=", r.path[:-1]))  # the twin that stops nginx's own 301
        elif r.path != "/":
            keys |= {("=", r.path), ("^~", r.path + "/")}
    return keys


def check_lua_parts(main: list[Stmt], http: Stmt, lua: Any, servers: list[NginxServer]) -> None:
    """The Lua mode's own lines: exactly the renderer's constants, no model string."""
    assert [s.args[1:] for s in main if s.name == "load_module"] == [[m] for m in lua.modules]
    assert [s.args[1:] for s in http.children("lua_package_path")] == [
        [lua.package_dir.rstrip("/") + "/?.lua;;"]
    ]
    assert [s.args[1:] for s in http.children("lua_shared_dict")] == [
        [nginx_render.LUA_DICT, "32m"]
    ]
    (init,) = http.children("init_by_lua_block")
    assert init.args[1] == (
        f'require("polyingress_channel").init({{ token = "{lua.token}", seed = '
        f'"{nginx_render.LUA_SEED}", unavailable = "127.0.0.1:{lua.unavailable_port}" }})'
    )
    channel, unavailable = servers
    assert [s.args[1:] for s in channel.stmt.children("listen")] == [["unix:" + lua.channel_socket]]
    assert [loc.args[1:] for loc in channel.locations] == [["=", nginx_render.CHANNEL_PATH], ["/"]]
    handler = channel.locations[0].block or []
    assert [s.args for s in handler] == [
        ["content_by_lua_block", 'require("polyingress_channel").handle()']
    ]
    assert unavailable.ports == {lua.unavailable_port}
    assert [[s.args for s in loc.block or []] for loc in unavailable.locations] == [
        [["return", "503"]]
    ]


def check_nginx_structure(
    tree: list[Stmt], model: RouteModel, config: Any, lua: Any
) -> list[NginxServer]:
    _check_names(tree, "main", lua is not None)
    (events,) = [s for s in tree if s.name == "events"]
    (http,) = [s for s in tree if s.name == "http"]
    _check_names(events.block or [], "events", False)
    _check_names(http.block or [], "http", lua is not None)
    fixed_maps = [m for m in http.children("map") if m.args[1] != "$host"]
    maps = [[s.args for s in m.block or []] for m in fixed_maps]
    want_maps = [
        [["default", "upgrade"], ["", ""]],
        [["default", "$http_host"], ["", "$host"]],  # the Host as sent, else nginx's name
        [["default", "0"], ["~^[^?]*(?:%2[fF]|%5[cC]|\\\\)", "1"]],  # the request-path rule
    ]
    assert maps == want_maps
    # Lua mode: the backends of shared server blocks by host, one map per position.
    slot_maps = {m.args[2]: m for m in http.children("map") if m.args[1] == "$host"}
    assert lua is not None or not slot_maps
    for var, slot_map in slot_maps.items():
        assert re.fullmatch(r"\$polyingress_slot_\d+", var), var
        entries = [e.args for e in slot_map.block or []]
        assert entries[0] == ["default", ""], entries[:1]
        for key, value in entries[1:]:
            assert key in model.vhost_index and value in model.backend_index, (key, value)

    ready = {b.name: {e.hostport for e in b.ready_endpoints} for b in model.backends}
    upstreams = {u.args[1]: u for u in http.children("upstream")}
    if lua is None:
        assert set(upstreams) == {name for name, eps in ready.items() if eps}
    else:
        assert set(upstreams) == {nginx_render.LUA_UPSTREAM}
    for name, upstream in upstreams.items():
        _check_names(upstream.block or [], "upstream", lua is not None)
        servers = [s.args[1:] for s in upstream.children("server")]
        if lua is None:
            assert all(len(s) == 1 for s in servers) and len(servers) == len(ready[name])
            assert {s[0] for s in servers} == ready[name], name
        else:
            assert servers == [["0.0.0.1"]], name
            assert [s.args[1] for s in upstream.children("balancer_by_lua_block")] == [
                'require("polyingress_balancer").balance()'
            ]

    host_vhosts = [v for v in model.vhosts if v.host is not None]
    servers = servers_of(http)
    redirects = sum(1 for v in host_vhosts if v.tls is not None and v.tls.ssl_redirect)
    extra = 2 if lua is not None else 0
    blocks = 2 + len(host_vhosts) + redirects + extra
    if lua is None:
        assert len(servers) == blocks, "server blocks != the model's"
    else:  # hosts served alike share a block
        assert len(servers) <= blocks, "more server blocks than the model's"
    names = sorted(n for s in servers for n in s.names)
    want = [""] + [
        v.host for v in host_vhosts for _ in range(2 if v.tls and v.tls.ssl_redirect else 1)
    ]
    assert names == sorted(want, key=str)

    internal = 1 + extra
    vhost_servers = servers[: len(servers) - internal]
    status, *lua_servers = servers[len(vhost_servers) :]
    for internal in (status, *lua_servers):
        _check_names(internal.stmt.block or [], "status-server", lua is not None)
        for loc in internal.locations:
            _check_names(loc.block or [], "status-location", lua is not None)
    assert status.ports == {STATUS_PORT} and not status.names
    assert [loc.args[1:] for loc in status.locations] == [
        ["=", nginx_render.CONFIG_VERSION_PATH],
        ["=", nginx_render.STATUS_PATH],
        ["/"],
    ]
    if lua is not None:
        check_lua_parts(tree, http, lua, lua_servers)

    catch_all = model.vhost_index.get(None)
    catch_keys = _location_keys(catch_all.routes if catch_all else ())
    pairs = {p.name: p for p in config.key_pairs}
    for server in vhost_servers:
        _check_names(server.stmt.block or [], "server", lua is not None)
        for loc in server.locations:
            _check_names(loc.block or [], "location", lua is not None)
            for stmt in loc.block or []:
                if stmt.name == "if":
                    _check_names(stmt.block or [], "if", lua is not None)
            stmts = [*(loc.block or []), *(i for s in loc.block or [] for i in s.block or [])]
            targets = [stmt_answer(s) for s in stmts if s.name in ("return", "proxy_pass")]
            for t in targets:
                assert t in upstreams or t in ("404", "503", "301", "308"), t
            for s in stmts:
                if s.name == "set" and s.args[1] == "$polyingress_backend":
                    assert lua is not None
                    assert s.args[2] in model.backend_index or s.args[2] in slot_maps, s.args
        keys = {tuple(loc.args[1:]) for loc in server.locations}
        assert len(keys) == len(server.locations), "duplicate location"
        # A key that answers as the key above it is left out (render._pruned); "/" never is.
        assert ("/",) in keys
        certs = [s.args[1:] for s in server.stmt.children("ssl_certificate")]
        cert_keys = [s.args[1:] for s in server.stmt.children("ssl_certificate_key")]
        if server.names == [""]:
            assert keys <= catch_keys
            assert certs == [[nginx_render.FALLBACK_CRT]]
            assert cert_keys == [[nginx_render.FALLBACK_KEY]]
            continue
        assert len(server.names) == 1 or lua is not None, server.names
        for host in server.names:
            vhost = model.vhost_index[host]
            own = _location_keys(vhost.routes)
            is_redirect = (
                HTTP_PORT in server.ports and vhost.tls is not None and vhost.tls.ssl_redirect
            )
            if is_redirect:
                own = {("/",)}
            if vhost.host is not None and vhost.host.startswith("*."):
                assert keys <= own | catch_keys, (host, keys)
            else:
                assert keys <= own, (host, keys, own)
            if HTTPS_PORT in server.ports and vhost.tls is not None and vhost.tls.certificate:
                pair = pairs[vhost.tls.certificate]
                assert certs == [[pair.crt]] and cert_keys == [[pair.key]]
            else:
                assert certs == [] and cert_keys == []
    return vhost_servers


def run_nginx_t(tmp: Path, config: Any) -> tuple[bool, str]:
    assert NGINX is not None
    for pair in config.key_pairs:
        for name, data in ((pair.crt, pair.cert_pem), (pair.key, pair.key_pem)):
            (tmp / "conf" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / "conf" / name).write_text(data)
    for sub in ("logs", "run", "tmp", "channel"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    conf = tmp / "conf" / "nginx.conf"
    conf.write_text(config.text)
    result = check_config(NGINX, tmp, conf)
    return result.ok, result.output


NGINX_OPTIONS = nginx_render.RenderOptions(
    bind="127.0.0.1", http_port=HTTP_PORT, https_port=HTTPS_PORT, status_port=STATUS_PORT
)


def lua_options(prefix: Path = LUA_PREFIX) -> nginx_render.RenderOptions | None:
    """Lua mode as `polyingress run` chooses it on this machine, or None when unavailable."""
    if NGINX is None:
        return None
    lua, _why = lua_render("auto", NGINX, prefix, token=LUA_TOKEN, unavailable_port=LUA_PORT)
    if lua is None:
        return None
    return dataclasses.replace(NGINX_OPTIONS, lua=lua)


class RecordingChannel(EndpointChannel):
    """The controller's side of the nginx endpoint channel, with nginx's side simulated: every
    request is recorded, nothing is sent."""

    def __init__(self) -> None:
        super().__init__(LUA_PREFIX / "channel" / "nginx.sock", LUA_TOKEN)
        self.requests: list[tuple[str, str, Any]] = []
        self.state: dict[str, Any] = {}

    def _request(self, method: str, target: str, body: Any = None) -> Any:
        self.requests.append((method, target, body))
        if body is not None:
            # A write answers what the dictionary holds after it (PUT: all; PATCH: the named).
            data = json.loads(json.dumps(body, separators=(",", ":")))
            if method == "PUT":
                self.state = {}
            for name in data.get("delete", []):
                self.state.pop(name, None)
            self.state.update(data["backends"])
            wanted = list(self.state) if method == "PUT" else [*data["backends"], *data["delete"]]
        else:
            names = target.partition("?backend=")[2]
            wanted = names.split(",") if names else list(self.state)
        backends = {n: self.state[n] for n in wanted if n in self.state}
        return {"generation": len(self.requests), "backends": backends}


def check_endpoint_channel(objects: list[dict[str, Any]], model: RouteModel) -> None:
    """What the Lua mode pushes for the change previous world -> this world: model strings
    only inside JSON, backend names (``[a-z0-9_-]``) only in the URL."""
    before = build(previous_world(objects)).model
    channel = RecordingChannel()
    channel.replace(nginx_render.endpoint_state(before))
    gone = [b.name for b in before.backends if b.name not in model.backend_index]
    channel.update(nginx_render.endpoint_state(model), delete=gone)
    want = {b.name: [[e.address, e.port] for e in b.ready_endpoints] for b in model.backends}
    assert channel.state == want
    for method, target, _body in channel.requests:
        assert method in ("GET", "PUT", "PATCH")
        assert re.fullmatch(r"/endpoints(\?backend=[a-z0-9_,-]*)?", target), target


def check_nginx(objects: list[dict[str, Any]], result: BuildResult, lua: bool = False) -> None:
    model = result.model
    with tempfile.TemporaryDirectory() as tmp:
        options = lua_options(Path(tmp)) if lua else NGINX_OPTIONS
        assert options is not None
        config = nginx_render.render(model, options, fallback_certificate())
        check_rendered_nginx(objects, result, config, options)
        ok, output = run_nginx_t(Path(tmp), config)
    if not ok:
        # Only a ConfigMap value that passed its validator but not nginx's own rules may fail,
        # and the failure must name the ConfigMap (apply.explain_failure).
        _message, refs = explain_failure(output, config, "nginx.conf")
        assert config.settings.from_configmap and CONFIGMAP in refs, output
    assert "[warn]" not in output, output


def check_rendered_nginx(
    objects: list[dict[str, Any]],
    result: BuildResult,
    config: nginx_render.NginxConfig,
    options: nginx_render.RenderOptions,
) -> None:
    model = result.model
    lua = options.lua is not None
    for pair in config.key_pairs:
        assert SECRET_CANARY not in pair.cert_pem + pair.key_pem, "raw Secret text passed on"
    text = config.text
    assert ANNOTATION_CANARY not in text and SECRET_CANARY not in text
    tree = parse_nginx(text)
    servers = check_nginx_structure(tree, model, config, options.lua)
    (http,) = [s for s in tree if s.name == "http"]
    formats = [a for s in http.children("log_format") for a in s.args]
    assert text.count(CONFIGMAP_CANARY) == sum(a.count(CONFIGMAP_CANARY) for a in formats)

    # Every ConfigMap key is either applied (typed, by the allow-list) or reported as ignored
    # (by the core, naming the key).
    for key in configmap_data(objects):
        applied = key in config.settings.from_configmap
        reported = any(p.ref == CONFIGMAP and p.field == f"data[{key!r}]" for p in result.problems)
        assert applied != reported, (key, applied, result.problems)

    hosts, paths = probes(model)
    for scheme, port in (("http", HTTP_PORT), ("https", HTTPS_PORT)):
        for host in hosts:
            for path in paths:
                for method in METHODS[scheme]:
                    got = nginx_answer(servers, port, host, path, method)
                    if lua and got in model.backend_index and not model.backend(got).available:
                        got = "503"  # the balancer's answer for a backend without endpoints
                    want = model_answer(model, scheme, host, path, method)
                    assert got == want, (
                        f"{method} {scheme}://{host}{path}: nginx {got}, model {want}"
                    )
    if lua:
        check_endpoint_channel(objects, model)


# -- HAProxy ---------------------------------------------------------------------------------------


def expected_map(model: RouteModel, assigned: dict[str, str]) -> dict[str, str]:
    """The routes map the model calls for (render.py's module docstring, restated)."""
    entries: dict[str, str] = {}
    if model.default_backend is not None:
        entries["default"] = assigned[model.default_backend]
    for vhost in model.vhosts:
        vk = "*" if vhost.host is None else vhost.host
        if vhost.host is not None:
            entries["@" + vk] = vk
            if vhost.tls is not None and vhost.tls.ssl_redirect:
                entries["r" + vk] = "1"
        for r in vhost.routes:
            if r.path_type is PathType.EXACT:
                key = f"={vk}{r.path}"
            else:
                key = f"^{vk}{r.path.rstrip('/')}/"
            entries.setdefault(key, assigned[r.backend])
    return entries


def haproxy_sections(config: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in config.splitlines():
        if not line.strip() or (line.startswith("#") and current is None):
            continue
        if not line[0].isspace():
            assert line not in sections, f"section {line!r} twice"
            current = sections.setdefault(line, [])
        else:
            assert current is not None, line
            current.append(line.strip())
    return sections


def haproxy_answer(
    entries: dict[str, str],
    owner: dict[str, str],
    model: RouteModel,
    scheme: str,
    host: str,
    path: str,
    method: str,
) -> str:
    """The frontends' lookup chain (templates/haproxy.cfg.j2) over the map file's entries."""
    vk = entries.get("@" + host)
    if vk is None and "." in host:
        vk = entries.get("@*." + host.split(".", 1)[1])
    vk = vk or "*"
    if scheme == "http" and "r" + vk in entries:
        return "301" if method == "GET" else "308"
    slot = entries.get(f"={vk}{path}")
    if slot is None:
        key = f"^{vk}{path}/"
        prefixes = [k for k in entries if k.startswith("^") and key.startswith(k)]
        slot = entries[max(prefixes, key=len)] if prefixes else None
    if slot is None:
        slot = entries.get("default")
    if slot is None:
        return "404"
    backend = model.backend(owner[slot])
    return backend.name if haproxy_render.servers_of(backend) else "503"


class RecordingClient(RuntimeClient):
    """Builds every command exactly as the real client would, and sends nothing."""

    def __init__(self) -> None:
        super().__init__("/nonexistent/admin.sock")
        self.commands: list[Command] = []

    def execute_batch(self, cmds: Iterable[Command | str], *, check: bool = False) -> list[Reply]:
        commands = [c if isinstance(c, Command) else Command.parse(c) for c in cmds]
        self.commands += commands
        created = "New version created: 7"
        return [Reply.of(c, created if c.words[0] == "prepare" else "") for c in commands]


def _state(slot: str, server: haproxy_render.Server) -> ServerState:
    host, port = server.host_port
    return ServerState(
        backend_id=1,
        backend=slot,
        server_id=1,
        name=server.name,
        address=host,
        port=port,
        op_state=ServerOpState.RUNNING,
        admin_state=ServerAdmin(0),
        weight=1,
        fqdn=None,
        columns={},
    )


VOCABULARY = {
    "add", "del", "set", "get", "show", "new", "commit", "abort", "enable", "prepare",
    "shutdown", "map", "server", "servers", "state", "ssl", "cert", "crt-list", "sessions",
    "maint", "ready", "addr", "port", "-n", "@7", haproxy_render.ROUTES_MAP,
    haproxy_render.CRT_LIST, *haproxy_apply.DYNAMIC_SERVER_POOL,
}  # fmt: skip


def check_runtime_commands(objects: list[dict[str, Any]], model: RouteModel) -> None:
    """The commands a runtime apply sends for the change previous world -> this world."""
    before = build(previous_world(objects)).model
    before_slots = haproxy_render.SlotTable.plan((b.name for b in before.backends), SPARE)
    assigned = dict(before_slots.assigned)
    free = list(before_slots.free)
    added = [b.name for b in model.backends if b.name not in assigned]
    if len(added) > len(free):
        return  # a reload (spare pool exhausted): no runtime commands
    for name in added:
        assigned[name] = free.pop(0)
    current = haproxy_render.map_entries(before, before_slots.assigned)
    desired = haproxy_render.map_entries(model, assigned)
    assert desired == expected_map(model, assigned)

    client = RecordingClient()
    allowed: set[str] = set(desired) | set(desired.values()) | set(current) | set(current.values())
    payload_lines = {f"{k} {v}" for k, v in desired.items()}
    plan = plan_routes(current, desired)
    if plan.full:
        client.replace_map(haproxy_render.ROUTES_MAP, sorted(desired.items()))
    else:
        client.execute_batch(plan.commands)
    change = diff(before, model)
    routes, _changed, keys = update_entries(
        current, group_entries(current), model, assigned, change
    )
    assert routes == desired, "the incremental map differs from the full one"
    incremental = plan_routes(current, routes, keys)
    if not incremental.full:
        client.execute_batch(incremental.commands)

    for name, slot in sorted(assigned.items()):
        old = before.backend_index.get(name)
        new = model.backend_index.get(name)
        actual = [_state(slot, s) for s in haproxy_render.servers_of(old)] if old else []
        want = haproxy_render.servers_of(new) if new else ()
        allowed.add(slot)
        for s in (*want, *(haproxy_render.servers_of(old) if old else ())):
            host, port = s.host_port
            allowed |= {f"{slot}/{s.name}", s.address, host, str(port)}
        commands, retire = plan_servers(slot, actual, list(want))
        client.execute_batch(commands)
        for name_ in retire:
            ref = f"{slot}/{name_}"
            client.execute_batch(
                [
                    Command.of("shutdown", "sessions", "server", ref),
                    Command.of("del", "server", ref),
                ]
            )

    bundles = {}
    for entry in haproxy_render.crt_entries(model):
        cert = next(c for c in model.certificates if haproxy_render.cert_file(c.name) == entry.cert)
        bundles[entry.cert] = haproxy_render.pem_bundle(cert).rstrip("\n")
        allowed |= {entry.cert, f"{entry.cert}:2"}
        payload_lines.add(entry.line)
        client.execute_batch(
            [
                Command.of("new", "ssl", "cert", entry.cert),
                Command(("set", "ssl", "cert", entry.cert), haproxy_render.pem_bundle(cert)),
                Command.of("commit", "ssl", "cert", entry.cert),
                Command(("add", "ssl", "crt-list", haproxy_render.CRT_LIST), entry.line),
                Command.of("del", "ssl", "crt-list", haproxy_render.CRT_LIST, f"{entry.cert}:2"),
            ]
        )

    for command in client.commands:
        for word in command.words:
            assert word in VOCABULARY or word in allowed, f"{word!r} in {command}"
        encoded = command.encode()
        if command.payload is None:
            assert encoded.count(b"\n") == 1, command
            continue
        assert command.words[0] in ("add", "set"), command
        if command.words[:2] == ("set", "ssl"):
            assert command.payload == bundles[command.words[3]]
        else:
            for line in command.payload.split("\n"):
                assert line in payload_lines, (command, line)


HAPROXY_SETTINGS = haproxy_render.RenderSettings(
    bind="127.0.0.1", http_port=HTTP_PORT, https_port=HTTPS_PORT, spare_backends=SPARE
)


def check_haproxy(objects: list[dict[str, Any]], result: BuildResult) -> None:
    model = result.model
    slots = haproxy_render.SlotTable.plan((b.name for b in model.backends), SPARE)
    rendered = haproxy_render.render(model, HAPROXY_SETTINGS, slots)
    for text in (
        rendered.config,
        rendered.map_text,
        rendered.crt_list_text,
        *rendered.pems.values(),
    ):
        assert ANNOTATION_CANARY not in text and SECRET_CANARY not in text
        assert CONFIGMAP_CANARY not in text

    # The map: exactly one "key value" line per model row, nothing else.
    lines = [x for x in rendered.map_text.splitlines() if x and not x.startswith("#")]
    assert all(len(x.split()) == 2 and x == x.strip() for x in lines), lines
    entries = dict(x.split() for x in lines)
    assert len(entries) == len(lines), "duplicate map key"
    assert entries == expected_map(model, dict(slots.assigned))

    # The configuration: the fixed frontends of a model-free render, then one backend per slot
    # holding exactly the ready endpoints of the Service it serves.
    sections = haproxy_sections(rendered.config)
    tuning = haproxy_render.tuning_of(model.settings)
    skeleton = haproxy_sections(
        haproxy_render.render_config(
            RouteModel(settings=model.settings),
            haproxy_render.SlotTable(),
            HAPROXY_SETTINGS,
            tuning,
        )
    )
    assert {k: v for k, v in sections.items() if not k.startswith("backend slot_")} == skeleton
    owner = slots.owner()
    # Slots take their shared rules from the "slots" defaults section (a row's timeout, a
    # split's 500 share), part of the skeleton.
    assert sorted(k for k in sections if k.startswith("backend slot_")) == [
        f"backend {s} from slots" for s in slots.slots
    ]
    for slot in slots.slots:
        body = sections[f"backend {slot} from slots"]
        backend = model.backend_index.get(owner[slot]) if slot in owner else None
        # Each slot refuses the clients its source map says (empty: no source lists here).
        refuse = (
            "http-request deny deny_status 403 if "
            f"{{ src,map_ip_int(sources/{slot}.map,0) -m bool }}"
        )
        assert rendered.sources[f"sources/{slot}.map"] == ""
        if backend is None:
            assert body == ["# spare", "balance hash var(txn.aff)", refuse]
            continue
        servers = sorted(
            {f"server {e.address}_{e.port} {e.hostport}" for e in backend.ready_endpoints}
        )
        comment = (
            f"# {backend.name} ({len(backend.ready_endpoints)} ready of "
            f"{len(backend.endpoints)} endpoints)"
        )
        assert body[:3] == [comment, "balance hash var(txn.aff)", refuse]
        assert sorted(body[3:]) == servers

    # The crt-list: the fallback, then each bound certificate with its hosts as SNI filters.
    bound: dict[str, list[str]] = {}
    for vhost in model.vhosts:
        if vhost.tls is not None and vhost.tls.certificate is not None and vhost.host:
            bound.setdefault(vhost.tls.certificate, []).append(vhost.host)
    want_list = [haproxy_render.FALLBACK_PEM] + [
        " ".join([f"certs/{name}.pem", *sorted(hosts)]) for name, hosts in sorted(bound.items())
    ]
    assert rendered.crt_list_text.splitlines() == want_list

    hosts, paths = probes(model)
    for scheme in ("http", "https"):
        for host in hosts:
            for path in paths:
                for method in METHODS[scheme]:
                    got = haproxy_answer(entries, owner, model, scheme, host, path, method)
                    want = model_answer(model, scheme, host, path, method)
                    assert got == want, (
                        f"{method} {scheme}://{host}{path}: haproxy {got}, model {want}"
                    )

    check_runtime_commands(objects, model)

    files = {
        haproxy_render.CONFIG_FILE: rendered.config,
        haproxy_render.ROUTES_MAP: rendered.map_text,
        haproxy_render.CRT_LIST: rendered.crt_list_text,
        haproxy_render.FALLBACK_PEM: haproxy_render.pem_bundle(fallback_certificate()),
        haproxy_render.MIRROR_LUA: haproxy_render.mirror_lua(),
        **rendered.pems,
        **rendered.sources,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_text(text)
        assert HAPROXY is not None
        done = subprocess.run(
            [HAPROXY, "-c", "-f", haproxy_render.CONFIG_FILE],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "[WARNING]" not in output, output


# -- Traefik ---------------------------------------------------------------------------------------

TRAEFIK_SETTINGS = traefik_render.RenderSettings(
    cert_dir="/var/lib/polyingress/certs", http_port=HTTP_PORT, https_port=HTTPS_PORT
)
_LITERAL = re.compile(r"(Host|HostRegexp|Path|PathPrefix)\(`([^`]*)`\)")


def traefik_expected(
    model: RouteModel, entrypoint: str, host: str, path: str, method: str
) -> Outcome:
    vhost = model.select_vhost(host)
    redirect = vhost is not None and vhost.tls is not None and vhost.tls.ssl_redirect
    if entrypoint == "web" and redirect:
        location = f"https://{host}:{HTTPS_PORT}{path}"  # the probe hosts have no port
        return Outcome(
            status=int(model_answer(model, "http", host, path, method)), location=location
        )
    _kind, _route, backend = model.resolve(host, path)
    if backend is None:
        return Outcome(status=404)
    return Outcome(status=200 if model.backend(backend).available else 503, service=backend)


def check_traefik(objects: list[dict[str, Any]], result: BuildResult) -> None:
    model = result.model
    config = traefik_render.render(model, TRAEFIK_SETTINGS, FALLBACK)
    for text in (config.text, *(f.data for f in config.files)):
        assert ANNOTATION_CANARY not in text and SECRET_CANARY not in text
        assert CONFIGMAP_CANARY not in text
    validator = schema_validator()
    validator.validate(config.config)
    validator.validate(config.probe)
    # The one file: the routing and the probe router of its revision.
    assert yaml.safe_load(config.text) == config.document, "the YAML text is not the config"

    routers = config.config["http"].get("routers", {})
    services = config.config["http"]["services"]
    backends = {b.name for b in model.backends}
    assert set(services) == backends | {traefik_render.SERVICE_UNAVAILABLE}
    hosts_in_model = {v.host for v in model.vhosts if v.host is not None}
    wildcard_res = {
        "^[^.]+" + ("." + v.host[2:] + ".").replace(".", "\\.") + "?$"
        for v in model.vhosts
        if v.host and v.host.startswith("*.")
    }
    paths_in_model = {r.path for v in model.vhosts for r in v.routes}
    rows = sum(len(v.routes) + 2 for v in model.vhosts) + 1
    assert len(routers) <= 2 * rows, "more routers than the model has rows"
    for name, router in routers.items():
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name), name
        assert router["service"] in services
        for kind, literal in _LITERAL.findall(router["rule"]):
            if kind == "Host":
                assert literal in hosts_in_model, (name, literal)
            elif kind == "HostRegexp":
                assert literal in wildcard_res, (name, literal)
            elif kind == "Path":
                assert literal in paths_in_model, (name, literal)
            else:
                assert literal == "/" or literal[:-1] in paths_in_model, (name, literal)
        if router["service"] in backends:
            assert _LITERAL.search(router["rule"]) is not None

    merged = {
        "http": {
            section: {
                **config.config["http"].get(section, {}),
                **config.probe["http"].get(section, {}),
            }
            for section in ("routers", "services", "middlewares", "serversTransports")
        }
    }
    hosts, paths = probes(model)
    for entrypoint in ("web", "websecure"):
        for host in hosts:
            for path in paths:
                for method in METHODS["http" if entrypoint == "web" else "https"]:
                    req = Request(host=host, path=path, entrypoint=entrypoint, method=method)
                    got = route(merged, req)
                    got = Outcome(status=got.status, service=got.service, location=got.location)
                    want = traefik_expected(model, entrypoint, host, path, method)
                    assert got == want, (
                        f"{method} {entrypoint} {host}{path}: traefik {got}, model {want}"
                    )


# -- the properties --------------------------------------------------------------------------------

CHECKS: dict[str, Callable[[list[dict[str, Any]], BuildResult], None]] = {
    "nginx": check_nginx,
    "nginx-lua": lambda objects, result: check_nginx(objects, result, lua=True),
    "haproxy": check_haproxy,
    "traefik": check_traefik,
}


# The proxy each check runs (livekit.needs: skipped without it, failed under CI=true); the
# Traefik check is the documentation oracle and runs no binary (the live Traefik subset below
# does).
FUZZ_BACKENDS = [
    pytest.param(b, id=b, marks=[] if b == "traefik" else needs(b)) for b in sorted(CHECKS)
]


def check_world(backend: str, objects: list[dict[str, Any]]) -> None:
    result = build(objects)
    check_problems(objects, result)
    CHECKS[backend](objects, result)


def _property(backend: str, examples: int, derandomize: bool) -> Callable[[], None]:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=derandomize,
        print_blob=not derandomize,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(hostile_world())
    def run(objects: list[dict[str, Any]]) -> None:
        check_world(backend, objects)

    return run


@pytest.mark.parametrize("backend", FUZZ_BACKENDS)
def test_hostile_worlds_are_rejected_precisely_or_rendered_exactly(backend: str) -> None:
    _property(backend, DEFAULT_EXAMPLES[backend], derandomize=True)()


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
@pytest.mark.skipif(
    LONG_EXAMPLES <= 0, reason="the long fuzz target: set POLYINGRESS_FUZZ_EXAMPLES=5000"
)
@pytest.mark.parametrize("backend", FUZZ_BACKENDS)
def test_hostile_worlds_long_run(backend: str) -> None:
    _property(backend, LONG_EXAMPLES, derandomize=False)()


# -- known gaps, each with its own test --------------------------------------------------------


def _world(*extra: dict[str, Any], namespace: str = FUZZ_NS) -> list[dict[str, Any]]:
    def ing(name: str, ns: str, host: str) -> dict[str, Any]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "ingressClassName": "polyingress",
                "rules": [
                    {
                        "host": host,
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": "s", "port": {"number": 80}}},
                                }
                            ]
                        },
                    }
                ],
            },
        }

    objects = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "polyingress"},
            "spec": {"controller": "polyingress.io/controller"},
        },
        ing("good", FUZZ_NS, "good.test"),
        *extra,
    ]
    if namespace != FUZZ_NS:
        objects.append(ing("bad", namespace, "bad.test"))
    return objects


@pytest.mark.parametrize(
    "namespace",
    ["Evil NS", "a_b", "-x", "x" * 64, "a\nb", "../etc"],
    ids=["space", "underscore", "leading-dash", "too-long", "newline", "dots-and-slash"],
)
def test_hostile_namespace_is_rejected_alone_naming_the_field(namespace: str) -> None:
    result = build(_world(namespace=namespace))
    assert [r.name for r in result.served] == ["good"]
    (bad,) = result.rejected
    assert bad.name == "bad"
    assert [p.field for p in result.errors if p.ref == bad] == ["metadata.namespace"]


ZONED = ["fe80::1%eth0", "fe80::1%a;b{c}", "fe80::1%\n}", "fe80::1%$x", 'fe80::1%"']


def test_endpoint_address_with_an_ipv6_zone_never_reaches_a_backend() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "namespace": FUZZ_NS},
        "spec": {"ports": [{"name": "http", "port": 80}]},
    }
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "s-1",
            "namespace": FUZZ_NS,
            "labels": {"kubernetes.io/service-name": "s"},
        },
        "addressType": "IPv6",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [
            {"addresses": [a], "conditions": {"ready": True}} for a in [*ZONED, "fd00::1"]
        ],
    }
    model = build(_world(service, endpoint_slice)).model
    addresses = [e.address for b in model.backends for e in b.endpoints]
    assert addresses == ["fd00::1"], addresses
    nginx_render.render(model, NGINX_OPTIONS, fallback_certificate())
    slots = haproxy_render.SlotTable.plan((b.name for b in model.backends), SPARE)
    haproxy_render.render(model, HAPROXY_SETTINGS, slots)


def test_nginx_log_format_with_the_digest_placeholder_is_reported_not_fatal() -> None:
    data = {
        "enable-access-log": "true",
        "log-format-upstream": "$remote_addr %%polyingress-config-digest%%",
    }
    objects = _world(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP_REF[1], "namespace": CONFIGMAP_REF[0]},
            "data": data,
        }
    )
    result = build(objects)
    config = nginx_render.render(result.model, NGINX_OPTIONS, fallback_certificate())
    assert any(p.field == "data['log-format-upstream']" for p in result.problems)
    assert "%%polyingress" not in config.text


@needs("nginx")
def test_nginx_unknown_ssl_ciphers_are_reported_naming_the_configmap(tmp_path: Path) -> None:
    objects = _world(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP_REF[1], "namespace": CONFIGMAP_REF[0]},
            "data": {"ssl-ciphers": "NO-SUCH-CIPHER"},
        }
    )
    result = build(objects)
    config = nginx_render.render(result.model, NGINX_OPTIONS, fallback_certificate())
    if any(p.field == "data['ssl-ciphers']" for p in result.problems):
        return
    ok, output = run_nginx_t(tmp_path, config)
    assert ok or CONFIGMAP in explain_failure(output, config, "nginx.conf")[1], output


# -- proxy checks run only on configuration rendered from the validated model ----------------------

# Ingresses in the style of the ingress-nginx injection CVEs (path, host and annotations).
CVE_STYLE = [
    ("path", "/x;}location /pwn{return 200 pwned;}#"),  # CVE-2021-25745, CVE-2026-24512
    ("path", "/x\n}load_module /tmp/pwn.so;#"),  # CVE-2021-25748
    ("host", 'a.test";load_module /tmp/pwn.so;#'),
    ("annotation", ("nginx.ingress.kubernetes.io/auth-tls-match-cn", 'CN=x"}load_module pwn;#')),
    ("annotation", ("nginx.ingress.kubernetes.io/permanent-redirect", "https://x;}pwn")),
    ("annotation", ("nginx.ingress.kubernetes.io/configuration-snippet", "load_module pwn;")),
    ("annotation", ("nginx.ingress.kubernetes.io/auth-url", "http://x/$pwn")),
    ("annotation", ("nginx.ingress.kubernetes.io/mirror-target", "http://x;pwn")),
    ("annotation", ("polyingress.io/server-snippet", "load_module pwn;")),
]


def cve_style_world(port: int) -> list[dict[str, Any]]:
    objects = _world(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s", "namespace": FUZZ_NS},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "s-1",
                "namespace": FUZZ_NS,
                "labels": {"kubernetes.io/service-name": "s"},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port}],
            "endpoints": [{"addresses": ["127.0.73.1"], "conditions": {"ready": True}}],
        },
    )
    template = objects[1]
    for n, (where, value) in enumerate(CVE_STYLE):
        ing: dict[str, Any] = yaml.safe_load(yaml.safe_dump(template))
        ing["metadata"]["name"] = f"cve-{n}"
        rule = ing["spec"]["rules"][0]
        rule["host"] = f"cve-{n}.test"
        if where == "path":
            rule["http"]["paths"][0]["path"] = value
        elif where == "host":
            rule["host"] = value
        else:
            key, text = value
            ing["metadata"]["annotations"] = {key: text}
        objects.append(ing)
    return objects


class RecordingPopen(subprocess.Popen):  # type: ignore[type-arg]
    """Every process started, with the configuration file a proxy check was given."""

    calls: list[tuple[list[str], Path | None, str | None]] = []

    def __init__(self, args: Any, *rest: Any, **kw: Any) -> None:
        argv = [str(a) for a in args]
        config: Path | None = None
        if "-t" in argv and "-c" in argv:  # nginx -t ... -c FILE
            config = Path(argv[argv.index("-c") + 1])
        elif "-c" in argv and "-f" in argv:  # haproxy -c -f FILE (relative to cwd)
            config = Path(kw.get("cwd") or ".") / argv[argv.index("-f") + 1]
        text = config.read_text() if config is not None else None
        RecordingPopen.calls.append((argv, config, text))
        super().__init__(args, *rest, **kw)


@pytest.mark.live
@pytest.mark.parametrize("backend", [backend_param("nginx"), backend_param("haproxy")])
def test_proxy_checks_see_only_configuration_rendered_from_the_validated_model(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No admission webhook, no proxy binary on user input: the only configuration ``nginx -t``
    / ``haproxy -c`` ever read is the renderer's, in the controller's own workdir, and the
    injection attempts of the ingress-nginx CVEs are not in it."""
    import argparse

    from polyingress.core import RunSettings
    from polyingress.core.runtime.controller import Controller
    from polyingress.core.runtime.hello import HelloServer
    from polyingress.core.runtime.plugins import load_backend, plugin_manager

    hello = HelloServer("s-1", "127.0.73.1", free_port("127.0.73.1")).start()
    _plugin, obj = load_backend(backend)
    pm = plugin_manager((backend, obj))
    parser = argparse.ArgumentParser()
    pm.hook.polyingress_add_options(parser=parser)
    settings = RunSettings(
        backend=backend,
        bind="127.0.0.1",
        http_port=free_port(),
        https_port=free_port(),
        workdir=tmp_path / "work",
        options=parser.parse_args([]),
    )
    store = ObjectStore()
    store.replace_many(upserts=cve_style_world(hello.port), deletes=())
    RecordingPopen.calls = []
    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    controller = Controller(settings, pm, store, debounce=0.001)
    try:
        controller.start()
        result = controller.last_result
        assert result is not None
        # cve-4's permanent-redirect is an annotation polyingress reads: its value is refused.
        assert {r.name for r in result.served} == {"good", *(f"cve-{n}" for n in (3, 5, 6, 7))}
        assert {r.name for r in result.rejected} == {"cve-0", "cve-1", "cve-2", "cve-4", "cve-8"}
    finally:
        controller.stop()
        hello.stop()
    checks = [(argv, path, text) for argv, path, text in RecordingPopen.calls if path is not None]
    assert checks, [argv for argv, _p, _t in RecordingPopen.calls]
    workdir = settings.workdir.resolve()
    for _argv, path, text in checks:
        assert path is not None and text is not None
        assert path.resolve().is_relative_to(workdir), path
        assert "pwn" not in text, path  # every injection attempt above carries "pwn"


# -- Traefik, live: real Traefik loads generated hostile worlds ------------------------------------

# Bounded: every world is one apply, and Traefik applies a changed file at most every
# providersThrottleDuration (2 s by default), so a handful of worlds and a sample of the
# requests of each (the oracle check above covers every request of 100 worlds).
LIVE_TRAEFIK_WORLDS = 6
LIVE_TRAEFIK_REQUESTS = 40


def on_loopback(model: RouteModel, port: int) -> tuple[RouteModel, dict[str, str]]:
    """The model with its backends moved to loopback addresses, one each (the hostile worlds'
    endpoints are anywhere on the Internet, and mostly not ready): every backend without a
    problem gets a ready endpoint, those with one (no such Service or port) stay empty."""
    backends = []
    by_address = {}
    for i, b in enumerate(model.backends):
        address = f"127.3.{i // 250}.{i % 250 + 1}"
        endpoints = (Endpoint(address=address, port=port),) if b.problem is None else ()
        backends.append(dataclasses.replace(b, endpoints=endpoints))
        by_address[address] = b.name
    return dataclasses.replace(model, backends=tuple(backends)), by_address


@pytest.mark.live
@needs("traefik")
def test_real_traefik_serves_hostile_worlds_as_the_model_says(tmp_path: Path) -> None:
    import random

    from livekit import request, run_settings

    from polyingress.plugins.traefik.plugin import TraefikBackend

    echo = AddressEcho()
    run = run_settings(
        "traefik",
        tmp_path,
        traefik_binary=None,
        traefik_https_redirect_port=HTTPS_PORT,  # the Location traefik_expected computes
        traefik_redirect_listen=None,
    )
    backend = TraefikBackend(run)
    current = RouteModel()
    seen: list[int] = []
    backend.start(current)
    try:

        @settings(
            max_examples=LIVE_TRAEFIK_WORLDS,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(hostile_world())
        def serve(objects: list[dict[str, Any]]) -> None:
            nonlocal current
            model, by_address = on_loopback(build(objects).model, echo.port)
            applied = backend.apply(model, current, diff(current, model))
            current = model
            assert "not confirmed" not in applied.detail, applied.detail
            hosts, paths = probes(model)
            cases = [
                (entrypoint, host, path, method)
                for entrypoint in ("web", "websecure")
                for host in hosts
                for path in paths
                for method in METHODS["http" if entrypoint == "web" else "https"]
            ]
            sample = random.Random(len(seen)).sample(cases, min(LIVE_TRAEFIK_REQUESTS, len(cases)))
            seen.append(len(model.vhosts))
            for entrypoint, host, path, method in sample:
                want = traefik_expected(model, entrypoint, host, path, method)
                https = entrypoint == "websecure"
                resp = request(
                    run.https_port if https else run.http_port,
                    host,
                    path,
                    scheme="https" if https else "http",
                    method=method,
                )
                got = Outcome(
                    status=resp.status,
                    service=by_address.get(resp.headers.get("x-echo-address", ""))
                    if resp.status == 200
                    else None,
                    location=resp.headers.get("location"),
                )
                expected = Outcome(
                    status=want.status,
                    service=want.service if want.status == 200 else None,
                    location=want.location,
                )
                assert got == expected, f"{method} {entrypoint} {host}{path}"

        serve()
    finally:
        backend.stop()
        echo.stop()
    assert len(seen) == LIVE_TRAEFIK_WORLDS
    assert any(seen), "no world with a virtual host was served"
