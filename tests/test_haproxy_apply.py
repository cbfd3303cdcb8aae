"""Tests of polyingress.plugins.haproxy.apply: the pure planners, and the applier against a real
HAProxy (no controller): runtime changes keep the routing semantics, drift is repaired,
an external reload is replayed, a refused change falls back to a reload."""

from __future__ import annotations

import copy
import itertools
import json
import random
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from livekit import HelloFleet, free_port, get, needs, run_settings, wait_until

from polyingress.core import (
    BuildOptions,
    ObjectStore,
    RouteModel,
    build_model,
    diff,
    fallback_certificate,
)
from polyingress.plugins.haproxy.apply import (
    Applier,
    ApplyOptions,
    group_entries,
    parse_crt_list,
    parse_servers_conn,
    plan_routes,
    plan_servers,
    update_entries,
)
from polyingress.plugins.haproxy.plugin import HAProxyBackend
from polyingress.plugins.haproxy.process import HAProxyProcess
from polyingress.plugins.haproxy.render import (
    ROUTES_MAP,
    RenderSettings,
    Server,
    SlotTable,
    map_entries,
)
from polyingress.plugins.haproxy.runtime import (
    Command,
    MasterClient,
    ServerAdmin,
    ServerOpState,
    ServerState,
)
from polyingress.testing.cases import (
    CASES,
    TLS_HOST,
    all_endpoints,
    default_backend_ingress,
    service_of,
    tls_secret,
    world,
)

HAPROXY = shutil.which("haproxy")
M = ROUTES_MAP
SECURE_PEM = "certs/routing__secure-tls.pem"


def _words(plan_commands: tuple[Command, ...] | list[Command]) -> list[str]:
    return [" ".join(c.words) for c in plan_commands]


# --------------------------------------------------------------------------- plan_routes


@pytest.mark.parametrize(
    ("current", "desired", "expected"),
    [
        ({}, {}, []),
        ({"@h": "h"}, {"@h": "h", "^h/a/": "s1"}, [f"add map {M} ^h/a/ s1"]),
        ({"@h": "h", "^h/a/": "s1"}, {"@h": "h", "^h/a/": "s2"}, [f"set map {M} ^h/a/ s2"]),
        ({"@h": "h", "=h/a": "s1"}, {"@h": "h"}, [f"del map {M} =h/a"]),
        (
            {},
            {"@h": "h", "^h/": "s1", "=h/x": "s2", "rh": "1"},
            [
                f"add map {M} =h/x s2",
                f"add map {M} ^h/ s1",
                f"add map {M} rh 1",
                f"add map {M} @h h",
            ],
        ),
        (
            {"@h": "h", "^h/": "s1", "=h/x": "s2"},
            {},
            [f"del map {M} @h", f"del map {M} =h/x", f"del map {M} ^h/"],
        ),
        ({}, {"default": "s1"}, [f"add map {M} default s1"]),
        (
            {"@a": "a", "^a/": "s1", "@b": "b", "^b/": "s1"},
            {"@a": "a", "^a/": "s2", "@b": "b", "^b/": "s2"},
            [f"set map {M} ^a/ s2", f"set map {M} ^b/ s2"],
        ),
    ],
    ids=[
        "nothing",
        "one-row-added",
        "one-row-changed",
        "one-row-removed",
        "host-appears-host-key-last",
        "host-disappears-host-key-first",
        "default-alone",
        "one-row-in-each-of-two-hosts",
    ],
)
def test_plan_routes_uses_single_commands_when_each_request_sees_old_or_new(
    current: dict[str, str], desired: dict[str, str], expected: list[str]
) -> None:
    plan = plan_routes(current, desired)
    assert not plan.full
    assert _words(plan.commands) == expected


@pytest.mark.parametrize(
    ("current", "desired"),
    [
        ({"@h": "h", "^h/": "s1"}, {"@h": "h", "^h/": "s1", "=h/a": "s2", "^h/b/": "s3"}),
        ({"@h": "h", "=h/a": "s1"}, {"@h": "h", "^h/a/": "s1"}),
        ({"^*/a/": "s1"}, {"^*/b/": "s1"}),
        ({"@h": "h", "^h/": "s1"}, {"@h": "h", "^h/": "s2", "default": "s1"}),
    ],
    ids=["two-rows-in-one-host", "exact-becomes-prefix", "catch-all-two-rows", "default-and-row"],
)
def test_plan_routes_swaps_the_whole_map_when_a_host_changes_by_more_than_one_entry(
    current: dict[str, str], desired: dict[str, str]
) -> None:
    assert plan_routes(current, desired).full


