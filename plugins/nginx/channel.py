"""The controller's side of the endpoint channel (Lua mode): HTTP over nginx's UNIX socket.

See ``lua/polyingress_channel.lua`` for the protocol. Every write is verified by reading the
state back: the write's answer is what the dictionary holds once it is done (one request, not a
write and a read: each costs a connection, and during a reload the two cores are busy); anything
else than exactly the state that was sent is a :class:`ChannelError`.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .render import CHANNEL_PATH

__all__ = ["TOKEN_HEADER", "ChannelError", "EndpointChannel", "State"]

TOKEN_HEADER = "X-Polyingress-Token"
State = Mapping[str, Sequence[tuple[str, int]]]


class ChannelError(Exception):
    """The channel refused a request, or the state read back differs from the state sent."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(os.fspath(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _canonical(state: State) -> dict[str, list[list[Any]]]:
    return {name: [[a, p] for a, p in endpoints] for name, endpoints in state.items()}


class EndpointChannel:
    """Writes and reads the endpoint state of the nginx that listens on ``path``."""

    def __init__(self, path: Path, token: str, timeout: float = 5.0) -> None:
        self.path = path
        self.token = token
        self.timeout = timeout
        self.generation = 0

    def _request(self, method: str, target: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {TOKEN_HEADER: self.token, "Connection": "close"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request(method, target, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ChannelError(f"{method} {self.path}: {exc}") from exc
        finally:
            conn.close()
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if resp.status != 200 or not isinstance(answer, dict):
            detail = (
                answer.get("error")
                if isinstance(answer, dict)
                else raw[:200].decode(errors="replace")
            )
            raise ChannelError(f"{method} {target}: HTTP {resp.status}: {detail}")
        return answer

    def read(self, names: Iterable[str] | None = None) -> tuple[int, dict[str, list[list[Any]]]]:
        """(generation, state) of ``names`` (default: every backend in the dictionary)."""
        target = CHANNEL_PATH
        if names is not None:
            target += "?backend=" + ",".join(sorted(names))
        answer = self._request("GET", target)
        return int(answer["generation"]), dict(answer["backends"])

    def replace(self, state: State) -> int:
        """Make ``state`` the whole state (backends not in it are deleted); verify."""
        answer = self._request("PUT", CHANNEL_PATH, {"backends": _canonical(state)})
        self._verify(answer, state, whole=True)
        return self.generation

    def update(self, state: State, delete: Iterable[str] = ()) -> int:
        """Set the backends in ``state`` (others stay as they are); verify."""
        gone = sorted(delete)
        answer = self._request(
            "PATCH", CHANNEL_PATH, {"backends": _canonical(state), "delete": gone}
        )
        self._verify(answer, state, whole=False, gone=gone)
        return self.generation

    def _verify(self, answer: Any, state: State, *, whole: bool, gone: Sequence[str] = ()) -> None:
        """The write's answer (what the dictionary holds after it) is exactly ``state``."""
        seen = answer.get("backends")
        if not isinstance(seen, dict):
            raise ChannelError("the write's answer holds no state to verify")
        self.generation = int(answer["generation"])
        want = _canonical(state)
        if whole:
            wrong = sorted(set(want) ^ set(seen))
            wrong += sorted(n for n in want.keys() & seen.keys() if want[n] != seen[n])
        else:
            wrong = sorted(n for n in want if seen.get(n) != want[n])
            wrong += sorted(n for n in gone if n in seen)
        if wrong:
            shown = ", ".join(wrong[:5]) + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else "")
            raise ChannelError(f"read-back differs from what was written for {shown}")
