"""Long-lived connections and routine changes: a streaming response held open through the proxy
while 20 routine changes (endpoints of another Service, paths of another Ingress) are applied.

HAProxy applies them through its Runtime API and Traefik swaps its configuration in place:
neither touches an open connection, so the stream lives on. Caddy (contrib/caddy) loads a new
configuration through its admin API and stops the old servers gracefully, with no grace period
limit: a request in flight, this stream, runs to its end on them (an upgraded connection, a
WebSocket, is closed ``--caddy-stream-close-delay`` after the change: contrib/caddy/tests).
nginx reloads for a path change (and for endpoints with static upstreams); the old worker keeps
the stream until ``worker_shutdown_timeout`` (10 s by default) and then closes it: the stream is
cut about 10 s after the first reload, as ingress-nginx does.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kube_objects import ingress, path, rule, service, slice_
from livekit import Controller, HelloFleet, backend_param, request, wait_until, write_manifests
from longlived import Stream

from polyingress.core.runtime.hello import STREAM_INTERVAL, HelloServer

BACKENDS = [backend_param(n) for n in ("nginx", "haproxy", "traefik", "caddy")]
CHANGES = 20
NS = "live"
NGINX_WORKER_SHUTDOWN_TIMEOUT = 10.0  # plugins/nginx/settings.py default


def test_hello_stream_sends_a_chunk_every_interval() -> None:
    server = HelloServer("streamer", "127.0.0.1", 0).start()
    try:
        stream = Stream(server.port, "any", chunks=5).open()
        wait_until(lambda: stream.ended is not None, timeout=5)
        stream.close()
        assert stream.complete and stream.status == 200, stream.error
        assert [line for _t, line in stream.lines] == [f"streamer {i}" for i in range(5)]
        gaps = [b[0] - a[0] for a, b in zip(stream.lines, stream.lines[1:], strict=False)]
        assert all(gap >= STREAM_INTERVAL * 0.8 for gap in gaps), gaps
        # An ordinary request is answered as before.
        assert request(server.port, "any", "/").server_name == "streamer"
    finally:
        server.stop()


def _service(name: str, addresses: list[str], port: int) -> list[dict[str, Any]]:
    http = [{"name": "http", "port": port}]
    return [
        service(name, [{"name": "http", "port": 80, "targetPort": port}], ns=NS),
        slice_(name, [(a, True) for a in addresses], http, ns=NS, name=f"{name}-1"),
    ]


def _ingress(name: str, host: str, paths: list[str]) -> dict[str, Any]:
    return ingress(name, rule(host, *(path(p, name) for p in paths)), ns=NS)


CLASS = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "IngressClass",
    "metadata": {"name": "polyingress"},
    "spec": {"controller": "polyingress.io/controller"},
}


@pytest.mark.live
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stream_and_routine_changes(backend: str, tmp_path: Path) -> None:
    fleet = HelloFleet([("streamer", "127.0.2.10"), ("other-a", "127.0.2.11")])
    fleet.add("other-b", "127.0.2.12")
    manifests = tmp_path / "m"
    write_manifests(
        manifests,
        "stream.yaml",
        [
            CLASS,
            *_service("stream", ["127.0.2.10"], fleet.port),
            _ingress("stream", "stream.live.example.com", ["/"]),
        ],
    )

    def other(address: str, paths: list[str]) -> None:
        objs = [*_service("other", [address], fleet.port), _ingress("other", "o.example", paths)]
        write_manifests(manifests, "other.yaml", objs)

    paths = ["/base"]
    other("127.0.2.11", paths)
    ctl = Controller(backend, manifests, tmp_path / "work").start()
    stream: Stream | None = None
    try:
        stream = Stream(ctl.http_port, "stream.live.example.com").open()
        address, first_change = "127.0.2.11", time.monotonic()
        for i in range(CHANGES):
            if i % 2 == 0:
                address = "127.0.2.12" if address == "127.0.2.11" else "127.0.2.11"
                other(address, paths)
                want = "other-a" if address == "127.0.2.11" else "other-b"
                wait_until(
                    lambda w=want: request(ctl.http_port, "o.example", "/base").server_name == w,
                    timeout=30,
                    interval=0.01,
                )
            else:
                paths.append(f"/p{i}")
                other(address, paths)
                wait_until(
                    lambda p=paths[-1]: request(ctl.http_port, "o.example", p).status == 200,
                    timeout=30,
                    interval=0.01,
                )
        changes_done = time.monotonic()
        # Past nginx's worker_shutdown_timeout after the first change: a reload's old worker
        # has let go of its connections by then.
        time.sleep(max(0.0, first_change + NGINX_WORKER_SHUTDOWN_TIMEOUT + 3 - time.monotonic()))
        if backend == "nginx":
            # The reload's old worker closed the stream at worker_shutdown_timeout; routine
            # changes are served meanwhile (the new workers), the stream is not.
            assert stream.ended is not None and not stream.complete, "nginx kept the stream"
            assert stream.ended - first_change >= NGINX_WORKER_SHUTDOWN_TIMEOUT * 0.8, (
                f"cut {stream.ended - first_change:.1f}s after the first change"
            )
        else:
            assert stream.alive, f"{backend} closed the stream: {stream.error}"
            assert stream.ended is None
            lines = [line for _t, line in stream.lines]
            assert lines == [f"streamer {i}" for i in range(len(lines))], "lines lost"
        assert changes_done > first_change
    finally:
        if stream is not None:
            stream.close()
        ctl.stop()
        fleet.stop()