def test_plan_routes_considers_only_the_given_keys() -> None:
    plan = plan_routes({"@h": "h", "^h/": "x"}, {"@h": "h", "^h/": "y"}, keys={"@h"})
    assert plan.changed == 0


# --------------------------------------------------------------------------- plan_servers


def _state(name: str, address: str, port: int, admin: ServerAdmin) -> ServerState:
    return ServerState(
        backend_id=3,
        backend="slot_0001",
        server_id=1,
        name=name,
        address=address,
        port=port,
        op_state=ServerOpState.RUNNING,
        admin_state=admin,
        weight=1,
        fqdn=None,
        columns={},
    )


def test_plan_servers_adds_then_enables_never_with_the_enabled_keyword() -> None:
    commands, retire = plan_servers("slot_0001", [], [Server("10.0.0.1_80", "10.0.0.1:80")])
    assert _words(commands) == [
        # With the idle-connection pool a config-file server has by default (2.6 gives dynamic
        # servers none: a new connection per request).
        "add server slot_0001/10.0.0.1_80 10.0.0.1:80 pool-purge-delay 5s pool-max-conn -1",
        "enable server slot_0001/10.0.0.1_80",
    ]
    assert retire == []


def test_plan_servers_puts_a_removed_server_in_maintenance_and_retires_it() -> None:
    actual = [_state("10.0.0.1_80", "10.0.0.1", 80, ServerAdmin.NONE)]
    commands, retire = plan_servers("slot_0001", actual, [])
    assert _words(commands) == ["set server slot_0001/10.0.0.1_80 state maint"]
    assert retire == ["10.0.0.1_80"]
    again, retire = plan_servers(
        "slot_0001", [_state("10.0.0.1_80", "10.0.0.1", 80, ServerAdmin.FMAINT)], []
    )
    assert again == []
    assert retire == ["10.0.0.1_80"]


def test_plan_servers_brings_back_a_draining_server_and_fixes_its_address() -> None:
    actual = [_state("10.0.0.1_80", "10.0.0.9", 81, ServerAdmin.FMAINT)]
    commands, retire = plan_servers("slot_0001", actual, [Server("10.0.0.1_80", "10.0.0.1:80")])
    assert _words(commands) == [
        "set server slot_0001/10.0.0.1_80 addr 10.0.0.1 port 80",
        "set server slot_0001/10.0.0.1_80 state ready",
    ]
    assert retire == []


def test_plan_servers_handles_ipv6() -> None:
    actual = [_state("fd00::1_80", "fd00::1", 80, ServerAdmin.NONE)]
    assert plan_servers("slot_0001", actual, [Server("fd00::1_80", "[fd00::1]:80")]) == ([], [])


def test_parse_crt_list_ignores_options_and_nul_bytes() -> None:
    text = (
        "# certs/crt-list.txt\n"
        "certs/polyingress-fallback.pem:1\n"
        "certs/a.pem:2 a.com\n"
        "certs/w.pem:7 [alpn h2,http/1.1\0] *.w.com x.w.com\n"
    )
    lines = parse_crt_list(text)
    assert [(x.cert, x.number, x.filters) for x in lines] == [
        ("certs/polyingress-fallback.pem", 1, ()),
        ("certs/a.pem", 2, ("a.com",)),
        ("certs/w.pem", 7, ("*.w.com", "x.w.com")),
    ]


def test_parse_servers_conn_reads_connections_in_use() -> None:
    text = (
        "# bkname/svname bkid/svid addr port - purge_delay used_cur used_max need_est "
        "unsafe_nb safe_nb idle_lim idle_cur idle_per_thr[2]\n"
        "slot_0002/10.0.0.1_80 6/1 10.0.0.1 80 - 5000 2 3 1 1 0 -1 1 1 0\n"
        "slot_0002/fd00::1_80 6/2 fd00::1 80 - 0 0 0 0 0 0 0 0\n"
    )
    assert parse_servers_conn(text) == {"10.0.0.1_80": 2, "fd00::1_80": 0}


# --------------------------------------------------------------------------- update_entries


CONFIGMAP = ("routing", "polyingress")


