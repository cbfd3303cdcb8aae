"""deploy/grafana/polyingress-dashboard.json: valid, one Prometheus data source variable,
the panels issue 19 asks for, and every query reads a metric the README documents, grouped by
labels that metric has. (tests/test_dashboard_live.py checks the names against each backend's
real /metrics.)"""

from __future__ import annotations

import re

import pytest
from grafana_queries import (
    BACKEND_PREFIXES,
    backend_of,
    exported,
    family,
    grouping_labels,
    load,
    metric_names,
    missing,
    panels,
    queries,
)
from metrics_doc import documented


def test_the_dashboard_is_grafana_json_with_a_data_source_variable() -> None:
    doc = load()
    assert doc["title"] == "polyingress" and doc["uid"] == "polyingress"
    assert isinstance(doc["schemaVersion"], int)
    names = [v["name"] for v in doc["templating"]["list"]]
    assert names == ["datasource", "instance"]
    ids = [p["id"] for p in panels(doc)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels(doc):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            assert 'instance=~"$instance"' in target["expr"], target["expr"]


def test_it_has_the_panels_the_issue_asks_for() -> None:
    doc = load()
    by_title = {p["title"]: p for p in panels(doc)}
    wanted = {
        "Syncs by result": "polyingress_syncs_total",
        "Apply time": "polyingress_apply_duration_seconds_bucket",
        "Reloads by reason": "polyingress_reloads_total",
        "Runtime changes and commands": "polyingress_haproxy_runtime_commands_total",
        "Source degraded": "polyingress_source_degraded",
        "Spare pool (HAProxy)": "polyingress_haproxy_spare_backends",
    }
    for title, metric in wanted.items():
        assert title in by_title, sorted(by_title)
        read = set().union(*(metric_names(t["expr"]) for t in by_title[title]["targets"]))
        assert metric in read, (title, read)
    reasons = [t["expr"] for t in by_title["Reloads by reason"]["targets"]]
    assert all("by (reason)" in e for e in reasons), reasons


def test_every_query_reads_a_documented_metric_by_its_documented_labels() -> None:
    docs = documented()
    histograms = {n for n, d in docs.items() if d.type == "histogram"}
    seen: set[str] = set()
    for expr in queries(load()):
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        for name in names:
            fam = family(name, histograms)
            assert fam in docs, f"{expr!r} reads {name}, which the README does not document"
            seen.add(fam)
            labels = set(docs[fam].labels) | {"instance", "job"}
            extra = grouping_labels(expr) - labels
            assert len(names) > 1 or not extra, f"{expr!r} groups {fam} by unknown {extra}"
    assert len(seen) >= 15, seen


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.95, sum by (le, mode) (rate(x_bucket{a="b",c=~"}"}[5m])))',
            {"x_bucket"},
        ),
        ("sum(rate(a_total[$__rate_interval])) / sum(rate(b_count[1m]))", {"a_total", "b_count"}),
        ("time() - max(last_seconds)", {"last_seconds"}),
        ("label_values(polyingress_syncs_total, instance)", {"polyingress_syncs_total"}),
        ("up and on (instance) other offset 5m", {"up", "other"}),
    ],
)
def test_the_query_parser_finds_every_metric_name(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_missing_maps_histogram_series_and_backend_metrics() -> None:
    text = "\n".join(
        [
            "# TYPE polyingress_apply_duration_seconds histogram",
            "# TYPE polyingress_syncs_total counter",
            "# TYPE polyingress_haproxy_spare_backends gauge",
        ]
    )
    assert exported(text)[1] == {"polyingress_apply_duration_seconds"}
    names = {
        "polyingress_apply_duration_seconds_bucket",
        "polyingress_syncs_total",
        "polyingress_haproxy_spare_backends",
        "polyingress_reloads_total",
    }
    assert missing(text, "haproxy", names) == ["polyingress_reloads_total"]
    # nginx need not have HAProxy's metrics, but must have every core one.
    assert missing("# TYPE polyingress_syncs_total counter", "nginx", names) == [
        "polyingress_apply_duration_seconds_bucket",
        "polyingress_reloads_total",
    ]
    assert backend_of("polyingress_haproxy_spare_backends") == "haproxy"
    assert all(re.fullmatch(r"polyingress_[a-z]+_", p) for p in BACKEND_PREFIXES)
