"""Tests' helper: a rendered HAProxy configuration written out as the files HAProxy reads
(the configuration, the routes map, the crt-list, the PEMs, the mirror Lua, each slot's source
map), in a directory that is HAProxy's working directory. The controller writes them with its
own order and atomicity (plugins/haproxy/apply.py); a test that runs `haproxy -c` or
`haproxy -db` on a rendering only needs them present. ``served`` runs HAProxy on them."""

from __future__ import annotations

import http.client
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from polyingress.core import fallback_certificate
from polyingress.plugins.haproxy.render import (
    CRT_LIST,
    FALLBACK_PEM,
    MIRROR_LUA,
    ROUTES_MAP,
    Rendered,
    mirror_lua,
    pem_bundle,
)
from polyingress.testing.live import wait_until

CONFIG = "haproxy.cfg"


def write_rendered(directory: Path, rendered: Rendered) -> Path:
    """Writes ``rendered`` below ``directory``; returns the configuration's path."""
    (directory / "maps").mkdir(exist_ok=True)
    (directory / "certs").mkdir(exist_ok=True)
    (directory / CONFIG).write_text(rendered.config)
    (directory / ROUTES_MAP).write_text(rendered.map_text)
    (directory / FALLBACK_PEM).write_text(pem_bundle(fallback_certificate()))
    (directory / MIRROR_LUA).write_text(mirror_lua())
    (directory / CRT_LIST).write_text(rendered.crt_list_text)
    for name, pem in rendered.pems.items():
        (directory / name).write_text(pem)
    for name, text in rendered.sources.items():
        (directory / name).parent.mkdir(exist_ok=True)
        (directory / name).write_text(text)
    return directory / CONFIG


@contextmanager
def served(
    directory: Path, rendered: Rendered, address: str, port: int, ready_host: str
) -> Iterator[Callable[[str], int]]:
    """HAProxy (`haproxy -db`) on ``rendered`` written below ``directory``, listening on
    ``address``:``port``; yields ``status(host)``, the status of a GET / with that Host, once
    ``ready_host`` answers 200. Stopped on exit, when its output must hold no ALERT."""
    write_rendered(directory, rendered)
    haproxy = shutil.which("haproxy")
    assert haproxy is not None
    proc = subprocess.Popen(
        [haproxy, "-db", "-f", CONFIG],
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    def status(host: str) -> int:
        conn = http.client.HTTPConnection(address, port, timeout=5)
        try:
            conn.request("GET", "/", headers={"Host": host})
            return conn.getresponse().status
        finally:
            conn.close()

    def up() -> bool:
        try:
            return status(ready_host) == 200
        except OSError:
            time.sleep(0.05)
            return False

    try:
        wait_until(up, timeout=10)
        yield status
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert b"ALERT" not in out, out.decode(errors="replace")