def _build(objects: list[dict[str, Any]]) -> RouteModel:
    store = ObjectStore()
    store.replace_many(objects, ())
    return build_model(store.snapshot(), BuildOptions(configmap=CONFIGMAP)).model


def _variants(port: int) -> list[list[dict[str, Any]]]:
    """The routing world, then a series of edits (hosts, paths, catch-all, TLS, default)."""
    base = world(port)
    variants = [base]
    rnd = random.Random(3)
    current = base
    for step in range(40):
        nxt = copy.deepcopy(current)
        ingresses = [o for o in nxt if o["kind"] == "Ingress"]
        choice = step % 6
        if choice == 0:
            nxt.append(default_backend_ingress()) if not any(
                o["metadata"]["name"] == "default" for o in ingresses
            ) else nxt.remove(next(o for o in ingresses if o["metadata"]["name"] == "default"))
        elif choice == 1 and ingresses:
            victim = rnd.choice(ingresses)
            paths = victim["spec"].get("rules", [{}])[0].get("http", {}).get("paths", [])
            if len(paths) > 1:
                paths.pop(rnd.randrange(len(paths)))
        elif choice == 2:
            ing = copy.deepcopy(next(o for o in ingresses if o["metadata"]["name"] == "only"))
            ing["metadata"]["name"] = f"extra-{step}"
            ing["spec"]["rules"][0]["host"] = f"h{step}.example.com"
            nxt.append(ing)
        elif choice == 3:
            ca = next(o for o in ingresses if o["metadata"]["name"] == "catch-all")
            ca["spec"]["rules"][0]["http"]["paths"].append(
                {
                    "path": f"/ca{step}",
                    "pathType": rnd.choice(["Prefix", "Exact"]),
                    "backend": {"service": {"name": "svc-root", "port": {"number": 80}}},
                }
            )
        elif choice == 4:
            extra = [o for o in ingresses if o["metadata"]["name"].startswith("extra-")]
            if extra:
                nxt.remove(rnd.choice(extra))
        else:
            sec = next(o for o in ingresses if o["metadata"]["name"] == "secure")
            hosts = sec["spec"]["tls"][0]["hosts"]
            if len(hosts) == 1:
                hosts.append("app.example.com")
            else:
                hosts.pop()
        variants.append(nxt)
        current = nxt
    return variants


def test_incremental_map_update_equals_a_full_render() -> None:
    models = [_build(objs) for objs in _variants(8080)]
    slots = SlotTable.plan({b.name for m in models for b in m.backends}, 0)
    routes = map_entries(models[0], slots.assigned)
    groups = group_entries(routes)
    for old, new in itertools.pairwise(models):
        routes, changed, _keys = update_entries(routes, groups, new, slots.assigned, diff(old, new))
        for group, entries in changed.items():
            if entries:
                groups[group] = entries
            else:
                groups.pop(group, None)
        assert routes == map_entries(new, slots.assigned)
        assert groups == group_entries(routes)


# --------------------------------------------------------------------------- real HAProxy

live = needs("haproxy")


class Bench:
    """An Applier on a real HAProxy in tmp_path, serving the routing world."""

    def __init__(self, tmp: Path) -> None:
        self.fleet = HelloFleet([(name, addr) for name, addr, _i in all_endpoints()])
        self.http_port = free_port()
        self.https_port = free_port()
        assert HAPROXY is not None
        self.process = HAProxyProcess(HAPROXY, tmp / "work")
        self.process.workdir.mkdir(parents=True)
        self.applier = Applier(
            self.process,
            RenderSettings(
                bind="127.0.0.1",
                http_port=self.http_port,
                https_port=self.https_port,
                spare_backends=3,
            ),
            ApplyOptions(spare_backends=3, drain_timeout=2.0),
            fallback_certificate(),
        )
        self.model = _build(world(self.fleet.port))
        self.applier.start(self.model)

    def apply(self, objects: list[dict[str, Any]]) -> bool:
        new = _build(objects)
        result = self.applier.apply(new, diff(self.model, new))
        self.model = new
        return result.reloaded

    def check(self) -> None:
        """Every request of the routing cases gets what the model says, over plain HTTP."""
        for case in CASES:
            if case.scheme != "http" or case.host == TLS_HOST:
                continue
            kind, _route, backend = self.model.resolve(case.host, case.path.split("?")[0])
            resp = get(self.http_port, case.host, case.path)
            vhost = self.model.select_vhost(case.host)
            if vhost is not None and vhost.tls is not None and vhost.tls.ssl_redirect:
                assert resp.status == 301, case  # GET
            elif backend is None:
                assert resp.status == 404, case
            elif not self.model.backend(backend).available:
                assert resp.status == 503, case
            else:
                assert resp.status == 200, (case, resp.status)
                expected = self.model.backend(backend).service
                assert resp.server_name is not None
                assert service_of(resp.server_name) == expected, (case, kind)

    def stop(self) -> None:
        self.process.stop()
        self.fleet.stop_at_once()


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    try:
        yield b
    finally:
        b.stop()


