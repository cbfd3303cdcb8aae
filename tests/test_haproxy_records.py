"""How HAProxy's routes map holds a row's record (rows.py): a path key whose only row has no
condition points at the record itself, not at a group of one; the record's flags and source
lengths are numbers the frontend tests with ``and()``, in as many 62-bit words as the shape's
lengths need. A row whose only policy is source lists is a plain slot of its own instead
(rows.sources_name: the slot's ACL file refuses the networks); a row with a mirror (or basic
authentication) keeps its lists in its record, which the tests below use for the record way.
The last test runs HAProxy: a source length beyond the first word (an IPv6 /128 when the
shape has more than 62 lengths) still allows and denies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from haproxy_files import served
from livekit import needs

from polyingress.core import (
    Backend,
    BasicAuth,
    Endpoint,
    HeaderMatch,
    ObjectRef,
    PathType,
    Route,
    RouteModel,
    RoutePolicy,
    SourceRanges,
    VirtualHost,
    WeightedBackend,
)
from polyingress.core.runtime.hello import HelloServer
from polyingress.plugins.haproxy.render import (
    RenderSettings,
    SlotTable,
    render,
)
from polyingress.plugins.haproxy.rows import (
    FLAG_BITS,
    LENGTH_WORD_BITS,
    SOURCES_PREFIX,
    Shapes,
    connect_ms,
    slot_base,
    slot_owner,
    sources_id,
    sources_name,
    table_entries,
    wanted_names,
)
from polyingress.plugins.haproxy.runtime import Command, RuntimeClient
from polyingress.testing.live import free_port

SRC = ObjectRef(kind="Ingress", namespace="ns", name="ing")
APP = "ns__app__80"
# bcrypt (cost 4) of "open sesame"
BCRYPT = "$2y$04$ABePdTwGq2Ow5BWZLO12LeTnPGEdBjwulNqW2nfVWdcnMNqAEc.Pu"
# IPv6 networks of 70 lengths: with them the shape has more than one word of lengths.
MANY = tuple(f"2001:db8::/{n}" for n in range(48, 118))


def _row(path: str = "/", **kw: object) -> Route:
    kw.setdefault("backend", APP)
    return Route(path=path, path_type=PathType.PREFIX, source=SRC, **kw)  # type: ignore[arg-type]


def _mirrored(**kw: object) -> Route:
    """A row with a mirror: its source lists stay in the frontend (no copy of a refused
    request), so it is a record."""
    return _row(mirrors=(APP,), **kw)


def _sources(allow: tuple[str, ...] = (), deny: tuple[str, ...] = ()) -> RoutePolicy:
    return RoutePolicy(sources=SourceRanges(allow=allow, deny=deny))


def _model(*hosts: tuple[str, tuple[Route, ...]], port: int = 8080) -> RouteModel:
    return RouteModel(
        vhosts=tuple(VirtualHost(host=h, routes=routes) for h, routes in hosts),
        backends=(
            Backend(
                name=APP,
                namespace="ns",
                service="app",
                port="80",
                endpoints=(Endpoint(address="127.0.0.1", port=port),),
            ),
        ),
    )


def _entries(model: RouteModel, shapes: Shapes | None = None) -> dict[str, str]:
    shapes = shapes or Shapes.of(model)
    slots = SlotTable.plan(wanted_names(model), 4)
    vhost = model.vhosts[0]
    return table_entries(vhost, vhost.host, slots.assigned, shapes)


def test_a_key_whose_only_row_has_no_condition_holds_its_record() -> None:
    """One allow-listed, mirrored row: the path key names the record, and no group is
    written."""
    model = _model(("a.example", (_mirrored(policy=_sources(allow=("10.0.0.0/8",))),)))
    entries = _entries(model)
    pointer = entries["^a.example/"]
    assert pointer.startswith("xa.example#"), entries
    assert not any(k.startswith("~") for k in entries), entries
    fields = entries[pointer].split("|")
    assert fields[0] == "b" and int(fields[5]) == sum(FLAG_BITS[c] for c in "sliB"), fields
    assert entries[pointer + "|s0A000000/8"] == "1"  # allowed


def test_a_row_whose_only_policy_is_source_lists_is_a_slot_of_its_own() -> None:
    """Its owner wraps its backend's; the slot's source map admits 10.0.0.0/8 (0), refuses
    the rest of IPv4 and all of IPv6 (1), every address covered; other slots' maps are empty
    (nobody refused); the frontend looks up no source length for it."""
    model = _model(
        ("a.example", (_row(policy=_sources(allow=("10.0.0.0/8",))),)),
        ("b.example", (_row(),)),
    )
    slots = SlotTable.plan(wanted_names(model), 2)
    owner = next(n for n in slots.assigned if n.startswith(SOURCES_PREFIX))
    assert slot_base(owner) == APP and sources_id(owner) is not None
    entries = _entries(model)
    assert entries == {"^a.example/": slots.assigned[owner]}, entries
    rendered = render(model, RenderSettings(), slots)
    files = rendered.sources
    assert set(files) == {f"sources/{s}.map" for s in slots.slots}
    lines = files[f"sources/{slots.assigned[owner]}.map"].splitlines()
    verdicts = dict(line.split(" ") for line in lines)
    assert verdicts["10.0.0.0/8"] == "0" and verdicts["::/0"] == "1"
    assert verdicts["0.0.0.0/5"] == "1" and verdicts["11.0.0.0/8"] == "1"
    assert set(verdicts.values()) == {"0", "1"} and len(verdicts) == 10
    v4 = sum(2 ** (32 - ipaddress.ip_network(n).prefixlen) for n in verdicts if ":" not in n)
    assert v4 == 2**32  # every IPv4 address has exactly one entry
    assert files[f"sources/{slots.assigned[APP]}.map"] == ""
    assert Shapes.of(model).source_lengths == Shapes().source_lengths


def test_which_rows_check_their_lists_in_their_slot() -> None:
    """A source-list owner wraps the owner the row would have (its backend, its split, its
    connect timeout's); rows that must check their lists in the frontend get none: basic
    authentication (403 before 401), mirrors (no copy of a refused request), a share
    answered 500 (the slots' 500 rule runs first), an answer of the row's own. The same
    lists give the same id; other lists another."""
    lists = _sources(allow=("10.0.0.0/8",))
    plain = sources_name(_row(policy=lists))
    assert plain is not None and slot_base(plain) == APP
    assert sources_name(_row(policy=lists)) == plain
    assert sources_name(_row(policy=_sources(allow=("10.0.0.0/16",)))) != plain
    split = (WeightedBackend(backend="a", weight=9), WeightedBackend(backend="b", weight=1))
    owner = sources_name(_row(backend=None, split=split, policy=lists))
    assert owner is not None and slot_base(owner) == "split~a*9,b*1"
    assert slot_owner(_row(backend=None, split=split, policy=lists)) == owner
    timed = sources_name(_row(connect_timeout=1.5, policy=lists))
    assert timed is not None and slot_base(timed) == APP and connect_ms(timed) == 1500
    auth = BasicAuth(realm="r", users=(("foo", BCRYPT),))
    for route in (
        _row(policy=RoutePolicy(sources=lists.sources, auth=auth)),
        _row(mirrors=(APP,), policy=lists),
        _row(backend=None, split=(*split, WeightedBackend(backend=None, weight=1)), policy=lists),
        _row(status=503, policy=lists),
        _row(),
    ):
        assert sources_name(route) is None, route
    # Its record, when something else needs one, points at that slot and has no source part.
    rewritten = _row(policy=lists, timeout=2.0)
    assert slot_owner(rewritten) is None and sources_name(rewritten) == plain


def test_a_row_with_a_condition_still_gets_a_group() -> None:
    """A header-matching row falls through to the row below it: that takes a group."""
    canary = _row(headers=(HeaderMatch(name="x-canary", value="always"),))
    model = _model(("a.example", (canary, _mirrored(policy=_sources(deny=("10.0.0.0/8",))))))
    entries = _entries(model)
    assert entries["^a.example/"].startswith("~a.example#"), entries


def test_source_lengths_are_bits_in_words_of_62() -> None:
    model = _model(("a.example", (_mirrored(policy=_sources(allow=("::1/128", *MANY))),)))
    shapes = Shapes.of(model)
    masks = shapes.source_mask_bits()
    assert len(masks) > LENGTH_WORD_BITS and list(shapes.source_words()) == [0, 1]
    where = {n: (w, bit) for _m4, _m6, n, w, bit in masks}
    assert where[128][0] == 1 and where[8] == (0, 1)
    field = shapes.source_length_field([8, 128])
    low, high = (int(w) for w in field.split(":"))
    assert low == 1 and high == where[128][1]
    # the default shape fits one word
    assert list(Shapes().source_words()) == [0]
    assert Shapes().source_length_field([8, 24]) == str(1 | 4)


@pytest.fixture
def hello() -> Iterator[HelloServer]:
    server = HelloServer("app", "127.0.0.1", 0).start()
    try:
        yield server
    finally:
        server.stop()


@needs("haproxy")
def test_haproxy_checks_a_length_in_the_second_word(tmp_path: Path, hello: HelloServer) -> None:
    """With 71 lengths in the shape, /128 is in word 1: an allow list of ::1/128 lets ::1
    through, a deny list of it refuses it, an allow list without it refuses it (403)."""
    port = hello.port
    model = _model(
        ("allowed.example", (_mirrored(policy=_sources(allow=("::1/128", *MANY))),)),
        ("denied.example", (_mirrored(policy=_sources(deny=("::1/128",))),)),
        ("other.example", (_mirrored(policy=_sources(allow=MANY)),)),
        port=port,
    )
    assert len(Shapes.of(model).source_words()) == 2
    http_port = free_port("::1")
    settings = RenderSettings(bind="::1", http_port=http_port, https_port=free_port("::1"))
    rendered = render(model, settings, SlotTable.plan(wanted_names(model), 4))
    assert "txn.sl1" in rendered.config
    with served(tmp_path, rendered, "::1", http_port, "allowed.example") as status:
        assert status("denied.example") == 403
        assert status("other.example") == 403
        assert status("allowed.example") == 200


# Client addresses for the source-list slots: IPv4 and IPv6 inside and outside the lists below,
# IPv4-mapped IPv6 (a dual-stack listener's IPv4 clients) and 6to4 addresses.
CLIENTS = (
    "10.1.2.3",
    "11.0.0.1",
    "127.0.0.1",
    "192.168.7.7",
    "2001:db8::1",
    "2001:db9::1",
    "::1",
    "::a01:203",
    "::ffff:10.1.2.3",
    "::ffff:11.0.0.1",
    "2002:a01:203::1",
    "2002:b00:1::1",
)
SLOT_LISTS = {
    "v4.example": _sources(allow=("10.0.0.0/8", "127.0.0.0/8")),
    "v6.example": _sources(allow=("2001:db8::/32",)),
    "all-v6.example": _sources(allow=("::/0",)),
    "deny.example": _sources(deny=("10.0.0.0/8", "2001:db8::/32")),
    "both.example": _sources(allow=("10.0.0.0/8", "127.0.0.1/32"), deny=("10.1.0.0/16",)),
}


@needs("haproxy")
def test_slot_acl_files_refuse_what_the_core_refuses(tmp_path: Path, hello: HelloServer) -> None:
    """Rows whose only policy is source lists, rendered and loaded by HAProxy: `get map` on
    each slot's source map gives 1 exactly for the client addresses the core refuses (IPv4,
    IPv6, IPv4-mapped, IPv4-compatible and 6to4 ones: HAProxy converts an address between
    families only when its own family's tree has no entry for it), and a request from
    127.0.0.1 gets 403 or 200 as its row's lists say."""
    model = _model(
        *((host, (_row(policy=policy),)) for host, policy in SLOT_LISTS.items()),
        port=hello.port,
    )
    http_port = free_port("127.0.0.1")
    settings = RenderSettings(bind="127.0.0.1", http_port=http_port, https_port=free_port())
    slots = SlotTable.plan(wanted_names(model), 2)
    rendered = render(model, settings, slots)
    assert "txn.sl" not in rendered.map_text and not any(
        k.startswith("x") for k in rendered.routes
    ), rendered.routes
    with served(tmp_path, rendered, "127.0.0.1", http_port, "v4.example") as status:
        client = RuntimeClient(str(tmp_path / "admin.sock"))
        for host, policy in SLOT_LISTS.items():
            assert policy.sources is not None
            slot = rendered.routes[f"^{host}/"]
            assert slot.startswith("slot_"), rendered.routes
            replies = client.execute_batch(
                [Command.of("get", "map", f"sources/{slot}.map", c) for c in CLIENTS], check=True
            )
            for address, reply in zip(CLIENTS, replies, strict=True):
                got = 'value="1"' in reply.text
                assert got == (not policy.sources.admits(address)), (host, address, reply)
            want = 403 if not policy.sources.admits("127.0.0.1") else 200
            assert status(host) == want, host
