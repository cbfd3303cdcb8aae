"""Is the Lua balancer available? Found once per nginx binary, by asking nginx itself.

Lua mode needs ngx_http_lua_module (and NDK, which it depends on) loadable into this nginx,
lua-resty-core (ngx_lua 0.10.16+ refuses to start without it; it also provides
``ngx.balancer``), lua-cjson, and our own ``lua/polyingress_*.lua``. The files are looked up
first (for a precise reason), then nginx runs a probe configuration in a temporary prefix
(no listener, one process) that loads the modules, requires every Lua module the balancer uses
from ``init_by_lua``, prints the outcome and exits. ``nginx -t`` would not do: it loads the
modules but never runs ``init_by_lua`` (verified: a missing module passes ``-t``).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .render import LUA_DICT, TEMP_PATHS, LuaRender, lua_safe, quote

__all__ = [
    "CHANNEL_DIR",
    "CHANNEL_SOCKET",
    "LUA_PACKAGE_DIR",
    "MODULE_FILES",
    "LuaSupport",
    "detect_lua",
    "lua_render",
]

LUA_PACKAGE_DIR = Path(__file__).resolve().parent / "lua"
# Load order matters: the Lua module needs NDK's symbols.
MODULE_FILES = ("ndk_http_module.so", "ngx_http_lua_module.so")
_LUA_FILES = (
    "polyingress_balancer.lua",
    "polyingress_channel.lua",
    "polyingress_split.lua",
    "polyingress_mirror.lua",
)
_REQUIRES = ("resty.core", "ngx.balancer", "cjson.safe", "polyingress_channel")
_PROBE_MARK = "polyingress-lua-probe: "


@dataclass(frozen=True, slots=True)
class LuaSupport:
    """``available``, and why not (``reason``); ``modules``: the load_module paths."""

    available: bool
    reason: str = ""
    modules: tuple[str, ...] = ()


def _configure_arguments(binary: str) -> str | None:
    try:
        proc = subprocess.run(
            [binary, "-V"], capture_output=True, timeout=10, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stderr.decode(errors="replace")


def _modules(configure: str) -> tuple[tuple[str, ...] | None, str]:
    if re.search(r"--add-module=\S*lua-nginx-module", configure):
        return (), ""  # built in (OpenResty style): nothing to load
    m = re.search(r"--modules-path=(\S+)", configure)
    if m is not None:
        directory = Path(m.group(1))
    else:
        prefix = re.search(r"--prefix=(\S+)", configure)
        directory = Path(prefix.group(1) if prefix else "/usr/local/nginx") / "modules"
    paths = tuple(directory / name for name in MODULE_FILES)
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        return None, (
            f"{' and '.join(missing)} not in {directory} (Debian: apt-get install "
            "libnginx-mod-http-lua lua-resty-core lua-cjson)"
        )
    return tuple(str(p) for p in paths), ""


def _probe_config(modules: tuple[str, ...]) -> str:
    requires = " ".join(f'require("{name}")' for name in _REQUIRES)
    lines = [
        *(f"load_module {quote(path)};" for path in modules),
        "daemon off;",
        "master_process off;",
        'pid "run/nginx.pid";',
        "error_log stderr notice;",
        "events { worker_connections 16; }",
        "http {",
        "    access_log off;",
        *(f"    {name} {quote(path)};" for name, path in TEMP_PATHS),
        f"    lua_package_path {quote(str(LUA_PACKAGE_DIR) + '/?.lua;;')};",
        f"    lua_shared_dict {LUA_DICT} 1m;",
        "    init_by_lua_block {",
        f"        local ok, err = pcall(function() {requires} end)",
        f'        io.stderr:write("{_PROBE_MARK}" .. (ok and "ok" or tostring(err)) .. "\\n")',
        "        os.exit(0)",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(_PROBE_MARK):
            message = line[len(_PROBE_MARK) :]
            m = re.search(r"module '([^']+)' not found", message)
            if m is not None:
                return f"Lua module {m.group(1)!r} not found (lua-resty-core / lua-cjson missing?)"
            return message[:300]
    for line in output.splitlines():
        if "[emerg]" in line or "[error]" in line or "[alert]" in line:
            message = line.split("] ", 1)[-1]
            message = re.sub(r"^\d+#\d+: ", "", message)
            return message[:300]
    return (output.strip().splitlines() or ["nginx -t failed without a message"])[-1][:300]


@functools.cache
def detect_lua(binary: str) -> LuaSupport:
    """Whether ``binary`` can run the Lua balancer; cached per binary for the process."""
    configure = _configure_arguments(binary)
    if configure is None:
        return LuaSupport(False, f"cannot run {binary} -V")
    modules, reason = _modules(configure)
    if modules is None:
        return LuaSupport(False, reason)
    missing = [name for name in _LUA_FILES if not (LUA_PACKAGE_DIR / name).is_file()]
    if missing:
        return LuaSupport(False, f"{', '.join(missing)} missing from {LUA_PACKAGE_DIR}")
    with tempfile.TemporaryDirectory(prefix="polyingress-lua-probe-") as tmp:
        prefix = Path(tmp)
        for sub in ("conf", "run", "tmp"):
            (prefix / sub).mkdir()
        conf = prefix / "conf" / "probe.conf"
        conf.write_text(_probe_config(modules))
        try:
            proc = subprocess.run(
                [binary, "-p", f"{prefix}/", "-e", "stderr", "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return LuaSupport(False, f"the Lua probe did not run: {exc}")
    output = proc.stderr.decode(errors="replace")
    if f"{_PROBE_MARK}ok" not in output.splitlines():
        return LuaSupport(False, _failure(output))
    return LuaSupport(True, "", modules)


# Relative to the workdir (the nginx prefix): the channel's directory (0700) and socket (0600).
CHANNEL_DIR = "channel"
CHANNEL_SOCKET = "channel/nginx.sock"
_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux


def _path_problem(socket: Path) -> str:
    if len(os.fsencode(socket)) > _SUN_PATH_MAX:
        return f"UNIX socket path {socket} is longer than {_SUN_PATH_MAX} bytes"
    if not lua_safe(str(socket)):
        return f"UNIX socket path {str(socket)!r} has characters Lua mode does not quote"
    if ";" in str(LUA_PACKAGE_DIR) or "?" in str(LUA_PACKAGE_DIR):
        return f"{LUA_PACKAGE_DIR} has ';' or '?', which Lua's package path cannot hold"
    return ""


def lua_render(
    mode: str, binary: str, prefix: Path, *, token: str, unavailable_port: int
) -> tuple[LuaRender | None, str]:
    """The Lua part of the configuration for ``--nginx-lua MODE``, or None and why not.

    ``mode`` ``off``: never; ``auto``: when available; ``on``: RuntimeError when unavailable.
    """
    if mode == "off":
        return None, "off (--nginx-lua off)"
    support = detect_lua(binary)
    socket = prefix / CHANNEL_SOCKET
    problem = support.reason
    if support.available:
        problem = _path_problem(socket)
    if problem:
        if mode == "on":
            raise RuntimeError(f"--nginx-lua on, but the Lua balancer cannot run: {problem}")
        return None, f"unavailable: {problem}"
    return (
        LuaRender(
            modules=support.modules,
            package_dir=str(LUA_PACKAGE_DIR),
            channel_socket=str(socket),
            unavailable_port=unavailable_port,
            token=token,
        ),
        "on",
    )
