"""The HTTPS redirector: answers 308 to every request Traefik forwards to it.

``ssl-redirect`` answers a plain-HTTP request to a TLS host with **308** on every backend.
Traefik's own ``redirectScheme`` middleware cannot: it answers 301 to GET and 308 only to other
methods (``pkg/middlewares/redirect/redirect.go``), and no option of Traefik v3's file provider
changes that. So the ``web`` router of such a host forwards to this small server instead, run by
the Traefik backend inside the controller process (in a cluster: the same pod as the Traefik
sidecar, on 127.0.0.1). It answers every method with ``308 Permanent Redirect`` and
``Location: https://<host>[:<port>]<request target>``, as nginx and HAProxy do.

Traefik forwards the client's Host header unchanged (``passHostHeader`` defaults to true) and
only for hosts its router matched; the redirector still checks both the host and the request
target, and answers 400 to anything that is not a DNS name and an origin-form target.
"""

from __future__ import annotations

import re
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["HttpsRedirector", "dial_url", "redirect_location"]

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_HOST_PORT = re.compile(r"(?P<name>[^:]+)(?::[0-9]{1,5})?")
# RFC 9112 origin-form: "/" then visible ASCII (no space, no control character).
_ORIGIN_FORM = re.compile(r"/[\x21-\x7e]*")
_MAX_TARGET = 8192
_MAX_DRAINED_BODY = 64 * 1024
BODY = b"Permanent Redirect\n"


def redirect_location(host_header: str | None, target: str, port: int) -> str | None:
    """``https://`` URL for a request with this Host header and request target, or None when
    either is unusable. The host loses its port and a trailing dot and is lowercased (what
    nginx's ``$host`` holds); ``port`` is left out when it is 443."""
    if host_header is None or len(target) > _MAX_TARGET or not _ORIGIN_FORM.fullmatch(target):
        return None
    match = _HOST_PORT.fullmatch(host_header.strip())
    if match is None:
        return None
    name = match.group("name").lower().removesuffix(".")
    if len(name) > 253 or not _DNS_NAME.fullmatch(name):
        return None
    suffix = "" if port == 443 else f":{port}"
    return f"https://{name}{suffix}{target}"


def dial_url(host: str, port: int) -> str:
    """The URL Traefik forwards to for a listen address (a wildcard is dialled on loopback)."""
    dial = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{dial}]:{port}" if ":" in dial else f"http://{dial}:{port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Traefik pools its connections to servers
    timeout = 60.0
    server: _Server

    def __getattr__(self, name: str) -> Any:
        # http.server dispatches method M to do_M: every method gets the same answer.
        if name.startswith("do_"):
            return self._answer
        raise AttributeError(name)

    def _answer(self) -> None:
        self._drain_body()
        location = redirect_location(self.headers.get("Host"), self.path, self.server.https_port)
        if location is None:
            self._send(400, b"Bad Request\n", ())
            return
        self._send(308, BODY, (("Location", location),))

    def _drain_body(self) -> None:
        """Read a small request body so the connection stays usable; close it otherwise."""
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") is not None:
            self.close_connection = True
        elif length is not None:
            if length.isdigit() and int(length) <= _MAX_DRAINED_BODY:
                self.rfile.read(int(length))
            else:
                self.close_connection = True

    def _send(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    https_port: int

    def handle_error(self, request: object, client_address: object) -> None:
        # Traefik closing a pooled connection is not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Server6(_Server):
    address_family = socket.AF_INET6


class HttpsRedirector:
    """The redirector, listening on ``host:port`` (port 0: any free port, see ``url``)."""

    def __init__(self, host: str, port: int, https_port: int) -> None:
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), _Handler)
        self._server.https_port = https_port
        bound = self._server.server_address
        self.host, self.port = str(bound[0]), int(bound[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="traefik-https-redirector", daemon=True
        )

    @property
    def url(self) -> str:
        return dial_url(self.host, self.port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
