"""Per-Ingress settings read from annotations, through a registry of validated keys.

Every annotation is registered with its key (the part after the prefix), a parser that turns
the string into a typed value or raises ``ValueError`` with a sentence, a risk level (as
ingress-nginx's ``parser/validators.go`` grades them) and a one-line doc. Nothing else is
read: there are no snippet or free-text annotations, so no user string reaches proxy
configuration except through a parser.

Keys are read under ``--annotations-prefix`` (default ``polyingress.io``) and, as an alias for
migrations, under ingress-nginx's ``nginx.ingress.kubernetes.io``:

* an unknown key under our prefix is an error (the Ingress is rejected: a typo must not be
  silently ignored);
* an unknown key under the alias is a warning (an ingress-nginx feature we do not have);
* a value the parser refuses, or a key above the allowed risk, is an error;
* a key given under both prefixes takes our prefix's value (a warning when they differ).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from polyingress.core.pipeline.model import ObjectRef
from polyingress.core.pipeline.problems import Problem, Severity

__all__ = [
    "DEFAULT_PREFIX",
    "NGINX_PREFIX",
    "REGISTRY",
    "AnnotationSpec",
    "Annotations",
    "Risk",
    "docs_table",
    "parse_annotations",
    "parse_bool",
    "register",
    "validate_prefix",
]

DEFAULT_PREFIX = "polyingress.io"
NGINX_PREFIX = "nginx.ingress.kubernetes.io"
VALUE_MAX = 1024

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class Risk(IntEnum):
    """How much harm a malicious value could do (ingress-nginx's AnnotationRisk levels)."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnotationSpec:
    name: str
    parse: Callable[[str], Any]
    risk: Risk
    doc: str
    default: Any = None
    nginx_alias: bool = True  # also read under nginx.ingress.kubernetes.io/<name>


REGISTRY: dict[str, AnnotationSpec] = {}


def register(spec: AnnotationSpec) -> AnnotationSpec:
    if not _NAME.match(spec.name):
        raise ValueError(f"annotation name {spec.name!r} is not a lowercase DNS label")
    if spec.name in REGISTRY:
        raise ValueError(f"annotation {spec.name!r} is already registered")
    REGISTRY[spec.name] = spec
    return spec


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(value: str) -> bool:
    """The spellings Go's strconv.ParseBool accepts, as ingress-nginx does."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a boolean (true or false)")


register(
    AnnotationSpec(
        name="ssl-redirect",
        parse=parse_bool,
        risk=Risk.LOW,
        default=True,
        doc="Redirect HTTP to HTTPS (301 for GET, 308 otherwise) on the hosts that have TLS; "
        "default true.",
    )
)


def validate_prefix(prefix: str) -> str:
    """``--annotations-prefix``: a DNS subdomain such as ``polyingress.io``."""
    if len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix):
        raise ValueError(f"annotations prefix {prefix!r} must be a lowercase DNS subdomain")
    return prefix


@dataclass(frozen=True, slots=True)
class Annotations:
    """The parsed values set on one Ingress; ``get`` falls back to the registry default."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        return REGISTRY[name].default


def _problem(ref: ObjectRef, key: str, message: str, severity: Severity, reason: str) -> Problem:
    return Problem(
        ref=ref,
        field=f"metadata.annotations[{key!r}]",
        message=message,
        severity=severity,
        reason=reason,
    )


def parse_annotations(
    ref: ObjectRef,
    annotations: Mapping[str, Any] | None,
    *,
    prefix: str = DEFAULT_PREFIX,
    max_risk: Risk = Risk.HIGH,
    registry: Mapping[str, AnnotationSpec] | None = None,
) -> tuple[Annotations, list[Problem]]:
    """Parse and validate the annotations of one object. Pure; problems name the key."""
    reg = REGISTRY if registry is None else registry
    problems: list[Problem] = []
    primary: dict[str, tuple[str, Any]] = {}
    aliased: dict[str, tuple[str, Any]] = {}
    for key in sorted(annotations or {}):
        value = (annotations or {})[key]
        ns, sep, name = key.partition("/")
        if not sep:
            continue
        if ns == prefix:
            target, is_primary = primary, True
        elif ns == NGINX_PREFIX:
            target, is_primary = aliased, False
        else:
            continue
        spec = reg.get(name)
        if spec is None or (not is_primary and not spec.nginx_alias):
            if is_primary:
                known = ", ".join(sorted(reg)) or "none"
                problems.append(
                    _problem(
                        ref,
                        key,
                        f"unknown annotation (known under {prefix}/: {known})",
                        Severity.ERROR,
                        "UnknownAnnotation",
                    )
                )
            else:
                problems.append(
                    _problem(
                        ref,
                        key,
                        "ingress-nginx annotation not supported by polyingress; ignored",
                        Severity.WARNING,
                        "UnsupportedAnnotation",
                    )
                )
            continue
        if spec.risk > max_risk:
            problems.append(
                _problem(
                    ref,
                    key,
                    f"risk {spec.risk.name.lower()} is above the allowed {max_risk.name.lower()}",
                    Severity.ERROR,
                    "AnnotationRisk",
                )
            )
            continue
        if not isinstance(value, str) or len(value) > VALUE_MAX:
            problems.append(
                _problem(
                    ref,
                    key,
                    f"value must be a string of at most {VALUE_MAX} characters",
                    Severity.ERROR,
                    "InvalidAnnotation",
                )
            )
            continue
        try:
            parsed = spec.parse(value)
        except ValueError as exc:
            problems.append(_problem(ref, key, str(exc), Severity.ERROR, "InvalidAnnotation"))
            continue
        target[name] = (key, parsed)
    values = {name: parsed for name, (_key, parsed) in aliased.items()}
    for name, (key, parsed) in primary.items():
        if name in aliased and aliased[name][1] != parsed:
            problems.append(
                _problem(
                    ref,
                    aliased[name][0],
                    f"differs from {key}; {key} is used",
                    Severity.WARNING,
                    "ConflictingAnnotation",
                )
            )
        values[name] = parsed
    return Annotations(values=values), problems


def docs_table(prefix: str = DEFAULT_PREFIX) -> str:
    """The registry as a Markdown table (README)."""
    lines = ["| annotation | risk | default | meaning |", "| --- | --- | --- | --- |"]
    for name in sorted(REGISTRY):
        spec = REGISTRY[name]
        default = "" if spec.default is None else str(spec.default).lower()
        lines.append(f"| `{prefix}/{name}` | {spec.risk.name.lower()} | {default} | {spec.doc} |")
    return "\n".join(lines) + "\n"
