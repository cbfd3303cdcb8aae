"""The example backend passes polyingress's conformance suite: the shared routing cases, live,
which the built-in nginx, HAProxy and Traefik backends pass too.

    pip install polyingress[test] ./examples/example-backend
    pytest examples/example-backend/tests

(or, without this file: ``pytest -p polyingress.testing --polyingress-backend example``).
"""

from __future__ import annotations

import pytest

from polyingress.testing.conformance import (
    test_default_backend_added_at_run_time,
    test_load_spread_over_all_ready_endpoints,
    test_manifest_changes_to_ingress_endpoints_and_secret_are_served,
    test_post_body_and_method_pass_through,
    test_redirect_status_depends_on_the_method_only,
    test_request_headers_reach_backend,
    test_request_path_rule,
    test_routes_per_ingress_v1,
    test_unknown_sni_gets_fallback_certificate,
)

__all__ = [
    "test_default_backend_added_at_run_time",
    "test_load_spread_over_all_ready_endpoints",
    "test_manifest_changes_to_ingress_endpoints_and_secret_are_served",
    "test_post_body_and_method_pass_through",
    "test_redirect_status_depends_on_the_method_only",
    "test_request_headers_reach_backend",
    "test_request_path_rule",
    "test_routes_per_ingress_v1",
    "test_unknown_sni_gets_fallback_certificate",
]


@pytest.fixture(scope="session")
def polyingress_backend() -> str:
    return "example"
