"""The example's proxy: a small threaded HTTP/HTTPS reverse proxy inside the controller process.

It decides nothing itself: every request gets what the core's ``RouteModel.answer`` says (the
request-path rule, the HTTPS redirect, the route, the default backend, 404, 503), and is
forwarded to a ready endpoint of the chosen backend (round robin) with the normalized path and
the ``X-Forwarded-*`` headers. TLS picks the certificate of the virtual host the SNI name
selects, else the fallback certificate. A new model is swapped in atomically.

Good enough to pass the shared conformance cases; not built for production traffic.
"""

from __future__ import annotations

import http.client
import itertools
import os
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from polyingress.core import Certificate, RouteModel, fallback_certificate

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
UPSTREAM_TIMEOUT = 30.0


class Proxy:
    """Two listeners (plain HTTP and TLS) serving the current model."""

    def __init__(
        self,
        bind: str,
        http_port: int,
        https_port: int,
        cert_dir: Path,
        redirect_https_port: int | None = None,
    ) -> None:
        self.bind = bind
        self.http_port = http_port
        self.https_port = https_port
        # The HTTPS port clients reach (RunSettings.public_https_port): what redirects name.
        self.redirect_https_port = redirect_https_port or https_port
        self.cert_dir = cert_dir
        self.model = RouteModel()
        # certificate name -> (fingerprint, context): a rotated Secret keeps its name
        self._contexts: dict[str, tuple[str, ssl.SSLContext]] = {}
        self._fallback = self._context(fallback_certificate())
        self._counters: dict[str, itertools.count[int]] = {}
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []

    # ---- model

    def serve(self, model: RouteModel) -> None:
        """Serve ``model`` from the next request on (certificates loaded first)."""
        contexts = {}
        for cert in model.certificates:
            known = self._contexts.get(cert.name)
            if known is not None and known[0] == cert.fingerprint:
                contexts[cert.name] = known
            else:
                contexts[cert.name] = (cert.fingerprint, self._context(cert))
        self._contexts = contexts
        self.model = model

    def _context(self, cert: Certificate) -> ssl.SSLContext:
        self.cert_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.cert_dir / f"{cert.fingerprint or cert.name}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(cert.pem_bundle)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(path)
        return context

    def _pick_context(
        self, sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: Any
    ) -> None:
        model = self.model
        vhost = model.select_vhost(name) if name else None
        if vhost is not None and vhost.tls is not None and vhost.tls.certificate is not None:
            known = self._contexts.get(vhost.tls.certificate)
            if known is not None:
                sock.context = known[1]
                return
        sock.context = self._fallback

    def endpoint(self, backend: str) -> tuple[str, int] | None:
        ready = self.model.backend(backend).ready_endpoints
        if not ready:
            return None
        counter = self._counters.setdefault(backend, itertools.count())
        chosen = ready[next(counter) % len(ready)]
        return chosen.address, chosen.port

    # ---- listeners

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.bind else socket.AF_INET
        for port, tls in ((self.http_port, False), (self.https_port, True)):
            server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family})
            server = server_class((self.bind, port), _handler(self, tls))
            server.daemon_threads = True
            server.handle_error = lambda request, address: None
            if tls:
                # The fallback context answers first; its SNI callback switches to the
                # certificate of the host the client named (see _pick_context).
                self._fallback.sni_callback = self._pick_context
                server.socket = self._fallback.wrap_socket(
                    server.socket, server_side=True, do_handshake_on_connect=False
                )
            thread = threading.Thread(
                target=server.serve_forever, name=f"example-proxy-{port}", daemon=True
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    @property
    def running(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)


def _handler(proxy: Proxy, tls: bool) -> type[BaseHTTPRequestHandler]:
    scheme = "https" if tls else "http"
    port = proxy.https_port if tls else proxy.http_port

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "polyingress-example"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            if tls:
                try:
                    self.connection.do_handshake()
                except (ssl.SSLError, OSError):
                    self.close_connection = True
                    raise

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            host = self.headers.get("Host", "")
            answer = proxy.model.answer(host, self.path, scheme=scheme, method=self.command)
            if answer.status in (301, 308):
                name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
                public = proxy.redirect_https_port
                https = "" if public == 443 else f":{public}"
                self._plain(answer.status, location=f"https://{name.lower()}{https}{answer.path}")
                return
            if answer.status is not None or answer.backend is None or answer.path is None:
                self._plain(answer.status or 502)
                return
            target = proxy.endpoint(answer.backend)
            if target is None:
                self._plain(503)
                return
            self._forward(target, answer.path, host, body)

        def _forward(
            self, target: tuple[str, int], path: str, host: str, body: bytes | None
        ) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            for name in (
                "X-Forwarded-For",
                "X-Forwarded-Proto",
                "X-Forwarded-Host",
                "X-Forwarded-Port",
            ):
                headers.pop(name, None)
            headers["X-Forwarded-For"] = self.client_address[0]
            headers["X-Forwarded-Proto"] = scheme
            headers["X-Forwarded-Host"] = host
            headers["X-Forwarded-Port"] = str(port)
            conn = http.client.HTTPConnection(target[0], target[1], timeout=UPSTREAM_TIMEOUT)
            try:
                conn.request(self.command, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self._plain(502)
                return
            finally:
                conn.close()
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _plain(self, status: int, location: str | None = None) -> None:
            text = f"{status} {http.HTTPStatus(status).phrase}\n".encode()
            self.send_response(status)
            if location is not None:
                self.send_header("Location", location)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(text)

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = _any

    return Handler
