"""Small hello backends for the demo and the tests, like the tutorial's nginxdemos/hello.

Each answers every request with its server address, server name, date, URI and a request id, as
plain text (or JSON with ``?format=json`` or ``Accept: application/json``).
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["HelloServer"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client (or a proxy's health check) closing its connection is not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class HelloServer:
    def __init__(self, name: str, address: str, port: int) -> None:
        server_name = name

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are two writes: without this, Nagle + delayed ACK add ~40 ms.
            disable_nagle_algorithm = True

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body_in = self.rfile.read(length) if length else b""
                address = self.server.server_address
                host, port = str(address[0]), int(address[1])  # type: ignore[index]
                info = {
                    "server_address": f"{host}:{port}",
                    "server_name": server_name,
                    "date": formatdate(usegmt=True),
                    "uri": self.path,
                    "method": self.command,
                    "request_id": uuid.uuid4().hex,
                    "host": self.headers.get("Host", ""),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body_length": len(body_in),
                }
                wants_json = "format=json" in self.path or "json" in self.headers.get("Accept", "")
                if wants_json:
                    body = json.dumps(info, sort_keys=True).encode()
                    ctype = "application/json"
                else:
                    body = (
                        f"Server address: {info['server_address']}\n"
                        f"Server name: {server_name}\n"
                        f"Date: {info['date']}\n"
                        f"URI: {self.path}\n"
                        f"Request ID: {info['request_id']}\n"
                    ).encode()
                    ctype = "text/plain"
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

            def log_message(self, format: str, *args: object) -> None:
                return

        self.name = name
        self.server = _Server((address, port), Handler)
        self.address, self.port = self.server.server_address[:2]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> HelloServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
