"""Live updates through a real ``polyingress run`` (``livekit.Controller``) on every backend:
what a user sees after each kind of change, once the controller counts it applied (every backend
reports an apply only once its proxy serves it, so the checks follow the apply at once).

* an endpoint replaced: only the new endpoint answers;
* a path added, then removed: served, then back to the shorter prefix;
* a new TLS host: its certificate by SNI, its HTTPS redirect on plain HTTP;
* a Service switched under a path: the new Service answers;
* the LAST Ingress removed: 404 (or the controller's default backend), nothing of the old
  routes on either scheme;
* a start without any Ingress: the controller becomes ready and answers 404, and the first
  Ingress added is served.

Traefik found its way into these through a bug: a route-less model rendered ``routers: {}``,
which Traefik 3.7 refuses as a whole file, so the old routes stayed served and a start without
Ingresses never became ready.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kube_objects import CLASS
from livekit import (
    Controller,
    HelloFleet,
    Response,
    backend_param,
    stop_running,
    write_manifests,
)
from manifests import Objects, cert_data

NS = "updates"
APP = "app.test"
SECURE = "secure.test"
ENDPOINTS = {
    "svc-a": ["127.0.80.1", "127.0.80.2"],
    "svc-b": ["127.0.81.1"],
    "svc-default": ["127.0.82.1"],
}
BACKENDS = [backend_param(name) for name in ("nginx", "haproxy", "traefik", "caddy")]

pytestmark = pytest.mark.live

OBJECTS = Objects(NS)
service, ingress, tls_secret = OBJECTS.service, OBJECTS.ingress, OBJECTS.tls_secret


class World:
    """Hello servers for every endpoint; Services in ``services.yaml`` (svc-a on its first
    endpoint only), Ingresses in files of their own; a controller once ``start`` is called."""

    def __init__(self, backend: str, tmp: Path) -> None:
        self.backend = backend
        self.fleet = HelloFleet(
            [(f"{svc}-{i + 1}", a) for svc, addrs in ENDPOINTS.items() for i, a in enumerate(addrs)]
        )
        self.manifests = tmp / "manifests"
        self.workdir = tmp / "work"
        self.services(svc_a=ENDPOINTS["svc-a"][:1])
        self.controller: Controller | None = None

    def services(self, svc_a: list[str]) -> None:
        objects: list[dict[str, Any]] = [CLASS]
        objects += service("svc-a", self.fleet.port, svc_a)
        for name in ("svc-b", "svc-default"):
            objects += service(name, self.fleet.port, ENDPOINTS[name])
        write_manifests(self.manifests, "services.yaml", objects)

    def start(self, *extra: str) -> Controller:
        self.controller = Controller(self.backend, self.manifests, self.workdir, extra=[*extra])
        self.controller.start()
        return self.controller

    def change(self, apply: Any) -> None:
        """Make a change (``apply()``) and wait until the controller applied it."""
        assert self.controller is not None
        before = self.controller.applied()
        apply()
        self.controller.wait_applied(before, timeout=30)

    def get(self, host: str, path: str, scheme: str = "http") -> Response:
        assert self.controller is not None
        return self.controller.get(host, path, scheme=scheme)

    def served(self, host: str, path: str, scheme: str = "http") -> str:
        """The endpoint that answered (``svc-a-1``), or ``HTTP <status>``."""
        resp = self.get(host, path, scheme)
        if resp.status == 200 and resp.server_name:
            return resp.server_name
        return f"HTTP {resp.status}"

    def stop(self) -> None:
        if self.controller is None or self.controller.proc is None:
            self.fleet.stop_at_once(wait=False)
            return
        stop_running(self.controller, self.fleet, {self.controller.proc.pid})


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    w = World(request.param, tmp_path)
    try:
        yield w
    finally:
        w.stop()


def app(**paths: str) -> list[dict[str, Any]]:
    return [ingress("app", APP, {"/": "svc-a", **paths})]


def write(world: World, name: str, objects: list[dict[str, Any]]) -> None:
    write_manifests(world.manifests, name, objects)


def test_an_endpoint_change_is_served(world: World) -> None:
    write(world, "app.yaml", app())
    world.start()
    assert {world.served(APP, "/") for _ in range(4)} == {"svc-a-1"}

    world.change(lambda: world.services(svc_a=ENDPOINTS["svc-a"][1:]))
    assert {world.served(APP, "/") for _ in range(6)} == {"svc-a-2"}

    world.change(lambda: world.services(svc_a=ENDPOINTS["svc-a"]))
    assert {world.served(APP, "/x") for _ in range(8)} == {"svc-a-1", "svc-a-2"}


def test_a_path_added_and_removed(world: World) -> None:
    write(world, "app.yaml", app())
    world.start()
    assert world.served(APP, "/new/x") == "svc-a-1"

    world.change(lambda: write(world, "app.yaml", app(**{"/new": "svc-b"})))
    assert world.served(APP, "/new/x") == "svc-b-1"
    assert world.served(APP, "/new") == "svc-b-1"
    assert world.served(APP, "/newer") == "svc-a-1"

    world.change(lambda: write(world, "app.yaml", app()))
    assert world.served(APP, "/new/x") == "svc-a-1"
    assert world.served(APP, "/new") == "svc-a-1"


def test_a_new_tls_host(world: World) -> None:
    write(world, "app.yaml", app())
    world.start()
    before = world.get(SECURE, "/", scheme="https")
    assert before.status == 404 and before.peer_cn != SECURE

    secure = [
        tls_secret("secure-tls", cert_data(SECURE, SECURE)),
        ingress("secure", SECURE, {"/": "svc-b"}, "secure-tls"),
    ]
    world.change(lambda: write(world, "secure.yaml", secure))
    resp = world.get(SECURE, "/x", scheme="https")
    assert (resp.status, resp.server_name, resp.peer_cn) == (200, "svc-b-1", SECURE)
    redirect = world.get(SECURE, "/x")
    assert redirect.status == 301
    assert redirect.headers["location"].startswith(f"https://{SECURE}")
    assert world.served(APP, "/") == "svc-a-1"


def test_a_service_switched(world: World) -> None:
    write(world, "app.yaml", app(**{"/b": "svc-a"}))
    world.start()
    assert world.served(APP, "/b/1") == "svc-a-1"

    world.change(lambda: write(world, "app.yaml", app(**{"/b": "svc-b"})))
    assert world.served(APP, "/b/1") == "svc-b-1"
    assert world.served(APP, "/") == "svc-a-1"


@pytest.mark.parametrize("default_backend", [False, True], ids=["404", "default-backend"])
def test_removing_the_last_ingress_serves_nothing_of_the_old_routes(
    world: World, default_backend: bool
) -> None:
    secure = [
        tls_secret("secure-tls", cert_data(SECURE, SECURE)),
        ingress("secure", SECURE, {"/": "svc-b"}, "secure-tls"),
    ]
    write(world, "app.yaml", [*app(**{"/b": "svc-b"}), *secure])
    extra = ["--default-backend-service", f"{NS}/svc-default"] if default_backend else []
    world.start(*extra)
    assert world.served(APP, "/b") == "svc-b-1"
    assert world.served(SECURE, "/", "https") == "svc-b-1"

    world.change(lambda: (world.manifests / "app.yaml").unlink())
    want = "svc-default-1" if default_backend else "HTTP 404"
    for scheme in ("http", "https"):
        for host, path in ((APP, "/"), (APP, "/b"), (SECURE, "/"), ("other.test", "/")):
            assert world.served(host, path, scheme) == want, (scheme, host, path)
    assert world.get(SECURE, "/", scheme="https").peer_cn != SECURE

    # And the controller still follows changes.
    world.change(lambda: write(world, "app.yaml", app()))
    assert world.served(APP, "/") == "svc-a-1"


def test_starting_with_no_ingress_becomes_ready_and_serves_404(world: World) -> None:
    controller = world.start()  # only Services: start() waits for /readyz
    assert controller.health("/readyz")[0] == 200
    for scheme in ("http", "https"):
        assert world.get(APP, "/", scheme=scheme).status == 404

    world.change(lambda: write(world, "app.yaml", app()))
    assert world.served(APP, "/") == "svc-a-1"
