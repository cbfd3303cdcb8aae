"""HAProxy's slot owners beyond a Service and a plain split, without a proxy (rows.py,
render.py, apply.py): a split whose backendRefs change the request differently (member
sockets, rows.hop_members) and rows with a connect timeout (rows.connect_name). Live:
test_haproxy_gateway.py, test_gateway_live.py, test_annotations_traffic_live.py."""

from __future__ import annotations

from polyingress.core import (
    Backend,
    Endpoint,
    HeaderFilter,
    ObjectRef,
    PathType,
    Route,
    RouteModel,
    VirtualHost,
    WeightedBackend,
)
from polyingress.plugins.haproxy.apply import LiveState, _connect_mismatch, _loaded_connect
from polyingress.plugins.haproxy.render import SlotTable, Tuning, slot_servers
from polyingress.plugins.haproxy.rows import (
    FLAG_BITS,
    Shapes,
    connect_ms,
    connect_name,
    hop_members,
    slot_base,
    split_name,
    table_entries,
    wanted_names,
)

SRC = ObjectRef(kind="HTTPRoute", namespace="ns", name="r")
A, B = "ns__a__80", "ns__b__80"


def _backend(name: str, *ips: str) -> Backend:
    _ns, svc, port = name.split("__")
    return Backend(
        name=name,
        namespace="ns",
        service=svc,
        port=port,
        endpoints=tuple(Endpoint(address=ip, port=8080) for ip in ips),
    )


def _filter(value: str) -> HeaderFilter:
    return HeaderFilter(set=(("member", value),))


def _row(split: tuple[WeightedBackend, ...], request_headers: HeaderFilter | None = None) -> Route:
    return Route(
        path="/",
        path_type=PathType.PREFIX,
        backend=None,
        source=SRC,
        split=split,
        request_headers=request_headers,
    )


def _model(route: Route) -> RouteModel:
    return RouteModel(
        vhosts=(VirtualHost(host="h.example", routes=(route,)),),
        backends=(_backend(A, "10.0.0.1", "10.0.0.2"), _backend(B, "10.0.0.3")),
    )


def test_members_only_when_the_shares_change_the_request_differently() -> None:
    two = (
        WeightedBackend(backend=A, weight=3, request_headers=_filter("a")),
        WeightedBackend(backend=B, weight=1, request_headers=_filter("b")),
    )
    rule = HeaderFilter(add=(("x-rule", "r"),))
    found = hop_members(_row(two, request_headers=rule))
    assert found == [(A, 3, rule.then(_filter("a"))), (B, 1, rule.then(_filter("b")))]
    assert split_name(_row(two)) == f"split~hop~{A}*3,{B}*1"
    alike = tuple(
        WeightedBackend(backend=w.backend, weight=w.weight, request_headers=_filter("x"))
        for w in two
    )
    assert hop_members(_row(alike)) is None  # the row's frontend applies the one filter
    plain = tuple(WeightedBackend(backend=w.backend, weight=w.weight) for w in two)
    assert hop_members(_row(plain)) is None
    zero = (two[0], WeightedBackend(backend=B, weight=0, request_headers=_filter("b")))
    assert hop_members(_row(zero)) is None  # one share gets requests
    # The same Service twice with two filters: two members, in the split's order.
    twice = (*two, WeightedBackend(backend=A, weight=1, request_headers=_filter("c")))
    assert split_name(_row(twice)) == f"split~hop~{A}*3,{B}*1,{A}*1"


def test_member_servers_point_at_their_sockets_weighted_as_a_split() -> None:
    row = _row(
        (
            WeightedBackend(backend=A, weight=1, request_headers=_filter("a")),
            WeightedBackend(backend=B, weight=1, request_headers=_filter("b")),
        )
    )
    model = _model(row)
    owner = split_name(row)
    assert owner is not None and owner in wanted_names(model)
    servers = slot_servers(owner, model.backend_index)
    # A has two endpoints, B one: each of A's servers weighs half of B's.
    assert {(s.name, s.address, s.weight) for s in servers} == {
        ("m0_10.0.0.1_8080", "unix@member-0.sock", 1),
        ("m0_10.0.0.2_8080", "unix@member-0.sock", 1),
        ("m1_10.0.0.3_8080", "unix@member-1.sock", 2),
    }
    assert all(s.host_port == ("-", 0) for s in servers)  # as `show servers state` says


