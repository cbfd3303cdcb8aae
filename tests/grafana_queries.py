"""The Grafana dashboard in deploy/grafana: its PromQL queries, the metric names they read
(histogram ``_bucket``/``_sum``/``_count`` series mapped to their family), and which of them a
/metrics scrape lacks. Used by tests/test_grafana_dashboard.py (against the README's table) and
tests/test_dashboard_live.py (against each backend's real /metrics)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DASHBOARD = (
    Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "polyingress-dashboard.json"
)

# PromQL words that are not metric names: aggregation and binary operators, grouping
# modifiers. (Function names are recognised by the "(" that follows them.)
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or"}
    | {"unless", "offset", "atan2", "inf", "nan"}
)
BACKEND_PREFIXES = ("polyingress_nginx_", "polyingress_haproxy_", "polyingress_traefik_")
BACKEND_PREFIXES += ("polyingress_caddy_",)
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def load() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    out: list[dict[str, Any]] = []
    for panel in doc.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def queries(doc: dict[str, Any]) -> list[str]:
    """Every PromQL expression: the panels' targets and the query variables'."""
    exprs = [t["expr"] for p in panels(doc) for t in p.get("targets", [])]
    for var in doc.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or Grafana's ``label_values(metric, label)``)
    reads, as written (``x_bucket`` stays ``x_bucket``)."""
    names = set(re.findall(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,", expr))
    text = re.sub(r"label_values\([^)]*\)", "", expr)
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", text):
        word = m.group()
        if text[m.end() :].lstrip().startswith("(") or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def grouping_labels(expr: str) -> set[str]:
    """The labels an expression groups by (``by (a, b)``), ``le`` left out."""
    found: set[str] = set()
    for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        found |= {label.strip() for label in group.split(",") if label.strip()}
    return found - {"le"}


def family(name: str, histograms: set[str]) -> str:
    """The family a series name belongs to: ``x_bucket`` of histogram ``x`` is ``x``."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in histograms:
            return name[: -len(suffix)]
    return name


def exported(metrics_text: str) -> tuple[set[str], set[str]]:
    """(families, histograms) a /metrics scrape declares (its ``# TYPE`` lines: a labelled
    metric that has counted nothing yet has no sample, but is exported)."""
    families: set[str] = set()
    histograms: set[str] = set()
    for line in metrics_text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m is not None:
            families.add(m.group(1))
            if m.group(2) in ("histogram", "summary"):
                histograms.add(m.group(1))
    return families, histograms


def backend_of(name: str) -> str | None:
    """The backend a backend-specific metric belongs to (``polyingress_haproxy_*``), else None
    (a core metric: every backend exports it)."""
    for prefix in BACKEND_PREFIXES:
        if name.startswith(prefix):
            return prefix.split("_")[1]
    return None


def missing(metrics_text: str, backend: str, names: set[str]) -> list[str]:
    """The names of ``names`` that ``backend``'s /metrics should have and has not: every core
    metric, and the backend's own."""
    families, histograms = exported(metrics_text)
    return sorted(
        name
        for name in names
        if backend_of(name) in (None, backend) and family(name, histograms) not in families
    )