@live
@pytest.mark.live
def test_runtime_changes_keep_the_routing_semantics_without_reload(bench: Bench) -> None:
    workers = bench.applier.worker_pids
    bench.check()
    for objects in _variants(bench.fleet.port)[1:]:
        assert not bench.apply(objects)
        bench.check()
    assert MasterClient(str(bench.process.master_socket)).show_proc().worker_pids == workers
    assert bench.applier.reconcile(bench.model) == 0
    written = (bench.process.workdir / ROUTES_MAP).read_text()
    assert set(written.splitlines()[1:]) == {
        f"{k} {v}"
        for k, v in bench.applier.state.routes.items()  # type: ignore[union-attr]
    }


@live
@pytest.mark.live
def test_reconcile_repairs_routes_servers_and_certificates(bench: Bench) -> None:
    rt = bench.applier.runtime.client
    entries = dict(rt.show_map(ROUTES_MAP))
    key = next(k for k in entries if k.startswith("^app.example.com/foo/"))
    slot = bench.applier.state.slots.assigned["routing__svc-spread__80"]  # type: ignore[union-attr]
    rt.execute_batch(
        [
            Command.of("del", "map", ROUTES_MAP, key),
            Command.of("add", "map", ROUTES_MAP, "@evil.example.com", "evil.example.com"),
            Command.of("set", "server", f"{slot}/127.0.18.1_{bench.fleet.port}", "state", "maint"),
            Command.of(
                "del", "ssl", "crt-list", "certs/crt-list.txt", "certs/routing__secure-tls.pem"
            ),
        ],
        check=True,
    )
    assert get(bench.http_port, "app.example.com", "/foo/x").server_name == "svc-root-1"
    repaired = bench.applier.reconcile(bench.model)
    assert repaired >= 4
    assert bench.applier.reconcile(bench.model) == 0
    bench.check()
    resp = get(bench.https_port, TLS_HOST, "/", scheme="https")
    assert resp.peer_cn == TLS_HOST


ALLOWLIST = "nginx.ingress.kubernetes.io/allowlist-source-range"


def _with_allowlist(port: int, networks: str | None) -> list[dict[str, Any]]:
    """The routing world, the Ingress "only" allowing ``networks`` (None: no list), with its
    first path only (one row: one slot of its own, the bench has 3 spares)."""
    objects = copy.deepcopy(world(port))
    only = next(o for o in objects if o["kind"] == "Ingress" and o["metadata"]["name"] == "only")
    del only["spec"]["rules"][0]["http"]["paths"][1:]
    if networks is not None:
        only["metadata"].setdefault("annotations", {})[ALLOWLIST] = networks
    return objects


