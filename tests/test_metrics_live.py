"""Live: on every backend, after a path, an endpoint and a certificate change, every label value
of every polyingress_* metric on /metrics is one of the values the README documents.

A real ``polyingress run`` (livekit.Controller) per backend; HAProxy runs without spare backend
slots, so the new Service of the path change makes it reload.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from kube_objects import CLASS
from livekit import Controller, HelloFleet, backend_param, metric, wait_until, write_manifests
from manifests import Objects, cert_data
from metrics_doc import documented, undocumented_labels

pytestmark = pytest.mark.live

OBJECTS = Objects("metrics")
APP = "app.test"
SECURE = "secure.test"
ADDRESSES = {"svc-a": "127.0.90.1", "svc-a2": "127.0.90.2", "svc-b": "127.0.91.1"}
BACKENDS = [backend_param(name) for name in ("nginx", "haproxy", "traefik", "caddy")]
EXTRA = {"nginx": [], "haproxy": ["--haproxy-spare-backends", "0"], "traefik": [], "caddy": []}


def world(port: int, *, a: str = "svc-a", paths: dict[str, str] | None = None) -> list[Any]:
    return [
        CLASS,
        *OBJECTS.service("svc-a", port, [ADDRESSES[a]]),
        *OBJECTS.service("svc-b", port, [ADDRESSES["svc-b"]]),
        OBJECTS.ingress("app", APP, paths or {"/": "svc-a"}),
    ]


def secure(common_name: str) -> list[Any]:
    return [
        OBJECTS.tls_secret("secure-tls", cert_data(common_name, SECURE)),
        OBJECTS.ingress("secure", SECURE, {"/": "svc-a"}, "secure-tls"),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_label_value_is_in_its_documented_closed_set(backend: str, tmp_path: Path) -> None:
    fleet = HelloFleet([(name, address) for name, address in ADDRESSES.items()])
    manifests = tmp_path / "manifests"
    write_manifests(manifests, "world.yaml", world(fleet.port))
    write_manifests(manifests, "secure.yaml", secure("first"))
    controller = Controller(backend, manifests, tmp_path / "work", extra=EXTRA[backend])
    controller.start()

    def change(name: str, objects: list[Any], check: Any) -> None:
        applied = controller.applied()
        write_manifests(manifests, name, objects)
        controller.wait_applied(applied, timeout=30)
        wait_until(check, timeout=30)

    def served(host: str, path: str, scheme: str = "http") -> str | None:
        with contextlib.suppress(OSError):
            return controller.get(host, path, scheme=scheme).server_name
        return None

    try:
        # A path to a Service not routed before (HAProxy: no spare slot, a reload).
        two_paths = {"/": "svc-a", "/b": "svc-b"}
        change(
            "world.yaml", world(fleet.port, paths=two_paths), lambda: served(APP, "/b") == "svc-b"
        )
        # An endpoint.
        change(
            "world.yaml",
            world(fleet.port, a="svc-a2", paths=two_paths),
            lambda: served(APP, "/") == "svc-a2",
        )
        # A certificate.
        change(
            "secure.yaml",
            secure("second"),
            lambda: controller.get(SECURE, "/", scheme="https").peer_cn == "second",
        )
        text = controller.metrics()
    finally:
        controller.stop()
        fleet.stop_at_once(wait=False)

    assert undocumented_labels(text) == [], controller.log()
    # Not vacuous: the changes were counted, and each backend reloaded at least once.
    assert metric(text, "polyingress_syncs_total", result="applied") >= 4
    assert metric(text, "polyingress_reloads_total") >= 1
    assert "polyingress_reloads_total" in documented()
