"""Prometheus metrics of the HAProxy backend (default registry, created once at import)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "APPLY_SECONDS",
    "DRIFT_REPAIRED",
    "RELOADS",
    "RESTARTS",
    "RUNTIME_COMMANDS",
    "SPARE_SLOTS",
]

RELOADS = Counter(
    "polyingress_haproxy_reloads_total", "HAProxy reloads performed, by reason", ["reason"]
)
RUNTIME_COMMANDS = Counter(
    "polyingress_haproxy_runtime_commands_total",
    "Commands sent to the HAProxy Runtime API, by verb (first two words)",
    ["command"],
)
APPLY_SECONDS = Histogram(
    "polyingress_haproxy_apply_duration_seconds",
    "Time to make HAProxy serve a new model, by path taken (runtime or reload)",
    ["mode"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DRIFT_REPAIRED = Counter(
    "polyingress_haproxy_drift_repaired_total",
    "Differences between HAProxy's state and the model found by a read-back and repaired",
    ["kind"],
)
SPARE_SLOTS = Gauge(
    "polyingress_haproxy_spare_backends", "Spare backend slots left for new Services"
)
RESTARTS = Counter(
    "polyingress_haproxy_restarts_total",
    "HAProxy master restarts after it exited, by cause",
    ["cause"],
)
