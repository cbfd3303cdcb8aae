"""Caddy's admin API over its UNIX socket (the only way this backend talks to Caddy).

``POST /load`` replaces the whole running configuration: Caddy provisions the new one, starts
its servers (the listeners are shared with the old ones), stops the old servers gracefully and
answers 200; if anything in the new configuration fails, Caddy keeps the old one running (it
rolls back) and answers with an error, which :meth:`AdminClient.load` raises as
:class:`polyingress.core.ApplyError` with Caddy's message. A socket that does not answer is not
a refusal: :class:`polyingress.core.TransientApplyError` (the core retries the model).
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

from polyingress.core import ApplyError, TransientApplyError

__all__ = ["AdminClient", "AdminUnavailable"]


class AdminUnavailable(Exception):
    """The socket does not answer (Caddy not started yet, or gone)."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        # The host only fills the Host header: Caddy checks no Host or Origin on a UNIX socket.
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class AdminClient:
    """One request per connection to the admin socket at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def request(
        self, method: str, target: str, body: bytes | None = None, timeout: float = 10.0
    ) -> tuple[int, bytes]:
        conn = _UnixConnection(self.path, timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            try:
                conn.request(method, target, body=body, headers=headers)
                response = conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise AdminUnavailable(f"caddy admin socket {self.path}: {exc}") from exc
        finally:
            conn.close()

    def ping(self) -> bool:
        """True when the admin API answers (``GET /config/``)."""
        try:
            status, _body = self.request("GET", "/config/", timeout=1.0)
        except AdminUnavailable:
            return False
        return status == 200

    def load(self, text: str, timeout: float) -> None:
        """Make Caddy run the configuration ``text``; ApplyError with Caddy's message when it
        refuses it (it then still runs the previous one), TransientApplyError when it does not
        answer."""
        try:
            status, body = self.request("POST", "/load", text.encode(), timeout=timeout)
        except AdminUnavailable as exc:
            raise TransientApplyError(f"caddy: loading the configuration failed: {exc}") from exc
        if status != 200:
            raise ApplyError(f"caddy refused the configuration (HTTP {status}): {_error(body)}")

    def config(self) -> Any:
        """The running configuration, as Caddy reports it."""
        status, body = self.request("GET", "/config/")
        if status != 200:
            raise AdminUnavailable(f"GET /config/ answered {status}: {_error(body)}")
        return json.loads(body)


def _error(body: bytes) -> str:
    try:
        message = json.loads(body).get("error")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else body.decode(errors="replace").strip()[:2000]
