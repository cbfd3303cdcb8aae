"""How HAProxy's routes map holds a row's record (rows.py): a path key whose only row has no
condition points at the record itself, not at a group of one; the record's flags and source
lengths are numbers the frontend tests with ``and()``, in as many 62-bit words as the shape's
lengths need. A row whose only policy is source lists is a plain slot of its own instead
(rows.sources_name: the slot's ACL file refuses the networks); a row with a mirror (or basic
authentication) keeps its lists in its record, which the tests below use for the record way.
The last test runs HAProxy: a source length beyond the first word (an IPv6 /128 when the
shape has more than 62 lengths) still allows and denies."""

from __future__ import annotations

import http.client
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from livekit import needs

from polyingress.core import (
    Backend,
    Endpoint,
    HeaderMatch,
    ObjectRef,
    PathType,
    Route,
    RouteModel,
    RoutePolicy,
    SourceRanges,
    VirtualHost,
    fallback_certificate,
)
from polyingress.core.runtime.hello import HelloServer
from polyingress.plugins.haproxy.render import (
    CRT_LIST,
    FALLBACK_PEM,
    MIRROR_LUA,
    ROUTES_MAP,
    RenderSettings,
    SlotTable,
    mirror_lua,
    pem_bundle,
    render,
)
from polyingress.plugins.haproxy.rows import (
    FLAG_BITS,
    LENGTH_WORD_BITS,
    SOURCES_PREFIX,
    Shapes,
    slot_base,
    sources_id,
    table_entries,
    wanted_names,
)
from polyingress.testing.live import free_port, wait_until

SRC = ObjectRef(kind="Ingress", namespace="ns", name="ing")
APP = "ns__app__80"
# IPv6 networks of 70 lengths: with them the shape has more than one word of lengths.
MANY = tuple(f"2001:db8::/{n}" for n in range(48, 118))


def _row(path: str = "/", **kw: object) -> Route:
    return Route(path=path, path_type=PathType.PREFIX, backend=APP, source=SRC, **kw)  # type: ignore[arg-type]


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
    """Its owner wraps its backend's; the slot's ACL file refuses everything but 10.0.0.0/8
    (IPv6: everything, the IPv4-mapped range left to the IPv4 part); other slots refuse
    nobody; the frontend looks up no source length for it."""
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
    files = rendered.acls
    assert set(files) == {f"acls/{s}.deny" for s in slots.slots}
    refused = files[f"acls/{slots.assigned[owner]}.deny"].split()
    assert "0.0.0.0/5" in refused and "11.0.0.0/8" in refused and "8000::/1" in refused
    assert not any(n.startswith("10.") for n in refused)
    assert "::ffff:0:0/96" not in refused and "::ffff:0:0/97" not in refused
    assert files[f"acls/{slots.assigned[APP]}.deny"] == ""
    assert Shapes.of(model).source_lengths == Shapes().source_lengths


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
    (tmp_path / "maps").mkdir()
    (tmp_path / "certs").mkdir()
    (tmp_path / "haproxy.cfg").write_text(rendered.config)
    (tmp_path / ROUTES_MAP).write_text(rendered.map_text)
    (tmp_path / FALLBACK_PEM).write_text(pem_bundle(fallback_certificate()))
    (tmp_path / MIRROR_LUA).write_text(mirror_lua())
    (tmp_path / CRT_LIST).write_text(rendered.crt_list_text)
    for name, pem in {**rendered.pems, **rendered.acls}.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(pem)
    haproxy = shutil.which("haproxy")
    assert haproxy is not None
    proc = subprocess.Popen(
        [haproxy, "-db", "-f", "haproxy.cfg"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def status(host: str) -> int:
            conn = http.client.HTTPConnection("::1", http_port, timeout=5)
            try:
                conn.request("GET", "/", headers={"Host": host})
                return conn.getresponse().status
            finally:
                conn.close()

        def up() -> bool:
            try:
                return status("allowed.example") == 200
            except OSError:
                time.sleep(0.05)
                return False

        wait_until(up, timeout=10)
        assert status("denied.example") == 403
        assert status("other.example") == 403
        assert status("allowed.example") == 200
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert b"ALERT" not in out, out.decode(errors="replace")
