"""Tests' helper: a rendered HAProxy configuration written out as the files HAProxy reads
(the configuration, the routes map, the crt-list, the PEMs, the mirror Lua, each slot's source
map), in a directory that
is HAProxy's working directory. The controller writes them with its own order and atomicity
(plugins/haproxy/apply.py); a test that runs `haproxy -c` or `haproxy -db` on a rendering only
needs them present."""

from __future__ import annotations

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
