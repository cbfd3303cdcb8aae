"""A long-lived streaming response held open through a proxy (the hello server's ``?stream=N``),
watched from a thread: the live test and ``bench/bench_changes.py`` use it to see whether routine
changes leave open connections alone."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Stream:
    """``GET path?stream=chunks`` with ``Host: host`` through the proxy on ``port``, read in a
    thread. ``lines`` are the (monotonic time, line) received; ``ended`` when it stopped, with
    ``complete`` telling a full response (every chunk and the last one) from a cut one."""

    port: int
    host: str
    path: str = "/"
    chunks: int = 3000  # 100 ms each: five minutes
    address: str = "127.0.0.1"
    lines: list[tuple[float, str]] = field(default_factory=list)
    opened: float = 0.0
    ended: float | None = None
    complete: bool = False
    error: str | None = None
    status: int | None = None

    def __post_init__(self) -> None:
        self._conn = http.client.HTTPConnection(self.address, self.port, timeout=30)
        self._thread = threading.Thread(target=self._read, daemon=True)

    def open(self, timeout: float = 10.0) -> Stream:
        """Send the request; returns once the first line arrived (AssertionError if none)."""
        self.opened = time.monotonic()
        self._conn.request("GET", f"{self.path}?stream={self.chunks}", headers={"Host": self.host})
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.lines and self.ended is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.lines:
            raise AssertionError(f"no streamed line: status {self.status}, {self.error}")
        return self

    def _read(self) -> None:
        try:
            response = self._conn.getresponse()
            self.status = response.status
            while True:
                line = response.readline()
                if not line:
                    break
                self.lines.append((time.monotonic(), line.decode(errors="replace").strip()))
            self.complete = len(self.lines) == self.chunks
            if not self.complete:
                self.error = f"ended after {len(self.lines)} of {self.chunks} lines"
        except Exception as exc:  # OSError, HTTPException; AttributeError once close()d
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ended = time.monotonic()
            self._conn.close()

    @property
    def alive(self) -> bool:
        """Still open, and a line arrived within the last second."""
        return self.ended is None and bool(self.lines) and time.monotonic() - self.lines[-1][0] < 1

    @property
    def lasted(self) -> float:
        """Seconds from opening to its end (or to now)."""
        return (self.ended if self.ended is not None else time.monotonic()) - self.opened

    def close(self) -> None:
        self._conn.close()
        self._thread.join(timeout=5)
