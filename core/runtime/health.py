"""/healthz, /readyz and /metrics on the health port."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from polyingress.core.api import HealthReport

__all__ = ["HealthServer"]


class HealthServer:
    """Serves health from ``report()``; ``/readyz`` is 200 only once the proxy serves the
    state read at start, ``/healthz`` fails when the proxy or the reconciler is down."""

    def __init__(self, bind: str, port: int, report: Callable[[], HealthReport]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body = generate_latest(REGISTRY)
                    self._send(200, body, CONTENT_TYPE_LATEST)
                    return
                if path not in ("/healthz", "/readyz"):
                    self._send(404, b"not found\n", "text/plain")
                    return
                rep = outer.report()
                ok = rep.live if path == "/healthz" else rep.ready
                text = ("ok" if ok else "not ok") + (f": {rep.detail}" if rep.detail else "")
                self._send(200 if ok else 503, (text + "\n").encode(), "text/plain")

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.report = report
        self.server = ThreadingHTTPServer((bind, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="health", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