@live
@pytest.mark.live
def test_source_lists_are_slot_maps_changed_at_run_time_and_repaired(bench: Bench) -> None:
    """An allowlist on an Ingress: its rows take a slot of their own whose source map is
    filled at run time (no reload): the client (127.0.0.1) gets 403 outside the list, 200
    inside; a damaged map is repaired by the read-back; another list is another slot, the
    old one's map emptied; no list: the rows are back on their backend's slot and no slot
    refuses anyone. The routing cases hold whenever the client is admitted."""
    port = bench.fleet.port
    rt = bench.applier.runtime.client
    state = bench.applier.state
    assert state is not None and state.sources == {}

    def status() -> int:
        return get(bench.http_port, "only.example.com", "/only").status

    def maps() -> dict[str, list[tuple[str, str]]]:
        slots = state.slots.slots  # type: ignore[union-attr]
        return {s: rt.show_map(f"sources/{s}.map") for s in slots}

    def slot() -> str:
        return bench.applier.state.routes["^only.example.com/only/"]  # type: ignore[union-attr]

    assert not bench.apply(_with_allowlist(port, None))
    assert status() == 200
    plain = slot()
    assert not bench.apply(_with_allowlist(port, "10.0.0.0/8"))
    assert status() == 403
    refusing = slot()
    assert refusing != plain and list(state.sources) == [refusing]
    assert ("10.0.0.0/8", "0") in maps()[refusing] and maps()[plain] == []

    rt.execute(Command.of("clear", "map", f"sources/{refusing}.map"))
    assert status() == 200  # damaged: it refuses nobody
    assert bench.applier.reconcile(bench.model) >= 1
    assert status() == 403
    assert bench.applier.reconcile(bench.model) == 0

    assert not bench.apply(_with_allowlist(port, "127.0.0.0/8"))
    assert status() == 200
    assert slot() not in (plain, refusing) and maps()[refusing] == []
    assert (bench.process.workdir / f"sources/{refusing}.map").read_text() == ""
    bench.check()

    assert not bench.apply(_with_allowlist(port, None))
    assert status() == 200 and slot() == plain and state.sources == {}
    assert all(entries == [] for entries in maps().values())
    bench.check()


@live
@pytest.mark.live
def test_removed_endpoint_is_drained_then_deleted(bench: Bench) -> None:
    objects = world(bench.fleet.port)
    spread = next(o for o in objects if o["metadata"]["name"] == "svc-spread-abc12")
    spread["endpoints"] = spread["endpoints"][:2]
    assert not bench.apply(objects)
    slot = bench.applier.state.slots.assigned["routing__svc-spread__80"]  # type: ignore[union-attr]
    names = {s.name for s in bench.applier.runtime.client.show_servers_state(slot)}
    assert f"127.0.18.3_{bench.fleet.port}" not in names  # no connection left: deleted at once
    seen = {get(bench.http_port, "app.example.com", "/spread").server_name for _ in range(12)}
    assert seen == {"svc-spread-1", "svc-spread-2"}


class _Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        time.sleep(1.0)
        body = json.dumps({"server_name": "slow-1", "uri": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@live
@pytest.mark.live
def test_removed_endpoint_finishes_its_request_before_it_is_deleted(bench: Bench) -> None:
    port = bench.fleet.port
    bench.fleet.remove("svc-case-1")
    slow = ThreadingHTTPServer(("127.0.11.1", port), _Slow)
    threading.Thread(target=slow.serve_forever, kwargs={"poll_interval": 0.05}).start()
    bench.fleet.add("svc-case-2", "127.0.11.2")
    try:
        answers: list[Any] = []
        inflight = threading.Thread(
            target=lambda: answers.append(get(bench.http_port, "app.example.com", "/Case"))
        )
        inflight.start()
        time.sleep(0.3)
        objects = world(port)
        case = next(o for o in objects if o["metadata"]["name"] == "svc-case-abc12")
        case["endpoints"][0]["addresses"] = ["127.0.11.2"]
        assert not bench.apply(objects)
        slot = bench.applier.state.slots.assigned["routing__svc-case__80"]  # type: ignore[union-attr]
        old = f"127.0.11.1_{port}"
        states = {s.name: s for s in bench.applier.runtime.client.show_servers_state(slot)}
        assert states[old].in_maintenance, "a server with a request in flight is kept, drained"
        assert get(bench.http_port, "app.example.com", "/Case").server_name == "svc-case-2"
        inflight.join(timeout=5)
        assert answers and answers[0].status == 200 and answers[0].server_name == "slow-1"

        def deleted() -> bool:
            bench.applier.tick()
            names = {s.name for s in bench.applier.runtime.client.show_servers_state(slot)}
            return old not in names

        wait_until(deleted, timeout=5)
    finally:
        slow.shutdown()
        slow.server_close()


@live
@pytest.mark.live
def test_new_certificate_and_rotation_at_run_time(bench: Bench) -> None:
    objects = world(bench.fleet.port)
    objects.append(tls_secret("other-tls", "app.example.com"))
    main = next(o for o in objects if o["metadata"]["name"] == "main")
    main["spec"]["tls"] = [{"hosts": ["app.example.com"], "secretName": "other-tls"}]
    assert not bench.apply(objects)
    resp = get(bench.https_port, "app.example.com", "/foo/x", scheme="https")
    assert resp.peer_cn == "app.example.com"
    assert get(bench.http_port, "app.example.com", "/foo/x").status == 301  # GET
    rotated = copy.deepcopy(objects)
    secret = next(o for o in rotated if o["metadata"]["name"] == "secure-tls")
    fresh = tls_secret("secure-tls", "rotated.example.com")
    secret["data"] = fresh["data"]
    assert not bench.apply(rotated)
    assert get(bench.https_port, TLS_HOST, "/", scheme="https").peer_cn == "rotated.example.com"
    assert bench.applier.reconcile(bench.model) == 0


@live
@pytest.mark.live
def test_spare_pool_exhaustion_reloads_and_grows_the_pool(bench: Bench) -> None:
    objects = world(bench.fleet.port)
    main = next(o for o in objects if o["metadata"]["name"] == "main")
    paths = main["spec"]["rules"][0]["http"]["paths"]
    for i in range(4):  # 4 new Services, 3 spare slots
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"svc-n{i}", "namespace": "routing"},
                "spec": {"ports": [{"name": "http", "port": 80}]},
            }
        )
        paths.append(
            {
                "path": f"/n{i}",
                "pathType": "Prefix",
                "backend": {"service": {"name": f"svc-n{i}", "port": {"number": 80}}},
            }
        )
    before = bench.applier.worker_pids
    assert bench.apply(objects)
    assert bench.applier.worker_pids != before
    assert len(bench.applier.state.slots.free) >= 3  # type: ignore[union-attr]
    assert get(bench.http_port, "app.example.com", "/n3").status == 503
    bench.check()


