"""The annotation registry: validated keys under our prefix and ingress-nginx's alias."""

from __future__ import annotations

from typing import Any

import pytest

from polyingress.core.pipeline.annotations import (
    NGINX_PREFIX,
    REGISTRY,
    AnnotationSpec,
    Risk,
    docs_table,
    parse_annotations,
    parse_bool,
    register,
    validate_prefix,
)
from polyingress.core.pipeline.model import ObjectRef
from polyingress.core.pipeline.problems import Severity

REF = ObjectRef(kind="Ingress", namespace="default", name="web")


def parse(annotations: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    values, problems = parse_annotations(REF, annotations, **kw)
    return dict(values.values), [(p.severity.value, f"{p.field}: {p.message}") for p in problems]


@pytest.mark.parametrize(
    ("annotations", "values", "problems"),
    [
        ({}, {}, []),
        ({"polyingress.io/ssl-redirect": "false"}, {"ssl-redirect": False}, []),
        ({"polyingress.io/ssl-redirect": "True"}, {"ssl-redirect": True}, []),
        ({f"{NGINX_PREFIX}/ssl-redirect": "false"}, {"ssl-redirect": False}, []),
        (
            {"polyingress.io/ssl-redirect": "yes"},
            {},
            [
                (
                    "error",
                    "metadata.annotations['polyingress.io/ssl-redirect']: "
                    "'yes' is not a boolean (true or false)",
                )
            ],
        ),
        (
            {"polyingress.io/ssl-redirct": "false"},
            {},
            [
                (
                    "error",
                    "metadata.annotations['polyingress.io/ssl-redirct']: "
                    "unknown annotation; did you mean polyingress.io/ssl-redirect?",
                )
            ],
        ),
        (
            {f"{NGINX_PREFIX}/configuration-snippet": "return 200;"},
            {},
            [
                (
                    "warning",
                    f"metadata.annotations['{NGINX_PREFIX}/configuration-snippet']: "
                    "ingress-nginx annotation not supported by polyingress; ignored",
                )
            ],
        ),
        (
            {"polyingress.io/ssl-redirect": "true", f"{NGINX_PREFIX}/ssl-redirect": "false"},
            {"ssl-redirect": True},
            [
                (
                    "warning",
                    f"metadata.annotations['{NGINX_PREFIX}/ssl-redirect']: "
                    "differs from polyingress.io/ssl-redirect; polyingress.io/ssl-redirect is used",
                )
            ],
        ),
        ({"kubernetes.io/ingress.class": "x", "example.com/ssl-redirect": "maybe"}, {}, []),
    ],
    ids=[
        "none",
        "ours",
        "go-bool-spelling",
        "nginx-alias",
        "invalid-value-is-an-error",
        "unknown-key-under-our-prefix-is-an-error",
        "unknown-nginx-key-is-a-warning",
        "our-prefix-wins-over-the-alias",
        "other-prefixes-ignored",
    ],
)
def test_parse_annotations(
    annotations: dict[str, Any], values: dict[str, Any], problems: list[tuple[str, str]]
) -> None:
    assert parse(annotations) == (values, problems)


def test_problems_are_named_for_status_and_events() -> None:
    _values, problems = parse_annotations(REF, {"polyingress.io/nope": "1"})
    (p,) = problems
    assert p.ref == REF and p.severity is Severity.ERROR and p.reason == "UnknownAnnotation"


def test_custom_prefix_replaces_ours() -> None:
    assert parse({"corp.example/ssl-redirect": "false"}, prefix="corp.example") == (
        {"ssl-redirect": False},
        [],
    )
    # polyingress.io is then an ordinary foreign prefix.
    assert parse({"polyingress.io/ssl-redirect": "false"}, prefix="corp.example") == ({}, [])


def test_nginx_prefix_as_our_prefix_makes_unknown_keys_errors() -> None:
    values, problems = parse({f"{NGINX_PREFIX}/server-snippet": "x"}, prefix=NGINX_PREFIX)
    assert values == {} and problems[0][0] == "error"


def test_default_applies_when_unset() -> None:
    values, _ = parse_annotations(REF, {})
    assert values.get("ssl-redirect") is True


def test_risk_above_the_allowed_level_is_an_error() -> None:
    registry = {
        "risky": AnnotationSpec(name="risky", parse=str, risk=Risk.CRITICAL, doc="test"),
    }
    values, problems = parse({"polyingress.io/risky": "x"}, registry=registry, max_risk=Risk.MEDIUM)
    assert values == {}
    assert problems == [
        (
            "error",
            "metadata.annotations['polyingress.io/risky']: "
            "risk critical is above the allowed medium",
        )
    ]


@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True"])
def test_parse_bool_true(value: str) -> None:
    assert parse_bool(value) is True


@pytest.mark.parametrize("value", ["yes", "on", "", " true", "tRUE"])
def test_parse_bool_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        parse_bool(value)


@pytest.mark.parametrize(
    ("prefix", "ok"),
    [
        ("polyingress.io", True),
        (NGINX_PREFIX, True),
        ("corp", True),
        ("Corp.io", False),
        ("a/b", False),
        ("", False),
        ("-x.io", False),
    ],
)
def test_validate_prefix(prefix: str, ok: bool) -> None:
    if ok:
        assert validate_prefix(prefix) == prefix
    else:
        with pytest.raises(ValueError):
            validate_prefix(prefix)


def test_registry_rejects_duplicates_and_bad_names() -> None:
    with pytest.raises(ValueError):
        register(REGISTRY["ssl-redirect"])
    with pytest.raises(ValueError):
        register(AnnotationSpec(name="Bad_Name", parse=str, risk=Risk.LOW, doc="x"))


def test_every_annotation_is_documented() -> None:
    table = docs_table()
    for name, spec in REGISTRY.items():
        assert spec.doc and f"`polyingress.io/{name}`" in table
