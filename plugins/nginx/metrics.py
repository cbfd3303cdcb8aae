"""Prometheus metrics of the nginx backend (default registry, created once at import).

Both gauges are read when ``/metrics`` is scraped, from /proc, for the backend of this run
(:func:`observe`): how many worker generations nginx runs (the current one, plus one per
reload whose old workers are still shutting down), and the memory of the master and every
worker (PSS: a page shared by several of them counts once, divided among them).
"""

from __future__ import annotations

import weakref
from typing import Protocol

from prometheus_client import Gauge

__all__ = ["MEMORY", "WORKER_GENERATIONS", "observe"]

WORKER_GENERATIONS = Gauge(
    "polyingress_nginx_worker_generations",
    "nginx worker generations alive: the current workers, plus one per reload whose old "
    "workers are still shutting down (bounded by worker-shutdown-timeout)",
)
MEMORY = Gauge(
    "polyingress_nginx_memory_bytes",
    "Proportional set size (PSS) of the nginx master and all its workers, old ones included",
)


class Observed(Protocol):
    def worker_generations(self) -> int: ...

    def memory_bytes(self) -> int: ...


def observe(backend: Observed) -> None:
    """Make the gauges read ``backend`` (the one nginx backend of a run; the last one created
    in a process that makes several, such as the tests). Held weakly: 0 once it is gone."""
    ref = weakref.ref(backend)

    def generations() -> float:
        b = ref()
        return float(b.worker_generations()) if b is not None else 0.0

    def memory() -> float:
        b = ref()
        return float(b.memory_bytes()) if b is not None else 0.0

    WORKER_GENERATIONS.set_function(generations)
    MEMORY.set_function(memory)
