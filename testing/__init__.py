"""polyingress's conformance kit: the shared routing cases, hello backends and live helpers.

A backend passes when the same requests get the same answers through its proxy as through the
built-in ones. Run the suite against any installed backend, from anywhere::

    pytest -p polyingress.testing --polyingress-backend NAME

* :mod:`polyingress.testing.cases`: the routing world (Ingresses, Services, EndpointSlices,
  TLS Secrets) and what each request must get.
* :mod:`polyingress.testing.live`: hello backends, a real ``polyingress run``, an HTTP(S)
  client with SNI, /metrics samples.
* :mod:`polyingress.testing.conformance`: the live tests.
* :mod:`polyingress.testing.gateway_cases`: the Gateway API conformance cases (upstream's
  tests, named as there), :mod:`polyingress.testing.gateway_live`: their live run, and
  :mod:`polyingress.testing.gateway_report`: upstream's ConformanceReport of a run.
* :mod:`polyingress.testing.plugin`: the pytest options and fixtures (this package is the
  plugin: ``-p polyingress.testing``).

Requires pytest (``pip install polyingress[test]``).
"""

from __future__ import annotations

from .plugin import (
    gateway_world,
    live_world,
    polyingress_backend,
    polyingress_run_args,
    pytest_addoption,
    pytest_configure,
    pytest_runtest_makereport,
    pytest_sessionfinish,
)

__all__ = [
    "gateway_world",
    "live_world",
    "polyingress_backend",
    "polyingress_run_args",
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_makereport",
    "pytest_sessionfinish",
]