@live
@pytest.mark.live
def test_refused_runtime_change_falls_back_to_a_reload(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    from polyingress.plugins.haproxy import apply as apply_module

    def refuse(*_args: Any, **_kw: Any) -> None:
        raise apply_module.CommandRejected(Command.of("add", "map", "x", "k", "v"), "refused")

    monkeypatch.setattr(Applier, "_runtime_apply", refuse)
    objects = world(bench.fleet.port)
    objects.append(default_backend_ingress())
    assert bench.apply(objects)
    assert get(bench.http_port, "unknown.example.com", "/").server_name == "svc-default-1"


@live
@pytest.mark.live
def test_global_setting_change_reloads_and_an_unused_key_does_not(bench: Bench) -> None:
    def configmap(data: dict[str, str]) -> dict[str, Any]:
        meta = {"name": CONFIGMAP[1], "namespace": CONFIGMAP[0]}
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}

    objects = world(bench.fleet.port)
    assert not bench.apply([*objects, configmap({"use-http2": "false"})])
    assert bench.apply([*objects, configmap({"proxy-read-timeout": "90"})])
    config = (bench.process.workdir / "haproxy.cfg").read_text()
    assert "timeout server 90s" in config
    bench.check()


@live
@pytest.mark.live
def test_external_reload_is_detected_and_the_model_replayed(tmp_path: Path) -> None:
    fleet = HelloFleet([(name, addr) for name, addr, _i in all_endpoints()])
    settings = run_settings("haproxy", tmp_path, haproxy_spare_backends=2)
    settings.workdir.mkdir()
    backend = HAProxyBackend(settings)
    model = _build(world(fleet.port))
    try:
        backend.start(model)
        assert backend.supervise(model) is None
        # Someone adds a route at run time only, then reloads HAProxy behind our back.
        rt = backend.applier.runtime.client
        rt.execute(Command.of("add", "map", ROUTES_MAP, "@rogue.example.com", "x"))
        MasterClient(str(backend.process.master_socket)).reload()
        message = backend.supervise(model)
        assert message is not None and "without a reload by polyingress" in message
        assert ("@rogue.example.com", "x") not in rt.show_map(ROUTES_MAP)
        resp = get(settings.http_port, "app.example.com", "/foo/x")
        assert resp.server_name == "svc-foo-1"
        # The master dies: the supervisor restarts HAProxy on the current model.
        assert backend.process.proc is not None
        backend.process.proc.kill()
        backend.process.proc.wait()
        wait_until(lambda: backend.supervise(model) is not None, timeout=10)
        resp = get(settings.http_port, "app.example.com", "/foo/x")
        assert resp.server_name == "svc-foo-1"
    finally:
        backend.stop()
        fleet.stop_at_once()
