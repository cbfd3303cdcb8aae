"""Gateway API rows on HAProxy without a proxy: quoting, value encoding, split weights, the
configuration's shapes, and how a routes-map change is ordered (plugins/haproxy/rows.py and
apply.py). What HAProxy does with all of it is tested live in test_haproxy_gateway.py."""

from __future__ import annotations

import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest
from haproxy_files import write_rendered
from livekit import needs

from polyingress.core import BuildOptions, ObjectStore, build_model
from polyingress.core.sources.manifests import load_objects
from polyingress.plugins.haproxy import plugin
from polyingress.plugins.haproxy.apply import plan_routes
from polyingress.plugins.haproxy.render import (
    ROUTES_MAP,
    RenderSettings,
    SlotTable,
    render,
)
from polyingress.plugins.haproxy.rows import (
    Shapes,
    cfg_word,
    encode_value,
    query_regex,
    split_weights,
    wanted_names,
)

FIXTURE = Path(__file__).parent / "fixtures" / "haproxy" / "gateway.yaml"
M = ROUTES_MAP
HOSTILE = "va\"l\\ue %41;#$'x `${a}` %[path] <<+?+"


@pytest.mark.parametrize("value", ["", "plain", HOSTILE, "a,b; c=d", "~-._", "é"])
def test_encoded_values_have_no_space_separator_or_escape_and_decode_back(value: str) -> None:
    encoded = encode_value(value)
    assert all(c.isalnum() or c in "%-._~" for c in encoded), encoded
    assert urllib.parse.unquote(encoded) == value


def test_split_weights_are_exact_when_they_fit_and_close_when_they_do_not() -> None:
    # 70/30 over one endpoint each: 7 and 3.
    assert split_weights([("a", 70, 1), ("b", 30, 1)]) == {"a": 7, "b": 3}
    # A backend with 3 endpoints and the same weight as one with 1: each of its servers
    # gets a third of the other's.
    assert split_weights([("a", 1, 3), ("b", 1, 1)]) == {"a": 1, "b": 3}
    # No endpoint: no server; the others share everything.
    assert split_weights([("a", 5, 0), ("b", 1, 2)]) == {"b": 1}
    # Past HAProxy's 256: rounded, shares within 1/256, never 0.
    got = split_weights([("a", 1_000_000, 1), ("b", 1, 1), ("c", 333_333, 7)])
    assert max(got.values()) <= 256 and min(got.values()) >= 1
    total = got["a"] + got["b"] + 7 * got["c"]
    assert abs(got["a"] / total - 1_000_000 / 1_333_334) < 1 / 256


def test_query_regex_takes_the_first_parameter_of_that_name_split_on_ampersands() -> None:
    import re

    rx = re.compile(query_regex("a.b"))
    for query, value in [
        ("a.b=1", "1"),
        ("x=2&a.b=v;w&a.b=z", "v;w"),  # ';' is not a separator (HAProxy's url_param stops)
        ("a.b", None),  # present without '=': the group is empty, the marker says present
        ("aXb=1", "nomatch"),  # '.' is literal
        ("xa.b=1", "nomatch"),
    ]:
        m = rx.match(query)
        if value == "nomatch":
            assert m is None, query
        else:
            assert m is not None and m.group(1) == value, query


def _model():  # type: ignore[no-untyped-def]
    store = ObjectStore()
    store.replace_many(load_objects(FIXTURE), ())
    features = frozenset(plugin.GATEWAY_FEATURES)
    return build_model(store.snapshot(), BuildOptions(features=features)).model


def test_shapes_name_what_the_configuration_must_read() -> None:
    shapes = Shapes.of(_model())
    assert shapes.match_headers == ("version", "x-hostile'#$%&*+^`|~!")
    assert shapes.match_queries == ("a.b",)
    assert shapes.signatures == (
        (False, ("version",), ()),
        (True, ("version", "x-hostile'#$%&*+^`|~!"), ("a.b",)),
    )
    assert shapes.request_filters == ("x-add", "x-gone", "x-set")
    assert shapes.response_filters == ("x-resp",)
    bigger = Shapes(signatures=((False, ("other",), ()),), segments=40)
    assert not shapes.covers(bigger) and not shapes.names_cover(bigger)
    union = shapes.union(bigger)
    assert union.covers(shapes) and union.covers(bigger) and union.segments == 40


@pytest.mark.parametrize("text", ["plain", "it's", "a'b'c", "#$%&*+^`|~!", "''"])
def test_cfg_word_is_one_literal_word(text: str) -> None:
    # POSIX shell quoting is the same single-quote rule HAProxy's tokenizer applies.
    import shlex

    assert shlex.split(cfg_word(text)) == [text]
    with pytest.raises(ValueError):
        cfg_word("a\nb")


@needs("haproxy")
def test_hostile_names_reach_haproxy_as_one_word(tmp_path: Path) -> None:
    """haproxy -c of the gateway fixture's configuration (hostile header names in fetches and
    actions) says nothing: no warning, no error."""
    model = _model()
    rendered = render(model, RenderSettings(), SlotTable.plan(wanted_names(model), 1))
    assert """'req.fhdr("x-hostile'\\''#$%&*+^`|~!",1),sha2(256),hex'""" in rendered.config
    write_rendered(tmp_path, rendered)
    haproxy = shutil.which("haproxy")
    assert haproxy is not None
    done = subprocess.run(
        [haproxy, "-c", "-f", "haproxy.cfg"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stdout + done.stderr


# --------------------------------------------------------------------------- plan_routes


def _words(commands: object) -> list[str]:
    return [str(c) for c in commands]  # type: ignore[attr-defined]


def test_a_changed_group_is_added_then_pointed_to_then_the_old_one_deleted() -> None:
    current = {
        "@h": "h",
        "^h/": "~h#old",
        "~h#old|0|h|": "0:slot_0001",
        "xh#r1": "b|slot_0001|0|0|0|||||0|0||",
    }
    desired = {
        "@h": "h",
        "^h/": "~h#new",
        "~h#new|0|h|": "0:xh#r2",
        "xh#r2": "b|slot_0002|0|0|0|||||0|0||",
    }
    plan = plan_routes(current, desired)
    assert not plan.full
    assert _words(plan.commands) == [
        f"add map {M} xh#r2 b|slot_0002|0|0|0|||||0|0||",
        f"add map {M} ~h#new|0|h| 0:xh#r2",
        f"set map {M} ^h/ ~h#new",
        f"del map {M} xh#r1",
        f"del map {M} ~h#old|0|h|",
    ]


def test_two_pointers_of_one_host_or_a_path_with_a_semicolon_swap_the_whole_map() -> None:
    two = plan_routes(
        {"@h": "h", "^h/": "~h#a", "=h/x": "~h#b"},
        {"@h": "h", "^h/": "~h#c", "=h/x": "~h#d"},
    )
    assert two.full
    # ';' separates CLI commands: no single command can carry it, the payload can.
    semicolon = plan_routes({"@h": "h"}, {"@h": "h", "=h/a;b": "slot_0001"})
    assert semicolon.full
