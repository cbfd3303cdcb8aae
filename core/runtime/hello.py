"""Small hello backends for the demo and the tests, like the tutorial's nginxdemos/hello.

Each answers every request with its server address, server name, date, URI and a request id, as
plain text (or JSON with ``?format=json`` or ``Accept: application/json``).

``?stream=N`` answers a long-lived streaming response instead: chunked, one line
``<server name> <i>`` every ``STREAM_INTERVAL`` seconds (N lines, then the end), with
``X-Accel-Buffering: no`` so that nginx passes each chunk on at once. ``?delay=MS`` answers
after MS milliseconds (at most 60,000): a slow backend, for the proxies' read timeouts.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["STREAM_INTERVAL", "HelloServer"]

STREAM_INTERVAL = 0.1  # seconds between the chunks of ?stream=N
_STREAM = re.compile(r"[?&]stream=(\d+)")
_DELAY = re.compile(r"[?&]delay=(\d{1,5})(?:&|$)")
MAX_DELAY_MS = 60_000


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

            def _stream(self, count: int) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("X-Accel-Buffering", "no")
                self.end_headers()
                self.wfile.flush()
                for i in range(count):
                    if i:
                        time.sleep(STREAM_INTERVAL)
                    line = f"{server_name} {i}\n".encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body_in = self.rfile.read(length) if length else b""
                delay = _DELAY.search(self.path)
                if delay:
                    time.sleep(min(int(delay.group(1)), MAX_DELAY_MS) / 1000)
                stream = _STREAM.search(self.path)
                if stream and self.command == "GET":
                    self._stream(int(stream.group(1)))
                    return
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
