"""The closed vocabulary of reload reasons (core/reasons.py) and where it is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from polyingress.core import ModelDiff, PathType, ReloadReason, diff_reasons

REPO = Path(__file__).resolve().parent.parent
ROUTE = (None, "/x", PathType.PREFIX)


def test_values_are_short_stable_snake_case_words() -> None:
    values = [r.value for r in ReloadReason]
    assert len(set(values)) == len(values)
    for value in values:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", value) and len(value) <= 24, value


@pytest.mark.parametrize(
    ("diff", "endpoints", "expected"),
    [
        (ModelDiff(routes_added=(ROUTE,)), True, (ReloadReason.ROUTES_CHANGED,)),
        (ModelDiff(routes_changed=(ROUTE,)), True, (ReloadReason.ROUTES_CHANGED,)),
        (ModelDiff(vhosts_removed=("a.test",)), True, (ReloadReason.ROUTES_CHANGED,)),
        (ModelDiff(default_backend_changed=True), True, (ReloadReason.ROUTES_CHANGED,)),
        (ModelDiff(backends_added=("b",)), True, (ReloadReason.ROUTES_CHANGED,)),
        (ModelDiff(endpoints_changed=("b",)), True, (ReloadReason.ENDPOINTS_CHANGED,)),
        (ModelDiff(endpoints_changed=("b",)), False, ()),
        (ModelDiff(tls_changed=("a.test",)), True, (ReloadReason.CERTIFICATES_CHANGED,)),
        (ModelDiff(certificates_changed=("c",)), True, (ReloadReason.CERTIFICATES_CHANGED,)),
        (
            ModelDiff(default_certificate_changed=True),
            True,
            (ReloadReason.CERTIFICATES_CHANGED,),
        ),
        (ModelDiff(settings_changed=True), True, (ReloadReason.SETTINGS_CHANGED,)),
        (
            ModelDiff(
                settings_changed=True,
                certificates_added=("c",),
                endpoints_changed=("b",),
                routes_removed=(ROUTE,),
                backends_removed=("d",),
            ),
            True,
            (
                ReloadReason.ROUTES_CHANGED,
                ReloadReason.ENDPOINTS_CHANGED,
                ReloadReason.CERTIFICATES_CHANGED,
                ReloadReason.SETTINGS_CHANGED,
            ),
        ),
        (ModelDiff(), True, ()),
    ],
    ids=[
        "route-added",
        "route-changed",
        "host-removed",
        "default-backend",
        "service-added",
        "endpoints-reloading",
        "endpoints-at-run-time",
        "tls-binding",
        "certificate",
        "default-certificate",
        "settings",
        "everything-once-in-vocabulary-order",
        "nothing",
    ],
)
def test_diff_reasons_names_each_kind_of_change_once(
    diff: ModelDiff, endpoints: bool, expected: tuple[ReloadReason, ...]
) -> None:
    assert diff_reasons(diff, endpoints=endpoints) == expected


def test_every_diff_field_has_a_reason() -> None:
    """A new ModelDiff field must be mapped to a reason (else its reload would name none)."""
    for name, spec in ModelDiff.__dataclass_fields__.items():
        value: object = ("x",)
        if spec.type == "bool":
            value = True
        elif name.startswith("routes_"):
            value = (ROUTE,)
        assert diff_reasons(ModelDiff(**{name: value})), f"ModelDiff.{name} maps to no reason"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (ReloadReason.RUNTIME_FAILED, ReloadReason.RUNTIME_FAILED),
        ("routes_changed", ReloadReason.ROUTES_CHANGED),
        ("other", ReloadReason.OTHER),
        ("configuration file rewritten (3 routes changed)", ReloadReason.OTHER),
        ("Routes_Changed", ReloadReason.OTHER),
        ("", ReloadReason.OTHER),
        (3, ReloadReason.OTHER),
        (None, ReloadReason.OTHER),
    ],
    ids=["member", "value", "other", "free-text", "case-differs", "empty", "int", "none"],
)
def test_of_maps_anything_outside_the_vocabulary_to_other(
    given: object, expected: ReloadReason
) -> None:
    assert ReloadReason.of(given) is expected


def test_plugin_manual_lists_exactly_the_vocabulary() -> None:
    text = (REPO / "docs" / "plugin-hooks.md").read_text()
    section = text[text.index("## Reload reasons") :]
    rows = re.findall(r"^\| `([A-Z_]+)` \| `([a-z_]+)` \|", section, flags=re.M)
    assert rows == [(r.name, r.value) for r in ReloadReason]
