"""Small hello backends for the demo and the tests, like the tutorial's nginxdemos/hello.

Each answers every request with its server address, server name, date, URI and a request id, as
plain text (or JSON with ``?format=json`` or ``Accept: application/json``).

``?stream=N`` answers a long-lived streaming response instead: chunked, one line
``<server name> <i>`` every ``STREAM_INTERVAL`` seconds (N lines, then the end), with
``X-Accel-Buffering: no`` so that nginx passes each chunk on at once.

What the Gateway API conformance cases need of a backend (as upstream's echo server does):

* ``?delay=D`` (a Gateway API duration: ``1s``, ``500ms``) waits that long before answering,
  so that a route's timeout can be seen (at most ``MAX_DELAY`` seconds);
* a request header ``X-Echo-Set-Header: Name:value,Other:value`` makes the answer carry those
  response headers (so a route's response header changes can be seen on headers the backend
  set);
* the JSON answer's ``headers`` holds every request header by lowercase name, a header sent
  more than once with its values joined by ``,`` in order;
* ``requests`` keeps what the server received last (the JSON info of up to ``REQUEST_LOG``
  requests), so that a test can see a request that was mirrored to it; ``received`` counts
  every request ever logged, and ``requests_since(mark)`` gives those logged after the count
  was ``mark`` (an index into ``requests`` would shift once the log is full).
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import uuid
from collections import deque
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from polyingress.core.pipeline.translate.httproute import parse_duration

__all__ = ["MAX_DELAY", "REQUEST_LOG", "STREAM_INTERVAL", "HelloServer", "request_delay"]

STREAM_INTERVAL = 0.1  # seconds between the chunks of ?stream=N
MAX_DELAY = 30.0  # the longest ?delay= honoured, in seconds
REQUEST_LOG = 1000  # how many requests HelloServer.requests keeps
_STREAM = re.compile(r"[?&]stream=(\d+)")
_DELAY = re.compile(r"[?&]delay=([^&#]*)")
_SET_HEADER = "X-Echo-Set-Header"
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")


def request_delay(target: str) -> float | None:
    """The seconds ``?delay=D`` in a request target asks the hello server to wait (None:
    none, or not a duration)."""
    found = _DELAY.search(target)
    if found is None:
        return None
    seconds = parse_duration(found.group(1))
    return None if seconds is None else min(seconds, MAX_DELAY)


def _echo_set_headers(value: str | None) -> list[tuple[str, str]]:
    """``Name:value,Other:value`` -> the response headers to add (malformed parts skipped:
    names must be tokens, values printable ASCII)."""
    out: list[tuple[str, str]] = []
    for part in (value or "").split(","):
        name, sep, val = part.partition(":")
        name, val = name.strip(), val.strip()
        if sep and _TOKEN.match(name) and all(" " <= c <= "~" for c in val):
            out.append((name, val))
    return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client (or a proxy's health check) closing its connection is not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class HelloServer:
    def __init__(self, name: str, address: str, port: int, log_size: int = REQUEST_LOG) -> None:
        server_name = name
        # What the server received last (the JSON info of each request), newest last.
        self.requests: deque[dict[str, Any]] = deque(maxlen=log_size)
        self.received = 0  # requests ever logged (``requests`` keeps the last REQUEST_LOG)
        self._log_lock = threading.Lock()
        outer = self

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
                stream = _STREAM.search(self.path)
                if stream and self.command == "GET":
                    self._stream(int(stream.group(1)))
                    return
                delay = request_delay(self.path)
                if delay:
                    time.sleep(delay)
                address = self.server.server_address
                host, port = str(address[0]), int(address[1])  # type: ignore[index]
                headers: dict[str, str] = {}
                for k, v in self.headers.items():
                    k = k.lower()
                    headers[k] = f"{headers[k]},{v}" if k in headers else v
                info: dict[str, Any] = {
                    "server_address": f"{host}:{port}",
                    "server_name": server_name,
                    "date": formatdate(usegmt=True),
                    "uri": self.path,
                    "method": self.command,
                    "request_id": uuid.uuid4().hex,
                    "host": self.headers.get("Host", ""),
                    "headers": headers,
                    "body_length": len(body_in),
                }
                outer._log(info)
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
                for name, value in _echo_set_headers(self.headers.get(_SET_HEADER)):
                    self.send_header(name, value)
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

    def _log(self, info: dict[str, Any]) -> None:
        with self._log_lock:
            self.requests.append(info)
            self.received += 1

    def requests_since(self, mark: int) -> list[dict[str, Any]]:
        """The requests logged after ``received`` was ``mark``, oldest first. Raises
        LookupError when some of them have already left the log (more than the log's size)."""
        with self._log_lock:
            kept, received = list(self.requests), self.received
        new = received - mark
        if new > len(kept):
            raise LookupError(f"{new - len(kept)} of {new} requests left the log of {self.name}")
        return kept[len(kept) - new :] if new > 0 else []

    def start(self) -> HelloServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
