"""The thread both status writers run: wake on a new build or a resync, else every ``resync``
seconds (``retry_after`` seconds after a failed write), and call ``sync_once`` — which itself
writes only on the leader."""

from __future__ import annotations

import logging
import threading
from typing import ClassVar

__all__ = ["ResyncLoop"]


class ResyncLoop:
    """``start``/``stop`` a daemon thread that calls ``sync_once`` when woken (``wake``) or
    every ``resync_every`` seconds; ``retry_after`` seconds instead while ``_retry`` is set."""

    thread_name: ClassVar[str] = "resync"
    failure: ClassVar[str] = "sync failed"  # logged, with the traceback, when sync_once raises
    retry_on_failure: ClassVar[bool] = False  # whether that sets _retry
    log: ClassVar[logging.Logger] = logging.getLogger("polyingress.status")

    def __init__(self, *, resync: float, retry_after: float, stop_timeout: float) -> None:
        self.resync_every = resync
        self.retry_after = retry_after
        self.stop_timeout = stop_timeout
        self._retry = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sync_once(self) -> int:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.stop_timeout)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.retry_after if self._retry else self.resync_every)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.sync_once()
            except Exception:
                self.log.exception(self.failure)
                if self.retry_on_failure:
                    self._retry = True
