"""Property: a hostile Ingress is rejected naming object and field, or only safe strings reach
the model. Backend fuzz tests (test_fuzz_<backend>.py) build on the same strategies."""

from __future__ import annotations

import os
import re
from typing import Any

from conftest import build
from hostile import hostile_ingress
from hypothesis import HealthCheck, given, settings
from kube_objects import CLASS

EXAMPLES = int(os.environ.get("POLYINGRESS_FUZZ_EXAMPLES", "300"))

SAFE_HOST = re.compile(
    r"^(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
SAFE_PATH = re.compile(r"^/[A-Za-z0-9\-._~!&()*+,=:@/]*$")
SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
FIELDS = re.compile(r"^(metadata\.|spec\.(rules|tls|defaultBackend|ingressClassName)|spec$)")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_ingress())
def test_hostile_ingress_rejected_precisely_or_safe(ing: dict[str, Any]) -> None:
    result = build([CLASS, ing])
    if result.rejected:
        assert [r.name for r in result.rejected] == ["fuzz"]
        assert result.errors
        for p in result.errors:
            assert p.ref.namespace == "fuzz" and p.ref.name == "fuzz"
            assert FIELDS.match(p.field), p.field
            assert str(p).startswith(f"Ingress fuzz/fuzz: {p.field}: ")
            assert "\n" not in p.message and "\x00" not in p.message
        assert not [v for v in result.model.vhosts if v.host is not None]
        return
    for vhost in result.model.vhosts:
        assert vhost.host is None or SAFE_HOST.match(vhost.host), vhost.host
        assert len(vhost.host or "") <= 253
        for route in vhost.routes:
            assert SAFE_PATH.match(route.path), route.path
            assert "//" not in route.path and "/../" not in route.path + "/"
            assert re.match(r"^[a-z0-9_-]+$", route.backend)
    for backend in result.model.backends:
        assert SAFE_NAME.match(backend.service) and SAFE_NAME.match(backend.port)