def test_member_records_name_each_members_slot_and_filter_not_the_rows() -> None:
    rule = HeaderFilter(add=(("x-rule", "r"),))
    row = _row(
        (
            WeightedBackend(backend=A, weight=1, request_headers=_filter("a")),
            WeightedBackend(backend=B, weight=1, request_headers=_filter("b")),
        ),
        request_headers=rule,
    )
    model = _model(row)
    shapes = Shapes.of(model)
    assert set(shapes.request_filters) == {"member", "x-rule"}
    slots = SlotTable.plan(wanted_names(model), 4)
    entries = table_entries(model.vhosts[0], "h.example", slots.assigned, shapes)
    (record,) = [k for k, v in entries.items() if k.startswith("xh.example#") and "|" not in k]
    fields = entries[record].split("|")
    flags = int(fields[5])
    assert flags & FLAG_BITS["m"] and not flags & FLAG_BITS["q"], fields  # no row filter here
    assert entries[record + "|m0"] == slots.assigned[A]
    assert entries[record + "|m1"] == slots.assigned[B]
    j = shapes.request_filter_index("member")
    assert entries[record + f"|m0q{j}"] == "sa" and entries[record + f"|m1q{j}"] == "sb"
    k = shapes.request_filter_index("x-rule")
    assert entries[record + f"|m0q{k}"] == "ar" and entries[record + f"|m1q{k}"] == "ar"


def test_connect_timeout_rows_get_a_slot_owner_of_their_own() -> None:
    row = Route(path="/", path_type=PathType.PREFIX, backend=A, source=SRC, connect_timeout=1.5)
    model = _model(row)
    name = connect_name(row)
    assert name == f"connect~1500~{A}"
    assert connect_ms(name) == 1500 and slot_base(name) == A and connect_ms(A) is None
    assert name in wanted_names(model)
    assert slot_servers(name, model.backend_index) == slot_servers(A, model.backend_index)
    slots = SlotTable.plan(wanted_names(model), 4)
    shapes = Shapes.of(model)
    entries = table_entries(model.vhosts[0], "h.example", slots.assigned, shapes)
    (record,) = [k for k, v in entries.items() if k.startswith("xh.example#") and "|" not in k]
    fields = entries[record].split("|")
    assert fields[1] == slots.assigned[name] and int(fields[5]) & FLAG_BITS["c"], fields


def test_connect_timeout_slots_change_only_with_a_reload() -> None:
    row = Route(path="/", path_type=PathType.PREFIX, backend=A, source=SRC, connect_timeout=1.0)
    slots = SlotTable.plan([A, B, f"connect~1000~{A}"], 2)
    state = LiveState(
        slots=slots,
        routes={},
        groups={},
        crt_list={},
        certs={},
        tuning=Tuning(
            timeout_connect="5s",
            timeout_server="60s",
            timeout_client="60s",
            timeout_http_request="60s",
            timeout_http_keep_alive="60s",
            hard_stop_after="30s",
            maxconn=None,
        ),
        shapes=Shapes(),
        loaded_connect=_loaded_connect(slots),
    )
    assert state.loaded_connect == {slots.assigned[f"connect~1000~{A}"]: 1000}
    assert _connect_mismatch([f"connect~2000~{A}"], {}, state)  # a new value: reload
    assert not _connect_mismatch(["ns__c__80"], {}, state)  # a spare loaded without one
    # The connect owner left; its slot is a spare now, still loaded with 1 s.
    freed = SlotTable(
        assigned={A: slots.assigned[A], B: slots.assigned[B]},
        free=tuple(sorted([slots.assigned[f"connect~1000~{A}"], *slots.free])),
    )
    state.slots = freed
    assert _connect_mismatch(["ns__c__80"], {}, state)
    assert connect_name(row) == f"connect~1000~{A}"
