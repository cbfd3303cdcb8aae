"""The metrics the README documents (section "Metrics"), and a check of a /metrics scrape
against them: every polyingress_* family documented with its type, every label named there,
every label value one of the documented values."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

README = Path(__file__).resolve().parent.parent / "README.md"
# Labels prometheus_client adds itself (histogram buckets, summary quantiles).
BUILTIN_LABELS = frozenset({"le", "quantile"})


@dataclass(frozen=True)
class Documented:
    name: str
    type: str
    labels: dict[str, frozenset[str]]


def _table(section: str) -> list[list[str]]:
    rows: list[list[str]] = []
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows and not line.startswith("|"):
            break
    return rows[1:]


def reload_reasons(text: str | None = None) -> frozenset[str]:
    """The values of the README's reload reason table."""
    text = README.read_text() if text is None else text
    section = text[text.index("#### Reload reasons") :]
    return frozenset(re.findall(r"`([^`]+)`", row[0])[0] for row in _table(section))


def documented(text: str | None = None) -> dict[str, Documented]:
    """The README's metrics table, by metric name as documented (counters end in _total)."""
    text = README.read_text() if text is None else text
    section = text[text.index("### Metrics") :]
    reasons = reload_reasons(text)
    out: dict[str, Documented] = {}
    for name_cell, type_cell, labels_cell in _table(section):
        name = name_cell.strip("`")
        labels: dict[str, frozenset[str]] = {}
        for part in filter(None, (p.strip() for p in labels_cell.split(";"))):
            head, values = part.split(":", 1)
            label = re.findall(r"`([^`]+)`", head)[0]
            listed = frozenset(re.findall(r"`([^`]+)`", values))
            labels[label] = reasons if "reload reason" in values else listed
        out[name] = Documented(name, type_cell, labels)
    return out


def family_name(name: str, mtype: str) -> str:
    """A family's name as documented: prometheus_client's parser drops a counter's _total."""
    return f"{name}_total" if mtype == "counter" else name


def undocumented_labels(scrape: str, docs: dict[str, Documented] | None = None) -> list[str]:
    """Everything in ``scrape`` (/metrics text) that the README does not document: a
    polyingress_* family, its type, a label name or a label value. Empty when all is closed."""
    docs = documented() if docs is None else docs
    problems = []
    for family in text_string_to_metric_families(scrape):
        if not family.name.startswith("polyingress_"):
            continue
        name = family_name(family.name, family.type)
        created = name.endswith("_created")  # the text format's creation-time gauges
        if created:
            base = name.removesuffix("_created")
            name = base if base in docs else f"{base}_total"
        doc = docs.get(name)
        if doc is None:
            problems.append(f"{name}: not documented")
            continue
        if doc.type != family.type and not created:
            problems.append(f"{name}: a {family.type}, documented as a {doc.type}")
        for sample in family.samples:
            for label, value in sample.labels.items():
                if label in BUILTIN_LABELS:
                    continue
                if label not in doc.labels:
                    problems.append(f"{name}: label {label!r} not documented")
                elif value not in doc.labels[label]:
                    problems.append(f"{name}{{{label}={value!r}}}: not a documented value")
    return sorted(set(problems))
