"""Backends and clients that speak what a plain hello server does not: HTTP/2 in clear text
(h2c, prior knowledge) and WebSocket.

* :class:`H2CServer` speaks HTTP/2 only (the ``h2`` library): a proxy that talks HTTP/1.1 to it
  gets its connection closed (and answers 502), so a route to it works only when the proxy
  really talks h2c. Its answer is the hello server's JSON (``server_name``, ``uri``, ``method``,
  ``host``, ``headers``) plus ``protocol: "HTTP/2"``.
* :class:`WebSocketEcho` (the ``websockets`` library) sends back every message it receives,
  text as text and bytes as bytes; a request that is not a WebSocket upgrade gets 426.
* :func:`h2c_get` is a client sending one request with HTTP/2 prior knowledge (upstream's
  ``H2CPriorKnowledgeProtocol``); :func:`websocket_echo` opens a WebSocket, sends messages and
  returns the replies (upstream's HTTPRouteBackendProtocolWebSocket sends a text and a binary
  frame).
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import tempfile
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import Server, ServerConnection, serve

from polyingress.core import self_signed
from polyingress.core.runtime.hello import HelloServer

__all__ = [
    "H2CResponse",
    "H2CServer",
    "WebSocketEcho",
    "h2c_get",
    "tls_hello",
    "websocket_echo",
]

_READ = 65536


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class H2CServer:
    """An HTTP/2-only (prior knowledge) echo server on ``address:port``. ``requests`` keeps the
    JSON info of what it received; ``refused`` counts connections that did not start with the
    HTTP/2 preface (an HTTP/1.1 client, for instance)."""

    def __init__(self, name: str, address: str, port: int) -> None:
        self.name = name
        self.address = address
        self.port = port
        self.requests: deque[dict[str, Any]] = deque(maxlen=1000)
        self.refused = 0
        self._sock = socket.create_server((address, port))
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> H2CServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        h2conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        h2conn.initiate_connection()
        streams: dict[int, list[tuple[str, str]]] = {}
        with conn:
            try:
                conn.sendall(h2conn.data_to_send())
                while True:
                    data = conn.recv(_READ)
                    if not data:
                        return
                    for event in h2conn.receive_data(data):
                        if isinstance(event, h2.events.RequestReceived):
                            streams[event.stream_id] = [
                                (_text(k), _text(v)) for k, v in event.headers or ()
                            ]
                        elif isinstance(event, h2.events.DataReceived):
                            h2conn.acknowledge_received_data(
                                event.flow_controlled_length, event.stream_id
                            )
                        elif isinstance(event, h2.events.StreamEnded):
                            self._answer(h2conn, event.stream_id, streams.pop(event.stream_id, []))
                    conn.sendall(h2conn.data_to_send())
            except h2.exceptions.ProtocolError:
                self.refused += 1
            except OSError:
                return

    def _answer(
        self, h2conn: h2.connection.H2Connection, stream: int, headers: list[tuple[str, str]]
    ) -> None:
        pseudo = {k: v for k, v in headers if k.startswith(":")}
        plain: dict[str, str] = {}
        for k, v in headers:
            if not k.startswith(":"):
                plain[k] = f"{plain[k]},{v}" if k in plain else v
        info = {
            "server_name": self.name,
            "server_address": f"{self.address}:{self.port}",
            "uri": pseudo.get(":path", ""),
            "method": pseudo.get(":method", ""),
            "host": pseudo.get(":authority") or plain.get("host", ""),
            "headers": plain,
            "protocol": "HTTP/2",
        }
        self.requests.append(info)
        body = json.dumps(info, sort_keys=True).encode()
        h2conn.send_headers(
            stream,
            [
                (":status", "200"),
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
            ],
        )
        h2conn.send_data(stream, body, end_stream=True)


@dataclass
class H2CResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def h2c_get(
    port: int, host: str, path: str, *, address: str = "127.0.0.1", timeout: float = 10.0
) -> H2CResponse:
    """One GET with HTTP/2 prior knowledge in clear text to ``address:port`` (``host`` as
    :authority)."""
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    with socket.create_connection((address, port), timeout=timeout) as sock:
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        conn.send_headers(
            stream,
            [(":method", "GET"), (":scheme", "http"), (":authority", host), (":path", path)],
            end_stream=True,
        )
        sock.sendall(conn.data_to_send())
        status, headers, body = 0, {}, bytearray()
        while True:
            data = sock.recv(_READ)
            if not data:
                raise ConnectionError("the connection closed before the end of the response")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                    for k, v in event.headers or ():
                        name, value = _text(k), _text(v)
                        if name == ":status":
                            status = int(value)
                        else:
                            headers[name] = value
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                    return H2CResponse(status=status, headers=headers, body=bytes(body))
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                    raise ConnectionError(f"stream reset by the peer ({event.error_code})")
                elif isinstance(event, h2.events.ConnectionTerminated):
                    raise ConnectionError(f"GOAWAY ({event.error_code})")
            sock.sendall(conn.data_to_send())


@dataclass
class WebSocketEcho:
    """A WebSocket echo server on ``address:port`` (every path). ``connections`` counts the
    WebSocket connections it accepted."""

    name: str
    address: str
    port: int
    connections: int = 0
    _server: Server | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> WebSocketEcho:
        def echo(ws: ServerConnection) -> None:
            self.connections += 1
            try:
                for message in ws:
                    ws.send(message)
            except ConnectionClosed:
                return

        self._server = serve(echo, self.address, self.port)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)


def websocket_echo(
    port: int,
    host: str,
    path: str,
    messages: Sequence[str | bytes],
    *,
    address: str = "127.0.0.1",
    timeout: float = 10.0,
) -> list[str | bytes]:
    """Open a WebSocket to ``address:port`` (Host ``host:port``, target ``path``), send each
    message and return the reply to each."""
    sock = socket.create_connection((address, port), timeout=timeout)
    replies: list[str | bytes] = []
    with ws_connect(
        f"ws://{host}:{port}{path}", sock=sock, open_timeout=timeout, close_timeout=timeout
    ) as ws:
        for message in messages:
            ws.send(message)
            replies.append(ws.recv(timeout=timeout))
    return replies


def tls_hello(name: str, address: str, port: int) -> HelloServer:
    """A hello server speaking HTTPS only, with a new self-signed certificate (not started)."""
    cert = self_signed(name.replace("/", "-"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hello.pem"
        path.write_text(cert.pem_bundle)
        context.load_cert_chain(path)
    server = HelloServer(name, address, port)
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    return server
